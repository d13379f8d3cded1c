//! Google adapter throughput against the emulator (in the same process).
//!
//! `cargo run --release --example bench_google`
//!
//! Calls per second the adapter sustains for `events.get` and `events.insert` with
//! 0 ms and 100 ms added latency, at concurrency 1, 8 and 32, with the rate limiter
//! out of the way (bucket far above the load), and once with the default bucket
//! (`google.requests_per_minute`'s default, 580/min, burst 9) to show the pacing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::google::{
    CalendarApi, ClientOptions, Credentials, Event, EventTime, GoogleCalendarClient, RateLimit,
};

async fn client(emu: &Emulator, rate: RateLimit) -> anyhow::Result<Arc<dyn CalendarApi>> {
    let options = ClientOptions {
        root_url: emu.root_url(),
        rate_limit: rate,
        ..ClientOptions::default()
    };
    let creds = Credentials::service_account(emu.service_account_key_json());
    Ok(Arc::new(
        GoogleCalendarClient::builder(creds)
            .options(options)
            .build()
            .await?,
    ))
}

fn event(i: usize) -> Event {
    let start = chrono::Utc::now() + chrono::Duration::hours(i as i64);
    Event {
        summary: Some(format!("bench {i}")),
        start: Some(EventTime::DateTime {
            at: start.fixed_offset(),
            time_zone: None,
        }),
        end: Some(EventTime::DateTime {
            at: (start + chrono::Duration::hours(1)).fixed_offset(),
            time_zone: None,
        }),
        ..Event::default()
    }
}

async fn run(
    api: Arc<dyn CalendarApi>,
    cal: String,
    write: bool,
    calls: usize,
    concurrency: usize,
    get_id: String,
) -> anyhow::Result<f64> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    let t = Instant::now();
    for i in 0..calls {
        let (api, cal, sem, get_id) = (api.clone(), cal.clone(), sem.clone(), get_id.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            if write {
                api.event_insert(&cal, &event(i)).await.map(|_| ())
            } else {
                api.event_get(&cal, &get_id).await.map(|_| ())
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(calls as f64 / t.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    println!("| latency | concurrency | events.get calls/s | events.insert calls/s |");
    println!("|---|---|---|---|");
    let open = RateLimit {
        per_minute: 10_000_000,
        burst: 100_000,
    };
    for latency in [0u64, 100] {
        let emu = Emulator::start(EmulatorOptions {
            latency: Duration::from_millis(latency),
            ..EmulatorOptions::default()
        })
        .await?;
        let api = client(&emu, open).await?;
        let cal = api.calendar_insert("bench", "UTC").await?.id;
        let first = api.event_insert(&cal, &event(0)).await?.id;
        for concurrency in [1usize, 8, 32] {
            let calls = if latency == 0 {
                2000
            } else {
                (concurrency * 40).max(40)
            };
            let gets = run(
                api.clone(),
                cal.clone(),
                false,
                calls,
                concurrency,
                first.clone(),
            )
            .await?;
            let inserts = run(
                api.clone(),
                cal.clone(),
                true,
                calls,
                concurrency,
                first.clone(),
            )
            .await?;
            println!("| {latency} ms | {concurrency} | {gets:.0} | {inserts:.0} |");
        }
        emu.shutdown().await;
    }
    // The default bucket (the settings' default rate, a second's worth of burst)
    // paces a burst of 100 calls.
    let emu = Emulator::start(EmulatorOptions::default()).await?;
    let api = client(&emu, RateLimit::default()).await?;
    let cal = api.calendar_insert("bench", "UTC").await?.id;
    let first = api.event_insert(&cal, &event(0)).await?.id;
    let rate = run(api, cal, false, 100, 8, first).await?;
    println!();
    let limit = RateLimit::default();
    println!(
        "With the default token bucket ({}/min, burst {}), 100 calls at concurrency 8: {rate:.1} calls/s (the bucket's sustained rate is {:.1}/s).",
        limit.per_minute,
        limit.burst,
        f64::from(limit.per_minute) / 60.0
    );
    emu.shutdown().await;
    Ok(())
}
