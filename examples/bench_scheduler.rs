//! Scheduler pass benchmark: the real `bookcal serve` runs one periodic pass over N
//! offerings (default 100, 1,000 and 3,000), each a no-op sync (one `events.list`),
//! against the emulator (in this process, no latency, no quota: the pass's cost is
//! what is measured, not Google's pace).
//!
//! ```text
//! cargo build --release --bin bookcal --example bench_scheduler
//! target/release/examples/bench_scheduler            # BENCH_SIZES="100 1000 3000"
//! ```
//!
//! Per size, in a fresh data dir and a fresh emulator:
//! 1. N offerings with 2 one-slot bookings each; every calendar created and filled by
//!    the sync engine in this process (twice, so that the measured runs are no-ops).
//! 2. One periodic sync job per offering written to the queue, due a few seconds
//!    ahead; the store is closed and `bookcal serve` starts on it with the shipped
//!    defaults except `BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE` (raised so the token bucket
//!    does not pace the pass: this benchmark measures CPU, the sync benchmark pace).
//! 3. The server's CPU time (`/proc/<pid>/stat`) just before the jobs are due and when
//!    the emulator has answered N `events.list` calls and `/metrics` counts N finished
//!    runs; a few seconds later both counts are checked again (no run twice).
//!
//! Prints a Markdown table: N, runs, Google requests, wall time of the pass, server
//! CPU for the pass and per offering.
#![forbid(unsafe_code)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bookcal::domain::jobs::{JobKind, JobRequest, Trigger};
use bookcal::domain::Id;
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit};
use bookcal::store::{Change, Store, StoreOptions};
use bookcal::sync::{RunOptions, SingleClient, SyncEngine};
use support::{cpu_ms, metric, start_server, wait_healthy};

/// Seconds between writing the jobs and their due time (the server starts meanwhile).
const LEAD_SECS: i64 = 6;

fn list_calls(emu: &Emulator) -> u64 {
    emu.controls()
        .counters()
        .get("calendar.events.list")
        .copied()
        .unwrap_or(0)
}

/// Creates `n` offerings with calendars and events in `dir`, and queues one periodic
/// sync per offering due `LEAD_SECS` from now. Returns the offerings.
async fn prepare(dir: &Path, emu: &Emulator, n: usize) -> Result<Vec<Id>> {
    let store = Arc::new(Store::open(dir, &StoreOptions::default())?);
    let ds: bookcal::import::DataSet = serde_json::from_str(bookcal::demo::DEMO_DATA)?;
    bookcal::import::import(&store, &ds, chrono::Utc::now()).await?;
    let (customer, project, user) = support::demo_people(&store).await?;
    let mut ids = Vec::with_capacity(n);
    let mut batch = Vec::with_capacity(2 * n);
    for i in 0..n {
        let o = support::offering(customer, i);
        ids.push(o.id);
        batch.push(Change::Resource(support::booking(o.id, project, user, 1)));
        batch.push(Change::Resource(support::booking(o.id, project, user, 1)));
        batch.insert(0, Change::Offering(o));
    }
    store.write(batch).await?;
    // A client far above the load: setting up is not what is measured.
    let client: Arc<dyn CalendarApi> = Arc::new(
        GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
            .options(ClientOptions {
                root_url: emu.root_url(),
                rate_limit: RateLimit {
                    per_minute: 1_000_000,
                    burst: 1_000,
                },
                page_size: Some(2500),
                // Set-up creates every calendar at once: no hourly budget.
                limits: bookcal::google::UsageLimits {
                    calendars_per_hour: 0,
                    ..bookcal::google::UsageLimits::default()
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
        share_role: bookcal::google::AclRole::Reader,
    });
    for _ in 0..2 {
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for id in ids.iter().copied() {
            let (engine, sem) = (engine.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                engine.sync_offering(id, RunOptions::default()).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.context("sync task")?.context("setting up a calendar")?;
        }
    }
    let due = chrono::Utc::now() + chrono::Duration::seconds(LEAD_SECS);
    store
        .write(
            ids.iter()
                .map(|&offering| {
                    Change::Enqueue(JobRequest {
                        offering,
                        kind: JobKind::Sync,
                        trigger: Trigger::Periodic,
                        due,
                    })
                })
                .collect(),
        )
        .await?;
    store.flush().await?;
    Ok(ids)
}

struct Pass {
    n: usize,
    runs: f64,
    lists: u64,
    requests: u64,
    wall: f64,
    cpu_ms: f64,
}

async fn pass(n: usize) -> Result<Pass> {
    let emu = Emulator::start(EmulatorOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let key = tmp.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json())?;
    prepare(&dir, &emu, n).await?;
    emu.controls().reset_counters();
    let server = start_server(
        &dir,
        &[
            ("BOOKCAL_GOOGLE_ROOT_URL", emu.root_url()),
            (
                "BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY",
                key.display().to_string(),
            ),
            ("BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE", "1000000".into()),
        ],
    )?;
    let http = reqwest::Client::new();
    wait_healthy(&http, &server.base).await?;
    let pid = server.pid();
    if list_calls(&emu) > 0 {
        bail!("the pass began before the server was up: raise LEAD_SECS");
    }
    let cpu0 = cpu_ms(pid)?;
    // Wait for the first call, then for N (polling this process's counters only).
    while list_calls(&emu) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    while (list_calls(&emu) as usize) < n {
        if Instant::now() > deadline {
            bail!("the pass did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let runs_done = |text: &str| metric(text, "bookcal_sync_runs_total", "");
    let metrics_url = format!("{}/metrics", server.base);
    loop {
        let text = http.get(&metrics_url).send().await?.text().await?;
        if runs_done(&text) as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_ms(pid)? - cpu0;
    // Anything run twice would show within a few seconds (retries are held a minute,
    // so a failure would show as an error run instead).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = http.get(&metrics_url).send().await?.text().await?;
    let ok = metric(&text, "bookcal_sync_runs_total", "outcome=\"ok\"");
    let runs = runs_done(&text);
    let counters = emu.controls().counters();
    let requests = counters
        .iter()
        .filter(|(k, _)| k.starts_with("calendar.") && !k.contains(':'))
        .map(|(_, v)| *v)
        .sum();
    if ok != runs {
        bail!("{} of {runs} runs did not end ok", runs - ok);
    }
    let out = Pass {
        n,
        runs,
        lists: list_calls(&emu),
        requests,
        wall,
        cpu_ms: cpu,
    };
    drop(server);
    emu.shutdown().await;
    Ok(out)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100 1000 3000".into())
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("BENCH_SIZES")?;
    eprintln!("{}", support::machine());
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("preparing {n} offerings");
        let p = pass(n).await?;
        eprintln!(
            "{n}: {} runs, {:.0} ms CPU ({})",
            p.runs,
            p.cpu_ms,
            support::load()
        );
        rows.push(p);
    }
    println!("| offerings | runs | events.list calls | Google requests | pass wall time | server CPU for the pass | server CPU per offering |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for p in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} s | {:.0} ms | {:.2} ms |",
            p.n,
            p.runs,
            p.lists,
            p.requests,
            p.wall,
            p.cpu_ms,
            p.cpu_ms / p.n as f64
        );
    }
    eprintln!("{}", support::load());
    Ok(())
}
