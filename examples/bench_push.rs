//! Real-time benchmark: push notifications against polling, side by side in one run.
//!
//! `cargo run --release --example bench_push [-- --samples 20 --poll-secs 20 --scale 900]`
//!
//! Two services (each with its own emulator at 100 ms latency per request and the demo
//! data set), one with push notifications, one polling only every `--poll-secs`:
//! 1. seconds from an accepted booking to its event confirmed in Google;
//! 2. seconds from an external event inserted in Google to the blocked slot in
//!    `GET /api/marketplace-bookings/{uuid}/`;
//! 3. Google requests per idle offering per day, measured in scaled time: every
//!    interval divided by `--scale` (900: a day lasts 96 s, the 900 s polling interval
//!    1 s, the 6 h safety-net interval 24 s), counted by the emulators.
//!    A channel renewal (events.watch + channels.stop) every `ttl - renew_before` (six
//!    days by default) adds 2/6 requests a day; it falls outside the scaled day and is
//!    added to the push figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bookcal::app::Application;
use bookcal::config::Settings;
use bookcal::domain::Id;
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{
    CalendarApi, ClientOptions, Credentials, Event, EventTime, GoogleCalendarClient, RateLimit,
};
use bookcal::store::Store;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One running service with its own emulator.
struct Service {
    name: &'static str,
    project: String,
    offerings: std::collections::HashMap<String, Id>,
    base: String,
    http: reqwest::Client,
    owner: String,
    alice: String,
    store: Arc<Store>,
    emu: Emulator,
    human: Arc<dyn CalendarApi>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn service(
    name: &'static str,
    push: bool,
    interval_secs: u64,
    push_interval_secs: u64,
) -> Service {
    let emu = Emulator::start(EmulatorOptions {
        latency: Duration::from_millis(100),
        ..EmulatorOptions::default()
    })
    .await
    .expect("emulator");
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("store"),
        ..Settings::default()
    };
    settings.google.root_url = emu.root_url();
    settings.google.service_account_key = Some(key);
    settings.google.push_enabled = push;
    settings.google.requests_per_minute = 60_000;
    settings.sync.interval_secs = interval_secs;
    settings.sync.push_interval_secs = push_interval_secs;
    let app = Application::build(settings).await.expect("build");
    let store = app.store().clone();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    bookcal::import::import_file(&store, std::path::Path::new(fixture))
        .await
        .expect("import");
    let directory = store.directory().await.expect("directory");
    let owner = store
        .create_token(directory.user_by_name("owner").expect("owner").id)
        .await
        .expect("token");
    let alice = store
        .create_token(directory.user_by_name("alice").expect("alice").id)
        .await
        .expect("token");
    let project = directory
        .projects
        .values()
        .find(|p| p.slug == "imaging")
        .expect("project")
        .id;
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let human = Arc::new(
        GoogleCalendarClient::builder(Credentials::ServiceAccount {
            key_json: emu.service_account_key_json(),
            subject: None,
        })
        .options(ClientOptions {
            root_url: emu.root_url(),
            rate_limit: RateLimit {
                per_minute: 600_000,
                burst: 1_000,
            },
            ..ClientOptions::default()
        })
        .build()
        .await
        .expect("client"),
    );
    let offerings = directory
        .offerings
        .values()
        .map(|o| (o.slug.clone(), o.id))
        .collect();
    Service {
        name,
        project: format!("{base}/api/projects/{}/", project.hex()),
        offerings,
        base,
        http: reqwest::Client::new(),
        owner,
        alice,
        store,
        emu,
        human,
        stop,
        _dir: dir,
    }
}

impl Service {
    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Token {token}"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    fn offering(&self, slug: &str) -> Id {
        self.offerings[slug]
    }

    /// Creates the offering's calendar (and, with push, waits for its channel).
    async fn calendar(&self, offering: Id, push: bool) -> String {
        let (status, _) = self
            .post(
                &self.owner,
                &format!(
                    "/api/booking-offerings/{}/google_calendar_sync/",
                    offering.hex()
                ),
                json!({}),
            )
            .await;
        assert_eq!(status, 200);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cal = self
                .store
                .calendar(offering)
                .await
                .expect("read")
                .filter(|c| c.last_success.is_some())
                .and_then(|c| c.calendar_id);
            let channel = self
                .store
                .push_state(offering)
                .await
                .expect("read")
                .is_some_and(|s| s.channel.is_some());
            if let Some(cal) = cal.filter(|_| channel || !push) {
                return cal;
            }
            assert!(Instant::now() < deadline, "{}: no calendar", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn requests(&self) -> u64 {
        self.emu
            .controls()
            .counters()
            .iter()
            .filter(|(k, _)| k.starts_with("calendar.") && !k.contains(':'))
            .map(|(_, v)| *v)
            .sum()
    }
}

fn day_slot(day: i64, minute: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let d = (Utc::now() + ChronoDuration::days(day)).date_naive();
    let start =
        d.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + ChronoDuration::minutes(minute);
    (start, start + ChronoDuration::minutes(20))
}

/// Seconds from the accept to the event confirmed in Google.
async fn booking_to_google(s: Arc<Service>, offering: Id, cal: String, sample: i64) -> f64 {
    let cal = cal.as_str();
    let (start, end) = day_slot(40 + sample, 8 * 60);
    let body = json!({
        "offering": format!("{}/api/marketplace-public-offerings/{}/", s.base, offering.hex()),
        "project": s.project,
        "attributes": {"name": format!("Bench {sample}"), "schedules": [{
            "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]},
    });
    let (status, order) = s.post(&s.alice, "/api/marketplace-orders/", body).await;
    assert_eq!(status, 201, "{order}");
    let resource = order["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_owned();
    let o = order["uuid"].as_str().expect("uuid").to_owned();
    s.post(
        &s.alice,
        &format!("/api/marketplace-orders/{o}/approve_by_consumer/"),
        json!({}),
    )
    .await;
    let t0 = Instant::now();
    let (status, body) = s
        .post(
            &s.owner,
            &format!("/api/booking-resources/{resource}/accept/"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let want = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    loop {
        let confirmed = s
            .emu
            .inspect()
            .events(cal)
            .iter()
            .any(|e| e["status"] == "confirmed" && same_second(&e["start"]["dateTime"], &want));
        if confirmed {
            return t0.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Seconds from an external event inserted in Google to its slot in the bookings list.
async fn google_to_blocked(s: Arc<Service>, offering: Id, cal: String, sample: i64) -> f64 {
    let cal = cal.as_str();
    let (start, end) = day_slot(120 + sample, 14 * 60);
    let t = |at: DateTime<Utc>| EventTime::DateTime {
        at: at.fixed_offset(),
        time_zone: None,
    };
    let ev = Event {
        summary: Some("External".into()),
        start: Some(t(start)),
        end: Some(t(end)),
        ..Event::default()
    };
    let want = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/api/marketplace-bookings/{}/", offering.hex());
    let t0 = Instant::now();
    s.human.event_insert(cal, &ev).await.expect("insert");
    loop {
        let list = s.get(&s.alice, &path).await;
        let blocked = list
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["busy"] == true && same_second(&b["start"], &want));
        if blocked {
            return t0.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the RFC 3339 time `v` is the instant `want` (UTC, to the second).
fn same_second(v: &Value, want: &str) -> bool {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                == want
        })
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Runs `n` samples of `f`, staggered by `gap` (so a polling service meets them at
/// every point of its interval), all at once.
async fn samples<F, Fut>(n: u64, gap: Duration, f: F) -> Vec<f64>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = f64> + Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..n {
        let fut = f(i as i64);
        let wait = gap * u32::try_from(i).unwrap_or(0);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("sample"));
    }
    out
}

#[tokio::main]
async fn main() {
    let n = arg("--samples", 20);
    let poll = arg("--poll-secs", 20);
    let scale = arg("--scale", 900).max(1);
    println!("samples {n}; polling service every {poll} s; emulators at 100 ms per request");

    // 1 and 2: latencies.
    let push = Arc::new(service("push", true, 900, 21_600).await);
    let polling = Arc::new(service("polling", false, poll, 21_600).await);
    let mut rows = Vec::new();
    for s in [&push, &polling] {
        let room = s.offering("room-aurora");
        let cal = s.calendar(room, s.name == "push").await;
        let gap = Duration::from_secs_f64(poll as f64 / n as f64);
        let mut a = samples(n, gap, |i| {
            booking_to_google(s.clone(), room, cal.clone(), i)
        })
        .await;
        let mut b = samples(n, gap, |i| {
            google_to_blocked(s.clone(), room, cal.clone(), i)
        })
        .await;
        rows.push((
            s.name,
            percentile(&mut a, 0.5),
            percentile(&mut a, 0.99),
            percentile(&mut b, 0.5),
            percentile(&mut b, 0.99),
        ));
    }
    println!("| service | booking -> Google p50 | p99 | Google -> blocked slot p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (name, a50, a99, b50, b99) in &rows {
        println!("| {name} | {a50:.2} s | {a99:.2} s | {b50:.2} s | {b99:.2} s |");
    }
    push.stop.cancel();
    polling.stop.cancel();

    // 3: requests per idle offering per day, in scaled time.
    let day = Duration::from_secs_f64(86_400.0 / scale as f64);
    let usual = (900 / scale).max(1);
    let safety = (21_600 / scale).max(1);
    let push = service("push", true, usual, safety).await;
    let polling = service("polling", false, usual, safety).await;
    let slugs = ["room-aurora", "tem-2100", "telescope"];
    for s in [&push, &polling] {
        for slug in slugs {
            let id = s.offering(slug);
            s.calendar(id, s.name == "push").await;
        }
    }
    // Let the first runs and channel set-up settle, then count one scaled day.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = (push.requests(), polling.requests());
    tokio::time::sleep(day).await;
    let per_offering = |after: u64, before: u64| (after - before) as f64 / slugs.len() as f64;
    let renewals = 2.0 / 6.0;
    let p = per_offering(push.requests(), before.0);
    let q = per_offering(polling.requests(), before.1);
    println!();
    println!(
        "scaled day: {:.1} s (scale {scale}); polling every {usual} s, safety net every {safety} s",
        day.as_secs_f64()
    );
    println!("| service | Google requests per idle offering per day |");
    println!("|---|---|");
    println!(
        "| push | {:.2} measured + {renewals:.2} renewals = {:.2} |",
        p,
        p + renewals
    );
    println!("| polling (900 s) | {q:.2} |");
    push.stop.cancel();
    polling.stop.cancel();
}
