//! Renders a [`FeedCalendar`] to the bytes of one `VCALENDAR` (RFC 5545, RFC 7986).
//!
//! Layout (all content lines folded and CRLF-terminated by [`super::text`]):
//! - `VCALENDAR` (RFC 5545 section 3.4, 3.7): `VERSION:2.0`, `PRODID`, `CALSCALE`, no
//!   `METHOD` (a plain snapshot, so RFC 5546 `ORGANIZER` rules do not apply), `NAME`
//!   (RFC 7986 section 5.1) and `X-WR-CALNAME`, `DESCRIPTION` (RFC 7986 section 5.2) and
//!   `X-WR-CALDESC`, `X-WR-TIMEZONE`, `REFRESH-INTERVAL;VALUE=DURATION` (RFC 7986
//!   section 5.7) and `X-PUBLISHED-TTL`, `SOURCE;VALUE=URI` (section 5.8), `COLOR`
//!   (section 5.9).
//! - One `VTIMEZONE` for the calendar zone when an event references its `TZID`
//!   (see [`super::vtimezone`]).
//! - One `VEVENT` per event (RFC 5545 section 3.6.1), sorted by (start, uid).
//!
//! Times: an instant is written as `TZID=<zone>:<local time>` when the zone has a
//! yearly rule for the event years and the local time is unambiguous. Local times in a
//! fall-back overlap are written in UTC instead: RFC 5545 section 3.3.5 resolves them
//! to the first occurrence, which is wrong for the second and which not every client
//! implements. A UTC calendar zone, or one without a yearly rule, gets UTC throughout.
//!
//! The output is a pure function of the input: no clock, no randomness.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{FeedCalendar, FeedEvent, FeedTime};
use super::text::{escape_text, ContentWriter};
use super::vtimezone::{self, ZoneRules};

/// The `PRODID` value (RFC 5545 section 3.7.3).
pub const PRODID: &str = concat!("-//bookcal//bookcal ", env!("CARGO_PKG_VERSION"), "//EN");

/// Renders the whole `VCALENDAR`. Deterministic: the same input gives the same bytes.
pub fn render(cal: &FeedCalendar) -> String {
    let tz = cal.time_zone;
    let zone = zone_rules_for(cal);

    let mut events: Vec<&FeedEvent> = cal.events.iter().collect();
    events.sort_by(|a, b| {
        sort_key(tz, a)
            .cmp(&sort_key(tz, b))
            .then_with(|| a.uid.cmp(&b.uid))
    });

    let mut body = ContentWriter::new();
    let mut tzid_used = false;
    for event in events {
        tzid_used |= write_event(&mut body, tz, zone.as_ref(), event);
    }

    let mut w = ContentWriter::new();
    w.begin("VCALENDAR");
    w.prop("VERSION", &[], "2.0");
    w.prop("PRODID", &[], &escape_text(PRODID));
    w.prop("CALSCALE", &[], "GREGORIAN");
    let name = one_line(&cal.name);
    w.text("NAME", &name);
    w.text("X-WR-CALNAME", &name);
    if let Some(desc) = &cal.description {
        w.text("DESCRIPTION", desc);
        w.text("X-WR-CALDESC", desc);
    }
    w.text("X-WR-TIMEZONE", tz.name());
    let refresh = format_duration(cal.refresh_interval);
    w.prop("REFRESH-INTERVAL", &[("VALUE", "DURATION")], &refresh);
    w.prop("X-PUBLISHED-TTL", &[], &refresh);
    if let Some(url) = &cal.source_url {
        w.uri("SOURCE", &[("VALUE", "URI")], url);
    }
    if let Some(color) = &cal.color {
        w.text("COLOR", color);
    }
    if let (true, Some(rules)) = (tzid_used, &zone) {
        vtimezone::write_vtimezone(&mut w, tz, rules);
    }
    let mut out = w.finish();
    out.push_str(&body.finish());
    let mut end = ContentWriter::new();
    end.end("VCALENDAR");
    out.push_str(&end.finish());
    out
}

/// A calendar name on one line: each line break (CRLF, CR or LF) becomes a space.
/// Names are shown in one line, and several real parsers (ical.js, Python icalendar)
/// do not type `NAME`/`X-WR-CALNAME` as TEXT and would show a `\n` literally.
fn one_line(s: &str) -> String {
    s.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

/// The rules to write `TZID` times with, or `None` for UTC throughout.
fn zone_rules_for(cal: &FeedCalendar) -> Option<ZoneRules> {
    let tz = cal.time_zone;
    if vtimezone::is_utc(tz) {
        return None;
    }
    let years = cal.events.iter().flat_map(|e| match e.when {
        FeedTime::Timed { start, end } => {
            let y = |t: DateTime<Utc>| t.with_timezone(&tz).year();
            vec![y(start), y(end)]
        }
        FeedTime::AllDay { .. } => Vec::new(),
    });
    let (first, last) = years.fold(None, |acc: Option<(i32, i32)>, y| match acc {
        None => Some((y, y)),
        Some((a, b)) => Some((a.min(y), b.max(y))),
    })?;
    vtimezone::derive(tz, first, last)
}

/// Events sort by their start instant; an all-day event starts at local midnight.
fn sort_key(tz: Tz, event: &FeedEvent) -> DateTime<Utc> {
    match event.when {
        FeedTime::Timed { start, .. } => start,
        FeedTime::AllDay { start, .. } => {
            let midnight = start.and_time(chrono::NaiveTime::MIN);
            tz.from_local_datetime(&midnight)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| midnight.and_utc())
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` (RFC 5545 section 3.3.5, form #2).
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn format_local(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

fn format_date(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

/// A `DURATION` (RFC 5545 section 3.3.6) in the `PT..H..M..S` form; negative is zero.
pub fn format_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || (h == 0 && m == 0) {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// The local wall-clock time of `t` in `tz` when it names exactly one instant.
fn unambiguous_local(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let local = t.with_timezone(&tz).naive_local();
    match tz.from_local_datetime(&local) {
        LocalResult::Single(back) if back.with_timezone(&Utc) == t => Some(local),
        _ => None,
    }
}

/// Writes a `DATE-TIME` property in the zone when possible, in UTC otherwise.
/// Returns whether the `TZID` form was used.
fn write_instant(
    w: &mut ContentWriter,
    name: &str,
    tz: Tz,
    zone: Option<&ZoneRules>,
    t: DateTime<Utc>,
) -> bool {
    // Sub-second precision does not exist in iCalendar; truncate consistently.
    let t = t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()));
    match zone.and_then(|_| unambiguous_local(tz, t)) {
        Some(local) => {
            w.prop(name, &[("TZID", tz.name())], &format_local(local));
            true
        }
        None => {
            w.prop(name, &[], &format_utc(t));
            false
        }
    }
}

fn write_event(w: &mut ContentWriter, tz: Tz, zone: Option<&ZoneRules>, e: &FeedEvent) -> bool {
    let mut tzid_used = false;
    w.begin("VEVENT");
    w.text("UID", &e.uid);
    w.prop("DTSTAMP", &[], &format_utc(e.last_modified));
    match e.when {
        FeedTime::Timed { start, end } => {
            tzid_used |= write_instant(w, "DTSTART", tz, zone, start);
            tzid_used |= write_instant(w, "DTEND", tz, zone, end.max(start));
        }
        FeedTime::AllDay {
            start,
            end_exclusive,
        } => {
            let end = if end_exclusive > start {
                end_exclusive
            } else {
                start.succ_opt().unwrap_or(start)
            };
            w.prop("DTSTART", &[("VALUE", "DATE")], &format_date(start));
            w.prop("DTEND", &[("VALUE", "DATE")], &format_date(end));
        }
    }
    w.prop("SEQUENCE", &[], &e.sequence.to_string());
    if let Some(created) = e.created {
        w.prop("CREATED", &[], &format_utc(created));
    }
    w.prop("LAST-MODIFIED", &[], &format_utc(e.last_modified));
    w.prop("STATUS", &[], e.status.as_ical());
    w.prop("TRANSP", &[], "OPAQUE");
    w.text("SUMMARY", &e.summary);
    if let Some(desc) = &e.description {
        w.text("DESCRIPTION", desc);
    }
    if let Some(loc) = &e.location {
        w.text("LOCATION", loc);
    }
    if let Some(url) = &e.url {
        w.uri("URL", &[], url);
    }
    w.end("VEVENT");
    tzid_used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::model::FeedStatus;
    use chrono_tz::{America, Europe};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn event(uid: &str, when: FeedTime) -> FeedEvent {
        FeedEvent {
            uid: uid.to_owned(),
            summary: "Booked".to_owned(),
            description: None,
            location: None,
            when,
            status: FeedStatus::Confirmed,
            sequence: 0,
            last_modified: utc(2024, 1, 2, 3, 4),
            created: None,
            url: None,
        }
    }

    fn calendar(tz: Tz, events: Vec<FeedEvent>) -> FeedCalendar {
        FeedCalendar {
            name: "Room".to_owned(),
            description: None,
            time_zone: tz,
            source_url: None,
            refresh_interval: Duration::hours(1),
            color: None,
            events,
        }
    }

    fn lines_of(body: &str) -> Vec<String> {
        body.replace("\r\n ", "")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn calendar_names_are_written_on_one_line_and_escaped() {
        let cases = [
            ("Room", "NAME:Room"),
            ("A, B; C\\D", "NAME:A\\, B\\; C\\\\D"),
            ("one\r\ntwo\rthree\nfour", "NAME:one two three four"),
        ];
        for (name, want) in cases {
            let mut cal = calendar(Tz::UTC, vec![]);
            cal.name = name.to_owned();
            let lines = lines_of(&render(&cal));
            assert!(lines.iter().any(|l| l == want), "{name:?}: {lines:#?}");
            let x_wr = want.replacen("NAME", "X-WR-CALNAME", 1);
            assert!(lines.contains(&x_wr), "{name:?}: {lines:#?}");
        }
    }

    #[test]
    fn durations_are_written_in_the_time_form() {
        let cases = [
            (Duration::zero(), "PT0S"),
            (Duration::seconds(-5), "PT0S"),
            (Duration::seconds(59), "PT59S"),
            (Duration::minutes(30), "PT30M"),
            (Duration::hours(1), "PT1H"),
            (Duration::hours(24), "PT24H"),
            (Duration::seconds(3600 + 120 + 3), "PT1H2M3S"),
            (Duration::seconds(3600 + 3), "PT1H3S"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn prodid_names_the_crate_version() {
        assert_eq!(
            PRODID,
            format!("-//bookcal//bookcal {}//EN", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn instants_are_written_per_zone_and_ambiguity() {
        // (zone, instant, expected DTSTART line)
        let cases = [
            (
                Europe::Berlin,
                utc(2024, 3, 30, 9, 0),
                "DTSTART;TZID=Europe/Berlin:20240330T100000",
            ),
            (
                Europe::Berlin,
                utc(2024, 4, 1, 9, 0),
                "DTSTART;TZID=Europe/Berlin:20240401T110000",
            ),
            // 02:30 local happens twice on 2024-10-27: both instants go to UTC.
            (
                Europe::Berlin,
                utc(2024, 10, 27, 0, 30),
                "DTSTART:20241027T003000Z",
            ),
            (
                Europe::Berlin,
                utc(2024, 10, 27, 1, 30),
                "DTSTART:20241027T013000Z",
            ),
            (Tz::UTC, utc(2024, 3, 30, 9, 0), "DTSTART:20240330T090000Z"),
            (
                America::New_York,
                utc(2024, 11, 3, 7, 0),
                "DTSTART;TZID=America/New_York:20241103T020000",
            ),
        ];
        for (tz, t, want) in cases {
            let cal = calendar(
                tz,
                vec![event(
                    "a@bookcal",
                    FeedTime::Timed {
                        start: t,
                        end: t + Duration::hours(1),
                    },
                )],
            );
            let lines = lines_of(&render(&cal));
            assert!(lines.iter().any(|l| l == want), "{tz} {t}: {lines:#?}");
        }
    }

    #[test]
    fn vtimezone_is_written_only_when_a_tzid_is_referenced() {
        let timed = |t| FeedTime::Timed {
            start: t,
            end: t + Duration::hours(1),
        };
        let all_day = FeedTime::AllDay {
            start: date(2024, 5, 1),
            end_exclusive: date(2024, 5, 2),
        };
        // (zone, events, VTIMEZONE expected)
        let cases = [
            (
                Europe::Berlin,
                vec![event("a", timed(utc(2024, 5, 1, 8, 0)))],
                true,
            ),
            (Europe::Berlin, vec![event("a", all_day)], false),
            (Europe::Berlin, vec![], false),
            (
                Tz::UTC,
                vec![event("a", timed(utc(2024, 5, 1, 8, 0)))],
                false,
            ),
            (
                Europe::Berlin,
                vec![event("a", timed(utc(2024, 10, 27, 0, 30)))],
                false,
            ),
            // No yearly rule for 2023..=2024 (Israel: Friday on or after the 23rd).
            (
                chrono_tz::Asia::Jerusalem,
                vec![
                    event("a", timed(utc(2024, 5, 1, 8, 0))),
                    event("b", timed(utc(2023, 5, 1, 8, 0))),
                ],
                false,
            ),
        ];
        for (tz, events, want) in cases {
            let body = render(&calendar(tz, events));
            assert_eq!(body.contains("BEGIN:VTIMEZONE"), want, "{tz}: {body}");
            assert_eq!(body.contains(";TZID="), want, "{tz}: {body}");
        }
    }

    #[test]
    fn inverted_times_are_clamped() {
        let start = utc(2024, 5, 1, 8, 0);
        let cal = calendar(
            Tz::UTC,
            vec![
                event(
                    "a",
                    FeedTime::Timed {
                        start,
                        end: start - Duration::hours(1),
                    },
                ),
                event(
                    "b",
                    FeedTime::AllDay {
                        start: date(2024, 5, 3),
                        end_exclusive: date(2024, 5, 3),
                    },
                ),
            ],
        );
        let lines = lines_of(&render(&cal));
        assert!(lines.iter().any(|l| l == "DTEND:20240501T080000Z"));
        assert!(lines.iter().any(|l| l == "DTEND;VALUE=DATE:20240504"));
    }

    #[test]
    fn events_are_sorted_by_start_then_uid() {
        let t = |h| {
            let s = utc(2024, 5, 1, h, 0);
            FeedTime::Timed {
                start: s,
                end: s + Duration::hours(1),
            }
        };
        let day = FeedTime::AllDay {
            start: date(2024, 5, 1),
            end_exclusive: date(2024, 5, 2),
        };
        let cal = calendar(
            Europe::Berlin,
            vec![
                event("c", t(9)),
                event("b", t(8)),
                event("a", t(9)),
                event("d", day),
            ],
        );
        let uids: Vec<String> = lines_of(&render(&cal))
            .into_iter()
            .filter_map(|l| l.strip_prefix("UID:").map(str::to_owned))
            .collect();
        assert_eq!(uids, ["d", "b", "a", "c"]);
    }

    #[test]
    fn rendering_is_deterministic_and_order_independent() {
        let s = utc(2024, 5, 1, 8, 0);
        let a = event(
            "a",
            FeedTime::Timed {
                start: s,
                end: s + Duration::hours(1),
            },
        );
        let b = event(
            "b",
            FeedTime::Timed {
                start: s,
                end: s + Duration::hours(2),
            },
        );
        let one = render(&calendar(Europe::Berlin, vec![a.clone(), b.clone()]));
        let two = render(&calendar(Europe::Berlin, vec![b, a]));
        assert_eq!(one, two);
    }
}
