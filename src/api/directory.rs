//! The read-only directory the other answers link to: `/api/` (the API root),
//! `/api/projects/`, `/api/customers/`, `/api/users/` and
//! `/api/marketplace-public-offerings/`, each a list and its items, in Waldur's
//! shapes (the fields a Waldur client reads; none that bookcal does not hold).
//!
//! Who sees what is [`Roles`]' rules (`sees_project`, `sees_customer`, `sees_user`,
//! `sees_public_offering`); the lists are the directory read once (a few thousand
//! records at most), filtered, ordered and paged here, with the same `page`,
//! `page_size`, `field=`, `o=` and headers as every list.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Caller, Roles};
use super::listing::{one_response, ListRequest, Params};
use super::render::{self, PublicOfferingOut, Urls};
use super::{path_id, ApiError, AppState, BaseUrl};
use crate::domain::format::ts;
use crate::domain::{Customer, Id, Offering, Project, User};
use crate::store::Directory;

/// `GET /api/`: every collection bookcal serves, by name (DRF's API root).
#[derive(Serialize, ToSchema)]
#[schema(as = ApiRoot)]
pub struct ApiRootOut {
    #[serde(rename = "booking-offerings")]
    booking_offerings: String,
    #[serde(rename = "booking-resources")]
    booking_resources: String,
    #[serde(rename = "marketplace-orders")]
    marketplace_orders: String,
    #[serde(rename = "marketplace-public-offerings")]
    marketplace_public_offerings: String,
    projects: String,
    customers: String,
    users: String,
    #[serde(rename = "feed-tokens")]
    feed_tokens: String,
    schema: String,
}

/// A project (`/api/projects/`).
#[derive(Serialize, ToSchema)]
#[schema(as = Project)]
pub struct ProjectOut<'a> {
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    name: &'a str,
    slug: &'a str,
    description: &'a str,
    customer: String,
    #[schema(value_type = String)]
    customer_uuid: Id,
    customer_name: &'a str,
    customer_slug: &'a str,
    #[schema(format = DateTime)]
    created: String,
    is_removed: bool,
}

/// An organisation (`/api/customers/`).
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerOut<'a> {
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    name: &'a str,
    slug: &'a str,
    display_name: &'a str,
    #[schema(format = DateTime)]
    created: String,
    /// Its projects the caller sees.
    projects_count: usize,
    /// Whether it offers booking offerings.
    is_service_provider: bool,
    blocked: bool,
    archived: bool,
}

/// A user (`/api/users/`).
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserOut<'a> {
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    username: &'a str,
    full_name: &'a str,
    email: &'a str,
    is_staff: bool,
    is_active: bool,
    is_support: bool,
    #[schema(format = DateTime)]
    date_joined: String,
}

/// `GET /api/`.
pub async fn root(BaseUrl(base): BaseUrl) -> Response {
    let at = |c: &str| format!("{base}/api/{c}/");
    Json(ApiRootOut {
        booking_offerings: at("booking-offerings"),
        booking_resources: at("booking-resources"),
        marketplace_orders: at("marketplace-orders"),
        marketplace_public_offerings: at("marketplace-public-offerings"),
        projects: at("projects"),
        customers: at("customers"),
        users: at("users"),
        feed_tokens: at("feed-tokens"),
        schema: at("schema"),
    })
    .into_response()
}

/// What the caller sees of the directory, worked out once per request.
struct Sight<'a> {
    dir: &'a Directory,
    projects: HashSet<Id>,
    customers: HashSet<Id>,
}

impl<'a> Sight<'a> {
    fn of(roles: &Roles, dir: &'a Directory) -> Sight<'a> {
        let projects: HashSet<Id> = dir
            .projects
            .values()
            .filter(|p| roles.sees_project(p))
            .map(|p| p.id)
            .collect();
        let providers: HashSet<Id> = dir
            .offerings
            .values()
            .filter(|o| roles.sees_public_offering(o))
            .map(|o| o.customer)
            .collect();
        let customers = dir
            .customers
            .values()
            .filter(|c| roles.sees_customer(c, &projects, &dir.projects, &providers))
            .map(|c| c.id)
            .collect();
        Sight {
            dir,
            projects,
            customers,
        }
    }

    fn project(&self, p: &'a Project, urls: &Urls) -> ProjectOut<'a> {
        let c = self.dir.customers.get(&p.customer);
        ProjectOut {
            url: urls.of("projects", p.id),
            uuid: p.id,
            name: &p.name,
            slug: &p.slug,
            description: &p.description,
            customer: urls.of("customers", p.customer),
            customer_uuid: p.customer,
            customer_name: c.map_or("", |c| c.name.as_str()),
            customer_slug: c.map_or("", |c| c.slug.as_str()),
            created: ts(&p.created),
            is_removed: false,
        }
    }

    fn customer(&self, c: &'a Customer, urls: &Urls) -> CustomerOut<'a> {
        CustomerOut {
            url: urls.of("customers", c.id),
            uuid: c.id,
            name: &c.name,
            slug: &c.slug,
            display_name: &c.name,
            created: ts(&c.created),
            projects_count: self
                .dir
                .projects
                .values()
                .filter(|p| p.customer == c.id && self.projects.contains(&p.id))
                .count(),
            is_service_provider: self.dir.offerings.values().any(|o| o.customer == c.id),
            blocked: false,
            archived: false,
        }
    }
}

fn user_out<'a>(u: &'a User, urls: &Urls) -> UserOut<'a> {
    UserOut {
        url: urls.of("users", u.id),
        uuid: u.id,
        username: &u.username,
        full_name: &u.full_name,
        email: &u.email,
        is_staff: u.is_staff,
        is_active: true,
        is_support: false,
        date_joined: ts(&u.created),
    }
}

/// Keeps the items whose `text` contains `name=` (case-insensitive), when given.
fn name_filter<T>(items: &mut Vec<&T>, params: &Params, key: &str, text: impl Fn(&T) -> &str) {
    if let Some(want) = params.one(key).map(str::to_lowercase) {
        items.retain(|i| text(i).to_lowercase().contains(&want));
    }
}

/// An `o=` key and the value it sorts by.
type SortKey<T> = (&'static str, fn(&T) -> String);

/// Orders `items` by the `o=` keys (each `(name, key)` of `keys`), then by the
/// first key and the id, as every list does.
///
/// # Errors
/// An `o=` key not in `keys`.
fn order_by<T>(
    items: &mut [&T],
    params: &Params,
    keys: &[SortKey<T>],
    id: fn(&T) -> Id,
) -> Result<(), ApiError> {
    let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
    let wanted = params.ordering_in(&names)?;
    let key_of = |name: &str| keys.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
    items.sort_by_key(|i| id(i));
    if let Some(first) = keys.first() {
        items.sort_by_cached_key(|i| (first.1)(i));
    }
    for k in wanted.iter().rev() {
        let (name, desc) = match k.strip_prefix('-') {
            Some(n) => (n, true),
            None => (*k, false),
        };
        if let Some(key) = key_of(name) {
            items.sort_by(|a, b| {
                let o = key(a).cmp(&key(b));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
    }
    Ok(())
}

/// The page `list` asks for of `items`, with its `Link` header.
fn page<'i, T>(
    list: &ListRequest,
    path: &str,
    items: &'i [&'i T],
) -> Result<(&'i [&'i T], String), ApiError> {
    let link = list.link(path, items.len())?;
    let rows = list.rows();
    let start = rows.offset.min(items.len());
    let end = start.saturating_add(rows.limit).min(items.len());
    Ok((&items[start..end], link))
}

/// `GET /api/projects/`: `name=`, `customer_uuid=`, `o=name|created`.
pub async fn projects_list(
    State(s): State<AppState>,
    list: ListRequest,
) -> Result<Response, ApiError> {
    let dir = s.store.directory().await?;
    let sight = Sight::of(&list.roles, &dir);
    let mut items: Vec<&Project> = dir
        .projects
        .values()
        .filter(|p| sight.projects.contains(&p.id))
        .collect();
    name_filter(&mut items, &list.params, "name", |p| &p.name);
    if let Some(c) = list.params.uuids("customer_uuid")? {
        items.retain(|p| c.contains(&p.customer));
    }
    order_by(
        &mut items,
        &list.params,
        &[
            ("name", |p: &Project| p.name.to_lowercase()),
            ("created", |p: &Project| ts(&p.created)),
        ],
        |p| p.id,
    )?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let (rows, link) = page(&list, "/api/projects/", &items)?;
    let out: Vec<ProjectOut> = rows.iter().map(|p| sight.project(p, &urls)).collect();
    Ok(list.respond(&out, items.len(), link))
}

/// `GET /api/projects/{uuid}/`.
pub async fn projects_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = Roles::load(&s.store, &c.user).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&roles, &dir);
    let p = dir
        .projects
        .get(&id)
        .filter(|p| sight.projects.contains(&p.id))
        .ok_or(ApiError::NotFound)?;
    let out = sight.project(p, &Urls { base });
    Ok(one_response(&out, &Params::parse(q.as_deref()).fields()))
}

/// `GET /api/customers/`: `name=`, `o=name|created`.
pub async fn customers_list(
    State(s): State<AppState>,
    list: ListRequest,
) -> Result<Response, ApiError> {
    let dir = s.store.directory().await?;
    let sight = Sight::of(&list.roles, &dir);
    let mut items: Vec<&Customer> = dir
        .customers
        .values()
        .filter(|c| sight.customers.contains(&c.id))
        .collect();
    name_filter(&mut items, &list.params, "name", |c| &c.name);
    order_by(
        &mut items,
        &list.params,
        &[
            ("name", |c: &Customer| c.name.to_lowercase()),
            ("created", |c: &Customer| ts(&c.created)),
        ],
        |c| c.id,
    )?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let (rows, link) = page(&list, "/api/customers/", &items)?;
    let out: Vec<CustomerOut> = rows.iter().map(|c| sight.customer(c, &urls)).collect();
    Ok(list.respond(&out, items.len(), link))
}

/// `GET /api/customers/{uuid}/`.
pub async fn customers_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = Roles::load(&s.store, &c.user).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&roles, &dir);
    let customer = dir
        .customers
        .get(&id)
        .filter(|c| sight.customers.contains(&c.id))
        .ok_or(ApiError::NotFound)?;
    let out = sight.customer(customer, &Urls { base });
    Ok(one_response(&out, &Params::parse(q.as_deref()).fields()))
}

/// The users the caller sees: see [`Roles::sees_user`].
fn visible_users<'d>(roles: &Roles, dir: &'d Directory, sight: &Sight) -> Vec<&'d User> {
    dir.users
        .values()
        .filter(|u| roles.sees_user(u.id, &sight.customers, &sight.projects, dir))
        .collect()
}

/// `GET /api/users/`: `username=`, `full_name=`, `o=username|full_name|date_joined`.
pub async fn users_list(
    State(s): State<AppState>,
    list: ListRequest,
) -> Result<Response, ApiError> {
    let dir = s.store.directory().await?;
    let sight = Sight::of(&list.roles, &dir);
    let mut items = visible_users(&list.roles, &dir, &sight);
    name_filter(&mut items, &list.params, "username", |u| &u.username);
    name_filter(&mut items, &list.params, "full_name", |u| &u.full_name);
    order_by(
        &mut items,
        &list.params,
        &[
            ("username", |u: &User| u.username.to_lowercase()),
            ("full_name", |u: &User| u.full_name.to_lowercase()),
            ("date_joined", |u: &User| ts(&u.created)),
        ],
        |u| u.id,
    )?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let (rows, link) = page(&list, "/api/users/", &items)?;
    let out: Vec<UserOut> = rows.iter().map(|u| user_out(u, &urls)).collect();
    Ok(list.respond(&out, items.len(), link))
}

/// `GET /api/users/{uuid}/`.
pub async fn users_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = Roles::load(&s.store, &c.user).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&roles, &dir);
    let user = dir
        .users
        .get(&id)
        .filter(|u| roles.sees_user(u.id, &sight.customers, &sight.projects, &dir))
        .ok_or(ApiError::NotFound)?;
    let out = user_out(user, &Urls { base });
    Ok(one_response(&out, &Params::parse(q.as_deref()).fields()))
}

/// `GET /api/marketplace-public-offerings/`: `name=`, `customer_uuid=`,
/// `o=name|created`.
pub async fn public_offerings_list(
    State(s): State<AppState>,
    list: ListRequest,
) -> Result<Response, ApiError> {
    let dir = s.store.directory().await?;
    let mut items: Vec<&Offering> = dir
        .offerings
        .values()
        .filter(|o| list.roles.sees_public_offering(o))
        .collect();
    name_filter(&mut items, &list.params, "name", |o| &o.name);
    if let Some(c) = list.params.uuids("customer_uuid")? {
        items.retain(|o| c.contains(&o.customer));
    }
    order_by(
        &mut items,
        &list.params,
        &[
            ("name", |o: &Offering| o.name.to_lowercase()),
            ("created", |o: &Offering| ts(&o.created)),
        ],
        |o| o.id,
    )?;
    let (rows, link) = page(&list, "/api/marketplace-public-offerings/", &items)?;
    let rows: Vec<Offering> = rows.iter().map(|o| (*o).clone()).collect();
    let related = s
        .store
        .related(&render::wanted_for_offerings(&rows))
        .await?;
    let mut calendars = Vec::with_capacity(rows.len());
    for o in &rows {
        calendars.push(s.store.calendar(o.id).await?);
    }
    let urls = Urls {
        base: list.base.clone(),
    };
    let out: Vec<PublicOfferingOut> = rows
        .iter()
        .zip(&calendars)
        .map(|(o, cal)| PublicOfferingOut::of(o, &related, &urls, cal.as_ref()))
        .collect();
    Ok(list.respond(&out, items.len(), link))
}

/// `GET /api/marketplace-public-offerings/{uuid}/`.
pub async fn public_offerings_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(&u)?;
    let roles = Roles::load(&s.store, &c.user).await?;
    let o = s
        .store
        .offering(id)
        .await?
        .filter(|o| roles.sees_public_offering(o))
        .ok_or(ApiError::NotFound)?;
    let cal = s.store.calendar(o.id).await?;
    let related = s
        .store
        .related(&render::wanted_for_offerings(std::slice::from_ref(&o)))
        .await?;
    let out = PublicOfferingOut::of(&o, &related, &Urls { base }, cal.as_ref());
    Ok(one_response(&out, &Params::parse(q.as_deref()).fields()))
}
