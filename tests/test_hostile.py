"""Hostile callers and hostile input against the newest surfaces: path
parameters and resume tokens that try to leave their endpoint, and what
the Arrow stream and the pagers do when used in unexpected ways."""
import pytest

import custlist

from .conftest import FAST


# ---- a path parameter or a checkpoint must not leave its endpoint ------------

@pytest.mark.parametrize("site_id", ["..", "."])
def test_dot_segment_site_id_is_refused_before_any_request(sb, site_id):
    # libcurl removes dot segments: "/billing/sites/../customers" would reach
    # "/billing/customers", another endpoint, with the bearer token.
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    with pytest.raises(ValueError, match="site_id"):
        client.customers(site_id)
    assert sb.requests == []


@pytest.mark.parametrize("path", ["/billing/sites/../customers", "/billing/sites/./customers"])
def test_checkpoint_with_a_dot_segment_path_is_refused_before_any_request(sb, path):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    pager = client.customers("site_1", limit=10)
    next(pager)
    cp = pager.checkpoint()
    pager.close()
    sb.requests.clear()
    cp["path"] = path
    with pytest.raises(ValueError, match="not a usable checkpoint"):
        list(client.resume(cp))
    assert sb.requests == []
