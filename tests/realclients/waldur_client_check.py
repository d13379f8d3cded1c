#!/usr/bin/env python3
"""Drives bookcal with Waldur's own published Python client (`waldur-api-client`).

Run by tests/waldur_client.rs, which starts two servers loaded with fixtures/demo.json
and passes them in the environment:

  BOOKCAL_BASE_URL, BOOKCAL_TOKENS                 Google credentials configured; the
                                                   calendar of tem-2100 is public and
                                                   idle, telescope's private and idle,
                                                   room-aurora has none.
  BOOKCAL_NOCRED_BASE_URL, BOOKCAL_NOCRED_TOKENS   no Google credentials.

`*_TOKENS` is a JSON object username -> API token (admin, owner, manager, alice, bob).

Every call goes through the client's generated `sync` / `sync_detailed` / `sync_all`
functions, so the answers are parsed by the client's own models; each parsed model is
then checked for the expected values and round-tripped through `to_dict` /
`from_dict` (which trips over values of the wrong type that `from_dict` let through).
The client (8.1.x) raises `errors.UnexpectedStatus` on every status it does not
document (it has no `raise_on_unexpected_status` switch), so the 400/403/404/409 paths
are checked by catching that exception and reading its `status_code` and `content`.

Prints one line per check and finally "N passed, M failed"; exits 1 on any failure.
"""

import datetime as dt
import json
import os
import sys
import traceback
import uuid as uuidlib

from waldur_api_client import AuthenticatedClient
from waldur_api_client.api.booking_offerings import (
    booking_offerings_count,
    booking_offerings_google_calendar_sync,
    booking_offerings_list,
    booking_offerings_retrieve,
    booking_offerings_share_google_calendar,
    booking_offerings_unshare_google_calendar,
)
from waldur_api_client.api.booking_resources import (
    booking_resources_accept,
    booking_resources_count,
    booking_resources_list,
    booking_resources_reject,
    booking_resources_retrieve,
)
from waldur_api_client.api.marketplace_bookings import marketplace_bookings_list
from waldur_api_client.api.marketplace_resources import marketplace_resources_terminate
from waldur_api_client.api.marketplace_orders import (
    marketplace_orders_approve_by_consumer,
    marketplace_orders_approve_by_provider,
    marketplace_orders_cancel,
    marketplace_orders_count,
    marketplace_orders_create,
    marketplace_orders_destroy,
    marketplace_orders_list,
    marketplace_orders_offering_retrieve,
    marketplace_orders_retrieve,
    marketplace_orders_set_backend_id,
    marketplace_orders_set_state_done,
)
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models.booking import Booking
from waldur_api_client.models.booking_order_uuid import BookingOrderUUID
from waldur_api_client.models.booking_resource import BookingResource
from waldur_api_client.models.booking_resource_field_enum import BookingResourceFieldEnum
from waldur_api_client.models.booking_resource_o_enum import BookingResourceOEnum
from waldur_api_client.models.booking_slot import BookingSlot
from waldur_api_client.models.generic_order_attributes import GenericOrderAttributes
from waldur_api_client.models.google_calendar import GoogleCalendar
from waldur_api_client.models.offering import Offering
from waldur_api_client.models.offering_field_enum import OfferingFieldEnum
from waldur_api_client.models.offering_state import OfferingState
from waldur_api_client.models.order_approve_by_provider_request import (
    OrderApproveByProviderRequest,
)
from waldur_api_client.models.order_backend_id_request import OrderBackendIDRequest
from waldur_api_client.models.order_create_request import OrderCreateRequest
from waldur_api_client.models.order_details import OrderDetails
from waldur_api_client.models.order_details_o_enum import OrderDetailsOEnum
from waldur_api_client.models.order_info_response import OrderInfoResponse
from waldur_api_client.models.order_state import OrderState
from waldur_api_client.models.public_offering_details import PublicOfferingDetails
from waldur_api_client.models.order_uuid import OrderUUID
from waldur_api_client.models.request_types import RequestTypes
from waldur_api_client.models.resource_terminate_request import ResourceTerminateRequest
from waldur_api_client.models.resource_state import ResourceState
from waldur_api_client.models.status import Status
from waldur_api_client.types import Unset

PASSED = 0
FAILED = 0


def report(ok, name, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}: {detail}")
    sys.stdout.flush()


def check(name, fn):
    """Runs one check; `fn` raises AssertionError (or anything else) to fail it."""
    try:
        fn()
    except AssertionError as e:
        report(False, name, str(e) or "assertion failed")
    except Exception:  # noqa: BLE001 - a crash in the client is a failed check
        report(False, name, traceback.format_exc(limit=6).strip().replace("\n", "\n    "))
    else:
        report(True, name)


def eq(got, want, what=""):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def roundtrip(model):
    """`to_dict` then `from_dict` must give the same dict back."""
    d = model.to_dict()
    again = type(model).from_dict(json.loads(json.dumps(d, default=str))).to_dict()
    assert json.loads(json.dumps(d, default=str)) == json.loads(
        json.dumps(again, default=str)
    ), f"{type(model).__name__} does not round-trip"
    return d


def raises(status, fn, message=None):
    """`fn` must raise UnexpectedStatus with `status` (and the DRF list body [message])."""
    try:
        fn()
    except UnexpectedStatus as e:
        eq(e.status_code, status, "status")
        if message is not None:
            eq(json.loads(e.content), [message], "body")
        return e
    raise AssertionError(f"no UnexpectedStatus {status} raised")


def aware(t, what):
    assert isinstance(t, dt.datetime), f"{what} is {t!r}, not a datetime"
    assert t.utcoffset() == dt.timedelta(0), f"{what} is not UTC: {t!r}"


def hexid(u):
    return uuidlib.UUID(str(u)).hex


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(days, hour):
    d = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).date()
    return dt.datetime(d.year, d.month, d.day, hour, tzinfo=dt.timezone.utc)


def clients(prefix):
    base = os.environ[f"{prefix}_BASE_URL"]
    tokens = json.loads(os.environ[f"{prefix}_TOKENS"])
    return base, {
        user: AuthenticatedClient(base_url=base, token=tok, timeout=30.0)
        for user, tok in tokens.items()
    }


BASE, C = clients("BOOKCAL")
_, NOCRED = clients("BOOKCAL_NOCRED")
S = {}  # state shared between checks


# ---------------------------------------------------------------- booking offerings


def offerings_list():
    items = booking_offerings_list.sync(client=C["owner"])
    assert all(isinstance(o, Offering) for o in items)
    eq(
        [o.name for o in items],
        ["Electron microscope JEM-2100", "Meeting room Aurora", "Telescope night slots"],
        "names in default order",
    )
    for o in items:
        eq(o.type_, "Marketplace.Booking", f"{o.name} type")
        eq(o.state, OfferingState.ACTIVE, f"{o.name} state")
        eq(o.customer_name, "Northlab Facilities", f"{o.name} customer_name")
        eq(o.url, f"{BASE}/api/booking-offerings/{o.uuid.hex}/", f"{o.name} url")
        aware(o.created, f"{o.name} created")
        assert isinstance(o.googlecalendar, GoogleCalendar), f"{o.name} googlecalendar"
        roundtrip(o)
    by_slug = {o.slug: o for o in items}
    eq(set(by_slug), {"room-aurora", "tem-2100", "telescope"}, "slugs")
    S["off"] = by_slug
    S["provider"] = by_slug["room-aurora"].customer_uuid
    room_gc = by_slug["room-aurora"].googlecalendar
    eq((room_gc.backend_id, room_gc.public, room_gc.http_link), (None, False, None), "room gc")
    tem_gc = by_slug["tem-2100"].googlecalendar
    eq(tem_gc.public, True, "tem public")
    eq(tem_gc.backend_id, "tem-2100@group.calendar.google.com", "tem calendar id")
    eq(
        tem_gc.http_link,
        "https://calendar.google.com/calendar/embed?src=tem-2100%40group.calendar.google.com",
        "tem http_link",
    )
    eq(by_slug["telescope"].googlecalendar.public, False, "telescope public")


def offerings_pages():
    p1 = booking_offerings_list.sync_detailed(client=C["owner"], page_size=2)
    eq(p1.status_code, 200, "status")
    eq(len(p1.parsed), 2, "page 1 size")
    eq(p1.headers["x-result-count"], "3", "X-Result-Count")
    assert 'rel="next"' in p1.headers["link"], p1.headers["link"]
    p2 = booking_offerings_list.sync(client=C["owner"], page=2, page_size=2)
    eq([o.name for o in p2], ["Telescope night slots"], "page 2")
    raises(404, lambda: booking_offerings_list.sync(client=C["owner"], page=3, page_size=2))


def offerings_sync_all():
    items = booking_offerings_list.sync_all(client=C["admin"])
    eq(len(items), 3, "all offerings for staff")
    eq(len({o.uuid for o in items}), 3, "distinct")


def offerings_fields():
    items = booking_offerings_list.sync(
        client=C["owner"], field=[OfferingFieldEnum.NAME, OfferingFieldEnum.UUID]
    )
    eq(len(items), 3, "count")
    for o in items:
        assert not isinstance(o.name, Unset) and not isinstance(o.uuid, Unset)
        assert isinstance(o.state, Unset), f"state not filtered out: {o.state!r}"
        assert isinstance(o.googlecalendar, Unset), "googlecalendar not filtered out"


def offerings_retrieve():
    tem = S["off"]["tem-2100"]
    o = booking_offerings_retrieve.sync(uuid=tem.uuid, client=C["owner"])
    eq(o.uuid, tem.uuid, "uuid")
    eq(o.name, "Electron microscope JEM-2100", "name")
    eq(o.googlecalendar.public, True, "googlecalendar.public")
    eq(o.category_title, "Instruments", "category_title")
    roundtrip(o)
    raises(404, lambda: booking_offerings_retrieve.sync(uuid=tem.uuid, client=C["alice"]))
    raises(404, lambda: booking_offerings_retrieve.sync(uuid=uuidlib.uuid4(), client=C["owner"]))


def offerings_count():
    eq(booking_offerings_count.sync(client=C["owner"]), 3, "owner")
    eq(booking_offerings_count.sync(client=C["manager"]), 3, "manager")
    eq(booking_offerings_count.sync(client=C["admin"]), 3, "staff")
    eq(booking_offerings_count.sync(client=C["alice"]), 0, "consumer")


# ---------------------------------------------------------------- calendar actions


def calendar_without_credentials():
    offs = booking_offerings_list.sync(client=NOCRED["owner"])
    room = next(o for o in offs if o.slug == "room-aurora")
    for fn in (
        booking_offerings_google_calendar_sync,
        booking_offerings_share_google_calendar,
        booking_offerings_unshare_google_calendar,
    ):
        raises(
            400,
            lambda fn=fn: fn.sync_detailed(uuid=room.uuid, client=NOCRED["owner"]),
            "Google credentials do not exist.",
        )


def calendar_room_sync_then_busy():
    room = S["off"]["room-aurora"].uuid
    raises(
        400,
        lambda: booking_offerings_unshare_google_calendar.sync_detailed(uuid=room, client=C["owner"]),
        "The calendar does not exist.",
    )
    r = booking_offerings_google_calendar_sync.sync_detailed(uuid=room, client=C["owner"])
    eq(r.status_code, 200, "sync status")
    eq(r.parsed, None, "sync parsed")
    raises(
        400,
        lambda: booking_offerings_share_google_calendar.sync_detailed(uuid=room, client=C["owner"]),
        "The calendar cannot be updated.",
    )
    gc = booking_offerings_retrieve.sync(uuid=room, client=C["owner"]).googlecalendar
    eq(gc.additional_properties.get("state"), "Creation Scheduled", "calendar state")
    eq((gc.public, gc.http_link), (False, None), "still private")


def calendar_public_offering():
    tem = S["off"]["tem-2100"].uuid
    raises(
        400,
        lambda: booking_offerings_share_google_calendar.sync_detailed(uuid=tem, client=C["owner"]),
        "The calendar is public already.",
    )
    eq(
        booking_offerings_unshare_google_calendar.sync_detailed(uuid=tem, client=C["owner"]).status_code,
        200,
        "unshare status",
    )
    gc = booking_offerings_retrieve.sync(uuid=tem, client=C["owner"]).googlecalendar
    eq(gc.additional_properties.get("state"), "Update Scheduled", "calendar state")


def calendar_private_offering():
    tel = S["off"]["telescope"].uuid
    raises(
        400,
        lambda: booking_offerings_unshare_google_calendar.sync_detailed(uuid=tel, client=C["owner"]),
        "The calendar is private already.",
    )
    r = booking_offerings_share_google_calendar.sync_detailed(uuid=tel, client=C["owner"])
    eq((r.status_code, r.parsed), (200, None), "share")
    raises(
        400,
        lambda: booking_offerings_google_calendar_sync.sync_detailed(uuid=tel, client=C["owner"]),
        "The calendar cannot be updated.",
    )


def calendar_permissions():
    room = S["off"]["room-aurora"].uuid
    raises(403, lambda: booking_offerings_google_calendar_sync.sync_detailed(uuid=room, client=C["manager"]))
    raises(404, lambda: booking_offerings_google_calendar_sync.sync_detailed(uuid=room, client=C["alice"]))


# ---------------------------------------------------------------- booking resources

DEMO = ["Follow-up imaging", "Kick-off meeting", "Sample imaging run", "Weekly sync"]


def resources_list():
    items = booking_resources_list.sync(client=C["owner"])
    assert all(isinstance(r, BookingResource) for r in items)
    eq([r.name for r in items], DEMO, "names in default order")
    by_name = {r.name: r for r in items}
    S["res"] = by_name
    kick = by_name["Kick-off meeting"]
    S["project_url"] = kick.project
    S["project"] = kick.project_uuid
    S["customer"] = kick.customer_uuid
    eq(kick.project_name, "Imaging study", "project_name")
    eq(kick.customer_name, "Alice Research", "customer_name")
    eq(kick.provider_name, "Northlab Facilities", "provider_name")
    eq(kick.provider_uuid, S["provider"], "provider_uuid")
    eq(kick.offering_uuid, S["off"]["room-aurora"].uuid, "offering_uuid")
    eq(kick.offering_type, "Marketplace.Booking", "offering_type")
    eq(kick.resource_type, "Marketplace.Booking", "resource_type")
    eq(kick.state, ResourceState.OK, "state")
    eq(kick.created_by_username, "alice", "created_by_username")
    eq(kick.url, f"{BASE}/api/booking-resources/{kick.uuid.hex}/", "url")
    eq(kick.project, f"{BASE}/api/projects/{kick.project_uuid.hex}/", "project url")
    eq(by_name["Weekly sync"].state, ResourceState.CREATING, "Weekly sync state")
    eq(len(by_name["Weekly sync"].slots), 2, "Weekly sync slots")
    for r in items:
        aware(r.created, f"{r.name} created")
        aware(r.modified, f"{r.name} modified")
        assert r.slots, f"{r.name} has no slots"
        for s in r.slots:
            assert isinstance(s, BookingSlot)
            aware(s.start, f"{r.name} slot start")
            aware(s.end, f"{r.name} slot end")
            assert s.start < s.end, f"{r.name} slot {s.start} >= {s.end}"
            assert isinstance(s.backend_id, str) and s.backend_id, "slot backend_id"
        roundtrip(r)
    s = by_name["Kick-off meeting"].slots[0]
    eq((s.end - s.start), dt.timedelta(hours=2), "Kick-off length")


def names(items):
    return [r.name for r in items]


def resources_filters():
    room = S["off"]["room-aurora"].uuid
    tem = S["off"]["tem-2100"].uuid
    o = C["owner"]
    eq(names(booking_resources_list.sync(client=o, offering_uuid=[room])),
       ["Kick-off meeting", "Weekly sync"], "offering_uuid")
    eq(names(booking_resources_list.sync(client=o, offering_uuid=[room, tem])), DEMO,
       "two offering_uuids")
    eq(names(booking_resources_list.sync(client=o, offering=S["off"]["tem-2100"].url)),
       ["Follow-up imaging", "Sample imaging run"], "offering url")
    eq(names(booking_resources_list.sync(client=o, state=[ResourceState.OK])),
       ["Kick-off meeting", "Sample imaging run"], "state=OK")
    eq(names(booking_resources_list.sync(client=o, state=[ResourceState.OK, ResourceState.CREATING])),
       DEMO, "state=OK,Creating")
    by_start = ["Kick-off meeting", "Sample imaging run", "Weekly sync", "Follow-up imaging"]
    eq(names(booking_resources_list.sync(client=o, o=[BookingResourceOEnum.SCHEDULES])),
       by_start, "o=schedules")
    eq(names(booking_resources_list.sync(client=o, o=[BookingResourceOEnum.VALUE_2])),
       by_start[::-1], "o=-schedules")
    eq(names(booking_resources_list.sync(client=o, o=[BookingResourceOEnum.VALUE_1])),
       DEMO[::-1], "o=-name")
    eq(len(booking_resources_list.sync(client=o, o=[BookingResourceOEnum.TYPE, BookingResourceOEnum.NAME])),
       4, "o=type,name")
    eq(len(booking_resources_list.sync(client=o, o=[BookingResourceOEnum.VALUE_0])), 4, "o=-created")
    eq(len(booking_resources_list.sync(client=o, customer_uuid=S["customer"])), 4, "customer_uuid")
    eq(len(booking_resources_list.sync(client=o, customer_uuid=S["provider"])), 0,
       "customer_uuid of the provider")
    eq(len(booking_resources_list.sync(client=o, provider_uuid=S["provider"])), 4, "provider_uuid")
    eq(len(booking_resources_list.sync(client=o, project_uuid=S["project"])), 4, "project_uuid")
    eq(len(booking_resources_list.sync(client=o, connected_customer_uuid=S["customer"])), 4,
       "connected_customer_uuid")
    eq(names(booking_resources_list.sync(client=o, query="imaging")),
       ["Follow-up imaging", "Sample imaging run"], "query")
    kick = S["res"]["Kick-off meeting"]
    eq(names(booking_resources_list.sync(client=o, query=str(kick.uuid))), ["Kick-off meeting"],
       "query by dashed uuid")
    eq(names(booking_resources_list.sync(client=o, name="SYNC")), ["Weekly sync"], "name")
    eq(names(booking_resources_list.sync(client=o, name_exact="Weekly sync")), ["Weekly sync"],
       "name_exact")
    eq(names(booking_resources_list.sync(client=o, offering_slug=["telescope"])), [], "offering_slug")
    eq(names(booking_resources_list.sync(client=o, project_name="imaging")), DEMO, "project_name")
    eq(len(booking_resources_list.sync(client=o, category_uuid=S["off"]["tem-2100"].category_uuid)), 2,
       "category_uuid")
    eq(names(booking_resources_list.sync(client=o, backend_id=kick.backend_id)) if kick.backend_id else [kick.name],
       [kick.name], "backend_id")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    eq(len(booking_resources_list.sync(client=o, created=past)), 4, "created after (aware)")
    eq(len(booking_resources_list.sync(client=o, created=future)), 0, "created after the future")
    eq(len(booking_resources_list.sync(client=o, modified=past.replace(tzinfo=None))), 4,
       "modified after (naive, microseconds)")
    page = booking_resources_list.sync(client=o, page=2, page_size=3)
    eq(names(page), ["Weekly sync"], "page 2 of 3")
    only = booking_resources_list.sync(
        client=o, field=[BookingResourceFieldEnum.NAME, BookingResourceFieldEnum.SLOTS]
    )
    eq(names(only), DEMO, "field=name,slots")
    assert all(isinstance(r.uuid, Unset) and r.slots for r in only), "field selection"
    raises(404, lambda: booking_resources_list.sync(client=o, page=0))


def resources_visibility():
    eq(len(booking_resources_list.sync(client=C["manager"])), 4, "provider manager")
    eq(len(booking_resources_list.sync(client=C["admin"])), 4, "staff")
    # Waldur shows a booking to its creator, not to the project's other members.
    eq(len(booking_resources_list.sync(client=C["alice"])), 3, "creator of three")
    eq(len(booking_resources_list.sync(client=C["bob"])), 1, "creator of one")


def resources_retrieve():
    w = S["res"]["Weekly sync"]
    r = booking_resources_retrieve.sync(uuid=w.uuid, client=C["owner"])
    eq((r.uuid, r.name, r.state), (w.uuid, "Weekly sync", ResourceState.CREATING), "resource")
    eq([s.start for s in r.slots], [s.start for s in w.slots], "slots")
    eq(r.offering_name, "Meeting room Aurora", "offering_name")
    roundtrip(r)
    raises(404, lambda: booking_resources_retrieve.sync(uuid=uuidlib.uuid4(), client=C["owner"]))


def resources_count():
    o = C["owner"]
    eq(booking_resources_count.sync(client=o), 4, "all")
    eq(booking_resources_count.sync(client=o, state=[ResourceState.OK]), 2, "state=OK")
    eq(booking_resources_count.sync(client=o, offering_uuid=[S["off"]["tem-2100"].uuid]), 2, "offering")
    eq(booking_resources_count.sync(client=o, query="weekly"), 1, "query")


def resources_accept():
    w = S["res"]["Weekly sync"]
    # bob cannot see alice's booking; his own he may not accept.
    raises(404, lambda: booking_resources_accept.sync(uuid=w.uuid, client=C["bob"]))
    f = S["res"]["Follow-up imaging"]
    raises(403, lambda: booking_resources_accept.sync(uuid=f.uuid, client=C["bob"]))
    got = booking_resources_accept.sync(uuid=w.uuid, client=C["owner"])
    assert isinstance(got, BookingOrderUUID)
    assert isinstance(got.order_uuid, uuidlib.UUID), got.order_uuid
    r = booking_resources_retrieve.sync(uuid=w.uuid, client=C["owner"])
    eq(r.state, ResourceState.OK, "state after accept")
    order = marketplace_orders_retrieve.sync(uuid=got.order_uuid, client=C["owner"])
    eq(order.state, OrderState.DONE, "order state")
    eq(order.marketplace_resource_uuid, w.uuid, "order resource")
    e = raises(409, lambda: booking_resources_accept.sync(uuid=w.uuid, client=C["owner"]))
    eq(json.loads(e.content), {"detail": "Valid states for operation: Creating."}, "409 body")


def resources_reject():
    f = S["res"]["Follow-up imaging"]
    got = booking_resources_reject.sync(uuid=f.uuid, client=C["owner"])
    assert isinstance(got.order_uuid, uuidlib.UUID), got.order_uuid
    eq(booking_resources_retrieve.sync(uuid=f.uuid, client=C["owner"]).state,
       ResourceState.TERMINATED, "state after reject")
    eq(marketplace_orders_retrieve.sync(uuid=got.order_uuid, client=C["owner"]).state,
       OrderState.CANCELED, "order state")
    raises(409, lambda: booking_resources_reject.sync(uuid=f.uuid, client=C["owner"]))


# ---------------------------------------------------------------- orders


def order_body(offering_slug, slots, name, fmt=iso, public_url=True):
    off = S["off"][offering_slug]
    url = (
        f"{BASE}/api/marketplace-public-offerings/{off.uuid.hex}/" if public_url else off.url
    )
    attrs = GenericOrderAttributes(name=name, description=f"{name} (waldur-api-client)")
    attrs["schedules"] = [{"start": fmt(s), "end": fmt(e)} for s, e in slots]
    return OrderCreateRequest(
        offering=url, project=S["project_url"], attributes=attrs, request_comment=None
    )


def check_order(o, state, what):
    assert isinstance(o, OrderDetails)
    eq(o.state, state, f"{what} state")
    eq(o.type_, RequestTypes.CREATE, f"{what} type")
    eq(o.project_uuid, S["project"], f"{what} project_uuid")
    eq(o.customer_uuid, S["customer"], f"{what} customer_uuid")
    eq(o.provider_uuid, S["provider"], f"{what} provider_uuid")
    eq(o.offering_type, "Marketplace.Booking", f"{what} offering_type")
    aware(o.created, f"{what} created")
    assert isinstance(o.marketplace_resource_uuid, uuidlib.UUID)
    roundtrip(o)


def orders_create_by_owner():
    # alice owns the project's organisation: consumer review is automatic, executing.
    body = order_body("room-aurora", [(at(30, 9), at(30, 11))], "Client booking A")
    r = marketplace_orders_create.sync_detailed(client=C["alice"], body=body)
    eq(r.status_code, 201, "status")
    o = r.parsed
    check_order(o, OrderState.EXECUTING, "order")
    eq(o.attributes.additional_properties.get("name"), "Client booking A", "attributes.name")
    eq(len(o.attributes.additional_properties.get("schedules", [])), 1, "attributes.schedules")
    eq(o.offering_uuid, S["off"]["room-aurora"].uuid, "offering_uuid")
    eq(o.created_by_username, "alice", "created_by_username")
    eq(o.consumer_reviewed_by_username, "alice", "consumer_reviewed_by_username")
    S["order_a"] = o
    res = booking_resources_retrieve.sync(uuid=o.marketplace_resource_uuid, client=C["owner"])
    eq(res.state, ResourceState.CREATING, "resource state")
    eq(res.name, "Client booking A", "resource name")
    eq([(s.start, s.end) for s in res.slots], [(at(30, 9), at(30, 11))], "slots")
    assert res.slots[0].backend_id.startswith("booking_"), res.slots[0].backend_id


def orders_create_isoformat_and_booking_offering_url():
    # Python's isoformat ("+00:00") and the booking-offerings URL are accepted too.
    body = order_body(
        "tem-2100", [(at(31, 9), at(31, 10)), (at(32, 9), at(32, 10))], "Client booking B",
        fmt=lambda t: t.isoformat(), public_url=False,
    )
    o = marketplace_orders_create.sync(client=C["alice"], body=body)
    check_order(o, OrderState.EXECUTING, "order")
    S["order_b"] = o
    res = booking_resources_retrieve.sync(uuid=o.marketplace_resource_uuid, client=C["alice"])
    eq(len(res.slots), 2, "slots")


def orders_create_refused():
    clash = order_body("room-aurora", [(at(30, 10), at(30, 12))], "Clash")
    e = raises(400, lambda: marketplace_orders_create.sync(client=C["alice"], body=clash))
    msg = json.loads(e.content)
    assert isinstance(msg, list) and "is not available." in msg[0], msg
    past = order_body("room-aurora", [(at(-2, 9), at(-2, 10))], "Past")
    raises(400, lambda: marketplace_orders_create.sync(client=C["alice"], body=past),
           "Past slots are not available for selection.")
    none = order_body("room-aurora", [], "None")
    none.attributes.additional_properties.pop("schedules")
    raises(400, lambda: marketplace_orders_create.sync(client=C["alice"], body=none),
           "Schedules are required.")


def orders_consumer_then_provider():
    # bob is a project member only: his order waits for the consumer's approval.
    body = order_body("telescope", [(at(33, 20), at(33, 23))], "Bob's night")
    o = marketplace_orders_create.sync(client=C["bob"], body=body)
    check_order(o, OrderState.PENDING_CONSUMER, "bob's order")
    S["order_bob"] = o
    raises(403, lambda: marketplace_orders_approve_by_consumer.sync(uuid=o.uuid, client=C["bob"]))
    got = marketplace_orders_approve_by_consumer.sync(uuid=o.uuid, client=C["alice"])
    assert isinstance(got, OrderInfoResponse)
    assert isinstance(got.detail, str) and got.detail, got.detail
    again = marketplace_orders_retrieve.sync(uuid=o.uuid, client=C["bob"])
    eq(again.state, OrderState.EXECUTING, "after approve_by_consumer")
    eq(again.consumer_reviewed_by_username, "alice", "consumer_reviewed_by_username")
    aware(again.consumer_reviewed_at, "consumer_reviewed_at")
    r = marketplace_orders_approve_by_provider.sync_detailed(
        uuid=o.uuid, client=C["owner"], body=OrderApproveByProviderRequest()
    )
    eq(r.status_code, 409, "approve_by_provider on executing")
    eq(r.parsed, None, "409 parsed")
    eq(json.loads(r.content), {"detail": "Valid states for operation: pending-provider."}, "409 body")
    raises(409, lambda: marketplace_orders_approve_by_consumer.sync(uuid=o.uuid, client=C["alice"]))


def orders_set_backend_id_and_done():
    o = S["order_bob"]
    st = marketplace_orders_set_backend_id.sync(
        uuid=o.uuid, client=C["owner"], body=OrderBackendIDRequest(backend_id="tel-42")
    )
    assert isinstance(st, Status) and isinstance(st.status, str) and st.status, st
    eq(marketplace_orders_retrieve.sync(uuid=o.uuid, client=C["owner"]).backend_id, "tel-42",
       "backend_id")
    raises(403, lambda: marketplace_orders_set_state_done.sync_detailed(uuid=o.uuid, client=C["bob"]))
    r = marketplace_orders_set_state_done.sync_detailed(uuid=o.uuid, client=C["owner"])
    eq((r.status_code, r.parsed), (200, None), "done")
    again = marketplace_orders_retrieve.sync(uuid=o.uuid, client=C["owner"])
    eq(again.state, OrderState.DONE, "order state")
    aware(again.completed_at, "completed_at")
    res = booking_resources_retrieve.sync(uuid=o.marketplace_resource_uuid, client=C["owner"])
    eq(res.state, ResourceState.OK, "resource state")
    raises(409, lambda: marketplace_orders_set_state_done.sync_detailed(uuid=o.uuid, client=C["owner"]))


def orders_cancel():
    o = S["order_a"]
    r = marketplace_orders_cancel.sync_detailed(uuid=o.uuid, client=C["alice"])
    eq(r.status_code, 202, "status")
    eq(r.parsed, None, "parsed")
    eq(marketplace_orders_retrieve.sync(uuid=o.uuid, client=C["alice"]).state,
       OrderState.CANCELED, "order state")
    eq(booking_resources_retrieve.sync(uuid=o.marketplace_resource_uuid, client=C["owner"]).state,
       ResourceState.TERMINATED, "resource state")
    raises(409, lambda: marketplace_orders_cancel.sync_detailed(uuid=o.uuid, client=C["alice"]))
    # The slot is free again.
    again = order_body("room-aurora", [(at(30, 9), at(30, 11))], "Client booking A again")
    eq(marketplace_orders_create.sync(client=C["alice"], body=again).state,
       OrderState.EXECUTING, "rebooked")


def orders_destroy():
    body = order_body("telescope", [(at(34, 20), at(34, 22))], "Bob's second night")
    o = marketplace_orders_create.sync(client=C["bob"], body=body)
    eq(o.state, OrderState.PENDING_CONSUMER, "pending")
    r = marketplace_orders_destroy.sync_detailed(uuid=o.uuid, client=C["bob"])
    eq((r.status_code, r.parsed), (204, None), "destroy")
    raises(404, lambda: marketplace_orders_retrieve.sync(uuid=o.uuid, client=C["bob"]))
    raises(404, lambda: marketplace_orders_destroy.sync_detailed(uuid=o.uuid, client=C["bob"]))
    raises(409, lambda: marketplace_orders_destroy.sync_detailed(uuid=S["order_b"].uuid, client=C["alice"]))


def orders_list_and_count():
    a = C["alice"]
    items = marketplace_orders_list.sync(client=a, page_size=100)
    assert all(isinstance(o, OrderDetails) for o in items)
    for o in items:
        roundtrip(o)
    total = marketplace_orders_count.sync(client=a)
    eq(len(items), total, "list length vs count")
    created = [o.created for o in items]
    eq(created, sorted(created), "default order by created")
    desc = marketplace_orders_list.sync(client=a, page_size=100, o=[OrderDetailsOEnum.VALUE_2])
    eq(sorted(o.uuid for o in desc), sorted(o.uuid for o in items), "o=-created: same orders")
    eq([o.created for o in desc], sorted(created, reverse=True), "o=-created")
    ex = marketplace_orders_list.sync(client=a, state=[OrderState.EXECUTING])
    assert ex and all(o.state == OrderState.EXECUTING for o in ex), [o.state for o in ex]
    eq(marketplace_orders_count.sync(client=a, state=[OrderState.EXECUTING]), len(ex), "count executing")
    tem = S["off"]["tem-2100"].uuid
    on_tem = marketplace_orders_list.sync(client=a, offering_uuid=tem)
    assert on_tem and all(o.offering_uuid == tem for o in on_tem), "offering_uuid filter"
    eq(len(marketplace_orders_list.sync(client=a, project_uuid=S["project"], page_size=100)), total,
       "project_uuid filter")
    eq(len(marketplace_orders_list.sync(client=a, project_uuid=uuidlib.uuid4())), 0, "other project")
    eq(len(marketplace_orders_list.sync(client=a, type_=[RequestTypes.CREATE], page_size=100)), total,
       "type=Create")
    mine = marketplace_orders_list.sync(client=a, query=S["order_b"].uuid.hex)
    eq([o.uuid for o in mine], [S["order_b"].uuid], "query by uuid")
    pend = marketplace_orders_list.sync(client=a, can_approve_as_consumer=True)
    eq(pend, [], "nothing waits for alice")
    eq(marketplace_orders_count.sync(client=C["owner"], provider_uuid=S["provider"]),
       marketplace_orders_count.sync(client=C["admin"]), "provider sees all its orders")


def orders_retrieve():
    b = S["order_b"]
    o = marketplace_orders_retrieve.sync(uuid=b.uuid, client=C["alice"])
    check_order(o, OrderState.EXECUTING, "order B")
    eq(o.attributes.additional_properties.get("name"), "Client booking B", "attributes.name")
    eq(o.url, f"{BASE}/api/marketplace-orders/{b.uuid.hex}/", "url")
    raises(404, lambda: marketplace_orders_retrieve.sync(uuid=uuidlib.uuid4(), client=C["alice"]))


def orders_offering_retrieve():
    tem = marketplace_orders_offering_retrieve.sync(uuid=S["order_b"].uuid, client=C["alice"])
    assert isinstance(tem, PublicOfferingDetails)
    eq(tem.uuid, S["off"]["tem-2100"].uuid, "uuid")
    eq(tem.google_calendar_is_public, True, "tem public")
    eq(
        tem.google_calendar_link,
        "https://calendar.google.com/calendar/embed?src=tem-2100%40group.calendar.google.com",
        "tem link",
    )
    roundtrip(tem)
    room = marketplace_orders_offering_retrieve.sync(uuid=S["order_a"].uuid, client=C["alice"])
    eq((room.google_calendar_is_public, room.google_calendar_link), (False, None), "room")
    eq(room.name, "Meeting room Aurora", "name")


# ---------------------------------------------------------------- marketplace bookings


def bookings_list():
    room = S["off"]["room-aurora"].uuid
    items = marketplace_bookings_list.sync(uuid=str(room), client=C["owner"])
    assert items and all(isinstance(b, Booking) for b in items)
    starts = [b.start for b in items]
    eq(starts, sorted(starts), "sorted by start")
    for b in items:
        aware(b.start, "start")
        assert b.start < b.end
        roundtrip(b)
    # Kick-off (2 h), Weekly sync (2 x 1 h, accepted), Client booking A again (2 h).
    eq(len(items), 4, "taken slots")
    eq({b.created_by_full_name for b in items}, {"Alice Åkesson"}, "names for the provider")
    eq(marketplace_bookings_list.sync(uuid=room.hex, client=C["owner"])[0].start, starts[0], "hex uuid")


# ---------------------------------------------------------------- sync_all over pages


def resources_sync_all_follows_next():
    tel = S["off"]["telescope"]
    before = booking_resources_count.sync(client=C["owner"])
    n = 105  # more than one page of 100, which sync_all always asks for
    for i in range(n):
        start = at(60 + i, 12)
        body = order_body("telescope", [(start, start + dt.timedelta(hours=1))], f"Bulk {i:03d}")
        o = marketplace_orders_create.sync(client=C["alice"], body=body)
        assert o.state == OrderState.EXECUTING
    eq(booking_resources_count.sync(client=C["owner"]), before + n, "count")
    every = booking_resources_list.sync_all(client=C["owner"])
    eq(len(every), before + n, "sync_all length")
    eq(len({r.uuid for r in every}), before + n, "sync_all distinct")
    names_ = [r.name for r in every]
    eq(names_, sorted(names_), "sync_all keeps the order")
    bulk = booking_resources_list.sync_all(
        client=C["owner"], offering_uuid=[tel.uuid], o=[BookingResourceOEnum.VALUE_2]
    )
    only = [r for r in bulk if r.name.startswith("Bulk ")]
    eq(len(only), n, "sync_all with filters")
    eq([r.name for r in only], [f"Bulk {i:03d}" for i in reversed(range(n))], "o=-schedules")


# ---------------------------------------------------------------- terminate


def resources_terminate():
    k = S["res"]["Kick-off meeting"]
    body = ResourceTerminateRequest()
    raises(403, lambda: marketplace_resources_terminate.sync(uuid=k.uuid, client=C["bob"], body=body))
    got = marketplace_resources_terminate.sync(uuid=k.uuid, client=C["alice"], body=body)
    assert isinstance(got, OrderUUID), got
    assert isinstance(got.order_uuid, uuidlib.UUID), got.order_uuid
    order = marketplace_orders_retrieve.sync(uuid=got.order_uuid, client=C["alice"])
    eq((order.type_, order.state), (RequestTypes.TERMINATE, OrderState.DONE), "terminate order")
    eq(order.marketplace_resource_uuid, k.uuid, "terminate order resource")
    roundtrip(order)
    eq(booking_resources_retrieve.sync(uuid=k.uuid, client=C["owner"]).state,
       ResourceState.TERMINATED, "state after terminate")
    e = raises(409, lambda: marketplace_resources_terminate.sync(uuid=k.uuid, client=C["alice"], body=body))
    eq(json.loads(e.content), {"detail": "Valid states for operation: OK, Erred."}, "409 body")
    # Its time is free again.
    s = k.slots[0]
    o = marketplace_orders_create.sync(client=C["alice"], body=order_body(
        "room-aurora", [(s.start, s.end)], "After terminate"))
    eq(o.state, OrderState.EXECUTING, "rebooked")


CHECKS = [
    offerings_list,
    offerings_pages,
    offerings_sync_all,
    offerings_fields,
    offerings_retrieve,
    offerings_count,
    calendar_without_credentials,
    calendar_room_sync_then_busy,
    calendar_private_offering,
    calendar_permissions,
    resources_list,
    resources_filters,
    resources_visibility,
    resources_retrieve,
    resources_count,
    resources_accept,
    resources_reject,
    orders_create_by_owner,
    orders_create_isoformat_and_booking_offering_url,
    orders_create_refused,
    orders_consumer_then_provider,
    orders_set_backend_id_and_done,
    orders_offering_retrieve,
    orders_cancel,
    orders_destroy,
    orders_list_and_count,
    orders_retrieve,
    calendar_public_offering,
    bookings_list,
    resources_sync_all_follows_next,
    resources_terminate,
]


def main():
    for fn in CHECKS:
        check(fn.__name__, fn)
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
