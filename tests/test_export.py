"""custlist VENDOR COMMAND -o FILE: JSONL, CSV and Parquet files written
batch by batch, a progress bar on stderr, --max-items, and --resume STATE
that continues exactly after the process is killed at any moment."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from .listings import LISTINGS, full

TIMEOUT = 120
CLI = {"pyng.customers": ["pyng", "customers", "--site-id", "site_1"],
       "natural.customers": ["natural", "customers"],
       "commenda.customers": ["commenda", "customers", "--corporation-id", "corp_123"]}
EXPORTED = [x for x in LISTINGS if x.name in CLI]
FORMATS = ["jsonl", "csv", "parquet"]


@pytest.fixture
def env(sb):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    e.update(CUSTLIST_PYNG_TOKEN=sb.pyng_token, CUSTLIST_PYNG_BASE_URL=sb.pyng_url,
             CUSTLIST_NATURAL_TOKEN=sb.natural_token, CUSTLIST_NATURAL_BASE_URL=sb.natural_url,
             CUSTLIST_COMMENDA_TOKEN=sb.commenda_token,
             CUSTLIST_COMMENDA_BASE_URL=sb.commenda_url)
    return e


def command(listing, fmt, out, *extra):
    return [sys.executable, "-m", "custlist", *CLI[listing.name], "--format", fmt, "-o",
            str(out), "--page-size", "10", *extra]


def run(cmd, env):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def keys_in(path, fmt, key):
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)[key] for line in f]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            return [row[key] for row in csv.DictReader(f)]
    return pq.read_table(path).column(key).to_pylist()


def expected_keys(sb, listing, n=None):
    return [getattr(r, listing.key) for r in full(sb, listing)][:n]


def state_count(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["count"]
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("listing", EXPORTED, ids=str)
def test_killed_mid_run_and_resumed_every_record_once(sb, env, tmp_path, listing, fmt):
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    cmd = command(listing, fmt, out, "--resume", str(state), "--batch-rows", "10")
    sb.inject(listing.route, delay=0.05, times=None)        # slow pages: time to kill
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while state_count(state) < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.stderr.close()
    killed_at = state_count(state)
    total = len(full(sb, listing))
    assert 30 <= killed_at < total, "the first run was not killed mid-run"
    sb.clear_faults()
    r = run(cmd, env)
    assert r.returncode == 0, r.stderr
    assert f"{total} records in {out}" in r.stderr
    assert keys_in(out, fmt, listing.key) == expected_keys(sb, listing)
    assert json.loads(state.read_text())["complete"] is True
    assert not os.path.exists(str(out) + ".parts")
    again = run(cmd, env)                                   # a finished export stays put
    assert again.returncode == 0 and keys_in(out, fmt, listing.key) == expected_keys(sb, listing)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_written_after_the_state_is_written_again_once(sb, env, tmp_path, fmt):
    """Killed after writing a batch but before recording it: the next run
    cuts that batch off and writes it again."""
    listing = EXPORTED[1]
    out, state = tmp_path / f"out.{fmt}", tmp_path / "state.json"
    first = run(command(listing, fmt, out, "--resume", str(state), "--batch-rows", "10",
                        "--max-items", "40"), env)
    assert first.returncode == 0, first.stderr
    saved = json.loads(state.read_text())
    saved["complete"] = False               # as if the run were cut short after batch 4
    state.write_text(json.dumps(saved))
    if fmt == "parquet":
        os.makedirs(str(out) + ".parts")
        (tmp_path / "out.parquet.parts" / f"{saved['position']:08d}.parquet").write_bytes(b"PAR1")
        (tmp_path / "out.parquet.parts" / "00000099.parquet.tmp").write_bytes(b"half")
        for i in range(saved["position"]):
            part = tmp_path / "out.parquet.parts" / f"{i:08d}.parquet"
            pq.write_table(pq.read_table(out).slice(i * 10, 10), part)
    else:
        with open(out, "a", encoding="utf-8") as f:
            f.write('{"half a record')
    r = run(command(listing, fmt, out, "--resume", str(state), "--batch-rows", "10"), env)
    assert r.returncode == 0, r.stderr
    assert keys_in(out, fmt, listing.key) == expected_keys(sb, listing)


@pytest.mark.parametrize("fmt", FORMATS)
def test_max_items_and_the_bar_on_stderr(sb, env, tmp_path, fmt):
    listing = EXPORTED[2]
    out = tmp_path / f"out.{fmt}"
    r = run(command(listing, fmt, out, "--max-items", "25", "--progress"), env)
    assert r.returncode == 0, r.stderr
    assert keys_in(out, fmt, listing.key) == expected_keys(sb, listing, 25)
    assert "commenda.customers" in r.stderr and "25/25" in r.stderr
    assert f"25 records in {out} (stopped at --max-items)" in r.stderr
    quiet = run(command(listing, fmt, out, "--max-items", "5", "--no-progress"), env)
    assert quiet.returncode == 0 and "records/s" not in quiet.stderr
    assert keys_in(out, fmt, listing.key) == expected_keys(sb, listing, 5)


@pytest.mark.parametrize("listing", EXPORTED, ids=str)
def test_max_items_counts_across_resumed_runs(sb, env, tmp_path, listing):
    out, state = tmp_path / "out.jsonl", tmp_path / "state.json"
    first = run(command(listing, "jsonl", out, "--resume", str(state), "--max-items", "23"), env)
    assert first.returncode == 0, first.stderr
    saved = json.loads(state.read_text())
    assert saved["count"] == 23 and not saved["complete"]
    r = run(command(listing, "jsonl", out, "--resume", str(state), "--max-items", "57"), env)
    assert r.returncode == 0, r.stderr
    assert keys_in(out, "jsonl", listing.key) == expected_keys(sb, listing, 57)


def test_usage_errors(sb, env, tmp_path):
    natural = EXPORTED[1]
    state = tmp_path / "state.json"
    r = run([sys.executable, "-m", "custlist", "natural", "customers", "--format", "parquet"],
            env)
    assert r.returncode == 2 and "-o FILE" in r.stderr
    assert run(command(natural, "jsonl", tmp_path / "a.jsonl", "--resume", str(state),
                       "--max-items", "3"), env).returncode == 0
    other = run(command(natural, "csv", tmp_path / "a.jsonl", "--resume", str(state)), env)
    assert other.returncode == 2 and "belongs to the export of" in other.stderr
    changed = json.loads(state.read_text())
    changed["complete"] = False
    state.write_text(json.dumps(changed))
    r = run([*command(natural, "jsonl", tmp_path / "a.jsonl", "--resume", str(state))[:-4],
             "--page-size", "11", "--resume", str(state)], env)
    assert r.returncode == 2 and "other arguments" in r.stderr
    state.write_text("{}")
    r = run(command(natural, "jsonl", tmp_path / "a.jsonl", "--resume", str(state)), env)
    assert r.returncode == 2 and "not a custlist export state file" in r.stderr
    r = run(command(natural, "jsonl", tmp_path / "b.jsonl", "--start", "abc"), env)
    assert r.returncode == 2 and "--start does not combine with -o" in r.stderr
