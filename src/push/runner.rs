//! The scheduler's job runner with push in mind: it runs the sync engine, then lets
//! the channel upkeep look (a run may have created the calendar a channel should
//! watch), and it tells the scheduler to poll an offering with a healthy channel
//! less often.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::PushService;
use crate::domain::jobs::{Job, RunOutcome};
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
        self.push.poke();
        outcome
    }

    fn interval_for(&self, offering: Id) -> Option<Duration> {
        self.push.poll_interval(offering)
    }
}
