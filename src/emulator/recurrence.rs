//! Expansion of recurring events into instances (RFC 5545 RRULE/EXRULE/RDATE/EXDATE
//! lines as Google stores them, without DTSTART) with the `rrule` crate.
//!
//! Timed series recur in the zone of their `start.timeZone`, so local wall-clock time
//! is kept across DST changes; all-day series recur on dates. An instance id is
//! `<parentId>_<YYYYMMDDTHHMMSSZ>` (UTC original start) or `<parentId>_<YYYYMMDD>`
//! for all-day series, as on Google. EXRULE is applied by subtraction because the
//! `rrule` crate ignores it unless built with a feature we do not enable.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rrule::RRuleSet;

use super::error::ApiError;
use super::times::EventTime;

/// Most instances produced for one series in one expansion (Google also stops
/// expanding unbounded series at some horizon).
pub(crate) const MAX_INSTANCES: u16 = 1000;

/// One occurrence of a series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Occurrence {
    /// `originalStartTime` (== start unless an exception moved it).
    pub original_start: EventTime,
    pub start: EventTime,
    pub end: EventTime,
    /// Suffix of the instance id after `<parentId>_`.
    pub id_suffix: String,
}

fn invalid() -> ApiError {
    ApiError::Invalid("Invalid recurrence rule.".into())
}

/// Checks a recurrence and its start/end: Google wants `timeZone` on timed series.
pub(crate) fn validate(
    start: &EventTime,
    end: &EventTime,
    lines: &[String],
) -> Result<(), ApiError> {
    if let EventTime::DateTime { zone: None, .. } = start {
        return Err(ApiError::Required(
            "Missing time zone definition for start time.".into(),
        ));
    }
    if let EventTime::DateTime { zone: None, .. } = end {
        return Err(ApiError::Required(
            "Missing time zone definition for end time.".into(),
        ));
    }
    expand(start, end, lines, None, None, 1).map(|_| ())
}

/// Occurrences of the series whose span intersects `(after, before)` (either open),
/// at most `limit` of them, in start order.
pub(crate) fn expand(
    start: &EventTime,
    end: &EventTime,
    lines: &[String],
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    limit: u16,
) -> Result<Vec<Occurrence>, ApiError> {
    let (dtstart, zone) = match start {
        EventTime::Date(date) => (format!("DTSTART:{}T000000Z", date.format("%Y%m%d")), None),
        EventTime::DateTime { at, zone } => {
            let tz = zone.unwrap_or(chrono_tz::UTC);
            let local = at.with_timezone(&tz).naive_local();
            (
                format!(
                    "DTSTART;TZID={}:{}",
                    tz.name(),
                    local.format("%Y%m%dT%H%M%S")
                ),
                Some(tz),
            )
        }
    };
    let duration = match (start, end) {
        (EventTime::Date(s), EventTime::Date(e)) => *e - *s,
        _ => end.instant(chrono_tz::UTC) - start.instant(chrono_tz::UTC),
    };
    let mut main = vec![dtstart.clone()];
    let mut exrules = Vec::new();
    for line in lines {
        let upper = line.to_ascii_uppercase();
        let line = if zone.is_none() {
            all_day_line(line)
        } else {
            line.clone()
        };
        if upper.starts_with("EXRULE:") {
            exrules.push(format!("{dtstart}\nRRULE:{}", &line["EXRULE:".len()..]));
        } else if upper.starts_with("RRULE:")
            || upper.starts_with("RDATE")
            || upper.starts_with("EXDATE")
        {
            main.push(line);
        } else {
            return Err(invalid());
        }
    }
    let window = |set: RRuleSet| {
        let mut set = set;
        if let Some(after) = after {
            let from = after - duration - Duration::days(1);
            set = set.after(from.with_timezone(&rrule::Tz::UTC));
        }
        if let Some(before) = before {
            set = set.before(before.with_timezone(&rrule::Tz::UTC));
        }
        set
    };
    let set: RRuleSet = main.join("\n").parse().map_err(|_| invalid())?;
    let mut dates = window(set).all(limit).dates;
    for exrule in exrules {
        let set: RRuleSet = exrule.parse().map_err(|_| invalid())?;
        let excluded = window(set).all(u16::MAX).dates;
        dates.retain(|d| !excluded.iter().any(|x| x.timestamp() == d.timestamp()));
    }
    let mut out = Vec::new();
    for date in dates {
        let occurrence = match zone {
            None => {
                let day: NaiveDate = date.date_naive();
                Occurrence {
                    original_start: EventTime::Date(day),
                    start: EventTime::Date(day),
                    end: EventTime::Date(day + duration),
                    id_suffix: day.format("%Y%m%d").to_string(),
                }
            }
            Some(tz) => {
                let at = date.with_timezone(&tz).fixed_offset();
                let end_zone = match end {
                    EventTime::DateTime { zone: Some(z), .. } => *z,
                    _ => tz,
                };
                let end_at = (at + duration).with_timezone(&end_zone).fixed_offset();
                let start = EventTime::DateTime { at, zone: Some(tz) };
                Occurrence {
                    original_start: start.clone(),
                    start,
                    end: EventTime::DateTime {
                        at: end_at,
                        zone: Some(end_zone),
                    },
                    id_suffix: at.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ").to_string(),
                }
            }
        };
        let (s, e) = (
            occurrence.start.instant(chrono_tz::UTC),
            occurrence.end.instant(chrono_tz::UTC),
        );
        let after_ok = after.is_none_or(|a| e > a || (e == s && s >= a));
        let before_ok = before.is_none_or(|b| s < b);
        if after_ok && before_ok {
            out.push(occurrence);
        }
    }
    Ok(out)
}

/// Rewrites `EXDATE;VALUE=DATE:20240105,...` into UTC-midnight date-times, the form
/// the all-day DTSTART uses.
fn all_day_line(line: &str) -> String {
    let Some((head, values)) = line.split_once(':') else {
        return line.to_owned();
    };
    if !head.to_ascii_uppercase().contains("VALUE=DATE") || head.contains("DATE-TIME") {
        return line.to_owned();
    }
    let name = head.split(';').next().unwrap_or(head);
    let values: Vec<String> = values
        .split(',')
        .map(|v| format!("{}T000000Z", v.trim()))
        .collect();
    format!("{name}:{}", values.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time(v: serde_json::Value) -> EventTime {
        EventTime::parse(Some(&v), "start").unwrap_or(EventTime::Date(NaiveDate::MIN))
    }

    fn utc(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn recurrences_expand_to_the_expected_instance_ids() {
        let berlin_start =
            json!({"dateTime": "2024-03-29T10:00:00+01:00", "timeZone": "Europe/Berlin"});
        let berlin_end =
            json!({"dateTime": "2024-03-29T11:00:00+01:00", "timeZone": "Europe/Berlin"});
        let cases: Vec<(serde_json::Value, serde_json::Value, Vec<&str>, Vec<&str>)> = vec![
            // Across the DST change: 10:00 local is 09:00Z, then 08:00Z.
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec!["RRULE:FREQ=DAILY;COUNT=4"],
                vec![
                    "20240329T090000Z",
                    "20240330T090000Z",
                    "20240331T080000Z",
                    "20240401T080000Z",
                ],
            ),
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec![
                    "RRULE:FREQ=DAILY;COUNT=4",
                    "EXDATE;TZID=Europe/Berlin:20240330T100000",
                ],
                vec!["20240329T090000Z", "20240331T080000Z", "20240401T080000Z"],
            ),
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec![
                    "RRULE:FREQ=DAILY;COUNT=2",
                    "RDATE;TZID=Europe/Berlin:20240405T100000",
                ],
                vec!["20240329T090000Z", "20240330T090000Z", "20240405T080000Z"],
            ),
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec!["RRULE:FREQ=DAILY;COUNT=4", "EXRULE:FREQ=DAILY;INTERVAL=2"],
                vec!["20240330T090000Z", "20240401T080000Z"],
            ),
            (
                json!({"date": "2024-01-01"}),
                json!({"date": "2024-01-02"}),
                vec!["RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;VALUE=DATE:20240108"],
                vec!["20240101", "20240115"],
            ),
        ];
        for (start, end, lines, expected) in cases {
            let lines: Vec<String> = lines.into_iter().map(String::from).collect();
            let got = expand(&time(start), &time(end), &lines, None, None, 100)
                .map(|o| o.into_iter().map(|o| o.id_suffix).collect::<Vec<_>>());
            assert_eq!(
                got,
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn expansion_window_uses_exclusive_bounds_on_end_and_start() {
        let start = time(json!({"dateTime": "2024-01-01T10:00:00Z", "timeZone": "UTC"}));
        let end = time(json!({"dateTime": "2024-01-01T11:00:00Z", "timeZone": "UTC"}));
        let lines = vec!["RRULE:FREQ=DAILY;COUNT=10".to_owned()];
        let got = expand(
            &start,
            &end,
            &lines,
            utc("2024-01-02T11:00:00Z"),
            utc("2024-01-05T10:00:00Z"),
            100,
        )
        .map(|o| o.into_iter().map(|o| o.id_suffix).collect::<Vec<_>>());
        assert_eq!(
            got,
            Ok(vec![
                "20240103T100000Z".to_owned(),
                "20240104T100000Z".to_owned()
            ])
        );
    }

    #[test]
    fn bad_recurrences_are_rejected() {
        let start = time(json!({"dateTime": "2024-01-01T10:00:00Z", "timeZone": "UTC"}));
        let end = time(json!({"dateTime": "2024-01-01T11:00:00Z", "timeZone": "UTC"}));
        let no_zone = time(json!({"dateTime": "2024-01-01T10:00:00Z"}));
        let cases: Vec<(&EventTime, Vec<&str>, &str)> = vec![
            (&start, vec!["RRULE:FREQ=SOMETIMES"], "invalid"),
            (&start, vec!["DTSTART:20240101T100000Z"], "invalid"),
            (&start, vec!["hello"], "invalid"),
            (&no_zone, vec!["RRULE:FREQ=DAILY"], "required"),
        ];
        for (s, lines, reason) in cases {
            let lines: Vec<String> = lines.into_iter().map(String::from).collect();
            assert_eq!(
                validate(s, &end, &lines).err().map(|e| e.reason()),
                Some(reason),
                "{lines:?}"
            );
        }
    }
}
