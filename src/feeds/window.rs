//! The time window of a feed: which slots it shows, normalised so that the windows
//! anyone can ask for stay few (each distinct window is a render and a cache entry).
//!
//! `?from=` and `?to=` take a date (`2024-05-01`: from its start / through its end, in
//! UTC) or an RFC 3339 date-time. Defaults: from midnight UTC 30 days ago to midnight
//! UTC two years ahead. A value that does not parse, or `from` not before `to`, is an
//! error (the URL itself is wrong). Other query parameters are ignored.
//!
//! Normalisation (so a window is one of a small, day-granular set):
//! - bounds are widened to whole UTC days (`from` down, `to` up): a slot overlapping
//!   the asked window is always shown, a few more may be;
//! - bounds are clamped to [`MAX_PAST_DAYS`] before and [`MAX_FUTURE_MONTHS`] after
//!   today; a window entirely outside becomes the empty window (no events).

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};

/// Days before today the default window starts.
pub const DEFAULT_PAST_DAYS: i64 = 30;
/// Months after today the default window ends.
pub const DEFAULT_FUTURE_MONTHS: u32 = 24;
/// No window starts earlier than this many days before today.
pub const MAX_PAST_DAYS: i64 = 366;
/// No window ends later than this many months after today.
pub const MAX_FUTURE_MONTHS: u32 = 36;

/// Slots overlapping `[from, to)`; both bounds are UTC midnights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A `from` or `to` that cannot be used, with the message for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowError {
    /// `from` or `to`.
    pub field: &'static str,
    pub message: &'static str,
}

const HELP: &str = "Enter a date (YYYY-MM-DD) or an RFC 3339 date-time.";

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

fn months_after(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(Months::new(months)).unwrap_or(d)
}

enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_bound(s: &str) -> Option<Bound> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Bound::Date(d));
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| Bound::Instant(t.with_timezone(&Utc)))
}

/// The UTC midnight at or before `t`.
fn floor_day(t: DateTime<Utc>) -> DateTime<Utc> {
    midnight(t.date_naive())
}

/// The UTC midnight at or after `t`.
fn ceil_day(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_day(t);
    if floor == t {
        t
    } else {
        floor + Duration::days(1)
    }
}

impl Window {
    /// The window shown when the query names none.
    pub fn default_at(now: DateTime<Utc>) -> Window {
        let today = now.date_naive();
        Window {
            from: midnight(today - Duration::days(DEFAULT_PAST_DAYS)),
            to: midnight(months_after(today, DEFAULT_FUTURE_MONTHS)),
        }
    }

    /// The normalised window a query asks for (see the module docs); `now` gives the
    /// defaults and the clamp.
    ///
    /// # Errors
    /// A `from`/`to` value that does not parse, or `from` not before `to`.
    pub fn parse(query: Option<&str>, now: DateTime<Utc>) -> Result<Window, WindowError> {
        let mut w = Window::default_at(now);
        let mut seen = (false, false);
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "from" if !seen.0 => {
                    seen.0 = true;
                    w.from = match parse_bound(&v) {
                        Some(Bound::Date(d)) => midnight(d),
                        Some(Bound::Instant(t)) => t,
                        None => {
                            return Err(WindowError {
                                field: "from",
                                message: HELP,
                            })
                        }
                    };
                }
                "to" if !seen.1 => {
                    seen.1 = true;
                    w.to = match parse_bound(&v) {
                        Some(Bound::Date(d)) => midnight(d.succ_opt().unwrap_or(d)),
                        Some(Bound::Instant(t)) => t,
                        None => {
                            return Err(WindowError {
                                field: "to",
                                message: HELP,
                            })
                        }
                    };
                }
                _ => {}
            }
        }
        if w.from >= w.to {
            return Err(WindowError {
                field: "to",
                message: "Must be after `from`.",
            });
        }
        Ok(w.normalised(now))
    }

    /// Widened to whole days and clamped (see the module docs).
    fn normalised(self, now: DateTime<Utc>) -> Window {
        let today = now.date_naive();
        let earliest = midnight(today - Duration::days(MAX_PAST_DAYS));
        let latest = midnight(months_after(today, MAX_FUTURE_MONTHS));
        let from = floor_day(self.from).clamp(earliest, latest);
        let to = ceil_day(self.to).clamp(earliest, latest);
        if from >= to {
            Window {
                from: earliest,
                to: earliest,
            }
        } else {
            Window { from, to }
        }
    }

    /// Whether `[start, end)` overlaps the window.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        start < self.to && end > self.from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn windows_are_whole_days_within_a_year_back_and_three_years_ahead() {
        let now = utc(2024, 5, 10, 15, 30);
        let empty = Some((utc(2023, 5, 10, 0, 0), utc(2023, 5, 10, 0, 0)));
        type Case<'a> = (Option<&'a str>, Option<(DateTime<Utc>, DateTime<Utc>)>);
        let cases: [Case; 16] = [
            (None, Some((utc(2024, 4, 10, 0, 0), utc(2026, 5, 10, 0, 0)))),
            (
                Some(""),
                Some((utc(2024, 4, 10, 0, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (
                Some("from=2024-01-01&to=2024-01-31"),
                Some((utc(2024, 1, 1, 0, 0), utc(2024, 2, 1, 0, 0))),
            ),
            // Instants widen to whole UTC days.
            (
                Some("from=2024-01-01T10:00:00%2B02:00"),
                Some((utc(2024, 1, 1, 0, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (
                Some("from=2024-06-01T23:59:59Z&to=2024-06-02T00:00:01Z"),
                Some((utc(2024, 6, 1, 0, 0), utc(2024, 6, 3, 0, 0))),
            ),
            (
                Some("to=2024-06-01T00:00:00Z&x=1"),
                Some((utc(2024, 4, 10, 0, 0), utc(2024, 6, 1, 0, 0))),
            ),
            // Clamped to [today - 366 days, today + 36 months].
            (
                Some("from=2000-01-01"),
                Some((utc(2023, 5, 10, 0, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (
                Some("from=2024-05-01&to=2099-12-31"),
                Some((utc(2024, 5, 1, 0, 0), utc(2027, 5, 10, 0, 0))),
            ),
            // Entirely outside: the one empty window.
            (Some("from=1990-01-01&to=1990-02-01"), empty),
            (Some("from=2030-01-01&to=2031-01-01"), empty),
            // Only the first of repeated parameters counts.
            (
                Some("from=2024-05-01&from=bad"),
                Some((utc(2024, 5, 1, 0, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (Some("from=yesterday"), None),
            (Some("to=2024-13-01"), None),
            (Some("from=2024-02-01&to=2024-01-31"), None),
            (
                Some("from=2024-02-01T00:00:00Z&to=2024-02-01T00:00:00Z"),
                None,
            ),
            (Some("from="), None),
        ];
        for (q, want) in cases {
            let got = Window::parse(q, now).ok().map(|w| (w.from, w.to));
            assert_eq!(got, want, "{q:?}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let now = utc(2024, 5, 10, 15, 30);
        let cases = [
            ("from=x", "from"),
            ("to=x", "to"),
            ("from=2024-03-01&to=2024-02-01", "to"),
        ];
        for (q, field) in cases {
            assert_eq!(
                Window::parse(Some(q), now).err().map(|e| e.field),
                Some(field),
                "{q}"
            );
        }
    }
}
