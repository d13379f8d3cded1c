//! The PostgreSQL engine through the whole service: `bookcal serve`'s start-up path
//! on a throw-away cluster, and three `bookcal serve` processes on one database.
//! The invariants are the database's: racing clients never both win a slot, a
//! booking's transitions are serialised by its row locks, and a write on one replica
//! reaches the feeds of the others through `LISTEN`/`NOTIFY`.

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
    _process: tokio::process::Child,
    base: String,
}

impl Replica {
    /// Starts `bookcal serve` on `url` and waits until it answers `/health`.
    async fn start(url: &str, dir: &std::path::Path, http: &reqwest::Client) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = bookcal(url, dir)
            .arg("serve")
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
            _process: child,
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
