//! `GoogleError`: every failure of the adapter, classified so callers can branch on it.
//!
//! google-calendar3 turns every non-2xx JSON answer into `Error::BadRequest(json)`
//! whatever the status; the status survives only as `json.error.code`, and Google's
//! machine-readable reason as `json.error.errors[0].reason`. [`from_api_error`] digs
//! both out. Classification follows Google's error guide
//! (<https://developers.google.com/workspace/calendar/api/guides/errors>): rate limits
//! (403 `rateLimitExceeded` / `userRateLimitExceeded`, 429) and 500/502/503/504 and
//! transport failures are retryable; 400/401/404/409/410/412 never are. 403
//! `quotaExceeded` ("Calendar usage limits exceeded.") is [`GoogleErrorKind::UsageLimited`]:
//! the account is read-only for hours, so it is never retried but pauses the
//! credential's writes; [`GoogleErrorKind::Deferred`] is a call we did not send
//! because of such a pause or the calendar-creation budget.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use google_calendar3::common;
use http_body_util::BodyExt;

/// A boxed cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, as far as a caller needs to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoogleErrorKind {
    /// 404: the calendar or event does not exist.
    NotFound,
    /// 409 `duplicate`: the id is taken (also by a deleted event).
    Duplicate,
    /// 410 other than a sync token: e.g. deleting an already deleted event.
    Gone,
    /// 410 on `events.list` with a sync token: drop the token and do a full sync.
    SyncTokenExpired,
    /// 429, or 403 `rateLimitExceeded` / `userRateLimitExceeded`.
    RateLimited,
    /// 403 `quotaExceeded` (domain `usageLimits`, "Calendar usage limits exceeded."):
    /// Google made the account read-only for a while; not retryable.
    UsageLimited,
    /// Not sent: the credential's writes are paused after [`UsageLimited`](Self::UsageLimited),
    /// or its calendar-creation budget is spent. [`GoogleError::retry_after`] says when.
    Deferred,
    /// Any other 403.
    Forbidden,
    /// 401 from the API.
    Unauthorized,
    /// The credential itself is bad: `invalid_grant`, a revoked refresh token, an
    /// unreadable key, a 401 from the token endpoint. Needs a human.
    InvalidCredentials,
    /// 400.
    BadRequest,
    /// 412 `conditionNotMet`.
    PreconditionFailed,
    /// 5xx.
    Server,
    /// No answer: connection refused or reset, timeout, TLS, I/O.
    Transport,
    /// Anything else (undecodable answers, unexpected statuses).
    Other,
}

impl GoogleErrorKind {
    /// A short stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GoogleErrorKind::NotFound => "not_found",
            GoogleErrorKind::Duplicate => "duplicate",
            GoogleErrorKind::Gone => "gone",
            GoogleErrorKind::SyncTokenExpired => "sync_token_expired",
            GoogleErrorKind::RateLimited => "rate_limited",
            GoogleErrorKind::UsageLimited => "usage_limited",
            GoogleErrorKind::Deferred => "deferred",
            GoogleErrorKind::Forbidden => "forbidden",
            GoogleErrorKind::Unauthorized => "unauthorized",
            GoogleErrorKind::InvalidCredentials => "invalid_credentials",
            GoogleErrorKind::BadRequest => "bad_request",
            GoogleErrorKind::PreconditionFailed => "precondition_failed",
            GoogleErrorKind::Server => "server",
            GoogleErrorKind::Transport => "transport",
            GoogleErrorKind::Other => "other",
        }
    }
}

/// A failed Calendar API call (or token fetch), with Google's status and reason.
#[derive(Debug, thiserror::Error)]
pub struct GoogleError {
    kind: GoogleErrorKind,
    status: Option<u16>,
    reason: Option<String>,
    message: String,
    method: Option<&'static str>,
    /// For [`GoogleErrorKind::Deferred`] and [`GoogleErrorKind::UsageLimited`]: in
    /// how many seconds (rounded up) the call may be tried again.
    retry_after_secs: Option<u32>,
    /// The access token could not be fetched: the API request itself was not sent.
    token_fetch: bool,
    #[source]
    source: Option<BoxError>,
}

impl fmt::Display for GoogleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(method) = self.method {
            write!(f, "{method}: ")?;
        }
        write!(f, "{}", self.kind.as_str())?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status}")?;
            if let Some(reason) = &self.reason {
                write!(f, " {reason}")?;
            }
            write!(f, ")")?;
        } else if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl GoogleError {
    /// A new error of `kind`.
    pub fn new(kind: GoogleErrorKind, message: impl Into<String>) -> Self {
        GoogleError {
            kind,
            status: None,
            reason: None,
            message: message.into(),
            method: None,
            retry_after_secs: None,
            token_fetch: false,
            source: None,
        }
    }

    /// A call not sent because the credential must wait `after` (a usage-limit pause
    /// or the creation budget); `why` says which, in plain words.
    pub fn deferred(after: Duration, why: impl Into<String>) -> Self {
        GoogleError::new(GoogleErrorKind::Deferred, why).with_retry_after(after)
    }

    /// Classifies an HTTP answer by its status and Google's `reason`.
    pub fn from_status(status: u16, reason: Option<String>, message: impl Into<String>) -> Self {
        let kind = classify(status, reason.as_deref());
        GoogleError {
            kind,
            status: Some(status),
            reason,
            message: message.into(),
            method: None,
            retry_after_secs: None,
            token_fetch: false,
            source: None,
        }
    }

    /// Says when the call may be tried again.
    pub(crate) fn with_retry_after(mut self, after: Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after_secs = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// Sets Google's (or the OAuth) reason without a status.
    pub(crate) fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Marks a failure to fetch the access token (the request was not sent).
    pub(crate) fn marked_token_fetch(mut self) -> Self {
        self.token_fetch = true;
        self
    }

    /// Attaches the cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Names the Google method that failed (`calendar.events.list`).
    pub fn with_method(mut self, method: &'static str) -> Self {
        self.method = Some(method);
        self
    }

    /// Overrides the kind (e.g. any 410 on an incremental list is an expired token).
    pub(crate) fn with_kind(mut self, kind: GoogleErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn kind(&self) -> GoogleErrorKind {
        self.kind
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Google's machine-readable reason (`error.errors[0].reason`), or the OAuth
    /// `error` code for token failures (`invalid_grant`).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Google method, once the client attached it.
    pub fn method(&self) -> Option<&'static str> {
        self.method
    }

    /// When a deferred or usage-limited call may be tried again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// Whether the failure was fetching the access token (no API request was sent).
    pub fn is_token_fetch(&self) -> bool {
        self.token_fetch
    }

    /// Whether the same request may succeed if repeated after a backoff.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            GoogleErrorKind::RateLimited | GoogleErrorKind::Transport => true,
            GoogleErrorKind::Server => {
                matches!(
                    self.status,
                    None | Some(500) | Some(502) | Some(503) | Some(504)
                )
            }
            _ => false,
        }
    }

    /// A short label for call statistics: Google's reason, else the status, else the kind.
    pub fn label(&self) -> String {
        match (&self.reason, self.status) {
            (Some(reason), _) => reason.clone(),
            (None, Some(status)) => status.to_string(),
            (None, None) => self.kind.as_str().to_owned(),
        }
    }
}

/// Maps an HTTP status and Google reason to a kind.
fn classify(status: u16, reason: Option<&str>) -> GoogleErrorKind {
    match status {
        400 => GoogleErrorKind::BadRequest,
        401 => GoogleErrorKind::Unauthorized,
        403 => match reason {
            Some("rateLimitExceeded") | Some("userRateLimitExceeded") => {
                GoogleErrorKind::RateLimited
            }
            Some("quotaExceeded") => GoogleErrorKind::UsageLimited,
            _ => GoogleErrorKind::Forbidden,
        },
        404 => GoogleErrorKind::NotFound,
        409 => GoogleErrorKind::Duplicate,
        410 => match reason {
            Some("fullSyncRequired") | Some("updatedMinTooLongAgo") => {
                GoogleErrorKind::SyncTokenExpired
            }
            _ => GoogleErrorKind::Gone,
        },
        412 => GoogleErrorKind::PreconditionFailed,
        429 => GoogleErrorKind::RateLimited,
        500..=599 => GoogleErrorKind::Server,
        _ => GoogleErrorKind::Other,
    }
}

/// Reads status, reason and message from a Google error body
/// `{"error":{"errors":[{"reason",..}],"code","message"}}`.
pub(crate) fn from_error_json(json: &serde_json::Value) -> GoogleError {
    let error = &json["error"];
    let status = error["code"].as_u64().and_then(|c| u16::try_from(c).ok());
    let reason = error["errors"][0]["reason"]
        .as_str()
        .or_else(|| error["status"].as_str())
        .map(str::to_owned);
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| json.to_string());
    match status {
        Some(status) => GoogleError::from_status(status, reason, message),
        None => {
            let mut e = GoogleError::new(GoogleErrorKind::Other, message);
            e.reason = reason;
            e
        }
    }
}

/// Maps a google-calendar3 error into ours, keeping status, reason and cause.
pub(crate) async fn from_api_error(err: common::Error) -> GoogleError {
    match err {
        common::Error::BadRequest(json) => from_error_json(&json),
        common::Error::Failure(response) => {
            let status = response.status().as_u16();
            let body = match response.into_body().collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
                }
                Err(_) => String::new(),
            };
            GoogleError::from_status(status, None, body)
        }
        common::Error::HttpError(e) => {
            GoogleError::new(GoogleErrorKind::Transport, e.to_string()).with_source(e)
        }
        common::Error::Io(e) => {
            GoogleError::new(GoogleErrorKind::Transport, e.to_string()).with_source(e)
        }
        common::Error::MissingToken(e) => match e.downcast::<GoogleError>() {
            Ok(ours) => *ours,
            Err(other) => GoogleError::new(GoogleErrorKind::InvalidCredentials, other.to_string())
                .with_source(other),
        },
        common::Error::JsonDecodeError(body, e) => {
            let snippet: String = body.chars().take(200).collect();
            GoogleError::new(
                GoogleErrorKind::Other,
                format!("undecodable answer: {e}: {snippet}"),
            )
            .with_source(e)
        }
        other => GoogleError::new(GoogleErrorKind::Other, other.to_string().trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(code: u16, reason: &str, message: &str) -> serde_json::Value {
        json!({"error": {
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "code": code,
            "message": message,
        }})
    }

    #[test]
    fn google_error_bodies_map_to_kind_status_reason_and_retryability() {
        use GoogleErrorKind::*;
        let cases: &[(u16, &str, GoogleErrorKind, bool)] = &[
            (400, "invalid", BadRequest, false),
            (400, "timeRangeEmpty", BadRequest, false),
            (401, "authError", Unauthorized, false),
            (403, "rateLimitExceeded", RateLimited, true),
            (403, "userRateLimitExceeded", RateLimited, true),
            (403, "quotaExceeded", UsageLimited, false),
            (403, "requiredAccessLevel", Forbidden, false),
            (403, "forbiddenForNonOrganizer", Forbidden, false),
            (403, "forbiddenForServiceAccounts", Forbidden, false),
            (404, "notFound", NotFound, false),
            (409, "duplicate", Duplicate, false),
            (410, "fullSyncRequired", SyncTokenExpired, false),
            (410, "deleted", Gone, false),
            (412, "conditionNotMet", PreconditionFailed, false),
            (429, "rateLimitExceeded", RateLimited, true),
            (500, "backendError", Server, true),
            (502, "backendError", Server, true),
            (503, "backendError", Server, true),
            (504, "backendError", Server, true),
            (501, "notImplemented", Server, false),
        ];
        for &(code, reason, kind, retryable) in cases {
            let e = from_error_json(&body(code, reason, "words"));
            assert_eq!(e.kind(), kind, "{code} {reason}");
            assert_eq!(e.status(), Some(code), "{code} {reason}");
            assert_eq!(e.reason(), Some(reason), "{code} {reason}");
            assert_eq!(e.is_retryable(), retryable, "{code} {reason}");
            assert_eq!(e.message(), "words");
            assert_eq!(e.label(), reason);
        }
    }

    #[test]
    fn an_error_body_without_errors_array_still_yields_the_status() {
        let e = from_error_json(&json!({"error": {"code": 503, "message": "Service Unavailable"}}));
        assert_eq!(e.kind(), GoogleErrorKind::Server);
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.reason(), None);
        assert!(e.is_retryable());
        assert_eq!(e.label(), "503");
    }

    #[test]
    fn a_json_body_that_is_not_a_google_error_is_other_and_not_retryable() {
        let e = from_error_json(&json!({"oops": true}));
        assert_eq!(e.kind(), GoogleErrorKind::Other);
        assert_eq!(e.status(), None);
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn a_non_json_failure_keeps_its_http_status() {
        let (parts, ()) = hyper::Response::builder()
            .status(502)
            .body(())
            .expect("a valid response")
            .into_parts();
        let response = common::to_response(
            parts,
            Some(hyper::body::Bytes::from_static(b"<html>Bad Gateway</html>")),
        );
        let e = from_api_error(common::Error::Failure(response)).await;
        assert_eq!(e.kind(), GoogleErrorKind::Server);
        assert_eq!(e.status(), Some(502));
        assert!(e.is_retryable());
        assert!(e.message().contains("Bad Gateway"));
    }

    #[tokio::test]
    async fn a_token_failure_passes_through_our_own_error_unchanged() {
        let ours = GoogleError::new(GoogleErrorKind::InvalidCredentials, "revoked");
        let boxed: BoxError = Box::new(ours);
        let e = from_api_error(common::Error::MissingToken(boxed)).await;
        assert_eq!(e.kind(), GoogleErrorKind::InvalidCredentials);
        assert!(!e.is_retryable());
    }

    #[test]
    fn display_names_method_status_and_reason() {
        let e =
            from_error_json(&body(404, "notFound", "Not Found")).with_method("calendar.events.get");
        assert_eq!(
            e.to_string(),
            "calendar.events.get: not_found (HTTP 404 notFound): Not Found"
        );
    }
}
