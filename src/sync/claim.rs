//! `bookcal sync` under the scheduler's claim: a run started by hand takes the same
//! per-offering claim as a scheduled run ([`JobQueue::claim_offering`]), so on
//! PostgreSQL it never overlaps a replica's run of the same offering.
//!
//! Invariants:
//! - a claimed run holds a running job of its offering for its whole length (on
//!   PostgreSQL under a lease it renews like a scheduled run, and stops if the lease
//!   is lost anyway); no replica claims a job of the offering meanwhile;
//! - when a run of the offering holds the claim, the command waits for it to end
//!   (told once through `on_busy`), looking again on every queue notification and
//!   at least every [`POLL`]; a replica that died frees the claim when its lease ends;
//! - the claim ends whatever way the run ended (its outcome is the command's to
//!   report); the offering's pending jobs stay queued as they were;
//! - a dry run changes nothing and takes no claim.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::engine::{RunOptions, RunReport, SyncEngine, SyncError};
use crate::domain::jobs::Job;
use crate::domain::Id;
use crate::store::{JobQueue, StoreError};

/// The longest a waiting command goes without looking at the claim again.
pub const POLL: Duration = Duration::from_millis(250);

/// Claims `offering` for a run, waiting while another run holds it; `on_busy` is
/// called once, when the first attempt finds it held.
///
/// # Errors
/// Storage failure.
pub async fn claim_waiting(
    queue: &dyn JobQueue,
    offering: Id,
    on_busy: impl FnOnce(),
) -> Result<Job, StoreError> {
    let wakeup = queue.wakeup();
    let mut on_busy = Some(on_busy);
    loop {
        // Registered before looking, so a run that ends in between still wakes us.
        let notified = wakeup.notified();
        if let Some(job) = queue.claim_offering(offering, Utc::now()).await? {
            return Ok(job);
        }
        if let Some(tell) = on_busy.take() {
            tell();
        }
        tokio::select! {
            () = notified => {},
            () = tokio::time::sleep(POLL) => {},
        }
    }
}

impl SyncEngine {
    /// Syncs `offering` once under the scheduler's per-offering claim (see the module
    /// documentation); `on_busy` is called once if the run has to wait for another.
    ///
    /// # Errors
    /// What [`SyncEngine::sync_offering`] returns, a storage failure while claiming,
    /// or [`SyncError::ClaimLost`] when another process took the claim over.
    pub async fn sync_claimed(
        &self,
        offering: Id,
        opts: RunOptions,
        on_busy: impl FnOnce(),
    ) -> Result<RunReport, SyncError> {
        if opts.dry_run {
            return self.sync_offering(offering, opts).await;
        }
        let queue: Arc<dyn JobQueue> = self.store.clone();
        let job = claim_waiting(&*queue, offering, on_busy).await?;
        let result = match queue.lease() {
            None => Some(self.sync_offering(offering, opts).await),
            Some(lease) => tokio::select! {
                r = self.sync_offering(offering, opts) => Some(r),
                () = crate::scheduler::heartbeat(queue.clone(), job.clone(), lease) => None,
            },
        };
        let Some(result) = result else {
            return Err(SyncError::ClaimLost);
        };
        if let Err(e) = queue.finish(&job, None).await {
            // The run is done and reported; the job's claim ends with its lease (on
            // sled, at the next start), after which its run is repeated harmlessly.
            tracing::warn!(error = %e, offering = %offering, "cannot end the run's claim");
        }
        result
    }

    /// [`SyncEngine::sync_many`] with each run under its offering's claim
    /// ([`SyncEngine::sync_claimed`]); `on_busy` hears of each offering whose run had
    /// to wait for another.
    pub async fn sync_many_claimed(
        &self,
        targets: &[Id],
        opts: RunOptions,
        mut on_busy: impl FnMut(Id),
        mut each: impl FnMut(Id, &Result<RunReport, SyncError>),
    ) {
        for id in targets {
            let r = self.sync_claimed(*id, opts, || on_busy(*id)).await;
            each(*id, &r);
        }
    }
}
