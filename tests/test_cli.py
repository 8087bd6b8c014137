"""The command line, run as a subprocess against the sandbox: what it
prints on stdout and stderr and the exit codes, for uses and for mistakes."""
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import custlist
from custlist import cli, commenda, natural, pyng

TIMEOUT = 60


def env_for(sb, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    env.update({"CUSTLIST_PYNG_BASE_URL": sb.pyng_url, "CUSTLIST_PYNG_TOKEN": sb.pyng_token,
                "CUSTLIST_NATURAL_BASE_URL": sb.natural_url,
                "CUSTLIST_NATURAL_TOKEN": sb.natural_token,
                "CUSTLIST_COMMENDA_BASE_URL": sb.commenda_url,
                "CUSTLIST_COMMENDA_TOKEN": sb.commenda_token})
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run(args, env=None, timeout=TIMEOUT):
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    return subprocess.run([sys.executable, "-m", "custlist", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def one_line(r, code, *words):
    """The run failed with `code` and said why in one line naming `words`."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


def resume_of(stderr):
    m = re.search(r"resume with --resume (\S+?)\)?$", stderr.strip().splitlines()[-1])
    return m.group(1) if m else None


LISTINGS = {
    "pyng": ["pyng", "customers", "--site-id", "site_1"],
    "natural": ["natural", "customers"],
    "invitations": ["natural", "invitations"],
    "commenda": ["commenda", "customers", "--corporation-id", "corp_123"],
}


# ---- --version, --help, flags ---------------------------------------------


def test_version():
    r = run(["--version"])
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"custlist {custlist.__version__} (libcurl {custlist._core.libcurl_version})\n"


def _subparsers(p, prefix=()):
    yield prefix, p
    for action in p._actions:
        if isinstance(action, cli.argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def test_every_option_of_every_command_has_help():
    commands = list(_subparsers(cli.parser()))
    assert len(commands) == 10
    for path, p in commands:
        for action in p._actions:
            assert action.help and action.help != cli.argparse.SUPPRESS, (path, action.dest)


@pytest.mark.parametrize("command", [(), ("demo",), ("sandbox",), ("pyng",), ("natural",),
                                     ("commenda",), ("pyng", "customers"),
                                     ("natural", "customers"), ("natural", "invitations"),
                                     ("commenda", "customers")])
def test_help_of_every_command(command):
    r = run([*command, "--help"])
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: custlist")
    if len(command) == 2 or not command:
        for name in ("CUSTLIST_PYNG_CLIENT_ID", "CUSTLIST_NATURAL_TOKEN", "CUSTLIST_COMMENDA_TOKEN",
                     "CUSTLIST_PYNG_BASE_URL"):
            assert name in r.stdout
    if len(command) == 2:
        for flag in ("--format", "--max", "--resume", "--page-size", "--allow-insecure-http"):
            assert flag in r.stdout


def _flags_of(*path):
    for p_path, p in _subparsers(cli.parser()):
        if p_path == path:
            return {s for a in p._actions for s in a.option_strings}
    raise AssertionError(path)


def test_every_documented_parameter_has_a_flag():
    def flag(param):
        return "--page-size" if param.name == "limit" else "--" + param.name.replace("_", "-")

    expected = {("pyng", "customers"): [flag(p) for p in pyng._PARAMS] + ["--site-id", "--api-version"],
                ("natural", "customers"): [flag(p) for p in natural._PARAMS]
                + ["--agent-id", "--instance-id"],
                ("natural", "invitations"): [flag(p) for p in natural._PARAMS]
                + ["--agent-id", "--instance-id"],
                ("commenda", "customers"): [flag(p) for p in commenda._PARAMS]}
    assert len(expected[("commenda", "customers")]) == 12
    for path, flags in expected.items():
        have = _flags_of(*path)
        for f in flags + ["--start", "--resume", "--base-url", "--allow-insecure-http"]:
            assert f in have, (path, f)


def test_filters_and_headers_reach_the_server(sb):
    env = env_for(sb)
    sb.requests.clear()
    r = run(LISTINGS["commenda"] + [
        "--name", "Acme", "--search-term", "ac", "--source-platforms", "shopify,stripe",
        "--source-platform-ids", "a,b", "--extend", "shipping_address,exemption_metadata",
        "--certificate-types", "resale", "--exemption-jurisdiction", "US_CA",
        "--expiration-status", "ACTIVE", "--exemption-status", "INACTIVE", "--no-has-exemption",
        "--page-size", "5"], env)
    assert r.returncode == 0, r.stderr
    assert sb.requests[0].query == {
        "corporation_id": "corp_123", "limit": "5", "name": "Acme", "search_term": "ac",
        "source_platforms": "shopify,stripe", "source_platform_ids": "a,b",
        "extend": "shipping_address,exemption_metadata", "certificate_types": "resale",
        "exemption_jurisdiction": "US_CA", "expiration_status": "ACTIVE",
        "exemption_status": "INACTIVE", "has_exemption": "false"}
    sb.requests.clear()
    r = run(LISTINGS["pyng"] + ["--state", "invited", "--invited-from", "2026-05-01",
                                "--invited-to", "2026-05-31", "--max", "1"], env)
    assert r.returncode == 0, r.stderr
    q = sb.requests[0].query
    assert (q["state"], q["invitedFrom"], q["invitedTo"]) == ("invited", "1777593600000",
                                                             "1780271999999")
    assert sb.requests[0].headers["pyng-api-version"] == pyng.API_VERSION
    sb.requests.clear()
    r = run(LISTINGS["pyng"] + ["--invited-from", "2026-05-01T10:00:00+02:00", "--max", "1"], env)
    assert r.returncode == 0, r.stderr
    assert sb.requests[0].query["invitedFrom"] == "1777622400000"
    sb.requests.clear()
    agent = "agt_" + "0" * 32
    r = run(LISTINGS["natural"] + ["--agent-id", agent, "--instance-id", "conv-9", "--max", "1"], env)
    assert r.returncode == 0, r.stderr
    assert sb.requests[0].headers["x-agent-id"] == agent
    assert sb.requests[0].headers["x-instance-id"] == "conv-9"


# ---- mistakes: one line, exit 2 -----------------------------------------


@pytest.mark.parametrize("args, unset, words", [
    (LISTINGS["natural"], ["CUSTLIST_NATURAL_TOKEN"], ["set CUSTLIST_NATURAL_TOKEN"]),
    (LISTINGS["commenda"], ["CUSTLIST_COMMENDA_TOKEN"], ["set CUSTLIST_COMMENDA_TOKEN"]),
    (LISTINGS["pyng"], ["CUSTLIST_PYNG_TOKEN"],
     ["CUSTLIST_PYNG_TOKEN", "CUSTLIST_PYNG_CLIENT_ID", "CUSTLIST_PYNG_CLIENT_SECRET"]),
    (LISTINGS["pyng"], ["CUSTLIST_PYNG_BASE_URL"], ["--base-url", "CUSTLIST_PYNG_BASE_URL"]),
])
def test_missing_settings_name_the_environment_variables(sb, args, unset, words):
    one_line(run(args, env_for(sb, **dict.fromkeys(unset))), 2, *words)
    assert not sb.requests


def test_half_of_the_pyng_client_credentials(sb):
    env = env_for(sb, CUSTLIST_PYNG_TOKEN=None, CUSTLIST_PYNG_CLIENT_ID="sandbox-client")
    one_line(run(LISTINGS["pyng"], env), 2, "set CUSTLIST_PYNG_CLIENT_SECRET")
    env["CUSTLIST_PYNG_CLIENT_SECRET"] = sb.pyng_client_secret
    r = run(LISTINGS["pyng"] + ["--max", "2"], env)
    assert r.returncode == 0 and len(jsonl(r.stdout)) == 2


@pytest.mark.parametrize("extra, words", [
    (["--page-size", "0"], ["--page-size", "from 1 to 100", "'0'"]),
    (["--page-size", "101"], ["--page-size", "'101'"]),
    (["--page-size", "ten"], ["--page-size", "'ten'"]),
    (["--max", "-1"], ["--max", "0 or more"]),
    (["--timeout", "0"], ["--timeout"]),
    (["--format", "xml"], ["--format", "xml"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["--resume", "not-a-token"], ["--resume"]),
    (["--resume", "x", "--start", "y"], ["not allowed with"]),
    (["--base-url", "http://api.example.com"], ["--allow-insecure-http"]),
    (["--base-url", "ftp://127.0.0.1/"], ["http(s)"]),
])
def test_bad_options(sb, extra, words):
    line = one_line(run(LISTINGS["natural"] + extra, env_for(sb)), 2, *words)
    assert "usage:" not in line
    assert not sb.requests


@pytest.mark.parametrize("args, words", [
    (["pyng", "customers"], ["--site-id"]),
    (["commenda", "customers"], ["--corporation-id"]),
    (LISTINGS["pyng"] + ["--invited-from", "2026-05-01T10:00"], ["--invited-from", "zone"]),
    (LISTINGS["pyng"] + ["--invited-from", "2026-06-01", "--invited-to", "2026-05-01"],
     ["--invited-from must not be after --invited-to"]),
    (LISTINGS["natural"] + ["--agent-id", "bob", "--instance-id", "x"], ["--agent-id", "agt_"]),
    (LISTINGS["natural"] + ["--agent-id", "agt_" + "0" * 32], ["--instance-id"]),
    (LISTINGS["commenda"] + ["--extend", "everything"], ["--extend", "shipping_address"]),
    (["natural"], ["COMMAND"]),
    ([], ["COMMAND"]),
    (["sandbox", "--port", "70000"], ["--port"]),
])
def test_usage_mistakes(sb, args, words):
    one_line(run(args, env_for(sb)), 2, *words)
    assert not sb.requests


def test_allow_insecure_http_is_accepted(sb):
    r = run(LISTINGS["natural"] + ["--base-url", "http://api.example.com", "--allow-insecure-http",
                                   "--max", "0"], env_for(sb))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# ---- API and transport failures: one line, exit 1 -------------------------


def test_authentication_failure(sb):
    r = run(LISTINGS["commenda"], env_for(sb, CUSTLIST_COMMENDA_TOKEN="wrong"))
    line = one_line(r, 1, "AuthenticationError", "0 records written")
    assert "wrong" not in line and "resume" not in line
    assert r.stdout == ""


def test_connection_refused(sb):
    with socket.socket() as s:              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(LISTINGS["natural"] + ["--base-url", f"http://127.0.0.1:{port}"],   # retried, quietly
            env_for(sb))
    one_line(r, 1, "TransportError")


def test_failure_mid_listing_says_where_to_resume_and_loses_nothing(sb):
    env = env_for(sb)
    full = jsonl(run(LISTINGS["natural"] + ["--page-size", "20"], env).stdout)
    sb.inject("natural.customers", status=500, skip=2, times=None)
    r = run(LISTINGS["natural"] + ["--page-size", "20", "--max-retries", "0"], env)
    line = one_line(r, 1, "ServerError", "40 records written", "resume with --resume")
    first = jsonl(r.stdout)
    assert first == full[:40]
    sb.clear_faults()
    r = run(LISTINGS["natural"] + ["--page-size", "20", "--resume", resume_of(line)], env)
    assert r.returncode == 0
    assert first + jsonl(r.stdout) == full


# ---- output ---------------------------------------------------------------


def test_max_zero_prints_nothing_and_sends_nothing(sb):
    for args in LISTINGS.values():
        r = run(args + ["--max", "0", "--format", "table"], env_for(sb))
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not sb.requests


@pytest.mark.parametrize("name", list(LISTINGS))
def test_resume_after_max_continues_exactly(sb, name):
    env = env_for(sb)
    full = jsonl(run(LISTINGS[name] + ["--page-size", "100"], env).stdout)
    assert len(full) > 80
    got, token, runs = [], None, 0
    for n in [3, 7, 1, 14, 25, 10 ** 6]:          # stops inside and at the edges of pages of 7
        args = LISTINGS[name] + ["--page-size", "7", "--max", str(n)]
        r = run(args + (["--resume", token] if token else []), env)
        assert r.returncode == 0, r.stderr
        batch = jsonl(r.stdout)
        assert len(batch) == min(n, len(full) - len(got))
        got += batch
        runs += 1
        token = resume_of(r.stderr)
        assert r.stderr.splitlines()[0] == f"custlist: {len(batch)} records"
        if token is None:
            break
    assert got == full and runs == 6


def test_no_resume_line_when_nothing_is_left(sb):
    env = env_for(sb)
    total = len(jsonl(run(LISTINGS["commenda"] + ["--page-size", "100"], env).stdout))
    for extra in ([], ["--max", str(total)], ["--max", str(total + 5)], ["--page-size", "7"]):
        r = run(LISTINGS["commenda"] + ["--page-size", "100"] + extra, env)
        assert r.returncode == 0 and len(jsonl(r.stdout)) == total
        assert r.stderr == f"custlist: {total} records\n"
    r = run(LISTINGS["commenda"] + ["--max", str(total - 1), "--page-size", "100"], env)
    assert resume_of(r.stderr)


def test_csv(sb):
    r = run(LISTINGS["commenda"] + ["--format", "csv", "--max", "30", "--extend",
                                    "shipping_address"], env_for(sb))
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == cli.flat_columns(commenda.Customer)
    assert "shipping_address.city" in rows[0] and "exemption_metadata.has_exemption" in rows[0]
    assert len(rows) == 31
    records = list(custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url).customers(
        "corp_123", extend=["shipping_address"]))[:30]
    for row, rec in zip(rows[1:], records):
        as_dict = dict(zip(rows[0], row))
        assert as_dict["id"] == rec.id
        assert as_dict["created_at"] == rec.to_json_dict()["created_at"]
        city = rec.shipping_address.city if rec.shipping_address else None
        assert as_dict["shipping_address.city"] == (city or "")


def test_table(sb):
    r = run(LISTINGS["invitations"] + ["--format", "table", "--max", "12", "--page-size", "5"],
            env_for(sb))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [c for c, _ in cli.TABLE_COLUMNS[("natural", "invitations")]]
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + 12
    starts = [m.start() for m in re.finditer(r"(?<=  )-", lines[1])]
    for line in lines[2:]:
        for s in starts:
            assert line[s - 2:s] == "  "      # every row keeps the columns


def _popen(args, env):
    return subprocess.Popen([sys.executable, "-m", "custlist", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)


def test_table_streams_rows_and_ctrl_c_stops_with_a_resume_point(sb):
    env = env_for(sb)
    full = jsonl(run(LISTINGS["natural"] + ["--page-size", "100"], env).stdout)
    sb.inject("natural.customers", delay=30, skip=1, times=None)     # page 2 hangs
    proc = _popen(LISTINGS["natural"] + ["--page-size", "10"], env)
    try:
        lines = [proc.stdout.readline() for _ in range(10)]            # page 1, before page 2
        assert all(line.endswith("\n") for line in lines)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
        sb.clear_faults()
    assert time.monotonic() - started < 25                                # not the 30 s delay
    assert proc.returncode == 130
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("custlist: interrupted (10 records written; resume with --resume ")
    first = jsonl("".join(lines) + out)
    assert first == full[:10]
    r = run(LISTINGS["natural"] + ["--page-size", "10", "--resume", resume_of(err)], env)
    assert first + jsonl(r.stdout) == full


# ---- custlist sandbox -----------------------------------------------------


def test_sandbox_prints_export_lines_that_work_and_stops_on_ctrl_c():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    proc = _popen(["sandbox", "--customers", "17", "--seed", "3"], env)
    try:
        lines = []
        while not lines or not lines[-1].startswith("# then:"):
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read()
        exports = dict(re.fullmatch(r"export (CUSTLIST_\w+)=(\S+)\n", line).groups()
                       for line in lines if line.startswith("export"))
        assert set(exports) == {"CUSTLIST_PYNG_BASE_URL", "CUSTLIST_PYNG_CLIENT_ID",
                                "CUSTLIST_PYNG_CLIENT_SECRET", "CUSTLIST_NATURAL_BASE_URL",
                                "CUSTLIST_NATURAL_TOKEN", "CUSTLIST_COMMENDA_BASE_URL",
                                "CUSTLIST_COMMENDA_TOKEN", "CUSTLIST_DEMO_BASE_URL",
                                "CUSTLIST_DEMO_TOKEN"}
        port = int(re.search(r":(\d+)/", exports["CUSTLIST_NATURAL_BASE_URL"]).group(1))
        assert port != 8080
        r = run(["natural", "customers"], {**env, **exports})
        assert r.returncode == 0 and len(jsonl(r.stdout)) == 17
        r = run(["pyng", "customers", "--site-id", "site_1"], {**env, **exports})
        assert r.returncode == 0, r.stderr
        busy = run(["sandbox", "--port", str(port)], env)
        one_line(busy, 1, f"port {port}", "in use", "--port")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        proc.kill()


def test_a_reader_that_goes_away_ends_the_listing_quietly(sb):
    # The third page comes late, so the listing is still going when the
    # reader goes: its whole output (145 records) would fit in the pipe, and
    # a listing that ended before the reader left would rightly exit 0.
    sb.inject("natural.customers", skip=2, delay=2.0)
    proc = _popen(LISTINGS["natural"] + ["--page-size", "5"], env_for(sb))
    try:
        assert json.loads(proc.stdout.readline())["id"]
        proc.stdout.close()                      # like `custlist ... | head -1`
        err = proc.stderr.read()
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGPIPE
    assert err == ""


def test_retries_are_logged_only_when_asked(sb):
    env = env_for(sb)
    args = LISTINGS["natural"] + ["--page-size", "50"]
    sb.inject("natural.customers", status=503, retry_after="0", times=1)
    r = run(args, env)
    assert r.returncode == 0 and r.stderr == f"custlist: {len(jsonl(r.stdout))} records\n"
    sb.inject("natural.customers", status=503, retry_after="0", times=1)
    r = run(args + ["-v"], env)
    lines = r.stderr.splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stderr
    assert lines[0].startswith(f"custlist: GET {sb.natural_url}/customers")
    assert "HTTP 503" in lines[0] and "retry in" in lines[0]
    r = run(args + ["-vv"], env)
    requests = [ln for ln in r.stderr.splitlines() if ln.startswith("custlist: GET ")]
    assert r.returncode == 0 and len(requests) == len(jsonl(r.stdout)) // 50 + 1
    assert sb.natural_token not in r.stderr


def test_resume_with_other_options_is_refused(sb):
    env = env_for(sb)
    r = run(LISTINGS["commenda"] + ["--page-size", "10", "--max", "15"], env)
    token = resume_of(r.stderr)
    sb.requests.clear()
    for other in (["--page-size", "20"], ["--search-term", "acme"]):
        line = one_line(run(LISTINGS["commenda"] + other + ["--resume", token], env), 2,
                        "--resume", "repeat that run's options")
        assert "client.resume" not in line and "pager.checkpoint" not in line
    one_line(run(LISTINGS["natural"] + ["--resume", token], env), 2, "--resume", "commenda")
    assert not sb.requests


def test_max_fetches_no_more_than_it_prints(sb):
    sb.requests.clear()
    r = run(LISTINGS["natural"] + ["--max", "3", "--page-size", "100"], env_for(sb))
    assert r.returncode == 0 and len(jsonl(r.stdout)) == 3
    assert [q.query.get("limit") for q in sb.requests] == ["3"]


def test_table_rows_go_out_before_the_listing_ends(sb):
    sb.inject("natural.customers", delay=30, skip=1, times=None)     # page 2 hangs
    proc = _popen(LISTINGS["natural"] + ["--page-size", "10", "--format", "table"], env_for(sb))
    try:
        lines = [proc.stdout.readline() for _ in range(2 + 10)]       # header, rule, page 1
        assert lines[0].split()[:2] == ["type", "id"] and lines[-1].startswith(("party", "deleg"))
        assert proc.poll() is None                                     # still waiting on page 2
    finally:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        sb.clear_faults()
