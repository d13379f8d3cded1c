//! Typed access to the calendar records, slot mappings and external events
//! (versioned JSON in the `calendars`, `slot_map` and `externals` trees).

use serde::{Deserialize, Serialize};

use super::sync_state::Kind;
use super::{decode, encode, Change, Store, StoreError};
use std::collections::BTreeMap;

use crate::domain::calendar::{ExternalEvent, MappedEvent, OfferingCalendar};
use crate::domain::Id;

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum CalendarRecord {
    #[serde(rename = "1")]
    V1(OfferingCalendar),
}

/// Decodes a stored calendar record.
pub(crate) fn decode_calendar(bytes: &[u8]) -> Result<OfferingCalendar, StoreError> {
    decode::<CalendarRecord>("calendars", bytes).map(|CalendarRecord::V1(c)| c)
}

impl Store {
    /// The calendar record of an offering, if any action or sync created one.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendar(&self, offering: Id) -> Result<Option<OfferingCalendar>, StoreError> {
        self.sync_get(Kind::Calendars, offering.as_bytes())?
            .map(|v| decode_calendar(&v))
            .transpose()
    }

    /// Every calendar record.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendars(&self) -> Result<Vec<OfferingCalendar>, StoreError> {
        self.sync_scan(Kind::Calendars, &[])?
            .into_iter()
            .map(|(_, v)| decode_calendar(&v))
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
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum MappedRecord {
    #[serde(rename = "1")]
    V1(MappedEvent),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum ExternalsRecord {
    #[serde(rename = "1")]
    V1 { events: Vec<ExternalEvent> },
}

fn slot_key(offering: Id, backend_id: &str) -> Vec<u8> {
    let mut k = offering.as_bytes().to_vec();
    k.extend_from_slice(backend_id.as_bytes());
    k
}

impl Store {
    /// The slot mapping of an offering: backend_id -> what we pushed.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn mapping(&self, offering: Id) -> Result<BTreeMap<String, MappedEvent>, StoreError> {
        self.sync_scan(Kind::SlotMap, offering.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let backend_id = String::from_utf8_lossy(&k[16..]).into_owned();
                decode::<MappedRecord>("slot_map", &v).map(|MappedRecord::V1(m)| (backend_id, m))
            })
            .collect()
    }

    /// The change that writes (or, with `None`, removes) one mapping entry.
    ///
    /// # Errors
    /// The record cannot be encoded.
    pub fn mapping_change(
        offering: Id,
        backend_id: &str,
        m: Option<&MappedEvent>,
    ) -> Result<Change, StoreError> {
        Ok(Change::SyncState(
            Kind::SlotMap,
            slot_key(offering, backend_id),
            m.map(|m| encode(&MappedRecord::V1(m.clone())))
                .transpose()?,
        ))
    }

    /// The external events last seen in an offering's calendar.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn externals(&self, offering: Id) -> Result<Vec<ExternalEvent>, StoreError> {
        Ok(match self.sync_get(Kind::Externals, offering.as_bytes())? {
            Some(v) => match decode::<ExternalsRecord>("externals", &v)? {
                ExternalsRecord::V1 { events } => events,
            },
            None => Vec::new(),
        })
    }

    /// The change that replaces an offering's external events.
    ///
    /// # Errors
    /// The record cannot be encoded.
    pub fn externals_change(offering: Id, events: &[ExternalEvent]) -> Result<Change, StoreError> {
        Ok(Change::SyncState(
            Kind::Externals,
            offering.as_bytes().to_vec(),
            Some(encode(&ExternalsRecord::V1 {
                events: events.to_vec(),
            })?),
        ))
    }
}
