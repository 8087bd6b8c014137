"""``custlist VENDOR COMMAND -o FILE``: a listing into a JSONL, CSV or
Parquet file, batch by batch in bounded memory, resumable exactly.

With ``--resume STATE.json`` the pager's checkpoint is written to the state
file after each batch, together with how much of the output belongs to the
records it covers: the byte length of a JSONL / CSV file, or the number of
Parquet parts.  A run that is killed at any moment leaves at most a batch
beyond the state, which the next run cuts off before it continues from the
checkpoint: every record ends up in the file exactly once.

Parquet cannot be appended to, so its batches go to numbered part files
beside the output (``FILE.parts/``), each written whole and renamed into
place.  The last step joins FILE (when it already holds records of the
export, from a run stopped by --max-items) and the parts into ``FILE.tmp``;
then the state says "joined", and only then is ``FILE.tmp`` renamed to FILE
and the parts removed.  A run that finds a "joined" state finishes those two
steps (both can be repeated), so a kill between any two steps is covered.

A run holds an exclusive lock (flock) on ``STATE.lock`` from start to end:
a second run of the same export at the same time stops at once.

Re-running a finished export does nothing and says so; ``restart=True``
(``--restart``) starts it over from the first record."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
from typing import Any, Callable, Iterator, NamedTuple

from . import _frames

STATE_VERSION = 2
RESTART = "run the same command with --restart to export again from the first record"


class ExportError(Exception):
    """A state file or output that does not fit this run: a usage error."""


class ExportBusy(Exception):
    """Another run of the same export holds its lock."""


class ExportIOError(Exception):
    """Reading or writing a file of the export failed (a full disk, no
    permission...): the user's environment, not a bug."""

    def __init__(self, path: str, error: OSError):
        self.path, self.error = path, error
        why = os.strerror(error.errno) if error.errno else str(error)
        super().__init__(f"cannot write {path}: {why}")


@contextlib.contextmanager
def _io(path: str) -> Iterator[None]:
    """OSError from the block becomes an ExportIOError naming `path`."""
    try:
        yield
    except OSError as e:
        raise ExportIOError(path, e) from None


# ---------------------------------------------------------------------------
# Steps where a crash must be covered.  The tests of custlist kill the
# process for real (SIGKILL, which nothing can catch or clean up after) at a
# step named in the environment variable CUSTLIST_EXPORT_KILL_AT, "STEP" or
# "STEP@N" for its N-th time; without that variable _step does nothing.

_reached: dict[str, int] = {}


def _step(name: str, before: Callable[[], None] | None = None) -> None:
    """`name` is done.  `before` runs just before a kill at this step (to
    hand buffered bytes to the kernel, as a crash after a write would)."""
    at = os.environ.get("CUSTLIST_EXPORT_KILL_AT")
    if not at:
        return
    _reached[name] = _reached.get(name, 0) + 1
    step, _, nth = at.partition("@")
    if step == name and _reached[name] == (int(nth) if nth else 1):
        if before is not None:
            before()
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------
# Files


def _fsync_dir(path: str) -> None:
    """Make a rename of `path` durable: fsync the directory that holds it."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, step: str = "state") -> None:
    tmp = path + ".tmp"
    with _io(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    _step(f"{step}-tmp-written")
    with _io(path):
        os.replace(tmp, path)
        _step(f"{step}-renamed")
        _fsync_dir(path)


def _remove(path: str) -> None:
    with _io(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def check_paths(output: str, state_path: str) -> None:
    """Refuse a state file whose writes would land on the output (or the
    other way round), before anything is read or sent."""
    out, state = os.path.realpath(output), os.path.realpath(state_path)
    parts = out + ".parts"
    clash = {out, out + ".tmp", parts}
    for mine in (state, state + ".tmp", state + ".lock"):
        if mine in clash or mine.startswith(parts + os.sep):
            break
    else:
        try:
            if not os.path.samefile(output, state_path):     # hard links
                return
        except OSError:
            return
    raise ExportError(f"--resume {state_path} and -o {output} would write over each other: "
                      "give the state file a name of its own, like "
                      f"{os.path.basename(output)}.state.json")


def lock(state_path: str) -> int:
    """An exclusive lock on STATE.lock for this run (released when the
    process ends, however it ends); ExportBusy when another run holds it."""
    path = state_path + ".lock"
    with _io(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        try:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ExportIOError(path, e) from None
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise ExportBusy(f"--resume: another run of this export is under way ({who} holds "
                         f"{path}); this one stops without touching the output") from None
    try:                                # who holds it, for the message above
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass                            # only informative
    return fd


# ---------------------------------------------------------------------------
# The state file


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_state(path: str, fmt: str, output: str, restart: bool = False) -> dict[str, Any] | None:
    """The state of an earlier run, or None to start afresh (no state file,
    or restart: then the state file is removed, so that a run killed from
    here on starts afresh too)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ExportError(f"--resume: cannot read {path}: {os.strerror(e.errno) if e.errno else e}"
                          ) from None
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict) or "custlist_export" not in state:
        raise ExportError(f"--resume: {path} is not a custlist export state file (if it is one "
                          "that was damaged, remove it to start over)")
    if state["custlist_export"] != STATE_VERSION:
        raise ExportError(f"--resume: {path} was written by another version of custlist: finish "
                          f"that export with it, or {RESTART}")
    if state.get("format") != fmt or state.get("output") != os.path.abspath(output):
        raise ExportError(f"--resume: {path} belongs to the export of {state.get('output')} "
                          f"as {state.get('format')}, not of {os.path.abspath(output)} as {fmt}")
    if restart:
        _remove(path)
        with _io(path):
            _fsync_dir(path)
        _step("state-removed")
        return None
    problem = _state_problem(state, fmt)
    if problem:
        raise ExportError(f"--resume: {path} is damaged ({problem}): {RESTART}")
    return state


def _state_problem(state: dict[str, Any], fmt: str) -> str | None:
    """What is wrong with a state file of this format, or None."""
    keys = {"custlist_export", "format", "output", "position", "count", "checkpoint", "complete"}
    if fmt == "parquet":
        keys |= {"joined", "in_file"}
    if set(state) != keys:
        return f"its keys {sorted(set(state) ^ keys)} differ"
    for key in ("position", "count") + (("in_file",) if fmt == "parquet" else ()):
        if not _whole(state[key]):
            return f"{key} must be a whole number >= 0, not {json.dumps(state[key])}"
    for key in ("complete",) + (("joined",) if fmt == "parquet" else ()):
        if not isinstance(state[key], bool):
            return f"{key} must be true or false, not {json.dumps(state[key])}"
    cp = state["checkpoint"]
    if not isinstance(cp, dict):
        return f"checkpoint must be the listing's checkpoint, not {json.dumps(cp)}"
    if cp.get("count") != state["count"] or not isinstance(cp.get("done"), bool):
        return "its checkpoint does not agree with its count"
    if state["complete"] and not cp["done"]:
        return "complete, but its checkpoint is not at the end of the listing"
    if fmt == "parquet":
        if state["joined"] and (state["position"] != 0 or state["in_file"] != state["count"]):
            return "joined, but with parts or with a count other than the file's"
        if state["complete"] and not state["joined"]:
            return "complete, but not joined"
        if state["in_file"] > state["count"]:
            return "more records in the file than in the count"
    return None


class Outcome(NamedTuple):
    count: int          # records in FILE
    done: bool          # the whole listing is in FILE
    written: int        # records this run wrote (0: nothing was done)
    nothing: str | None  # why nothing was done, or None


# ---------------------------------------------------------------------------
# Sinks


class TextSink:
    """JSONL or CSV: appended to FILE; its length is the position."""

    finished = True     # nothing left to do after the last batch

    def __init__(self, output: str, make_writer: Callable, state: dict[str, Any] | None):
        self.output, self.make_writer = output, make_writer
        fresh = state is None
        try:
            with _io(output):
                self.file = open(output, "w" if fresh else "r+", encoding="utf-8", newline="")
        except ExportIOError as e:
            if isinstance(e.error, FileNotFoundError) and not fresh:
                raise _gone(output, state) from None
            raise
        with _io(output):
            if not fresh:
                size = os.fstat(self.file.fileno()).st_size
                if size < state["position"]:
                    self.file.close()
                    raise ExportError(f"--resume: {output} is shorter than the state says "
                                      f"({size} bytes, not {state['position']}): it was changed "
                                      f"by something else; {RESTART}")
                if size > state["position"]:     # a batch after the state: written again
                    self.file.truncate(state["position"])
                self.file.seek(0, os.SEEK_END)
            self.writer = make_writer(self.file)
            if fresh:
                self.writer.header()

    def batches(self, pager: Any, batch_rows: int) -> Iterator[int]:
        """Write the records, yielding after each batch once it is on disk."""
        rows = 0
        for page in pager.pages():
            with _io(self.output):
                for rec in page.items:
                    self.writer.row(rec)
            _step("mid-batch", self.file.flush)
            rows += len(page.items)
            if rows >= batch_rows:
                yield self.sync()
                rows = 0
        yield self.sync()

    def sync(self) -> int:
        with _io(self.output):
            self.file.flush()
            os.fsync(self.file.fileno())
            size = os.fstat(self.file.fileno()).st_size
        _step("batch-written")
        return size

    def finish(self, save: Callable[..., dict[str, Any]], position: int) -> dict[str, Any]:
        return save(position, final=True)

    def close(self, failed: bool) -> None:
        try:
            self.file.close()
        except OSError:
            if not failed:      # already failing: that error is the one to tell
                raise


def _gone(output: str, state: dict[str, Any]) -> ExportError:
    return ExportError(f"--resume: {output} is gone, but the state says it holds "
                       f"{state['count']} records; {RESTART}")


_PART = re.compile(r"[0-9]{8}\.parquet")
_OWN = re.compile(r"[0-9]{8}\.parquet(\.tmp)?")      # a part, or one being written


def _own_entries(directory: str) -> list[str]:
    """The entries of FILE.parts/, every one a part custlist wrote (or was
    writing): anything else there is not custlist's to remove, so the export
    stops before touching the directory, naming what it found."""
    with _io(directory):
        names = sorted(os.listdir(directory))
    foreign = [n for n in names if not _OWN.fullmatch(n)
               or not os.path.isfile(os.path.join(directory, n))]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ExportError(f"{directory} holds {shown}, which custlist did not write there: "
                          f"move it out of the way, then run the same command again")
    return names


class ParquetSink:
    """Parquet: one part file per batch in FILE.parts/, joined at the end."""

    def __init__(self, output: str, state: dict[str, Any] | None):
        self.pa = _frames._need("pyarrow", "arrow", "--format parquet")
        self.pq = _frames._need("pyarrow.parquet", "arrow", "--format parquet")
        self.output, self.dir, self.tmp = output, output + ".parts", output + ".tmp"
        self.schema = None
        if state is None:
            self.parts, self.in_file, self.finished = 0, 0, False
            self._clear_parts()
            _remove(self.tmp)
        elif state["joined"]:
            self.parts, self.in_file, self.finished = 0, state["in_file"], True
            if os.path.exists(self.tmp):        # joined, not yet renamed: rename it now
                with _io(output):
                    os.replace(self.tmp, output)
                    _fsync_dir(output)
            self._clear_parts()                 # joined into FILE: the parts are not needed
            self._check_file(state)
        else:
            self.parts, self.in_file, self.finished = state["position"], state["in_file"], False
            _remove(self.tmp)                   # a join the state does not record
            if self.in_file:
                self._check_file(state)
            with _io(self.dir):
                os.makedirs(self.dir, exist_ok=True)
            names = _own_entries(self.dir)
            with _io(self.dir):
                for name in names:                  # parts after the state: written again
                    if not _PART.fullmatch(name) or int(name[:8]) >= self.parts:
                        os.unlink(os.path.join(self.dir, name))
            missing = [i for i in range(self.parts) if not os.path.exists(self._part(i))]
            if missing:
                raise ExportError(f"--resume: parts of {output} are missing from {self.dir} "
                                  f"({len(missing)} of {self.parts}); {RESTART}")

    def _clear_parts(self) -> None:
        if os.path.lexists(self.dir):
            names = _own_entries(self.dir)
            with _io(self.dir):
                for name in names:
                    os.unlink(os.path.join(self.dir, name))
                os.rmdir(self.dir)

    def _check_file(self, state: dict[str, Any]) -> None:
        if not os.path.exists(self.output):
            raise _gone(self.output, state)
        try:
            rows = self.pq.read_metadata(self.output).num_rows
        except (OSError, ValueError, self.pa.ArrowException) as e:
            raise ExportError(f"--resume: {self.output} is not the Parquet file this export "
                              f"wrote ({_one_line(e)}); {RESTART}") from None
        if rows != self.in_file:
            raise ExportError(f"--resume: {self.output} holds {rows} records, not the "
                              f"{self.in_file} the state says; {RESTART}")

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
                    if self.parts == 0:
                        with _io(self.dir):
                            os.makedirs(self.dir, exist_ok=True)
                    part = self._part(self.parts)
                    tmp = part + ".tmp"
                    with _io(tmp):
                        self.pq.write_table(self.pa.Table.from_batches([batch]), tmp)
                        with open(tmp, "rb+") as f:
                            os.fsync(f.fileno())
                    _step("part-tmp-written")
                    with _io(part):
                        os.replace(tmp, part)
                        _fsync_dir(part)
                    _step("part-renamed")
                    self.parts += 1
                    self.finished = False
                    yield self.parts
        except (ExportIOError, ExportError):
            raise
        except Exception:
            if errors:
                raise errors[-1] from None
            raise
        yield self.parts

    def finish(self, save: Callable[..., dict[str, Any]], position: int) -> dict[str, Any]:
        """Join FILE (when it holds records) and the parts into FILE.tmp,
        one part in memory at a time; say so in the state; then rename and
        remove the parts (steps that a later run repeats if need be)."""
        if self.finished:
            return save(0, final=True)          # nothing new since the last join
        if self.parts or not self.in_file:
            try:
                with _io(self.tmp):
                    self._join()
            except ExportIOError:
                with contextlib.suppress(OSError):   # give the space back (a full disk)
                    os.unlink(self.tmp)
                raise
            _step("joined-file-written")
        cp = save(0, final=True)                # joined: FILE.tmp (or FILE) is the output
        if os.path.exists(self.tmp):
            with _io(self.output):
                os.replace(self.tmp, self.output)
                _step("file-renamed")
                _fsync_dir(self.output)
        if os.path.lexists(self.dir):
            names = _own_entries(self.dir)
            with _io(self.dir):
                for name in names:
                    os.unlink(os.path.join(self.dir, name))
                    _step("part-removed")
                os.rmdir(self.dir)
            _step("parts-removed")
        self.finished = True
        return cp

    def _tables(self) -> Iterator[Any]:
        """FILE's records of the export (batch by batch), then each part:
        one at a time in memory."""
        if self.in_file:
            with open(self.output, "rb") as f:
                for batch in self.pq.ParquetFile(f).iter_batches():
                    yield self.pa.Table.from_batches([batch])
        for i in range(self.parts):
            yield self.pq.read_table(self._part(i))

    def _join(self) -> None:
        writer = None
        try:
            for table in self._tables():
                if writer is None:
                    writer = self.pq.ParquetWriter(self.tmp, table.schema)
                writer.write_table(table)
            if writer is None:
                self.pq.write_table(self.schema.empty_table(), self.tmp)
        finally:
            if writer is not None:
                writer.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())

    def close(self, failed: bool) -> None:
        pass


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------


def export(open_listing: Callable[..., tuple[Any, Any]], fmt: str, output: str,
           make_writer: Callable | None, state_path: str | None, max_items: int | None,
           batch_rows: int, progress: bool, restart: bool = False) -> Outcome:
    """Run the export.  open_listing(**kwargs) -> (client, pager) sends no
    request."""
    if state_path:
        check_paths(output, state_path)
        held = lock(state_path)
    try:
        return _export(open_listing, fmt, output, make_writer, state_path, max_items,
                       batch_rows, progress, restart)
    finally:
        if state_path:
            os.close(held)                      # releases the lock


def _export(open_listing: Callable[..., tuple[Any, Any]], fmt: str, output: str,
            make_writer: Callable | None, state_path: str | None, max_items: int | None,
            batch_rows: int, progress: bool, restart: bool) -> Outcome:
    state = load_state(state_path, fmt, output, restart) if state_path else None
    sink: Any = (ParquetSink(output, state) if fmt == "parquet"
                 else TextSink(output, make_writer, state))
    failed = True
    try:
        before = 0 if state is None else state["count"]
        left = None if max_items is None else max(max_items - before, 0)
        if state is not None and sink.finished:
            if state["complete"]:
                failed = False
                return Outcome(before, True, 0, "complete")
            if left == 0:
                failed = False
                return Outcome(before, False, 0, "max_items")
        client, pager = open_listing(max_items=left, progress=progress,
                                     start=None if state is None else state["checkpoint"])
        record = {"custlist_export": STATE_VERSION, "format": fmt,
                  "output": os.path.abspath(output)}

        def save(position: int, final: bool = False) -> dict[str, Any]:
            cp = pager.checkpoint()
            if state_path:
                fields = {**record, "position": position, "count": cp["count"],
                          "checkpoint": cp, "complete": final and cp["done"]}
                if fmt == "parquet":
                    fields["joined"] = final
                    fields["in_file"] = cp["count"] if final else sink.in_file
                write_atomically(state_path, json.dumps(fields, indent=1).encode(),
                                 "final-state" if final else "state")
            return cp

        position = 0 if state is None else state["position"]
        with client:
            for position in sink.batches(pager, batch_rows):
                save(position)
            cp = sink.finish(save, position)
        failed = False
    finally:
        sink.close(failed)
    return Outcome(cp["count"], cp["done"], cp["count"] - before, None)
