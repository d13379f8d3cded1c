//! A token bucket per credential that keeps the request rate under Google's quota.
//!
//! Google allows about 600 requests per minute per user and project (sliding
//! window). A bucket of `burst` tokens refilled at `per_minute / 60` per second
//! admits `burst` requests at once and then paces the rest, so a big sync never
//! triggers a 403 `rateLimitExceeded` storm. Waiters reserve their slot by driving the
//! balance negative, which makes the bucket first-come first-served without a queue.
//! Time is tokio's, so tests run under `tokio::time::pause()`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The request budget of one credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests admitted at once from a full bucket.
    pub burst: u32,
}

impl RateLimit {
    /// The budget for `per_minute` requests a minute: a burst of one second's worth
    /// (at least 1, at most 50), so no 60 s window holds more than `per_minute` plus a
    /// second's worth.
    pub fn per_minute(per_minute: u32) -> Self {
        RateLimit {
            per_minute,
            burst: (per_minute / 60).clamp(1, 50),
        }
    }
}

impl Default for RateLimit {
    /// The service's default (`google.requests_per_minute`, defined once in
    /// [`crate::config`]): 580/min with a burst of 9, at most 589 in any minute of
    /// Google's 600.
    fn default() -> Self {
        RateLimit::per_minute(crate::config::DEFAULT_REQUESTS_PER_MINUTE)
    }
}

#[derive(Debug)]
struct BucketState {
    /// May go negative: that many requests are already waiting for their slot.
    tokens: f64,
    last: Instant,
}

/// The bucket itself; share it (in an `Arc`) between every client of a credential.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket. A zero rate is treated as one request per minute and a zero
    /// burst as one, so the bucket always makes progress.
    pub fn new(limit: RateLimit) -> Self {
        let burst = f64::from(limit.burst.max(1));
        TokenBucket {
            per_second: f64::from(limit.per_minute.max(1)) / 60.0,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Takes one token, or reserves the next one and returns how long to wait for it.
    fn reserve(&self) -> Duration {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.burst);
        state.last = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.per_second)
        }
    }

    /// Waits until a request may be sent; returns how long it waited (zero if not).
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_admits_the_burst_at_once_then_paces_at_the_configured_rate() {
        // 60/min = one per second after a burst of 5.
        let bucket = TokenBucket::new(RateLimit {
            per_minute: 60,
            burst: 5,
        });
        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(bucket.acquire().await);
        }
        let elapsed = start.elapsed();
        assert!(waits[..5].iter().all(|w| w.is_zero()), "{waits:?}");
        assert!(waits[5..].iter().all(|w| !w.is_zero()), "{waits:?}");
        // 3 paced requests at 1/s.
        assert!(elapsed >= Duration::from_millis(2_990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(3_010), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_spread_one_interval_apart() {
        // 600/min = one per 100 ms after a burst of 2.
        let bucket = Arc::new(TokenBucket::new(RateLimit {
            per_minute: 600,
            burst: 2,
        }));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let bucket = Arc::clone(&bucket);
            tasks.push(tokio::spawn(async move {
                bucket.acquire().await;
                start.elapsed()
            }));
        }
        let mut admitted = Vec::new();
        for t in tasks {
            admitted.push(t.await.expect("task"));
        }
        admitted.sort();
        let ms: Vec<u128> = admitted
            .iter()
            .map(|d| (d.as_millis() + 5) / 10 * 10)
            .collect();
        assert_eq!(ms, vec![0, 0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_up_to_the_burst_and_no_further() {
        let bucket = TokenBucket::new(RateLimit {
            per_minute: 60,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(bucket.acquire().await.is_zero());
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        for _ in 0..3 {
            assert!(bucket.acquire().await.is_zero());
        }
        assert!(!bucket.acquire().await.is_zero());
    }

    #[tokio::test(start_paused = true)]
    async fn a_sustained_run_at_the_default_uses_95_percent_of_googles_minute_and_never_600() {
        let bucket = TokenBucket::new(RateLimit::default());
        let start = Instant::now();
        let mut admitted = Vec::new();
        for _ in 0..2_000 {
            bucket.acquire().await;
            admitted.push(start.elapsed());
        }
        // Every 60 s window (starting at any admission) holds at most 589 requests
        // and, once the bucket is pacing, at least 95 % of Google's 600.
        for (i, from) in admitted.iter().enumerate() {
            let to = *from + Duration::from_secs(60);
            let in_window = admitted[i..].iter().take_while(|t| **t < to).count();
            assert!(in_window <= 589, "{in_window} from {from:?}");
            if to <= *admitted.last().unwrap_or(from) {
                assert!(in_window >= 570, "{in_window} from {from:?}");
            }
        }
    }

    #[test]
    fn the_default_budget_is_the_settings_default_with_a_seconds_worth_of_burst() {
        let settings = crate::config::Settings::default();
        let want = RateLimit::per_minute(settings.google.requests_per_minute);
        assert_eq!(RateLimit::default(), want);
        let cases = [(580, 9), (600, 10), (30, 1), (0, 1), (6_000, 50)];
        for (per_minute, burst) in cases {
            assert_eq!(
                RateLimit::per_minute(per_minute).burst,
                burst,
                "{per_minute}"
            );
        }
    }
}
