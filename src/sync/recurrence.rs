//! Recurring external events read the way Google writes them (pure).
//!
//! Google stores a series as `start`/`end` plus RFC 5545 lines without DTSTART, in
//! forms the `rrule` crate alone gets wrong:
//! - `UNTIL` as a plain date (`RRULE:FREQ=WEEKLY;UNTIL=20270301`), for all-day series
//!   and often for timed ones, or as a UTC date-time. RFC 5545 makes a date UNTIL
//!   inclusive of that day; the crate refuses a date (or floating) UNTIL beside a
//!   DTSTART in a named zone, and reads floating values in the *machine's* zone.
//! - `EXDATE`/`RDATE` with `;TZID=`, as UTC date-times, or as dates (`;VALUE=DATE`).
//!
//! So only the rules (RRULE, EXRULE) go to the crate, each with its UNTIL converted to
//! UTC; dates to add or exclude are read here:
//! - a timed series recurs in its zone (wall-clock time kept across DST); a date
//!   UNTIL ends with the last second of that day there; a date EXDATE removes the
//!   occurrences starting on that local day; a date RDATE adds that day at the
//!   series' start time;
//! - an all-day series recurs on dates (expanded with dates as UTC midnights, so no
//!   DST question arises); values with a time count by their date in the calendar's
//!   zone.
//!
//! The series' start always counts as its first occurrence (RFC 5545 3.8.5.3), even
//! when the rule would not produce it; an UNTIL before the start leaves just that one.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Most occurrences one rule yields in one window.
const MAX_PER_RULE: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
    Rule,
    ExRule,
    Date,
    ExDate,
}

/// A value of an RDATE/EXDATE or an UNTIL, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    Day(NaiveDate),
    Utc(NaiveDateTime),
    /// Local time in the named zone, or floating (`None`: the series' zone).
    Local(NaiveDateTime, Option<Tz>),
}

/// One recurrence line, split.
struct Line<'a> {
    property: Property,
    tzid: Option<Tz>,
    /// The part after the colon.
    value: &'a str,
}

fn parse_line(line: &str) -> Result<Line<'_>, String> {
    // Recurrence lines are ASCII (RFC 5545 3.3.10); the `rrule` crate slices rule
    // parts by byte and panics on some non-ASCII ones (found by fuzz/rrule_expansion).
    if !line.is_ascii() {
        return Err(format!("{line:?} is not ASCII"));
    }
    let (head, value) = line
        .split_once(':')
        .ok_or_else(|| format!("{line:?} has no value"))?;
    let mut params = head.split(';');
    let property = match params
        .next()
        .map(|p| p.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("RRULE") => Property::Rule,
        Some("EXRULE") => Property::ExRule,
        Some("RDATE") => Property::Date,
        Some("EXDATE") => Property::ExDate,
        _ => return Err(format!("{line:?} is not a recurrence line")),
    };
    let mut tzid = None;
    for param in params {
        match param.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("TZID") => {
                tzid = Some(
                    v.trim()
                        .parse::<Tz>()
                        .map_err(|_| format!("unknown zone {v:?}"))?,
                );
            }
            Some((k, v))
                if k.trim().eq_ignore_ascii_case("VALUE")
                    && (v.trim().eq_ignore_ascii_case("DATE")
                        || v.trim().eq_ignore_ascii_case("DATE-TIME")) => {}
            _ => return Err(format!("unsupported parameter {param:?}")),
        }
    }
    Ok(Line {
        property,
        tzid,
        value,
    })
}

fn parse_written(text: &str, tzid: Option<Tz>) -> Result<Written, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a date or date-time");
    if text.len() == 8 {
        return NaiveDate::parse_from_str(text, "%Y%m%d")
            .map(Written::Day)
            .map_err(|_| bad());
    }
    match text.strip_suffix(['Z', 'z']) {
        Some(utc) => NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .map(Written::Utc)
            .map_err(|_| bad()),
        None => NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S")
            .map(|t| Written::Local(t, tzid))
            .map_err(|_| bad()),
    }
}

/// `local` in `tz`: the earlier instant when ambiguous, the first instant after a gap.
fn at_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    for shift in 0..4 {
        if let Some(t) = tz
            .from_local_datetime(&(local + Duration::hours(shift)))
            .earliest()
        {
            return t.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&local)
}

/// How values are read: in a timed series' zone, or by date in the calendar's zone.
#[derive(Clone, Copy)]
enum Frame {
    Timed { tz: Tz, start_time: NaiveTime },
    AllDay { cal_tz: Tz },
}

impl Frame {
    /// The instant a value denotes (timed series).
    fn instant(self, w: Written) -> DateTime<Utc> {
        match (self, w) {
            (_, Written::Utc(t)) => Utc.from_utc_datetime(&t),
            (Frame::Timed { tz, .. }, Written::Local(t, zone)) => at_local(zone.unwrap_or(tz), t),
            (Frame::Timed { tz, start_time }, Written::Day(d)) => {
                at_local(tz, d.and_time(start_time))
            }
            (Frame::AllDay { cal_tz }, Written::Local(t, zone)) => {
                at_local(zone.unwrap_or(cal_tz), t)
            }
            (Frame::AllDay { cal_tz }, Written::Day(d)) => {
                at_local(cal_tz, d.and_time(NaiveTime::MIN))
            }
        }
    }

    /// The date a value denotes (all-day series).
    fn day(self, w: Written) -> NaiveDate {
        match (self, w) {
            (_, Written::Day(d)) => d,
            (Frame::AllDay { cal_tz }, Written::Utc(t)) => Utc
                .from_utc_datetime(&t)
                .with_timezone(&cal_tz)
                .date_naive(),
            (Frame::Timed { tz, .. }, Written::Utc(t)) => {
                Utc.from_utc_datetime(&t).with_timezone(&tz).date_naive()
            }
            (_, Written::Local(t, _)) => t.date(),
        }
    }

    /// The UNTIL of a rule as a UTC instant in the expansion's frame (all-day series
    /// expand with dates as UTC midnights); a date is inclusive of that day.
    fn until(self, w: Written) -> DateTime<Utc> {
        match self {
            Frame::Timed { tz, .. } => match w {
                Written::Day(d) => {
                    at_local(tz, d.and_time(NaiveTime::MIN) + Duration::days(1))
                        - Duration::seconds(1)
                }
                other => self.instant(other),
            },
            // Every day whose start is not after UNTIL: up to UNTIL's own date.
            Frame::AllDay { .. } => Utc.from_utc_datetime(&self.day(w).and_time(NaiveTime::MIN)),
        }
    }

    /// The DTSTART line of the expansion.
    fn dtstart(self, local: NaiveDateTime) -> String {
        match self {
            Frame::Timed { tz, .. } => format!(
                "DTSTART;TZID={}:{}",
                tz.name(),
                local.format("%Y%m%dT%H%M%S")
            ),
            Frame::AllDay { .. } => format!("DTSTART:{}Z", local.format("%Y%m%dT%H%M%S")),
        }
    }
}

/// A rule with its UNTIL rewritten to UTC, or `None` when UNTIL is before `start`.
fn rule_text(rule: &str, frame: Frame, start: DateTime<Utc>) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for part in rule.split(';').filter(|p| !p.trim().is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => {
                let until = frame.until(parse_written(v, None)?);
                if until < start {
                    return Ok(None);
                }
                parts.push(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
            }
            _ => parts.push(part.trim().to_owned()),
        }
    }
    Ok(Some(parts.join(";")))
}

/// Start instants (in the frame's terms) that the rules of `lines` produce in
/// `[from, to)`, plus the series' start.
fn expand_rules(
    frame: Frame,
    local_start: NaiveDateTime,
    lines: &[Line<'_>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeSet<DateTime<Utc>>, String> {
    let start = match frame {
        Frame::Timed { tz, .. } => at_local(tz, local_start),
        Frame::AllDay { .. } => Utc.from_utc_datetime(&local_start),
    };
    let run = |rule: &str| -> Result<Vec<DateTime<Utc>>, String> {
        let Some(rule) = rule_text(rule, frame, start)? else {
            return Ok(Vec::new());
        };
        let text = format!("{}\nRRULE:{rule}", frame.dtstart(local_start));
        let set: rrule::RRuleSet = text.parse().map_err(|e| format!("{e}"))?;
        let set = set
            .after(from.with_timezone(&rrule::Tz::UTC))
            .before(to.with_timezone(&rrule::Tz::UTC));
        Ok(set
            .all(MAX_PER_RULE)
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .collect())
    };
    let mut out = BTreeSet::new();
    if start >= from && start < to {
        out.insert(start);
    }
    for line in lines.iter().filter(|l| l.property == Property::Rule) {
        out.extend(run(line.value)?);
    }
    for line in lines.iter().filter(|l| l.property == Property::ExRule) {
        for t in run(line.value)? {
            out.remove(&t);
        }
    }
    Ok(out)
}

fn written_values(line: &Line<'_>) -> Result<Vec<Written>, String> {
    line.value
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_written(v, line.tzid))
        .collect()
}

/// Start instants of a timed series that starts at `start` in `tz`, within
/// `[from, to)`.
///
/// # Errors
/// A line that is not a recurrence line Google writes, or a rule the `rrule` crate
/// cannot read.
pub fn timed_starts(
    tz: Tz,
    start: DateTime<Utc>,
    lines: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, String> {
    let local = start.with_timezone(&tz).naive_local();
    let frame = Frame::Timed {
        tz,
        start_time: local.time(),
    };
    let lines: Vec<Line<'_>> = lines
        .iter()
        .map(|l| parse_line(l))
        .collect::<Result<_, _>>()?;
    let mut starts = expand_rules(frame, local, &lines, from, to)?;
    for line in &lines {
        match line.property {
            Property::Date => {
                for w in written_values(line)? {
                    let t = frame.instant(w);
                    if t >= from && t < to {
                        starts.insert(t);
                    }
                }
            }
            Property::ExDate => {
                for w in written_values(line)? {
                    match w {
                        Written::Day(d) => {
                            starts.retain(|t| t.with_timezone(&tz).date_naive() != d);
                        }
                        other => {
                            starts.remove(&frame.instant(other));
                        }
                    }
                }
            }
            Property::Rule | Property::ExRule => {}
        }
    }
    Ok(starts.into_iter().collect())
}

/// Dates of an all-day series starting on `start`, within `[from, to]`; values with a
/// time are read by their date in `cal_tz`.
///
/// # Errors
/// As [`timed_starts`].
pub fn all_day_dates(
    start: NaiveDate,
    cal_tz: Tz,
    lines: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>, String> {
    let frame = Frame::AllDay { cal_tz };
    let lines: Vec<Line<'_>> = lines
        .iter()
        .map(|l| parse_line(l))
        .collect::<Result<_, _>>()?;
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
    let in_range = |d: NaiveDate| d >= from && d <= to;
    let mut days: BTreeSet<NaiveDate> = expand_rules(
        frame,
        start.and_time(NaiveTime::MIN),
        &lines,
        midnight(from),
        midnight(to) + Duration::days(1),
    )?
    .into_iter()
    .map(|t| t.date_naive())
    .collect();
    for line in &lines {
        match line.property {
            Property::Date => {
                for w in written_values(line)? {
                    let d = frame.day(w);
                    if in_range(d) {
                        days.insert(d);
                    }
                }
            }
            Property::ExDate => {
                for w in written_values(line)? {
                    days.remove(&frame.day(w));
                }
            }
            Property::Rule | Property::ExRule => {}
        }
    }
    Ok(days.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    /// Timed series as Google writes them: start (UTC), lines, expected starts (UTC).
    #[test]
    fn timed_series_as_google_writes_them() {
        let from = utc("2030-01-01T00:00:00Z");
        let to = utc("2031-01-01T00:00:00Z");
        // Monday 10:00 Berlin = 09:00Z in winter, 08:00Z in summer (DST 2030-03-31).
        let monday = "2030-03-18T09:00:00Z";
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            (
                "a date UNTIL is inclusive of that day, across DST",
                monday,
                &["RRULE:FREQ=WEEKLY;UNTIL=20300408"],
                &[
                    "2030-03-18T09:00:00+00:00",
                    "2030-03-25T09:00:00+00:00",
                    "2030-04-01T08:00:00+00:00",
                    "2030-04-08T08:00:00+00:00",
                ],
            ),
            (
                "a UTC date-time UNTIL",
                monday,
                &["RRULE:FREQ=WEEKLY;UNTIL=20300401T075959Z"],
                &["2030-03-18T09:00:00+00:00", "2030-03-25T09:00:00+00:00"],
            ),
            (
                "a floating UNTIL is read in the series' zone",
                monday,
                &["RRULE:FREQ=WEEKLY;UNTIL=20300325T100000"],
                &["2030-03-18T09:00:00+00:00", "2030-03-25T09:00:00+00:00"],
            ),
            (
                "EXDATE with TZID, in UTC and as a date; a floating RDATE",
                monday,
                &[
                    "RRULE:FREQ=WEEKLY;COUNT=5",
                    "EXDATE;TZID=Europe/Berlin:20300325T100000",
                    "EXDATE:20300401T080000Z",
                    "EXDATE;VALUE=DATE:20300408",
                    "RDATE:20300410T100000",
                ],
                &[
                    "2030-03-18T09:00:00+00:00",
                    "2030-04-10T08:00:00+00:00",
                    "2030-04-15T08:00:00+00:00",
                ],
            ),
            (
                "several weekdays, every other week, Google's WKST",
                monday,
                &["RRULE:FREQ=WEEKLY;WKST=SU;INTERVAL=2;BYDAY=MO,WE;UNTIL=20300403"],
                &[
                    "2030-03-18T09:00:00+00:00",
                    "2030-03-20T09:00:00+00:00",
                    "2030-04-01T08:00:00+00:00",
                    "2030-04-03T08:00:00+00:00",
                ],
            ),
            (
                "the start counts even when the rule would skip it",
                monday,
                &["RRULE:FREQ=WEEKLY;COUNT=2;BYDAY=TU"],
                &[
                    "2030-03-18T09:00:00+00:00",
                    "2030-03-19T09:00:00+00:00",
                    "2030-03-26T09:00:00+00:00",
                ],
            ),
            (
                "an UNTIL before the start leaves the start alone",
                monday,
                &["RRULE:FREQ=DAILY;UNTIL=20300101"],
                &["2030-03-18T09:00:00+00:00"],
            ),
            (
                "EXRULE removes what it produces",
                monday,
                &["RRULE:FREQ=DAILY;COUNT=4", "EXRULE:FREQ=DAILY;INTERVAL=2"],
                &["2030-03-19T09:00:00+00:00", "2030-03-21T09:00:00+00:00"],
            ),
        ];
        for (name, start, rec, want) in cases {
            let got = timed_starts(BERLIN, utc(start), &lines(rec), from, to)
                .map(|v| v.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>());
            let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(got, Ok(want), "{name}");
        }
    }

    #[test]
    fn all_day_series_as_google_writes_them() {
        let (from, to) = (day("2030-01-01"), day("2030-12-31"));
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            (
                "weekly on Mondays until a date, with dates excluded",
                "2030-03-04",
                &[
                    "RRULE:FREQ=WEEKLY;WKST=SU;UNTIL=20300401;BYDAY=MO",
                    "EXDATE;VALUE=DATE:20300311,20300318",
                ],
                &["2030-03-04", "2030-03-25", "2030-04-01"],
            ),
            (
                "an UNTIL in UTC counts by the calendar's date",
                "2030-03-04",
                // 2030-03-17T23:30Z is already the 18th in Berlin.
                &["RRULE:FREQ=WEEKLY;UNTIL=20300317T233000Z"],
                &["2030-03-04", "2030-03-11", "2030-03-18"],
            ),
            (
                "an added date",
                "2030-03-04",
                &["RRULE:FREQ=DAILY;COUNT=2", "RDATE;VALUE=DATE:20300310"],
                &["2030-03-04", "2030-03-05", "2030-03-10"],
            ),
        ];
        for (name, start, rec, want) in cases {
            let got = all_day_dates(day(start), BERLIN, &lines(rec), from, to)
                .map(|v| v.iter().map(|d| d.to_string()).collect::<Vec<_>>());
            let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(got, Ok(want), "{name}");
        }
    }

    #[test]
    fn lines_google_does_not_write_are_errors() {
        let from = utc("2030-01-01T00:00:00Z");
        let to = utc("2031-01-01T00:00:00Z");
        let start = utc("2030-03-18T09:00:00Z");
        for bad in [
            "RRULE:FREQ=SOMETIMES",
            "DTSTART:20300101T000000Z",
            "RDATE;VALUE=PERIOD:20300101T000000Z/PT1H",
            "EXDATE;TZID=Mars/Base:20300325T100000",
            "EXDATE:tomorrow",
            // The `rrule` crate panics on this one (fuzz/regressions/rrule_expansion).
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE:COUN\u{fffd}\u{fffd}",
        ] {
            assert!(
                timed_starts(BERLIN, start, &lines(&[bad]), from, to).is_err(),
                "{bad}"
            );
        }
    }
}
