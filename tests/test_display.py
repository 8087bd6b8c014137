"""Records and pagers outside code: JSON-ready dicts, IPython / Jupyter
display, tables, pager reprs, and clients as context managers."""
import datetime as dt
import decimal
import gc
import json
import time
import weakref

import pytest
from IPython.lib.pretty import pretty

import custlist
import custlist.testing
from custlist import commenda, natural, pyng

from .conftest import FAST


def _every_endpoint(sb):
    """(name, records) of every endpoint the sandbox serves, nested objects filled."""
    p = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    n = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    c = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    return [
        ("pyng", list(p.customers(site_id="site_1", limit=100))),
        ("natural.customers", list(n.customers(limit=100))),
        ("natural.invitations", list(n.customer_invitations(limit=100))),
        ("commenda", list(c.customers("corp_123", limit=100,
                                      extend=["shipping_address", "exemption_metadata"]))),
    ]


def _plain_types(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_types(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_to_json_dict_on_every_endpoint(sb):
    for name, records in _every_endpoint(sb):
        assert records, name
        for rec in records:
            d = rec.to_json_dict()
            assert _plain_types(d), (name, d)
            assert json.loads(json.dumps(d)) == d
            assert list(d) == list(type(rec).__fields__)


def test_to_json_dict_values():
    created = dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    rec = natural.Party("party", "pty_1", "a@b.c", natural.Status.ACTIVE,
                        ("payments:read", "wallets.read"), created, 1050,
                        decimal.Decimal("10.50"), "future_value",
                        natural.PartyRef("pty_2", "Acme", None))
    assert rec.to_json_dict() == {
        "type": "party", "id": "pty_1", "email": "a@b.c", "status": "ACTIVE",
        "permissions": ["payments:read", "wallets.read"], "created_at": "2026-05-01T12:30:00Z",
        "wallet_available_minor": 1050, "wallet_available_dollars": "10.50",
        "wallet_access": "future_value",
        "party": {"id": "pty_2", "name": "Acme", "email": None}}
    # the C to_dict() keeps Python types, which json cannot take
    with pytest.raises(TypeError):
        json.dumps(rec.to_dict())
    assert custlist.jsonable([rec])[0] == rec.to_json_dict()


def test_pretty_short_record_is_one_line():
    ref = natural.PartyRef("pty_1", "Acme", None)
    assert pretty(ref) == repr(ref) == "PartyRef(id='pty_1', name='Acme', email=None)"


def test_pretty_long_record_has_one_field_per_line():
    rec = commenda.Customer("cust_1", "A customer with a long name", "someone@example.com",
                            "corp_123", dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc),
                            "shopify", "sp_1", commenda.Address(line1="1 Long Road", city="Paris"),
                            None)
    lines = pretty(rec).splitlines()
    assert lines[0] == "Customer("
    assert lines[1] == "    id='cust_1',"
    assert lines[-1] == ")"
    fields = [ln for ln in lines if ln.startswith("    ") and ln[4] != " " and "=" in ln]
    assert [f.strip().split("=")[0] for f in fields] == list(commenda.Customer.__fields__)
    assert "    shipping_address=Address(" in lines


def test_html_is_escaped():
    ref = natural.PartyRef("pty_<1>", "<script>alert('x')</script> & Co", None)
    out = ref._repr_html_()
    assert "<script>" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in out
    assert out.startswith("<table") and out.count("<tr>") == 4    # header + 3 fields
    t = custlist.table([ref, natural.PartyRef("pty_2", "ok", "<e@x>")])
    html = t._repr_html_()
    assert "<script>" not in html and "&lt;e@x&gt;" in html
    assert html.count("<tr>") == 3


def test_table_of_mixed_records(sb):
    n = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    records = list(n.customers(limit=100))
    t = custlist.table(records, max_rows=5)
    assert len(t) == len(records) and list(t) == records
    assert t.columns == list(natural.CustomerResource.__fields__)
    text = str(t).splitlines()
    assert text[0].split() == t.columns
    assert len(text) == 2 + 5 + 1 and text[-1] == f"... {len(records) - 5} more rows"
    assert records[0].id[:20] in text[2]
    assert t._repr_html_().count("<tr>") == 6
    assert pretty(t) == str(t)


def _tokens(sb):
    return [sb.pyng_token, sb.pyng_client_secret, sb.natural_token, sb.commenda_token]


def test_pager_repr_shows_endpoint_filters_progress_never_a_token(sb):
    p = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                      base_url=sb.pyng_url, **FAST)
    n = custlist.Natural(sb.natural_token, agent_id="agt_" + "a" * 32, instance_id="conv-1",
                         base_url=sb.natural_url, **FAST)
    c = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    pagers = [p.customers(site_id="site_1", state="linked", limit=10),
              n.customers(limit=7), n.customer_invitations(),
              c.customers("corp_123", limit=10, extend=["shipping_address"])]
    before = repr(pagers[0])
    assert before.startswith(f"<custlist.Pager GET {sb.pyng_url}/billing/sites/site_1/customers ")
    assert "limit=10 state=linked" in before and "pages_fetched=0 total=? done=False" in before
    for pager in pagers:
        next(pager)
    assert "pages_fetched=1 total=" in repr(pagers[0]) and "total=?" not in repr(pagers[0])
    assert "corporation_id=corp_123" in repr(pagers[3]) and "extend=shipping_address" in repr(pagers[3])
    resumed = n.customers(start_cursor=pagers[1].cursor)
    for pager in pagers + [resumed]:
        list(pager)
        text = repr(pager) + pretty(pager)
        assert "done=True" in text
        for secret in _tokens(sb):
            assert secret not in text


def test_client_context_manager_closes_its_pagers(sb):
    with custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST) as n:
        pager = n.customers(limit=10)
        first = next(pager)
        cursor = pager.cursor
        dropped = weakref.ref(n.customers(limit=10))
        gc.collect()
        assert dropped() is None          # the client does not keep its pagers alive
    requests = len(sb.requests)
    assert list(pager) == []              # closed: nothing more, and no request made
    assert len(sb.requests) == requests
    assert pager.cursor == cursor         # the resume point stays
    with pytest.raises(ValueError, match="Natural client is closed"):
        n.customers()
    # resuming from the saved point with a new client loses nothing
    with custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST) as again:
        rest = list(again.customers(limit=10, start_cursor=cursor))
    everything = list(custlist.Natural(sb.natural_token, base_url=sb.natural_url).customers())
    assert [first] + rest[1:] == everything


def test_close_stops_a_pager_mid_page_for_every_client(sb):
    clients = [custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST),
               custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)]
    for client, pager in zip(clients, [clients[0].customers(site_id="site_1", limit=5),
                                       clients[1].customers("corp_123", limit=5)]):
        next(pager)
        client.close()
        assert list(pager) == []
        client.close()                    # twice is fine


# ---- what a table shows: escaped, aligned, read no further than shown --------


def test_table_and_html_show_control_characters_escaped():
    hostile = ["Evil\x1b]0;owned\x07 Co", "Clear\x9b2J", "Inv \u202egpj.exe", "Up\x1b[5A"]
    refs = [natural.PartyRef(f"pty_{i}", name, None) for i, name in enumerate(hostile)]
    t = custlist.table(refs)
    for out in (str(t), t._repr_html_(), refs[0]._repr_html_()):
        for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert raw not in out
    text = str(t)
    for shown in (r"Evil\x1b]0;owned\x07 Co", r"Clear\x9b2J", r"Inv \u202egpj.exe", r"Up\x1b[5A"):
        assert shown in text
        assert shown in t._repr_html_()
    assert r"Evil\x1b]0;owned\x07 Co" in refs[0]._repr_html_()


def test_plain_table_aligns_wide_characters():
    names = ["株式会社テスト", "😀 Emoji Co", "Plain", "e\u0301te"]   # CJK, emoji, combining accent
    refs = [natural.PartyRef(f"pty_{i}", name, f"{i}@example.com") for i, name in enumerate(names)]
    lines = str(custlist.table(refs)).splitlines()
    widths = {"株": 2, "式": 2, "会": 2, "社": 2, "テ": 2, "ス": 2, "ト": 2, "😀": 2, "\u0301": 0}

    def on_screen(text):
        return sum(widths.get(c, 1) for c in text)
    column = on_screen(lines[0][:lines[0].index("email")])
    for i, line in enumerate(lines[2:]):
        assert on_screen(line[:line.index(f"{i}@example.com")]) == column, line
    # a wide cell is cut by its width on screen too
    t = custlist.table([natural.PartyRef("pty_1", "漢" * 40, None)])
    cell = str(t).splitlines()[2].split("  ", 1)[1].strip()
    assert cell == "漢" * 14 + "\u2026"                 # 29 columns of the 30 a cell may take


def test_pretty_long_tuple_has_one_item_per_line_under_its_field():
    created = dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    permissions = ("payments:read", "payments:write", "wallets.read", "wallets:write",
                   "payments.create")
    rec = natural.Party("party", "pty_1", "a@b.c", natural.Status.ACTIVE, permissions, created,
                        None, None, None, None)
    lines = pretty(rec).splitlines()
    at = lines.index("    permissions=(")
    assert lines[at + 1:at + 7] == [f"        {p!r}," for p in permissions] + ["    ),"]
    # a short tuple stays on the field's line
    short = natural.Party("party", "pty_1", "a@b.c", natural.Status.ACTIVE, ("payments:read",),
                          created, None, None, None, None)
    assert "    permissions=('payments:read',)," in pretty(short).splitlines()


def test_table_of_a_pager_reads_only_the_pages_it_shows():
    with custlist.testing.Sandbox(natural_customers=1000, commenda_customers=1000, seed=3) as sb:
        nat = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
        pager = nat.customers(limit=50)
        t = custlist.table(pager)                           # 200 rows: four pages of 50
        time.sleep(0.3)                                     # a prefetch would have arrived
        assert [r.route for r in sb.requests] == ["natural.customers"] * 4
        assert len(t) == 200 and len(str(t).splitlines()) == 2 + 200 + 1
        assert str(t).splitlines()[-1] == "... more rows in the listing, not read"
        # the pager itself was not advanced: it lists everyone from the start
        everyone = list(pager)
        assert len(everyone) == 1000 and list(t) == everyone[:200]
        # from where a pager stands, with the total the API reports
        cm = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
        pager = cm.customers("corp_123", limit=40)
        first = [next(pager) for _ in range(10)]
        time.sleep(0.3)
        sb.requests.clear()
        t = custlist.table(pager, max_rows=70)              # records 11 to 80: pages 1 and 2
        time.sleep(0.3)
        assert len(sb.requests) == 2
        assert str(t).splitlines()[-1] == "... 920 more rows in the listing, not read"
        assert pager.consumed == 10
        assert first + list(t) == list(cm.customers("corp_123", limit=40, max_items=80))
        # no further than the pager's own max_items
        sb.requests.clear()
        capped = cm.customers("corp_123", limit=40, max_items=30)
        t = custlist.table(capped, max_rows=100)
        assert list(t) == first + list(cm.customers("corp_123", limit=40, max_items=30))[10:]
        assert len(t) == 30 and len(sb.requests) == 2
        # a listing shorter than max_rows: all of it, and no "more" line
        t = custlist.table(cm.customers("corp_456", limit=100), max_rows=300)   # 250 customers
        assert list(t) == list(cm.customers("corp_456"))
        assert len(str(t).splitlines()) == 2 + 250


def test_table_of_an_iterator_reads_no_further_than_it_shows():
    refs = (natural.PartyRef(f"pty_{i}", "x", None) for i in range(1000))
    t = custlist.table(refs, max_rows=5)
    assert len(t) == 6                                  # five shown, one to know there are more
    assert next(refs).id == "pty_6"
    assert str(t).splitlines()[-1] == "... more rows, not read"
    assert len(custlist.table(iter([]), max_rows=5)) == 0
