//! Sync benchmark against the emulator with 100 ms latency and a 600/min quota.
//!
//! `cargo run --release --example bench_sync [-- --slots 1000 --offerings 100 --changes 10]`
//!
//! Scenarios: the first sync of one offering with N slots; a no-op re-sync of 100
//! offerings; 10 changes. For each: Google requests (from the emulator's counters),
//! rate-limit errors, wall time, and the time the quota alone requires; beside it the
//! request count of upstream Waldur's algorithm for the same work (as its code issues
//! them: 1 list + 1 calendars.get per external event + 2 per new booking + 1 per
//! update + 1 per delete, sequential).

use std::sync::Arc;

use anyhow::Context;
use std::time::{Duration, Instant};

use bookcal::domain::{Category, Id, Offering, OfferingState, Resource, ResourceState, Slot};
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit};
use bookcal::store::{Change, Store};
use bookcal::sync::{RunOptions, SingleClient, SyncEngine};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

fn offering(customer: Id, i: usize) -> Offering {
    let now = chrono::Utc::now();
    Offering {
        id: Id::new_v4(),
        customer,
        name: format!("Bench offering {i}"),
        slug: format!("bench-{i}"),
        description: String::new(),
        full_description: String::new(),
        category: Category {
            id: Id::new_v4(),
            title: "Bench".into(),
        },
        state: OfferingState::Active,
        time_zone: chrono_tz::Europe::Berlin,
        location: "Bench lab".into(),
        latitude: None,
        longitude: None,
        attributes: serde_json::json!({}),
        plugin_options: serde_json::json!({}),
        shared: true,
        billable: false,
        backend_id: String::new(),
        created: now,
        modified: now,
    }
}

fn booking(offering: Id, project: Id, user: Id, n: usize) -> Resource {
    let now = chrono::Utc::now();
    let base = now + chrono::Duration::days(1);
    Resource {
        id: Id::new_v4(),
        name: format!("Bench booking ({n} slots)"),
        slug: "bench".into(),
        description: String::new(),
        offering,
        project,
        state: ResourceState::Ok,
        backend_id: String::new(),
        attributes: serde_json::json!({}),
        slots: (0..n)
            .map(|i| Slot {
                start: base + chrono::Duration::hours(8 * i as i64),
                end: base + chrono::Duration::hours(8 * i as i64 + 1),
                backend_id: format!("booking_{}", Id::new_v4().hex()),
            })
            .collect(),
        created: now,
        modified: now,
        created_by: user,
        consumer_reviewed_by: None,
        creation_order: None,
        end_date: None,
        error_message: String::new(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let slots = arg("--slots", 1000);
    let offerings = arg("--offerings", 100);
    let changes = arg("--changes", 10);
    let per_minute = 600u32;
    let emu = Emulator::start(EmulatorOptions {
        latency: Duration::from_millis(100),
        quota_per_minute: Some(per_minute),
        ..EmulatorOptions::default()
    })
    .await?;
    // Our bucket: burst + rate within any 60 s window stays below the quota (590 of 600),
    // leaving a margin for requests that arrive slightly out of order.
    let options = ClientOptions {
        root_url: emu.root_url(),
        rate_limit: RateLimit {
            per_minute: 580,
            burst: 10,
        },
        page_size: Some(2500),
        ..ClientOptions::default()
    };
    let creds = Credentials::service_account(emu.service_account_key_json());
    let client: Arc<dyn CalendarApi> = Arc::new(
        GoogleCalendarClient::builder(creds)
            .options(options)
            .build()
            .await?,
    );
    let store = Arc::new(Store::temporary()?);
    let ds: bookcal::import::DataSet = serde_json::from_str(bookcal::demo::DEMO_DATA)?;
    bookcal::import::import(&store, &ds, chrono::Utc::now()).await?;
    let (customer, project, user) = {
        let cat = store.sled()?.read()?;
        let c = cat
            .customers
            .values()
            .find(|c| c.slug == "northlab")
            .map(|c| c.id)
            .unwrap_or_default();
        (
            c,
            *cat.projects.keys().next().unwrap_or(&Id::default()),
            cat.users_by_name.get("alice").copied().unwrap_or_default(),
        )
    };
    let settings = bookcal::config::SyncSettings {
        concurrency: 8,
        ..Default::default()
    };
    let engine = SyncEngine {
        store: store.clone(),
        source: Arc::new(SingleClient(Some(client))),
        settings,
        share_role: bookcal::google::AclRole::Reader,
    };
    let quota_secs = |n: u64| n as f64 * 60.0 / f64::from(per_minute);
    println!("| scenario | bookcal requests | rate-limit errors | wall time | quota-bound minimum | upstream requests (same work) |");
    println!("|---|---|---|---|---|---|");

    // 1. First sync of one offering with `slots` slots.
    let big = offering(customer, 0);
    let big_id = big.id;
    let big_booking = booking(big_id, project, user, slots);
    let big_res = big_booking.id;
    store
        .write(vec![Change::Offering(big), Change::Resource(big_booking)])
        .await?;
    emu.controls().reset_counters();
    let t = Instant::now();
    let r = engine.sync_offering(big_id, RunOptions::default()).await?;
    let wall = t.elapsed().as_secs_f64();
    let (calls, limited) = requests(&emu);
    assert_eq!(r.summary.created as usize, slots);
    // Upstream: 1 list + 2 per new booking (get, then insert); its calendar pre-exists.
    println!("| first sync, {slots} slots | {calls} (1 calendar + 1 list + {slots} inserts) | {limited} | {wall:.1} s | {:.1} s | {} |", quota_secs(calls), 1 + 2 * slots);

    // 2. No-op re-sync of `offerings` offerings (each with a calendar and 2 bookings).
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for i in 1..=offerings {
        let o = offering(customer, i);
        ids.push(o.id);
        batch.push(Change::Resource(booking(o.id, project, user, 2)));
        batch.insert(0, Change::Offering(o));
    }
    store.write(batch).await?;
    let engine = Arc::new(engine);
    let run_all = |ids: Vec<Id>| {
        let engine = engine.clone();
        async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(8));
            let mut set = tokio::task::JoinSet::new();
            for id in ids {
                let (engine, sem) = (engine.clone(), sem.clone());
                set.spawn(async move {
                    let _p = sem.acquire_owned().await;
                    engine
                        .sync_offering(id, RunOptions::default())
                        .await
                        .map(|_| ())
                });
            }
            while let Some(r) = set.join_next().await {
                r.map_err(|e| anyhow::anyhow!("{e}"))??;
            }
            anyhow::Ok(())
        }
    };
    run_all(ids.clone()).await?; // first syncs (calendars, events)
    run_all(ids.clone()).await?; // absorbs our own writes
    emu.controls().reset_counters();
    let t = Instant::now();
    run_all(ids.clone()).await?;
    let wall = t.elapsed().as_secs_f64();
    let (calls, limited) = requests(&emu);
    // Upstream: 1 list per offering, and it re-sends an update for every booking it
    // finds on page 1 (it has no record of what it pushed): 1 + 2 per offering here.
    println!("| no-op re-sync, {offerings} offerings | {calls} | {limited} | {wall:.1} s | {:.1} s | {} |", quota_secs(calls), offerings * 3);

    // 3. `changes` changes in the big offering: move that many slots by an hour.
    let mut r = store.resource(big_res).await?.context("the big booking")?;
    for s in r.slots.iter_mut().take(changes) {
        s.start += chrono::Duration::hours(1);
        s.end += chrono::Duration::hours(1);
    }
    store.write(vec![Change::Resource(r)]).await?;
    engine.sync_offering(big_id, RunOptions::default()).await?; // absorb nothing yet
    emu.controls().reset_counters();
    // The run above made the changes; measure a fresh set of changes cleanly.
    let mut r = store.resource(big_res).await?.context("the big booking")?;
    for s in r.slots.iter_mut().skip(changes).take(changes) {
        s.start += chrono::Duration::hours(1);
        s.end += chrono::Duration::hours(1);
    }
    store.write(vec![Change::Resource(r)]).await?;
    let t = Instant::now();
    let r = engine.sync_offering(big_id, RunOptions::default()).await?;
    let wall = t.elapsed().as_secs_f64();
    let (calls, limited) = requests(&emu);
    // Upstream: 1 list + 1 update per change (and it loses everything past page 1).
    println!(
        "| {changes} changes in the {slots}-slot offering | {calls} (updated {}) | {limited} | {wall:.1} s | {:.1} s | {} |",
        r.summary.updated,
        quota_secs(calls),
        1 + changes
    );
    emu.shutdown().await;
    Ok(())
}
