//! `CallStats`: what the adapter did, for metrics and benchmarks.
//!
//! Every logical call is counted once by Google method name and outcome: `ok` (first
//! attempt succeeded), `retried` (succeeded after at least one retry) or
//! `error:<reason or status>`. Each page of `events.list` is one call. Retries,
//! rate-limiter waits and token fetches are counted beside. One `Arc<CallStats>` may
//! be shared by many clients.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Shared counters; cheap to update, [`snapshot`](Self::snapshot) to read.
#[derive(Debug, Default)]
pub struct CallStats {
    inner: Mutex<CallStatsSnapshot>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStatsSnapshot {
    /// method -> outcome -> count
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// Attempts repeated after a retryable error, all methods.
    pub retries: u64,
    /// Requests that had to wait for the rate limiter.
    pub rate_limit_waits: u64,
    /// Total time spent waiting for the rate limiter.
    pub rate_limit_wait_total: Duration,
    /// Access tokens fetched from a token endpoint.
    pub token_fetches: u64,
}

impl CallStatsSnapshot {
    /// Calls of `method` with `outcome`.
    pub fn count(&self, method: &str, outcome: &str) -> u64 {
        self.calls
            .get(method)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `method`, any outcome.
    pub fn total(&self, method: &str) -> u64 {
        self.calls
            .get(method)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Calls with an outcome starting with `error:`, all methods.
    pub fn errors(&self) -> u64 {
        self.calls
            .values()
            .flat_map(|m| m.iter())
            .filter(|(outcome, _)| outcome.starts_with("error:"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl CallStats {
    pub fn new() -> Self {
        CallStats::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut CallStatsSnapshot) -> R) -> R {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Counts one finished call.
    pub fn record(&self, method: &str, outcome: &str) {
        self.with(|s| {
            *s.calls
                .entry(method.to_owned())
                .or_default()
                .entry(outcome.to_owned())
                .or_default() += 1;
        });
    }

    pub(crate) fn record_retry(&self) {
        self.with(|s| s.retries += 1);
    }

    pub(crate) fn record_wait(&self, waited: Duration) {
        self.with(|s| {
            s.rate_limit_waits += 1;
            s.rate_limit_wait_total += waited;
        });
    }

    pub(crate) fn record_token_fetch(&self) {
        self.with(|s| s.token_fetches += 1);
    }

    /// A copy of all counters.
    pub fn snapshot(&self) -> CallStatsSnapshot {
        self.with(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_outcome() {
        let stats = CallStats::new();
        stats.record("calendar.events.list", "ok");
        stats.record("calendar.events.list", "ok");
        stats.record("calendar.events.list", "error:notFound");
        stats.record("calendar.events.insert", "retried");
        stats.record_retry();
        stats.record_wait(Duration::from_millis(5));
        stats.record_wait(Duration::from_millis(7));
        let snap = stats.snapshot();
        assert_eq!(snap.count("calendar.events.list", "ok"), 2);
        assert_eq!(snap.total("calendar.events.list"), 3);
        assert_eq!(snap.count("calendar.events.insert", "retried"), 1);
        assert_eq!(snap.count("calendar.events.insert", "ok"), 0);
        assert_eq!(snap.errors(), 1);
        assert_eq!(snap.retries, 1);
        assert_eq!(snap.rate_limit_waits, 2);
        assert_eq!(snap.rate_limit_wait_total, Duration::from_millis(12));
    }
}
