#!/usr/bin/env python3
"""Follows the links in bookcal's answers with Waldur's own Python client.

Run by tests/it/first_hour.rs against a server loaded with fixtures/demo.json:
BOOKCAL_BASE_URL and BOOKCAL_TOKENS (a JSON object username -> API token).

From an order and a booking (their `project`, `customer`, `created_by`, `offering` links) to the
project, the organisations, the user and the public offering, and from the offering
(its `category` link) to its marketplace category, with the client's
generated retrieve, list and count functions (count is a HEAD), each answer parsed
by the client's models and round-tripped through `to_dict` / `from_dict`; and a
user who may not see an object gets the client's 404.

Prints one line per check and finally "N passed, M failed"; exits 1 on any failure.
"""

import json
import os
import sys
import traceback
import uuid as uuidlib

from waldur_api_client import AuthenticatedClient
from waldur_api_client.api.customers import customers_count, customers_list, customers_retrieve
from waldur_api_client.api.booking_resources import booking_resources_list
from waldur_api_client.api.marketplace_categories import (
    marketplace_categories_count,
    marketplace_categories_list,
    marketplace_categories_retrieve,
)
from waldur_api_client.api.marketplace_orders import marketplace_orders_list
from waldur_api_client.api.marketplace_public_offerings import (
    marketplace_public_offerings_count,
    marketplace_public_offerings_list,
    marketplace_public_offerings_retrieve,
)
from waldur_api_client.api.projects import projects_count, projects_list, projects_retrieve
from waldur_api_client.api.users import users_count, users_list, users_retrieve
from waldur_api_client.errors import UnexpectedStatus

RESULTS = []


def report(ok, name, detail=""):
    RESULTS.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""))


def check(name, fn):
    try:
        fn()
        report(True, name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        report(False, name, f"{e!r}\n{traceback.format_exc()}")


def eq(got, want, what=""):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def roundtrip(model):
    again = type(model).from_dict(model.to_dict())
    eq(again.to_dict(), model.to_dict(), f"{type(model).__name__} round trip")
    return model


def not_found(fn):
    try:
        fn()
    except UnexpectedStatus as e:
        eq(e.status_code, 404, "status")
        eq(json.loads(e.content), {"detail": "Not found."}, "body")
        return
    raise AssertionError("no 404")


base = os.environ["BOOKCAL_BASE_URL"]
tokens = json.loads(os.environ["BOOKCAL_TOKENS"])
C = {
    u: AuthenticatedClient(base_url=base, token=t, prefix="Token")
    for u, t in tokens.items()
}

orders = marketplace_orders_list.sync(client=C["alice"], page_size=100)
order = next(o for o in orders if o.project_name == "Imaging study")
# The client's order model keeps no `project` or `created_by` link; its booking
# resource model does.
resource = next(
    r
    for r in booking_resources_list.sync(client=C["alice"], page_size=100)
    if r.project_name == "Imaging study"
)


def hexid(u):
    return uuidlib.UUID(str(u)).hex


def uuid_in(url):
    return uuidlib.UUID(url.rstrip("/").rsplit("/", 1)[1])


def project():
    p = roundtrip(projects_retrieve.sync(uuid_in(resource.project), client=C["bob"]))
    eq(p.name, "Imaging study", "name")
    eq(hexid(p.uuid), hexid(resource.project_uuid), "uuid")
    eq(p.url, resource.project, "url")
    eq(p.customer_name, "Alice Research", "customer_name")
    for who in ("alice", "admin"):
        eq(projects_retrieve.sync(p.uuid, client=C[who]).name, p.name, who)
    not_found(lambda: projects_retrieve.sync(p.uuid, client=C["owner"]))
    listed = projects_list.sync(client=C["bob"])
    eq([roundtrip(x).name for x in listed], ["Imaging study"], "bob's list")
    eq(projects_count.sync(client=C["bob"]), 1, "bob's count")
    eq(projects_count.sync(client=C["owner"]), 0, "the provider's count")


def customer():
    p = projects_retrieve.sync(uuid_in(resource.project), client=C["alice"])
    c = roundtrip(customers_retrieve.sync(uuid_in(p.customer), client=C["alice"]))
    eq(c.name, "Alice Research", "name")
    eq(c.url, p.customer, "url")
    provider = roundtrip(customers_retrieve.sync(order.provider_uuid, client=C["alice"]))
    eq(provider.name, "Northlab Facilities", "provider, seen by a consumer")
    not_found(lambda: customers_retrieve.sync(c.uuid, client=C["owner"]))
    names = sorted(x.name for x in customers_list.sync(client=C["alice"]))
    eq(names, ["Alice Research", "Northlab Facilities"], "alice's list")
    eq(customers_count.sync(client=C["owner"]), 1, "the provider's count")


def user():
    u = roundtrip(users_retrieve.sync(uuid_in(resource.created_by), client=C["bob"]))
    eq(u.url, resource.created_by, "url")
    eq(u.username, resource.created_by_username, "username")
    eq(u.full_name, resource.created_by_full_name, "full_name")
    not_found(lambda: users_retrieve.sync(u.uuid, client=C["owner"]))
    names = sorted(roundtrip(x).username for x in users_list.sync(client=C["bob"]))
    eq(names, ["alice", "bob"], "bob's circle")
    eq(users_count.sync(client=C["admin"]), 5, "staff see everyone")


def public_offering():
    o = roundtrip(
        marketplace_public_offerings_retrieve.sync(uuid_in(order.offering), client=C["alice"])
    )
    eq(o.url, order.offering, "url")
    eq(o.name, order.offering_name, "name")
    listed = marketplace_public_offerings_list.sync(client=C["alice"])
    eq(len(listed), 3, "alice's list")
    for x in listed:
        roundtrip(x)
    eq(marketplace_public_offerings_count.sync(client=C["alice"]), 3, "count")


def category():
    o = marketplace_public_offerings_retrieve.sync(uuid_in(order.offering), client=C["alice"])
    c = roundtrip(marketplace_categories_retrieve.sync(uuid_in(o.category), client=C["alice"]))
    eq(c.url, o.category, "url")
    eq(hexid(c.uuid), hexid(o.category_uuid), "uuid")
    eq(c.title, o.category_title, "title")
    titles = sorted(roundtrip(x).title for x in marketplace_categories_list.sync(client=C["alice"]))
    eq(titles, ["Instruments", "Rooms"], "alice's list")
    eq(marketplace_categories_count.sync(client=C["alice"]), 2, "count")
    not_found(lambda: marketplace_categories_retrieve.sync(uuidlib.uuid4(), client=C["alice"]))


check("an order's project link leads to the project", project)
check("an order's customer links lead to the organisations", customer)
check("an order's created_by link leads to the user", user)
check("an order's offering link leads to the public offering", public_offering)
check("an offering's category link leads to the category", category)

passed = sum(RESULTS)
failed = len(RESULTS) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
