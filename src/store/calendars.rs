//! Typed access to the calendar records and the job queue (versioned JSON in the
//! `calendars` and `jobs` trees).

use serde::{Deserialize, Serialize};

use super::sync_state::Kind;
use super::{decode, encode, Change, Store, StoreError};
use crate::domain::calendar::{Job, OfferingCalendar};
use crate::domain::Id;

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum CalendarRecord {
    #[serde(rename = "1")]
    V1(OfferingCalendar),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum JobRecord {
    #[serde(rename = "1")]
    V1(Job),
}

impl Store {
    /// The calendar record of an offering, if any action or sync created one.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendar(&self, offering: Id) -> Result<Option<OfferingCalendar>, StoreError> {
        self.sync_get(Kind::Calendars, offering.as_bytes())?
            .map(|v| decode::<CalendarRecord>("calendars", &v).map(|CalendarRecord::V1(c)| c))
            .transpose()
    }

    /// Every calendar record.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendars(&self) -> Result<Vec<OfferingCalendar>, StoreError> {
        self.sync_scan(Kind::Calendars, &[])?
            .into_iter()
            .map(|(_, v)| decode::<CalendarRecord>("calendars", &v).map(|CalendarRecord::V1(c)| c))
            .collect()
    }

    /// The change that writes a calendar record (to combine with others).
    ///
    /// # Errors
    /// The record cannot be encoded.
    pub fn calendar_change(cal: &OfferingCalendar) -> Result<Change, StoreError> {
        Ok(Change::SyncState(
            Kind::Calendars,
            cal.offering.as_bytes().to_vec(),
            Some(encode(&CalendarRecord::V1(cal.clone()))?),
        ))
    }

    /// The change that enqueues a job.
    ///
    /// # Errors
    /// The record cannot be encoded.
    pub fn job_change(job: &Job) -> Result<Change, StoreError> {
        Ok(Change::SyncState(
            Kind::Jobs,
            job.seq.to_be_bytes().to_vec(),
            Some(encode(&JobRecord::V1(job.clone()))?),
        ))
    }

    /// The change that removes a finished job.
    pub fn job_done_change(seq: u64) -> Change {
        Change::SyncState(Kind::Jobs, seq.to_be_bytes().to_vec(), None)
    }

    /// Queued jobs in order.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.sync_scan(Kind::Jobs, &[])?
            .into_iter()
            .map(|(_, v)| decode::<JobRecord>("jobs", &v).map(|JobRecord::V1(j)| j))
            .collect()
    }
}
