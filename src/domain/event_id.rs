//! Google event ids for booking slots.
//!
//! Google allows event ids made of base32hex characters (`0-9`, `a-v`), 5 to 1024 long
//! (Calendar API, Events resource, `id`). Our ids are the lowercase base32hex encoding
//! (RFC 4648 section 7, no padding) of the slot's backend_id prefixed with `bc`:
//! deterministic (a crashed run replays to the same id), injective (no two backend
//! ids collide, unlike upstream's `[^a-z0-9]` stripping) and always valid.

use std::fmt;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// A valid Google event id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    /// The deterministic event id of a slot with this backend_id.
    pub fn for_backend_id(backend_id: &str) -> Self {
        let mut out = String::from("bc");
        let bytes = backend_id.as_bytes();
        let mut buffer: u64 = 0;
        let mut bits = 0u32;
        for &b in bytes {
            buffer = (buffer << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
        }
        // Google's minimum is 5 characters; "bc" + at least 2 chars only for >= 1 byte.
        while out.len() < 5 {
            out.push('0');
        }
        out.truncate(1024);
        EventId(out)
    }

    /// Wraps an id read from Google, checking Google's rules.
    pub fn parse(s: &str) -> Option<Self> {
        if is_valid_event_id(s) {
            Some(EventId(s.to_string()))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Google's rule for client-chosen event ids.
pub fn is_valid_event_id(s: &str) -> bool {
    (5..=1024).contains(&s.len()) && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// The id upstream Waldur gave a slot's event: the backend_id with `[^a-z0-9]`
/// removed (`booking_1f2e...` -> `booking1f2e...`). Used only to adopt such events.
pub fn legacy_event_id(backend_id: &str) -> String {
    backend_id
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_valid_deterministic_and_distinct() {
        let cases = [
            "booking_0123456789abcdef0123456789abcdef",
            "Booking_ABC",
            "booking_abc",
            "x",
            "wxyz-äöü",
            "",
        ];
        let mut seen = std::collections::HashSet::new();
        for c in cases {
            let id = EventId::for_backend_id(c);
            assert!(is_valid_event_id(id.as_str()), "{c:?} -> {id}");
            assert_eq!(id, EventId::for_backend_id(c));
            assert!(seen.insert(id.clone()), "collision for {c:?}");
        }
    }

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        // RFC 4648 section 10, lowercased, without padding.
        let cases = [("fo", "cpng"), ("foo", "cpnmu"), ("foobar", "cpnmuoj1e8")];
        for (input, want) in cases {
            assert_eq!(EventId::for_backend_id(input).as_str(), format!("bc{want}"));
        }
    }

    #[test]
    fn legacy_ids_strip_like_upstream() {
        assert_eq!(legacy_event_id("booking_0a1B-z"), "booking0a1z");
    }

    #[test]
    fn google_id_rules_are_enforced() {
        for (s, ok) in [
            ("abcde", true),
            ("abcd", false),
            ("abcdw", false),
            ("ABCDE", false),
            ("0123v", true),
        ] {
            assert_eq!(is_valid_event_id(s), ok, "{s}");
        }
    }
}
