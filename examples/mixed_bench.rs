//! Mixed-load benchmark: wrk on one offering's public feed (10,000 events) while
//! the rest of the service is busy, measured side by side in one run:
//! - idle: nothing else happens;
//! - (a) a scheduler pass over 1,000 other offerings runs (each a sync against the
//!   emulator with Google's 100 ms latency and 600/min quota, paced by the shipped
//!   client settings);
//! - (b) 10 bookings per second are written to other offerings through the API
//!   (order created by the consumer, approved by the provider: each booking reaches
//!   its offering's calendar through a coalesced sync);
//! - (c) the same, but to the feed's own offering: the churn case, where the feed must
//!   be rendered again after each write (renders, memory and threads under it).
//!
//! ```text
//! cargo build --release --bin bookcal --example mixed_bench
//! target/release/examples/mixed_bench       # needs wrk on the PATH
//! ```
//! Knobs: `BENCH_EVENTS` (10000), `BENCH_OFFERINGS` (1000), `BENCH_SECS` (10, per wrk
//! run), `BENCH_CONNS` (50), `BENCH_RATE` (10 bookings/s), `BENCH_ROUNDS` (1: the
//! three phases in turn, repeated), `BOOKCAL_BIN` (another server binary).
//!
//! Per phase, two wrk runs (`-t2 -c$CONNS -d$SECS`): plain GETs (200s, the whole feed)
//! and GETs with the feed's ETag (304s). For each: requests per second, p99, non-2xx/3xx
//! answers, the server's CPU time per request (`/proc/<pid>/stat`: steadier than req/s
//! on a shared machine, but it also counts the pass's or the writes' own work), and
//! how often the feed was rendered meanwhile (`bookcal_feed_renders_total`). The
//! server's RSS and thread count are sampled every 100 ms throughout; the table shows
//! each phase's peak.
#![forbid(unsafe_code)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bookcal::domain::Id;
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{
    AclRole, CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit, UsageLimits,
};
use bookcal::import::DataSet;
use bookcal::store::{Store, StoreOptions};
use bookcal::sync::{RunOptions, SingleClient, SyncEngine};
use chrono::{DurationRound, Utc};
use serde_json::{json, Value};
use support::{cpu_ms, memory, metric, start_server, wait_healthy};

const SALT: &str = "mixed-bench-salt";

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the data dir holds.
struct Data {
    feed_offering: Id,
    others: Vec<Id>,
    project: Id,
    consumer_token: String,
    staff_token: String,
}

/// Writes the data set: "Bench room" (public calendar record, `events` one-slot
/// bookings, UTC) and `others` offerings with one booking each whose calendars the
/// sync engine creates in the emulator (latency off while setting up).
async fn prepare(dir: &Path, emu: &Emulator, events: usize, others: usize) -> Result<Data> {
    let bookings: Vec<Value> = (0..events)
        .map(|i| {
            let day = i64::try_from(i / 16).unwrap_or(0) - 20;
            let minutes = 7 * 60 + 30 * (i % 16);
            json!({
                "name": format!("Booking {i}"), "offering": "bench-room",
                "project": "bench-project", "created_by": "alice", "state": "OK",
                "slots": [{"days": day, "at": format!("{:02}:{:02}", minutes / 60, minutes % 60), "hours": 0.5}],
            })
        })
        .chain((0..others).map(|i| {
            json!({
                "name": format!("Other booking {i}"), "offering": format!("other-{i}"),
                "project": "bench-project", "created_by": "alice", "state": "OK",
                "slots": [{"days": 2, "at": "08:00", "hours": 1}],
            })
        }))
        .collect();
    let mut offerings = vec![json!({
        "name": "Bench room", "slug": "bench-room", "customer": "bench-provider",
        "time_zone": "UTC", "location": "Northlab, Building 2, Room 2.14",
        "availability": [{"from_days": -30, "to_days": 800}],
    })];
    offerings.extend((0..others).map(|i| {
        json!({
            "name": format!("Other room {i}"), "slug": format!("other-{i}"),
            "customer": "bench-provider", "time_zone": "UTC",
            "availability": [{"from_days": -30, "to_days": 800}],
        })
    }));
    let ds = json!({
        "users": [
            {"username": "admin", "full_name": "Bench Admin", "is_staff": true},
            {"username": "owner", "full_name": "Olaf Owner", "email": "owner@example.org"},
            {"username": "alice", "full_name": "Alice Åkesson", "email": "alice@example.org"}
        ],
        "customers": [
            {"name": "Bench Provider", "slug": "bench-provider", "owners": ["owner"]},
            {"name": "Bench Client", "slug": "bench-client", "owners": ["alice"]}
        ],
        "projects": [{"name": "Bench project", "slug": "bench-project", "customer": "bench-client"}],
        "offerings": offerings,
        "bookings": bookings,
    });
    let ds: DataSet = serde_json::from_value(ds).context("data set")?;
    let store = Arc::new(Store::open(
        dir,
        &StoreOptions {
            token_salt: SALT.into(),
            ..StoreOptions::default()
        },
    )?);
    bookcal::import::import(&store, &ds, Utc::now())
        .await
        .context("import")?;
    let (feed_offering, mut others_ids, project, alice, admin) = {
        let cat = store.sled()?.read()?;
        let by_slug = |s: &str| cat.offerings.values().find(|o| o.slug == s).map(|o| o.id);
        let others_ids: Vec<Id> = (0..others)
            .filter_map(|i| by_slug(&format!("other-{i}")))
            .collect();
        (
            by_slug("bench-room").context("bench-room")?,
            others_ids,
            *cat.projects.keys().next().context("project")?,
            *cat.users_by_name.get("alice").context("alice")?,
            *cat.users_by_name.get("admin").context("admin")?,
        )
    };
    others_ids.sort();
    let cal = bookcal::domain::calendar::OfferingCalendar {
        public: true,
        ..bookcal::domain::calendar::OfferingCalendar::new(feed_offering)
    };
    store.write(vec![Store::calendar_change(&cal)?]).await?;
    // The other offerings' calendars, created and filled by the engine.
    let client: Arc<dyn CalendarApi> = Arc::new(
        GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
            .options(ClientOptions {
                root_url: emu.root_url(),
                rate_limit: RateLimit {
                    per_minute: 1_000_000,
                    burst: 1_000,
                },
                page_size: Some(2500),
                // Preparation creates the calendars all at once: no hourly budget.
                limits: UsageLimits {
                    calendars_per_hour: 0,
                    ..UsageLimits::default()
                },
                ..ClientOptions::default()
            })
            .build()
            .await?,
    );
    let engine = Arc::new(SyncEngine {
        store: store.clone(),
        source: Arc::new(SingleClient(Some(client))),
        settings: bookcal::config::SyncSettings::default(),
        share_role: AclRole::Reader,
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for id in others_ids.iter().copied() {
        let (engine, sem) = (engine.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            engine.sync_offering(id, RunOptions::default()).await
        });
    }
    while let Some(r) = set.join_next().await {
        r.context("sync task")?.context("creating a calendar")?;
    }
    let consumer_token = store.create_token(alice).await?;
    let staff_token = store.create_token(admin).await?;
    store.flush().await?;
    Ok(Data {
        feed_offering,
        others: others_ids,
        project,
        consumer_token,
        staff_token,
    })
}

/// One wrk run's figures.
#[derive(Clone, Debug, Default)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
    bad: u64,
    cpu_us: f64,
    renders: f64,
}

fn p99_ms(text: &str) -> f64 {
    let v = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("0");
    let num = |s: &str, suffix: &str| s.strip_suffix(suffix).and_then(|n| n.parse::<f64>().ok());
    num(v, "us")
        .map(|x| x / 1000.0)
        .or_else(|| num(v, "ms"))
        .or_else(|| num(v, "s").map(|x| x * 1000.0))
        .unwrap_or(f64::NAN)
}

async fn wrk(
    url: &str,
    header: Option<&str>,
    secs: usize,
    conns: usize,
    pid: u32,
    http: &reqwest::Client,
    metrics_url: &str,
) -> Result<Wrk> {
    let renders = |t: &str| metric(t, "bookcal_feed_renders_total", "");
    let r0 = renders(&http.get(metrics_url).send().await?.text().await?);
    let cpu0 = cpu_ms(pid)?;
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().await.context("running wrk")?;
    let cpu = cpu_ms(pid)? - cpu0;
    let r1 = renders(&http.get(metrics_url).send().await?.text().await?);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    let field = |prefix: &str, i: usize| -> Option<f64> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Wrk {
        rps: field("Requests/sec:", 1).unwrap_or(0.0),
        p99_ms: p99_ms(&text),
        bad: field("Non-2xx or 3xx responses:", 4).unwrap_or(0.0) as u64,
        cpu_us: cpu * 1000.0 / requests.max(1) as f64,
        renders: r1 - r0,
    })
}

/// Peak RSS and threads of the server while a phase runs (sampled every 100 ms).
struct Sampler {
    peak: Arc<Mutex<(f64, u32)>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(Mutex::new((0.0_f64, 0_u32)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let (Ok(m), Ok(mut peak)) = (memory(pid), p.lock()) {
                    peak.0 = peak.0.max(m.rss);
                    peak.1 = peak.1.max(m.threads);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler { peak, stop, task }
    }

    async fn finish(self) -> (f64, u32) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.lock().map(|p| *p).unwrap_or_default()
    }
}

/// Writes bookings to the other offerings at `rate` per second until `stop`:
/// each an order by the consumer, approved by the provider side (staff).
fn start_writer(
    base: String,
    data: &Data,
    (targets, hour): (Vec<Id>, i64),
    rate: usize,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let others = targets;
    let project = data.project;
    let (consumer, staff) = (data.consumer_token.clone(), data.staff_token.clone());
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let day0 = Utc::now()
            .duration_trunc(chrono::Duration::days(1))
            .unwrap_or_else(|_| Utc::now())
            + chrono::Duration::days(3);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        let mut i: i64 = 0;
        let mut tasks = tokio::task::JoinSet::new();
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let n = usize::try_from(i).unwrap_or(0);
            let offering = others[n % others.len()];
            // One hour a day per offering, a new day once every offering has one.
            let start = day0
                + chrono::Duration::days(i / others.len() as i64)
                + chrono::Duration::hours(hour);
            i += 1;
            let body = json!({
                "offering": format!("{base}/api/marketplace-public-offerings/{}/", offering.hex()),
                "project": format!("{base}/api/projects/{}/", project.hex()),
                "attributes": {"name": format!("Written {n}"), "schedules": [{
                    "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "end": (start + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }]},
            });
            let (http, base, consumer, staff) =
                (http.clone(), base.clone(), consumer.clone(), staff.clone());
            let (written, failed) = (written.clone(), failed.clone());
            tasks.spawn(async move {
                let ok = async {
                    let r = http
                        .post(format!("{base}/api/marketplace-orders/"))
                        .header("Authorization", format!("Token {consumer}"))
                        .json(&body)
                        .send()
                        .await
                        .ok()?;
                    if r.status() != 201 {
                        return None;
                    }
                    let order: Value = r.json().await.ok()?;
                    if order["state"] == "pending-provider" {
                        let uuid = order["uuid"].as_str()?;
                        let r = http
                            .post(format!(
                                "{base}/api/marketplace-orders/{uuid}/approve_by_provider/"
                            ))
                            .header("Authorization", format!("Token {staff}"))
                            .send()
                            .await
                            .ok()?;
                        if r.status() != 200 {
                            return None;
                        }
                    }
                    Some(())
                }
                .await;
                match ok {
                    Some(()) => written.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    })
}

struct Phase {
    name: &'static str,
    get: Wrk,
    cond: Wrk,
    rss: f64,
    threads: u32,
    note: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let events = env_usize("BENCH_EVENTS", 10_000);
    let others = env_usize("BENCH_OFFERINGS", 1_000);
    let secs = env_usize("BENCH_SECS", 10);
    let conns = env_usize("BENCH_CONNS", 50);
    let rate = env_usize("BENCH_RATE", 10);
    let rounds = env_usize("BENCH_ROUNDS", 1);
    eprintln!("{}", support::machine());
    let emu = Emulator::start(EmulatorOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let key = tmp.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json())?;
    eprintln!("preparing {events} events and {others} other offerings");
    let data = prepare(&dir, &emu, events, others).await?;
    // Google as the pass meets it: 100 ms a request, 600 requests a minute.
    emu.controls().set_latency(Duration::from_millis(100));
    emu.controls().set_quota_per_minute(Some(600));
    let server = start_server(
        &dir,
        &[
            ("BOOKCAL_GOOGLE_ROOT_URL", emu.root_url()),
            (
                "BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY",
                key.display().to_string(),
            ),
            ("BOOKCAL_TOKEN_SALT", SALT.into()),
            ("RUST_LOG", "info".into()),
        ],
    )?;
    let http = reqwest::Client::new();
    wait_healthy(&http, &server.base).await?;
    let pid = server.pid();
    let base = server.base.clone();
    let url = format!("{base}/feeds/offerings/{}.ics", data.feed_offering.hex());
    let metrics_url = format!("{base}/metrics");
    let first = http.get(&url).send().await?;
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .context("no ETag")?
        .to_string();
    let bytes = first.bytes().await?.len();
    let inm = format!("If-None-Match: {etag}");
    let start_mem = memory(pid)?;
    eprintln!(
        "server up in {:.1} s, feed {bytes} bytes, RSS {:.0} MiB, {} threads",
        server.startup_secs, start_mem.rss, start_mem.threads
    );
    let runs = |t: &str| metric(t, "bookcal_sync_runs_total", "");
    let mut phases = Vec::new();
    for _ in 0..rounds {
        for name in [
            "idle",
            "(a) scheduler pass",
            "(b) bookings written",
            "(c) bookings written to the feed's own offering",
        ] {
            let sampler = Sampler::start(pid);
            let runs0 = runs(&http.get(&metrics_url).send().await?.text().await?);
            let stop = Arc::new(AtomicBool::new(false));
            let (written, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let mut writer = None;
            if name.starts_with("(a)") {
                // One explicit sync per other offering, all queued at once: the
                // scheduler works through them at the pace of the quota.
                for o in &data.others {
                    let r = http
                        .post(format!(
                            "{base}/api/booking-offerings/{}/google_calendar_sync/",
                            o.hex()
                        ))
                        .header("Authorization", format!("Token {}", data.staff_token))
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("sync request: {} {}", r.status(), r.text().await?);
                    }
                }
            }
            if name.starts_with("(b)") || name.starts_with("(c)") {
                // (b): other offerings at 10:00; (c): the feed's offering at 20:00,
                // after its own bookings' hours.
                let (targets, hour) = if name.starts_with("(b)") {
                    (data.others.clone(), 10)
                } else {
                    (vec![data.feed_offering], 20)
                };
                writer = Some(start_writer(
                    base.clone(),
                    &data,
                    (targets, hour),
                    rate,
                    stop.clone(),
                    written.clone(),
                    failed.clone(),
                ));
            }
            let get = wrk(&url, None, secs, conns, pid, &http, &metrics_url).await?;
            let cond = wrk(&url, Some(&inm), secs, conns, pid, &http, &metrics_url).await?;
            stop.store(true, Ordering::Relaxed);
            if let Some(w) = writer {
                w.await?;
            }
            let runs1 = runs(&http.get(&metrics_url).send().await?.text().await?);
            let (rss, threads) = sampler.finish().await;
            let note = match name {
                n if n.starts_with("(a)") => {
                    format!("{} sync runs ended during the phase", runs1 - runs0)
                }
                n if n.starts_with("(b)") || n.starts_with("(c)") => format!(
                    "{} bookings written ({} failed), {} sync runs",
                    written.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed),
                    runs1 - runs0
                ),
                _ => format!("{} sync runs", runs1 - runs0),
            };
            eprintln!(
                "{name}: {get:?} {cond:?} rss {rss:.0} threads {threads}; {note}; {}",
                support::load()
            );
            eprintln!("  threads now: {}", support::thread_names(pid));
            phases.push(Phase {
                name,
                get,
                cond,
                rss,
                threads,
                note,
            });
            if name.starts_with("(a)") {
                // Let the pass end before the next phase.
                loop {
                    let t = http.get(&metrics_url).send().await?.text().await?;
                    if metric(&t, "bookcal_scheduler_active_runs", "") == 0.0
                        && runs(&t) - runs0 >= data.others.len() as f64
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    let end_mem = memory(pid)?;
    println!(
        "Feed: {bytes} bytes ({events} events); wrk -t2 -c{conns} -d{secs}s; {}",
        support::load()
    );
    println!();
    println!("| phase | 200 req/s | 200 p99 | 200 server CPU/req | 304 req/s | 304 p99 | 304 server CPU/req | feed renders | peak RSS | peak threads | meanwhile |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &phases {
        println!(
            "| {} | {:.0} | {:.1} ms | {:.0} µs | {:.0} | {:.1} ms | {:.1} µs | {} | {:.0} MiB | {} | {} |",
            p.name,
            p.get.rps,
            p.get.p99_ms,
            p.get.cpu_us,
            p.cond.rps,
            p.cond.p99_ms,
            p.cond.cpu_us,
            p.get.renders + p.cond.renders,
            p.rss,
            p.threads,
            p.note
        );
        if p.get.bad + p.cond.bad > 0 {
            println!("  ({} answers were not 2xx/3xx)", p.get.bad + p.cond.bad);
        }
    }
    println!();
    println!(
        "Server RSS: {:.0} MiB after start, {:.0} MiB at the end (peak {:.0} MiB); threads {} at start, {} at the end.",
        start_mem.rss, end_mem.rss, end_mem.hwm, start_mem.threads, end_mem.threads
    );
    println!("Threads at the end: {}.", support::thread_names(pid));
    drop(server);
    emu.shutdown().await;
    Ok(())
}
