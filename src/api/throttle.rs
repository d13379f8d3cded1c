//! Who the client is, and how fast it may ask without credentials.
//!
//! **The client** of a request is its peer's IP address (IPv6 reduced to its /64,
//! IPv4-mapped IPv6 to IPv4: [`Client`]). Only when the peer is one of
//! `http.trusted_proxies` is `X-Forwarded-For` read: walking it from the nearest hop,
//! the first address that is not a trusted proxy is the client (so a client cannot
//! choose its own key by sending the header, and a chain of trusted proxies is seen
//! through). The client is put in the request's extensions for the feeds, whose
//! renders are shared fairly between clients ([`crate::feeds::gate`]: one render at
//! a time per client, a few more waiting, so one client never holds every render
//! slot).
//!
//! **The rate**: requests without credentials (public feeds, pages, and API calls
//! with neither an `Authorization` header nor an `x-auth-token` query parameter, the
//! two forms the API accepts) take a token from their client's bucket
//! (`http.client_requests_per_sec`, `http.client_burst`); an empty bucket is answered
//! 429 in DRF's shape with `Retry-After`, before any store access or render. Not
//! counted: token feeds with a valid token (the secret token is their credential;
//! their renders still share the fair render slots), API calls with credentials
//! (their owner is known and checked; credentials that open no user are counted
//! after the answer, like a guessed feed token; credentials on a feed or a
//! page exempt nothing), and the probes and scrapes (`/health`,
//! `/ready`, `/metrics`), so anonymous flooding from the owner's own address cannot
//! shut the owner out.
//!
//! **Token guessing**: a token feed request whose token opens no feed (malformed,
//! unknown or revoked) takes a token from its client's bucket after the lookup, and
//! is answered 429 (through the tarpit below) instead of 404 once the bucket is
//! empty; a valid token is never counted nor refused, so the owner's calendar app
//! keeps its feed even from an address that floods. The lookup still runs for a
//! refused guess (it is what tells a valid token from an invalid one, and a valid
//! one must be served), so what bounds a guesser over its allowance is the tarpit:
//! about one guess a second per held connection, at most `http.max_held_answers`
//! held at once, and a new connection for every guess past that.
//!
//! **Clients that ignore `Retry-After`** (the tarpit, [`HoldPolicy`]): a 429 is held
//! for `http.throttle_hold_ms` (never longer than its own `Retry-After`) before it
//! is sent, so a client that asks again at once gets about one answer a second per
//! connection instead of thousands of cheap ones. At most `http.max_held_answers`
//! are held at once (past that a 429 is sent at once with `Connection: close`,
//! making the client connect again), and a client refused
//! `http.close_after_refusals` times in a row gets `Connection: close` on its 429s so
//! a keep-alive connection cannot loop on them. Holding costs a timer and the
//! connection it is on (served connections, never the probe reserve; at most half of
//! `http.max_connections` are held, whatever the setting says); shutdown sends every held answer
//! at once ([`ClientLimits::release_holds`]) so it never waits on them. Probes,
//! scrapes, requests with credentials and valid token feeds are never refused, so
//! never held. `/metrics` counts refusals, held answers and invalid tokens (no
//! identifiers: aggregate counters only).
//!
//! The buckets are governor's GCRA limiter (one timestamp per client) over a map
//! bounded by `http.max_tracked_clients` ([`Bounded`]): when it is full, clients not
//! in it share one extra bucket, and buckets that are as good as new (refilled) are
//! dropped at most once a second, so memory stays bounded however many addresses a
//! flood comes from. Refused clients are remembered (their refusals in a row, until
//! their next admitted request) in a second map under the same bound.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::auth::Presented;
use super::AppState;
use crate::config::{parse_network, HttpSettings};
use crate::feeds::Client;
use crate::metrics::{Exposition, Observed};

/// The per-client buckets: a governor keyed limiter over [`Bounded`].
type Limiter = RateLimiter<Client, Bounded, DefaultClock>;

/// How often a full map is swept of refilled buckets, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A refused request: how long until its client may ask again, and how many of its
/// client's requests in a row were refused, this one included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub wait: Duration,
    pub streak: u32,
}

/// What happens to a 429 ([`HoldPolicy::plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// How long the answer is held before it is sent (zero: at once).
    pub hold: Duration,
    /// Whether it closes its connection.
    pub close: bool,
}

/// The tarpit's settings (`http.throttle_hold_ms`, `http.close_after_refusals`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldPolicy {
    pub max_hold: Duration,
    pub close_after: u32,
}

impl HoldPolicy {
    /// How long `r`'s answer would be held: the limit, never past its `Retry-After`.
    pub fn hold_for(&self, r: Refusal) -> Duration {
        let (retry_after, _) = throttled_detail(r.wait);
        self.max_hold.min(Duration::from_secs(retry_after))
    }

    /// What to do with `r`'s answer, given whether a held-answer slot is free: held
    /// when it can be; `Connection: close` when its client keeps being refused, or
    /// when it should have been held but the slots are full (the client must then
    /// connect again before its next try).
    pub fn plan(&self, r: Refusal, slot_free: bool) -> Plan {
        let hold = self.hold_for(r);
        let again = self.close_after > 0 && r.streak >= self.close_after;
        if hold.is_zero() || slot_free {
            Plan { hold, close: again }
        } else {
            Plan {
                hold: Duration::ZERO,
                close: true,
            }
        }
    }
}

/// A refused client: when its bucket has a token again, and its refusals in a row.
#[derive(Clone, Copy, Debug)]
struct Empty {
    until: Instant,
    streak: u32,
}

/// Refused clients (until their next admitted request), bounded like the buckets.
#[derive(Default)]
struct EmptyBuckets {
    map: HashMap<Client, Empty>,
    last_sweep: Option<Instant>,
}

impl EmptyBuckets {
    /// Records `e` for `client`; when the map is full, entries that have refilled
    /// are dropped first (at most once per [`SWEEP_EVERY`]), and a client that does
    /// not fit is not recorded.
    fn put(&mut self, client: Client, e: Empty, max: usize, now: Instant) {
        if self.map.len() >= max && !self.map.contains_key(&client) {
            if self
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
            {
                self.last_sweep = Some(now);
                self.map.retain(|_, e| e.until > now);
                self.map.shrink_to_fit();
            }
            if self.map.len() >= max {
                return;
            }
        }
        self.map.insert(client, e);
    }
}

/// Throttle counts since start, read by `/metrics`.
#[derive(Debug, Default)]
struct Stats {
    refused: AtomicU64,
    invalid_tokens: AtomicU64,
    held: AtomicU64,
    holding: AtomicU64,
    slots_full: AtomicU64,
    closed: AtomicU64,
}

/// Counts one held answer while it lives.
struct Holding<'a>(&'a AtomicU64);

impl<'a> Holding<'a> {
    fn new(n: &'a AtomicU64) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Holding(n)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Client identification, the anonymous request rate and the tarpit (one per
/// process).
pub struct ClientLimits {
    trusted: Vec<IpNet>,
    limiter: Option<Limiter>,
    max_clients: usize,
    last_sweep: Mutex<Option<Instant>>,
    empty: Mutex<EmptyBuckets>,
    policy: HoldPolicy,
    held: Semaphore,
    release: CancellationToken,
    stats: Stats,
}

impl ClientLimits {
    /// From the `http` settings (invalid trusted-proxy entries, refused by
    /// [`HttpSettings::validate`], are skipped).
    pub fn new(http: &HttpSettings) -> Self {
        let limiter = NonZeroU32::new(http.client_requests_per_sec).map(|rate| {
            let burst = NonZeroU32::new(http.client_burst).unwrap_or(rate);
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                Bounded::new(http.max_tracked_clients),
                DefaultClock::default(),
            )
        });
        ClientLimits {
            trusted: http
                .trusted_proxies
                .iter()
                .filter_map(|p| parse_network(p))
                .collect(),
            limiter,
            max_clients: http.max_tracked_clients.max(1),
            last_sweep: Mutex::new(None),
            empty: Mutex::new(EmptyBuckets::default()),
            policy: HoldPolicy {
                max_hold: Duration::from_millis(http.throttle_hold_ms),
                close_after: http.close_after_refusals,
            },
            // Held answers keep their connections: never more than half the cap.
            held: Semaphore::new(
                http.max_held_answers
                    .min(http.max_connections / 2)
                    .min(Semaphore::MAX_PERMITS),
            ),
            release: CancellationToken::new(),
            stats: Stats::default(),
        }
    }

    /// The client of a request from `peer` with these headers (see the module docs).
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Client {
        let Some(peer) = peer else {
            return Client::UNKNOWN;
        };
        let mut ip = peer.ip().to_canonical();
        if !self.is_trusted(ip) {
            return Client::from_ip(ip);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            // An unreadable hop ends the walk: the last proxy that wrote it is the
            // client (its requests share one allowance).
            let Some(addr) = parse_hop(hop) else { break };
            ip = addr;
            if !self.is_trusted(addr) {
                break;
            }
        }
        Client::from_ip(ip)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Takes one request from `client`'s bucket.
    ///
    /// # Errors
    /// The refusal, when the client is over its rate.
    pub fn admit(&self, client: Client) -> Result<(), Refusal> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= self.max_clients {
            self.sweep(limiter);
        }
        match limiter.check_key(&client) {
            Ok(()) => {
                self.admitted(client);
                Ok(())
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Err(self.refused(client, wait))
            }
        }
    }

    /// An admitted request ends its client's refusals in a row.
    fn admitted(&self, client: Client) {
        let mut empty = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        if !empty.map.is_empty() {
            empty.map.remove(&client);
        }
    }

    fn refused(&self, client: Client, wait: Duration) -> Refusal {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut empty = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        let streak = empty
            .map
            .get(&client)
            .map_or(0, |e| e.streak)
            .saturating_add(1);
        let e = Empty {
            until: now + wait,
            streak,
        };
        empty.put(client, e, self.max_clients, now);
        Refusal { wait, streak }
    }

    /// A token feed request whose token opened no feed: counted against its
    /// client's rate.
    ///
    /// # Errors
    /// The refusal, when the client is over its rate.
    pub fn invalid_token(&self, client: Client) -> Result<(), Refusal> {
        self.stats.invalid_tokens.fetch_add(1, Ordering::Relaxed);
        self.admit(client)
    }

    /// The answer to `r`: a 429, held and closing as [`HoldPolicy::plan`] says.
    pub async fn answer(&self, r: Refusal) -> Response {
        let wants_hold = !self.policy.hold_for(r).is_zero();
        let slot = if wants_hold {
            self.held.try_acquire().ok()
        } else {
            None
        };
        if wants_hold && slot.is_none() {
            self.stats.slots_full.fetch_add(1, Ordering::Relaxed);
        }
        let plan = self.policy.plan(r, slot.is_some());
        let mut close = plan.close;
        let mut held_for = Duration::ZERO;
        if !plan.hold.is_zero() {
            self.stats.held.fetch_add(1, Ordering::Relaxed);
            let _holding = Holding::new(&self.stats.holding);
            let started = tokio::time::Instant::now();
            tokio::select! {
                () = tokio::time::sleep(plan.hold) => {}
                // Shutdown: answer now, and close (the server is going away).
                () = self.release.cancelled() => close = true,
            }
            held_for = started.elapsed();
        }
        drop(slot);
        let mut response = throttled(r.wait.saturating_sub(held_for));
        if close {
            self.stats.closed.fetch_add(1, Ordering::Relaxed);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// Sends every held answer now and holds no more (graceful shutdown).
    pub fn release_holds(&self) {
        self.release.cancel();
    }

    /// Forgets refilled buckets (at most once per [`SWEEP_EVERY`]).
    fn sweep(&self, limiter: &Limiter) {
        let now = Instant::now();
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    /// Clients with a bucket now (tests: the map stays bounded).
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Requests answered 429 since start.
    pub fn throttled(&self) -> u64 {
        self.stats.refused.load(Ordering::Relaxed)
    }

    /// 429s being held now.
    pub fn holding(&self) -> u64 {
        self.stats.holding.load(Ordering::Relaxed)
    }
}

impl Observed for ClientLimits {
    fn write_metrics(&self, out: &mut Exposition) {
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        for (name, kind, help, value) in [
            (
                "bookcal_http_throttled_total",
                "counter",
                "Requests answered 429 because their client was over its anonymous request rate (anonymous requests, and token feeds with a token that opens no feed).",
                n(&s.refused),
            ),
            (
                "bookcal_http_throttled_held_total",
                "counter",
                "429s held before they were sent (http.throttle_hold_ms).",
                n(&s.held),
            ),
            (
                "bookcal_http_throttled_held",
                "gauge",
                "429s being held now (at most http.max_held_answers).",
                n(&s.holding),
            ),
            (
                "bookcal_http_throttled_unheld_total",
                "counter",
                "429s sent at once with Connection: close because http.max_held_answers were held already.",
                n(&s.slots_full),
            ),
            (
                "bookcal_http_throttled_closed_total",
                "counter",
                "429s that closed their connection (a client refused again and again, no free hold slot, or shutdown).",
                n(&s.closed),
            ),
            (
                "bookcal_feed_invalid_tokens_total",
                "counter",
                "Token feed requests whose token opened no feed (malformed, unknown or revoked); each counts against its client's anonymous rate.",
                n(&s.invalid_tokens),
            ),
        ] {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// governor's concurrent map of buckets, holding at most `max` clients: when it is
/// full, a client not in it uses the shared bucket of [`Client::UNKNOWN`].
pub struct Bounded {
    map: DashMapStateStore<Client>,
    max: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Bounded {
            map: DashMapStateStore::default(),
            max: max.max(1),
        }
    }
}

impl StateStore for Bounded {
    type Key = Client;

    fn measure_and_replace<T, F, E>(&self, key: &Client, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let key = if self.map.len() >= self.max && !self.map.contains_key(key) {
            &Client::UNKNOWN
        } else {
            key
        };
        StateStore::measure_and_replace(&self.map, key, f)
    }
}

impl ShrinkableKeyedStateStore<Client> for Bounded {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The probes and the scrape: never counted, so never refused (the OpenAPI document
/// gives every other operation its 429).
pub const NEVER_COUNTED: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Whether a request takes a token from its client's bucket before it is answered:
/// not a token feed, a probe or a scrape, and not an API call with credentials
/// (those are checked by the API; credentials that open nothing are counted after
/// the answer, [`Authenticated`]). Only the API reads credentials (the
/// `Authorization` header or the `x-auth-token` query parameter): a public feed or
/// a page with either is as anonymous as without, so made-up credentials cannot
/// take a flood past the rate.
fn counted(req: &Request, credentials: bool) -> bool {
    let path = req.uri().path();
    !(path.starts_with(super::feeds::TOKEN_PATH) || NEVER_COUNTED.contains(&path) || credentials)
}

/// The credentials of an API call, in either form the API accepts (checked by the
/// API itself); `None` for anything else.
fn api_credentials(req: &Request) -> Option<Presented> {
    if !req.uri().path().starts_with("/api/") {
        return None;
    }
    Presented::of(req.headers(), req.uri().query())
}

/// Set by the API's authentication ([`super::auth::Caller`]) when a request's
/// credentials open a user; [`limit`] puts one on every uncounted API call with
/// credentials; after the answer the client is charged when it was never set and
/// the credentials open no user (refused with 401, or a route that never read them).
#[derive(Clone, Default)]
pub struct Authenticated(Arc<AtomicBool>);

impl Authenticated {
    /// The request's credentials opened a user.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The middleware: names the client (an extension the feeds read), refuses a
/// counted request over its client's rate with a 429, and answers every refusal
/// (its own, and those handlers mark with [`refused`]) through the tarpit.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = state.clients.client(peer, req.headers());
    req.extensions_mut().insert(client);
    let credentials = api_credentials(&req);
    if counted(&req, credentials.is_some()) {
        if let Err(r) = state.clients.admit(client) {
            return state.clients.answer(r).await;
        }
    }
    let authenticated = Authenticated::default();
    if credentials.is_some() {
        req.extensions_mut().insert(authenticated.clone());
    }
    let mut response = next.run(req).await;
    if let Some(r) = response.extensions_mut().remove::<Refusal>() {
        return state.clients.answer(r).await;
    }
    let charged = match &credentials {
        Some(_) if authenticated.is_set() => false,
        Some(_) if response.status() == StatusCode::UNAUTHORIZED => true,
        // The route never read them (the API root, the schema, a 404 or 405):
        // charged unless they open a user.
        Some(c) => !c.open_a_user(&state).await,
        None => false,
    };
    if charged {
        if let Err(r) = state.clients.invalid_token(client) {
            return state.clients.answer(r).await;
        }
    }
    response
}

/// A handler's 429 for `r`, marked so that [`limit`] answers it through the tarpit.
pub fn refused(r: Refusal) -> Response {
    let mut response = throttled(r.wait);
    response.extensions_mut().insert(r);
    response
}

/// Whole seconds to wait (rounded up, at least one) and DRF's `detail` text.
fn throttled_detail(wait: Duration) -> (u64, String) {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let unit = if secs == 1 { "second" } else { "seconds" };
    (
        secs,
        format!("Request was throttled. Expected available in {secs} {unit}."),
    )
}

/// DRF's throttled answer: 429, `Retry-After` in whole seconds (at least one), and
/// its `detail` text.
pub fn throttled(wait: Duration) -> Response {
    let (secs, detail) = throttled_detail(wait);
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(super::render::Detail::new(&detail)),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, max: usize, trusted: &[&str]) -> ClientLimits {
        ClientLimits::new(&HttpSettings {
            client_requests_per_sec: rate,
            client_burst: burst,
            max_tracked_clients: max,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..HttpSettings::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_another() {
        let l = limits(10, 10, 10, &["10.0.0.0/8", "192.0.2.1"]);
        // (peer, X-Forwarded-For headers, the client)
        let cases: [(&str, &[&str], &str); 9] = [
            // An untrusted peer's header is ignored.
            ("198.51.100.7", &["203.0.113.9"], "198.51.100.7"),
            ("198.51.100.7", &[], "198.51.100.7"),
            // A trusted proxy names the client.
            ("10.1.2.3", &["203.0.113.9"], "203.0.113.9"),
            ("192.0.2.1", &["203.0.113.9:4711"], "203.0.113.9"),
            // Entries the client wrote itself (left of the first untrusted) are ignored.
            ("10.1.2.3", &["1.1.1.1, 203.0.113.9"], "203.0.113.9"),
            // A chain of trusted proxies is seen through, over several headers too.
            (
                "10.1.2.3",
                &["203.0.113.9, 10.9.9.9", "192.0.2.1"],
                "203.0.113.9",
            ),
            // Unreadable: the proxy that wrote it is the client.
            ("10.1.2.3", &["203.0.113.9, junk"], "10.1.2.3"),
            // No header, or only proxies: the nearest trusted address.
            ("10.1.2.3", &[], "10.1.2.3"),
            ("10.1.2.3", &["10.4.4.4"], "10.4.4.4"),
        ];
        for (peer, forwarded, want) in cases {
            let mut headers = HeaderMap::new();
            for f in forwarded {
                headers.append("x-forwarded-for", HeaderValue::from_static(f));
            }
            let got = l.client(Some(SocketAddr::new(ip(peer), 1)), &headers);
            assert_eq!(got, Client::from_ip(ip(want)), "{peer} {forwarded:?}");
        }
        // IPv4-mapped peers are matched against IPv4 networks; IPv6 by its /64.
        let mapped = SocketAddr::new(ip("::ffff:10.0.0.5"), 1);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("2001:db8::1"));
        assert_eq!(
            l.client(Some(mapped), &h),
            Client::from_ip(ip("2001:db8::2"))
        );
    }

    #[test]
    fn a_client_over_its_burst_waits_while_others_go_on() {
        let l = limits(1, 3, 100, &[]);
        let a = Client::from_ip(ip("203.0.113.1"));
        let b = Client::from_ip(ip("203.0.113.2"));
        for _ in 0..3 {
            assert_eq!(l.admit(a), Ok(()));
        }
        let wait = l.admit(a).expect_err("over the burst").wait;
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(l.admit(b), Ok(()));
        assert_eq!(l.throttled(), 1);
        // Rate 0 is no limit.
        let off = limits(0, 1, 1, &[]);
        for _ in 0..1000 {
            assert_eq!(off.admit(a), Ok(()));
        }
    }

    #[test]
    fn many_distinct_clients_share_one_bucket_past_the_bound() {
        let l = limits(1, 2, 50, &[]);
        for n in 0..10_000u32 {
            let c = Client::from_ip(IpAddr::from(n.to_be_bytes()));
            let _ = l.admit(c);
        }
        // The bound, plus the shared bucket.
        assert!(l.tracked() <= 51, "{} tracked", l.tracked());
        // Past the bound, new clients drew from the shared bucket: nearly all refused.
        assert!(l.throttled() > 9_000, "{} throttled", l.throttled());
        // A client that was tracked keeps its own bucket.
        let first = Client::from_ip(IpAddr::from(0u32.to_be_bytes()));
        assert_eq!(l.admit(first), Ok(()));
    }

    #[test]
    fn the_429_has_drfs_text_and_whole_seconds() {
        for (wait, secs, text) in [
            (Duration::from_millis(1), "1", "1 second."),
            (Duration::from_millis(1500), "2", "2 seconds."),
            (Duration::ZERO, "1", "1 second."),
        ] {
            let r = throttled(wait);
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                r.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some(secs)
            );
            let (_, detail) = throttled_detail(wait);
            assert_eq!(
                detail,
                format!("Request was throttled. Expected available in {text}")
            );
        }
    }

    #[test]
    fn a_refusal_is_held_within_its_retry_after_and_closes_when_it_must() {
        let ms = Duration::from_millis;
        let refusal = |wait_ms, streak| Refusal {
            wait: ms(wait_ms),
            streak,
        };
        let policy = |hold_ms, close_after| HoldPolicy {
            max_hold: ms(hold_ms),
            close_after,
        };
        let plan = |hold_ms, close| Plan {
            hold: ms(hold_ms),
            close,
        };
        // (policy, refusal, a hold slot is free, the plan)
        let cases = [
            // Held for the limit, which is within Retry-After (1 s for a short wait).
            (policy(1000, 3), refusal(100, 1), true, plan(1000, false)),
            (policy(250, 3), refusal(100, 2), true, plan(250, false)),
            // Never longer than Retry-After: a 1.2 s wait is Retry-After 2.
            (policy(5000, 3), refusal(1200, 1), true, plan(2000, false)),
            (policy(5000, 3), refusal(100, 1), true, plan(1000, false)),
            // Refused again and again: still held, and the connection closes.
            (policy(1000, 3), refusal(100, 3), true, plan(1000, true)),
            (policy(1000, 3), refusal(100, 40), true, plan(1000, true)),
            // No free slot: answered at once, and the connection closes.
            (policy(1000, 3), refusal(100, 1), false, plan(0, true)),
            // No hold configured: at once; closing only for repeated refusals.
            (policy(0, 3), refusal(100, 1), false, plan(0, false)),
            (policy(0, 3), refusal(100, 3), false, plan(0, true)),
            // Closing turned off.
            (policy(0, 0), refusal(100, 1000), true, plan(0, false)),
            (policy(1000, 0), refusal(100, 1000), true, plan(1000, false)),
        ];
        for (policy, refusal, free, want) in cases {
            assert_eq!(
                policy.plan(refusal, free),
                want,
                "{policy:?} {refusal:?} free={free}"
            );
        }
    }

    #[test]
    fn refusals_in_a_row_are_counted_per_client_until_one_is_admitted() {
        let l = limits(1, 1, 100, &[]);
        let a = Client::from_ip(ip("203.0.113.1"));
        let b = Client::from_ip(ip("203.0.113.2"));
        assert_eq!(l.admit(a), Ok(()));
        assert_eq!(l.admit(b), Ok(()));
        let streaks: Vec<u32> = (0..3)
            .map(|_| l.admit(a).expect_err("over").streak)
            .collect();
        assert_eq!(streaks, [1, 2, 3]);
        assert_eq!(l.admit(b).expect_err("over").streak, 1);
        // An invalid feed token counts like an anonymous request.
        assert_eq!(l.invalid_token(a).expect_err("over").streak, 4);
        assert_eq!(l.throttled(), 5);
        // Admitted again (once its bucket refills): the streak starts over.
        l.admitted(a);
        let streak = |c| l.empty.lock().expect("lock").map.get(&c).map(|e| e.streak);
        assert_eq!(streak(a), None);
        assert_eq!(streak(b), Some(1));
    }

    #[test]
    fn refused_clients_are_remembered_up_to_the_bound() {
        let mut m = EmptyBuckets::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let client = |n: u32| Client::from_ip(IpAddr::from(n.to_be_bytes()));
        for n in 0..100 {
            let e = Empty {
                until: later,
                streak: 1,
            };
            m.put(client(n), e, 10, now);
        }
        assert_eq!(m.map.len(), 10);
        // Entries whose bucket has refilled make room (swept at most once a second).
        let refilled = now + Duration::from_secs(120);
        let e = Empty {
            until: refilled + Duration::from_secs(1),
            streak: 1,
        };
        m.put(client(500), e, 10, refilled);
        assert_eq!(m.map.len(), 1);
        assert!(m.map.contains_key(&client(500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_answer_waits_its_hold_unless_shutdown_releases_it() {
        let l = Arc::new(ClientLimits::new(&HttpSettings {
            client_requests_per_sec: 1,
            client_burst: 1,
            throttle_hold_ms: 800,
            max_held_answers: 1,
            close_after_refusals: 0,
            ..HttpSettings::default()
        }));
        let r = Refusal {
            wait: Duration::from_millis(300),
            streak: 1,
        };
        let started = tokio::time::Instant::now();
        let held = l.answer(r).await;
        assert_eq!(started.elapsed(), Duration::from_millis(800));
        assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(held.headers().get(header::CONNECTION).is_none());
        // One slot: a second refusal while one is held is answered at once, closing.
        let first = tokio::spawn({
            let l = l.clone();
            async move { l.answer(r).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(l.holding(), 1);
        let started = tokio::time::Instant::now();
        let at_once = l.answer(r).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(
            at_once.headers().get(header::CONNECTION),
            Some(&HeaderValue::from_static("close"))
        );
        // Shutdown sends the held answer now, closing its connection.
        l.release_holds();
        let released = first.await.expect("held answer");
        assert_eq!(
            released.headers().get(header::CONNECTION),
            Some(&HeaderValue::from_static("close"))
        );
        assert_eq!(l.holding(), 0);
        let metrics = crate::metrics::Metrics::new(vec![l.clone()]);
        let text = metrics.render(&[], crate::metrics::Audience::Anonymous);
        for line in [
            "bookcal_http_throttled_held_total 2",
            "bookcal_http_throttled_held 0",
            "bookcal_http_throttled_unheld_total 1",
            "bookcal_http_throttled_closed_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
