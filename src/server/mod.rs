//! The HTTP server: serves a router on an already bound listener with hyper's
//! HTTP/1.1, under the limits of [`HttpSettings`] (`[http]` in the settings).
//!
//! Where each limit comes from:
//! - the request-head deadline is hyper's `header_read_timeout` (it runs from the
//!   connection's start or the previous response's end until the head is complete);
//! - the early 413 from `Content-Length`, and the cut-off of longer chunked bodies,
//!   are tower-http's `RequestBodyLimitLayer`;
//! - shutdown is hyper-util's `GracefulShutdown`: hyper closes connections that are
//!   between requests at once and lets requests in progress finish;
//! - written here, because none of them offers it: the connection cap with its
//!   reserve for probes ([`serve`]) and the optional probe-only listener
//!   ([`serve_probes`]), the keep-alive idle and send timeouts
//!   ([`io::GuardedIo`]), one deadline for a whole request body
//!   ([`body::DeadlineBody`]), the 414 for long request targets and the DRF shape of
//!   errors made outside the handlers ([`guard`]).
//!
//! Only HTTP/1.1 is spoken (no h2c): bookcal sits behind TLS-terminating proxies that
//! talk HTTP/1.1 to it, and one protocol keeps one set of limits to reason about.
//!
//! hyper answers some malformed requests itself, before any service runs and with an
//! empty body: a request target over 64 KiB (414), a head over its buffer (431), an
//! unparsable request line or header (400). [`io::GuardedIo`] gives those responses
//! the DRF body on their way out; targets between `http.max_uri_bytes` and 64 KiB get
//! the 414 from [`guard`].

pub mod body;
pub mod io;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{AddExtension, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::api::error::drf_shaped;
use crate::api::ApiError;
use crate::config::HttpSettings;
pub use body::{is_body_timeout, BodyTimedOut};

/// How long a connection in the probe reserve may take to send its request head.
pub const PROBE_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Connection counts since start, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now (served and probe-only).
    pub open: AtomicU64,
    /// Connections accepted past `max_connections` and served probes only.
    pub probe_only: AtomicU64,
    /// Connections closed at once because the probe reserve was full too.
    pub refused: AtomicU64,
}

/// Serves `app` on `listener` until `shutdown`; connections past
/// `limits.max_connections` are served `probes` instead (up to
/// `limits.probe_connections` of them; further ones are closed at once). On shutdown
/// stops accepting, closes idle connections, and returns when the requests in
/// progress have been answered.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    probes: Router,
    limits: &HttpSettings,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) {
    let app = with_limits(app, limits);
    let probes = with_limits(probes, limits);
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.probe_connections));
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
    // Probes send their request as soon as they connect: a connection in the reserve
    // that does not is closed after a second, so silent connections cannot hold it.
    let probe_wait = PROBE_HEAD_TIMEOUT.min(Duration::from_secs(limits.header_read_timeout_secs));
    let mut h1_probe = h1.clone();
    h1_probe.keep_alive(false).header_read_timeout(probe_wait);
    let idle = Duration::from_secs(limits.keep_alive_timeout_secs);
    let send_timeout = Duration::from_secs(limits.send_timeout_secs);
    let graceful = GracefulShutdown::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_errors.pause(e).await;
                    continue;
                }
            },
        };
        let (router, builder, idle, permit) = match served.clone().try_acquire_owned() {
            Ok(p) => (&app, &h1, idle, p),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => {
                    stats.probe_only.fetch_add(1, Ordering::Relaxed);
                    (&probes, &h1_probe, probe_wait.min(idle), p)
                }
                Err(_) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(tcp);
                    continue;
                }
            },
        };
        let conn = connection(tcp, peer, router.clone(), builder, idle, send_timeout);
        let conn = graceful.watch(conn);
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves only `probes` on `listener` (`http.probe_listen`) until `shutdown`: every
/// connection is a probe connection (one request, a second to send it), at most
/// `limits.probe_connections` at once, counted apart from the API's connections.
/// A flood of connections on the API's port cannot reach this listener's.
pub async fn serve_probes(
    listener: TcpListener,
    probes: Router,
    limits: &HttpSettings,
    shutdown: CancellationToken,
) {
    let only_probes = HttpSettings {
        max_connections: 0,
        ..limits.clone()
    };
    let stats = Arc::new(ConnectionStats::default());
    serve(
        listener,
        probes.clone(),
        probes,
        &only_probes,
        stats,
        shutdown,
    )
    .await;
}

/// The service a connection runs: the router with the peer address, its requests
/// tracked.
type Served = body::TrackRequests<AddExtension<Router, ConnectInfo<SocketAddr>>>;

/// One connection: hyper's HTTP/1.1 over the guarded stream, its requests counted
/// for the idle timeout and carrying the peer's address (`ConnectInfo`: the feeds
/// share renders fairly between addresses).
fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: &http1::Builder,
    idle: Duration,
    send_timeout: Duration,
) -> http1::Connection<TokioIo<io::GuardedIo<TcpStream>>, TowerToHyperService<Served>> {
    // Responses are written whole by hyper; Nagle would only delay their last segment.
    let _ = tcp.set_nodelay(true);
    let activity = Arc::new(io::Activity::new());
    let io = TokioIo::new(io::GuardedIo::new(
        tcp,
        activity.clone(),
        idle,
        send_timeout,
    ));
    let router = Extension(ConnectInfo(peer)).layer(router);
    let service = TowerToHyperService::new(body::TrackRequests::new(router, activity));
    builder.serve_connection(io, service)
}

/// `router` with the per-request limits: the 414, one deadline for the body, the
/// early 413 and DRF-shaped errors.
pub fn with_limits(router: Router, limits: &HttpSettings) -> Router {
    let max_uri = limits.max_uri_bytes;
    let body_timeout = Duration::from_secs(limits.body_timeout_secs);
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            guard(req, next, max_uri, body_timeout)
        }))
}

/// Refuses long request targets (414), gives the body its deadline, and gives
/// errors made outside the handlers DRF's shape.
async fn guard(req: Request, next: Next, max_uri: usize, body_timeout: Duration) -> Response {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > max_uri {
        return ApiError::UriTooLong.into_response();
    }
    let method = req.method().clone();
    let deadline = tokio::time::Instant::now() + body_timeout;
    let req = req.map(|b| axum::body::Body::new(body::DeadlineBody::new(b, deadline)));
    drf_shaped(&method, next.run(req).await).await
}

/// Accept errors: a connection that failed before it was accepted is skipped; running
/// out of file descriptors pauses accepting briefly (logged at most every 10 s)
/// instead of spinning.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<tokio::time::Instant>,
    since: u64,
}

impl AcceptErrors {
    async fn pause(&mut self, e: std::io::Error) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::error!(error = %e, failures = self.since, "cannot accept connections; lower http.max_connections or raise the open-file limit");
            self.last_logged = Some(now);
            self.since = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
