//! Test harness: spawns the real server on 127.0.0.1:0 with a temporary data dir
//! loaded with `fixtures/demo.json`, and hands out tokens for its users.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use bookcal::api::{AppState, StaticCredentials};
use bookcal::domain::Id;
use bookcal::store::{Store, StoreOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    pub store: Arc<Store>,
    pub tokens: HashMap<&'static str, String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Options {
    pub google_credentials: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            google_credentials: true,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).expect("store"));
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    bookcal::import::import_file(&store, std::path::Path::new(fixture)).expect("import demo data");
    let mut tokens = HashMap::new();
    for u in ["admin", "owner", "manager", "alice", "bob"] {
        let id = *store
            .read()
            .expect("read")
            .users_by_name
            .get(u)
            .expect("user");
        tokens.insert(u, store.create_token(id).expect("token"));
    }
    let mut state = AppState::new(store.clone());
    state.google = Arc::new(StaticCredentials(opts.google_credentials));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    tokio::spawn(bookcal::app::serve(listener, state, shutdown.clone()));
    TestApp {
        base,
        store,
        tokens,
        http: reqwest::Client::new(),
        shutdown,
        _dir: dir,
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub fn offering_id(&self, slug: &str) -> Id {
        self.store
            .read()
            .expect("read")
            .offerings
            .values()
            .find(|o| o.slug == slug)
            .expect("offering")
            .id
    }

    pub fn project_id(&self, slug: &str) -> Id {
        self.store
            .read()
            .expect("read")
            .projects
            .values()
            .find(|p| p.slug == slug)
            .expect("project")
            .id
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

    /// Counts of stored records, to prove a refused request changed nothing.
    pub fn snapshot(&self) -> (usize, usize, Vec<(Id, String, usize)>) {
        let cat = self.store.read().expect("read");
        let mut res: Vec<(Id, String, usize)> = cat
            .resources
            .values()
            .map(|r| (r.id, r.state.as_str().to_string(), r.slots.len()))
            .collect();
        res.sort();
        (cat.resources.len(), cat.orders.len(), res)
    }
}

/// A day `days` from now at `hour`:00 UTC.
pub fn at(days: i64, hour: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Duration, TimeZone, Utc};
    let d = (Utc::now() + Duration::days(days)).date_naive();
    Utc.from_utc_datetime(&d.and_hms_opt(hour, 0, 0).expect("valid hour"))
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

    /// Stores an idle calendar record for an offering, as if the scheduler had created
    /// (and, when `public`, shared) its Google calendar.
    pub fn seed_calendar(&self, slug: &str, calendar_id: &str, public: bool) {
        use bookcal::domain::calendar::{CalendarState, OfferingCalendar};
        let mut cal = OfferingCalendar::new(self.offering_id(slug));
        cal.calendar_id = Some(calendar_id.to_string());
        cal.public = public;
        cal.state = CalendarState::Ok;
        let change = Store::calendar_change(&cal).expect("encode calendar");
        self.store.sync_put(vec![change]).expect("store calendar");
    }
}
