//! The scheduler: runs the durable jobs the calendar actions enqueue, a periodic
//! sync of every offering that has a calendar, and a daily clean-up of bookings
//! that were never accepted.
//!
//! Invariants: at most one run per offering at a time; jobs stay in the store until
//! their run finished (a crash replays them, which is safe because runs are
//! idempotent); failing offerings back off exponentially; on shutdown no new run
//! starts and running ones finish (each run persists only at its end, so stopping
//! between runs is the safe point).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::calendar::{Job, JobKind};
use crate::domain::lifecycle::{Action, Actor};
use crate::domain::{Id, OrderType, ResourceState};
use crate::store::{Store, StoreError, Target, TransitionError};
use crate::sync::{RunOptions, SyncEngine};

/// Live state of the scheduler, for `/ready` and metrics.
#[derive(Default)]
pub struct SchedulerStatus {
    pub running: AtomicBool,
    pub queue_depth: AtomicUsize,
    pub active_runs: AtomicUsize,
    /// Runs finished, by outcome ("ok", "error").
    pub runs: Mutex<HashMap<&'static str, u64>>,
}

impl SchedulerStatus {
    fn count(&self, outcome: &'static str) {
        if let Ok(mut m) = self.runs.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }
}

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Periodic sync interval; `None` disables periodic syncs.
    pub interval: Option<Duration>,
    /// Offerings synced at the same time.
    pub parallel_offerings: usize,
    /// Upper bound of the back-off of a failing offering.
    pub max_backoff: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            interval: Some(Duration::from_secs(900)),
            parallel_offerings: 2,
            max_backoff: Duration::from_secs(6 * 3600),
        }
    }
}

/// The scheduler.
pub struct Scheduler {
    engine: Arc<SyncEngine>,
    store: Arc<Store>,
    jobs_ready: Arc<Notify>,
    opts: SchedulerOptions,
    pub status: Arc<SchedulerStatus>,
    busy: Arc<Mutex<HashSet<Id>>>,
    tracker: TaskTracker,
}

/// Enqueues a sync job for an offering (used by the periodic pass and the CLI).
///
/// # Errors
/// Storage failure.
pub fn enqueue(store: &Store, offering: Id, kind: JobKind) -> Result<(), StoreError> {
    let job = Job {
        seq: store.next_id()?,
        offering,
        kind,
        created: Utc::now(),
        attempts: 0,
    };
    store.sync_put(vec![Store::job_change(&job)?])
}

/// Cancels bookings still waiting for acceptance whose time has all started (as
/// upstream's daily task does), one lifecycle `Expire` each: order -> canceled,
/// resource -> Terminated.
///
/// # Errors
/// Storage failure.
pub fn cancel_stale_requests(
    store: &Store,
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let stale: Vec<Id> = {
        let cat = store.read()?;
        cat.resources
            .values()
            .filter(|r| r.state == ResourceState::Creating)
            .filter(|r| {
                let requested = cat
                    .orders_by_offering
                    .get(&r.offering)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| cat.orders.get(o))
                    .filter(|o| o.resource == r.id && o.kind == OrderType::Create)
                    .flat_map(|o| o.requested.iter());
                let mut time = r.slots.iter().chain(requested).peekable();
                time.peek().is_some() && time.all(|s| s.start <= now)
            })
            .map(|r| r.id)
            .collect()
    };
    let mut done = 0;
    for id in stale {
        match store.transition(Target::Resource(id), Actor::System, Action::Expire, now) {
            Ok(_) => done += 1,
            // Changed meanwhile (accepted, cancelled): nothing to clean up.
            Err(TransitionError::Refused(_)) => {}
            Err(TransitionError::Store(e)) => return Err(e),
        }
    }
    Ok(done)
}

impl Scheduler {
    pub fn new(engine: Arc<SyncEngine>, jobs_ready: Arc<Notify>, opts: SchedulerOptions) -> Self {
        let store = engine.store.clone();
        Scheduler {
            engine,
            store,
            jobs_ready,
            opts,
            status: Arc::new(SchedulerStatus::default()),
            busy: Arc::new(Mutex::new(HashSet::new())),
            tracker: TaskTracker::new(),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.opts.interval.unwrap_or(Duration::from_secs(900));
        let f = 2u32.saturating_pow(failures.min(16));
        base.saturating_mul(f).min(self.opts.max_backoff)
    }

    /// Enqueues a sync of every offering with a calendar that is due.
    fn periodic_pass(
        &self,
        last_attempt: &mut HashMap<Id, tokio::time::Instant>,
    ) -> Result<(), StoreError> {
        let queued: HashSet<Id> = self.store.jobs()?.into_iter().map(|j| j.offering).collect();
        for cal in self.store.calendars()? {
            if cal.calendar_id.is_none() || queued.contains(&cal.offering) {
                continue;
            }
            if cal.failures > 0 {
                let wait = self.backoff(cal.failures);
                if last_attempt
                    .get(&cal.offering)
                    .is_some_and(|t| t.elapsed() < wait)
                {
                    continue;
                }
            }
            last_attempt.insert(cal.offering, tokio::time::Instant::now());
            enqueue(&self.store, cal.offering, JobKind::Sync)?;
        }
        Ok(())
    }

    /// Starts runs for queued jobs whose offering is idle, up to the parallel limit.
    fn dispatch(&self) -> Result<(), StoreError> {
        let jobs = self.store.jobs()?;
        self.status.queue_depth.store(jobs.len(), Ordering::Relaxed);
        for job in jobs {
            if self.status.active_runs.load(Ordering::Relaxed)
                >= self.opts.parallel_offerings.max(1)
            {
                break;
            }
            {
                let Ok(mut busy) = self.busy.lock() else {
                    break;
                };
                if !busy.insert(job.offering) {
                    continue;
                }
            }
            self.status.active_runs.fetch_add(1, Ordering::Relaxed);
            let (engine, store, busy, status, ready) = (
                self.engine.clone(),
                self.store.clone(),
                self.busy.clone(),
                self.status.clone(),
                self.jobs_ready.clone(),
            );
            let span = tracing::info_span!("job", offering = %job.offering, kind = ?job.kind);
            self.tracker.spawn(tracing::Instrument::instrument(async move {
                let outcome = match job.kind {
                    JobKind::Sync => engine.sync_offering(job.offering, RunOptions::default()).await.map(|_| ()),
                    JobKind::Share => engine.set_public(job.offering, true).await,
                    JobKind::Unshare => engine.set_public(job.offering, false).await,
                };
                match &outcome {
                    Ok(()) => status.count("ok"),
                    Err(e) => {
                        status.count("error");
                        tracing::warn!(offering = %job.offering, error = %e, "job failed; the calendar record shows the error");
                    }
                }
                if let Err(e) = store.sync_put(vec![Store::job_done_change(job.seq)]) {
                    tracing::error!(error = %e, "could not remove a finished job");
                }
                if let Ok(mut b) = busy.lock() {
                    b.remove(&job.offering);
                }
                status.active_runs.fetch_sub(1, Ordering::Relaxed);
                ready.notify_one();
            }, span));
        }
        Ok(())
    }

    /// Runs until `shutdown` is cancelled, then waits for running jobs to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        self.status.running.store(true, Ordering::Relaxed);
        let mut last_attempt = HashMap::new();
        let jitter = |d: Duration| d + d.mul_f64(rand::thread_rng().gen_range(0.0..0.1));
        let mut next_periodic = self
            .opts
            .interval
            .map(|i| tokio::time::Instant::now() + jitter(i));
        let mut next_daily = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_daily {
                match cancel_stale_requests(&self.store, Utc::now()) {
                    Ok(n) if n > 0 => {
                        tracing::info!(count = n, "cancelled bookings that were never accepted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "daily clean-up failed"),
                }
                next_daily += Duration::from_secs(24 * 3600);
            }
            if let Some(at) = next_periodic {
                if tokio::time::Instant::now() >= at {
                    if let Err(e) = self.periodic_pass(&mut last_attempt) {
                        tracing::error!(error = %e, "periodic pass failed");
                    }
                    next_periodic = self
                        .opts
                        .interval
                        .map(|i| tokio::time::Instant::now() + jitter(i));
                }
            }
            if let Err(e) = self.dispatch() {
                tracing::error!(error = %e, "cannot read the job queue");
            }
            let wake = next_periodic.map_or(next_daily, |p| p.min(next_daily));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.jobs_ready.notified() => {},
                _ = tokio::time::sleep_until(wake) => {},
            }
        }
        self.status.running.store(false, Ordering::Relaxed);
        self.tracker.close();
        self.tracker.wait().await;
    }
}
