//! What the benchmarks that run `bookcal serve` as a child process share: finding the
//! binary, starting it on a free loopback port and waiting for it, and reading its CPU
//! time, memory and threads from `/proc` (figures that other load on the machine
//! hardly changes, unlike wall-clock latency); and the offerings and bookings they
//! add to the demo data.
#![allow(dead_code)] // each benchmark uses a part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bookcal::domain::{Category, Id, Offering, OfferingState, Resource, ResourceState, Slot};
use serde_json::Value;

/// `bookcal serve` running as a child process; killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// From spawning to the "listening" log line (store opened, catalog built).
    pub startup_secs: f64,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary: `BOOKCAL_BIN`, or `bookcal` next to the examples' directory
/// (`target/release/bookcal` for `target/release/examples/…`).
pub fn bookcal_binary() -> Result<PathBuf> {
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

/// Starts `bookcal serve` on the data dir with JSON logs and the extra environment
/// `env`, on 127.0.0.1:0, and waits for its "listening" line.
pub fn start_server(dir: &Path, env: &[(&str, String)]) -> Result<Server> {
    let t0 = Instant::now();
    let mut cmd = Command::new(bookcal_binary()?);
    cmd.arg("serve")
        .env("BOOKCAL_DATA_DIR", dir)
        .env("BOOKCAL_LISTEN", "127.0.0.1:0")
        .env("BOOKCAL_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().context("starting bookcal serve")?;
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

/// Waits until `/health` answers 200 (at most a minute).
pub async fn wait_healthy(http: &reqwest::Client, base: &str) -> Result<()> {
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU time (user + system, all threads, also those that ended) of a process in
/// milliseconds, from `/proc/<pid>/stat` (clock ticks of 10 ms, Linux's USER_HZ).
pub fn cpu_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(f.get(i).context("stat field")?.parse::<f64>()?) };
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}

/// Memory and threads of a process from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident set, MiB.
    pub rss: f64,
    /// Peak resident set, MiB.
    pub hwm: f64,
    pub threads: u32,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(Memory {
        rss: field("VmRSS:") / 1024.0,
        hwm: field("VmHWM:") / 1024.0,
        threads: field("Threads:") as u32,
    })
}

/// The machine, for the benchmark's header: cores, CPU model, kernel, load average.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}, {}", kernel.trim(), load())
}

/// The 1, 5 and 15 minute load averages.
pub fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<&str> = l.split_whitespace().take(3).collect();
    format!("load average {}", v.join(" "))
}

/// A value of a Prometheus text exposition: the sum of the samples of `name` whose
/// label set contains `label` (empty: all).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The demo data's provider organisation ("northlab"), a project and a user
/// ("alice"), for benchmarks that add offerings and bookings to it (on either engine).
pub async fn demo_people(store: &bookcal::store::Store) -> Result<(Id, Id, Id)> {
    let dir = store.directory().await?;
    let customer = dir
        .customers
        .values()
        .find(|c| c.slug == "northlab")
        .map(|c| c.id)
        .context("customer northlab")?;
    let project = *dir.projects.keys().min().context("a project")?;
    let user = dir.user_by_name("alice").context("user alice")?.id;
    Ok((customer, project, user))
}

/// CPU time in milliseconds of a local PostgreSQL cluster (none: 0): the postmaster's
/// own, what its ended children left it (`cutime`/`cstime`) and its live children's
/// (the backends, the writers), from `/proc` (10 ms ticks).
pub fn db_cpu_ms(cluster: Option<&bookcal::store::pg::cluster::LocalCluster>) -> Result<f64> {
    let Some(c) = cluster else { return Ok(0.0) };
    let pidfile = std::fs::read_to_string(c.dir().join("data/postmaster.pid"))?;
    let master: u32 = pidfile
        .lines()
        .next()
        .context("postmaster.pid")?
        .trim()
        .parse()?;
    let fields = |pid: u32| -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit(')').next()?;
        Some(rest.split_whitespace().map(String::from).collect())
    };
    let num = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    let own = fields(master).context("postmaster stat")?;
    let mut ticks = num(&own, 11) + num(&own, 12) + num(&own, 13) + num(&own, 14);
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(f) = fields(pid) {
            if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(master) {
                ticks += num(&f, 11) + num(&f, 12);
            }
        }
    }
    Ok(ticks * 10.0)
}

/// An active offering of `customer` (Europe/Berlin).
pub fn offering(customer: Id, i: usize) -> Offering {
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

/// An accepted booking of `n` one-hour slots, 8 hours apart, from tomorrow on.
pub fn booking(offering: Id, project: Id, user: Id, n: usize) -> Resource {
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

/// The process's threads by name (`/proc/<pid>/task/*/comm`), e.g. "tokio-runtime-w: 2".
pub fn thread_names(pid: u32) -> String {
    let mut names = std::collections::BTreeMap::<String, usize>::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(n) = std::fs::read_to_string(t.path().join("comm")) {
                *names.entry(n.trim().to_string()).or_default() += 1;
            }
        }
    }
    names
        .iter()
        .map(|(n, c)| format!("{n}: {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints a Markdown table with one column of figures per binary, side by side:
/// `columns[b]` holds binary `b`'s (scenario, figure) rows, in the same order.
pub fn print_columns<N: std::fmt::Display>(bins: &[PathBuf], columns: &[Vec<(N, String)>]) {
    println!(
        "| scenario | {} |",
        bins.iter()
            .map(|b| b.display().to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(bins.len()));
    let Some(first) = columns.first() else {
        return;
    };
    for (i, (name, _)) in first.iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[i].1.as_str()).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}
