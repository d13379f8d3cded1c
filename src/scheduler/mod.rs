//! The scheduler: runs the durable jobs of the queue ([`JobQueue`]): the calendar
//! actions, the syncs that local changes imply (coalesced by the store's write path),
//! each offering's periodic sync, retries; and a daily clean-up of bookings that were
//! never accepted.
//!
//! Invariants:
//! - at most one run per offering at a time, across all replicas on PostgreSQL (the
//!   queue's claim guarantees it); where other processes could take a job over (a
//!   lease), a run renews its lease every third of it and stops if it lost it; and
//!   one run per burst of requests: requests coalesce into the one pending job of an
//!   offering and kind, and a request during a run makes exactly one follow-up;
//! - linear: a wake-up claims due jobs from the queue's index and never reads the
//!   whole queue; each run costs O(log n) queue work whatever the number of offerings;
//! - jobs stay in the store until their run ended (a crash replays them, which is
//!   safe because runs are idempotent); attempts are counted when a job is claimed;
//! - whatever way a run ends (an outcome, an error, a panic), its guard hands the job
//!   back to the queue and releases the run's slot: a panicking job does not block
//!   its offering or the scheduler;
//! - a failed sync is held back (doubling from a minute up to `max_backoff`), a run
//!   that reports "retry after T" is held until T, never retried in a loop; explicit
//!   actions run at once anyway;
//! - on shutdown no new run starts and running ones finish (each run persists only
//!   at its end, so stopping between runs is the safe point).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::jobs::{After, Job, JobKind, JobRequest, Policy, RunOutcome, Trigger};
use crate::domain::lifecycle::{Action, Actor};
use crate::domain::Id;
use crate::store::{Change, JobQueue, Store, StoreError, Target, TransitionError};
use crate::sync::{RunOptions, SyncEngine};

/// Live state of the scheduler, for `/ready` and metrics.
#[derive(Default)]
pub struct SchedulerStatus {
    pub running: AtomicBool,
    pub queue_depth: AtomicUsize,
    pub active_runs: AtomicUsize,
    /// Runs finished, by outcome ("ok", "error", "deferred", "panicked", "skipped").
    pub runs: Mutex<HashMap<&'static str, u64>>,
}

impl SchedulerStatus {
    fn count(&self, outcome: &'static str) {
        let mut m = match self.runs.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        *m.entry(outcome).or_default() += 1;
    }

    /// Runs finished with `outcome` so far.
    pub fn runs(&self, outcome: &str) -> u64 {
        let m = match self.runs.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.get(outcome).copied().unwrap_or(0)
    }
}

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Periodic sync interval; `None` disables periodic syncs.
    pub interval: Option<Duration>,
    /// Offerings synced at the same time.
    pub parallel_offerings: usize,
    /// First back-off step of a failing offering (it doubles per failure).
    pub retry_base: Duration,
    /// Upper bound of the back-off of a failing offering.
    pub max_backoff: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            interval: Some(Duration::from_secs(900)),
            parallel_offerings: 2,
            retry_base: Duration::from_secs(60),
            max_backoff: Duration::from_secs(6 * 3600),
        }
    }
}

impl SchedulerOptions {
    fn policy(&self) -> Policy {
        Policy {
            interval: self.interval,
            retry_base: self.retry_base,
            max_backoff: self.max_backoff,
        }
    }
}

/// What runs a job. The sync engine is the runner of the service; the outcome is
/// where a run says how it ended (done, failed, or "retry after T").
#[async_trait]
pub trait JobRunner: Send + Sync {
    async fn run(&self, job: &Job) -> RunOutcome;

    /// The offering's regular-sync interval after a run, when it differs from the
    /// scheduler's (an offering whose Google changes arrive by push is polled less).
    fn interval_for(&self, _offering: Id) -> Option<Duration> {
        None
    }
}

#[async_trait]
impl JobRunner for SyncEngine {
    async fn run(&self, job: &Job) -> RunOutcome {
        let offering = job.offering;
        let result = match job.kind {
            JobKind::Sync => {
                // Only an explicit action creates a calendar; a queued sync of an
                // offering whose calendar is gone has nothing to do.
                if job.trigger != Trigger::Action {
                    match self.store.calendar(offering).await {
                        Ok(Some(c)) if c.calendar_id.is_some() => {}
                        Ok(_) => return RunOutcome::Skipped,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the calendar record");
                            return RunOutcome::Failed { failures: 1 };
                        }
                    }
                }
                self.sync_offering(offering, RunOptions::default())
                    .await
                    .map(|report| report.retry_after)
            }
            JobKind::Share => self.set_public(offering, true).await.map(|()| None),
            JobKind::Unshare => self.set_public(offering, false).await.map(|()| None),
        };
        // Google's usage limits: the run (or some of its writes) waits until then,
        // held by the queue, never retried in a loop.
        let retry_at = |after: Duration| {
            Utc::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(1))
        };
        match result {
            Ok(None) => RunOutcome::Done,
            Ok(Some(after)) => RunOutcome::RetryAt(retry_at(after)),
            Err(e) if e.retry_after().is_some() => {
                tracing::info!(error = %e, "the job waits for Google's usage limits");
                RunOutcome::RetryAt(retry_at(e.retry_after().unwrap_or_default()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "job failed; the calendar record shows the error");
                let failures = self
                    .store
                    .calendar(offering)
                    .await
                    .ok()
                    .flatten()
                    .map_or(1, |c| c.failures);
                RunOutcome::Failed { failures }
            }
        }
    }
}

/// The scheduler.
pub struct Scheduler {
    runner: Arc<dyn JobRunner>,
    queue: Arc<dyn JobQueue>,
    store: Arc<Store>,
    opts: SchedulerOptions,
    pub status: Arc<SchedulerStatus>,
    tracker: TaskTracker,
}

/// Hands a claimed job back to the queue however its run ends: with the run's
/// outcome, or, when the run's future is dropped without one (a panic unwinds through
/// it, or the runtime shuts down), as a panic or an interruption. Also releases the
/// run's slot and wakes the scheduler.
///
/// The queue is asynchronous, so a guard dropped without an outcome hands the job
/// back from a task it spawns; without a runtime to spawn on (the process is going
/// away), the job stays claimed, which a restart (sled) or the lease's end
/// (PostgreSQL) undoes.
struct RunGuard {
    job: Job,
    queue: Arc<dyn JobQueue>,
    status: Arc<SchedulerStatus>,
    policy: Policy,
    settled: bool,
}

/// Hands `job` back after a run that ended with `outcome`.
async fn hand_back(queue: &dyn JobQueue, job: &Job, policy: Policy, outcome: RunOutcome) {
    let now = Utc::now();
    let jitter = rand::thread_rng().gen_range(0.0..1.0);
    let result = match policy.after(job.kind, outcome, now, jitter) {
        After::Finish { periodic } => queue.finish(job, periodic).await,
        After::Retry { at } => queue.reschedule(job, at).await,
    };
    if let Err(e) = result {
        tracing::error!(error = %e, offering = %job.offering, "could not hand a finished job back to the queue");
    }
}

fn outcome_name(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Done => "ok",
        RunOutcome::Failed { .. } => "error",
        RunOutcome::RetryAt(_) => "deferred",
        RunOutcome::Panicked => "panicked",
        RunOutcome::Skipped => "skipped",
    }
}

impl RunGuard {
    async fn settle(mut self, outcome: RunOutcome) {
        self.settled = true;
        hand_back(&*self.queue, &self.job, self.policy, outcome).await;
        self.status.count(outcome_name(outcome));
    }

    /// The run was stopped because this process lost the job's lease: another
    /// replica has the job now, so nothing is handed back.
    fn lost(mut self) {
        self.settled = true;
        tracing::warn!(offering = %self.job.offering, kind = self.job.kind.as_str(), "the job's lease was lost; its run stopped and another replica runs it");
        self.status.count("lease lost");
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.settled = true;
            let outcome = if std::thread::panicking() {
                tracing::error!(offering = %self.job.offering, kind = self.job.kind.as_str(), "a job panicked; it is held back and retried");
                self.status.count(outcome_name(RunOutcome::Panicked));
                Some(RunOutcome::Panicked)
            } else {
                // Interrupted (the runtime is going away): due again at once.
                None
            };
            let (queue, job, policy) = (self.queue.clone(), self.job.clone(), self.policy);
            let release = async move {
                match outcome {
                    Some(o) => hand_back(&*queue, &job, policy, o).await,
                    None => {
                        if let Err(e) = queue.reschedule(&job, Utc::now()).await {
                            tracing::error!(error = %e, "could not put an interrupted job back");
                        }
                    }
                }
                queue.wakeup().notify_one();
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(release);
                }
                Err(_) => {
                    tracing::warn!(offering = %self.job.offering, "a job stays claimed until a restart or its lease's end")
                }
            }
        }
        self.status.active_runs.fetch_sub(1, Ordering::Relaxed);
        self.queue.wakeup().notify_one();
    }
}

/// Renews `job`'s lease every third of `lease` while its run goes on; returns when
/// the lease is lost (another replica took the job over, or no renewal succeeded
/// for a whole lease).
pub(crate) async fn heartbeat(queue: Arc<dyn JobQueue>, job: Job, lease: Duration) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        match queue.renew(&job).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, offering = %job.offering, "cannot renew a job's lease");
                if renewed.elapsed() >= lease {
                    return;
                }
            }
        }
    }
}

/// Cancels bookings still waiting for acceptance whose time has all started (as
/// upstream's daily task does), one lifecycle `Expire` each: order -> canceled,
/// resource -> Terminated.
///
/// # Errors
/// Storage failure.
pub async fn cancel_stale_requests(
    store: &Store,
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let stale: Vec<Id> = store.stale_requests(now).await?;
    let mut done = 0;
    for id in stale {
        match store
            .transition(Target::Resource(id), Actor::System, Action::Expire, now)
            .await
        {
            Ok(_) => done += 1,
            // Changed meanwhile (accepted, cancelled): nothing to clean up.
            Err(TransitionError::Refused(_)) => {}
            Err(TransitionError::Store(e)) => return Err(e),
        }
    }
    Ok(done)
}

impl Scheduler {
    /// The scheduler of the service: jobs from the engine's store, run by the engine.
    pub fn new(engine: Arc<SyncEngine>, opts: SchedulerOptions) -> Self {
        let store = engine.store.clone();
        Self::with_runner(engine, store, opts)
    }

    /// A scheduler with another runner (one that wraps the engine).
    pub fn with_runner(
        runner: Arc<dyn JobRunner>,
        store: Arc<Store>,
        opts: SchedulerOptions,
    ) -> Self {
        Scheduler {
            runner,
            queue: store.clone(),
            store,
            opts,
            status: Arc::new(SchedulerStatus::default()),
            tracker: TaskTracker::new(),
        }
    }

    /// Gives every offering with a calendar and no sync job its periodic one (once,
    /// at start: later, each run schedules the next).
    async fn bootstrap(&self) -> Result<(), StoreError> {
        let policy = self.opts.policy();
        let now = Utc::now();
        let without = self.queue.calendars_without_sync().await?;
        let jitters: Vec<f64> = {
            let mut rng = rand::thread_rng();
            without.iter().map(|_| rng.gen_range(0.0..1.0)).collect()
        };
        let requests: Vec<Change> = without
            .into_iter()
            .zip(jitters)
            .filter_map(|(offering, jitter)| {
                policy.next_periodic(now, jitter).map(|due| {
                    Change::Enqueue(JobRequest {
                        offering,
                        kind: JobKind::Sync,
                        trigger: Trigger::Periodic,
                        due,
                    })
                })
            })
            .collect();
        if !requests.is_empty() {
            tracing::info!(offerings = requests.len(), "scheduled periodic syncs");
            self.store.write(requests).await?;
        }
        Ok(())
    }

    /// Starts runs for due jobs, up to the parallel limit.
    async fn dispatch(&self) -> Result<(), StoreError> {
        let active = self.status.active_runs.load(Ordering::Relaxed);
        let free = self.opts.parallel_offerings.max(1).saturating_sub(active);
        if free > 0 {
            for job in self.queue.claim(Utc::now(), free).await? {
                self.spawn(job);
            }
        }
        self.status
            .queue_depth
            .store(self.queue.depth().await?, Ordering::Relaxed);
        Ok(())
    }

    fn spawn(&self, job: Job) {
        self.status.active_runs.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("job", offering = %job.offering, kind = job.kind.as_str(), trigger = job.trigger.as_str(), attempt = job.attempts);
        let mut guard = RunGuard {
            job,
            queue: self.queue.clone(),
            status: self.status.clone(),
            policy: self.opts.policy(),
            settled: false,
        };
        let runner = self.runner.clone();
        let lease = self.queue.lease();
        let queue = self.queue.clone();
        self.tracker.spawn(tracing::Instrument::instrument(
            async move {
                let job = guard.job.clone();
                let outcome = match lease {
                    None => Some(runner.run(&job).await),
                    // Where another replica could take the job over, the run renews
                    // its lease, and stops if the lease is lost anyway.
                    Some(lease) => tokio::select! {
                        outcome = runner.run(&job) => Some(outcome),
                        () = heartbeat(queue, job.clone(), lease) => None,
                    },
                };
                let Some(outcome) = outcome else {
                    guard.lost();
                    return;
                };
                if guard.policy.interval.is_some() {
                    if let Some(interval) = runner.interval_for(guard.job.offering) {
                        guard.policy.interval = Some(interval);
                    }
                }
                guard.settle(outcome).await;
            },
            span,
        ));
    }

    /// When the scheduler must look at the queue again (the earliest due job, if a
    /// run could start).
    async fn next_wake(&self) -> Option<tokio::time::Instant> {
        let active = self.status.active_runs.load(Ordering::Relaxed);
        if active >= self.opts.parallel_offerings.max(1) {
            return None;
        }
        let due = match self.queue.next_due().await {
            Ok(d) => d?,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the job queue");
                return Some(tokio::time::Instant::now() + Duration::from_secs(5));
            }
        };
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Some(tokio::time::Instant::now() + wait)
    }

    /// Runs until `shutdown` is cancelled, then waits for running jobs to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        self.status.running.store(true, Ordering::Relaxed);
        if let Err(e) = self.bootstrap().await {
            tracing::error!(error = %e, "cannot schedule the periodic syncs");
        }
        let wakeup = self.queue.wakeup();
        let mut next_daily = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_daily {
                match cancel_stale_requests(&self.store, Utc::now()).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(count = n, "cancelled bookings that were never accepted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "daily clean-up failed"),
                }
                next_daily += Duration::from_secs(24 * 3600);
            }
            if let Err(e) = self.dispatch().await {
                tracing::error!(error = %e, "cannot claim jobs");
            }
            let wake = self
                .next_wake()
                .await
                .map_or(next_daily, |w| w.min(next_daily));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeup.notified() => {},
                _ = tokio::time::sleep_until(wake) => {},
            }
        }
        self.status.running.store(false, Ordering::Relaxed);
        self.tracker.close();
        self.tracker.wait().await;
    }
}
