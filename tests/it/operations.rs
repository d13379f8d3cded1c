//! Operating bookcal: the config commands, `/ready`, `/metrics` after a scheduled
//! sync against the emulator, secrets kept out of debug logs, and a graceful
//! SIGTERM shutdown of the real binary that keeps what was written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{at, eventually_async, spawn_app};
use bookcal::config::Settings;
use bookcal::domain::calendar::CalendarState;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_bookcal");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");

// ---------------------------------------------------------------- config commands

fn bookcal(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("BOOKCAL_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bookcal")
}

#[test]
fn config_example_prints_the_committed_example_file_which_loads() {
    let out = bookcal(&["config", "example"], &[]);
    assert!(out.status.success());
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/bookcal.example.toml");
    let file = std::fs::read_to_string(committed).expect("deploy/bookcal.example.toml");
    assert_eq!(String::from_utf8_lossy(&out.stdout), file);
    let s = Settings::load_with(Some(Path::new(committed)), &|_| None).expect("it loads");
    assert_eq!(s.shutdown_timeout_secs, 30);
}

#[test]
fn config_check_says_ok_or_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"0.0.0.0:8080\"\n[sync]\ninterval_secs = 60\n",
    )
    .expect("w");
    let out = bookcal(&["config", "check", good.to_str().expect("utf-8")], &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let cases = [
        ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
        ("log_format = \"xml\"\n", "log_format"),
        ("shutdown_timeout_secs = 0\n", "shutdown_timeout_secs"),
        ("[google]\nroot_urll = \"x\"\n", "root_urll"),
        ("listen = 8080\n", "listen"),
    ];
    for (text, key) in cases {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).expect("w");
        let out = bookcal(&["config", "check", bad.to_str().expect("utf-8")], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} passed");
        assert!(err.contains(key), "{text:?}: {err}");
    }
    // The environment is checked too: it overrides the file.
    let out = bookcal(
        &["config", "check", good.to_str().expect("utf-8")],
        &[("BOOKCAL_SYNC_MAX_DELETE_SHARE", "7")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync.max_delete_share"));
}

// ---------------------------------------------------------------- /ready and /metrics

#[tokio::test]
async fn ready_is_503_until_the_scheduler_runs_and_200_while_it_does() {
    let app = spawn_app().await;
    let r = app.req(reqwest::Method::GET, None, "/ready", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["status"], "unavailable");
    assert!(r.body["reason"]
        .as_str()
        .is_some_and(|s| s.contains("scheduler")));
    // /health only says the process is up.
    let h = app.req(reqwest::Method::GET, None, "/health", None).await;
    assert_eq!((h.status, h.body), (200, json!({"status": "ok"})));

    let scheduler = app.start_scheduler();
    let mut ready = false;
    for _ in 0..2000 {
        let r = app.req(reqwest::Method::GET, None, "/ready", None).await;
        if r.status == 200 {
            assert_eq!(r.body["status"], "ready");
            assert!(r.body["google"]["credentials"].is_array(), "{}", r.body);
            ready = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(ready, "/ready never answered 200");
    scheduler.stop().await;
    let r = app.req(reqwest::Method::GET, None, "/ready", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["reason"], "the scheduler is not running");
}

/// One sample of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the exposition text; panics on any line that is not a comment, a blank
/// or a well-formed sample of a family declared by `# TYPE` before it.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name}"
        );
        let family = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        assert!(typed.contains_key(family), "{name} has no # TYPE");
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices();
            let mut key = String::new();
            loop {
                let (_, c) = chars.next().expect("unterminated labels");
                match c {
                    '}' => {
                        let (i, _) = chars.next().expect("value after labels");
                        rest = &r[i..];
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("unterminated value").1 {
                                '"' => break,
                                '\\' => match chars.next().expect("escape").1 {
                                    'n' => value.push('\n'),
                                    c @ ('\\' | '"') => value.push(c),
                                    c => panic!("bad escape \\{c} in {line}"),
                                },
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
        }
        let value: f64 = rest
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn metrics_after_a_scheduled_sync_show_requests_runs_google_calls_and_last_success() {
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key");
    let mut settings = Settings {
        data_dir: dir.path().join("store"),
        // The engine the suite runs on (sled in `data_dir`, or a fresh database).
        store_url: crate::helpers::engines::default_store_url()
            .await
            .map(bookcal::config::Secret::new),
        listen: "127.0.0.1:0".parse().expect("address"),
        ..Settings::default()
    };
    settings.google.root_url = emu.root_url();
    settings.google.service_account_key = Some(key);
    settings.google.requests_per_minute = 60_000;
    settings.sync.interval_secs = 0;
    let metrics_token = "metrics-token-7f3a9c1e5b";
    settings.http.metrics_token = Some(bookcal::config::Secret::new(metrics_token));
    let app = bookcal::app::Application::build(settings)
        .await
        .expect("build the service");
    let store = app.store().clone();
    bookcal::import::import_file(&store, Path::new(FIXTURE))
        .await
        .expect("import");
    let directory = store.directory().await.expect("directory");
    let room = directory
        .offerings
        .values()
        .find(|o| o.slug == "room-aurora")
        .expect("room")
        .id;
    let owner = directory.user_by_name("owner").expect("owner").id;
    let token = store.create_token(owner).await.expect("token");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{base}/api/booking-offerings/{}/google_calendar_sync/",
            room.hex()
        ))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status(), 200);
    assert!(
        eventually_async(30, || async {
            store
                .calendar(room)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.state == CalendarState::Ok && c.last_success.is_some())
                && store.jobs().await.is_ok_and(|j| j.is_empty())
        })
        .await
    );
    // An unmatched path with something secret-looking in it.
    let _ = http
        .get(format!("{base}/no/such/secret-path-abc123"))
        .send()
        .await
        .expect("404");
    // Web pages, one with an offering's id and one with a (spent) one-time secret in
    // its path: a browser without a session is sent to sign in.
    let web = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = web
        .get(format!("{base}/offerings/{}", room.hex()))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 303);
    let link = web
        .get(format!("{base}/sign-in/link/secret-link-9d8e7f"))
        .send()
        .await
        .expect("link");
    // The operator's scrape, with the metrics token.
    let scrape = |http: reqwest::Client| {
        let url = format!("{base}/metrics");
        async move {
            let r = http
                .get(url)
                .bearer_auth(metrics_token)
                .send()
                .await
                .expect("metrics");
            assert_eq!(r.status(), 200);
            assert!(r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")));
            r.text().await.expect("text")
        }
    };
    // The run's count lands just after the job is removed: poll for it.
    let mut text = scrape(http.clone()).await;
    for _ in 0..200 {
        if value(
            &parse_exposition(&text),
            "bookcal_sync_runs_total",
            &[("outcome", "ok")],
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        text = scrape(http.clone()).await;
    }
    let samples = parse_exposition(&text);
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    assert_eq!(
        v("bookcal_sync_runs_total", &[("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        v("bookcal_sync_runs_total", &[("outcome", "error")]),
        Some(0.0)
    );
    assert_eq!(v("bookcal_scheduler_running", &[]), Some(1.0));
    assert!(v("bookcal_scheduler_queue_depth", &[]).is_some());
    assert_eq!(
        v(
            "bookcal_http_requests_total",
            &[
                ("method", "POST"),
                (
                    "route",
                    "/api/booking-offerings/{uuid}/google_calendar_sync/"
                ),
                ("status", "200")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "bookcal_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0)
    );
    // The web pages are counted like the API, by route template.
    assert_eq!(
        v(
            "bookcal_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/offerings/{id}"),
                ("status", "303")
            ]
        ),
        Some(1.0)
    );
    let link_status = link.status().as_u16().to_string();
    assert_eq!(
        v(
            "bookcal_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/sign-in/link/{secret}"),
                ("status", &link_status)
            ]
        ),
        Some(1.0)
    );
    assert!(!text.contains("secret-link"), "{text}");
    assert!(
        !text.contains(&room.hex()) || {
            // The offering's id appears only as the label of the per-offering series: the
            // last-success and busy-read gauges and its push channel's state.
            text.lines().filter(|l| l.contains(&room.hex())).all(|l| {
                l.starts_with("bookcal_last_sync_success_timestamp_seconds{")
                    || l.starts_with("bookcal_busy_read_timestamp_seconds{")
                    || l.starts_with("bookcal_push_")
            })
        },
        "a raw path reached the metrics:\n{text}"
    );
    assert!(!text.contains("secret-path"));
    assert_eq!(
        v(
            "bookcal_google_calls_total",
            &[("method", "calendar.calendars.insert"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    let inserted = v(
        "bookcal_google_calls_total",
        &[("method", "calendar.events.insert"), ("outcome", "ok")],
    )
    .unwrap_or(0.0);
    assert_eq!(inserted, 3.0, "the room's three bookings were pushed");
    assert!(v("bookcal_google_rate_limit_waits_total", &[]).is_some());
    assert_eq!(v("bookcal_feed_renders_total", &[]), Some(0.0));
    let last = store
        .calendar(room)
        .await
        .expect("read")
        .and_then(|c| c.last_success)
        .expect("last success");
    let gauge = v(
        "bookcal_last_sync_success_timestamp_seconds",
        &[("offering", &room.hex())],
    )
    .expect("gauge for the room");
    assert!((gauge - last.timestamp_millis() as f64 / 1000.0).abs() < 0.001);
    // Offerings never synced have no gauge.
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "bookcal_last_sync_success_timestamp_seconds")
            .count(),
        1
    );

    // Anonymous scrapes name nothing: aggregates only.
    let anonymous = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(anonymous.status(), 200);
    let anonymous = anonymous.text().await.expect("text");
    assert_eq!(identifiers(&anonymous), Vec::<String>::new(), "{anonymous}");
    let aggregate = parse_exposition(&anonymous);
    assert_eq!(
        value(&aggregate, "bookcal_calendars", &[("state", "OK")]),
        Some(1.0)
    );
    assert_eq!(
        value(&aggregate, "bookcal_calendars_never_synced", &[]),
        Some(0.0)
    );
    let oldest = value(
        &aggregate,
        "bookcal_last_sync_success_oldest_timestamp_seconds",
        &[],
    )
    .expect("the oldest last success");
    assert!((oldest - gauge).abs() < 0.001);
    assert!(!anonymous.contains("bookcal_last_sync_success_timestamp_seconds"));
    // The operator's scrape names the offering; a wrong token is refused.
    assert_eq!(identifiers(&text), vec![room.hex()]);
    let wrong = http
        .get(format!("{base}/metrics"))
        .bearer_auth("not-the-metrics-token")
        .send()
        .await
        .expect("metrics");
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.expect("json"),
        json!({"detail": "Invalid token."})
    );

    shutdown.cancel();
    service
        .await
        .expect("service task")
        .expect("clean shutdown");
    emu.shutdown().await;
}

/// Every UUID-like run in `text` (32 hex digits, with or without dashes), as hex.
fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c.to_ascii_lowercase());
        } else if c == '-' && !run.is_empty() {
            continue;
        } else {
            if run.len() >= 32 {
                out.push(run.clone());
            }
            run.clear();
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------- the real binary

/// `bookcal serve` as a child process with its stderr collected.
pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
    /// The thread copying stderr into `log`; it ends at the pipe's end of file.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn serve(data_dir: &Path, env: &[(&str, &str)]) -> Served {
    let mut c = Command::new(BIN);
    c.arg("serve")
        .env_remove("BOOKCAL_CONFIG")
        .env("BOOKCAL_DATA_DIR", data_dir)
        .env("BOOKCAL_LISTEN", "127.0.0.1:0")
        .env("BOOKCAL_SYNC_INTERVAL_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn bookcal serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    // The address is in the "bookcal listening" line.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let found = log.lock().ok().and_then(|l| {
            l.lines()
                .find(|x| x.contains("bookcal listening"))
                .and_then(|x| x.split("127.0.0.1:").nth(1))
                .map(|rest| {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    format!("127.0.0.1:{port}")
                })
        });
        if let Some(a) = found {
            break a;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "bookcal serve exited with {status}: {}",
                log.lock().expect("log")
            );
        }
        assert!(std::time::Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(10));
    };
    Served {
        child,
        base: format!("http://{addr}"),
        log,
        reader: Some(reader),
    }
}

impl Served {
    pub(crate) async fn wait_ready(&self, http: &reqwest::Client) {
        for _ in 0..3000 {
            if let Ok(r) = http.get(format!("{}/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never ready");
    }

    /// SIGTERM, then the exit status within `bound`; by then [`Served::log`] holds
    /// everything the process wrote.
    pub(crate) async fn terminate(&mut self, bound: Duration) -> std::process::ExitStatus {
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The exit leaves the pipe's last lines unread until the reader gets
                // to them: wait for it to reach the end of the file.
                if let Some(reader) = self.reader.take() {
                    tokio::task::spawn_blocking(move || reader.join())
                        .await
                        .expect("join")
                        .expect("the stderr reader");
                }
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bookcal did not exit within {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Imports the demo data with `bookcal import` and makes tokens with `bookcal token
/// create`, under `env` (the salt).
pub(crate) fn prepare(
    data_dir: &Path,
    env: &[(&str, &str)],
    users: &[&str],
) -> BTreeMap<String, String> {
    let dd = data_dir.to_str().expect("utf-8");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BOOKCAL_DATA_DIR", dd));
    let out = bookcal(&["import", FIXTURE], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    users
        .iter()
        .map(|u| {
            let out = bookcal(&["token", "create", "--username", u], &env);
            assert!(out.status.success());
            (
                u.to_string(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        })
        .collect()
}

/// The `store_url` the real binary gets in this test: none (sled in its data
/// directory) unless the suite runs on PostgreSQL ([`crate::helpers::engines`]).
async fn on_the_suites_engine() -> Option<String> {
    crate::helpers::engines::default_store_url().await
}

pub(crate) async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = http
        .get(url)
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn debug_logs_never_contain_the_token_salt_or_api_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let salt = "known-secret-salt-7c1e9a";
    let store = on_the_suites_engine().await;
    let mut env = vec![("BOOKCAL_TOKEN_SALT", salt)];
    env.extend(store.iter().map(|u| ("BOOKCAL_STORE_URL", u.as_str())));
    let tokens = prepare(&data, &env, &["owner"]);
    let token = &tokens["owner"];
    env.extend([("RUST_LOG", "debug"), ("BOOKCAL_LOG_FORMAT", "text")]);
    let mut served = serve(&data, &env);
    let http = reqwest::Client::new();
    served.wait_ready(&http).await;
    let base = served.base.clone();
    let (status, _) = get_json(&http, &format!("{base}/api/booking-offerings/"), token).await;
    assert_eq!(status, 200);
    // The token in the query string, a wrong token, an unknown path.
    let r = http
        .get(format!(
            "{base}/api/booking-resources/?x-auth-token={token}"
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let (status, _) = get_json(
        &http,
        &format!("{base}/api/booking-offerings/"),
        "wrong-token",
    )
    .await;
    assert_eq!(status, 401);
    let _ = http
        .get(format!("{base}/x/{token}"))
        .send()
        .await
        .expect("get");
    let status = served.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", served.log());
    let log = served.log();
    assert!(log.contains("DEBUG"), "not at debug level:\n{log}");
    assert!(log.contains("token_salt: [redacted]"), "{log}");
    assert!(
        log.contains("route=/api/booking-offerings/"),
        "request spans are logged:\n{log}"
    );
    assert!(!log.contains(salt), "the salt leaked:\n{log}");
    assert!(!log.contains(token.as_str()), "a token leaked:\n{log}");
    assert!(!log.contains('\x1b'), "colours without a terminal");
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly_in_time_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let store = on_the_suites_engine().await;
    let mut env: Vec<(&str, &str)> = store
        .iter()
        .map(|u| ("BOOKCAL_STORE_URL", u.as_str()))
        .collect();
    let tokens = prepare(&data, &env, &["owner", "alice"]);
    env.extend([
        ("BOOKCAL_LOG_FORMAT", "json"),
        ("BOOKCAL_SHUTDOWN_TIMEOUT_SECS", "10"),
    ]);
    let mut served = serve(&data, &env);
    let http = reqwest::Client::new();
    served.wait_ready(&http).await;
    let base = served.base.clone();
    let (_, offerings) = get_json(
        &http,
        &format!("{base}/api/booking-offerings/"),
        &tokens["owner"],
    )
    .await;
    let room = offerings
        .as_array()
        .and_then(|a| a.iter().find(|o| o["slug"] == "room-aurora"))
        .and_then(|o| o["uuid"].as_str())
        .expect("room")
        .to_string();
    let (_, resources) = get_json(
        &http,
        &format!("{base}/api/booking-resources/"),
        &tokens["owner"],
    )
    .await;
    let project = resources
        .as_array()
        .and_then(|a| a.iter().find(|r| r["project_slug"] == "imaging"))
        .and_then(|r| r["project_uuid"].as_str())
        .expect("project")
        .to_string();
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "offering": format!("{base}/api/marketplace-public-offerings/{room}/"),
        "project": format!("{base}/api/projects/{project}/"),
        "attributes": {"name": "Before the restart", "schedules": [{"start": ts(at(45, 9)), "end": ts(at(45, 10))}]},
    });
    let r = http
        .post(format!("{base}/api/marketplace-orders/"))
        .header("Authorization", format!("Token {}", tokens["alice"]))
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.expect("json");
    let order = order["uuid"].as_str().expect("uuid").to_string();

    let started = std::time::Instant::now();
    let status = served.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status}:\n{}", served.log());
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = served.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("bookcal stopped"), "{log}");
    // JSON logs: every line is one JSON object.
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["level"].is_string());
    }

    let mut again = serve(&data, &env);
    again.wait_ready(&http).await;
    let (status, o) = get_json(
        &http,
        &format!("{}/api/marketplace-orders/{order}/", again.base),
        &tokens["alice"],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(o["attributes"]["name"], "Before the restart");
    assert!(again.terminate(Duration::from_secs(15)).await.success());
}

#[test]
fn every_metric_family_name_is_unique_and_prefixed() {
    let m = bookcal::metrics::Metrics::new(vec![
        Arc::new(bookcal::scheduler::SchedulerStatus::default()),
        Arc::new(bookcal::google::CallStats::new()),
    ]);
    let text = m.render(&[], bookcal::metrics::Audience::Operator);
    let mut seen = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).expect("name");
        assert!(name.starts_with("bookcal_"), "{name}");
        assert!(seen.insert(name.to_string()), "{name} declared twice");
    }
    parse_exposition(&text);
}

#[tokio::test]
async fn sigterm_with_idle_keep_alive_connections_exits_within_two_seconds() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let store = on_the_suites_engine().await;
    let mut env: Vec<(&str, &str)> = store
        .iter()
        .map(|u| ("BOOKCAL_STORE_URL", u.as_str()))
        .collect();
    prepare(&data, &env, &[]);
    // Idle connections would otherwise stay open for a minute.
    env.extend([
        ("BOOKCAL_HTTP_HEADER_READ_TIMEOUT_SECS", "60"),
        ("BOOKCAL_HTTP_KEEP_ALIVE_TIMEOUT_SECS", "60"),
    ]);
    let mut served = serve(&data, &env);
    let http = reqwest::Client::new();
    served.wait_ready(&http).await;
    let addr: std::net::SocketAddr = served
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut held = Vec::new();
    // Twenty keep-alive connections between requests, five that never sent a byte.
    for i in 0..25 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if i < 20 {
            s.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let r = crate::limits::read_response(&mut s).await.expect("answer");
            assert_eq!(r.status, 200);
        }
        held.push(s);
    }
    let started = std::time::Instant::now();
    let status = served.terminate(Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert!(status.success(), "exit {status}:\n{}", served.log());
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
    for mut s in held {
        assert!(crate::limits::read_response(&mut s).await.is_none());
    }
}
