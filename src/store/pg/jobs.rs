//! The job queue on PostgreSQL: the `jobs` table (`migrations/0003_job_leases.sql`)
//! shared by every replica, with the same rules as the sled queue (the coalescing
//! of [`merge`], the plans of [`finish_plan`] and [`reschedule_plan`]).
//!
//! - **Enqueue** runs inside the transaction of the write that causes it (an action's
//!   calendar record, a booking change and the sync it implies commit together): the
//!   pending job of the offering and kind is locked and merged into, or inserted with
//!   `ON CONFLICT DO NOTHING` on the partial unique index of pending jobs (a racing
//!   insert wins, and the request merges into it on the next pass).
//! - **Claim** takes due pending jobs of offerings with no running job, `FOR UPDATE
//!   SKIP LOCKED` (replicas claiming at once take different jobs and never wait on
//!   each other), and sets a lease: this process's id and an expiry on the database's
//!   clock. The unique index of running jobs is the backstop: two replicas claiming
//!   two kinds of one offering at once cannot both commit (the loser claims again).
//! - **Leases**: a run renews its lease every third of it; a replica that dies stops
//!   renewing, and once the lease has ended the next claim by any replica makes the
//!   job pending again (merged with a follow-up queued meanwhile, attempts kept) and
//!   may take it. A process never takes over its own leases (its heartbeat decides
//!   about those), and finishing or putting back a job whose lease it lost changes
//!   nothing.
//! - **A run outside the scheduler** (`bookcal sync`) claims its offering the same
//!   way: a running sync job of its own under the process's lease, refused while a
//!   run of the offering holds a live lease, and refused by `jobs_running` when a
//!   replica claims the offering at the same moment. While it runs, no replica
//!   claims a job of the offering; its pending jobs stay queued.
//! - Every transaction that changes the queue notifies `bookcal_jobs`, so the
//!   schedulers of all replicas look at the queue again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::super::jobs::{absorb, finish_plan, reschedule_plan, JobPlan};
use super::super::records::JobRecord;
use super::super::{decode, encode, StoreError};
use super::notify::JOBS_CHANNEL;
use super::PgStore;
use crate::domain::jobs::{merge, Job, JobKind, JobRequest, Merge, Trigger};
use crate::domain::Id;

/// A fresh lease owner name for this process: its pid and a random part (a
/// restarted process never holds its predecessor's leases).
pub(crate) fn replica_id() -> String {
    use rand::Rng;
    format!(
        "{}-{:08x}",
        std::process::id(),
        rand::thread_rng().gen::<u32>()
    )
}

fn doc(job: &Job) -> Result<String, StoreError> {
    String::from_utf8(encode(&JobRecord::from(job))?)
        .map_err(|e| StoreError::Encode(serde::ser::Error::custom(format!("not UTF-8: {e}"))))
}

fn decode_row((seq, doc): (i64, String)) -> Result<Job, StoreError> {
    Ok(decode::<JobRecord>("jobs", doc.as_bytes())?.job(seq as u64))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The pending job of an offering and kind, locked.
async fn pending_locked(
    conn: &mut PgConnection,
    offering: Id,
    kind: JobKind,
) -> Result<Option<Job>, StoreError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, doc::text FROM jobs
         WHERE offering = $1 AND kind = $2 AND lease_owner IS NULL FOR UPDATE",
    )
    .bind(offering.0)
    .bind(kind.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(decode_row).transpose()
}

/// Writes `job` as pending (a new row, or its row made pending again).
async fn put_pending(conn: &mut PgConnection, job: &Job) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (seq, offering, kind, due, doc) VALUES ($1, $2, $3, $4, $5::jsonb)
         ON CONFLICT (seq) DO UPDATE SET offering = EXCLUDED.offering, kind = EXCLUDED.kind,
             due = EXCLUDED.due, doc = EXCLUDED.doc, lease_owner = NULL, lease_until = NULL",
    )
    .bind(job.seq as i64)
    .bind(job.offering.0)
    .bind(job.kind.as_str())
    .bind(job.due)
    .bind(doc(job)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies the removals and pending writes of a plan (removals first: a follow-up
/// that takes a finished job's place must not meet it in the pending index).
async fn write_plan(conn: &mut PgConnection, plan: &JobPlan) -> Result<(), StoreError> {
    if !plan.removed.is_empty() {
        let seqs: Vec<i64> = plan.removed.iter().map(|s| *s as i64).collect();
        sqlx::query("DELETE FROM jobs WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *conn)
            .await?;
    }
    for j in &plan.pending {
        put_pending(conn, j).await?;
    }
    Ok(())
}

async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Queues `requests` in order, each coalesced with the pending job of its offering
/// and kind, inside the caller's transaction. Returns whether anything was written.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    requests: &[JobRequest],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut wrote = false;
    for req in requests {
        loop {
            let pending = pending_locked(conn, req.offering, req.kind).await?;
            match merge(pending.as_ref(), req, 0, now) {
                Merge::Keep => break,
                Merge::Update(j) => {
                    put_pending(conn, &j).await?;
                    wrote = true;
                    break;
                }
                Merge::New(mut j) => {
                    let seq: i64 = sqlx::query_scalar("SELECT nextval('ids')")
                        .fetch_one(&mut *conn)
                        .await?;
                    j.seq = seq as u64;
                    let inserted = sqlx::query(
                        "INSERT INTO jobs (seq, offering, kind, due, doc)
                         VALUES ($1, $2, $3, $4, $5::jsonb)
                         ON CONFLICT (offering, kind) WHERE lease_owner IS NULL DO NOTHING",
                    )
                    .bind(j.seq as i64)
                    .bind(j.offering.0)
                    .bind(j.kind.as_str())
                    .bind(j.due)
                    .bind(doc(&j)?)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        wrote = true;
                        break;
                    }
                    // Another transaction queued one first: merge into it.
                }
            }
        }
    }
    if wrote {
        notify(conn).await?;
    }
    Ok(wrote)
}

/// Makes `job`, locked, whose lease (held by `owner`) ended without renewal, pending
/// again: merged with the follow-up queued meanwhile (the older job is kept, as
/// after a restart on sled).
async fn free_expired(
    conn: &mut PgConnection,
    mut job: Job,
    owner: &str,
) -> Result<(), StoreError> {
    tracing::warn!(
        offering = %job.offering,
        kind = job.kind.as_str(),
        owner = %owner,
        "the lease of a running job ended without renewal; the job is free again"
    );
    let mut plan = JobPlan::default();
    if let Some(follow) = pending_locked(conn, job.offering, job.kind).await? {
        absorb(&mut job, &follow);
        plan.removed.push(follow.seq);
    }
    plan.pending.push(job);
    write_plan(conn, &plan).await
}

/// Whether a failed claim lost a race and may succeed when run again.
fn lost_race(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("23505" | "40P01" | "40001"))
        }
        _ => false,
    }
}

impl PgStore {
    /// Writes `changes` inside `tx` with the jobs they ask for and the syncs they
    /// imply (one per offering with a calendar whose events the batch changes, due
    /// after the debounce window), as the sled engine does.
    pub(crate) async fn apply(
        &self,
        conn: &mut PgConnection,
        changes: &[super::super::Change],
    ) -> Result<(), StoreError> {
        let touched = super::write::apply(conn, changes).await?;
        let now = Utc::now();
        let mut requests: Vec<JobRequest> = changes
            .iter()
            .filter_map(|c| match c {
                super::super::Change::Enqueue(r) => Some(*r),
                _ => None,
            })
            .collect();
        if !touched.is_empty() {
            let with_calendar: Vec<Uuid> = sqlx::query_scalar(
                "SELECT offering FROM calendars
                 WHERE offering = ANY($1) AND doc->>'calendar_id' IS NOT NULL ORDER BY offering",
            )
            .bind(super::read::ids(&touched))
            .fetch_all(&mut *conn)
            .await?;
            let due = chrono::Duration::from_std(self.sync_debounce)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now);
            requests.extend(with_calendar.into_iter().map(|o| JobRequest {
                offering: Id(o),
                kind: JobKind::Sync,
                trigger: Trigger::Change,
                due,
            }));
        }
        if !requests.is_empty() && enqueue(conn, &requests, now).await? {
            self.job_wakeup.notify_one();
        }
        Ok(())
    }

    /// See `JobQueue::claim`.
    pub(crate) async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.claim_once(now, limit).await {
                Err(e) if attempt < 4 && lost_race(&e) => continue,
                other => return other,
            }
        }
    }

    async fn claim_once(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Jobs whose replica stopped renewing: pending again, merged with the
        // follow-up queued meanwhile (the older job is kept, as after a restart on
        // sled).
        let expired: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, doc::text, lease_owner FROM jobs
             WHERE lease_owner IS NOT NULL AND lease_owner <> $1
               AND lease_until < clock_timestamp()
             ORDER BY seq FOR UPDATE SKIP LOCKED",
        )
        .bind(&self.job_owner)
        .fetch_all(&mut *tx)
        .await?;
        let freed = !expired.is_empty();
        for (seq, d, owner) in expired {
            free_expired(&mut tx, decode_row((seq, d))?, &owner).await?;
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, doc::text FROM jobs j
             WHERE lease_owner IS NULL AND due <= $1
               AND NOT EXISTS (SELECT 1 FROM jobs r
                               WHERE r.offering = j.offering AND r.lease_owner IS NOT NULL)
             ORDER BY due, seq LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        // At most three pending jobs (one per kind) of an offering.
        .bind(i64::try_from(limit.saturating_mul(3)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed: Vec<Job> = Vec::new();
        for row in rows {
            if claimed.len() >= limit {
                break;
            }
            let mut job = decode_row(row)?;
            if claimed.iter().any(|c| c.offering == job.offering) {
                continue;
            }
            job.attempts = job.attempts.saturating_add(1);
            sqlx::query(
                "UPDATE jobs SET doc = $2::jsonb, lease_owner = $3,
                     lease_until = clock_timestamp() + $4 * interval '1 millisecond'
                 WHERE seq = $1",
            )
            .bind(job.seq as i64)
            .bind(doc(&job)?)
            .bind(&self.job_owner)
            .bind(millis(self.job_lease))
            .execute(&mut *tx)
            .await?;
            claimed.push(job);
        }
        if freed || !claimed.is_empty() {
            if freed {
                notify(&mut tx).await?;
            }
            tx.commit().await?;
            self.committed();
        }
        Ok(claimed)
    }

    /// See `JobQueue::claim_offering`: a new running sync job of `offering` under
    /// this process's lease, unless a run of the offering holds a live lease. A run
    /// whose lease ended is freed first (as a claim does), so a `bookcal sync` that
    /// was killed does not block the offering when no replica is running.
    pub(crate) async fn claim_offering(
        &self,
        offering: Id,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.claim_offering_once(offering, now).await {
                // A replica claimed a job of the offering at the same moment: the
                // unique index of running jobs let only one commit.
                Err(e) if attempt < 4 && lost_race(&e) => continue,
                other => return other,
            }
        }
    }

    async fn claim_offering_once(
        &self,
        offering: Id,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let running: Option<(i64, String, String, bool)> = sqlx::query_as(
            "SELECT seq, doc::text, lease_owner, lease_until < clock_timestamp() FROM jobs
             WHERE offering = $1 AND lease_owner IS NOT NULL FOR UPDATE",
        )
        .bind(offering.0)
        .fetch_optional(&mut *tx)
        .await?;
        let mut freed = false;
        if let Some((seq, d, owner, ended)) = running {
            if !ended || owner == self.job_owner {
                return Ok(None);
            }
            free_expired(&mut tx, decode_row((seq, d))?, &owner).await?;
            freed = true;
        }
        let seq: i64 = sqlx::query_scalar("SELECT nextval('ids')")
            .fetch_one(&mut *tx)
            .await?;
        let job = Job {
            seq: seq as u64,
            offering,
            kind: JobKind::Sync,
            trigger: Trigger::Action,
            created: now,
            due: now,
            attempts: 1,
            hold_until: None,
        };
        sqlx::query(
            "INSERT INTO jobs (seq, offering, kind, due, doc, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5::jsonb, $6,
                     clock_timestamp() + $7 * interval '1 millisecond')",
        )
        .bind(seq)
        .bind(offering.0)
        .bind(JobKind::Sync.as_str())
        .bind(now)
        .bind(doc(&job)?)
        .bind(&self.job_owner)
        .bind(millis(self.job_lease))
        .execute(&mut *tx)
        .await?;
        if freed {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        self.committed();
        Ok(Some(job))
    }

    /// Locks `job`'s row if this process still holds its lease, with the pending
    /// follow-up of its offering and kind.
    async fn held(
        &self,
        conn: &mut PgConnection,
        job: &Job,
    ) -> Result<Option<Option<Job>>, StoreError> {
        let mine: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM jobs WHERE seq = $1 AND lease_owner = $2 FOR UPDATE",
        )
        .bind(job.seq as i64)
        .bind(&self.job_owner)
        .fetch_optional(&mut *conn)
        .await?;
        if mine.is_none() {
            tracing::warn!(offering = %job.offering, kind = job.kind.as_str(), "a job whose lease was lost ended; another replica has it");
            return Ok(None);
        }
        Ok(Some(pending_locked(conn, job.offering, job.kind).await?))
    }

    async fn end_job(
        &self,
        job: &Job,
        plan: impl Fn(Option<&Job>) -> JobPlan,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(follow) = self.held(&mut tx, job).await? else {
            return Ok(());
        };
        write_plan(&mut tx, &plan(follow.as_ref())).await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        self.committed();
        self.job_wakeup.notify_one();
        Ok(())
    }

    /// See `JobQueue::finish`.
    pub(crate) async fn finish_job(
        &self,
        job: &Job,
        periodic: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        self.end_job(job, |follow| finish_plan(job, follow, periodic, now))
            .await
    }

    /// See `JobQueue::reschedule`.
    pub(crate) async fn reschedule_job(
        &self,
        job: &Job,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.end_job(job, |follow| reschedule_plan(job, follow, at))
            .await
    }

    /// See `JobQueue::renew`. Renewing a lease that ended but that no other replica
    /// took yet is safe: a replica taking it over holds the row lock, and this update
    /// then finds another owner.
    pub(crate) async fn renew_job(&self, job: &Job) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = clock_timestamp() + $3 * interval '1 millisecond'
             WHERE seq = $1 AND lease_owner = $2",
        )
        .bind(job.seq as i64)
        .bind(&self.job_owner)
        .bind(millis(self.job_lease))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// See `JobQueue::next_due`: the earliest claimable pending job, or the earliest
    /// end of another process's lease (a job to take over if it is not renewed).
    pub(crate) async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT least(
                 (SELECT min(due) FROM jobs j
                  WHERE lease_owner IS NULL
                    AND NOT EXISTS (SELECT 1 FROM jobs r
                                    WHERE r.offering = j.offering AND r.lease_owner IS NOT NULL)),
                 (SELECT min(lease_until) FROM jobs
                  WHERE lease_owner IS NOT NULL AND lease_owner <> $1))",
        )
        .bind(&self.job_owner)
        .fetch_one(&self.pool)
        .await?;
        Ok(due)
    }

    /// See `JobQueue::depth`.
    pub(crate) async fn depth(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// See `JobQueue::calendars_without_sync`.
    pub(crate) async fn calendars_without_sync(&self) -> Result<Vec<Id>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT c.offering FROM calendars c
             WHERE c.doc->>'calendar_id' IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM jobs j
                               WHERE j.offering = c.offering AND j.kind = 'sync')
             ORDER BY c.offering",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(Id).collect())
    }

    /// Every job in sequence order, or one offering's (the running one first, then
    /// the pending ones by due time).
    pub(crate) async fn jobs(&self, offering: Option<Id>) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<(i64, String)> = match offering {
            None => {
                sqlx::query_as("SELECT seq, doc::text FROM jobs ORDER BY seq")
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(o) => {
                sqlx::query_as(
                    "SELECT seq, doc::text FROM jobs WHERE offering = $1
                     ORDER BY lease_owner IS NULL, due, seq",
                )
                .bind(o.0)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(decode_row).collect()
    }

    /// The sequence number of the offering's running job, if one runs.
    pub(crate) async fn running_job(&self, offering: Id) -> Result<Option<u64>, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM jobs WHERE offering = $1 AND lease_owner IS NOT NULL",
        )
        .bind(offering.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(seq.map(|s| s as u64))
    }
}
