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
//! **The rate**: requests without credentials (public feeds and API calls without an
//! `Authorization` header) take a token from their client's bucket
//! (`http.client_requests_per_sec`, `http.client_burst`); an empty bucket is answered
//! 429 in DRF's shape with `Retry-After`, before any store access or render. Not
//! counted: token feeds (the secret token is their credential; their renders still
//! share the fair render slots), requests with credentials (their owner is known and
//! checked), and the probes and scrapes (`/health`, `/ready`, `/metrics`), so
//! anonymous flooding from the owner's own address cannot shut the owner out.
//!
//! The buckets are governor's GCRA limiter (one timestamp per client) over a map
//! bounded by `http.max_tracked_clients` ([`Bounded`]): when it is full, clients not
//! in it share one extra bucket, and buckets that are as good as new (refilled) are
//! dropped at most once a second, so memory stays bounded however many addresses a
//! flood comes from.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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
use serde_json::json;

use super::AppState;
use crate::config::{parse_network, HttpSettings};
use crate::feeds::Client;

/// The per-client buckets: a governor keyed limiter over [`Bounded`].
type Limiter = RateLimiter<Client, Bounded, DefaultClock>;

/// How often a full map is swept of refilled buckets, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Client identification and the anonymous request rate (one per process).
pub struct ClientLimits {
    trusted: Vec<IpNet>,
    limiter: Option<Limiter>,
    max_clients: usize,
    last_sweep: Mutex<Option<std::time::Instant>>,
    throttled: AtomicU64,
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
            throttled: AtomicU64::new(0),
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

    /// Takes one request from `client`'s bucket; when it is empty, how long until
    /// the next one may be made.
    ///
    /// # Errors
    /// The wait, when the client is over its rate.
    pub fn admit(&self, client: Client) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= self.max_clients {
            self.sweep(limiter);
        }
        limiter.check_key(&client).map_err(|not_until| {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(limiter.clock().now())
        })
    }

    /// Forgets refilled buckets (at most once per [`SWEEP_EVERY`]).
    fn sweep(&self, limiter: &Limiter) {
        let now = std::time::Instant::now();
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
        self.throttled.load(Ordering::Relaxed)
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

/// Whether a request takes a token from its client's bucket: no credentials, and
/// not a token feed or a probe or scrape.
fn counted(req: &Request) -> bool {
    let path = req.uri().path();
    !(path.starts_with(super::feeds::TOKEN_PATH)
        || matches!(path, "/health" | "/ready" | "/metrics")
        || req.headers().contains_key(header::AUTHORIZATION))
}

/// The middleware: names the client (an extension the feeds read) and refuses a
/// counted request over its client's rate with a 429.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = state.clients.client(peer, req.headers());
    req.extensions_mut().insert(client);
    if counted(&req) {
        if let Err(wait) = state.clients.admit(client) {
            return throttled(wait);
        }
    }
    next.run(req).await
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
        axum::Json(json!({ "detail": detail })),
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
        let wait = l.admit(a).expect_err("over the burst");
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
}
