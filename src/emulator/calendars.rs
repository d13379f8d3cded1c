//! `calendars` (insert, get, update, patch, delete) and `calendarList` (list, get).
//!
//! New calendars get ids `c_<64 hex>@group.calendar.google.com`, `timeZone` "UTC"
//! unless given, and an ACL rule making their creator the owner. `calendarList`
//! shows the calendars the calling credential created. `calendars.insert` counts
//! against the creation limit (when switched on); past it the identity is locked out
//! (403 `quotaExceeded` "Calendar usage limits exceeded.").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::{copy_calendar_fields, etag_for, new_calendar, random_hex, Access, Caller};
use super::{parse_body, query_pairs, Shared};

fn validate_fields(fields: &Value, strict_zones: bool) -> Result<(), ApiError> {
    match fields.get("summary").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => {}
        _ => return Err(ApiError::Required("Missing title.".into())),
    }
    if let Some(zone) = fields.get("timeZone").and_then(Value::as_str) {
        let known = zone.parse::<chrono_tz::Tz>().is_ok();
        if !known || (strict_zones && !super::zones::accepts(zone)) {
            return Err(ApiError::Invalid("Invalid time zone definition.".into()));
        }
    }
    Ok(())
}

/// `calendar.calendars.insert`.
pub(crate) async fn insert(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let fields = parse_body(&body)?;
    let mut store = shared.lock();
    validate_fields(&fields, store.behaviour.strict_time_zones)?;
    store.admit_calendar_creation(&caller.identity)?;
    let id = format!("c_{}@group.calendar.google.com", random_hex(32));
    let now = store.now();
    let mut calendar = new_calendar(&id, &caller.identity, fields, now);
    calendar.created_at = Some(store.instant());
    let resource = calendar.resource.clone();
    store.calendars.insert(id.clone(), calendar);
    store.calendar_order.push(id);
    Ok(Json(resource))
}

/// `calendar.calendars.get`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_resource_mut(&calendar_id, &caller, Access::FreeBusy)?;
    Ok(Json(calendar.resource.clone()))
}

fn replace(
    shared: &Shared,
    caller: &Caller,
    calendar_id: &str,
    body: &Bytes,
    patch: bool,
) -> Result<Json<Value>, ApiError> {
    let incoming = parse_body(body)?;
    let mut store = shared.lock();
    let now = store.now();
    let strict_zones = store.behaviour.strict_time_zones;
    let calendar = store.calendar_resource_mut(calendar_id, caller, Access::Owner)?;
    let fields = if patch {
        let mut merged = calendar.resource.clone();
        super::events::merge_patch(&mut merged, &incoming);
        merged
    } else {
        incoming
    };
    validate_fields(&fields, strict_zones)?;
    copy_calendar_fields(&mut calendar.resource, &fields);
    calendar.resource["etag"] = json!(etag_for(now));
    Ok(Json(calendar.resource.clone()))
}

/// `calendar.calendars.update`.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    replace(&shared, &caller, &calendar_id, &body, false)
}

/// `calendar.calendars.patch`.
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    replace(&shared, &caller, &calendar_id, &body, true)
}

/// `calendar.calendars.delete`: the calendar is gone (404 afterwards).
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
) -> Result<Response, ApiError> {
    let mut store = shared.lock();
    let id = store
        .calendar_resource_mut(&calendar_id, &caller, Access::Owner)?
        .resource["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    store.calendars.remove(&id);
    store.calendar_order.retain(|c| c != &id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn list_entry(resource: &Value, access: Access) -> Value {
    let mut entry = resource.clone();
    entry["kind"] = json!("calendar#calendarListEntry");
    entry["accessRole"] = json!(access.role());
    entry["colorId"] = json!("14");
    entry["backgroundColor"] = json!("#9fe1e7");
    entry["foregroundColor"] = json!("#000000");
    entry["defaultReminders"] = json!([]);
    entry
}

/// `calendar.calendarList.list`: calendars the credential created, paged by
/// `maxResults` (default 100, at most 250) and `pageToken`.
pub(crate) async fn list_calendar_list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let max = match param("maxResults") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::Invalid(format!("Invalid value '{v}'.")))?
            .min(250),
        None => 100,
    };
    let offset = match param("pageToken") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::Invalid("Invalid page token value.".into()))?,
        None => 0,
    };
    let store = shared.lock();
    let all: Vec<Value> = store
        .calendar_order
        .iter()
        .filter_map(|id| store.calendars.get(id))
        .filter(|c| c.owner == caller.identity)
        .map(|c| list_entry(&c.resource, Access::Owner))
        .collect();
    let page: Vec<Value> = all.iter().skip(offset).take(max).cloned().collect();
    let mut body = json!({
        "kind": "calendar#calendarList",
        "etag": format!("\"p{}\"", all.len()),
        "items": page,
    });
    if offset + max < all.len() {
        body["nextPageToken"] = json!((offset + max).to_string());
    } else {
        body["nextSyncToken"] = json!(format!("cl{}", all.len()));
    }
    Ok(Json(body))
}

/// `calendar.calendarList.get`.
pub(crate) async fn get_calendar_list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_resource_mut(&calendar_id, &caller, Access::FreeBusy)?;
    let access = super::state::access_of(calendar, &caller.identity).unwrap_or(Access::FreeBusy);
    Ok(Json(list_entry(&calendar.resource, access)))
}
