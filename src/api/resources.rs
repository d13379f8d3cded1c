//! `/api/booking-resources/`: list (with the seed's filters), retrieve, accept, reject;
//! and `/api/marketplace-resources/{uuid}/terminate/` for booking resources.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::{Caller, Roles};
use super::listing::{
    any_of, contains_lowercase, link_header, list_response, list_response_serialized, page_range,
    select_fields, sort_prefix, OfferingFilter, Params, SharedFilter,
};
use super::render::{self, Urls};
use super::{is_head, path_id, ApiError, AppState, BaseUrl, RawBody};
use crate::domain::lifecycle::Action;
use crate::domain::{Id, ResourceState};
use crate::store::{Catalog, ResourceEntry, Target};

/// Parses `state=` values; an unknown one is DRF's choice error.
pub fn parse_states(params: &Params) -> Result<Option<Vec<ResourceState>>, ApiError> {
    params.choices("state", ResourceState::parse)
}

/// Filters from the query, compiled once per request.
struct Filter {
    offering: OfferingFilter,
    states: Option<Vec<ResourceState>>,
    customer: Option<Vec<Id>>,
    project: Option<Vec<Id>>,
    provider: Option<Vec<Id>>,
    connected: Option<Vec<Id>>,
    query: Option<String>,
    /// `query` as a UUID (it also matches the resource's uuid), parsed once.
    query_id: Option<Id>,
    name: Option<String>,
    name_exact: Option<String>,
    backend_id: Option<String>,
    project_name: Option<String>,
    created: Option<chrono::DateTime<Utc>>,
    modified: Option<chrono::DateTime<Utc>>,
    shared: SharedFilter,
}

impl Filter {
    fn parse(p: &Params) -> Result<Filter, ApiError> {
        Ok(Filter {
            offering: OfferingFilter::parse(p)?,
            states: parse_states(p)?,
            customer: p.uuids("customer_uuid")?,
            project: p.uuids("project_uuid")?,
            provider: p.uuids("provider_uuid")?,
            connected: p.uuids("connected_customer_uuid")?,
            query: p.one("query").map(|s| s.trim().to_lowercase()),
            query_id: p.one("query").and_then(|s| Id::parse(s.trim())),
            name: p.one("name").map(str::to_lowercase),
            name_exact: p.one("name_exact").map(String::from),
            backend_id: p.one("backend_id").map(String::from),
            project_name: p.one("project_name").map(str::to_lowercase),
            created: p.datetime("created")?,
            modified: p.datetime("modified")?,
            shared: SharedFilter::parse(p)?,
        })
    }

    fn matches(&self, r: &ResourceEntry, cat: &Catalog) -> bool {
        any_of(&self.customer, r.customer)
            && any_of(&self.project, r.project)
            && any_of(&self.provider, r.provider)
            && self
                .connected
                .as_ref()
                .is_none_or(|v| v.contains(&r.customer) || v.contains(&r.provider))
            && self.states.as_ref().is_none_or(|s| s.contains(&r.state))
            && self
                .name
                .as_ref()
                .is_none_or(|n| contains_lowercase(&r.name, n))
            && self
                .name_exact
                .as_ref()
                .is_none_or(|n| &*r.name == n.as_str())
            && self
                .backend_id
                .as_ref()
                .is_none_or(|b| &*r.backend_id == b.as_str())
            && self.created.is_none_or(|t| r.created >= t)
            && self.modified.is_none_or(|t| r.modified >= t)
            && self
                .shared
                .matches(cat, r.offering, r.customer, r.created, r.modified)
            && self.offering.matches(cat, r.offering)
            && self.project_name.as_ref().is_none_or(|n| {
                cat.projects
                    .get(&r.project)
                    .is_some_and(|p| p.name.to_lowercase().contains(n.as_str()))
            })
            && self.query.as_ref().is_none_or(|q| {
                contains_lowercase(&r.name, q)
                    || contains_lowercase(&r.slug, q)
                    || contains_lowercase(&r.backend_id, q)
                    || self.query_id == Some(r.id)
            })
    }
}

/// A sort key borrowed from the entry or the catalog: comparing never allocates.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey<'c> {
    Text(&'c str),
    Time(Option<chrono::DateTime<Utc>>),
}

fn order_key<'c>(r: &'c ResourceEntry, key: &str, cat: &'c Catalog) -> Option<SortKey<'c>> {
    use SortKey::{Text, Time};
    Some(match key {
        "name" => Text(&r.name),
        "created" => Time(Some(r.created)),
        "modified" => Time(Some(r.modified)),
        "state" => Text(r.state.as_str()),
        "backend_id" => Text(&r.backend_id),
        // No slots sorts first.
        "schedules" => Time(r.first_start),
        // The client offers `o=type`; every booking resource has one type.
        "type" => Text(""),
        "project_name" => Text(cat.projects.get(&r.project).map_or("", |p| &p.name)),
        "customer_name" => Text(cat.customers.get(&r.customer).map_or("", |c| &c.name)),
        "offering_name" => Text(cat.offerings.get(&r.offering).map_or("", |o| &o.name)),
        _ => return None,
    })
}

const ORDER_KEYS: [&str; 10] = [
    "name",
    "created",
    "modified",
    "state",
    "backend_id",
    "schedules",
    "project_name",
    "customer_name",
    "offering_name",
    "type",
];

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
    method: Method,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let (page, size) = params.page()?;
    let filter = Filter::parse(&params)?;
    let ordering = params.ordering_in(&ORDER_KEYS)?;
    let cat = state.store.read()?;
    let roles = Roles::of(&caller.user, &cat);
    let keep = |r: &&ResourceEntry| roles.sees_resource(r) && filter.matches(r, &cat);
    // The default order over everything walks the name index up to the page's end
    // (and counts with a scan); otherwise hits are collected unordered (narrowed by
    // offering through its index) and only the items up to the page's end are
    // ordered.
    // Substring filters take their candidates from the catalog's trigram index.
    let searched: Option<Vec<&ResourceEntry>> = match (&filter.query, &filter.name) {
        (Some(q), _) => cat.resources_containing(q).map(|mut v| {
            let by_id = filter.query_id.and_then(|id| cat.resources.get(&id));
            if let Some(e) = by_id.filter(|e| !v.iter().any(|x| x.id == e.id)) {
                v.push(e);
            }
            v
        }),
        (None, Some(n)) => cat.resources_containing(n),
        (None, None) => None,
    };
    let in_offerings = filter.offering.ids.as_ref().map(|offs| {
        offs.iter()
            .filter_map(|o| cat.resources_by_offering.get(o))
            .map(HashSet::len)
            .sum::<usize>()
    });
    let searched = match (searched, in_offerings) {
        (Some(v), Some(n)) if n < v.len() => None,
        (s, _) => s,
    };
    let walk = ordering.is_empty() && filter.offering.ids.is_none() && searched.is_none();
    let mut hits: Vec<&ResourceEntry> = match (&filter.offering.ids, searched) {
        (_, Some(v)) => v.into_iter().filter(keep).collect(),
        (Some(offs), None) => {
            let mut v: Vec<&ResourceEntry> = offs
                .iter()
                .filter_map(|o| cat.resources_by_offering.get(o))
                .flatten()
                .filter_map(|id| cat.resources.get(id))
                .filter(keep)
                .collect();
            if offs.len() > 1 {
                v.sort_unstable_by_key(|r| r.id);
                v.dedup_by_key(|r| r.id);
            }
            v
        }
        (None, None) if walk => Vec::new(),
        (None, None) => cat.resources.values().filter(keep).collect(),
    };
    let total = if walk {
        cat.resources.values().filter(keep).count()
    } else {
        hits.len()
    };
    let range = page_range(total, page, size)?;
    let link = link_header(&base, "/api/booking-resources/", &params, page, size, total);
    let mut out = Vec::with_capacity(range.len());
    if !is_head(&method) {
        if walk {
            hits = cat
                .resources_by_name
                .iter()
                .filter_map(|(_, id)| cat.resources.get(id))
                .filter(keep)
                .take(range.end)
                .collect();
        } else {
            // The `o=` keys, then the default order (name, id): a total order.
            let keys: Vec<(&str, bool)> = ordering
                .iter()
                .map(|k| match k.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (*k, false),
                })
                .collect();
            sort_prefix(&mut hits, range.end, |a, b| {
                for (k, desc) in &keys {
                    let ord = order_key(a, k, &cat).cmp(&order_key(b, k, &cat));
                    let ord = if *desc { ord.reverse() } else { ord };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                (&a.name, a.id).cmp(&(&b.name, b.id))
            });
        }
        let urls = Urls { base };
        let fields = params.fields();
        let mut records = Vec::with_capacity(range.len());
        for e in hits.get(range).unwrap_or(&[]) {
            if let Some(r) = state.store.resource(e.id)? {
                records.push(r);
            }
        }
        if fields.is_empty() {
            // The common case: serialise the page straight from the records.
            let page: Vec<render::ResourceOut<'_>> = records
                .iter()
                .map(|r| render::resource_out(r, &cat, &urls))
                .collect();
            return Ok(list_response_serialized(&page, total, link));
        }
        for r in &records {
            out.push(select_fields(render::resource(r, &cat, &urls), &fields));
        }
    }
    Ok(list_response(out, total, link))
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
    let e = cat
        .resources
        .get(&id)
        .filter(|r| roles.sees_resource(r))
        .ok_or(ApiError::NotFound)?;
    let r = state.store.resource(e.id)?.ok_or(ApiError::NotFound)?;
    Ok(Json(select_fields(
        render::resource(&r, &cat, &Urls { base }),
        &params.fields(),
    )))
}

/// Runs one lifecycle action on the booking resource `uuid` names and answers the
/// order it completed, as Waldur does (`{"order_uuid": "<hex>"}`, never null).
fn decide(
    state: &AppState,
    caller: &Caller,
    uuid: &str,
    action: Action,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(uuid)?;
    let out = state
        .store
        .transition(Target::Resource(id), caller.actor(), action, Utc::now())?;
    let order = out
        .order_uuid
        .ok_or_else(|| ApiError::bad(crate::domain::lifecycle::ORDER_NOT_FOUND))?;
    Ok(Json(json!({ "order_uuid": order.hex() })))
}

pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, &uuid, Action::Accept)
}

pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, &uuid, Action::Reject)
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
) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, &uuid, Action::Terminate)
}
