//! Time zone names as Google accepts them.
//!
//! Google's zone list lags the IANA database: it answered 400 "Invalid time zone
//! definition for start time." to `Europe/Kyiv` after tzdata 2022b renamed
//! `Europe/Kiev`. An offering in such a zone is written with a name Google knows for
//! the same clock: the older name for a rename, or a zone with the same offsets and
//! rules since the new zone was split off (for the zones created after 2020). Names
//! read back from Google parse as they are (chrono-tz keeps the old names as links).

/// Newer IANA names and what is written to Google instead.
const ALIASES: [(&str, &str); 5] = [
    // Renamed in tzdata 2020a.
    ("America/Nuuk", "America/Godthab"),
    // Renamed in tzdata 2021b.
    ("Pacific/Kanton", "Pacific/Enderbury"),
    // Renamed in tzdata 2022b.
    ("Europe/Kyiv", "Europe/Kiev"),
    // Split from America/Ojinaga in 2022g; follows US Mountain time (as Denver) since.
    ("America/Ciudad_Juarez", "America/Denver"),
    // Split from America/Santiago in 2025b; UTC-3 all year, as Punta Arenas since 2016.
    ("America/Coyhaique", "America/Punta_Arenas"),
];

/// The name to write to Google for the zone `name`.
pub fn google_time_zone(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(new, _)| *new == name)
        .map_or(name, |(_, old)| old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_written_as_names_google_knows_for_the_same_clock() {
        use chrono::{Offset, TimeZone};
        let cases = [
            ("Europe/Kyiv", "Europe/Kiev"),
            ("America/Nuuk", "America/Godthab"),
            ("Pacific/Kanton", "Pacific/Enderbury"),
            ("America/Ciudad_Juarez", "America/Denver"),
            ("America/Coyhaique", "America/Punta_Arenas"),
            ("Europe/Berlin", "Europe/Berlin"),
            ("UTC", "UTC"),
        ];
        for (name, written) in cases {
            assert_eq!(google_time_zone(name), written, "{name}");
        }
        // Each alias keeps the clock from 2026 on (every hour of a year compared).
        for (new, old) in ALIASES {
            let (a, b): (chrono_tz::Tz, chrono_tz::Tz) = (
                new.parse().unwrap_or(chrono_tz::UTC),
                old.parse().unwrap_or(chrono_tz::UTC),
            );
            let start = chrono::Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default();
            for h in (0..24 * 366).step_by(1) {
                let t = start + chrono::Duration::hours(h);
                assert_eq!(
                    a.offset_from_utc_datetime(&t.naive_utc()).fix(),
                    b.offset_from_utc_datetime(&t.naive_utc()).fix(),
                    "{new} vs {old} at {t}"
                );
            }
        }
    }
}
