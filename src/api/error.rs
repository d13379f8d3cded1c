//! `ApiError`: every failure a handler can answer with, rendered in the shapes
//! Django REST framework uses (Waldur's clients parse these).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::domain::lifecycle::Refusal;
use crate::store::{MutateError, StoreError, TransitionError};

/// Errors of the API layer. 4xx variants carry what the client did wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication credentials were not provided")]
    NoCredentials,
    #[error("invalid token")]
    InvalidToken,
    #[error("not found")]
    NotFound,
    #[error("permission denied")]
    Forbidden,
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 409 `Valid states for operation: ...`
    #[error("invalid state, valid: {0}")]
    Conflict(String),
    /// 400 with a list body `["msg", ...]`.
    #[error("bad request: {0:?}")]
    BadList(Vec<String>),
    /// 400 with a field map body `{"field": ["msg"]}`.
    #[error("bad request: {0}")]
    BadFields(Value),
    #[error("invalid page")]
    InvalidPage,
    #[error("request body too large")]
    TooLarge,
    #[error("unsupported media type {0}")]
    UnsupportedMedia(String),
    #[error("storage failure")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 naming one field.
    pub fn field(name: &str, msg: impl Into<String>) -> Self {
        ApiError::BadFields(json!({ name: [msg.into()] }))
    }

    /// A 400 with one message.
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError::BadList(vec![msg.into()])
    }

    /// 409 listing the states the operation needs.
    pub fn states(valid: &[&str]) -> Self {
        ApiError::Conflict(valid.join(", "))
    }
}

impl From<MutateError<ApiError>> for ApiError {
    fn from(e: MutateError<ApiError>) -> Self {
        match e {
            MutateError::Refused(e) => e,
            MutateError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => ApiError::NotFound,
            Refusal::Forbidden => ApiError::Forbidden,
            Refusal::States(valid) => ApiError::states(&valid),
            Refusal::Invalid(msgs) => ApiError::BadList(msgs),
            Refusal::Field(field, msg) => ApiError::field(field, msg),
            Refusal::Body(body) => ApiError::BadFields(body),
        }
    }
}

impl ApiError {
    /// A request-body error as the lifecycle's last refusal (after 404/403/409).
    pub fn into_body_refusal(self) -> Refusal {
        match self {
            ApiError::BadFields(v) => Refusal::Body(v),
            ApiError::BadList(v) => Refusal::Invalid(v),
            other => Refusal::Body(json!({ "detail": other.to_string() })),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Refused(r) => r.into(),
            TransitionError::Store(e) => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::NoCredentials => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": "Authentication credentials were not provided."}),
            ),
            ApiError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": "Invalid token."}),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"detail": "Not found."})),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                json!({"detail": "You do not have permission to perform this action."}),
            ),
            ApiError::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"detail": format!("Method \"{m}\" not allowed.")}),
            ),
            ApiError::Conflict(valid) => (
                StatusCode::CONFLICT,
                json!({"detail": format!("Valid states for operation: {valid}.")}),
            ),
            ApiError::BadList(msgs) => (StatusCode::BAD_REQUEST, json!(msgs)),
            ApiError::BadFields(v) => (StatusCode::BAD_REQUEST, v.clone()),
            ApiError::InvalidPage => (StatusCode::NOT_FOUND, json!({"detail": "Invalid page."})),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"detail": "Request body is too large."}),
            ),
            ApiError::UnsupportedMedia(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": format!("Unsupported media type \"{m}\" in request.")}),
            ),
            ApiError::Store(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(e), "store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"detail": "A server error occurred."}),
                )
            }
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        resp
    }
}
