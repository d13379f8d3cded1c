//! Credentials and access tokens: one cached token per credential, refreshed shortly
//! before it expires, never per request.
//!
//! Two token sources sit behind one cache ([`TokenCache`]):
//! - a service account key through yup-oauth2's `ServiceAccountAuthenticator`, which
//!   posts the signed JWT grant to the key's own `token_uri` (so a loopback emulator
//!   works) and supports domain-wide delegation via `subject`;
//! - an OAuth refresh token through our own `refresh_token` grant over reqwest,
//!   because yup-oauth2's `AuthorizedUserAuthenticator` hard-codes Google's token URL.
//!
//! The cache, not yup-oauth2, decides when to refresh: yup-oauth2 treats a token as
//! expired one minute early, which with short-lived tokens would mean one fetch per
//! request. A token endpoint answering `invalid_grant` (or 401) marks the credential
//! [`CredentialStatus::Invalid`] until a later fetch succeeds: dead tokens are visible,
//! not silent. A token endpoint that fails otherwise (HTTP 5xx such as Google's
//! `{"error":"internal_failure"}`, an unreachable endpoint) marks it
//! [`CredentialStatus::Failing`]; such errors are retryable, and the client retries
//! them with back-off like any server error, on both token sources. Every change of
//! status is logged once, naming the credential by its secret-free identity.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use google_calendar3::common::GetToken;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::{BoxError, GoogleError, GoogleErrorKind};
use super::stats::CallStats;

/// The OAuth scope every call uses, reads included, so one token serves all calls.
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// How bookcal authenticates against Google for one provider.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A service account key file's JSON content. `subject` impersonates a Workspace
    /// user (domain-wide delegation).
    ServiceAccount {
        key_json: String,
        subject: Option<String>,
    },
    /// An OAuth client and a user's refresh token, exchanged at `token_url`
    /// (`https://oauth2.googleapis.com/token` for Google).
    RefreshToken {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_url: String,
    },
}

/// Google's OAuth token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

impl Credentials {
    /// A service account from its key JSON, without delegation.
    pub fn service_account(key_json: impl Into<String>) -> Self {
        Credentials::ServiceAccount {
            key_json: key_json.into(),
            subject: None,
        }
    }

    /// A service account from a key file on disk.
    ///
    /// # Errors
    /// `InvalidCredentials` when the file cannot be read.
    pub async fn service_account_from_file(
        path: impl AsRef<std::path::Path>,
        subject: Option<String>,
    ) -> Result<Self, GoogleError> {
        let path = path.as_ref();
        let key_json = tokio::fs::read_to_string(path).await.map_err(|e| {
            GoogleError::new(
                GoogleErrorKind::InvalidCredentials,
                format!("cannot read service account key {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        Ok(Credentials::ServiceAccount { key_json, subject })
    }

    /// Checks a service-account key without the network: it parses, and its private
    /// key can sign. Returns the account's e-mail address.
    ///
    /// # Errors
    /// `InvalidCredentials`, saying what is wrong with the key.
    pub async fn check_service_account_key(key_json: &str) -> Result<String, GoogleError> {
        ServiceAccountFetcher::new(key_json, None, super::client::https_connector(), None).await?;
        let key = yup_oauth2::parse_service_account_key(key_json).map_err(|e| {
            GoogleError::new(
                GoogleErrorKind::InvalidCredentials,
                format!("unreadable service account key: {e}"),
            )
        })?;
        Ok(key.client_email)
    }

    /// A stable identity without secrets: clients of equal identity share one token
    /// cache and one rate-limit bucket.
    pub fn identity(&self) -> String {
        match self {
            Credentials::ServiceAccount { key_json, subject } => {
                let email = serde_json::from_str::<serde_json::Value>(key_json)
                    .ok()
                    .and_then(|v| v["client_email"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("key-{}", short_hash(key_json)));
                match subject {
                    Some(subject) => format!("sa:{email}:as:{subject}"),
                    None => format!("sa:{email}"),
                }
            }
            Credentials::RefreshToken {
                client_id,
                refresh_token,
                token_url,
                ..
            } => format!("rt:{token_url}:{client_id}:{}", short_hash(refresh_token)),
        }
    }
}

fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    hex::encode(&digest[..8])
}

impl fmt::Debug for Credentials {
    /// Secrets are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ServiceAccount { subject, .. } => f
                .debug_struct("ServiceAccount")
                .field("identity", &self.identity())
                .field("subject", subject)
                .finish_non_exhaustive(),
            Credentials::RefreshToken {
                client_id,
                token_url,
                ..
            } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .field("token_url", token_url)
                .finish_non_exhaustive(),
        }
    }
}

/// Whether a credential currently works, as far as the last token fetch (and, for a
/// client, Google's usage limits) tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStatus {
    /// No token fetched yet.
    Unknown,
    /// The last token fetch succeeded.
    Ok,
    /// The token endpoint rejected the credential (revoked, expired, wrong client):
    /// nothing works until a person replaces it.
    Invalid {
        reason: String,
        since: DateTime<Utc>,
    },
    /// The credential is fine but Google is not serving it now: the token endpoint
    /// fails (5xx, unreachable), or Google paused its writes after "Calendar usage
    /// limits exceeded." (`until` says till when). bookcal retries by itself.
    Failing {
        reason: String,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
}

impl CredentialStatus {
    /// `unknown`, `ok`, `invalid` or `failing`.
    pub fn label(&self) -> &'static str {
        match self {
            CredentialStatus::Unknown => "unknown",
            CredentialStatus::Ok => "ok",
            CredentialStatus::Invalid { .. } => "invalid",
            CredentialStatus::Failing { .. } => "failing",
        }
    }
}

/// A freshly fetched access token.
#[derive(Debug, Clone)]
pub(crate) struct FetchedToken {
    pub token: String,
    /// Lifetime as announced by the token endpoint (`expires_in`).
    pub expires_in: Option<Duration>,
}

type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<FetchedToken, GoogleError>> + Send + 'a>>;

/// Something that can fetch a new access token from a token endpoint.
pub(crate) trait TokenFetcher: Send + Sync {
    fn fetch(&self) -> FetchFuture<'_>;
}

#[derive(Debug)]
struct CachedToken {
    token: String,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The per-credential token cache. Holding its lock across a fetch makes concurrent
/// callers share one fetch.
pub(crate) struct TokenCache {
    /// The credential's secret-free identity, for the status-change log.
    label: String,
    fetcher: Box<dyn TokenFetcher>,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
    status: Mutex<CredentialStatus>,
    fetches: AtomicU64,
    refresh_margin: Duration,
    stats: Arc<CallStats>,
}

/// Tokens without `expires_in` are assumed to live this long (Google's usual hour).
const DEFAULT_TTL: Duration = Duration::from_secs(3600);

impl TokenCache {
    pub(crate) fn new(
        label: String,
        fetcher: Box<dyn TokenFetcher>,
        refresh_margin: Duration,
        stats: Arc<CallStats>,
    ) -> Self {
        TokenCache {
            label,
            fetcher,
            cached: tokio::sync::Mutex::new(None),
            status: Mutex::new(CredentialStatus::Unknown),
            fetches: AtomicU64::new(0),
            refresh_margin,
            stats,
        }
    }

    /// Token fetches so far.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub(crate) fn status(&self) -> CredentialStatus {
        match self.status.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_status(&self, new: CredentialStatus) {
        let mut guard = match self.status.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Keep the first moment of an ongoing invalidity or failure.
        let new = match (&*guard, new) {
            (CredentialStatus::Invalid { since, .. }, CredentialStatus::Invalid { reason, .. }) => {
                CredentialStatus::Invalid {
                    reason,
                    since: *since,
                }
            }
            (
                CredentialStatus::Failing { since, .. },
                CredentialStatus::Failing { reason, until, .. },
            ) => CredentialStatus::Failing {
                reason,
                since: *since,
                until,
            },
            (_, new) => new,
        };
        if guard.label() != new.label() {
            match &new {
                CredentialStatus::Invalid { reason, .. } => tracing::error!(
                    credential = %self.label, %reason,
                    "Google credential refused: it must be replaced"
                ),
                CredentialStatus::Failing { reason, .. } => tracing::warn!(
                    credential = %self.label, %reason,
                    "Google credential failing: retrying with back-off"
                ),
                CredentialStatus::Ok => tracing::info!(
                    credential = %self.label, previously = guard.label(),
                    "Google credential works"
                ),
                CredentialStatus::Unknown => {}
            }
        }
        *guard = new;
    }

    /// When to refresh a token of lifetime `ttl`: `margin` before expiry, but never
    /// later than half-way through the lifetime (short-lived tokens).
    fn refresh_after(&self, ttl: Duration) -> Duration {
        ttl.saturating_sub(self.refresh_margin).max(ttl / 2)
    }

    /// Forgets the cached token (after the API answered 401 with it).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The current token, fetching a new one when due.
    pub(crate) async fn token(&self) -> Result<String, GoogleError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some(c) = cached.as_ref() {
            if now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.stats.record_token_fetch();
        match self.fetcher.fetch().await {
            Ok(fetched) => {
                let ttl = fetched.expires_in.unwrap_or(DEFAULT_TTL);
                let now = Instant::now();
                *cached = Some(CachedToken {
                    token: fetched.token.clone(),
                    refresh_at: now + self.refresh_after(ttl),
                    expires_at: now + ttl,
                });
                self.set_status(CredentialStatus::Ok);
                Ok(fetched.token)
            }
            Err(e) if e.kind() == GoogleErrorKind::InvalidCredentials => {
                self.set_status(CredentialStatus::Invalid {
                    reason: e.to_string(),
                    since: Utc::now(),
                });
                *cached = None;
                Err(e.marked_token_fetch())
            }
            Err(e) => {
                // The endpoint is unreachable: an old token still valid is better than none.
                if let Some(c) = cached.as_ref() {
                    if Instant::now() < c.expires_at {
                        tracing::warn!(error = %e, "token refresh failed; using the cached token");
                        return Ok(c.token.clone());
                    }
                }
                if e.is_retryable() {
                    self.set_status(CredentialStatus::Failing {
                        reason: e.to_string(),
                        since: Utc::now(),
                        until: None,
                    });
                }
                Err(e.marked_token_fetch())
            }
        }
    }
}

/// What google-calendar3's hub calls for every request; answers from the cache.
#[derive(Clone)]
pub(crate) struct HubToken(pub(crate) Arc<TokenCache>);

impl GetToken for HubToken {
    fn get_token<'a>(
        &'a self,
        _scopes: &'a [&str],
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, BoxError>> + Send + 'a>> {
        Box::pin(async move {
            match self.0.token().await {
                Ok(token) => Ok(Some(token)),
                Err(e) => Err(Box::new(e) as BoxError),
            }
        })
    }
}

/// OAuth error codes that mean the credential itself is dead.
fn is_credential_error(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "invalid_client" | "unauthorized_client" | "access_denied"
    )
}

/// The `refresh_token` grant (RFC 6749 section 6) against a configurable token URL.
pub(crate) struct RefreshTokenFetcher {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_url: String,
}

impl RefreshTokenFetcher {
    pub(crate) fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_url: String,
    ) -> Self {
        RefreshTokenFetcher {
            http,
            client_id,
            client_secret,
            refresh_token,
            token_url,
        }
    }

    async fn fetch_once(&self) -> Result<FetchedToken, GoogleError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("refresh_token", self.refresh_token.as_str()),
        ];
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                GoogleError::new(
                    GoogleErrorKind::Transport,
                    format!("token endpoint {}: {e}", self.token_url),
                )
                .with_source(e)
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            GoogleError::new(GoogleErrorKind::Transport, format!("token answer: {e}"))
                .with_source(e)
        })?;
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if !(200..300).contains(&status) {
            let code = json
                .as_ref()
                .and_then(|j| j["error"].as_str())
                .map(str::to_owned);
            let description = json
                .as_ref()
                .and_then(|j| j["error_description"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            let credential_dead =
                matches!(status, 401 | 403) || code.as_deref().is_some_and(is_credential_error);
            let err =
                GoogleError::from_status(status, code, format!("token refresh: {description}"));
            return Err(if credential_dead {
                err.with_kind(GoogleErrorKind::InvalidCredentials)
            } else {
                err
            });
        }
        let json = json
            .ok_or_else(|| GoogleError::new(GoogleErrorKind::Other, "token answer is not JSON"))?;
        let token = json["access_token"].as_str().ok_or_else(|| {
            GoogleError::new(GoogleErrorKind::Other, "token answer has no access_token")
        })?;
        Ok(FetchedToken {
            token: token.to_owned(),
            expires_in: json["expires_in"].as_u64().map(Duration::from_secs),
        })
    }
}

impl TokenFetcher for RefreshTokenFetcher {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.fetch_once())
    }
}

type YupAuthenticator = yup_oauth2::authenticator::Authenticator<HttpsConnector<HttpConnector>>;

/// A service account via yup-oauth2 (JWT bearer grant to the key's `token_uri`).
pub(crate) struct ServiceAccountFetcher {
    auth: YupAuthenticator,
}

impl ServiceAccountFetcher {
    /// Parses the key and builds the authenticator (no network yet).
    ///
    /// # Errors
    /// `InvalidCredentials` when the key cannot be parsed or its private key read.
    pub(crate) async fn new(
        key_json: &str,
        subject: Option<&str>,
        connector: HttpsConnector<HttpConnector>,
        timeout: Option<Duration>,
    ) -> Result<Self, GoogleError> {
        let key = yup_oauth2::parse_service_account_key(key_json).map_err(|e| {
            GoogleError::new(
                GoogleErrorKind::InvalidCredentials,
                format!("unreadable service account key: {e}"),
            )
            .with_source(e)
        })?;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, String>(connector);
        let mut builder = yup_oauth2::ServiceAccountAuthenticator::with_client(
            key,
            yup_oauth2::CustomHyperClientBuilder::from(client),
        );
        if let Some(timeout) = timeout {
            builder = builder.with_timeout(timeout);
        }
        if let Some(subject) = subject {
            builder = builder.subject(subject);
        }
        let auth = builder.build().await.map_err(|e| {
            GoogleError::new(
                GoogleErrorKind::InvalidCredentials,
                format!("service account key rejected: {e}"),
            )
            .with_source(e)
        })?;
        Ok(ServiceAccountFetcher { auth })
    }
}

/// OAuth error codes that mean the request (not the credential) is wrong: a human
/// must fix the configuration, retrying cannot help.
fn is_request_error(code: &str) -> bool {
    matches!(
        code,
        "invalid_request" | "unsupported_grant_type" | "invalid_scope"
    )
}

/// Classifies yup-oauth2's errors. yup-oauth2 reads the token endpoint's JSON without
/// its HTTP status, so an OAuth error code is all there is: the codes of a dead
/// credential are [`GoogleErrorKind::InvalidCredentials`], those of a bad request
/// [`GoogleErrorKind::BadRequest`], and any other (Google's `internal_failure`,
/// RFC 6749's `server_error` and `temporarily_unavailable`) a server error to retry.
/// The status is left unknown rather than guessed.
fn from_yup_error(e: yup_oauth2::Error) -> GoogleError {
    use yup_oauth2::Error as Y;
    let (kind, reason) = match &e {
        Y::AuthError(auth) => {
            let code = auth.error.as_str().to_owned();
            let kind = if is_credential_error(&code) {
                GoogleErrorKind::InvalidCredentials
            } else if is_request_error(&code) {
                GoogleErrorKind::BadRequest
            } else {
                GoogleErrorKind::Server
            };
            (kind, Some(code))
        }
        Y::HttpError(_) | Y::HttpClientError(_) | Y::LowLevelError(_) => {
            (GoogleErrorKind::Transport, None)
        }
        // An undecodable token answer is most likely an outage page: worth a retry.
        Y::JSONError(_) => (GoogleErrorKind::Server, None),
        Y::UserError(_) | Y::CredentialSourceError(_) => {
            (GoogleErrorKind::InvalidCredentials, None)
        }
        _ => (GoogleErrorKind::Other, None),
    };
    let mut err = GoogleError::new(kind, format!("token fetch: {e}"));
    if let Some(reason) = reason {
        err = err.with_reason(reason);
    }
    err.with_source(e)
}

impl TokenFetcher for ServiceAccountFetcher {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let token = self
                .auth
                .force_refreshed_token(&[CALENDAR_SCOPE])
                .await
                .map_err(from_yup_error)?;
            let value = token.token().ok_or_else(|| {
                GoogleError::new(
                    GoogleErrorKind::Other,
                    "token endpoint sent no access token",
                )
            })?;
            let expires_in = token.expiration_time().map(|at| {
                let secs = at.unix_timestamp() - Utc::now().timestamp();
                Duration::from_secs(u64::try_from(secs).unwrap_or(0))
            });
            Ok(FetchedToken {
                token: value.to_owned(),
                expires_in,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Hands out `t1`, `t2`, ... with a fixed lifetime, or fails as told.
    struct Scripted {
        n: AtomicU32,
        ttl: Duration,
        fail: Mutex<Option<GoogleErrorKind>>,
    }

    impl TokenFetcher for Scripted {
        fn fetch(&self) -> FetchFuture<'_> {
            Box::pin(async move {
                let fail = *self.fail.lock().expect("lock");
                if let Some(kind) = fail {
                    return Err(GoogleError::new(kind, "scripted failure"));
                }
                let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(FetchedToken {
                    token: format!("t{n}"),
                    expires_in: Some(self.ttl),
                })
            })
        }
    }

    fn cache(ttl: Duration, margin: Duration) -> (Arc<TokenCache>, Arc<Scripted>) {
        let scripted = Arc::new(Scripted {
            n: AtomicU32::new(0),
            ttl,
            fail: Mutex::new(None),
        });
        struct Shared(Arc<Scripted>);
        impl TokenFetcher for Shared {
            fn fetch(&self) -> FetchFuture<'_> {
                self.0.fetch()
            }
        }
        let cache = TokenCache::new(
            "test".into(),
            Box::new(Shared(Arc::clone(&scripted))),
            margin,
            Arc::new(CallStats::new()),
        );
        (Arc::new(cache), scripted)
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_is_cached_and_refreshed_a_margin_before_expiry() {
        let (cache, _) = cache(Duration::from_secs(3600), Duration::from_secs(60));
        assert_eq!(cache.status(), CredentialStatus::Unknown);
        assert_eq!(cache.token().await.expect("token"), "t1");
        for _ in 0..100 {
            assert_eq!(cache.token().await.expect("token"), "t1");
        }
        assert_eq!(cache.fetches(), 1);
        assert_eq!(cache.status(), CredentialStatus::Ok);
        tokio::time::advance(Duration::from_secs(3539)).await;
        assert_eq!(cache.token().await.expect("token"), "t1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.token().await.expect("token"), "t2");
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_are_refreshed_half_way_not_on_every_request() {
        let (cache, _) = cache(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(cache.token().await.expect("token"), "t1");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(cache.token().await.expect("token"), "t1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.token().await.expect("token"), "t2");
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let (cache, _) = cache(Duration::from_secs(3600), Duration::from_secs(60));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = Arc::clone(&cache);
            tasks.push(tokio::spawn(async move { cache.token().await }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("token"), "t1");
        }
        assert_eq!(cache.fetches(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_credential_is_marked_invalid_until_a_later_success() {
        let (cache, scripted) = cache(Duration::from_secs(100), Duration::from_secs(10));
        *scripted.fail.lock().expect("lock") = Some(GoogleErrorKind::InvalidCredentials);
        let e = cache.token().await.expect_err("must fail");
        assert_eq!(e.kind(), GoogleErrorKind::InvalidCredentials);
        let since = match cache.status() {
            CredentialStatus::Invalid { since, .. } => since,
            other => panic!("expected Invalid, got {other:?}"),
        };
        cache.token().await.expect_err("still failing");
        match cache.status() {
            CredentialStatus::Invalid { since: later, .. } => assert_eq!(later, since),
            other => panic!("expected Invalid, got {other:?}"),
        }
        *scripted.fail.lock().expect("lock") = None;
        assert_eq!(cache.token().await.expect("token"), "t1");
        assert_eq!(cache.status(), CredentialStatus::Ok);
    }

    #[tokio::test(start_paused = true)]
    async fn a_transport_failure_on_refresh_falls_back_to_the_still_valid_token() {
        let (cache, scripted) = cache(Duration::from_secs(100), Duration::from_secs(10));
        assert_eq!(cache.token().await.expect("token"), "t1");
        tokio::time::advance(Duration::from_secs(95)).await;
        *scripted.fail.lock().expect("lock") = Some(GoogleErrorKind::Transport);
        assert_eq!(cache.token().await.expect("token"), "t1");
        assert_eq!(cache.status(), CredentialStatus::Ok);
        tokio::time::advance(Duration::from_secs(10)).await;
        let e = cache.token().await.expect_err("expired and unreachable");
        assert_eq!(e.kind(), GoogleErrorKind::Transport);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let creds = Credentials::RefreshToken {
            client_id: "client".into(),
            client_secret: "s3cret".into(),
            refresh_token: "r3fresh".into(),
            token_url: "http://127.0.0.1:1/token".into(),
        };
        let shown = format!("{creds:?} {}", creds.identity());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("r3fresh"), "{shown}");
        let sa = Credentials::service_account(
            r#"{"client_email":"sa@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----xyz"}"#,
        );
        let shown = format!("{sa:?}");
        assert!(shown.contains("sa@p.iam.gserviceaccount.com"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}

#[cfg(test)]
mod refresh_token_tests {
    //! The refresh-token grant against a tiny local token endpoint.
    use super::*;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Form, Json, Router};
    use std::collections::HashMap;

    #[derive(Clone)]
    struct Endpoint {
        hits: Arc<AtomicU64>,
        expires_in: u64,
        revoked: Arc<std::sync::atomic::AtomicBool>,
    }

    async fn token(
        State(ep): State<Endpoint>,
        Form(form): Form<HashMap<String, String>>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        let n = ep.hits.fetch_add(1, Ordering::SeqCst) + 1;
        let good = form.get("grant_type").map(String::as_str) == Some("refresh_token")
            && form.get("client_id").map(String::as_str) == Some("cid")
            && form.get("client_secret").map(String::as_str) == Some("csecret")
            && form.get("refresh_token").map(String::as_str) == Some("rtok");
        if !good || ep.revoked.load(Ordering::SeqCst) {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
                ),
            );
        }
        (
            StatusCode::OK,
            Json(
                serde_json::json!({"access_token": format!("at{n}"), "expires_in": ep.expires_in, "token_type": "Bearer"}),
            ),
        )
    }

    async fn serve(expires_in: u64) -> (String, Endpoint) {
        let ep = Endpoint {
            hits: Arc::new(AtomicU64::new(0)),
            expires_in,
            revoked: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let app = Router::new()
            .route("/token", post(token))
            .with_state(ep.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), ep)
    }

    fn cache_for(url: &str, refresh_token: &str) -> TokenCache {
        let fetcher = RefreshTokenFetcher::new(
            reqwest::Client::new(),
            "cid".into(),
            "csecret".into(),
            refresh_token.into(),
            url.into(),
        );
        TokenCache::new(
            "test".into(),
            Box::new(fetcher),
            Duration::from_secs(60),
            Arc::new(CallStats::new()),
        )
    }

    #[tokio::test]
    async fn the_refresh_token_source_fetches_once_and_serves_the_cached_token() {
        let (url, ep) = serve(3600).await;
        let cache = cache_for(&url, "rtok");
        for _ in 0..10 {
            assert_eq!(cache.token().await.expect("token"), "at1");
        }
        assert_eq!(ep.hits.load(Ordering::SeqCst), 1);
        assert_eq!(cache.status(), CredentialStatus::Ok);
    }

    #[tokio::test]
    async fn the_refresh_token_source_refetches_a_token_that_is_due() {
        // expires_in 0: every token is due at once, so each call refreshes.
        let (url, ep) = serve(0).await;
        let cache = cache_for(&url, "rtok");
        assert_eq!(cache.token().await.expect("token"), "at1");
        assert_eq!(cache.token().await.expect("token"), "at2");
        assert_eq!(ep.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_revoked_refresh_token_is_invalid_credentials_with_the_oauth_reason() {
        let (url, ep) = serve(3600).await;
        ep.revoked.store(true, Ordering::SeqCst);
        let cache = cache_for(&url, "rtok");
        let e = cache.token().await.expect_err("revoked");
        assert_eq!(e.kind(), GoogleErrorKind::InvalidCredentials);
        assert_eq!(e.reason(), Some("invalid_grant"));
        assert_eq!(e.status(), Some(400));
        assert!(!e.is_retryable());
        assert!(matches!(cache.status(), CredentialStatus::Invalid { .. }));
        ep.revoked.store(false, Ordering::SeqCst);
        cache.token().await.expect("reinstated");
        assert_eq!(cache.status(), CredentialStatus::Ok);
    }

    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_a_retryable_transport_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let cache = cache_for(&format!("http://{addr}/token"), "rtok");
        let e = cache.token().await.expect_err("unreachable");
        assert_eq!(e.kind(), GoogleErrorKind::Transport);
        assert!(e.is_retryable());
        assert!(e.is_token_fetch());
        assert_eq!(cache.status().label(), "failing");
    }
}
