//! The scheduler: jobs from the calendar actions, syncs that local changes imply
//! (coalesced, durable), periodic syncs, the run guard, the daily clean-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{
    at, eventually, eventually_async, google_client, spawn_app, spawn_app_with, Options,
};
use bookcal::domain::calendar::CalendarState;
use bookcal::domain::jobs::{Job, RunOutcome, Trigger};
use bookcal::domain::{EventId, Id, ResourceState};
use bookcal::scheduler::{
    cancel_stale_requests, JobRunner, Scheduler, SchedulerOptions, SchedulerStatus,
};
use bookcal::store::{Change, Store, StoreOptions};
use bookcal::sync::RunOptions;
use serde_json::json;
use tokio_util::sync::CancellationToken;

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
    assert_eq!(app.store.jobs().await.expect("jobs").len(), 1);
    let scheduler = app.start_scheduler();
    let store = app.store.clone();
    let calendar_is = |want: fn(&bookcal::domain::calendar::OfferingCalendar) -> bool| {
        let store = store.clone();
        async move {
            store
                .calendar(room)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| want(&c))
        }
    };
    assert!(
        eventually_async(20, || async {
            calendar_is(|c| c.state == CalendarState::Ok).await
                && store.jobs().await.is_ok_and(|j| j.is_empty())
        })
        .await
    );
    let cal = store
        .calendar(room)
        .await
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
        eventually_async(20, || calendar_is(
            |c| c.public && c.state == CalendarState::Ok
        ))
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
        eventually_async(20, || calendar_is(
            |c| !c.public && c.state == CalendarState::Ok
        ))
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
async fn periodic_syncs_restore_what_someone_changed_in_google_without_anyone_pressing_sync() {
    let app = spawn_app_with(Options {
        sync_interval_secs: 1,
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora");
    let cal = first_sync(&app, room).await;
    let before = app.live_events(&cal).len();
    // A change on Google's side only: no local write queues anything for it.
    let id = app.live_events(&cal)[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let human = google_client(app.emu(), None).await;
    human.event_delete(&cal, &id).await.expect("delete");
    assert_eq!(app.live_events(&cal).len(), before - 1);
    assert!(app.store.jobs().await.expect("jobs").is_empty());
    let scheduler = app.start_scheduler();
    assert!(eventually(20, || app.live_events(&cal).len() == before).await);
    // The next periodic sync is queued (one per offering with a calendar).
    let jobs = app.store.queued_jobs(room).await.expect("jobs");
    assert!(
        jobs.iter().any(|j| j.trigger == Trigger::Periodic),
        "{jobs:?}"
    );
    scheduler.stop().await;
}

/// Runs the room's first sync directly (creating its calendar) and returns the
/// calendar id.
async fn first_sync(app: &crate::helpers::TestApp, offering: Id) -> String {
    app.engine
        .sync_offering(offering, RunOptions::default())
        .await
        .expect("first sync")
        .calendar_id
        .expect("calendar")
}

/// Calendar API requests of one method the app's emulator answered.
fn calls(app: &crate::helpers::TestApp, method: &str) -> u64 {
    app.emu()
        .controls()
        .counters()
        .get(&format!("calendar.{method}"))
        .copied()
        .unwrap_or(0)
}

/// Waits until no run is active and every job of `offering` is a periodic one.
async fn settled(app: &crate::helpers::TestApp, status: &SchedulerStatus, offering: Id) -> bool {
    let store = app.store.clone();
    eventually_async(30, || async {
        status.active_runs.load(Ordering::Relaxed) == 0
            && store
                .queued_jobs(offering)
                .await
                .is_ok_and(|jobs| jobs.iter().all(|j| j.trigger == Trigger::Periodic))
    })
    .await
}

#[tokio::test]
async fn a_burst_of_fifty_local_changes_gives_one_or_two_sync_runs_not_fifty() {
    // A debounce window that holds the whole burst on either engine on a loaded
    // machine (fifty orders, eight at a time).
    let app = spawn_app_with(Options {
        sync_debounce_ms: 3_000,
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora");
    let cal = first_sync(&app, room).await;
    let before = app.live_events(&cal).len();
    let scheduler = app.start_scheduler();
    app.emu().controls().reset_counters();
    let started = std::time::Instant::now();
    let app = Arc::new(app);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let app = app.clone();
        workers.spawn(async move {
            for i in (w..50).step_by(8) {
                let r = app
                    .post(
                        "alice",
                        "/api/marketplace-orders/",
                        app.order_body("room-aurora", &[(at(60 + i, 9), at(60 + i, 10))]),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.text);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("orders");
    }
    let burst = started.elapsed();
    assert!(eventually(30, || app.live_events(&cal).len() == before + 50).await);
    assert!(settled(&app, &scheduler.status, room).await);
    let runs = scheduler.status.runs("ok");
    assert!(
        (1..=2).contains(&runs),
        "{runs} runs (the burst took {burst:?})"
    );
    assert_eq!(calls(&app, "events.list"), runs, "one listing per run");
    assert_eq!(calls(&app, "events.insert"), 50);
    scheduler.stop().await;
}

#[tokio::test]
async fn a_change_during_a_run_gives_exactly_one_follow_up_run() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let cal = first_sync(&app, room).await;
    let before = app.live_events(&cal).len();
    // Slow Google: a run takes at least a second.
    app.emu()
        .controls()
        .set_latency(Duration::from_millis(1000));
    let scheduler = app.start_scheduler();
    let status = scheduler.status.clone();
    let sync = format!(
        "/api/booking-offerings/{}/google_calendar_sync/",
        room.hex()
    );
    assert_eq!(app.post("owner", &sync, json!({})).await.status, 200);
    assert!(eventually(10, || status.active_runs.load(Ordering::Relaxed) == 1).await);
    // Three changes while it runs (it cannot have finished: its listing alone takes
    // a second).
    for i in 0..3 {
        let r = app
            .post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("room-aurora", &[(at(80 + i, 9), at(80 + i, 10))]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(status.runs("ok"), 0, "the first run was still going");
    let jobs = app.store.queued_jobs(room).await.expect("jobs");
    assert_eq!(jobs.len(), 2, "the running job and one follow-up: {jobs:?}");
    assert_eq!(jobs[1].trigger, Trigger::Change);
    assert!(eventually(30, || app.live_events(&cal).len() == before + 3).await);
    assert!(settled(&app, &status, room).await);
    assert_eq!(status.runs("ok"), 2);
    assert!(app.store.queued_jobs(room).await.expect("jobs").is_empty());
    scheduler.stop().await;
}

#[tokio::test]
async fn a_queued_sync_survives_a_restart_and_runs_after_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions::default())
        .await
        .expect("emulator");
    let engine_on = |store: Arc<Store>, client| bookcal::sync::SyncEngine {
        store,
        source: Arc::new(bookcal::sync::SingleClient(Some(client))),
        settings: bookcal::config::SyncSettings::default(),
        share_role: bookcal::google::AclRole::Reader,
    };
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    // The engine the suite runs on: a sled directory, or a PostgreSQL database that
    // the "restarted" process connects to again.
    let url = crate::helpers::engines::default_store_url().await;
    let open = || async {
        Arc::new(match &url {
            Some(url) => Store::connect(url, &StoreOptions::default(), &Default::default())
                .await
                .expect("connect"),
            None => Store::open(dir.path(), &StoreOptions::default()).expect("open"),
        })
    };
    let (room, cal, pending, event) = {
        let store = open().await;
        bookcal::import::import_file(&store, std::path::Path::new(fixture))
            .await
            .expect("import");
        let engine = engine_on(store.clone(), google_client(&emu, None).await);
        let room = store
            .all_offerings()
            .await
            .expect("read")
            .into_iter()
            .find(|o| o.slug == "room-aurora")
            .expect("room")
            .id;
        let cal = engine
            .sync_offering(room, bookcal::sync::RunOptions::default())
            .await
            .expect("first sync")
            .calendar_id
            .expect("calendar");
        // Accept the room's pending booking: the write queues a sync of the room.
        let pending = store
            .offering_resources(room)
            .await
            .expect("read")
            .into_iter()
            .find(|r| r.state == ResourceState::Creating)
            .expect("a pending booking")
            .id;
        let mut r = store
            .resource(pending)
            .await
            .expect("read")
            .expect("resource");
        let event = EventId::for_backend_id(&r.slots[0].backend_id).to_string();
        r.state = ResourceState::Ok;
        store
            .write(vec![Change::Resource(r)])
            .await
            .expect("accept");
        let jobs = store.jobs().await.expect("jobs");
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!((jobs[0].offering, jobs[0].trigger), (room, Trigger::Change));
        (room, cal, pending, event)
        // The process "stops" here: the store is closed before any scheduler ran.
    };
    // Google still shows the booking as tentative.
    let status_of = |emu: &bookcal::emulator::Emulator| {
        emu.inspect()
            .events(&cal)
            .into_iter()
            .find(|e| e["id"] == event.as_str())
            .map(|e| e["status"].clone())
    };
    assert_eq!(status_of(&emu), Some(json!("tentative")));
    let store = open().await;
    let jobs = store.jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1, "the job is still queued after the restart");
    assert_eq!(jobs[0].offering, room);
    let engine = Arc::new(engine_on(store.clone(), google_client(&emu, None).await));
    let scheduler = Scheduler::new(
        engine,
        SchedulerOptions {
            interval: None,
            ..SchedulerOptions::default()
        },
    );
    let status = scheduler.status.clone();
    let stop = CancellationToken::new();
    let h = tokio::spawn(scheduler.run(stop.clone()));
    assert!(
        eventually(20, || status_of(&emu) == Some(json!("confirmed"))
            && status.runs("ok") == 1)
        .await
    );
    assert!(store.jobs().await.expect("jobs").is_empty());
    assert_eq!(
        store
            .resource(pending)
            .await
            .expect("read")
            .map(|r| r.state),
        Some(ResourceState::Ok)
    );
    stop.cancel();
    h.await.expect("scheduler stops cleanly");
}

/// Runs jobs with the real engine, except that the first run panics.
struct PanicsOnce {
    engine: Arc<bookcal::sync::SyncEngine>,
    panicked: AtomicBool,
}

#[async_trait::async_trait]
impl JobRunner for PanicsOnce {
    async fn run(&self, job: &Job) -> RunOutcome {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("a bug in a job (this panic is part of the test)");
        }
        self.engine.run(job).await
    }
}

#[tokio::test]
async fn a_panicking_job_releases_its_offering_and_is_retried_with_its_attempts_shown() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let runner = Arc::new(PanicsOnce {
        engine: app.engine.clone(),
        panicked: AtomicBool::new(false),
    });
    let scheduler = Scheduler::with_runner(
        runner,
        app.store.clone(),
        SchedulerOptions {
            interval: None,
            retry_base: Duration::from_millis(300),
            ..SchedulerOptions::default()
        },
    );
    let status = scheduler.status.clone();
    let stop = CancellationToken::new();
    let h = tokio::spawn(scheduler.run(stop.clone()));
    let offering = format!("/api/booking-offerings/{}/", room.hex());
    let sync = format!("{offering}google_calendar_sync/");
    assert_eq!(app.post("owner", &sync, json!({})).await.status, 200);
    assert!(eventually(10, || status.runs("panicked") == 1).await);
    // Released: no run is counted as active, and the job waits for its retry with the
    // attempt it used, as the offering shows.
    assert_eq!(status.active_runs.load(Ordering::Relaxed), 0);
    let jobs = app.get("owner", &offering).await.body["googlecalendar"]["jobs"].clone();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(
        (
            &jobs[0]["kind"],
            &jobs[0]["trigger"],
            &jobs[0]["attempts"],
            &jobs[0]["running"]
        ),
        (&json!("sync"), &json!("action"), &json!(1), &json!(false))
    );
    // The retry runs (its second attempt) and the calendar is made.
    assert!(eventually(20, || status.runs("ok") == 1).await);
    let cal = app
        .store
        .calendar(room)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("the retry created the calendar");
    assert_eq!(app.live_events(&cal).len(), 3);
    // The offering is free for the next job.
    assert_eq!(app.post("owner", &sync, json!({})).await.status, 200);
    assert!(eventually(20, || status.runs("ok") == 2).await);
    assert_eq!(status.runs("panicked"), 1);
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
        cancel_stale_requests(&app.store, chrono::Utc::now())
            .await
            .expect("run"),
        0
    );
    // A year from now every demo slot has started.
    let later = chrono::Utc::now() + chrono::Duration::days(365);
    assert_eq!(
        cancel_stale_requests(&app.store, later).await.expect("run"),
        2
    );
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
