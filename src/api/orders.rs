//! `/api/marketplace-orders/` for booking offerings: create, list, retrieve, destroy,
//! the state actions, backend id, unlink, attachments and the order's offering.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::auth::{Caller, Roles};
use super::listing::{booking_filter, id_from_url, one_response, ListRequest, Params};
use super::render::{
    self, AttachmentUrl, Detail, OrderOut, PublicOfferingOut, StatusMessage, Urls,
};
use super::{path_id, ApiError, AppState, BaseUrl, RawBody, Upload};
use crate::domain::booking::trim_schedule_times;
use crate::domain::lifecycle::{Action, ErrorReport, NewOrder, Outcome};
use crate::domain::search::fold;
use crate::domain::{Attachment, Id, Order, OrderState, OrderType};
use crate::store::query::{OrderKey, OrderQuery, Visible};
use crate::store::Target;

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
    let created = state
        .store
        .create_order(
            caller.actor(),
            offering_url.as_deref().and_then(id_from_url),
            project_url.as_deref().and_then(id_from_url),
            &req,
            Utc::now(),
            state.max_busy_age,
        )
        .await?;
    let related = state
        .store
        .related(&render::wanted_for_orders(std::slice::from_ref(
            &created.order,
        )))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(OrderOut::of(&created.order, &related, &Urls { base })),
    )
        .into_response())
}

/// The `o=` keys of the orders list (upstream's, plus `modified`); `cost` is zero for
/// every booking, so it keeps the default order.
const ORDER_KEYS: [(&str, Option<OrderKey>); 5] = [
    ("created", Some(OrderKey::Created)),
    ("consumer_reviewed_at", Some(OrderKey::ConsumerReviewedAt)),
    ("cost", None),
    ("state", Some(OrderKey::State)),
    ("modified", Some(OrderKey::Modified)),
];

/// The list query a request asks for (filters, order; the page is set by the caller).
fn query(p: &Params, roles: &Roles) -> Result<OrderQuery, ApiError> {
    let order = p.order_keys(&ORDER_KEYS)?;
    // Pending the caller's approval: as the consumer (staff, or owner of the
    // project's organisation) or as the provider (staff, owner or manager of the
    // offering's organisation).
    let consumer_side = Visible {
        all: roles.staff,
        consumers: roles.owner_of.iter().copied().collect(),
        ..Visible::default()
    };
    let provider_side = Visible {
        all: roles.staff,
        providers: roles.visible_offerings().providers,
        ..Visible::default()
    };
    Ok(OrderQuery {
        visible: roles.visible_orders(),
        common: booking_filter(p)?,
        resource: p.linked_ids("resource_uuid", "resource")?,
        states: p.choices("state", OrderState::parse)?,
        types: p.choices("type", OrderType::parse)?,
        approvable_as_consumer: p
            .boolean("can_approve_as_consumer")?
            .map(|want| (want, consumer_side)),
        approvable_as_provider: p
            .boolean("can_approve_as_provider")?
            .map(|want| (want, provider_side)),
        query: p.one("query").map(|s| fold(s.trim())),
        resource_name: p.one("resource_name").map(|s| fold(s.trim())),
        order,
        page: None,
    })
}

pub async fn list(State(state): State<AppState>, list: ListRequest) -> Result<Response, ApiError> {
    let mut query = query(&list.params, &list.roles)?;
    query.page = Some(list.rows());
    let found = state.store.list_orders(&query).await?;
    let link = list.link("/api/marketplace-orders/", found.total)?;
    let related = state
        .store
        .related(&render::wanted_for_orders(&found.items))
        .await?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let page: Vec<OrderOut> = found
        .items
        .iter()
        .map(|o| OrderOut::of(o, &related, &urls))
        .collect();
    Ok(list.respond(&page, found.total, link))
}

/// Loads an order the caller can see.
async fn visible_order(state: &AppState, roles: &Roles, id: Id) -> Result<Order, ApiError> {
    state
        .store
        .order_parties(id)
        .await?
        .filter(|p| roles.sees_order(p))
        .ok_or(ApiError::NotFound)?;
    state.store.order(id).await?.ok_or(ApiError::NotFound)
}

pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&uuid)?;
    let params = Params::parse(q.as_deref());
    let roles = Roles::load(&state.store, &caller.user).await?;
    let o = visible_order(&state, &roles, id).await?;
    let related = state
        .store
        .related(&render::wanted_for_orders(std::slice::from_ref(&o)))
        .await?;
    Ok(one_response(
        &OrderOut::of(&o, &related, &Urls { base }),
        &params.fields(),
    ))
}

/// Runs one lifecycle action on the order `uuid` names (the order endpoints and the
/// web pages' buttons).
///
/// # Errors
/// The lifecycle's refusal (404, 403, 409, 400), storage failure.
pub async fn act(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    action: Action,
) -> Result<Outcome, ApiError> {
    let id = path_id(uuid)?;
    Ok(state
        .store
        .transition(Target::Order(id), caller.actor(), action, Utc::now())
        .await?)
}

fn detail(msg: &'static str) -> Json<Detail<'static>> {
    Json(Detail::new(msg))
}

pub async fn approve_by_consumer(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::ApproveByConsumer).await?;
    Ok(detail("Order has been approved."))
}

pub async fn approve_by_provider(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::ApproveByProvider).await?;
    Ok(detail("Order has been approved."))
}

pub async fn reject_by_consumer(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::RejectByConsumer).await?;
    Ok(detail("Order has been rejected."))
}

pub async fn reject_by_provider(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::RejectByProvider).await?;
    Ok(detail("Order has been rejected."))
}

pub async fn cancel(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &c, &u, Action::Cancel).await?;
    Ok((StatusCode::ACCEPTED, detail("Order has been canceled.")).into_response())
}

pub async fn destroy(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::Destroy).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_state_executing(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::SetStateExecuting).await?;
    Ok(detail("Order state has been changed to executing."))
}

pub async fn set_state_done(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Json<Detail<'static>>, ApiError> {
    act(&s, &c, &u, Action::SetStateDone).await?;
    Ok(detail("Order state has been changed to done."))
}

pub async fn set_state_erred(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
    body: RawBody,
) -> Result<Json<Detail<'static>>, ApiError> {
    let report = (|| {
        let b = body.json_object()?;
        Ok(ErrorReport {
            message: str_field(&b, "error_message")?.unwrap_or_default(),
            traceback: str_field(&b, "error_traceback")?.unwrap_or_default(),
        })
    })()
    .map_err(ApiError::into_body_refusal);
    act(&s, &c, &u, Action::SetStateErred(report)).await?;
    Ok(detail("Order state has been changed to erred."))
}

pub async fn set_backend_id(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
    body: RawBody,
) -> Result<Json<StatusMessage<'static>>, ApiError> {
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
    act(&s, &c, &u, Action::SetBackendId(value)).await?;
    Ok(Json(StatusMessage::new(
        "Order backend_id has been changed.",
    )))
}

pub async fn unlink(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::Unlink).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update_attachment(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    Upload(mut multipart): Upload,
) -> Result<Json<AttachmentUrl>, ApiError> {
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
    act(&s, &c, &u, Action::SetAttachment(file)).await?;
    let id = path_id(&u)?;
    let url =
        has_file.then(|| format!("{}attachment/", Urls { base }.of("marketplace-orders", id)));
    Ok(Json(AttachmentUrl::new(url)))
}

pub async fn delete_attachment(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &c, &u, Action::SetAttachment(None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn attachment(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = Roles::load(&s.store, &c.user).await?;
    visible_order(&s, &roles, id).await?;
    let a = s.store.attachment(id).await?.ok_or(ApiError::NotFound)?;
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
    let roles = Roles::load(&s.store, &c.user).await?;
    let o = visible_order(&s, &roles, id).await?;
    let off = s
        .store
        .offering(o.offering)
        .await?
        .ok_or(ApiError::NotFound)?;
    let cal = s.store.calendar(off.id).await?;
    let related = s
        .store
        .related(&render::wanted_for_offerings(std::slice::from_ref(&off)))
        .await?;
    let out = PublicOfferingOut::of(&off, &related, &Urls { base }, cal.as_ref());
    Ok(Json(out).into_response())
}
