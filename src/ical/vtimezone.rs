//! `VTIMEZONE` components (RFC 5545 section 3.6.5) derived from chrono-tz by probing.
//!
//! chrono-tz knows offsets, not rules, so the rule is recovered from the offsets: the
//! transitions of each probed year are found (hourly probes, then a binary search to the
//! second) and expressed as one yearly `STANDARD`/`DAYLIGHT` pair with
//! `RRULE:FREQ=YEARLY;BYMONTH=m;BYDAY=nSU` style rules (`n` in 1..=4, or -1 for the last
//! weekday of the month). That is the only shape Outlook understands: it reduces every
//! `VTIMEZONE` to one such pair, and a zone written as `RDATE` lists shifts events there.
//!
//! # Which rule
//! Zones change their rules over time (America/New_York in 2007, Europe/Moscow in 2011),
//! and one rule pair can only describe one era. The rule is taken from the years the
//! feed's events span: it must reproduce every transition of every one of those years
//! exactly (month, weekday, week, local time and offsets). Neighbouring years only break
//! ties between two rules that both fit (e.g. "4th" and "last" Sunday of a month). With
//! no timed events nothing references a `TZID` and no `VTIMEZONE` is written, so no
//! clock is read and the output stays deterministic.
//!
//! When no yearly rule fits (a year with one or three transitions, a pattern such as
//! "Friday on or after the 23rd", offsets that differ between the years), [`derive()`]
//! returns `None` and the renderer writes the events in UTC instead: correct everywhere,
//! only less pretty.
//!
//! A zone without transitions in the probed years gets a single `STANDARD` observance.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::{OffsetName, Tz};

use super::text::{escape_text, ContentWriter};

/// How far around the event years to look when two rules both fit.
const TIE_BREAK_YEARS: i32 = 3;

/// The longest span of years probed; beyond it the feed is written in UTC.
const MAX_PROBED_YEARS: i32 = 200;

/// Whether a zone is UTC itself, in which case events are written with `Z` and no
/// `VTIMEZONE` at all.
pub fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC
            | Tz::UCT
            | Tz::Universal
            | Tz::Zulu
            | Tz::Etc__UTC
            | Tz::Etc__UCT
            | Tz::Etc__Universal
            | Tz::Etc__Zulu
    )
}

/// A change of UTC offset at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    /// Offset in seconds east of UTC before the transition.
    pub from: i32,
    /// Offset in seconds east of UTC after the transition.
    pub to: i32,
    /// The abbreviation after the transition (`CEST`, `EST`, `+03`).
    pub name: String,
}

impl Transition {
    /// The wall-clock time at which the transition happens, in the offset before it
    /// (how RFC 5545 writes an observance's `DTSTART`).
    pub fn local_before(&self) -> NaiveDateTime {
        (self.at + Duration::seconds(i64::from(self.from))).naive_utc()
    }
}

/// "The `week`th `weekday` of `month` at `time` (wall clock before the change)": one
/// `RRULE:FREQ=YEARLY;BYMONTH=..;BYDAY=..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearlyRule {
    pub month: u32,
    /// 1..=4, or -1 for the last one of the month.
    pub week: i8,
    pub weekday: Weekday,
    pub time: NaiveTime,
}

impl YearlyRule {
    /// The `RRULE` value, e.g. `FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU`.
    pub fn rrule(&self) -> String {
        format!(
            "FREQ=YEARLY;BYMONTH={};BYDAY={}{}",
            self.month,
            self.week,
            weekday_code(self.weekday)
        )
    }

    /// The onset in `year`, as wall-clock time before the change.
    pub fn onset(&self, year: i32) -> Option<NaiveDateTime> {
        nth_weekday_of_month(year, self.month, self.weekday, self.week)
            .map(|d| d.and_time(self.time))
    }
}

/// One `STANDARD` or `DAYLIGHT` sub-component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observance {
    pub offset_from: i32,
    pub offset_to: i32,
    pub name: String,
    /// `None` for a zone with a single fixed observance.
    pub rule: Option<YearlyRule>,
}

/// What a `VTIMEZONE` says about a zone in the years of interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneRules {
    /// No transitions: one `STANDARD` with `TZOFFSETFROM` = `TZOFFSETTO`.
    Fixed(Observance),
    /// One yearly pair.
    Yearly {
        standard: Observance,
        daylight: Observance,
    },
}

fn weekday_code(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// The `week`th (`1..=5`, or `-1` for the last) `weekday` of a month.
pub fn nth_weekday_of_month(
    year: i32,
    month: u32,
    weekday: Weekday,
    week: i8,
) -> Option<NaiveDate> {
    match week {
        1..=5 => NaiveDate::from_weekday_of_month_opt(year, month, weekday, week.unsigned_abs()),
        -1 => {
            let first_next = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)
            }?;
            let mut day = first_next.pred_opt()?;
            while day.weekday() != weekday {
                day = day.pred_opt()?;
            }
            Some(day)
        }
        _ => None,
    }
}

fn offset_at(tz: Tz, at: DateTime<Utc>) -> (i32, String) {
    let off = tz.offset_from_utc_datetime(&at.naive_utc());
    let seconds = off.fix().local_minus_utc();
    let name = match off.abbreviation() {
        Some(name) => name.to_owned(),
        None => numeric_abbreviation(seconds),
    };
    (seconds, name)
}

/// The tz database's name for zones without a letter abbreviation: `+03`, `+0530`.
fn numeric_abbreviation(seconds: i32) -> String {
    let full = format_utc_offset(seconds);
    match full.strip_suffix("00") {
        Some(hours) if full.len() == 5 => hours.to_owned(),
        _ => full,
    }
}

fn utc_midnight(year: i32, month: u32, day: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).single()
}

/// The offset of `tz` at the first instant of `year` (UTC).
fn offset_at_year_start(tz: Tz, year: i32) -> Option<(i32, String)> {
    utc_midnight(year, 1, 1).map(|t| offset_at(tz, t))
}

/// Every offset change of `tz` during the UTC year `year`, in order.
pub fn transitions_in_year(tz: Tz, year: i32) -> Vec<Transition> {
    let (Some(start), Some(end)) = (utc_midnight(year, 1, 1), utc_midnight(year + 1, 1, 1)) else {
        return Vec::new();
    };
    let step = Duration::hours(1);
    let mut found = Vec::new();
    let mut t = start;
    let (mut off, _) = offset_at(tz, t);
    while t < end {
        let next = t + step;
        let (next_off, _) = offset_at(tz, next);
        if next_off != off {
            // The change lies in (t, next]: search for its first second.
            let (mut lo, mut hi) = (0i64, step.num_seconds());
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                if offset_at(tz, t + Duration::seconds(mid)).0 == off {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let at = t + Duration::seconds(hi);
            let (to, name) = offset_at(tz, at);
            if at < end {
                found.push(Transition {
                    at,
                    from: off,
                    to,
                    name,
                });
            }
            off = next_off;
        }
        t = next;
    }
    found
}

/// The rule candidates that describe `tr`'s local onset.
fn candidates(tr: &Transition) -> Vec<YearlyRule> {
    let local = tr.local_before();
    let date = local.date();
    let base = YearlyRule {
        month: date.month(),
        week: 0,
        weekday: date.weekday(),
        time: local.time(),
    };
    let mut out = Vec::new();
    if let Some(last) = nth_weekday_of_month(date.year(), date.month(), date.weekday(), -1) {
        if last == date {
            out.push(YearlyRule { week: -1, ..base });
        }
    }
    let nth = (date.day() - 1) / 7 + 1;
    if nth <= 4 {
        out.push(YearlyRule {
            week: i8::try_from(nth).unwrap_or(0),
            ..base
        });
    }
    out
}

/// The two transitions of each probed year, split into (to standard, to daylight).
struct YearPair {
    to_standard: Transition,
    to_daylight: Transition,
}

fn year_pair(tz: Tz, year: i32) -> Option<YearPair> {
    let trs = transitions_in_year(tz, year);
    let [a, b] = <[Transition; 2]>::try_from(trs).ok()?;
    let (to_daylight, to_standard) = if a.to > a.from { (a, b) } else { (b, a) };
    if to_daylight.to <= to_daylight.from || to_standard.to >= to_standard.from {
        return None;
    }
    Some(YearPair {
        to_standard,
        to_daylight,
    })
}

fn rule_fits(rule: &YearlyRule, tr: &Transition) -> bool {
    rule.onset(tr.local_before().year()) == Some(tr.local_before())
}

/// Picks the rule for one kind of transition: it must fit every event year; among
/// those that do, the one fitting more neighbouring years wins (ties: the first
/// candidate, "last" before "nth").
fn pick_rule(
    pairs: &[YearPair],
    neighbours: &[YearPair],
    get: fn(&YearPair) -> &Transition,
) -> Option<YearlyRule> {
    let first = pairs.first()?;
    let mut best: Option<(usize, YearlyRule)> = None;
    for rule in candidates(get(first)) {
        if !pairs.iter().all(|p| rule_fits(&rule, get(p))) {
            continue;
        }
        let score = neighbours
            .iter()
            .filter(|p| rule_fits(&rule, get(p)))
            .count();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, rule));
        }
    }
    best.map(|(_, rule)| rule)
}

/// Derives the rules of `tz` that hold in every year of `first_year..=last_year`
/// (the local years the events span), or `None` when they cannot be written as a
/// fixed offset or one yearly `STANDARD`/`DAYLIGHT` pair.
pub fn derive(tz: Tz, first_year: i32, last_year: i32) -> Option<ZoneRules> {
    if last_year < first_year || last_year - first_year > MAX_PROBED_YEARS {
        return None;
    }
    let years = first_year..=last_year;
    let counts: Vec<usize> = years
        .clone()
        .map(|y| transitions_in_year(tz, y).len())
        .collect();
    if counts.iter().all(|c| *c == 0) {
        let (offset, name) = offset_at_year_start(tz, first_year)?;
        let same = years
            .clone()
            .all(|y| offset_at_year_start(tz, y).is_some_and(|(o, _)| o == offset));
        return same.then_some(ZoneRules::Fixed(Observance {
            offset_from: offset,
            offset_to: offset,
            name,
            rule: None,
        }));
    }
    let pairs: Vec<YearPair> = years
        .map(|y| year_pair(tz, y))
        .collect::<Option<Vec<_>>>()?;
    let first = pairs.first()?;
    let (std_from, std_to) = (first.to_standard.from, first.to_standard.to);
    let (dst_from, dst_to) = (first.to_daylight.from, first.to_daylight.to);
    let consistent = pairs.iter().all(|p| {
        (p.to_standard.from, p.to_standard.to) == (std_from, std_to)
            && (p.to_daylight.from, p.to_daylight.to) == (dst_from, dst_to)
            && p.to_standard.name == first.to_standard.name
            && p.to_daylight.name == first.to_daylight.name
    });
    if !consistent || std_to != dst_from || dst_to != std_from {
        return None;
    }
    let neighbours: Vec<YearPair> = (first_year - TIE_BREAK_YEARS..first_year)
        .chain(last_year + 1..=last_year + TIE_BREAK_YEARS)
        .filter_map(|y| year_pair(tz, y))
        .collect();
    let std_rule = pick_rule(&pairs, &neighbours, |p| &p.to_standard)?;
    let dst_rule = pick_rule(&pairs, &neighbours, |p| &p.to_daylight)?;
    Some(ZoneRules::Yearly {
        standard: Observance {
            offset_from: std_from,
            offset_to: std_to,
            name: first.to_standard.name.clone(),
            rule: Some(std_rule),
        },
        daylight: Observance {
            offset_from: dst_from,
            offset_to: dst_to,
            name: first.to_daylight.name.clone(),
            rule: Some(dst_rule),
        },
    })
}

/// A UTC offset as `+HHMM` (or `+HHMMSS` when it has seconds), RFC 5545 section 3.3.14.
pub fn format_utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// The year the observances' `DTSTART` is placed in: the rules are valid for the
/// event years, and a `DTSTART` long before them keeps every client's expansion simple.
const ONSET_YEAR: i32 = 1970;

fn write_observance(w: &mut ContentWriter, kind: &str, obs: &Observance) {
    w.begin(kind);
    w.prop("TZOFFSETFROM", &[], &format_utc_offset(obs.offset_from));
    w.prop("TZOFFSETTO", &[], &format_utc_offset(obs.offset_to));
    if !obs.name.is_empty() {
        w.text("TZNAME", &obs.name);
    }
    let onset = obs
        .rule
        .and_then(|r| r.onset(ONSET_YEAR))
        .or_else(|| NaiveDate::from_ymd_opt(ONSET_YEAR, 1, 1).map(|d| d.and_time(NaiveTime::MIN)));
    if let Some(onset) = onset {
        w.prop("DTSTART", &[], &onset.format("%Y%m%dT%H%M%S").to_string());
    }
    if let Some(rule) = obs.rule {
        w.prop("RRULE", &[], &rule.rrule());
    }
    w.end(kind);
}

/// Writes the `VTIMEZONE` of `tz` (`TZID` = the IANA name) with `rules`.
pub fn write_vtimezone(w: &mut ContentWriter, tz: Tz, rules: &ZoneRules) {
    w.begin("VTIMEZONE");
    w.prop("TZID", &[], &escape_text(tz.name()));
    w.prop("X-LIC-LOCATION", &[], &escape_text(tz.name()));
    match rules {
        ZoneRules::Fixed(obs) => write_observance(w, "STANDARD", obs),
        ZoneRules::Yearly { standard, daylight } => {
            write_observance(w, "STANDARD", standard);
            write_observance(w, "DAYLIGHT", daylight);
        }
    }
    w.end("VTIMEZONE");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe};

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
    }

    fn rule(month: u32, week: i8, time: NaiveTime) -> YearlyRule {
        YearlyRule {
            month,
            week,
            weekday: Weekday::Sun,
            time,
        }
    }

    #[test]
    fn yearly_rules_are_derived_for_common_zones() {
        // (zone, years, standard (from, to, name, rule), daylight (from, to, name, rule))
        let h = 3600;
        let cases = [
            (
                Europe::Berlin,
                (2024, 2025),
                (2 * h, h, "CET", rule(10, -1, t(3, 0))),
                (h, 2 * h, "CEST", rule(3, -1, t(2, 0))),
            ),
            (
                America::New_York,
                (2023, 2026),
                (-4 * h, -5 * h, "EST", rule(11, 1, t(2, 0))),
                (-5 * h, -4 * h, "EDT", rule(3, 2, t(2, 0))),
            ),
            (
                Australia::Sydney,
                (2024, 2024),
                (11 * h, 10 * h, "AEST", rule(4, 1, t(3, 0))),
                (10 * h, 11 * h, "AEDT", rule(10, 1, t(2, 0))),
            ),
            (
                Europe::London,
                (2030, 2031),
                (h, 0, "GMT", rule(10, -1, t(2, 0))),
                (0, h, "BST", rule(3, -1, t(1, 0))),
            ),
        ];
        for (tz, (y1, y2), std, dst) in cases {
            let got = derive(tz, y1, y2);
            let want = ZoneRules::Yearly {
                standard: Observance {
                    offset_from: std.0,
                    offset_to: std.1,
                    name: std.2.to_owned(),
                    rule: Some(std.3),
                },
                daylight: Observance {
                    offset_from: dst.0,
                    offset_to: dst.1,
                    name: dst.2.to_owned(),
                    rule: Some(dst.3),
                },
            };
            assert_eq!(got, Some(want), "{tz}");
        }
    }

    #[test]
    fn rrule_values_name_the_week_and_weekday() {
        let cases = [
            (
                Europe::Berlin,
                "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
                "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            ),
            (
                America::New_York,
                "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
                "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
            ),
            (
                Australia::Sydney,
                "FREQ=YEARLY;BYMONTH=4;BYDAY=1SU",
                "FREQ=YEARLY;BYMONTH=10;BYDAY=1SU",
            ),
        ];
        for (tz, std, dst) in cases {
            let Some(ZoneRules::Yearly { standard, daylight }) = derive(tz, 2025, 2025) else {
                panic!("{tz} has a yearly rule");
            };
            assert_eq!(
                standard.rule.map(|r| r.rrule()).as_deref(),
                Some(std),
                "{tz}"
            );
            assert_eq!(
                daylight.rule.map(|r| r.rrule()).as_deref(),
                Some(dst),
                "{tz}"
            );
        }
    }

    #[test]
    fn zones_without_dst_get_one_fixed_observance() {
        let cases = [
            (Asia::Tokyo, 9 * 3600, "JST"),
            (Tz::UTC, 0, "UTC"),
            (Asia::Kolkata, 5 * 3600 + 1800, "IST"),
            // Istanbul dropped DST in 2016 and kept +03 since.
            (Europe::Istanbul, 3 * 3600, "+03"),
        ];
        for (tz, offset, name) in cases {
            assert_eq!(
                derive(tz, 2024, 2026),
                Some(ZoneRules::Fixed(Observance {
                    offset_from: offset,
                    offset_to: offset,
                    name: name.to_owned(),
                    rule: None,
                })),
                "{tz}"
            );
        }
    }

    #[test]
    fn rules_that_changed_or_do_not_fit_a_weekday_pattern_give_none() {
        let cases = [
            // The US rule changed in 2007: no one pair covers 2006 and 2007.
            (America::New_York, 2006, 2007),
            // Moscow went to permanent +04 in 2011 (one transition that year).
            (Europe::Moscow, 2011, 2011),
            // Israel: "Friday on or after the 23rd" is neither a 4th nor a last Friday.
            (Asia::Jerusalem, 2020, 2026),
            // Istanbul: DST until 2016, fixed after.
            (Europe::Istanbul, 2015, 2017),
            // An empty span.
            (Europe::Berlin, 2025, 2024),
        ];
        for (tz, y1, y2) in cases {
            assert_eq!(derive(tz, y1, y2), None, "{tz} {y1}..={y2}");
        }
    }

    #[test]
    fn rules_in_force_around_the_events_are_used() {
        // New York before 2007: first Sunday of April, last Sunday of October.
        let Some(ZoneRules::Yearly { standard, daylight }) = derive(America::New_York, 2004, 2005)
        else {
            panic!("a yearly rule");
        };
        assert_eq!(standard.rule, Some(rule(10, -1, t(2, 0))));
        assert_eq!(daylight.rule, Some(rule(4, 1, t(2, 0))));
    }

    #[test]
    fn transitions_are_found_to_the_second() {
        let trs = transitions_in_year(Europe::Berlin, 2024);
        let at: Vec<String> = trs.iter().map(|t| t.at.to_rfc3339()).collect();
        assert_eq!(
            at,
            ["2024-03-31T01:00:00+00:00", "2024-10-27T01:00:00+00:00"]
        );
        assert!(transitions_in_year(Asia::Tokyo, 2024).is_empty());
    }

    #[test]
    fn last_and_nth_weekdays_are_computed() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        let cases = [
            (2024, 3, -1, d(2024, 3, 31)),
            (2024, 10, -1, d(2024, 10, 27)),
            (2024, 12, -1, d(2024, 12, 29)),
            (2024, 3, 2, d(2024, 3, 10)),
            (2024, 11, 1, d(2024, 11, 3)),
            (2024, 3, 0, None),
        ];
        for (y, m, week, want) in cases {
            assert_eq!(
                nth_weekday_of_month(y, m, Weekday::Sun, week),
                want,
                "{y}-{m} {week}"
            );
        }
    }

    #[test]
    fn zones_without_letter_abbreviations_get_numeric_names() {
        let cases = [
            (3 * 3600, "+03"),
            (-3 * 3600, "-03"),
            (5 * 3600 + 1800, "+0530"),
            (0, "+00"),
        ];
        for (secs, want) in cases {
            assert_eq!(numeric_abbreviation(secs), want);
        }
    }

    #[test]
    fn utc_offsets_are_formatted_with_sign() {
        let cases = [
            (0, "+0000"),
            (3600, "+0100"),
            (-5 * 3600, "-0500"),
            (5 * 3600 + 1800, "+0530"),
            (-(3 * 3600 + 1800), "-0330"),
            (3600 + 1, "+010001"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_utc_offset(secs), want);
        }
    }

    #[test]
    fn vtimezone_for_berlin_is_one_rule_pair() {
        let mut w = ContentWriter::new();
        let rules = derive(Europe::Berlin, 2024, 2024);
        let Some(rules) = rules else {
            panic!("Berlin has rules");
        };
        write_vtimezone(&mut w, Europe::Berlin, &rules);
        assert_eq!(
            w.finish(),
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\n\
             BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n\
             DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n\
             END:STANDARD\r\n\
             BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n\
             DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n\
             END:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        );
    }
}
