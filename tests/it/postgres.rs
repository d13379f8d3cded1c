//! The PostgreSQL engine through the whole service: `bookcal serve`'s start-up path
//! on a throw-away cluster, and three `bookcal serve` processes on one database.
//! The invariants are the database's: racing clients never both win a slot, a
//! booking's transitions are serialised by its row locks, a write on one replica
//! reaches the feeds of the others through `LISTEN`/`NOTIFY`, the job queue runs
//! one sync of an offering at a time across replicas, a replica killed in the
//! middle of a sync loses the job to another once its lease has ended, and a web
//! session started on one replica signs in on the others until it ends on any. With
//! push on everywhere, the replicas keep one watch channel per calendar through
//! renewals (a slow Google that outlives the upkeep lease included), any replica acts
//! on a delivery, a forged one is 404 on each, and whose turn a channel's upkeep is
//! goes by the database's clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bookcal::domain::{Id, Interval};
use bookcal::store::{Load, Store, StoreOptions};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::pg::database;
use crate::helpers::{at, spawn_app_with, Options, TestApp};

type Span = (DateTime<Utc>, DateTime<Utc>);

async fn pg_app() -> Option<TestApp> {
    let url = database().await?;
    Some(
        spawn_app_with(Options {
            google_credentials: false,
            store_url: Some(url),
            ..Options::default()
        })
        .await,
    )
}

/// The live slots of an offering, straight from the database.
async fn live_slots(store: &Store, offering: Id) -> Vec<Interval> {
    store
        .offering_resources(offering)
        .await
        .expect("read")
        .into_iter()
        .filter(|r| r.state.holds_slots())
        .flat_map(|r| r.slots.into_iter().map(|s| s.interval()))
        .collect()
}

fn assert_disjoint(slots: &[Interval]) {
    for (i, a) in slots.iter().enumerate() {
        for b in &slots[i + 1..] {
            assert!(!a.overlaps(b), "double-booked: {a:?} and {b:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_orders_for_one_slot_on_postgresql_have_exactly_one_winner() {
    let Some(app) = pg_app().await else { return };
    let app = Arc::new(app);
    let scope = app.offering_id("telescope");
    let slot = (at(40, 9), at(40, 11));
    let mut tasks = Vec::new();
    for _ in 0..15 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("telescope", &[slot]),
            )
            .await
        }));
    }
    let mut statuses = HashMap::<u16, usize>::new();
    let mut winner = None;
    for t in tasks {
        let r = t.await.expect("client");
        assert!(r.status < 500, "{}", r.text);
        *statuses.entry(r.status).or_default() += 1;
        if r.status == 201 {
            winner = r.body["marketplace_resource_uuid"]
                .as_str()
                .map(String::from);
        }
    }
    assert_eq!(statuses.get(&201), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get(&400), Some(&14), "{statuses:?}");
    // Accepted, the winner holds the slot, and no one else does.
    let winner = winner.expect("a winner");
    let r = app
        .post(
            "owner",
            &format!("/api/booking-resources/{winner}/accept/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let held = live_slots(&app.store, scope).await;
    let want = Interval::new(slot.0, slot.1);
    assert_eq!(held.iter().filter(|s| s.overlaps(&want)).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_accept_and_reject_of_one_booking_on_postgresql_has_one_outcome() {
    let Some(app) = pg_app().await else { return };
    let app = Arc::new(app);
    for day in 0..5 {
        let slot = (at(41 + day, 9), at(41 + day, 10));
        let r = app
            .post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("telescope", &[slot]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let res = r.body["marketplace_resource_uuid"]
            .as_str()
            .expect("resource")
            .to_string();
        let mut tasks = Vec::new();
        for action in ["accept", "reject", "accept", "reject"] {
            let (app, res) = (app.clone(), res.clone());
            tasks.push(tokio::spawn(async move {
                let r = app
                    .post(
                        "owner",
                        &format!("/api/booking-resources/{res}/{action}/"),
                        json!({}),
                    )
                    .await;
                (action, r.status, r.text)
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            let (action, status, text) = t.await.expect("client");
            assert!(status < 500, "{text}");
            if status == 200 {
                won.push(action);
            }
        }
        assert_eq!(won.len(), 1, "day {day}: {won:?}");
        let state = app
            .store
            .resource(Id::parse(&res).expect("id"))
            .await
            .expect("read")
            .expect("resource")
            .state;
        assert_eq!(
            state == bookcal::domain::ResourceState::Ok,
            won[0] == "accept",
            "day {day}: {won:?} left {state:?}"
        );
    }
}

/// A `bookcal serve` process on a shared database, killed when dropped.
struct Replica {
    /// Killed when the replica is dropped.
    process: tokio::process::Child,
    base: String,
}

impl Replica {
    /// Starts `bookcal serve` on `url` and waits until it answers `/health`.
    async fn start(url: &str, dir: &std::path::Path, http: &reqwest::Client) -> Replica {
        Replica::start_with(url, dir, http, &[]).await
    }

    /// [`Replica::start`] with more settings in the environment.
    async fn start_with(
        url: &str,
        dir: &std::path::Path,
        http: &reqwest::Client,
        env: &[(&str, String)],
    ) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = bookcal(url, dir)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("BOOKCAL_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bookcal serve");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = http.get(format!("{base}/health")).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "replica {base} did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Replica {
            process: child,
            base,
        }
    }
}

/// `bookcal` with the database and a data directory of its own.
fn bookcal(url: &str, dir: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookcal"));
    c.env("BOOKCAL_STORE_URL", url)
        .env("BOOKCAL_DATA_DIR", dir)
        .env("BOOKCAL_TOKEN_SALT", "replica-test-salt")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null());
    c
}

/// Runs a `bookcal` command to its end and returns its standard output.
async fn run(url: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = bookcal(url, dir)
        .args(args)
        .output()
        .await
        .expect("bookcal");
    assert!(
        out.status.success(),
        "bookcal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Client {
    http: reqwest::Client,
    tokens: HashMap<&'static str, String>,
}

impl Client {
    async fn call(
        &self,
        base: &str,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{base}{path}"))
            .header("Authorization", format!("Token {}", self.tokens[user]));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

fn order_body(base: &str, offering: Id, project: Id, slot: Span) -> Value {
    json!({
        "offering": format!("{base}/api/marketplace-public-offerings/{}/", offering.hex()),
        "project": format!("{base}/api/projects/{}/", project.hex()),
        "attributes": {
            "name": "Replica race",
            "schedules": [{
                "start": slot.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "end": slot.1.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_database_never_double_book_and_share_their_feeds() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    run(&url, dir.path(), &["import", fixture]).await;
    let mut tokens = HashMap::new();
    for u in ["alice", "bob", "admin"] {
        tokens.insert(
            u,
            run(&url, dir.path(), &["token", "create", "--username", u]).await,
        );
    }
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        tokens,
    });
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(&url, dir.path(), &client.http).await);
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    // The ids, read through the engine the replicas use.
    let store = Store::connect(&url, &StoreOptions::default(), &Default::default())
        .await
        .expect("connect");
    let directory = store.directory().await.expect("directory");
    let id_of = |slug: &str| {
        directory
            .offerings
            .values()
            .find(|o| o.slug == slug)
            .map(|o| o.id)
            .or_else(|| {
                directory
                    .projects
                    .values()
                    .find(|p| p.slug == slug)
                    .map(|p| p.id)
            })
            .expect("a demo slug")
    };
    let (telescope, imaging) = (id_of("telescope"), id_of("imaging"));

    // Clients spread over the replicas race for six overlapping slots.
    let slots: Vec<Span> = (0..6u32).map(|i| (at(60, 8 + i), at(60, 10 + i))).collect();
    let won: Arc<std::sync::Mutex<Vec<Span>>> = Arc::default();
    let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for seed in 0..9u64 {
        let (client, bases, slots, won, lost) = (
            client.clone(),
            bases.clone(),
            slots.clone(),
            won.clone(),
            lost.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..12 {
                let base = &bases[seed as usize % 3];
                let user = ["alice", "bob", "admin"][rng.gen_range(0..3)];
                let slot = slots[rng.gen_range(0..slots.len())];
                let (status, body) = client
                    .call(
                        base,
                        user,
                        reqwest::Method::POST,
                        "/api/marketplace-orders/",
                        Some(order_body(base, telescope, imaging, slot)),
                    )
                    .await;
                assert!(status == 201 || status == 400, "{status}: {body}");
                if status == 201 {
                    won.lock().expect("won").push(slot);
                } else {
                    lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let won: Vec<Interval> = won
        .lock()
        .expect("won")
        .iter()
        .map(|(s, e)| Interval::new(*s, *e))
        .collect();
    assert!(!won.is_empty());
    assert!(
        lost.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no collisions"
    );
    assert_disjoint(&won);
    // What the database holds as taken that day (booked slots and pending requests):
    // exactly the acknowledged orders.
    let day = Interval::new(at(60, 0), at(61, 0));
    let load = Load {
        taken: vec![telescope],
        ..Load::default()
    };
    let taken = store
        .mutate(&load, |view| {
            Ok::<_, ()>((
                Vec::new(),
                view.taken.get(&telescope).cloned().unwrap_or_default(),
            ))
        })
        .await
        .expect("read what is taken");
    let mut held: Vec<Interval> = taken
        .into_iter()
        .map(|t| t.interval)
        .filter(|s| s.overlaps(&day))
        .collect();
    assert_disjoint(&held);
    let mut acknowledged = won.clone();
    held.sort_by_key(|s| s.start);
    acknowledged.sort_by_key(|s| s.start);
    assert_eq!(
        held, acknowledged,
        "every acknowledged order holds its time, and only those"
    );

    // A booking made on replica A reaches the feed replica C serves within a second.
    let (status, token) = client
        .call(
            &bases[0],
            "alice",
            reqwest::Method::POST,
            "/api/feed-tokens/",
            Some(json!({"name": "replicas"})),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let path = token["url"]
        .as_str()
        .and_then(|u| u.strip_prefix(bases[0].as_str()))
        .expect("feed url")
        .to_string();
    let feed = |base: String| {
        let (http, path) = (client.http.clone(), path.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("feed");
            assert_eq!(r.status(), 200);
            r.text().await.expect("feed body")
        }
    };
    let before = feed(bases[2].clone()).await;
    let slot = (at(62, 9), at(62, 10));
    let (status, body) = client
        .call(
            &bases[0],
            "alice",
            reqwest::Method::POST,
            "/api/marketplace-orders/",
            Some(order_body(&bases[0], telescope, imaging, slot)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let booked = Instant::now();
    loop {
        if feed(bases[2].clone()).await != before {
            break;
        }
        assert!(
            booked.elapsed() < Duration::from_secs(1),
            "replica C still serves the feed from before the booking on replica A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(replicas);
}

#[tokio::test]
async fn a_store_with_calendars_tokens_and_feeds_goes_to_postgresql_and_back_unchanged() {
    let Some(url) = database().await else { return };
    let app = spawn_app_with(Options::default()).await;
    // Google-side records (calendar, mapping), a feed token and a moved slot.
    let env = crate::helpers::sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let r = app
        .post("alice", "/api/feed-tokens/", json!({"name": "phone"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let target = Store::connect(&url, &StoreOptions::default(), &Default::default())
        .await
        .expect("connect");
    let report = app.store.copy_to(&target, false).await.expect("copy");
    let count = |kind: &str| {
        report
            .counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    };
    for kind in [
        "users",
        "booking resources",
        "orders",
        "calendar records",
        "slot mappings",
        "feed tokens",
        "API tokens",
    ] {
        assert!(count(kind) > 0, "{kind}: {report}");
    }
    // A second copy into the now full database is refused and writes nothing.
    let before = target.commits();
    assert!(matches!(
        app.store.copy_to(&target, false).await,
        Err(bookcal::store::migrate::CopyError::NotEmpty(_))
    ));
    assert_eq!(target.commits(), before);
    // The API token works on the copy; and back into a new sled store, unchanged.
    let alice = target
        .user_by_token(&app.tokens["alice"])
        .await
        .expect("read")
        .map(|u| u.username);
    assert_eq!(alice.as_deref(), Some("alice"));
    let back = Store::temporary().expect("store");
    let again = target.copy_to(&back, false).await.expect("copy back");
    assert_eq!(again, report);
}

#[tokio::test]
async fn bookcal_migrate_copies_a_sled_directory_into_postgresql_and_refuses_a_full_one() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("sled");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    let sled = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookcal"));
        c.env("BOOKCAL_DATA_DIR", &data)
            .env("BOOKCAL_TOKEN_SALT", "replica-test-salt")
            .env("RUST_LOG", "error")
            .args(args);
        c
    };
    let out = sled(&["import", fixture]).output().await.expect("import");
    assert!(out.status.success());
    let out = sled(&["token", "create", "--username", "bob"])
        .output()
        .await
        .expect("token");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let data_s = data.display().to_string();
    let out = sled(&["migrate", "--from", &data_s, "--to", &url])
        .output()
        .await
        .expect("migrate");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("copied and checked: 5 users"), "{said}");
    let again = sled(&["migrate", "--from", &data_s, "--to", &url])
        .output()
        .await
        .expect("migrate");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // A replica on the copy knows bob's token.
    let http = reqwest::Client::new();
    let replica = Replica::start(&url, dir.path(), &http).await;
    let r = http
        .get(format!("{}/api/booking-resources/", replica.base))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_three_replicas_under_load_loses_no_acknowledged_order() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    run(&url, dir.path(), &["import", fixture]).await;
    let token = run(
        &url,
        dir.path(),
        &["token", "create", "--username", "alice"],
    )
    .await;
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        tokens: HashMap::from([("alice", token)]),
    });
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(&url, dir.path(), &client.http).await);
    }
    let bases = Arc::new(std::sync::RwLock::new(
        replicas.iter().map(|r| r.base.clone()).collect::<Vec<_>>(),
    ));
    let store = Store::connect(&url, &StoreOptions::default(), &Default::default())
        .await
        .expect("connect");
    let directory = store.directory().await.expect("directory");
    let room = directory
        .offerings
        .values()
        .find(|o| o.slug == "tem-2100")
        .map(|o| o.id)
        .expect("offering");
    let imaging = directory
        .projects
        .values()
        .find(|p| p.slug == "imaging")
        .map(|p| p.id)
        .expect("project");
    // Steady load: one order after another, each for a slot of its own, sent to the
    // replicas in turn; a refused connection (a replica restarting) goes to the next.
    let stop = tokio_util::sync::CancellationToken::new();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let (client, bases, stop, count) =
            (client.clone(), bases.clone(), stop.clone(), count.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let (mut i, mut attempt) = (0usize, 0usize);
            while !stop.is_cancelled() {
                let slot = (
                    at(80 + (i / 10) as i64, 8 + (i % 10) as u32),
                    at(80 + (i / 10) as i64, 9 + (i % 10) as u32),
                );
                attempt += 1;
                let base = {
                    let b = bases.read().expect("bases");
                    b[attempt % b.len()].clone()
                };
                let sent = client
                    .http
                    .post(format!("{base}/api/marketplace-orders/"))
                    .header("Authorization", format!("Token {}", client.tokens["alice"]))
                    .json(&order_body(&base, room, imaging, slot))
                    .send()
                    .await;
                // An unanswered request (its replica went away) is sent again; if it
                // had committed, its slot is taken (400) and the next one is used.
                let Ok(r) = sent else { continue };
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                match status {
                    201 => {
                        let id = body["uuid"].as_str().and_then(Id::parse).expect("uuid");
                        acknowledged.push(id);
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    400 => {}
                    _ => continue,
                }
                i += 1;
            }
            acknowledged
        })
    };
    // Restart each replica in turn (killed, a new process in its place), each time
    // after the load got a few more orders through.
    for n in 0..3 {
        let seen = count.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        while count.load(std::sync::atomic::Ordering::Relaxed) < seen + 3 {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let old = replicas.remove(0);
        drop(old);
        let new = Replica::start(&url, dir.path(), &client.http).await;
        bases.write().expect("bases")[n] = new.base.clone();
        replicas.push(new);
    }
    stop.cancel();
    let acknowledged = load.await.expect("load");
    assert!(acknowledged.len() >= 9, "{}", acknowledged.len());
    for id in acknowledged {
        assert!(
            store.order(id).await.expect("read").is_some(),
            "order {id} was lost"
        );
    }
}

/// Waits until `cond` holds (checked every 20 ms), at most `secs` seconds.
async fn until<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A database with the demo data, one booking of `slots` one-hour slots in
/// `room-aurora`, and a token for the offering's owner. Returns the store on it,
/// the offering and the owner's token.
async fn room_with_many_slots(
    url: &str,
    dir: &std::path::Path,
    slots: usize,
) -> (Store, Id, String) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    run(url, dir, &["import", fixture]).await;
    let token = run(url, dir, &["token", "create", "--username", "owner"]).await;
    let store = Store::connect(url, &StoreOptions::default(), &Default::default())
        .await
        .expect("connect");
    let directory = store.directory().await.expect("directory");
    let room = directory
        .offerings
        .values()
        .find(|o| o.slug == "room-aurora")
        .expect("room")
        .id;
    add_booking(&store, room, at(200, 0), slots).await;
    (store, room, token)
}

/// Adds an accepted booking of `slots` consecutive one-hour slots from `first` to
/// `offering`, written straight to the store.
async fn add_booking(store: &Store, offering: Id, first: DateTime<Utc>, slots: usize) {
    let directory = store.directory().await.expect("directory");
    let project = *directory.projects.keys().next().expect("a project");
    let user = directory.user_by_name("alice").expect("alice").id;
    let now = Utc::now();
    let r = bookcal::domain::Resource {
        id: Id::new_v4(),
        name: "Many".into(),
        slug: "many".into(),
        description: String::new(),
        offering,
        project,
        state: bookcal::domain::ResourceState::Ok,
        backend_id: String::new(),
        attributes: json!({}),
        slots: (0..slots as i64)
            .map(|i| bookcal::domain::Slot {
                start: first + chrono::Duration::hours(i),
                end: first + chrono::Duration::hours(1 + i),
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
    };
    store
        .write(vec![bookcal::store::Change::Resource(r)])
        .await
        .expect("add the booking");
}

/// An emulator with `latency` per request, its service-account key in `dir`, and
/// the settings that point `bookcal serve` at it (short job leases, no periodic
/// syncs, one Google request at a time).
async fn google_for_replicas(
    dir: &std::path::Path,
    latency: Duration,
) -> (bookcal::emulator::Emulator, Vec<(&'static str, String)>) {
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions {
        latency,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let key = dir.join("service-account.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key file");
    let env = vec![
        ("BOOKCAL_GOOGLE_ROOT_URL", emu.root_url()),
        (
            "BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY",
            key.display().to_string(),
        ),
        ("BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE", "100000".into()),
        // One request at a time: a run lasts its events times the latency.
        ("BOOKCAL_SYNC_CONCURRENCY", "1".into()),
        ("BOOKCAL_STORE_JOB_LEASE_SECS", "3".into()),
        ("BOOKCAL_SYNC_INTERVAL_SECS", "0".into()),
    ];
    (emu, env)
}

/// The live slots of an offering (what its calendar must show, one event each).
async fn live_slot_count(store: &Store, offering: Id) -> usize {
    live_slots(store, offering).await.len()
}

/// The events of every calendar in the emulator: (calendars, live events), after
/// checking that no event id appears twice in a calendar.
fn calendar_contents(emu: &bookcal::emulator::Emulator) -> (usize, usize) {
    let cals = emu.inspect().calendars();
    let mut live = 0;
    for c in &cals {
        let events = emu.inspect().events(c["id"].as_str().unwrap_or(""));
        let ids: std::collections::BTreeSet<&str> =
            events.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids.len(), events.len(), "an event id twice in one calendar");
        live += events.iter().filter(|e| e["status"] != "cancelled").count();
    }
    (cals.len(), live)
}

/// Whether the offering's calendar is synced and no job of it is left.
async fn synced_and_idle(store: &Store, offering: Id) -> bool {
    store
        .calendar(offering)
        .await
        .ok()
        .flatten()
        .is_some_and(|c| {
            c.state == bookcal::domain::calendar::CalendarState::Ok && c.last_success.is_some()
        })
        && store
            .queued_jobs(offering)
            .await
            .is_ok_and(|j| j.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_now_asked_on_every_replica_at_once_runs_one_sync_of_the_offering_at_a_time() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, room, token) = room_with_many_slots(&url, dir.path(), 100).await;
    let (emu, env) = google_for_replicas(dir.path(), Duration::from_millis(25)).await;
    let http = reqwest::Client::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start_with(&url, dir.path(), &http, &env).await);
    }
    // "Sync now" pressed on every replica at once: one press is taken, the others
    // are told the calendar is already being updated.
    let path = format!(
        "/api/booking-offerings/{}/google_calendar_sync/",
        room.hex()
    );
    let mut presses = Vec::new();
    for r in &replicas {
        for _ in 0..3 {
            let req = http
                .post(format!("{}{path}", r.base))
                .header("Authorization", format!("Token {token}"))
                .json(&json!({}));
            presses.push(tokio::spawn(async move {
                req.send().await.expect("sync now").status().as_u16()
            }));
        }
    }
    let inserts = || {
        emu.controls()
            .counters()
            .get("calendar.events.insert")
            .copied()
            .unwrap_or(0)
    };
    let mut taken = 0;
    for p in presses {
        match p.await.expect("press") {
            200 => taken += 1,
            400 => {}
            other => panic!("sync now answered {other}"),
        }
    }
    assert!(taken >= 1);
    assert!(
        until(120, || synced_and_idle(&store, room)).await,
        "the first sync never finished"
    );
    // A second booking of two hundred slots queues the sync it implies; once that run
    // is under way, bookings made on every replica queue a follow-up, which every
    // replica is told about and none may run before the first run ended.
    let alice = run(
        &url,
        dir.path(),
        &["token", "create", "--username", "alice"],
    )
    .await;
    let imaging = store
        .directory()
        .await
        .expect("directory")
        .projects
        .values()
        .find(|p| p.slug == "imaging")
        .expect("imaging")
        .id;
    // A watcher samples the runs of the offering that hold a lease: never two at
    // once, and never a second owner of one job (the run below lasts longer than
    // the three-second lease: its heartbeat keeps it).
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut owners: HashMap<i64, std::collections::HashSet<String>> = HashMap::new();
            let (mut most, mut samples) = (0usize, 0u64);
            while !stop.is_cancelled() {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT seq, lease_owner FROM jobs
                     WHERE offering = $1 AND lease_owner IS NOT NULL",
                )
                .bind(room.0)
                .fetch_all(&pool)
                .await
                .expect("sample");
                most = most.max(rows.len());
                samples += 1;
                for (seq, owner) in rows {
                    owners.entry(seq).or_default().insert(owner);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (most, samples, owners)
        })
    };
    let before = inserts();
    add_booking(&store, room, at(250, 0), 200).await;
    assert!(
        until(60, || async { inserts() >= before + 10 }).await,
        "the implied sync never got going"
    );
    for (i, r) in replicas.iter().enumerate() {
        let slot = (at(190, 9 + i as u32), at(190, 10 + i as u32));
        let resp = http
            .post(format!("{}/api/marketplace-orders/", r.base))
            .header("Authorization", format!("Token {alice}"))
            .json(&order_body(&r.base, room, imaging, slot))
            .send()
            .await
            .expect("order");
        let status = resp.status().as_u16();
        assert_eq!(status, 201, "{}", resp.text().await.unwrap_or_default());
    }
    assert!(
        until(120, || synced_and_idle(&store, room)).await,
        "the sync never finished"
    );
    stop.cancel();
    let (most, samples, owners) = watcher.await.expect("watcher");
    assert!(
        samples > 10,
        "the watcher hardly looked ({samples} samples)"
    );
    assert_eq!(most, 1, "runs of one offering at once");
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a live run was taken over: {owners:?}"
    );
    // Runs that overlapped would each have inserted the events: every event was
    // inserted exactly once, into one calendar.
    let total = live_slot_count(&store, room).await;
    let counters = emu.controls().counters();
    assert_eq!(counters.get("calendar.calendars.insert").copied(), Some(1));
    assert_eq!(
        counters.get("calendar.events.insert").copied(),
        Some(total as u64),
        "{counters:?}"
    );
    assert_eq!(calendar_contents(&emu), (1, total));
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_replica_running_a_sync_lets_another_finish_it_after_the_lease_with_no_duplicate_and_no_missing_event(
) {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, room, token) = room_with_many_slots(&url, dir.path(), 200).await;
    let (emu, env) = google_for_replicas(dir.path(), Duration::from_millis(10)).await;
    let http = reqwest::Client::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start_with(&url, dir.path(), &http, &env).await);
    }
    let r = sync_now(&http, &replicas[0].base, &token, room).await;
    assert_eq!(r.status(), 200);
    // Once the run has written some events, find the replica holding its lease.
    let inserts = || {
        emu.controls()
            .counters()
            .get("calendar.events.insert")
            .copied()
            .unwrap_or(0)
    };
    assert!(
        until(60, || async { inserts() >= 40 }).await,
        "the run never got going"
    );
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let owner: String = sqlx::query_scalar(
        "SELECT lease_owner FROM jobs WHERE offering = $1 AND lease_owner IS NOT NULL",
    )
    .bind(room.0)
    .fetch_one(&pool)
    .await
    .expect("the running job and its lease");
    let pid: u32 = owner
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the lease names its process");
    let running = replicas
        .iter()
        .position(|r| r.process.id() == Some(pid))
        .expect("one of the replicas runs it");
    let mut victim = replicas.remove(running);
    victim.process.start_kill().expect("kill -9");
    let _ = victim.process.wait().await;
    let killed = Utc::now();
    let total = live_slot_count(&store, room).await;
    let (_, partial) = calendar_contents(&emu);
    assert!(
        partial < total,
        "the kill came too late to test anything ({partial} of {total} events)"
    );
    // Another replica takes the job over once the lease has ended and finishes it.
    assert!(
        until(120, || synced_and_idle(&store, room)).await,
        "no replica finished the sync"
    );
    let cal = store.calendar(room).await.expect("read").expect("calendar");
    assert!(cal.last_success.is_some_and(|t| t > killed), "{cal:?}");
    assert_eq!(
        calendar_contents(&emu),
        (1, total),
        "one calendar with every booking once"
    );
    drop(replicas);
}

#[tokio::test]
async fn sync_now_share_and_unshare_run_on_postgresql_against_the_emulator() {
    let Some(url) = database().await else { return };
    let app = spawn_app_with(Options {
        store_url: Some(url),
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora");
    let p = |a: &str| format!("/api/booking-offerings/{}/{a}/", room.hex());
    let store = app.store.clone();
    let calendar = || async { store.calendar(room).await.ok().flatten() };
    // Queued while no scheduler runs: the job waits in the database.
    assert_eq!(
        app.post("owner", &p("google_calendar_sync"), json!({}))
            .await
            .status,
        200
    );
    let jobs = store.jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let scheduler = app.start_scheduler();
    assert!(
        until(30, || async {
            calendar().await.is_some_and(|c| {
                c.state == bookcal::domain::calendar::CalendarState::Ok && c.last_success.is_some()
            }) && store.jobs().await.is_ok_and(|j| j.is_empty())
        })
        .await,
        "the sync never ran"
    );
    let cal = calendar().await.and_then(|c| c.calendar_id).expect("id");
    assert_eq!(app.live_events(&cal).len(), 3);
    let public = || {
        app.emu()
            .inspect()
            .acl(&cal)
            .iter()
            .any(|r| r["id"] == "default")
    };

    assert_eq!(
        app.post("owner", &p("share_google_calendar"), json!({}))
            .await
            .status,
        200
    );
    assert!(until(30, || async { calendar().await.is_some_and(|c| c.public) }).await);
    assert!(public());
    assert_eq!(
        app.post("owner", &p("unshare_google_calendar"), json!({}))
            .await
            .status,
        200
    );
    assert!(until(30, || async { calendar().await.is_some_and(|c| !c.public) }).await);
    assert!(!public());
    // A booking change queues the sync it implies, in the same transaction.
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(90, 9), at(90, 10))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        until(30, || async { app.live_events(&cal).len() == 4 }).await,
        "the booking never reached the calendar"
    );
    scheduler.stop().await;
}

/// What a [`LeaseWatcher`] saw: the most runs of the offering holding a lease at
/// once, how often it looked, and the owners of each running job.
struct Leases {
    most: usize,
    samples: u64,
    owners: HashMap<i64, std::collections::HashSet<String>>,
}

/// Samples, every few milliseconds, the jobs of one offering that hold a lease.
struct LeaseWatcher {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Leases>,
}

impl LeaseWatcher {
    async fn start(url: &str, offering: Id) -> LeaseWatcher {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Leases {
                    most: 0,
                    samples: 0,
                    owners: HashMap::new(),
                };
                while !stop.is_cancelled() {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT seq, lease_owner FROM jobs
                         WHERE offering = $1 AND lease_owner IS NOT NULL",
                    )
                    .bind(offering.0)
                    .fetch_all(&pool)
                    .await
                    .expect("sample");
                    seen.most = seen.most.max(rows.len());
                    seen.samples += 1;
                    for (seq, owner) in rows {
                        seen.owners.entry(seq).or_default().insert(owner);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            })
        };
        LeaseWatcher { stop, task }
    }

    /// Whether a run of process `pid` has held a lease so far.
    async fn saw(url: &str, offering: Id, pid: u32) -> bool {
        let Ok(pool) = sqlx::PgPool::connect(url).await else {
            return false;
        };
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT lease_owner FROM jobs WHERE offering = $1 AND lease_owner IS NOT NULL",
        )
        .bind(offering.0)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        owners.iter().any(|o| o.starts_with(&format!("{pid}-")))
    }

    async fn finish(self) -> Leases {
        self.stop.cancel();
        self.task.await.expect("watcher")
    }
}

/// The process ids named by the lease owners a watcher saw.
fn lease_pids(seen: &Leases) -> std::collections::HashSet<u32> {
    seen.owners
        .values()
        .flatten()
        .filter_map(|o| o.split('-').next().and_then(|p| p.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookcal_sync_by_hand_takes_the_offerings_claim_and_never_runs_alongside_a_replica() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, room, token) = room_with_many_slots(&url, dir.path(), 200).await;
    let (emu, env) = google_for_replicas(dir.path(), Duration::from_millis(20)).await;
    let http = reqwest::Client::new();
    let replica = Replica::start_with(&url, dir.path(), &http, &env).await;
    let replica_pid = replica.process.id().expect("replica pid");
    let inserts = || {
        emu.controls()
            .counters()
            .get("calendar.events.insert")
            .copied()
            .unwrap_or(0)
    };
    let by_hand = || {
        bookcal(&url, dir.path())
            .args(["sync", "--offering", &room.hex()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("bookcal sync")
    };
    let watcher = LeaseWatcher::start(&url, room).await;

    // 1. The replica runs the offering ("sync now"); `bookcal sync` started meanwhile
    // says it waits, and runs once the replica's run has ended.
    let r = sync_now(&http, &replica.base, &token, room).await;
    assert_eq!(r.status(), 200);
    assert!(
        until(60, || async { inserts() >= 20 }).await,
        "the replica's run never got going"
    );
    assert!(
        LeaseWatcher::saw(&url, room, replica_pid).await,
        "the replica's run holds no lease"
    );
    let cli = by_hand();
    let cli_pid = cli.id().expect("cli pid");
    let out = tokio::time::timeout(Duration::from_secs(120), cli.wait_with_output())
        .await
        .expect("bookcal sync ended")
        .expect("bookcal sync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("a `bookcal serve` replica is syncing it now; waiting for its run to end"),
        "{stdout}"
    );
    assert!(stdout.contains(": created "), "{stdout}");
    let total = live_slot_count(&store, room).await;
    assert!(
        until(60, || synced_and_idle(&store, room)).await,
        "the replica's run never finished"
    );

    // 2. `bookcal sync` holds the offering; a booking made meanwhile queues the sync it
    // implies, and "sync now" is pressed on the replica: neither runs before the
    // command's run ended, and the follow-up brings the new booking.
    // Through a store whose implied syncs wait a minute: the replica leaves this
    // booking to the command.
    let patient = Store::connect(
        &url,
        &StoreOptions {
            sync_debounce: Duration::from_secs(60),
            ..StoreOptions::default()
        },
        &Default::default(),
    )
    .await
    .expect("connect");
    add_booking(&patient, room, at(260, 0), 150).await;
    let cli = by_hand();
    let cli2_pid = cli.id().expect("cli pid");
    assert!(
        until(60, || LeaseWatcher::saw(&url, room, cli2_pid)).await,
        "the command's run holds no lease"
    );
    add_booking(&store, room, at(280, 0), 10).await;
    let r = sync_now(&http, &replica.base, &token, room).await;
    assert!(
        [200, 400].contains(&r.status().as_u16()),
        "sync now answered {}",
        r.status()
    );
    let out = tokio::time::timeout(Duration::from_secs(120), cli.wait_with_output())
        .await
        .expect("bookcal sync ended")
        .expect("bookcal sync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("waiting"), "{stdout}");
    let total_after = live_slot_count(&store, room).await;
    assert_eq!(total_after, total + 160);
    assert!(
        until(120, || async {
            synced_and_idle(&store, room).await && calendar_contents(&emu).1 == total_after
        })
        .await,
        "the replica's follow-up never brought the last booking ({:?} of {total_after})",
        calendar_contents(&emu)
    );
    let seen = watcher.finish().await;
    assert!(seen.samples > 10, "the watcher hardly looked");
    assert_eq!(seen.most, 1, "runs of one offering at once");
    assert!(
        seen.owners.values().all(|o| o.len() == 1),
        "a live run was taken over: {:?}",
        seen.owners
    );
    let pids = lease_pids(&seen);
    for pid in [replica_pid, cli_pid, cli2_pid] {
        assert!(pids.contains(&pid), "no run of process {pid}: {pids:?}");
    }
    // Overlapping runs would each have inserted the events: every event was inserted
    // exactly once, into one calendar.
    let counters = emu.controls().counters();
    assert_eq!(counters.get("calendar.calendars.insert").copied(), Some(1));
    assert_eq!(
        counters.get("calendar.events.insert").copied(),
        Some(total_after as u64),
        "{counters:?}"
    );
    assert_eq!(calendar_contents(&emu), (1, total_after));
    drop(replica);
}

/// A load balancer in front of the replicas' webhooks: each delivery goes to the
/// next of its targets in turn, and every answer is logged (target, status).
struct Forwarder {
    /// The webhook address the replicas give Google.
    url: String,
    targets: Arc<std::sync::Mutex<Vec<String>>>,
    answers: Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

type ForwarderState = (
    Arc<std::sync::Mutex<Vec<String>>>,
    Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    Arc<std::sync::atomic::AtomicUsize>,
    reqwest::Client,
);

impl Forwarder {
    async fn start() -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/google/notifications",
            listener.local_addr().expect("address")
        );
        let targets: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let answers: Arc<std::sync::Mutex<Vec<(String, u16)>>> = Arc::default();
        let state: ForwarderState = (
            targets.clone(),
            answers.clone(),
            Arc::default(),
            reqwest::Client::new(),
        );
        let app = axum::Router::new()
            .route("/google/notifications", axum::routing::post(forward))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Forwarder {
            url,
            targets,
            answers,
            task,
        }
    }

    /// From now on, deliveries go to these replicas (base URLs) in turn.
    fn send_to(&self, bases: Vec<String>) {
        *self.targets.lock().unwrap_or_else(|e| e.into_inner()) = bases;
    }

    fn answers(&self) -> Vec<(String, u16)> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    axum::extract::State((targets, answers, next, http)): axum::extract::State<ForwarderState>,
    headers: axum::http::HeaderMap,
) -> axum::http::StatusCode {
    let target = {
        let targets = targets.lock().unwrap_or_else(|e| e.into_inner());
        if targets.is_empty() {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        targets[n % targets.len()].clone()
    };
    let mut request = http.post(format!("{target}/google/notifications"));
    for (name, value) in &headers {
        if name.as_str().starts_with("x-goog-") {
            request = request.header(name, value);
        }
    }
    let status = request.send().await.map_or(502, |r| r.status().as_u16());
    answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((target, status));
    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY)
}

/// `bookcal serve` replicas with push on, on one database holding the demo data and
/// a two-slot booking of `room-aurora`, against one emulator; every replica gives
/// Google the forwarder's address, and the forwarder spreads deliveries over them.
struct PushReplicas {
    /// Killed first when dropped (before their data directory goes).
    replicas: Vec<Replica>,
    url: String,
    dir: tempfile::TempDir,
    store: Store,
    room: Id,
    /// The room's owner's API token.
    token: String,
    emu: bookcal::emulator::Emulator,
    /// The replicas' settings (see [`google_for_replicas`]); more may be pushed
    /// before [`PushReplicas::start`].
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
    forwarder: Forwarder,
}

impl PushReplicas {
    /// The database, the emulator (`latency` per request) and the forwarder; no
    /// replica yet. `None` when PostgreSQL is not installed and not required.
    async fn prepare(latency: Duration) -> Option<PushReplicas> {
        let url = database().await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, room, token) = room_with_many_slots(&url, dir.path(), 2).await;
        let (emu, mut env) = google_for_replicas(dir.path(), latency).await;
        let forwarder = Forwarder::start().await;
        env.push(("BOOKCAL_GOOGLE_PUSH_ENABLED", "true".into()));
        env.push(("BOOKCAL_GOOGLE_PUSH_URL", forwarder.url.clone()));
        Some(PushReplicas {
            url,
            dir,
            store,
            room,
            token,
            emu,
            env,
            http: reqwest::Client::new(),
            forwarder,
            replicas: Vec::new(),
        })
    }

    /// Starts `n` replicas; the forwarder sends to all of them.
    async fn start(&mut self, n: usize) {
        for _ in 0..n {
            let r = Replica::start_with(&self.url, self.dir.path(), &self.http, &self.env).await;
            self.replicas.push(r);
        }
        self.forwarder
            .send_to(self.replicas.iter().map(|r| r.base.clone()).collect());
    }

    /// Has replica `on` sync the room now and waits until its calendar exists and
    /// carries exactly one live channel, the recorded one; returns the calendar id.
    async fn calendar_with_channel(&self, on: usize) -> String {
        let cal = calendar_created(
            &self.http,
            &self.replicas[on].base,
            &self.token,
            &self.store,
            self.room,
        )
        .await;
        assert!(
            until(60, || async {
                the_one_channel(&self.emu, &self.store, self.room, &cal)
                    .await
                    .is_some()
            })
            .await,
            "never exactly one live channel: {:?}",
            live_channel_ids(&self.emu, &cal)
        );
        cal
    }

    /// The sum of a figure of every replica's `/metrics`.
    async fn figure(&self, series: &str) -> u64 {
        let mut n = 0;
        for r in &self.replicas {
            n += figure(&self.http, &r.base, series).await;
        }
        n
    }
}

/// "Sync now" on `base` for the offering, as `token`'s holder presses it.
async fn sync_now(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    offering: Id,
) -> reqwest::Response {
    http.post(format!(
        "{base}/api/booking-offerings/{}/google_calendar_sync/",
        offering.hex()
    ))
    .header("Authorization", format!("Token {token}"))
    .json(&json!({}))
    .send()
    .await
    .expect("sync now")
}

/// Asks `base` to sync the offering now and waits until its calendar exists;
/// returns the calendar id.
async fn calendar_created(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    store: &Store,
    offering: Id,
) -> String {
    assert_eq!(sync_now(http, base, token, offering).await.status(), 200);
    assert!(
        until(60, || async {
            store
                .calendar(offering)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.calendar_id.is_some())
        })
        .await,
        "the calendar was never created"
    );
    store
        .calendar(offering)
        .await
        .expect("read")
        .and_then(|c| c.calendar_id)
        .expect("calendar id")
}

/// The id of the one live channel at the emulator on `calendar`, when there is
/// exactly one and it is the offering's recorded channel.
async fn the_one_channel(
    emu: &bookcal::emulator::Emulator,
    store: &Store,
    offering: Id,
    calendar: &str,
) -> Option<String> {
    let live = live_channel_ids(emu, calendar);
    let recorded = store
        .push_state(offering)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.channel)
        .map(|c| c.id)?;
    (live == [recorded.clone()]).then_some(recorded)
}

/// The ids of the live channels at the emulator on `calendar`.
fn live_channel_ids(emu: &bookcal::emulator::Emulator, calendar: &str) -> Vec<String> {
    emu.push()
        .channels()
        .into_iter()
        .filter(|c| c.calendar_id == calendar)
        .map(|c| c.id)
        .collect()
}

/// A figure of a replica's `/metrics` (the first sample whose line starts with
/// `series`), 0 when absent.
async fn figure(http: &reqwest::Client, base: &str, series: &str) -> u64 {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

const OPENED: &str = "bookcal_push_channel_changes_total{change=\"opened\"}";
const RENEWED: &str = "bookcal_push_channel_changes_total{change=\"renewed\"}";
const DISCARDED: &str = "bookcal_push_channel_changes_total{change=\"discarded\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_with_push_on_keep_exactly_one_channel_per_calendar_through_its_renewals() {
    // Every Google request takes a while, so replicas that find the channel due at
    // the same moment overlap in their watch requests.
    let Some(mut c) = PushReplicas::prepare(Duration::from_millis(100)).await else {
        return;
    };
    // A minute-long channel, replaced three seconds into its life: every replica
    // finds it due for renewal at the same moment, again and again.
    c.env.push(("BOOKCAL_GOOGLE_PUSH_TTL_SECS", "60".into()));
    c.env
        .push(("BOOKCAL_GOOGLE_PUSH_RENEW_BEFORE_SECS", "57".into()));
    // Every replica reads the stored channel often, so all of them know each new
    // channel and find it due together.
    c.env.push(("BOOKCAL_GOOGLE_PUSH_LOOK_SECS", "1".into()));
    c.start(3).await;
    let cal = c.calendar_with_channel(1).await;
    let (store, emu, room) = (&c.store, &c.emu, c.room);
    let mut seen = vec![the_one_channel(emu, store, room, &cal)
        .await
        .expect("the channel")];
    // Three renewals: each time one replica replaces the channel and stops the old
    // one; a second channel (a replica that opened its own, an orphan) would live a
    // minute and keep this from ever holding again.
    for round in 1..=3 {
        assert!(
            until(60, || async {
                the_one_channel(emu, store, room, &cal)
                    .await
                    .is_some_and(|id| !seen.contains(&id))
            })
            .await,
            "renewal {round}: never exactly one new live channel: {:?}",
            live_channel_ids(emu, &cal)
        );
        seen.push(
            the_one_channel(emu, store, room, &cal)
                .await
                .expect("the channel"),
        );
    }
    // One replica opened it; the renewals were counted once each (a replica counts
    // only what it recorded).
    assert_eq!(
        c.figure(OPENED).await,
        1,
        "channels opened across the replicas"
    );
    let renewed = c.figure(RENEWED).await;
    assert!(renewed >= 3, "renewals across the replicas: {renewed}");
    assert_eq!(
        store.push_states().await.expect("states").len(),
        1,
        "one push state for the one calendar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_to_a_replica_that_did_not_open_the_channel_syncs_and_a_forged_one_is_404_on_every_replica(
) {
    let Some(mut c) = PushReplicas::prepare(Duration::ZERO).await else {
        return;
    };
    c.start(3).await;
    let cal = c.calendar_with_channel(0).await;
    let (store, emu, http, forwarder, replicas, room) =
        (&c.store, &c.emu, &c.http, &c.forwarder, &c.replicas, c.room);
    // The channel's `sync` message arrived (wherever the forwarder sent it).
    assert!(
        until(60, || async {
            store
                .push_state(room)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.ignored >= 1)
        })
        .await,
        "no sync message: {:?}",
        forwarder.answers()
    );
    let mut opener = None;
    for (i, r) in replicas.iter().enumerate() {
        if figure(http, &r.base, OPENED).await == 1 {
            assert!(opener.is_none(), "two replicas opened a channel");
            opener = Some(i);
        }
    }
    let opener = opener.expect("the replica that opened the channel");
    let others: Vec<String> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != opener)
        .map(|(_, r)| r.base.clone())
        .collect();
    // The load balancer now never picks the replica that opened the channel.
    forwarder.send_to(others.clone());
    let mark = forwarder.answers().len();
    assert!(
        until(60, || synced_and_idle(store, room)).await,
        "the first sync never settled"
    );

    // (c) Forged deliveries: 404 on every replica, nothing recorded or queued.
    let before = store.push_state(room).await.expect("read").expect("state");
    let channel = before.channel.clone().expect("channel");
    let forged: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "wrong token",
            vec![
                ("X-Goog-Channel-ID", channel.id.clone()),
                ("X-Goog-Channel-Token", "0".repeat(64)),
            ],
        ),
        ("no token", vec![("X-Goog-Channel-ID", channel.id.clone())]),
        (
            "unknown channel",
            vec![
                ("X-Goog-Channel-ID", "not-a-channel-of-ours".into()),
                ("X-Goog-Channel-Token", "0".repeat(64)),
            ],
        ),
    ];
    for r in replicas {
        for (name, headers) in &forged {
            let mut request = http
                .post(format!("{}/google/notifications", r.base))
                .header("X-Goog-Resource-State", "exists")
                .header("X-Goog-Message-Number", "99")
                .header("X-Goog-Resource-ID", channel.resource_id.as_str());
            for (k, v) in headers {
                request = request.header(*k, v.as_str());
            }
            let answer = request.send().await.expect("deliver");
            assert_eq!(answer.status().as_u16(), 404, "{name} at {}", r.base);
            let body: Value = answer.json().await.expect("json");
            assert_eq!(body, json!({"detail": "Not found."}), "{name}");
        }
    }
    assert_eq!(
        store.push_state(room).await.expect("read"),
        Some(before.clone()),
        "a forged delivery changed the push state"
    );
    assert!(
        store.queued_jobs(room).await.expect("jobs").is_empty(),
        "a forged delivery queued a sync"
    );

    // (b) A change made in Google reaches a replica that did not open the channel,
    // which queues the sync; the busy time appears.
    let (start, end) = (at(240, 9), at(240, 11));
    crate::helpers::google_client(emu, None)
        .await
        .event_insert(&cal, &crate::push::timed("e0replica1", start, end))
        .await
        .expect("insert in Google");
    assert!(
        until(60, || async {
            store
                .busy_slots(room)
                .await
                .is_ok_and(|b| b.iter().any(|s| s.start == start && s.end == end))
        })
        .await,
        "the pushed change never reached the busy time: {:?}",
        forwarder.answers()
    );
    let acted: Vec<(String, u16)> = forwarder.answers()[mark..]
        .iter()
        .filter(|(_, status)| *status == 200)
        .cloned()
        .collect();
    assert!(
        !acted.is_empty() && acted.iter().all(|(t, _)| others.contains(t)),
        "deliveries answered by the replicas that did not open the channel: {acted:?}"
    );
    let after = store.push_state(room).await.expect("read").expect("state");
    assert_eq!(after.received, before.received + 1, "{after:?}");

    // Deliveries at all three replicas at once: each is counted exactly once (as
    // received, or ignored when a higher number got there first); none is lost.
    let live = emu
        .push()
        .channels()
        .into_iter()
        .find(|c| c.id == channel.id)
        .expect("the live channel");
    let secret = live.token.clone().expect("the channel's token");
    let mut deliveries = tokio::task::JoinSet::new();
    for i in 0..30u64 {
        let (http, base) = (http.clone(), replicas[i as usize % 3].base.clone());
        let (id, secret) = (channel.id.clone(), secret.clone());
        deliveries.spawn(async move {
            http.post(format!("{base}/google/notifications"))
                .header("X-Goog-Channel-ID", id)
                .header("X-Goog-Channel-Token", secret)
                .header("X-Goog-Resource-State", "exists")
                .header("X-Goog-Message-Number", (1000 + i).to_string())
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        });
    }
    let answers = deliveries.join_all().await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let counted = store.push_state(room).await.expect("read").expect("state");
    assert_eq!(
        counted.received + counted.ignored,
        after.received + after.ignored + 30,
        "deliveries counted across the replicas: {counted:?}"
    );
    assert!(counted.received > after.received, "{counted:?}");
    assert_eq!(
        counted.channel.map(|c| c.last_message),
        Some(1029),
        "the highest number is kept"
    );
}

/// Changes an offering's stored push state as a replica does: read, changed and
/// written in one store transaction under the push state's lock, so no replica's
/// upkeep pass in flight writes over the change with what it read before. Returns
/// the state written.
async fn edit_push_state(
    store: &Store,
    offering: Id,
    edit: impl Fn(bookcal::domain::push::PushState) -> bookcal::domain::push::PushState,
) -> bookcal::domain::push::PushState {
    let load = Load {
        push: vec![offering],
        ..Load::default()
    };
    store
        .mutate(&load, |view| {
            let state = view
                .push
                .get(&offering)
                .cloned()
                .ok_or("no push state recorded")?;
            let next = edit(state);
            Ok::<_, &str>((vec![Store::push_change(&next)], next))
        })
        .await
        .expect("edit the push state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_renewal_claimed_by_a_replica_that_died_is_taken_over_after_its_lease() {
    let Some(mut c) = PushReplicas::prepare(Duration::ZERO).await else {
        return;
    };
    c.start(3).await;
    let cal = c.calendar_with_channel(0).await;
    let (store, emu, http, room) = (&c.store, &c.emu, &c.http, c.room);
    assert!(until(60, || synced_and_idle(store, room)).await);
    // What a replica killed in the middle of a renewal leaves: the channel due for
    // renewal (it expires within `push_renew_before_secs`) and its claim, whose
    // lease (the job lease, 3 s here) runs on.
    let lease_end = Utc::now() + chrono::Duration::seconds(3);
    let dead = edit_push_state(store, room, |state| {
        let channel = state.channel.clone().expect("channel");
        bookcal::domain::push::PushState {
            channel: Some(bookcal::domain::push::Channel {
                expiration: Utc::now() + chrono::Duration::hours(1),
                ..channel
            }),
            claim: Some(bookcal::domain::push::Claim {
                token: "the claim of a replica that died".into(),
                until: lease_end,
            }),
            ..state
        }
    })
    .await;
    let first = dead.channel.clone().expect("channel");
    // A sync run on some replica has its upkeep look (and find the claim).
    let r = sync_now(http, &c.replicas[2].base, &c.token, room).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        until(60, || async {
            the_one_channel(emu, store, room, &cal)
                .await
                .is_some_and(|id| id != first.id)
        })
        .await,
        "the renewal was never taken over: {:?} {:?}",
        store.push_state(room).await,
        live_channel_ids(emu, &cal)
    );
    let renewed = store.push_state(room).await.expect("read").expect("state");
    let channel = renewed.channel.expect("channel");
    assert!(
        channel.created >= lease_end,
        "renewed at {} while the dead replica's lease ran until {lease_end}",
        channel.created
    );
    assert_eq!(renewed.claim, None, "the claim is released with the result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_a_slow_google_outlives_the_upkeep_lease_the_first_channel_recorded_wins_and_the_other_is_stopped(
) {
    let Some(mut c) = PushReplicas::prepare(Duration::ZERO).await else {
        return;
    };
    c.env.push(("BOOKCAL_GOOGLE_PUSH_LOOK_SECS", "1".into()));
    c.start(3).await;
    let cal = c.calendar_with_channel(0).await;
    let (store, emu, room) = (&c.store, &c.emu, c.room);
    assert!(until(60, || synced_and_idle(store, room)).await);
    let first = the_one_channel(emu, store, room, &cal)
        .await
        .expect("the channel");
    // Every Google call now outlives the upkeep lease (3 s) by 3 s: while the replica
    // that claimed the renewal waits for its watch, another takes the turn over.
    emu.controls().set_latency(Duration::from_secs(6));
    edit_push_state(store, room, |state| bookcal::domain::push::PushState {
        channel: state
            .channel
            .clone()
            .map(|c| bookcal::domain::push::Channel {
                expiration: Utc::now() + chrono::Duration::hours(1),
                ..c
            }),
        ..state
    })
    .await;
    let discarded = || c.figure(DISCARDED);
    assert!(
        until(90, || async {
            discarded().await >= 1
                && the_one_channel(emu, store, room, &cal)
                    .await
                    .is_some_and(|id| id != first)
        })
        .await,
        "no single renewed channel after the race (discarded: {}): {:?} {:?}",
        discarded().await,
        store.push_state(room).await,
        live_channel_ids(emu, &cal)
    );
    let after = store.push_state(room).await.expect("read").expect("state");
    assert_eq!(after.claim, None, "no claim is left behind");
    assert_eq!(after.failures, 0, "a lost race is not a failure: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_claims_are_judged_by_the_databases_clock_not_by_a_replicas_own() {
    let Some(mut c) = PushReplicas::prepare(Duration::ZERO).await else {
        return;
    };
    // The database's clock runs an hour ahead of the replica's: its sessions find
    // this `clock_timestamp()` before PostgreSQL's own.
    let pool = sqlx::PgPool::connect(&c.url).await.expect("connect");
    for sql in [
        "CREATE SCHEMA skewed",
        "CREATE FUNCTION skewed.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE
         AS $$ SELECT pg_catalog.clock_timestamp() + interval '1 hour' $$",
        "DO $$ BEGIN EXECUTE format(
             'ALTER DATABASE %I SET search_path = public, skewed, pg_catalog',
             current_database()); END $$",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    pool.close().await;
    // A claim on the room's channel upkeep that ends in half an hour by the
    // replica's clock and ended half an hour ago by the database's.
    let claimed = bookcal::domain::push::PushState {
        claim: Some(bookcal::domain::push::Claim {
            token: "a claim that ended by the database's clock".into(),
            until: Utc::now() + chrono::Duration::minutes(30),
        }),
        ..bookcal::domain::push::PushState::new(c.room)
    };
    c.store
        .write(vec![Store::push_change(&claimed)])
        .await
        .expect("write the claim");
    c.start(1).await;
    // The replica takes the turn at once rather than waiting out its own reading.
    let cal = c.calendar_with_channel(0).await;
    let state = c
        .store
        .push_state(c.room)
        .await
        .expect("read")
        .expect("state");
    assert_eq!(state.claim, None, "{state:?}");
    assert!(
        state.channel.is_some_and(|ch| ch.calendar_id == cal),
        "the channel is recorded"
    );
}

/// A web page as a browser without redirects sees it: status, where it leads, the
/// cookies it sets and its text.
struct WebAnswer {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    text: String,
}

impl WebAnswer {
    /// The value of cookie `name` this answer sets (`None`: not set).
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(String::from)
        })
    }

    /// The first form's CSRF token.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.text.find(marker).expect("a form with a CSRF token") + marker.len();
        self.text[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A GET (no form) or a form POST to a replica's web pages with the given cookies.
async fn web(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    cookies: &str,
    form: Option<&[(&str, &str)]>,
) -> WebAnswer {
    let url = format!("{base}{path}");
    let req = match form {
        None => http.get(url),
        Some(fields) => http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish(),
            ),
    };
    let r = req.header("cookie", cookies).send().await.expect("request");
    let header = |name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    };
    let (location, set_cookies) = (header("location").concat(), header("set-cookie"));
    WebAnswer {
        status: r.status().as_u16(),
        location,
        set_cookies,
        text: r.text().await.expect("body"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_web_session_started_on_one_replica_signs_in_on_another_until_signed_out_on_either() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    run(&url, dir.path(), &["import", fixture]).await;
    let token = run(
        &url,
        dir.path(),
        &["token", "create", "--username", "alice"],
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let a = Replica::start(&url, dir.path(), &http).await;
    let b = Replica::start(&url, dir.path(), &http).await;

    // Sign in on replica A's form.
    let form = web(&http, &a.base, "/sign-in", "", None).await;
    assert_eq!(form.status, 200, "{}", form.text);
    let form_cookie = form.cookie("bookcal_signin").expect("the form's cookie");
    let signed_in = web(
        &http,
        &a.base,
        "/sign-in",
        &format!("bookcal_signin={form_cookie}"),
        Some(&[("csrf", &form.csrf()), ("token", &token)]),
    )
    .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    assert_eq!(signed_in.location, "/");
    let secret = signed_in
        .cookie("bookcal_session")
        .expect("a session cookie");
    let session = format!("bookcal_session={secret}");

    // The cookie signs in on both replicas, B included (it never saw the sign-in).
    for (which, base) in [("A", &a.base), ("B", &b.base)] {
        let home = web(&http, base, "/", &session, None).await;
        assert_eq!(home.status, 200, "replica {which}: {}", home.location);
        assert!(
            home.text
                .contains("Signed in as <strong>Alice Åkesson (alice)</strong>"),
            "replica {which}: {}",
            home.text
        );
    }
    // Without it, B sends the browser to sign in.
    let anonymous = web(&http, &b.base, "/", "", None).await;
    assert_eq!(
        (anonymous.status, anonymous.location.as_str()),
        (303, "/sign-in")
    );

    // Sign out on B, with the CSRF token of B's page.
    let home = web(&http, &b.base, "/", &session, None).await;
    let out = web(
        &http,
        &b.base,
        "/sign-out",
        &session,
        Some(&[("csrf", &home.csrf())]),
    )
    .await;
    assert_eq!(out.status, 303, "{}", out.text);
    assert_eq!(out.location, "/sign-in");
    assert_eq!(out.cookie("bookcal_session").as_deref(), Some(""));

    // The same cookie is refused on A (and on B): the session is gone for everyone.
    for (which, base) in [("A", &a.base), ("B", &b.base)] {
        let home = web(&http, base, "/", &session, None).await;
        assert_eq!(
            (home.status, home.location.as_str()),
            (303, "/sign-in"),
            "replica {which} still takes the signed-out cookie"
        );
        let bookings = web(&http, base, "/bookings", &session, None).await;
        assert_eq!(bookings.location, "/sign-in", "replica {which}");
    }
    // A form posted with it changes nothing either: refused as a forgery.
    let again = web(
        &http,
        &a.base,
        "/sign-out",
        &session,
        Some(&[("csrf", &home.csrf())]),
    )
    .await;
    assert_eq!(again.status, 403, "{}", again.text);
    drop((a, b));
}

/// The names of the booking resources the owner finds with `name=`.
async fn found_by_name(app: &TestApp, needle: &str) -> Vec<String> {
    let r = app
        .get(
            "owner",
            &format!("/api/booking-resources/?name={}", urlencoding(needle)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|b| b["uuid"].as_str().map(str::to_owned))
        .collect()
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_booking_renamed_by_an_older_replica_is_found_by_its_new_name_once_bookcal_folds_it() {
    let Some(url) = database().await else { return };
    let app = spawn_app_with(Options {
        google_credentials: false,
        store_url: Some(url.clone()),
        ..Options::default()
    })
    .await;
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(27, 9), at(27, 10))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_owned();
    let id = uuid::Uuid::parse_str(&res).expect("uuid");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    // As a bookcal older than the folded columns renames it: the text alone.
    let rename = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE resources SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(name)
                .execute(&pool)
                .await
                .expect("rename");
        }
    };
    rename("Ölmühle Quokka").await;
    // Its old folding is gone (no search finds it under a name it no longer has)
    // until bookcal folds it.
    assert!(found_by_name(&app, "quokka").await.is_empty());
    app.store.refold().await.expect("refold");
    assert_eq!(found_by_name(&app, "ÖLMÜHLE").await, vec![res.clone()]);
    // A running bookcal does so by itself, periodically.
    let stop = tokio_util::sync::CancellationToken::new();
    let upkeep = tokio::spawn({
        let (store, stop) = (app.store.clone(), stop.clone());
        async move { store.keep_folded(Duration::from_millis(50), stop).await }
    });
    rename("Émile Wombat").await;
    let mut found = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if found_by_name(&app, "émile wombat").await == vec![res.clone()] {
            found = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    stop.cancel();
    upkeep.await.expect("upkeep");
    assert!(found, "never folded");
    assert!(found_by_name(&app, "ölmühle").await.is_empty());
}
