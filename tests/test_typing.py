"""Types a user sees: client signatures (runtime and stubs in step), record
signatures and field docstrings, generic pagers, and the typed example run
for real against the sandbox (mypy's view of it: tests/typecheck/check.py)."""
import ast
import datetime as dt
import inspect
import pathlib
import subprocess
import sys
from decimal import Decimal

import pytest

import custlist
from custlist import (CursorPaging, Endpoint, Field, Page, Pager, Record, UnixSeconds, _client,
                      _core, _stubgen, commenda, natural, pyng)

CLIENTS = [custlist.Pyng, custlist.Natural, custlist.Commenda]
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "typed_usage.py"


def _settings():
    """Client.__init__'s transport settings (its keywords a vendor client
    does not fill in itself)."""
    return [p for p in inspect.signature(custlist.Client.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in _client._NOT_SETTINGS]


def stub_params(cls):
    """(name, kind, has default, annotation) of cls.__init__ in its module's .pyi."""
    path = pathlib.Path(sys.modules[cls.__module__].__file__).with_suffix(".pyi")
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    a = init.args
    ann = lambda arg: ast.unparse(arg.annotation) if arg.annotation else None  # noqa: E731
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + a.defaults
    out = [(arg.arg, "POSITIONAL_OR_KEYWORD", d is not None, ann(arg))
           for arg, d in zip(pos, defaults)]
    out += [(arg.arg, "KEYWORD_ONLY", d is not None, ann(arg))
            for arg, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", False, ann(a.vararg)))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", False, ann(a.kwarg)))
    return out


def runtime_params(cls):
    return [(p.name, p.kind.name, p.default is not p.empty,
             None if p.annotation is p.empty else p.annotation)
            for p in inspect.signature(cls.__init__).parameters.values()]


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.__name__)
def test_client_stub_parameters_equal_the_runtime_signature(cls):
    assert stub_params(cls) == runtime_params(cls)


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.__name__)
def test_every_client_setting_is_a_real_keyword_parameter(cls):
    params = inspect.signature(cls).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert _settings(), "Client.__init__ lists no settings"
    for s in _settings():
        assert params[s.name].kind is s.KEYWORD_ONLY, s.name
        assert params[s.name].default == s.default, s.name
        assert params[s.name].annotation == s.annotation, s.name


def test_a_setting_added_to_client_reaches_every_client_signature_and_stub(monkeypatch):
    base = custlist.Client.__init__

    def with_new(self, *, base_url, auth, new_setting: "str | None" = None, **rest):
        base(self, base_url=base_url, auth=auth, **rest)
    params = list(inspect.signature(base).parameters.values())
    params.insert(3, inspect.Parameter("new_setting", inspect.Parameter.KEYWORD_ONLY, default=None,
                                       annotation="str | None"))
    with_new.__signature__ = inspect.signature(base).replace(parameters=params)
    monkeypatch.setattr(custlist.Client, "__init__", with_new)
    init = _client.takes_settings(custlist.Commenda.__init__.__wrapped__)
    assert "new_setting" in inspect.signature(init).parameters
    assert "new_setting: str | None = ..." in "".join(_stubgen.method_stub(init))


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.__name__)
def test_a_misspelled_setting_is_a_type_error_naming_the_client(cls):
    args = {"Pyng": dict(token="t", base_url="http://127.0.0.1:9")}.get(cls.__name__, {})
    with pytest.raises(TypeError) as info:
        cls(*(() if args else ("t",)), timout=3.0, **args)
    assert str(info.value) == f"{cls.__name__}(): got an unexpected keyword argument 'timout'"


def test_records_have_a_signature_of_their_fields():
    sig = inspect.signature(pyng.Customer)
    assert list(sig.parameters) == list(pyng.Customer.__fields__)
    for p in sig.parameters.values():
        assert p.kind is p.POSITIONAL_OR_KEYWORD and p.default is None
    # required fields (always on the wire) without None
    assert sig.parameters["customer_reference"].annotation == str
    assert sig.parameters["state"].annotation == pyng.LinkState | str
    assert sig.parameters["invited_at"].annotation == dt.datetime
    assert sig.parameters["linked_at"].annotation == dt.datetime | None
    inv = inspect.signature(natural.CustomerInvitation).parameters
    assert inv["agent_invitations"].annotation == tuple[natural.AgentInvitation, ...] | None
    assert inspect.signature(commenda.Customer).parameters["created_at"].annotation == \
        dt.datetime | None
    # the signature describes what the constructor accepts
    assert pyng.Customer(*[None] * len(sig.parameters)) == pyng.Customer()


def test_fields_have_docstrings():
    doc = natural.CustomerResource.permissions.__doc__
    assert doc.startswith("kept verbatim: separators vary")
    assert "attributes.permissions" in doc
    assert "customerReference" in pyng.Customer.customer_reference.__doc__

    class Invoice(Record):
        amount = Field(Decimal, "amount_due", aliases=["total"], doc="what is owed")
    assert Invoice.amount.__doc__ == ("what is owed\n\nWire key: amount_due, total.  "
                                      "None when absent.")
    assert inspect.signature(Invoice).parameters["amount"].annotation == Decimal | None


def test_slot_doc_must_be_text():
    assert _core.Slot(0, "x", _core.Record).__doc__ is None
    with pytest.raises(TypeError, match="doc must be a str or None"):
        _core.Slot(0, "x", _core.Record, 5)


def test_generic_types_subscript_at_run_time():
    assert Pager[pyng.Customer].__origin__ is Pager
    assert Pager[pyng.Customer].__args__ == (pyng.Customer,)
    assert _core.Pager[int].__origin__ is _core.Pager
    assert Page[pyng.Customer].__origin__ is Page
    assert Endpoint[pyng.Customer].__origin__ is Endpoint


def test_a_record_with_annotated_fields_decodes():
    class Balance(Record):
        id: Field[str] = Field(str)
        dollars: Field[Decimal] = Field(Decimal, "attributes.wallet_available_dollars")
        since: Field[dt.datetime] = Field(UnixSeconds, "attributes.since")

    ep = Endpoint("/customers", Balance, CursorPaging(items="data", cursor="next"))
    page = ep.decode(b'{"data":[{"id":"a","attributes":{"wallet_available_dollars":"1.50",'
                     b'"since":0}}],"next":"c2"}')
    assert page.items == (Balance("a", Decimal("1.50"), dt.datetime(1970, 1, 1,
                                                                   tzinfo=dt.timezone.utc)),)
    assert page.cursor == "c2" and Balance.__fields__ == ("id", "dollars", "since")


def test_the_typed_example_runs_against_the_sandbox():
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("pyng: ") and "commenda:" in proc.stdout
