//! `GoogleCalendarClient`: [`CalendarApi`] over google-calendar3's `CalendarHub`.
//!
//! Every call goes through [`GoogleCalendarClient::call`]: hold back writes while the
//! credential's usage-limit pause lasts, wait for its rate-limit bucket, run the
//! request under a timeout, classify the error, retry retryable ones with backoff
//! (also 404/403 on a calendar this credential created moments ago: Google needs a
//! few seconds to make it usable), count the outcome. A 401 drops the cached access
//! token and tries once more with a fresh one. A 403 `quotaExceeded` pauses the
//! credential's writes ([`UsageGuard`]); `calendars.insert` also spends the hourly
//! creation budget. Path ids are percent-encoded here because
//! google-calendar3 pastes them into the URL verbatim (`#` in an id would start a
//! fragment). Every call carries the full `calendar` scope.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use google_calendar3::api::{self, Scope};
use google_calendar3::{common, CalendarHub};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::auth::{
    CredentialStatus, Credentials, HubToken, RefreshTokenFetcher, ServiceAccountFetcher,
    TokenCache, TokenFetcher,
};
use super::channels::{channel_from_api, stop_to_api, watch_to_api, WatchChannel, WatchRequest};
use super::convert::{calendar_from_api, calendar_to_api, event_from_api, event_to_api};
use super::error::{from_api_error, GoogleError, GoogleErrorKind};
use super::limits::{UsageGuard, UsageLimits};
use super::ratelimit::{RateLimit, TokenBucket};
use super::retry::RetryPolicy;
use super::stats::CallStats;
use super::types::{AclRole, Calendar, Event, EventPage, EventStatus, ListMode};
use super::CalendarApi;

/// Google's API root.
pub const GOOGLE_ROOT_URL: &str = "https://www.googleapis.com/";

/// Characters kept verbatim in a path id: RFC 3986 unreserved.
const PATH_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes an id for use as one path segment.
pub(crate) fn path_id(id: &str) -> String {
    utf8_percent_encode(id, PATH_ID).to_string()
}

/// Tuning shared by every client a factory makes.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// API root with a trailing slash; the API lives at `{root}calendar/v3/`.
    pub root_url: String,
    pub retry: RetryPolicy,
    /// Budget per credential.
    pub rate_limit: RateLimit,
    /// Per attempt, token fetch included; `None` waits forever (only for tests under
    /// paused time, where a pending timeout would be the next timer to fire).
    pub request_timeout: Option<Duration>,
    /// Refresh an access token this long before it expires (at most half its life).
    pub token_refresh_margin: Duration,
    /// `maxResults` for `events.list`; `None` keeps Google's default of 250.
    pub page_size: Option<u32>,
    /// The calendar-creation budget, the usage-limit pause, the fresh-calendar window.
    pub limits: UsageLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            root_url: GOOGLE_ROOT_URL.to_owned(),
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::default(),
            request_timeout: Some(Duration::from_secs(60)),
            token_refresh_margin: Duration::from_secs(300),
            page_size: None,
            limits: UsageLimits::default(),
        }
    }
}

impl ClientOptions {
    /// `root_url` with exactly one trailing slash.
    fn root(&self) -> String {
        format!("{}/", self.root_url.trim_end_matches('/'))
    }
}

pub(crate) type Connector = HttpsConnector<HttpConnector>;
type Hub = CalendarHub<Connector>;

/// HTTPS with the system's roots (Mozilla's if there are none), plain HTTP allowed
/// for a loopback emulator.
pub(crate) fn https_connector() -> Connector {
    let builder = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "no native root certificates; using webpki roots");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }
    };
    builder.https_or_http().enable_http1().build()
}

pub(crate) fn hub_http_client(connector: Connector) -> common::Client<Connector> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// What every client of one credential shares: its token cache, its bucket and its
/// view of Google's usage limits.
pub(crate) struct CredentialState {
    pub(crate) token: Arc<TokenCache>,
    pub(crate) bucket: Arc<TokenBucket>,
    pub(crate) guard: Arc<UsageGuard>,
}

impl CredentialState {
    pub(crate) async fn new(
        credentials: &Credentials,
        options: &ClientOptions,
        stats: &Arc<CallStats>,
        connector: &Connector,
        http: &reqwest::Client,
    ) -> Result<Self, GoogleError> {
        let fetcher: Box<dyn TokenFetcher> = match credentials {
            Credentials::ServiceAccount { key_json, subject } => Box::new(
                ServiceAccountFetcher::new(
                    key_json,
                    subject.as_deref(),
                    connector.clone(),
                    options.request_timeout,
                )
                .await?,
            ),
            Credentials::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                token_url,
            } => Box::new(RefreshTokenFetcher::new(
                http.clone(),
                client_id.clone(),
                client_secret.clone(),
                refresh_token.clone(),
                token_url.clone(),
            )),
        };
        Ok(CredentialState {
            token: Arc::new(TokenCache::new(
                credentials.identity(),
                fetcher,
                options.token_refresh_margin,
                Arc::clone(stats),
            )),
            bucket: Arc::new(TokenBucket::new(options.rate_limit)),
            guard: Arc::new(UsageGuard::new(options.limits)),
        })
    }
}

pub(crate) fn token_http_client(timeout: Option<Duration>) -> Result<reqwest::Client, GoogleError> {
    let mut builder = reqwest::Client::builder();
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().map_err(|e| {
        GoogleError::new(GoogleErrorKind::Other, format!("http client: {e}")).with_source(e)
    })
}

/// Which failures a call may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryOn {
    /// Every retryable error.
    Retryable,
    /// Only errors that prove the request was not executed (rate limits, a failed
    /// token fetch): for calls that must not run twice, like creating a calendar.
    RateLimitOnly,
}

/// What [`GoogleCalendarClient::call`] needs to know about a call.
#[derive(Debug, Clone, Copy)]
struct Call<'a> {
    method: &'static str,
    retry_on: RetryOn,
    /// Changes something (held back while writes are paused).
    write: bool,
    /// The calendar it is on (404/403 on a fresh one are retried).
    calendar: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn read(method: &'static str, calendar: Option<&'a str>) -> Self {
        Call {
            method,
            retry_on: RetryOn::Retryable,
            write: false,
            calendar,
        }
    }

    fn write(method: &'static str, calendar: Option<&'a str>) -> Self {
        Call {
            write: true,
            ..Call::read(method, calendar)
        }
    }
}

/// The production [`CalendarApi`].
pub struct GoogleCalendarClient {
    hub: Hub,
    token: Arc<TokenCache>,
    bucket: Arc<TokenBucket>,
    guard: Arc<UsageGuard>,
    stats: Arc<CallStats>,
    options: ClientOptions,
}

/// Builds a [`GoogleCalendarClient`] with its own token cache and bucket.
pub struct GoogleCalendarClientBuilder {
    credentials: Credentials,
    options: ClientOptions,
    stats: Option<Arc<CallStats>>,
}

impl GoogleCalendarClientBuilder {
    /// API root, e.g. an emulator's `http://127.0.0.1:PORT/`.
    pub fn root_url(mut self, root_url: impl Into<String>) -> Self {
        self.options.root_url = root_url.into();
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.options.retry = retry;
        self
    }

    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.options.rate_limit = rate_limit;
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Report into these shared counters.
    pub fn stats(mut self, stats: Arc<CallStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Builds the client. No network traffic happens until the first call.
    ///
    /// # Errors
    /// `InvalidCredentials` for an unreadable service account key.
    pub async fn build(self) -> Result<GoogleCalendarClient, GoogleError> {
        let stats = self.stats.unwrap_or_default();
        let connector = https_connector();
        let http = token_http_client(self.options.request_timeout)?;
        let state =
            CredentialState::new(&self.credentials, &self.options, &stats, &connector, &http)
                .await?;
        Ok(GoogleCalendarClient::from_parts(
            hub_http_client(connector),
            &state,
            self.options,
            stats,
        ))
    }
}

impl GoogleCalendarClient {
    /// Starts building a client for `credentials` (Google's root URL by default).
    pub fn builder(credentials: Credentials) -> GoogleCalendarClientBuilder {
        GoogleCalendarClientBuilder {
            credentials,
            options: ClientOptions::default(),
            stats: None,
        }
    }

    pub(crate) fn from_parts(
        http: common::Client<Connector>,
        state: &CredentialState,
        options: ClientOptions,
        stats: Arc<CallStats>,
    ) -> Self {
        let mut hub = CalendarHub::new(http, HubToken(Arc::clone(&state.token)));
        let root = options.root();
        hub.base_url(format!("{root}calendar/v3/"));
        hub.root_url(root);
        hub.user_agent(format!(
            "bookcal/{} google-api-rust-client/7",
            env!("CARGO_PKG_VERSION")
        ));
        GoogleCalendarClient {
            hub,
            token: Arc::clone(&state.token),
            bucket: Arc::clone(&state.bucket),
            guard: Arc::clone(&state.guard),
            stats,
            options,
        }
    }

    /// Whether the credential works: the last token fetch, and whether Google paused
    /// its writes (then [`CredentialStatus::Failing`] with the pause's end).
    pub fn credential_status(&self) -> CredentialStatus {
        let token = self.token.status();
        match (&token, self.guard.pause()) {
            (CredentialStatus::Ok | CredentialStatus::Unknown, Some(pause)) => {
                CredentialStatus::Failing {
                    reason: pause.reason,
                    since: pause.since,
                    until: Some(pause.until),
                }
            }
            _ => token,
        }
    }

    /// The counters this client reports into.
    pub fn stats(&self) -> Arc<CallStats> {
        Arc::clone(&self.stats)
    }

    /// Whether both clients use the same token cache and bucket.
    pub fn shares_credential_with(&self, other: &GoogleCalendarClient) -> bool {
        Arc::ptr_eq(&self.token, &other.token) && Arc::ptr_eq(&self.bucket, &other.bucket)
    }

    /// Access tokens fetched for this client's credential so far.
    pub fn token_fetches(&self) -> u64 {
        self.token.fetches()
    }

    /// One logical call: usage-limit pause, rate limit, timeout, retries, statistics.
    async fn call<T, F, Fut>(&self, call: Call<'_>, mut attempt: F) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GoogleError>>,
    {
        let Call {
            method,
            retry_on,
            write,
            calendar,
        } = call;
        if write {
            if let Err((after, why)) = self.guard.check_writes() {
                self.stats.record(method, "deferred");
                return Err(GoogleError::deferred(after, why).with_method(method));
            }
        }
        let policy = self.options.retry;
        let mut attempts: u32 = 0;
        let mut retries: u32 = 0;
        let mut renewed_token = false;
        loop {
            attempts += 1;
            let waited = self.bucket.acquire().await;
            if !waited.is_zero() {
                self.stats.record_wait(waited);
            }
            let result = match self.options.request_timeout {
                None => attempt().await,
                Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                    Ok(result) => result,
                    Err(_) => Err(GoogleError::new(
                        GoogleErrorKind::Transport,
                        format!("no answer within {limit:?}"),
                    )),
                },
            };
            let err = match result {
                Ok(value) => {
                    let outcome = if attempts == 1 { "ok" } else { "retried" };
                    self.stats.record(method, outcome);
                    if write {
                        self.guard.write_succeeded();
                    }
                    return Ok(value);
                }
                Err(err) => err,
            };
            if err.kind() == GoogleErrorKind::UsageLimited {
                let pause = self.guard.trip(method == "calendar.calendars.insert");
                tracing::warn!(
                    method,
                    ?pause,
                    "Google's usage limits: pausing this credential's writes"
                );
                self.stats.record(method, &format!("error:{}", err.label()));
                return Err(err.with_retry_after(pause).with_method(method));
            }
            let more = attempts < policy.max_attempts.max(1);
            if more && err.kind() == GoogleErrorKind::Unauthorized && !renewed_token {
                // The cached token may have been revoked early: fetch a new one, once.
                renewed_token = true;
                self.token.invalidate().await;
                self.stats.record_retry();
                continue;
            }
            // Google needs a few seconds to make a new calendar usable.
            let settling = matches!(
                err.kind(),
                GoogleErrorKind::NotFound | GoogleErrorKind::Forbidden
            ) && calendar.is_some_and(|c| self.guard.is_fresh(c));
            let allowed = settling
                || match retry_on {
                    RetryOn::Retryable => err.is_retryable(),
                    RetryOn::RateLimitOnly => {
                        err.kind() == GoogleErrorKind::RateLimited
                            || (err.is_token_fetch() && err.is_retryable())
                    }
                };
            if more && allowed {
                let delay = policy.backoff(retries);
                tracing::debug!(method, error = %err, ?delay, attempt = attempts, "retrying");
                self.stats.record_retry();
                retries += 1;
                tokio::time::sleep(delay).await;
                continue;
            }
            self.stats.record(method, &format!("error:{}", err.label()));
            return Err(err.with_method(method));
        }
    }
}

/// Awaits a google-calendar3 call and maps its error.
async fn run<T>(
    fut: impl Future<Output = common::Result<(common::Response, T)>>,
) -> Result<T, GoogleError> {
    match fut.await {
        Ok((_, value)) => Ok(value),
        Err(e) => Err(from_api_error(e).await),
    }
}

/// Awaits a google-calendar3 call without a body (deletes).
async fn run_empty(
    fut: impl Future<Output = common::Result<common::Response>>,
) -> Result<(), GoogleError> {
    match fut.await {
        Ok(_) => Ok(()),
        Err(e) => Err(from_api_error(e).await),
    }
}

/// Guards against a server that never stops paging.
const MAX_PAGES: u32 = 100_000;

#[async_trait]
impl CalendarApi for GoogleCalendarClient {
    async fn calendar_insert(
        &self,
        summary: &str,
        time_zone: &str,
    ) -> Result<Calendar, GoogleError> {
        let request = api::Calendar {
            summary: Some(summary.to_owned()),
            time_zone: Some(time_zone.to_owned()),
            ..Default::default()
        };
        // Paced by the hourly budget, and never retried on ambiguous failures: a
        // second calendar is worse than an error, and Google puts accounts that create
        // many calendars in read-only mode.
        const METHOD: &str = "calendar.calendars.insert";
        if let Err((after, why)) = self.guard.check_writes() {
            self.stats.record(METHOD, "deferred");
            return Err(GoogleError::deferred(after, why).with_method(METHOD));
        }
        let admitted = match self.guard.admit_creation() {
            Ok(admitted) => admitted,
            Err((after, why)) => {
                self.stats.record(METHOD, "deferred");
                return Err(GoogleError::deferred(after, why).with_method(METHOD));
            }
        };
        let call = Call {
            retry_on: RetryOn::RateLimitOnly,
            ..Call::write(METHOD, None)
        };
        let created = self
            .call(call, || {
                run(self
                    .hub
                    .calendars()
                    .insert(request.clone())
                    .add_scope(Scope::Full)
                    .doit())
            })
            .await;
        match created {
            Ok(calendar) => {
                let calendar = calendar_from_api(calendar);
                self.guard.note_created(&calendar.id);
                Ok(calendar)
            }
            Err(e) => {
                // Refused for certain (a 4xx, or never sent): nothing was created.
                let refused = e.is_token_fetch()
                    || e.kind() == GoogleErrorKind::Deferred
                    || e.status().is_some_and(|s| (400..500).contains(&s));
                if refused {
                    self.guard.release(admitted);
                }
                Err(e)
            }
        }
    }

    async fn calendar_get(&self, id: &str) -> Result<Calendar, GoogleError> {
        let call = Call::read("calendar.calendars.get", Some(id));
        let id = path_id(id);
        self.call(call, || {
            run(self.hub.calendars().get(&id).add_scope(Scope::Full).doit())
        })
        .await
        .map(calendar_from_api)
    }

    async fn calendar_update(&self, cal: &Calendar) -> Result<Calendar, GoogleError> {
        let call = Call::write("calendar.calendars.update", Some(&cal.id));
        let id = path_id(&cal.id);
        let request = calendar_to_api(cal);
        self.call(call, || {
            run(self
                .hub
                .calendars()
                .update(request.clone(), &id)
                .add_scope(Scope::Full)
                .doit())
        })
        .await
        .map(calendar_from_api)
    }

    async fn calendar_delete(&self, id: &str) -> Result<(), GoogleError> {
        let call = Call::write("calendar.calendars.delete", Some(id));
        let id = path_id(id);
        self.call(call, || {
            run_empty(
                self.hub
                    .calendars()
                    .delete(&id)
                    .add_scope(Scope::Full)
                    .doit(),
            )
        })
        .await
    }

    async fn events_list(
        &self,
        calendar_id: &str,
        mode: ListMode,
    ) -> Result<EventPage, GoogleError> {
        let id = path_id(calendar_id);
        let mut page = EventPage::default();
        let mut page_token: Option<String> = None;
        loop {
            let items = self
                .call(
                    Call::read("calendar.events.list", Some(calendar_id)),
                    || {
                        let mut call = self.hub.events().list(&id).add_scope(Scope::Full);
                        match &mode {
                            ListMode::Full {
                                show_deleted,
                                time_min,
                                single_events,
                            } => {
                                call = call
                                    .show_deleted(*show_deleted)
                                    .single_events(*single_events);
                                if let Some(time_min) = time_min {
                                    call = call.time_min(*time_min);
                                }
                            }
                            ListMode::Incremental {
                                sync_token,
                                show_deleted,
                                single_events,
                            } => {
                                call = call.sync_token(sync_token).single_events(*single_events);
                                if *show_deleted {
                                    call = call.show_deleted(true);
                                }
                            }
                        }
                        if let Some(size) = self.options.page_size {
                            call = call.max_results(i32::try_from(size).unwrap_or(2500));
                        }
                        if let Some(token) = &page_token {
                            call = call.page_token(token);
                        }
                        run(call.doit())
                    },
                )
                .await
                .map_err(|e| match (&mode, e.status()) {
                    (ListMode::Incremental { .. }, Some(410)) => {
                        e.with_kind(GoogleErrorKind::SyncTokenExpired)
                    }
                    _ => e,
                })?;
            page.pages += 1;
            page.events.extend(
                items
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(event_from_api),
            );
            match items.next_page_token {
                Some(next) if !next.is_empty() => {
                    if page_token.as_deref() == Some(next.as_str()) || page.pages >= MAX_PAGES {
                        return Err(GoogleError::new(
                            GoogleErrorKind::Other,
                            format!("events.list keeps paging (page {})", page.pages),
                        )
                        .with_method("calendar.events.list"));
                    }
                    page_token = Some(next);
                }
                _ => {
                    page.next_sync_token = items.next_sync_token;
                    return Ok(page);
                }
            }
        }
    }

    async fn event_get(&self, calendar_id: &str, event_id: &str) -> Result<Event, GoogleError> {
        let cal = path_id(calendar_id);
        let ev = path_id(event_id);
        self.call(Call::read("calendar.events.get", Some(calendar_id)), || {
            run(self
                .hub
                .events()
                .get(&cal, &ev)
                .add_scope(Scope::Full)
                .doit())
        })
        .await
        .map(event_from_api)
    }

    async fn event_insert(&self, calendar_id: &str, ev: &Event) -> Result<Event, GoogleError> {
        let cal = path_id(calendar_id);
        let request = event_to_api(ev);
        let attempts = AtomicU32::new(0);
        let result = self
            .call(
                Call::write("calendar.events.insert", Some(calendar_id)),
                || {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    run(self
                        .hub
                        .events()
                        .insert(request.clone(), &cal)
                        .send_updates("none")
                        .add_scope(Scope::Full)
                        .doit())
                },
            )
            .await;
        match result {
            Ok(created) => Ok(event_from_api(created)),
            // A retried insert whose first attempt did land: the event is ours.
            Err(e)
                if e.kind() == GoogleErrorKind::Duplicate
                    && attempts.load(Ordering::Relaxed) > 1
                    && !ev.id.is_empty() =>
            {
                match self.event_get(calendar_id, &ev.id).await {
                    Ok(existing) if existing.status != EventStatus::Cancelled => Ok(existing),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn event_update(&self, calendar_id: &str, ev: &Event) -> Result<Event, GoogleError> {
        let cal = path_id(calendar_id);
        let id = path_id(&ev.id);
        let request = event_to_api(ev);
        self.call(
            Call::write("calendar.events.update", Some(calendar_id)),
            || {
                run(self
                    .hub
                    .events()
                    .update(request.clone(), &cal, &id)
                    .send_updates("none")
                    .add_scope(Scope::Full)
                    .doit())
            },
        )
        .await
        .map(event_from_api)
    }

    async fn event_delete(&self, calendar_id: &str, event_id: &str) -> Result<(), GoogleError> {
        let cal = path_id(calendar_id);
        let id = path_id(event_id);
        self.call(
            Call::write("calendar.events.delete", Some(calendar_id)),
            || {
                run_empty(
                    self.hub
                        .events()
                        .delete(&cal, &id)
                        .send_updates("none")
                        .add_scope(Scope::Full)
                        .doit(),
                )
            },
        )
        .await
    }

    async fn acl_insert(&self, calendar_id: &str, role: AclRole) -> Result<String, GoogleError> {
        let cal = path_id(calendar_id);
        let rule = api::AclRule {
            role: Some(role.as_str().to_owned()),
            scope: Some(api::AclRuleScope {
                type_: Some("default".to_owned()),
                value: None,
            }),
            ..Default::default()
        };
        let created = self
            .call(
                Call::write("calendar.acl.insert", Some(calendar_id)),
                || {
                    run(self
                        .hub
                        .acl()
                        .insert(rule.clone(), &cal)
                        .send_notifications(false)
                        .add_scope(Scope::Full)
                        .doit())
                },
            )
            .await?;
        created.id.ok_or_else(|| {
            GoogleError::new(GoogleErrorKind::Other, "ACL rule created without an id")
                .with_method("calendar.acl.insert")
        })
    }

    async fn acl_delete(&self, calendar_id: &str, rule_id: &str) -> Result<(), GoogleError> {
        let cal = path_id(calendar_id);
        let rule = path_id(rule_id);
        self.call(
            Call::write("calendar.acl.delete", Some(calendar_id)),
            || {
                run_empty(
                    self.hub
                        .acl()
                        .delete(&cal, &rule)
                        .add_scope(Scope::Full)
                        .doit(),
                )
            },
        )
        .await
    }

    async fn events_watch(
        &self,
        calendar_id: &str,
        request: &WatchRequest,
    ) -> Result<WatchChannel, GoogleError> {
        let cal = path_id(calendar_id);
        let body = watch_to_api(request);
        // Not retried on ambiguous failures: a retry with the same id would meet its
        // own channel (400 channelIdNotUnique); the upkeep opens a new one later.
        let call = Call {
            retry_on: RetryOn::RateLimitOnly,
            ..Call::read("calendar.events.watch", Some(calendar_id))
        };
        let got = self
            .call(call, || {
                run(self
                    .hub
                    .events()
                    .watch(body.clone(), &cal)
                    .add_scope(Scope::Full)
                    .doit())
            })
            .await?;
        channel_from_api(request, got)
    }

    async fn channel_stop(&self, channel_id: &str, resource_id: &str) -> Result<(), GoogleError> {
        let body = stop_to_api(channel_id, resource_id);
        self.call(Call::read("calendar.channels.stop", None), || {
            run_empty(
                self.hub
                    .channels()
                    .stop(body.clone())
                    .add_scope(Scope::Full)
                    .doit(),
            )
        })
        .await
    }

    fn credential_status(&self) -> CredentialStatus {
        GoogleCalendarClient::credential_status(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_percent_encoded_except_unreserved_characters() {
        let cases = [
            ("primary", "primary"),
            ("booking0123abc", "booking0123abc"),
            (
                "c_0a1b@group.calendar.google.com",
                "c_0a1b%40group.calendar.google.com",
            ),
            ("a#b?c/d e", "a%23b%3Fc%2Fd%20e"),
            ("100%", "100%25"),
            ("ümlaut", "%C3%BCmlaut"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(path_id(raw), encoded, "{raw}");
        }
    }

    #[test]
    fn the_root_url_gets_exactly_one_trailing_slash() {
        for root in [
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9//",
        ] {
            let options = ClientOptions {
                root_url: root.into(),
                ..ClientOptions::default()
            };
            assert_eq!(options.root(), "http://127.0.0.1:9/");
        }
    }
}

#[cfg(test)]
mod wire_tests {
    //! What goes over the wire, checked against a recording fake server.
    use super::*;
    use crate::google::auth::Credentials;
    use crate::google::types::EventTime;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::Router;
    use std::sync::Mutex;

    /// method, path, query, authorization
    type Seen = (String, String, Option<String>, Option<String>);

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Seen>>>);

    async fn record(State(rec): State<Recorder>, req: Request) -> axum::response::Response {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        rec.0
            .lock()
            .expect("lock")
            .push((method.clone(), path.clone(), query, auth));
        if path == "/token" {
            return axum::Json(serde_json::json!({"access_token": "tok", "expires_in": 3600}))
                .into_response();
        }
        if method == "DELETE" {
            return StatusCode::NO_CONTENT.into_response();
        }
        axum::Json(serde_json::json!({"id": "ev001", "status": "confirmed"})).into_response()
    }

    #[tokio::test]
    async fn event_writes_send_updates_none_and_ids_are_encoded_in_the_path() {
        let rec = Recorder::default();
        let app = Router::new().fallback(record).with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = GoogleCalendarClient::builder(Credentials::RefreshToken {
            client_id: "c".into(),
            client_secret: "s".into(),
            refresh_token: "r".into(),
            token_url: format!("http://{addr}/token"),
        })
        .root_url(format!("http://{addr}"))
        .build()
        .await
        .expect("client");
        let cal = "c_1@group.calendar.google.com";
        let ev = Event {
            id: "ev001".into(),
            start: Some(EventTime::Date(
                chrono::NaiveDate::from_ymd_opt(2030, 1, 1).expect("date"),
            )),
            ..Event::default()
        };
        client.event_insert(cal, &ev).await.expect("insert");
        client.event_update(cal, &ev).await.expect("update");
        client.event_delete(cal, "ev001").await.expect("delete");
        client.event_get(cal, "ev001").await.expect("get");

        let seen = rec.0.lock().expect("lock").clone();
        let api: Vec<_> = seen.iter().filter(|r| r.1 != "/token").collect();
        assert_eq!(seen.iter().filter(|r| r.1 == "/token").count(), 1);
        assert_eq!(api.len(), 4);
        let expected = [
            (
                "POST",
                "/calendar/v3/calendars/c_1%40group.calendar.google.com/events",
            ),
            (
                "PUT",
                "/calendar/v3/calendars/c_1%40group.calendar.google.com/events/ev001",
            ),
            (
                "DELETE",
                "/calendar/v3/calendars/c_1%40group.calendar.google.com/events/ev001",
            ),
            (
                "GET",
                "/calendar/v3/calendars/c_1%40group.calendar.google.com/events/ev001",
            ),
        ];
        for ((method, path, query, auth), (want_method, want_path)) in api.iter().zip(expected) {
            assert_eq!(method, want_method);
            assert_eq!(path, want_path);
            assert_eq!(auth.as_deref(), Some("Bearer tok"));
            let query = query.clone().unwrap_or_default();
            if want_method != "GET" {
                assert!(query.contains("sendUpdates=none"), "{method} {query}");
            }
        }
    }
}
