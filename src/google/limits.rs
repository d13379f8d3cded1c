//! Google's usage limits, per credential: the calendar-creation budget, the pause
//! after "Calendar usage limits exceeded.", and which calendars are still fresh.
//!
//! - Creating many secondary calendars quickly ("more than 25" in Google's help, about
//!   60 in reports) makes the account read-only for hours: every write answers 403
//!   `quotaExceeded`. [`UsageGuard::admit_creation`] allows at most `per_hour`
//!   creations in any sliding hour; past it the creation is not sent and the caller
//!   learns when the budget has room again.
//! - A 403 `quotaExceeded` trips the circuit ([`UsageGuard::trip`]): every write of the
//!   credential is held back for the pause (doubling on each trip in a row, at most a
//!   day), reads go on. The budget shrinks to what Google allowed before refusing, so
//!   the next hour does not trip it again.
//! - Right after `calendars.insert`, Google may answer 404 or 403 on the new calendar
//!   for a few seconds; [`UsageGuard::is_fresh`] tells the client to retry those.
//!
//! Time is tokio's (tests pause it). The state lives in memory: after a restart the
//! budget starts full and the circuit closed, so a restart costs at most one budget
//! and one refused request, never a loop.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The sliding window of the creation budget.
const HOUR: Duration = Duration::from_secs(3600);
/// The longest pause after repeated usage-limit refusals.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// The knobs of a [`UsageGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageLimits {
    /// Calendars one credential may create in any sliding hour; 0: no budget.
    pub calendars_per_hour: u32,
    /// How long writes pause after the first 403 `quotaExceeded`.
    pub pause: Duration,
    /// How long after creating a calendar 404/403 on it are retried.
    pub fresh_window: Duration,
}

impl Default for UsageLimits {
    fn default() -> Self {
        UsageLimits {
            calendars_per_hour: 20,
            pause: Duration::from_secs(3 * 3600),
            fresh_window: Duration::from_secs(60),
        }
    }
}

/// Writes are paused: since when, until when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePause {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// How long is left.
    pub left: Duration,
    pub reason: String,
}

#[derive(Debug, Default)]
struct State {
    /// Creations admitted in the last hour (oldest first).
    created: VecDeque<Instant>,
    /// The budget now: the configured one, lowered by what Google allowed.
    budget: Option<u32>,
    open_until: Option<Instant>,
    since: Option<DateTime<Utc>>,
    reason: String,
    /// Trips in a row (each doubles the pause).
    trips: u32,
    fresh: HashMap<String, Instant>,
}

/// One credential's view of Google's limits; shared by all its clients.
#[derive(Debug)]
pub struct UsageGuard {
    limits: UsageLimits,
    state: Mutex<State>,
}

/// A creation the budget admitted; give it back with [`UsageGuard::release`] when the
/// calendar was certainly not created.
#[derive(Debug)]
pub struct Admitted(Instant);

impl UsageGuard {
    pub fn new(limits: UsageLimits) -> Self {
        UsageGuard {
            limits,
            state: Mutex::new(State {
                budget: (limits.calendars_per_hour > 0).then_some(limits.calendars_per_hour),
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time left of an open pause, closing it when it ended.
    fn paused(state: &mut State, now: Instant) -> Option<Duration> {
        match state.open_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                state.open_until = None;
                None
            }
            None => None,
        }
    }

    /// Admits one calendar creation, or says how long to wait for one.
    ///
    /// # Errors
    /// The wait, and why, when writes are paused or the hour's budget is spent.
    pub fn admit_creation(&self) -> Result<Admitted, (Duration, String)> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(left) = Self::paused(&mut state, now) {
            return Err((left, state.reason.clone()));
        }
        while state
            .created
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            state.created.pop_front();
        }
        if let Some(budget) = state.budget {
            if state.created.len() >= budget as usize {
                let oldest = state.created.front().copied().unwrap_or(now);
                let wait = (oldest + HOUR).saturating_duration_since(now);
                return Err((
                    wait.max(Duration::from_secs(1)),
                    format!(
                        "the budget of {budget} new Google calendars per hour for this account is used up"
                    ),
                ));
            }
        }
        state.created.push_back(now);
        Ok(Admitted(now))
    }

    /// Gives back an admitted creation that certainly created nothing.
    pub fn release(&self, admitted: Admitted) {
        let mut state = self.lock();
        if let Some(pos) = state.created.iter().rposition(|t| *t == admitted.0) {
            state.created.remove(pos);
        }
    }

    /// Whether writes may be sent now; else how long to wait and why.
    ///
    /// # Errors
    /// The pause left and its reason.
    pub fn check_writes(&self) -> Result<(), (Duration, String)> {
        let mut state = self.lock();
        match Self::paused(&mut state, Instant::now()) {
            Some(left) => Err((left, state.reason.clone())),
            None => Ok(()),
        }
    }

    /// Google answered 403 `quotaExceeded` (to a calendar creation when
    /// `refused_creation`, the last one admitted): pause writes and lower the budget to
    /// what Google allowed this hour. Returns the pause.
    pub fn trip(&self, refused_creation: bool) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(left) = Self::paused(&mut state, now) {
            // Several requests in flight met the same refusal: one trip.
            return left;
        }
        let allowed = state
            .created
            .len()
            .saturating_sub(usize::from(refused_creation))
            .max(1);
        let allowed = u32::try_from(allowed).unwrap_or(u32::MAX);
        state.budget = Some(state.budget.map_or(allowed, |b| b.min(allowed)));
        let factor = 2u32.saturating_pow(state.trips.min(16));
        let pause = self.limits.pause.saturating_mul(factor).min(MAX_PAUSE);
        state.trips += 1;
        state.open_until = Some(now + pause);
        state.since = Some(Utc::now());
        state.reason = "Google answered \"Calendar usage limits exceeded.\" (the account is read-only for a while)".into();
        pause
    }

    /// A write went through: the next trip starts from the configured pause again.
    pub fn write_succeeded(&self) {
        self.lock().trips = 0;
    }

    /// The current pause, if writes are held back.
    pub fn pause(&self) -> Option<UsagePause> {
        let now = Instant::now();
        let mut state = self.lock();
        let left = Self::paused(&mut state, now)?;
        let since = state.since.unwrap_or_else(Utc::now);
        let until = Utc::now() + chrono::Duration::from_std(left).unwrap_or_default();
        Some(UsagePause {
            since,
            until,
            left,
            reason: state.reason.clone(),
        })
    }

    /// Remembers that this credential just created `calendar_id`.
    pub fn note_created(&self, calendar_id: &str) {
        let now = Instant::now();
        let window = self.limits.fresh_window;
        let mut state = self.lock();
        state.fresh.retain(|_, at| now.duration_since(*at) < window);
        state.fresh.insert(calendar_id.to_owned(), now);
    }

    /// Whether `calendar_id` was created by this credential within the fresh window.
    pub fn is_fresh(&self, calendar_id: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .fresh
            .get(calendar_id)
            .is_some_and(|at| now.duration_since(*at) < self.limits.fresh_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_hour: u32) -> UsageGuard {
        UsageGuard::new(UsageLimits {
            calendars_per_hour: per_hour,
            pause: Duration::from_secs(600),
            fresh_window: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_admits_per_hour_then_says_when_there_is_room_again() {
        let g = guard(3);
        for _ in 0..3 {
            assert!(g.admit_creation().is_ok());
        }
        tokio::time::advance(Duration::from_secs(600)).await;
        let (wait, why) = g.admit_creation().expect_err("budget spent");
        assert_eq!(wait, Duration::from_secs(3000));
        assert!(why.contains("budget of 3"), "{why}");
        tokio::time::advance(wait).await;
        assert!(g.admit_creation().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_creation_frees_its_place() {
        let g = guard(1);
        let a = g.admit_creation().expect("first");
        assert!(g.admit_creation().is_err());
        g.release(a);
        assert!(g.admit_creation().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_pauses_writes_lowers_the_budget_and_doubles_on_repeat() {
        let g = guard(40);
        for _ in 0..25 {
            assert!(g.admit_creation().is_ok());
        }
        // The 26th is refused.
        assert!(g.admit_creation().is_ok());
        assert_eq!(g.trip(true), Duration::from_secs(600));
        // A second refusal of the same burst does not extend the pause.
        assert_eq!(g.trip(false), Duration::from_secs(600));
        assert!(g.check_writes().is_err());
        assert!(g.admit_creation().is_err());
        assert!(g.pause().is_some());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(g.check_writes().is_ok());
        assert!(g.pause().is_none());
        // Google allowed 25 an hour: that is the budget now.
        for _ in 0..25 {
            assert!(g.admit_creation().is_ok());
        }
        assert!(g.admit_creation().is_err());
        assert_eq!(g.trip(false), Duration::from_secs(1200));
        tokio::time::advance(Duration::from_secs(1200)).await;
        g.write_succeeded();
        assert_eq!(g.trip(false), Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_calendars_stay_fresh_for_the_window() {
        let g = guard(0);
        g.note_created("c1");
        assert!(g.is_fresh("c1"));
        assert!(!g.is_fresh("c2"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!g.is_fresh("c1"));
    }

    #[test]
    fn no_budget_means_no_limit() {
        let g = guard(0);
        for _ in 0..1000 {
            assert!(g.admit_creation().is_ok());
        }
    }
}
