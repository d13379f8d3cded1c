#!/usr/bin/env python3
"""Checks bookcal feeds with parsers nobody on the team wrote.

Usage: ical_check.py FEED.ics [FEED.ics ...]

Each FEED.ics has a sidecar FEED.expected.json (written by tests/ical_feeds.rs) with
the expected events: uid, summary/description/location (unescaped), all_day, start and
end (UTC instants "YYYY-MM-DDTHH:MM:SSZ", or dates for all-day events), plus the
calendar name and a date range to query.

For every feed:
  1. Python `icalendar` parses it; every component must have empty `.errors`.
  2. The calendar name (NAME, X-WR-CALNAME) and each event's texts read back unescaped.
     icalendar does not know NAME (RFC 7986) or X-WR-CALNAME and would leave them raw
     (vUnknown); both are TEXT, so its type map is told so before parsing.
  3. Every VEVENT as icalendar parses it has start/end equal to the expected UTC
     instants (or dates).
  4. `recurring-ical-events` queries the range; every event must be found once, with
     the expected start/end. Known limitation of recurring-ical-events (3.8): it drops
     the `fold` of times in the repeated hour of a DST fall-back (after converting UTC
     times to X-WR-TIMEZONE) and returns them an hour or half an hour off; events the
     sidecar flags with "repeated_local_hour" are reported as KNOWN there instead of
     failing (steps 3 and 5 and the ical.js check still check them strictly).
  5. Steps 1 to 4 again after renaming every TZID to a name no tz database knows, so
     the times are resolved through the feed's own VTIMEZONE (icalendar otherwise
     prefers its zoneinfo for known names, which would leave our VTIMEZONE untested).

Prints "N passed, 0 failed" per feed and exits non-zero on any mismatch.
"""

import datetime as dt
import json
import pathlib
import re
import sys

import icalendar
import icalendar.prop
import recurring_ical_events

icalendar.prop.TypesFactory.types_map["name"] = "text"
icalendar.prop.TypesFactory.types_map["x-wr-calname"] = "text"


def parse_expected(value, all_day):
    if all_day:
        return dt.date.fromisoformat(value)
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def actual(value):
    """A DTSTART/DTEND value as a UTC datetime, or a date for all-day values."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"floating time {value!r}: TZID not resolved")
        return value.astimezone(dt.timezone.utc)
    return value


def rename_tzids(text, tag):
    """Renames TZIDs (parameters and VTIMEZONE TZID properties) to unknown names."""
    def repl(m):
        return f"{m.group(1)}bookcal-probe-{tag}-{m.group(2).replace('/', '-')}"
    return re.sub(r"(TZID[=:])([A-Za-z_+\-/0-9]+)", repl, text)


class Checker:
    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failures = []
        self.known = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)

    def report(self):
        print(f"{self.label}: {self.passed} passed, {len(self.failures)} failed")
        for k in self.known:
            print(f"  KNOWN {k}")
        for f in self.failures:
            print(f"  FAIL {f}")
        return not self.failures


def check_text(c, label, got, want):
    got = None if got is None else str(got)
    c.check(got == want, f"{label}: got {got!r}, want {want!r}")


def check_times(c, ev, want, how, known_issue=False):
    uid = want["uid"]
    for prop, key in (("DTSTART", "start"), ("DTEND", "end")):
        try:
            got = actual(ev[prop].dt)
        except (KeyError, ValueError) as e:
            c.check(False, f"{how}: {uid} {prop}: {e}")
            continue
        exp = parse_expected(want[key], want["all_day"])
        same_kind = isinstance(got, dt.datetime) == isinstance(exp, dt.datetime)
        what = f"{how}: {uid} {prop} is {got}, expected {exp}"
        if known_issue and not (same_kind and got == exp):
            c.known.append(what)
        else:
            c.check(same_kind and got == exp, what)


def check_calendar(c, text, expected, how):
    cal = icalendar.Calendar.from_ical(text)
    for comp in cal.walk():
        c.check(not comp.errors, f"{how}: {comp.name} parse errors {comp.errors!r}")
    check_text(c, f"{how}: NAME", cal.get("NAME"), expected["name"])
    check_text(c, f"{how}: X-WR-CALNAME", cal.get("X-WR-CALNAME"), expected["name"])
    check_text(c, f"{how}: DESCRIPTION", cal.get("DESCRIPTION"), expected["description"])
    parsed = {str(ev["UID"]): ev for ev in cal.walk("VEVENT")}
    for want in expected["events"]:
        ev = parsed.get(want["uid"])
        c.check(ev is not None, f"{how}: {want['uid']} missing")
        if ev is not None:
            check_times(c, ev, want, f"{how} parsed")
    if expected["range_start"] is None:
        c.check(not cal.walk("VEVENT"), f"{how}: events in an empty feed")
        return
    start = dt.date.fromisoformat(expected["range_start"])
    end = dt.date.fromisoformat(expected["range_end"])
    found = {}
    for ev in recurring_ical_events.of(cal).between(start, end):
        found.setdefault(str(ev["UID"]), []).append(ev)
    c.check(
        len(found) == len(expected["events"]),
        f"{how}: {len(found)} UIDs found, {len(expected['events'])} expected",
    )
    for want in expected["events"]:
        uid = want["uid"]
        evs = found.get(uid, [])
        c.check(len(evs) == 1, f"{how}: {uid} found {len(evs)} times")
        if len(evs) != 1:
            continue
        ev = evs[0]
        for prop in ("summary", "description", "location"):
            check_text(c, f"{how}: {uid} {prop}", ev.get(prop.upper()), want[prop])
        check_text(c, f"{how}: {uid} STATUS", ev.get("STATUS"), want["status"])
        c.check(int(ev.get("SEQUENCE")) == want["sequence"], f"{how}: {uid} SEQUENCE")
        check_times(
            c, ev, want, f"{how} recurring-ical-events", want["repeated_local_hour"]
        )


def main(paths):
    ok = True
    for path in map(pathlib.Path, paths):
        c = Checker(path.name)
        expected = json.loads(path.with_suffix(".expected.json").read_text("utf-8"))
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
            check_calendar(c, text, expected, "zoneinfo")
            check_calendar(c, rename_tzids(text, path.stem), expected, "own VTIMEZONE")
        except Exception as e:  # a parser crash is a failure, not a skip
            c.check(False, f"exception {type(e).__name__}: {e}")
        ok = c.report() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
