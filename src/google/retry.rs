//! Retry policy: exponential backoff with random jitter.
//!
//! Google's guide asks for `min(2^n s + random ms, maximum_backoff)` with a maximum of
//! 32 or 64 s. We use `min(base * 2^n + jitter, cap)` with `jitter` uniform in
//! `[0, base)`, so the default (base 1 s, cap 32 s) is exactly Google's formula and
//! tests can shrink everything to milliseconds.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a failed call is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// No single delay exceeds this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_with(retry, &mut rand::thread_rng())
    }

    /// [`backoff`](Self::backoff) with a chosen random source (for tests).
    pub fn backoff_with(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .checked_mul(2u32.saturating_pow(retry.min(31)))
            .unwrap_or(self.cap);
        let base_nanos = u64::try_from(self.base.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if base_nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.gen_range(0..base_nanos))
        };
        exp.saturating_add(jitter).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_adds_less_than_one_base_of_jitter_and_never_exceeds_the_cap() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        // (retry, lower bound, upper bound exclusive-ish) in seconds
        let cases: &[(u32, u64, u64)] = &[
            (0, 1, 2),
            (1, 2, 3),
            (2, 4, 5),
            (3, 8, 9),
            (4, 16, 17),
            (5, 32, 32),
            (6, 32, 32),
            (40, 32, 32),
        ];
        for &(retry, lo, hi) in cases {
            for _ in 0..200 {
                let d = policy.backoff_with(retry, &mut rng);
                assert!(d >= Duration::from_secs(lo), "retry {retry}: {d:?} < {lo}s");
                assert!(d <= Duration::from_secs(hi), "retry {retry}: {d:?} > {hi}s");
            }
        }
    }

    #[test]
    fn backoff_jitter_actually_varies() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| policy.backoff_with(1, &mut rng)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn tiny_policies_for_tests_scale_down() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(2),
            cap: Duration::from_millis(5),
        };
        let mut rng = StdRng::seed_from_u64(3);
        for retry in 0..10 {
            let d = policy.backoff_with(retry, &mut rng);
            assert!(d <= Duration::from_millis(5));
            assert!(d >= Duration::from_millis(2).min(Duration::from_millis(2 << retry)));
        }
    }

    #[test]
    fn a_zero_base_gives_zero_delays() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::ZERO,
            cap: Duration::from_secs(1),
        };
        assert_eq!(policy.backoff(4), Duration::ZERO);
    }
}
