#!/usr/bin/env python3
"""Checks the bookcal Google Calendar emulator with Google's official Python client.

Usage: google_client_check.py KEY_FILE ROOT_URL

KEY_FILE is the emulator's service-account key (its token_uri points at the
emulator), ROOT_URL the emulator's root ("http://127.0.0.1:PORT/"). Uses
google-api-python-client with the discovery document shipped in the package
(static_discovery=True, no network) and google-auth's service-account JWT grant.
Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""

import json
import re
import sys

from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

SCOPES = ["https://www.googleapis.com/auth/calendar"]
PASSED = 0
FAILED = 0


def check(name, condition, detail=""):
    global PASSED, FAILED
    if condition:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name} {detail}")


def expect_http_error(name, request, status, reason):
    try:
        request.execute()
    except HttpError as error:
        body = json.loads(error.content.decode("utf-8") or "{}")
        got_reason = body.get("error", {}).get("errors", [{}])[0].get("reason")
        check(name, error.resp.status == status and got_reason == reason,
              f"got {error.resp.status} {got_reason}")
        return
    check(name, False, "no error raised")


def timed(event_id, day, hour, summary="Booking"):
    event = {
        "summary": summary,
        "start": {"dateTime": f"2024-05-{day:02d}T{hour:02d}:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"2024-05-{day:02d}T{hour + 1:02d}:00:00+02:00", "timeZone": "Europe/Berlin"},
        "extendedProperties": {"private": {"bookcal": "python-check"}},
    }
    if event_id:
        event["id"] = event_id
    return event


def list_all(service, calendar_id, **params):
    """Pages through events.list with list_next; returns (items, pages, last response)."""
    items, pages = [], 0
    request = service.events().list(calendarId=calendar_id, **params)
    response = None
    while request is not None:
        response = request.execute()
        pages += 1
        items.extend(response.get("items", []))
        if "nextPageToken" in response and "nextSyncToken" in response:
            check("nextSyncToken only on the last page", False)
        request = service.events().list_next(request, response)
    return items, pages, response


def main(key_file, root_url):
    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=SCOPES)
    service = build(
        "calendar",
        "v3",
        credentials=credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": root_url + "calendar/v3/"},
    )

    # calendars
    calendar = service.calendars().insert(body={"summary": "Python check", "timeZone": "Europe/Berlin"}).execute()
    calendar_id = calendar["id"]
    check("calendars.insert returns a group calendar id",
          re.fullmatch(r"c_[0-9a-f]+@group\.calendar\.google\.com", calendar_id) is not None, calendar_id)
    got = service.calendars().get(calendarId=calendar_id).execute()
    check("calendars.get", got["summary"] == "Python check" and got["timeZone"] == "Europe/Berlin", got)
    updated = service.calendars().update(
        calendarId=calendar_id, body={"summary": "Python check 2", "timeZone": "Europe/Berlin"}).execute()
    check("calendars.update", updated["summary"] == "Python check 2", updated)
    listed = service.calendarList().list().execute()
    check("calendarList.list shows the calendar", calendar_id in [c["id"] for c in listed.get("items", [])])

    # events insert and paged list
    for i in range(25):
        service.events().insert(calendarId=calendar_id, body=timed(f"pcheck{i:04d}", 1 + i % 28, 9),
                                sendUpdates="none").execute()
    items, pages, last = list_all(service, calendar_id, maxResults=10)
    check("events.list pages via list_next", pages == 3 and len(items) == 25, f"{pages} pages, {len(items)} items")
    check("events.list last page has nextSyncToken", "nextSyncToken" in last)
    sync_token = last.get("nextSyncToken")
    filtered, _, _ = list_all(service, calendar_id, privateExtendedProperty="bookcal=python-check", maxResults=2500)
    check("privateExtendedProperty filter", len(filtered) == 25, len(filtered))
    expect_http_error("duplicate id is 409 duplicate",
                      service.events().insert(calendarId=calendar_id, body=timed("pcheck0000", 1, 9)), 409, "duplicate")
    expect_http_error("bad id is 400 invalid",
                      service.events().insert(calendarId=calendar_id, body=timed("pcheck-x", 1, 9)), 400, "invalid")

    # get, update, patch, delete
    event = service.events().get(calendarId=calendar_id, eventId="pcheck0001").execute()
    check("events.get", event["id"] == "pcheck0001" and event["kind"] == "calendar#event", event)
    body = timed("pcheck0001", 2, 11, summary="Moved")
    changed = service.events().update(calendarId=calendar_id, eventId="pcheck0001", body=body,
                                      sendUpdates="none").execute()
    check("events.update", changed["summary"] == "Moved" and changed["etag"] != event["etag"], changed)
    check("events.update bumps sequence on a time change", changed.get("sequence") == 1, changed.get("sequence"))
    patched = service.events().patch(calendarId=calendar_id, eventId="pcheck0002",
                                     body={"description": "patched"}).execute()
    check("events.patch", patched["description"] == "patched" and patched["summary"] == "Booking", patched)
    service.events().delete(calendarId=calendar_id, eventId="pcheck0003", sendUpdates="none").execute()
    deleted = service.events().get(calendarId=calendar_id, eventId="pcheck0003").execute()
    check("events.delete leaves a cancelled event", deleted["status"] == "cancelled", deleted)
    expect_http_error("deleting twice is 410 deleted",
                      service.events().delete(calendarId=calendar_id, eventId="pcheck0003"), 410, "deleted")

    # recurring series and instances
    series = {
        "id": "pseries01",
        "summary": "Weekly",
        "start": {"dateTime": "2024-03-25T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-25T11:00:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
    }
    service.events().insert(calendarId=calendar_id, body=series).execute()
    instances = service.events().instances(calendarId=calendar_id, eventId="pseries01").execute()
    instance_ids = [i["id"] for i in instances.get("items", [])]
    check("events.instances expands across DST", instance_ids == [
        "pseries01_20240325T090000Z", "pseries01_20240401T080000Z", "pseries01_20240408T080000Z"], instance_ids)
    check("instances carry recurringEventId",
          all(i.get("recurringEventId") == "pseries01" for i in instances.get("items", [])))

    # incremental sync
    changes, _, last = list_all(service, calendar_id, syncToken=sync_token)
    by_id = {c["id"]: c for c in changes}
    check("incremental sync returns exactly the changes",
          sorted(by_id) == ["pcheck0001", "pcheck0002", "pcheck0003", "pseries01"], sorted(by_id))
    tombstone = by_id.get("pcheck0003", {})
    check("deleted event is a minimal cancelled tombstone",
          tombstone.get("status") == "cancelled" and "summary" not in tombstone, tombstone)
    next_token = last.get("nextSyncToken")
    expect_http_error("syncToken with timeMin is 400",
                      service.events().list(calendarId=calendar_id, syncToken=next_token,
                                            timeMin="2024-01-01T00:00:00Z"), 400, "invalid")

    # recurrence in the forms Google writes
    service.events().insert(calendarId=calendar_id, body={
        "id": "pseminar1", "summary": "Seminar",
        "start": {"dateTime": "2024-03-25T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-25T11:00:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20240415",
                       "EXDATE;TZID=Europe/Berlin:20240401T100000"],
    }).execute()
    service.events().insert(calendarId=calendar_id, body={
        "id": "pclosed01", "summary": "Lab closed",
        "start": {"date": "2024-03-04"}, "end": {"date": "2024-03-05"},
        "recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20240325", "EXDATE;VALUE=DATE:20240311"],
    }).execute()
    service.events().insert(calendarId=calendar_id, body={
        "id": "pstandup1", "summary": "Stand-up",
        "start": {"dateTime": "2024-03-29T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-29T09:15:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20240331T070000Z"],
    }).execute()
    def instance_ids(event_id):
        got = service.events().instances(calendarId=calendar_id, eventId=event_id).execute()
        return [i["id"] for i in got.get("items", [])]
    check("UNTIL as a date with an EXDATE in a named zone",
          instance_ids("pseminar1") == ["pseminar1_20240325T090000Z", "pseminar1_20240408T080000Z",
                                        "pseminar1_20240415T080000Z"], instance_ids("pseminar1"))
    check("all-day series with a date UNTIL and a date EXDATE",
          instance_ids("pclosed01") == ["pclosed01_20240304", "pclosed01_20240318", "pclosed01_20240325"],
          instance_ids("pclosed01"))
    check("UNTIL as a UTC date-time",
          instance_ids("pstandup1") == ["pstandup1_20240329T080000Z", "pstandup1_20240330T080000Z",
                                        "pstandup1_20240331T070000Z"], instance_ids("pstandup1"))
    moved = service.events().patch(calendarId=calendar_id, eventId="pseminar1_20240408T080000Z", body={
        "start": {"dateTime": "2024-04-08T14:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-04-08T15:00:00+02:00", "timeZone": "Europe/Berlin"},
    }).execute()
    check("a modified instance carries recurringEventId and originalStartTime",
          moved.get("recurringEventId") == "pseminar1"
          and moved.get("originalStartTime", {}).get("dateTime") == "2024-04-08T10:00:00+02:00", moved)
    service.events().delete(calendarId=calendar_id, eventId="pclosed01_20240318").execute()
    listed, _, _ = list_all(service, calendar_id, maxResults=2500)
    by_id = {e["id"]: e for e in listed}
    cancelled = by_id.get("pclosed01_20240318", {})
    check("a cancelled instance is listed without showDeleted when singleEvents is false",
          cancelled.get("status") == "cancelled" and cancelled.get("recurringEventId") == "pclosed01"
          and cancelled.get("originalStartTime") == {"date": "2024-03-18"}, cancelled)
    check("the modified instance is listed beside its series",
          "pseminar1_20240408T080000Z" in by_id and "pseminar1" in by_id)
    single, _, _ = list_all(service, calendar_id, singleEvents=True, orderBy="startTime",
                            timeMin="2024-03-01T00:00:00Z", timeMax="2024-05-01T00:00:00Z")
    closed = [e["id"] for e in single if e["id"].startswith("pclosed01")]
    check("singleEvents leaves the cancelled instance out",
          closed == ["pclosed01_20240304", "pclosed01_20240325"], closed)
    expect_http_error("a zone Google refuses is invalid",
                      service.events().insert(calendarId=calendar_id, body={
                          "summary": "Kyiv",
                          "start": {"dateTime": "2024-05-01T10:00:00+03:00", "timeZone": "Europe/Kyiv"},
                          "end": {"dateTime": "2024-05-01T11:00:00+03:00", "timeZone": "Europe/Kyiv"},
                      }), 400, "invalid")

    # ACL
    rule = service.acl().insert(calendarId=calendar_id,
                                body={"role": "reader", "scope": {"type": "default"}}).execute()
    check("acl.insert default reader", rule["id"] == "default" and rule["role"] == "reader", rule)
    expect_http_error("ACL change expires sync tokens",
                      service.events().list(calendarId=calendar_id, syncToken=next_token), 410, "fullSyncRequired")
    service.acl().delete(calendarId=calendar_id, ruleId="default").execute()
    expect_http_error("acl.get after delete is 404",
                      service.acl().get(calendarId=calendar_id, ruleId="default"), 404, "notFound")

    # cleanup
    service.calendars().delete(calendarId=calendar_id).execute()
    expect_http_error("calendars.get after delete is 404",
                      service.calendars().get(calendarId=calendar_id), 404, "notFound")

    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except Exception as error:  # any unexpected failure is a failed check
        FAILED += 1
        print(f"FAIL unexpected {type(error).__name__}: {error}")
        print(f"{PASSED} passed, {FAILED} failed")
        sys.exit(1)
