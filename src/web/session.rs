//! Signing in and out: the session cookie, the CSRF tokens, one-time sign-in links,
//! and the [`Viewer`] every page starts from.
//!
//! - **Sign-in** (`/sign-in`) takes the user's API token (what Waldur users already
//!   have), checked by the same lookup as the API's `Authorization: Token`. The form
//!   carries a CSRF token that must equal the value of a short-lived cookie set with
//!   the form (double submit: another site can neither read nor set it).
//! - **The session** is 32 random bytes in the `bookcal_session` cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, `Secure` when `public_url` is https, expiring with
//!   the session after [`SESSION_TTL`]); the store keeps only its SHA-256
//!   ([`crate::store::sessions`]).
//! - **CSRF**: every form of a signed-in page carries a token derived from the session
//!   secret ([`csrf_token`]); every POST is checked ([`Viewer::check`]) before it
//!   changes anything, and answered 403 without it or with a wrong one.
//! - **One-time links** (`/sign-in/link/{secret}`, made by [`create_sign_in_link`] for
//!   `bookcal demo`) sign in once within [`LINK_TTL`]; the store keeps the hash and
//!   deletes it as it is used. This is the only URL with a secret in it.
//! - `/sign-in` and the links count against the client's anonymous request rate
//!   (`api::throttle`), so tokens cannot be guessed quickly.

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::layout::{self, Flash};
use super::WebError;
use crate::api::auth::{Caller, Roles};
use crate::api::feed_tokens::new_secret;
use crate::api::AppState;
use crate::domain::Id;
use crate::store::sessions::{secret_hash, Session, SignInLink};
use crate::store::{Store, StoreError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "bookcal_session";
/// The sign-in form's CSRF cookie.
pub const SIGN_IN_COOKIE: &str = "bookcal_signin";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::hours(12);
/// How long a one-time sign-in link may be used.
pub const LINK_TTL: Duration = Duration::minutes(30);
/// The path of one-time sign-in links (the secret follows).
pub const LINK_PATH: &str = "/sign-in/link/";

/// The CSRF token of the session with this secret: SHA-256 over a label and the
/// secret, hex. Only who holds the cookie can know it.
pub fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bookcal web csrf:");
    h.update(session_secret.as_bytes());
    hex::encode(h.finalize())
}

/// Whether two secrets are equal, in constant time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether cookies get `Secure` (the service is reached over https).
pub fn secure(state: &AppState) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, on `path`, for `max_age`
/// seconds (0 removes it), `Secure` when asked.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let mut c =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c)
        .unwrap_or_else(|_| HeaderValue::from_static("bookcal_invalid=; Max-Age=0"))
}

/// A signed-in user looking at a page: who, with which roles, and the session's CSRF
/// token for the page's forms. Without a valid session a GET is redirected to the
/// sign-in page and a POST is 403.
pub struct Viewer {
    pub caller: Caller,
    pub roles: Roles,
    pub csrf: String,
    session: [u8; 32],
    /// The message the last action left for this page.
    pub flash: Option<Flash>,
}

impl Viewer {
    /// Checks a POSTed form's CSRF token (field `csrf`).
    ///
    /// # Errors
    /// 403 when it is missing or wrong; nothing may change then.
    pub fn check(&self, form: &FormData) -> Result<(), WebError> {
        match form.get("csrf") {
            Some(t) if same(t, &self.csrf) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    /// Whether the viewer is staff.
    pub fn staff(&self) -> bool {
        self.roles.staff
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let signed_out = || {
            if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
                Redirect::to("/sign-in").into_response()
            } else {
                WebError::Csrf.into_response()
            }
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(signed_out());
        };
        let hash = secret_hash(&secret);
        let store: &Store = &state.store;
        let session = store
            .session(&hash, Utc::now())
            .await
            .map_err(|e| WebError::from(e).into_response())?;
        let Some(session) = session else {
            return Err(signed_out());
        };
        let user = store
            .user(session.user)
            .await
            .map_err(|e| WebError::from(e).into_response())?;
        let Some(user) = user else {
            return Err(signed_out());
        };
        let roles = Roles::load(store, &user)
            .await
            .map_err(|e| WebError::from(e).into_response())?;
        Ok(Viewer {
            caller: Caller { user },
            roles,
            csrf: csrf_token(&secret),
            session: hash,
            flash: Flash::from_headers(&parts.headers),
        })
    }
}

/// A posted `application/x-www-form-urlencoded` form.
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a form body.
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

impl FromRequest<AppState> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(FormData::parse(&body))
    }
}

/// Starts a session for `user`: stores its hash and answers the cookie to set.
async fn start_session(state: &AppState, user: Id) -> Result<HeaderValue, WebError> {
    let now = Utc::now();
    let secret = new_secret();
    let session = Session {
        user,
        created: now,
        expires: now + SESSION_TTL,
    };
    state
        .store
        .put_session(&secret_hash(&secret), &session)
        .await?;
    Ok(set_cookie(
        SESSION_COOKIE,
        &secret,
        "/",
        SESSION_TTL.num_seconds(),
        secure(state),
    ))
}

/// Signed in: to the start page, with the session cookie and without the sign-in
/// form's cookie.
fn signed_in(state: &AppState, cookie: HeaderValue) -> Response {
    let mut res = Redirect::to("/").into_response();
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, cookie);
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", "/sign-in", 0, secure(state)),
    );
    res
}

/// Creates a one-time sign-in link for `user` under `base` (the service's address),
/// usable once within [`LINK_TTL`].
///
/// # Errors
/// Storage failure.
pub async fn create_sign_in_link(
    store: &Store,
    user: Id,
    base: &str,
) -> Result<String, StoreError> {
    let secret = new_secret();
    let link = SignInLink {
        user,
        expires: Utc::now() + LINK_TTL,
    };
    store.put_sign_in_link(&secret_hash(&secret), &link).await?;
    Ok(format!("{}{LINK_PATH}{secret}", base.trim_end_matches('/')))
}

/// The sign-in page (with a fresh CSRF cookie for its form).
fn sign_in_form(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let token = new_secret();
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            p.lead { "Sign in with your API token: the one your Waldur profile shows, or the one "
                "bookcal's operator gave you. It is sent once; the browser keeps a session cookie." }
            @if let Some(e) = error {
                p.flash.tone-error role="alert" { (e) }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password"
                    required spellcheck="false" autocapitalize="off";
                div.actions { button #sign-in type="submit" { "Sign in" } }
            }
        }
    };
    let mut res = (
        status,
        layout::page("Sign in", None, layout::Nav::None, body),
    )
        .into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &token, "/sign-in", 3600, secure(state)),
    );
    res
}

/// `GET /sign-in` (signed in already: on to the start page).
pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(_)) = state.store.session(&secret_hash(secret), Utc::now()).await {
            return Redirect::to("/").into_response();
        }
    }
    sign_in_form(&state, StatusCode::OK, None)
}

/// `POST /sign-in`: `token` (the API token) and `csrf` (equal to the form's cookie).
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    match form.get("csrf") {
        Some(t) if !expected.is_empty() && same(t, expected) => {}
        _ => return Err(WebError::Csrf),
    }
    let token = form.get("token").unwrap_or_default().trim();
    let user = if token.is_empty() {
        None
    } else {
        state.store.user_by_token(token).await?
    };
    let Some(user) = user else {
        return Ok(sign_in_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That API token is not valid. Check that it is copied whole."),
        ));
    };
    let cookie = start_session(&state, user.id).await?;
    tracing::info!(user = %user.username, "signed in to the web pages");
    Ok(signed_in(&state, cookie))
}

/// `GET /sign-in/link/{secret}`: a one-time link signs in once.
pub async fn sign_in_link(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(secret): Path<String>,
) -> Result<Response, WebError> {
    if method == axum::http::Method::HEAD {
        // Link previews look before anyone clicks: that must not use the link up.
        return Ok(StatusCode::OK.into_response());
    }
    let link = state
        .store
        .take_sign_in_link(&secret_hash(&secret), Utc::now())
        .await?;
    let Some(link) = link else {
        let body = html! {
            h1 { "This sign-in link cannot be used" }
            p { "A sign-in link works once and only for a short while; this one was used "
                "already or has expired. Sign in with your API token instead." }
            p { a href="/sign-in" { "Sign in" } }
        };
        return Ok((
            StatusCode::NOT_FOUND,
            layout::page("Sign-in link used", None, layout::Nav::None, body),
        )
            .into_response());
    };
    let cookie = start_session(&state, link.user).await?;
    tracing::info!("signed in to the web pages with a one-time link");
    Ok(signed_in(&state, cookie))
}

/// `POST /sign-out`: ends the session and removes the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    form: FormData,
) -> Result<Response, WebError> {
    viewer.check(&form)?;
    state.store.delete_session(&viewer.session).await?;
    let mut res = Redirect::to("/sign-in").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, secure(&state)),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; bookcal_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "bookcal"), None);
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_when_asked() {
        let plain = set_cookie(SESSION_COOKIE, "s", "/", 60, false);
        assert_eq!(
            plain.to_str().ok(),
            Some("bookcal_session=s; Path=/; Max-Age=60; HttpOnly; SameSite=Strict")
        );
        let secure = set_cookie(SESSION_COOKIE, "s", "/", 60, true);
        assert!(secure.to_str().is_ok_and(|v| v.ends_with("; Secure")));
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let a = csrf_token("one");
        assert_eq!(a, csrf_token("one"));
        assert_ne!(a, csrf_token("two"));
        assert!(same(&a, &csrf_token("one")));
        assert!(!same(&a, &a[1..]));
        assert!(!same(&a, ""));
    }
}
