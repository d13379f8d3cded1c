//! Busy slots from external events (pure).
//!
//! What blocks bookings: confirmed or
//! tentative, opaque events that the calendar did not decline. Transparent ("free"),
//! cancelled, declined and working-location events never block. All-day events are
//! whole days in the calendar's zone (midnight to midnight, DST-aware). Recurring
//! events are expanded over a horizon ([`super::recurrence`] reads every form Google
//! writes), with their exceptions (moved instances) and cancelled instances applied;
//! an unreadable rule blocks only its first occurrence and is reported, it never
//! fails the calendar.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::{ExtTime, ExternalEvent};
use crate::store::BusySlot;

/// The window busy slots are kept for.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    // Midnight may not exist (zones that change at 00:00): take the first instant of the day.
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// An event time as a UTC instant (dates at local midnight of `tz`).
pub fn instant(t: &ExtTime, tz: Tz) -> DateTime<Utc> {
    match t {
        ExtTime::Instant { at, .. } => *at,
        ExtTime::Date(d) => midnight(tz, *d),
    }
}

fn blocks(e: &ExternalEvent) -> bool {
    e.status != "cancelled"
        && !e.transparent
        && !e.declined
        && !matches!(e.event_type.as_deref(), Some("workingLocation"))
}

/// Expands a recurring event's start instants within (about) the window, reading its
/// recurrence the way Google writes it (see [`super::recurrence`]): timed series in
/// their own zone, all-day series by dates in the calendar's zone.
fn expand(e: &ExternalEvent, cal_tz: Tz, window: &Window) -> Result<Vec<DateTime<Utc>>, String> {
    let start = e.start.as_ref().ok_or("recurring event without start")?;
    let length = match (start, e.end.as_ref()) {
        (s, Some(en)) => instant(en, cal_tz) - instant(s, cal_tz),
        _ => Duration::zero(),
    };
    // Occurrences that start before the window may still reach into it.
    let from = window.from - length.max(Duration::zero()) - Duration::days(1);
    match start {
        ExtTime::Instant { at, tz } => {
            let zone: Tz = tz.as_deref().and_then(|z| z.parse().ok()).unwrap_or(cal_tz);
            super::recurrence::timed_starts(zone, *at, &e.recurrence, from, window.to)
        }
        ExtTime::Date(d) => {
            let first = from.with_timezone(&cal_tz).date_naive();
            let last = window.to.with_timezone(&cal_tz).date_naive();
            Ok(
                super::recurrence::all_day_dates(*d, cal_tz, &e.recurrence, first, last)?
                    .into_iter()
                    .map(|day| midnight(cal_tz, day))
                    .collect(),
            )
        }
    }
}

/// Result of expanding a calendar's external events.
#[derive(Debug, Default, PartialEq)]
pub struct Expansion {
    pub slots: Vec<BusySlot>,
    pub warnings: Vec<String>,
}

/// Busy slots of a set of external events, sorted, within `window`.
pub fn busy_slots(events: &[ExternalEvent], cal_tz: Tz, window: &Window) -> Expansion {
    let mut out = Expansion::default();
    // Exceptions of recurring events: (parent id, original start) -> replaced.
    let mut overridden: BTreeMap<&str, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for e in events {
        if let (Some(parent), Some(orig)) = (&e.recurring_event_id, &e.original_start) {
            overridden
                .entry(parent.as_str())
                .or_default()
                .insert(instant(orig, cal_tz));
        }
    }
    let push = |start: DateTime<Utc>, end: DateTime<Utc>, source: &str, out: &mut Expansion| {
        if end > start && end > window.from && start < window.to {
            out.slots.push(BusySlot {
                start,
                end,
                source_event_id: source.to_string(),
            });
        }
    };
    for e in events {
        if !blocks(e) {
            continue;
        }
        let (Some(s), Some(en)) = (&e.start, &e.end) else {
            continue;
        };
        let start = instant(s, cal_tz);
        let end = instant(en, cal_tz);
        if e.recurrence.is_empty() {
            push(start, end, &e.id, &mut out);
            continue;
        }
        let skip = overridden.get(e.id.as_str());
        match expand(e, cal_tz, window) {
            Ok(starts) => {
                for st in starts {
                    if skip.is_some_and(|s| s.contains(&st)) {
                        continue;
                    }
                    // Keep the local duration for all-day events across DST (whole days).
                    let en = match (s, en) {
                        (ExtTime::Date(a), ExtTime::Date(b)) => {
                            let days = (*b - *a).num_days();
                            let local_day = st.with_timezone(&cal_tz).date_naive();
                            midnight(cal_tz, local_day + Duration::days(days))
                        }
                        _ => st + (end - start),
                    };
                    push(st, en, &e.id, &mut out);
                }
            }
            Err(err) => {
                out.warnings.push(format!(
                    "event {}: recurrence not understood ({err}); only its first occurrence blocks",
                    e.id
                ));
                push(start, end, &e.id, &mut out);
            }
        }
    }
    out.slots.sort_by(|a, b| {
        (a.start, a.end, &a.source_event_id).cmp(&(b.start, b.end, &b.source_event_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }
    fn ev(id: &str, start: ExtTime, end: ExtTime) -> ExternalEvent {
        ExternalEvent {
            id: id.into(),
            status: "confirmed".into(),
            transparent: false,
            declined: false,
            event_type: None,
            start: Some(start),
            end: Some(end),
            recurrence: vec![],
            recurring_event_id: None,
            original_start: None,
            summary: None,
        }
    }
    fn at(s: &str, tz: Option<&str>) -> ExtTime {
        ExtTime::Instant {
            at: utc(s),
            tz: tz.map(String::from),
        }
    }
    fn day(s: &str) -> ExtTime {
        ExtTime::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date"))
    }
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn window() -> Window {
        Window {
            from: utc("2030-01-01T00:00:00Z"),
            to: utc("2031-01-01T00:00:00Z"),
        }
    }

    fn spans(x: &Expansion) -> Vec<(String, String)> {
        x.slots
            .iter()
            .map(|s| (s.start.to_rfc3339(), s.end.to_rfc3339()))
            .collect()
    }

    #[test]
    fn which_events_block_table() {
        let base = ev(
            "e",
            at("2030-03-01T10:00:00Z", None),
            at("2030-03-01T11:00:00Z", None),
        );
        let cases: Vec<(&str, ExternalEvent, usize)> = vec![
            ("confirmed opaque", base.clone(), 1),
            (
                "tentative",
                ExternalEvent {
                    status: "tentative".into(),
                    ..base.clone()
                },
                1,
            ),
            (
                "cancelled",
                ExternalEvent {
                    status: "cancelled".into(),
                    ..base.clone()
                },
                0,
            ),
            (
                "transparent",
                ExternalEvent {
                    transparent: true,
                    ..base.clone()
                },
                0,
            ),
            (
                "declined",
                ExternalEvent {
                    declined: true,
                    ..base.clone()
                },
                0,
            ),
            (
                "working location",
                ExternalEvent {
                    event_type: Some("workingLocation".into()),
                    ..base.clone()
                },
                0,
            ),
            (
                "out of office",
                ExternalEvent {
                    event_type: Some("outOfOffice".into()),
                    ..base.clone()
                },
                1,
            ),
            (
                "before the window",
                ev(
                    "old",
                    at("2029-03-01T10:00:00Z", None),
                    at("2029-03-01T11:00:00Z", None),
                ),
                0,
            ),
        ];
        for (name, e, n) in cases {
            assert_eq!(busy_slots(&[e], BERLIN, &window()).slots.len(), n, "{name}");
        }
    }

    #[test]
    fn all_day_events_are_whole_local_days_across_dst() {
        // 2030-03-31 is the spring-forward Sunday in Berlin: a 23-hour day.
        let x = busy_slots(
            &[ev("d", day("2030-03-30"), day("2030-04-01"))],
            BERLIN,
            &window(),
        );
        assert_eq!(
            spans(&x),
            vec![(
                "2030-03-29T23:00:00+00:00".into(),
                "2030-03-31T22:00:00+00:00".into()
            )]
        );
    }

    #[test]
    fn recurring_events_expand_with_exceptions_and_cancelled_instances_across_dst() {
        // Weekly on Fridays 09:00 Berlin, 4 times, spanning the March 2030 DST change.
        let mut parent = ev(
            "r",
            at("2030-03-22T08:00:00Z", Some("Europe/Berlin")),
            at("2030-03-22T09:00:00Z", Some("Europe/Berlin")),
        );
        parent.recurrence = vec!["RRULE:FREQ=WEEKLY;COUNT=4".into()];
        // The second instance (29 Mar) is cancelled; the third (5 Apr) moved to 11:00 local.
        let mut cancelled = ev(
            "r_20300329T080000Z",
            at("2030-03-29T08:00:00Z", None),
            at("2030-03-29T09:00:00Z", None),
        );
        cancelled.status = "cancelled".into();
        cancelled.recurring_event_id = Some("r".into());
        cancelled.original_start = Some(at("2030-03-29T08:00:00Z", None));
        let mut moved = ev(
            "r_20300405T070000Z",
            at("2030-04-05T09:00:00Z", None),
            at("2030-04-05T10:00:00Z", None),
        );
        moved.recurring_event_id = Some("r".into());
        moved.original_start = Some(at("2030-04-05T07:00:00Z", None));
        let x = busy_slots(&[parent, cancelled, moved], BERLIN, &window());
        assert_eq!(
            spans(&x),
            vec![
                (
                    "2030-03-22T08:00:00+00:00".into(),
                    "2030-03-22T09:00:00+00:00".into()
                ),
                // After the change 09:00 local is 07:00 UTC.
                (
                    "2030-04-05T09:00:00+00:00".into(),
                    "2030-04-05T10:00:00+00:00".into()
                ),
                (
                    "2030-04-12T07:00:00+00:00".into(),
                    "2030-04-12T08:00:00+00:00".into()
                ),
            ]
        );
        assert!(x.slots.iter().all(|s| s.source_event_id.starts_with('r')));
    }

    #[test]
    fn exdates_and_all_day_recurrences_are_honoured() {
        let mut p = ev("w", day("2030-06-03"), day("2030-06-04"));
        p.recurrence = vec![
            "RRULE:FREQ=DAILY;COUNT=3".into(),
            "EXDATE;VALUE=DATE:20300604".into(),
        ];
        let x = busy_slots(&[p], BERLIN, &window());
        assert_eq!(
            spans(&x),
            vec![
                (
                    "2030-06-02T22:00:00+00:00".into(),
                    "2030-06-03T22:00:00+00:00".into()
                ),
                (
                    "2030-06-04T22:00:00+00:00".into(),
                    "2030-06-05T22:00:00+00:00".into()
                ),
            ]
        );
    }

    /// Series exactly as Google lists them (recurrence lines, exceptions as separate
    /// events with `recurringEventId` and `originalStartTime`) -> busy slots.
    #[test]
    fn series_as_google_writes_them_become_the_expected_busy_slots() {
        fn series(id: &str, start: ExtTime, end: ExtTime, lines: &[&str]) -> ExternalEvent {
            ExternalEvent {
                recurrence: lines.iter().map(|l| (*l).to_owned()).collect(),
                ..ev(id, start, end)
            }
        }
        fn instance(
            parent: &str,
            original: ExtTime,
            moved: Option<(ExtTime, ExtTime)>,
        ) -> ExternalEvent {
            let (start, end, status) = match moved {
                Some((s, e)) => (Some(s), Some(e), "confirmed"),
                None => (None, None, "cancelled"),
            };
            ExternalEvent {
                id: format!("{parent}_x"),
                status: status.into(),
                start,
                end,
                recurring_event_id: Some(parent.into()),
                original_start: Some(original),
                ..ev("x", day("2030-01-01"), day("2030-01-02"))
            }
        }
        let berlin = Some("Europe/Berlin");
        struct Case {
            name: &'static str,
            events: Vec<ExternalEvent>,
            count: usize,
            first: (&'static str, &'static str),
            last: (&'static str, &'static str),
        }
        let cases = vec![
            Case {
                name: "lab closed on Mondays: all-day, weekly, date UNTIL, 13 weeks over DST",
                events: vec![series(
                    "closed",
                    day("2030-02-04"),
                    day("2030-02-05"),
                    &["RRULE:FREQ=WEEKLY;WKST=SU;UNTIL=20300429;BYDAY=MO"],
                )],
                count: 13,
                first: ("2030-02-03T23:00:00+00:00", "2030-02-04T23:00:00+00:00"),
                last: ("2030-04-28T22:00:00+00:00", "2030-04-29T22:00:00+00:00"),
            },
            Case {
                name: "timed weekly with a date UNTIL keeps 10:00 local across DST",
                events: vec![series(
                    "seminar",
                    at("2030-03-18T09:00:00Z", berlin),
                    at("2030-03-18T10:30:00Z", berlin),
                    &["RRULE:FREQ=WEEKLY;UNTIL=20300415"],
                )],
                count: 5,
                first: ("2030-03-18T09:00:00+00:00", "2030-03-18T10:30:00+00:00"),
                last: ("2030-04-15T08:00:00+00:00", "2030-04-15T09:30:00+00:00"),
            },
            Case {
                name: "timed daily with EXDATE;TZID, a cancelled and a moved instance",
                events: vec![
                    series(
                        "daily",
                        at("2030-06-03T07:00:00Z", berlin),
                        at("2030-06-03T08:00:00Z", berlin),
                        &[
                            "RRULE:FREQ=DAILY;COUNT=5",
                            "EXDATE;TZID=Europe/Berlin:20300604T090000",
                        ],
                    ),
                    instance("daily", at("2030-06-05T07:00:00Z", berlin), None),
                    instance(
                        "daily",
                        at("2030-06-07T07:00:00Z", berlin),
                        Some((
                            at("2030-06-07T12:00:00Z", berlin),
                            at("2030-06-07T13:00:00Z", berlin),
                        )),
                    ),
                ],
                count: 3,
                first: ("2030-06-03T07:00:00+00:00", "2030-06-03T08:00:00+00:00"),
                last: ("2030-06-07T12:00:00+00:00", "2030-06-07T13:00:00+00:00"),
            },
            Case {
                name: "two-day all-day series with a cancelled date instance",
                events: vec![
                    series(
                        "retreat",
                        day("2030-10-24"),
                        day("2030-10-26"),
                        &["RRULE:FREQ=WEEKLY;COUNT=3"],
                    ),
                    instance("retreat", day("2030-10-31"), None),
                ],
                count: 2,
                // 27 October 2030 is the autumn change: a 25-hour day.
                first: ("2030-10-23T22:00:00+00:00", "2030-10-25T22:00:00+00:00"),
                last: ("2030-11-06T23:00:00+00:00", "2030-11-08T23:00:00+00:00"),
            },
        ];
        for case in cases {
            let x = busy_slots(&case.events, BERLIN, &window());
            assert!(x.warnings.is_empty(), "{}: {:?}", case.name, x.warnings);
            let got = spans(&x);
            assert_eq!(got.len(), case.count, "{}: {got:?}", case.name);
            let pair = |p: (&str, &str)| (p.0.to_owned(), p.1.to_owned());
            assert_eq!(
                got.first().cloned(),
                Some(pair(case.first)),
                "{}",
                case.name
            );
            assert_eq!(got.last().cloned(), Some(pair(case.last)), "{}", case.name);
        }
    }

    #[test]
    fn a_malformed_rule_blocks_its_first_occurrence_and_warns() {
        let mut p = ev(
            "bad",
            at("2030-05-01T10:00:00Z", Some("Europe/Berlin")),
            at("2030-05-01T11:00:00Z", Some("Europe/Berlin")),
        );
        p.recurrence = vec!["RRULE:FREQ=SOMETIMES".into()];
        let ok = ev(
            "ok",
            at("2030-05-02T10:00:00Z", None),
            at("2030-05-02T11:00:00Z", None),
        );
        let x = busy_slots(&[p, ok], BERLIN, &window());
        assert_eq!(x.slots.len(), 2);
        assert_eq!(x.warnings.len(), 1);
    }
}
