//! How Waldur writes values that bookcal stores and serves: slugs derived from names
//! and datetimes as DRF renders them. Used by the API and by data-set imports alike,
//! so an imported booking looks exactly like one made through the API.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// ISO 8601 UTC with `Z`, as DRF renders datetimes: microseconds at most (Python's
/// `datetime` has no finer unit), none when whole.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.trunc_subsecs(6)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A URL-safe slug of a name (Waldur's `slugify`): lowercase ASCII letters and digits,
/// runs of anything else as one `-`, at most 50 characters.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(50).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        for (name, want) in [
            ("Room 1", "room-1"),
            ("  Lab / Microscope!", "lab-microscope"),
            ("Zürich", "z-rich"),
        ] {
            assert_eq!(slugify(name), want);
        }
    }

    #[test]
    fn datetimes_are_written_as_drf_writes_them() {
        let whole = Utc
            .with_ymd_and_hms(2025, 3, 1, 9, 30, 0)
            .single()
            .expect("valid");
        let cases = [
            (whole, "2025-03-01T09:30:00Z"),
            (
                whole + chrono::Duration::nanoseconds(123_456_789),
                "2025-03-01T09:30:00.123456Z",
            ),
            (
                whole + chrono::Duration::milliseconds(5),
                "2025-03-01T09:30:00.005Z",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(ts(&t), want);
        }
    }
}
