//! The scheduler: jobs from the calendar actions, periodic syncs, the daily clean-up.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{eventually, spawn_app, sync_env};
use bookcal::domain::calendar::CalendarState;
use bookcal::scheduler::{cancel_stale_requests, Scheduler, SchedulerOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn start(
    app: &crate::helpers::TestApp,
    env: crate::helpers::SyncEnv,
    interval: Option<Duration>,
) -> (
    crate::helpers::SyncEnv,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let engine = Arc::new(bookcal::sync::SyncEngine {
        store: env.engine.store.clone(),
        source: env.engine.source.clone(),
        settings: env.engine.settings.clone(),
        share_role: env.engine.share_role,
    });
    let s = Scheduler::new(
        engine,
        app.jobs_ready.clone(),
        SchedulerOptions {
            interval,
            ..SchedulerOptions::default()
        },
    );
    let stop = CancellationToken::new();
    let h = tokio::spawn(s.run(stop.clone()));
    (env, stop, h)
}

#[tokio::test]
async fn calendar_actions_enqueue_durable_jobs_that_the_scheduler_runs() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
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
    let (env, stop, h) = start(&app, env, None);
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
    assert_eq!(env.live_events(&cal).len(), 3);

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
    assert!(env
        .emu
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
    assert!(!env
        .emu
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
    stop.cancel();
    h.await.expect("scheduler stops cleanly");
}

#[tokio::test]
async fn periodic_syncs_pick_up_changes_without_anyone_pressing_sync() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app
        .store
        .calendar(room)
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("id");
    let (env, stop, h) = start(&app, env, Some(Duration::from_millis(50)));
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
        eventually(20, || env
            .live_events(&cal)
            .iter()
            .all(|e| e["status"] == "confirmed"))
        .await
    );
    stop.cancel();
    h.await.expect("scheduler stops cleanly");
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
