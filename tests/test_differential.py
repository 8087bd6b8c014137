"""Every way of reading a listing against the others, under seeded random
faults: see tests/differential.py.  CI reads schedules for a fixed budget
(CUSTLIST_DIFF_SECONDS, 120 s by default; the sanitizer and other-interpreter
runs of .ci/run read for 30 s; `make soak` reads for longer);
the scenario runs in a child process with a deadline, so a way that hangs
fails the test with the schedule that hung."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_way_of_reading_agrees_under_random_faults():
    seconds = float(os.environ.get("CUSTLIST_DIFF_SECONDS", "120"))
    seed = os.environ.get("CUSTLIST_DIFF_SEED", "1")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "differential.py"),
                           "--seconds", str(seconds), "--seed", seed],
                          capture_output=True, text=True, timeout=seconds + 240)
    hung = [line for line in proc.stderr.splitlines() if line.startswith("reading ")][-1:]
    assert proc.stdout.strip(), f"no report (exit {proc.returncode}); last: {hung}\n" \
                                f"{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{report['schedules']} schedules, {report['ways']} ways each")
    assert report["schedules"] >= 20, report
    assert report["failures"] == [], json.dumps(report["failures"][:5], indent=1)
    assert proc.returncode == 0


def test_the_differential_check_finds_a_disagreement(tmp_path):
    """The check can fail: a way that drops the last record of every listing
    is caught by it (so an empty report means the ways agreed)."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import differential as d\n"
        "real = d.WAYS['pages']\n"
        "def lossy(ctx, s, pager):\n"
        "    o = real(ctx, s, pager)\n"
        "    o.keys = o.keys[:-1]\n"
        "    return o\n"
        "d.WAYS['pages'] = lossy\n"
        "import json; print(json.dumps(d.run(60, 5, ['iter', 'pages'], limit=4)))\n" % HERE)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["schedules"] == 4
    assert report["failures"], report
    assert any("pages" in p for f in report["failures"] for p in f["problems"])
