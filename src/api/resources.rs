//! `/api/booking-resources/`: list (with the seed's filters), retrieve, accept, reject;
//! and `/api/marketplace-resources/{uuid}/terminate/` for booking resources.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Json;
use chrono::Utc;

use super::auth::{Caller, Roles};
use super::listing::{booking_filter, one_response, ListRequest, Params};
use super::render::{self, OrderUuid, ResourceOut, Urls};
use super::{path_id, ApiError, AppState, BaseUrl, RawBody};
use crate::domain::lifecycle::Action;
use crate::domain::search::fold;
use crate::domain::ResourceState;
use crate::store::query::{ResourceKey, ResourceQuery};
use crate::store::Target;

/// Parses `state=` values; an unknown one is DRF's choice error.
pub fn parse_states(params: &Params) -> Result<Option<Vec<ResourceState>>, ApiError> {
    params.choices("state", ResourceState::parse)
}

/// The `o=` keys of the booking resource list (`type`: every booking resource has
/// one, so it keeps the default order; no slots sort first under `schedules`).
const ORDER_KEYS: [(&str, Option<ResourceKey>); 10] = [
    ("name", Some(ResourceKey::Name)),
    ("created", Some(ResourceKey::Created)),
    ("modified", Some(ResourceKey::Modified)),
    ("state", Some(ResourceKey::State)),
    ("backend_id", Some(ResourceKey::BackendId)),
    ("schedules", Some(ResourceKey::Schedules)),
    ("project_name", Some(ResourceKey::ProjectName)),
    ("customer_name", Some(ResourceKey::CustomerName)),
    ("offering_name", Some(ResourceKey::OfferingName)),
    ("type", None),
];

/// The list query a request asks for (filters, order; the page is set by the caller).
fn query(p: &Params, roles: &Roles) -> Result<ResourceQuery, ApiError> {
    Ok(ResourceQuery {
        visible: roles.visible_bookings(),
        common: booking_filter(p)?,
        states: parse_states(p)?,
        connected: p.uuids("connected_customer_uuid")?,
        query: p.one("query").map(|s| fold(s.trim())),
        name: p.one("name").map(fold),
        name_exact: p.one("name_exact").map(String::from),
        backend_id: p.one("backend_id").map(String::from),
        project_name: p.one("project_name").map(fold),
        order: p.order_keys(&ORDER_KEYS)?,
        page: None,
    })
}

pub async fn list(State(state): State<AppState>, list: ListRequest) -> Result<Response, ApiError> {
    let mut query = query(&list.params, &list.roles)?;
    query.page = Some(list.rows());
    let found = state.store.list_resources(&query).await?;
    let link = list.link("/api/booking-resources/", found.total)?;
    let related = state
        .store
        .related(&render::wanted_for_resources(&found.items))
        .await?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let page: Vec<ResourceOut> = found
        .items
        .iter()
        .map(|r| ResourceOut::of(r, &related, &urls))
        .collect();
    Ok(list.respond(&page, found.total, link))
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
    state
        .store
        .resource_parties(id)
        .await?
        .filter(|p| roles.sees_resource(p))
        .ok_or(ApiError::NotFound)?;
    let r = state.store.resource(id).await?.ok_or(ApiError::NotFound)?;
    let related = state
        .store
        .related(&render::wanted_for_resources(std::slice::from_ref(&r)))
        .await?;
    Ok(one_response(
        &ResourceOut::of(&r, &related, &Urls { base }),
        &params.fields(),
    ))
}

/// Runs one lifecycle action on the booking resource `uuid` names and answers the
/// order it completed, as Waldur does (`{"order_uuid": "<hex>"}`, never null).
async fn decide(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    action: Action,
) -> Result<Json<OrderUuid>, ApiError> {
    let out = act(state, caller, uuid, action).await?;
    let order = out
        .order_uuid
        .ok_or_else(|| ApiError::bad(crate::domain::lifecycle::ORDER_NOT_FOUND))?;
    Ok(Json(OrderUuid::new(order)))
}

/// Runs one lifecycle action on the booking resource `uuid` names (the resource
/// endpoints and the web pages' buttons).
///
/// # Errors
/// The lifecycle's refusal (404, 403, 409, 400), storage failure.
pub async fn act(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    action: Action,
) -> Result<crate::domain::lifecycle::Outcome, ApiError> {
    let id = path_id(uuid)?;
    Ok(state
        .store
        .transition(Target::Resource(id), caller.actor(), action, Utc::now())
        .await?)
}

pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<OrderUuid>, ApiError> {
    decide(&state, &caller, &uuid, Action::Accept).await
}

pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<OrderUuid>, ApiError> {
    decide(&state, &caller, &uuid, Action::Reject).await
}

/// `POST /api/marketplace-resources/{uuid}/terminate/` for booking resources: a
/// Terminate order completed at once, the resource `Terminated`, its time free.
/// The body (`{"attributes": {...}}` from Waldur's client) is read, so the
/// connection stays usable, and otherwise ignored: a booking has nothing to pass.
pub async fn terminate(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
    _body: RawBody,
) -> Result<Json<OrderUuid>, ApiError> {
    decide(&state, &caller, &uuid, Action::Terminate).await
}
