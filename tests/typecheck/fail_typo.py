"""A misspelled name is reported: a field, a constructor keyword, a setting."""
import custlist
from custlist import pyng


def show(client: custlist.Pyng) -> None:
    for c in client.customers("site_1"):
        print(c.customer_referense)  # error: attr-defined


record = pyng.Customer(customer_referense="ACME-1")  # error: call-arg
client = custlist.Natural("sk_ntl_x", timout=5.0)  # error: call-arg
pager = client.customers(limt=10)  # error: call-overload
