//! `/api/marketplace-orders/` for booking offerings: create, list, retrieve, destroy,
//! the state actions, backend id, unlink, attachments and the order's offering.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::auth::{Caller, Roles};
use super::listing::{
    any_of, contains_lowercase, id_from_url, link_header, list_response, page_range, select_fields,
    sort_prefix, OfferingFilter, Params, SharedFilter,
};
use super::render::{self, Urls};
use super::{is_head, path_id, ApiError, AppState, BaseUrl, RawBody, Upload};
use crate::domain::booking::trim_schedule_times;
use crate::domain::lifecycle::{Action, ErrorReport, NewOrder, Outcome};
use crate::domain::{Attachment, Id, Order, OrderState, OrderType};
use crate::store::{Catalog, OrderEntry, Target};

fn str_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(key, "Not a valid string.")),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    body: RawBody,
) -> Result<Response, ApiError> {
    let body = body.json_object()?;
    let mut errors = Map::new();
    let offering_url = str_field(&body, "offering")?;
    let project_url = str_field(&body, "project")?;
    if offering_url.is_none() {
        errors.insert("offering".into(), json!(["This field is required."]));
    }
    if project_url.is_none() {
        errors.insert("project".into(), json!(["This field is required."]));
    }
    // Only Create orders are made here (terminate has its own action).
    if let Some(t) = str_field(&body, "type")? {
        match OrderType::parse(&t) {
            Some(OrderType::Create) => {}
            Some(_) => {
                return Err(ApiError::field(
                    "type",
                    "Only Create orders are supported for booking offerings.",
                ))
            }
            None => {
                return Err(ApiError::field(
                    "type",
                    format!("\"{t}\" is not a valid choice."),
                ))
            }
        }
    }
    let mut attributes = match body.get("attributes") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(_) => {
            return Err(ApiError::field(
                "attributes",
                "Expected a dictionary of items.",
            ))
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::BadFields(Value::Object(errors)));
    }
    trim_schedule_times(&mut attributes);
    let request_comment = str_field(&body, "request_comment")?.unwrap_or_default();
    let callback_url = str_field(&body, "callback_url")?.unwrap_or_default();
    let start_date = match str_field(&body, "start_date")? {
        None => None,
        Some(s) => Some(
            chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| {
                ApiError::field(
                    "start_date",
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                )
            })?,
        ),
    };
    let req = NewOrder {
        attributes,
        request_comment,
        callback_url,
        start_date,
    };
    let created = state.store.create_order(
        caller.actor(),
        offering_url.as_deref().and_then(id_from_url),
        project_url.as_deref().and_then(id_from_url),
        &req,
        Utc::now(),
    )?;
    let cat = state.store.read()?;
    Ok((
        StatusCode::CREATED,
        Json(render::order(&created.order, &cat, &Urls { base })),
    )
        .into_response())
}

fn matches(o: &OrderEntry, p: &OrderFilter, cat: &Catalog, roles: &Roles) -> bool {
    p.offering.matches(cat, o.offering)
        && any_of(&p.project, o.project)
        && any_of(&p.customer, o.customer)
        && any_of(&p.provider, o.provider)
        && any_of(&p.resource, o.resource)
        && p.states.as_ref().is_none_or(|s| s.contains(&o.state))
        && p.types.as_ref().is_none_or(|s| s.contains(&o.kind))
        && p.created.is_none_or(|t| o.created >= t)
        && p.modified.is_none_or(|t| o.modified >= t)
        && p.shared
            .matches(cat, o.offering, o.customer, o.created, o.modified)
        && p.resource_name.as_ref().is_none_or(|n| {
            cat.resources
                .get(&o.resource)
                .is_some_and(|x| contains_lowercase(&x.name, n))
        })
        && p.can_approve_as_consumer.is_none_or(|want| {
            (o.state == OrderState::PendingConsumer && roles.may_approve_for(o.customer)) == want
        })
        && p.can_approve_as_provider.is_none_or(|want| {
            (o.state == OrderState::PendingProvider && roles.is_provider_staff(o.provider)) == want
        })
        && p.query.as_ref().is_none_or(|q| {
            p.query_id == Some(o.id)
                || p.query_projects.contains(&o.project)
                || cat
                    .resources
                    .get(&o.resource)
                    .is_some_and(|x| contains_lowercase(&x.name, q))
        })
}

/// The orders that can pass `p`, from the catalog's indexes, when an index narrows
/// them (the smallest of: by resource, by `query=` through the resources' trigram
/// index and the projects' names, by project, by offering); `None`: every order.
fn candidates<'c>(p: &OrderFilter, cat: &'c Catalog) -> Option<Vec<&'c OrderEntry>> {
    let orders_of = |map: &'c std::collections::HashMap<Id, Vec<Id>>, keys: &[Id]| {
        keys.iter()
            .filter_map(|k| map.get(k))
            .flatten()
            .copied()
            .collect::<Vec<Id>>()
    };
    let mut options: Vec<Vec<Id>> = Vec::new();
    if let Some(ids) = &p.resource {
        options.push(orders_of(&cat.orders_by_resource, ids));
    }
    if let Some(q) = &p.query {
        if let Some(resources) = cat.resources_containing(q) {
            let ids: Vec<Id> = resources.iter().map(|r| r.id).collect();
            let mut v = orders_of(&cat.orders_by_resource, &ids);
            let projects: Vec<Id> = p.query_projects.iter().copied().collect();
            v.extend(orders_of(&cat.orders_by_project, &projects));
            v.extend(p.query_id);
            options.push(v);
        }
    }
    if let Some(ids) = &p.project {
        options.push(orders_of(&cat.orders_by_project, ids));
    }
    if let Some(ids) = &p.offering.ids {
        options.push(
            ids.iter()
                .filter_map(|o| cat.orders_by_offering.get(o))
                .flatten()
                .copied()
                .collect(),
        );
    }
    let mut ids = options.into_iter().min_by_key(Vec::len)?;
    ids.sort_unstable();
    ids.dedup();
    Some(ids.iter().filter_map(|id| cat.orders.get(id)).collect())
}

/// The `o=` keys of the orders list (upstream's, plus `modified`); `cost` is zero for
/// every booking, so it keeps the default order.
const ORDER_KEYS: [&str; 5] = [
    "created",
    "consumer_reviewed_at",
    "cost",
    "state",
    "modified",
];

/// One `o=` key's value (each key compares values of one variant).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    /// (missing, time)
    Time(bool, chrono::DateTime<Utc>),
    Text(&'static str),
}

struct OrderFilter {
    offering: OfferingFilter,
    project: Option<Vec<Id>>,
    customer: Option<Vec<Id>>,
    provider: Option<Vec<Id>>,
    resource: Option<Vec<Id>>,
    states: Option<Vec<OrderState>>,
    types: Option<Vec<OrderType>>,
    created: Option<chrono::DateTime<Utc>>,
    modified: Option<chrono::DateTime<Utc>>,
    shared: SharedFilter,
    resource_name: Option<String>,
    can_approve_as_consumer: Option<bool>,
    can_approve_as_provider: Option<bool>,
    query: Option<String>,
    /// `query` as a UUID (it matches the order's uuid).
    query_id: Option<Id>,
    /// The projects whose name contains `query` (filled from the catalog).
    query_projects: std::collections::HashSet<Id>,
}

impl OrderFilter {
    fn parse(p: &Params) -> Result<Self, ApiError> {
        let types = p.choices("type", OrderType::parse)?;
        Ok(OrderFilter {
            offering: OfferingFilter::parse(p)?,
            project: p.uuids("project_uuid")?,
            customer: p.uuids("customer_uuid")?,
            provider: p.uuids("provider_uuid")?,
            resource: p.linked_ids("resource_uuid", "resource")?,
            states: p.choices("state", OrderState::parse)?,
            types,
            created: p.datetime("created")?,
            modified: p.datetime("modified")?,
            shared: SharedFilter::parse(p)?,
            resource_name: p.one("resource_name").map(|s| s.trim().to_lowercase()),
            can_approve_as_consumer: p.boolean("can_approve_as_consumer")?,
            can_approve_as_provider: p.boolean("can_approve_as_provider")?,
            query: p.one("query").map(|s| s.trim().to_lowercase()),
            query_id: p.one("query").and_then(|s| Id::parse(s.trim())),
            query_projects: std::collections::HashSet::new(),
        })
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
    method: Method,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let (page, size) = params.page()?;
    let mut filter = OrderFilter::parse(&params)?;
    let ordering = params.ordering_in(&ORDER_KEYS)?;
    let cat = state.store.read()?;
    let roles = Roles::of(&caller.user, &cat);
    if let Some(q) = &filter.query {
        filter.query_projects = cat
            .projects
            .values()
            .filter(|x| x.name.to_lowercase().contains(q.as_str()))
            .map(|x| x.id)
            .collect();
    }
    let keep = |o: &&OrderEntry| roles.sees_order(o) && matches(o, &filter, &cat, &roles);
    // Without `o=` and without an index that narrows the orders, the page walks the
    // default order (created, id) up to its end and the count scans; otherwise the
    // hits are collected unordered and only the items up to the page's end ordered.
    // `o=created` is the default order and `o=-created` the same backwards (ties in
    // `created` by id descending then, however the page is found).
    let reverse = ordering.as_slice() == ["-created"];
    let narrowed = candidates(&filter, &cat);
    let walk = narrowed.is_none()
        && (ordering.is_empty() || ordering.as_slice() == ["created"] || reverse);
    let mut hits: Vec<&OrderEntry> = match narrowed {
        Some(v) => v.into_iter().filter(keep).collect(),
        None if walk => Vec::new(),
        None => cat.orders.values().filter(keep).collect(),
    };
    let total = if walk {
        cat.orders.values().filter(keep).count()
    } else {
        hits.len()
    };
    let range = page_range(total, page, size)?;
    if walk {
        let ids = cat.orders_by_created.iter().map(|(_, id)| id);
        let page = |ids: &mut dyn Iterator<Item = &Id>| -> Vec<&OrderEntry> {
            ids.filter_map(|id| cat.orders.get(id))
                .filter(keep)
                .take(range.end)
                .collect()
        };
        hits = if reverse {
            page(&mut ids.rev())
        } else {
            page(&mut ids.into_iter())
        };
    } else if !is_head(&method) {
        // The review time is not in the catalog: read it from the hits' records, only
        // when asked to sort by it.
        let mut reviewed = std::collections::HashMap::new();
        if ordering
            .iter()
            .any(|k| k.trim_start_matches('-') == "consumer_reviewed_at")
        {
            for o in &hits {
                let at = state
                    .store
                    .order(o.id)?
                    .and_then(|x| x.consumer_reviewed_at);
                reviewed.insert(o.id, at);
            }
        }
        // A missing time sorts last ascending, as PostgreSQL does; then the default
        // order (created, id): a total order.
        let key = |o: &OrderEntry, k: &str| match k {
            "created" => Some(SortKey::Time(false, o.created)),
            "modified" => Some(SortKey::Time(false, o.modified)),
            "consumer_reviewed_at" => {
                let at = reviewed.get(&o.id).copied().flatten();
                Some(SortKey::Time(at.is_none(), at.unwrap_or_default()))
            }
            "state" => Some(SortKey::Text(o.state.as_str())),
            _ => None,
        };
        sort_prefix(&mut hits, range.end, |a, b| {
            for k in &ordering {
                let (name, desc) = match k.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (*k, false),
                };
                let ord = key(a, name).cmp(&key(b, name));
                let ord = if desc { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            let ord = (a.created, a.id).cmp(&(b.created, b.id));
            if reverse {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    let link = link_header(
        &base,
        "/api/marketplace-orders/",
        &params,
        page,
        size,
        total,
    );
    let mut out = Vec::new();
    if !is_head(&method) {
        let urls = Urls { base };
        for e in &hits[range] {
            if let Some(o) = state.store.order(e.id)? {
                out.push(select_fields(
                    render::order(&o, &cat, &urls),
                    &params.fields(),
                ));
            }
        }
    }
    Ok(list_response(out, total, link))
}

/// Loads an order the caller can see.
fn visible_order(
    state: &AppState,
    cat: &Catalog,
    roles: &Roles,
    id: Id,
) -> Result<(OrderEntry, Order), ApiError> {
    let e = cat
        .orders
        .get(&id)
        .filter(|o| roles.sees_order(o))
        .ok_or(ApiError::NotFound)?;
    let o = state.store.order(id)?.ok_or(ApiError::NotFound)?;
    Ok((e.clone(), o))
}

pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&uuid)?;
    let params = Params::parse(q.as_deref());
    let cat = state.store.read()?;
    let roles = Roles::of(&caller.user, &cat);
    let (_, o) = visible_order(&state, &cat, &roles, id)?;
    Ok(Json(select_fields(
        render::order(&o, &cat, &Urls { base }),
        &params.fields(),
    )))
}

/// Runs one lifecycle action on the order `uuid` names.
fn act(state: &AppState, caller: &Caller, uuid: &str, action: Action) -> Result<Outcome, ApiError> {
    let id = path_id(uuid)?;
    Ok(state
        .store
        .transition(Target::Order(id), caller.actor(), action, Utc::now())?)
}

fn detail(msg: &str) -> Json<Value> {
    Json(json!({ "detail": msg }))
}

pub async fn approve_by_consumer(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::ApproveByConsumer)?;
    Ok(detail("Order has been approved."))
}

pub async fn approve_by_provider(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::ApproveByProvider)?;
    Ok(detail("Order has been approved."))
}

pub async fn reject_by_consumer(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::RejectByConsumer)?;
    Ok(detail("Order has been rejected."))
}

pub async fn reject_by_provider(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::RejectByProvider)?;
    Ok(detail("Order has been rejected."))
}

pub async fn cancel(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &c, &u, Action::Cancel)?;
    Ok((StatusCode::ACCEPTED, detail("Order has been canceled.")).into_response())
}

pub async fn destroy(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::Destroy)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_state_executing(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::SetStateExecuting)?;
    Ok(detail("Order state has been changed to executing."))
}

pub async fn set_state_done(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&s, &c, &u, Action::SetStateDone)?;
    Ok(detail("Order state has been changed to done."))
}

pub async fn set_state_erred(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let report = (|| {
        let b = body.json_object()?;
        Ok(ErrorReport {
            message: str_field(&b, "error_message")?.unwrap_or_default(),
            traceback: str_field(&b, "error_traceback")?.unwrap_or_default(),
        })
    })()
    .map_err(ApiError::into_body_refusal);
    act(&s, &c, &u, Action::SetStateErred(report))?;
    Ok(detail("Order state has been changed to erred."))
}

pub async fn set_backend_id(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let value = (|| {
        let b = body.json_object()?;
        match b.get("backend_id") {
            Some(Value::String(v)) if v.chars().count() <= 255 => Ok(v.clone()),
            Some(Value::String(_)) => Err(ApiError::field(
                "backend_id",
                "Ensure this field has no more than 255 characters.",
            )),
            Some(Value::Null) | None => {
                Err(ApiError::field("backend_id", "This field is required."))
            }
            Some(_) => Err(ApiError::field("backend_id", "Not a valid string.")),
        }
    })()
    .map_err(ApiError::into_body_refusal);
    act(&s, &c, &u, Action::SetBackendId(value))?;
    Ok(Json(
        json!({"status": "Order backend_id has been changed."}),
    ))
}

pub async fn unlink(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::Unlink)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update_attachment(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    Upload(mut multipart): Upload,
) -> Result<Json<Value>, ApiError> {
    // Read the upload first (bounded by the body limit), then check and store atomically.
    let mut file: Option<Attachment> = None;
    while let Some(field) =
        multipart
            .next_field()
            .await
            .map_err(|e| match ApiError::from_body(e.status(), &e) {
                ApiError::BadBody(_) => ApiError::field("attachment", e.body_text()),
                timeout_or_size => timeout_or_size,
            })?
    {
        if field.name() == Some("attachment") {
            let name = field.file_name().unwrap_or("attachment").to_string();
            let content_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let data = field
                .bytes()
                .await
                .map_err(|e| ApiError::from_body(e.status(), &e))?;
            if !data.is_empty() {
                file = Some(Attachment {
                    name,
                    content_type,
                    data: data.to_vec(),
                });
            }
        }
    }
    let has_file = file.is_some();
    act(&s, &c, &u, Action::SetAttachment(file))?;
    let id = path_id(&u)?;
    let url =
        has_file.then(|| format!("{}attachment/", Urls { base }.of("marketplace-orders", id)));
    Ok(Json(json!({ "attachment": url })))
}

pub async fn delete_attachment(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::SetAttachment(None))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn attachment(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    {
        let cat = s.store.read()?;
        let roles = Roles::of(&c.user, &cat);
        visible_order(&s, &cat, &roles, id)?;
    }
    let a = s.store.attachment(id)?.ok_or(ApiError::NotFound)?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        a.name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        a.data,
    )
        .into_response())
}

/// `GET {uuid}/offering/`: the public offering details of an order's offering.
pub async fn offering(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let cat = s.store.read()?;
    let roles = Roles::of(&c.user, &cat);
    let (e, _) = visible_order(&s, &cat, &roles, id)?;
    let off = cat.offerings.get(&e.offering).ok_or(ApiError::NotFound)?;
    let cal = s.store.calendar(off.id)?;
    let out = render::PublicOfferingOut::of(off, &cat, &Urls { base }, cal.as_ref());
    Ok(Json(out).into_response())
}
