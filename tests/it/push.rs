//! Google push notifications end to end: the service keeps a watch channel on each
//! offering calendar, the emulator delivers as Google does, and the webhook turns
//! deliveries into syncs.

use std::sync::Arc;

use bookcal::app::Application;
use bookcal::config::Settings;
use bookcal::domain::calendar::CalendarState;
use bookcal::domain::jobs::{JobKind, JobRequest, Trigger};
use bookcal::domain::push::PushState;
use bookcal::domain::{Id, OfferingState};
use bookcal::emulator::{Emulator, EmulatorOptions, PushSettingsUpdate};
use bookcal::google::{CalendarApi, Event, EventTime};
use bookcal::store::{Change, Store, StoreOptions};
use chrono::{DateTime, Utc};

type Span = (DateTime<Utc>, DateTime<Utc>);
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    at, eventually, eventually_async, google_client, spawn_app_with, Options, TestApp,
};

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
        eventually_async(30, || async {
            store
                .calendar(offering)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.state == CalendarState::Ok && c.calendar_id.is_some())
        })
        .await,
        "the calendar is created"
    );
    let cal = store
        .calendar(offering)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id");
    let push = app.emu().push();
    let watched = cal.clone();
    assert!(
        eventually_async(30, || async {
            push.channels().iter().any(|c| c.calendar_id == watched)
                && push_state(&store, offering)
                    .await
                    .is_some_and(|s| s.channel.is_some())
        })
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

pub(crate) fn timed(id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
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

/// Someone adds an event to the calendar in Google.
async fn insert_external(app: &TestApp, cal: &str, id: &str, (start, end): Span) {
    human(app)
        .await
        .event_insert(cal, &timed(id, start, end))
        .await
        .expect("insert");
}

/// The offering's push state as the store has it (either engine).
async fn push_state(store: &Store, offering: Id) -> Option<PushState> {
    store
        .push_state(offering)
        .await
        .expect("read the push state")
}

/// Whether the offering's busy time holds `start..end` (an external event read in).
async fn blocks(store: &Store, offering: Id, (start, end): Span) -> bool {
    store
        .busy_slots(offering)
        .await
        .expect("read the busy time")
        .iter()
        .any(|s| s.start == start && s.end == end)
}

#[tokio::test]
async fn an_external_event_blocks_its_time_by_push_without_a_periodic_run() {
    // No periodic syncs at all: only a push can bring the event in.
    let app = push_app().await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    let (start, end) = (at(30, 9), at(30, 11));
    insert_external(&app, &cal, "e0push1", (start, end)).await;
    let store = app.store.clone();
    assert!(
        eventually_async(30, || blocks(&store, room, (start, end))).await,
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
    // The channel's `sync` message (sent before the watch is answered) is counted.
    assert!(
        eventually_async(30, || async {
            push_state(&store, room)
                .await
                .is_some_and(|s| s.ignored >= 1)
        })
        .await,
        "the sync message is ignored: {:?}",
        push_state(&store, room).await
    );
    let state = push_state(&store, room).await.expect("state");
    assert!(state.received >= 1, "{state:?}");
    // The channel shows in the offering's googlecalendar and in /metrics.
    let r = app
        .get("owner", &format!("/api/booking-offerings/{}/", room.hex()))
        .await;
    let push = &r.body["googlecalendar"]["push"];
    assert_eq!(push["active"], true, "{push}");
    assert!(push["expires_at"].is_string(), "{push}");
    assert!(push["last_notification"].is_string(), "{push}");
    assert!(push["notifications_received"].as_u64() >= Some(1), "{push}");
    assert!(push["notifications_ignored"].as_u64() >= Some(1), "{push}");
    assert!(!r
        .text
        .contains(&state.channel.as_ref().expect("channel").token_hash));
    let metrics = app.metrics().await;
    assert!(metrics.contains("bookcal_push_enabled 1"), "{metrics}");
    assert!(
        metrics.contains("bookcal_push_notifications_total{outcome=\"received\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_new_channels_sync_message_sent_before_the_watch_is_answered_is_not_answered_404() {
    let app = push_app().await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    calendar_with_channel(&app, room).await;
    // Google (and the emulator) deliver the `sync` message while `events.watch` is
    // still being answered, before the service could record the channel it opened.
    let counters = app.emu().push().counters();
    assert_eq!(counters.get("status:404"), None, "{counters:?}");
    assert!(counters.get("status:200") >= Some(&1), "{counters:?}");
    let state = push_state(&app.store, room).await.expect("state");
    assert_eq!(
        state.ignored, 1,
        "the sync message is counted, not acted on"
    );
    assert_eq!(
        state.pending, None,
        "the recorded channel is no longer pending"
    );
}

#[tokio::test]
async fn the_webhook_is_counted_in_metrics_by_status_and_its_deliveries_by_outcome() {
    let app = push_app().await;
    let room = app.offering_id("room-aurora");
    let _scheduler = app.start_scheduler();
    let cal = calendar_with_channel(&app, room).await;
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&store, room)
                .await
                .is_some_and(|s| s.ignored == 1)
        })
        .await,
        "the sync message arrived"
    );
    let channel = app
        .emu()
        .push()
        .channels()
        .into_iter()
        .find(|c| c.calendar_id == cal)
        .expect("the channel");
    let token = channel.token.clone().expect("token");
    let url = format!("{}/google/notifications", app.base);
    let deliver = |token: String, number: u64| {
        app.http
            .post(&url)
            .header("X-Goog-Channel-ID", channel.id.clone())
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", number.to_string())
            .send()
    };
    let statuses = [
        deliver(token.clone(), 900).await.expect("send").status(),
        deliver(token.clone(), 900).await.expect("send").status(),
        deliver("0".repeat(64), 901).await.expect("send").status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 404]);
    let metrics = app.metrics().await;
    let figure = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let route = "bookcal_http_requests_total{method=\"POST\",route=\"/google/notifications\"";
    assert!(
        figure(&format!("{route},status=\"200\"}}")) >= 3.0,
        "{metrics}"
    );
    assert_eq!(
        figure(&format!("{route},status=\"404\"}}")),
        1.0,
        "{metrics}"
    );
    let outcome = |o: &str| {
        figure(&format!(
            "bookcal_push_notifications_total{{outcome=\"{o}\"}}"
        ))
    };
    assert_eq!(outcome("sync"), 1.0, "{metrics}");
    // (The emulator's own later messages may be numbered below 900 too.)
    assert!(outcome("duplicate") >= 1.0, "{metrics}");
    assert_eq!(outcome("rejected"), 1.0, "{metrics}");
    assert!(outcome("received") >= 1.0, "{metrics}");
    assert!(
        metrics.contains("bookcal_push_upkeep_store_failures_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_channel_google_refuses_leaves_no_pending_record_behind() {
    let app = push_app().await;
    // Google refuses the service's plain-HTTP webhook address.
    app.emu().push().set(PushSettingsUpdate {
        https_only: Some(true),
        ..PushSettingsUpdate::default()
    });
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let r = app
        .post(
            "owner",
            &format!(
                "/api/booking-offerings/{}/google_calendar_sync/",
                room.hex()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&store, room)
                .await
                .is_some_and(|s| s.failures >= 1)
        })
        .await,
        "the watch is refused"
    );
    let state = push_state(&store, room).await.expect("state");
    assert_eq!(state.channel, None);
    assert_eq!(state.pending, None, "{state:?}");
    assert_eq!(state.claim, None, "{state:?}");
}

#[tokio::test]
async fn a_dropped_notification_is_caught_by_the_safety_net_poll() {
    // Push is healthy, so the room is polled at the longer push interval (2 s here).
    let app = spawn_app_with(Options {
        push: true,
        sync_interval_secs: 1,
        push_interval_secs: 2,
        ..Options::default()
    })
    .await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    let push = app.emu().push();
    push.set(PushSettingsUpdate {
        drop_rate: Some(1.0),
        ..PushSettingsUpdate::default()
    });
    let received = push_state(&app.store, room).await.map_or(0, |s| s.received);
    let (start, end) = (at(31, 9), at(31, 11));
    insert_external(&app, &cal, "e0lost1", (start, end)).await;
    assert_eq!(push.counters().get("dropped"), Some(&1), "Google lost it");
    let store = app.store.clone();
    assert!(
        eventually_async(30, || blocks(&store, room, (start, end))).await,
        "the safety-net poll brings the change in"
    );
    let state = push_state(&store, room).await.expect("state");
    assert_eq!(state.received, received, "no notification carried it");
}

#[tokio::test]
async fn a_forged_notification_changes_nothing_and_is_answered_404() {
    let app = push_app().await;
    let scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    calendar_with_channel(&app, room).await;
    let status = scheduler.status.clone();
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            status
                .active_runs
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
                && store.queued_jobs(room).await.is_ok_and(|j| j.is_empty())
                // The channel's `sync` message arrived.
                && push_state(&store, room)
                    .await
                    .is_some_and(|s| s.ignored >= 1)
        })
        .await
    );
    let before = push_state(&store, room).await.expect("state");
    let channel = before.channel.clone().expect("channel");
    let runs = status.runs("ok");
    let url = format!("{}/google/notifications", app.base);
    let forge = |headers: Vec<(&'static str, String)>| {
        let mut req = app.http.post(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    };
    let common = |id: &str| {
        vec![
            ("X-Goog-Channel-ID", id.to_owned()),
            ("X-Goog-Resource-State", "exists".to_owned()),
            ("X-Goog-Message-Number", "99".to_owned()),
            ("X-Goog-Resource-ID", channel.resource_id.clone()),
        ]
    };
    let cases = vec![
        ("unknown channel", {
            let mut h = common("not-our-channel");
            h.push(("X-Goog-Channel-Token", "whatever".into()));
            h
        }),
        ("wrong token", {
            let mut h = common(&channel.id);
            h.push(("X-Goog-Channel-Token", "0".repeat(64)));
            h
        }),
        ("no token", common(&channel.id)),
        ("no headers at all", Vec::new()),
    ];
    for (name, headers) in cases {
        let r = forge(headers).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 404, "{name}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body, json!({"detail": "Not found."}), "{name}");
    }
    assert_eq!(push_state(&store, room).await, Some(before));
    assert!(
        store.queued_jobs(room).await.expect("jobs").is_empty(),
        "nothing queued"
    );
    assert_eq!(status.runs("ok"), runs, "nothing ran");
}

#[tokio::test]
async fn repeated_message_numbers_are_ignored() {
    let app = push_app().await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    app.emu().push().set(PushSettingsUpdate {
        duplicate_rate: Some(1.0),
        ..PushSettingsUpdate::default()
    });
    // The channel's own `sync` message counted first.
    assert!(
        eventually_async(30, || async {
            push_state(&app.store, room)
                .await
                .is_some_and(|s| s.ignored >= 1)
        })
        .await
    );
    let start = push_state(&app.store, room).await.expect("state");
    human(&app)
        .await
        .event_insert(&cal, &timed("e0bb2", at(32, 9), at(32, 10)))
        .await
        .expect("insert");
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&store, room)
                .await
                .is_some_and(|s| s.received == start.received + 1 && s.ignored == start.ignored + 1)
        })
        .await,
        "one delivery acted on, its duplicate ignored: {:?}",
        push_state(&store, room).await
    );
}

#[tokio::test]
async fn channels_are_renewed_before_they_expire_and_keep_delivering() {
    // A minute-long channel replaced three seconds into its life.
    let app = spawn_app_with(Options {
        push: true,
        push_ttl_secs: 60,
        push_renew_before_secs: 57,
        ..Options::default()
    })
    .await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    let first = push_state(&app.store, room)
        .await
        .and_then(|s| s.channel)
        .expect("channel");
    let push = app.emu().push();
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            let open = push.channels();
            let ours = push_state(&store, room).await.and_then(|s| s.channel);
            ours.is_some_and(|c| c.id != first.id && open.iter().any(|o| o.id == c.id))
                && !open.iter().any(|o| o.id == first.id)
        })
        .await,
        "a new channel replaced the first, which was stopped"
    );
    let (start, end) = (at(33, 9), at(33, 10));
    insert_external(&app, &cal, "e0cc3", (start, end)).await;
    assert!(
        eventually_async(30, || blocks(&store, room, (start, end))).await,
        "the renewed channel delivers"
    );
}

#[tokio::test]
async fn a_deleted_calendar_ends_its_channel_and_a_removed_offering_stops_it() {
    let app = push_app().await;
    let _scheduler = app.start_scheduler();
    // The calendar deleted in Google: its channel ends with a `not_exists` message.
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    human(&app)
        .await
        .calendar_delete(&cal)
        .await
        .expect("delete");
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&store, room)
                .await
                .is_some_and(|s| s.channel.is_none() && s.received >= 1)
        })
        .await,
        "the `not_exists` message ends the channel: {:?}",
        push_state(&store, room).await
    );
    assert!(app
        .emu()
        .push()
        .channels()
        .iter()
        .all(|c| c.calendar_id != cal));

    // An offering removed (archived): bookcal stops its channel.
    let other = app.offering_id("tem-2100");
    let other_cal = calendar_with_channel(&app, other).await;
    let mut offering = store
        .offering(other)
        .await
        .expect("read")
        .expect("offering");
    offering.state = OfferingState::Archived;
    store
        .write(vec![
            Change::Offering(offering),
            Change::Enqueue(JobRequest {
                offering: other,
                kind: JobKind::Sync,
                trigger: Trigger::Action,
                due: Utc::now(),
            }),
        ])
        .await
        .expect("archive");
    let push = app.emu().push();
    assert!(
        eventually_async(30, || async {
            !push.channels().iter().any(|c| c.calendar_id == other_cal)
                && store.push_state(other).await.is_ok_and(|s| s.is_none())
        })
        .await,
        "channels.stop ended the channel and the push state is gone"
    );
}

#[tokio::test]
async fn a_calendar_unshared_for_good_has_its_channel_stopped_and_polls_at_the_usual_interval() {
    // Polled every second without a channel, every hour with a healthy one.
    let app = spawn_app_with(Options {
        push: true,
        sync_interval_secs: 1,
        push_interval_secs: 3600,
        ..Options::default()
    })
    .await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    let cal = calendar_with_channel(&app, room).await;
    let store = app.store.clone();
    let calendar = || async { store.calendar(room).await.ok().flatten() };
    let push_state = || push_state(&store, room);
    let next_poll = || async {
        store.queued_jobs(room).await.ok().and_then(|jobs| {
            jobs.into_iter()
                .filter(|j| j.trigger == Trigger::Periodic)
                .map(|j| j.due)
                .min()
        })
    };
    let action = |what: &'static str| {
        let path = format!("/api/booking-offerings/{}/{what}/", room.hex());
        let app = &app;
        async move {
            let r = app.post("owner", &path, json!({})).await;
            assert_eq!(r.status, 200, "{what}: {}", r.text);
        }
    };
    action("share_google_calendar").await;
    assert!(
        eventually_async(30, || async {
            calendar()
                .await
                .is_some_and(|c| c.public && c.state == CalendarState::Ok)
        })
        .await,
        "the calendar is shared"
    );
    // Shared, the channel stays and the offering is polled at the push interval.
    let channel = app
        .emu()
        .push()
        .channels()
        .into_iter()
        .find(|c| c.calendar_id == cal)
        .expect("the channel");
    assert!(
        eventually_async(30, || async {
            next_poll()
                .await
                .is_some_and(|due| due > Utc::now() + chrono::Duration::minutes(30))
        })
        .await,
        "a healthy channel polls at the push interval: {:?}",
        store.queued_jobs(room).await
    );
    let url = format!("{}/google/notifications", app.base);
    let deliver = |number: u64| {
        app.http
            .post(&url)
            .header("X-Goog-Channel-ID", &channel.id)
            .header(
                "X-Goog-Channel-Token",
                channel.token.clone().unwrap_or_default(),
            )
            .header("X-Goog-Resource-ID", &channel.resource_id)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", number.to_string())
            .send()
    };
    let r = deliver(1_000).await.expect("send");
    assert!(
        r.status().is_success(),
        "the live channel delivers: {}",
        r.status()
    );

    action("unshare_google_calendar").await;
    let push = app.emu().push();
    assert!(
        eventually_async(30, || async {
            !push.channels().iter().any(|c| c.calendar_id == cal)
                && push_state()
                    .await
                    .is_some_and(|s| s.unshared && s.channel.is_none())
        })
        .await,
        "channels.stop ended the channel: {:?}",
        push_state().await
    );
    assert!(
        calendar()
            .await
            .is_some_and(|c| !c.public && c.calendar_id.as_deref() == Some(cal.as_str())),
        "the calendar stays, private"
    );
    let received = push_state().await.map_or(0, |s| s.received);
    let r = deliver(2_000).await.expect("send");
    assert_eq!(
        r.status().as_u16(),
        404,
        "the stopped channel is not ours any more"
    );
    assert_eq!(push_state().await.map_or(0, |s| s.received), received);
    assert!(
        eventually_async(30, || async {
            next_poll()
                .await
                .is_some_and(|due| due <= Utc::now() + chrono::Duration::seconds(30))
        })
        .await,
        "polling is back at the usual interval: {:?}",
        store.queued_jobs(room).await
    );
    // Later syncs (each followed by a look of the upkeep) do not re-open it.
    for _ in 0..2 {
        let seen = calendar().await.and_then(|c| c.last_success);
        assert!(
            eventually_async(30, || async {
                calendar().await.and_then(|c| c.last_success) > seen
            })
            .await,
            "a periodic sync ran"
        );
    }
    assert!(!push.channels().iter().any(|c| c.calendar_id == cal));
    assert!(push_state().await.is_some_and(|s| s.channel.is_none()));

    // Shared again: a channel is opened again.
    action("share_google_calendar").await;
    assert!(
        eventually_async(30, || async {
            push.channels().iter().any(|c| c.calendar_id == cal)
                && push_state()
                    .await
                    .is_some_and(|s| !s.unshared && s.channel.is_some())
        })
        .await,
        "sharing again re-opens a channel"
    );
}

#[tokio::test]
async fn a_postgresql_backed_service_keeps_its_channels_in_the_database_and_renews_them() {
    let Some(url) = crate::helpers::pg::database().await else {
        return;
    };
    // A minute-long channel replaced three seconds into its life.
    let app = spawn_app_with(Options {
        push: true,
        store_url: Some(url),
        push_ttl_secs: 60,
        push_renew_before_secs: 57,
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora");
    // The calendar created by a run of the engine, then the upkeep told to look.
    app.engine
        .sync_offering(room, bookcal::sync::RunOptions::default())
        .await
        .expect("the first sync creates the calendar");
    let cal = app
        .store
        .calendar(room)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id");
    app.push.poke();
    let push = app.emu().push();
    let store = app.store.clone();
    let channel_in_db = || {
        let store = store.clone();
        async move {
            store
                .push_state(room)
                .await
                .expect("read the push state from PostgreSQL")
                .and_then(|s| s.channel)
        }
    };
    let open_in_db = || {
        let (push, cal) = (push.clone(), cal.clone());
        let read = channel_in_db();
        async move {
            read.await.filter(|c| {
                push.channels()
                    .iter()
                    .any(|o| o.id == c.id && o.calendar_id == cal)
            })
        }
    };
    assert!(
        eventually_async(30, || async { open_in_db().await.is_some() }).await,
        "a channel is opened and recorded in PostgreSQL"
    );
    let first = open_in_db().await.expect("the channel");
    // The webhook verifies deliveries against the recorded channel: the channel's
    // `sync` message is counted as ignored in the database.
    assert!(
        eventually_async(30, || async {
            store
                .push_state(room)
                .await
                .expect("read")
                .is_some_and(|s| s.ignored >= 1)
        })
        .await,
        "the `sync` message was received and recorded"
    );
    assert!(
        eventually_async(30, || async {
            open_in_db().await.is_some_and(|c| c.id != first.id)
                && !push.channels().iter().any(|o| o.id == first.id)
        })
        .await,
        "a new channel replaced the first in the database, and the first was stopped"
    );
    assert_eq!(
        store.push_states().await.expect("scan").len(),
        1,
        "one push state per offering"
    );
}

#[tokio::test]
async fn a_notification_on_a_postgresql_backed_service_syncs_the_offering() {
    let Some(url) = crate::helpers::pg::database().await else {
        return;
    };
    let app = spawn_app_with(Options {
        push: true,
        store_url: Some(url),
        ..Options::default()
    })
    .await;
    let _scheduler = app.start_scheduler();
    let room = app.offering_id("room-aurora");
    app.engine
        .sync_offering(room, bookcal::sync::RunOptions::default())
        .await
        .expect("the first sync creates the calendar");
    let cal = app
        .store
        .calendar(room)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id");
    app.push.poke();
    let store = app.store.clone();
    assert!(
        eventually_async(30, || async {
            store
                .push_state(room)
                .await
                .expect("read")
                .is_some_and(|s| s.channel.is_some() && s.ignored >= 1)
        })
        .await,
        "a channel is open and its `sync` message arrived"
    );
    let (start, end) = (at(35, 9), at(35, 11));
    insert_external(&app, &cal, "e0pgpush1", (start, end)).await;
    assert!(
        eventually_async(30, || async {
            store
                .busy_slots(room)
                .await
                .expect("read the busy time")
                .iter()
                .any(|s| s.start == start && s.end == end)
        })
        .await,
        "the notification queued a sync in PostgreSQL and its run read the event"
    );
    assert!(
        store
            .push_state(room)
            .await
            .expect("read")
            .is_some_and(|s| s.received >= 1),
        "the notification was counted"
    );
}

/// One run of the service on `dir` (or on the database `store_url`) against `emu`
/// until the returned token is cancelled; returns its base URL, store and the handle
/// of its run.
async fn run_service(
    dir: &std::path::Path,
    emu: &Emulator,
    push: bool,
    store_url: Option<&str>,
) -> (
    String,
    Arc<Store>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), bookcal::app::AppError>>,
) {
    let key = dir.join("service-account.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key file");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.join("store"),
        store_url: store_url.map(bookcal::config::Secret::new),
        ..Settings::default()
    };
    settings.sync.interval_secs = 0;
    settings.google.root_url = emu.root_url();
    settings.google.service_account_key = Some(key);
    settings.google.requests_per_minute = 60_000;
    settings.google.push_enabled = push;
    let app = Application::build(settings).await.expect("build");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let store = app.store().clone();
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.run_until_stopped(stop.clone()));
    (base, store, stop, run)
}

#[tokio::test]
async fn a_restart_re_creates_missing_and_expired_channels() {
    let dir = tempfile::tempdir().expect("tmp");
    let emu = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    // The engine the suite runs on: the same sled directory, or the same database,
    // for every start.
    let url = crate::helpers::engines::default_store_url().await;
    // First run, push off: the room gets its calendar but no channel.
    let (base, store, stop, run) = run_service(dir.path(), &emu, false, url.as_deref()).await;
    bookcal::import::import_file(&store, std::path::Path::new(fixture))
        .await
        .expect("import");
    let owner = {
        let user = store
            .user_by_name("owner")
            .await
            .expect("read")
            .expect("owner");
        store.create_token(user.id).await.expect("token")
    };
    let room = store
        .all_offerings()
        .await
        .expect("read")
        .into_iter()
        .find(|o| o.slug == "room-aurora")
        .expect("room")
        .id;
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/api/booking-offerings/{}/google_calendar_sync/",
            room.hex()
        ))
        .header("Authorization", format!("Token {owner}"))
        .json(&json!({}))
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status().as_u16(), 200);
    let s = store.clone();
    assert!(
        eventually_async(30, || async {
            s.calendar(room)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.calendar_id.is_some() && c.state == CalendarState::Ok)
        })
        .await
    );
    let cal = store
        .calendar(room)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("id");
    assert!(emu.push().channels().is_empty());
    stop.cancel();
    run.await.expect("joined").expect("clean stop");
    drop((store, s));

    // Second run, push on: the missing channel is opened at start.
    let (_, store, stop, run) = run_service(dir.path(), &emu, true, url.as_deref()).await;
    let push = emu.push();
    assert!(
        eventually(30, || push.channels().iter().any(|c| c.calendar_id == cal)).await,
        "the missing channel is opened after the restart"
    );
    let s = store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&s, room)
                .await
                .is_some_and(|p| p.channel.is_some())
        })
        .await
    );
    let first = push_state(&store, room)
        .await
        .and_then(|p| p.channel)
        .expect("channel");
    stop.cancel();
    run.await.expect("joined").expect("clean stop");
    drop((store, s));

    // A long time down: the stored channel has expired (Google ended it meanwhile).
    {
        let store = match &url {
            Some(url) => Store::connect(url, &StoreOptions::default(), &Default::default())
                .await
                .expect("connect"),
            None => Store::open(&dir.path().join("store"), &StoreOptions::default()).expect("open"),
        };
        let mut state = push_state(&store, room).await.expect("state");
        if let Some(c) = state.channel.as_mut() {
            c.expiration = Utc::now() - chrono::Duration::hours(1);
        }
        store
            .write(vec![Store::push_change(&state)])
            .await
            .expect("write");
        assert_eq!(push.expire(Some(&first.id)), 1);
    }
    let (_, store, stop, run) = run_service(dir.path(), &emu, true, url.as_deref()).await;
    let s = store.clone();
    assert!(
        eventually_async(30, || async {
            push_state(&s, room)
                .await
                .and_then(|p| p.channel)
                .is_some_and(|c| c.id != first.id && c.expiration > Utc::now())
        })
        .await,
        "the expired channel is replaced after the restart"
    );
    let scheduler_free = Arc::new(google_client(&emu, None).await);
    let (start, end) = (at(34, 9), at(34, 10));
    scheduler_free
        .event_insert(&cal, &timed("e0afterrestart", start, end))
        .await
        .expect("insert");
    assert!(
        eventually_async(30, || blocks(&s, room, (start, end))).await,
        "the new channel delivers"
    );
    stop.cancel();
    run.await.expect("joined").expect("clean stop");
}
