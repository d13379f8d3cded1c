//! JSON renderings of offerings, booking resources and orders, with Waldur's field
//! names. Fields the client cannot take as `null` are always present with a value;
//! fields we do not model are left out (the client treats them as unset).

use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::Serialize;
use serde_json::{json, Value};
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

/// What accept, reject and terminate answer.
#[derive(Serialize, ToSchema)]
pub struct OrderUuid {
    /// The order the action completed (accept, reject: the booking's Create order;
    /// terminate: the new Terminate order). Never null.
    #[schema(value_type = String)]
    order_uuid: Id,
}

impl OrderUuid {
    pub fn new(order_uuid: Id) -> Self {
        OrderUuid { order_uuid }
    }
}

/// `{"status": "..."}`.
#[derive(Serialize, ToSchema)]
pub struct StatusMessage<'a> {
    status: &'a str,
}

impl<'a> StatusMessage<'a> {
    pub fn new(status: &'a str) -> Self {
        StatusMessage { status }
    }
}

/// What an attachment upload answers.
// `attachment` is the download URL, or null when the upload held no file.
#[derive(Serialize, ToSchema)]
pub struct AttachmentUrl {
    attachment: Option<String>,
}

impl AttachmentUrl {
    pub fn new(attachment: Option<String>) -> Self {
        AttachmentUrl { attachment }
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
    /// Google push notifications for this calendar (present once a watch channel
    /// was attempted).
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<PushOut>,
}

/// The push-notification channel of an offering's calendar.
#[derive(Serialize, ToSchema)]
#[schema(as = PushChannel)]
pub struct PushOut {
    /// A watch channel is open and not expired: Google's changes arrive in seconds
    /// and periodic polling slows down.
    active: bool,
    /// When the channel expires (it is renewed before).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    expires_at: Option<String>,
    /// When the last notification that queued a sync arrived.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    last_notification: Option<String>,
    /// Notifications that queued a sync.
    notifications_received: u64,
    /// Notifications answered without a sync (`sync` messages, repeated numbers).
    notifications_ignored: u64,
    /// Why the last attempt to open a channel failed.
    #[schema(required = true)]
    last_error: Option<String>,
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
            push: None,
        }
    }

    /// Adds the calendar's push-notification channel as of `now`.
    pub fn with_push(self, state: &crate::domain::push::PushState, now: DateTime<Utc>) -> Self {
        GoogleCalendarOut {
            push: Some(PushOut {
                active: state.healthy(now),
                expires_at: state.channel.as_ref().map(|c| ts(&c.expiration)),
                last_notification: state.last_notification.as_ref().map(ts),
                notifications_received: state.received,
                notifications_ignored: state.ignored,
                last_error: state.last_error.clone(),
            }),
            ..self
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

/// Offering and project fields that resources and orders share.
// Borrowed from the catalog.
#[derive(Serialize, ToSchema)]
#[schema(as = OfferingAndProject)]
pub struct OfferingProjectOut<'a> {
    offering: String,
    offering_name: &'a str,
    #[schema(value_type = String)]
    offering_uuid: Id,
    offering_description: &'a str,
    offering_type: &'static str,
    offering_shared: bool,
    offering_billable: bool,
    #[schema(value_type = Object)]
    offering_plugin_options: &'a Value,
    offering_slug: &'a str,
    provider_name: &'a str,
    #[schema(value_type = String)]
    provider_uuid: Id,
    provider_slug: &'a str,
    category_title: &'a str,
    #[schema(value_type = String)]
    category_uuid: Id,
    project: String,
    #[schema(value_type = String)]
    project_uuid: Id,
    project_name: &'a str,
    project_description: &'a str,
    project_slug: &'a str,
    #[schema(value_type = String)]
    customer_uuid: Id,
    customer_name: &'a str,
    customer_slug: &'a str,
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

impl<'a> OfferingProjectOut<'a> {
    /// The fields for `offering` and `project`; ids the catalog does not hold (never
    /// in a consistent store) leave names empty.
    fn of(offering: Id, project: Id, cat: &'a Related, urls: &Urls) -> Self {
        let off = cat.offerings.get(&offering);
        let prov = off.and_then(|o| cat.customers.get(&o.customer));
        let proj = cat.projects.get(&project);
        let cust = proj.and_then(|p| cat.customers.get(&p.customer));
        OfferingProjectOut {
            offering: urls.of("marketplace-public-offerings", offering),
            offering_name: off.map_or("", |o| o.name.as_str()),
            offering_uuid: offering,
            offering_description: off.map_or("", |o| o.description.as_str()),
            offering_type: "Marketplace.Booking",
            offering_shared: off.is_some_and(|o| o.shared),
            offering_billable: off.is_some_and(|o| o.billable),
            offering_plugin_options: off.map_or(&EMPTY_OBJECT, |o| &o.plugin_options),
            offering_slug: off.map_or("", |o| o.slug.as_str()),
            provider_name: prov.map_or("", |c| c.name.as_str()),
            provider_uuid: off.map_or(offering, |o| o.customer),
            provider_slug: prov.map_or("", |c| c.slug.as_str()),
            category_title: off.map_or("", |o| o.category.title.as_str()),
            category_uuid: off.map_or(offering, |o| o.category.id),
            project: urls.of("projects", project),
            project_uuid: project,
            project_name: proj.map_or("", |p| p.name.as_str()),
            project_description: proj.map_or("", |p| p.description.as_str()),
            project_slug: proj.map_or("", |p| p.slug.as_str()),
            customer_uuid: proj.map_or(project, |p| p.customer),
            customer_name: cust.map_or("", |c| c.name.as_str()),
            customer_slug: cust.map_or("", |c| c.slug.as_str()),
        }
    }
}

/// One booked slot: a half-open interval `[start, end)`.
#[derive(Serialize, ToSchema)]
#[schema(as = Slot)]
pub struct SlotOut<'a> {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    /// The slot's id in Google Calendar terms (`booking_<hex>`).
    backend_id: &'a str,
}

/// A user named by a booking or an order, as three fields (`created_by`,
/// `created_by_username`, `created_by_full_name`), all absent when there is none.
struct Named<'a> {
    url: Option<String>,
    username: Option<&'a str>,
    full_name: Option<&'a str>,
}

impl<'a> Named<'a> {
    /// `user`, with its URL as the first field (a resource's users, an order's creator).
    fn with_url(user: Option<Id>, cat: &'a Related, urls: &Urls) -> Self {
        let u = user.and_then(|id| cat.users.get(&id));
        Named {
            url: u.map(|u| urls.of("users", u.id)),
            username: u.map(|u| u.username.as_str()),
            full_name: u.map(|u| u.full_name.as_str()),
        }
    }

    /// `user`, with its username as the first field (an order's reviewers, as
    /// upstream's order serializer names them).
    fn with_username(user: Option<Id>, cat: &'a Related) -> Self {
        let u = user.and_then(|id| cat.users.get(&id));
        Named {
            url: u.map(|u| u.username.clone()),
            username: u.map(|u| u.username.as_str()),
            full_name: u.map(|u| u.full_name.as_str()),
        }
    }
}

/// A booking resource with its slots (`/api/booking-resources/`).
// Serialised straight from the record and the catalog, with no intermediate `Value`:
// building one was most of a list page's cost.
#[derive(Serialize, ToSchema)]
#[schema(as = BookingResource)]
pub struct ResourceOut<'a> {
    #[serde(flatten)]
    offering_and_project: OfferingProjectOut<'a>,
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    #[schema(value_type = String)]
    resource_uuid: Id,
    name: &'a str,
    slug: &'a str,
    description: &'a str,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime)]
    modified: String,
    #[schema(format = DateTime)]
    last_sync: String,
    #[schema(example = "Creating")]
    state: &'static str,
    backend_id: &'a str,
    effective_id: &'static str,
    resource_type: &'static str,
    /// The order's attributes: `name`, `schedules` and whatever the client sent.
    #[schema(value_type = Object)]
    attributes: &'a Value,
    #[schema(value_type = Object)]
    limits: EmptyObject,
    #[schema(value_type = Object)]
    current_usages: EmptyObject,
    #[schema(value_type = Object)]
    limit_usage: EmptyObject,
    usage_limit_restriction: &'static str,
    #[schema(value_type = Object)]
    backend_metadata: EmptyObject,
    #[schema(value_type = String)]
    parent_offering_uuid: Id,
    #[schema(value_type = String)]
    parent_uuid: Id,
    #[schema(value_type = String)]
    service_settings_uuid: Id,
    offering_state: &'static str,
    #[schema(value_type = Object)]
    offering_account_settings: EmptyObject,
    is_usage_based: bool,
    is_limit_based: bool,
    can_terminate: bool,
    downscaled: bool,
    restrict_member_access: bool,
    paused: bool,
    #[schema(value_type = Vec<Value>)]
    endpoints: EmptyList,
    #[schema(value_type = Vec<Value>)]
    report: EmptyList,
    error_message: &'a str,
    error_traceback: &'static str,
    #[schema(value_type = Vec<Value>)]
    available_actions: EmptyList,
    #[schema(required = true, format = Date)]
    end_date: Option<String>,
    slots: Vec<SlotOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by_full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_full_name: Option<&'a str>,
}

impl<'a> ResourceOut<'a> {
    pub fn of(r: &'a Resource, cat: &'a Related, urls: &Urls) -> Self {
        let creator = Named::with_url(Some(r.created_by), cat, urls);
        let reviewer = Named::with_url(r.consumer_reviewed_by, cat, urls);
        ResourceOut {
            offering_and_project: OfferingProjectOut::of(r.offering, r.project, cat, urls),
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
            limits: EmptyObject,
            current_usages: EmptyObject,
            limit_usage: EmptyObject,
            usage_limit_restriction: "",
            backend_metadata: EmptyObject,
            parent_offering_uuid: r.offering,
            parent_uuid: r.id,
            service_settings_uuid: r.offering,
            offering_state: cat
                .offerings
                .get(&r.offering)
                .map_or("Active", |o| o.state.as_str()),
            offering_account_settings: EmptyObject,
            is_usage_based: false,
            is_limit_based: false,
            can_terminate: false,
            downscaled: false,
            restrict_member_access: false,
            paused: false,
            endpoints: EmptyList,
            report: EmptyList,
            error_message: &r.error_message,
            error_traceback: "",
            available_actions: EmptyList,
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
            created_by: creator.url,
            created_by_username: creator.username,
            created_by_full_name: creator.full_name,
            consumer_reviewed_by: reviewer.url,
            consumer_reviewed_by_username: reviewer.username,
            consumer_reviewed_by_full_name: reviewer.full_name,
        }
    }
}

/// A marketplace order (`/api/marketplace-orders/`).
// Serialised like `ResourceOut`: straight from the record and the catalog.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderOut<'a> {
    #[serde(flatten)]
    offering_and_project: OfferingProjectOut<'a>,
    url: String,
    #[schema(value_type = String)]
    uuid: Id,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime)]
    modified: String,
    #[schema(example = "pending-provider")]
    state: &'static str,
    #[serde(rename = "type")]
    #[schema(example = "Create")]
    kind: &'static str,
    #[schema(value_type = Object)]
    attributes: &'a Value,
    #[schema(value_type = Object)]
    limits: EmptyObject,
    #[schema(value_type = String)]
    marketplace_resource_uuid: Id,
    #[schema(value_type = String)]
    resource_uuid: Id,
    resource_type: &'static str,
    resource_name: &'a str,
    cost: &'static str,
    output: &'static str,
    error_message: &'a str,
    error_traceback: &'a str,
    backend_id: &'a str,
    request_comment: &'a str,
    termination_comment: &'a str,
    can_terminate: bool,
    #[schema(required = true, format = DateTime)]
    completed_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    consumer_reviewed_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    provider_reviewed_at: Option<String>,
    #[schema(required = true, format = Date)]
    start_date: Option<String>,
    /// The attachment's download URL, if one was uploaded.
    #[schema(required = true)]
    attachment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by_full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_reviewed_by_full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_reviewed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_reviewed_by_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_reviewed_by_full_name: Option<&'a str>,
}

impl<'a> OrderOut<'a> {
    pub fn of(o: &'a Order, cat: &'a Related, urls: &Urls) -> Self {
        let url = urls.of("marketplace-orders", o.id);
        let creator = Named::with_url(Some(o.created_by), cat, urls);
        let consumer = Named::with_username(o.consumer_reviewed_by, cat);
        let provider = Named::with_username(o.provider_reviewed_by, cat);
        OrderOut {
            offering_and_project: OfferingProjectOut::of(o.offering, o.project, cat, urls),
            attachment: o.attachment.as_ref().map(|_| format!("{url}attachment/")),
            url,
            uuid: o.id,
            created: ts(&o.created),
            modified: ts(&o.modified),
            state: o.state.as_str(),
            kind: o.kind.as_str(),
            attributes: &o.attributes,
            limits: EmptyObject,
            marketplace_resource_uuid: o.resource,
            resource_uuid: o.resource,
            resource_type: "Marketplace.Booking",
            resource_name: cat
                .resource_names
                .get(&o.resource)
                .map_or("", String::as_str),
            cost: "0.0000000000",
            output: "",
            error_message: &o.error_message,
            error_traceback: &o.error_traceback,
            backend_id: &o.backend_id,
            request_comment: &o.request_comment,
            termination_comment: &o.termination_comment,
            can_terminate: false,
            completed_at: o.completed_at.as_ref().map(ts),
            consumer_reviewed_at: o.consumer_reviewed_at.as_ref().map(ts),
            provider_reviewed_at: o.provider_reviewed_at.as_ref().map(ts),
            start_date: o.start_date.map(|d| d.to_string()),
            callback_url: (!o.callback_url.is_empty()).then_some(o.callback_url.as_str()),
            created_by: creator.url,
            created_by_username: creator.username,
            created_by_full_name: creator.full_name,
            consumer_reviewed_by: consumer.url,
            consumer_reviewed_by_username: consumer.username,
            consumer_reviewed_by_full_name: consumer.full_name,
            provider_reviewed_by: provider.url,
            provider_reviewed_by_username: provider.username,
            provider_reviewed_by_full_name: provider.full_name,
        }
    }
}
