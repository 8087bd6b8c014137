"""A nested record may be absent (None): using it unchecked is reported."""
import custlist


def cities(client: custlist.Commenda) -> list[str | None]:
    return [c.shipping_address.city  # error: union-attr
            for c in client.customers("corp_123", extend="shipping_address")]


def party_names(client: custlist.Natural) -> list[str | None]:
    out = []
    for c in client.customers():
        if isinstance(c, custlist.natural.UnknownResource):
            continue
        out.append(c.party.name)  # error: union-attr
    return out
