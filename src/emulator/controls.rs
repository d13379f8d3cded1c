//! Switches, counters and inspection: what tests (from Rust, through [`Controls`]
//! and [`Inspector`]) and benchmarks or the demo (over HTTP under `/emulator/`)
//! use to shape and observe the emulator. The control API needs no auth and is not
//! counted.
//!
//! Settings (`GET /emulator/settings`, partial update with `PUT /emulator/settings`,
//! every field optional):
//! ```json
//! {
//!   "latency_ms": 0,            // added to every /calendar/v3 request
//!   "fault_rate": 0.0,          // share of API requests failed with an injected fault
//!   "faults": [403, 429, 500, 503], // the faults drawn from: 403/429 rateLimitExceeded
//!                                   // (usageLimits), 500 backendError, 503 backendError
//!   "fault_seed": 0,            // seeds the fault draw (setting it restarts the sequence)
//!   "fail_nth": [{"method": "calendar.events.insert", "nth": 3, "status": 500,
//!                 "after_effect": false}], // fail the nth call (counted from when the
//!                 // rule was set) of a method; after_effect: perform it, then fail
//!   "quota_per_minute": null,   // per credential, sliding 60 s, 403 rateLimitExceeded past it
//!   "access_token_ttl_secs": 3599,
//!   "max_page_size": null,     // serve list pages shorter than maxResults (Google may)
//!   "strict_sync_parameters": true, // incremental listings must repeat the full
//!                              // listing's showDeleted and singleEvents (else 400)
//!   "strict_time_zones": true, // timeZone values must be zones Google accepts
//!                              // (GET /emulator/time-zones lists them)
//!   "etag_drift": false,       // reads show another etag than the write answered
//!   "purge_tombstones_after_secs": null, // forget tombstones this long after DELETE:
//!                              // the id stays taken (insert 409), get/update 404
//!   "fresh_calendar_delay_secs": 0, // after calendars.insert, events and ACL requests
//!   "fresh_calendar_status": 404,   // on the calendar fail with 404 or 403 this long
//!   "calendar_creation_limit": null, // {"max": 25, "window_secs": 3600,
//!                              // "lockout_secs": 7200}: creating more than max calendars
//!                              // per window puts the identity in read-only mode (every
//!                              // write 403 quotaExceeded) for lockout_secs; max 0 = off
//!   "token_fail_nth": []       // [{"nth": 1, "count": 1, "error": "internal_failure"}]:
//!                              // the token endpoint answers 500 internal_failure or
//!                              // 400 invalid_grant to calls nth..nth+count-1 (counted
//!                              // from when the rule was set)
//! }
//! ```
//! The defaults keep tests fast: switches that add waiting or faults are off; the
//! strictness switches that only refuse what Google refuses are on.
//!
//! Other routes: `POST /emulator/fail-nth` (add one rule), `GET /emulator/counters`,
//! `POST /emulator/counters/reset`, `POST /emulator/expire-sync-tokens`,
//! `POST /emulator/refresh-tokens` (`{"client_id","client_secret","refresh_token"[,"user_email"]}`),
//! `POST /emulator/refresh-tokens/revoke` (`{"refresh_token"}`),
//! `GET /emulator/service-account-key`, `GET /emulator/calendars`,
//! `GET /emulator/calendars/{id}/events` (tombstones included),
//! `GET /emulator/calendars/{id}/acl`, `POST /emulator/clock/advance` (`{"secs": N}`:
//! moves the emulator's clock for lock-outs, propagation, purges, quotas and token
//! expiry), `POST /emulator/purge-tombstones` (purge every tombstone now),
//! `GET /emulator/time-zones`, `GET /emulator/lockouts` (identity -> seconds left).
//!
//! Counters: one key per Google method name (`calendar.events.list`, ...; the token
//! endpoint is `oauth2.token`) with its request count, `<method>:<status>` per
//! outcome, and `status:<code>` totals.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::{Behaviour, RefreshGrant, Store};
use super::Shared;

pub use super::state::CreationLimit;

/// A fault the random injection may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum InjectedFault {
    /// 403 `rateLimitExceeded`, domain `usageLimits`.
    RateLimit403,
    /// 429 `rateLimitExceeded`, domain `usageLimits`.
    RateLimit429,
    /// 500 `backendError`.
    BackendError500,
    /// 503 `backendError` "The service is currently unavailable.".
    Unavailable503,
}

impl InjectedFault {
    /// All four faults.
    pub const ALL: [InjectedFault; 4] = [
        Self::RateLimit403,
        Self::RateLimit429,
        Self::BackendError500,
        Self::Unavailable503,
    ];
    /// The HTTP status of the fault.
    pub fn status(self) -> u16 {
        self.into()
    }
}

impl From<InjectedFault> for u16 {
    fn from(fault: InjectedFault) -> u16 {
        match fault {
            InjectedFault::RateLimit403 => 403,
            InjectedFault::RateLimit429 => 429,
            InjectedFault::BackendError500 => 500,
            InjectedFault::Unavailable503 => 503,
        }
    }
}

impl TryFrom<u16> for InjectedFault {
    type Error = String;
    fn try_from(status: u16) -> Result<Self, String> {
        match status {
            403 => Ok(Self::RateLimit403),
            429 => Ok(Self::RateLimit429),
            500 => Ok(Self::BackendError500),
            503 => Ok(Self::Unavailable503),
            other => Err(format!("no injectable fault with status {other}")),
        }
    }
}

/// "Fail the `nth` call of `method` with `status`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailNth {
    /// Google method name, e.g. `calendar.events.insert`.
    pub method: String,
    /// 1-based, counted from when the rule was set.
    pub nth: u64,
    /// The status to answer (reason chosen like Google's for that status).
    pub status: u16,
    /// Perform the call, then answer the failure (a lost response).
    #[serde(default)]
    pub after_effect: bool,
    /// Calls of `method` seen since the rule was set (read-only).
    #[serde(default)]
    pub seen: u64,
}

/// What the token endpoint answers when a [`TokenFailNth`] rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFault {
    /// HTTP 500 `{"error": "internal_failure"}` (seen from Google's endpoint).
    InternalFailure,
    /// HTTP 400 `{"error": "invalid_grant"}`: revoked or expired.
    InvalidGrant,
}

/// "Fail token calls `nth` .. `nth + count - 1` with `error`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFailNth {
    /// 1-based, counted from when the rule was set.
    pub nth: u64,
    /// How many consecutive calls fail (default 1).
    #[serde(default = "one")]
    pub count: u64,
    pub error: TokenFault,
    /// Token calls seen since the rule was set (read-only).
    #[serde(default)]
    pub seen: u64,
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

fn not_found() -> u16 {
    404
}

/// The current switches (see the module docs for each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub latency_ms: u64,
    pub fault_rate: f64,
    pub faults: Vec<InjectedFault>,
    pub fault_seed: u64,
    pub fail_nth: Vec<FailNth>,
    pub quota_per_minute: Option<u32>,
    pub access_token_ttl_secs: u64,
    /// Caps every `events.list`/`instances` page below `maxResults` (`None`: no cap),
    /// to exercise clients that must follow `nextPageToken` past short pages.
    #[serde(default)]
    pub max_page_size: Option<usize>,
    #[serde(default = "yes")]
    pub strict_sync_parameters: bool,
    #[serde(default = "yes")]
    pub strict_time_zones: bool,
    #[serde(default)]
    pub etag_drift: bool,
    #[serde(default)]
    pub purge_tombstones_after_secs: Option<u64>,
    #[serde(default)]
    pub fresh_calendar_delay_secs: u64,
    #[serde(default = "not_found")]
    pub fresh_calendar_status: u16,
    #[serde(default)]
    pub calendar_creation_limit: Option<CreationLimit>,
    #[serde(default)]
    pub token_fail_nth: Vec<TokenFailNth>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fault_rate: 0.0,
            faults: InjectedFault::ALL.to_vec(),
            fault_seed: 0,
            fail_nth: Vec::new(),
            quota_per_minute: None,
            access_token_ttl_secs: 3599,
            max_page_size: None,
            strict_sync_parameters: true,
            strict_time_zones: true,
            etag_drift: false,
            purge_tombstones_after_secs: None,
            fresh_calendar_delay_secs: 0,
            fresh_calendar_status: 404,
            calendar_creation_limit: None,
            token_fail_nth: Vec::new(),
        }
    }
}

impl Settings {
    /// The part the handlers consult under the store lock.
    fn behaviour(&self) -> Behaviour {
        Behaviour {
            strict_sync_parameters: self.strict_sync_parameters,
            strict_time_zones: self.strict_time_zones,
            etag_drift: self.etag_drift,
            tombstone_ttl: self.purge_tombstones_after_secs.map(Duration::from_secs),
            fresh_calendar_delay: Duration::from_secs(self.fresh_calendar_delay_secs),
            fresh_calendar_status: self.fresh_calendar_status,
            creation_limit: self.calendar_creation_limit.filter(|l| l.max > 0),
        }
    }
}

/// A partial update of [`Settings`]; absent fields stay as they are. For
/// `quota_per_minute`, `0` removes the limit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SettingsUpdate {
    pub latency_ms: Option<u64>,
    pub fault_rate: Option<f64>,
    pub faults: Option<Vec<InjectedFault>>,
    pub fault_seed: Option<u64>,
    pub fail_nth: Option<Vec<FailNth>>,
    pub quota_per_minute: Option<u32>,
    pub access_token_ttl_secs: Option<u64>,
    /// `0` removes the cap.
    pub max_page_size: Option<usize>,
    pub strict_sync_parameters: Option<bool>,
    pub strict_time_zones: Option<bool>,
    pub etag_drift: Option<bool>,
    /// `0` turns the purge off.
    pub purge_tombstones_after_secs: Option<u64>,
    pub fresh_calendar_delay_secs: Option<u64>,
    /// 404 or 403.
    pub fresh_calendar_status: Option<u16>,
    /// `max: 0` removes the limit.
    pub calendar_creation_limit: Option<CreationLimit>,
    pub token_fail_nth: Option<Vec<TokenFailNth>>,
}

pub(crate) struct ControlState {
    settings: Mutex<Settings>,
    rng: Mutex<StdRng>,
    counters: Mutex<BTreeMap<String, u64>>,
    quota: Mutex<HashMap<String, VecDeque<tokio::time::Instant>>>,
    store: Arc<Mutex<Store>>,
}

/// Handle on the switches and counters; cheap to clone.
#[derive(Clone)]
pub struct Controls {
    inner: Arc<ControlState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the gate should do with a request after auth and quota.
pub(crate) enum FaultDecision {
    Proceed,
    FailBefore(ApiError),
    FailAfter(ApiError),
}

impl Controls {
    pub(crate) fn new(settings: Settings, store: Arc<Mutex<Store>>) -> Self {
        let seed = settings.fault_seed;
        lock(&store).behaviour = settings.behaviour();
        Self {
            inner: Arc::new(ControlState {
                settings: Mutex::new(settings),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                counters: Mutex::new(BTreeMap::new()),
                quota: Mutex::new(HashMap::new()),
                store,
            }),
        }
    }

    /// The current switches.
    pub fn settings(&self) -> Settings {
        lock(&self.inner.settings).clone()
    }

    /// Applies a partial update and returns the result.
    ///
    /// # Errors
    /// A fault rate outside 0.0..=1.0.
    pub fn update(&self, update: SettingsUpdate) -> Result<Settings, String> {
        if let Some(rate) = update.fault_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("fault_rate {rate} is outside 0.0..=1.0"));
            }
        }
        if let Some(status) = update.fresh_calendar_status {
            if !matches!(status, 403 | 404) {
                return Err(format!("fresh_calendar_status {status} is not 403 or 404"));
            }
        }
        let mut settings = lock(&self.inner.settings);
        if let Some(v) = update.latency_ms {
            settings.latency_ms = v;
        }
        if let Some(v) = update.fault_rate {
            settings.fault_rate = v;
        }
        if let Some(v) = update.faults {
            settings.faults = v;
        }
        if let Some(seed) = update.fault_seed {
            settings.fault_seed = seed;
            *lock(&self.inner.rng) = StdRng::seed_from_u64(seed);
        }
        if let Some(rules) = update.fail_nth {
            settings.fail_nth = rules
                .into_iter()
                .map(|r| FailNth { seen: 0, ..r })
                .collect();
        }
        if let Some(q) = update.quota_per_minute {
            settings.quota_per_minute = (q > 0).then_some(q);
        }
        if let Some(ttl) = update.access_token_ttl_secs {
            settings.access_token_ttl_secs = ttl;
        }
        if let Some(cap) = update.max_page_size {
            settings.max_page_size = (cap > 0).then_some(cap);
        }
        if let Some(v) = update.strict_sync_parameters {
            settings.strict_sync_parameters = v;
        }
        if let Some(v) = update.strict_time_zones {
            settings.strict_time_zones = v;
        }
        if let Some(v) = update.etag_drift {
            settings.etag_drift = v;
        }
        if let Some(secs) = update.purge_tombstones_after_secs {
            settings.purge_tombstones_after_secs = (secs > 0).then_some(secs);
        }
        if let Some(secs) = update.fresh_calendar_delay_secs {
            settings.fresh_calendar_delay_secs = secs;
        }
        if let Some(status) = update.fresh_calendar_status {
            settings.fresh_calendar_status = status;
        }
        if let Some(limit) = update.calendar_creation_limit {
            settings.calendar_creation_limit = (limit.max > 0).then_some(limit);
        }
        if let Some(rules) = update.token_fail_nth {
            settings.token_fail_nth = rules
                .into_iter()
                .map(|r| TokenFailNth { seen: 0, ..r })
                .collect();
        }
        lock(&self.inner.store).behaviour = settings.behaviour();
        Ok(settings.clone())
    }

    /// Applies a partial update built in code (tests).
    ///
    /// # Panics
    /// Never for values the type allows except a fault rate outside 0..=1 or a fresh
    /// calendar status other than 403/404, which are programming errors in a test.
    pub fn set(&self, update: SettingsUpdate) -> Settings {
        match self.update(update) {
            Ok(settings) => settings,
            Err(message) => panic!("invalid emulator settings: {message}"),
        }
    }

    /// Moves the emulator's clock forward (lock-outs, propagation, purges, quotas,
    /// token expiry), without touching tokio's.
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.inner.store).clock_offset += by;
    }

    /// Purges every tombstone now, as if the purge delay had passed.
    pub fn purge_tombstones_now(&self) {
        let mut store = lock(&self.inner.store);
        let now = store.instant();
        for calendar in store.calendars.values_mut() {
            calendar.purge_tombstones(now, Duration::ZERO);
        }
    }

    /// The time zones `timeZone` fields accept under `strict_time_zones`.
    pub fn accepted_time_zones(&self) -> Vec<&'static str> {
        super::zones::accepted()
    }

    /// Identities in read-only mode, with the time left.
    pub fn lockouts(&self) -> BTreeMap<String, Duration> {
        let store = lock(&self.inner.store);
        let now = store.instant();
        store
            .locked_out
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(who, until)| (who.clone(), until.duration_since(now)))
            .collect()
    }

    /// Whether `identity` is in read-only mode now.
    pub(crate) fn is_locked_out(&self, identity: &str) -> bool {
        lock(&self.inner.store).is_locked_out(identity)
    }

    /// The emulator's clock.
    pub(crate) fn instant(&self) -> tokio::time::Instant {
        lock(&self.inner.store).instant()
    }

    /// Decides whether this token request fails (and counts it against the rules).
    pub(crate) fn decide_token_fault(&self) -> Option<TokenFault> {
        let mut settings = lock(&self.inner.settings);
        let mut fault = None;
        for rule in &mut settings.token_fail_nth {
            rule.seen += 1;
            let last = rule.nth.saturating_add(rule.count.max(1));
            if fault.is_none() && (rule.nth..last).contains(&rule.seen) {
                fault = Some(rule.error);
            }
        }
        fault
    }

    /// Adds latency to every API request.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner.settings).latency_ms = latency.as_millis().try_into().unwrap_or(u64::MAX);
    }

    /// Fails a share `rate` (0.0..=1.0, clamped) of API requests with faults drawn
    /// from `faults`, deterministically from `seed`.
    pub fn set_fault_rate(&self, rate: f64, faults: &[InjectedFault], seed: u64) {
        let mut settings = lock(&self.inner.settings);
        settings.fault_rate = rate.clamp(0.0, 1.0);
        settings.faults = faults.to_vec();
        settings.fault_seed = seed;
        *lock(&self.inner.rng) = StdRng::seed_from_u64(seed);
    }

    /// Fails the `nth` call (1-based, from now) of `method` with `status`.
    pub fn fail_nth_call(&self, method: &str, nth: u64, status: u16) {
        self.add_fail_nth(FailNth {
            method: method.to_owned(),
            nth,
            status,
            after_effect: false,
            seen: 0,
        });
    }

    /// Adds a "fail the Nth call" rule.
    pub fn add_fail_nth(&self, rule: FailNth) {
        lock(&self.inner.settings)
            .fail_nth
            .push(FailNth { seen: 0, ..rule });
    }

    /// Removes random and Nth-call fault injection.
    pub fn clear_faults(&self) {
        let mut settings = lock(&self.inner.settings);
        settings.fault_rate = 0.0;
        settings.fail_nth.clear();
    }

    /// Limits requests per credential per sliding minute (`None`: unlimited).
    pub fn set_quota_per_minute(&self, quota: Option<u32>) {
        lock(&self.inner.settings).quota_per_minute = quota;
        lock(&self.inner.quota).clear();
    }

    /// Serves list pages of at most `cap` items whatever `maxResults` says.
    pub fn set_max_page_size(&self, cap: Option<usize>) {
        lock(&self.inner.settings).max_page_size = cap.filter(|c| *c > 0);
    }

    pub(crate) fn page_size(&self, max_results: usize) -> usize {
        lock(&self.inner.settings)
            .max_page_size
            .map_or(max_results, |cap| cap.min(max_results))
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        lock(&self.inner.settings).access_token_ttl_secs = ttl.as_secs();
    }

    pub(crate) fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(lock(&self.inner.settings).access_token_ttl_secs)
    }

    /// Makes every outstanding sync token answer 410 `fullSyncRequired`.
    pub fn expire_sync_tokens(&self) {
        lock(&self.inner.store).expire_sync_tokens();
    }

    /// Registers a refresh token for the `refresh_token` grant; its user is
    /// `user-<hash>@emulator.invalid`.
    pub fn register_refresh_token(
        &self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) {
        let user = format!(
            "user-{}@emulator.invalid",
            &hex::encode(sha2_digest(refresh_token))[..12]
        );
        self.register_refresh_token_for(client_id, client_secret, refresh_token, &user);
    }

    /// Registers a refresh token acting as `user_email`.
    pub fn register_refresh_token_for(
        &self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        user_email: &str,
    ) {
        lock(&self.inner.store).refresh_tokens.insert(
            refresh_token.to_owned(),
            RefreshGrant {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                user_email: user_email.to_owned(),
                revoked: false,
            },
        );
    }

    /// Revokes a refresh token (the grant answers `invalid_grant`) and the access
    /// tokens issued from it stay valid until they expire, as on Google. Returns
    /// whether the token was known.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        match lock(&self.inner.store)
            .refresh_tokens
            .get_mut(refresh_token)
        {
            Some(grant) => {
                grant.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Request counters (see the module docs for the keys).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        lock(&self.inner.counters).clear();
    }

    pub(crate) fn count(&self, method: &str, status: u16) {
        let mut counters = lock(&self.inner.counters);
        for key in [
            method.to_owned(),
            format!("{method}:{status}"),
            format!("status:{status}"),
        ] {
            *counters.entry(key).or_insert(0) += 1;
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(lock(&self.inner.settings).latency_ms)
    }

    /// Counts the request against the caller's per-minute quota.
    pub(crate) fn check_quota(&self, identity: &str) -> Result<(), ApiError> {
        let Some(limit) = lock(&self.inner.settings).quota_per_minute else {
            return Ok(());
        };
        let now = self.instant();
        let mut quota = lock(&self.inner.quota);
        let window = quota.entry(identity.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(ApiError::RateLimitExceeded(403));
        }
        window.push_back(now);
        Ok(())
    }

    /// Decides whether to inject a fault into this call of `method`.
    pub(crate) fn decide_fault(&self, method: &str) -> FaultDecision {
        let mut settings = lock(&self.inner.settings);
        let mut decision = FaultDecision::Proceed;
        for rule in settings.fail_nth.iter_mut().filter(|r| r.method == method) {
            rule.seen += 1;
            if rule.seen == rule.nth && matches!(decision, FaultDecision::Proceed) {
                let error = ApiError::for_status(rule.status);
                decision = if rule.after_effect {
                    FaultDecision::FailAfter(error)
                } else {
                    FaultDecision::FailBefore(error)
                };
            }
        }
        if !matches!(decision, FaultDecision::Proceed) {
            return decision;
        }
        if settings.fault_rate > 0.0 && !settings.faults.is_empty() {
            let mut rng = lock(&self.inner.rng);
            if rng.gen::<f64>() < settings.fault_rate {
                let fault = settings.faults[rng.gen_range(0..settings.faults.len())];
                return FaultDecision::FailBefore(ApiError::for_status(fault.status()));
            }
        }
        FaultDecision::Proceed
    }
}

fn sha2_digest(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

/// Reads the emulator's data without auth or counters (for tests).
#[derive(Clone)]
pub struct Inspector {
    store: Arc<Mutex<Store>>,
}

impl Inspector {
    pub(crate) fn new(store: Arc<Mutex<Store>>) -> Self {
        Self { store }
    }

    /// Every calendar resource, in creation order.
    pub fn calendars(&self) -> Vec<Value> {
        let store = lock(&self.store);
        store
            .calendar_order
            .iter()
            .filter_map(|id| store.calendars.get(id))
            .map(|c| c.resource.clone())
            .collect()
    }

    /// Every event of the calendar as `events.get` would return it, cancelled
    /// ones (tombstones) included; empty for an unknown calendar.
    pub fn events(&self, calendar_id: &str) -> Vec<Value> {
        lock(&self.store)
            .calendars
            .get(calendar_id)
            .map(|c| c.events.values().map(|e| e.body.clone()).collect())
            .unwrap_or_default()
    }

    /// The calendar's ACL rules (the owner's rule included); empty when unknown.
    pub fn acl(&self, calendar_id: &str) -> Vec<Value> {
        lock(&self.store)
            .calendars
            .get(calendar_id)
            .map(|c| c.acl.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// The `/emulator/` routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/emulator/settings", get(get_settings).put(put_settings))
        .route("/emulator/fail-nth", post(add_fail_nth))
        .route("/emulator/counters", get(get_counters))
        .route("/emulator/counters/reset", post(reset_counters))
        .route("/emulator/expire-sync-tokens", post(expire_sync_tokens))
        .route("/emulator/refresh-tokens", post(register_refresh_token))
        .route(
            "/emulator/refresh-tokens/revoke",
            post(revoke_refresh_token),
        )
        .route("/emulator/service-account-key", get(service_account_key))
        .route("/emulator/calendars", get(inspect_calendars))
        .route(
            "/emulator/calendars/{calendar_id}/events",
            get(inspect_events),
        )
        .route("/emulator/calendars/{calendar_id}/acl", get(inspect_acl))
        .route("/emulator/clock/advance", post(advance_clock))
        .route("/emulator/purge-tombstones", post(purge_tombstones))
        .route("/emulator/time-zones", get(time_zones))
        .route("/emulator/lockouts", get(lockouts))
}

#[derive(Deserialize)]
struct AdvanceBody {
    secs: u64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<AdvanceBody>(&body) {
        Ok(b) => {
            shared.controls.advance_clock(Duration::from_secs(b.secs));
            Json(json!({"advanced_secs": b.secs})).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn purge_tombstones(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.controls.purge_tombstones_now();
    Json(json!({"purged": true}))
}

async fn time_zones(State(shared): State<Arc<Shared>>) -> Json<Vec<&'static str>> {
    Json(shared.controls.accepted_time_zones())
}

async fn lockouts(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    Json(
        shared
            .controls
            .lockouts()
            .into_iter()
            .map(|(who, left)| (who, left.as_secs()))
            .collect(),
    )
}

async fn get_settings(State(shared): State<Arc<Shared>>) -> Json<Settings> {
    Json(shared.controls.settings())
}

async fn put_settings(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<SettingsUpdate>(&body) {
        Ok(update) => match shared.controls.update(update) {
            Ok(settings) => Json(settings).into_response(),
            Err(message) => bad_request(message),
        },
        Err(e) => bad_request(e.to_string()),
    }
}

async fn add_fail_nth(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FailNth>(&body) {
        Ok(rule) => {
            shared.controls.add_fail_nth(rule);
            Json(shared.controls.settings()).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn get_counters(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    Json(shared.controls.counters())
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    shared.controls.reset_counters();
    Json(shared.controls.counters())
}

async fn expire_sync_tokens(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.controls.expire_sync_tokens();
    Json(json!({"expired": true}))
}

#[derive(Deserialize)]
struct RefreshTokenBody {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    user_email: Option<String>,
}

async fn register_refresh_token(
    State(shared): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<RefreshTokenBody>(&body) {
        Ok(b) => {
            match b.user_email {
                Some(user) => shared.controls.register_refresh_token_for(
                    &b.client_id,
                    &b.client_secret,
                    &b.refresh_token,
                    &user,
                ),
                None => shared.controls.register_refresh_token(
                    &b.client_id,
                    &b.client_secret,
                    &b.refresh_token,
                ),
            }
            Json(json!({"registered": b.refresh_token})).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

#[derive(Deserialize)]
struct RevokeBody {
    refresh_token: String,
}

async fn revoke_refresh_token(
    State(shared): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<RevokeBody>(&body) {
        Ok(b) => Json(json!({"revoked": shared.controls.revoke_refresh_token(&b.refresh_token)}))
            .into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn service_account_key(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        shared.account.key_json(&shared.token_uri()),
    )
        .into_response()
}

async fn inspect_calendars(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    Json(Inspector::new(shared.store.clone()).calendars())
}

async fn inspect_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Json<Vec<Value>> {
    Json(Inspector::new(shared.store.clone()).events(&id))
}

async fn inspect_acl(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Json<Vec<Value>> {
    Json(Inspector::new(shared.store.clone()).acl(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls() -> Controls {
        Controls::new(
            Settings {
                fault_seed: 7,
                ..Settings::default()
            },
            Arc::new(Mutex::new(Store::new())),
        )
    }

    fn draw(controls: &Controls, n: usize) -> Vec<Option<u16>> {
        (0..n)
            .map(|_| match controls.decide_fault("calendar.events.list") {
                FaultDecision::FailBefore(e) => Some(e.status().as_u16()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fault_injection_is_deterministic_for_a_seed() {
        let c = controls();
        c.set_fault_rate(0.5, &InjectedFault::ALL, 42);
        let first = draw(&c, 200);
        c.set_fault_rate(0.5, &InjectedFault::ALL, 42);
        assert_eq!(first, draw(&c, 200));
        let failures = first.iter().flatten().count();
        assert!((60..140).contains(&failures), "{failures}");
    }

    #[test]
    fn the_nth_call_fails_exactly_once() {
        let c = controls();
        c.fail_nth_call("calendar.events.list", 3, 503);
        assert_eq!(draw(&c, 5), vec![None, None, Some(503), None, None]);
    }

    #[test]
    fn quota_counts_per_credential() {
        let c = controls();
        c.set_quota_per_minute(Some(2));
        assert!(c.check_quota("a").is_ok());
        assert!(c.check_quota("a").is_ok());
        assert_eq!(c.check_quota("a"), Err(ApiError::RateLimitExceeded(403)));
        assert!(c.check_quota("b").is_ok());
    }

    #[test]
    fn token_rules_fail_the_calls_in_their_range() {
        let c = controls();
        c.set(SettingsUpdate {
            token_fail_nth: Some(vec![TokenFailNth {
                nth: 2,
                count: 2,
                error: TokenFault::InternalFailure,
                seen: 0,
            }]),
            ..SettingsUpdate::default()
        });
        let got: Vec<Option<TokenFault>> = (0..5).map(|_| c.decide_token_fault()).collect();
        let f = Some(TokenFault::InternalFailure);
        assert_eq!(got, vec![None, f, f, None, None]);
    }

    #[test]
    fn settings_json_round_trips_with_fault_statuses() {
        let update: Result<SettingsUpdate, _> =
            serde_json::from_str(r#"{"faults":[500,503],"fault_rate":0.25}"#);
        let settings = update.map(|u| controls().update(u));
        let faults = settings.ok().and_then(|s| s.ok()).map(|s| s.faults);
        assert_eq!(
            faults,
            Some(vec![
                InjectedFault::BackendError500,
                InjectedFault::Unavailable503
            ])
        );
        let bad: Result<SettingsUpdate, _> = serde_json::from_str(r#"{"faults":[404]}"#);
        assert!(bad.is_err());
    }
}
