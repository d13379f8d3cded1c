//! Test harness: spawns the real server on 127.0.0.1:0 with a temporary data dir
//! loaded with `fixtures/demo.json`, and hands out tokens for its users.
#![allow(dead_code)]

pub mod browser;
pub mod engines;
pub mod pg;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bookcal::api::AppState;
use bookcal::app::Application;
use bookcal::config::Settings;
use bookcal::domain::Id;
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::scheduler::Scheduler;
use bookcal::store::Store;
use bookcal::sync::SyncEngine;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub mod table;

/// The service as `bookcal serve` starts it ([`Application::build`], then
/// [`Application::run_until_stopped`]), on 127.0.0.1:0 with a temporary data dir,
/// the demo data set, and (with Google credentials) its own Google Calendar emulator.
/// The scheduler is held back until a test starts it ([`TestApp::start_scheduler`]),
/// so queued jobs wait in the store where tests can see them.
pub struct TestApp {
    pub base: String,
    pub store: Arc<Store>,
    pub tokens: HashMap<&'static str, String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    /// The handler state the server runs with.
    pub state: AppState,
    /// The service's own sync engine (talking to [`TestApp::emu`]).
    pub engine: Arc<SyncEngine>,
    /// The service's push side (watch channels, the webhook's state).
    pub push: Arc<bookcal::push::PushService>,
    /// The Google Calendar the service talks to, when it has credentials.
    pub emu: Option<Emulator>,
    /// Ids by slug (offerings, projects): the demo data's, and what
    /// [`TestApp::learn_ids`] found since.
    offerings: Mutex<HashMap<String, Id>>,
    projects: Mutex<HashMap<String, Id>>,
    scheduler: Mutex<Option<Scheduler>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Options {
    /// A service-account key for the app's own emulator (else no Google credentials:
    /// the calendar actions answer 400).
    pub google_credentials: bool,
    /// `sync.interval_secs` (0: no periodic syncs).
    pub sync_interval_secs: u64,
    /// `sync.debounce_ms`: how long a local change waits for others to join its sync.
    pub sync_debounce_ms: u64,
    /// The `feeds` settings (cache size, render threads).
    pub feeds: bookcal::config::FeedSettings,
    /// `google.push_enabled`: watch channels on the calendars, with the emulator
    /// delivering to the service (off by default: a test that counts runs or calls
    /// would also count the notifications of the service's own writes).
    pub push: bool,
    /// `sync.push_interval_secs`: the poll interval while a channel is healthy.
    pub push_interval_secs: u64,
    /// `google.push_ttl_secs` and `google.push_renew_before_secs`.
    pub push_ttl_secs: u64,
    pub push_renew_before_secs: u64,
    /// `store_url` (see [`pg::database`]); none: the engine the suite runs on
    /// ([`engines::default_store_url`]: sled in the temporary directory, or a fresh
    /// PostgreSQL database with `BOOKCAL_TEST_STORE=postgres`).
    pub store_url: Option<String>,
    /// `google.provider_credentials_dir` (per-provider refresh-token files).
    pub provider_credentials_dir: Option<std::path::PathBuf>,
    /// The `http` settings (server limits, client rates).
    pub http: bookcal::config::HttpSettings,
    /// `public_url` (none: links and cookies follow the request's address).
    pub public_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            google_credentials: true,
            sync_interval_secs: 0,
            sync_debounce_ms: bookcal::config::SyncSettings::default().debounce_ms,
            feeds: bookcal::config::FeedSettings::default(),
            push: false,
            push_interval_secs: 21_600,
            push_ttl_secs: 604_800,
            push_renew_before_secs: 86_400,
            store_url: None,
            provider_credentials_dir: None,
            http: bookcal::config::HttpSettings::default(),
            public_url: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().join("store"),
        ..Settings::default()
    };
    settings.sync.interval_secs = opts.sync_interval_secs;
    settings.sync.debounce_ms = opts.sync_debounce_ms;
    settings.feeds = opts.feeds;
    settings.http = opts.http;
    settings.public_url = opts.public_url;
    settings.google.push_enabled = opts.push;
    settings.sync.push_interval_secs = opts.push_interval_secs;
    settings.google.push_ttl_secs = opts.push_ttl_secs;
    settings.google.push_renew_before_secs = opts.push_renew_before_secs;
    let store_url = match opts.store_url {
        Some(url) => Some(url),
        None => engines::default_store_url().await,
    };
    settings.store_url = store_url.map(bookcal::config::Secret::new);
    settings.google.provider_credentials_dir = opts.provider_credentials_dir;
    settings.google.requests_per_minute = 60_000;
    let emu = if opts.google_credentials {
        let emu = Emulator::start(EmulatorOptions::default())
            .await
            .expect("emulator");
        let key = dir.path().join("service-account.json");
        std::fs::write(&key, emu.service_account_key_json()).expect("key file");
        settings.google.root_url = emu.root_url();
        settings.google.service_account_key = Some(key);
        Some(emu)
    } else {
        None
    };
    let mut app = Application::build(settings)
        .await
        .expect("build the service");
    let store = app.store().clone();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    bookcal::import::import_file(&store, std::path::Path::new(fixture))
        .await
        .expect("import demo data");
    let directory = store.directory().await.expect("read the directory");
    let mut tokens = HashMap::new();
    for u in ["admin", "owner", "manager", "alice", "bob"] {
        let id = directory.user_by_name(u).expect("user").id;
        tokens.insert(u, store.create_token(id).await.expect("token"));
    }
    let offerings = directory
        .offerings
        .values()
        .map(|o| (o.slug.clone(), o.id))
        .collect();
    let projects = directory
        .projects
        .values()
        .map(|p| (p.slug.clone(), p.id))
        .collect();
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let state = app.state().clone();
    let engine = app.engine().clone();
    let push = app.push().clone();
    let scheduler = app.take_scheduler();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        base,
        store,
        tokens,
        http: reqwest::Client::new(),
        shutdown,
        state,
        engine,
        push,
        emu,
        offerings: Mutex::new(offerings),
        projects: Mutex::new(projects),
        scheduler: Mutex::new(scheduler),
        _dir: dir,
    }
}

/// The service's scheduler, started by [`TestApp::start_scheduler`].
pub struct RunningScheduler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Its live status (runs by outcome, active runs).
    pub status: Arc<bookcal::scheduler::SchedulerStatus>,
}

impl RunningScheduler {
    /// Stops it and waits until running jobs finished.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("the scheduler stops cleanly");
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    /// Starts the service's scheduler (once): queued jobs run, `/ready` turns 200.
    pub fn start_scheduler(&self) -> RunningScheduler {
        let scheduler = self
            .scheduler
            .lock()
            .expect("scheduler lock")
            .take()
            .expect("the scheduler was started already");
        let stop = CancellationToken::new();
        let status = scheduler.status.clone();
        let task = tokio::spawn(scheduler.run(stop.clone()));
        RunningScheduler { stop, task, status }
    }

    /// The service's Google Calendar emulator.
    pub fn emu(&self) -> &Emulator {
        self.emu.as_ref().expect("the app has Google credentials")
    }

    /// The live events of a calendar in the service's emulator.
    pub fn live_events(&self, calendar_id: &str) -> Vec<Value> {
        live_events(self.emu(), calendar_id)
    }

    /// The Google calendar id stored for `offering` (it must have one).
    pub async fn calendar_id(&self, offering: Id) -> String {
        self.store
            .calendar(offering)
            .await
            .expect("read")
            .and_then(|c| c.calendar_id)
            .expect("calendar id")
    }

    /// `/metrics` as an anonymous scrape sees it.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// The provider organisation of `offering`.
    pub async fn provider_of(&self, offering: Id) -> Id {
        self.store
            .offering(offering)
            .await
            .expect("read")
            .expect("offering")
            .customer
    }

    /// Re-reads the ids of offerings and projects by slug, for the ones a test added
    /// after start-up.
    pub async fn learn_ids(&self) {
        let directory = self.store.directory().await.expect("read the directory");
        let mut offerings = self.offerings.lock().expect("ids lock");
        for o in directory.offerings.values() {
            offerings.insert(o.slug.clone(), o.id);
        }
        let mut projects = self.projects.lock().expect("ids lock");
        for p in directory.projects.values() {
            projects.insert(p.slug.clone(), p.id);
        }
    }

    /// An offering's id by slug: the demo's, or one [`TestApp::learn_ids`] found.
    pub fn offering_id(&self, slug: &str) -> Id {
        let found = self.offerings.lock().expect("ids lock").get(slug).copied();
        found.unwrap_or_else(|| panic!("no offering {slug} (added since start-up? learn_ids)"))
    }

    /// A project's id by slug: the demo's, or one [`TestApp::learn_ids`] found.
    pub fn project_id(&self, slug: &str) -> Id {
        let found = self.projects.lock().expect("ids lock").get(slug).copied();
        found.unwrap_or_else(|| panic!("no project {slug} (added since start-up? learn_ids)"))
    }

    pub async fn req(
        &self,
        method: reqwest::Method,
        user: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut r = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(u) = user {
            r = r.header("Authorization", format!("Token {}", self.tokens[u]));
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, user: &str, path: &str) -> Resp {
        self.req(reqwest::Method::GET, Some(user), path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> Resp {
        self.req(reqwest::Method::POST, Some(user), path, Some(body))
            .await
    }

    /// A booking order body for `offering` in project `imaging`.
    pub fn order_body(
        &self,
        offering: &str,
        slots: &[(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)],
    ) -> Value {
        let o = self.offering_id(offering);
        let p = self.project_id("imaging");
        serde_json::json!({
            "offering": format!("{}/api/marketplace-public-offerings/{}/", self.base, o.hex()),
            "project": format!("{}/api/projects/{}/", self.base, p.hex()),
            "attributes": {
                "name": "Test booking",
                "schedules": slots.iter().map(|(s, e)| serde_json::json!({
                    "start": s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "end": e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })).collect::<Vec<_>>(),
            },
        })
    }

    /// Every stored booking resource, with its slots, through the store's own
    /// list query (whichever engine).
    pub async fn all_resources(&self) -> Vec<bookcal::domain::Resource> {
        use bookcal::store::query::{ResourceQuery, Visible};
        self.store
            .list_resources(&ResourceQuery {
                visible: Visible::everything(),
                page: Some(EVERYTHING),
                ..ResourceQuery::default()
            })
            .await
            .expect("read")
            .items
    }

    /// Every stored order, through the store's own list query.
    pub async fn all_orders(&self) -> Vec<bookcal::domain::Order> {
        use bookcal::store::query::{OrderQuery, Visible};
        self.store
            .list_orders(&OrderQuery {
                visible: Visible::everything(),
                page: Some(EVERYTHING),
                ..OrderQuery::default()
            })
            .await
            .expect("read")
            .items
    }

    /// A stored booking resource by name (the first found).
    pub async fn resource_named(&self, name: &str) -> bookcal::domain::Resource {
        let found = self
            .all_resources()
            .await
            .into_iter()
            .find(|r| &*r.name == name);
        found.unwrap_or_else(|| panic!("no resource named {name}"))
    }

    /// Counts of stored records, to prove a refused request changed nothing:
    /// (resources, orders, each resource's id, state and slot count).
    pub async fn snapshot(&self) -> (usize, usize, Vec<(Id, String, usize)>) {
        let resources = self.all_resources().await;
        let orders = self.all_orders().await;
        let mut res: Vec<(Id, String, usize)> = resources
            .iter()
            .map(|r| (r.id, r.state.as_str().to_string(), r.slots.len()))
            .collect();
        res.sort();
        (resources.len(), orders.len(), res)
    }
}

/// One page holding every record a test stores (named: without a page the engines
/// answer differently, sled with everything and PostgreSQL with the count alone).
const EVERYTHING: bookcal::store::query::PageRange = bookcal::store::query::PageRange {
    offset: 0,
    limit: 1_000_000,
};

/// A day `days` from now at `hour`:00 UTC.
pub fn at(days: i64, hour: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Duration, TimeZone, Utc};
    let d = (Utc::now() + Duration::days(days)).date_naive();
    Utc.from_utc_datetime(&d.and_hms_opt(hour, 0, 0).expect("valid hour"))
}

/// The sync engine wired to an in-process emulator, plus a second client with the
/// same credential that plays "a person editing the calendar in Google".
pub struct SyncEnv {
    pub emu: bookcal::emulator::Emulator,
    pub engine: bookcal::sync::SyncEngine,
    pub human: Arc<dyn bookcal::google::CalendarApi>,
}

pub async fn google_client(
    emu: &bookcal::emulator::Emulator,
    subject: Option<&str>,
) -> Arc<dyn bookcal::google::CalendarApi> {
    use bookcal::google::{
        ClientOptions, Credentials, GoogleCalendarClient, RateLimit, RetryPolicy,
    };
    let options = ClientOptions {
        root_url: emu.root_url(),
        retry: RetryPolicy {
            max_attempts: 8,
            base: std::time::Duration::from_millis(5),
            cap: std::time::Duration::from_millis(50),
        },
        rate_limit: RateLimit {
            per_minute: 600_000,
            burst: 1_000,
        },
        page_size: Some(2500),
        ..ClientOptions::default()
    };
    let creds = Credentials::ServiceAccount {
        key_json: emu.service_account_key_json(),
        subject: subject.map(String::from),
    };
    Arc::new(
        GoogleCalendarClient::builder(creds)
            .options(options)
            .build()
            .await
            .expect("client"),
    )
}

pub async fn sync_env(app: &TestApp) -> SyncEnv {
    sync_env_as(app, None).await
}

/// Polls `cond` every few milliseconds until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    cond()
}

/// [`eventually`] for a condition that must await (a read of a database).
pub async fn eventually_async<F>(secs: u64, mut cond: impl FnMut() -> F) -> bool
where
    F: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond().await
}

/// Like [`sync_env`], acting as an impersonated user (attendees allowed).
pub async fn sync_env_as(app: &TestApp, subject: Option<&str>) -> SyncEnv {
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions::default())
        .await
        .expect("emulator");
    let client = google_client(&emu, subject).await;
    let human = google_client(&emu, subject).await;
    let engine = bookcal::sync::SyncEngine {
        store: app.store.clone(),
        source: Arc::new(bookcal::sync::SingleClient(Some(client))),
        settings: bookcal::config::SyncSettings::default(),
        share_role: bookcal::google::AclRole::Reader,
    };
    SyncEnv { emu, engine, human }
}

/// Calendar API requests `emu` answered (tokens and control calls excluded).
pub fn calendar_requests(emu: &bookcal::emulator::Emulator) -> u64 {
    emu.controls()
        .counters()
        .iter()
        .filter(|(k, _)| k.starts_with("calendar.") && !k.contains(':'))
        .map(|(_, v)| *v)
        .sum()
}

impl SyncEnv {
    /// Calendar API requests the emulator answered (tokens and control calls excluded).
    pub fn requests(&self) -> u64 {
        calendar_requests(&self.emu)
    }

    pub fn reset(&self) {
        self.emu.controls().reset_counters();
    }

    /// The live (not cancelled) events of a calendar, as the emulator holds them.
    pub fn live_events(&self, calendar_id: &str) -> Vec<Value> {
        live_events(&self.emu, calendar_id)
    }

    pub async fn sync(&self, offering: Id) -> bookcal::sync::RunReport {
        self.engine
            .sync_offering(offering, bookcal::sync::RunOptions::default())
            .await
            .expect("sync run")
    }
}

/// The live (not cancelled) events of a calendar, as `emu` holds them.
pub fn live_events(emu: &Emulator, calendar_id: &str) -> Vec<Value> {
    emu.inspect()
        .events(calendar_id)
        .into_iter()
        .filter(|e| e["status"] != "cancelled")
        .collect()
}

/// Adds an accepted booking with `n` one-hour slots, one a day from tomorrow, to an
/// offering (directly in the store, bypassing the availability rules but not the
/// rule that live slots never overlap).
pub async fn add_booking_with_slots(app: &TestApp, offering: Id, n: usize) -> Id {
    use bookcal::domain::{Resource, ResourceState, Slot};
    let project = app.project_id("imaging");
    let user = app
        .store
        .user_by_name("alice")
        .await
        .expect("read")
        .expect("alice")
        .id;
    // From 06:00, the first hour of the day none of the offering's live slots
    // overlaps on those days: PostgreSQL refuses overlapping live slots even here.
    let taken: Vec<bookcal::domain::Interval> = app
        .store
        .offering_resources(offering)
        .await
        .expect("read")
        .into_iter()
        .filter(|r| r.state.holds_slots())
        .flat_map(|r| r.slots.into_iter().map(|s| s.interval()))
        .collect();
    let series = |hour: u32| {
        (0..n).map(move |i| {
            let day = 1 + i as i64;
            let start = at(day, hour);
            (start, start + chrono::Duration::hours(1))
        })
    };
    let hour = (6..24)
        .chain(0..6)
        .find(|h| {
            series(*h).all(|(start, end)| {
                let new = bookcal::domain::Interval { start, end };
                taken.iter().all(|t| !t.overlaps(&new))
            })
        })
        .expect("a free hour on those days");
    let now = chrono::Utc::now();
    let slots = series(hour)
        .map(|(start, end)| Slot {
            start,
            end,
            backend_id: format!("booking_{}", Id::new_v4().hex()),
        })
        .collect();
    let r = Resource {
        id: Id::new_v4(),
        name: format!("Series of {n}"),
        slug: "series".into(),
        description: String::new(),
        offering,
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
    };
    let id = r.id;
    app.store
        .write(vec![bookcal::store::Change::Resource(r)])
        .await
        .expect("store");
    id
}

/// Like [`spawn_app`], also handing back the handler state (its feed cache counts
/// renders and last-use writes).
pub async fn spawn_app_with_state() -> (TestApp, AppState) {
    let app = spawn_app().await;
    let state = app.state.clone();
    (app, state)
}

impl TestApp {
    /// The base URL and every user's token as environment variables for a real-client
    /// script: `{prefix}_BASE_URL` and `{prefix}_TOKENS` (a JSON object, user -> token).
    pub fn client_env(&self, prefix: &str) -> Vec<(String, String)> {
        let tokens: serde_json::Map<String, Value> = self
            .tokens
            .iter()
            .map(|(u, t)| ((*u).to_string(), Value::String(t.clone())))
            .collect();
        vec![
            (format!("{prefix}_BASE_URL"), self.base.clone()),
            (
                format!("{prefix}_TOKENS"),
                Value::Object(tokens).to_string(),
            ),
        ]
    }

    /// Marks an offering's calendar public (a record with no Google calendar yet), so
    /// its public feed answers; returns the offering's id.
    pub async fn make_public(&self, slug: &str) -> Id {
        use bookcal::domain::calendar::OfferingCalendar;
        let id = self.offering_id(slug);
        let cal = OfferingCalendar {
            public: true,
            ..OfferingCalendar::new(id)
        };
        self.store
            .write(vec![Store::calendar_change(&cal).expect("encode")])
            .await
            .expect("write calendar");
        id
    }

    /// Stores an idle calendar record for an offering, as if the scheduler had created
    /// (and, when `public`, shared) its Google calendar and just read its busy time.
    pub async fn seed_calendar(&self, slug: &str, calendar_id: &str, public: bool) {
        use bookcal::domain::calendar::{CalendarState, OfferingCalendar};
        let mut cal = OfferingCalendar::new(self.offering_id(slug));
        cal.calendar_id = Some(calendar_id.to_string());
        cal.public = public;
        cal.state = CalendarState::Ok;
        let now = chrono::Utc::now();
        cal.last_success = Some(now);
        cal.busy_read_at = Some(now);
        let change = Store::calendar_change(&cal).expect("encode calendar");
        self.store
            .write(vec![change])
            .await
            .expect("store calendar");
    }
}

/// The path of an offering's public feed.
pub fn public_feed_path(offering: Id) -> String {
    format!("/feeds/offerings/{}.ics", offering.hex())
}

/// Compares `body` with the snapshot file `tests/snapshots/{name}` byte for byte, or
/// writes it when `UPDATE_SNAPSHOTS=1` (then review the diff before committing).
pub fn assert_snapshot(name: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the snapshot directory");
        }
        std::fs::write(&path, body).expect("write the snapshot");
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing snapshot {} ({e}); run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if want != body.as_bytes() {
        let want = String::from_utf8_lossy(&want);
        let first = want
            .split('\n')
            .zip(body.split('\n'))
            .position(|(a, b)| a != b)
            .map(|i| i + 1);
        panic!(
            "{name} differs from {} (first differing line {first:?}); \
             rerun with UPDATE_SNAPSHOTS=1 if intended.\n--- snapshot\n{want}\n--- now\n{body}",
            path.display()
        );
    }
}
