//! Feed benchmark helper (driven by `benches/feeds.sh`; not a test).
//!
//! - `feed_bench render N [N...]`: times `ical::render` and
//!   `RenderedFeed::from_calendar` (render + SHA-256 ETag) for N synthetic events in a
//!   DST zone; prints one tab-separated line per N: events, bytes, median render ms,
//!   median render+etag ms.
//! - `feed_bench setup DATA_DIR N`: writes a data set with one UTC offering holding N
//!   one-slot bookings (16 half-hour slots a day from 20 days ago) into the store at
//!   DATA_DIR, marks the offering's calendar public, and prints the offering's uuid.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use bookcal::domain::calendar::OfferingCalendar;
use bookcal::ical::{render, FeedCalendar, FeedEvent, FeedStatus, FeedTime, RenderedFeed};
use bookcal::import::DataSet;
use bookcal::store::{Store, StoreOptions};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

fn calendar(n: usize) -> FeedCalendar {
    let base = Utc
        .with_ymd_and_hms(2025, 1, 6, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let events = (0..n)
        .map(|i| {
            let day = i64::try_from(i / 16).unwrap_or(0);
            let slot = i64::try_from(i % 16).unwrap_or(0);
            let start = base + Duration::days(day) + Duration::minutes(30 * slot);
            FeedEvent {
                uid: format!("booking_{i:032x}@bookcal"),
                summary: format!("Booking {i}: Kick-off meeting with Åsa Öberg"),
                description: Some(format!(
                    "Booked by: Alice Åkesson <alice@example.org>\nProject: Imaging study {i}\n\
                     Organisation: Alice Research\nState: OK"
                )),
                location: Some("Northlab, Building 2, Room 2.14".into()),
                when: FeedTime::Timed {
                    start,
                    end: start + Duration::minutes(30),
                },
                status: if i % 3 == 0 {
                    FeedStatus::Tentative
                } else {
                    FeedStatus::Confirmed
                },
                sequence: u32::try_from(i % 4).unwrap_or(0),
                last_modified: base - Duration::days(30)
                    + Duration::seconds(i64::try_from(i).unwrap_or(0)),
                created: Some(base - Duration::days(40)),
                url: None,
            }
        })
        .collect();
    FeedCalendar {
        name: "Meeting room Aurora (bookings)".into(),
        description: None,
        time_zone: chrono_tz::Europe::Berlin,
        source_url: None,
        refresh_interval: Duration::hours(1),
        color: None,
        events,
    }
}

fn median_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn bench_render(sizes: &[usize]) {
    println!("events\tbytes\trender_ms\trender_etag_ms");
    for &n in sizes {
        let cal = calendar(n);
        let bytes = render(&cal).len();
        let runs = if n > 5000 { 9 } else { 31 };
        let fallback = Utc::now();
        let r = median_ms(
            || {
                std::hint::black_box(render(std::hint::black_box(&cal)));
            },
            runs,
        );
        let re = median_ms(
            || {
                std::hint::black_box(RenderedFeed::from_calendar(&cal, fallback));
            },
            runs,
        );
        println!("{n}\t{bytes}\t{r:.2}\t{re:.2}");
    }
}

fn setup(dir: &Path, n: usize) -> anyhow::Result<()> {
    let bookings: Vec<_> = (0..n)
        .map(|i| {
            let day = i64::try_from(i / 16).unwrap_or(0) - 20;
            let minutes = 7 * 60 + 30 * (i % 16);
            json!({
                "name": format!("Booking {i}"),
                "offering": "bench-room",
                "project": "bench-project",
                "created_by": "alice",
                "state": if i % 3 == 0 { "Creating" } else { "OK" },
                "slots": [{"days": day, "at": format!("{:02}:{:02}", minutes / 60, minutes % 60), "hours": 0.5}],
            })
        })
        .collect();
    let ds = json!({
        "users": [
            {"username": "owner", "full_name": "Olaf Owner", "email": "owner@example.org"},
            {"username": "alice", "full_name": "Alice Åkesson", "email": "alice@example.org"}
        ],
        "customers": [
            {"name": "Bench Provider", "slug": "bench-provider", "owners": ["owner"]},
            {"name": "Bench Client", "slug": "bench-client", "owners": ["alice"]}
        ],
        "projects": [{"name": "Bench project", "slug": "bench-project", "customer": "bench-client"}],
        "offerings": [{
            "name": "Bench room", "slug": "bench-room", "customer": "bench-provider",
            "time_zone": "UTC", "location": "Northlab, Building 2, Room 2.14",
            "availability": [{"from_days": -30, "to_days": 800}]
        }],
        "bookings": bookings,
    });
    let ds: DataSet = serde_json::from_value(ds).context("data set")?;
    let store = Store::open(dir, &StoreOptions::default()).context("open store")?;
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt
        .block_on(bookcal::import::import(&store, &ds, Utc::now()))
        .context("import")?;
    let offering = store
        .sled()?
        .read()?
        .offerings
        .values()
        .find(|o| o.slug == "bench-room")
        .map(|o| o.id)
        .context("offering")?;
    let cal = OfferingCalendar {
        public: true,
        ..OfferingCalendar::new(offering)
    };
    rt.block_on(store.write(vec![Store::calendar_change(&cal)?]))?;
    rt.block_on(store.flush())?;
    eprintln!("imported {} bookings", summary.bookings);
    println!("{}", offering.hex());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("render") => {
            let sizes = args[1..]
                .iter()
                .map(|s| s.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .context("sizes")?;
            bench_render(&sizes);
            Ok(())
        }
        Some("setup") if args.len() == 3 => setup(Path::new(&args[1]), args[2].parse()?),
        _ => bail!("usage: feed_bench render N [N...] | feed_bench setup DATA_DIR N"),
    }
}
