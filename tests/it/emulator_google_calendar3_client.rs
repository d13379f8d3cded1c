//! google-calendar3 (the crate the client adapter is built on) against the emulator:
//! its requests parse, its response types deserialize our answers, and errors come
//! back as `Error::BadRequest` carrying Google's body.
#![allow(clippy::unwrap_used)]

use bookcal::emulator::{Emulator, EmulatorOptions};
use google_calendar3::api::{Calendar, Event, EventDateTime};
use google_calendar3::CalendarHub;

const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

#[tokio::test]
async fn google_calendar3_round_trips_calendars_events_paging_and_errors() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let key = yup_oauth2::parse_service_account_key(emulator.service_account_key_json()).unwrap();
    let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key)
        .build()
        .await
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut hub = CalendarHub::new(client, auth);
    hub.root_url(emulator.root_url());
    hub.base_url(format!("{}calendar/v3/", emulator.root_url()));

    let calendar = Calendar {
        summary: Some("Room".into()),
        time_zone: Some("Europe/Berlin".into()),
        ..Calendar::default()
    };
    let (_, created) = hub
        .calendars()
        .insert(calendar)
        .add_scope(SCOPE)
        .doit()
        .await
        .unwrap();
    let cal = created.id.unwrap();

    let start = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456789Z")
        .unwrap()
        .to_utc();
    for i in 0..5 {
        let event = Event {
            id: Some(format!("gcal{i:04}")),
            summary: Some("Booking".into()),
            start: Some(EventDateTime {
                date_time: Some(start),
                ..EventDateTime::default()
            }),
            end: Some(EventDateTime {
                date_time: Some(start + chrono::Duration::hours(1)),
                ..EventDateTime::default()
            }),
            ..Event::default()
        };
        let (_, inserted) = hub
            .events()
            .insert(event, &cal)
            .send_updates("none")
            .add_scope(SCOPE)
            .doit()
            .await
            .unwrap();
        assert_eq!(inserted.status.as_deref(), Some("confirmed"));
        assert!(inserted.etag.is_some() && inserted.updated.is_some());
    }

    let mut ids = Vec::new();
    let mut page_token: Option<String> = None;
    let sync_token = loop {
        let mut call = hub.events().list(&cal).max_results(2).add_scope(SCOPE);
        if let Some(token) = &page_token {
            call = call.page_token(token);
        }
        let (_, page) = call.doit().await.unwrap();
        ids.extend(
            page.items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.id),
        );
        match page.next_page_token {
            Some(next) => page_token = Some(next),
            None => break page.next_sync_token.unwrap(),
        }
    };
    assert_eq!(ids.len(), 5);

    hub.events()
        .delete(&cal, "gcal0000")
        .add_scope(SCOPE)
        .doit()
        .await
        .unwrap();
    let (_, changes) = hub
        .events()
        .list(&cal)
        .sync_token(&sync_token)
        .add_scope(SCOPE)
        .doit()
        .await
        .unwrap();
    let changes = changes.items.unwrap_or_default();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].status.as_deref(), Some("cancelled"));

    let duplicate = Event {
        id: Some("gcal0001".into()),
        start: Some(EventDateTime {
            date_time: Some(start),
            ..EventDateTime::default()
        }),
        end: Some(EventDateTime {
            date_time: Some(start),
            ..EventDateTime::default()
        }),
        ..Event::default()
    };
    match hub
        .events()
        .insert(duplicate, &cal)
        .add_scope(SCOPE)
        .doit()
        .await
    {
        Err(google_calendar3::Error::BadRequest(body)) => {
            assert_eq!(body["error"]["code"], 409);
            assert_eq!(body["error"]["errors"][0]["reason"], "duplicate");
        }
        other => panic!("expected a 409 BadRequest, got {other:?}"),
    }
}
