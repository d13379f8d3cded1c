//! Settings: defaults, then a TOML file, then `BOOKCAL_*` environment variables.
//!
//! Every key of the file can be overridden by an env var named after its path:
//! `listen` -> `BOOKCAL_LISTEN`, `google.root_url` -> `BOOKCAL_GOOGLE_ROOT_URL`.
//! Secrets (the token salt, Google keys) are [`Secret`]s: never printed by `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A secret string: `Debug` prints `[redacted]`, and there is no `Display`, so a
/// secret reaches text only through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The annotated example of every key with its default (`bookcal config example`;
/// the same file is `deploy/bookcal.example.toml`).
pub const EXAMPLE_TOML: &str = include_str!("../deploy/bookcal.example.toml");

/// `google.requests_per_minute` by default: the one definition (the Google client's
/// default budget, `RateLimit::default`, is this too). Google allows 600 per user in
/// any minute; 580 with a burst of a second's worth keeps every minute at 589 or less.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 580;

/// Errors while loading settings; each names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML for bookcal")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid value for `{key}` ({env}): {reason}")]
    Invalid {
        key: &'static str,
        env: &'static str,
        reason: String,
    },
}

/// Google Calendar settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleSettings {
    /// Root URL of the Calendar API (`https://www.googleapis.com/`, or the emulator).
    pub root_url: String,
    /// Path of a service-account key file (JSON). Without it (and without
    /// per-provider tokens) the calendar actions answer "Google credentials do not exist."
    pub service_account_key: Option<PathBuf>,
    /// User to impersonate with domain-wide delegation.
    pub impersonate: Option<String>,
    /// Directory of per-provider OAuth refresh tokens: `<provider uuid hex>.json`
    /// with `client_id`, `client_secret`, `refresh_token` and optional `token_url`.
    /// A provider with a file uses it; the others use the service account.
    pub provider_credentials_dir: Option<PathBuf>,
    /// Requests per minute per credential. Google's limit is 600 per user in any
    /// minute; the default 580, with a burst of a second's worth (9), keeps every 60 s
    /// window at 589 or less (97 % of the quota, with a margin for requests that reach
    /// Google slightly out of order).
    pub requests_per_minute: u32,
    /// Share calendars busy-only (`freeBusyReader`) instead of with details (`reader`).
    pub share_busy_only: bool,
    /// Keep a push-notification channel on every offering calendar (needs a webhook
    /// address Google can reach, see `push_url`); off: Google's changes arrive by
    /// polling only.
    pub push_enabled: bool,
    /// The public address of the push-notification webhook
    /// (`https://bookcal.example.org/google/notifications`), when it differs from
    /// `public_url` + `/google/notifications`. HTTPS unless `root_url` is not Google's.
    pub push_url: Option<String>,
    /// Lifetime asked for each watch channel (Google's default: a week).
    pub push_ttl_secs: u64,
    /// A channel is replaced this long before it expires.
    pub push_renew_before_secs: u64,
    /// How often the channel upkeep reads the stored channels (besides after each
    /// sync run and at each channel's renewal time): how soon a replica notices a
    /// channel another one opened or an upkeep claim whose replica died.
    pub push_look_secs: u64,
    /// Calendars one credential may create in any hour (0 = no budget). Google makes
    /// an account that creates too many read-only for hours.
    pub calendars_per_hour: u32,
    /// Seconds a credential's writes pause after Google answers "Calendar usage limits
    /// exceeded." (doubling on each refusal in a row, at most a day).
    pub usage_limit_pause_secs: u64,
}

impl GoogleSettings {
    /// Whether `root_url` is Google's own API (not an emulator or a proxy).
    pub fn is_googles(&self) -> bool {
        url::Url::parse(&self.root_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"))
            })
            .unwrap_or(true)
    }
}

impl Default for GoogleSettings {
    fn default() -> Self {
        GoogleSettings {
            root_url: "https://www.googleapis.com/".into(),
            service_account_key: None,
            impersonate: None,
            provider_credentials_dir: None,
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            share_busy_only: false,
            push_enabled: true,
            push_url: None,
            push_ttl_secs: 604_800,
            push_renew_before_secs: 86_400,
            push_look_secs: 30,
            calendars_per_hour: 20,
            usage_limit_pause_secs: 3 * 3600,
        }
    }
}

/// Sync engine and scheduler settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Seconds between periodic syncs of every offering with a calendar (0 = off).
    pub interval_secs: u64,
    /// Days ahead to expand recurring external events into busy slots.
    pub horizon_days: u32,
    /// Concurrent Google requests per sync run.
    pub concurrency: usize,
    /// Largest share (0..=1) of owned events one run may delete without `--force`.
    pub max_delete_share: f64,
    /// Seconds between periodic syncs of an offering whose push channel is healthy
    /// (Google's changes arrive by push; polling is only the safety net).
    pub push_interval_secs: u64,
    /// Milliseconds a sync that a local change implies waits for more changes to the
    /// same offering (a burst of changes gives one run).
    pub debounce_ms: u64,
    /// New orders are refused on an offering whose calendar's busy time was last read
    /// longer ago than this (seconds; 0 = never refuse): stale busy time could let a
    /// booking land on time that is taken.
    pub max_busy_age_secs: u64,
}

impl SyncSettings {
    /// `max_busy_age_secs` as a limit (`None` for 0: never refuse).
    pub fn max_busy_age(&self) -> Option<chrono::Duration> {
        (self.max_busy_age_secs > 0)
            .then(|| i64::try_from(self.max_busy_age_secs).ok())
            .flatten()
            .and_then(chrono::Duration::try_seconds)
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            interval_secs: 900,
            horizon_days: 400,
            concurrency: 8,
            max_delete_share: 0.5,
            push_interval_secs: 21_600,
            debounce_ms: 1000,
            max_busy_age_secs: 2 * 3600,
        }
    }
}

/// Limits of the HTTP server against slow, idle and oversized clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds a client has to send a request head (request line and headers),
    /// counted from the connection's start or from the end of the previous response.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a whole request body once its head arrived;
    /// slower bodies are answered 408 and the connection is closed.
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay idle (no request in progress, nothing received)
    /// before it is closed; at most `header_read_timeout_secs`, which already bounds
    /// the wait for the next request head.
    pub keep_alive_timeout_secs: u64,
    /// Seconds a response write may make no progress (a client not reading) before
    /// the connection is dropped.
    pub send_timeout_secs: u64,
    /// Connections served at once. Past it, connections only reach `/health` and
    /// `/ready` (up to `probe_connections` more); beyond that they are closed at once.
    pub max_connections: usize,
    /// Connections kept in reserve for the probes (`/health`, `/ready`) while
    /// `max_connections` are open; each must send its request within a second.
    pub probe_connections: usize,
    /// Largest request body, bytes. A larger `Content-Length` is answered 413 before
    /// any of the body is read; a longer chunked body is cut off with a 413.
    pub max_body_bytes: usize,
    /// Longest request target (path and query), bytes; longer ones are answered 414.
    pub max_uri_bytes: usize,
    /// Bearer token that shows `/metrics` with per-offering series. Without it (or
    /// without the header) `/metrics` shows aggregates only, naming no offering.
    pub metrics_token: Option<Secret>,
    /// A second address that answers only `/health` and `/ready`, on its own
    /// connections (at most `probe_connections`), untouched by the API's connection
    /// cap: point the orchestrator's probes at it. None: probes use the API's port
    /// and its reserve.
    pub probe_listen: Option<SocketAddr>,
    /// Requests per second each client may make without credentials (public feeds,
    /// anonymous API calls); more are answered 429 with `Retry-After`. 0: no limit.
    pub client_requests_per_sec: u32,
    /// Requests a client may make at once above that rate (the bucket's size).
    pub client_burst: u32,
    /// Most clients whose rate is tracked at once; past it, new clients share one
    /// allowance until idle ones are forgotten (bounds the limiter's memory).
    pub max_tracked_clients: usize,
    /// Longest time, milliseconds, a 429 to a client over its rate is held before it
    /// is sent (never longer than its `Retry-After`), so a client that ignores
    /// `Retry-After` is answered no faster than it should ask. 0: answer at once.
    pub throttle_hold_ms: u64,
    /// Most 429s held at once; past it they are sent at once with
    /// `Connection: close`. A held answer keeps its connection, so at most half of
    /// `max_connections` are held whatever this says.
    pub max_held_answers: usize,
    /// Refusals in a row (no admitted request between them) after which a client's
    /// 429s close their connection, so keep-alive connections cannot loop on 429s.
    /// 0: never.
    pub close_after_refusals: u32,
    /// Addresses or networks (CIDR) of reverse proxies whose `X-Forwarded-For`
    /// names the client; from anyone else the header is ignored. Empty: the peer
    /// address is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            keep_alive_timeout_secs: 5,
            send_timeout_secs: 30,
            max_connections: 512,
            probe_connections: 8,
            max_body_bytes: 2 * 1024 * 1024,
            max_uri_bytes: 8 * 1024,
            metrics_token: None,
            probe_listen: None,
            client_requests_per_sec: 10,
            client_burst: 100,
            max_tracked_clients: 65_536,
            throttle_hold_ms: 1_000,
            max_held_answers: 128,
            close_after_refusals: 3,
            trusted_proxies: Vec::new(),
        }
    }
}

/// iCalendar feed settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    /// Rendered feed bodies kept in memory, MiB.
    pub cache_mb: u64,
    /// Feeds rendered at once (0 = half the CPUs, at least one).
    pub render_threads: usize,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            cache_mb: 32,
            render_threads: 0,
        }
    }
}

/// All settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Directory of the sled store.
    pub data_dir: PathBuf,
    /// PostgreSQL instead of sled (`postgres://user:password@host:port/database`):
    /// any number of replicas on one database. Unset: sled in `data_dir`.
    pub store_url: Option<Secret>,
    /// Database connections each process keeps at most (PostgreSQL only).
    pub store_max_connections: u32,
    /// Seconds a replica holds a claimed job without renewing its lease (PostgreSQL
    /// only; runs renew every third of it). A replica that dies loses its jobs to the
    /// others this long after its last renewal.
    pub store_job_lease_secs: u64,
    /// Public base URL used in links; from the request's Host header when unset.
    pub public_url: Option<String>,
    /// Salt mixed into stored token hashes.
    pub token_salt: Secret,
    /// sled page cache, MiB.
    pub cache_mb: u64,
    /// `text` (human) or `json` logs.
    pub log_format: String,
    /// Seconds a graceful shutdown may take before bookcal gives up waiting for
    /// in-flight requests and running jobs, flushes and exits with an error.
    pub shutdown_timeout_secs: u64,
    pub http: HttpSettings,
    pub google: GoogleSettings,
    pub sync: SyncSettings,
    pub feeds: FeedSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store_url: None,
            store_max_connections: 16,
            store_job_lease_secs: 60,
            public_url: None,
            token_salt: Secret::new(crate::store::DEFAULT_TOKEN_SALT),
            cache_mb: 16,
            log_format: "text".into(),
            shutdown_timeout_secs: 30,
            http: HttpSettings::default(),
            google: GoogleSettings::default(),
            sync: SyncSettings::default(),
            feeds: FeedSettings::default(),
        }
    }
}

impl HttpSettings {
    /// Checks that every limit is usable: timeouts of at least a second, room for at
    /// least one connection and one probe, bodies and URIs of a sensible size.
    ///
    /// # Errors
    /// The first invalid value, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least = |v: u64, min: u64, key, env| {
            if v < min {
                Err(invalid(key, env, format!("must be at least {min}")))
            } else {
                Ok(())
            }
        };
        at_least(
            self.header_read_timeout_secs,
            1,
            "http.header_read_timeout_secs",
            "BOOKCAL_HTTP_HEADER_READ_TIMEOUT_SECS",
        )?;
        at_least(
            self.body_timeout_secs,
            1,
            "http.body_timeout_secs",
            "BOOKCAL_HTTP_BODY_TIMEOUT_SECS",
        )?;
        at_least(
            self.keep_alive_timeout_secs,
            1,
            "http.keep_alive_timeout_secs",
            "BOOKCAL_HTTP_KEEP_ALIVE_TIMEOUT_SECS",
        )?;
        at_least(
            self.send_timeout_secs,
            1,
            "http.send_timeout_secs",
            "BOOKCAL_HTTP_SEND_TIMEOUT_SECS",
        )?;
        at_least(
            self.max_connections as u64,
            1,
            "http.max_connections",
            "BOOKCAL_HTTP_MAX_CONNECTIONS",
        )?;
        at_least(
            self.probe_connections as u64,
            1,
            "http.probe_connections",
            "BOOKCAL_HTTP_PROBE_CONNECTIONS",
        )?;
        at_least(
            self.max_body_bytes as u64,
            1024,
            "http.max_body_bytes",
            "BOOKCAL_HTTP_MAX_BODY_BYTES",
        )?;
        at_least(
            self.max_uri_bytes as u64,
            256,
            "http.max_uri_bytes",
            "BOOKCAL_HTTP_MAX_URI_BYTES",
        )?;
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return Err(invalid(
                "http.metrics_token",
                "BOOKCAL_HTTP_METRICS_TOKEN",
                "must be at least 16 characters",
            ));
        }
        // hyper's head timer starts when a connection waits for its next request, so
        // it closes idle connections at the header timeout whatever comes later.
        if self.keep_alive_timeout_secs > self.header_read_timeout_secs {
            return Err(invalid(
                "http.keep_alive_timeout_secs",
                "BOOKCAL_HTTP_KEEP_ALIVE_TIMEOUT_SECS",
                "must be at most http.header_read_timeout_secs",
            ));
        }
        at_least(
            self.client_burst.into(),
            1,
            "http.client_burst",
            "BOOKCAL_HTTP_CLIENT_BURST",
        )?;
        at_least(
            self.max_tracked_clients as u64,
            1,
            "http.max_tracked_clients",
            "BOOKCAL_HTTP_MAX_TRACKED_CLIENTS",
        )?;
        if self.throttle_hold_ms > 10_000 {
            return Err(invalid(
                "http.throttle_hold_ms",
                "BOOKCAL_HTTP_THROTTLE_HOLD_MS",
                "must be at most 10000",
            ));
        }
        if let Some(bad) = self
            .trusted_proxies
            .iter()
            .find(|p| parse_network(p).is_none())
        {
            return Err(invalid(
                "http.trusted_proxies",
                "BOOKCAL_HTTP_TRUSTED_PROXIES",
                format!("{bad:?} is not an IP address or network (CIDR)"),
            ));
        }
        // hyper refuses longer request targets itself, before bookcal sees them.
        if self.max_uri_bytes > 65_534 {
            return Err(invalid(
                "http.max_uri_bytes",
                "BOOKCAL_HTTP_MAX_URI_BYTES",
                "must be at most 65534",
            ));
        }
        Ok(())
    }
}

/// An IP address (a network of one) or a network in CIDR notation.
pub fn parse_network(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn invalid(key: &'static str, env: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        env,
        reason: reason.into(),
    }
}

/// How one `BOOKCAL_*` variable sets its settings key (see [`ENV_VARS`]).
pub struct EnvVar {
    /// The variable.
    pub name: &'static str,
    /// The settings key it sets (`a.b`, as in the TOML file).
    pub key: &'static str,
    /// Sets the key from the variable's value; the error is the reason it is invalid.
    apply: fn(&mut Settings, String) -> Result<(), String>,
}

/// Parses `v` into `slot` (surrounding space ignored).
fn parsed<T: std::str::FromStr>(v: &str, slot: &mut T) -> Result<(), String>
where
    T::Err: fmt::Display,
{
    *slot = v.trim().parse().map_err(|e: T::Err| e.to_string())?;
    Ok(())
}

/// The trimmed contents of the file a `*_FILE` variable names.
fn file_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|v| v.trim().to_string())
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// A variable whose value parses into the field at `$($f).+`.
macro_rules! var {
    ($name:literal, $key:literal, $($f:ident).+) => {
        EnvVar {
            name: $name,
            key: $key,
            apply: |s, v| parsed(&v, &mut s.$($f).+),
        }
    };
    ($name:literal, $key:literal, |$s:ident, $v:ident| $body:expr) => {
        EnvVar {
            name: $name,
            key: $key,
            apply: |$s, $v| {
                $body;
                Ok(())
            },
        }
    };
}

/// Every `BOOKCAL_*` variable a setting reads, applied in this order over the file's
/// values (a `*_FILE` variable after its plain one: the file wins). The one list:
/// loading reads it, and `config check` names the variables it does not know from it.
pub const ENV_VARS: &[EnvVar] = &[
    var!("BOOKCAL_LISTEN", "listen", listen),
    var!("BOOKCAL_DATA_DIR", "data_dir", |s, v| s.data_dir =
        PathBuf::from(v)),
    var!("BOOKCAL_STORE_URL", "store_url", |s, v| {
        s.store_url = Some(Secret::new(v)).filter(|v| !v.expose().is_empty())
    }),
    var!("BOOKCAL_STORE_URL_FILE", "store_url", |s, v| {
        s.store_url = Some(Secret::new(file_text(&v)?)).filter(|v| !v.expose().is_empty())
    }),
    var!(
        "BOOKCAL_STORE_MAX_CONNECTIONS",
        "store_max_connections",
        store_max_connections
    ),
    var!(
        "BOOKCAL_STORE_JOB_LEASE_SECS",
        "store_job_lease_secs",
        store_job_lease_secs
    ),
    var!("BOOKCAL_PUBLIC_URL", "public_url", |s, v| {
        s.public_url = Some(v).filter(|v| !v.is_empty())
    }),
    var!("BOOKCAL_TOKEN_SALT", "token_salt", |s, v| s.token_salt =
        Secret::new(v)),
    var!("BOOKCAL_TOKEN_SALT_FILE", "token_salt", |s, v| s
        .token_salt =
        Secret::new(file_text(&v)?)),
    var!("BOOKCAL_CACHE_MB", "cache_mb", cache_mb),
    var!("BOOKCAL_LOG_FORMAT", "log_format", |s, v| s.log_format = v),
    var!(
        "BOOKCAL_SHUTDOWN_TIMEOUT_SECS",
        "shutdown_timeout_secs",
        shutdown_timeout_secs
    ),
    var!(
        "BOOKCAL_HTTP_HEADER_READ_TIMEOUT_SECS",
        "http.header_read_timeout_secs",
        http.header_read_timeout_secs
    ),
    var!(
        "BOOKCAL_HTTP_BODY_TIMEOUT_SECS",
        "http.body_timeout_secs",
        http.body_timeout_secs
    ),
    var!(
        "BOOKCAL_HTTP_KEEP_ALIVE_TIMEOUT_SECS",
        "http.keep_alive_timeout_secs",
        http.keep_alive_timeout_secs
    ),
    var!(
        "BOOKCAL_HTTP_SEND_TIMEOUT_SECS",
        "http.send_timeout_secs",
        http.send_timeout_secs
    ),
    var!(
        "BOOKCAL_HTTP_MAX_CONNECTIONS",
        "http.max_connections",
        http.max_connections
    ),
    var!(
        "BOOKCAL_HTTP_PROBE_CONNECTIONS",
        "http.probe_connections",
        http.probe_connections
    ),
    var!(
        "BOOKCAL_HTTP_MAX_BODY_BYTES",
        "http.max_body_bytes",
        http.max_body_bytes
    ),
    var!(
        "BOOKCAL_HTTP_MAX_URI_BYTES",
        "http.max_uri_bytes",
        http.max_uri_bytes
    ),
    var!(
        "BOOKCAL_HTTP_CLIENT_REQUESTS_PER_SEC",
        "http.client_requests_per_sec",
        http.client_requests_per_sec
    ),
    var!(
        "BOOKCAL_HTTP_CLIENT_BURST",
        "http.client_burst",
        http.client_burst
    ),
    var!(
        "BOOKCAL_HTTP_MAX_TRACKED_CLIENTS",
        "http.max_tracked_clients",
        http.max_tracked_clients
    ),
    var!(
        "BOOKCAL_HTTP_THROTTLE_HOLD_MS",
        "http.throttle_hold_ms",
        http.throttle_hold_ms
    ),
    var!(
        "BOOKCAL_HTTP_MAX_HELD_ANSWERS",
        "http.max_held_answers",
        http.max_held_answers
    ),
    var!(
        "BOOKCAL_HTTP_CLOSE_AFTER_REFUSALS",
        "http.close_after_refusals",
        http.close_after_refusals
    ),
    var!("BOOKCAL_HTTP_PROBE_LISTEN", "http.probe_listen", |s, v| {
        s.http.probe_listen = match v.trim() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|e: std::net::AddrParseError| e.to_string())?,
            ),
        }
    }),
    var!(
        "BOOKCAL_HTTP_TRUSTED_PROXIES",
        "http.trusted_proxies",
        |s, v| {
            s.http.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        }
    ),
    var!(
        "BOOKCAL_HTTP_METRICS_TOKEN",
        "http.metrics_token",
        |s, v| { s.http.metrics_token = Some(Secret::new(v)).filter(|t| !t.expose().is_empty()) }
    ),
    var!(
        "BOOKCAL_HTTP_METRICS_TOKEN_FILE",
        "http.metrics_token",
        |s, v| {
            s.http.metrics_token =
                Some(Secret::new(file_text(&v)?)).filter(|t| !t.expose().is_empty())
        }
    ),
    var!("BOOKCAL_GOOGLE_ROOT_URL", "google.root_url", |s, v| s
        .google
        .root_url =
        v),
    var!(
        "BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY",
        "google.service_account_key",
        |s, v| s.google.service_account_key =
            Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty())
    ),
    var!(
        "BOOKCAL_GOOGLE_IMPERSONATE",
        "google.impersonate",
        |s, v| { s.google.impersonate = Some(v).filter(|v| !v.is_empty()) }
    ),
    var!(
        "BOOKCAL_GOOGLE_PROVIDER_CREDENTIALS_DIR",
        "google.provider_credentials_dir",
        |s, v| s.google.provider_credentials_dir =
            Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty())
    ),
    var!(
        "BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE",
        "google.requests_per_minute",
        google.requests_per_minute
    ),
    var!(
        "BOOKCAL_GOOGLE_SHARE_BUSY_ONLY",
        "google.share_busy_only",
        google.share_busy_only
    ),
    var!(
        "BOOKCAL_GOOGLE_PUSH_ENABLED",
        "google.push_enabled",
        google.push_enabled
    ),
    var!("BOOKCAL_GOOGLE_PUSH_URL", "google.push_url", |s, v| {
        s.google.push_url = Some(v).filter(|v| !v.is_empty())
    }),
    var!(
        "BOOKCAL_GOOGLE_PUSH_TTL_SECS",
        "google.push_ttl_secs",
        google.push_ttl_secs
    ),
    var!(
        "BOOKCAL_GOOGLE_PUSH_RENEW_BEFORE_SECS",
        "google.push_renew_before_secs",
        google.push_renew_before_secs
    ),
    var!(
        "BOOKCAL_GOOGLE_PUSH_LOOK_SECS",
        "google.push_look_secs",
        google.push_look_secs
    ),
    var!(
        "BOOKCAL_GOOGLE_CALENDARS_PER_HOUR",
        "google.calendars_per_hour",
        google.calendars_per_hour
    ),
    var!(
        "BOOKCAL_GOOGLE_USAGE_LIMIT_PAUSE_SECS",
        "google.usage_limit_pause_secs",
        google.usage_limit_pause_secs
    ),
    var!(
        "BOOKCAL_SYNC_INTERVAL_SECS",
        "sync.interval_secs",
        sync.interval_secs
    ),
    var!(
        "BOOKCAL_SYNC_PUSH_INTERVAL_SECS",
        "sync.push_interval_secs",
        sync.push_interval_secs
    ),
    var!(
        "BOOKCAL_SYNC_HORIZON_DAYS",
        "sync.horizon_days",
        sync.horizon_days
    ),
    var!(
        "BOOKCAL_SYNC_CONCURRENCY",
        "sync.concurrency",
        sync.concurrency
    ),
    var!(
        "BOOKCAL_SYNC_MAX_DELETE_SHARE",
        "sync.max_delete_share",
        sync.max_delete_share
    ),
    var!(
        "BOOKCAL_SYNC_DEBOUNCE_MS",
        "sync.debounce_ms",
        sync.debounce_ms
    ),
    var!(
        "BOOKCAL_SYNC_MAX_BUSY_AGE_SECS",
        "sync.max_busy_age_secs",
        sync.max_busy_age_secs
    ),
    var!("BOOKCAL_FEEDS_CACHE_MB", "feeds.cache_mb", feeds.cache_mb),
    var!(
        "BOOKCAL_FEEDS_RENDER_THREADS",
        "feeds.render_threads",
        feeds.render_threads
    ),
];

/// `BOOKCAL_*` variables bookcal reads that are not settings: the settings file's
/// path (read by the command line).
pub const OTHER_VARS: &[&str] = &["BOOKCAL_CONFIG"];

/// Which unknown `BOOKCAL_*` variables [`unknown_variables`] warns about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Only those close to a setting's variable: misspellings. Every command warns
    /// about these; other tools' `BOOKCAL_*` variables (the test tools' paths) are
    /// close to none and pass silently.
    Typos,
    /// Every one (`config check`): the typos, and the others on one line.
    All,
}

/// A warning for each `BOOKCAL_*` variable in `vars` that bookcal does not read (a
/// misspelling is otherwise ignored silently), naming the closest known variable;
/// with [`Unknown::Typos`], only those close to one.
pub fn unknown_variables<'a>(
    vars: impl IntoIterator<Item = &'a str>,
    which: Unknown,
) -> Vec<String> {
    let known = || {
        ENV_VARS
            .iter()
            .map(|v| v.name)
            .chain(OTHER_VARS.iter().copied())
    };
    let mut unknown: Vec<&str> = vars
        .into_iter()
        .filter(|v| v.starts_with("BOOKCAL_") && !known().any(|k| k == *v))
        .collect();
    unknown.sort_unstable();
    let mut out = Vec::new();
    let mut far = Vec::new();
    for v in unknown {
        let closest = known()
            .min_by_key(|k| edit_distance(v, k))
            .filter(|k| edit_distance(v, k) <= (k.len() - "BOOKCAL_".len()) / 3);
        match closest {
            Some(k) => {
                let key = ENV_VARS
                    .iter()
                    .find(|e| e.name == k)
                    .map(|e| format!(" ({})", e.key))
                    .unwrap_or_default();
                out.push(format!(
                    "{v} is not a bookcal setting and is ignored; did you mean {k}{key}?"
                ));
            }
            None => far.push(v),
        }
    }
    // Those close to no setting (other tools' variables, most likely) share a line.
    if which == Unknown::All && !far.is_empty() {
        let (names, verb) = if far.len() == 1 {
            (far.join(""), "is not a bookcal setting and is")
        } else {
            (far.join(", "), "are not bookcal settings and are")
        };
        out.push(format!(
            "{names} {verb} ignored (`bookcal config example` lists the settings; each key's variable is BOOKCAL_ and its path in capitals, `.` as `_`)"
        ));
    }
    out
}

/// Levenshtein distance between two ASCII-ish names (by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Settings {
    /// Loads settings from an optional TOML file and the process environment.
    ///
    /// # Errors
    /// The file cannot be read or parsed, or a value is invalid (the error names the key).
    pub fn load(file: Option<&std::path::Path>) -> Result<Settings, ConfigError> {
        Self::load_with(file, &|k| std::env::var(k).ok())
    }

    /// Like [`Settings::load`] with an explicit environment (tests).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_with(
        file: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut s = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: p.to_path_buf(),
                    source,
                })?
            }
            None => Settings::default(),
        };
        for var in ENV_VARS {
            if let Some(v) = env(var.name) {
                (var.apply)(&mut s, v).map_err(|reason| invalid(var.key, var.name, reason))?;
            }
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks values that parse but make no sense.
    ///
    /// # Errors
    /// The first invalid value, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid(
                "log_format",
                "BOOKCAL_LOG_FORMAT",
                "must be \"text\" or \"json\"",
            ));
        }
        if url::Url::parse(&self.google.root_url).is_err() || !self.google.root_url.ends_with('/') {
            return Err(invalid(
                "google.root_url",
                "BOOKCAL_GOOGLE_ROOT_URL",
                "must be an absolute URL ending in /",
            ));
        }
        if let Some(u) = &self.public_url {
            if url::Url::parse(u).is_err() {
                return Err(invalid(
                    "public_url",
                    "BOOKCAL_PUBLIC_URL",
                    "must be an absolute URL",
                ));
            }
        }
        if let Some(u) = &self.google.push_url {
            let https = url::Url::parse(u).ok().map(|u| u.scheme() == "https");
            match https {
                None => {
                    return Err(invalid(
                        "google.push_url",
                        "BOOKCAL_GOOGLE_PUSH_URL",
                        "must be an absolute URL",
                    ))
                }
                Some(false) if self.google.is_googles() => {
                    return Err(invalid(
                        "google.push_url",
                        "BOOKCAL_GOOGLE_PUSH_URL",
                        "must be https (Google delivers only to https addresses)",
                    ))
                }
                Some(_) => {}
            }
        }
        if self.google.push_ttl_secs < 60
            || self.google.push_renew_before_secs >= self.google.push_ttl_secs
        {
            return Err(invalid(
                "google.push_renew_before_secs",
                "BOOKCAL_GOOGLE_PUSH_RENEW_BEFORE_SECS",
                "push_ttl_secs must be at least 60 and push_renew_before_secs below it",
            ));
        }
        if self.google.push_look_secs == 0 {
            return Err(invalid(
                "google.push_look_secs",
                "BOOKCAL_GOOGLE_PUSH_LOOK_SECS",
                "must be at least 1",
            ));
        }
        if self.google.requests_per_minute == 0 {
            return Err(invalid(
                "google.requests_per_minute",
                "BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.sync.concurrency == 0 {
            return Err(invalid(
                "sync.concurrency",
                "BOOKCAL_SYNC_CONCURRENCY",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.sync.max_delete_share) {
            return Err(invalid(
                "sync.max_delete_share",
                "BOOKCAL_SYNC_MAX_DELETE_SHARE",
                "must be between 0 and 1",
            ));
        }
        if self.sync.debounce_ms > 600_000 {
            return Err(invalid(
                "sync.debounce_ms",
                "BOOKCAL_SYNC_DEBOUNCE_MS",
                "must be at most 600000 (ten minutes)",
            ));
        }
        if self.token_salt.expose().len() < 8 {
            return Err(invalid(
                "token_salt",
                "BOOKCAL_TOKEN_SALT",
                "must be at least 8 characters",
            ));
        }
        if self.shutdown_timeout_secs == 0 {
            return Err(invalid(
                "shutdown_timeout_secs",
                "BOOKCAL_SHUTDOWN_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        if let Some(u) = &self.store_url {
            let u = u.expose();
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return Err(invalid(
                    "store_url",
                    "BOOKCAL_STORE_URL",
                    "must be a postgres:// URL",
                ));
            }
        }
        if self.store_max_connections == 0 {
            return Err(invalid(
                "store_max_connections",
                "BOOKCAL_STORE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if self.store_job_lease_secs < 3 {
            return Err(invalid(
                "store_job_lease_secs",
                "BOOKCAL_STORE_JOB_LEASE_SECS",
                "must be at least 3",
            ));
        }
        self.http.validate()?;
        if self.cache_mb == 0 {
            return Err(invalid(
                "cache_mb",
                "BOOKCAL_CACHE_MB",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_valid_and_env_overrides_them() {
        let s = Settings::load_with(None, &env(&[])).expect("defaults");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        let s = Settings::load_with(
            None,
            &env(&[
                ("BOOKCAL_LISTEN", "127.0.0.1:0"),
                ("BOOKCAL_DATA_DIR", "/tmp/x"),
                ("BOOKCAL_SYNC_INTERVAL_SECS", "60"),
            ]),
        )
        .expect("env");
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.sync.interval_secs, 60);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("BOOKCAL_LISTEN", "nope", "listen"),
            ("BOOKCAL_LOG_FORMAT", "xml", "log_format"),
            ("BOOKCAL_STORE_URL", "mysql://x/y", "store_url"),
            ("BOOKCAL_GOOGLE_ROOT_URL", "not a url", "google.root_url"),
            ("BOOKCAL_SYNC_CONCURRENCY", "0", "sync.concurrency"),
            (
                "BOOKCAL_SYNC_MAX_DELETE_SHARE",
                "2",
                "sync.max_delete_share",
            ),
            (
                "BOOKCAL_HTTP_HEADER_READ_TIMEOUT_SECS",
                "0",
                "http.header_read_timeout_secs",
            ),
            ("BOOKCAL_HTTP_MAX_CONNECTIONS", "0", "http.max_connections"),
            (
                "BOOKCAL_HTTP_KEEP_ALIVE_TIMEOUT_SECS",
                "11",
                "http.keep_alive_timeout_secs",
            ),
            (
                "BOOKCAL_HTTP_PROBE_CONNECTIONS",
                "0",
                "http.probe_connections",
            ),
            ("BOOKCAL_HTTP_MAX_BODY_BYTES", "10", "http.max_body_bytes"),
            ("BOOKCAL_HTTP_MAX_URI_BYTES", "100000", "http.max_uri_bytes"),
            ("BOOKCAL_HTTP_METRICS_TOKEN", "short", "http.metrics_token"),
            ("BOOKCAL_HTTP_CLIENT_BURST", "0", "http.client_burst"),
            (
                "BOOKCAL_HTTP_THROTTLE_HOLD_MS",
                "60000",
                "http.throttle_hold_ms",
            ),
            (
                "BOOKCAL_HTTP_TRUSTED_PROXIES",
                "10.0.0.0/33",
                "http.trusted_proxies",
            ),
            ("BOOKCAL_HTTP_PROBE_LISTEN", "nowhere", "http.probe_listen"),
        ];
        for (k, v, key) in cases {
            let err = Settings::load_with(None, &env(&[(k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Settings::load_with(None, &env(&[("BOOKCAL_TOKEN_SALT", "super-secret-salt")]))
            .expect("ok");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("super-secret-salt"));
        assert!(dbg.contains("[redacted]"));
    }

    /// Every leaf key of the settings, as `a.b` paths.
    fn leaf_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_keys(v, &path, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    /// Every key, the optional ones (unset by default) included.
    fn all_keys() -> Vec<String> {
        let all = Settings {
            public_url: Some("https://x.example".into()),
            store_url: Some(Secret::new("postgres://db.example/bookcal")),
            http: HttpSettings {
                metrics_token: Some(Secret::new("a-metrics-token-of-length")),
                probe_listen: Some(([127, 0, 0, 1], 9).into()),
                trusted_proxies: vec!["10.0.0.1".into()],
                ..HttpSettings::default()
            },
            google: GoogleSettings {
                service_account_key: Some("/k.json".into()),
                impersonate: Some("u@example.org".into()),
                push_url: Some("https://bookcal.example.org/hooks/google".into()),
                provider_credentials_dir: Some("/etc/bookcal/providers".into()),
                ..GoogleSettings::default()
            },
            ..Settings::default()
        };
        let mut keys = Vec::new();
        leaf_keys(&as_toml(&all), "", &mut keys);
        keys
    }

    fn as_toml(s: &Settings) -> toml::Value {
        toml::Value::try_from(s).expect("settings serialise")
    }

    #[test]
    fn the_example_file_parses_to_exactly_the_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("bookcal.toml");
        std::fs::write(&p, EXAMPLE_TOML).expect("write");
        let s = Settings::load_with(Some(&p), &env(&[])).expect("the example parses");
        assert_eq!(as_toml(&s), as_toml(&Settings::default()));
    }

    /// A default as the README's settings table writes it.
    fn documented(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_readme_documents_the_defaults_the_code_has() {
        let readme = include_str!("../README.md");
        let defaults = as_toml(&Settings::default());
        let keys = all_keys();
        let mut checked = Vec::new();
        for line in readme.lines() {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, key, _env, default, ..] = cols.as_slice() else {
                continue;
            };
            let Some(key) = key.strip_prefix('`').and_then(|k| k.strip_suffix('`')) else {
                continue;
            };
            if !keys.iter().any(|k| k == key) {
                continue;
            }
            // A literal default: `value`, maybe followed by "(what it means)". Others
            // ("none", "built-in", a derived address) are words, not values.
            let Some((literal, rest)) = default.strip_prefix('`').and_then(|d| d.split_once('`'))
            else {
                continue;
            };
            if !(rest.is_empty() || rest.starts_with(" (")) {
                continue;
            }
            let code = key
                .split('.')
                .try_fold(&defaults, |v, part| v.get(part))
                .map(documented);
            assert_eq!(
                code.as_deref(),
                Some(literal),
                "README documents `{key}` = {literal}"
            );
            checked.push(key.to_string());
        }
        assert!(
            checked.iter().any(|k| k == "google.requests_per_minute"),
            "the README documents the request budget: {checked:?}"
        );
        assert!(checked.len() >= 20, "{checked:?}");
    }

    #[test]
    fn the_example_file_mentions_every_key() {
        let keys = all_keys();
        let mut section = String::new();
        let mut listed = Vec::new();
        for line in EXAMPLE_TOML.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = format!("{name}.");
            } else if let Some((k, _)) = line.split_once(" = ") {
                listed.push(format!("{section}{k}"));
            }
        }
        for k in &keys {
            assert!(listed.contains(k), "{k} is missing from the example");
        }
    }

    #[test]
    fn every_key_has_an_environment_override() {
        let keys = all_keys();
        let salt = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(salt.path(), "salt-from-a-file\n").expect("write");
        let salt_path = salt.path().display().to_string();
        let values: HashMap<&str, &str> = [
            ("listen", "127.0.0.1:9"),
            ("data_dir", "/srv/x"),
            ("store_url", "postgres://bookcal@db.example/bookcal"),
            ("store_max_connections", "4"),
            ("store_job_lease_secs", "10"),
            ("public_url", "https://bookcal.example.org"),
            ("token_salt", "a-salt-from-env"),
            ("cache_mb", "7"),
            ("log_format", "json"),
            ("shutdown_timeout_secs", "5"),
            ("http.header_read_timeout_secs", "20"),
            ("http.body_timeout_secs", "4"),
            ("http.keep_alive_timeout_secs", "4"),
            ("http.send_timeout_secs", "6"),
            ("http.max_connections", "64"),
            ("http.probe_connections", "2"),
            ("http.max_body_bytes", "65536"),
            ("http.max_uri_bytes", "4096"),
            ("http.metrics_token", "metrics-token-from-env"),
            ("http.probe_listen", "127.0.0.1:9"),
            ("http.client_requests_per_sec", "0"),
            ("http.client_burst", "5"),
            ("http.max_tracked_clients", "100"),
            ("http.throttle_hold_ms", "250"),
            ("http.max_held_answers", "16"),
            ("http.close_after_refusals", "0"),
            ("http.trusted_proxies", "10.0.0.0/8, 192.0.2.1"),
            ("google.root_url", "http://127.0.0.1:1/"),
            ("google.service_account_key", "/etc/key.json"),
            ("google.impersonate", "cal@example.org"),
            ("google.provider_credentials_dir", "/srv/providers"),
            ("google.requests_per_minute", "60"),
            ("google.share_busy_only", "true"),
            ("google.push_enabled", "false"),
            (
                "google.push_url",
                "https://bookcal.example.org/hooks/google",
            ),
            ("google.push_ttl_secs", "1209600"),
            ("google.push_renew_before_secs", "600"),
            ("google.push_look_secs", "5"),
            ("google.calendars_per_hour", "5"),
            ("google.usage_limit_pause_secs", "60"),
            ("sync.interval_secs", "1"),
            ("sync.push_interval_secs", "7200"),
            ("sync.horizon_days", "2"),
            ("sync.concurrency", "3"),
            ("sync.max_delete_share", "0.25"),
            ("feeds.cache_mb", "8"),
            ("feeds.render_threads", "3"),
            ("sync.debounce_ms", "250"),
            ("sync.max_busy_age_secs", "600"),
        ]
        .into_iter()
        .collect();
        let defaults = as_toml(&Settings::default());
        for key in keys {
            let name = format!("BOOKCAL_{}", key.replace('.', "_").to_uppercase());
            let value = values
                .get(key.as_str())
                .unwrap_or_else(|| panic!("no test value for {key}"));
            let s = Settings::load_with(None, &env(&[(&name, value)]))
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
            let got = as_toml(&s);
            let pick =
                |v: &toml::Value| key.split('.').try_fold(v.clone(), |v, k| v.get(k).cloned());
            assert_ne!(pick(&got), pick(&defaults), "{name} changed nothing");
        }
        let s = Settings::load_with(None, &env(&[("BOOKCAL_TOKEN_SALT_FILE", &salt_path)]))
            .expect("salt file");
        assert_eq!(s.token_salt.expose(), "salt-from-a-file");
    }

    #[test]
    fn every_setting_has_its_variable_in_the_one_table_and_nothing_else_is_read() {
        let keys = all_keys();
        for key in &keys {
            let name = format!("BOOKCAL_{}", key.replace('.', "_").to_uppercase());
            assert!(
                ENV_VARS.iter().any(|v| v.name == name && v.key == key),
                "{key}: {name} is not in ENV_VARS"
            );
        }
        for v in ENV_VARS {
            assert!(keys.iter().any(|k| k == v.key), "{} sets no key", v.name);
            let plain = format!("BOOKCAL_{}", v.key.replace('.', "_").to_uppercase());
            assert!(
                v.name == plain || v.name == format!("{plain}_FILE"),
                "{} is not named after {}",
                v.name,
                v.key
            );
        }
        // Loading asks for exactly the table's variables.
        let asked = std::sync::Mutex::new(Vec::new());
        Settings::load_with(None, &|k| {
            asked.lock().expect("lock").push(k.to_string());
            None
        })
        .expect("defaults");
        let mut asked = asked.into_inner().expect("lock");
        asked.sort();
        let mut table: Vec<String> = ENV_VARS.iter().map(|v| v.name.to_string()).collect();
        table.sort();
        assert_eq!(asked, table);
        for which in [Unknown::Typos, Unknown::All] {
            assert!(unknown_variables(ENV_VARS.iter().map(|v| v.name), which).is_empty());
            assert!(unknown_variables(OTHER_VARS.iter().copied(), which).is_empty());
        }
    }

    #[test]
    fn unknown_variables_are_named_with_the_closest_known_one() {
        let cases: [(&str, Option<&str>); 8] = [
            ("BOOKCAL_LISTEN", None),
            ("BOOKCAL_CONFIG", None),
            ("PATH", None),
            (
                "BOOKCAL_SYNC_INTERVAL_SEC",
                Some("did you mean BOOKCAL_SYNC_INTERVAL_SECS (sync.interval_secs)?"),
            ),
            (
                "BOOKCAL_LISTN",
                Some("did you mean BOOKCAL_LISTEN (listen)?"),
            ),
            (
                "BOOKCAL_GOOGLE_SERVICE_ACOUNT_KEY",
                Some(
                    "did you mean BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY (google.service_account_key)?",
                ),
            ),
            (
                "BOOKCAL_TOKEN_SALT_FIL",
                Some("did you mean BOOKCAL_TOKEN_SALT_FILE (token_salt)?"),
            ),
            (
                "BOOKCAL_PYTHON",
                Some("`bookcal config example` lists the settings"),
            ),
        ];
        for (var, want) in cases {
            let got = unknown_variables([var], Unknown::All);
            match want {
                None => assert!(got.is_empty(), "{var}: {got:?}"),
                Some(w) => {
                    assert_eq!(got.len(), 1, "{var}: {got:?}");
                    assert!(got[0].starts_with(&format!("{var} is not a bookcal setting")));
                    assert!(got[0].contains(w), "{var}: {}", got[0]);
                }
            }
            // Every command warns about the typos alone.
            let typos = unknown_variables([var], Unknown::Typos);
            let typo = want.is_some_and(|w| w.starts_with("did you mean"));
            assert_eq!(typos.len(), usize::from(typo), "{var}: {typos:?}");
        }
    }

    #[test]
    fn variables_close_to_no_setting_share_one_warning() {
        let vars = ["BOOKCAL_PYTHON", "BOOKCAL_KHAL", "BOOKCAL_LISTN"];
        let got = unknown_variables(vars, Unknown::All);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("BOOKCAL_LISTN is not a bookcal setting"));
        assert!(got[1]
            .starts_with("BOOKCAL_KHAL, BOOKCAL_PYTHON are not bookcal settings and are ignored"));
        // Other tools' variables pass silently outside `config check`.
        let got = unknown_variables(vars, Unknown::Typos);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("BOOKCAL_LISTN is not a bookcal setting"));
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("abc", "ab", 1),
            ("ab", "abc", 1),
            ("abc", "abd", 1),
            ("kitten", "sitting", 3),
            ("", "four", 4),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "lisen = \"127.0.0.1:1\"\n").expect("write");
        let err = Settings::load_with(Some(&p), &env(&[]))
            .err()
            .map(|e| format!("{e}: {:?}", std::error::Error::source(&e)));
        assert!(err.unwrap_or_default().contains("lisen"));
    }
}
