"""``custlist VENDOR COMMAND -o FILE``: a listing into a JSONL, CSV or
Parquet file, batch by batch in bounded memory, resumable exactly.

With ``--resume state.json`` the pager's checkpoint is written to the state
file after each batch, together with how much of the output belongs to the
records it covers: the byte length of a JSONL / CSV file, or the number of
Parquet parts.  A run that is killed at any moment leaves at most a batch
beyond the state, which the next run cuts off before it continues from the
checkpoint: every record ends up in the file exactly once.

Parquet cannot be appended to, so its batches go to numbered part files
beside the output (``FILE.parts/``), each written whole and renamed into
place; the last step joins them, one at a time, into FILE."""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable, Iterator

from . import _frames

STATE_VERSION = 1


class ExportError(Exception):
    """A state file that does not fit this run: a usage error."""


def _fsync_dir(path: str) -> None:
    """Make a rename of `path` durable: fsync the directory that holds it."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path)


def load_state(path: str, fmt: str, output: str) -> dict[str, Any] | None:
    """The state of an earlier run, or None to start afresh."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ExportError(f"--resume: cannot read {path}: {e}") from None
    if not isinstance(state, dict) or state.get("custlist_export") != STATE_VERSION:
        raise ExportError(f"--resume: {path} is not a custlist export state file")
    if state.get("format") != fmt or state.get("output") != os.path.abspath(output):
        raise ExportError(f"--resume: {path} belongs to the export of {state.get('output')} "
                          f"as {state.get('format')}, not of {os.path.abspath(output)} as {fmt}")
    return state


class TextSink:
    """JSONL or CSV: appended to FILE; its length is the position."""

    def __init__(self, output: str, make_writer: Callable, state: dict[str, Any] | None):
        fresh = state is None
        try:
            self.file = open(output, "w" if fresh else "r+", encoding="utf-8", newline="")
        except FileNotFoundError:
            raise ExportError(f"--resume: {output} is gone: remove the state file to start "
                              "over") from None
        if not fresh:
            if os.fstat(self.file.fileno()).st_size < state["position"]:
                self.file.close()
                raise ExportError(f"--resume: {output} is shorter than the state says")
            self.file.truncate(state["position"])  # a batch after the state: written again
            self.file.seek(0, os.SEEK_END)
        self.writer = make_writer(self.file)
        if fresh:
            self.writer.header()

    def batches(self, pager: Any, batch_rows: int) -> Iterator[int]:
        """Write the records, yielding after each batch once it is on disk."""
        rows = 0
        for page in pager.pages():
            for rec in page.items:
                self.writer.row(rec)
            rows += len(page.items)
            if rows >= batch_rows:
                yield self.sync()
                rows = 0
        yield self.sync()

    def sync(self) -> int:
        self.file.flush()
        os.fsync(self.file.fileno())
        return os.fstat(self.file.fileno()).st_size

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.file.close()


class ParquetSink:
    """Parquet: one part file per batch in FILE.parts/, joined at the end."""

    def __init__(self, output: str, state: dict[str, Any] | None):
        self.pa = _frames._need("pyarrow", "arrow", "--format parquet")
        self.pq = _frames._need("pyarrow.parquet", "arrow", "--format parquet")
        self.output, self.dir = output, output + ".parts"
        self.parts = 0 if state is None else state["position"]
        self.schema = None
        if state is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)
        for name in os.listdir(self.dir):       # parts after the state: written again
            if not name.endswith(".parquet") or int(name.split(".")[0]) >= self.parts:
                os.unlink(os.path.join(self.dir, name))
        if any(not os.path.exists(self._part(i)) for i in range(self.parts)):
            raise ExportError(f"--resume: parts of {output} are missing from {self.dir}")

    def _part(self, i: int) -> str:
        return os.path.join(self.dir, f"{i:08d}.parquet")

    def batches(self, pager: Any, batch_rows: int) -> Iterator[int]:
        errors: list = []
        stream = _frames._Stream(pager._arrow_stream(errors, batch_rows))
        try:
            reader = self.pa.RecordBatchReader.from_stream(stream)
            self.schema = reader.schema
            for batch in reader:
                if batch.num_rows:
                    tmp = self._part(self.parts) + ".tmp"
                    self.pq.write_table(self.pa.Table.from_batches([batch]), tmp)
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
                    os.replace(tmp, self._part(self.parts))
                    _fsync_dir(self._part(self.parts))
                    self.parts += 1
                    yield self.parts
        except Exception:
            if errors:
                raise errors[-1] from None
            raise
        yield self.parts

    def finish(self) -> None:
        """Join the parts into FILE, one part in memory at a time."""
        tmp = self.output + ".tmp"
        writer = None
        for i in range(self.parts):
            table = self.pq.read_table(self._part(i))
            if writer is None:
                writer = self.pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:
            self.pq.write_table(self.schema.empty_table(), tmp)
        else:
            writer.close()
        os.replace(tmp, self.output)
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self) -> None:
        pass


def export(open_listing: Callable[..., tuple[Any, Any]], fmt: str, output: str,
           make_writer: Callable | None, state_path: str | None, max_items: int | None,
           batch_rows: int, progress: bool) -> tuple[int, bool]:
    """Run the export; (records in FILE, whether the listing is complete).
    open_listing(**kwargs) -> (client, pager) sends no request."""
    state = load_state(state_path, fmt, output) if state_path else None
    if state is not None and state["complete"]:
        return state["count"], state["checkpoint"]["done"]
    before = 0 if state is None else state["count"]
    left = None if max_items is None else max(max_items - before, 0)
    client, pager = open_listing(max_items=left, progress=progress,
                                 start=None if state is None else state["checkpoint"])
    sink: Any = (ParquetSink(output, state) if fmt == "parquet"
                 else TextSink(output, make_writer, state))
    record = {"custlist_export": STATE_VERSION, "format": fmt,
              "output": os.path.abspath(output)}

    def save(position: int, complete: bool) -> dict[str, Any]:
        cp = pager.checkpoint()
        if state_path:
            write_atomically(state_path, json.dumps(
                {**record, "position": position, "count": cp["count"], "checkpoint": cp,
                 "complete": complete}, indent=1).encode())
        return cp

    try:
        with client:
            for position in sink.batches(pager, batch_rows):
                save(position, False)
            sink.finish()
    finally:
        sink.close()
    cp = save(position, True)
    return cp["count"], cp["done"]
