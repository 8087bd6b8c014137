"""An argument of the wrong type is reported: a filter, a setting, a field of
the user's own record, an endpoint of another record type."""
from decimal import Decimal

import custlist
from custlist import CursorPaging, Endpoint, Field, Pager, Record


class Balance(Record):
    id: Field[str] = Field(str)
    dollars: Field[Decimal] = Field(Decimal, "attributes.wallet_available_dollars")


class Other(Record):
    id = Field(str)


BALANCES = Endpoint("/customers", Balance, CursorPaging(items="data", cursor="next"))

nat = custlist.Natural("sk_ntl_x", max_retries="3")  # error: arg-type
com = custlist.Commenda("cmd_x")
pages = com.customers("corp_123", limit="10")  # error: call-overload
b = Balance(id="pty_1", dollars="12.50")  # error: arg-type
wrong: Pager[Other] = nat.paginate(BALANCES, "/customers")  # error: arg-type
total: Decimal = b.dollars  # error: assignment
