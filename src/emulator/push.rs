//! Push notifications: `events.watch`, `channels.stop` and the deliveries.
//!
//! What Google documents (the push guide and the `events.watch` / `channels.stop`
//! reference) and this module reproduces:
//! - `POST calendars/{calendarId}/events/watch` with a `Channel` body: `id` (required,
//!   at most 64 characters of `[A-Za-z0-9-_+/=]`), `type` (`web_hook` or `webhook`),
//!   `address` (required, HTTPS), optional `token` (at most 256 characters, echoed in
//!   every delivery), optional `expiration` (ms since the epoch) and `params.ttl`
//!   (seconds, default 604800). The answer is `{"kind": "api#channel", "id",
//!   "resourceId", "resourceUri", "token", "expiration"}` with `expiration` in ms as a
//!   string. The caller needs read access to the calendar's events.
//! - Deliveries are `POST address` with no body and the headers `X-Goog-Channel-ID`,
//!   `X-Goog-Message-Number`, `X-Goog-Resource-ID`, `X-Goog-Resource-URI`,
//!   `X-Goog-Resource-State`, and, when set, `X-Goog-Channel-Token` and
//!   `X-Goog-Channel-Expiration` (an HTTP date). The first message of a channel is
//!   `sync` (number 1), sent while `events.watch` is still being answered (its
//!   first attempt is made before the answer); every later change of the calendar's events is `exists`; a
//!   deleted calendar gets `not_exists` and its channels end. Message numbers increase.
//!   The receiver answers 200, 201, 202, 204 or 102; anything else (or no answer) is
//!   retried with exponential back-off (1 s, 2 s, 4 s, ... five attempts).
//! - `POST channels/stop` with `{"id", "resourceId"}` ends a channel: 204, or 404
//!   `notFound` for a channel that is unknown, expired, stopped, or not the caller's.
//! - Channels do not renew themselves: past `expiration` nothing is delivered.
//!
//! Uncertain (Google does not document it; the stricter reading is taken):
//! - The largest ttl: `expiration` is capped at `max_ttl_secs` (default 30 days).
//!   A `params.ttl` that is not a positive integer, or an `expiration` in the past,
//!   is 400 `invalid`.
//! - An id already used by a live channel is 400 `channelIdNotUnique`; an HTTP
//!   address is 400 `push.webhookUrlNotHttps`. The emulator accepts `http://` to a
//!   loopback host (a local service has no certificate) unless `https_only` is set.
//! - A `resourceId` is stable per calendar (every channel on one calendar shares it).
//!
//! Switches (`GET`/`PUT /emulator/push/settings`, every field optional):
//! `delay_ms` (added before each delivery), `drop_rate` and `duplicate_rate` (share of
//! `exists` messages lost or sent twice with the same number), `early_expiry_secs`
//! (channels end this long after creation, before their `expiration`, without
//! notice), `https_only`, `max_ttl_secs`, `seed`. `POST /emulator/push/expire`
//! (`{"id"}` or `{}` for all) ends channels now; `GET /emulator/push/channels` lists
//! them; `GET /emulator/push/counters` counts deliveries by outcome.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::{random_hex, Access, Caller};
use super::{parse_body, query_pairs, Shared};

/// Google's default channel lifetime (seconds).
pub const DEFAULT_TTL_SECS: u64 = 604_800;
/// Attempts per delivery (the first and four retries).
const DELIVERY_ATTEMPTS: u32 = 5;
/// Status codes Google takes as a successful delivery.
const DELIVERED: [u16; 5] = [200, 201, 202, 204, 102];

/// The push switches (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSettings {
    pub delay_ms: u64,
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub early_expiry_secs: Option<u64>,
    pub https_only: bool,
    pub max_ttl_secs: u64,
    pub seed: u64,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            early_expiry_secs: None,
            https_only: false,
            max_ttl_secs: 30 * 86_400,
            seed: 0,
        }
    }
}

/// A partial update of [`PushSettings`]; `early_expiry_secs: 0` turns it off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettingsUpdate {
    pub delay_ms: Option<u64>,
    pub drop_rate: Option<f64>,
    pub duplicate_rate: Option<f64>,
    pub early_expiry_secs: Option<u64>,
    pub https_only: Option<bool>,
    pub max_ttl_secs: Option<u64>,
    pub seed: Option<u64>,
}

/// A live channel as the emulator keeps it.
#[derive(Debug, Clone)]
struct Channel {
    id: String,
    resource_id: String,
    resource_uri: String,
    calendar_id: String,
    token: Option<String>,
    address: String,
    /// ms since the epoch, on the emulator's clock.
    expiration: i64,
    /// Identity that created it (only it may stop it).
    owner: String,
    next_message: u64,
}

/// What tests see of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    pub id: String,
    pub resource_id: String,
    pub calendar_id: String,
    pub address: String,
    pub expiration_ms: i64,
    /// Messages numbered so far (the `sync` message included).
    pub messages: u64,
    /// The token the watcher gave (echoed in every delivery).
    pub token: Option<String>,
}

struct PushState {
    settings: PushSettings,
    rng: StdRng,
    channels: BTreeMap<String, Channel>,
    resource_ids: HashMap<String, String>,
    counters: BTreeMap<String, u64>,
}

/// The push side of the emulator; cheap to clone.
#[derive(Clone)]
pub struct Push {
    state: Arc<Mutex<PushState>>,
    http: reqwest::Client,
    /// The emulator's model, for its clock offset.
    store: Arc<Mutex<super::state::Store>>,
}

/// One message on its way.
struct Delivery {
    address: String,
    headers: Vec<(&'static str, String)>,
    number: u64,
}

impl Push {
    pub(crate) fn new(store: Arc<Mutex<super::state::Store>>) -> Self {
        Self {
            state: Arc::new(Mutex::new(PushState {
                settings: PushSettings::default(),
                rng: StdRng::seed_from_u64(0),
                channels: BTreeMap::new(),
                resource_ids: HashMap::new(),
                counters: BTreeMap::new(),
            })),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            store,
        }
    }

    /// The emulator's wall clock in ms (real time plus the offset the controls added).
    pub(crate) fn now_ms(&self) -> i64 {
        let offset = self
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clock_offset;
        let offset = i64::try_from(offset.as_millis()).unwrap_or(i64::MAX / 2);
        Utc::now().timestamp_millis().saturating_add(offset)
    }

    fn lock(&self) -> MutexGuard<'_, PushState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current switches.
    pub fn settings(&self) -> PushSettings {
        self.lock().settings.clone()
    }

    /// Applies a partial update.
    ///
    /// # Errors
    /// A rate outside 0.0..=1.0.
    pub fn update(&self, update: PushSettingsUpdate) -> Result<PushSettings, String> {
        for rate in [update.drop_rate, update.duplicate_rate]
            .into_iter()
            .flatten()
        {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rate {rate} is outside 0.0..=1.0"));
            }
        }
        let mut state = self.lock();
        let s = &mut state.settings;
        if let Some(v) = update.delay_ms {
            s.delay_ms = v;
        }
        if let Some(v) = update.drop_rate {
            s.drop_rate = v;
        }
        if let Some(v) = update.duplicate_rate {
            s.duplicate_rate = v;
        }
        if let Some(v) = update.early_expiry_secs {
            s.early_expiry_secs = (v > 0).then_some(v);
        }
        if let Some(v) = update.https_only {
            s.https_only = v;
        }
        if let Some(v) = update.max_ttl_secs {
            s.max_ttl_secs = v.max(1);
        }
        if let Some(seed) = update.seed {
            s.seed = seed;
            state.rng = StdRng::seed_from_u64(seed);
        }
        Ok(state.settings.clone())
    }

    /// Applies a partial update built in code (tests).
    ///
    /// # Panics
    /// A rate outside 0..=1, a programming error in a test.
    pub fn set(&self, update: PushSettingsUpdate) -> PushSettings {
        match self.update(update) {
            Ok(s) => s,
            Err(message) => panic!("invalid push settings: {message}"),
        }
    }

    /// The live channels (expired and early-ended ones are gone).
    pub fn channels(&self) -> Vec<ChannelInfo> {
        let now = self.now_ms();
        let mut state = self.lock();
        Self::prune(&mut state, now);
        state
            .channels
            .values()
            .map(|c| ChannelInfo {
                id: c.id.clone(),
                resource_id: c.resource_id.clone(),
                calendar_id: c.calendar_id.clone(),
                address: c.address.clone(),
                expiration_ms: c.expiration,
                messages: c.next_message - 1,
                token: c.token.clone(),
            })
            .collect()
    }

    /// Ends the channel `id` (or every channel) now, without notice, as Google may.
    /// Returns how many ended.
    pub fn expire(&self, id: Option<&str>) -> usize {
        let mut state = self.lock();
        let before = state.channels.len();
        match id {
            Some(id) => {
                state.channels.remove(id);
            }
            None => state.channels.clear(),
        }
        before - state.channels.len()
    }

    /// Delivery counters: `delivered`, `failed` (after every attempt), `retried`,
    /// `dropped`, `duplicated`, `status:<code>` per answer.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.lock().counters.clone()
    }

    fn count(&self, key: &str) {
        *self.lock().counters.entry(key.to_owned()).or_insert(0) += 1;
    }

    /// Forgets channels past their expiration (or their early end); `now_ms` is the
    /// emulator's wall clock.
    fn prune(state: &mut PushState, now_ms: i64) {
        state.channels.retain(|_, c| c.expiration > now_ms);
    }

    /// Something changed in `calendar_id`'s events: one `exists` message per live
    /// channel on it (subject to the drop and duplicate switches).
    pub(crate) fn changed(&self, calendar_id: &str, now_ms: i64) {
        let deliveries = {
            let mut state = self.lock();
            Self::prune(&mut state, now_ms);
            let (drop_rate, duplicate_rate) =
                (state.settings.drop_rate, state.settings.duplicate_rate);
            let ids: Vec<String> = state
                .channels
                .values()
                .filter(|c| c.calendar_id == calendar_id)
                .map(|c| c.id.clone())
                .collect();
            let mut out = Vec::new();
            for id in ids {
                let dropped = drop_rate > 0.0 && state.rng.gen::<f64>() < drop_rate;
                let twice = duplicate_rate > 0.0 && state.rng.gen::<f64>() < duplicate_rate;
                let Some(channel) = state.channels.get_mut(&id) else {
                    continue;
                };
                let delivery = message(channel, "exists");
                if dropped {
                    *state.counters.entry("dropped".into()).or_insert(0) += 1;
                    continue;
                }
                if twice {
                    *state.counters.entry("duplicated".into()).or_insert(0) += 1;
                    out.push(Delivery {
                        address: delivery.address.clone(),
                        headers: delivery.headers.clone(),
                        number: delivery.number,
                    });
                }
                out.push(delivery);
            }
            out
        };
        for d in deliveries {
            self.send(d);
        }
    }

    /// `calendar_id` was deleted: one `not_exists` message per live channel on it,
    /// and those channels end.
    pub(crate) fn gone(&self, calendar_id: &str, now_ms: i64) {
        let deliveries: Vec<Delivery> = {
            let mut state = self.lock();
            Self::prune(&mut state, now_ms);
            let ids: Vec<String> = state
                .channels
                .values()
                .filter(|c| c.calendar_id == calendar_id)
                .map(|c| c.id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| state.channels.remove(id))
                .map(|mut c| message(&mut c, "not_exists"))
                .collect()
        };
        for d in deliveries {
            self.send(d);
        }
    }

    /// Sends one message in the background, retrying as Google does.
    fn send(&self, delivery: Delivery) {
        let push = self.clone();
        tokio::spawn(async move {
            push.delay().await;
            push.deliver(delivery, 0).await;
        });
    }

    /// Sends a channel's first message before the caller goes on (as Google does
    /// while it is still answering `events.watch`); its retries, if it needs any,
    /// go on in the background.
    async fn send_now(&self, delivery: Delivery) {
        self.delay().await;
        if !self.attempt(&delivery).await {
            let push = self.clone();
            tokio::spawn(async move { push.deliver(delivery, 1).await });
        }
    }

    /// Waits the `delay_ms` switch.
    async fn delay(&self) {
        let delay = Duration::from_millis(self.lock().settings.delay_ms);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Delivers a message from attempt `first` on, with Google's back-off.
    async fn deliver(&self, delivery: Delivery, first: u32) {
        for attempt in first..DELIVERY_ATTEMPTS {
            if attempt > 0 {
                self.count("retried");
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            if self.attempt(&delivery).await {
                return;
            }
        }
        self.count("failed");
    }

    /// One attempt at a delivery: whether the receiver took it.
    async fn attempt(&self, delivery: &Delivery) -> bool {
        let mut request = self.http.post(&delivery.address);
        for (name, value) in &delivery.headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                self.count(&format!("status:{status}"));
                if DELIVERED.contains(&status) {
                    self.count("delivered");
                    return true;
                }
                false
            }
            Err(error) => {
                tracing::debug!(%error, number = delivery.number, "push delivery failed");
                self.count("unreachable");
                false
            }
        }
    }
}

/// Numbers the next message of `channel` and builds its request.
fn message(channel: &mut Channel, state: &str) -> Delivery {
    let number = channel.next_message;
    channel.next_message += 1;
    let mut headers = vec![
        ("X-Goog-Channel-ID", channel.id.clone()),
        ("X-Goog-Message-Number", number.to_string()),
        ("X-Goog-Resource-ID", channel.resource_id.clone()),
        ("X-Goog-Resource-URI", channel.resource_uri.clone()),
        ("X-Goog-Resource-State", state.to_owned()),
        ("X-Goog-Channel-Expiration", http_date(channel.expiration)),
    ];
    if let Some(token) = &channel.token {
        headers.push(("X-Goog-Channel-Token", token.clone()));
    }
    Delivery {
        address: channel.address.clone(),
        headers,
        number,
    }
}

/// `Tue, 19 Nov 2013 01:13:52 GMT`, as Google writes `X-Goog-Channel-Expiration`.
fn http_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The emulator's wall clock in ms (real time plus the offset the controls added).
pub(crate) fn now_ms(shared: &Shared) -> i64 {
    shared.push.now_ms()
}

fn valid_channel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b))
}

/// Whether `address` may receive deliveries: HTTPS, or (unless `https_only`) plain
/// HTTP to a loopback host.
fn address_allowed(address: &str, https_only: bool) -> bool {
    let Ok(url) = url::Url::parse(address) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" if !https_only => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// The requested lifetime: `params.ttl` (seconds) or `expiration` (ms), else the
/// default; capped at `max_ttl_secs`. Returns the expiration in ms.
fn expiration_of(body: &Value, now_ms: i64, max_ttl_secs: u64) -> Result<i64, ApiError> {
    let cap = now_ms
        .saturating_add(i64::try_from(max_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2));
    let ttl = match body.pointer("/params/ttl") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let secs = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    ApiError::Invalid(format!("Invalid ttl value for channel: {text}"))
                })?;
            Some(secs)
        }
    };
    let requested = match (ttl, body.get("expiration")) {
        (Some(secs), _) => {
            now_ms.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2))
        }
        (None, None | Some(Value::Null)) => {
            now_ms.saturating_add(i64::try_from(DEFAULT_TTL_SECS * 1000).unwrap_or(0))
        }
        (None, Some(v)) => {
            let ms = match v {
                Value::String(s) => s.trim().parse::<i64>().ok(),
                other => other.as_i64(),
            }
            .ok_or_else(|| ApiError::Invalid(format!("Invalid expiration: {v}")))?;
            if ms <= now_ms {
                return Err(ApiError::Invalid(format!(
                    "Invalid expiration: {ms} is in the past"
                )));
            }
            ms
        }
    };
    Ok(requested.min(cap))
}

/// `calendar.events.watch`.
pub(crate) async fn watch(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&body)?;
    // eventTypes is the only query parameter of events.watch; others are ignored.
    let _event_types = query_pairs(query.as_deref());
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Required("Missing channel id.".into()))?
        .to_owned();
    if !valid_channel_id(&id) {
        return Err(ApiError::Invalid(format!("Invalid channel id: {id}")));
    }
    match body.get("type").and_then(Value::as_str) {
        Some("web_hook" | "webhook") => {}
        Some(other) => return Err(ApiError::Invalid(format!("Invalid channel type: {other}"))),
        None => return Err(ApiError::Required("Missing channel type.".into())),
    }
    let address = body
        .get("address")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::Required("Missing channel address.".into()))?
        .to_owned();
    let token = match body.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.len() <= 256 => Some(t.clone()),
        Some(_) => return Err(ApiError::Invalid("Invalid channel token.".into())),
    };
    let real_id = {
        let mut store = shared.lock();
        let calendar = store.calendar_mut(&calendar_id, &caller, Access::Reader)?;
        calendar.resource["id"]
            .as_str()
            .unwrap_or(&calendar_id)
            .to_owned()
    };
    let now = now_ms(&shared);
    let push = &shared.push;
    let (delivery, answer) = {
        let mut state = push.lock();
        Push::prune(&mut state, now);
        if !address_allowed(&address, state.settings.https_only) {
            return Err(ApiError::WebhookNotHttps(address));
        }
        if state.channels.contains_key(&id) {
            return Err(ApiError::ChannelIdNotUnique(id));
        }
        let expiration = expiration_of(&body, now, state.settings.max_ttl_secs)?;
        let resource_id = state
            .resource_ids
            .entry(real_id.clone())
            .or_insert_with(|| random_hex(14))
            .clone();
        let resource_uri = format!(
            "{}calendar/v3/calendars/{}/events?alt=json",
            shared.root_url,
            percent_encoding::utf8_percent_encode(&real_id, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut channel = Channel {
            id: id.clone(),
            resource_id: resource_id.clone(),
            resource_uri: resource_uri.clone(),
            calendar_id: real_id,
            token: token.clone(),
            address,
            expiration,
            owner: caller.identity.clone(),
            next_message: 1,
        };
        let delivery = message(&mut channel, "sync");
        let answer = json!({
            "kind": "api#channel",
            "id": id,
            "resourceId": resource_id,
            "resourceUri": resource_uri,
            "token": token,
            "expiration": expiration.to_string(),
        });
        if let Some(secs) = state.settings.early_expiry_secs {
            // Ends early without saying so: the answer shows the full lifetime.
            let end = now.saturating_add(i64::try_from(secs * 1000).unwrap_or(i64::MAX / 2));
            channel.expiration = channel.expiration.min(end);
        }
        state.channels.insert(id, channel);
        (delivery, answer)
    };
    // Google sends the `sync` message while the request is still being answered, so
    // the watcher may hear of its channel before it knows the channel exists.
    push.send_now(delivery).await;
    let mut answer = answer;
    if answer["token"].is_null() {
        if let Some(map) = answer.as_object_mut() {
            map.remove("token");
        }
    }
    Ok(Json(answer))
}

/// `calendar.channels.stop`.
pub(crate) async fn stop(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Required("Missing channel id.".into()))?;
    let resource_id = body
        .get("resourceId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Required("Missing resource id.".into()))?;
    let now = now_ms(&shared);
    let mut state = shared.push.lock();
    Push::prune(&mut state, now);
    let found = state
        .channels
        .get(id)
        .is_some_and(|c| c.resource_id == resource_id && c.owner == caller.identity);
    if !found {
        return Err(ApiError::ChannelNotFound(id.to_owned()));
    }
    state.channels.remove(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The calendar a `/calendar/v3/calendars/{id}/...` path names (decoded), if any.
pub(crate) fn calendar_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/calendar/v3/calendars/")?;
    let raw = rest.split('/').next().filter(|s| !s.is_empty())?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The `/emulator/push/` routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/emulator/push/settings",
            get(get_settings).put(put_settings),
        )
        .route("/emulator/push/channels", get(get_channels))
        .route("/emulator/push/counters", get(get_counters))
        .route("/emulator/push/expire", post(expire))
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

async fn get_settings(State(shared): State<Arc<Shared>>) -> Json<PushSettings> {
    Json(shared.push.settings())
}

async fn put_settings(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PushSettingsUpdate>(&body) {
        Ok(update) => match shared.push.update(update) {
            Ok(settings) => Json(settings).into_response(),
            Err(message) => bad_request(message),
        },
        Err(e) => bad_request(e.to_string()),
    }
}

async fn get_channels(State(shared): State<Arc<Shared>>) -> Json<Vec<ChannelInfo>> {
    Json(shared.push.channels())
}

async fn get_counters(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    Json(shared.push.counters())
}

#[derive(Deserialize)]
struct ExpireBody {
    id: Option<String>,
}

async fn expire(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed = if body.is_empty() {
        Ok(ExpireBody { id: None })
    } else {
        serde_json::from_slice::<ExpireBody>(&body)
    };
    match parsed {
        Ok(b) => Json(json!({"expired": shared.push.expire(b.id.as_deref())})).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_follow_googles_rule() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: [(&str, bool); 7] = [
            ("01234567-89ab-cdef-0123456789ab", true),
            ("a+b/c=d_e", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            ("", false),
            ("has space", false),
            ("semi;colon", false),
        ];
        for (id, valid) in cases {
            assert_eq!(valid_channel_id(id), valid, "{id}");
        }
    }

    #[test]
    fn addresses_must_be_https_or_loopback_http() {
        let cases = [
            (
                "https://bookcal.example.org/google/notifications",
                false,
                true,
            ),
            (
                "https://bookcal.example.org/google/notifications",
                true,
                true,
            ),
            ("http://127.0.0.1:8000/google/notifications", false, true),
            ("http://127.0.0.1:8000/google/notifications", true, false),
            ("http://localhost/hook", false, true),
            ("http://[::1]:80/hook", false, true),
            ("http://bookcal.example.org/hook", false, false),
            ("ftp://bookcal.example.org/hook", false, false),
            ("not a url", false, false),
        ];
        for (address, https_only, allowed) in cases {
            assert_eq!(address_allowed(address, https_only), allowed, "{address}");
        }
    }

    #[test]
    fn expiration_comes_from_ttl_or_expiration_capped() {
        let now = 1_000_000;
        let max = 3600;
        let cases: Vec<(Value, Result<i64, &str>)> = vec![
            (json!({}), Ok(now + 3_600_000)),
            (json!({"params": {"ttl": "60"}}), Ok(now + 60_000)),
            (json!({"params": {"ttl": "999999"}}), Ok(now + 3_600_000)),
            (
                json!({"expiration": (now + 5000).to_string()}),
                Ok(now + 5000),
            ),
            (json!({"expiration": now + 5000}), Ok(now + 5000)),
            (json!({"params": {"ttl": "0"}}), Err("invalid")),
            (json!({"params": {"ttl": "soon"}}), Err("invalid")),
            (json!({"expiration": "1"}), Err("invalid")),
        ];
        for (body, expected) in cases {
            let got = expiration_of(&body, now, max).map_err(|e| e.reason());
            assert_eq!(got, expected, "{body}");
        }
        assert_eq!(
            expiration_of(&json!({}), now, 30 * 86_400).ok(),
            Some(now + 604_800_000)
        );
    }

    #[test]
    fn expiration_headers_are_http_dates() {
        assert_eq!(
            http_date(1_384_823_632_000),
            "Tue, 19 Nov 2013 01:13:52 GMT"
        );
    }

    #[test]
    fn calendar_ids_come_from_the_path_decoded() {
        assert_eq!(
            calendar_of_path("/calendar/v3/calendars/c_1%40group.calendar.google.com/events"),
            Some("c_1@group.calendar.google.com".to_owned())
        );
        assert_eq!(calendar_of_path("/calendar/v3/calendars"), None);
        assert_eq!(calendar_of_path("/calendar/v3/channels/stop"), None);
    }
}
