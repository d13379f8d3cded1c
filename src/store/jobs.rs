//! The durable job queue: versioned records in the `jobs` tree (key: the job's
//! sequence number, big endian) and an in-memory index over them.
//!
//! [`JobQueue`] is the one (asynchronous) interface the scheduler uses for both
//! engines (enqueue, claim, finish, reschedule, lease renewal). The rules that
//! coalesce requests and end runs are shared (`absorb`, `finish_plan`,
//! `reschedule_plan`, and [`crate::domain::jobs::merge`]); the PostgreSQL engine
//! keeps its queue in a table with leases (`pg::jobs`).
//!
//! The sled engine keeps the index under the store's write lock, next to the records:
//! - `by_due`: pending jobs ordered by (due, seq): a claim reads only the due ones;
//! - `pending`: (offering, kind) -> the one pending job (requests coalesce into it);
//! - `running`: offering -> its claimed job (a claim skips offerings that have one,
//!   so no offering runs twice at once, and a request during a run makes exactly one
//!   pending follow-up);
//! - `with_calendar`: offerings whose calendar exists (for the syncs the store's write
//!   path implies, and for the scheduler's start).
//!
//! Every operation is O(log n) in the number of jobs (a claim also skips at most the
//! pending jobs of offerings that are running). On open the index is rebuilt from the
//! records; jobs that were running when the process stopped are pending again (runs
//! are idempotent), and duplicates of one offering and kind are merged.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::records::JobRecord;
use super::tree::Tree;
use super::{decode, encode, RawWrite, StoreError};
use crate::domain::calendar::OfferingCalendar;
use crate::domain::jobs::{merge, Job, JobKind, JobRequest, Merge, Trigger};
use crate::domain::Id;

/// The scheduler's view of the job queue (see the module documentation): one
/// interface for both engines.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a job, coalesced with the pending job of the same offering and kind
    /// (see [`crate::domain::jobs::merge`]).
    ///
    /// # Errors
    /// Storage failure.
    async fn enqueue(&self, req: JobRequest) -> Result<(), StoreError>;

    /// Takes up to `limit` jobs due at `now`, at most one per offering and none of an
    /// offering that has a running job (on any replica), marks them running (under
    /// this process's lease, where the engine has leases) and counts an attempt.
    ///
    /// # Errors
    /// Storage failure (then nothing was claimed).
    async fn claim(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Job>, StoreError>;

    /// Claims `offering` for a sync run outside the scheduler (`bookcal sync`): a new
    /// running sync job of the offering, held like a claimed one (a lease where
    /// other processes could take it over), unless a run of the offering holds it
    /// now (then `None`: ask again later). While it is held no claim takes a job of
    /// the offering; its pending jobs stay queued. End it with [`JobQueue::finish`].
    ///
    /// # Errors
    /// Storage failure (then nothing was claimed).
    async fn claim_offering(
        &self,
        offering: Id,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError>;

    /// Ends a claimed job. With `periodic`, the offering's next regular job of this
    /// kind is due then (merged with a follow-up queued during the run). A job this
    /// process no longer holds (its lease was lost) is left alone.
    ///
    /// # Errors
    /// Storage failure.
    async fn finish(&self, job: &Job, periodic: Option<DateTime<Utc>>) -> Result<(), StoreError>;

    /// Puts a claimed job back, held until `at` (requests other than explicit
    /// actions do not bring it forward); attempts are kept. A job this process no
    /// longer holds is left alone.
    ///
    /// # Errors
    /// Storage failure.
    async fn reschedule(&self, job: &Job, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// How long a claim holds a job without renewal, where other processes could take
    /// it over (`None`: no other process can, as on sled).
    fn lease(&self) -> Option<std::time::Duration>;

    /// Renews the lease of a running job. `false` when this process no longer holds
    /// it (another replica took it over after the lease expired).
    ///
    /// # Errors
    /// Storage failure.
    async fn renew(&self, job: &Job) -> Result<bool, StoreError>;

    /// When the queue must be looked at again: the earliest pending job that a claim
    /// could take, or the earliest lease of another process that expires.
    ///
    /// # Errors
    /// Storage failure.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Jobs queued (pending and running).
    ///
    /// # Errors
    /// Storage failure.
    async fn depth(&self) -> Result<usize, StoreError>;

    /// Offerings whose calendar exists but that have no sync job (they get their
    /// first periodic one when the scheduler starts).
    ///
    /// # Errors
    /// Storage failure.
    async fn calendars_without_sync(&self) -> Result<Vec<Id>, StoreError>;

    /// Notified whenever jobs are queued, put back or finished (on PostgreSQL, by any
    /// replica).
    fn wakeup(&self) -> std::sync::Arc<tokio::sync::Notify>;
}

/// Decodes the job record stored under `key` (its sequence number, big endian).
pub(crate) fn decode_job(key: &[u8], bytes: &[u8]) -> Result<Job, StoreError> {
    let seq = key
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::CorruptIndex("jobs"))?;
    Ok(decode::<JobRecord>("jobs", bytes)?.job(seq))
}

/// A write of one job record (`None` deletes it).
fn job_write(seq: u64, job: Option<&Job>) -> Result<RawWrite, StoreError> {
    let value = job.map(|j| encode(&JobRecord::from(j))).transpose()?;
    Ok((Tree::Jobs, seq.to_be_bytes().to_vec(), value))
}

/// Folds `other`, a second pending job of the same offering and kind (left by a run
/// that stopped while its follow-up waited), into `keep`.
pub(crate) fn absorb(keep: &mut Job, other: &Job) {
    keep.due = keep.due.min(other.due);
    keep.attempts = keep.attempts.max(other.attempts);
    keep.hold_until = keep.hold_until.max(other.hold_until);
    if let Some(h) = keep.hold_until {
        keep.due = keep.due.max(h);
    }
}

/// The writes that end the claimed `job`, given the pending `follow`-up of its
/// offering and kind (see [`JobQueue::finish`]). Both engines use it.
pub(crate) fn finish_plan(
    job: &Job,
    follow: Option<&Job>,
    periodic: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> JobPlan {
    let mut plan = JobPlan::default();
    match (follow, periodic) {
        (Some(follow), Some(at)) if at < follow.due && follow.hold_until.is_none() => {
            plan.removed.push(job.seq);
            plan.pending.push(Job {
                due: at,
                ..follow.clone()
            });
        }
        (Some(_), _) | (None, None) => plan.removed.push(job.seq),
        (None, Some(at)) => plan.pending.push(Job {
            seq: job.seq,
            offering: job.offering,
            kind: job.kind,
            trigger: Trigger::Periodic,
            created: now,
            due: at,
            attempts: 0,
            hold_until: None,
        }),
    }
    plan
}

/// The writes that put the claimed `job` back, held until `at`, given the pending
/// `follow`-up of its offering and kind (see [`JobQueue::reschedule`]).
pub(crate) fn reschedule_plan(job: &Job, follow: Option<&Job>, at: DateTime<Utc>) -> JobPlan {
    let mut plan = JobPlan::default();
    match follow {
        // Someone asked again during the run: that request stands.
        Some(follow) if follow.trigger == Trigger::Action => plan.removed.push(job.seq),
        Some(follow) => {
            plan.removed.push(job.seq);
            plan.pending.push(Job {
                // A retried action may still do what only actions do.
                trigger: if job.trigger == Trigger::Action {
                    Trigger::Action
                } else {
                    follow.trigger
                },
                due: follow.due.max(at),
                hold_until: Some(at),
                attempts: follow.attempts.max(job.attempts),
                ..follow.clone()
            });
        }
        None => plan.pending.push(Job {
            due: at,
            hold_until: Some(at),
            ..job.clone()
        }),
    }
    plan
}

/// The in-memory index of the sled engine's job queue (see the module documentation).
#[derive(Default)]
pub(crate) struct JobIndex {
    jobs: HashMap<u64, Job>,
    by_due: BTreeSet<(DateTime<Utc>, u64)>,
    pending: HashMap<(Id, JobKind), u64>,
    running: HashMap<Id, u64>,
    with_calendar: HashSet<Id>,
}

/// Index changes prepared before the records are written, applied after.
#[derive(Default)]
pub(crate) struct JobPlan {
    /// Jobs to (re)write as pending.
    pub(crate) pending: Vec<Job>,
    /// Jobs to delete.
    pub(crate) removed: Vec<u64>,
    /// Jobs that now run.
    pub(crate) running: Vec<Job>,
}

impl JobPlan {
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.removed.is_empty() && self.running.is_empty()
    }

    /// The record writes of this plan.
    pub(crate) fn writes(&self) -> Result<Vec<RawWrite>, StoreError> {
        let mut out = Vec::new();
        for j in self.pending.iter().chain(&self.running) {
            out.push(job_write(j.seq, Some(j))?);
        }
        for seq in &self.removed {
            out.push(job_write(*seq, None)?);
        }
        Ok(out)
    }
}

impl JobIndex {
    /// Rebuilds the index from the `jobs` and `calendars` trees. Returns it with the
    /// writes that merge duplicates (two pending jobs of one offering and kind, left
    /// by a run that stopped while its follow-up waited).
    pub(crate) fn load(
        jobs: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>>,
        calendars: impl Iterator<Item = Result<OfferingCalendar, StoreError>>,
    ) -> Result<(JobIndex, JobPlan), StoreError> {
        let mut idx = JobIndex::default();
        let mut fix = JobPlan::default();
        let mut all = Vec::new();
        for kv in jobs {
            let (k, v) = kv?;
            all.push(decode_job(&k, &v)?);
        }
        all.sort_by_key(|j| j.seq);
        for job in all {
            match idx.pending_job(job.offering, job.kind).cloned() {
                None => idx.put_pending(job),
                Some(mut keep) => {
                    absorb(&mut keep, &job);
                    fix.removed.push(job.seq);
                    fix.pending.retain(|j| j.seq != keep.seq);
                    fix.pending.push(keep.clone());
                    idx.put_pending(keep);
                }
            }
        }
        for cal in calendars {
            let cal = cal?;
            if cal.calendar_id.is_some() {
                idx.with_calendar.insert(cal.offering);
            }
        }
        Ok((idx, fix))
    }

    fn remove(&mut self, seq: u64) {
        if let Some(j) = self.jobs.remove(&seq) {
            self.by_due.remove(&(j.due, seq));
            if self.pending.get(&(j.offering, j.kind)) == Some(&seq) {
                self.pending.remove(&(j.offering, j.kind));
            }
            if self.running.get(&j.offering) == Some(&seq) {
                self.running.remove(&j.offering);
            }
        }
    }

    fn put_pending(&mut self, job: Job) {
        self.remove(job.seq);
        self.by_due.insert((job.due, job.seq));
        self.pending.insert((job.offering, job.kind), job.seq);
        self.jobs.insert(job.seq, job);
    }

    fn pending_job(&self, offering: Id, kind: JobKind) -> Option<&Job> {
        self.pending
            .get(&(offering, kind))
            .and_then(|s| self.jobs.get(s))
    }

    /// Applies a plan whose records were written.
    pub(crate) fn commit(&mut self, plan: JobPlan) {
        for seq in plan.removed {
            self.remove(seq);
        }
        for j in plan.running {
            self.remove(j.seq);
            self.running.insert(j.offering, j.seq);
            self.jobs.insert(j.seq, j);
        }
        for j in plan.pending {
            self.put_pending(j);
        }
    }

    /// Coalesces requests (in order) into the pending jobs. `next_seq` numbers new jobs.
    pub(crate) fn plan_requests(
        &self,
        requests: &[JobRequest],
        now: DateTime<Utc>,
        mut next_seq: impl FnMut() -> Result<u64, StoreError>,
    ) -> Result<JobPlan, StoreError> {
        let mut overlay: HashMap<(Id, JobKind), Job> = HashMap::new();
        for req in requests {
            let key = (req.offering, req.kind);
            let current = overlay
                .get(&key)
                .cloned()
                .or_else(|| self.pending_job(req.offering, req.kind).cloned());
            let job = match merge(current.as_ref(), req, 0, now) {
                Merge::Keep => continue,
                Merge::Update(j) => j,
                Merge::New(mut j) => {
                    j.seq = next_seq()?;
                    j
                }
            };
            overlay.insert(key, job);
        }
        Ok(JobPlan {
            pending: overlay.into_values().collect(),
            ..JobPlan::default()
        })
    }

    /// Chooses the jobs a claim takes (see [`JobQueue::claim`]).
    pub(crate) fn plan_claim(&self, now: DateTime<Utc>, limit: usize) -> JobPlan {
        let mut plan = JobPlan::default();
        let mut taken: HashSet<Id> = HashSet::new();
        for (due, seq) in &self.by_due {
            if plan.running.len() >= limit || *due > now {
                break;
            }
            let Some(j) = self.jobs.get(seq) else {
                continue;
            };
            if self.running.contains_key(&j.offering) || !taken.insert(j.offering) {
                continue;
            }
            let mut j = j.clone();
            j.attempts = j.attempts.saturating_add(1);
            plan.running.push(j);
        }
        plan
    }

    /// The writes that end a claimed job (see [`JobQueue::finish`]).
    pub(crate) fn plan_finish(
        &self,
        job: &Job,
        periodic: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> JobPlan {
        finish_plan(job, self.pending_job(job.offering, job.kind), periodic, now)
    }

    /// The writes that put a claimed job back, held (see [`JobQueue::reschedule`]).
    pub(crate) fn plan_reschedule(&self, job: &Job, at: DateTime<Utc>) -> JobPlan {
        reschedule_plan(job, self.pending_job(job.offering, job.kind), at)
    }

    /// Whether `job` is the running job of its offering.
    pub(crate) fn is_running(&self, job: &Job) -> bool {
        self.running.get(&job.offering) == Some(&job.seq)
    }

    /// When the earliest pending job that a claim could take is due (pending jobs
    /// of running offerings wait for the run's end, which wakes the scheduler).
    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_due
            .iter()
            .find(|(_, seq)| {
                self.jobs
                    .get(seq)
                    .is_some_and(|j| !self.running.contains_key(&j.offering))
            })
            .map(|(d, _)| *d)
    }

    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Every job, in sequence order.
    pub(crate) fn all(&self) -> Vec<Job> {
        let mut v: Vec<Job> = self.jobs.values().cloned().collect();
        v.sort_by_key(|j| j.seq);
        v
    }

    /// The jobs of one offering (running first, then pending by due time).
    pub(crate) fn of_offering(&self, offering: Id) -> Vec<Job> {
        let mut v: Vec<Job> = self
            .running
            .get(&offering)
            .into_iter()
            .chain(
                [JobKind::Sync, JobKind::Share, JobKind::Unshare]
                    .iter()
                    .filter_map(|k| self.pending.get(&(offering, *k))),
            )
            .filter_map(|s| self.jobs.get(s))
            .cloned()
            .collect();
        v[usize::from(self.running.contains_key(&offering))..].sort_by_key(|j| (j.due, j.seq));
        v
    }

    pub(crate) fn has_calendar(&self, offering: Id) -> bool {
        self.with_calendar.contains(&offering)
    }

    pub(crate) fn set_calendar(&mut self, offering: Id, exists: bool) {
        if exists {
            self.with_calendar.insert(offering);
        } else {
            self.with_calendar.remove(&offering);
        }
    }

    /// Offerings with a calendar and no sync job, pending or running.
    pub(crate) fn calendars_without_sync(&self) -> Vec<Id> {
        let mut v: Vec<Id> = self
            .with_calendar
            .iter()
            .filter(|o| {
                !self.pending.contains_key(&(**o, JobKind::Sync))
                    && self
                        .running
                        .get(o)
                        .and_then(|s| self.jobs.get(s))
                        .is_none_or(|j| j.kind != JobKind::Sync)
            })
            .copied()
            .collect();
        v.sort();
        v
    }
}

impl super::sled_engine::Sled {
    /// Every queued job (pending and running), in sequence order.
    ///
    /// # Errors
    /// Only if a writer panicked while holding the lock.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        Ok(self.jobs_index()?.all())
    }

    /// The jobs of one offering: the running one first, then the pending ones by due
    /// time.
    ///
    /// # Errors
    /// Only if a writer panicked while holding the lock.
    pub fn queued_jobs(&self, offering: Id) -> Result<Vec<Job>, StoreError> {
        Ok(self.jobs_index()?.of_offering(offering))
    }

    /// The sequence number of the offering's running job, if one runs.
    ///
    /// # Errors
    /// Only if a writer panicked while holding the lock.
    pub fn running_job(&self, offering: Id) -> Result<Option<u64>, StoreError> {
        Ok(self.jobs_index()?.running.get(&offering).copied())
    }
}

impl super::sled_engine::Sled {
    /// See [`JobQueue::claim`]: one process per directory, so no lease.
    pub(crate) fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let _w = self.locked_write()?;
        let plan = self.jobs_index()?.plan_claim(now, limit);
        let claimed = plan.running.clone();
        self.write_jobs(plan)?;
        Ok(claimed)
    }

    /// See [`JobQueue::claim_offering`]: a running sync job of `offering`, written
    /// like a claimed one (a process that stops during its run leaves a pending job
    /// that the next start runs), unless the offering has a running job.
    pub(crate) fn claim_offering(
        &self,
        offering: Id,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let _w = self.locked_write()?;
        if self.jobs_index()?.running.contains_key(&offering) {
            return Ok(None);
        }
        let job = Job {
            seq: self.next_id()?,
            offering,
            kind: JobKind::Sync,
            trigger: Trigger::Action,
            created: now,
            due: now,
            attempts: 1,
            hold_until: None,
        };
        self.write_jobs(JobPlan {
            running: vec![job.clone()],
            ..JobPlan::default()
        })?;
        Ok(Some(job))
    }

    /// See [`JobQueue::finish`].
    pub(crate) fn finish_job(
        &self,
        job: &Job,
        periodic: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let _w = self.locked_write()?;
        let plan = {
            let idx = self.jobs_index()?;
            if !idx.is_running(job) {
                return Ok(());
            }
            idx.plan_finish(job, periodic, Utc::now())
        };
        self.write_jobs(plan)
    }

    /// See [`JobQueue::reschedule`].
    pub(crate) fn reschedule_job(&self, job: &Job, at: DateTime<Utc>) -> Result<(), StoreError> {
        let _w = self.locked_write()?;
        let plan = {
            let idx = self.jobs_index()?;
            if !idx.is_running(job) {
                return Ok(());
            }
            idx.plan_reschedule(job, at)
        };
        self.write_jobs(plan)
    }
}

/// The store's queue is its engine's: the sled index above, or the PostgreSQL jobs
/// table ([`super::pg::jobs`]).
#[async_trait::async_trait]
impl JobQueue for super::Store {
    async fn enqueue(&self, req: JobRequest) -> Result<(), StoreError> {
        self.write(vec![super::Change::Enqueue(req)]).await
    }

    async fn claim(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Job>, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => s.claim_jobs(now, limit),
            super::Engine::Postgres(p) => p.claim_jobs(now, limit).await,
        }
    }

    async fn claim_offering(
        &self,
        offering: Id,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => s.claim_offering(offering, now),
            super::Engine::Postgres(p) => p.claim_offering(offering, now).await,
        }
    }

    async fn finish(&self, job: &Job, periodic: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => s.finish_job(job, periodic),
            super::Engine::Postgres(p) => p.finish_job(job, periodic).await,
        }
    }

    async fn reschedule(&self, job: &Job, at: DateTime<Utc>) -> Result<(), StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => s.reschedule_job(job, at),
            super::Engine::Postgres(p) => p.reschedule_job(job, at).await,
        }
    }

    fn lease(&self) -> Option<std::time::Duration> {
        match &self.engine {
            super::Engine::Sled(_) => None,
            super::Engine::Postgres(p) => Some(p.job_lease),
        }
    }

    async fn renew(&self, job: &Job) -> Result<bool, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => Ok(s.jobs_index()?.is_running(job)),
            super::Engine::Postgres(p) => p.renew_job(job).await,
        }
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => Ok(s.jobs_index()?.next_due()),
            super::Engine::Postgres(p) => p.next_due().await,
        }
    }

    async fn depth(&self) -> Result<usize, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => Ok(s.jobs_index()?.len()),
            super::Engine::Postgres(p) => p.depth().await,
        }
    }

    async fn calendars_without_sync(&self) -> Result<Vec<Id>, StoreError> {
        match &self.engine {
            super::Engine::Sled(s) => Ok(s.jobs_index()?.calendars_without_sync()),
            super::Engine::Postgres(p) => p.calendars_without_sync().await,
        }
    }

    fn wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.job_wakeup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::{CalendarState, OfferingCalendar};
    use crate::store::pg::{testing, PgOptions};
    use crate::store::{Change, Store, StoreOptions};
    use std::time::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(secs)
    }

    fn req(offering: Id, trigger: Trigger, due: DateTime<Utc>) -> JobRequest {
        JobRequest {
            offering,
            kind: JobKind::Sync,
            trigger,
            due,
        }
    }

    async fn with_calendar(store: &Store, offering: Id) {
        let mut cal = OfferingCalendar::new(offering);
        cal.calendar_id = Some(format!("c_{}@group.calendar.google.com", offering.hex()));
        cal.state = CalendarState::Ok;
        store
            .write(vec![Store::calendar_change(&cal).expect("encode")])
            .await
            .expect("write");
    }

    /// A replica on a PostgreSQL database (a new one unless `url` names one).
    async fn replica(url: &str, opts: &StoreOptions, lease: Duration) -> Store {
        let pg = PgOptions {
            job_lease: lease,
            ..PgOptions::default()
        };
        Store::connect(url, opts, &pg).await.expect("connect")
    }

    /// The same queue on both engines (and the sled store's directory).
    async fn engines(opts: &StoreOptions) -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().expect("tmp");
        let sled = Store::open(dir.path(), opts).expect("sled");
        let url = testing::database().await;
        (
            dir,
            vec![sled, replica(&url, opts, Duration::from_secs(60)).await],
        )
    }

    #[tokio::test]
    async fn a_burst_of_requests_is_one_job_and_a_request_during_its_run_one_follow_up() {
        let (_dir, stores) = engines(&StoreOptions::default()).await;
        for store in stores {
            let engine = store.engine().as_str();
            let (a, b) = (Id::new_v4(), Id::new_v4());
            for _ in 0..50 {
                store
                    .enqueue(req(a, Trigger::Change, at(-1)))
                    .await
                    .expect("enqueue");
            }
            store
                .enqueue(req(b, Trigger::Change, at(60)))
                .await
                .expect("enqueue");
            assert_eq!(store.depth().await.expect("depth"), 2, "{engine}");
            // Only a is due; one claim takes it once.
            let claimed = store.claim(Utc::now(), 10).await.expect("claim");
            assert_eq!(claimed.len(), 1, "{engine}");
            assert_eq!((claimed[0].offering, claimed[0].attempts), (a, 1));
            assert!(store.claim(Utc::now(), 10).await.expect("claim").is_empty());
            assert_eq!(
                store.running_job(a).await.expect("running"),
                Some(claimed[0].seq)
            );
            // Requests during the run: one follow-up, not claimable while a runs.
            for _ in 0..5 {
                store
                    .enqueue(req(a, Trigger::Change, at(-1)))
                    .await
                    .expect("enqueue");
            }
            assert_eq!(store.depth().await.expect("depth"), 3, "{engine}");
            assert!(store.claim(Utc::now(), 10).await.expect("claim").is_empty());
            // The next due time ignores the running offering's follow-up.
            assert!(
                store.next_due().await.expect("due") > Some(at(30)),
                "{engine}"
            );
            store
                .finish(&claimed[0], Some(at(900)))
                .await
                .expect("finish");
            let follow = store.claim(Utc::now(), 10).await.expect("claim");
            assert_eq!(follow.len(), 1, "{engine}");
            assert_eq!((follow[0].offering, follow[0].attempts), (a, 1));
            assert_ne!(follow[0].seq, claimed[0].seq);
            // Finishing the follow-up leaves a's next periodic job.
            store
                .finish(&follow[0], Some(at(900)))
                .await
                .expect("finish");
            let jobs = store.queued_jobs(a).await.expect("jobs");
            assert_eq!(jobs.len(), 1, "{engine}");
            assert_eq!(jobs[0].trigger, Trigger::Periodic);
            assert!(jobs[0].due > at(800));
            // A local change brings that periodic job forward instead of adding one.
            store
                .enqueue(req(a, Trigger::Change, at(1)))
                .await
                .expect("enqueue");
            let jobs = store.queued_jobs(a).await.expect("jobs");
            assert_eq!(
                (jobs.len(), jobs[0].trigger),
                (1, Trigger::Change),
                "{engine}"
            );
            assert!(jobs[0].due < at(5));
        }
    }

    #[tokio::test]
    async fn a_claim_by_hand_waits_for_a_running_job_and_keeps_the_scheduler_off_the_offering() {
        let (_dir, stores) = engines(&StoreOptions::default()).await;
        for store in stores {
            let engine = store.engine().as_str();
            let (a, b) = (Id::new_v4(), Id::new_v4());
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            let running = store.claim(Utc::now(), 10).await.expect("claim");
            assert_eq!(running.len(), 1, "{engine}");
            // The scheduler runs a: no claim by hand.
            assert!(
                store
                    .claim_offering(a, Utc::now())
                    .await
                    .expect("claim")
                    .is_none(),
                "{engine}"
            );
            // b is free: claimed by hand, and then nothing of b is claimed by the
            // scheduler, due or not; its pending job stays queued.
            let by_hand = store
                .claim_offering(b, Utc::now())
                .await
                .expect("claim")
                .expect("b is free");
            assert_eq!(
                (by_hand.offering, by_hand.kind, by_hand.trigger),
                (b, JobKind::Sync, Trigger::Action),
                "{engine}"
            );
            assert_eq!(
                store.running_job(b).await.expect("running"),
                Some(by_hand.seq)
            );
            assert!(store
                .claim_offering(b, Utc::now())
                .await
                .expect("claim")
                .is_none());
            store
                .enqueue(req(b, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            assert!(
                store.claim(Utc::now(), 10).await.expect("claim").is_empty(),
                "{engine}"
            );
            store.finish(&by_hand, None).await.expect("finish");
            let jobs = store.queued_jobs(b).await.expect("jobs");
            assert_eq!(
                (jobs.len(), jobs[0].trigger),
                (1, Trigger::Change),
                "{engine}"
            );
            let next = store.claim(Utc::now(), 10).await.expect("claim");
            assert_eq!(next.len(), 1, "{engine}");
            assert_eq!(next[0].offering, b, "{engine}");
            // Once a's run ended, a can be claimed by hand.
            store.finish(&running[0], None).await.expect("finish");
            assert!(
                store
                    .claim_offering(a, Utc::now())
                    .await
                    .expect("claim")
                    .is_some(),
                "{engine}"
            );
        }
    }

    #[tokio::test]
    async fn a_claim_by_hand_whose_process_died_frees_the_offering_when_its_lease_ends() {
        let url = testing::database().await;
        let opts = StoreOptions::default();
        let lease = Duration::from_millis(300);
        let dead = replica(&url, &opts, lease).await;
        let other = replica(&url, &opts, lease).await;
        let a = Id::new_v4();
        let held = dead
            .claim_offering(a, Utc::now())
            .await
            .expect("claim")
            .expect("free");
        assert!(other
            .claim_offering(a, Utc::now())
            .await
            .expect("claim")
            .is_none());
        drop(dead);
        // Never renewed: after the lease, another process's claim by hand frees the
        // job (pending again) and takes the offering.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mine = loop {
            if let Some(j) = other.claim_offering(a, Utc::now()).await.expect("claim") {
                break j;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lease never ended"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_ne!(mine.seq, held.seq);
        // The dead run is pending again (a scheduler repeats it once the offering is
        // free).
        let jobs = other.queued_jobs(a).await.expect("jobs");
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!((jobs[0].seq, jobs[1].seq), (mine.seq, held.seq));
        other.finish(&mine, None).await.expect("finish");
        let again = other.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].seq, held.seq);
    }

    #[tokio::test]
    async fn a_held_job_waits_for_its_hold_unless_someone_asks() {
        let (_dir, stores) = engines(&StoreOptions::default()).await;
        for store in stores {
            let engine = store.engine().as_str();
            let a = Id::new_v4();
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            let job = store.claim(Utc::now(), 1).await.expect("claim").remove(0);
            store.reschedule(&job, at(600)).await.expect("reschedule");
            let held = store.queued_jobs(a).await.expect("jobs").remove(0);
            assert_eq!(
                (held.seq, held.attempts, held.trigger),
                (job.seq, 1, Trigger::Change),
                "{engine}"
            );
            assert_eq!(held.hold_until, Some(held.due));
            // Changes and pushes do not bring it forward...
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            store
                .enqueue(req(a, Trigger::Remote, at(-1)))
                .await
                .expect("enqueue");
            assert!(store.claim(Utc::now(), 1).await.expect("claim").is_empty());
            assert_eq!(
                store.queued_jobs(a).await.expect("jobs"),
                vec![held],
                "{engine}"
            );
            // ...an explicit action does, and the attempts go on counting.
            store
                .enqueue(req(a, Trigger::Action, Utc::now()))
                .await
                .expect("enqueue");
            let again = store.claim(Utc::now(), 1).await.expect("claim").remove(0);
            assert_eq!(
                (again.seq, again.attempts, again.hold_until),
                (job.seq, 2, None),
                "{engine}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_run_with_a_follow_up_leaves_one_held_job() {
        let (_dir, stores) = engines(&StoreOptions::default()).await;
        for store in stores {
            let engine = store.engine().as_str();
            let a = Id::new_v4();
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            let job = store.claim(Utc::now(), 1).await.expect("claim").remove(0);
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            store.reschedule(&job, at(300)).await.expect("reschedule");
            let jobs = store.queued_jobs(a).await.expect("jobs");
            assert_eq!(jobs.len(), 1, "{engine}");
            assert!(jobs[0].due > at(200));
            assert_eq!(jobs[0].attempts, 1);
            // Neither finish nor reschedule touches a job that is not running.
            store.finish(&job, None).await.expect("finish");
            assert_eq!(store.queued_jobs(a).await.expect("jobs"), jobs, "{engine}");
        }
    }

    #[tokio::test]
    async fn jobs_survive_a_restart_and_running_ones_are_pending_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let (claimed, pending) = {
            let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            store
                .enqueue(req(b, Trigger::Periodic, at(900)))
                .await
                .expect("enqueue");
            let claimed = store.claim(Utc::now(), 1).await.expect("claim").remove(0);
            // A follow-up queued during the run that never ended.
            store
                .enqueue(req(a, Trigger::Change, at(-1)))
                .await
                .expect("enqueue");
            let pending = store.queued_jobs(b).await.expect("jobs");
            (claimed, pending)
        };
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        // a's interrupted run and its follow-up are one pending job again; b is as it was.
        let jobs = store.queued_jobs(a).await.expect("jobs");
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].seq, jobs[0].attempts), (claimed.seq, 1));
        assert_eq!(store.queued_jobs(b).await.expect("jobs"), pending);
        assert_eq!(store.depth().await.expect("depth"), 2);
        let again = store.claim(Utc::now(), 5).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].offering, again[0].attempts), (a, 2));
        drop(store);
        // The merge was written: a third start sees the same.
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        assert_eq!(store.depth().await.expect("depth"), 2);
    }

    /// Claims on `store` until it takes a job (the lease of another replica ends).
    async fn claim_when_free(store: &Store) -> Vec<Job> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = store.claim(Utc::now(), 5).await.expect("claim");
            if !got.is_empty() {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never ended"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_replica_that_stops_renewing_loses_its_job_to_another_which_merges_the_follow_up() {
        let url = testing::database().await;
        let opts = StoreOptions::default();
        let lease = Duration::from_millis(1500);
        let (dead, live) = (
            replica(&url, &opts, lease).await,
            replica(&url, &opts, lease).await,
        );
        let a = Id::new_v4();
        dead.enqueue(req(a, Trigger::Change, at(-1)))
            .await
            .expect("enqueue");
        let job = dead.claim(Utc::now(), 5).await.expect("claim").remove(0);
        // While the lease runs, the other replica takes nothing; a renewal keeps it.
        assert!(live.claim(Utc::now(), 5).await.expect("claim").is_empty());
        assert!(dead.renew(&job).await.expect("renew"));
        // A follow-up queued during the run, then the replica goes silent.
        live.enqueue(req(a, Trigger::Change, at(-1)))
            .await
            .expect("enqueue");
        assert_eq!(live.depth().await.expect("depth"), 2);
        let due = live.next_due().await.expect("due").expect("a lease ends");
        assert!(
            due <= at(2),
            "the other replica wakes when the lease ends: {due}"
        );
        let taken = claim_when_free(&live).await;
        assert_eq!(taken.len(), 1);
        // The interrupted job and its follow-up are one job, run once more.
        assert_eq!((taken[0].seq, taken[0].attempts), (job.seq, 2));
        assert_eq!(live.depth().await.expect("depth"), 1);
        // The replica that lost it cannot renew, finish or put it back.
        assert!(!dead.renew(&job).await.expect("renew"));
        dead.finish(&job, None).await.expect("finish");
        dead.reschedule(&job, at(600)).await.expect("reschedule");
        assert_eq!(live.running_job(a).await.expect("running"), Some(job.seq));
        assert!(live.renew(&taken[0]).await.expect("renew"));
        live.finish(&taken[0], None).await.expect("finish");
        assert_eq!(live.depth().await.expect("depth"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_claiming_at_once_never_run_one_offering_twice() {
        let url = testing::database().await;
        let opts = StoreOptions::default();
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(std::sync::Arc::new(
                replica(&url, &opts, Duration::from_secs(60)).await,
            ));
        }
        // Twenty offerings with a job of every kind, all due.
        let offerings: Vec<Id> = (0..20).map(|_| Id::new_v4()).collect();
        for o in &offerings {
            for kind in [JobKind::Sync, JobKind::Share, JobKind::Unshare] {
                replicas[0]
                    .enqueue(JobRequest {
                        offering: *o,
                        kind,
                        trigger: Trigger::Action,
                        due: at(-1),
                    })
                    .await
                    .expect("enqueue");
            }
        }
        // Every replica claims and finishes as fast as it can; each claim is checked
        // against the runs in progress everywhere.
        let running: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Id>>> =
            Default::default();
        let mut tasks = Vec::new();
        for r in &replicas {
            for _ in 0..2 {
                let (r, running) = (r.clone(), running.clone());
                tasks.push(tokio::spawn(async move {
                    let mut ran = 0;
                    loop {
                        let jobs = r.claim(Utc::now(), 3).await.expect("claim");
                        if jobs.is_empty() {
                            if r.depth().await.expect("depth") == 0 {
                                return ran;
                            }
                            tokio::task::yield_now().await;
                            continue;
                        }
                        for j in &jobs {
                            assert!(
                                running.lock().expect("lock").insert(j.offering),
                                "two runs of one offering at once"
                            );
                        }
                        tokio::task::yield_now().await;
                        for j in &jobs {
                            running.lock().expect("lock").remove(&j.offering);
                            r.finish(j, None).await.expect("finish");
                            ran += 1;
                        }
                    }
                }));
            }
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("claimer");
        }
        assert_eq!(total, offerings.len() * 3, "every job ran exactly once");
    }

    #[tokio::test]
    async fn writes_that_change_a_calendar_queue_one_debounced_sync_of_its_offering() {
        let opts = StoreOptions {
            sync_debounce: Duration::from_secs(5),
            ..StoreOptions::default()
        };
        let (_dir, stores) = engines(&opts).await;
        for store in stores {
            let engine = store.engine().as_str();
            let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
            crate::import::import_file(&store, std::path::Path::new(fixture))
                .await
                .expect("import");
            let directory = store.directory().await.expect("directory");
            let mut with_bookings = Vec::new();
            let mut ids: Vec<Id> = directory.offerings.keys().copied().collect();
            ids.sort();
            for o in ids {
                if !store.offering_resources(o).await.expect("read").is_empty() {
                    with_bookings.push(o);
                }
            }
            let (with, without) = (with_bookings[0], with_bookings[1]);
            assert_eq!(
                store.depth().await.expect("depth"),
                0,
                "no calendar, no job"
            );
            with_calendar(&store, with).await;
            let change = |r: crate::domain::Resource| store.write(vec![Change::Resource(r)]);
            let before = Utc::now();
            // Renaming a booking of each offering: only the one with a calendar gets a job.
            for o in [with, without] {
                for mut r in store.offering_resources(o).await.expect("read") {
                    r.name.push_str(" (renamed)");
                    change(r).await.expect("write");
                }
            }
            let jobs = store.jobs().await.expect("jobs");
            assert_eq!(jobs.len(), 1, "{engine}: {jobs:?}");
            assert_eq!((jobs[0].offering, jobs[0].trigger), (with, Trigger::Change));
            assert!(jobs[0].due >= before + chrono::Duration::seconds(5));
            assert!(jobs[0].due <= Utc::now() + chrono::Duration::seconds(5));
            // A write that the calendar does not show queues nothing more.
            let queued = store.jobs().await.expect("jobs");
            for mut r in store.offering_resources(with).await.expect("read") {
                r.backend_id = "ext-1".into();
                change(r).await.expect("write");
            }
            assert_eq!(store.jobs().await.expect("jobs"), queued, "{engine}");
            // Renaming the offering is a change of its calendar.
            let job = store.claim(jobs[0].due, 1).await.expect("claim").remove(0);
            store.finish(&job, None).await.expect("finish");
            let mut off = directory.offerings[&with].clone();
            off.name.push_str(" (renamed)");
            store
                .write(vec![Change::Offering(off)])
                .await
                .expect("write");
            assert_eq!(
                store.queued_jobs(with).await.expect("jobs").len(),
                1,
                "{engine}"
            );
        }
    }
}
