//! Google push notifications end to end: the service keeps a watch channel on each
//! offering calendar, the emulator delivers as Google does, and the webhook turns
//! deliveries into syncs.

use std::sync::Arc;

use bookcal::domain::calendar::CalendarState;
use bookcal::domain::Id;
use bookcal::google::{CalendarApi, Event, EventTime};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::helpers::{at, eventually, google_client, spawn_app_with, Options, TestApp};

/// Creates the offering's calendar through the API and waits until the service has
/// a watch channel on it; returns the calendar id.
async fn calendar_with_channel(app: &TestApp, offering: Id) -> String {
    let r = app
        .post(
            "owner",
            &format!(
                "/api/booking-offerings/{}/google_calendar_sync/",
                offering.hex()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let store = app.store.clone();
    assert!(
        eventually(30, || store.calendar(offering).ok().flatten().is_some_and(
            |c| c.state == CalendarState::Ok && c.calendar_id.is_some()
        ))
        .await,
        "the calendar is created"
    );
    let cal = store
        .calendar(offering)
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id");
    let push = app.emu().push();
    let watched = cal.clone();
    assert!(
        eventually(30, || push
            .channels()
            .iter()
            .any(|c| c.calendar_id == watched)
            && store
                .push_state(offering)
                .ok()
                .flatten()
                .is_some_and(|s| s.channel.is_some()))
        .await,
        "a watch channel is opened on the new calendar"
    );
    cal
}

/// The service with push on (the emulator delivers to it) and no periodic syncs.
async fn push_app() -> TestApp {
    spawn_app_with(Options {
        push: true,
        ..Options::default()
    })
    .await
}

fn timed(id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
    let t = |at: DateTime<Utc>| EventTime::DateTime {
        at: at.fixed_offset(),
        time_zone: None,
    };
    Event {
        id: id.into(),
        summary: Some("Maintenance".into()),
        start: Some(t(start)),
        end: Some(t(end)),
        ..Event::default()
    }
}

/// Someone editing the calendar in Google (same account as the service).
async fn human(app: &TestApp) -> Arc<dyn CalendarApi> {
    google_client(app.emu(), None).await
}

#[tokio::test]
async fn an_external_event_blocks_its_time_by_push_without_a_periodic_run() {
    // No periodic syncs at all: only a push can bring the event in.
    let app = push_app().await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    let (start, end) = (at(30, 9), at(30, 11));
    human(&app)
        .await
        .event_insert(&cal, &timed("e0push1", start, end))
        .await
        .expect("insert");
    let store = app.store.clone();
    assert!(
        eventually(30, || store
            .busy_slots(room)
            .map(|b| b.iter().any(|s| s.start == start && s.end == end))
            .unwrap_or(false))
        .await,
        "the pushed change blocks the time"
    );
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(30, 10), at(30, 12))]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("is not available."), "{}", r.text);
    let state = store.push_state(room).expect("read").expect("state");
    assert!(state.received >= 1, "{state:?}");
    assert!(state.ignored >= 1, "the sync message is ignored: {state:?}");
}
