//! Secret feed tokens: create, list and revoke.
//!
//! - `/api/booking-offerings/{uuid}/feed_tokens/` (`GET`, `POST`) and
//!   `.../feed_tokens/{token_uuid}/` (`DELETE`): owner-feed tokens of an offering, for
//!   staff and the provider's owners and managers (others: 404, as the offering is
//!   invisible to them).
//! - `/api/feed-tokens/` (`GET`, `POST`) and `/api/feed-tokens/{token_uuid}/`
//!   (`DELETE`): the caller's own "my bookings" tokens.
//!
//! A token is 32 random bytes, base64url without padding (256 bits). Only its SHA-256
//! is stored ([`crate::store::feed_tokens`]); the secret and the feed URL holding it
//! appear once, in the `201` answer to the `POST`. Lists are bare JSON arrays, oldest
//! first, without secrets. Revoking deletes the record: the feed answers 404 at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Caller, Roles};
use super::feeds::TOKEN_PATH;
use super::render::ts;
use super::{path_id, ApiError, AppState, BaseUrl, RawBody};
use crate::domain::Id;
use crate::store::feed_tokens::{feed_token_hash, FeedScope, FeedToken};
use std::collections::HashMap;

use crate::domain::User;
use crate::store::{Change, Load, Store, Wanted};

/// Most tokens one scope may have (each is a separate subscription to revoke).
pub const MAX_TOKENS_PER_SCOPE: usize = 50;
/// Longest label accepted.
pub const MAX_NAME_CHARS: usize = 150;

/// A fresh secret: 32 bytes from the OS-seeded CSPRNG, base64url without padding.
pub fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A secret feed token. The secret itself appears only once, inside `url`, in the
/// answer to the request that created the token.
#[derive(Serialize, ToSchema)]
#[schema(as = FeedToken)]
pub struct FeedTokenOut<'a> {
    /// 32 hex digits.
    #[schema(value_type = String)]
    uuid: Id,
    name: &'a str,
    #[schema(format = DateTime)]
    created: String,
    /// When a calendar app last fetched the feed (updated at most once a minute).
    #[schema(required = true)]
    last_used: Option<String>,
    #[schema(required = true)]
    created_by_username: Option<&'a str>,
    /// Only when created: the feed's URL, secret included.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

impl<'a> FeedTokenOut<'a> {
    fn of(t: &'a FeedToken, users: &'a HashMap<Id, User>) -> Self {
        FeedTokenOut {
            uuid: t.uuid,
            name: &t.name,
            created: ts(&t.created),
            last_used: t.last_used.as_ref().map(ts),
            created_by_username: users.get(&t.created_by).map(|u| u.username.as_str()),
            url: None,
        }
    }
}

/// The creators of these tokens.
async fn creators(store: &Store, tokens: &[FeedToken]) -> Result<HashMap<Id, User>, ApiError> {
    Ok(store
        .related(&Wanted {
            users: tokens.iter().map(|t| t.created_by).collect(),
            ..Wanted::default()
        })
        .await?
        .users)
}

/// The offering a caller manages tokens of: 404 when invisible, 403 when visible but
/// not manageable (today everyone who sees a booking offering may manage it).
///
/// # Errors
/// 404, 403, storage failure.
pub async fn managed_offering(store: &Store, caller: &Caller, uuid: &str) -> Result<Id, ApiError> {
    let id = path_id(uuid)?;
    let roles = Roles::load(store, &caller.user).await?;
    let o = store
        .offering(id)
        .await?
        .filter(|o| roles.sees_offering(o.customer))
        .ok_or(ApiError::NotFound)?;
    if !roles.is_provider_staff(o.customer) {
        return Err(ApiError::Forbidden);
    }
    Ok(id)
}

/// The `name` of a create body (DRF messages).
fn name_field(body: &RawBody) -> Result<String, ApiError> {
    let body = body.json_object()?;
    match body.get("name") {
        None | Some(Value::Null) => Err(ApiError::field("name", "This field is required.")),
        Some(Value::String(s)) => token_name(s),
        Some(_) => Err(ApiError::field("name", "Not a valid string.")),
    }
}

/// A token's label as given (API body or web form), trimmed and checked.
///
/// # Errors
/// 400 naming `name`: blank, too long, or with control characters.
pub fn token_name(given: &str) -> Result<String, ApiError> {
    let name = given.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::field("name", "This field may not be blank."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::field(
            "name",
            format!("Ensure this field has no more than {MAX_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "Control characters are not allowed.",
        ));
    }
    Ok(name)
}

async fn list(state: &AppState, scope: FeedScope) -> Result<Response, ApiError> {
    let tokens = state.store.feed_tokens(scope).await?;
    let users = creators(&state.store, &tokens).await?;
    let out: Vec<FeedTokenOut> = tokens.iter().map(|t| FeedTokenOut::of(t, &users)).collect();
    Ok(Json(out).into_response())
}

async fn create(
    state: &AppState,
    caller: &Caller,
    base: &str,
    scope: FeedScope,
    name: String,
) -> Result<Response, ApiError> {
    let (token, url) = issue(state, caller, base, scope, name).await?;
    let users = creators(&state.store, std::slice::from_ref(&token)).await?;
    let out = FeedTokenOut {
        url: Some(url),
        ..FeedTokenOut::of(&token, &users)
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Creates a token of `scope` named `name` (already checked by [`token_name`]) and
/// answers it with its feed URL, the only time the secret is seen. The caller has
/// checked that `scope` is the caller's to manage ([`managed_offering`], or the
/// caller's own bookings).
///
/// # Errors
/// 400 past [`MAX_TOKENS_PER_SCOPE`], storage failure.
pub async fn issue(
    state: &AppState,
    caller: &Caller,
    base: &str,
    scope: FeedScope,
    name: String,
) -> Result<(FeedToken, String), ApiError> {
    let secret = new_secret();
    let token = FeedToken {
        uuid: Id::new_v4(),
        name,
        scope,
        created: Utc::now(),
        created_by: caller.user.id,
        last_used: None,
        hash: feed_token_hash(&secret),
    };
    let store: &Store = &state.store;
    let load = Load {
        feed_tokens: Some(scope),
        ..Load::default()
    };
    store
        .mutate(&load, |view| {
            if view.feed_tokens.len() >= MAX_TOKENS_PER_SCOPE {
                return Err(ApiError::bad(format!(
                    "A feed can have at most {MAX_TOKENS_PER_SCOPE} tokens; revoke one first."
                )));
            }
            Ok((vec![Change::FeedToken(token.clone())], ()))
        })
        .await?;
    let url = format!("{base}{TOKEN_PATH}{secret}.ics");
    Ok((token, url))
}

async fn destroy(
    state: &AppState,
    scope: FeedScope,
    token_uuid: &str,
) -> Result<StatusCode, ApiError> {
    revoke(state, scope, path_id(token_uuid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the token `id` of `scope` (404 when `scope` has no such token).
///
/// # Errors
/// 404, storage failure.
pub async fn revoke(state: &AppState, scope: FeedScope, id: Id) -> Result<(), ApiError> {
    let load = Load {
        feed_tokens: Some(scope),
        ..Load::default()
    };
    state
        .store
        .mutate(&load, |view| {
            let token = view
                .feed_tokens
                .iter()
                .find(|t| t.uuid == id)
                .ok_or(ApiError::NotFound)?;
            Ok((vec![Change::RevokeFeedToken(token.hash)], ()))
        })
        .await?;
    Ok(())
}

/// `GET /api/booking-offerings/{uuid}/feed_tokens/`.
pub async fn list_offering(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let id = managed_offering(&state.store, &caller, &uuid).await?;
    list(&state, FeedScope::Offering(id)).await
}

/// `POST /api/booking-offerings/{uuid}/feed_tokens/` `{"name": "..."}`.
pub async fn create_offering(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let id = managed_offering(&state.store, &caller, &uuid).await?;
    let name = name_field(&body)?;
    create(&state, &caller, &base, FeedScope::Offering(id), name).await
}

/// `DELETE /api/booking-offerings/{uuid}/feed_tokens/{token_uuid}/`.
pub async fn destroy_offering(
    State(state): State<AppState>,
    caller: Caller,
    Path((uuid, token_uuid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = managed_offering(&state.store, &caller, &uuid).await?;
    destroy(&state, FeedScope::Offering(id), &token_uuid).await
}

/// `GET /api/feed-tokens/`: the caller's "my bookings" tokens.
pub async fn list_mine(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    list(&state, FeedScope::User(caller.user.id)).await
}

/// `POST /api/feed-tokens/` `{"name": "..."}`.
pub async fn create_mine(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    body: RawBody,
) -> Result<Response, ApiError> {
    let name = name_field(&body)?;
    create(
        &state,
        &caller,
        &base,
        FeedScope::User(caller.user.id),
        name,
    )
    .await
}

/// `DELETE /api/feed-tokens/{token_uuid}/`.
pub async fn destroy_mine(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    destroy(&state, FeedScope::User(caller.user.id), &token_uuid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_base64url_characters_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&a);
        assert_eq!(decoded.map(|d| d.len()).ok(), Some(32));
    }
}
