//! The HTTP API: the booking slice of the Waldur marketplace REST API, plus health,
//! readiness, metrics and the OpenAPI document ([`ops`], [`openapi`]).
//!
//! One file per resource, handlers named by verb. Every handler checks in the order
//! Waldur's clients expect: 401 (extractor) -> 404 (not visible to the caller) -> 403
//! (visible, not allowed) -> 409 (state) -> 400 (body), and never changes stored data
//! before all checks pass (changes go through `Store::mutate`).

pub mod auth;
pub mod bookings;
pub mod directory;
pub mod error;
pub mod feed_tokens;
pub mod feeds;
pub mod listing;
pub mod offerings;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod render;
pub mod resources;
pub mod throttle;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

use crate::domain::Id;
use crate::store::Store;
pub use error::ApiError;

/// Tells whether Google credentials exist for a provider (organisation), and how
/// they are doing.
pub trait GoogleCredentialsCheck: Send + Sync {
    fn has_credentials(&self, provider: Id) -> bool;

    /// The health of the credential that serves `provider`, if any.
    fn health(&self, _provider: Id) -> Option<crate::domain::calendar::CredentialHealth> {
        None
    }

    /// The health of every configured credential.
    fn all_health(&self) -> Vec<crate::domain::calendar::CredentialHealth> {
        Vec::new()
    }
}

/// Credentials are configured for everyone (a service-account key) or for nobody.
pub struct StaticCredentials(pub bool);

impl GoogleCredentialsCheck for StaticCredentials {
    fn has_credentials(&self, _provider: Id) -> bool {
        self.0
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub google: Arc<dyn GoogleCredentialsCheck>,
    /// Woken whenever a job is queued (the store's notifier, see `Store::job_wakeup`).
    pub jobs_ready: Arc<Notify>,
    /// Public base URL (`https://bookcal.example.org`); from the Host header when unset.
    pub public_url: Option<String>,
    /// The iCalendar feeds service (what each feed shows, its render cache).
    pub feeds: Arc<crate::feeds::FeedService>,
    /// Counters and the handles `/metrics` and `/ready` read.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How old an offering's busy time read from Google may be before new orders on
    /// it are refused (`sync.max_busy_age_secs`; `None`: any age).
    pub max_busy_age: Option<chrono::Duration>,
    /// Who the client is and its anonymous request rate (`http` settings).
    pub clients: Arc<throttle::ClientLimits>,
}

impl AppState {
    pub fn new(store: Arc<Store>) -> Self {
        let feeds = crate::feeds::FeedService::new(store.clone(), Default::default());
        AppState {
            jobs_ready: store.job_wakeup(),
            store,
            google: Arc::new(StaticCredentials(false)),
            public_url: None,
            feeds: Arc::new(feeds),
            metrics: Arc::new(crate::metrics::Metrics::new(Vec::new())),
            max_busy_age: None,
            clients: Arc::new(throttle::ClientLimits::new(
                &crate::config::HttpSettings::default(),
            )),
        }
    }
}

/// The absolute base URL of this request (`http://host:port`), without a trailing slash.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(u) = &state.public_url {
            return Ok(BaseUrl(u.trim_end_matches('/').to_string()));
        }
        let host = parts
            .headers
            .get("x-forwarded-host")
            .or_else(|| parts.headers.get(axum::http::header::HOST))
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        let scheme = match parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
        {
            Some("https") => "https",
            _ => "http",
        };
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

/// A request body read as bytes, with oversize bodies answered as a DRF-style 413.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| ApiError::from_body(e.status(), &e))
    }
}

/// A `multipart/form-data` upload; any other content type is a DRF-style 415.
pub struct Upload(pub axum::extract::Multipart);

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("multipart/form-data") {
            return Err(ApiError::UnsupportedMedia(content_type));
        }
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(Upload)
            .map_err(|e| ApiError::field("attachment", e.body_text()))
    }
}

impl RawBody {
    /// Parses the body as a JSON object; an empty body is an empty object.
    ///
    /// # Errors
    /// 400 `{"detail": "JSON parse error - ..."}` like DRF.
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_slice::<serde_json::Value>(&self.0) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiError::BadFields(serde_json::json!({
                "non_field_errors": ["Invalid data. Expected a dictionary, but got a different type."]
            }))),
            Err(e) => Err(ApiError::BadFields(serde_json::json!({
                "detail": format!("JSON parse error - {e}")
            }))),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The API router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/booking-offerings/", get(offerings::list))
        .route("/api/booking-offerings/{uuid}/", get(offerings::retrieve))
        .route(
            "/api/booking-offerings/{uuid}/google_calendar_sync/",
            post(offerings::google_calendar_sync),
        )
        .route(
            "/api/booking-offerings/{uuid}/share_google_calendar/",
            post(offerings::share_google_calendar),
        )
        .route(
            "/api/booking-offerings/{uuid}/unshare_google_calendar/",
            post(offerings::unshare_google_calendar),
        )
        .route("/api/booking-resources/", get(resources::list))
        .route("/api/booking-resources/{uuid}/", get(resources::retrieve))
        .route(
            "/api/booking-resources/{uuid}/accept/",
            post(resources::accept),
        )
        .route(
            "/api/booking-resources/{uuid}/reject/",
            post(resources::reject),
        )
        .route(
            "/api/marketplace-resources/{uuid}/terminate/",
            post(resources::terminate),
        )
        .route(
            "/api/marketplace-orders/",
            get(orders::list).post(orders::create),
        )
        .route(
            "/api/marketplace-orders/{uuid}/",
            get(orders::retrieve).delete(orders::destroy),
        )
        .route(
            "/api/marketplace-orders/{uuid}/offering/",
            get(orders::offering),
        )
        .route(
            "/api/marketplace-orders/{uuid}/approve_by_consumer/",
            post(orders::approve_by_consumer),
        )
        .route(
            "/api/marketplace-orders/{uuid}/approve_by_provider/",
            post(orders::approve_by_provider),
        )
        .route(
            "/api/marketplace-orders/{uuid}/reject_by_consumer/",
            post(orders::reject_by_consumer),
        )
        .route(
            "/api/marketplace-orders/{uuid}/reject_by_provider/",
            post(orders::reject_by_provider),
        )
        .route(
            "/api/marketplace-orders/{uuid}/cancel/",
            post(orders::cancel),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_state_executing/",
            post(orders::set_state_executing),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_state_done/",
            post(orders::set_state_done),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_state_erred/",
            post(orders::set_state_erred),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_backend_id/",
            post(orders::set_backend_id),
        )
        .route(
            "/api/marketplace-orders/{uuid}/unlink/",
            post(orders::unlink),
        )
        .route(
            "/api/marketplace-orders/{uuid}/update_attachment/",
            post(orders::update_attachment),
        )
        .route(
            "/api/marketplace-orders/{uuid}/delete_attachment/",
            post(orders::delete_attachment),
        )
        .route(
            "/api/marketplace-orders/{uuid}/attachment/",
            get(orders::attachment),
        )
        .route("/api/marketplace-bookings/{uuid}/", get(bookings::list))
        .route(
            "/api/booking-offerings/{uuid}/feed_tokens/",
            get(feed_tokens::list_offering).post(feed_tokens::create_offering),
        )
        .route(
            "/api/booking-offerings/{uuid}/feed_tokens/{token_uuid}/",
            axum::routing::delete(feed_tokens::destroy_offering),
        )
        .route(
            "/api/feed-tokens/",
            get(feed_tokens::list_mine).post(feed_tokens::create_mine),
        )
        .route(
            "/api/feed-tokens/{token_uuid}/",
            axum::routing::delete(feed_tokens::destroy_mine),
        )
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/api/schema/", get(openapi::schema))
        .route("/api/", get(directory::root))
        .route("/api/projects/", get(directory::projects_list))
        .route("/api/projects/{uuid}/", get(directory::projects_retrieve))
        .route("/api/customers/", get(directory::customers_list))
        .route("/api/customers/{uuid}/", get(directory::customers_retrieve))
        .route("/api/users/", get(directory::users_list))
        .route("/api/users/{uuid}/", get(directory::users_retrieve))
        .route(
            "/api/marketplace-public-offerings/",
            get(directory::public_offerings_list),
        )
        .route(
            "/api/marketplace-public-offerings/{uuid}/",
            get(directory::public_offerings_retrieve),
        )
        .route(
            "/api/marketplace-categories/",
            get(directory::categories_list),
        )
        .route(
            "/api/marketplace-categories/{uuid}/",
            get(directory::categories_retrieve),
        );
    // 405s and extractor rejections get their DRF shape from `server::with_limits`,
    // which also limits bodies (`http.max_body_bytes`).
    // Anonymous requests are rate-limited per client, inside the observation layer
    // (429s are counted like other answers).
    let limit = middleware::from_fn_with_state(state.clone(), throttle::limit);
    api.fallback(not_found)
        .layer(limit.clone())
        .layer(middleware::from_fn_with_state(state.clone(), ops::observe))
        .layer(axum::extract::DefaultBodyLimit::disable())
        // Feeds are the hot path (calendar apps poll them; 304s are most answers) and
        // not DRF endpoints: outside the DRF and per-request observation layers. They
        // are counted by `bookcal_feed_renders_total` / `bookcal_feed_cache_hits_total`
        // and never log their paths (which may hold a secret). Public feeds count
        // against their client's rate; token feeds only learn who the client is.
        .merge(
            Router::new()
                .route("/feeds/offerings/{file}", get(feeds::public_feed))
                .route("/feeds/t/{file}", get(feeds::token_feed))
                .layer(limit),
        )
        .with_state(state)
}

/// The router of connections past `http.max_connections`: `/health` and `/ready`
/// answer as usual, everything else is a 503 (try again later).
pub fn probe_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .fallback(|| async { ApiError::Overloaded })
        .layer(middleware::from_fn_with_state(state.clone(), ops::observe))
        .with_state(state)
}

/// Parses a path UUID (hex or dashed); anything else is "not found".
pub fn path_id(s: &str) -> Result<Id, ApiError> {
    Id::parse(s).ok_or(ApiError::NotFound)
}
