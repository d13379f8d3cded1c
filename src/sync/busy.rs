//! Busy slots from external events (pure).
//!
//! What blocks bookings: confirmed or
//! tentative, opaque events that the calendar did not decline. Transparent ("free"),
//! cancelled, declined and working-location events never block. All-day events are
//! whole days in the calendar's zone (midnight to midnight, DST-aware). Recurring
//! events are expanded here with the `rrule` crate over a horizon, with their
//! exceptions (moved instances) and cancelled instances applied; an unparsable rule
//! blocks only its first occurrence and is reported, it never fails the calendar.

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

/// Expands a recurring event's start instants (as local starts in its zone).
fn expand(e: &ExternalEvent, cal_tz: Tz, window: &Window) -> Result<Vec<DateTime<Utc>>, String> {
    let start = e.start.as_ref().ok_or("recurring event without start")?;
    let (tz, local_start) = match start {
        ExtTime::Instant { at, tz } => {
            let zone: Tz = tz.as_deref().and_then(|z| z.parse().ok()).unwrap_or(cal_tz);
            (zone, at.with_timezone(&zone).naive_local())
        }
        ExtTime::Date(d) => (cal_tz, d.and_hms_opt(0, 0, 0).unwrap_or_default()),
    };
    let mut text = format!(
        "DTSTART;TZID={}:{}\n",
        tz.name(),
        local_start.format("%Y%m%dT%H%M%S")
    );
    for line in &e.recurrence {
        // All-day exception dates become local midnights, which is what they mean.
        let line = if let Some(rest) = line.strip_prefix("EXDATE;VALUE=DATE:") {
            let parts: Vec<String> = rest.split(',').map(|d| format!("{d}T000000")).collect();
            format!("EXDATE;TZID={}:{}", tz.name(), parts.join(","))
        } else if let Some(rest) = line.strip_prefix("RDATE;VALUE=DATE:") {
            let parts: Vec<String> = rest.split(',').map(|d| format!("{d}T000000")).collect();
            format!("RDATE;TZID={}:{}", tz.name(), parts.join(","))
        } else {
            line.clone()
        };
        text.push_str(&line);
        text.push('\n');
    }
    let set: rrule::RRuleSet = text.trim_end().parse().map_err(|e| format!("{e}"))?;
    let rtz = rrule::Tz::Tz(tz);
    let after = (window.from - Duration::days(1)).with_timezone(&rtz);
    let before = window.to.with_timezone(&rtz);
    let res = set.after(after).before(before).all(u16::MAX);
    Ok(res
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .collect())
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
