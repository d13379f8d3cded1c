//! Google's usage limits and drifting etags, counted in requests against the emulator
//! (in the same process, under paused tokio time: hours of lock-out pass at once).
//!
//! `cargo run --example bench_google_limits` (counts requests, not time: any profile)
//!
//! 1. First sync of 100 offerings while the emulator makes the account read-only for
//!    two hours after its 25th calendar in an hour (Google's "Calendar usage limits
//!    exceeded."), `bookcal sync --all` once per hour until every offering is done:
//!    with bookcal's hourly creation budget at 25, and with the budget far above the
//!    limit (so Google's refusal is what stops creation).
//! 2. No-op runs over 100 offerings of 10 bookings each, with the emulator's etag
//!    drift (reads show another etag than the write answered) off and on.
//!
//! Requests are the emulator's Calendar API counters (token requests excluded).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bookcal::domain::{Id, Offering, Resource, ResourceState, Slot};
use bookcal::emulator::{CreationLimit, Emulator, EmulatorOptions, SettingsUpdate};
use bookcal::google::{
    CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit, RetryPolicy,
    UsageLimits,
};
use bookcal::store::{Change, Store};
use bookcal::sync::{RunOptions, SingleClient, SyncEngine, SyncError};
use chrono::{Duration, Utc};

const OFFERINGS: usize = 100;

struct Bench {
    emu: Emulator,
    store: Arc<Store>,
    engine: SyncEngine,
}

impl Bench {
    async fn new(settings: SettingsUpdate, calendars_per_hour: u32) -> anyhow::Result<Bench> {
        let emu = Emulator::start(EmulatorOptions::default()).await?;
        emu.controls().set(settings);
        let store = Arc::new(Store::temporary()?);
        let ds: bookcal::import::DataSet = serde_json::from_str(bookcal::demo::DEMO_DATA)?;
        bookcal::import::import(&store, &ds, Utc::now()).await?;
        let options = ClientOptions {
            root_url: emu.root_url(),
            retry: RetryPolicy {
                max_attempts: 6,
                base: StdDuration::from_secs(1),
                cap: StdDuration::from_secs(8),
            },
            rate_limit: RateLimit {
                per_minute: 600_000,
                burst: 1_000,
            },
            request_timeout: None,
            limits: UsageLimits {
                calendars_per_hour,
                pause: StdDuration::from_secs(7200),
                ..UsageLimits::default()
            },
            ..ClientOptions::default()
        };
        let client: Arc<dyn CalendarApi> = Arc::new(
            GoogleCalendarClient::builder(Credentials::service_account(
                emu.service_account_key_json(),
            ))
            .options(options)
            .build()
            .await?,
        );
        let engine = SyncEngine {
            store: store.clone(),
            source: Arc::new(SingleClient(Some(client))),
            settings: bookcal::config::SyncSettings::default(),
            share_role: bookcal::google::AclRole::Reader,
        };
        Ok(Bench { emu, store, engine })
    }

    /// `OFFERINGS` new offerings, each with `bookings` one-hour bookings.
    async fn add_offerings(&self, bookings: usize) -> anyhow::Result<Vec<Id>> {
        let dir = self.store.directory().await?;
        let template: Offering = dir
            .offerings
            .values()
            .next()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no demo offering"))?;
        let project = *dir
            .projects
            .keys()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no project"))?;
        let user = *dir
            .users
            .keys()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no user"))?;
        let now = Utc::now();
        let day = now.date_naive() + Duration::days(1);
        let mut changes = Vec::new();
        let mut ids = Vec::new();
        for i in 0..OFFERINGS {
            let offering = Offering {
                id: Id::new_v4(),
                name: format!("Bench room {i:03}"),
                slug: format!("bench-room-{i:03}"),
                ..template.clone()
            };
            ids.push(offering.id);
            let slots = (0..bookings)
                .map(|b| {
                    let start = (day + Duration::days(b as i64))
                        .and_hms_opt(9, 0, 0)
                        .unwrap_or_default()
                        .and_utc();
                    Slot {
                        start,
                        end: start + Duration::hours(1),
                        backend_id: format!("booking_{}", Id::new_v4().hex()),
                    }
                })
                .collect();
            if bookings > 0 {
                changes.push(Change::Resource(Resource {
                    id: Id::new_v4(),
                    name: format!("Bench booking {i:03}"),
                    slug: format!("bench-booking-{i:03}"),
                    description: String::new(),
                    offering: offering.id,
                    project,
                    state: ResourceState::Ok,
                    backend_id: String::new(),
                    attributes: serde_json::json!({}),
                    slots,
                    created: now,
                    modified: now,
                    created_by: user,
                    consumer_reviewed_by: None,
                    creation_order: None,
                    end_date: None,
                    error_message: String::new(),
                }));
            }
            changes.push(Change::Offering(offering));
        }
        self.store.write(changes).await?;
        Ok(ids)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.emu.controls().counters()
    }

    /// Calendar API requests so far.
    fn requests(&self) -> u64 {
        self.counters()
            .iter()
            .filter(|(k, _)| k.starts_with("calendar.") && !k.contains(':'))
            .map(|(_, v)| *v)
            .sum()
    }

    fn counter(&self, key: &str) -> u64 {
        self.counters().get(key).copied().unwrap_or(0)
    }

    /// One `bookcal sync --all` pass over `targets`: the offerings still waiting.
    async fn pass(&self, targets: &[Id]) -> anyhow::Result<Vec<Id>> {
        let mut waiting = Vec::new();
        let mut failed = None;
        self.engine
            .sync_many(targets, RunOptions::default(), |id, r| match r {
                Ok(_) => {}
                Err(SyncError::Deferred { .. }) => waiting.push(id),
                Err(e) => failed = Some(format!("{id}: {e}")),
            })
            .await;
        match failed {
            Some(e) => anyhow::bail!(e),
            None => Ok(waiting),
        }
    }
}

async fn first_sync(budget: u32) -> anyhow::Result<()> {
    let bench = Bench::new(
        SettingsUpdate {
            calendar_creation_limit: Some(CreationLimit {
                max: 25,
                window_secs: 3600,
                lockout_secs: 7200,
            }),
            ..SettingsUpdate::default()
        },
        budget,
    )
    .await?;
    let mut remaining = bench.add_offerings(0).await?;
    let mut passes = 0;
    while !remaining.is_empty() && passes < 24 {
        if passes > 0 {
            tokio::time::advance(StdDuration::from_secs(3600)).await;
        }
        remaining = bench.pass(&remaining).await?;
        passes += 1;
    }
    println!(
        "| {budget} | {} | {} | {} | {} | {} | {:.2} |",
        passes,
        bench.counter("calendar.calendars.insert"),
        bench.counter("status:403"),
        OFFERINGS - remaining.len(),
        bench.requests(),
        bench.requests() as f64 / OFFERINGS as f64,
    );
    Ok(())
}

async fn no_op(drift: bool) -> anyhow::Result<()> {
    let bench = Bench::new(
        SettingsUpdate {
            etag_drift: Some(drift),
            ..SettingsUpdate::default()
        },
        1_000,
    )
    .await?;
    let targets = bench.add_offerings(10).await?;
    let waiting = bench.pass(&targets).await?;
    anyhow::ensure!(waiting.is_empty(), "first sync waits");
    let first = bench.requests();
    bench.emu.controls().reset_counters();
    let waiting = bench.pass(&targets).await?;
    anyhow::ensure!(waiting.is_empty(), "no-op run waits");
    let second = bench.requests();
    bench.emu.controls().reset_counters();
    bench.pass(&targets).await?;
    let third = bench.requests();
    println!(
        "| {} | {first} | {second} | {third} | {:.2} |",
        if drift { "on" } else { "off" },
        third as f64 / OFFERINGS as f64
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> anyhow::Result<()> {
    println!("First sync of {OFFERINGS} offerings; Google locks the account for 2 h after 25 calendars in an hour; one `sync --all` pass per hour:\n");
    println!("| bookcal budget (calendars/hour) | passes | calendars.insert | 403 answers | offerings done | requests | requests per offering |");
    println!("|---|---|---|---|---|---|---|");
    first_sync(25).await?;
    first_sync(1_000).await?;
    println!("\nNo-op runs over {OFFERINGS} offerings of 10 bookings each:\n");
    println!("| etag drift | first sync requests | 2nd run requests | 3rd run requests | per offering (3rd run) |");
    println!("|---|---|---|---|---|");
    no_op(false).await?;
    no_op(true).await?;
    Ok(())
}
