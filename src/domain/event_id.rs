//! Google event ids for booking slots.
//!
//! Google allows event ids made of base32hex characters (`0-9`, `a-v`), 5 to 1024 long
//! (Calendar API, Events resource, `id`). Our ids are the lowercase base32hex encoding
//! (RFC 4648 section 7, no padding) of the slot's backend_id prefixed with `bc`:
//! deterministic (a crashed run replays to the same id), injective (no two backend
//! ids collide, unlike upstream's `[^a-z0-9]` stripping) and always valid.
//!
//! A backend_id whose encoding would pass Google's 1024 characters (over 638 bytes)
//! is never cut (two long ids sharing a prefix would collide): its id is `bh` followed
//! by the base32hex SHA-256 of the backend_id. The second character tells the two
//! forms apart, so a hashed id never equals an encoded one. (Slots bookcal creates
//! have short server-chosen ids; long ones can only come from imported data.)

use std::fmt;

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// A valid Google event id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    /// The deterministic event id of a slot with this backend_id.
    pub fn for_backend_id(backend_id: &str) -> Self {
        let bytes = backend_id.as_bytes();
        // "bc" + ceil(8n / 5) characters must fit in 1024.
        if 2 + (bytes.len() * 8).div_ceil(5) > MAX_LEN {
            return EventId(base32hex("bh", &Sha256::digest(bytes)));
        }
        let mut out = base32hex("bc", bytes);
        // Google's minimum is 5 characters: pad the ids of 0 and 1 byte with `v`,
        // which no 1-byte encoding ends with (its last character is a multiple of 4).
        while out.len() < 5 {
            out.push('v');
        }
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

/// Google's longest event id.
const MAX_LEN: usize = 1024;

/// `prefix` followed by the lowercase base32hex of `bytes` (no padding).
fn base32hex(prefix: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(prefix.len() + (bytes.len() * 8).div_ceil(5));
    out.push_str(prefix);
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
    out
}

/// Google's rule for client-chosen event ids.
pub fn is_valid_event_id(s: &str) -> bool {
    (5..=MAX_LEN).contains(&s.len()) && s.bytes().all(|b| ALPHABET.contains(&b))
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
    fn long_ids_are_hashed_never_cut_and_never_meet_the_short_form() {
        let long_a = format!("booking_{}a", "x".repeat(2000));
        let long_b = format!("booking_{}b", "x".repeat(2000));
        // 638 bytes encode to 2 + 1021 characters: the longest unhashed id.
        let edge = "y".repeat(638);
        let over = "y".repeat(639);
        let ids: Vec<EventId> = [&long_a, &long_b, &edge, &over, "", "\0", "a"]
            .iter()
            .map(|s| EventId::for_backend_id(s))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(is_valid_event_id(id.as_str()), "{i}: {id}");
            for other in &ids[i + 1..] {
                assert_ne!(id, other);
            }
        }
        assert!(ids[0].as_str().starts_with("bh") && ids[1].as_str().starts_with("bh"));
        assert!(ids[2].as_str().starts_with("bc") && ids[2].as_str().len() <= 1024);
        assert!(ids[3].as_str().starts_with("bh"));
        assert_eq!(ids[0], EventId::for_backend_id(&long_a), "deterministic");
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
