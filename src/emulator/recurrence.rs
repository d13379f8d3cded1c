//! Expansion of recurring events into instances (RFC 5545 RRULE/EXRULE/RDATE/EXDATE
//! lines as Google stores them, without DTSTART) with the `rrule` crate.
//!
//! Timed series recur in the zone of their `start.timeZone`, so local wall-clock time
//! is kept across DST changes; all-day series recur on dates. An instance id is
//! `<parentId>_<YYYYMMDDTHHMMSSZ>` (UTC original start) or `<parentId>_<YYYYMMDD>`
//! for all-day series, as on Google. EXRULE is applied by subtraction because the
//! `rrule` crate ignores it unless built with a feature we do not enable.
//!
//! Google writes several forms the `rrule` crate refuses or reads in the *machine's*
//! local zone (a value with neither `Z` nor `TZID`), so every line is first rewritten
//! into an unambiguous form ([`normalise_line`]):
//! - `UNTIL` as a date (`UNTIL=20270301`, inclusive of that day: for a timed series the
//!   end of that day in the series' zone, in UTC) or as a floating date-time (in the
//!   series' zone); a UTC date-time is kept;
//! - `EXDATE`/`RDATE` with `;TZID=`, as UTC date-times, as floating date-times (in the
//!   series' zone), or as dates (`;VALUE=DATE`: for a timed series, that day at the
//!   series' start time).
//!
//! All-day series are expanded in a frame where dates are UTC midnights; there every
//! value becomes its date.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
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
    let frame = match (zone, start) {
        (Some(tz), EventTime::DateTime { at, .. }) => Frame::Timed {
            tz,
            time: at.with_timezone(&tz).time(),
        },
        _ => Frame::AllDay,
    };
    let mut main = vec![dtstart.clone()];
    let mut exrules = Vec::new();
    for line in lines {
        let upper = line.to_ascii_uppercase();
        let line = normalise_line(line, frame).ok_or_else(invalid)?;
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

/// How a series' values are read.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// A timed series in `tz` starting at local `time`.
    Timed { tz: Tz, time: NaiveTime },
    /// An all-day series: dates as UTC midnights.
    AllDay,
}

/// One value of a property, as written.
enum Value {
    Date(NaiveDate),
    /// A date-time in UTC (`Z`).
    Utc(NaiveDateTime),
    /// A local date-time, in the named zone or (`None`) floating.
    Local(NaiveDateTime, Option<Tz>),
}

fn parse_value(text: &str, tzid: Option<Tz>) -> Option<Value> {
    let text = text.trim();
    if text.len() == 8 {
        return NaiveDate::parse_from_str(text, "%Y%m%d")
            .ok()
            .map(Value::Date);
    }
    if let Some(utc) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .ok()
            .map(Value::Utc);
    }
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S")
        .ok()
        .map(|local| Value::Local(local, tzid))
}

/// `local` in `tz` as a UTC value string (the earlier instant when ambiguous, moved
/// past a DST gap).
fn utc_text(tz: Tz, local: NaiveDateTime) -> String {
    super::times::localize(tz, local)
        .with_timezone(&Utc)
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// `UNTIL` in the frame's unambiguous form.
fn until_text(value: &Value, frame: Frame) -> String {
    match (frame, value) {
        (Frame::AllDay, Value::Date(d)) => format!("{}T000000Z", d.format("%Y%m%d")),
        (Frame::AllDay, Value::Utc(t) | Value::Local(t, _)) => {
            format!("{}T000000Z", t.date().format("%Y%m%d"))
        }
        (Frame::Timed { tz, .. }, Value::Date(d)) => {
            // Inclusive of the whole day: its last second in the series' zone.
            utc_text(
                tz,
                d.and_time(NaiveTime::MIN) + Duration::days(1) - Duration::seconds(1),
            )
        }
        (Frame::Timed { .. }, Value::Utc(t)) => t.format("%Y%m%dT%H%M%SZ").to_string(),
        (Frame::Timed { tz, .. }, Value::Local(t, zone)) => utc_text(zone.unwrap_or(tz), *t),
    }
}

/// An `EXDATE`/`RDATE` value in the frame's unambiguous form (UTC).
fn date_value_text(value: &Value, frame: Frame) -> String {
    match (frame, value) {
        (Frame::AllDay, Value::Date(d)) => format!("{}T000000Z", d.format("%Y%m%d")),
        (Frame::AllDay, Value::Utc(t) | Value::Local(t, _)) => {
            format!("{}T000000Z", t.date().format("%Y%m%d"))
        }
        (Frame::Timed { tz, time }, Value::Date(d)) => utc_text(tz, d.and_time(time)),
        (Frame::Timed { .. }, Value::Utc(t)) => t.format("%Y%m%dT%H%M%SZ").to_string(),
        (Frame::Timed { tz, .. }, Value::Local(t, zone)) => utc_text(zone.unwrap_or(tz), *t),
    }
}

/// Rewrites one recurrence line into a form the `rrule` crate reads the way Google
/// does (see the module docs); `None` when it is not a line Google accepts.
fn normalise_line(line: &str, frame: Frame) -> Option<String> {
    let (head, values) = line.split_once(':')?;
    let mut parts = head.split(';');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let mut tzid = None;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        match key.trim().to_ascii_uppercase().as_str() {
            "TZID" => tzid = Some(value.trim().parse::<Tz>().ok()?),
            "VALUE" => {
                let kind = value.trim().to_ascii_uppercase();
                if kind != "DATE" && kind != "DATE-TIME" {
                    return None;
                }
            }
            _ => return None,
        }
    }
    match name.as_str() {
        "RRULE" | "EXRULE" => {
            let rule: Vec<String> = values
                .split(';')
                .map(|part| match part.split_once('=') {
                    Some((key, value)) if key.trim().eq_ignore_ascii_case("UNTIL") => {
                        parse_value(value, None).map(|v| format!("UNTIL={}", until_text(&v, frame)))
                    }
                    _ => Some(part.to_owned()),
                })
                .collect::<Option<_>>()?;
            Some(format!("{name}:{}", rule.join(";")))
        }
        "EXDATE" | "RDATE" => {
            let converted: Vec<String> = values
                .split(',')
                .map(|v| parse_value(v, tzid).map(|v| date_value_text(&v, frame)))
                .collect::<Option<_>>()?;
            Some(format!("{name}:{}", converted.join(",")))
        }
        _ => None,
    }
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
            // UNTIL as a plain date: inclusive of that day in the series' zone.
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec!["RRULE:FREQ=DAILY;UNTIL=20240331"],
                vec!["20240329T090000Z", "20240330T090000Z", "20240331T080000Z"],
            ),
            // UNTIL as a UTC date-time, and as a floating date-time (series' zone).
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec!["RRULE:FREQ=DAILY;UNTIL=20240330T090000Z"],
                vec!["20240329T090000Z", "20240330T090000Z"],
            ),
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec!["RRULE:FREQ=DAILY;UNTIL=20240330T095959"],
                vec!["20240329T090000Z"],
            ),
            // EXDATE in UTC, as a date on a timed series, and a floating RDATE.
            (
                berlin_start.clone(),
                berlin_end.clone(),
                vec![
                    "RRULE:FREQ=DAILY;COUNT=4",
                    "EXDATE:20240330T090000Z",
                    "EXDATE;VALUE=DATE:20240401",
                    "RDATE:20240410T100000",
                ],
                vec!["20240329T090000Z", "20240331T080000Z", "20240410T080000Z"],
            ),
            // An all-day series ending on a date, with several exception dates.
            (
                json!({"date": "2027-01-04"}),
                json!({"date": "2027-01-05"}),
                vec![
                    "RRULE:FREQ=WEEKLY;WKST=SU;UNTIL=20270201;BYDAY=MO",
                    "EXDATE;VALUE=DATE:20270111,20270118",
                ],
                vec!["20270104", "20270125", "20270201"],
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
            (
                &start,
                vec!["RDATE;VALUE=PERIOD:20240101T100000Z/PT1H"],
                "invalid",
            ),
            (
                &start,
                vec!["EXDATE;TZID=Mars/Base:20240101T100000"],
                "invalid",
            ),
            (&start, vec!["RRULE:FREQ=DAILY;UNTIL=yesterday"], "invalid"),
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
