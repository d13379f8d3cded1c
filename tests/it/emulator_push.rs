//! The emulator's push notifications as Google documents them: `events.watch` and
//! `channels.stop` bodies and errors, and deliveries (POST, `X-Goog-*` headers, no
//! body, `sync` first, increasing message numbers), with the push switches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use bookcal::emulator::{Emulator, EmulatorOptions, PushSettingsUpdate};
use bookcal::google::{CalendarApi, Event, EventTime, GoogleErrorKind, WatchRequest};
use chrono::Utc;

use crate::helpers::{eventually, google_client};

/// One delivery as a receiver saw it: its headers (lower-case names) and body length.
#[derive(Clone, Debug)]
struct Seen {
    headers: Vec<(String, String)>,
    body_len: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook on 127.0.0.1:0 that records what it receives and answers `status`.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                log.lock().expect("log").push(Seen {
                    headers,
                    body_len: body.len(),
                });
                axum::http::StatusCode::from_u16(status).expect("status")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

fn request(id: &str, address: &str, ttl_secs: u64) -> WatchRequest {
    WatchRequest {
        id: id.into(),
        address: address.into(),
        token: "target=bookcal-test".into(),
        ttl: Duration::from_secs(ttl_secs),
    }
}

fn event(id: &str) -> Event {
    let t = |h: u32| EventTime::DateTime {
        at: (Utc::now()
            .date_naive()
            .and_hms_opt(h, 0, 0)
            .expect("time")
            .and_utc()
            + chrono::Duration::days(3))
        .fixed_offset(),
        time_zone: None,
    };
    Event {
        id: id.into(),
        summary: Some("x".into()),
        start: Some(t(9)),
        end: Some(t(10)),
        ..Event::default()
    }
}

async fn setup() -> (Emulator, Arc<dyn CalendarApi>, String) {
    let emu = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator");
    let api = google_client(&emu, None).await;
    let cal = api
        .calendar_insert("Watched", "UTC")
        .await
        .expect("calendar")
        .id;
    (emu, api, cal)
}

#[tokio::test]
async fn a_watch_answers_a_channel_and_deliveries_start_with_a_numbered_sync_message() {
    let (emu, api, cal) = setup().await;
    let (address, seen) = receiver(200).await;
    let before = Utc::now();
    let channel = api
        .events_watch(&cal, &request("chan-1", &address, 120))
        .await
        .expect("watch");
    assert_eq!(channel.id, "chan-1");
    assert!(!channel.resource_id.is_empty());
    let lifetime = channel.expiration - before;
    assert!(
        lifetime > chrono::Duration::seconds(115) && lifetime <= chrono::Duration::seconds(125),
        "the ttl param sets the expiration: {lifetime}"
    );
    assert!(eventually(10, || seen.lock().expect("log").len() == 1).await);
    api.event_insert(&cal, &event("e0aa1"))
        .await
        .expect("insert");
    api.event_delete(&cal, "e0aa1").await.expect("delete");
    assert!(eventually(10, || seen.lock().expect("log").len() == 3).await);
    let mut log = seen.lock().expect("log").clone();
    log.sort_by_key(|s| {
        s.header("x-goog-message-number")
            .and_then(|n| n.parse::<u64>().ok())
    });
    let states: Vec<(&str, &str)> = log
        .iter()
        .map(|s| {
            (
                s.header("x-goog-message-number").unwrap_or(""),
                s.header("x-goog-resource-state").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![("1", "sync"), ("2", "exists"), ("3", "exists")]
    );
    for s in &log {
        assert_eq!(s.body_len, 0, "deliveries have no body");
        assert_eq!(s.header("x-goog-channel-id"), Some("chan-1"));
        assert_eq!(
            s.header("x-goog-channel-token"),
            Some("target=bookcal-test")
        );
        assert_eq!(
            s.header("x-goog-resource-id"),
            Some(channel.resource_id.as_str())
        );
        assert!(s.header("x-goog-resource-uri").is_some_and(|u| u
            .contains("/calendar/v3/calendars/")
            && u.ends_with("/events?alt=json")));
        let expiration = s.header("x-goog-channel-expiration").expect("expiration");
        assert!(
            chrono::DateTime::parse_from_rfc2822(&expiration.replace("GMT", "+0000")).is_ok(),
            "an HTTP date: {expiration}"
        );
    }
    // Reads notify nobody.
    api.events_list(
        &cal,
        bookcal::google::ListMode::Full {
            show_deleted: false,
            time_min: None,
            single_events: false,
        },
    )
    .await
    .expect("list");
    // Stopped: no more deliveries; stopping again is 404.
    api.channel_stop("chan-1", &channel.resource_id)
        .await
        .expect("stop");
    api.event_insert(&cal, &event("e0aa2"))
        .await
        .expect("insert");
    let again = api.channel_stop("chan-1", &channel.resource_id).await;
    assert_eq!(again.map_err(|e| e.kind()), Err(GoogleErrorKind::NotFound));
    assert!(emu.push().channels().is_empty());
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[tokio::test]
async fn watch_refuses_what_google_refuses() {
    let (emu, api, cal) = setup().await;
    let (address, _seen) = receiver(200).await;
    api.events_watch(&cal, &request("dup", &address, 60))
        .await
        .expect("first");
    let reason = |r: Result<bookcal::google::WatchChannel, bookcal::google::GoogleError>| {
        r.map(|_| ())
            .map_err(|e| (e.status(), e.reason().map(str::to_owned)))
    };
    assert_eq!(
        reason(api.events_watch(&cal, &request("dup", &address, 60)).await),
        Err((Some(400), Some("channelIdNotUnique".into())))
    );
    assert_eq!(
        reason(
            api.events_watch(
                &cal,
                &request("plain", "http://bookcal.example.org/hook", 60)
            )
            .await
        ),
        Err((Some(400), Some("push.webhookUrlNotHttps".into())))
    );
    emu.push().set(PushSettingsUpdate {
        https_only: Some(true),
        ..PushSettingsUpdate::default()
    });
    assert_eq!(
        reason(
            api.events_watch(&cal, &request("local", &address, 60))
                .await
        ),
        Err((Some(400), Some("push.webhookUrlNotHttps".into())))
    );
    assert_eq!(
        reason(
            api.events_watch(&cal, &request("bad id!", "https://x.example/h", 60))
                .await
        ),
        Err((Some(400), Some("invalid".into())))
    );
    assert_eq!(
        reason(
            api.events_watch(
                "c_nope@group.calendar.google.com",
                &request("nocal", "https://x.example/h", 60)
            )
            .await
        ),
        Err((Some(404), Some("notFound".into())))
    );
    let unknown = api.channel_stop("never-opened", "r").await;
    assert_eq!(
        unknown.map_err(|e| e.kind()),
        Err(GoogleErrorKind::NotFound)
    );
    // The ttl is capped: Google grants less than asked.
    emu.push().set(PushSettingsUpdate {
        max_ttl_secs: Some(600),
        https_only: Some(false),
        ..PushSettingsUpdate::default()
    });
    let capped = api
        .events_watch(&cal, &request("capped", &address, 86_400))
        .await
        .expect("watch");
    assert!(capped.expiration <= Utc::now() + chrono::Duration::seconds(601));
}

#[tokio::test]
async fn push_switches_drop_duplicate_and_end_channels_early() {
    let (emu, api, cal) = setup().await;
    let (address, seen) = receiver(200).await;
    let push = emu.push();
    push.set(PushSettingsUpdate {
        duplicate_rate: Some(1.0),
        ..PushSettingsUpdate::default()
    });
    api.events_watch(&cal, &request("twice", &address, 600))
        .await
        .expect("watch");
    api.event_insert(&cal, &event("e0dup1"))
        .await
        .expect("insert");
    // sync once, the change twice under one number.
    assert!(eventually(10, || seen.lock().expect("log").len() == 3).await);
    let numbers: Vec<String> = seen
        .lock()
        .expect("log")
        .iter()
        .filter(|s| s.header("x-goog-resource-state") == Some("exists"))
        .filter_map(|s| s.header("x-goog-message-number").map(str::to_owned))
        .collect();
    assert_eq!(numbers, vec!["2".to_owned(), "2".to_owned()]);
    push.set(PushSettingsUpdate {
        duplicate_rate: Some(0.0),
        drop_rate: Some(1.0),
        ..PushSettingsUpdate::default()
    });
    api.event_insert(&cal, &event("e0drop1"))
        .await
        .expect("insert");
    assert_eq!(push.counters().get("dropped"), Some(&1));
    // Early expiry: the channel ends without notice.
    push.set(PushSettingsUpdate {
        drop_rate: Some(0.0),
        ..PushSettingsUpdate::default()
    });
    assert_eq!(push.expire(Some("twice")), 1);
    api.event_insert(&cal, &event("e0late1"))
        .await
        .expect("insert");
    assert!(push.channels().is_empty());
    // A receiver that fails is retried.
    let (failing, failed) = receiver(500).await;
    api.events_watch(&cal, &request("retry", &failing, 600))
        .await
        .expect("watch");
    assert!(
        eventually(10, || failed.lock().expect("log").len() >= 2).await,
        "the sync message is retried"
    );
    assert_eq!(seen.lock().expect("log").len(), 3);
}
