//! The scheduler: jobs from the calendar actions, periodic syncs, the daily clean-up.

use crate::helpers::{eventually, spawn_app, spawn_app_with, Options};
use bookcal::domain::calendar::CalendarState;
use bookcal::scheduler::cancel_stale_requests;
use bookcal::sync::RunOptions;
use serde_json::json;

#[tokio::test]
async fn calendar_actions_enqueue_durable_jobs_that_the_scheduler_runs() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let p = |a: &str| format!("/api/booking-offerings/{}/{a}/", room.hex());
    // Queued while no scheduler runs: the job waits in the store (it survives restarts).
    assert_eq!(
        app.post("owner", &p("google_calendar_sync"), json!({}))
            .await
            .status,
        200
    );
    assert_eq!(app.store.jobs().expect("jobs").len(), 1);
    let scheduler = app.start_scheduler();
    let store = app.store.clone();
    assert!(
        eventually(20, || store
            .calendar(room)
            .ok()
            .flatten()
            .is_some_and(|c| c.state == CalendarState::Ok)
            && store.jobs().map(|j| j.is_empty()).unwrap_or(false))
        .await
    );
    let cal = store
        .calendar(room)
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("id");
    assert_eq!(app.live_events(&cal).len(), 3);

    assert_eq!(
        app.post("owner", &p("share_google_calendar"), json!({}))
            .await
            .status,
        200
    );
    assert!(
        eventually(20, || store
            .calendar(room)
            .ok()
            .flatten()
            .is_some_and(|c| c.public && c.state == CalendarState::Ok))
        .await
    );
    assert!(app
        .emu()
        .inspect()
        .acl(&cal)
        .iter()
        .any(|r| r["id"] == "default"));
    let r = app
        .post("owner", &p("share_google_calendar"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, json!(["The calendar is public already."]))
    );
    assert_eq!(
        app.post("owner", &p("unshare_google_calendar"), json!({}))
            .await
            .status,
        200
    );
    assert!(
        eventually(20, || store
            .calendar(room)
            .ok()
            .flatten()
            .is_some_and(|c| !c.public && c.state == CalendarState::Ok))
        .await
    );
    assert!(!app
        .emu()
        .inspect()
        .acl(&cal)
        .iter()
        .any(|r| r["id"] == "default"));
    let r = app
        .post("owner", &p("unshare_google_calendar"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, json!(["The calendar is private already."]))
    );
    scheduler.stop().await;
}

#[tokio::test]
async fn periodic_syncs_pick_up_changes_without_anyone_pressing_sync() {
    let app = spawn_app_with(Options {
        sync_interval_secs: 1,
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora");
    app.engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect("first sync");
    let cal = app
        .store
        .calendar(room)
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("id");
    let scheduler = app.start_scheduler();
    let pending = app
        .get(
            "owner",
            &format!(
                "/api/booking-resources/?offering_uuid={}&state=Creating",
                room.hex()
            ),
        )
        .await
        .body[0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    assert_eq!(
        app.post(
            "owner",
            &format!("/api/booking-resources/{pending}/accept/"),
            json!({})
        )
        .await
        .status,
        200
    );
    assert!(
        eventually(20, || app
            .live_events(&cal)
            .iter()
            .all(|e| e["status"] == "confirmed"))
        .await
    );
    scheduler.stop().await;
}

#[tokio::test]
async fn the_daily_task_cancels_requests_whose_slots_have_all_started() {
    let app = spawn_app().await;
    let pending = app
        .get("owner", "/api/booking-resources/?state=Creating")
        .await;
    assert_eq!(pending.body.as_array().map(Vec::len), Some(2));
    // Nothing has started yet.
    assert_eq!(
        cancel_stale_requests(&app.store, chrono::Utc::now()).expect("run"),
        0
    );
    // A year from now every demo slot has started.
    let later = chrono::Utc::now() + chrono::Duration::days(365);
    assert_eq!(cancel_stale_requests(&app.store, later).expect("run"), 2);
    assert_eq!(
        app.get("owner", "/api/booking-resources/?state=Creating")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(
        app.get("owner", "/api/marketplace-orders/?state=canceled")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // Accepted bookings are left alone.
    assert_eq!(
        app.get("owner", "/api/booking-resources/?state=OK")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
