//! `ApiError`: every failure a handler can answer with, rendered in the shapes
//! Django REST framework uses (Waldur's clients parse these), and [`drf_shaped`],
//! which gives the same shape to error responses made outside the handlers (axum's
//! rejections and 405s, tower-http's early 413).

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::domain::lifecycle::Refusal;
use crate::store::{MutateError, StoreError, TransitionError};

/// The longest message an error body carries, in characters. Messages may quote what
/// the client sent (a choice, a content type, a rejection's reason); past this they
/// are cut and end in `…`, so an error is never larger than the request that caused
/// it and never echoes a whole oversized value back.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Cuts every string in an error body to [`MAX_MESSAGE_CHARS`] and trims the
/// whitespace around it.
fn trim_messages(v: &mut Value) {
    match v {
        Value::String(s) => {
            let t = s.trim();
            let cut = match t.char_indices().nth(MAX_MESSAGE_CHARS) {
                Some((at, _)) => format!("{}…", &t[..at]),
                None if t.len() != s.len() => t.to_owned(),
                None => return,
            };
            *s = cut;
        }
        Value::Array(items) => items.iter_mut().for_each(trim_messages),
        Value::Object(fields) => fields.values_mut().for_each(trim_messages),
        _ => {}
    }
}

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
    /// 414: the request target is longer than `http.max_uri_bytes`.
    #[error("request URI too long")]
    UriTooLong,
    /// 408: the request body did not arrive within `http.body_timeout_secs`.
    #[error("request body timed out")]
    BodyTimeout,
    /// 400: the request body could not be read (a broken upload).
    #[error("unreadable request body: {0}")]
    BadBody(String),
    /// 503 on a connection beyond `http.max_connections` (only probes are served).
    #[error("connection limit reached")]
    Overloaded,
    /// Any other status, with `detail` (used for responses made outside handlers).
    #[error("{0}: {1}")]
    Status(StatusCode, String),
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

impl ApiError {
    /// The error for a request body that failed to arrive: 408 past the body
    /// deadline, 413 past the size limit, else 400.
    pub fn from_body(status: StatusCode, err: &(dyn std::error::Error + 'static)) -> Self {
        if crate::server::is_body_timeout(err) {
            ApiError::BodyTimeout
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadBody(err.to_string())
        }
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
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                json!({"detail": "Request URI is too long."}),
            ),
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                json!({"detail": "The request body did not arrive in time."}),
            ),
            ApiError::BadBody(why) => (
                StatusCode::BAD_REQUEST,
                json!({"detail": format!("The request body could not be read: {why}")}),
            ),
            ApiError::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": "The server is at its connection limit; try again later."}),
            ),
            ApiError::Status(status, detail) => (*status, json!({ "detail": detail })),
            // What this store engine cannot do yet (the job queue on PostgreSQL).
            ApiError::Store(e @ StoreError::Unsupported(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": format!("Not available on this installation: {e}.")}),
            ),
            ApiError::Store(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(e), "store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"detail": "A server error occurred."}),
                )
            }
        };
        let mut body = body;
        trim_messages(&mut body);
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The request was not read to its end: the connection cannot be reused.
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// Gives an error response made outside the handlers (a plain-text or empty body)
/// DRF's `{"detail": ...}` shape with the same status; JSON errors, the web pages'
/// HTML error pages and successes pass through. A 405 keeps its `Allow` header.
pub async fn drf_shaped(method: &Method, resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // The web pages' own error pages (`crate::web`) are HTML and stay so.
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(method.to_string()),
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        StatusCode::URI_TOO_LONG => ApiError::UriTooLong,
        StatusCode::REQUEST_TIMEOUT => ApiError::BodyTimeout,
        _ => {
            // axum's rejections say in plain text what was wrong; keep that.
            let text = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            let detail = text
                .unwrap_or_else(|| format!("{}.", status.canonical_reason().unwrap_or("Error")));
            ApiError::Status(status, detail)
        }
    };
    let mut out = err.into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_trimmed_and_cut_to_the_limit_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 50);
        let cut = format!("{}…", "é".repeat(MAX_MESSAGE_CHARS));
        let exact = "x".repeat(MAX_MESSAGE_CHARS);
        let table = [
            (
                json!({"detail": "  Not found.\n"}),
                json!({"detail": "Not found."}),
            ),
            (json!({"detail": long}), json!({"detail": cut})),
            (json!({"detail": exact}), json!({"detail": exact})),
            (json!(["a", long]), json!(["a", cut])),
            (
                json!({"type": [format!("\"{long}\" is not a valid choice.")]}),
                json!({"type": [format!("\"{}…", "é".repeat(MAX_MESSAGE_CHARS - 1))]}),
            ),
            (json!({"n": 1, "ok": true}), json!({"n": 1, "ok": true})),
        ];
        for (mut given, want) in table {
            trim_messages(&mut given);
            assert_eq!(given, want);
        }
    }
}
