//! JSON renderings of offerings, booking resources and orders, with Waldur's field
//! names. Fields the client cannot take as `null` are always present with a value;
//! fields we do not model are left out (the client treats them as unset).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::domain::calendar::OfferingCalendar;
use crate::domain::{Id, Offering, Order, Resource};
use crate::store::Catalog;

/// ISO 8601 UTC with `Z`, as DRF renders datetimes.
pub fn ts(t: &DateTime<Utc>) -> String {
    use chrono::SubsecRound;
    // Microseconds at most, as Python's datetime (and so DRF) has.
    t.trunc_subsecs(6)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

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
pub fn resource(r: &Resource, cat: &Catalog, urls: &Urls) -> Value {
    let mut m = Map::new();
    offering_and_project(&mut m, r.offering, r.project, cat, urls);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("url", json!(urls.of("booking-resources", r.id)));
    put("uuid", json!(r.id));
    put("resource_uuid", json!(r.id));
    put("name", json!(r.name));
    put("slug", json!(r.slug));
    put("description", json!(r.description));
    put("created", json!(ts(&r.created)));
    put("modified", json!(ts(&r.modified)));
    put("last_sync", json!(ts(&r.modified)));
    put("state", json!(r.state.as_str()));
    put("backend_id", json!(r.backend_id));
    put("effective_id", json!(""));
    put("resource_type", json!("Marketplace.Booking"));
    put("attributes", r.attributes.clone());
    put("limits", json!({}));
    put("current_usages", json!({}));
    put("limit_usage", json!({}));
    put("usage_limit_restriction", json!(""));
    put("backend_metadata", json!({}));
    put("parent_offering_uuid", json!(r.offering));
    put("parent_uuid", json!(r.id));
    put("service_settings_uuid", json!(r.offering));
    put(
        "offering_state",
        json!(cat
            .offerings
            .get(&r.offering)
            .map(|o| o.state.as_str())
            .unwrap_or("Active")),
    );
    put("offering_account_settings", json!({}));
    put("is_usage_based", json!(false));
    put("is_limit_based", json!(false));
    put("can_terminate", json!(false));
    put("downscaled", json!(false));
    put("restrict_member_access", json!(false));
    put("paused", json!(false));
    put("endpoints", json!([]));
    put("report", json!([]));
    put("error_message", json!(r.error_message));
    put("error_traceback", json!(""));
    put("available_actions", json!([]));
    put("end_date", json!(r.end_date.map(|d| d.to_string())));
    put(
        "slots",
        Value::Array(
            r.slots
                .iter()
                .map(|s| json!({"start": ts(&s.start), "end": ts(&s.end), "backend_id": s.backend_id}))
                .collect(),
        ),
    );
    user_fields(&mut m, "created_by", Some(r.created_by), cat, urls);
    user_fields(
        &mut m,
        "consumer_reviewed_by",
        r.consumer_reviewed_by,
        cat,
        urls,
    );
    Value::Object(m)
}

/// A marketplace order.
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
