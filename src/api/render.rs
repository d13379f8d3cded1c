//! JSON renderings of offerings, booking resources and orders, with Waldur's field
//! names. Fields the client cannot take as `null` are always present with a value;
//! fields we do not model are left out (the client treats them as unset).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::domain::calendar::OfferingCalendar;
use crate::domain::{Id, Offering, Order, Resource};
use crate::store::Catalog;

pub use crate::domain::format::ts;

fn opt_ts(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref()
        .map(|t| Value::String(ts(t)))
        .unwrap_or(Value::Null)
}

/// Absolute URL helpers for one request.
#[derive(Clone, Debug)]
pub struct Urls {
    pub base: String,
}

impl Urls {
    pub fn of(&self, collection: &str, id: Id) -> String {
        format!("{}/api/{collection}/{}/", self.base, id.hex())
    }
}

/// The `googlecalendar` object: never null.
pub fn googlecalendar(cal: Option<&OfferingCalendar>, feed_url: Option<String>) -> Value {
    let mut v = match cal {
        None => json!({"backend_id": null, "public": false, "http_link": null}),
        Some(c) => json!({
            "backend_id": c.calendar_id,
            "public": c.public,
            "http_link": c.http_link(),
            "state": c.state.as_str(),
            "last_success": opt_ts(&c.last_success),
            "last_error": c.last_error,
            "last_run": c.last_run,
        }),
    };
    if let (Some(url), Value::Object(m)) = (feed_url, &mut v) {
        m.insert("ical_feed_url".into(), Value::String(url));
    }
    v
}

/// A booking offering.
pub fn offering(o: &Offering, cat: &Catalog, urls: &Urls, gc: Value) -> Value {
    let customer = cat.customers.get(&o.customer);
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("url", json!(urls.of("booking-offerings", o.id)));
    put("uuid", json!(o.id));
    put("created", json!(ts(&o.created)));
    put("name", json!(o.name));
    put("slug", json!(o.slug));
    put("description", json!(o.description));
    put("full_description", json!(o.full_description));
    put("customer", json!(urls.of("customers", o.customer)));
    put("customer_uuid", json!(o.customer));
    put(
        "customer_name",
        json!(customer.map(|c| c.name.as_str()).unwrap_or("")),
    );
    put(
        "category",
        json!(urls.of("marketplace-categories", o.category.id)),
    );
    put("category_uuid", json!(o.category.id));
    put("category_title", json!(o.category.title));
    put("attributes", o.attributes.clone());
    put("options", json!({}));
    put("resource_options", json!({}));
    put("components", json!([]));
    put("plugin_options", o.plugin_options.clone());
    put("account_settings", json!({}));
    put("billing_period_applies", json!({}));
    put("billing_mode_components", json!({}));
    put("state", json!(o.state.as_str()));
    put("type", json!("Marketplace.Booking"));
    put("shared", json!(o.shared));
    put("billable", json!(o.billable));
    put("endpoints", json!([]));
    put("roles", json!([]));
    put("plans", json!([]));
    put("screenshots", json!([]));
    put("files", json!([]));
    put("quotas", json!([]));
    put("organization_groups", json!([]));
    put("country", json!(""));
    put("backend_id", json!(o.backend_id));
    put("backend_metadata", json!({}));
    put(
        "order_count",
        json!(cat
            .orders_by_offering
            .get(&o.id)
            .map(|s| s.len())
            .unwrap_or(0)),
    );
    if let Some(lat) = o.latitude {
        put("latitude", json!(lat));
    }
    if let Some(lon) = o.longitude {
        put("longitude", json!(lon));
    }
    put("googlecalendar", gc);
    // Not a Waldur field: where the owner feed's secret tokens are managed.
    put(
        "feed_tokens_url",
        json!(format!(
            "{}feed_tokens/",
            urls.of("booking-offerings", o.id)
        )),
    );
    // Not a Waldur field: the zone bookings are shown in.
    put("time_zone", json!(o.time_zone.name()));
    Value::Object(m)
}

/// Fields shared by resources and orders that describe the offering and project.
fn offering_and_project(
    m: &mut Map<String, Value>,
    offering: Id,
    project: Id,
    cat: &Catalog,
    urls: &Urls,
) {
    let off = cat.offerings.get(&offering);
    let prov = off.and_then(|o| cat.customers.get(&o.customer));
    let proj = cat.projects.get(&project);
    let cust = proj.and_then(|p| cat.customers.get(&p.customer));
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put(
        "offering",
        json!(urls.of("marketplace-public-offerings", offering)),
    );
    put(
        "offering_name",
        json!(off.map(|o| o.name.as_str()).unwrap_or("")),
    );
    put("offering_uuid", json!(offering));
    put(
        "offering_description",
        json!(off.map(|o| o.description.as_str()).unwrap_or("")),
    );
    put("offering_type", json!("Marketplace.Booking"));
    put("offering_shared", json!(off.is_some_and(|o| o.shared)));
    put("offering_billable", json!(off.is_some_and(|o| o.billable)));
    put(
        "offering_plugin_options",
        off.map(|o| o.plugin_options.clone()).unwrap_or(json!({})),
    );
    put(
        "offering_slug",
        json!(off.map(|o| o.slug.as_str()).unwrap_or("")),
    );
    put(
        "provider_name",
        json!(prov.map(|c| c.name.as_str()).unwrap_or("")),
    );
    put(
        "provider_uuid",
        json!(off.map(|o| o.customer).unwrap_or(offering)),
    );
    put(
        "provider_slug",
        json!(prov.map(|c| c.slug.as_str()).unwrap_or("")),
    );
    put(
        "category_title",
        json!(off.map(|o| o.category.title.as_str()).unwrap_or("")),
    );
    put(
        "category_uuid",
        json!(off.map(|o| o.category.id).unwrap_or(offering)),
    );
    put("project", json!(urls.of("projects", project)));
    put("project_uuid", json!(project));
    put(
        "project_name",
        json!(proj.map(|p| p.name.as_str()).unwrap_or("")),
    );
    put(
        "project_description",
        json!(proj.map(|p| p.description.as_str()).unwrap_or("")),
    );
    put(
        "project_slug",
        json!(proj.map(|p| p.slug.as_str()).unwrap_or("")),
    );
    put(
        "customer_uuid",
        json!(proj.map(|p| p.customer).unwrap_or(project)),
    );
    put(
        "customer_name",
        json!(cust.map(|c| c.name.as_str()).unwrap_or("")),
    );
    put(
        "customer_slug",
        json!(cust.map(|c| c.slug.as_str()).unwrap_or("")),
    );
}

fn user_fields(
    m: &mut Map<String, Value>,
    prefix: &str,
    user: Option<Id>,
    cat: &Catalog,
    urls: &Urls,
) {
    if let Some(u) = user.and_then(|id| cat.users.get(&id)) {
        m.insert(prefix.to_string(), json!(urls.of("users", u.id)));
        m.insert(format!("{prefix}_username"), json!(u.username));
        m.insert(format!("{prefix}_full_name"), json!(u.full_name));
    }
}

/// A booking resource.
/// The offering and project fields of a booking resource, borrowed from the catalog.
#[derive(serde::Serialize)]
struct OfferingProjectOut<'a> {
    offering: String,
    offering_name: &'a str,
    offering_uuid: Id,
    offering_description: &'a str,
    offering_type: &'static str,
    offering_shared: bool,
    offering_billable: bool,
    offering_plugin_options: &'a Value,
    offering_slug: &'a str,
    offering_state: &'static str,
    provider_name: &'a str,
    provider_uuid: Id,
    provider_slug: &'a str,
    category_title: &'a str,
    category_uuid: Id,
    project: String,
    project_uuid: Id,
    project_name: &'a str,
    project_description: &'a str,
    project_slug: &'a str,
    customer_uuid: Id,
    customer_name: &'a str,
    customer_slug: &'a str,
}

#[derive(serde::Serialize)]
struct SlotOut<'a> {
    start: String,
    end: String,
    backend_id: &'a str,
}

/// A user reference (`created_by`, `consumer_reviewed_by`): URL, username, full name.
#[derive(serde::Serialize)]
struct UserRefOut<'a> {
    #[serde(rename = "created_by", skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(
        rename = "created_by_username",
        skip_serializing_if = "Option::is_none"
    )]
    created_by_username: Option<&'a str>,
    #[serde(
        rename = "created_by_full_name",
        skip_serializing_if = "Option::is_none"
    )]
    created_by_full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_full_name: Option<&'a str>,
}

/// A booking resource as the API renders it. Serialised directly for list pages
/// (no intermediate `Value`: rendering was most of a page's cost), and through
/// [`resource`] where fields are selected.
#[derive(serde::Serialize)]
pub struct ResourceOut<'a> {
    #[serde(flatten)]
    common: OfferingProjectOut<'a>,
    #[serde(flatten)]
    users: UserRefOut<'a>,
    url: String,
    uuid: Id,
    resource_uuid: Id,
    name: &'a str,
    slug: &'a str,
    description: &'a str,
    created: String,
    modified: String,
    last_sync: String,
    state: &'static str,
    backend_id: &'a str,
    effective_id: &'static str,
    resource_type: &'static str,
    attributes: &'a Value,
    limits: Map<String, Value>,
    current_usages: Map<String, Value>,
    limit_usage: Map<String, Value>,
    usage_limit_restriction: &'static str,
    backend_metadata: Map<String, Value>,
    parent_offering_uuid: Id,
    parent_uuid: Id,
    service_settings_uuid: Id,
    offering_account_settings: Map<String, Value>,
    is_usage_based: bool,
    is_limit_based: bool,
    can_terminate: bool,
    downscaled: bool,
    restrict_member_access: bool,
    paused: bool,
    endpoints: &'static [u8],
    report: &'static [u8],
    error_message: &'a str,
    error_traceback: &'static str,
    available_actions: &'static [u8],
    end_date: Option<String>,
    slots: Vec<SlotOut<'a>>,
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

/// Builds the rendering of a booking resource.
pub fn resource_out<'a>(r: &'a Resource, cat: &'a Catalog, urls: &Urls) -> ResourceOut<'a> {
    let off = cat.offerings.get(&r.offering);
    let prov = off.and_then(|o| cat.customers.get(&o.customer));
    let proj = cat.projects.get(&r.project);
    let cust = proj.and_then(|p| cat.customers.get(&p.customer));
    let user = |id: Option<Id>| id.and_then(|i| cat.users.get(&i));
    let creator = user(Some(r.created_by));
    let reviewer = user(r.consumer_reviewed_by);
    ResourceOut {
        common: OfferingProjectOut {
            offering: urls.of("marketplace-public-offerings", r.offering),
            offering_name: off.map(|o| o.name.as_str()).unwrap_or(""),
            offering_uuid: r.offering,
            offering_description: off.map(|o| o.description.as_str()).unwrap_or(""),
            offering_type: "Marketplace.Booking",
            offering_shared: off.is_some_and(|o| o.shared),
            offering_billable: off.is_some_and(|o| o.billable),
            offering_plugin_options: off.map(|o| &o.plugin_options).unwrap_or(&EMPTY_OBJECT),
            offering_slug: off.map(|o| o.slug.as_str()).unwrap_or(""),
            offering_state: off.map(|o| o.state.as_str()).unwrap_or("Active"),
            provider_name: prov.map(|c| c.name.as_str()).unwrap_or(""),
            provider_uuid: off.map(|o| o.customer).unwrap_or(r.offering),
            provider_slug: prov.map(|c| c.slug.as_str()).unwrap_or(""),
            category_title: off.map(|o| o.category.title.as_str()).unwrap_or(""),
            category_uuid: off.map(|o| o.category.id).unwrap_or(r.offering),
            project: urls.of("projects", r.project),
            project_uuid: r.project,
            project_name: proj.map(|p| p.name.as_str()).unwrap_or(""),
            project_description: proj.map(|p| p.description.as_str()).unwrap_or(""),
            project_slug: proj.map(|p| p.slug.as_str()).unwrap_or(""),
            customer_uuid: proj.map(|p| p.customer).unwrap_or(r.project),
            customer_name: cust.map(|c| c.name.as_str()).unwrap_or(""),
            customer_slug: cust.map(|c| c.slug.as_str()).unwrap_or(""),
        },
        users: UserRefOut {
            created_by: creator.map(|u| urls.of("users", u.id)),
            created_by_username: creator.map(|u| u.username.as_str()),
            created_by_full_name: creator.map(|u| u.full_name.as_str()),
            consumer_reviewed_by: reviewer.map(|u| urls.of("users", u.id)),
            consumer_reviewed_by_username: reviewer.map(|u| u.username.as_str()),
            consumer_reviewed_by_full_name: reviewer.map(|u| u.full_name.as_str()),
        },
        url: urls.of("booking-resources", r.id),
        uuid: r.id,
        resource_uuid: r.id,
        name: &r.name,
        slug: &r.slug,
        description: &r.description,
        created: ts(&r.created),
        modified: ts(&r.modified),
        last_sync: ts(&r.modified),
        state: r.state.as_str(),
        backend_id: &r.backend_id,
        effective_id: "",
        resource_type: "Marketplace.Booking",
        attributes: &r.attributes,
        limits: Map::new(),
        current_usages: Map::new(),
        limit_usage: Map::new(),
        usage_limit_restriction: "",
        backend_metadata: Map::new(),
        parent_offering_uuid: r.offering,
        parent_uuid: r.id,
        service_settings_uuid: r.offering,
        offering_account_settings: Map::new(),
        is_usage_based: false,
        is_limit_based: false,
        can_terminate: false,
        downscaled: false,
        restrict_member_access: false,
        paused: false,
        endpoints: &[],
        report: &[],
        error_message: &r.error_message,
        error_traceback: "",
        available_actions: &[],
        end_date: r.end_date.map(|d| d.to_string()),
        slots: r
            .slots
            .iter()
            .map(|s| SlotOut {
                start: ts(&s.start),
                end: ts(&s.end),
                backend_id: &s.backend_id,
            })
            .collect(),
    }
}

/// A booking resource as a JSON value (retrieve, and lists with `field=`).
pub fn resource(r: &Resource, cat: &Catalog, urls: &Urls) -> Value {
    serde_json::to_value(resource_out(r, cat, urls)).unwrap_or_else(|_| json!({}))
}

pub fn order(o: &Order, cat: &Catalog, urls: &Urls) -> Value {
    let mut m = Map::new();
    offering_and_project(&mut m, o.offering, o.project, cat, urls);
    let res = cat.resources.get(&o.resource);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("url", json!(urls.of("marketplace-orders", o.id)));
    put("uuid", json!(o.id));
    put("created", json!(ts(&o.created)));
    put("modified", json!(ts(&o.modified)));
    put("state", json!(o.state.as_str()));
    put("type", json!(o.kind.as_str()));
    put("attributes", o.attributes.clone());
    put("limits", json!({}));
    put("marketplace_resource_uuid", json!(o.resource));
    put("resource_uuid", json!(o.resource));
    put("resource_type", json!("Marketplace.Booking"));
    put("resource_name", json!(res.map(|r| &*r.name).unwrap_or("")));
    put("cost", json!("0.0000000000"));
    put("output", json!(""));
    put("error_message", json!(o.error_message));
    put("error_traceback", json!(o.error_traceback));
    put("backend_id", json!(o.backend_id));
    put("request_comment", json!(o.request_comment));
    put("termination_comment", json!(o.termination_comment));
    put("can_terminate", json!(false));
    put("completed_at", opt_ts(&o.completed_at));
    put("consumer_reviewed_at", opt_ts(&o.consumer_reviewed_at));
    put("provider_reviewed_at", opt_ts(&o.provider_reviewed_at));
    put("start_date", json!(o.start_date.map(|d| d.to_string())));
    put(
        "attachment",
        json!(o
            .attachment
            .as_ref()
            .map(|_| format!("{}attachment/", urls.of("marketplace-orders", o.id)))),
    );
    if !o.callback_url.is_empty() {
        put("callback_url", json!(o.callback_url));
    }
    user_fields(&mut m, "created_by", Some(o.created_by), cat, urls);
    if let Some(u) = o.consumer_reviewed_by.and_then(|id| cat.users.get(&id)) {
        m.insert("consumer_reviewed_by".into(), json!(u.username));
        m.insert("consumer_reviewed_by_username".into(), json!(u.username));
        m.insert("consumer_reviewed_by_full_name".into(), json!(u.full_name));
    }
    if let Some(u) = o.provider_reviewed_by.and_then(|id| cat.users.get(&id)) {
        m.insert("provider_reviewed_by".into(), json!(u.username));
        m.insert("provider_reviewed_by_username".into(), json!(u.username));
        m.insert("provider_reviewed_by_full_name".into(), json!(u.full_name));
    }
    Value::Object(m)
}
