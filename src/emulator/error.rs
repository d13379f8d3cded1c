//! Google-shaped API errors.
//!
//! Every failure of a `/calendar/v3/` request is answered with Google's documented
//! body: `{"error":{"errors":[{"domain","reason","message"[,"locationType","location"]}],
//! "code","message"}}`. [`ApiError`] names the cases the emulator produces; its
//! [`IntoResponse`] renders status and body. The OAuth token endpoint has its own
//! (different) error shape and does not use this type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Calendar API error, rendered in Google's wire format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid`: a parameter or field value Google rejects.
    #[error("{0}")]
    Invalid(String),
    /// 400 `required`: a required field or parameter is missing.
    #[error("{0}")]
    Required(String),
    /// 400 `parseError`: the body is not JSON.
    #[error("Parse Error")]
    ParseError,
    /// 400 `timeRangeEmpty`.
    #[error("The specified time range is empty.")]
    TimeRangeEmpty,
    /// 401 `authError` (header `Authorization`).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `forbidden`: the credential may see the calendar but not change it.
    #[error("Forbidden")]
    Forbidden,
    /// 403 `insufficientPermissions`: the token lacks a scope for the method.
    #[error("Request had insufficient authentication scopes.")]
    InsufficientScopes,
    /// 403 `forbiddenForServiceAccounts`: attendees without domain-wide delegation.
    #[error(
        "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority."
    )]
    ForbiddenForServiceAccounts,
    /// 403 or 429 `rateLimitExceeded`, domain `usageLimits`.
    #[error("Rate Limit Exceeded")]
    RateLimitExceeded(u16),
    /// 403 `quotaExceeded`, domain `usageLimits`: the account is in read-only mode
    /// (too many calendars created, or other usage limits).
    #[error("Calendar usage limits exceeded.")]
    QuotaExceeded,
    /// 403 `requiredAccessLevel`: seen for a few seconds after `calendars.insert`,
    /// before the creator's access has propagated.
    #[error("You need to have writer access to this calendar.")]
    RequiredAccessLevel,
    /// 404 `notFound`.
    #[error("Not Found")]
    NotFound,
    /// 409 `duplicate`.
    #[error("The requested identifier already exists.")]
    Duplicate,
    /// 410 `deleted`.
    #[error("Resource has been deleted")]
    Deleted,
    /// 410 `fullSyncRequired`.
    #[error("Sync token is no longer valid, a full sync is required.")]
    FullSyncRequired,
    /// 412 `conditionNotMet`.
    #[error("Precondition Failed")]
    ConditionNotMet,
    /// 500 `backendError`.
    #[error("Backend Error")]
    BackendError,
    /// 503 `backendError`.
    #[error("The service is currently unavailable.")]
    Unavailable,
    /// 400 `push.webhookUrlNotHttps`: a watch channel's address is not HTTPS.
    #[error("WebHook callback must be HTTPS: {0}")]
    WebhookNotHttps(String),
    /// 400 `channelIdNotUnique`: a live channel has this id already.
    #[error("Channel id {0} not unique")]
    ChannelIdNotUnique(String),
    /// 404 `notFound` for `channels.stop`.
    #[error("Channel '{0}' not found for project")]
    ChannelNotFound(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_)
            | Self::Required(_)
            | Self::ParseError
            | Self::TimeRangeEmpty
            | Self::WebhookNotHttps(_)
            | Self::ChannelIdNotUnique(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden
            | Self::InsufficientScopes
            | Self::ForbiddenForServiceAccounts
            | Self::QuotaExceeded
            | Self::RequiredAccessLevel => StatusCode::FORBIDDEN,
            Self::RateLimitExceeded(429) => StatusCode::TOO_MANY_REQUESTS,
            Self::RateLimitExceeded(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::ChannelNotFound(_) => StatusCode::NOT_FOUND,
            Self::Duplicate => StatusCode::CONFLICT,
            Self::Deleted | Self::FullSyncRequired => StatusCode::GONE,
            Self::ConditionNotMet => StatusCode::PRECONDITION_FAILED,
            Self::BackendError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Google's `reason` string.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Required(_) => "required",
            Self::ParseError => "parseError",
            Self::TimeRangeEmpty => "timeRangeEmpty",
            Self::Unauthorized(_) => "authError",
            Self::Forbidden => "forbidden",
            Self::InsufficientScopes => "insufficientPermissions",
            Self::ForbiddenForServiceAccounts => "forbiddenForServiceAccounts",
            Self::RateLimitExceeded(_) => "rateLimitExceeded",
            Self::QuotaExceeded => "quotaExceeded",
            Self::RequiredAccessLevel => "requiredAccessLevel",
            Self::NotFound | Self::ChannelNotFound(_) => "notFound",
            Self::WebhookNotHttps(_) => "push.webhookUrlNotHttps",
            Self::ChannelIdNotUnique(_) => "channelIdNotUnique",
            Self::Duplicate => "duplicate",
            Self::Deleted => "deleted",
            Self::FullSyncRequired => "fullSyncRequired",
            Self::ConditionNotMet => "conditionNotMet",
            Self::BackendError | Self::Unavailable => "backendError",
        }
    }

    /// The error that answers an injected fault or a "fail the Nth call" rule.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => Self::Invalid("Bad Request".into()),
            401 => Self::Unauthorized("Invalid Credentials"),
            403 | 429 => Self::RateLimitExceeded(status),
            404 => Self::NotFound,
            409 => Self::Duplicate,
            410 => Self::FullSyncRequired,
            412 => Self::ConditionNotMet,
            503 => Self::Unavailable,
            _ => Self::BackendError,
        }
    }

    /// The JSON body Google sends for this error.
    pub fn body(&self) -> serde_json::Value {
        let message = self.to_string();
        let domain = match self {
            Self::RateLimitExceeded(_) | Self::QuotaExceeded => "usageLimits",
            _ => "global",
        };
        let mut item = json!({"domain": domain, "reason": self.reason(), "message": message});
        if let Self::Unauthorized(_) = self {
            item["locationType"] = json!("header");
            item["location"] = json!("Authorization");
        }
        json!({"error": {"errors": [item], "code": self.status().as_u16(), "message": message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Self::Unauthorized(_) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_carry_status_reason_and_domain() {
        let cases = [
            (ApiError::NotFound, 404, "notFound", "global"),
            (ApiError::Duplicate, 409, "duplicate", "global"),
            (
                ApiError::RateLimitExceeded(403),
                403,
                "rateLimitExceeded",
                "usageLimits",
            ),
            (
                ApiError::RateLimitExceeded(429),
                429,
                "rateLimitExceeded",
                "usageLimits",
            ),
            (
                ApiError::FullSyncRequired,
                410,
                "fullSyncRequired",
                "global",
            ),
            (ApiError::for_status(503), 503, "backendError", "global"),
            (ApiError::QuotaExceeded, 403, "quotaExceeded", "usageLimits"),
            (
                ApiError::RequiredAccessLevel,
                403,
                "requiredAccessLevel",
                "global",
            ),
        ];
        for (error, code, reason, domain) in cases {
            let body = error.body();
            assert_eq!(body["error"]["code"], code);
            assert_eq!(body["error"]["errors"][0]["reason"], reason);
            assert_eq!(body["error"]["errors"][0]["domain"], domain);
        }
    }
}
