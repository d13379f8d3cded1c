//! JSON renderings of offerings, booking resources and orders, with Waldur's field
//! names. Fields the client cannot take as `null` are always present with a value;
//! fields we do not model are left out (the client treats them as unset).

use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::domain::calendar::{CredentialHealth, OfferingCalendar, RunSummary};
use crate::domain::{Id, Offering, Order, Resource};
use crate::store::{Related, Wanted};

pub use crate::domain::format::ts;

/// What rendering these booking resources reads besides them.
pub fn wanted_for_resources(rs: &[Resource]) -> Wanted {
    Wanted {
        users: rs
            .iter()
            .flat_map(|r| std::iter::once(r.created_by).chain(r.consumer_reviewed_by))
            .collect(),
        projects: rs.iter().map(|r| r.project).collect(),
        offerings: rs.iter().map(|r| r.offering).collect(),
        ..Wanted::default()
    }
}

/// What rendering these orders reads besides them.
pub fn wanted_for_orders(os: &[Order]) -> Wanted {
    Wanted {
        users: os
            .iter()
            .flat_map(|o| {
                std::iter::once(o.created_by)
                    .chain(o.consumer_reviewed_by)
                    .chain(o.provider_reviewed_by)
            })
            .collect(),
        projects: os.iter().map(|o| o.project).collect(),
        offerings: os.iter().map(|o| o.offering).collect(),
        resource_names: os.iter().map(|o| o.resource).collect(),
        ..Wanted::default()
    }
}

/// What rendering these offerings reads besides them.
pub fn wanted_for_offerings(os: &[Offering]) -> Wanted {
    Wanted {
        customers: os.iter().map(|o| o.customer).collect(),
        order_counts: os.iter().map(|o| o.id).collect(),
        ..Wanted::default()
    }
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

/// `{"detail": "..."}`: 401, 403, 404, 409 and action confirmations.
#[derive(Serialize, ToSchema)]
pub struct Detail<'a> {
    detail: &'a str,
}

impl<'a> Detail<'a> {
    pub fn new(detail: &'a str) -> Self {
        Detail { detail }
    }
}

/// `{}`: a Waldur object field bookcal does not model.
pub struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// `[]`: a Waldur list field bookcal does not model.
pub struct EmptyList;

impl Serialize for EmptyList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_seq(Some(0))?.end()
    }
}

/// The counts of an offering calendar's last sync run.
#[derive(Serialize, ToSchema)]
#[schema(as = RunSummary)]
pub struct RunSummaryOut<'a> {
    #[schema(value_type = Option<String>)]
    started: Option<DateTime<Utc>>,
    duration_ms: u64,
    created: u32,
    updated: u32,
    deleted: u32,
    adopted: u32,
    busy_slots: u32,
    warnings: &'a [String],
    api_calls: u64,
    full_listing: bool,
    /// Writes held back by Google's usage limits (pushed on a later run).
    deferred: u32,
}

impl<'a> RunSummaryOut<'a> {
    fn of(r: &'a RunSummary) -> Self {
        RunSummaryOut {
            started: r.started,
            duration_ms: r.duration_ms,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            adopted: r.adopted,
            busy_slots: r.busy_slots,
            warnings: &r.warnings,
            api_calls: r.api_calls,
            full_listing: r.full_listing,
            deferred: r.deferred,
        }
    }
}

/// Why an offering's sync waits for Google's usage limits, and until when.
#[derive(Serialize, ToSchema)]
#[schema(as = SyncWaiting)]
pub struct WaitingOut<'a> {
    reason: &'a str,
    #[schema(value_type = String, format = DateTime)]
    until: String,
}

/// The health of the Google credential serving the offering's provider.
#[derive(Serialize, ToSchema)]
#[schema(as = CredentialHealth)]
pub struct CredentialHealthOut<'a> {
    /// Which credential, without secrets (`service account a@b`, `provider <hex>`).
    name: &'a str,
    /// `ok`, `invalid` (a person must replace it), `failing` (bookcal retries), `unknown`.
    status: &'a str,
    /// What is wrong, in plain words.
    reason: Option<&'a str>,
    /// What to do about it.
    action: Option<&'a str>,
    #[schema(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Until when Google pauses it, when it said so.
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
}

impl<'a> CredentialHealthOut<'a> {
    pub fn of(h: &'a CredentialHealth) -> Self {
        CredentialHealthOut {
            name: &h.name,
            status: &h.status,
            reason: h.reason.as_deref(),
            action: h.action.as_deref(),
            since: h.since.as_ref().map(ts),
            until: h.until.as_ref().map(ts),
        }
    }
}

/// An offering's Google Calendar: never null; `state` and the run fields appear once
/// a calendar action was taken.
#[derive(Serialize, ToSchema)]
#[schema(as = GoogleCalendar)]
pub struct GoogleCalendarOut<'a> {
    /// Google's calendar id once created.
    #[schema(required = true)]
    backend_id: Option<&'a str>,
    public: bool,
    /// Google's embed link while public.
    #[schema(required = true)]
    http_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "OK")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_success: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    last_error: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunSummaryOut>)]
    last_run: Option<Option<RunSummaryOut<'a>>>,
    /// When the calendar's busy time was last read in full; new orders are refused
    /// once it is older than `sync.max_busy_age_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    busy_read_at: Option<Option<String>>,
    /// Set while the sync waits for Google's usage limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WaitingOut>)]
    waiting: Option<Option<WaitingOut<'a>>>,
    /// The Google credential serving the offering's provider (once a calendar action
    /// was taken and a credential is configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<CredentialHealthOut<'a>>,
    /// The calendar's queued jobs: the running one first, then the pending ones by due
    /// time (present once a calendar action was taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<Vec<QueuedJobOut>>,
    /// The public iCalendar feed while the calendar is public.
    #[serde(skip_serializing_if = "Option::is_none")]
    ical_feed_url: Option<String>,
}

/// A queued job of an offering's calendar.
#[derive(Serialize, ToSchema)]
#[schema(as = QueuedJob)]
pub struct QueuedJobOut {
    /// What it does: `sync`, `share` or `unshare`.
    #[schema(example = "sync")]
    kind: &'static str,
    /// Why it was queued: `action`, `change` (a local change), `remote` (Google said
    /// something changed) or `periodic`.
    #[schema(example = "change")]
    trigger: &'static str,
    /// When it may run.
    #[schema(format = DateTime)]
    due: String,
    /// Runs started for it (a failed or interrupted run counts).
    attempts: u32,
    /// Whether it is running now.
    running: bool,
}

impl<'a> GoogleCalendarOut<'a> {
    /// The object for an offering's calendar record (none before the first action),
    /// with the public feed's URL when it is shown.
    pub fn of(cal: Option<&'a OfferingCalendar>, ical_feed_url: Option<String>) -> Self {
        GoogleCalendarOut {
            backend_id: cal.and_then(|c| c.calendar_id.as_deref()),
            public: cal.is_some_and(|c| c.public),
            http_link: cal.and_then(OfferingCalendar::http_link),
            state: cal.map(|c| c.state.as_str()),
            last_success: cal.map(|c| c.last_success.as_ref().map(ts)),
            last_error: cal.map(|c| c.last_error.as_deref()),
            last_run: cal.map(|c| c.last_run.as_ref().map(RunSummaryOut::of)),
            busy_read_at: cal.map(|c| c.busy_read_at.as_ref().map(ts)),
            waiting: cal.map(|c| {
                c.waiting.as_ref().map(|w| WaitingOut {
                    reason: &w.reason,
                    until: ts(&w.until),
                })
            }),
            credential: None,
            jobs: None,
            ical_feed_url,
        }
    }

    /// Adds the health of the credential serving the offering, shown once the
    /// offering has a calendar record (an untouched offering keeps upstream's three
    /// fields).
    #[must_use]
    pub fn with_credential(mut self, health: Option<&'a CredentialHealth>) -> Self {
        if self.state.is_some() {
            self.credential = health.map(CredentialHealthOut::of);
        }
        self
    }

    /// Adds the calendar's queued jobs (`running`: the sequence number of the running
    /// one, if any).
    pub fn with_jobs(self, jobs: &[crate::domain::jobs::Job], running: Option<u64>) -> Self {
        let jobs = jobs
            .iter()
            .map(|j| QueuedJobOut {
                kind: j.kind.as_str(),
                trigger: j.trigger.as_str(),
                due: ts(&j.due),
                attempts: j.attempts,
                running: running == Some(j.seq),
            })
            .collect();
        GoogleCalendarOut {
            jobs: Some(jobs),
            ..self
        }
    }
}

/// Fields of a booking offering shared by its two renderings.
#[derive(Serialize, ToSchema)]
#[schema(as = OfferingFields)]
pub struct OfferingFieldsOut<'a> {
    #[schema(value_type = String)]
    uuid: Id,
    #[schema(format = DateTime)]
    created: String,
    name: &'a str,
    slug: &'a str,
    description: &'a str,
    full_description: &'a str,
    customer: String,
    #[schema(value_type = String)]
    customer_uuid: Id,
    customer_name: &'a str,
    category: String,
    #[schema(value_type = String)]
    category_uuid: Id,
    category_title: &'a str,
    /// The offering's attributes, among them the availability windows `schedules`
    /// (from now on: ended windows dropped, a started one starting now).
    #[schema(value_type = Object)]
    attributes: Value,
    #[schema(value_type = Object)]
    options: EmptyObject,
    #[schema(value_type = Object)]
    resource_options: EmptyObject,
    #[schema(value_type = Vec<Value>)]
    components: EmptyList,
    #[schema(value_type = Object)]
    plugin_options: &'a Value,
    #[schema(value_type = Object)]
    account_settings: EmptyObject,
    #[schema(value_type = Object)]
    billing_period_applies: EmptyObject,
    #[schema(value_type = Object)]
    billing_mode_components: EmptyObject,
    #[schema(example = "Active")]
    state: &'static str,
    #[serde(rename = "type")]
    #[schema(example = "Marketplace.Booking")]
    kind: &'static str,
    shared: bool,
    billable: bool,
    #[schema(value_type = Vec<Value>)]
    endpoints: EmptyList,
    #[schema(value_type = Vec<Value>)]
    roles: EmptyList,
    #[schema(value_type = Vec<Value>)]
    plans: EmptyList,
    #[schema(value_type = Vec<Value>)]
    screenshots: EmptyList,
    #[schema(value_type = Vec<Value>)]
    files: EmptyList,
    #[schema(value_type = Vec<Value>)]
    quotas: EmptyList,
    #[schema(value_type = Vec<Value>)]
    organization_groups: EmptyList,
    country: &'static str,
    backend_id: &'a str,
    #[schema(value_type = Object)]
    backend_metadata: EmptyObject,
    #[schema(value_type = u64)]
    order_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    /// Where the provider manages secret owner-feed tokens (not a Waldur field).
    feed_tokens_url: String,
    /// The zone bookings are shown in (not a Waldur field).
    #[schema(example = "Europe/Tallinn")]
    time_zone: &'static str,
}

impl<'a> OfferingFieldsOut<'a> {
    fn of(o: &'a Offering, cat: &'a Related, urls: &Urls) -> Self {
        OfferingFieldsOut {
            uuid: o.id,
            created: ts(&o.created),
            name: &o.name,
            slug: &o.slug,
            description: &o.description,
            full_description: &o.full_description,
            customer: urls.of("customers", o.customer),
            customer_uuid: o.customer,
            customer_name: cat
                .customers
                .get(&o.customer)
                .map_or("", |c| c.name.as_str()),
            category: urls.of("marketplace-categories", o.category.id),
            category_uuid: o.category.id,
            category_title: &o.category.title,
            attributes: crate::domain::booking::attributes_for_view(
                &o.attributes,
                chrono::Utc::now(),
            ),
            options: EmptyObject,
            resource_options: EmptyObject,
            components: EmptyList,
            plugin_options: &o.plugin_options,
            account_settings: EmptyObject,
            billing_period_applies: EmptyObject,
            billing_mode_components: EmptyObject,
            state: o.state.as_str(),
            kind: "Marketplace.Booking",
            shared: o.shared,
            billable: o.billable,
            endpoints: EmptyList,
            roles: EmptyList,
            plans: EmptyList,
            screenshots: EmptyList,
            files: EmptyList,
            quotas: EmptyList,
            organization_groups: EmptyList,
            country: "",
            backend_id: &o.backend_id,
            backend_metadata: EmptyObject,
            order_count: cat.order_counts.get(&o.id).copied().unwrap_or(0),
            latitude: o.latitude,
            longitude: o.longitude,
            feed_tokens_url: format!("{}feed_tokens/", urls.of("booking-offerings", o.id)),
            time_zone: o.time_zone.name(),
        }
    }
}

/// A booking offering (`/api/booking-offerings/`).
#[derive(Serialize, ToSchema)]
#[schema(as = Offering)]
pub struct OfferingOut<'a> {
    url: String,
    #[serde(flatten)]
    fields: OfferingFieldsOut<'a>,
    googlecalendar: GoogleCalendarOut<'a>,
}

impl<'a> OfferingOut<'a> {
    pub fn of(
        o: &'a Offering,
        cat: &'a Related,
        urls: &Urls,
        googlecalendar: GoogleCalendarOut<'a>,
    ) -> Self {
        OfferingOut {
            url: urls.of("booking-offerings", o.id),
            fields: OfferingFieldsOut::of(o, cat, urls),
            googlecalendar,
        }
    }
}

/// The public details of an order's offering (`/api/marketplace-orders/{uuid}/offering/`).
#[derive(Serialize, ToSchema)]
#[schema(as = PublicOffering)]
pub struct PublicOfferingOut<'a> {
    url: String,
    #[serde(flatten)]
    fields: OfferingFieldsOut<'a>,
    google_calendar_is_public: bool,
    #[schema(required = true)]
    google_calendar_link: Option<String>,
}

impl<'a> PublicOfferingOut<'a> {
    pub fn of(
        o: &'a Offering,
        cat: &'a Related,
        urls: &Urls,
        cal: Option<&OfferingCalendar>,
    ) -> Self {
        PublicOfferingOut {
            url: urls.of("marketplace-public-offerings", o.id),
            fields: OfferingFieldsOut::of(o, cat, urls),
            google_calendar_is_public: cal.is_some_and(|c| c.public),
            google_calendar_link: cal.and_then(OfferingCalendar::http_link),
        }
    }
}

/// Fields shared by resources and orders that describe the offering and project.
fn offering_and_project(
    m: &mut Map<String, Value>,
    offering: Id,
    project: Id,
    cat: &Related,
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
    cat: &Related,
    urls: &Urls,
) {
    if let Some(u) = user.and_then(|id| cat.users.get(&id)) {
        m.insert(prefix.to_string(), json!(urls.of("users", u.id)));
        m.insert(format!("{prefix}_username"), json!(u.username));
        m.insert(format!("{prefix}_full_name"), json!(u.full_name));
    }
}

/// A booking resource.
/// The offering and project fields of a booking resource, borrowed from the related records.
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
pub fn resource_out<'a>(r: &'a Resource, cat: &'a Related, urls: &Urls) -> ResourceOut<'a> {
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
pub fn resource(r: &Resource, cat: &Related, urls: &Urls) -> Value {
    serde_json::to_value(resource_out(r, cat, urls)).unwrap_or_else(|_| json!({}))
}

pub fn order(o: &Order, cat: &Related, urls: &Urls) -> Value {
    let mut m = Map::new();
    offering_and_project(&mut m, o.offering, o.project, cat, urls);
    let res = cat.resource_names.get(&o.resource);
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
    put(
        "resource_name",
        json!(res.map(String::as_str).unwrap_or("")),
    );
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
