//! A faithful local Google Calendar API v3 for tests, benchmarks and `bookcal demo`.
//!
//! It models Google's wire JSON itself (`serde_json::Value`) and shares no types with
//! [`crate::google`], so one misunderstanding cannot hide on both sides. Each handler
//! states the Google behaviour it reproduces; where Google's documentation leaves
//! something open the code says so and picks the documented or stricter behaviour.
//!
//! Layout:
//! - [`Emulator`] / [`run_standalone`] (here): lifecycle and the router.
//! - `auth`: the OAuth token endpoint (`POST /token`), the generated service-account
//!   key, bearer-token checks and scopes.
//! - `calendars`, `events`, `list`, `acl`: one file per resource, handlers named by
//!   Google's method verbs; `recurrence` and `times` are the pure parts.
//! - `state`: the in-memory model and the emulator clock; `error`: Google's error
//!   bodies; `zones`: the time zones Google accepts.
//! - [`controls`]: switches (latency, fault injection, quota, token TTL and token
//!   endpoint faults, sync-token expiry, refresh tokens, strict sync parameters and
//!   time zones, etag drift, tombstone purging, propagation delay, the calendar
//!   creation limit), the clock, counters, inspection and the `/emulator/` HTTP API.
//!
//! Every `/calendar/v3/` request passes one gate, in this order: added latency,
//! bearer auth (401), scopes (403 `insufficientPermissions`), the per-credential
//! quota (403 `rateLimitExceeded`), the read-only lock-out of an identity that
//! exceeded the calendar creation limit (writes: 403 `quotaExceeded`), injected
//! faults, then the handler; every answer (errors included) is counted under the
//! Google method name and its status.

mod acl;
mod auth;
mod calendars;
pub mod controls;
mod error;
mod events;
mod list;
pub mod push;
mod recurrence;
mod state;
mod times;
mod zones;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use controls::{
    Controls, CreationLimit, FailNth, InjectedFault, Inspector, Settings, SettingsUpdate,
    TokenFailNth, TokenFault,
};
pub use error::ApiError;
pub use push::{ChannelInfo, Push, PushSettings, PushSettingsUpdate};

use auth::ServiceAccount;
use controls::FaultDecision;
use state::Store;

/// How an emulator starts.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Lifetime of issued access tokens (`expires_in`); Google's is 3599 s.
    pub access_token_ttl: Duration,
    /// Latency added to every API request.
    pub latency: Duration,
    /// Requests per minute per credential (sliding window); `None`: unlimited.
    pub quota_per_minute: Option<u32>,
    /// Seed of the fault-injection draw.
    pub fault_seed: u64,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3599),
            latency: Duration::ZERO,
            quota_per_minute: None,
            fault_seed: 0,
        }
    }
}

/// State shared by all handlers.
pub(crate) struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub controls: Controls,
    pub account: Arc<ServiceAccount>,
    pub root_url: String,
    /// Watch channels and their deliveries.
    pub push: push::Push,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn token_uri(&self) -> String {
        format!("{}token", self.root_url)
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:0 and serves in a background tokio task.
    ///
    /// # Errors
    /// Binding fails or the key cannot be generated.
    pub async fn start(opts: EmulatorOptions) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, opts, CancellationToken::new()).await
    }

    /// Serves on an already bound listener until `shutdown` is cancelled (or
    /// [`Emulator::shutdown`] is called, or the handle dropped).
    ///
    /// # Errors
    /// The listener has no local address or the key cannot be generated.
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        opts: EmulatorOptions,
        shutdown: CancellationToken,
    ) -> std::io::Result<Emulator> {
        let addr = listener.local_addr()?;
        let account = auth::service_account().await?;
        let store = Arc::new(Mutex::new(Store::new()));
        let store_for_push = store.clone();
        let controls = Controls::new(
            Settings {
                latency_ms: opts.latency.as_millis().try_into().unwrap_or(u64::MAX),
                fault_seed: opts.fault_seed,
                quota_per_minute: opts.quota_per_minute,
                access_token_ttl_secs: opts.access_token_ttl.as_secs(),
                ..Settings::default()
            },
            store.clone(),
        );
        let shared = Arc::new(Shared {
            store,
            controls,
            account,
            root_url: format!("http://{addr}/"),
            push: push::Push::new(store_for_push),
        });
        let stop = shutdown.child_token();
        let app = router(shared.clone());
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "emulator server failed");
            }
        });
        Ok(Emulator {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/`; the API is at `root_url() + "calendar/v3/"`.
    pub fn root_url(&self) -> String {
        self.shared.root_url.clone()
    }

    /// The OAuth token endpoint, `root_url() + "token"`.
    pub fn token_uri(&self) -> String {
        self.shared.token_uri()
    }

    /// A Google service-account key file (JSON) whose `token_uri` is this emulator.
    pub fn service_account_key_json(&self) -> String {
        self.shared.account.key_json(&self.token_uri())
    }

    /// The service account's e-mail (the identity its tokens act as).
    pub fn service_account_email(&self) -> String {
        self.shared.account.client_email.clone()
    }

    /// Switches and counters.
    pub fn controls(&self) -> Controls {
        self.shared.controls.clone()
    }

    /// Push switches, channels and delivery counters.
    pub fn push(&self) -> Push {
        self.shared.push.clone()
    }

    /// Read access to calendars, events and ACLs, bypassing auth and counters.
    pub fn inspect(&self) -> Inspector {
        Inspector::new(self.shared.store.clone())
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "emulator task ended abnormally");
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `bookcal emulator --listen ADDR [--key-out FILE]`: runs until `shutdown` is
/// cancelled; writes the service-account key file (mode 0600) when asked and prints
/// one line `emulator listening on http://ADDR/`.
///
/// # Errors
/// Binding the address or writing the key file fails.
pub async fn run_standalone(
    listen: SocketAddr,
    key_out: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let emulator =
        Emulator::start_on(listener, EmulatorOptions::default(), shutdown.clone()).await?;
    if let Some(path) = key_out {
        write_private_file(&path, emulator.service_account_key_json().as_bytes())?;
    }
    println!("emulator listening on {}", emulator.root_url());
    shutdown.cancelled().await;
    emulator.shutdown().await;
    Ok(())
}

fn write_private_file(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)
}

const CALENDAR: &str = "/calendar/v3/calendars/{calendar_id}";
const EVENTS: &str = "/calendar/v3/calendars/{calendar_id}/events";
const EVENT: &str = "/calendar/v3/calendars/{calendar_id}/events/{event_id}";
const INSTANCES: &str = "/calendar/v3/calendars/{calendar_id}/events/{event_id}/instances";
const ACL: &str = "/calendar/v3/calendars/{calendar_id}/acl";
const ACL_RULE: &str = "/calendar/v3/calendars/{calendar_id}/acl/{rule_id}";
const CALENDAR_LIST: &str = "/calendar/v3/users/me/calendarList";
const CALENDAR_LIST_ENTRY: &str = "/calendar/v3/users/me/calendarList/{calendar_id}";
const WATCH: &str = "/calendar/v3/calendars/{calendar_id}/events/watch";
const CHANNELS_STOP: &str = "/calendar/v3/channels/stop";

/// Google's method name for a matched route.
fn google_method(method: &Method, path: &str) -> String {
    let verb = |get: &str, put: &str, patch: &str, delete: &str, post: &str| -> String {
        match *method {
            Method::GET => get,
            Method::PUT => put,
            Method::PATCH => patch,
            Method::DELETE => delete,
            Method::POST => post,
            _ => "unknown",
        }
        .to_owned()
    };
    let (resource, name) = match path {
        "/calendar/v3/calendars" => ("calendars", "insert".to_owned()),
        CALENDAR => (
            "calendars",
            verb("get", "update", "patch", "delete", "unknown"),
        ),
        EVENTS => (
            "events",
            verb("list", "unknown", "unknown", "unknown", "insert"),
        ),
        EVENT => (
            "events",
            verb("get", "update", "patch", "delete", "unknown"),
        ),
        INSTANCES => ("events", "instances".to_owned()),
        WATCH => ("events", "watch".to_owned()),
        CHANNELS_STOP => ("channels", "stop".to_owned()),
        ACL => (
            "acl",
            verb("list", "unknown", "unknown", "unknown", "insert"),
        ),
        ACL_RULE => ("acl", verb("get", "update", "patch", "delete", "unknown")),
        CALENDAR_LIST => ("calendarList", "list".to_owned()),
        CALENDAR_LIST_ENTRY => ("calendarList", "get".to_owned()),
        _ => return "unknown".to_owned(),
    };
    format!("calendar.{resource}.{name}")
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/calendar/v3/calendars", post(calendars::insert))
        .route(
            CALENDAR,
            get(calendars::get)
                .put(calendars::update)
                .patch(calendars::patch)
                .delete(calendars::delete),
        )
        .route(CALENDAR_LIST, get(calendars::list_calendar_list))
        .route(CALENDAR_LIST_ENTRY, get(calendars::get_calendar_list))
        .route(EVENTS, get(list::list).post(events::insert))
        .route(
            EVENT,
            get(events::get)
                .put(events::update)
                .patch(events::patch)
                .delete(events::delete),
        )
        .route(INSTANCES, get(list::instances))
        .route(WATCH, post(push::watch))
        .route(CHANNELS_STOP, post(push::stop))
        .route(ACL, get(acl::list).post(acl::insert))
        .route(
            ACL_RULE,
            get(acl::get)
                .put(acl::update)
                .patch(acl::patch)
                .delete(acl::delete),
        )
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), gate));
    Router::new()
        .merge(api)
        .route("/token", post(auth::token))
        .merge(controls::routes())
        .merge(push::routes())
        .fallback(|| async { ApiError::NotFound })
        .with_state(shared)
}

/// Latency, auth, scopes, quota, faults, counting: see the module docs.
async fn gate(
    State(shared): State<Arc<Shared>>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = google_method(
        request.method(),
        matched.as_ref().map_or("", MatchedPath::as_str),
    );
    let latency = shared.controls.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Watching and stopping a channel read: the read-only scopes allow them.
    let write = request.method() != Method::GET
        && !matches!(
            method.as_str(),
            "calendar.events.watch" | "calendar.channels.stop"
        );
    let admitted = auth::authenticate(&shared, request.headers()).and_then(|caller| {
        auth::check_scopes(&caller.scopes, &method, write)?;
        shared.controls.check_quota(&caller.identity)?;
        if write && shared.controls.is_locked_out(&caller.identity) {
            return Err(ApiError::QuotaExceeded);
        }
        Ok(caller)
    });
    let response = match admitted {
        Err(error) => error.into_response(),
        Ok(caller) => {
            let watched = push::calendar_of_path(request.uri().path()).map(|id| {
                if id == "primary" {
                    caller.identity.clone()
                } else {
                    id
                }
            });
            let before = watched.as_deref().map(|id| change_seq(&shared, id));
            request.extensions_mut().insert(caller);
            let response = match shared.controls.decide_fault(&method) {
                FaultDecision::Proceed => next.run(request).await,
                FaultDecision::FailBefore(error) => error.into_response(),
                FaultDecision::FailAfter(error) => {
                    let _performed = next.run(request).await;
                    error.into_response()
                }
            };
            if let (Some(id), Some(before)) = (watched, before) {
                notify_watchers(&shared, &id, before);
            }
            response
        }
    };
    shared.controls.count(&method, response.status().as_u16());
    response
}

/// The change sequence of a calendar's events (`None`: no such calendar).
fn change_seq(shared: &Shared, calendar_id: &str) -> Option<u64> {
    shared
        .lock()
        .calendars
        .get(calendar_id)
        .map(|c| c.change_seq)
}

/// After a request on `calendar_id`: its watch channels hear of a change of its
/// events (`exists`) or of its deletion (`not_exists`). Every change is seen by the
/// request that made it, whatever ran meanwhile.
fn notify_watchers(shared: &Shared, calendar_id: &str, before: Option<u64>) {
    let after = change_seq(shared, calendar_id);
    let now = push::now_ms(shared);
    match (before, after) {
        (Some(_), None) => shared.push.gone(calendar_id, now),
        (Some(b), Some(a)) if a != b => shared.push.changed(calendar_id, now),
        _ => {}
    }
}

/// Parses a JSON request body; Google answers 400 `parseError` otherwise.
pub(crate) fn parse_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or(ApiError::ParseError)
}

/// Decoded query pairs, repeated keys kept.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_google_method_names() {
        let cases = [
            (Method::GET, EVENTS, "calendar.events.list"),
            (Method::POST, EVENTS, "calendar.events.insert"),
            (Method::PATCH, EVENT, "calendar.events.patch"),
            (Method::GET, INSTANCES, "calendar.events.instances"),
            (Method::POST, WATCH, "calendar.events.watch"),
            (Method::POST, CHANNELS_STOP, "calendar.channels.stop"),
            (
                Method::POST,
                "/calendar/v3/calendars",
                "calendar.calendars.insert",
            ),
            (Method::DELETE, CALENDAR, "calendar.calendars.delete"),
            (Method::POST, ACL, "calendar.acl.insert"),
            (Method::DELETE, ACL_RULE, "calendar.acl.delete"),
            (Method::GET, CALENDAR_LIST, "calendar.calendarList.list"),
        ];
        for (method, path, name) in cases {
            assert_eq!(google_method(&method, path), name);
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_written_readable_only_by_the_owner() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("key.json");
        std::fs::write(&path, "old")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        write_private_file(&path, b"{}")?;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&path)?, "{}");
        Ok(())
    }
}
