//! Sync benchmark against the emulator with 100 ms latency and Google's 600/min
//! per-user quota, with the shipped defaults: the service's own Google client options
//! (`google.requests_per_minute` and the burst the service derives from it), the
//! default sync settings, and the service's scheduler with its default options for the
//! passes over many offerings.
//!
//! `cargo run --release --example bench_sync [-- --slots 1000 --offerings "100 1000" --changes 10]`
//!
//! `BENCH_STORE=postgres` keeps the store in a throw-away local PostgreSQL cluster
//! (PostgreSQL's default durability, every commit flushed) instead of a temporary
//! sled store; `BENCH_STORE=both` runs every scenario on sled, then on PostgreSQL
//! (each engine with its own emulator and fresh store) and prints them side by side.
//!
//! Scenarios: the first sync of one offering with N slots (one engine run); a no-op
//! pass of the scheduler over 100 and 1,000 offerings (one periodic job each, all due
//! at once); 10 changes in the big offering. For each: Google requests and rate-limit
//! errors (the emulator's counters), wall time, and the time the quota alone requires
//! for those requests (requests x 60 s / 600). Setting up the offerings of the no-op
//! passes (their calendars and events) uses a separate, unpaced client with the
//! emulator's quota and latency off; it is not measured.
//!
//! CPU per scenario: this process's (the sync engine and scheduler, the Google client,
//! and the emulator, which runs in the same process on both engines), plus on
//! PostgreSQL the database server's (the cluster's processes from `/proc`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bookcal::config::{Settings, SyncSettings};
use bookcal::domain::jobs::{JobKind, JobRequest, Trigger};
use bookcal::domain::Id;
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{
    AclRole, CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit,
};
use bookcal::scheduler::{Scheduler, SchedulerOptions};
use bookcal::store::{Change, Store};
use bookcal::sync::{RunOptions, SingleClient, SyncEngine};
use tokio_util::sync::CancellationToken;

const QUOTA_PER_MINUTE: u32 = 600;
const LATENCY: Duration = Duration::from_millis(100);

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg_usize(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Google requests and rate-limit errors since the counters were reset.
fn requests(emu: &Emulator) -> (u64, u64) {
    let c = emu.controls().counters();
    let calls = c
        .iter()
        .filter(|(k, _)| k.starts_with("calendar.") && !k.contains(':'))
        .map(|(_, v)| *v)
        .sum();
    let limited =
        c.get("status:403").copied().unwrap_or(0) + c.get("status:429").copied().unwrap_or(0);
    (calls, limited)
}

async fn client(emu: &Emulator, options: ClientOptions) -> anyhow::Result<Arc<dyn CalendarApi>> {
    let creds = Credentials::service_account(emu.service_account_key_json());
    Ok(Arc::new(
        GoogleCalendarClient::builder(creds)
            .options(options)
            .build()
            .await?,
    ))
}

fn engine(store: &Arc<Store>, client: Arc<dyn CalendarApi>) -> Arc<SyncEngine> {
    Arc::new(SyncEngine {
        store: store.clone(),
        source: Arc::new(SingleClient(Some(client))),
        settings: SyncSettings::default(),
        share_role: AclRole::Reader,
    })
}

/// Syncs every offering once, 8 at a time (setting up).
async fn sync_all(engine: &Arc<SyncEngine>, ids: &[Id]) -> anyhow::Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for &id in ids {
        let (engine, sem) = (engine.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            engine
                .sync_offering(id, RunOptions::default())
                .await
                .map(|_| ())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// One pass of the service's scheduler (default options) over `ids`: a periodic
/// sync job each, all due now; returns when every run has ended.
async fn scheduler_pass(engine: Arc<SyncEngine>, ids: &[Id]) -> anyhow::Result<()> {
    let store = engine.store.clone();
    let now = chrono::Utc::now();
    store
        .write(
            ids.iter()
                .map(|&offering| {
                    Change::Enqueue(JobRequest {
                        offering,
                        kind: JobKind::Sync,
                        trigger: Trigger::Periodic,
                        due: now,
                    })
                })
                .collect(),
        )
        .await?;
    let scheduler = Scheduler::new(engine, SchedulerOptions::default());
    let status = scheduler.status.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(stop.clone()));
    let ended = || {
        ["ok", "error", "deferred", "panicked", "skipped"]
            .iter()
            .map(|o| status.runs(o))
            .sum::<u64>()
    };
    while (ended() as usize) < ids.len() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await?;
    let ok = status.runs("ok");
    anyhow::ensure!(
        ok as usize == ids.len(),
        "{ok} of {} runs ended ok",
        ids.len()
    );
    Ok(())
}

/// One measured scenario on one engine.
struct Row {
    scenario: String,
    /// Google requests, with their breakdown where it is known.
    requests: String,
    calls: u64,
    limited: u64,
    wall: f64,
    /// This process's CPU (sync, scheduler, client and emulator), ms.
    cpu: f64,
    /// The database server's CPU (PostgreSQL), ms.
    db_cpu: f64,
    /// Whether the quota bounds the scenario (else its latency does).
    quota_bound: bool,
}

/// This process's CPU time and the database's, ms.
fn cpu_now(
    cluster: Option<&bookcal::store::pg::cluster::LocalCluster>,
) -> anyhow::Result<(f64, f64)> {
    Ok((
        support::cpu_ms(std::process::id())?,
        support::db_cpu_ms(cluster)?,
    ))
}

fn quota_secs(n: u64) -> f64 {
    n as f64 * 60.0 / f64::from(QUOTA_PER_MINUTE)
}

/// Every scenario on one engine ("sled" or "postgres"), with its own emulator and a
/// fresh store.
async fn run_engine(
    engine_name: &str,
    slots: usize,
    changes: usize,
    passes: &[usize],
) -> anyhow::Result<Vec<Row>> {
    let emu = Emulator::start(EmulatorOptions {
        latency: LATENCY,
        quota_per_minute: Some(QUOTA_PER_MINUTE),
        ..EmulatorOptions::default()
    })
    .await?;
    let settings = Settings {
        google: bookcal::config::GoogleSettings {
            root_url: emu.root_url(),
            ..Default::default()
        },
        ..Settings::default()
    };
    let shipped = bookcal::app::client_options(&settings);
    // The cluster lives as long as this variable.
    let cluster = if engine_name == "postgres" {
        Some(
            bookcal::store::pg::cluster::LocalCluster::start(
                bookcal::store::pg::cluster::Durability::Full,
            )
            .await?,
        )
    } else {
        None
    };
    let store = Arc::new(match &cluster {
        Some(c) => {
            Store::connect(
                &c.url("bookcal"),
                &bookcal::store::StoreOptions::default(),
                &bookcal::store::pg::PgOptions::default(),
            )
            .await?
        }
        None => Store::temporary()?,
    });
    eprintln!("store: {}", store.engine().as_str());
    let ds: bookcal::import::DataSet = serde_json::from_str(bookcal::demo::DEMO_DATA)?;
    bookcal::import::import(&store, &ds, chrono::Utc::now()).await?;
    let (customer, project, user) = support::demo_people(&store).await?;
    let measured = engine(&store, client(&emu, shipped).await?);
    let setup = engine(
        &store,
        client(
            &emu,
            ClientOptions {
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
            },
        )
        .await?,
    );
    let cluster = cluster.as_ref();
    let mut rows = Vec::new();

    // 1. First sync of one offering with `slots` slots.
    let big = support::offering(customer, 0);
    let big_id = big.id;
    let big_booking = support::booking(big_id, project, user, slots);
    let big_res = big_booking.id;
    store
        .write(vec![Change::Offering(big), Change::Resource(big_booking)])
        .await?;
    emu.controls().reset_counters();
    let (cpu0, db0) = cpu_now(cluster)?;
    let t = Instant::now();
    let r = measured
        .sync_offering(big_id, RunOptions::default())
        .await?;
    let wall = t.elapsed().as_secs_f64();
    let (cpu1, db1) = cpu_now(cluster)?;
    let (calls, limited) = requests(&emu);
    anyhow::ensure!(
        r.summary.created as usize == slots,
        "not every slot created"
    );
    rows.push(Row {
        scenario: format!("first sync, {slots} slots (one run)"),
        requests: format!("{calls} (1 calendar + 1 list + {slots} inserts)"),
        calls,
        limited,
        wall,
        cpu: cpu1 - cpu0,
        db_cpu: db1 - db0,
        quota_bound: true,
    });
    eprintln!("{engine_name}: first sync done in {wall:.1} s");

    // 2. No-op scheduler passes (each offering with a calendar and 2 bookings).
    for &n in passes {
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        for i in 1..=n {
            let o = support::offering(customer, i);
            ids.push(o.id);
            batch.push(Change::Resource(support::booking(o.id, project, user, 2)));
            batch.insert(0, Change::Offering(o));
        }
        store.write(batch).await?;
        emu.controls().set_quota_per_minute(None);
        emu.controls().set_latency(Duration::ZERO);
        sync_all(&setup, &ids).await?; // calendars and events
        sync_all(&setup, &ids).await?; // absorbs our own writes
        emu.controls().set_latency(LATENCY);
        emu.controls().set_quota_per_minute(Some(QUOTA_PER_MINUTE));
        // (Re-enabling the quota starts an empty window; the measured client's own
        // bucket keeps every 60 s of its requests, before and after, within its bound.)
        emu.controls().reset_counters();
        let (cpu0, db0) = cpu_now(cluster)?;
        let t = Instant::now();
        scheduler_pass(measured.clone(), &ids).await?;
        let wall = t.elapsed().as_secs_f64();
        let (cpu1, db1) = cpu_now(cluster)?;
        let (calls, limited) = requests(&emu);
        rows.push(Row {
            scenario: format!("no-op scheduler pass, {n} offerings"),
            requests: calls.to_string(),
            calls,
            limited,
            wall,
            cpu: cpu1 - cpu0,
            db_cpu: db1 - db0,
            quota_bound: true,
        });
        eprintln!("{engine_name}: no-op pass over {n} done in {wall:.1} s");
    }

    // 3. `changes` changes in the big offering: move that many slots by an hour.
    let mut r = store
        .resource(big_res)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the big booking"))?;
    for s in r.slots.iter_mut().take(changes) {
        s.start += chrono::Duration::hours(1);
        s.end += chrono::Duration::hours(1);
    }
    store.write(vec![Change::Resource(r)]).await?;
    emu.controls().reset_counters();
    let (cpu0, db0) = cpu_now(cluster)?;
    let t = Instant::now();
    let r = measured
        .sync_offering(big_id, RunOptions::default())
        .await?;
    let wall = t.elapsed().as_secs_f64();
    let (cpu1, db1) = cpu_now(cluster)?;
    let (calls, limited) = requests(&emu);
    rows.push(Row {
        scenario: format!("{changes} changes in the {slots}-slot offering (one run)"),
        requests: format!("{calls} (1 list + {} updates)", r.summary.updated),
        calls,
        limited,
        wall,
        cpu: cpu1 - cpu0,
        db_cpu: db1 - db0,
        quota_bound: false,
    });
    emu.shutdown().await;
    Ok(rows)
}

fn print_engine(name: &str, rows: &[Row]) {
    println!();
    println!("{name}:");
    println!();
    println!("| scenario | Google requests | rate-limit errors | wall time | quota-bound time | over the quota bound | CPU ms (bench process + database) |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let over = if r.quota_bound {
            format!("{:+.1} %", (r.wall / quota_secs(r.calls) - 1.0) * 100.0)
        } else {
            "latency-bound".into()
        };
        println!(
            "| {} | {} | {} | {:.1} s | {:.1} s | {over} | {:.0} ({:.0} + {:.0}) |",
            r.scenario,
            r.requests,
            r.limited,
            r.wall,
            quota_secs(r.calls),
            r.cpu + r.db_cpu,
            r.cpu,
            r.db_cpu
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let slots = arg_usize("--slots", 1000);
    let changes = arg_usize("--changes", 10);
    let passes: Vec<usize> = arg("--offerings")
        .unwrap_or_else(|| "100 1000".into())
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let engines: &[&str] = match std::env::var("BENCH_STORE").as_deref() {
        Ok("postgres") => &["postgres"],
        Ok("both") => &["sled", "postgres"],
        Ok("sled") | Err(_) => &["sled"],
        Ok(other) => anyhow::bail!("BENCH_STORE={other}: expected sled, postgres or both"),
    };
    eprintln!("{}", support::machine());
    let shipped = bookcal::app::client_options(&Settings::default());
    eprintln!(
        "shipped client: {}/min, burst {}; sync concurrency {}; scheduler {} offerings at a time",
        shipped.rate_limit.per_minute,
        shipped.rate_limit.burst,
        SyncSettings::default().concurrency,
        SchedulerOptions::default().parallel_offerings
    );
    let mut results = Vec::new();
    for name in engines {
        let rows = run_engine(name, slots, changes, &passes).await?;
        eprintln!("{name} done, {}", support::load());
        print_engine(name, &rows);
        results.push((*name, rows));
    }
    if let [(_, sled), (_, pg)] = results.as_slice() {
        println!();
        println!("Side by side:");
        println!();
        println!("| scenario | Google requests sled / PostgreSQL | rate-limit errors sled / PostgreSQL | wall time sled | wall time PostgreSQL | CPU ms sled (bench process) | CPU ms PostgreSQL (bench process + database) |");
        println!("|---|---|---|---:|---:|---:|---:|");
        for (a, b) in sled.iter().zip(pg) {
            println!(
                "| {} | {} / {} | {} / {} | {:.1} s | {:.1} s | {:.0} | {:.0} ({:.0} + {:.0}) |",
                a.scenario,
                a.calls,
                b.calls,
                a.limited,
                b.limited,
                a.wall,
                b.wall,
                a.cpu,
                b.cpu + b.db_cpu,
                b.cpu,
                b.db_cpu
            );
        }
    }
    eprintln!("{}", support::load());
    Ok(())
}
