//! The calendar grids the offering page draws, as plain numbers: which week and
//! month to show, and where each interval lands in the week's CSS grid. Pure and
//! table-tested; times are placed in the offering's zone.
//!
//! The week grid has one header row and one row per half hour of the shown hours;
//! column 1 holds the hour labels, columns 2..=8 Monday to Sunday. An interval is
//! cut at midnight into one block per day and at the shown hours' edges; a block
//! covers the half hours it touches. The stylesheet has a class per grid line
//! ([`stylesheet`]) because the page may not carry inline styles.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Half-hour rows.
pub const SLOT_MINUTES: i64 = 30;
/// Rows of a whole day.
pub const DAY_ROWS: u32 = 48;
/// The hours shown when nothing lies outside them.
pub const DEFAULT_HOURS: (u32, u32) = (7, 20);

/// The Monday of the week holding `day`.
pub fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The seven days of the week that starts on `monday`.
pub fn week_days(monday: NaiveDate) -> [NaiveDate; 7] {
    std::array::from_fn(|i| monday + Duration::days(i as i64))
}

/// One block of an interval in the week grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// 0 = Monday.
    pub day: usize,
    /// The grid row it starts on (2 = the first shown half hour).
    pub row: u32,
    /// How many rows it covers (at least 1).
    pub span: u32,
}

fn local(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The hours to show (`from` inclusive, `to` exclusive, 0..=24) so that every
/// interval's local time within the week is visible: [`DEFAULT_HOURS`] widened to
/// whole hours as needed.
pub fn shown_hours(
    monday: NaiveDate,
    tz: Tz,
    intervals: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
) -> (u32, u32) {
    let (mut from, mut to) = (i64::from(DEFAULT_HOURS.0), i64::from(DEFAULT_HOURS.1));
    for (s, e) in intervals {
        for (_, a, b) in pieces_minutes(monday, tz, s, e) {
            from = from.min(a / 60);
            to = to.max((b + 59) / 60);
        }
    }
    (
        u32::try_from(from.clamp(0, 24)).unwrap_or(0),
        u32::try_from(to.clamp(0, 24)).unwrap_or(24),
    )
}

/// The parts of `[s, e)` on each day of the week: (day index, start minute, end
/// minute), minutes from local midnight, the end up to 1440.
pub fn pieces_minutes(
    monday: NaiveDate,
    tz: Tz,
    s: DateTime<Utc>,
    e: DateTime<Utc>,
) -> Vec<(usize, i64, i64)> {
    let (ls, le) = (local(s, tz), local(e, tz));
    let mut out = Vec::new();
    for (i, day) in week_days(monday).iter().enumerate() {
        let day_start = day.and_time(NaiveTime::MIN);
        let day_end = day_start + Duration::days(1);
        let a = ls.max(day_start);
        let b = le.min(day_end);
        if a < b {
            out.push((
                i,
                (a - day_start).num_minutes(),
                (b - day_start).num_minutes(),
            ));
        }
    }
    out
}

/// Where `[s, e)` lands in the week grid showing `hours` (see [`shown_hours`]).
pub fn place(
    monday: NaiveDate,
    tz: Tz,
    hours: (u32, u32),
    s: DateTime<Utc>,
    e: DateTime<Utc>,
) -> Vec<Placed> {
    let lo = i64::from(hours.0) * 60;
    let hi = i64::from(hours.1) * 60;
    pieces_minutes(monday, tz, s, e)
        .into_iter()
        .filter_map(|(day, a, b)| {
            let (a, b) = (a.max(lo), b.min(hi));
            if a >= b {
                return None;
            }
            let first = (a - lo) / SLOT_MINUTES;
            let last = (b - lo + SLOT_MINUTES - 1) / SLOT_MINUTES;
            Some(Placed {
                day,
                row: first as u32 + 2,
                span: (last - first).max(1) as u32,
            })
        })
        .collect()
}

/// The UTC instants a week spans in `tz`: from Monday's local midnight to the next
/// Monday's (the earliest instant each wall time names).
pub fn week_bounds(monday: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map_or_else(
                || d.and_time(NaiveTime::MIN).and_utc(),
                |t| t.with_timezone(&Utc),
            )
    };
    (at(monday), at(monday + Duration::days(7)))
}

/// The month overview of the month holding `day`: whole weeks, Monday first, each
/// day with whether it belongs to the month.
pub fn month_weeks(day: NaiveDate) -> Vec<[(NaiveDate, bool); 7]> {
    let first = day.with_day(1).unwrap_or(day);
    let month = first.month();
    let mut monday = week_start(first);
    let mut weeks = Vec::new();
    loop {
        let days = week_days(monday).map(|d| (d, d.month() == month));
        weeks.push(days);
        monday += Duration::days(7);
        if monday.month() != month {
            break;
        }
    }
    weeks
}

/// The grid classes the stylesheet defines: `gr-N` (grid row start N) for the rows
/// of a whole day, `gs-N` (spanning N rows), `gc-N` (column N).
pub fn stylesheet() -> String {
    let mut css = String::new();
    for n in 1..=DAY_ROWS + 1 {
        css.push_str(&format!(".gr-{n}{{grid-row-start:{n}}}"));
    }
    for n in 1..=DAY_ROWS {
        css.push_str(&format!(".gs-{n}{{grid-row-end:span {n}}}"));
    }
    for n in 1..=8 {
        css.push_str(&format!(".gc-{n}{{grid-column:{n}}}"));
    }
    css.push('\n');
    css
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn weeks_start_on_monday() {
        for (day, monday) in [
            (d(2026, 12, 2), d(2026, 11, 30)),
            (d(2026, 11, 30), d(2026, 11, 30)),
            (d(2026, 12, 6), d(2026, 11, 30)),
            (d(2027, 1, 1), d(2026, 12, 28)),
        ] {
            assert_eq!(week_start(day), monday, "{day}");
        }
    }

    #[test]
    fn intervals_land_in_the_week_grid_in_the_offering_zone() {
        let monday = d(2026, 11, 30);
        let hours = (7, 20);
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let cases: Vec<(&str, Tz, &str, &str, Vec<Placed>)> = vec![
            (
                "an hour on Wednesday morning, UTC",
                Tz::UTC,
                "2026-12-02T09:00:00Z",
                "2026-12-02T10:00:00Z",
                vec![Placed {
                    day: 2,
                    row: 6,
                    span: 2,
                }],
            ),
            (
                "the same instants in Berlin are an hour later",
                berlin,
                "2026-12-02T09:00:00Z",
                "2026-12-02T10:00:00Z",
                vec![Placed {
                    day: 2,
                    row: 8,
                    span: 2,
                }],
            ),
            (
                "a quarter hour still covers its half-hour row",
                Tz::UTC,
                "2026-12-01T07:10:00Z",
                "2026-12-01T07:25:00Z",
                vec![Placed {
                    day: 1,
                    row: 2,
                    span: 1,
                }],
            ),
            (
                "across midnight: two blocks, cut at the shown hours",
                Tz::UTC,
                "2026-12-03T18:00:00Z",
                "2026-12-04T09:00:00Z",
                vec![
                    Placed {
                        day: 3,
                        row: 24,
                        span: 4,
                    },
                    Placed {
                        day: 4,
                        row: 2,
                        span: 4,
                    },
                ],
            ),
            (
                "outside the shown hours: nothing",
                Tz::UTC,
                "2026-12-03T02:00:00Z",
                "2026-12-03T03:00:00Z",
                vec![],
            ),
            (
                "outside the week: nothing",
                Tz::UTC,
                "2026-12-08T09:00:00Z",
                "2026-12-08T10:00:00Z",
                vec![],
            ),
            (
                "the whole week",
                Tz::UTC,
                "2026-11-29T00:00:00Z",
                "2026-12-08T00:00:00Z",
                (0..7)
                    .map(|day| Placed {
                        day,
                        row: 2,
                        span: 26,
                    })
                    .collect(),
            ),
        ];
        for (name, tz, s, e, want) in cases {
            assert_eq!(place(monday, tz, hours, utc(s), utc(e)), want, "{name}");
        }
    }

    #[test]
    fn the_shown_hours_widen_to_what_lies_outside_them() {
        let monday = d(2026, 11, 30);
        let iv = |s: &str, e: &str| (utc(s), utc(e));
        assert_eq!(shown_hours(monday, Tz::UTC, []), (7, 20));
        assert_eq!(
            shown_hours(
                monday,
                Tz::UTC,
                [iv("2026-12-01T05:30:00Z", "2026-12-01T06:00:00Z")]
            ),
            (5, 20)
        );
        assert_eq!(
            shown_hours(
                monday,
                Tz::UTC,
                [iv("2026-12-01T20:00:00Z", "2026-12-01T21:10:00Z")]
            ),
            (7, 22)
        );
        assert_eq!(
            shown_hours(
                monday,
                Tz::UTC,
                [iv("2026-12-01T22:00:00Z", "2026-12-02T01:00:00Z")]
            ),
            (0, 24)
        );
        // Next week's time does not widen this week.
        assert_eq!(
            shown_hours(
                monday,
                Tz::UTC,
                [iv("2026-12-08T01:00:00Z", "2026-12-08T02:00:00Z")]
            ),
            (7, 20)
        );
    }

    #[test]
    fn month_overviews_are_whole_weeks_marking_the_month() {
        let weeks = month_weeks(d(2026, 12, 17));
        assert_eq!(weeks.len(), 5);
        assert_eq!(weeks[0][0], (d(2026, 11, 30), false));
        assert_eq!(weeks[0][1], (d(2026, 12, 1), true));
        assert_eq!(weeks[4][3], (d(2026, 12, 31), true));
        assert_eq!(weeks[4][6], (d(2027, 1, 3), false));
        // February 2027 starts on a Monday and has exactly four weeks.
        let feb = month_weeks(d(2027, 2, 10));
        assert_eq!(feb.len(), 4);
        assert!(feb.iter().flatten().all(|(_, inside)| *inside));
        // A month whose last day is a Sunday ends with that week.
        let jan = month_weeks(d(2027, 1, 1));
        assert_eq!(jan.len(), 5);
        assert_eq!(jan.last().map(|w| w[6]), Some((d(2027, 1, 31), true)));
    }

    #[test]
    fn a_week_spans_its_local_midnights() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let (s, e) = week_bounds(d(2026, 11, 30), berlin);
        assert_eq!(s, utc("2026-11-29T23:00:00Z"));
        assert_eq!(e, utc("2026-12-06T23:00:00Z"));
    }

    #[test]
    fn the_stylesheet_has_a_class_for_every_row_span_and_column() {
        let css = stylesheet();
        assert!(css.contains(".gr-49{grid-row-start:49}"));
        assert!(css.contains(".gs-48{grid-row-end:span 48}"));
        assert!(css.contains(".gc-8{grid-column:8}"));
    }
}
