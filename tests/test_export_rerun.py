"""custlist ... -o FILE --resume STATE as a scheduled job runs it: killed at
every step of the export (SIGKILL, for real), run again after it finished,
after FILE was removed, with a raised --max-items, with a saved position the
server no longer accepts, twice at once, with a damaged state file, beside a
file-size limit.  Each time the real command in a subprocess, the real file
system and the real lock; every record must end up in FILE exactly once."""
import csv
import fcntl
import json
import os
import pty
import resource
import signal
import struct
import subprocess
import sys
import termios
import time

import pyarrow.parquet as pq
import pytest

from custlist.testing import Sandbox

from .listings import LISTINGS, full, requests_of

TIMEOUT = 120
NATURAL = next(x for x in LISTINGS if x.name == "natural.customers")   # 145 records
FORMATS = ["jsonl", "csv", "parquet"]


@pytest.fixture
def env(sb):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    e.update(CUSTLIST_NATURAL_TOKEN=sb.natural_token, CUSTLIST_NATURAL_BASE_URL=sb.natural_url)
    return e


def command(fmt, out, state, *extra):
    return [sys.executable, "-m", "custlist", "natural", "customers", "--format", fmt,
            "-o", str(out), "--resume", str(state), "--page-size", "10", "--batch-rows", "30",
            *extra]


def run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, **kw)


def ids_in(path, fmt):
    """The ids in FILE, read strictly: every JSONL line whole, every CSV row."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["id"] for line in f]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        assert all(len(r) == len(rows[0]) for r in rows)
        return [dict(zip(rows[0], r))["id"] for r in rows[1:]]
    return pq.read_table(path).column("id").to_pylist()


def expected(sb, n=None):
    return [r.id for r in full(sb, NATURAL)][:n]


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir()
                  if p.name.endswith((".tmp", ".parts")))


def one_line(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    return lines[0]


# --- a kill at every step --------------------------------------------------

TEXT_STEPS = ["mid-batch@4", "batch-written@2", "state-tmp-written@2", "state-renamed@2",
              "batch-written@4", "final-state-tmp-written", "final-state-renamed"]
PARQUET_STEPS = ["part-tmp-written@2", "part-renamed@2", "state-tmp-written@2",
                 "state-renamed@2", "joined-file-written", "final-state-tmp-written",
                 "final-state-renamed", "file-renamed", "part-removed@2", "parts-removed"]
CASES = ([(fmt, step) for fmt in ("jsonl", "csv") for step in TEXT_STEPS]
         + [("parquet", step) for step in PARQUET_STEPS])


def _left_what_the_step_leaves(out, state, fmt, step):
    """The kill came where it was meant to: what is on disk shows it."""
    saved = json.loads(state.read_text())
    parts = sorted(os.listdir(f"{out}.parts")) if os.path.isdir(f"{out}.parts") else []
    text_batch = ("mid-batch", "batch-written", "state-tmp-written")
    if fmt != "parquet" and step in text_batch:
        assert os.path.getsize(out) > saved["position"]        # a batch beyond the state
    elif step == "part-tmp-written":
        assert parts[-1].endswith(".parquet.tmp")
    elif step in ("part-renamed", "state-tmp-written"):
        assert len(parts) == saved["position"] + 1              # a part beyond the state
    elif step == "joined-file-written":
        assert os.path.exists(f"{out}.tmp") and not saved["joined"]
    elif step == "final-state-tmp-written":
        assert os.path.exists(f"{state}.tmp") and not saved["complete"]
    elif step in ("final-state-renamed", "file-renamed", "part-removed"):
        assert saved["complete"] and (fmt != "parquet" or parts)
    elif step == "parts-removed":
        assert saved["complete"] and not parts and not os.path.exists(f"{out}.tmp")
    if step == "final-state-renamed" and fmt == "parquet":
        assert os.path.exists(f"{out}.tmp")                      # not yet renamed to FILE


@pytest.mark.parametrize("after_cap", [False, True], ids=["fresh", "after-max-items"])
@pytest.mark.parametrize("fmt,step", CASES)
def test_killed_at_every_step_the_same_command_finishes_exactly(sb, env, tmp_path, fmt, step,
                                                                  after_cap):
    """SIGKILL at each step of the export (named in CUSTLIST_EXPORT_KILL_AT,
    which only tests set): the same command then ends with every record in
    FILE once, nothing left beside it; run again, it does nothing."""
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    cmd = command(fmt, out, state)
    if after_cap:               # FILE already holds 40 records of the export
        assert run(cmd + ["--max-items", "40"], env).returncode == 0
        assert ids_in(out, fmt) == expected(sb, 40)
    killed = run(cmd, {**env, "CUSTLIST_EXPORT_KILL_AT": step})
    assert killed.returncode == -signal.SIGKILL, f"the step {step} was not reached"
    _left_what_the_step_leaves(out, state, fmt, step.partition("@")[0])
    again = run(cmd, env)
    assert again.returncode == 0, again.stderr
    assert ids_in(out, fmt) == expected(sb)
    saved = json.loads(state.read_text())
    assert saved["complete"] is True and saved["count"] == 145
    assert leftovers(tmp_path) == []
    sb.requests.clear()
    third = run(cmd, env)
    one_line(third, 0, "nothing to do", "whole listing (145 records)")
    assert requests_of(sb, NATURAL) == [] and ids_in(out, fmt) == expected(sb)


# --- re-runs of a finished export --------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_a_finished_export_run_again_says_it_did_nothing_and_restart_exports_again(
        sb, env, tmp_path, fmt):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    assert run(command(fmt, out, state), env).returncode == 0
    before = out.read_bytes()
    os.utime(out, (1, 1))
    sb.requests.clear()
    r = run(command(fmt, out, state), env)
    line = one_line(r, 0, "nothing to do", f"{out} already holds the whole listing "
                    "(145 records)", "--restart")
    assert "records in" not in line
    assert requests_of(sb, NATURAL) == []
    assert out.read_bytes() == before and os.stat(out).st_mtime == 1
    fresh = run(command(fmt, out, state, "--restart"), env)
    one_line(fresh, 0, f"custlist: 145 records in {out}")
    assert len(requests_of(sb, NATURAL)) == 15
    assert ids_in(out, fmt) == expected(sb) and os.stat(out).st_mtime != 1
    assert json.loads(state.read_text())["complete"] is True


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("step", ["state-removed", "batch-written@2", "final-state-renamed"])
def test_a_restart_killed_on_its_way_is_finished_by_the_plain_command(sb, env, tmp_path, fmt,
                                                                       step):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    assert run(command(fmt, out, state, "--max-items", "70"), env).returncode == 0
    if fmt == "parquet" and step == "batch-written@2":
        step = "part-renamed@2"
    killed = run(command(fmt, out, state, "--restart"),
                 {**env, "CUSTLIST_EXPORT_KILL_AT": step})
    assert killed.returncode == -signal.SIGKILL
    r = run(command(fmt, out, state), env)
    assert r.returncode == 0, r.stderr
    assert ids_in(out, fmt) == expected(sb) and leftovers(tmp_path) == []


def test_restart_needs_an_export_with_a_state_file(sb, env, tmp_path):
    base = [sys.executable, "-m", "custlist", "natural", "customers", "--restart"]
    one_line(run(base, env), 2, "--restart goes with -o FILE --resume STATE_FILE")
    one_line(run(base + ["-o", str(tmp_path / "a.jsonl")], env), 2, "--restart goes with")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_finished_export_whose_file_was_removed_is_refused(sb, env, tmp_path, fmt):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    assert run(command(fmt, out, state), env).returncode == 0
    out.unlink()
    sb.requests.clear()
    r = run(command(fmt, out, state), env)
    one_line(r, 2, f"{out} is gone", "145 records", "--restart")
    assert not out.exists() and requests_of(sb, NATURAL) == []
    r = run(command(fmt, out, state, "--restart"), env)
    assert r.returncode == 0 and ids_in(out, fmt) == expected(sb)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_raised_max_items_continues_from_the_checkpoint(sb, env, tmp_path, fmt):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    first = run(command(fmt, out, state, "--max-items", "50"), env)
    one_line(first, 0, "50 records in", "(stopped at --max-items; more remain)")
    assert json.loads(state.read_text())["complete"] is False
    sb.requests.clear()
    same = run(command(fmt, out, state, "--max-items", "50"), env)
    line = one_line(same, 0, "nothing to do", "already holds 50 records", "--max-items 50")
    assert "records in" not in line and requests_of(sb, NATURAL) == []
    raised = run(command(fmt, out, state, "--max-items", "120"), env)
    one_line(raised, 0, "120 records in", "70 of them by this run", "more remain")
    assert ids_in(out, fmt) == expected(sb, 120)
    assert len(requests_of(sb, NATURAL)) == 7           # pages 6 to 12 only
    rest = run(command(fmt, out, state), env)
    one_line(rest, 0, "145 records in", "25 of them by this run")
    assert ids_in(out, fmt) == expected(sb)
    assert json.loads(state.read_text())["complete"] is True


# --- a saved position the server no longer accepts ---------------------------

def test_an_expired_position_says_how_to_start_over_and_restart_does(tmp_path):
    with Sandbox(pyng_customers=60, seed=3, link_ttl=1) as sb:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
        env.update(CUSTLIST_PYNG_TOKEN=sb.pyng_token, CUSTLIST_PYNG_BASE_URL=sb.pyng_url)
        out, state = tmp_path / "out.jsonl", tmp_path / "state.json"
        cmd = [sys.executable, "-m", "custlist", "pyng", "customers", "--site-id", "site_1",
               "-o", str(out), "--resume", str(state), "--page-size", "10"]
        assert run(cmd + ["--max-items", "20"], env).returncode == 0
        time.sleep(2.5)                         # the saved next link is past its lifetime
        for _ in range(2):
            r = run(cmd, env)
            line = one_line(r, 1, "InvalidPaginationLinkError", "no longer accepts",
                            f"{state}", "with --restart to export again from the first record")
            assert "run the same command again to continue" not in line
        assert sum(1 for _ in open(out)) == 20
        r = run(cmd + ["--restart"], env)
        assert r.returncode == 0, r.stderr
        with open(out) as f:
            refs = [json.loads(line)["customer_reference"] for line in f]
        assert refs == [c["customerReference"] for c in sb.data.pyng["site_1"]]


# --- the progress bar in a log ------------------------------------------------

def test_no_bar_in_a_log_file_unless_asked(sb, env, tmp_path):
    sb.inject(NATURAL.route, delay=0.1, times=None)
    out, state = tmp_path / "out.jsonl", tmp_path / "state.json"
    with open(tmp_path / "log", "w+") as log:
        r = subprocess.run(command("jsonl", out, state), env=env, stdout=subprocess.DEVNULL,
                           stderr=log, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        log.seek(0)
        text = log.read()
    assert r.returncode == 0
    assert text == f"custlist: 145 records in {out}\n"
    asked = run(command("jsonl", tmp_path / "b.jsonl", tmp_path / "b.json", "--progress"), env)
    assert asked.returncode == 0 and "natural.customers: 145 records" in asked.stderr


def test_the_bar_is_drawn_on_a_terminal_without_asking(sb, env, tmp_path):
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    try:
        proc = subprocess.Popen(command("jsonl", tmp_path / "out.jsonl", tmp_path / "s.json"),
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=child)
    finally:
        os.close(child)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:                     # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        proc.kill()
        os.close(main)
    assert b"natural.customers: 145 records" in seen and b"records/s" in seen


# --- two runs at once ---------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_a_second_run_at_the_same_time_stops_at_once(sb, env, tmp_path, fmt):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    sb.inject(NATURAL.route, delay=0.4, times=None)     # 6 s: time for the second run
    first = subprocess.Popen(command(fmt, out, state), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state.exists() and first.poll() is None
        with open(str(state) + ".lock") as f:            # a real flock, held by the first
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = run(command(fmt, out, state), env)
        one_line(second, 1, "another run of this export is under way", f"process {first.pid}")
        _, err = first.communicate(timeout=TIMEOUT)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, err
    assert ids_in(out, fmt) == expected(sb)


# --- state and output on one path ---------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("state_name", ["{out}", "{out}.tmp", "{out}.parts/s.json",
                                        "{out}.parts", "./sub/../{out}"])
def test_a_state_file_on_the_output_is_refused_before_any_request(sb, env, tmp_path, fmt,
                                                                     state_name):
    out = tmp_path / f"out.{fmt}"
    out.write_bytes(b"kept")
    (tmp_path / "sub").mkdir()
    state = state_name.format(out=out.name)
    sb.requests.clear()
    r = run(command(fmt, out.name, state), env, cwd=tmp_path)
    one_line(r, 2, "would write over each other")
    assert requests_of(sb, NATURAL) == [] and out.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, "sub"]


def test_an_output_on_the_state_files_temporary_is_refused(sb, env, tmp_path):
    sb.requests.clear()
    r = run(command("jsonl", "s.json.tmp", "s.json"), env, cwd=tmp_path)
    one_line(r, 2, "would write over each other")
    r = run(command("jsonl", "s.json.lock", "s.json"), env, cwd=tmp_path)
    one_line(r, 2, "would write over each other")
    assert requests_of(sb, NATURAL) == [] and list(tmp_path.iterdir()) == []


# --- a damaged state file -------------------------------------------------------

DAMAGE = [("position", "abc"), ("position", 1.5), ("position", -5), ("position", True),
          ("count", "7"), ("checkpoint", None), ("checkpoint", []), ("complete", "yes"),
          ("format", None), ("joined", 1), ("in_file", -1), ("extra", 1)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key,value", DAMAGE, ids=[f"{k}={v!r}" for k, v in DAMAGE])
def test_a_damaged_state_is_refused_with_the_way_to_start_over(sb, env, tmp_path, fmt, key,
                                                                  value):
    if key in ("joined", "in_file") and fmt != "parquet":
        key = "extra"
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    assert run(command(fmt, out, state, "--max-items", "60"), env).returncode == 0
    saved = json.loads(state.read_text())
    saved[key] = value
    state.write_text(json.dumps(saved))
    before = out.read_bytes()
    sb.requests.clear()
    r = run(command(fmt, out, state), env)
    word = "belongs to the export of" if key == "format" else "is damaged"
    one_line(r, 2, word, str(state))
    if key != "format":
        assert "--restart" in r.stderr
    assert requests_of(sb, NATURAL) == [] and out.read_bytes() == before
    if key != "format":
        r = run(command(fmt, out, state, "--restart"), env)
        assert r.returncode == 0, r.stderr
        assert ids_in(out, fmt) == expected(sb)


def test_a_state_with_a_checkpoint_count_of_its_own_is_refused(sb, env, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state.json"
    assert run(command("jsonl", out, state, "--max-items", "60"), env).returncode == 0
    saved = json.loads(state.read_text())
    saved["checkpoint"]["count"] = 0
    state.write_text(json.dumps(saved))
    one_line(run(command("jsonl", out, state), env), 2, "is damaged", "--restart")
    assert ids_in(out, "jsonl") == expected(sb, 60)


def test_a_file_that_is_not_a_state_file_is_never_overwritten(sb, env, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "notes.json"
    state.write_text('{"mine": 1}')
    for extra in ([], ["--restart"]):
        one_line(run(command("jsonl", out, state, *extra), env), 2,
                 "not a custlist export state file")
        assert state.read_text() == '{"mine": 1}' and not out.exists()


# --- a full disk --------------------------------------------------------------

def _limit(size):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


@pytest.mark.parametrize("fmt,size", [("jsonl", 30000), ("csv", 20000), ("parquet", 30000)])
def test_a_file_size_limit_is_an_error_line_and_the_rerun_is_exact(sb, env, tmp_path, fmt,
                                                                      size):
    """RLIMIT_FSIZE in the child: write() fails with EFBIG (after SIGXFSZ,
    which must not kill the process) part way through the output."""
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    r = run(command(fmt, out, state), {**env, "PYTHONDONTWRITEBYTECODE": "1"},
            preexec_fn=_limit(size))
    one_line(r, 1, f"cannot write {out}", "File too large",
             "run the same command again to continue")
    assert json.loads(state.read_text())["complete"] is False
    assert not os.path.exists(f"{out}.tmp")     # a partial join does not keep the space
    r = run(command(fmt, out, state), env)
    assert r.returncode == 0, r.stderr
    assert ids_in(out, fmt) == expected(sb)
    assert leftovers(tmp_path) == []


def test_an_unusable_directory_is_an_error_line(sb, env, tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "out.jsonl"
    r = run(command("jsonl", out, tmp_path / "state.json"), env)
    one_line(r, 1, f"cannot write {out}", "Not a directory")
    r = run(command("jsonl", tmp_path / "out.jsonl", tmp_path / "file" / "s.json"), env)
    one_line(r, 1, "cannot write", "s.json.lock", "Not a directory")


@pytest.mark.parametrize("stray", ["notes.txt", "0000001.parquet", "subdir"])
def test_a_stray_entry_in_the_parts_directory_is_named_and_kept(sb, env, tmp_path, stray):
    """FILE.parts/ is custlist's own; something else found there (a note, a
    misnamed part, a directory) is not custlist's to delete: the run stops
    naming it, before touching the directory, and continues exactly once it
    is moved away."""
    out, state = tmp_path / "out.parquet", tmp_path / "state.json"
    # killed after its third part: two are in the state, the third is not
    killed = run(command("parquet", out, state), {**env, "CUSTLIST_EXPORT_KILL_AT": "part-renamed@3"})
    assert killed.returncode == -signal.SIGKILL
    parts = tmp_path / "out.parquet.parts"
    assert len(os.listdir(parts)) == 3
    path = parts / stray
    if stray == "subdir":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    else:
        path.write_text("mine")
    before = len(sb.requests)
    line = one_line(run(command("parquet", out, state), env), 2, stray, "did not write",
                    "run the same command again")
    assert "internal error" not in line
    assert len(sb.requests) == before                       # nothing fetched
    assert path.exists() and sorted(os.listdir(parts)) == sorted(
        ["00000000.parquet", "00000001.parquet", "00000002.parquet", stray])  # nothing removed
    if stray == "subdir":
        assert (path / "keep.txt").read_text() == "mine"
        (path / "keep.txt").unlink()
        path.rmdir()
    else:
        path.unlink()
    one_line(run(command("parquet", out, state), env), 0, "145")
    assert ids_in(out, "parquet") == expected(sb)
    assert leftovers(tmp_path) == []
