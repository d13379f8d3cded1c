//! iCalendar feeds over HTTP: `GET`/`HEAD /feeds/offerings/{uuid}.ics` (public, busy
//! only) and `GET`/`HEAD /feeds/t/{token}.ics` (secret token: an offering's owner feed
//! or a user's "my bookings" feed). Rendering is [`crate::ical`]'s; this module picks
//! the events, caches the result ([`super::feed_cache`]) and speaks HTTP.
//!
//! # What each feed shows
//! - **Public** (only while the offering's calendar record is `public`, else 404): every
//!   booked slot (resources in Creating/OK) as "Booked" and every busy slot imported
//!   from the offering's calendar as "Busy"; location = the offering's location. No
//!   names, e-mails, booking names or descriptions. Zone: the offering's.
//! - **Owner** (token scoped to an offering): booked slots titled with the booking's
//!   name, with who booked it, the project and the organisation in the description,
//!   `STATUS` TENTATIVE (Creating) or CONFIRMED (OK), plus the busy slots. Zone: the
//!   offering's. The token stops working (404) when its creator is no longer staff,
//!   owner or manager of the offering's provider.
//! - **My bookings** (token scoped to a user): the slots of the bookings that user
//!   created, across offerings, titled with the booking's name. Zone: **UTC** (the
//!   bookings may be in several zones; clients show them in the viewer's zone).
//!
//! Every slot's `UID` is opaque ([`slot_uid`]: keyed with a secret of the store, it
//! reveals nothing of the slot's backend_id), `DTSTAMP`/`LAST-MODIFIED` the
//! booking's `modified`, and `SEQUENCE` rises whenever the slot's time changes (see
//! [`Store::slot_sequences`]). Busy slots whose both ends are local midnights of the
//! offering's zone are all-day events.
//!
//! # Window
//! `?from=` and `?to=` take a date (`2024-05-01`: from its start / through its end, in
//! UTC) or an RFC 3339 date-time. Defaults: from midnight UTC 30 days ago to midnight
//! UTC two years ahead. A slot is shown when it overlaps the window. A value that does
//! not parse, or `from` not before `to`, is a client error answered with 400 (a
//! permanent one: the URL itself is wrong). Other query parameters are ignored.
//!
//! # HTTP
//! `Content-Type: text/calendar; charset=utf-8`, a strong `ETag`, `Last-Modified`, 304
//! on `If-None-Match` (or, without it, `If-Modified-Since`), `HEAD` with the same
//! headers, any or no `Accept`, `X-Robots-Tag: noindex`, `Content-Disposition: inline`.
//! Public feeds are `Cache-Control: public, max-age=300`; token feeds `private,
//! max-age=300` with `Referrer-Policy: no-referrer`. No rate limiting. A valid feed URL
//! never gets a transient error: when the store or rendering fails the last rendered
//! body is served (stale); only without one the answer is 503 with `Retry-After`.
//!
//! Tokens must not reach logs: anything that logs request paths passes them through
//! [`scrub_path`] first (nothing in bookcal logs paths today).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::feed_cache::{FeedId, FeedKey, Served};
use super::{ApiError, AppState};
use crate::domain::{Id, Resource, ResourceState};
use crate::ical::{FeedCalendar, FeedEvent, FeedStatus, FeedTime, RenderedFeed};
use crate::store::feed_tokens::{feed_token_hash, FeedScope, FeedToken, LAST_USED_RESOLUTION};
use crate::store::{Store, StoreError};

/// Days before today the default window starts.
pub const DEFAULT_PAST_DAYS: i64 = 30;
/// Months after today the default window ends.
pub const DEFAULT_FUTURE_MONTHS: u32 = 24;
/// `REFRESH-INTERVAL` / `X-PUBLISHED-TTL` suggested to clients.
pub const REFRESH_INTERVAL: Duration = Duration::hours(1);
/// `Retry-After` seconds on the (rare) 503.
const RETRY_AFTER_SECS: &str = "60";
/// Path prefix of the secret-token feeds.
pub const TOKEN_PATH: &str = "/feeds/t/";

const TEXT_CALENDAR: HeaderValue = HeaderValue::from_static("text/calendar; charset=utf-8");
const CACHE_PUBLIC: HeaderValue = HeaderValue::from_static("public, max-age=300");
const CACHE_PRIVATE: HeaderValue = HeaderValue::from_static("private, max-age=300");
const NOINDEX: HeaderValue = HeaderValue::from_static("noindex");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

/// Public feeds may be cached by anyone; token feeds only by the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Public,
    TokenHolder,
}

/// The time window of a feed: slots overlapping `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        start < self.to && end > self.from
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_bound(s: &str) -> Option<Bound> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Bound::Date(d));
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| Bound::Instant(t.with_timezone(&Utc)))
}

/// The window a query asks for (see the module docs), `now` giving the defaults.
///
/// # Errors
/// 400 naming `from` or `to` when a value does not parse, or `from` is not before `to`.
pub fn parse_window(query: Option<&str>, now: DateTime<Utc>) -> Result<Window, ApiError> {
    let today = now.date_naive();
    let mut window = Window {
        from: midnight(today - Duration::days(DEFAULT_PAST_DAYS)),
        to: midnight(
            today
                .checked_add_months(Months::new(DEFAULT_FUTURE_MONTHS))
                .unwrap_or(today),
        ),
    };
    let Some(q) = query else {
        return Ok(window);
    };
    const HELP: &str = "Enter a date (YYYY-MM-DD) or an RFC 3339 date-time.";
    let mut seen = (false, false);
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        match k.as_ref() {
            "from" if !seen.0 => {
                seen.0 = true;
                window.from = match parse_bound(&v) {
                    Some(Bound::Date(d)) => midnight(d),
                    Some(Bound::Instant(t)) => t,
                    None => return Err(ApiError::field("from", HELP)),
                };
            }
            "to" if !seen.1 => {
                seen.1 = true;
                window.to = match parse_bound(&v) {
                    Some(Bound::Date(d)) => midnight(d.succ_opt().unwrap_or(d)),
                    Some(Bound::Instant(t)) => t,
                    None => return Err(ApiError::field("to", HELP)),
                };
            }
            _ => {}
        }
    }
    if window.from >= window.to {
        return Err(ApiError::field("to", "Must be after `from`."));
    }
    Ok(window)
}

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

// ---------------------------------------------------------------------------
// Handlers

/// `GET`/`HEAD /feeds/offerings/{uuid}.ics`.
pub async fn public_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    // The request itself, not the `HeaderMap` extractor: that one clones every header.
    let headers = req.headers();
    let Some(id) = file.strip_suffix(".ics").and_then(Id::parse) else {
        return ApiError::NotFound.into_response();
    };
    let window = parse_window(query.as_deref(), Utc::now());
    serve(state, FeedId::Public(id), window, headers, Audience::Public).await
}

/// `GET`/`HEAD /feeds/t/{token}.ics`.
pub async fn token_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let headers = req.headers();
    let Some(secret) = file.strip_suffix(".ics").filter(|s| plausible_secret(s)) else {
        return ApiError::NotFound.into_response();
    };
    let window = parse_window(query.as_deref(), Utc::now());
    let hash = feed_token_hash(secret);
    let lookup = async {
        let Some(t) = state.store.feed_token_by_secret(secret).await? else {
            return Ok::<_, StoreError>(None);
        };
        Ok(authorised_feed(&state.store, &t).await?.map(|f| (t, f)))
    }
    .await;
    let feed = match lookup {
        Ok(Some((token, feed))) => {
            state.feed_cache.remember_token(hash, feed);
            touch_later(&state, &token);
            feed
        }
        Ok(None) => {
            state.feed_cache.forget_token(&hash);
            return ApiError::NotFound.into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "feed token lookup failed; serving stale if possible");
            return match (state.feed_cache.known_token(&hash), window) {
                (Some(feed), Ok(w)) => {
                    stale_or_unavailable(&state, feed, w, headers, Audience::TokenHolder)
                }
                _ => unavailable(),
            };
        }
    };
    serve(state, feed, window, headers, Audience::TokenHolder).await
}

/// Base64url without padding of 32 bytes is 43 characters; allow some slack for
/// future formats but refuse obvious junk before hashing.
fn plausible_secret(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The feed a token opens while its creator may still see it.
async fn authorised_feed(store: &Store, t: &FeedToken) -> Result<Option<FeedId>, StoreError> {
    let Some(creator) = store.user(t.created_by).await? else {
        return Ok(None);
    };
    Ok(match t.scope {
        FeedScope::Offering(o) => {
            let Some(offering) = store.offering(o).await? else {
                return Ok(None);
            };
            let provider = store.customer(offering.customer).await?;
            let allowed = creator.is_staff
                || provider.is_some_and(|c| {
                    c.owners.contains(&creator.id) || c.managers.contains(&creator.id)
                });
            allowed.then_some(FeedId::Owner(o))
        }
        FeedScope::User(u) => (u == creator.id).then_some(FeedId::Mine(u)),
    })
}

/// Records the token's use in the background, at most once per minute.
fn touch_later(state: &AppState, token: &FeedToken) {
    let now = Utc::now();
    if token
        .last_used
        .is_some_and(|u| now - u < LAST_USED_RESOLUTION)
    {
        return;
    }
    let store = state.store.clone();
    let cache = state.feed_cache.clone();
    let hash = token.hash;
    tokio::spawn(async move {
        if let Err(e) = store.touch_feed_token(&hash, now).await {
            tracing::warn!(error = %e, "could not record a feed token's last use");
        }
        cache.touched();
    });
}

/// The common path: fresh from memory, else render (off the async workers), else stale.
async fn serve(
    state: AppState,
    feed: FeedId,
    window: Result<Window, ApiError>,
    headers: &HeaderMap,
    audience: Audience,
) -> Response {
    if let Ok(w) = &window {
        let key = FeedKey {
            feed,
            from: w.from,
            to: w.to,
        };
        if let Some(s) = state
            .feed_cache
            .fresh(&key, state.store.version(&feed.scopes()))
        {
            state.metrics.feed_cache_hit();
            return respond(&s, headers, audience);
        }
    }
    match render_outcome(&state, feed, window).await {
        Outcome::Served(s) => respond(&s, headers, audience),
        Outcome::NotFound => ApiError::NotFound.into_response(),
        Outcome::BadRequest(e) => e.into_response(),
        Outcome::Failed(w) => stale_or_unavailable(&state, feed, w, headers, audience),
    }
}

enum Outcome {
    Served(Arc<Served>),
    NotFound,
    BadRequest(ApiError),
    /// The store or rendering failed for this window.
    Failed(Window),
}

async fn render_outcome(
    state: &AppState,
    feed: FeedId,
    window: Result<Window, ApiError>,
) -> Outcome {
    let store = &state.store;
    let cache = &state.feed_cache;
    let filename = match feed_filename(store, feed).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            cache.forget(feed);
            return Outcome::NotFound;
        }
        Err(e) => {
            tracing::warn!(error = %e, ?feed, "feed check failed; serving stale if possible");
            return match window {
                Ok(w) => Outcome::Failed(w),
                Err(e) => Outcome::BadRequest(e),
            };
        }
    };
    let w = match window {
        Ok(w) => w,
        Err(e) => return Outcome::BadRequest(e),
    };
    let key = FeedKey {
        feed,
        from: w.from,
        to: w.to,
    };
    let public_url = state.public_url.as_deref();
    // The version before the data it tags (see `Store::version`).
    let version = store.version(&feed.scopes());
    let built = build_calendar(store, feed, w, public_url).await;
    let rendered = cache.get_or_render(
        key,
        || version,
        || {
            state.metrics.feed_render();
            let (cal, fallback) = built?;
            Ok::<_, StoreError>(RenderedFeed::from_calendar(&cal, fallback))
        },
        &filename,
        Utc::now(),
    );
    match rendered {
        Ok(s) => Outcome::Served(s),
        Err(e) => {
            tracing::warn!(error = %e, ?feed, "feed render failed; serving stale if possible");
            Outcome::Failed(w)
        }
    }
}

fn stale_or_unavailable(
    state: &AppState,
    feed: FeedId,
    w: Window,
    headers: &HeaderMap,
    audience: Audience,
) -> Response {
    let key = FeedKey {
        feed,
        from: w.from,
        to: w.to,
    };
    match state.feed_cache.stale(&key) {
        Some(s) => respond(&s, headers, audience),
        None => unavailable(),
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

/// 200 (or 304) with the cached headers. Nothing is allocated beyond the header map:
/// the body is a reference-counted `Bytes` and the header values are prebuilt.
fn respond(s: &Served, req: &HeaderMap, audience: Audience) -> Response {
    let inm = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let ims = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    let not_modified = crate::ical::evaluate_conditional(inm, ims, &s.etag, s.last_modified);
    let mut resp = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(s.body.clone()))
    };
    let h = resp.headers_mut();
    h.reserve(8);
    h.insert(header::ETAG, s.etag_header.clone());
    h.insert("x-robots-tag", NOINDEX);
    // RFC 9110 section 15.4.5: a 304 carries the validators and caching fields, not
    // the representation's metadata.
    if !not_modified {
        h.insert(header::CONTENT_TYPE, TEXT_CALENDAR);
        h.insert(header::LAST_MODIFIED, s.last_modified_header.clone());
        h.insert(header::CONTENT_DISPOSITION, s.disposition.clone());
    }
    match audience {
        Audience::Public => {
            h.insert(header::CACHE_CONTROL, CACHE_PUBLIC);
        }
        Audience::TokenHolder => {
            h.insert(header::CACHE_CONTROL, CACHE_PRIVATE);
            h.insert(header::REFERRER_POLICY, NO_REFERRER);
        }
    }
    resp
}

// ---------------------------------------------------------------------------
// Building the calendars

/// A file name safe in a quoted header parameter.
fn safe_filename(stem: &str, suffix: &str) -> String {
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let stem = if stem.is_empty() {
        "calendar".into()
    } else {
        stem
    };
    format!("{stem}{suffix}.ics")
}

/// The feed's file name, or `None` when the feed does not exist (any more).
async fn feed_filename(store: &Store, feed: FeedId) -> Result<Option<String>, StoreError> {
    match feed {
        FeedId::Public(o) => {
            let slug = match store.offering(o).await? {
                Some(off) => off.slug,
                None => return Ok(None),
            };
            let public = store.calendar(o).await?.is_some_and(|c| c.public);
            Ok(public.then(|| safe_filename(&slug, "-busy")))
        }
        FeedId::Owner(o) => Ok(store
            .offering(o)
            .await?
            .map(|off| safe_filename(&off.slug, "-bookings"))),
        FeedId::Mine(u) => Ok(store.user(u).await?.map(|_| "my-bookings.ics".to_owned())),
    }
}

fn status_of(state: ResourceState) -> FeedStatus {
    match state {
        ResourceState::Creating => FeedStatus::Tentative,
        _ => FeedStatus::Confirmed,
    }
}

/// Busy slots whose both ends are local midnights are whole days.
fn busy_time(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> FeedTime {
    let (ls, le) = (start.with_timezone(&tz), end.with_timezone(&tz));
    if end > start && ls.time() == NaiveTime::MIN && le.time() == NaiveTime::MIN {
        FeedTime::AllDay {
            start: ls.date_naive(),
            end_exclusive: le.date_naive(),
        }
    } else {
        FeedTime::Timed { start, end }
    }
}

/// The UID of a booked slot: stable (the same slot always has the same UID), distinct
/// per slot, and opaque: a SHA-256 of the store's secret key and the slot's backend_id,
/// so a reader of a public feed learns nothing to aim at another booking with.
pub fn slot_uid(key: &[u8; 32], backend_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(backend_id.as_bytes());
    format!("slot-{}@bookcal", hex::encode(&h.finalize()[..16]))
}

/// A stable UID for a busy slot that does not reveal the source event id: a hash of
/// the offering, the source event and the times (a moved busy event is a new event).
pub fn busy_uid(
    offering: Id,
    source_event_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    let mut h = Sha256::new();
    h.update(offering.as_bytes());
    h.update(source_event_id.as_bytes());
    h.update(b"\n");
    h.update(start.to_rfc3339().as_bytes());
    h.update(b"\n");
    h.update(end.to_rfc3339().as_bytes());
    format!("busy-{}@bookcal", hex::encode(&h.finalize()[..12]))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Builds the calendar of a feed and the fallback Last-Modified (the latest change
/// of anything in its scope, including bookings that no longer show).
async fn build_calendar(
    store: &Store,
    feed: FeedId,
    w: Window,
    public_url: Option<&str>,
) -> Result<(FeedCalendar, DateTime<Utc>), StoreError> {
    let mut fallback = DateTime::<Utc>::UNIX_EPOCH;
    let in_scope = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            if let Some(off) = store.offering(o).await? {
                fallback = fallback.max(off.modified);
            }
            store.offering_resources(o).await?
        }
        FeedId::Mine(u) => store.resources_by(u).await?,
    };
    let mut resources: Vec<Resource> = Vec::with_capacity(in_scope.len());
    for r in in_scope {
        fallback = fallback.max(r.modified);
        if r.state.holds_slots() && r.slots.iter().any(|s| w.overlaps(s.start, s.end)) {
            resources.push(r);
        }
    }
    let slots: Vec<(&Resource, &crate::domain::Slot)> = resources
        .iter()
        .flat_map(|r| r.slots.iter().map(move |s| (r, s)))
        .filter(|(_, s)| w.overlaps(s.start, s.end))
        .collect();
    let keys: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = slots
        .iter()
        .map(|(_, s)| (s.backend_id.as_str(), s.start, s.end))
        .collect();
    let sequences = store.slot_sequences(&keys).await?;

    let busy = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            let cal = store.calendar(o).await?;
            if let Some(t) = cal.and_then(|c| c.last_success) {
                fallback = fallback.max(t);
            }
            store.busy_slots(o).await?
        }
        FeedId::Mine(_) => Vec::new(),
    };

    let mut wanted = crate::store::Wanted {
        users: resources.iter().map(|r| r.created_by).collect(),
        projects: resources.iter().map(|r| r.project).collect(),
        offerings: resources.iter().map(|r| r.offering).collect(),
        ..Default::default()
    };
    if let FeedId::Public(o) | FeedId::Owner(o) = feed {
        wanted.offerings.push(o);
    }
    let cat = store.related(&wanted).await?;
    let mut events = Vec::with_capacity(slots.len() + busy.len());
    for ((r, slot), sequence) in slots.iter().zip(sequences) {
        let offering = cat.offerings.get(&r.offering);
        let location = offering.and_then(|o| non_empty(&o.location));
        let base = FeedEvent {
            uid: slot_uid(store.feed_uid_key(), &slot.backend_id),
            summary: "Booked".to_owned(),
            description: None,
            location,
            when: FeedTime::Timed {
                start: slot.start,
                end: slot.end,
            },
            status: status_of(r.state),
            sequence,
            last_modified: r.modified,
            created: None,
            url: None,
        };
        let event = match feed {
            FeedId::Public(_) => base,
            FeedId::Owner(_) | FeedId::Mine(_) => {
                let project = cat.projects.get(&r.project);
                let org = project.and_then(|p| cat.customers.get(&p.customer));
                let who = cat.users.get(&r.created_by).map(|u| {
                    let name = if u.full_name.trim().is_empty() {
                        &u.username
                    } else {
                        &u.full_name
                    };
                    if u.email.is_empty() {
                        name.clone()
                    } else {
                        format!("{name} <{}>", u.email)
                    }
                });
                let mut lines = Vec::new();
                if let (FeedId::Mine(_), Some(o)) = (feed, offering) {
                    lines.push(format!("Offering: {}", o.name));
                }
                if let (FeedId::Owner(_), Some(who)) = (feed, who) {
                    lines.push(format!("Booked by: {who}"));
                }
                if let Some(p) = project {
                    lines.push(format!("Project: {}", p.name));
                }
                if let Some(c) = org {
                    lines.push(format!("Organisation: {}", c.name));
                }
                lines.push(format!("State: {}", r.state.as_str()));
                FeedEvent {
                    summary: non_empty(&r.name).unwrap_or_else(|| "Booking".to_owned()),
                    description: Some(lines.join("\n")),
                    created: Some(r.created),
                    ..base
                }
            }
        };
        events.push(event);
    }

    let (name, tz, source_url) = match feed {
        FeedId::Public(o) | FeedId::Owner(o) => {
            let off = cat.offerings.get(&o);
            let off_name = off.map(|o| o.name.clone()).unwrap_or_default();
            let tz = off.map(|o| o.time_zone).unwrap_or(chrono_tz::UTC);
            let modified = off
                .map(|o| o.modified)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let location = off.and_then(|o| non_empty(&o.location));
            for b in busy.iter().filter(|b| w.overlaps(b.start, b.end)) {
                events.push(FeedEvent {
                    uid: busy_uid(o, &b.source_event_id, b.start, b.end),
                    summary: "Busy".to_owned(),
                    description: None,
                    location: location.clone(),
                    when: busy_time(tz, b.start, b.end),
                    status: FeedStatus::Confirmed,
                    sequence: 0,
                    last_modified: modified,
                    created: None,
                    url: None,
                });
            }
            match feed {
                FeedId::Public(_) => (
                    format!("{off_name} (busy times)"),
                    tz,
                    public_url.map(|b| {
                        format!(
                            "{}/feeds/offerings/{}.ics",
                            b.trim_end_matches('/'),
                            o.hex()
                        )
                    }),
                ),
                _ => (format!("{off_name} (bookings)"), tz, None),
            }
        }
        FeedId::Mine(_) => ("My bookings".to_owned(), chrono_tz::UTC, None),
    };
    Ok((
        FeedCalendar {
            name,
            description: None,
            time_zone: tz,
            // Never the token URL: calendar files get exported and shared.
            source_url,
            refresh_interval: REFRESH_INTERVAL,
            color: None,
            events,
        },
        fallback,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

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
    fn windows_default_to_thirty_days_back_and_two_years_ahead() {
        let now = utc(2024, 5, 10, 15, 30);
        type Case<'a> = (Option<&'a str>, Option<(DateTime<Utc>, DateTime<Utc>)>);
        let cases: [Case; 10] = [
            (None, Some((utc(2024, 4, 10, 0, 0), utc(2026, 5, 10, 0, 0)))),
            (
                Some(""),
                Some((utc(2024, 4, 10, 0, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (
                Some("from=2024-01-01&to=2024-01-31"),
                Some((utc(2024, 1, 1, 0, 0), utc(2024, 2, 1, 0, 0))),
            ),
            (
                Some("from=2024-01-01T10:00:00%2B02:00"),
                Some((utc(2024, 1, 1, 8, 0), utc(2026, 5, 10, 0, 0))),
            ),
            (
                Some("to=2024-06-01T00:00:00Z&x=1"),
                Some((utc(2024, 4, 10, 0, 0), utc(2024, 6, 1, 0, 0))),
            ),
            (Some("from=yesterday"), None),
            (Some("to=2024-13-01"), None),
            (Some("from=2024-02-01&to=2024-01-31"), None),
            (
                Some("from=2024-02-01T00:00:00Z&to=2024-02-01T00:00:00Z"),
                None,
            ),
            (Some("from="), None),
        ];
        for (q, want) in cases {
            let got = parse_window(q, now).ok().map(|w| (w.from, w.to));
            assert_eq!(got, want, "{q:?}");
        }
    }

    #[test]
    fn busy_slots_at_local_midnights_are_all_day() {
        let tz = chrono_tz::Europe::Berlin;
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default();
        // Berlin midnight is 22:00 or 23:00 UTC the day before.
        let cases = [
            (
                utc(2024, 5, 1, 22, 0),
                utc(2024, 5, 3, 22, 0),
                Some((d(5, 2), d(5, 4))),
            ),
            (
                utc(2024, 3, 30, 23, 0),
                utc(2024, 3, 31, 22, 0),
                Some((d(3, 31), d(4, 1))),
            ),
            (utc(2024, 5, 1, 0, 0), utc(2024, 5, 2, 0, 0), None),
            (utc(2024, 5, 1, 22, 0), utc(2024, 5, 1, 22, 0), None),
            (utc(2024, 5, 1, 22, 0), utc(2024, 5, 2, 10, 0), None),
        ];
        for (start, end, want) in cases {
            let got = match busy_time(tz, start, end) {
                FeedTime::AllDay {
                    start,
                    end_exclusive,
                } => Some((start, end_exclusive)),
                FeedTime::Timed { .. } => None,
            };
            assert_eq!(got, want, "{start} - {end}");
        }
    }

    #[test]
    fn file_names_are_safe_header_parameters() {
        let cases = [
            ("room-aurora", "-busy", "room-aurora-busy.ics"),
            ("a\"b;c", "", "a-b-c.ics"),
            ("", "-bookings", "calendar-bookings.ics"),
        ];
        for (stem, suffix, want) in cases {
            assert_eq!(safe_filename(stem, suffix), want);
        }
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
