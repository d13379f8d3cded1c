//! `events` (insert, get, update, patch, delete, instances); `events.list` lives in
//! [`super::list`].
//!
//! Google's rules honoured here: client ids are base32hex, 5..=1024 chars, unique
//! including deleted events (409 `duplicate`); DELETE leaves a `cancelled` tombstone
//! (a second DELETE is 410 `deleted`); every change gets a new `etag`/`updated` and
//! the next change sequence of the calendar; `If-Match` with another etag is 412;
//! PUT with `status: confirmed` revives a cancelled event (PUT without `status` keeps
//! it cancelled: the stricter reading, uncertain); a service account acting as
//! itself may not add attendees (403 `forbiddenForServiceAccounts`). An instance id
//! (`<parentId>_<originalStart>`) that has no stored exception resolves to the
//! virtual instance; PUT/PATCH/DELETE on it store an exception (a cancelled one for
//! DELETE) with `recurringEventId` and `originalStartTime`.
//!
//! Switches honoured here: `strict_time_zones` (a `timeZone` Google does not accept
//! is 400 "Invalid time zone definition for start time."), `etag_drift` (the stored
//! etag differs from the one the write answered), purged tombstones (insert 409,
//! everything else 404).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::recurrence::{self, Occurrence};
use super::state::{
    drifted_etag, etag_for, is_valid_event_id, random_event_id, timestamp, Access, Behaviour,
    Calendar, Caller, StoredEvent,
};
use super::times::EventTime;
use super::{parse_body, query_pairs, Shared};

/// Fields the server owns; client values for them are ignored.
const SERVER_FIELDS: [&str; 11] = [
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "recurringEventId",
    "originalStartTime",
    "iCalUID",
];

/// Google's patch semantics: objects merge member by member, `null` removes, other
/// values (arrays included) replace. `start`/`end` are replaced as a whole so an
/// event can move between all-day and timed.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let (Some(target), Some(patch)) = (target.as_object_mut(), patch.as_object()) else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else if value.is_object()
            && !matches!(key.as_str(), "start" | "end" | "originalStartTime")
            && target.get(key).is_some_and(Value::is_object)
        {
            if let Some(existing) = target.get_mut(key) {
                merge_patch(existing, value);
            }
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Start, end and recurrence of a stored (valid) event.
pub(crate) fn times_of(body: &Value) -> Option<(EventTime, EventTime)> {
    Some((
        EventTime::parse(body.get("start"), "start").ok()?,
        EventTime::parse(body.get("end"), "end").ok()?,
    ))
}

pub(crate) fn recurrence_of(body: &Value) -> Vec<String> {
    body.get("recurrence")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A recurring series (not an exception of one).
pub(crate) fn is_series(body: &Value) -> bool {
    body.get("recurringEventId").is_none() && !recurrence_of(body).is_empty()
}

/// Renders a time in the zone Google shows it in: the value's own zone, else the
/// calendar's (uncertain: Google's choice of offset for zone-less values).
fn render_time(time: &EventTime, calendar_tz: chrono_tz::Tz) -> Value {
    match time {
        EventTime::Date(_) => time.to_json(),
        EventTime::DateTime { at, zone } => {
            let shown = at
                .with_timezone(&zone.unwrap_or(calendar_tz))
                .fixed_offset();
            EventTime::DateTime {
                at: shown,
                zone: *zone,
            }
            .to_json()
        }
    }
}

/// Validates the client part of an event and normalises it in place.
fn validate(
    body: &mut Map<String, Value>,
    calendar: &Calendar,
    caller: &Caller,
    attendees_changed: bool,
    strict_zones: bool,
) -> Result<(), ApiError> {
    let tz = calendar.time_zone();
    let start = EventTime::parse(body.get("start"), "start")?;
    let end = EventTime::parse(body.get("end"), "end")?;
    if strict_zones {
        for which in ["start", "end"] {
            let zone = body
                .get(which)
                .and_then(|t| t.get("timeZone"))
                .and_then(Value::as_str);
            if zone.is_some_and(|z| !super::zones::accepts(z)) {
                return Err(ApiError::Invalid(format!(
                    "Invalid time zone definition for {which} time."
                )));
            }
        }
    }
    if start.is_all_day() != end.is_all_day() {
        return Err(ApiError::Invalid("Invalid start time.".into()));
    }
    if end.instant(tz) < start.instant(tz) {
        return Err(ApiError::TimeRangeEmpty);
    }
    if let Some(recurrence) = body.get("recurrence") {
        let lines = recurrence
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| ApiError::Invalid("Invalid recurrence rule.".into()))?;
        if !lines.is_empty() {
            let lines: Vec<String> = lines
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            recurrence::validate(&start, &end, &lines)?;
        }
    }
    body.insert("start".into(), render_time(&start, tz));
    body.insert("end".into(), render_time(&end, tz));
    for (field, allowed) in [
        ("status", &["confirmed", "tentative", "cancelled"][..]),
        ("transparency", &["opaque", "transparent"][..]),
        (
            "visibility",
            &["default", "public", "private", "confidential"][..],
        ),
    ] {
        if let Some(value) = body.get(field) {
            if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
                return Err(ApiError::Invalid(format!("Invalid value for: {field}")));
            }
        }
    }
    if let Some(props) = body.get_mut("extendedProperties") {
        sanitize_extended_properties(props)?;
    }
    if let Some(attendees) = body.get_mut("attendees") {
        let list = attendees
            .as_array_mut()
            .ok_or_else(|| ApiError::Invalid("Invalid attendee.".into()))?;
        if !list.is_empty() && attendees_changed && caller.service_account_without_subject {
            return Err(ApiError::ForbiddenForServiceAccounts);
        }
        for attendee in list.iter_mut() {
            if !attendee.get("email").is_some_and(Value::is_string) {
                return Err(ApiError::Required("Missing attendee email.".into()));
            }
            if attendee.get("responseStatus").is_none() {
                attendee["responseStatus"] = json!("needsAction");
            }
        }
    }
    Ok(())
}

/// Google's limits: keys longer than 44 chars are dropped, values longer than 1024
/// chars truncated; values must be strings.
pub(crate) fn sanitize_extended_properties(props: &mut Value) -> Result<(), ApiError> {
    let Some(props) = props.as_object_mut() else {
        return Err(ApiError::Invalid("Invalid extendedProperties.".into()));
    };
    for visibility in ["private", "shared"] {
        let Some(map) = props.get_mut(visibility) else {
            continue;
        };
        let Some(map) = map.as_object_mut() else {
            return Err(ApiError::Invalid(format!(
                "Invalid extendedProperties.{visibility}."
            )));
        };
        let mut kept = Map::new();
        for (key, value) in map.iter() {
            let Some(text) = value.as_str() else {
                return Err(ApiError::Invalid(format!(
                    "Invalid value for extended property {key}."
                )));
            };
            if key.chars().count() > 44 {
                continue;
            }
            kept.insert(
                key.clone(),
                json!(text.chars().take(1024).collect::<String>()),
            );
        }
        *map = kept;
    }
    Ok(())
}

fn html_link(calendar_id: &str, event_id: &str) -> String {
    use base64::Engine;
    let eid = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{event_id} {calendar_id}"));
    format!("https://www.google.com/calendar/event?eid={eid}")
}

/// What a write needs besides the event: who, when, and the switches.
struct WriteContext<'a> {
    caller: &'a Caller,
    now: DateTime<Utc>,
    behaviour: &'a Behaviour,
}

/// Stores `client` (validated) as event `id`, keeping server fields of `previous`;
/// returns the body the write answers (its etag differs from the stored one when
/// etags drift).
fn store_event(
    calendar: &mut Calendar,
    ctx: &WriteContext<'_>,
    id: &str,
    mut client: Map<String, Value>,
    previous: Option<&Value>,
    exception_of: Option<(&str, Value)>,
) -> Result<Value, ApiError> {
    let WriteContext {
        caller,
        now,
        behaviour,
    } = *ctx;
    let attendees_changed = client.get("attendees") != previous.and_then(|p| p.get("attendees"));
    let requested_sequence = client.get("sequence").and_then(Value::as_i64);
    let requested_ical = client.get("iCalUID").cloned();
    for field in SERVER_FIELDS.iter().chain(["sequence"].iter()) {
        client.remove(*field);
    }
    if !client.contains_key("status") {
        let status = previous
            .and_then(|p| p.get("status"))
            .cloned()
            .unwrap_or_else(|| json!("confirmed"));
        client.insert("status".into(), status);
    }
    validate(
        &mut client,
        calendar,
        caller,
        attendees_changed,
        behaviour.strict_time_zones,
    )?;
    let calendar_id = calendar.resource["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let current_sequence = previous
        .and_then(|p| p.get("sequence"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if requested_sequence.is_some_and(|s| s < current_sequence) {
        return Err(ApiError::Invalid(
            "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.".into(),
        ));
    }
    let times_changed = previous.is_some_and(|p| {
        p.get("start") != client.get("start")
            || p.get("end") != client.get("end")
            || p.get("recurrence") != client.get("recurrence")
    });
    let sequence = match requested_sequence {
        Some(s) if s > current_sequence => s,
        _ if times_changed => current_sequence + 1,
        _ => current_sequence,
    };
    let mut body = Map::new();
    body.insert("kind".into(), json!("calendar#event"));
    body.insert("etag".into(), json!(etag_for(now)));
    body.insert("id".into(), json!(id));
    body.insert("htmlLink".into(), json!(html_link(&calendar_id, id)));
    let keep = |field: &str, default: Value| {
        previous
            .and_then(|p| p.get(field))
            .cloned()
            .unwrap_or(default)
    };
    body.insert("created".into(), keep("created", json!(timestamp(now))));
    body.insert("updated".into(), json!(timestamp(now)));
    body.insert(
        "creator".into(),
        keep("creator", json!({"email": caller.identity})),
    );
    body.insert(
        "organizer".into(),
        keep(
            "organizer",
            json!({
                "email": calendar_id,
                "displayName": calendar.resource["summary"],
                "self": true,
            }),
        ),
    );
    let ical = requested_ical
        .as_ref()
        .and_then(Value::as_str)
        .map_or_else(|| format!("{id}@google.com"), String::from);
    body.insert("iCalUID".into(), keep("iCalUID", json!(ical)));
    body.insert("sequence".into(), json!(sequence));
    if let Some((parent, original)) = exception_of {
        body.insert("recurringEventId".into(), json!(parent));
        body.insert("originalStartTime".into(), original);
        client.remove("recurrence");
    } else if let Some(p) = previous {
        for field in ["recurringEventId", "originalStartTime"] {
            if let Some(v) = p.get(field) {
                body.insert(field.into(), v.clone());
            }
        }
        if p.get("recurringEventId").is_some() {
            client.remove("recurrence");
        }
    }
    if !client.contains_key("reminders") {
        client.insert("reminders".into(), json!({"useDefault": true}));
    }
    if !client.contains_key("eventType") {
        client.insert("eventType".into(), json!("default"));
    }
    // `attendees[].self` is Google's, never the client's: true for the attendee that
    // is this calendar (its copy of the event).
    if let Some(list) = client.get_mut("attendees").and_then(Value::as_array_mut) {
        for a in list.iter_mut() {
            let is_self = a.get("email").and_then(Value::as_str) == Some(calendar_id.as_str());
            if let Some(m) = a.as_object_mut() {
                m.remove("self");
                if is_self {
                    m.insert("self".into(), json!(true));
                }
            }
        }
    }
    body.extend(client);
    let answered = Value::Object(body);
    let mut stored = answered.clone();
    if behaviour.etag_drift {
        stored["etag"] = json!(drifted_etag(now));
    }
    let seq = calendar.next_seq();
    calendar.events.insert(
        id.to_owned(),
        StoredEvent {
            body: stored,
            changed_seq: seq,
            deleted_at: None,
        },
    );
    Ok(answered)
}

/// The virtual instance of `parent` for an occurrence.
pub(crate) fn instance_body(
    parent: &Value,
    parent_id: &str,
    occurrence: &Occurrence,
    calendar_tz: chrono_tz::Tz,
) -> Value {
    let mut body = parent.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("recurrence");
    }
    body["id"] = json!(format!("{parent_id}_{}", occurrence.id_suffix));
    body["start"] = render_time(&occurrence.start, calendar_tz);
    body["end"] = render_time(&occurrence.end, calendar_tz);
    body["recurringEventId"] = json!(parent_id);
    body["originalStartTime"] = render_time(&occurrence.original_start, calendar_tz);
    body
}

/// Resolves `<parentId>_<suffix>` to the parent's id and occurrence.
pub(crate) fn resolve_instance(calendar: &Calendar, id: &str) -> Option<(String, Occurrence)> {
    let (parent_id, suffix) = id.rsplit_once('_')?;
    let parent = calendar.events.get(parent_id)?;
    if parent.is_cancelled() || !is_series(&parent.body) {
        return None;
    }
    let at = if suffix.len() == 8 {
        chrono::NaiveDate::parse_from_str(suffix, "%Y%m%d")
            .ok()?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    } else {
        chrono::NaiveDateTime::parse_from_str(suffix, "%Y%m%dT%H%M%SZ")
            .ok()?
            .and_utc()
    };
    let (start, end) = times_of(&parent.body)?;
    let lines = recurrence_of(&parent.body);
    // Window (at - 1s, at + 1s) with the end bound moved back by the duration.
    let duration = end.instant(chrono_tz::UTC) - start.instant(chrono_tz::UTC);
    let after = at - duration - chrono::Duration::seconds(1);
    let occurrences = recurrence::expand(
        &start,
        &end,
        &lines,
        Some(after),
        Some(at + chrono::Duration::seconds(1)),
        10,
    )
    .ok()?;
    occurrences
        .into_iter()
        .find(|o| o.id_suffix == suffix)
        .map(|o| (parent_id.to_owned(), o))
}

fn check_if_match(headers: &HeaderMap, current_etag: &str) -> Result<(), ApiError> {
    match headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(wanted) if wanted.trim() != "*" && wanted.trim() != current_etag => {
            Err(ApiError::ConditionNotMet)
        }
        _ => Ok(()),
    }
}

fn check_send_updates(query: Option<&str>) -> Result<(), ApiError> {
    for (key, value) in query_pairs(query) {
        if key == "sendUpdates" && !["all", "externalOnly", "none"].contains(&value.as_str()) {
            return Err(ApiError::Invalid(format!(
                "Invalid value for sendUpdates: {value}"
            )));
        }
    }
    Ok(())
}

fn into_object(value: Value) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::ParseError),
    }
}

/// `calendar.events.insert`.
pub(crate) async fn insert(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_send_updates(query.as_deref())?;
    let client = into_object(parse_body(&body)?)?;
    let mut store = shared.lock();
    let now = store.now();
    let behaviour = store.behaviour.clone();
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Writer)?;
    let id = match client.get("id") {
        Some(Value::String(id)) => {
            if !is_valid_event_id(id) {
                return Err(ApiError::Invalid("Invalid resource id value.".into()));
            }
            if calendar.events.contains_key(id) || calendar.purged.contains(id) {
                return Err(ApiError::Duplicate);
            }
            id.clone()
        }
        Some(_) => return Err(ApiError::Invalid("Invalid resource id value.".into())),
        None => loop {
            let id = random_event_id();
            if !calendar.events.contains_key(&id) && !calendar.purged.contains(&id) {
                break id;
            }
        },
    };
    let ctx = WriteContext {
        caller: &caller,
        now,
        behaviour: &behaviour,
    };
    store_event(calendar, &ctx, &id, client, None, None).map(Json)
}

/// `calendar.events.get`: cancelled events are returned too.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, event_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut store = shared.lock();
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Reader)?;
    if let Some(event) = calendar.events.get(&event_id) {
        return Ok(Json(event.body.clone()));
    }
    let (parent_id, occurrence) =
        resolve_instance(calendar, &event_id).ok_or(ApiError::NotFound)?;
    let parent = calendar.events.get(&parent_id).ok_or(ApiError::NotFound)?;
    Ok(Json(instance_body(
        &parent.body,
        &parent_id,
        &occurrence,
        calendar.time_zone(),
    )))
}

/// The request parts of an update or patch.
struct Change<'a> {
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    body: &'a Bytes,
    patch: bool,
}

fn modify(
    shared: &Shared,
    caller: &Caller,
    calendar_id: &str,
    event_id: &str,
    change: Change<'_>,
) -> Result<Json<Value>, ApiError> {
    let Change {
        headers,
        query,
        body,
        patch,
    } = change;
    check_send_updates(query)?;
    let incoming = parse_body(body)?;
    let mut store = shared.lock();
    let now = store.now();
    let behaviour = store.behaviour.clone();
    let ctx = WriteContext {
        caller,
        now,
        behaviour: &behaviour,
    };
    let calendar = store.calendar_mut(calendar_id, caller, Access::Writer)?;
    if let Some(existing) = calendar.events.get(event_id).map(|e| e.body.clone()) {
        check_if_match(headers, existing["etag"].as_str().unwrap_or_default())?;
        let client = if patch {
            let mut merged = existing.clone();
            merge_patch(&mut merged, &incoming);
            merged
        } else {
            incoming
        };
        return store_event(
            calendar,
            &ctx,
            event_id,
            into_object(client)?,
            Some(&existing),
            None,
        )
        .map(Json);
    }
    let (parent_id, occurrence) = resolve_instance(calendar, event_id).ok_or(ApiError::NotFound)?;
    let parent = calendar
        .events
        .get(&parent_id)
        .ok_or(ApiError::NotFound)?
        .body
        .clone();
    let instance = instance_body(&parent, &parent_id, &occurrence, calendar.time_zone());
    check_if_match(headers, instance["etag"].as_str().unwrap_or_default())?;
    let client = if patch {
        let mut merged = instance.clone();
        merge_patch(&mut merged, &incoming);
        merged
    } else {
        incoming
    };
    let original = instance["originalStartTime"].clone();
    store_event(
        calendar,
        &ctx,
        event_id,
        into_object(client)?,
        Some(&instance),
        Some((&parent_id, original)),
    )
    .map(Json)
}

/// `calendar.events.update`.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    modify(
        &shared,
        &caller,
        &calendar_id,
        &event_id,
        Change {
            headers: &headers,
            query: query.as_deref(),
            body: &body,
            patch: false,
        },
    )
}

/// `calendar.events.patch`.
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    modify(
        &shared,
        &caller,
        &calendar_id,
        &event_id,
        Change {
            headers: &headers,
            query: query.as_deref(),
            body: &body,
            patch: true,
        },
    )
}

/// `calendar.events.delete`: leaves a cancelled tombstone.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    check_send_updates(query.as_deref())?;
    let mut store = shared.lock();
    let now = store.now();
    let deleted_at = Some(store.instant());
    let drift = store.behaviour.etag_drift;
    let etag = if drift {
        drifted_etag(now)
    } else {
        etag_for(now)
    };
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Writer)?;
    if let Some(existing) = calendar.events.get(&event_id).map(|e| e.body.clone()) {
        if existing["status"] == "cancelled" {
            return Err(ApiError::Deleted);
        }
        check_if_match(&headers, existing["etag"].as_str().unwrap_or_default())?;
        let mut body = existing;
        body["status"] = json!("cancelled");
        body["etag"] = json!(etag);
        body["updated"] = json!(timestamp(now));
        let seq = calendar.next_seq();
        calendar.events.insert(
            event_id,
            StoredEvent {
                body,
                changed_seq: seq,
                deleted_at,
            },
        );
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (parent_id, occurrence) =
        resolve_instance(calendar, &event_id).ok_or(ApiError::NotFound)?;
    let parent = calendar
        .events
        .get(&parent_id)
        .ok_or(ApiError::NotFound)?
        .body
        .clone();
    let mut body = instance_body(&parent, &parent_id, &occurrence, calendar.time_zone());
    check_if_match(&headers, body["etag"].as_str().unwrap_or_default())?;
    body["status"] = json!("cancelled");
    body["etag"] = json!(etag);
    body["updated"] = json!(timestamp(now));
    let seq = calendar.next_seq();
    calendar.events.insert(
        event_id,
        StoredEvent {
            body,
            changed_seq: seq,
            deleted_at,
        },
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_merge_objects_and_replace_times() {
        let cases = [
            (
                json!({"summary": "a", "extendedProperties": {"private": {"k": "1"}}}),
                json!({"extendedProperties": {"private": {"j": "2"}}}),
                json!({"summary": "a", "extendedProperties": {"private": {"k": "1", "j": "2"}}}),
            ),
            (
                json!({"start": {"date": "2024-01-01"}, "summary": "a"}),
                json!({"start": {"dateTime": "2024-01-01T10:00:00Z"}, "summary": null}),
                json!({"start": {"dateTime": "2024-01-01T10:00:00Z"}}),
            ),
            (
                json!({"attendees": [{"email": "a@b"}]}),
                json!({"attendees": []}),
                json!({"attendees": []}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected);
        }
    }

    #[test]
    fn extended_properties_drop_long_keys_and_truncate_long_values() {
        let long_key = "k".repeat(45);
        let ok_key = "k".repeat(44);
        let mut props = json!({"private": {
            long_key.clone(): "x",
            ok_key.clone(): "v".repeat(2000),
            "slot": "s1",
        }});
        assert_eq!(sanitize_extended_properties(&mut props), Ok(()));
        assert!(props["private"].get(&long_key).is_none());
        assert_eq!(props["private"][&ok_key].as_str().map(str::len), Some(1024));
        assert_eq!(props["private"]["slot"], "s1");
        let mut bad = json!({"private": {"n": 1}});
        assert!(sanitize_extended_properties(&mut bad).is_err());
    }
}
