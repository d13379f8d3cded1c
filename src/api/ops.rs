//! Operations endpoints and the request middleware: `/ready` (can serve: the store
//! answers and the scheduler runs), `/metrics` (Prometheus text), and [`observe`],
//! which gives every request a span and counts it.
//!
//! Invariant: only the route template (`/feeds/t/{file}`) reaches logs and metrics,
//! never the raw path or query, which may hold secret tokens (feed tokens in paths,
//! `?x-auth-token=`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use super::render::CredentialHealthOut;
use super::{ApiError, AppState};

/// Routes polled by probes and scrapers: logged at debug level, not info.
const QUIET_ROUTES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// A span per request (method, route template; status and latency once answered),
/// and the request counted in [`crate::metrics::Metrics`].
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http",
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    if QUIET_ROUTES.contains(&route.as_str()) {
        tracing::debug!(parent: &span, "request answered");
    } else if resp.status().is_server_error() {
        tracing::warn!(parent: &span, "request failed");
    } else {
        tracing::info!(parent: &span, "request answered");
    }
    state.metrics.http_request(&method, &route, status, latency);
    resp
}

/// `/health`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /health`: the process is up (nothing else is checked).
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `/ready`: `{"status": "ready"}`, or `{"status": "unavailable", "reason": ...}` with 503;
/// both with `google.credentials`.
#[derive(Serialize, ToSchema)]
pub struct Readiness<'a> {
    #[schema(example = "ready")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    google: ReadinessGoogle<'a>,
}

/// The Google side of `/ready`: detail, never a reason (a dead credential does not
/// stop bookcal from serving).
#[derive(Serialize, ToSchema)]
pub struct ReadinessGoogle<'a> {
    /// Each configured Google credential's health.
    credentials: Vec<CredentialHealthOut<'a>>,
}

/// `GET /ready`: 200 when the store answers a read and no observed part (the
/// scheduler, see [`crate::metrics::Observed`]) says it keeps the service from serving;
/// 503 with `{"status": "unavailable", "reason": ...}` otherwise. Both carry each
/// Google credential's health under `google.credentials`.
pub async fn ready(State(state): State<AppState>) -> Response {
    // A database that does not answer within the probe's patience is down for it.
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    let engine = state.store.engine().as_str();
    let reason = match ping {
        Ok(Ok(())) => state.metrics.not_ready(),
        Ok(Err(e)) => Some(format!("the store ({engine}) does not answer: {e}")),
        Err(_) => Some(format!("the store ({engine}) did not answer within 2 s")),
    };
    let status = if reason.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let health = state.google.all_health();
    let body = Readiness {
        status: if reason.is_some() {
            "unavailable"
        } else {
            "ready"
        },
        reason,
        google: ReadinessGoogle {
            credentials: health.iter().map(CredentialHealthOut::of).collect(),
        },
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the Prometheus text exposition; per-offering series only with
/// `Authorization: Bearer <http.metrics_token>`, a wrong token is a 401.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim()
        });
    let Some(audience) = state.metrics.authorize(bearer) else {
        let mut r = ApiError::InvalidToken.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    let calendars = match state.store.calendars().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read calendar records");
            Vec::new()
        }
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(&calendars, audience),
    )
        .into_response()
}
