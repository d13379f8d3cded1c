//! Slow, idle and oversized clients against `bookcal serve` binaries, side by side:
//! the figures of BENCHMARKS.md's "Slow clients" section.
//!
//! ```sh
//! cargo run --release --example slow_clients -- BINARY [BINARY ...]
//! ```
//!
//! Every binary runs under `ulimit -n 1024` (a common default for services) with the
//! demo data, on 127.0.0.1, with its default settings, once per scenario:
//!
//! - `idle flood`: 1100 connections that never send a byte; `/health` from fresh
//!   connections during the flood (20 probes), how long the flood connections stay
//!   open, the server's resident memory, and how long SIGTERM takes with them open;
//! - `slowloris`: 1100 connections sending a request head one byte every 2 s;
//!   `/health` meanwhile and how long they are kept;
//! - `keep-alive + SIGTERM`: 20 keep-alive connections between requests, then
//!   SIGTERM: time to exit;
//! - `huge Content-Length`: an authenticated POST announcing 1 GiB and sending
//!   nothing: time to the answer;
//! - `dripping body`: a POST of 1000 bytes sent one byte a second: time to the answer;
//! - `stalled reader`: 2000 pipelined requests whose answers are never read: how
//!   long the server keeps the connection.
//!
//! Waits are capped (60 s); "held" means the cap was reached.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAP: Duration = Duration::from_secs(60);
const FLOOD: usize = 1100;

struct Server {
    child: Child,
    addr: SocketAddr,
    _log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, data: &Path) -> Server {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 1024 && exec '{}' serve", bin.display()))
        .env("BOOKCAL_DATA_DIR", data)
        .env("BOOKCAL_LISTEN", "127.0.0.1:0")
        .env("BOOKCAL_SYNC_INTERVAL_SECS", "0")
        .env("RUST_LOG", "warn,bookcal=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bookcal");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("127.0.0.1:").nth(1) {
                    if line.contains("bookcal listening") {
                        let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                        let _ = tx.send(port);
                    }
                }
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server never listened");
    Server {
        child,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        _log: log,
    }
}

fn prepare(bin: &Path, data: &Path) -> String {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("BOOKCAL_DATA_DIR", data)
            .output()
            .expect("run bookcal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    run(&["import", fixture]);
    run(&["token", "create", "--username", "alice"])
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The server's process (the shell `exec`s it, so the child's pid is bookcal's).
fn pid(s: &Server) -> u32 {
    s.child.id()
}

/// GET /health on a fresh connection: the latency, or `None` past 5 s / no answer.
async fn probe(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        buf.starts_with(b"HTTP/1.1 200").then_some(())
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Some(())) => Some(started.elapsed()),
        _ => None,
    }
}

/// 20 probes, one after another: "answered/20, median, max" over answered ones.
async fn probes(addr: SocketAddr) -> String {
    let mut got = Vec::new();
    for _ in 0..20 {
        if let Some(d) = probe(addr).await {
            got.push(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got.sort();
    if got.is_empty() {
        return "0/20 answered".into();
    }
    format!(
        "{}/20 answered, median {:.0} ms, max {:.0} ms",
        got.len(),
        got[got.len() / 2].as_secs_f64() * 1000.0,
        got[got.len() - 1].as_secs_f64() * 1000.0
    )
}

/// Waits until every stream is closed by the server, up to the cap: the time, or
/// "held" with how many are still open.
async fn closed_after(streams: Vec<TcpStream>, since: Instant) -> String {
    let total = streams.len();
    let mut tasks = Vec::new();
    for mut s in streams {
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::Instant::from_std(since) + CAP;
            loop {
                match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    Ok(Ok(_)) => continue,
                    Err(_) => return false,
                }
            }
        }));
    }
    let mut open = 0;
    for t in tasks {
        if !t.await.unwrap_or(false) {
            open += 1;
        }
    }
    if open == 0 {
        format!(
            "all {total} closed after {:.1} s",
            since.elapsed().as_secs_f64()
        )
    } else {
        format!("{open}/{total} still open after {} s (held)", CAP.as_secs())
    }
}

async fn connect_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        {
            out.push(s);
        }
    }
    out
}

/// SIGTERM, then the time to exit (capped).
async fn terminate(s: &mut Server) -> String {
    let started = Instant::now();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(s.child.id().to_string())
        .status();
    while started.elapsed() < CAP {
        if let Ok(Some(_)) = s.child.try_wait() {
            return format!("{:.2} s", started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    format!("not exited after {} s (held)", CAP.as_secs())
}

async fn idle_flood(bin: &Path, data: &Path) -> Vec<(String, String)> {
    let mut s = start(bin, data);
    let since = Instant::now();
    let flood = connect_many(s.addr, FLOOD).await;
    let opened = flood.len();
    let health = probes(s.addr).await;
    let rss = rss_mib(pid(&s));
    let closing = tokio::spawn(closed_after(flood, since));
    // SIGTERM with whatever is still open of the flood, once the probes are done.
    let exit = terminate(&mut s).await;
    let closed = closing.await.unwrap_or_default();
    vec![
        ("idle flood: connections opened".into(), opened.to_string()),
        ("idle flood: /health during it".into(), health),
        ("idle flood: server RSS".into(), format!("{rss:.0} MiB")),
        ("idle flood: SIGTERM to exit".into(), exit),
        ("idle flood: flood connections".into(), closed),
    ]
}

async fn slowloris(bin: &Path, data: &Path) -> Vec<(String, String)> {
    let s = start(bin, data);
    let since = Instant::now();
    let flood = connect_many(s.addr, FLOOD).await;
    let n = flood.len();
    let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for mut c in flood {
        let closed_tx = closed_tx.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::from_std(since) + CAP;
            if c.write_all(b"GET /health HTTP/1.1\r\nX-A: ").await.is_err() {
                let _ = closed_tx.send(true);
                return;
            }
            loop {
                if tokio::time::Instant::now() >= deadline {
                    let _ = closed_tx.send(false);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                if c.write_all(b"a").await.is_err() {
                    let _ = closed_tx.send(true);
                    return;
                }
            }
        });
    }
    drop(closed_tx);
    let health = probes(s.addr).await;
    let mut rx = closed_rx;
    let mut held = 0;
    while let Some(closed) = rx.recv().await {
        if !closed {
            held += 1;
        }
    }
    let kept = if held == 0 {
        format!(
            "all {n} cut off within {:.0} s",
            since.elapsed().as_secs_f64()
        )
    } else {
        format!("{held}/{n} still open after {} s (held)", CAP.as_secs())
    };
    drop(s);
    vec![
        ("slowloris: /health during it".into(), health),
        ("slowloris: slow connections".into(), kept),
    ]
}

async fn keep_alive_sigterm(bin: &Path, data: &Path) -> Vec<(String, String)> {
    let mut s = start(bin, data);
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.addr).await.expect("connect");
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf).await;
        held.push(c);
    }
    let exit = terminate(&mut s).await;
    drop(held);
    vec![("20 keep-alive connections: SIGTERM to exit".into(), exit)]
}

async fn answer_time(addr: SocketAddr, head: String, drip: bool) -> String {
    let started = Instant::now();
    let attempt = async {
        let s = TcpStream::connect(addr).await.ok()?;
        let (mut rd, mut wr) = s.into_split();
        wr.write_all(head.as_bytes()).await.ok()?;
        let writer = tokio::spawn(async move {
            if drip {
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if wr.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            } else {
                // Keep the connection open, sending nothing.
                tokio::time::sleep(CAP * 2).await;
                drop(wr);
            }
        });
        let mut buf = [0u8; 64];
        let n = rd.read(&mut buf).await.ok()?;
        writer.abort();
        Some(
            String::from_utf8_lossy(&buf[..n])
                .chars()
                .take(12)
                .collect::<String>(),
        )
    };
    match tokio::time::timeout(CAP, attempt).await {
        Ok(Some(status)) if !status.is_empty() => {
            format!(
                "{} after {:.2} s",
                status.trim(),
                started.elapsed().as_secs_f64()
            )
        }
        Ok(_) => format!(
            "closed without an answer after {:.2} s",
            started.elapsed().as_secs_f64()
        ),
        Err(_) => format!("no answer in {} s (held)", CAP.as_secs()),
    }
}

async fn bodies(bin: &Path, data: &Path, token: &str) -> Vec<(String, String)> {
    let s = start(bin, data);
    let head = |len: usize| {
        format!(
            "POST /api/marketplace-orders/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let (huge, drip) = tokio::join!(
        answer_time(s.addr, head(1 << 30), false),
        answer_time(s.addr, head(1000), true),
    );
    vec![
        ("POST announcing 1 GiB, sending nothing".into(), huge),
        ("POST of 1000 bytes at 1 byte/s".into(), drip),
    ]
}

async fn stalled_reader(bin: &Path, data: &Path) -> Vec<(String, String)> {
    let s = start(bin, data);
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let _ = socket.set_recv_buffer_size(4096);
    let c = socket.connect(s.addr).await.expect("connect");
    let (mut rd, mut wr) = c.into_split();
    let started = Instant::now();
    tokio::spawn(async move {
        for _ in 0..2000 {
            if wr
                .write_all(b"GET /api/schema/ HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // Read nothing for the cap, then see whether the server gave up.
    tokio::time::sleep(CAP).await;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let outcome = loop {
        match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break "dropped by the server",
            Ok(Ok(n)) => total += n,
            Err(_) => break "still open",
        }
        if total > 400 << 20 {
            break "still writing";
        }
    };
    let rss = rss_mib(pid(&s));
    vec![(
        "2000 pipelined requests never read".into(),
        format!(
            "{outcome} ({:.1} MiB were buffered for the client; server RSS {rss:.0} MiB after {:.0} s)",
            total as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        ),
    )]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bins: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    assert!(!bins.is_empty(), "usage: slow_clients BINARY [BINARY ...]");
    let mut columns = Vec::new();
    for bin in &bins {
        eprintln!("== {}", bin.display());
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let token = prepare(bin, &data);
        let mut rows = Vec::new();
        rows.extend(idle_flood(bin, &data).await);
        rows.extend(slowloris(bin, &data).await);
        rows.extend(keep_alive_sigterm(bin, &data).await);
        rows.extend(bodies(bin, &data, &token).await);
        rows.extend(stalled_reader(bin, &data).await);
        for (k, v) in &rows {
            eprintln!("{k}: {v}");
        }
        columns.push(rows);
    }
    support::print_columns(&bins, &columns);
}
