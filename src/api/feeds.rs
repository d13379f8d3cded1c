//! iCalendar feeds over HTTP: `GET`/`HEAD /feeds/offerings/{uuid}.ics` (public, busy
//! only) and `GET`/`HEAD /feeds/t/{token}.ics` (secret token: an offering's owner feed
//! or a user's "my bookings" feed). What a feed shows, its window, caching and render
//! scheduling are [`crate::feeds`]'; this module parses the URL, negotiates and writes
//! headers.
//!
//! # HTTP
//! `Content-Type: text/calendar; charset=utf-8`, a strong `ETag`, `Last-Modified`, 304
//! on `If-None-Match` (or, without it, `If-Modified-Since`), `HEAD` with the same
//! headers, any or no `Accept`, `X-Robots-Tag: noindex`, `Content-Disposition: inline`.
//! Public feeds are `Cache-Control: public, max-age=300`; token feeds `private,
//! max-age=300` with `Referrer-Policy: no-referrer`; a body served in place of a render
//! that could not happen now (stale, or another window) is `no-cache`. A public feed
//! request over its client's rate is a 429 with `Retry-After` ([`super::throttle`]),
//! and so is a token feed request whose token opens no feed (token guessing counts
//! against the anonymous rate);
//! otherwise never a transient error while any body of the feed exists: only a feed that
//! was never rendered and cannot be now gets 503 with `Retry-After`. A malformed
//! window is a 400 (a permanent error: the URL itself is wrong); an unknown, private or
//! revoked feed a 404.
//!
//! Renders are shared fairly between clients (see [`crate::feeds::gate`]); the client
//! is the peer address, or the address a trusted proxy names
//! (`http.trusted_proxies`, resolved by [`super::throttle`]).
//!
//! Tokens must not reach logs: anything that logs request paths passes them through
//! [`scrub_path`] first (nothing in bookcal logs paths today).

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::{throttle, ApiError, AppState};
use crate::domain::Id;
use crate::feeds::{Answer, Client, FeedError, FeedId, Rendered, Source, Window};

/// `Retry-After` seconds on the (rare) 503.
const RETRY_AFTER_SECS: &str = "60";
/// Path prefix of the secret-token feeds.
pub const TOKEN_PATH: &str = "/feeds/t/";

const TEXT_CALENDAR: HeaderValue = HeaderValue::from_static("text/calendar; charset=utf-8");
const CACHE_PUBLIC: HeaderValue = HeaderValue::from_static("public, max-age=300");
const CACHE_PRIVATE: HeaderValue = HeaderValue::from_static("private, max-age=300");
const CACHE_DEGRADED: HeaderValue = HeaderValue::from_static("no-cache");
const NOINDEX: HeaderValue = HeaderValue::from_static("noindex");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

/// `path` with the secret of a token feed URL replaced by `***` (for access logs).
/// Paths without one are returned as they are.
pub fn scrub_path(path: &str) -> Cow<'_, str> {
    let Some(at) = path.find(TOKEN_PATH) else {
        return Cow::Borrowed(path);
    };
    let secret_start = at + TOKEN_PATH.len();
    let rest = &path[secret_start..];
    let len = rest.find(['.', '/', '?', '#']).unwrap_or(rest.len());
    if len == 0 {
        return Cow::Borrowed(path);
    }
    Cow::Owned(format!("{}***{}", &path[..secret_start], &rest[len..]))
}

/// The client the throttle layer named ([`super::throttle`]), else the peer.
fn client_of(req: &Request) -> Client {
    req.extensions()
        .get::<Client>()
        .copied()
        .unwrap_or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(Client::UNKNOWN, |c| Client::from_addr(c.0))
        })
}

// ---------------------------------------------------------------------------
// Handlers

/// `GET`/`HEAD /feeds/offerings/{uuid}.ics`.
pub async fn public_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let Some(id) = file.strip_suffix(".ics").and_then(Id::parse) else {
        return ApiError::NotFound.into_response();
    };
    let window = Window::parse(query.as_deref(), Utc::now());
    let feed = FeedId::Public(id);
    let served = state.feeds.serve(feed, window, client_of(&req)).await;
    answer(&state, feed, served, req.headers())
}

/// `GET`/`HEAD /feeds/t/{token}.ics`. A token that opens no feed counts against its
/// client's anonymous rate (404, or 429 past it: [`super::throttle`]); a valid one
/// is never counted.
pub async fn token_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let client = client_of(&req);
    let Some(secret) = file.strip_suffix(".ics").filter(|s| plausible_secret(s)) else {
        return invalid_token(&state, client);
    };
    let window = Window::parse(query.as_deref(), Utc::now());
    let opened = match state.feeds.open_token(secret).await {
        Ok(o) => o,
        Err(FeedError::NotFound) => return invalid_token(&state, client),
        Err(e) => return error_response(&e),
    };
    let served = if opened.stale {
        state.feeds.serve_stale(opened.feed, window)
    } else {
        state.feeds.serve(opened.feed, window, client).await
    };
    answer(&state, opened.feed, served, req.headers())
}

/// A token that opens no feed: 404, or 429 once its client is over its rate.
fn invalid_token(state: &AppState, client: Client) -> Response {
    match state.clients.invalid_token(client) {
        Ok(()) => ApiError::NotFound.into_response(),
        Err(r) => throttle::refused(r),
    }
}

/// Base64url without padding of 32 bytes is 43 characters; allow some slack for
/// future formats but refuse obvious junk before hashing.
fn plausible_secret(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn answer(
    state: &AppState,
    feed: FeedId,
    served: Result<Answer, FeedError>,
    headers: &HeaderMap,
) -> Response {
    match served {
        Ok(a) => {
            match a.source {
                Source::Cached => state.metrics.feed_cache_hit(),
                Source::Rendered => state.metrics.feed_render(),
                Source::Stale | Source::OtherWindow => {}
            }
            let degraded = matches!(a.source, Source::Stale | Source::OtherWindow);
            respond(&a.rendered, headers, feed.is_public(), degraded)
        }
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &FeedError) -> Response {
    match e {
        FeedError::NotFound => ApiError::NotFound.into_response(),
        FeedError::BadWindow(w) => ApiError::field(w.field, w.message).into_response(),
        FeedError::Unavailable(cause) => {
            if let Some(cause) = cause {
                tracing::warn!(error = %cause, "feed unavailable");
            }
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"detail": "The feed is temporarily unavailable."})),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-robots-tag", NOINDEX);
    r
}

/// A header value from bytes the service keeps (no copy); they are always valid
/// (hex in quotes, an IMF-fixdate, a plain file name), so the fallback never shows.
fn value(b: &axum::body::Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(b.clone()).unwrap_or(HeaderValue::from_static(""))
}

/// 200 (or 304) with the rendered feed's validators. Nothing is copied: the body and
/// the validators are reference-counted bytes.
fn respond(s: &Rendered, req: &HeaderMap, public: bool, degraded: bool) -> Response {
    let inm = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let ims = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    let not_modified = crate::ical::evaluate_conditional(inm, ims, s.etag_str(), s.last_modified);
    let mut resp = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(s.body.clone()))
    };
    let h = resp.headers_mut();
    h.reserve(8);
    h.insert(header::ETAG, value(&s.etag));
    h.insert("x-robots-tag", NOINDEX);
    // RFC 9110 section 15.4.5: a 304 carries the validators and caching fields, not
    // the representation's metadata.
    if !not_modified {
        h.insert(header::CONTENT_TYPE, TEXT_CALENDAR);
        h.insert(header::LAST_MODIFIED, value(&s.last_modified_http));
        h.insert(header::CONTENT_DISPOSITION, value(&s.disposition));
    }
    let cache = match (degraded, public) {
        (true, _) => CACHE_DEGRADED,
        (false, true) => CACHE_PUBLIC,
        (false, false) => CACHE_PRIVATE,
    };
    h.insert(header::CACHE_CONTROL, cache);
    if !public {
        h.insert(header::REFERRER_POLICY, NO_REFERRER);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_are_scrubbed_from_paths() {
        let cases = [
            ("/feeds/t/abcDEF123_-xyz.ics", "/feeds/t/***.ics"),
            (
                "/feeds/t/abcDEF123_-xyz.ics?from=2024-01-01",
                "/feeds/t/***.ics?from=2024-01-01",
            ),
            ("/feeds/t/abcDEF123", "/feeds/t/***"),
            (
                "https://h.example/feeds/t/sekrit.ics",
                "https://h.example/feeds/t/***.ics",
            ),
            ("/feeds/t/", "/feeds/t/"),
            ("/feeds/offerings/0123.ics", "/feeds/offerings/0123.ics"),
            ("/api/feed-tokens/", "/api/feed-tokens/"),
        ];
        for (path, want) in cases {
            assert_eq!(scrub_path(path), want, "{path}");
        }
        assert!(matches!(scrub_path("/health"), Cow::Borrowed(_)));
    }

    #[test]
    fn plausible_secrets_are_base64url() {
        let cases = [
            ("A".repeat(43), true),
            ("abc".to_owned(), false),
            (format!("{}%2F", "A".repeat(40)), false),
            ("x".repeat(200), false),
        ];
        for (s, want) in cases {
            assert_eq!(plausible_secret(&s), want, "{s}");
        }
    }
}
