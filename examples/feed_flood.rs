//! Anonymous feed flood against `bookcal serve` binaries, side by side: the figures
//! of BENCHMARKS.md's "Feed flood" section.
//!
//! ```sh
//! cargo build --release --example feed_flood
//! target/release/examples/feed_flood [BOOKCAL_X=V ...] BINARY [[BOOKCAL_X=V ...] BINARY ...]
//! ```
//!
//! `BOOKCAL_...=VALUE` arguments are settings for the servers of the binaries after
//! them (the same binary twice, with a setting off and on, compares just that).
//!
//! Each binary gets the same data through its own command line and API (so older
//! builds can be compared): the demo users, a "flooded" offering with `FLOOD_EVENTS`
//! (1000) bookings whose calendar is shared (made public through the binary's own
//! emulator and share action) and an unrelated "quiet" offering with 100 bookings whose
//! owner reads it through a feed token. Then, on 127.0.0.1:
//!
//! - idle: the owner fetches the quiet feed `SAMPLES` (200) times, one after another
//!   (full 200 answers, no validators), from 127.0.0.1; then `SAMPLES / 2` times with
//!   a new booking on it (alice, through the API) before each fetch, so each fetch
//!   needs a fresh render (only the fetch is timed);
//! - flood: `FLOOD_CLIENTS` (64) anonymous clients from other addresses (127.0.0.2,
//!   and with `FLOOD_ADDRS` > 1 spread over that many: 127.0.0.2, .3, ...), that
//!   ignore `Retry-After` and fetch the flooded public feed with a distinct `from`/`to` window each time (each
//!   covering most of its bookings, shifted by the minute), for `FLOOD_SECS` (20);
//!   meanwhile the owner's quiet-feed latencies are measured again (both ways), and
//!   the server's resident memory is sampled;
//! - after: the flood stops; memory 5 s later and the quiet feed once more.
//!
//! The flooding clients run on their own tokio runtime (`FLOOD_THREADS`, 2, worker
//! threads), apart from the owner's client (one thread), so the owner's requests never
//! wait behind the flood's tasks inside this process. `FLOOD_PIN=S,F` pins the server,
//! its emulator and the owner's client to CPU `S` and the flooding clients to CPU `F`
//! (the servers through `taskset -c S`, this process's threads through their
//! affinity): an attacker is on another machine, so this is the fair run on a
//! two-core machine. Run the whole under `nice -n -10` so other work on the machine
//! disturbs less (the children inherit it). `REPEAT` (1) runs the binaries that many
//! times, interleaved (a, b, a, b, ...), a column each, to show the spread. Each
//! column records the load average (one minute) before and after it.
//! `FLOOD_PREPARE=DIR` only makes the data set in `DIR` with the first binary (the
//! server stops, the data stays) and prints the feeds' paths: for a profiled server.
//!
//! Prints one Markdown table, a column per binary (and repetition).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `FLOOD_PIN=S,F`: the CPU of the server and the owner's client, and the CPU of
/// the flooding clients.
fn pinning() -> Option<(usize, usize)> {
    let spec = std::env::var("FLOOD_PIN").ok()?;
    let (s, f) = spec.split_once(',')?;
    Some((s.trim().parse().ok()?, f.trim().parse().ok()?))
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
fn pin_thread(cpu: usize) {
    assert!(
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
        "cannot pin a thread to CPU {cpu}"
    );
}

/// `bin`, started on the server's CPU when pinning.
fn bookcal(bin: &Path) -> Command {
    match pinning() {
        Some((server, _)) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(server.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// The one-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// This process's nice value.
fn niceness() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    // Field 19 (nice), counted from the state field (3) here.
    after.split_whitespace().nth(16).unwrap_or("?").to_owned()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bin args` and waits for a line containing `needle`; returns the line.
fn spawn_until(mut cmd: Command, needle: &'static str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(needle) {
                    let _ = tx.send(line);
                }
            }
        });
    }
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("no {needle:?} from the process"));
    (Proc(child), line)
}

fn port_in(line: &str) -> u16 {
    let rest = line.rsplit("127.0.0.1:").next().expect("an address");
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a port")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The data set: demo people, the two offerings and their bookings.
fn data_set(flood_events: usize, quiet_events: usize) -> Value {
    let demo: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json"))
            .expect("demo data"),
    )
    .expect("json");
    let offering = |slug: &str, name: &str| {
        json!({"name": name, "slug": slug, "customer": "northlab", "time_zone": "UTC",
               "availability": [{"from_days": -60, "to_days": 400}]})
    };
    let mut bookings = Vec::new();
    for (slug, n) in [("flooded", flood_events), ("quiet", quiet_events)] {
        for i in 0..n {
            // Half-hour slots, 16 a day, from 20 days ago (inside the default window).
            let day = i64::try_from(i / 16).unwrap_or(0) - 20;
            let minutes = 8 * 60 + 30 * (i % 16);
            bookings.push(json!({
                "name": format!("Booking {i} of {slug}"),
                "offering": slug,
                "project": "imaging",
                "created_by": "alice",
                "state": "OK",
                "slots": [{"days": day, "at": format!("{:02}:{:02}", minutes / 60, minutes % 60), "hours": 0.5}],
            }));
        }
    }
    json!({
        "users": demo["users"],
        "customers": demo["customers"],
        "projects": demo["projects"],
        "offerings": [offering("flooded", "Flooded room"), offering("quiet", "Quiet room")],
        "bookings": bookings,
    })
}

fn cli(bin: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("BOOKCAL_DATA_DIR", data)
        .output()
        .expect("run bookcal");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn status_of(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The server's user+system CPU seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from the state field (3) here.
    (ticks(11) + ticks(12)) / 100.0
}

/// `n` sequential GETs of `url`: "p50 / p99 ms", and the failures.
async fn latencies(http: &reqwest::Client, url: &str, n: u64) -> (f64, f64, u64) {
    let mut got = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        let started = Instant::now();
        match http.get(url).send().await {
            Ok(r) if r.status() == 200 => {
                let _ = r.bytes().await;
                got.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            _ => failed += 1,
        }
    }
    got.sort_by(f64::total_cmp);
    let at = |q: f64| {
        got.get(((got.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), failed)
}

/// Books a new slot on the quiet offering (as alice, through the API) before each
/// of `n` GETs of its feed, so every GET needs a fresh render: "p50 / p99 ms" of the
/// GETs only, and the failures.
struct Booker {
    http: reqwest::Client,
    orders: String,
    body: Value,
    alice: String,
    next: usize,
}

impl Booker {
    async fn book(&mut self) {
        // Half-hour slots from 45 days ahead, 16 a day, none taken before.
        let i = self.next;
        self.next += 1;
        let day = chrono::Utc::now().date_naive() + chrono::Days::new(45 + (i / 16) as u64);
        let start = day.and_hms_opt(8, 0, 0).expect("time").and_utc()
            + chrono::Duration::minutes(30 * (i % 16) as i64);
        let end = start + chrono::Duration::minutes(30);
        let mut body = self.body.clone();
        body["attributes"]["schedules"] = json!([{
            "start": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "end": end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }]);
        let r = self
            .http
            .post(&self.orders)
            .header("Authorization", format!("Token {}", self.alice))
            .json(&body)
            .send()
            .await
            .expect("order");
        assert_eq!(r.status(), 201, "booking the quiet offering");
    }
}

async fn fresh_latencies(
    http: &reqwest::Client,
    url: &str,
    n: u64,
    booker: &mut Booker,
) -> (f64, f64, u64) {
    let mut got = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        booker.book().await;
        let (p50, _, f) = latencies(http, url, 1).await;
        failed += f;
        if f == 0 {
            got.push(p50);
        }
    }
    got.sort_by(f64::total_cmp);
    let at = |q: f64| {
        got.get(((got.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), failed)
}

async fn run(
    bin: &Path,
    settings: &[(String, String)],
    flood_rt: &tokio::runtime::Handle,
) -> Vec<(&'static str, String)> {
    let load_before = load_average();
    let flood_events = knob("FLOOD_EVENTS", 1000) as usize;
    let samples = knob("SAMPLES", 200);
    let clients = knob("FLOOD_CLIENTS", 64);
    let flood_secs = knob("FLOOD_SECS", 20);
    let addrs = knob("FLOOD_ADDRS", 1).clamp(1, 250);
    let tmp = tempfile::tempdir().expect("tmp");
    // FLOOD_PREPARE=DIR: the data set is made in DIR and kept (for profiling).
    let prepare = std::env::var_os("FLOOD_PREPARE").map(PathBuf::from);
    let root = prepare.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&root).expect("the data set's directory");
    let data = root.join("data");
    let set = root.join("set.json");
    std::fs::write(&set, data_set(flood_events, 100).to_string()).expect("write");
    cli(bin, &data, &["import", set.to_str().expect("path")]);
    let owner = cli(bin, &data, &["token", "create", "--username", "owner"]);
    let alice = cli(bin, &data, &["token", "create", "--username", "alice"]);

    // The binary's own emulator, so the share action really makes the calendar public.
    let key = root.join("key.json");
    let mut emu = bookcal(bin);
    emu.args([
        "emulator",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .arg("--key-out")
    .arg(&key)
    .env("RUST_LOG", "info");
    let (_emu, emu_line) = spawn_until(emu, "listening");
    let emu_port = port_in(&emu_line);

    let mut serve = bookcal(bin);
    serve.envs(settings.iter().map(|(k, v)| (k, v)));
    serve
        .arg("serve")
        .env("BOOKCAL_DATA_DIR", &data)
        .env("BOOKCAL_LISTEN", "127.0.0.1:0")
        .env("BOOKCAL_SYNC_INTERVAL_SECS", "0")
        .env(
            "BOOKCAL_GOOGLE_ROOT_URL",
            format!("http://127.0.0.1:{emu_port}/"),
        )
        .env("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", &key)
        .env("BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE", "600000")
        .env("RUST_LOG", "warn,bookcal=info");
    let (server, line) = spawn_until(serve, "bookcal listening");
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{}", port_in(&line));

    let api = reqwest::Client::new();
    let offerings: Value = api
        .get(format!("{base}/api/booking-offerings/?page_size=100"))
        .header("Authorization", format!("Token {owner}"))
        .send()
        .await
        .expect("offerings")
        .json()
        .await
        .expect("json");
    let uuid = |name: &str| {
        offerings
            .as_array()
            .expect("a list")
            .iter()
            .find(|o| o["name"] == name)
            .and_then(|o| o["uuid"].as_str())
            .expect("the offering")
            .replace('-', "")
    };
    let (flooded, quiet) = (uuid("Flooded room"), uuid("Quiet room"));
    let r = api
        .post(format!(
            "{base}/api/booking-offerings/{flooded}/share_google_calendar/"
        ))
        .header("Authorization", format!("Token {owner}"))
        .send()
        .await
        .expect("share");
    assert!(r.status().is_success(), "share: {}", r.status());
    let public = format!("{base}/feeds/offerings/{flooded}.ics");
    let started = Instant::now();
    while api
        .get(&public)
        .send()
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the calendar never became public"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let token: Value = api
        .post(format!("{base}/api/booking-offerings/{quiet}/feed_tokens/"))
        .header("Authorization", format!("Token {owner}"))
        .json(&json!({"name": "owner's calendar app"}))
        .send()
        .await
        .expect("feed token")
        .json()
        .await
        .expect("json");
    let quiet_url = token["url"].as_str().expect("url").to_owned();
    let project: Value = api
        .get(format!("{base}/api/marketplace-orders/?page_size=1"))
        .header("Authorization", format!("Token {alice}"))
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    let mut booker = Booker {
        http: api.clone(),
        orders: format!("{base}/api/marketplace-orders/"),
        body: json!({
            "offering": format!("{base}/api/marketplace-public-offerings/{quiet}/"),
            "project": project[0]["project"],
            "attributes": {"name": "Owner's own booking"},
        }),
        alice,
        next: 0,
    };

    if prepare.is_some() {
        // The server stops when this returns; its data stays for a profiled server.
        let path = |u: &str| u.split_once("/feeds/").map(|(_, p)| format!("/feeds/{p}"));
        println!("data {}", data.display());
        println!("quiet {}", path(&quiet_url).unwrap_or_default());
        println!("public {}", path(&public).unwrap_or_default());
        return Vec::new();
    }
    let owner_http = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .build()
        .expect("client");
    // Warm: the first render of the quiet feed is not part of the figures.
    let _ = latencies(&owner_http, &quiet_url, 3).await;
    let rss_idle = status_of(pid, "VmRSS:");
    let (idle50, idle99, idle_failed) = latencies(&owner_http, &quiet_url, samples).await;
    let (ridle50, ridle99, ridle_failed) =
        fresh_latencies(&owner_http, &quiet_url, samples / 2, &mut booker).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // One HTTP client per flooding address: 127.0.0.2, 127.0.0.3, ...
    let flood_http: Vec<reqwest::Client> = (0..addrs)
        .map(|a| {
            let last = u8::try_from(2 + a).expect("at most 250 addresses");
            reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client")
        })
        .collect();
    let start = chrono::Utc::now() - chrono::Duration::days(25);
    let cpu_before = cpu_secs(pid);
    let flood_started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, stop, answered, refused, failed) = (
            flood_http[usize::try_from(c % addrs).unwrap_or(0)].clone(),
            stop.clone(),
            answered.clone(),
            refused.clone(),
            failed.clone(),
        );
        let public = public.clone();
        tasks.push(flood_rt.spawn(async move {
            let mut k: u64 = c;
            while !stop.load(Ordering::Relaxed) {
                // A distinct window every time, each covering most of the bookings
                // (so each is a full render): start and end move by the minute.
                let from = start + chrono::Duration::minutes(i64::try_from(k % 1440).unwrap_or(0));
                let to = from
                    + chrono::Duration::days(40)
                    + chrono::Duration::minutes(i64::try_from(k / 1440).unwrap_or(0));
                let (from, to) = (
                    from.format("%Y-%m-%dT%H:%M:%SZ"),
                    to.format("%Y-%m-%dT%H:%M:%SZ"),
                );
                k += clients;
                match http
                    .get(format!("{public}?from={from}&to={to}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        let _ = r.bytes().await;
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Let the flood build up, then measure the quiet feed while sampling memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(status_of(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let (flood50, flood99, flood_failed) = latencies(&owner_http, &quiet_url, samples).await;
    let (rflood50, rflood99, rflood_failed) =
        fresh_latencies(&owner_http, &quiet_url, samples / 2, &mut booker).await;
    let left = Duration::from_secs(flood_secs).saturating_sub(flood_started.elapsed());
    tokio::time::sleep(left).await;
    stop.store(true, Ordering::Relaxed);
    let flood_wall = flood_started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let cpu_flood = cpu_secs(pid) - cpu_before;
    let rss_peak = sampler.await.unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after = status_of(pid, "VmRSS:");
    let (after50, after99, after_failed) = latencies(&owner_http, &quiet_url, samples).await;
    let hwm = status_of(pid, "VmHWM:");

    let ms = |a: f64, b: f64, f: u64| {
        if f == 0 {
            format!("{a:.1} / {b:.1}")
        } else {
            format!("{a:.1} / {b:.1} ({f} failed)")
        }
    };
    let (ok, no, err) = (
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    vec![
        (
            "quiet feed, unchanged: p50 / p99 ms, idle",
            ms(idle50, idle99, idle_failed),
        ),
        (
            "quiet feed, unchanged: p50 / p99 ms, during the flood",
            ms(flood50, flood99, flood_failed),
        ),
        (
            "quiet feed, unchanged: p99 during / idle",
            format!("{:.1}x", flood99 / idle99),
        ),
        (
            "quiet feed, unchanged: p50 / p99 ms, after the flood",
            ms(after50, after99, after_failed),
        ),
        (
            "quiet feed, a booking before each GET: p50 / p99 ms, idle",
            ms(ridle50, ridle99, ridle_failed),
        ),
        (
            "quiet feed, a booking before each GET: p50 / p99 ms, during the flood",
            ms(rflood50, rflood99, rflood_failed),
        ),
        (
            "quiet feed, a booking before each GET: p99 during / idle",
            format!("{:.1}x", rflood99 / ridle99),
        ),
        (
            "flood answers in the run (200 / other status, 429 after the limit / failed)",
            format!("{ok} / {no} / {err} in {flood_wall:.0} s"),
        ),
        (
            "server CPU during the flood",
            format!(
                "{cpu_flood:.1} s ({:.0} % of one core)",
                100.0 * cpu_flood / flood_wall
            ),
        ),
        ("server RSS MiB idle", format!("{rss_idle:.0}")),
        (
            "server RSS MiB peak during the flood",
            format!("{rss_peak:.0}"),
        ),
        ("server RSS MiB 5 s after", format!("{rss_after:.0}")),
        ("server VmHWM MiB", format!("{hwm:.0}")),
        (
            "load average (1 min) before / after; nice; pinning",
            format!(
                "{load_before} / {}; {}; {}",
                load_average(),
                niceness(),
                pinning().map_or("none".to_owned(), |(s, f)| format!(
                    "server+owner CPU {s}, flood CPU {f}"
                ))
            ),
        ),
    ]
}

fn main() {
    // `NAME=VALUE` arguments set the server's environment for the binaries after them
    // (a column per binary, named with its settings).
    let mut bins: Vec<(PathBuf, Vec<(String, String)>)> = Vec::new();
    let mut settings = Vec::new();
    for a in std::env::args().skip(1) {
        match a.split_once('=') {
            Some((k, v)) if k.starts_with("BOOKCAL_") => {
                settings.push((k.to_owned(), v.to_owned()))
            }
            _ => bins.push((PathBuf::from(a), settings.clone())),
        }
    }
    assert!(!bins.is_empty(), "usage: feed_flood BINARY [BINARY ...]");
    let pin = pinning();
    if let Some((server, _)) = pin {
        // The owner's client (this thread, and the threads it starts) beside the server.
        pin_thread(server);
    }
    let owner_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the owner's runtime");
    let flood_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            usize::try_from(knob("FLOOD_THREADS", 2))
                .unwrap_or(2)
                .max(1),
        )
        .enable_all()
        .on_thread_start(move || {
            if let Some((_, flood)) = pin {
                pin_thread(flood);
            }
        })
        .build()
        .expect("the flood's runtime");
    let repeat = knob("REPEAT", 1).max(1);
    let name = |(bin, settings): &(PathBuf, Vec<(String, String)>), rep: u64| {
        let mut n = bin.display().to_string();
        for (k, v) in settings {
            n = format!("{k}={v} {n}");
        }
        if repeat > 1 {
            n = format!("{n} #{}", rep + 1);
        }
        n
    };
    if std::env::var_os("FLOOD_PREPARE").is_some() {
        owner_rt.block_on(run(&bins[0].0, &bins[0].1, flood_rt.handle()));
        return;
    }
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for rep in 0..repeat {
        for b in &bins {
            let n = name(b, rep);
            eprintln!("== {n}");
            let rows = owner_rt.block_on(run(&b.0, &b.1, flood_rt.handle()));
            for (k, v) in &rows {
                eprintln!("{k}: {v}");
            }
            columns.push(rows);
            names.push(n);
        }
    }
    println!("| scenario | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    for (i, (row, _)) in columns[0].iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[i].1.as_str()).collect();
        println!("| {row} | {} |", cells.join(" | "));
    }
}
