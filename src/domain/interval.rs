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

    /// The smallest interval covering every valid one of `items` (`None` when none
    /// is valid): whatever overlaps one of them overlaps this too.
    pub fn span<'a>(items: impl IntoIterator<Item = &'a Interval>) -> Option<Interval> {
        items
            .into_iter()
            .filter(|i| i.is_valid())
            .fold(None, |acc: Option<Interval>, i| {
                Some(match acc {
                    None => *i,
                    Some(a) => Interval::new(a.start.min(i.start), a.end.max(i.end)),
                })
            })
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
    fn a_span_covers_every_valid_interval_and_ignores_the_invalid_ones() {
        // (items, span)
        let cases: [(Vec<Interval>, Option<Interval>); 6] = [
            (vec![], None),
            (vec![iv(10, 9)], None),
            (vec![iv(9, 9)], None),
            (vec![iv(9, 10)], Some(iv(9, 10))),
            (vec![iv(14, 15), iv(9, 10), iv(11, 12)], Some(iv(9, 15))),
            (vec![iv(12, 8), iv(10, 11), iv(13, 14)], Some(iv(10, 14))),
        ];
        for (items, want) in cases {
            assert_eq!(Interval::span(&items), want, "{items:?}");
        }
    }

    #[test]
    fn whatever_overlaps_an_item_overlaps_the_span() {
        let items = [iv(9, 10), iv(13, 15)];
        let span = Interval::span(&items).expect("valid items");
        for a in 0..23 {
            for b in a + 1..24 {
                let other = iv(a, b);
                if items.iter().any(|i| i.overlaps(&other)) {
                    assert!(span.overlaps(&other), "{other:?}");
                }
            }
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
