//! Half-open time intervals `[start, end)` and the overlap rule every booking check uses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A half-open interval `[start, end)` in UTC. `start < end` is not enforced here:
/// [`Interval::is_valid`] says whether it holds, and the booking rules refuse others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Interval { start, end }
    }

    /// Whether `end > start`.
    pub fn is_valid(&self) -> bool {
        self.end > self.start
    }

    /// Two half-open intervals overlap when each starts before the other ends.
    /// Touching intervals (`a.end == b.start`) do not overlap.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn iv(a: u32, b: u32) -> Interval {
        let t = |h| {
            Utc.with_ymd_and_hms(2030, 1, 1, h, 0, 0)
                .single()
                .expect("valid")
        };
        Interval::new(t(a), t(b))
    }

    #[test]
    fn overlap_follows_half_open_intervals() {
        // (a, b, overlaps)
        let cases = [
            (iv(9, 11), iv(10, 12), true),  // partial overlap at the end
            (iv(10, 12), iv(9, 11), true),  // partial overlap at the start
            (iv(9, 12), iv(10, 11), true),  // containment
            (iv(10, 11), iv(9, 12), true),  // contained
            (iv(9, 10), iv(10, 11), false), // touching
            (iv(10, 11), iv(9, 10), false), // touching, other side
            (iv(9, 10), iv(11, 12), false), // apart
            (iv(9, 10), iv(9, 10), true),   // identical
        ];
        for (a, b, want) in cases {
            assert_eq!(a.overlaps(&b), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn containment_includes_the_edges() {
        assert!(iv(9, 12).contains(&iv(9, 12)));
        assert!(iv(9, 12).contains(&iv(10, 12)));
        assert!(!iv(9, 12).contains(&iv(8, 10)));
        assert!(!iv(9, 12).contains(&iv(11, 13)));
    }
}
