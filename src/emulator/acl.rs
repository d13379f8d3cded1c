//! `acl` (list, get, insert, update, patch, delete) on a calendar.
//!
//! Rule ids are `default` for the default (public) scope and `<type>:<value>`
//! otherwise (`user:a@b`, `group:g@b`, `domain:b`). Inserting a rule for a scope that
//! already has one replaces it. Every ACL change bumps the calendar's sync epoch:
//! outstanding event sync tokens then answer 410 `fullSyncRequired`, as Google
//! documents for ACL changes. Only owners may read or change the ACL.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::{etag_for, Access, Caller};
use super::{parse_body, Shared};

const ROLES: [&str; 5] = ["none", "freeBusyReader", "reader", "writer", "owner"];

/// Validates a rule body and returns `(rule id, scope, role)`.
fn parse_rule(body: &Value) -> Result<(String, Value, String), ApiError> {
    let role = body
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Required("Missing role.".into()))?;
    if !ROLES.contains(&role) {
        return Err(ApiError::Invalid(format!("Invalid role: {role}")));
    }
    let scope = body
        .get("scope")
        .filter(|s| s.is_object())
        .ok_or_else(|| ApiError::Required("Missing scope.".into()))?;
    let kind = scope
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Required("Missing scope type.".into()))?;
    let value = scope
        .get("value")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty());
    let (id, scope) = match (kind, value) {
        ("default", _) => ("default".to_owned(), json!({"type": "default"})),
        ("user" | "group" | "domain", Some(value)) => (
            format!("{kind}:{value}"),
            json!({"type": kind, "value": value}),
        ),
        ("user" | "group" | "domain", None) => {
            return Err(ApiError::Required("Missing scope value.".into()))
        }
        (other, _) => return Err(ApiError::Invalid(format!("Invalid scope type: {other}"))),
    };
    Ok((id, scope, role.to_owned()))
}

/// `calendar.acl.list`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Owner)?;
    let items: Vec<Value> = calendar.acl.values().cloned().collect();
    Ok(Json(json!({
        "kind": "calendar#acl",
        "etag": format!("\"acl{}\"", calendar.sync_epoch),
        "nextSyncToken": format!("acl{}", calendar.sync_epoch),
        "items": items,
    })))
}

/// `calendar.acl.get`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, rule_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Owner)?;
    calendar
        .acl
        .get(&rule_id)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound)
}

fn store_rule(
    shared: &Shared,
    caller: &Caller,
    calendar_id: &str,
    path_rule: Option<&str>,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let (id, scope, role) = parse_rule(body)?;
    if path_rule.is_some_and(|p| p != id) {
        return Err(ApiError::Invalid("Invalid rule id.".into()));
    }
    let mut store = shared.lock();
    let now = store.now();
    let calendar = store.calendar_mut(calendar_id, caller, Access::Owner)?;
    if path_rule.is_some() && !calendar.acl.contains_key(&id) {
        return Err(ApiError::NotFound);
    }
    let rule = json!({
        "kind": "calendar#aclRule",
        "etag": etag_for(now),
        "id": id,
        "scope": scope,
        "role": role,
    });
    calendar.acl.insert(id, rule.clone());
    calendar.sync_epoch += 1;
    Ok(Json(rule))
}

/// `calendar.acl.insert`.
pub(crate) async fn insert(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&body)?;
    store_rule(&shared, &caller, &calendar_id, None, &body)
}

/// `calendar.acl.update`.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, rule_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_body(&body)?;
    store_rule(&shared, &caller, &calendar_id, Some(&rule_id), &body)
}

/// `calendar.acl.patch`: missing fields come from the current rule.
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, rule_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let incoming = parse_body(&body)?;
    let mut merged = {
        let mut store = shared.lock();
        let calendar = store.calendar_mut(&calendar_id, &caller, Access::Owner)?;
        calendar
            .acl
            .get(&rule_id)
            .cloned()
            .ok_or(ApiError::NotFound)?
    };
    super::events::merge_patch(&mut merged, &incoming);
    store_rule(&shared, &caller, &calendar_id, Some(&rule_id), &merged)
}

/// `calendar.acl.delete`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, rule_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Owner)?;
    calendar.acl.remove(&rule_id).ok_or(ApiError::NotFound)?;
    calendar.sync_epoch += 1;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_follow_the_scope() {
        let cases: Vec<(Value, Result<&str, &str>)> = vec![
            (
                json!({"role": "reader", "scope": {"type": "default"}}),
                Ok("default"),
            ),
            (
                json!({"role": "writer", "scope": {"type": "user", "value": "a@b.c"}}),
                Ok("user:a@b.c"),
            ),
            (
                json!({"role": "freeBusyReader", "scope": {"type": "domain", "value": "b.c"}}),
                Ok("domain:b.c"),
            ),
            (
                json!({"role": "reader", "scope": {"type": "user"}}),
                Err("required"),
            ),
            (
                json!({"role": "boss", "scope": {"type": "default"}}),
                Err("invalid"),
            ),
            (json!({"scope": {"type": "default"}}), Err("required")),
            (
                json!({"role": "reader", "scope": {"type": "planet", "value": "x"}}),
                Err("invalid"),
            ),
        ];
        for (body, expected) in cases {
            let got = parse_rule(&body)
                .map(|(id, _, _)| id)
                .map_err(|e| e.reason());
            assert_eq!(got.as_deref().map_err(|e| *e), expected, "{body}");
        }
    }
}
