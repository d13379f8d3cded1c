//! The web pages people use, rendered on the server (maud) and served by the same
//! binary at `/`: sign-in, "My offerings" with each offering's calendar and feeds,
//! the offering page (week and month), "My bookings", and the scheduler for staff.
//!
//! - [`session`]: sign-in with the API token, session cookies, CSRF, one-time links.
//! - [`layout`]: the page frame and shared pieces; [`assets`]: the stylesheet, the
//!   copy script and the security headers.
//! - [`offerings`], [`bookings`], [`staff`]: the pages and their actions.
//! - [`grid`], [`words`]: pure layout and wording (table-tested).
//!
//! Rules: the pages read through the same visibility as the API (`api::auth::Roles`)
//! and every action calls the API's own functions (`api::offerings`,
//! `api::feed_tokens`, `api::resources`, `api::orders`), so no rule is written twice
//! and a page never shows what the API would hide from its viewer. Every form posts
//! with the session's CSRF token and redirects (POST-redirect-GET), except the
//! creation of a feed token, whose answer shows the secret URL once. Everything works
//! without JavaScript; the only script copies text to the clipboard.

pub mod assets;
pub mod bookings;
pub mod grid;
pub mod layout;
pub mod offerings;
pub mod session;
pub mod staff;
pub mod words;

use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::api::{throttle, ApiError, AppState};
use crate::store::StoreError;
use layout::Flash;

/// Why a page or an action could not be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A POST without the form's CSRF token, or with a wrong one (403).
    #[error("the form's security token is missing or wrong")]
    Csrf,
    /// What the API would answer, as a page (404 and 403 as pages; the rest as the
    /// message on the page the action came from).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::Api(ApiError::Store(e))
    }
}

/// The words of an API refusal (its DRF body, flattened).
pub fn refusal_text(e: &ApiError) -> String {
    fn flatten(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| flatten(x, out)),
            _ => {}
        }
    }
    match e {
        ApiError::BadList(msgs) => msgs.join(" "),
        ApiError::BadFields(v) => {
            let mut out = Vec::new();
            flatten(v, &mut out);
            out.join(" ")
        }
        ApiError::Conflict(valid) => {
            format!("This cannot be done in its current state (it needs: {valid}).")
        }
        ApiError::NotFound => "Not found.".into(),
        ApiError::Forbidden => "You may not do this.".into(),
        other => other.to_string(),
    }
}

/// An API refusal as the message on the page an action redirects to.
pub fn refused(e: &ApiError) -> Flash {
    Flash {
        ok: false,
        text: refusal_text(e),
    }
}

/// What an action's `result` leaves for the page it redirects to: `done`'s words
/// when it succeeded, the API's refusal in words otherwise. The API's 404 and 403
/// and a store failure are no message but a page of their own ([`WebError`]).
///
/// # Errors
/// The API's 404 or 403, or a store failure.
pub fn flash_from<T>(
    result: Result<T, ApiError>,
    done: impl FnOnce(T) -> String,
) -> Result<Flash, WebError> {
    match result {
        Ok(v) => Ok(Flash {
            ok: true,
            text: done(v),
        }),
        Err(e @ (ApiError::NotFound | ApiError::Forbidden | ApiError::Store(_))) => Err(e.into()),
        Err(e) => Ok(refused(&e)),
    }
}

fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/" { "Back to the start page" } }
    };
    (status, layout::page(title, None, layout::Nav::None, body)).into_response()
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form's security token is missing or wrong, so nothing was changed. \
                 Go back, reload the page and try again.",
            ),
            WebError::Api(ApiError::NotFound) => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or you may not see it.",
            ),
            WebError::Api(ApiError::Forbidden) => error_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "You may see this, but not do this.",
            ),
            WebError::Api(ApiError::Store(e)) => {
                tracing::error!(error = %e, "a web page failed to read or write the store");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "bookcal could not read or write its data. Try again in a moment.",
                )
            }
            WebError::Api(e) => error_page(StatusCode::BAD_REQUEST, "Not done", &refusal_text(&e)),
        }
    }
}

/// The pages' routes. Sign-in and one-time links count against the client's
/// anonymous request rate; every answer carries the security headers; every request
/// is observed as the API's are ([`crate::api::ops::observe`]: a span and a count by
/// route template, never the raw path, which holds ids and one-time secrets).
pub fn router(state: AppState) -> Router {
    let css = axum::body::Bytes::from(assets::stylesheet());
    let sign_in = Router::new()
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-in/link/{secret}", get(session::sign_in_link))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            throttle::limit,
        ));
    Router::new()
        .route("/", get(offerings::mine))
        .route("/sign-out", post(session::sign_out))
        .route("/offerings/{id}", get(offerings::offering_page))
        .route("/offerings/{id}/sync", post(offerings::sync))
        .route("/offerings/{id}/share", post(offerings::share))
        .route("/offerings/{id}/unshare", post(offerings::unshare))
        .route("/offerings/{id}/feed-tokens", post(offerings::create_token))
        .route(
            "/offerings/{id}/feed-tokens/{token}/revoke",
            post(offerings::revoke_token),
        )
        .route("/requests/{id}/accept", post(offerings::accept))
        .route("/requests/{id}/reject", post(offerings::reject))
        .route("/bookings", get(bookings::mine))
        .route("/bookings/{id}/cancel", post(bookings::cancel))
        .route("/feed-tokens", post(bookings::create_token))
        .route("/feed-tokens/{token}/revoke", post(bookings::revoke_token))
        .route("/scheduler", get(staff::scheduler))
        .route(
            "/static/app.css",
            get(move || {
                let css = css.clone();
                async move { assets::asset("text/css; charset=utf-8", css) }
            }),
        )
        .route(
            "/static/app.js",
            get(|| async { assets::asset("text/javascript; charset=utf-8", assets::JS) }),
        )
        .merge(sign_in)
        .layer(middleware::from_fn(assets::security_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::api::ops::observe,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actions_result_becomes_a_message_or_a_page_of_its_own_table() {
        let done = |r: Result<(), ApiError>| flash_from(r, |()| "Done.".to_owned());
        assert_eq!(
            done(Ok(())).ok(),
            Some(Flash {
                ok: true,
                text: "Done.".into()
            })
        );
        assert_eq!(
            done(Err(ApiError::bad("No such thing."))).ok(),
            Some(Flash {
                ok: false,
                text: "No such thing.".into()
            })
        );
        let conflict = done(Err(ApiError::Conflict("OK".into()))).ok();
        assert!(conflict.is_some_and(|f| !f.ok && f.text.contains("current state")));
        for page in [ApiError::NotFound, ApiError::Forbidden] {
            assert!(matches!(done(Err(page)), Err(WebError::Api(_))));
        }
    }
}
