"""What the C core says and does is the same on every CPython it is built
for (.ci/pythons): no format code, API or behaviour of only some versions."""
import pytest

import custlist


def test_fan_out_names_the_type_that_is_not_a_pager(pyng, sb):
    # A format code of CPython 3.13 (%T) was printed as is on 3.10 and 3.11
    # and was a SystemError on 3.12.
    pager = pyng.customers("site_1")
    sb.requests.clear()
    with pytest.raises(TypeError) as info:
        custlist.fan_out([pager, iter([])])
    assert str(info.value) == "fan_out takes custlist pagers, not list_iterator"
    assert sb.requests == []
    # The pager refused alongside is untouched: it lists everything.
    got = [c.customer_reference for c in pager]
    assert got and got == [c.customer_reference for c in pyng.customers("site_1")]
