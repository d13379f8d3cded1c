//! Typed access to the Google side of the store: calendar records (the job queue is
//! in [`super::jobs`]), the slot mapping and the external events of each offering's calendar.

use std::collections::BTreeMap;

use super::records::{CalendarRecord, ExternalsRecord, MappedRecord};
use super::tree::Tree;
use super::{decode, Change, Store, StoreError};
use crate::domain::calendar::{ExternalEvent, MappedEvent, OfferingCalendar};
use crate::domain::Id;

/// The slot-mapping key: offering id ++ slot backend id.
pub(super) fn slot_key(offering: Id, backend_id: &str) -> Vec<u8> {
    let mut k = offering.as_bytes().to_vec();
    k.extend_from_slice(backend_id.as_bytes());
    k
}

impl super::sled_engine::Sled {
    /// The calendar record of an offering, if any action or sync created one.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendar(&self, offering: Id) -> Result<Option<OfferingCalendar>, StoreError> {
        self.raw_get(Tree::Calendars, offering.as_bytes())?
            .map(|v| decode::<CalendarRecord>("calendars", &v).map(OfferingCalendar::from))
            .transpose()
    }

    /// Every calendar record.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn calendars(&self) -> Result<Vec<OfferingCalendar>, StoreError> {
        self.raw_scan(Tree::Calendars, &[])?
            .into_iter()
            .map(|(_, v)| decode::<CalendarRecord>("calendars", &v).map(OfferingCalendar::from))
            .collect()
    }

    /// The slot mapping of an offering: backend_id -> what we pushed.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn mapping(&self, offering: Id) -> Result<BTreeMap<String, MappedEvent>, StoreError> {
        self.raw_scan(Tree::SlotMap, offering.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let backend_id = String::from_utf8_lossy(&k[16..]).into_owned();
                decode::<MappedRecord>("slot_map", &v).map(|m| (backend_id, MappedEvent::from(m)))
            })
            .collect()
    }

    /// The external events last seen in an offering's calendar.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn externals(&self, offering: Id) -> Result<Vec<ExternalEvent>, StoreError> {
        Ok(match self.raw_get(Tree::Externals, offering.as_bytes())? {
            Some(v) => decode::<ExternalsRecord>("externals", &v)?.events(),
            None => Vec::new(),
        })
    }

    /// An order's attachment, if one is stored (and readable).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn attachment(&self, order: Id) -> Result<Option<super::Attachment>, StoreError> {
        Ok(match self.raw_get(Tree::Attachments, order.as_bytes())? {
            Some(v) => decode::<super::records::AttachmentRecord>("attachments", &v)?.attachment(),
            None => None,
        })
    }
}

impl Store {
    /// The change that writes a calendar record (to combine with others).
    ///
    /// # Errors
    /// None today; kept fallible for its callers.
    pub fn calendar_change(cal: &OfferingCalendar) -> Result<Change, StoreError> {
        Ok(Change::Calendar(cal.clone()))
    }

    /// The change that writes (or, with `None`, removes) one mapping entry.
    ///
    /// # Errors
    /// None today; kept fallible for its callers.
    pub fn mapping_change(
        offering: Id,
        backend_id: &str,
        m: Option<&MappedEvent>,
    ) -> Result<Change, StoreError> {
        Ok(Change::Mapping {
            offering,
            backend_id: backend_id.to_string(),
            event: m.cloned(),
        })
    }

    /// The change that replaces an offering's external events.
    ///
    /// # Errors
    /// None today; kept fallible for its callers.
    pub fn externals_change(offering: Id, events: &[ExternalEvent]) -> Result<Change, StoreError> {
        Ok(Change::Externals(offering, events.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::{CalendarState, ExtTime, JobKind};

    #[test]
    fn records_written_by_the_first_layout_still_load() -> Result<(), StoreError> {
        // Exactly what the first layout (serialising the domain structs) wrote.
        let cal = r#"{"v":"1","offering":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","calendar_id":"c@group","public":true,"state":"Update Scheduled","sync_token":"t","last_success":null,"last_error":null,"last_run":{"started":null,"duration_ms":5,"created":1,"updated":0,"deleted":0,"adopted":0,"busy_slots":2,"warnings":["w"],"api_calls":3,"full_listing":true},"failures":0,"synced_name":"Room"}"#;
        let c = OfferingCalendar::from(decode::<CalendarRecord>("calendars", cal.as_bytes())?);
        assert_eq!(c.state, CalendarState::UpdateScheduled);
        assert_eq!(c.last_run.as_ref().map(|r| r.busy_slots), Some(2));
        assert_eq!(
            serde_json::to_string(&CalendarRecord::from(&c))
                .ok()
                .as_deref(),
            Some(cal),
            "written back the same"
        );
        let job = r#"{"v":"1","seq":7,"offering":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","kind":"Share","created":"2030-01-01T00:00:00Z","attempts":0}"#;
        assert_eq!(
            super::super::jobs::decode_job(&7u64.to_be_bytes(), job.as_bytes())?.kind,
            JobKind::Share
        );
        let ext = r#"{"v":"1","events":[{"id":"e","status":"confirmed","transparent":false,"declined":false,"event_type":null,"start":{"Instant":{"at":"2030-01-01T10:00:00Z","tz":"Europe/Berlin"}},"end":{"Date":"2030-01-02"},"recurrence":[],"recurring_event_id":null,"original_start":null}]}"#;
        let events = decode::<ExternalsRecord>("externals", ext.as_bytes())?.events();
        assert_eq!(
            events[0].end,
            chrono::NaiveDate::from_ymd_opt(2030, 1, 2).map(ExtTime::Date)
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_attachment_round_trips_and_an_untagged_one_loads() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let order = Id::new_v4();
        let a = super::super::Attachment {
            name: "plan.pdf".into(),
            content_type: "application/pdf".into(),
            data: vec![0, 1, 2, 255],
        };
        store
            .write(vec![Change::Attachment(order, Some(a.clone()))])
            .await?;
        assert_eq!(store.attachment(order).await?, Some(a));
        store.write(vec![Change::Attachment(order, None)]).await?;
        assert_eq!(store.attachment(order).await?, None);
        let legacy = br#"{"name":"a.txt","content_type":"text/plain","data_b64":"aGk="}"#;
        let got = decode::<super::super::records::AttachmentRecord>("attachments", legacy)?
            .attachment()
            .map(|a| a.data);
        assert_eq!(got, Some(b"hi".to_vec()));
        Ok(())
    }
}
