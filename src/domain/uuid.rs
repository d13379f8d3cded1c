//! `Id`: a UUID rendered the Waldur way (32 lowercase hex digits, no dashes) and
//! parsed from either the hex or the dashed form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record identifier. Renders as 32 lowercase hex digits; parses hex or dashed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub uuid::Uuid);

impl Id {
    /// A new random (v4) identifier.
    pub fn new_v4() -> Self {
        Id(uuid::Uuid::new_v4())
    }

    /// The 16 raw bytes, used as sled keys (they sort like the hex form).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from 16 raw bytes (a sled key).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(b).ok().map(Id)
    }

    /// The hex form, as Waldur renders it.
    pub fn hex(&self) -> String {
        self.0.simple().to_string()
    }

    /// Parses the hex or the dashed form; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        // uuid also accepts braced and urn forms; Waldur does not.
        if s.len() != 32 && s.len() != 36 {
            return None;
        }
        uuid::Uuid::parse_str(s).ok().map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0.simple())
    }
}

impl FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s).ok_or_else(|| format!("\"{s}\" is not a valid UUID."))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid uuid {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_dashed_forms_parse_to_the_same_id() {
        let a = Id::parse("a1b2c3d4e5f67890abcdef1234567890");
        let b = Id::parse("a1b2c3d4-e5f6-7890-abcd-ef1234567890");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(
            a.map(|i| i.to_string()).as_deref(),
            Some("a1b2c3d4e5f67890abcdef1234567890")
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [
            "",
            "xyz",
            "{a1b2c3d4-e5f6-7890-abcd-ef1234567890}",
            "a1b2c3d4e5f67890abcdef123456789g",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad}");
        }
    }
}
