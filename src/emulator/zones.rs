//! The time zones Google Calendar accepts in `timeZone` fields.
//!
//! Google's zone list lags the IANA database: in August 2022 it answered 400
//! `invalid` "Invalid time zone definition for start time." to `Europe/Kyiv` (the
//! 2022b name of `Europe/Kiev`), which broke sync tools writing the new name. Only
//! that refusal is documented (issue trackers of Outlook/Google sync tools); the other
//! names below were added or renamed in the same era (tzdata 2020a and later) and are
//! refused here too (uncertain: the stricter reading). Every other name the bundled
//! IANA database knows, its backward-compatible links included, is accepted.

/// Names Google is taken to refuse, with the tzdata release that introduced them.
const REFUSED: [(&str, &str); 5] = [
    ("America/Nuuk", "2020a"),
    ("Pacific/Kanton", "2021b"),
    ("Europe/Kyiv", "2022b"),
    ("America/Ciudad_Juarez", "2022g"),
    ("America/Coyhaique", "2025b"),
];

/// Whether Google accepts `name` as a `timeZone`.
pub(crate) fn accepts(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok() && !REFUSED.iter().any(|(refused, _)| *refused == name)
}

/// Every accepted name, sorted.
pub(crate) fn accepted() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|name| accepts(name))
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_refused_and_their_predecessors_accepted() {
        let cases = [
            ("Europe/Kyiv", false),
            ("Europe/Kiev", true),
            ("America/Nuuk", false),
            ("America/Godthab", true),
            ("Pacific/Kanton", false),
            ("Pacific/Enderbury", true),
            ("America/Ciudad_Juarez", false),
            ("Europe/Berlin", true),
            ("UTC", true),
            ("Mars/Olympus_Mons", false),
        ];
        for (name, ok) in cases {
            assert_eq!(accepts(name), ok, "{name}");
        }
        let all = accepted();
        assert!(all.len() > 500, "{}", all.len());
        assert!(all.contains(&"Europe/Kiev") && !all.contains(&"Europe/Kyiv"));
    }
}
