//! Feed rendering end to end: byte-for-byte snapshots (CRLF preserved), byte and
//! structure checks on every feed (RFC 5545 sections 3.1, 3.4, 3.6.1, 3.6.5), and real
//! parsers nobody here wrote: the icalendar crate's parser, Python `icalendar` +
//! `recurring-ical-events` (env `BOOKCAL_PYTHON`) and ical.js (env
//! `BOOKCAL_NODE_MODULES`, a directory whose `node_modules` holds `ical.js`).
//!
//! Snapshots live in `tests/snapshots/ical/*.ics`; run with `UPDATE_SNAPSHOTS=1` to
//! rewrite them after an intended change, and review the diff.
//!
//! Real-client setup (the checks skip with a note when the variables are unset):
//! ```text
//! python3 -m venv /tmp/ivenv && /tmp/ivenv/bin/pip install icalendar recurring-ical-events
//! npm install --prefix /tmp/inode ical.js
//! BOOKCAL_PYTHON=/tmp/ivenv/bin/python BOOKCAL_NODE_MODULES=/tmp/inode \
//!     cargo test --test it ical_feeds::
//! ```
//! (`BOOKCAL_NODE` may name another `node` binary.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bookcal::ical::{render, FeedCalendar, FeedEvent, FeedStatus, FeedTime};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

// ---------------------------------------------------------------------------
// Fixtures

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid instant")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn timed(start: DateTime<Utc>, minutes: i64) -> FeedTime {
    FeedTime::Timed {
        start,
        end: start + Duration::minutes(minutes),
    }
}

fn slot(uid: &str, summary: &str, when: FeedTime) -> FeedEvent {
    FeedEvent {
        uid: format!("{uid}@bookcal"),
        summary: summary.to_owned(),
        description: None,
        location: None,
        when,
        status: FeedStatus::Confirmed,
        sequence: 0,
        last_modified: utc(2024, 1, 15, 12, 0),
        created: Some(utc(2024, 1, 10, 8, 30)),
        url: None,
    }
}

fn calendar(name: &str, tz: Tz, events: Vec<FeedEvent>) -> FeedCalendar {
    FeedCalendar {
        name: name.to_owned(),
        description: None,
        time_zone: tz,
        source_url: None,
        refresh_interval: Duration::hours(1),
        color: None,
        events,
    }
}

fn plain_slots() -> FeedCalendar {
    let mut a = slot("res-1001", "Booked", timed(utc(2024, 6, 3, 8, 0), 60));
    a.url = Some("https://bookcal.example/offerings/9f1c/resources/1001".to_owned());
    let mut b = slot("res-1002", "Booked", timed(utc(2024, 6, 3, 13, 30), 90));
    b.location = Some("Meeting room 1".to_owned());
    let c = slot("res-1003", "Booked", timed(utc(2024, 6, 4, 9, 0), 30));
    FeedCalendar {
        description: Some("Busy times of meeting room 1".to_owned()),
        source_url: Some("https://bookcal.example/feeds/offerings/9f1c.ics".to_owned()),
        color: Some("teal".to_owned()),
        refresh_interval: Duration::minutes(30),
        ..calendar("Meeting room 1", Tz::UTC, vec![c, b, a])
    }
}

fn non_ascii_long_titles() -> FeedCalendar {
    let mut a = slot(
        "res-2001",
        "Zürich Ångström 東京 🎉",
        timed(utc(2024, 7, 1, 1, 0), 60),
    );
    a.location = Some("会議室 «Ångström» – Zürich HB, 3. Stock 🚪".to_owned());
    let mut b = slot(
        "res-2002",
        &"Zürich Ångström 東京 🎉 — ".repeat(8),
        timed(utc(2024, 7, 1, 4, 0), 120),
    );
    b.description = Some(format!(
        "{} {}",
        "Ein sehr langer Beschreibungstext über mehrere Zeilen hinweg, ".repeat(3),
        "東京の会議室を予約しました🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉"
    ));
    b.url = Some(format!(
        "https://bookcal.example/offerings/{}/resources/2002?view=details&lang=de",
        "0123456789abcdef".repeat(4)
    ));
    let c = slot(
        "res-2003",
        &"x".repeat(66),
        timed(utc(2024, 7, 2, 0, 0), 30),
    );
    FeedCalendar {
        description: Some("Räume in Zürich und 東京 🎉".to_owned()),
        ..calendar(
            "Zürich Ångström 東京 🎉 Räume",
            chrono_tz::Asia::Tokyo,
            vec![a, b, c],
        )
    }
}

fn text_escaping() -> FeedCalendar {
    let mut a = slot(
        "res-3001",
        "Review: a,b;c\\d \\n not a newline",
        timed(utc(2024, 8, 5, 14, 0), 60),
    );
    a.description =
        Some("line 1\r\nline 2\rline 3\nline 4\r\n\r\nafter a blank; done, ok\\".to_owned());
    a.location = Some("Room 1; Floor 2, Building \"X\"\ttabbed".to_owned());
    let mut b = slot("res-3002", "Busy\r", timed(utc(2024, 8, 5, 16, 0), 30));
    b.description = Some("\r\r\n\n".to_owned());
    FeedCalendar {
        description: Some("Desc with \\, commas, ; and\r\nCRLF".to_owned()),
        color: Some("dark,slate;gray".to_owned()),
        ..calendar(
            "Team A, B; C\\D\r\nsecond line",
            chrono_tz::America::New_York,
            vec![a, b],
        )
    }
}

fn dst_berlin() -> FeedCalendar {
    let e = |uid: &str, start, minutes| slot(uid, "Booked", timed(start, minutes));
    calendar(
        "Berlin room",
        chrono_tz::Europe::Berlin,
        vec![
            // Saturday before the spring change: 10:00 CET.
            e("res-4001", utc(2024, 3, 30, 9, 0), 60),
            // Across the gap: 01:30 CET to 04:00 CEST.
            e("res-4002", utc(2024, 3, 31, 0, 30), 90),
            // Monday after: 10:00 CEST.
            e("res-4003", utc(2024, 4, 1, 8, 0), 60),
            // Saturday before the autumn change: 10:00 CEST.
            e("res-4004", utc(2024, 10, 26, 8, 0), 60),
            // 02:30 CEST and 02:30 CET: ambiguous local times, written in UTC.
            e("res-4005", utc(2024, 10, 27, 0, 30), 30),
            e("res-4006", utc(2024, 10, 27, 1, 30), 30),
            // Monday after: 10:00 CET.
            e("res-4007", utc(2024, 10, 28, 9, 0), 60),
            // New Year's Eve into 2025.
            e("res-4008", utc(2024, 12, 31, 22, 0), 240),
            // Summer 2025.
            e("res-4009", utc(2025, 7, 1, 7, 0), 60),
        ],
    )
}

fn dst_new_york() -> FeedCalendar {
    let e = |uid: &str, start, minutes| slot(uid, "Booked", timed(start, minutes));
    calendar(
        "New York desk",
        chrono_tz::America::New_York,
        vec![
            e("res-5001", utc(2024, 3, 9, 15, 0), 60),  // 10:00 EST
            e("res-5002", utc(2024, 3, 10, 6, 30), 60), // 01:30 EST -> 03:30 EDT
            e("res-5003", utc(2024, 3, 11, 14, 0), 60), // 10:00 EDT
            e("res-5004", utc(2024, 11, 2, 14, 0), 60), // 10:00 EDT
            e("res-5005", utc(2024, 11, 3, 7, 0), 60),  // 02:00 EST
            e("res-5006", utc(2024, 11, 4, 15, 0), 60), // 10:00 EST
        ],
    )
}

fn dst_sydney() -> FeedCalendar {
    let e = |uid: &str, start, minutes| slot(uid, "Booked", timed(start, minutes));
    calendar(
        "Sydney studio",
        chrono_tz::Australia::Sydney,
        vec![
            e("res-6001", utc(2024, 4, 5, 23, 0), 60), // Sat 10:00 AEDT
            e("res-6002", utc(2024, 4, 8, 0, 0), 60),  // Mon 10:00 AEST
            e("res-6003", utc(2024, 10, 5, 0, 0), 60), // Sat 10:00 AEST
            e("res-6004", utc(2024, 10, 6, 23, 0), 60), // Mon 10:00 AEDT
        ],
    )
}

fn all_day() -> FeedCalendar {
    let mut a = slot(
        "res-7001",
        "Busy",
        FeedTime::AllDay {
            start: date(2024, 5, 1),
            end_exclusive: date(2024, 5, 2),
        },
    );
    a.created = None;
    let b = slot(
        "res-7002",
        "Busy",
        FeedTime::AllDay {
            start: date(2024, 5, 30),
            end_exclusive: date(2024, 6, 3),
        },
    );
    let c = slot("res-7003", "Booked", timed(utc(2024, 5, 1, 7, 0), 60));
    let d = slot(
        "res-7004",
        "Busy",
        FeedTime::AllDay {
            start: date(2024, 12, 31),
            end_exclusive: date(2025, 1, 1),
        },
    );
    calendar("Holiday house", chrono_tz::Europe::Berlin, vec![d, c, b, a])
}

fn statuses() -> FeedCalendar {
    let mut t = slot("res-8001", "Requested", timed(utc(2024, 9, 2, 7, 0), 60));
    t.status = FeedStatus::Tentative;
    let c = slot("res-8002", "Booked", timed(utc(2024, 9, 2, 9, 0), 60));
    let mut x = slot("res-8003", "Booked", timed(utc(2024, 9, 2, 11, 0), 60));
    x.status = FeedStatus::Cancelled;
    x.sequence = 2;
    calendar("Lab bench", chrono_tz::Europe::Berlin, vec![x, c, t])
}

/// One slot moved from Tuesday 10:00 to Thursday 14:00: same UID, SEQUENCE 0 -> 1.
fn rescheduled(after: bool) -> FeedCalendar {
    let mut moved = slot("res-9001", "Booked", timed(utc(2024, 6, 11, 8, 0), 60));
    if after {
        moved.when = timed(utc(2024, 6, 13, 12, 0), 60);
        moved.sequence = 1;
        moved.last_modified = utc(2024, 6, 1, 9, 15);
    }
    let other = slot("res-9002", "Booked", timed(utc(2024, 6, 12, 8, 0), 60));
    calendar("Bike", chrono_tz::Europe::Berlin, vec![moved, other])
}

/// Israel's "Friday on or after the 23rd" is no nth/last weekday rule: UTC is written.
fn no_rule_zone() -> FeedCalendar {
    let e = |uid: &str, start, minutes| slot(uid, "Booked", timed(start, minutes));
    calendar(
        "Jerusalem hall",
        chrono_tz::Asia::Jerusalem,
        vec![
            e("res-10001", utc(2023, 3, 23, 8, 0), 60),
            e("res-10002", utc(2024, 3, 28, 8, 0), 60),
            e("res-10003", utc(2024, 3, 29, 8, 0), 60),
        ],
    )
}

fn fixtures() -> Vec<(&'static str, FeedCalendar)> {
    vec![
        ("plain_slots", plain_slots()),
        ("non_ascii_long_titles", non_ascii_long_titles()),
        ("text_escaping", text_escaping()),
        ("dst_berlin", dst_berlin()),
        ("dst_new_york", dst_new_york()),
        ("dst_sydney", dst_sydney()),
        ("all_day", all_day()),
        ("statuses", statuses()),
        ("rescheduled_before", rescheduled(false)),
        ("rescheduled_after", rescheduled(true)),
        ("no_rule_zone", no_rule_zone()),
    ]
}

// ---------------------------------------------------------------------------
// Snapshots

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/ical")
}

fn check_fixture(name: &str) {
    let cal = fixtures()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c)
        .expect("fixture exists");
    let body = render(&cal);
    if let Err(problems) = check_feed(body.as_bytes()) {
        panic!("{name} fails the byte checks: {problems:#?}\n{body}");
    }
    crate::helpers::assert_snapshot(&format!("ical/{name}.ics"), &body);
}

#[test]
fn plain_slots_match_the_snapshot() {
    check_fixture("plain_slots");
}

#[test]
fn non_ascii_and_long_titles_fold_within_75_octets_and_match_the_snapshot() {
    check_fixture("non_ascii_long_titles");
}

#[test]
fn commas_semicolons_backslashes_and_line_breaks_are_escaped_as_in_the_snapshot() {
    check_fixture("text_escaping");
}

#[test]
fn berlin_slots_on_both_sides_of_dst_changes_match_the_snapshot() {
    check_fixture("dst_berlin");
}

#[test]
fn new_york_slots_on_both_sides_of_dst_changes_match_the_snapshot() {
    check_fixture("dst_new_york");
}

#[test]
fn sydney_slots_on_both_sides_of_dst_changes_match_the_snapshot() {
    check_fixture("dst_sydney");
}

#[test]
fn all_day_busy_slots_match_the_snapshot() {
    check_fixture("all_day");
}

#[test]
fn tentative_confirmed_and_cancelled_slots_match_the_snapshot() {
    check_fixture("statuses");
}

#[test]
fn a_rescheduled_slot_keeps_its_uid_and_raises_its_sequence() {
    check_fixture("rescheduled_before");
    check_fixture("rescheduled_after");
    let before = event_props(&render(&rescheduled(false)), "res-9001@bookcal");
    let after = event_props(&render(&rescheduled(true)), "res-9001@bookcal");
    let seq = |p: &BTreeMap<String, String>| p["SEQUENCE"].parse::<u32>().expect("number");
    assert!(seq(&after) > seq(&before), "{before:?} -> {after:?}");
    assert_ne!(
        before["DTSTART;TZID=Europe/Berlin"],
        after["DTSTART;TZID=Europe/Berlin"]
    );
    assert!(after["DTSTAMP"] > before["DTSTAMP"]);
    // The slot that did not move renders identically.
    assert_eq!(
        event_props(&render(&rescheduled(false)), "res-9002@bookcal"),
        event_props(&render(&rescheduled(true)), "res-9002@bookcal")
    );
}

#[test]
fn a_zone_without_a_weekday_rule_is_written_in_utc_as_in_the_snapshot() {
    check_fixture("no_rule_zone");
    let body = render(&no_rule_zone());
    assert!(!body.contains("TZID"), "{body}");
    assert!(body.contains("X-WR-TIMEZONE:Asia/Jerusalem\r\n"));
}

#[test]
fn every_snapshot_file_is_covered_by_a_fixture() {
    let names: BTreeSet<String> = fixtures().iter().map(|(n, _)| format!("{n}.ics")).collect();
    for entry in std::fs::read_dir(snapshot_dir()).expect("snapshot dir") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(names.contains(&file), "stale snapshot {file}");
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    for (name, cal) in fixtures() {
        assert_eq!(render(&cal), render(&cal.clone()), "{name}");
    }
}

/// The properties of the event with `uid`, keyed by name plus parameters.
fn event_props(body: &str, uid: &str) -> BTreeMap<String, String> {
    let lines = unfold(body);
    let mut current: Option<BTreeMap<String, String>> = None;
    for line in lines {
        match line.as_str() {
            "BEGIN:VEVENT" => current = Some(BTreeMap::new()),
            "END:VEVENT" => {
                let props = current.take().expect("in an event");
                if props.get("UID").map(String::as_str) == Some(uid) {
                    return props;
                }
            }
            _ => {
                if let (Some(props), Some((k, v))) = (current.as_mut(), line.split_once(':')) {
                    props.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    panic!("no event {uid}");
}

// ---------------------------------------------------------------------------
// Byte and structure checks (RFC 5545 sections 3.1, 3.6.1, 3.6.5)

fn unfold(body: &str) -> Vec<String> {
    body.replace("\r\n ", "")
        .replace("\r\n\t", "")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One unfolded content line: name, parameters, value.
type ContentLine = (String, Vec<(String, String)>, String);

/// Splits `NAME;P=V;Q="a:b":value` into (NAME, [(P, V), ..], value), honouring quotes.
fn split_content_line(line: &str) -> Option<ContentLine> {
    let mut in_quotes = false;
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                parts.push(&line[start..i]);
                start = i + 1;
            }
            ':' if !in_quotes => {
                parts.push(&line[start..i]);
                let value = line[i + 1..].to_owned();
                let name = parts.first()?.to_ascii_uppercase();
                let params = parts[1..]
                    .iter()
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (k.to_ascii_uppercase(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                return Some((name, params, value));
            }
            _ => {}
        }
    }
    None
}

/// Every problem found in a feed, or `Ok` when there are none.
fn check_feed(bytes: &[u8]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if !bytes.ends_with(b"\r\n") {
        problems.push("does not end in CRLF".to_owned());
    }
    for (i, b) in bytes.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| bytes[j]);
        let next = bytes.get(i + 1).copied();
        if *b == b'\n' && prev != Some(b'\r') {
            problems.push(format!("bare LF at byte {i}"));
        }
        if *b == b'\r' && next != Some(b'\n') {
            problems.push(format!("bare CR at byte {i}"));
        }
    }
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 75 {
            problems.push(format!("line {} has {} octets", n + 1, line.len()));
        }
        if std::str::from_utf8(line).is_err() {
            problems.push(format!("line {} is not valid UTF-8", n + 1));
        }
        if line.first() == Some(&b' ') && n == 0 {
            problems.push("starts with a continuation".to_owned());
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let Ok(body) = std::str::from_utf8(bytes) else {
        return Err(vec!["not UTF-8".to_owned()]);
    };
    let lines = unfold(body);
    if lines.first().map(String::as_str) != Some("BEGIN:VCALENDAR") {
        problems.push("does not start with BEGIN:VCALENDAR".to_owned());
    }
    if lines.last().map(String::as_str) != Some("END:VCALENDAR") {
        problems.push("does not end with END:VCALENDAR".to_owned());
    }
    let mut stack: Vec<(String, BTreeMap<String, usize>)> = Vec::new();
    let mut referenced = BTreeSet::new();
    let mut defined = BTreeMap::<String, usize>::new();
    let mut calendars = 0;
    for line in &lines {
        let Some((name, params, value)) = split_content_line(line) else {
            problems.push(format!("not a content line: {line:?}"));
            continue;
        };
        for (k, v) in &params {
            if k == "TZID" {
                referenced.insert(v.clone());
            }
        }
        match name.as_str() {
            "BEGIN" => stack.push((value, BTreeMap::new())),
            "END" => {
                let Some((component, counts)) = stack.pop() else {
                    problems.push(format!("END:{value} without BEGIN"));
                    continue;
                };
                if component != value {
                    problems.push(format!("BEGIN:{component} closed by END:{value}"));
                }
                let count = |p: &str| counts.get(p).copied().unwrap_or(0);
                let mut exactly_once = |props: &[&str]| {
                    for p in props {
                        if count(p) != 1 {
                            problems.push(format!("{component} has {} {p}", count(p)));
                        }
                    }
                };
                match component.as_str() {
                    "VCALENDAR" => {
                        calendars += 1;
                        exactly_once(&["VERSION", "PRODID"]);
                        if count("METHOD") != 0 {
                            problems.push("METHOD in a plain feed".to_owned());
                        }
                    }
                    "VEVENT" => {
                        exactly_once(&["UID", "DTSTAMP", "DTSTART"]);
                        if count("DTEND") + count("DURATION") != 1 {
                            problems.push(format!(
                                "VEVENT has {} DTEND and {} DURATION",
                                count("DTEND"),
                                count("DURATION")
                            ));
                        }
                    }
                    "VTIMEZONE" => exactly_once(&["TZID"]),
                    "STANDARD" | "DAYLIGHT" => {
                        exactly_once(&["DTSTART", "TZOFFSETFROM", "TZOFFSETTO"])
                    }
                    _ => {}
                }
            }
            _ => {
                if let Some((component, counts)) = stack.last_mut() {
                    *counts.entry(name.clone()).or_default() += 1;
                    if component == "VTIMEZONE" && name == "TZID" {
                        *defined.entry(value).or_default() += 1;
                    }
                } else {
                    problems.push(format!("{name} outside any component"));
                }
            }
        }
    }
    if !stack.is_empty() {
        problems.push(format!("unclosed components: {stack:?}"));
    }
    if calendars != 1 {
        problems.push(format!("{calendars} VCALENDARs"));
    }
    for tzid in &referenced {
        if !defined.contains_key(tzid) {
            problems.push(format!("TZID {tzid} has no VTIMEZONE"));
        }
    }
    for (tzid, n) in &defined {
        if *n != 1 {
            problems.push(format!("VTIMEZONE {tzid} defined {n} times"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[test]
fn every_rendered_feed_passes_the_byte_and_structure_checks() {
    for (name, cal) in fixtures() {
        if let Err(problems) = check_feed(render(&cal).as_bytes()) {
            panic!("{name}: {problems:#?}");
        }
    }
}

#[test]
fn the_byte_and_structure_checks_reject_broken_feeds() {
    let good = render(&dst_berlin());
    assert_eq!(check_feed(good.as_bytes()), Ok(()));
    let long = format!("X-LONG:{}", "a".repeat(69)); // 76 octets
    let mut split_emoji = good
        .replacen("SUMMARY:Booked", "SUMMARY:Booked🎉", 1)
        .into_bytes();
    let at = split_emoji
        .windows(4)
        .position(|w| w == "🎉".as_bytes())
        .expect("emoji");
    split_emoji.splice(at + 2..at + 2, *b"\r\n ");
    assert!(
        check_feed(&split_emoji).is_err(),
        "a fold inside an emoji passed the checks"
    );
    let broken = [
        ("bare LF", good.replacen("\r\nVERSION", "\nVERSION", 1)),
        (
            "bare CR",
            good.replacen("SUMMARY:Booked", "SUMMARY:Boo\rked", 1),
        ),
        ("76 octets", good.replacen("CALSCALE:GREGORIAN", &long, 1)),
        ("no UID", good.replacen("UID:res-4001@bookcal\r\n", "", 1)),
        (
            "two DTSTAMPs",
            good.replacen("DTSTAMP:", "DTSTAMP:20240101T000000Z\r\nDTSTAMP:", 1),
        ),
        (
            "DTEND and DURATION",
            good.replacen("SEQUENCE:0", "DURATION:PT1H\r\nSEQUENCE:0", 1),
        ),
        (
            "no DTEND",
            good.replacen("DTEND;TZID=Europe/Berlin:20240330T110000\r\n", "", 1),
        ),
        ("no PRODID", good.replacen("PRODID:", "X-PRODID:", 1)),
        (
            "undeclared TZID",
            good.replacen("TZID:Europe/Berlin\r\n", "TZID:Europe/Paris\r\n", 1),
        ),
        (
            "METHOD",
            good.replacen("CALSCALE:GREGORIAN", "METHOD:PUBLISH", 1),
        ),
    ];
    for (what, body) in broken {
        assert_ne!(body, good, "{what}: the mutation applied");
        assert!(
            check_feed(body.as_bytes()).is_err(),
            "{what} passed the checks"
        );
    }
}

// ---------------------------------------------------------------------------
// Real parsers

/// The icalendar crate's parser (not ours) reads every feed back with the same texts.
#[test]
fn the_icalendar_crate_parses_every_feed_back_to_the_same_texts() {
    use icalendar::{Component, EventLike};
    for (name, cal) in fixtures() {
        let body = render(&cal);
        let parsed: icalendar::Calendar = body
            .parse()
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let mut got: Vec<(String, String, Option<String>, Option<String>)> = parsed
            .components
            .iter()
            .filter_map(|c| c.as_event())
            .map(|e| {
                (
                    e.get_uid().unwrap_or_default().to_owned(),
                    e.get_summary().unwrap_or_default().to_owned(),
                    e.get_description().map(str::to_owned),
                    e.get_location().map(str::to_owned),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<_> = cal
            .events
            .iter()
            .map(|e| {
                (
                    e.uid.clone(),
                    normalise_text(&e.summary),
                    e.description.as_deref().map(normalise_text),
                    e.location.as_deref().map(normalise_text),
                )
            })
            .collect();
        want.sort();
        // (The crate does not unescape NAME; the Python and ical.js checks cover it.)
        assert_eq!(got, want, "{name}");
    }
}

/// What a TEXT value reads as after a round trip: line breaks become LF, other ASCII
/// controls are dropped.
fn normalise_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_ascii_control())
        .collect()
}

/// What a calendar name reads as: one line.
fn single_line(s: &str) -> String {
    normalise_text(s).replace('\n', " ")
}

/// The sidecar the real-client scripts compare with: expected instants straight from
/// the input model, not from the rendering.
fn expected_json(cal: &FeedCalendar) -> serde_json::Value {
    let iso = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut lo: Option<NaiveDate> = None;
    let mut hi: Option<NaiveDate> = None;
    let tz = cal.time_zone;
    let repeated = |t: DateTime<Utc>| {
        let local = t.with_timezone(&tz).naive_local();
        matches!(
            tz.from_local_datetime(&local),
            chrono::LocalResult::Ambiguous(..)
        )
    };
    let events: Vec<serde_json::Value> = cal
        .events
        .iter()
        .map(|e| {
            let in_repeated_hour = match e.when {
                FeedTime::Timed { start, end } => repeated(start) || repeated(end),
                FeedTime::AllDay { .. } => false,
            };
            let (start, end, all_day, d0, d1) = match e.when {
                FeedTime::Timed { start, end } => (
                    iso(start),
                    iso(end),
                    false,
                    start.date_naive(),
                    end.date_naive(),
                ),
                FeedTime::AllDay {
                    start,
                    end_exclusive,
                } => (
                    start.to_string(),
                    end_exclusive.to_string(),
                    true,
                    start,
                    end_exclusive,
                ),
            };
            lo = Some(lo.map_or(d0, |l| l.min(d0)));
            hi = Some(hi.map_or(d1, |h| h.max(d1)));
            json!({
                "uid": e.uid,
                "summary": normalise_text(&e.summary),
                "description": e.description.as_deref().map(normalise_text),
                "location": e.location.as_deref().map(normalise_text),
                "all_day": all_day,
                "start": start,
                "end": end,
                "sequence": e.sequence,
                "status": e.status.as_ical(),
                "repeated_local_hour": in_repeated_hour,
            })
        })
        .collect();
    let pad = Duration::days(2);
    json!({
        "name": single_line(&cal.name),
        "description": cal.description.as_deref().map(normalise_text),
        "range_start": lo.map(|d| (d - pad).to_string()),
        "range_end": hi.map(|d| (d + pad).to_string()),
        "events": events,
    })
}

/// Writes every fixture as `<name>.ics` plus `<name>.expected.json` into `dir`.
fn write_feeds(dir: &Path) -> Vec<PathBuf> {
    fixtures()
        .into_iter()
        .map(|(name, cal)| {
            let ics = dir.join(format!("{name}.ics"));
            std::fs::write(&ics, render(&cal)).expect("write feed");
            let sidecar = dir.join(format!("{name}.expected.json"));
            let text = serde_json::to_string_pretty(&expected_json(&cal)).expect("json");
            std::fs::write(sidecar, text).expect("write sidecar");
            ics
        })
        .collect()
}

/// Feeds a checker must reject, each with its sidecar; a checker that accepts one of
/// them checks nothing:
/// - the Berlin feed with a sidecar expecting every timed event an hour late;
/// - the Berlin feed with a wrong `VTIMEZONE` (daylight time from the first Sunday of
///   March instead of the last) and the true expectations, which only a parser that
///   reads the feed's own `VTIMEZONE` notices.
fn write_wrong_feeds(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let cal = dst_berlin();
    let body = render(&cal);
    let mut shifted = cal.clone();
    for e in &mut shifted.events {
        if let FeedTime::Timed { start, end } = &mut e.when {
            *start += Duration::hours(1);
            *end += Duration::hours(1);
        }
    }
    let broken_rule = body.replacen(
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=1SU",
        1,
    );
    assert_ne!(broken_rule, body, "the VTIMEZONE mutation applied");
    [
        ("shifted_expectations", body, &shifted),
        ("broken_vtimezone", broken_rule, &cal),
    ]
    .into_iter()
    .map(|(name, body, expected)| {
        let ics = dir.join(format!("{name}.ics"));
        std::fs::write(&ics, body).expect("write feed");
        let text = serde_json::to_string_pretty(&expected_json(expected)).expect("json");
        std::fs::write(dir.join(format!("{name}.expected.json")), text).expect("write sidecar");
        (name, ics)
    })
    .collect()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/realclients")
        .join(name)
}

fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn python_command() -> Option<Command> {
    let Some(python) = std::env::var_os("BOOKCAL_PYTHON") else {
        eprintln!(
            "skipping the Python icalendar/recurring-ical-events check: set BOOKCAL_PYTHON to \
             an interpreter with both installed (python3 -m venv /tmp/ivenv && \
             /tmp/ivenv/bin/pip install icalendar recurring-ical-events)"
        );
        return None;
    };
    let mut cmd = Command::new(python);
    cmd.arg(script("ical_check.py"));
    Some(cmd)
}

fn node_command() -> Option<Command> {
    let Some(modules) = std::env::var_os("BOOKCAL_NODE_MODULES") else {
        eprintln!(
            "skipping the ical.js check: set BOOKCAL_NODE_MODULES to a directory whose \
             node_modules holds ical.js (npm install --prefix /tmp/inode ical.js)"
        );
        return None;
    };
    let node = std::env::var_os("BOOKCAL_NODE").unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(node);
    cmd.arg(script("ical_check.mjs"))
        .env("BOOKCAL_NODE_MODULES", modules);
    Some(cmd)
}

#[test]
fn python_icalendar_and_recurring_ical_events_read_every_feed_at_the_expected_instants() {
    let Some(mut cmd) = python_command() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    cmd.args(write_feeds(dir.path()));
    let (ok, out) = run(cmd);
    println!("{out}");
    assert!(ok, "the Python checker failed:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn the_python_checker_rejects_wrong_instants_and_a_wrong_vtimezone() {
    if python_command().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (what, ics) in write_wrong_feeds(dir.path()) {
        let Some(mut cmd) = python_command() else {
            return;
        };
        cmd.arg(ics);
        let (ok, out) = run(cmd);
        println!("{what}:\n{out}");
        assert!(!ok, "the Python checker accepted {what}:\n{out}");
    }
}

#[test]
fn ical_js_reads_every_feed_at_the_expected_instants() {
    let Some(mut cmd) = node_command() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    cmd.args(write_feeds(dir.path()));
    let (ok, out) = run(cmd);
    println!("{out}");
    assert!(ok, "the ical.js checker failed:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn the_ical_js_checker_rejects_wrong_instants_and_a_wrong_vtimezone() {
    if node_command().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (what, ics) in write_wrong_feeds(dir.path()) {
        let Some(mut cmd) = node_command() else {
            return;
        };
        cmd.arg(ics);
        let (ok, out) = run(cmd);
        println!("{what}:\n{out}");
        assert!(!ok, "the ical.js checker accepted {what}:\n{out}");
    }
}
