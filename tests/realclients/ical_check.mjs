// Checks bookcal feeds with ical.js (Thunderbird's parser), which nobody on the team wrote.
//
// Usage: BOOKCAL_NODE_MODULES=/dir/with/node_modules node ical_check.mjs FEED.ics [...]
//
// Each FEED.ics has a sidecar FEED.expected.json (written by tests/ical_feeds.rs). For
// every feed: parse with ICAL.parse, register every VTIMEZONE with
// ICAL.TimezoneService (ical.js has no tz database of its own, so every TZID time is
// resolved through the feed's VTIMEZONE), then check each event's texts and its
// start/end converted to UTC against the expected instants (dates for all-day events).
// Prints "N passed, 0 failed" per feed and exits non-zero on any mismatch.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const modules = process.env.BOOKCAL_NODE_MODULES;
if (!modules) {
  console.error("set BOOKCAL_NODE_MODULES to a directory whose node_modules holds ical.js");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), "package.json"));
const ICAL = require("ical.js");
// RFC 7986 NAME and the de-facto X-WR-CALNAME are TEXT; ical.js does not know them and
// would hand back the escaped value.
ICAL.design.icalendar.property.name = { defaultType: "text" };
ICAL.design.icalendar.property["x-wr-calname"] = { defaultType: "text" };

function isoUtc(time) {
  const utc = time.convertToZone(ICAL.Timezone.utcTimezone);
  const pad = (n) => String(n).padStart(2, "0");
  return `${utc.year}-${pad(utc.month)}-${pad(utc.day)}T${pad(utc.hour)}:${pad(utc.minute)}:${pad(utc.second)}Z`;
}

function isoDate(time) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${time.year}-${pad(time.month)}-${pad(time.day)}`;
}

function checkFeed(file) {
  let passed = 0;
  const failures = [];
  const check = (ok, what) => (ok ? passed++ : failures.push(what));

  const expected = JSON.parse(readFileSync(file.replace(/\.ics$/, ".expected.json"), "utf8"));
  const text = readFileSync(file, "utf8");
  try {
    const cal = new ICAL.Component(ICAL.parse(text));
    check(cal.name === "vcalendar", `top component is ${cal.name}`);
    ICAL.TimezoneService.reset();
    const tzids = new Set();
    for (const vtz of cal.getAllSubcomponents("vtimezone")) {
      const tz = new ICAL.Timezone(vtz);
      tzids.add(tz.tzid);
      ICAL.TimezoneService.register(vtz);
    }
    for (const prop of ["name", "x-wr-calname"]) {
      const got = cal.getFirstPropertyValue(prop);
      check(got === expected.name, `${prop}: got ${JSON.stringify(got)}, want ${JSON.stringify(expected.name)}`);
    }
    const events = cal.getAllSubcomponents("vevent");
    check(events.length === expected.events.length, `${events.length} events, ${expected.events.length} expected`);
    const byUid = new Map();
    for (const vevent of events) {
      const uid = vevent.getFirstPropertyValue("uid");
      check(!byUid.has(uid), `UID ${uid} twice`);
      byUid.set(uid, vevent);
    }
    for (const want of expected.events) {
      const vevent = byUid.get(want.uid);
      check(vevent !== undefined, `${want.uid} missing`);
      if (!vevent) continue;
      const event = new ICAL.Event(vevent);
      for (const prop of ["summary", "description", "location"]) {
        const got = vevent.getFirstPropertyValue(prop);
        check((got ?? null) === want[prop], `${want.uid} ${prop}: got ${JSON.stringify(got)}, want ${JSON.stringify(want[prop])}`);
      }
      check(vevent.getFirstPropertyValue("status") === want.status, `${want.uid} status`);
      check(event.sequence === want.sequence, `${want.uid} sequence ${event.sequence}`);
      for (const [key, time, prop] of [["start", event.startDate, "dtstart"], ["end", event.endDate, "dtend"]]) {
        const tzid = vevent.getFirstProperty(prop).getParameter("tzid");
        if (tzid) check(tzids.has(tzid), `${want.uid} ${prop} TZID ${tzid} has no VTIMEZONE`);
        if (want.all_day) {
          check(time.isDate, `${want.uid} ${key} is not a DATE`);
          check(isoDate(time) === want[key], `${want.uid} ${key} is ${isoDate(time)}, expected ${want[key]}`);
        } else {
          check(!time.isDate, `${want.uid} ${key} is a DATE`);
          // A floating time (unknown zone) would be read as local time: refuse it.
          check(time.zone !== ICAL.Timezone.localTimezone && time.zone !== undefined,
            `${want.uid} ${key} is floating`);
          check(isoUtc(time) === want[key], `${want.uid} ${key} is ${isoUtc(time)}, expected ${want[key]}`);
        }
      }
    }
  } catch (e) {
    check(false, `exception ${e && e.stack ? e.stack : e}`);
  }
  console.log(`${path.basename(file)}: ${passed} passed, ${failures.length} failed`);
  for (const f of failures) console.log(`  FAIL ${f}`);
  return failures.length === 0;
}

let ok = true;
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("no feeds given");
  process.exit(2);
}
for (const file of files) ok = checkFeed(file) && ok;
process.exit(ok ? 0 : 1);
