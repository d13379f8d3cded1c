//! OAuth 2.0 as Google's token server does it, for one generated service account and
//! for refresh tokens registered through the controls.
//!
//! - `POST /token` (form-encoded) with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   and an RS256 `assertion` signed by the service-account key (`iss` = client_email,
//!   `aud` = this token endpoint or one of Google's token URLs, `iat`/`exp` within an hour, `scope` present,
//!   optional `sub` for domain-wide delegation), or `grant_type=refresh_token` with
//!   `client_id`, `client_secret`, `refresh_token`.
//! - Answers `{"access_token","expires_in","token_type":"Bearer"}`; failures use the
//!   OAuth error shape `{"error":"invalid_grant","error_description":..}`, not the
//!   Calendar API's.
//! - The RSA 2048 key is generated once per process (key generation is slow) and
//!   shared by all emulators in it; each emulator still has its own token endpoint.
//! - Token-endpoint faults (the `token_fail_nth` switch) answer before the grant is
//!   looked at: HTTP 500 `{"error":"internal_failure"}` as Google's endpoint does at
//!   times, or 400 `invalid_grant`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Deserialize;
use serde_json::json;

use super::controls::TokenFault;
use super::error::ApiError;
use super::state::{AccessToken, Caller};
use super::Shared;

/// The generated service account.
pub(crate) struct ServiceAccount {
    pub private_key_pem: String,
    pub private_key_id: String,
    pub client_email: String,
    pub client_id: String,
    decoding_key: DecodingKey,
}

static PROCESS_KEY: OnceLock<Arc<ServiceAccount>> = OnceLock::new();

/// The process-wide service account, generating its key on first use.
pub(crate) async fn service_account() -> std::io::Result<Arc<ServiceAccount>> {
    if let Some(account) = PROCESS_KEY.get() {
        return Ok(account.clone());
    }
    let generated = tokio::task::spawn_blocking(generate)
        .await
        .map_err(std::io::Error::other)??;
    Ok(PROCESS_KEY.get_or_init(|| Arc::new(generated)).clone())
}

fn generate() -> std::io::Result<ServiceAccount> {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(std::io::Error::other)?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(std::io::Error::other)?
        .to_string();
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    let decoding_key = DecodingKey::from_rsa_components(&n, &e).map_err(std::io::Error::other)?;
    Ok(ServiceAccount {
        private_key_pem: pem,
        private_key_id: super::state::random_hex(20),
        client_email: "bookcal-emulator@bookcal-emulator.iam.gserviceaccount.com".into(),
        client_id: "100000000000000000001".into(),
        decoding_key,
    })
}

impl ServiceAccount {
    /// Google's key-file JSON pointing at `token_uri`.
    pub fn key_json(&self, token_uri: &str) -> String {
        let value = json!({
            "type": "service_account",
            "project_id": "bookcal-emulator",
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                self.client_email.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// An answer in the OAuth error shape.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_owned(),
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    iss: String,
    aud: String,
    scope: Option<String>,
    sub: Option<String>,
    iat: i64,
    exp: i64,
}

/// `POST /token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let response = token_inner(&shared, form.ok().map(|f| f.0));
    shared
        .controls
        .count("oauth2.token", response.status().as_u16());
    response
}

fn token_inner(shared: &Shared, form: Option<TokenForm>) -> Response {
    match shared.controls.decide_token_fault() {
        Some(TokenFault::InternalFailure) => {
            // Google's body carries no description here.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "internal_failure"})),
            )
                .into_response();
        }
        Some(TokenFault::InvalidGrant) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token has been expired or revoked.",
            )
            .into_response();
        }
        None => {}
    }
    match grant(shared, form) {
        Ok(caller) => issue(shared, caller),
        Err(error) => error.into_response(),
    }
}

fn grant(shared: &Shared, form: Option<TokenForm>) -> Result<Caller, OAuthError> {
    let missing = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required parameter is missing: grant_type",
        )
    };
    let form = form.ok_or_else(missing)?;
    match form.grant_type.as_deref() {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => jwt_grant(shared, &form),
        Some("refresh_token") => refresh_grant(shared, &form),
        Some(other) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        )),
        None => Err(missing()),
    }
}

fn issue(shared: &Shared, caller: Caller) -> Response {
    let ttl = shared.controls.access_token_ttl();
    let access_token = format!("ya29.emu-{}", super::state::random_hex(24));
    let mut store = shared.lock();
    let expires_at = store.instant() + ttl;
    store
        .tokens
        .insert(access_token.clone(), AccessToken { caller, expires_at });
    Json(json!({
        "access_token": access_token,
        "expires_in": ttl.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

fn jwt_grant(shared: &Shared, form: &TokenForm) -> Result<Caller, OAuthError> {
    let Some(assertion) = form.assertion.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        ));
    };
    let invalid = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    const TIMEFRAME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    // Verified by hand: yup-oauth2 pads its base64url segments (and signs the padded
    // text); Google accepts that, jsonwebtoken's decode does not.
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(invalid(TIMEFRAME));
    };
    let segment =
        |text: &str| -> Option<Vec<u8>> { URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok() };
    let header: serde_json::Value = segment(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid(TIMEFRAME))?;
    if header["alg"] != "RS256" {
        return Err(invalid("Invalid JWT Signature."));
    }
    let message = format!("{}.{}", parts[0], parts[1]);
    let verified = jsonwebtoken::crypto::verify(
        signature.trim_end_matches('='),
        message.as_bytes(),
        &shared.account.decoding_key,
        Algorithm::RS256,
    )
    .unwrap_or(false);
    if !verified {
        return Err(invalid("Invalid JWT Signature."));
    }
    let claims: JwtClaims = segment(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid(TIMEFRAME))?;
    if claims.iss != shared.account.client_email {
        return Err(invalid("Invalid email or User ID"));
    }
    // yup-oauth2 uses the key's token_uri as audience; google-auth always uses
    // Google's canonical endpoint. Google's server accepts its known token URLs.
    let audiences = [
        shared.token_uri(),
        "https://oauth2.googleapis.com/token".into(),
        "https://accounts.google.com/o/oauth2/token".into(),
        "https://www.googleapis.com/oauth2/v4/token".into(),
    ];
    if !audiences.contains(&claims.aud) {
        return Err(invalid("Invalid JWT: Failed audience check."));
    }
    let now = chrono::Utc::now().timestamp();
    if claims.exp - claims.iat > 3600 || claims.iat > now + 60 || claims.exp < now - 60 {
        return Err(invalid(TIMEFRAME));
    }
    let Some(scope) = claims.scope.filter(|s| !s.trim().is_empty()) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    };
    Ok(Caller {
        identity: claims
            .sub
            .clone()
            .unwrap_or_else(|| shared.account.client_email.clone()),
        service_account_without_subject: claims.sub.is_none(),
        scopes: scope.split_whitespace().map(String::from).collect(),
    })
}

fn refresh_grant(shared: &Shared, form: &TokenForm) -> Result<Caller, OAuthError> {
    let Some(refresh_token) = form.refresh_token.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: refresh_token",
        ));
    };
    let store = shared.lock();
    let Some(grant) = store.refresh_tokens.get(refresh_token) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Bad Request",
        ));
    };
    if form.client_id.as_deref() != Some(grant.client_id.as_str())
        || form.client_secret.as_deref() != Some(grant.client_secret.as_str())
    {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    if grant.revoked {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Token has been expired or revoked.",
        ));
    }
    Ok(Caller {
        identity: grant.user_email.clone(),
        service_account_without_subject: false,
        scopes: vec!["https://www.googleapis.com/auth/calendar".into()],
    })
}

/// The caller behind the request's bearer token, or 401.
pub(crate) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::Unauthorized("Login Required."));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized("Invalid Credentials"))?;
    let mut store = shared.lock();
    let now = store.instant();
    match store.tokens.get(token) {
        Some(t) if t.expires_at > now => Ok(t.caller.clone()),
        Some(_) => {
            store.tokens.remove(token);
            Err(ApiError::Unauthorized("Invalid Credentials"))
        }
        None => Err(ApiError::Unauthorized("Invalid Credentials")),
    }
}

/// Whether `scopes` allow a method; `write` methods need a read-write scope.
pub(crate) fn check_scopes(scopes: &[String], method: &str, write: bool) -> Result<(), ApiError> {
    const BASE: &str = "https://www.googleapis.com/auth/calendar";
    let ok = scopes.iter().any(|scope| {
        let Some(rest) = scope.strip_prefix(BASE) else {
            return false;
        };
        match rest {
            "" => true,
            ".readonly" => !write,
            ".events" => method.starts_with("calendar.events."),
            ".events.readonly" => !write && method.starts_with("calendar.events."),
            ".acls" => method.starts_with("calendar.acl."),
            ".acls.readonly" => !write && method.starts_with("calendar.acl."),
            ".calendars" | ".app.created" => !method.starts_with("calendar.acl."),
            ".calendars.readonly" | ".calendarlist.readonly" => !write,
            ".calendarlist" => method.starts_with("calendar.calendarList."),
            _ => false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::InsufficientScopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_gate_reads_and_writes() {
        let full = ["https://www.googleapis.com/auth/calendar".to_owned()];
        let readonly = ["https://www.googleapis.com/auth/calendar.readonly".to_owned()];
        let events = ["https://www.googleapis.com/auth/calendar.events".to_owned()];
        let other = ["https://www.googleapis.com/auth/drive".to_owned()];
        let cases: [(&[String], &str, bool, bool); 7] = [
            (&full, "calendar.events.insert", true, true),
            (&readonly, "calendar.events.list", false, true),
            (&readonly, "calendar.events.insert", true, false),
            (&events, "calendar.events.insert", true, true),
            (&events, "calendar.calendars.insert", true, false),
            (&other, "calendar.events.list", false, false),
            (&[], "calendar.events.list", false, false),
        ];
        for (scopes, method, write, ok) in cases {
            assert_eq!(
                check_scopes(scopes, method, write).is_ok(),
                ok,
                "{scopes:?} {method}"
            );
        }
    }
}
