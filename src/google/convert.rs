//! Conversions between our resource types and google-calendar3's generated ones.
//!
//! Writes send only what bookcal owns; `update` is a PUT, so a field left out is
//! cleared on Google's side (that is what we want: our copy is the truth for our
//! events). Read-only fields (`etag`, `updated`, `attendees[].self`) are never sent.

use std::collections::HashMap;

use chrono::Utc;
use google_calendar3::api;

use super::types::{Attendee, Calendar, Event, EventStatus, EventTime, Transparency};

pub(crate) fn calendar_from_api(c: api::Calendar) -> Calendar {
    Calendar {
        id: c.id.unwrap_or_default(),
        summary: c.summary.unwrap_or_default(),
        time_zone: c.time_zone,
        description: c.description,
        etag: c.etag,
    }
}

pub(crate) fn calendar_to_api(c: &Calendar) -> api::Calendar {
    api::Calendar {
        id: (!c.id.is_empty()).then(|| c.id.clone()),
        summary: Some(c.summary.clone()),
        time_zone: c.time_zone.clone(),
        description: c.description.clone(),
        ..Default::default()
    }
}

pub(crate) fn time_to_api(t: &EventTime) -> api::EventDateTime {
    match t {
        EventTime::DateTime { at, time_zone } => api::EventDateTime {
            date: None,
            date_time: Some(at.with_timezone(&Utc)),
            time_zone: time_zone.clone(),
        },
        EventTime::Date(d) => api::EventDateTime {
            date: Some(*d),
            date_time: None,
            time_zone: None,
        },
    }
}

pub(crate) fn time_from_api(t: api::EventDateTime) -> Option<EventTime> {
    match (t.date_time, t.date) {
        (Some(at), _) => Some(EventTime::DateTime {
            at: at.fixed_offset(),
            time_zone: t.time_zone,
        }),
        (None, Some(d)) => Some(EventTime::Date(d)),
        (None, None) => None,
    }
}

pub(crate) fn event_to_api(e: &Event) -> api::Event {
    let private: HashMap<String, String> = e
        .private_properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    api::Event {
        id: (!e.id.is_empty()).then(|| e.id.clone()),
        status: Some(e.status.as_str().to_owned()),
        summary: e.summary.clone(),
        description: e.description.clone(),
        location: e.location.clone(),
        start: e.start.as_ref().map(time_to_api),
        end: e.end.as_ref().map(time_to_api),
        transparency: Some(e.transparency.as_str().to_owned()),
        recurrence: (!e.recurrence.is_empty()).then(|| e.recurrence.clone()),
        recurring_event_id: e.recurring_event_id.clone(),
        original_start_time: e.original_start.as_ref().map(time_to_api),
        extended_properties: (!private.is_empty()).then_some(api::EventExtendedProperties {
            private: Some(private),
            shared: None,
        }),
        attendees: (!e.attendees.is_empty()).then(|| {
            e.attendees
                .iter()
                .map(|a| api::EventAttendee {
                    email: Some(a.email.clone()),
                    response_status: a.response_status.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        event_type: e.event_type.clone(),
        ..Default::default()
    }
}

pub(crate) fn event_from_api(e: api::Event) -> Event {
    Event {
        id: e.id.unwrap_or_default(),
        status: e
            .status
            .as_deref()
            .map(EventStatus::parse)
            .unwrap_or_default(),
        summary: e.summary,
        description: e.description,
        location: e.location,
        start: e.start.and_then(time_from_api),
        end: e.end.and_then(time_from_api),
        transparency: e
            .transparency
            .as_deref()
            .map(Transparency::parse)
            .unwrap_or_default(),
        recurrence: e.recurrence.unwrap_or_default(),
        recurring_event_id: e.recurring_event_id,
        original_start: e.original_start_time.and_then(time_from_api),
        private_properties: e
            .extended_properties
            .and_then(|p| p.private)
            .map(|p| p.into_iter().collect())
            .unwrap_or_default(),
        attendees: e
            .attendees
            .unwrap_or_default()
            .into_iter()
            .map(|a| Attendee {
                email: a.email.unwrap_or_default(),
                is_self: a.self_.unwrap_or(false),
                response_status: a.response_status,
            })
            .collect(),
        etag: e.etag,
        updated: e.updated,
        event_type: e.event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate, TimeZone};
    use std::collections::BTreeMap;

    fn sample() -> Event {
        let tz = FixedOffset::east_opt(2 * 3600).expect("offset");
        Event {
            id: "booking0123456789abcdef".into(),
            status: EventStatus::Tentative,
            summary: Some("Room".into()),
            description: Some("d".into()),
            location: Some("here".into()),
            start: Some(EventTime::DateTime {
                at: tz
                    .with_ymd_and_hms(2030, 1, 2, 10, 0, 0)
                    .single()
                    .expect("time"),
                time_zone: Some("Europe/Tallinn".into()),
            }),
            end: Some(EventTime::Date(
                NaiveDate::from_ymd_opt(2030, 1, 3).expect("date"),
            )),
            transparency: Transparency::Transparent,
            recurrence: vec!["RRULE:FREQ=DAILY;COUNT=2".into()],
            recurring_event_id: None,
            original_start: None,
            private_properties: BTreeMap::from([("bookcal".into(), "1".into())]),
            attendees: vec![],
            etag: None,
            updated: None,
            event_type: None,
        }
    }

    #[test]
    fn an_event_survives_the_round_trip_through_the_wire_json() {
        let ours = sample();
        let json = serde_json::to_value(event_to_api(&ours)).expect("json");
        assert_eq!(json["start"]["dateTime"], "2030-01-02T08:00:00Z");
        assert_eq!(json["start"]["timeZone"], "Europe/Tallinn");
        assert_eq!(json["end"]["date"], "2030-01-03");
        assert_eq!(json["transparency"], "transparent");
        assert_eq!(json["status"], "tentative");
        assert_eq!(json["extendedProperties"]["private"]["bookcal"], "1");
        let back = event_from_api(serde_json::from_value(json).expect("decode"));
        // The instant survives; the offset comes back as UTC (crate limitation).
        match (&back.start, &ours.start) {
            (Some(EventTime::DateTime { at: a, .. }), Some(EventTime::DateTime { at: b, .. })) => {
                assert_eq!(a, b)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(back.end, ours.end);
        assert_eq!(back.private_properties, ours.private_properties);
        assert_eq!(back.recurrence, ours.recurrence);
        assert_eq!(back.status, ours.status);
        assert_eq!(back.transparency, ours.transparency);
    }

    #[test]
    fn a_cancelled_tombstone_with_only_an_id_decodes() {
        let json =
            serde_json::json!({"kind": "calendar#event", "id": "abc12", "status": "cancelled"});
        let e = event_from_api(serde_json::from_value(json).expect("decode"));
        assert_eq!(e.id, "abc12");
        assert_eq!(e.status, EventStatus::Cancelled);
        assert_eq!(e.start, None);
        assert_eq!(e.transparency, Transparency::Opaque);
    }

    #[test]
    fn an_attendee_marks_self_and_response() {
        let json = serde_json::json!({"id": "abc12", "attendees": [
            {"email": "me@x", "self": true, "responseStatus": "declined"},
            {"email": "you@x"}
        ]});
        let e = event_from_api(serde_json::from_value(json).expect("decode"));
        assert_eq!(e.attendees.len(), 2);
        assert!(e.attendees[0].is_self);
        assert_eq!(e.attendees[0].response_status.as_deref(), Some("declined"));
        assert!(!e.attendees[1].is_self);
    }
}
