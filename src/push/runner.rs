//! The scheduler's job runner with push in mind: it runs the sync engine, then lets
//! the channel upkeep look (a run may have created the calendar a channel should
//! watch, or shared or unshared it), and it tells the scheduler to poll an offering with a healthy channel
//! less often.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::PushService;
use crate::domain::jobs::{Job, JobKind, RunOutcome};
use crate::domain::Id;
use crate::scheduler::JobRunner;
use crate::sync::SyncEngine;

/// Runs jobs with the engine and keeps push informed.
pub struct PushRunner {
    engine: Arc<SyncEngine>,
    push: Arc<PushService>,
}

impl PushRunner {
    pub fn new(engine: Arc<SyncEngine>, push: Arc<PushService>) -> Self {
        PushRunner { engine, push }
    }
}

#[async_trait]
impl JobRunner for PushRunner {
    async fn run(&self, job: &Job) -> RunOutcome {
        let outcome = self.engine.run(job).await;
        // Only a share or unshare done at Google changes what push watches; one
        // deferred or failed leaves the channel as it is.
        let unshared = match (job.kind, &outcome) {
            (JobKind::Share, RunOutcome::Done) => Some(false),
            (JobKind::Unshare, RunOutcome::Done) => Some(true),
            _ => None,
        };
        match unshared {
            Some(u) => {
                if let Err(e) = self.push.set_unshared(job.offering, u).await {
                    tracing::error!(offering = %job.offering, error = %e, "cannot record the calendar's sharing for push");
                }
            }
            None => self.push.poke(),
        }
        outcome
    }

    fn interval_for(&self, offering: Id) -> Option<Duration> {
        self.push.poll_interval(offering)
    }
}
