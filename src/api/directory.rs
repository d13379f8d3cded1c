//! The read-only directory the other answers link to: `/api/` (the API root),
//! `/api/projects/`, `/api/customers/`, `/api/users/`,
//! `/api/marketplace-public-offerings/` and `/api/marketplace-categories/`, each a
//! list and its items, in Waldur's shapes (the fields a Waldur client reads; none
//! that bookcal does not hold).
//!
//! Who sees what is [`Roles`]' rules (`sees_project`, `sees_customer`, `sees_user`,
//! `sees_public_offering`; a category is seen with the offerings in it); the lists
//! are the directory read once (a few thousand records at most), filtered, then
//! ordered, paged and answered by one tail ([`answer`]), with the same `page`,
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
use crate::domain::search::fold;
use crate::domain::{Category, Customer, Id, Offering, Project, User};
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
    #[serde(rename = "marketplace-categories")]
    marketplace_categories: String,
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

/// A marketplace category (`/api/marketplace-categories/`): the category of the
/// offerings the caller sees.
#[derive(Serialize, ToSchema)]
#[schema(as = MarketplaceCategory)]
pub struct CategoryOut<'a> {
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    title: &'a str,
    /// Its offerings the caller sees.
    offering_count: usize,
}

/// `GET /api/`.
pub async fn root(BaseUrl(base): BaseUrl) -> Response {
    let at = |c: &str| format!("{base}/api/{c}/");
    Json(ApiRootOut {
        booking_offerings: at("booking-offerings"),
        booking_resources: at("booking-resources"),
        marketplace_orders: at("marketplace-orders"),
        marketplace_public_offerings: at("marketplace-public-offerings"),
        marketplace_categories: at("marketplace-categories"),
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

/// Keeps the items whose `text` contains `name=` (case-insensitive, the store's
/// text search folding: [`fold`]), when given.
fn name_filter<T>(items: &mut Vec<&T>, params: &Params, key: &str, text: impl Fn(&T) -> &str) {
    if let Some(want) = params.one(key).map(fold) {
        items.retain(|i| fold(text(i)).contains(&want));
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

/// How a list is ordered and where it is served: its `o=` keys (the first is the
/// default order), each item's id (the last tie-break), and its path.
struct Listing<T: 'static> {
    path: &'static str,
    keys: &'static [SortKey<T>],
    id: fn(&T) -> Id,
}

/// The page `list` asks for of `items` once ordered (`o=`), with how many items
/// all pages hold and the `Link` header.
///
/// # Errors
/// An unknown `o=` key or a page past the end.
fn ordered_page<'d, T>(
    list: &ListRequest,
    listing: &Listing<T>,
    mut items: Vec<&'d T>,
) -> Result<(Vec<&'d T>, usize, String), ApiError> {
    order_by(&mut items, &list.params, listing.keys, listing.id)?;
    let total = items.len();
    let link = list.link(listing.path, total)?;
    let rows = list.rows();
    let start = rows.offset.min(total);
    let end = start.saturating_add(rows.limit).min(total);
    items.truncate(end);
    items.drain(..start);
    Ok((items, total, link))
}

/// The tail every list shares: orders `items`, takes the page asked for and answers
/// it, each item rendered by `render`.
///
/// # Errors
/// As [`ordered_page`].
fn answer<'d, T, O: Serialize>(
    list: &ListRequest,
    listing: &Listing<T>,
    items: Vec<&'d T>,
    render: impl Fn(&'d T, &Urls) -> O,
) -> Result<Response, ApiError> {
    let (rows, total, link) = ordered_page(list, listing, items)?;
    let urls = Urls {
        base: list.base.clone(),
    };
    let out: Vec<O> = rows.into_iter().map(|i| render(i, &urls)).collect();
    Ok(list.respond(&out, total, link))
}

/// What every retrieve starts from: the item's id, the caller's roles, the base of
/// the links and the `field=` the answer keeps.
struct Lookup {
    id: Id,
    roles: Roles,
    urls: Urls,
    params: Params,
}

impl Lookup {
    /// Reads the caller's roles for `GET .../{uuid}/`.
    ///
    /// # Errors
    /// A malformed uuid (404) or a store failure.
    async fn new(
        s: &AppState,
        c: &Caller,
        base: String,
        u: &str,
        q: Option<&str>,
    ) -> Result<Lookup, ApiError> {
        Ok(Lookup {
            id: path_id(u)?,
            roles: Roles::load(&s.store, &c.user).await?,
            urls: Urls { base },
            params: Params::parse(q),
        })
    }

    /// The answer: `item` when the caller sees it, else 404.
    fn answer<O: Serialize>(&self, item: Option<O>) -> Result<Response, ApiError> {
        let item = item.ok_or(ApiError::NotFound)?;
        Ok(one_response(&item, &self.params.fields()))
    }
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
    const PROJECTS: Listing<Project> = Listing {
        path: "/api/projects/",
        keys: &[("name", |p| fold(&p.name)), ("created", |p| ts(&p.created))],
        id: |p| p.id,
    };
    answer(&list, &PROJECTS, items, |p, urls| sight.project(p, urls))
}

/// `GET /api/projects/{uuid}/`.
pub async fn projects_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let l = Lookup::new(&s, &c, base, &u, q.as_deref()).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&l.roles, &dir);
    let p = dir.projects.get(&l.id);
    l.answer(
        p.filter(|p| sight.projects.contains(&p.id))
            .map(|p| sight.project(p, &l.urls)),
    )
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
    const CUSTOMERS: Listing<Customer> = Listing {
        path: "/api/customers/",
        keys: &[("name", |c| fold(&c.name)), ("created", |c| ts(&c.created))],
        id: |c| c.id,
    };
    answer(&list, &CUSTOMERS, items, |c, urls| sight.customer(c, urls))
}

/// `GET /api/customers/{uuid}/`.
pub async fn customers_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let l = Lookup::new(&s, &c, base, &u, q.as_deref()).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&l.roles, &dir);
    let customer = dir.customers.get(&l.id);
    l.answer(
        customer
            .filter(|c| sight.customers.contains(&c.id))
            .map(|c| sight.customer(c, &l.urls)),
    )
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
    const USERS: Listing<User> = Listing {
        path: "/api/users/",
        keys: &[
            ("username", |u| fold(&u.username)),
            ("full_name", |u| fold(&u.full_name)),
            ("date_joined", |u| ts(&u.created)),
        ],
        id: |u| u.id,
    };
    answer(&list, &USERS, items, user_out)
}

/// `GET /api/users/{uuid}/`.
pub async fn users_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let l = Lookup::new(&s, &c, base, &u, q.as_deref()).await?;
    let dir = s.store.directory().await?;
    let sight = Sight::of(&l.roles, &dir);
    let user = dir.users.get(&l.id);
    l.answer(
        user.filter(|u| {
            l.roles
                .sees_user(u.id, &sight.customers, &sight.projects, &dir)
        })
        .map(|u| user_out(u, &l.urls)),
    )
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
    const OFFERINGS: Listing<Offering> = Listing {
        path: "/api/marketplace-public-offerings/",
        keys: &[("name", |o| fold(&o.name)), ("created", |o| ts(&o.created))],
        id: |o| o.id,
    };
    // Rendered with what the store relates to the page's offerings (read for them).
    let (rows, total, link) = ordered_page(&list, &OFFERINGS, items)?;
    let rows: Vec<Offering> = rows.into_iter().cloned().collect();
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
    Ok(list.respond(&out, total, link))
}

/// `GET /api/marketplace-public-offerings/{uuid}/`.
pub async fn public_offerings_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let l = Lookup::new(&s, &c, base, &u, q.as_deref()).await?;
    let o = s
        .store
        .offering(l.id)
        .await?
        .filter(|o| l.roles.sees_public_offering(o))
        .ok_or(ApiError::NotFound)?;
    let cal = s.store.calendar(o.id).await?;
    let related = s
        .store
        .related(&render::wanted_for_offerings(std::slice::from_ref(&o)))
        .await?;
    l.answer(Some(PublicOfferingOut::of(
        &o,
        &related,
        &l.urls,
        cal.as_ref(),
    )))
}

/// The categories of the offerings the caller sees, each with how many of them are in
/// it.
fn visible_categories(roles: &Roles, dir: &Directory) -> Vec<(Category, usize)> {
    let mut seen: std::collections::BTreeMap<Id, (Category, usize)> = Default::default();
    for o in dir
        .offerings
        .values()
        .filter(|o| roles.sees_public_offering(o))
    {
        seen.entry(o.category.id)
            .or_insert_with(|| (o.category.clone(), 0))
            .1 += 1;
    }
    seen.into_values().collect()
}

fn category_out<'a>((c, count): &'a (Category, usize), urls: &Urls) -> CategoryOut<'a> {
    CategoryOut {
        url: urls.of("marketplace-categories", c.id),
        uuid: c.id,
        title: &c.title,
        offering_count: *count,
    }
}

/// `GET /api/marketplace-categories/`: `title=`, `o=title`.
pub async fn categories_list(
    State(s): State<AppState>,
    list: ListRequest,
) -> Result<Response, ApiError> {
    let dir = s.store.directory().await?;
    let all = visible_categories(&list.roles, &dir);
    let mut items: Vec<&(Category, usize)> = all.iter().collect();
    name_filter(&mut items, &list.params, "title", |c| &c.0.title);
    const CATEGORIES: Listing<(Category, usize)> = Listing {
        path: "/api/marketplace-categories/",
        keys: &[("title", |c| fold(&c.0.title))],
        id: |c| c.0.id,
    };
    answer(&list, &CATEGORIES, items, category_out)
}

/// `GET /api/marketplace-categories/{uuid}/`.
pub async fn categories_retrieve(
    State(s): State<AppState>,
    c: Caller,
    BaseUrl(base): BaseUrl,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let l = Lookup::new(&s, &c, base, &u, q.as_deref()).await?;
    let dir = s.store.directory().await?;
    let seen = visible_categories(&l.roles, &dir);
    let category = seen.iter().find(|(c, _)| c.id == l.id);
    l.answer(category.map(|c| category_out(c, &l.urls)))
}
