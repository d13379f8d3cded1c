//! `events.list` and `events.instances`: filters, ordering, paging, and sync tokens.
//!
//! - Paging is keyset paging: a page token holds the sort key of the last item sent
//!   and the calendar's change sequence when the listing began (the snapshot), so
//!   changes during paging neither skip nor repeat unchanged items, and the
//!   `nextSyncToken` of the last page (only there) makes the next incremental sync
//!   return everything changed since the listing began.
//! - A sync token holds (calendar, snapshot sequence, the calendar's sync epoch, the
//!   parameters that must match: `singleEvents`, `showDeleted`), MAC'd with a
//!   per-emulator secret. Unknown, tampered, other-calendar and outdated-epoch tokens
//!   answer 410 `fullSyncRequired`; mismatching parameters 400. Google asks for "all
//!   other query parameters ... the same as for the initial synchronization to avoid
//!   undefined behavior"; with `strict_sync_parameters` (the default) both must
//!   match, without it only `singleEvents`.
//! - Cancelled instances of a recurring event are listed (as minimal tombstones with
//!   `recurringEventId` and `originalStartTime`) when `showDeleted` is true or when
//!   both `showDeleted` and `singleEvents` are false, as the reference says.
//! - Incremental results contain every event changed after the token, deleted ones as
//!   `{"kind","etag","id","status":"cancelled"}` (plus `recurringEventId` and
//!   `originalStartTime` for cancelled exceptions).
//! - Default order is by id (Google leaves it unspecified); `orderBy=startTime`
//!   (needs `singleEvents=true`) and `orderBy=updated` are supported.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::events::{instance_body, is_series, recurrence_of, times_of};
use super::recurrence::{self, MAX_INSTANCES};
use super::state::{Access, Calendar, Caller};
use super::times::parse_query_time;
use super::{query_pairs, Shared};

/// Parameters that may not be combined with `syncToken`.
const FORBIDDEN_WITH_SYNC_TOKEN: [&str; 8] = [
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderBy {
    Id,
    StartTime,
    Updated,
}

/// A parsed `events.list` query.
#[derive(Debug, Clone)]
struct ListQuery {
    max_results: usize,
    page_token: Option<String>,
    sync_token: Option<String>,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    updated_min: Option<DateTime<Utc>>,
    show_deleted: bool,
    /// `showDeleted=false` was given explicitly (refused with a syncToken).
    show_deleted_false_given: bool,
    single_events: bool,
    order_by: OrderBy,
    q: Option<String>,
    ical_uid: Option<String>,
    private_props: Vec<(String, String)>,
    shared_props: Vec<(String, String)>,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::Invalid(format!(
            "Invalid value for parameter '{name}': {other}"
        ))),
    }
}

fn parse_property(value: &str) -> Result<(String, String), ApiError> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| ApiError::Invalid(format!("Invalid extended property filter: {value}")))
}

fn parse_query(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        max_results: 250,
        page_token: None,
        sync_token: None,
        time_min: None,
        time_max: None,
        updated_min: None,
        show_deleted: false,
        show_deleted_false_given: false,
        single_events: false,
        order_by: OrderBy::Id,
        q: None,
        ical_uid: None,
        private_props: Vec::new(),
        shared_props: Vec::new(),
    };
    let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
    if has("syncToken") {
        if let Some(name) = FORBIDDEN_WITH_SYNC_TOKEN.iter().find(|n| has(n)) {
            return Err(ApiError::Invalid(format!(
                "The parameter '{name}' cannot be combined with syncToken."
            )));
        }
    }
    for (key, value) in pairs {
        match key.as_str() {
            "maxResults" => {
                q.max_results = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ApiError::Invalid(format!(
                            "Invalid value '{value}'. Values must be within the range: [1, 2500]"
                        ))
                    })?
                    .min(2500);
            }
            "pageToken" => q.page_token = Some(value.clone()),
            "syncToken" => q.sync_token = Some(value.clone()),
            "timeMin" => q.time_min = Some(parse_query_time(key, value)?),
            "timeMax" => q.time_max = Some(parse_query_time(key, value)?),
            "updatedMin" => q.updated_min = Some(parse_query_time(key, value)?),
            "showDeleted" => {
                q.show_deleted = parse_bool(key, value)?;
                q.show_deleted_false_given = !q.show_deleted;
            }
            "singleEvents" => q.single_events = parse_bool(key, value)?,
            "orderBy" => {
                q.order_by = match value.as_str() {
                    "startTime" => OrderBy::StartTime,
                    "updated" => OrderBy::Updated,
                    other => {
                        return Err(ApiError::Invalid(format!(
                            "Invalid value for parameter 'orderBy': {other}"
                        )))
                    }
                }
            }
            "q" => q.q = Some(value.to_lowercase()),
            "iCalUID" => q.ical_uid = Some(value.clone()),
            "privateExtendedProperty" => q.private_props.push(parse_property(value)?),
            "sharedExtendedProperty" => q.shared_props.push(parse_property(value)?),
            _ => {}
        }
    }
    if q.sync_token.is_some() && q.show_deleted_false_given {
        return Err(ApiError::Invalid(
            "showDeleted cannot be false together with syncToken.".into(),
        ));
    }
    if q.order_by == OrderBy::StartTime && !q.single_events {
        return Err(ApiError::Invalid(
            "The requested ordering is not available for the particular query.".into(),
        ));
    }
    if let (Some(min), Some(max)) = (q.time_min, q.time_max) {
        if min >= max {
            return Err(ApiError::TimeRangeEmpty);
        }
    }
    Ok(q)
}

/// Contents of a sync token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SyncToken {
    /// Calendar id.
    pub c: String,
    /// Change sequence the listing saw.
    pub s: u64,
    /// The calendar's sync epoch.
    pub e: u64,
    /// Parameters that must match (`singleEvents`, `showDeleted`).
    pub p: String,
}

/// Contents of a page token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PageToken {
    /// Calendar (or series) the listing is of.
    pub c: String,
    /// Sort key of the last item sent.
    pub k: String,
    /// Snapshot change sequence.
    pub s: u64,
}

fn mac(secret: &[u8; 32], payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Encodes an opaque, MAC'd token.
pub(crate) fn encode_token<T: Serialize>(secret: &[u8; 32], data: &T) -> String {
    let payload = serde_json::to_vec(data).unwrap_or_default();
    let mut bytes = payload.clone();
    bytes.extend_from_slice(&mac(secret, &payload));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a token made by [`encode_token`] with the same secret.
pub(crate) fn decode_token<T: DeserializeOwned>(secret: &[u8; 32], token: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() < 8 {
        return None;
    }
    let (payload, tag) = bytes.split_at(bytes.len() - 8);
    if mac(secret, payload) != tag {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// Parameters an incremental listing must repeat from the full one, as stored in
/// the token.
fn must_match(q: &ListQuery) -> String {
    format!(
        "singleEvents={};showDeleted={}",
        q.single_events, q.show_deleted
    )
}

/// Whether an incremental query repeats the token's parameters: all of them when
/// strict, else `singleEvents` only.
fn parameters_match(token: &str, q: &ListQuery, strict: bool) -> bool {
    let now = must_match(q);
    if strict {
        return token == now;
    }
    let single = |p: &str| p.split(';').next().map(str::to_owned);
    single(token) == single(&now)
}

/// The minimal form of a cancelled event in listings.
fn tombstone(body: &Value) -> Value {
    let mut out = json!({
        "kind": "calendar#event",
        "etag": body["etag"],
        "id": body["id"],
        "status": "cancelled",
    });
    for field in ["recurringEventId", "originalStartTime"] {
        if let Some(v) = body.get(field) {
            out[field] = v.clone();
        }
    }
    out
}

fn sort_key(order: OrderBy, item: &Value, calendar: &Calendar) -> String {
    let id = item["id"].as_str().unwrap_or_default();
    match order {
        OrderBy::Id => id.to_owned(),
        OrderBy::Updated => format!("{}|{id}", item["updated"].as_str().unwrap_or_default()),
        OrderBy::StartTime => {
            let start = times_of(item)
                .map(|(s, _)| s.instant(calendar.time_zone()).timestamp_micros())
                .unwrap_or(i64::MIN);
            // Shift into u64 order-preserving, fixed width.
            let shifted = (i128::from(start) - i128::from(i64::MIN)) as u128;
            format!("{shifted:020}|{id}")
        }
    }
}

/// Whether a live item passes the non-incremental filters.
fn passes_filters(item: &Value, q: &ListQuery, calendar: &Calendar, check_time: bool) -> bool {
    let tz = calendar.time_zone();
    if check_time && (q.time_min.is_some() || q.time_max.is_some()) {
        let Some((start, end)) = times_of(item) else {
            return false;
        };
        let (s, e) = (start.instant(tz), end.instant(tz));
        if q.time_min
            .is_some_and(|min| !(e > min || (e == s && s >= min)))
        {
            return false;
        }
        if q.time_max.is_some_and(|max| s >= max) {
            return false;
        }
    }
    if let Some(min) = q.updated_min {
        let updated = item["updated"]
            .as_str()
            .and_then(|u| DateTime::parse_from_rfc3339(u).ok());
        if updated.is_none_or(|u| u < min) {
            return false;
        }
    }
    if let Some(text) = &q.q {
        let hit = ["summary", "description", "location"].iter().any(|f| {
            item[*f]
                .as_str()
                .is_some_and(|v| v.to_lowercase().contains(text.as_str()))
        });
        if !hit {
            return false;
        }
    }
    if let Some(uid) = &q.ical_uid {
        if item["iCalUID"].as_str() != Some(uid.as_str()) {
            return false;
        }
    }
    for (visibility, filters) in [("private", &q.private_props), ("shared", &q.shared_props)] {
        for (key, value) in filters {
            if item["extendedProperties"][visibility][key].as_str() != Some(value.as_str()) {
                return false;
            }
        }
    }
    true
}

/// Every item of the listing, unsorted. `since`: incremental from that sequence.
fn collect(calendar: &Calendar, q: &ListQuery, since: Option<u64>) -> Vec<Value> {
    let tz = calendar.time_zone();
    let incremental = since.is_some();
    let include_deleted = incremental || q.show_deleted || q.updated_min.is_some();
    let mut items = Vec::new();
    for (id, event) in &calendar.events {
        if since.is_some_and(|s| event.changed_seq <= s) {
            continue;
        }
        let body = &event.body;
        let parent_cancelled = body["recurringEventId"]
            .as_str()
            .is_some_and(|p| calendar.events.get(p).is_none_or(|p| p.is_cancelled()));
        if event.is_cancelled() || parent_cancelled {
            // Cancelled instances of a live series, also without showDeleted when
            // singleEvents is false too (events.list reference, `showDeleted`).
            let cancelled_instance = event.is_cancelled()
                && !parent_cancelled
                && body.get("recurringEventId").is_some()
                && !q.single_events;
            if (include_deleted || cancelled_instance)
                && (incremental || passes_filters(body, q, calendar, true))
            {
                items.push(tombstone(body));
            }
            continue;
        }
        if is_series(body) {
            let Some((start, end)) = times_of(body) else {
                continue;
            };
            let lines = recurrence_of(body);
            if q.single_events {
                let occurrences =
                    recurrence::expand(&start, &end, &lines, q.time_min, q.time_max, MAX_INSTANCES)
                        .unwrap_or_default();
                for occurrence in occurrences {
                    let instance_id = format!("{id}_{}", occurrence.id_suffix);
                    if calendar.events.contains_key(&instance_id) {
                        continue;
                    }
                    let instance = instance_body(body, id, &occurrence, tz);
                    if passes_filters(&instance, q, calendar, false) {
                        items.push(instance);
                    }
                }
            } else {
                let any = recurrence::expand(&start, &end, &lines, q.time_min, q.time_max, 1)
                    .is_ok_and(|o| !o.is_empty());
                if any && passes_filters(body, q, calendar, false) {
                    items.push(body.clone());
                }
            }
            continue;
        }
        if passes_filters(body, q, calendar, true) {
            items.push(body.clone());
        }
    }
    items
}

/// How a listing is paged.
struct Paging {
    order: OrderBy,
    max_results: usize,
    page: Option<PageToken>,
    snapshot: u64,
    list_id: String,
    sync_token: Option<SyncToken>,
}

/// Sorts, pages and wraps items into a `calendar#events` answer.
fn respond(calendar: &Calendar, secret: &[u8; 32], items: Vec<Value>, paging: Paging) -> Value {
    let Paging {
        order,
        max_results,
        page,
        snapshot,
        list_id,
        sync_token,
    } = paging;
    let mut keyed: Vec<(String, Value)> = items
        .into_iter()
        .map(|item| (sort_key(order, &item, calendar), item))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let after = page.map(|p| p.k);
    let remaining: Vec<(String, Value)> = keyed
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let more = remaining.len() > max_results;
    let page_items: Vec<(String, Value)> = remaining.into_iter().take(max_results).collect();
    let last_key = page_items.last().map(|(k, _)| k.clone());
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"p{snapshot}{}\"", calendar.sync_epoch),
        "summary": calendar.resource["summary"],
        "updated": calendar
            .events
            .values()
            .filter_map(|e| e.body["updated"].as_str())
            .max()
            .map_or_else(|| json!(null), |u| json!(u)),
        "timeZone": calendar.resource["timeZone"],
        "accessRole": "owner",
        "defaultReminders": [],
        "items": page_items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    if let Some(description) = calendar.resource.get("description") {
        body["description"] = description.clone();
    }
    if body["updated"].is_null() {
        if let Some(map) = body.as_object_mut() {
            map.remove("updated");
        }
    }
    match (more, last_key) {
        (true, Some(k)) => {
            body["nextPageToken"] = json!(encode_token(
                secret,
                &PageToken {
                    c: list_id,
                    k,
                    s: snapshot
                }
            ));
        }
        _ => {
            if let Some(token) = sync_token {
                body["nextSyncToken"] = json!(encode_token(secret, &token));
            }
        }
    }
    body
}

fn decode_page(
    secret: &[u8; 32],
    token: Option<&str>,
    list_id: &str,
) -> Result<Option<PageToken>, ApiError> {
    let Some(token) = token else { return Ok(None) };
    match decode_token::<PageToken>(secret, token) {
        Some(page) if page.c == list_id => Ok(Some(page)),
        _ => Err(ApiError::Invalid("Invalid page token value.".into())),
    }
}

/// `calendar.events.list`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(calendar_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let q = parse_query(&pairs)?;
    let mut store = shared.lock();
    let secret = store.token_secret;
    let strict = store.behaviour.strict_sync_parameters;
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Reader)?;
    let real_id = calendar.resource["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let since = match &q.sync_token {
        Some(token) => {
            let data = decode_token::<SyncToken>(&secret, token)
                .filter(|t| {
                    t.c == real_id && t.e == calendar.sync_epoch && t.s <= calendar.change_seq
                })
                .ok_or(ApiError::FullSyncRequired)?;
            if !parameters_match(&data.p, &q, strict) {
                return Err(ApiError::Invalid(
                    "The query parameters do not match those of the sync token's listing.".into(),
                ));
            }
            Some(data.s)
        }
        None => None,
    };
    let page = decode_page(&secret, q.page_token.as_deref(), &real_id)?;
    let snapshot = page.as_ref().map_or(calendar.change_seq, |p| p.s);
    let items = collect(calendar, &q, since);
    let sync_token = SyncToken {
        c: real_id.clone(),
        s: snapshot,
        e: calendar.sync_epoch,
        p: must_match(&q),
    };
    let paging = Paging {
        order: q.order_by,
        max_results: shared.controls.page_size(q.max_results),
        page,
        snapshot,
        list_id: real_id,
        sync_token: Some(sync_token),
    };
    Ok(Json(respond(calendar, &secret, items, paging)))
}

/// `calendar.events.instances`: the series' instances (exceptions included) in
/// start order, with `timeMin`/`timeMax`/`showDeleted`/`maxResults`/`pageToken`.
pub(crate) async fn instances(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(query.as_deref())
        .into_iter()
        .filter(|(k, _)| {
            [
                "timeMin",
                "timeMax",
                "showDeleted",
                "maxResults",
                "pageToken",
            ]
            .contains(&k.as_str())
        })
        .collect();
    let q = parse_query(&pairs)?;
    let mut store = shared.lock();
    let secret = store.token_secret;
    let calendar = store.calendar_mut(&calendar_id, &caller, Access::Reader)?;
    let parent = calendar.events.get(&event_id).ok_or(ApiError::NotFound)?;
    let list_id = format!(
        "{}/{event_id}",
        calendar.resource["id"].as_str().unwrap_or_default()
    );
    let page = decode_page(&secret, q.page_token.as_deref(), &list_id)?;
    let tz = calendar.time_zone();
    let mut items = Vec::new();
    if !is_series(&parent.body) {
        if passes_filters(&parent.body, &q, calendar, true) {
            items.push(parent.body.clone());
        }
    } else if !parent.is_cancelled() {
        let (start, end) = times_of(&parent.body).ok_or(ApiError::NotFound)?;
        let occurrences = recurrence::expand(
            &start,
            &end,
            &recurrence_of(&parent.body),
            q.time_min,
            q.time_max,
            MAX_INSTANCES,
        )?;
        for occurrence in occurrences {
            let instance_id = format!("{event_id}_{}", occurrence.id_suffix);
            if calendar.events.contains_key(&instance_id) {
                continue;
            }
            items.push(instance_body(&parent.body, &event_id, &occurrence, tz));
        }
        for exception in calendar.events.values() {
            if exception.body["recurringEventId"].as_str() != Some(event_id.as_str()) {
                continue;
            }
            if exception.is_cancelled() {
                if q.show_deleted && passes_filters(&exception.body, &q, calendar, true) {
                    items.push(tombstone(&exception.body));
                }
            } else if passes_filters(&exception.body, &q, calendar, true) {
                items.push(exception.body.clone());
            }
        }
    }
    let snapshot = page.as_ref().map_or(calendar.change_seq, |p| p.s);
    let paging = Paging {
        order: OrderBy::StartTime,
        max_results: shared.controls.page_size(q.max_results),
        page,
        snapshot,
        list_id,
        sync_token: None,
    };
    Ok(Json(respond(calendar, &secret, items, paging)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        super::super::query_pairs(Some(query))
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let secret = [7u8; 32];
        let token = SyncToken {
            c: "cal".into(),
            s: 42,
            e: 1,
            p: "singleEvents=false;showDeleted=false".into(),
        };
        let encoded = encode_token(&secret, &token);
        let cases: Vec<(String, [u8; 32], Option<SyncToken>)> = vec![
            (encoded.clone(), secret, Some(token.clone())),
            (encoded.clone(), [8u8; 32], None),
            (format!("A{encoded}"), secret, None),
            (encoded[..encoded.len() - 2].to_owned(), secret, None),
            ("not a token".into(), secret, None),
            (String::new(), secret, None),
        ];
        for (text, key, expected) in cases {
            assert_eq!(decode_token::<SyncToken>(&key, &text), expected, "{text}");
        }
    }

    #[test]
    fn list_queries_are_validated_like_google() {
        let cases: [(&str, Option<&str>); 12] = [
            ("maxResults=10", None),
            ("maxResults=0", Some("invalid")),
            ("syncToken=x&timeMin=2024-01-01T00:00:00Z", Some("invalid")),
            ("syncToken=x&q=a", Some("invalid")),
            ("syncToken=x&orderBy=updated", Some("invalid")),
            ("syncToken=x&privateExtendedProperty=a%3Db", Some("invalid")),
            ("syncToken=x&showDeleted=true", None),
            ("orderBy=startTime", Some("invalid")),
            ("orderBy=startTime&singleEvents=true", None),
            (
                "timeMin=2024-01-02T00:00:00Z&timeMax=2024-01-01T00:00:00Z",
                Some("timeRangeEmpty"),
            ),
            (
                "timeMin=2024-01-01T00:00:00Z&timeMax=2024-01-01T00:00:00Z",
                Some("timeRangeEmpty"),
            ),
            ("timeMin=2024-01-01T00:00:00", Some("invalid")),
        ];
        for (query, reason) in cases {
            let got = parse_query(&pairs(query)).err().map(|e| e.reason());
            assert_eq!(got, reason, "{query}");
        }
    }

    #[test]
    fn max_results_is_capped_at_2500() {
        let q = parse_query(&pairs("maxResults=100000")).map(|q| q.max_results);
        assert_eq!(q.ok(), Some(2500));
        let q = parse_query(&pairs("")).map(|q| q.max_results);
        assert_eq!(q.ok(), Some(250));
    }
}
