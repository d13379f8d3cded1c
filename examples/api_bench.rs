//! API benchmark: 100,000 booking resources, the real `bookcal serve` as a child
//! process, a bounded number of requests per scenario.
//!
//! ```text
//! cargo build --release --bin bookcal --example api_bench
//! target/release/examples/api_bench            # BENCH_RESOURCES=100000 by default
//! ```
//! Other knobs: `BENCH_REQUESTS` (200 per scenario), `BENCH_CLIENTS` (4),
//! `BENCH_DATA_DIR` (keep the data dir and reuse it on the next run), `BENCH_ONLY`
//! (run only the scenarios whose name contains this text).
//! `BENCH_STORE=postgres` runs it on a throw-away local PostgreSQL cluster (Debian's
//! `postgresql`), `BENCH_REPLICAS` servers on it (the concurrent clients spread over
//! them; the sequential phase and its CPU figures use the first).
//!
//! `BENCH_STORE=both` is the engines' side by side in one run: the data set is
//! generated on sled and the scenarios run there; then `bookcal migrate` (the real
//! binary) copies the data dir into a fresh local cluster and the database back into
//! a new data dir, which is compared with the first record by record; then the
//! scenarios run on PostgreSQL, and again with each further count in `BENCH_REPLICAS`
//! (default "1 2 3") for the scenarios named by `BENCH_REPLICA_ONLY` (`|`-separated
//! parts of names). `BENCH_ROUND_TRIP=0` skips the way back (PostgreSQL -> sled and
//! the comparison): only the copy into the cluster is made.
//!
//! `BENCH_BEFORE_BIN` (with `BENCH_STORE=both` or `postgres`): a `bookcal` binary from
//! before migration 0010 (the list indexes), built from an older commit. After the
//! data reaches PostgreSQL, a copy of the database (`CREATE DATABASE … TEMPLATE`) has
//! the schema changes from migration 0010 on taken back ([`BEFORE_0010`]), and after
//! the one-server PostgreSQL phase that binary serves every scenario on the copy:
//! the same data, before and after the indexes, in one run. The PostgreSQL databases
//! are vacuumed and analyzed before the first phase on them. On PostgreSQL the database server's
//! CPU is measured too (the cluster's processes from `/proc`, including the
//! backends that ended), so "CPU per request" covers bookcal and the database.
//!
//! 1. Generates the data set in a temporary data dir through `bookcal::import::import`
//!    (batches of 10,000 bookings, each one `Store::mutate`): 4 provider
//!    organisations with 5 offerings each, 10 client organisations with 5 projects
//!    each, and N bookings (one order and one slot each, 80 % OK, 20 % Creating)
//!    spread round-robin over the 20 offerings and 50 projects, without overlaps.
//! 2. Creates API tokens, closes the store and starts `bookcal serve` (next to this
//!    binary: `target/release/bookcal`, or `BOOKCAL_BIN`) on 127.0.0.1:0, waiting
//!    for its "listening" log line and a 200 from `/health`.
//!    The scenarios: one booking resource, list pages (filtered or not, deep, sorted,
//!    searched), order lists, counts, an offering's public feed and its owner feed
//!    (a feed token of the provider's owner; each 200, and 304 with
//!    `If-None-Match`), and order creation (one new slot per request; a quarter of
//!    `BENCH_REQUESTS`). A scenario the server fails is reported and skipped.
//! 3. Per scenario: a few warm-up requests, then `BENCH_REQUESTS` sequential
//!    requests (latency median / p90 / p99, and the server's CPU time per request
//!    from `/proc/<pid>/stat`, which other load on the machine hardly changes), then
//!    the same number spread over
//!    `BENCH_CLIENTS` concurrent clients (throughput). Every answer must have the expected status
//!    and list pages the expected length.
//! 4. The server's VmRSS / VmHWM from `/proc/<pid>/status` after loading and after
//!    the run. Prints a Markdown table.
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bookcal::config::Settings;
use bookcal::domain::Id;
use bookcal::import::{import, DataSet};
use bookcal::store::pg::cluster::{Durability, LocalCluster};
use bookcal::store::query::{PageRange, ResourceQuery, Visible};
use chrono::{Duration as Days, DurationRound, Utc};
use serde_json::{json, Value};

const PROVIDERS: usize = 4;
const OFFERINGS_PER_PROVIDER: usize = 5;
const CLIENTS: usize = 10;
const PROJECTS_PER_CLIENT: usize = 5;
const BATCH: usize = 10_000;
const SALT: &str = "api-bench-salt";
const WORDS: [&str; 8] = [
    "Imaging",
    "Seminar",
    "Calibration",
    "Night run",
    "Workshop",
    "Training",
    "Maintenance",
    "Review",
];

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings(dir: &std::path::Path, url: Option<&str>) -> Result<Settings> {
    let dir = dir.display().to_string();
    let url = url.map(String::from);
    let env = move |k: &str| match k {
        "BOOKCAL_DATA_DIR" => Some(dir.clone()),
        "BOOKCAL_STORE_URL" => url.clone(),
        "BOOKCAL_TOKEN_SALT" => Some(SALT.to_string()),
        _ => None,
    };
    Ok(Settings::load_with(None, &env)?)
}

/// The organisations, projects and offerings (no bookings).
fn skeleton() -> Value {
    let mut users =
        vec![json!({"username": "admin", "full_name": "Bench Admin", "is_staff": true})];
    let mut customers = Vec::new();
    let mut projects = Vec::new();
    let mut offerings = Vec::new();
    for p in 0..PROVIDERS {
        users.push(
            json!({"username": format!("provider{p}"), "full_name": format!("Provider Owner {p}")}),
        );
        customers.push(json!({"name": format!("Provider {p}"), "slug": format!("provider-{p}"), "owners": [format!("provider{p}")]}));
        for o in 0..OFFERINGS_PER_PROVIDER {
            offerings.push(json!({
                "name": format!("Instrument {p}-{o}"), "slug": format!("off-{p}-{o}"),
                "customer": format!("provider-{p}"), "time_zone": "Europe/Berlin",
                "category": if o % 2 == 0 { "Instruments" } else { "Rooms" },
                "availability": [{"from_days": -7, "to_days": 2000}],
            }));
        }
    }
    for c in 0..CLIENTS {
        users.push(
            json!({"username": format!("client{c}"), "full_name": format!("Client Owner {c}")}),
        );
        customers.push(json!({"name": format!("Client {c}"), "slug": format!("client-{c}"), "owners": [format!("client{c}")]}));
        for p in 0..PROJECTS_PER_CLIENT {
            projects.push(json!({
                "name": format!("Project {c}-{p}"), "slug": format!("proj-{c}-{p}"),
                "customer": format!("client-{c}"),
            }));
        }
    }
    json!({"users": users, "customers": customers, "projects": projects, "offerings": offerings})
}

/// Bookings `from..to`: round-robin over offerings and projects; booking `k = i /
/// offerings` of an offering starts `2k` hours after `base` and lasts 90 minutes, is
/// `Creating` when `k % 5 == 0` (else OK) and named after `WORDS[k % 8]`.
fn bookings(from: usize, to: usize, base: chrono::DateTime<Utc>) -> Value {
    let n_off = PROVIDERS * OFFERINGS_PER_PROVIDER;
    let n_proj = CLIENTS * PROJECTS_PER_CLIENT;
    let items: Vec<Value> = (from..to)
        .map(|i| {
            let off = i % n_off;
            let proj = (i / n_off) % n_proj;
            let client = proj / PROJECTS_PER_CLIENT;
            let start = base + Days::hours(2 * (i / n_off) as i64);
            let end = start + Days::minutes(90);
            json!({
                "name": format!("{} {i:06}", WORDS[(i / n_off) % WORDS.len()]),
                "offering": format!("off-{}-{}", off / OFFERINGS_PER_PROVIDER, off % OFFERINGS_PER_PROVIDER),
                "project": format!("proj-{client}-{}", proj % PROJECTS_PER_CLIENT),
                "created_by": format!("client{client}"),
                "state": if (i / n_off) % 5 == 0 { "Creating" } else { "OK" },
                "slots": [{"start": start.to_rfc3339(), "end": end.to_rfc3339()}],
            })
        })
        .collect();
    json!({ "bookings": items })
}

struct Generated {
    admin: String,
    provider0: String,
    offerings: Vec<Id>,
    provider0_offering: Id,
    /// The offering whose public feed is fetched (its calendar record is public).
    feed_offering: Id,
    /// The path of the feed offering's owner feed (`/feeds/t/{secret}.ics`).
    owner_feed: String,
    /// The offering new orders are made for (not the feed's: a new booking changes
    /// the feed it is in).
    order_offering: Id,
    projects: Vec<Id>,
    resources: Vec<Id>,
    import_secs: f64,
}

async fn generate(dir: &std::path::Path, url: Option<&str>, n: usize) -> Result<Generated> {
    let store = bookcal::app::open_store(&settings(dir, url)?).await?;
    let now = Utc::now();
    let t0 = Instant::now();
    let all = |offset: usize, limit: usize| ResourceQuery {
        visible: Visible::everything(),
        page: Some(PageRange { offset, limit }),
        ..ResourceQuery::default()
    };
    // A kept data dir (BENCH_DATA_DIR) that already holds the data set is reused.
    let reuse = store.list_resources(&all(0, 0)).await?.total == n;
    let ds: DataSet = serde_json::from_value(skeleton())?;
    if !reuse {
        import(&store, &ds, now).await?;
    }
    let base = (now + Days::days(1)).duration_trunc(Days::hours(1))?;
    let mut from = if reuse { n } else { 0 };
    while from < n {
        let to = (from + BATCH).min(n);
        let ds: DataSet = serde_json::from_value(bookings(from, to, base))?;
        import(&store, &ds, now).await?;
        from = to;
    }
    store.flush().await?;
    let import_secs = t0.elapsed().as_secs_f64();
    let directory = store.directory().await?;
    let user = |name: &str| directory.user_by_name(name).map(|u| u.id).context("user");
    let (admin_id, p0_id) = (user("admin")?, user("provider0")?);
    let mut offerings: Vec<(String, Id)> = directory
        .offerings
        .values()
        .map(|o| (o.slug.clone(), o.id))
        .collect();
    offerings.sort();
    let p0_off = offerings
        .iter()
        .find(|(s, _)| s == "off-0-0")
        .map(|(_, id)| *id)
        .context("off-0-0")?;
    let order_offering = offerings
        .iter()
        .find(|(s, _)| s == "off-3-4")
        .map(|(_, id)| *id)
        .context("off-3-4")?;
    let offerings: Vec<Id> = offerings.into_iter().map(|(_, id)| id).collect();
    let mut projects: Vec<Id> = directory.projects.keys().copied().collect();
    projects.sort();
    // The first offering's feed is public (a calendar record, no Google calendar).
    let public = bookcal::domain::calendar::OfferingCalendar {
        public: true,
        ..bookcal::domain::calendar::OfferingCalendar::new(p0_off)
    };
    store
        .write(vec![bookcal::store::Store::calendar_change(&public)?])
        .await?;
    // The provider owner's feed token for the same offering (its owner feed).
    let secret = bookcal::api::feed_tokens::new_secret();
    let owner_token = bookcal::store::feed_tokens::FeedToken {
        uuid: Id::new_v4(),
        name: "Bench owner feed".into(),
        scope: bookcal::store::feed_tokens::FeedScope::Offering(p0_off),
        created: now,
        created_by: p0_id,
        last_used: None,
        hash: bookcal::store::feed_tokens::feed_token_hash(&secret),
    };
    store
        .write(vec![bookcal::store::Change::FeedToken(owner_token)])
        .await?;
    let mut resources = Vec::with_capacity(n);
    while resources.len() < n {
        let page = store.list_resources(&all(resources.len(), BATCH)).await?;
        if page.items.is_empty() {
            break;
        }
        resources.extend(page.items.iter().map(|r| r.id));
    }
    resources.sort_by_key(|id| id.hex());
    if resources.len() != n {
        bail!(
            "expected {n} resources, the catalog has {}",
            resources.len()
        );
    }
    let admin = store.create_token(admin_id).await?;
    let provider0 = store.create_token(p0_id).await?;
    store.flush().await?;
    Ok(Generated {
        admin,
        provider0,
        offerings,
        provider0_offering: p0_off,
        feed_offering: p0_off,
        owner_feed: format!("/feeds/t/{secret}.ics"),
        order_offering,
        projects,
        resources,
        import_secs,
    })
}

/// `(VmRSS, VmHWM)` of a process in MiB.
fn memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0))
}

struct Server {
    child: Child,
    base: String,
    startup_secs: f64,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bookcal_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BOOKCAL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("binary directory")?;
    let bin = dir.join("bookcal");
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release --bin bookcal (or set BOOKCAL_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

fn start_server(dir: &std::path::Path, url: Option<&str>, bin: &std::path::Path) -> Result<Server> {
    let t0 = Instant::now();
    let mut cmd = Command::new(bin);
    if let Some(url) = url {
        cmd.env("BOOKCAL_STORE_URL", url);
    }
    let mut child = cmd
        .arg("serve")
        .env("BOOKCAL_DATA_DIR", dir)
        .env("BOOKCAL_LISTEN", "127.0.0.1:0")
        .env("BOOKCAL_TOKEN_SALT", SALT)
        .env("BOOKCAL_LOG_FORMAT", "json")
        // Every client here is one address asking as fast as it can: the anonymous
        // per-client rate would answer the public feed's scenarios 429 (the API's
        // are authenticated). The limiter has its own benchmark (feed_flood).
        .env("BOOKCAL_HTTP_CLIENT_REQUESTS_PER_SEC", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting bookcal serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            bail!("bookcal serve exited before listening");
        };
        let line = line?;
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(a) = v["fields"]["addr"].as_str() {
            break a.to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(Server {
        child,
        base: format!("http://{addr}"),
        startup_secs: t0.elapsed().as_secs_f64(),
    })
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("server not healthy after 60 s");
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a scenario's requests are.
#[derive(Clone)]
enum Kind {
    /// GET, answered 200.
    Get,
    /// HEAD, answered 200.
    Head,
    /// GET with `If-None-Match` the path's current ETag (asked once before the
    /// scenario), answered 304.
    NotModified,
    /// POST an order for one new slot of `offering` in one of `projects`, answered 201.
    CreateOrder { offering: Id, projects: Vec<Id> },
}

/// Order slots handed out so far: every created order gets its own hour, in every
/// phase and on every engine (the data set's own bookings end long before).
static NEXT_ORDER_SLOT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

#[derive(Clone)]
struct Scenario {
    name: String,
    kind: Kind,
    /// The ETag a `Kind::NotModified` request sends.
    etag: Option<String>,
    token: String,
    /// Paths (with query) cycled through.
    paths: Vec<String>,
    /// Expected list length (None: a single object / HEAD).
    expect_len: Option<usize>,
    requests: usize,
}

async fn one(http: &reqwest::Client, base: &str, s: &Scenario, i: usize) -> Result<Duration> {
    let path = &s.paths[i % s.paths.len()];
    let url = format!("{base}{path}");
    let (req, want) = match &s.kind {
        Kind::Get => (http.get(&url), 200),
        Kind::Head => (http.head(&url), 200),
        Kind::NotModified => (
            http.get(&url)
                .header("If-None-Match", s.etag.as_deref().unwrap_or_default()),
            304,
        ),
        Kind::CreateOrder { offering, projects } => {
            let k = NEXT_ORDER_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start =
                (Utc::now() + Days::days(1500)).duration_trunc(Days::days(1))? + Days::hours(k);
            let project = projects[usize::try_from(k).unwrap_or(0) % projects.len()];
            let body = json!({
                "offering": format!("{base}/api/marketplace-public-offerings/{}/", offering.hex()),
                "project": format!("{base}/api/projects/{}/", project.hex()),
                "attributes": {
                    "name": format!("Bench order {k}"),
                    "schedules": [{
                        "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "end": (start + Days::minutes(45)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    }],
                },
            });
            (http.post(&url).json(&body), 201)
        }
    };
    let t0 = Instant::now();
    let resp = req
        .header("Authorization", format!("Token {}", s.token))
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let took = t0.elapsed();
    if status != want {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    if let Some(n) = s.expect_len {
        let v: Value = serde_json::from_slice(&body)?;
        let got = v.as_array().map(Vec::len);
        if got != Some(n) {
            bail!("{path}: expected {n} items, got {got:?}");
        }
    }
    Ok(took)
}

/// CPU time (user + system) of a process in milliseconds, from `/proc/<pid>/stat`
/// (clock ticks of 10 ms, the Linux default USER_HZ of 100).
fn cpu_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(f.get(i).context("stat field")?.parse::<f64>()?) };
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}

struct Figures {
    /// Server CPU per request in the sequential phase (robust to other load).
    cpu: f64,
    /// The database server's CPU per request in the sequential phase (PostgreSQL).
    db_cpu: f64,
    /// CPU per request of every bookcal server and the database in the concurrent
    /// phase.
    total_cpu: f64,
    median: f64,
    p90: f64,
    p99: f64,
    max: f64,
    rps: f64,
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

async fn run(
    http: &reqwest::Client,
    bases: &[String],
    s: &Scenario,
    clients: usize,
    pids: &[u32],
    cluster: Option<&LocalCluster>,
) -> Result<Figures> {
    // Sequential requests (and CPU) on the first server; throughput over all.
    let base = bases[0].as_str();
    let pid = pids[0];
    let mut s = s.clone();
    if let Kind::NotModified = s.kind {
        let r = http.get(format!("{base}{}", s.paths[0])).send().await?;
        let etag = r.headers().get("etag").and_then(|v| v.to_str().ok());
        s.etag = Some(etag.context("the feed has no ETag")?.to_string());
    }
    let s = &s;
    for i in 0..5 {
        one(http, base, s, i).await?;
    }
    let mut lat = Vec::with_capacity(s.requests);
    let cpu0 = cpu_ms(pid)?;
    let db0 = support::db_cpu_ms(cluster)?;
    for i in 0..s.requests {
        lat.push(one(http, base, s, i).await?);
    }
    let cpu = (cpu_ms(pid)? - cpu0) / s.requests as f64;
    let db_cpu = (support::db_cpu_ms(cluster)? - db0) / s.requests as f64;
    lat.sort();
    let all_cpu = || -> Result<f64> {
        let mut t = support::db_cpu_ms(cluster)?;
        for p in pids {
            t += cpu_ms(*p)?;
        }
        Ok(t)
    };
    let total0 = all_cpu()?;
    // Throughput: the same number of requests over `clients` connections.
    let s2 = Arc::new(s.clone());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let s2 = s2.clone();
        let base = bases[c % bases.len()].clone();
        let http = reqwest::Client::new();
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < s2.requests {
                one(&http, &base, &s2, i).await?;
                i += clients;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rps = s.requests as f64 / t0.elapsed().as_secs_f64();
    let total_cpu = (all_cpu()? - total0) / s.requests as f64;
    Ok(Figures {
        cpu,
        db_cpu,
        total_cpu,
        median: pct(&lat, 0.5),
        p90: pct(&lat, 0.9),
        p99: pct(&lat, 0.99),
        max: pct(&lat, 1.0),
        rps,
    })
}

/// The scenarios over the generated data set.
fn scenarios(g: &Generated, n: usize, requests: usize) -> Vec<Scenario> {
    let per_offering = n / g.offerings.len();
    let ok_per_offering = (0..per_offering).filter(|k| k % 5 != 0).count();
    let seminars_per_offering = (0..per_offering).filter(|k| k % WORDS.len() == 1).count();
    let mid_page = ok_per_offering.div_ceil(100).div_ceil(2).max(1);
    let offs: Vec<String> = g.offerings.iter().map(Id::hex).collect();
    let resources: Vec<String> = g.resources.iter().step_by(97).map(Id::hex).collect();
    let page = |n: usize| n.min(100);
    let mk = |name: &str, token: &str, paths: Vec<String>, expect: Option<usize>, reqs: usize| {
        Scenario {
            name: name.to_string(),
            kind: Kind::Get,
            etag: None,
            token: token.to_string(),
            paths,
            expect_len: expect,
            requests: reqs,
        }
    };
    let per_off = |q: &str| -> Vec<String> {
        offs.iter()
            .map(|o| format!("/api/booking-resources/?offering_uuid={o}&{q}"))
            .collect()
    };
    let few = (requests / 4).max(20);
    let mut scenarios = vec![
        mk(
            "retrieve one booking resource",
            &g.admin,
            resources
                .iter()
                .map(|r| format!("/api/booking-resources/{r}/"))
                .collect(),
            None,
            requests,
        ),
        mk(
            "list, no filter, default page (10), staff",
            &g.admin,
            vec!["/api/booking-resources/".into()],
            Some(10),
            requests,
        ),
        mk(
            "list, no filter, page_size=100, staff",
            &g.admin,
            vec!["/api/booking-resources/?page_size=100".into()],
            Some(100),
            requests,
        ),
        mk(
            "list, no filter, page_size=100, provider owner (25 % visible)",
            &g.provider0,
            vec!["/api/booking-resources/?page_size=100".into()],
            Some(100),
            requests,
        ),
        mk(
            "list offering_uuid=…&state=OK&page_size=100",
            &g.admin,
            per_off("state=OK&page_size=100"),
            Some(page(ok_per_offering)),
            requests,
        ),
        mk(
            &format!("list offering_uuid=…&state=OK&page_size=100&page={mid_page}"),
            &g.admin,
            per_off(&format!("state=OK&page_size=100&page={mid_page}")),
            Some(page(ok_per_offering - (mid_page - 1) * 100)),
            requests,
        ),
        mk(
            "list offering_uuid=…&o=schedules&page_size=100",
            &g.admin,
            per_off("o=schedules&page_size=100"),
            Some(page(per_offering)),
            requests,
        ),
        mk(
            "list offering_uuid=…&query=seminar&page_size=100",
            &g.admin,
            per_off("query=seminar&page_size=100"),
            Some(page(seminars_per_offering)),
            requests,
        ),
        mk(
            &format!("list o=schedules&page_size=100 (all {n} sorted)"),
            &g.admin,
            vec!["/api/booking-resources/?o=schedules&page_size=100".into()],
            Some(100),
            few,
        ),
        mk(
            &format!("list query=seminar&page_size=100 (all {n} searched)"),
            &g.admin,
            vec!["/api/booking-resources/?query=seminar&page_size=100".into()],
            Some(page(seminars_per_offering * offs.len())),
            few,
        ),
        mk(
            "list provider0 offering, provider owner, state=OK&page_size=100",
            &g.provider0,
            vec![format!(
                "/api/booking-resources/?offering_uuid={}&state=OK&page_size=100",
                g.provider0_offering.hex()
            )],
            Some(page(ok_per_offering)),
            requests,
        ),
        mk(
            "orders list page_size=100",
            &g.admin,
            vec!["/api/marketplace-orders/?page_size=100".into()],
            Some(100),
            requests,
        ),
        mk(
            "orders list o=-created&page_size=100",
            &g.admin,
            vec!["/api/marketplace-orders/?o=-created&page_size=100".into()],
            Some(100),
            requests,
        ),
        mk(
            &format!("orders list query=seminar&page_size=100 (all {n} searched)"),
            &g.admin,
            vec!["/api/marketplace-orders/?query=seminar&page_size=100".into()],
            Some(page(seminars_per_offering * offs.len())),
            requests,
        ),
        mk(
            &format!("list name=seminar&page_size=100 (all {n} searched)"),
            &g.admin,
            vec!["/api/booking-resources/?name=seminar&page_size=100".into()],
            Some(page(seminars_per_offering * offs.len())),
            requests,
        ),
    ];
    let mut head = |name: &str, paths: Vec<String>| {
        let mut s = mk(name, &g.admin, paths, None, requests);
        s.kind = Kind::Head;
        scenarios.push(s);
    };
    head(
        "HEAD count, no filter",
        vec!["/api/booking-resources/".into()],
    );
    head("HEAD count offering_uuid=…&state=OK", per_off("state=OK"));
    let per = n / g.offerings.len();
    let feed = format!("/feeds/offerings/{}.ics", g.feed_offering.hex());
    scenarios.push(mk(
        &format!("public feed of an offering ({per} bookings), 200"),
        &g.admin,
        vec![feed.clone()],
        None,
        requests,
    ));
    let mut unchanged = mk(
        "public feed, If-None-Match, 304",
        &g.admin,
        vec![feed],
        None,
        requests,
    );
    unchanged.kind = Kind::NotModified;
    scenarios.push(unchanged);
    scenarios.push(mk(
        &format!("owner feed of an offering ({per} bookings, feed token), 200"),
        &g.admin,
        vec![g.owner_feed.clone()],
        None,
        requests,
    ));
    let mut unchanged = mk(
        "owner feed, If-None-Match, 304",
        &g.admin,
        vec![g.owner_feed.clone()],
        None,
        requests,
    );
    unchanged.kind = Kind::NotModified;
    scenarios.push(unchanged);
    let mut create = mk(
        "order create (POST, one new slot)",
        &g.admin,
        vec!["/api/marketplace-orders/".into()],
        None,
        few,
    );
    create.kind = Kind::CreateOrder {
        offering: g.order_offering,
        projects: g.projects.clone(),
    };
    scenarios.push(create);

    scenarios
}

/// One engine and number of servers: the figures of each scenario run, and the first
/// server's memory.
struct Phase {
    rows: Vec<(String, usize, Figures)>,
    rss_loaded: f64,
    rss_after: f64,
    hwm: f64,
    startup_secs: f64,
}

/// Where a phase's servers run: the data dir, or a database of the cluster, and the
/// binary serving it.
struct Target<'a> {
    /// "sled", "PostgreSQL", "PostgreSQL before 0010".
    label: &'a str,
    dir: &'a std::path::Path,
    url: Option<&'a str>,
    cluster: Option<&'a LocalCluster>,
    bin: &'a std::path::Path,
}

/// Starts `replicas` servers on the target, runs the scenarios `wanted` admits
/// (printing a row as each ends; a scenario the server fails is reported and left
/// out) and stops the servers.
async fn measure(
    http: &reqwest::Client,
    target: &Target<'_>,
    replicas: usize,
    scenarios: &[Scenario],
    wanted: &dyn Fn(&str) -> bool,
    clients: usize,
) -> Result<Phase> {
    let Target {
        label,
        dir,
        url,
        cluster,
        bin,
    } = *target;
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let server = start_server(dir, url, bin)?;
        wait_healthy(http, &server.base).await?;
        servers.push(server);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let (rss_loaded, _) = memory(pids[0])?;
    println!();
    println!(
        "{label}, {replicas} server(s), {clients} concurrent clients ({}, {}):",
        bin.display(),
        support::load()
    );
    println!();
    println!("| scenario | requests | median ms | p90 ms | p99 ms | max ms | bookcal CPU ms/req | database CPU ms/req | req/s | CPU ms/req, all servers + database (concurrent) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for s in scenarios.iter().filter(|s| wanted(&s.name)) {
        let f = match run(http, &bases, s, clients, &pids, cluster).await {
            Ok(f) => f,
            Err(e) => {
                println!("| {} | failed: {e:#} |", s.name);
                continue;
            }
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} |",
            s.name, s.requests, f.median, f.p90, f.p99, f.max, f.cpu, f.db_cpu, f.rps, f.total_cpu
        );
        rows.push((s.name.clone(), s.requests, f));
    }
    let (rss_after, hwm) = memory(pids[0])?;
    let startup_secs = servers[0].startup_secs;
    println!();
    println!("- {label} phase ended, {}", support::load());
    drop(servers);
    Ok(Phase {
        rows,
        rss_loaded,
        rss_after,
        hwm,
        startup_secs,
    })
}

/// Migration 0010 and every later one taken back, and 4 (web sessions, which landed
/// after 0010): the schema of the commit before 0010 (migrations 1 to 3, which never
/// change). It holds for schema version 10 and 11 alike (`IF EXISTS`): dropping a
/// column drops the indexes on it, and the trigram indexes of 0001 come back where 11
/// had moved them to folded columns.
const BEFORE_0010: &str = "
ALTER TABLE resources DROP COLUMN IF EXISTS name_folded,
    DROP COLUMN IF EXISTS slug_folded, DROP COLUMN IF EXISTS backend_id_folded;
ALTER TABLE projects DROP COLUMN IF EXISTS name_folded;
ALTER TABLE offerings DROP COLUMN IF EXISTS name_folded;
ALTER TABLE orders DROP COLUMN IF EXISTS resource_name_folded,
    DROP COLUMN IF EXISTS resource_name;
DROP INDEX IF EXISTS resources_first_start, resources_first_start_desc,
    resources_offering_first_start, resources_offering_first_start_desc,
    resources_offering_state, resources_created_desc, orders_resource_name_trgm,
    resources_unfolded, projects_unfolded, offerings_unfolded, orders_unfolded;
CREATE INDEX IF NOT EXISTS projects_name_trgm ON projects USING gin (lower(name) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS resources_name_trgm ON resources USING gin (lower(name) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS resources_slug_trgm ON resources USING gin (lower(slug) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS resources_backend_id_trgm
    ON resources USING gin (lower(backend_id) gin_trgm_ops);
DROP TABLE IF EXISTS web_sessions;
DELETE FROM _sqlx_migrations WHERE version >= 4;
";

/// `VACUUM ANALYZE` of a whole database: both sides of a comparison plan with fresh
/// statistics and a set visibility map (index-only scans), the state autovacuum leaves
/// a database in some time after a bulk load, whatever it has done so far.
async fn vacuum_analyze(url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A copy of the `bookcal` database (`CREATE DATABASE … TEMPLATE`, once nobody is
/// connected to it) with [`BEFORE_0010`] applied and the tables rewritten without the
/// dropped columns; both databases vacuumed and analyzed. The copy's URL.
async fn before_copy(cluster: &LocalCluster) -> Result<String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = 'bookcal'")
                .fetch_one(&mut admin)
                .await?;
        if n == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{n} sessions still on the bookcal database after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::raw_sql("CREATE DATABASE bookcal_before TEMPLATE bookcal")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let url = cluster.url("bookcal_before");
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    sqlx::raw_sql(BEFORE_0010).execute(&mut conn).await?;
    sqlx::raw_sql("VACUUM FULL resources, orders, projects, offerings")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    vacuum_analyze(&url).await?;
    vacuum_analyze(&cluster.url("bookcal")).await?;
    Ok(url)
}

/// A phase's figures of the scenario `name` (none: it failed or did not run).
fn row<'a>(p: &'a Phase, name: &str) -> Option<&'a Figures> {
    p.rows.iter().find(|(n, _, _)| n == name).map(|(_, _, f)| f)
}

/// `bookcal migrate --from FROM --to TO` (the real binary): its wall time and what it
/// reports having copied and checked.
fn migrate(from: &str, to: &str) -> Result<(f64, String)> {
    let t0 = Instant::now();
    let out = Command::new(bookcal_binary()?)
        .args(["migrate", "--from", from, "--to", to])
        .env("BOOKCAL_TOKEN_SALT", SALT)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .context("running bookcal migrate")?;
    let secs = t0.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "bookcal migrate --from {from} --to {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        secs,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// Every booking resource of a store, by id.
async fn all_resources(
    s: &bookcal::store::Store,
) -> Result<std::collections::HashMap<Id, bookcal::domain::Resource>> {
    let mut all = std::collections::HashMap::new();
    loop {
        let page = s
            .list_resources(&ResourceQuery {
                visible: Visible::everything(),
                page: Some(PageRange {
                    offset: all.len(),
                    limit: BATCH,
                }),
                ..ResourceQuery::default()
            })
            .await?;
        if page.items.is_empty() {
            return Ok(all);
        }
        all.extend(page.items.into_iter().map(|r| (r.id, r)));
    }
}

/// Every order of a store, by id.
async fn all_orders(
    s: &bookcal::store::Store,
) -> Result<std::collections::HashMap<Id, bookcal::domain::Order>> {
    use bookcal::store::query::OrderQuery;
    let mut all = std::collections::HashMap::new();
    loop {
        let page = s
            .list_orders(&OrderQuery {
                visible: Visible::everything(),
                page: Some(PageRange {
                    offset: all.len(),
                    limit: BATCH,
                }),
                ..OrderQuery::default()
            })
            .await?;
        if page.items.is_empty() {
            return Ok(all);
        }
        all.extend(page.items.into_iter().map(|o| (o.id, o)));
    }
}

/// Compares two stores record by record through the store's API (the directory,
/// every booking resource and order, calendar records, the feeds' UID key) and
/// checks an API token made on the first works on the second. The records compared.
async fn compare(
    a: &bookcal::store::Store,
    b: &bookcal::store::Store,
    token: &str,
) -> Result<usize> {
    let (da, db) = (a.directory().await?, b.directory().await?);
    if da.users != db.users || da.customers != db.customers {
        bail!("users or organisations differ");
    }
    if da.projects != db.projects || da.offerings != db.offerings {
        bail!("projects or offerings differ");
    }
    let mut records = da.users.len() + da.customers.len() + da.projects.len() + da.offerings.len();
    let (ra, rb) = (all_resources(a).await?, all_resources(b).await?);
    if ra != rb {
        let differ = ra.iter().filter(|(id, r)| rb.get(id) != Some(r)).count();
        bail!(
            "{differ} of {} booking resources differ or are missing",
            ra.len()
        );
    }
    records += ra.len();
    let (oa, ob) = (all_orders(a).await?, all_orders(b).await?);
    if oa != ob {
        let differ = oa.iter().filter(|(id, o)| ob.get(id) != Some(o)).count();
        bail!("{differ} of {} orders differ or are missing", oa.len());
    }
    records += oa.len();
    let mut ca = a.calendars().await?;
    let mut cb = b.calendars().await?;
    ca.sort_by_key(|c| c.offering);
    cb.sort_by_key(|c| c.offering);
    if ca != cb {
        bail!("calendar records differ");
    }
    records += ca.len();
    if a.feed_uid_key() != b.feed_uid_key() {
        bail!("the feeds' UID key differs");
    }
    let (ua, ub) = (a.user_by_token(token).await?, b.user_by_token(token).await?);
    if ua.is_none() || ua != ub {
        bail!("the API token does not name the same user");
    }
    Ok(records)
}

#[tokio::main]
async fn main() -> Result<()> {
    let n = env_usize("BENCH_RESOURCES", 100_000);
    let requests = env_usize("BENCH_REQUESTS", 200);
    let clients = env_usize("BENCH_CLIENTS", 4);
    let tmp = tempfile::tempdir()?;
    let dir = match std::env::var_os("BENCH_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => tmp.path().join("data"),
    };
    // BENCH_STORE=postgres: a local cluster with PostgreSQL's default durability
    // (every commit flushed, as sled flushes every write), BENCH_REPLICAS servers on
    // it; BENCH_STORE=both: sled, then the same data migrated to PostgreSQL.
    let mode = std::env::var("BENCH_STORE").unwrap_or_else(|_| "sled".into());
    if !["sled", "postgres", "both"].contains(&mode.as_str()) {
        bail!("BENCH_STORE={mode}: expected sled, postgres or both");
    }
    let default_replicas = if mode == "both" { "1 2 3" } else { "1" };
    let replicas: Vec<usize> = std::env::var("BENCH_REPLICAS")
        .unwrap_or_else(|_| default_replicas.into())
        .split_whitespace()
        .map(|v| v.parse::<usize>().map(|r| r.max(1)))
        .collect::<Result<_, _>>()
        .context("BENCH_REPLICAS: counts of servers, e.g. \"1 2 3\"")?;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let replica_only = std::env::var("BENCH_REPLICA_ONLY").unwrap_or_else(|_| {
        "retrieve one|list offering_uuid=…&state=OK&page_size=100|HEAD count offering|public feed|owner feed|order create"
            .into()
    });
    let everything = |name: &str| name.contains(&only);
    let for_replicas =
        |name: &str| name.contains(&only) && replica_only.split('|').any(|p| name.contains(p));
    let cluster = if mode == "sled" {
        None
    } else {
        Some(LocalCluster::start(Durability::Full).await?)
    };
    let url = cluster.as_ref().map(|c| c.url("bookcal"));
    let http = reqwest::Client::new();
    let gen_url = if mode == "postgres" {
        url.as_deref()
    } else {
        None
    };
    let engine = if mode == "postgres" {
        "PostgreSQL"
    } else {
        "sled"
    };
    eprintln!("generating {n} booking resources on {engine}");
    let g = generate(&dir, gen_url, n).await?;
    eprintln!("imported in {:.1} s", g.import_secs);
    let scenarios = scenarios(&g, n, requests);

    let bin = bookcal_binary()?;
    let before_bin = std::env::var_os("BENCH_BEFORE_BIN").map(PathBuf::from);
    let round_trip = std::env::var("BENCH_ROUND_TRIP").as_deref() != Ok("0");
    let sled_target = Target {
        label: "sled",
        dir: &dir,
        url: None,
        cluster: None,
        bin: &bin,
    };
    let mut sled_phase = None;
    let mut pg_phases = Vec::new();
    let mut before_phase = None;
    let mut migrations = Vec::new();
    if mode == "sled" {
        sled_phase = Some(measure(&http, &sled_target, 1, &scenarios, &everything, clients).await?);
    } else {
        let url = url.as_deref().context("cluster url")?;
        let cluster = cluster.as_ref().context("cluster")?;
        if mode == "both" {
            sled_phase =
                Some(measure(&http, &sled_target, 1, &scenarios, &everything, clients).await?);
            // The round trip before the PostgreSQL phases, whose writes (orders
            // created) the original data dir does not have.
            let from = dir.display().to_string();
            eprintln!("bookcal migrate: sled -> PostgreSQL");
            let (secs, said) = migrate(&from, url)?;
            migrations.push(("sled data dir -> PostgreSQL".to_string(), secs, said));
            let mut checked = None;
            if round_trip {
                let back = tmp.path().join("back");
                eprintln!("bookcal migrate: PostgreSQL -> sled");
                let (secs, said) = migrate(url, &back.display().to_string())?;
                migrations.push(("PostgreSQL -> new sled data dir".to_string(), secs, said));
                let a = bookcal::app::open_store(&settings(&dir, None)?).await?;
                let b = bookcal::app::open_store(&settings(&back, None)?).await?;
                let t0 = Instant::now();
                let records = compare(&a, &b, &g.admin).await?;
                drop((a, b));
                checked = Some((records, t0.elapsed().as_secs_f64()));
            }
            println!();
            println!("`bookcal migrate` (the release binary):");
            println!();
            println!("| leg | wall time | copied and checked (bookcal migrate's own report) |");
            println!("|---|---:|---|");
            for (leg, secs, said) in &migrations {
                println!("| {leg} | {secs:.1} s | {said} |");
            }
            if let Some((records, secs)) = checked {
                println!();
                println!(
                    "- the data dir after the round trip equals the original: {records} records compared (users, organisations, projects, offerings, booking resources, orders, calendar records; the feeds' UID key; an API token) in {secs:.1} s, 0 differences",
                );
            }
        }
        let before_url = match &before_bin {
            Some(_) => Some(before_copy(cluster).await?),
            None => {
                vacuum_analyze(&cluster.url("bookcal")).await?;
                None
            }
        };
        let pg_target = Target {
            label: "PostgreSQL",
            dir: &dir,
            url: Some(url),
            cluster: Some(cluster),
            bin: &bin,
        };
        for (i, count) in replicas.iter().enumerate() {
            let wanted: &dyn Fn(&str) -> bool = if i == 0 { &everything } else { &for_replicas };
            let phase = measure(&http, &pg_target, *count, &scenarios, wanted, clients).await?;
            pg_phases.push((*count, phase));
            if let (0, Some(before_bin), Some(before_url)) = (i, &before_bin, &before_url) {
                let before = Target {
                    label: "PostgreSQL before 0010",
                    dir: &dir,
                    url: Some(before_url),
                    cluster: Some(cluster),
                    bin: before_bin,
                };
                // A binary that cannot serve the copy ends this phase, not the run.
                match measure(&http, &before, 1, &scenarios, &everything, clients).await {
                    Ok(phase) => before_phase = Some(phase),
                    Err(e) => println!("\n- {}: {e:#}", before.label),
                }
            }
        }
    }

    let cell = |f: Option<&Figures>, v: &dyn Fn(&Figures) -> String| f.map_or("failed".into(), v);
    if let (Some(sled), Some((_, pg))) = (&sled_phase, pg_phases.first()) {
        println!();
        println!("Side by side (one server each; CPU per request from the sequential phase):");
        println!();
        println!("| scenario | sled median ms | PostgreSQL median ms | sled p99 ms | PostgreSQL p99 ms | sled CPU ms/req | PostgreSQL CPU ms/req (bookcal + database) | sled req/s | PostgreSQL req/s |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for s in scenarios.iter().filter(|s| everything(&s.name)) {
            let (a, b) = (row(sled, &s.name), row(pg, &s.name));
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                cell(a, &|f| format!("{:.2}", f.median)),
                cell(b, &|f| format!("{:.2}", f.median)),
                cell(a, &|f| format!("{:.2}", f.p99)),
                cell(b, &|f| format!("{:.2}", f.p99)),
                cell(a, &|f| format!("{:.2}", f.cpu)),
                cell(b, &|f| format!(
                    "{:.2} ({:.2} + {:.2})",
                    f.cpu + f.db_cpu,
                    f.cpu,
                    f.db_cpu
                )),
                cell(a, &|f| format!("{:.0}", f.rps)),
                cell(b, &|f| format!("{:.0}", f.rps)),
            );
        }
    }
    if let (Some(before), Some((_, pg))) = (&before_phase, pg_phases.first()) {
        println!();
        println!("PostgreSQL before and after migration 0010 (same data, one server each):");
        println!();
        println!("| scenario | CPU ms/req before (bookcal + database) | CPU ms/req after (bookcal + database) | median ms before | median ms after | req/s before | req/s after |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let cpu = |f: &Figures| format!("{:.2} ({:.2} + {:.2})", f.cpu + f.db_cpu, f.cpu, f.db_cpu);
        for s in scenarios.iter().filter(|s| everything(&s.name)) {
            let (a, b) = (row(before, &s.name), row(pg, &s.name));
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                cell(a, &cpu),
                cell(b, &cpu),
                cell(a, &|f| format!("{:.2}", f.median)),
                cell(b, &|f| format!("{:.2}", f.median)),
                cell(a, &|f| format!("{:.0}", f.rps)),
                cell(b, &|f| format!("{:.0}", f.rps)),
            );
        }
    }
    if pg_phases.len() > 1 {
        println!();
        println!("PostgreSQL replicas ({clients} concurrent clients spread over them):");
        println!();
        let counts: Vec<String> = pg_phases.iter().map(|(c, _)| c.to_string()).collect();
        println!(
            "| scenario | req/s with {} servers | CPU ms/req, all servers + database |",
            counts.join(" / ")
        );
        println!("|---|---:|---:|");
        for (name, _, _) in pg_phases[0]
            .1
            .rows
            .iter()
            .filter(|(n, _, _)| for_replicas(n))
        {
            let cells: Vec<(f64, f64)> = pg_phases
                .iter()
                .filter_map(|(_, p)| p.rows.iter().find(|(n, _, _)| n == name))
                .map(|(_, _, f)| (f.rps, f.total_cpu))
                .collect();
            let rps: Vec<String> = cells.iter().map(|(r, _)| format!("{r:.0}")).collect();
            let cpu: Vec<String> = cells.iter().map(|(_, c)| format!("{c:.2}")).collect();
            println!("| {name} | {} | {} |", rps.join(" / "), cpu.join(" / "));
        }
    }
    println!();
    println!(
        "- booking resources: {n} (+ {n} orders, {n} slots), offerings: {}, import ({engine}): {:.1} s",
        g.offerings.len(),
        g.import_secs
    );
    for (label, phase) in sled_phase
        .iter()
        .map(|p| ("sled", p))
        .chain(pg_phases.first().map(|(_, p)| ("PostgreSQL", p)))
        .chain(before_phase.iter().map(|p| ("PostgreSQL before 0010", p)))
    {
        println!(
            "- {label}: server start {:.1} s; RSS after loading {:.0} MiB, after the run {:.0} MiB, peak {:.0} MiB",
            phase.startup_secs, phase.rss_loaded, phase.rss_after, phase.hwm
        );
    }
    eprintln!("done, {}", support::load());
    Ok(())
}
