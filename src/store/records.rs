//! Versioned record types: what is written to sled.
//!
//! Every record is an internally tagged enum (`{"v":1,...}`): a new layout adds a
//! variant and a conversion, old data keeps loading. Records are converted to and
//! from the domain structs at the store boundary and never leak out of `store`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::calendar::{
    CalendarState, ExtTime, ExternalEvent, Job, JobKind, MappedEvent, OfferingCalendar, RunSummary,
    Waiting,
};
use crate::domain::jobs::Trigger;
use crate::domain::push::{Channel, Claim, Pending, PushState};
use crate::domain::{
    Category, Customer, Id, Interval, Offering, OfferingState, Order, OrderState, OrderType,
    Project, Resource, ResourceState, Slot, User,
};

macro_rules! versioned {
    ($rec:ident, $v1:ident, $domain:ty) => {
        #[derive(Serialize, Deserialize)]
        #[serde(tag = "v")]
        pub enum $rec {
            #[serde(rename = "1")]
            V1($v1),
        }
        impl From<&$domain> for $rec {
            fn from(d: &$domain) -> Self {
                $rec::V1($v1::from(d))
            }
        }
        impl From<$rec> for $domain {
            fn from(r: $rec) -> Self {
                match r {
                    $rec::V1(v) => v.into(),
                }
            }
        }
    };
}

#[derive(Serialize, Deserialize)]
pub struct UserV1 {
    id: Id,
    username: String,
    full_name: String,
    email: String,
    is_staff: bool,
    created: DateTime<Utc>,
}
impl From<&User> for UserV1 {
    fn from(u: &User) -> Self {
        UserV1 {
            id: u.id,
            username: u.username.clone(),
            full_name: u.full_name.clone(),
            email: u.email.clone(),
            is_staff: u.is_staff,
            created: u.created,
        }
    }
}
impl From<UserV1> for User {
    fn from(u: UserV1) -> Self {
        User {
            id: u.id,
            username: u.username,
            full_name: u.full_name,
            email: u.email,
            is_staff: u.is_staff,
            created: u.created,
        }
    }
}
versioned!(UserRecord, UserV1, User);

#[derive(Serialize, Deserialize)]
pub struct CustomerV1 {
    id: Id,
    name: String,
    slug: String,
    owners: Vec<Id>,
    managers: Vec<Id>,
    created: DateTime<Utc>,
}
impl From<&Customer> for CustomerV1 {
    fn from(c: &Customer) -> Self {
        CustomerV1 {
            id: c.id,
            name: c.name.clone(),
            slug: c.slug.clone(),
            owners: c.owners.clone(),
            managers: c.managers.clone(),
            created: c.created,
        }
    }
}
impl From<CustomerV1> for Customer {
    fn from(c: CustomerV1) -> Self {
        Customer {
            id: c.id,
            name: c.name,
            slug: c.slug,
            owners: c.owners,
            managers: c.managers,
            created: c.created,
        }
    }
}
versioned!(CustomerRecord, CustomerV1, Customer);

#[derive(Serialize, Deserialize)]
pub struct ProjectV1 {
    id: Id,
    customer: Id,
    name: String,
    slug: String,
    description: String,
    members: Vec<Id>,
    created: DateTime<Utc>,
}
impl From<&Project> for ProjectV1 {
    fn from(p: &Project) -> Self {
        ProjectV1 {
            id: p.id,
            customer: p.customer,
            name: p.name.clone(),
            slug: p.slug.clone(),
            description: p.description.clone(),
            members: p.members.clone(),
            created: p.created,
        }
    }
}
impl From<ProjectV1> for Project {
    fn from(p: ProjectV1) -> Self {
        Project {
            id: p.id,
            customer: p.customer,
            name: p.name,
            slug: p.slug,
            description: p.description,
            members: p.members,
            created: p.created,
        }
    }
}
versioned!(ProjectRecord, ProjectV1, Project);

#[derive(Serialize, Deserialize)]
pub struct OfferingV1 {
    id: Id,
    customer: Id,
    name: String,
    slug: String,
    description: String,
    full_description: String,
    category_id: Id,
    category_title: String,
    state: OfferingState,
    time_zone: String,
    location: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    attributes: Value,
    plugin_options: Value,
    shared: bool,
    billable: bool,
    backend_id: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
}
impl From<&Offering> for OfferingV1 {
    fn from(o: &Offering) -> Self {
        OfferingV1 {
            id: o.id,
            customer: o.customer,
            name: o.name.clone(),
            slug: o.slug.clone(),
            description: o.description.clone(),
            full_description: o.full_description.clone(),
            category_id: o.category.id,
            category_title: o.category.title.clone(),
            state: o.state,
            time_zone: o.time_zone.name().to_string(),
            location: o.location.clone(),
            latitude: o.latitude,
            longitude: o.longitude,
            attributes: o.attributes.clone(),
            plugin_options: o.plugin_options.clone(),
            shared: o.shared,
            billable: o.billable,
            backend_id: o.backend_id.clone(),
            created: o.created,
            modified: o.modified,
        }
    }
}
impl From<OfferingV1> for Offering {
    fn from(o: OfferingV1) -> Self {
        Offering {
            id: o.id,
            customer: o.customer,
            name: o.name,
            slug: o.slug,
            description: o.description,
            full_description: o.full_description,
            category: Category {
                id: o.category_id,
                title: o.category_title,
            },
            state: o.state,
            // Zones were validated on the way in; an unknown one (a newer tzdata
            // wrote it) degrades to UTC rather than failing the load.
            time_zone: o.time_zone.parse().unwrap_or(chrono_tz::UTC),
            location: o.location,
            latitude: o.latitude,
            longitude: o.longitude,
            attributes: o.attributes,
            plugin_options: o.plugin_options,
            shared: o.shared,
            billable: o.billable,
            backend_id: o.backend_id,
            created: o.created,
            modified: o.modified,
        }
    }
}
versioned!(OfferingRecord, OfferingV1, Offering);

#[derive(Serialize, Deserialize)]
pub struct SlotV1 {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    backend_id: String,
}

#[derive(Serialize, Deserialize)]
pub struct ResourceV1 {
    id: Id,
    name: String,
    slug: String,
    description: String,
    offering: Id,
    project: Id,
    state: ResourceState,
    backend_id: String,
    attributes: Value,
    slots: Vec<SlotV1>,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    created_by: Id,
    consumer_reviewed_by: Option<Id>,
    creation_order: Option<Id>,
    end_date: Option<NaiveDate>,
    error_message: String,
}
impl From<&Resource> for ResourceV1 {
    fn from(r: &Resource) -> Self {
        ResourceV1 {
            id: r.id,
            name: r.name.clone(),
            slug: r.slug.clone(),
            description: r.description.clone(),
            offering: r.offering,
            project: r.project,
            state: r.state,
            backend_id: r.backend_id.clone(),
            attributes: r.attributes.clone(),
            slots: r
                .slots
                .iter()
                .map(|s| SlotV1 {
                    start: s.start,
                    end: s.end,
                    backend_id: s.backend_id.clone(),
                })
                .collect(),
            created: r.created,
            modified: r.modified,
            created_by: r.created_by,
            consumer_reviewed_by: r.consumer_reviewed_by,
            creation_order: r.creation_order,
            end_date: r.end_date,
            error_message: r.error_message.clone(),
        }
    }
}
impl From<ResourceV1> for Resource {
    fn from(r: ResourceV1) -> Self {
        Resource {
            id: r.id,
            name: r.name,
            slug: r.slug,
            description: r.description,
            offering: r.offering,
            project: r.project,
            state: r.state,
            backend_id: r.backend_id,
            attributes: r.attributes,
            slots: r
                .slots
                .into_iter()
                .map(|s| Slot {
                    start: s.start,
                    end: s.end,
                    backend_id: s.backend_id,
                })
                .collect(),
            created: r.created,
            modified: r.modified,
            created_by: r.created_by,
            consumer_reviewed_by: r.consumer_reviewed_by,
            creation_order: r.creation_order,
            end_date: r.end_date,
            error_message: r.error_message,
        }
    }
}
versioned!(ResourceRecord, ResourceV1, Resource);

#[derive(Serialize, Deserialize)]
pub struct OrderV1 {
    id: Id,
    offering: Id,
    project: Id,
    resource: Id,
    kind: OrderType,
    state: OrderState,
    attributes: Value,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    created_by: Id,
    consumer_reviewed_by: Option<Id>,
    consumer_reviewed_at: Option<DateTime<Utc>>,
    provider_reviewed_by: Option<Id>,
    provider_reviewed_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    error_message: String,
    error_traceback: String,
    backend_id: String,
    attachment: Option<String>,
    request_comment: String,
    callback_url: String,
    start_date: Option<NaiveDate>,
    termination_comment: String,
}
impl From<&Order> for OrderV1 {
    fn from(o: &Order) -> Self {
        OrderV1 {
            id: o.id,
            offering: o.offering,
            project: o.project,
            resource: o.resource,
            kind: o.kind,
            state: o.state,
            attributes: o.attributes.clone(),
            created: o.created,
            modified: o.modified,
            created_by: o.created_by,
            consumer_reviewed_by: o.consumer_reviewed_by,
            consumer_reviewed_at: o.consumer_reviewed_at,
            provider_reviewed_by: o.provider_reviewed_by,
            provider_reviewed_at: o.provider_reviewed_at,
            completed_at: o.completed_at,
            error_message: o.error_message.clone(),
            error_traceback: o.error_traceback.clone(),
            backend_id: o.backend_id.clone(),
            attachment: o.attachment.clone(),
            request_comment: o.request_comment.clone(),
            callback_url: o.callback_url.clone(),
            start_date: o.start_date,
            termination_comment: o.termination_comment.clone(),
        }
    }
}
impl From<OrderV1> for Order {
    fn from(o: OrderV1) -> Self {
        Order {
            id: o.id,
            offering: o.offering,
            project: o.project,
            resource: o.resource,
            kind: o.kind,
            state: o.state,
            attributes: o.attributes,
            created: o.created,
            modified: o.modified,
            created_by: o.created_by,
            consumer_reviewed_by: o.consumer_reviewed_by,
            consumer_reviewed_at: o.consumer_reviewed_at,
            provider_reviewed_by: o.provider_reviewed_by,
            provider_reviewed_at: o.provider_reviewed_at,
            completed_at: o.completed_at,
            error_message: o.error_message,
            error_traceback: o.error_traceback,
            backend_id: o.backend_id,
            attachment: o.attachment,
            request_comment: o.request_comment,
            callback_url: o.callback_url,
            start_date: o.start_date,
            termination_comment: o.termination_comment,
        }
    }
}
versioned!(OrderRecord, OrderV1, Order);

/// A busy interval imported from an external calendar event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusySlotV1 {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The external event it came from (recurring instances: the parent id).
    pub source_event_id: String,
}

/// One offering's busy slots, replaced as a whole (one generation at a time).
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum BusyRecord {
    #[serde(rename = "1")]
    V1 {
        generation: u64,
        slots: Vec<BusySlotV1>,
    },
}

impl BusyRecord {
    pub fn intervals(&self) -> Vec<Interval> {
        match self {
            BusyRecord::V1 { slots, .. } => slots
                .iter()
                .map(|s| Interval::new(s.start, s.end))
                .collect(),
        }
    }
}

// ---- The Google side: calendar records, jobs, the slot mapping, external events.
// Field names and enum spellings are those the first layout wrote (it serialised the
// domain structs themselves), so stored data keeps loading.

#[derive(Serialize, Deserialize)]
pub enum CalendarStateV1 {
    #[serde(rename = "Creation Scheduled")]
    CreationScheduled,
    Creating,
    #[serde(rename = "Update Scheduled")]
    UpdateScheduled,
    Updating,
    #[serde(rename = "OK")]
    Ok,
    Erred,
}

impl From<CalendarState> for CalendarStateV1 {
    fn from(s: CalendarState) -> Self {
        match s {
            CalendarState::CreationScheduled => CalendarStateV1::CreationScheduled,
            CalendarState::Creating => CalendarStateV1::Creating,
            CalendarState::UpdateScheduled => CalendarStateV1::UpdateScheduled,
            CalendarState::Updating => CalendarStateV1::Updating,
            CalendarState::Ok => CalendarStateV1::Ok,
            CalendarState::Erred => CalendarStateV1::Erred,
        }
    }
}

impl From<CalendarStateV1> for CalendarState {
    fn from(s: CalendarStateV1) -> Self {
        match s {
            CalendarStateV1::CreationScheduled => CalendarState::CreationScheduled,
            CalendarStateV1::Creating => CalendarState::Creating,
            CalendarStateV1::UpdateScheduled => CalendarState::UpdateScheduled,
            CalendarStateV1::Updating => CalendarState::Updating,
            CalendarStateV1::Ok => CalendarState::Ok,
            CalendarStateV1::Erred => CalendarState::Erred,
        }
    }
}

/// For `skip_serializing_if` (serde passes a reference).
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
pub struct RunSummaryV1 {
    started: Option<DateTime<Utc>>,
    duration_ms: u64,
    created: u32,
    updated: u32,
    deleted: u32,
    adopted: u32,
    busy_slots: u32,
    warnings: Vec<String>,
    api_calls: u64,
    full_listing: bool,
    /// Added after V1 was first written: absent in older documents (and left out
    /// when zero, so an older document is written back as it was).
    #[serde(default, skip_serializing_if = "is_zero")]
    deferred: u32,
}

impl From<&RunSummary> for RunSummaryV1 {
    fn from(r: &RunSummary) -> Self {
        RunSummaryV1 {
            started: r.started,
            duration_ms: r.duration_ms,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            adopted: r.adopted,
            busy_slots: r.busy_slots,
            warnings: r.warnings.clone(),
            api_calls: r.api_calls,
            full_listing: r.full_listing,
            deferred: r.deferred,
        }
    }
}

impl From<RunSummaryV1> for RunSummary {
    fn from(r: RunSummaryV1) -> Self {
        RunSummary {
            started: r.started,
            duration_ms: r.duration_ms,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            adopted: r.adopted,
            busy_slots: r.busy_slots,
            warnings: r.warnings,
            api_calls: r.api_calls,
            full_listing: r.full_listing,
            deferred: r.deferred,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct WaitingV1 {
    reason: String,
    until: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
pub struct CalendarV1 {
    offering: Id,
    calendar_id: Option<String>,
    public: bool,
    state: CalendarStateV1,
    sync_token: Option<String>,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_run: Option<RunSummaryV1>,
    failures: u32,
    synced_name: Option<String>,
    /// Added after V1 was first written: absent in older documents (and left out
    /// when unset, so an older document is written back as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting: Option<WaitingV1>,
    /// Added after V1 was first written, like `waiting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    busy_read_at: Option<DateTime<Utc>>,
}
impl From<&OfferingCalendar> for CalendarV1 {
    fn from(c: &OfferingCalendar) -> Self {
        CalendarV1 {
            offering: c.offering,
            calendar_id: c.calendar_id.clone(),
            public: c.public,
            state: c.state.into(),
            sync_token: c.sync_token.clone(),
            last_success: c.last_success,
            last_error: c.last_error.clone(),
            last_run: c.last_run.as_ref().map(RunSummaryV1::from),
            failures: c.failures,
            synced_name: c.synced_name.clone(),
            waiting: c.waiting.as_ref().map(|w| WaitingV1 {
                reason: w.reason.clone(),
                until: w.until,
            }),
            busy_read_at: c.busy_read_at,
        }
    }
}
impl From<CalendarV1> for OfferingCalendar {
    fn from(c: CalendarV1) -> Self {
        OfferingCalendar {
            offering: c.offering,
            calendar_id: c.calendar_id,
            public: c.public,
            state: c.state.into(),
            sync_token: c.sync_token,
            last_success: c.last_success,
            last_error: c.last_error,
            last_run: c.last_run.map(RunSummary::from),
            failures: c.failures,
            synced_name: c.synced_name,
            waiting: c.waiting.map(|w| Waiting {
                reason: w.reason,
                until: w.until,
            }),
            busy_read_at: c.busy_read_at,
        }
    }
}
versioned!(CalendarRecord, CalendarV1, OfferingCalendar);

#[derive(Clone, Copy, Serialize, Deserialize)]
pub enum JobKindV1 {
    Sync,
    Share,
    Unshare,
}

impl From<JobKindV1> for JobKind {
    fn from(k: JobKindV1) -> Self {
        match k {
            JobKindV1::Sync => JobKind::Sync,
            JobKindV1::Share => JobKind::Share,
            JobKindV1::Unshare => JobKind::Unshare,
        }
    }
}

impl From<JobKind> for JobKindV1 {
    fn from(k: JobKind) -> Self {
        match k {
            JobKind::Sync => JobKindV1::Sync,
            JobKind::Share => JobKindV1::Share,
            JobKind::Unshare => JobKindV1::Unshare,
        }
    }
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerV2 {
    Action,
    Change,
    Remote,
    Periodic,
}

impl From<TriggerV2> for Trigger {
    fn from(t: TriggerV2) -> Self {
        match t {
            TriggerV2::Action => Trigger::Action,
            TriggerV2::Change => Trigger::Change,
            TriggerV2::Remote => Trigger::Remote,
            TriggerV2::Periodic => Trigger::Periodic,
        }
    }
}

impl From<Trigger> for TriggerV2 {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Action => TriggerV2::Action,
            Trigger::Change => TriggerV2::Change,
            Trigger::Remote => TriggerV2::Remote,
            Trigger::Periodic => TriggerV2::Periodic,
        }
    }
}

/// A job as the first layout wrote it: queued by an action, due when created.
#[derive(Serialize, Deserialize)]
pub struct JobV1 {
    seq: u64,
    offering: Id,
    kind: JobKindV1,
    created: DateTime<Utc>,
    attempts: u32,
}

/// A job with its due time, why it was queued and its hold (the sequence number is
/// the key).
#[derive(Serialize, Deserialize)]
pub struct JobV2 {
    offering: Id,
    kind: JobKindV1,
    trigger: TriggerV2,
    created: DateTime<Utc>,
    due: DateTime<Utc>,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_until: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum JobRecord {
    #[serde(rename = "1")]
    V1(JobV1),
    #[serde(rename = "2")]
    V2(JobV2),
}

impl From<&Job> for JobRecord {
    fn from(j: &Job) -> Self {
        JobRecord::V2(JobV2 {
            offering: j.offering,
            kind: j.kind.into(),
            trigger: j.trigger.into(),
            created: j.created,
            due: j.due,
            attempts: j.attempts,
            hold_until: j.hold_until,
        })
    }
}

impl JobRecord {
    /// The job stored under sequence number `seq`.
    pub fn job(self, seq: u64) -> Job {
        match self {
            JobRecord::V1(j) => Job {
                seq,
                offering: j.offering,
                kind: j.kind.into(),
                trigger: Trigger::Action,
                created: j.created,
                due: j.created,
                attempts: j.attempts,
                hold_until: None,
            },
            JobRecord::V2(j) => Job {
                seq,
                offering: j.offering,
                kind: j.kind.into(),
                trigger: j.trigger.into(),
                created: j.created,
                due: j.due,
                attempts: j.attempts,
                hold_until: j.hold_until,
            },
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct MappedV1 {
    event_id: String,
    fingerprint: String,
    etag: Option<String>,
    needs_push: bool,
    /// Added after V1 was first written: absent in older documents.
    #[serde(default)]
    remote: Option<String>,
}
impl From<&MappedEvent> for MappedV1 {
    fn from(m: &MappedEvent) -> Self {
        MappedV1 {
            event_id: m.event_id.clone(),
            fingerprint: m.fingerprint.clone(),
            etag: m.etag.clone(),
            needs_push: m.needs_push,
            remote: m.remote.clone(),
        }
    }
}
impl From<MappedV1> for MappedEvent {
    fn from(m: MappedV1) -> Self {
        MappedEvent {
            event_id: m.event_id,
            fingerprint: m.fingerprint,
            etag: m.etag,
            needs_push: m.needs_push,
            remote: m.remote,
        }
    }
}
versioned!(MappedRecord, MappedV1, MappedEvent);

#[derive(Serialize, Deserialize)]
pub enum ExtTimeV1 {
    Instant {
        at: DateTime<Utc>,
        tz: Option<String>,
    },
    Date(NaiveDate),
}
impl From<&ExtTime> for ExtTimeV1 {
    fn from(t: &ExtTime) -> Self {
        match t {
            ExtTime::Instant { at, tz } => ExtTimeV1::Instant {
                at: *at,
                tz: tz.clone(),
            },
            ExtTime::Date(d) => ExtTimeV1::Date(*d),
        }
    }
}
impl From<ExtTimeV1> for ExtTime {
    fn from(t: ExtTimeV1) -> Self {
        match t {
            ExtTimeV1::Instant { at, tz } => ExtTime::Instant { at, tz },
            ExtTimeV1::Date(d) => ExtTime::Date(d),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct ExternalV1 {
    id: String,
    status: String,
    transparent: bool,
    declined: bool,
    event_type: Option<String>,
    start: Option<ExtTimeV1>,
    end: Option<ExtTimeV1>,
    recurrence: Vec<String>,
    recurring_event_id: Option<String>,
    original_start: Option<ExtTimeV1>,
    /// Added after the first layout: absent in records written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
}
impl From<&ExternalEvent> for ExternalV1 {
    fn from(e: &ExternalEvent) -> Self {
        ExternalV1 {
            id: e.id.clone(),
            status: e.status.clone(),
            transparent: e.transparent,
            declined: e.declined,
            event_type: e.event_type.clone(),
            start: e.start.as_ref().map(ExtTimeV1::from),
            end: e.end.as_ref().map(ExtTimeV1::from),
            recurrence: e.recurrence.clone(),
            recurring_event_id: e.recurring_event_id.clone(),
            original_start: e.original_start.as_ref().map(ExtTimeV1::from),
            summary: e.summary.clone(),
        }
    }
}
impl From<ExternalV1> for ExternalEvent {
    fn from(e: ExternalV1) -> Self {
        ExternalEvent {
            id: e.id,
            status: e.status,
            transparent: e.transparent,
            declined: e.declined,
            event_type: e.event_type,
            start: e.start.map(ExtTime::from),
            end: e.end.map(ExtTime::from),
            recurrence: e.recurrence,
            recurring_event_id: e.recurring_event_id,
            original_start: e.original_start.map(ExtTime::from),
            summary: e.summary,
        }
    }
}

/// The external events of one offering's calendar, replaced as a whole.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum ExternalsRecord {
    #[serde(rename = "1")]
    V1 { events: Vec<ExternalV1> },
}

impl ExternalsRecord {
    pub fn of(events: &[ExternalEvent]) -> Self {
        ExternalsRecord::V1 {
            events: events.iter().map(ExternalV1::from).collect(),
        }
    }
    pub fn events(self) -> Vec<ExternalEvent> {
        match self {
            ExternalsRecord::V1 { events } => events.into_iter().map(ExternalEvent::from).collect(),
        }
    }
}

pub use crate::domain::Attachment;

#[derive(Serialize, Deserialize)]
pub struct AttachmentV1 {
    name: String,
    content_type: String,
    data_b64: String,
}
impl From<&Attachment> for AttachmentV1 {
    fn from(a: &Attachment) -> Self {
        use base64::Engine;
        AttachmentV1 {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            data_b64: base64::engine::general_purpose::STANDARD.encode(&a.data),
        }
    }
}
impl AttachmentV1 {
    fn into_attachment(self) -> Option<Attachment> {
        use base64::Engine;
        Some(Attachment {
            name: self.name,
            content_type: self.content_type,
            data: base64::engine::general_purpose::STANDARD
                .decode(self.data_b64)
                .ok()?,
        })
    }
}

/// An attachment record. The first layout was written without a version tag, so a
/// record without one is read as that layout.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttachmentRecord {
    Versioned(VersionedAttachment),
    Untagged(AttachmentV1),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum VersionedAttachment {
    #[serde(rename = "1")]
    V1(AttachmentV1),
}

impl AttachmentRecord {
    pub fn of(a: &Attachment) -> Self {
        AttachmentRecord::Versioned(VersionedAttachment::V1(AttachmentV1::from(a)))
    }
    /// The attachment, or `None` when its data is not valid base64.
    pub fn attachment(self) -> Option<Attachment> {
        match self {
            AttachmentRecord::Versioned(VersionedAttachment::V1(a))
            | AttachmentRecord::Untagged(a) => a.into_attachment(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct ChannelV1 {
    id: String,
    resource_id: String,
    calendar_id: String,
    token_hash: String,
    address: String,
    created: DateTime<Utc>,
    expiration: DateTime<Utc>,
    last_message: u64,
}

#[derive(Serialize, Deserialize)]
pub struct PushV1 {
    offering: Id,
    channel: Option<ChannelV1>,
    received: u64,
    ignored: u64,
    last_notification: Option<DateTime<Utc>>,
    last_error: Option<String>,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    /// Absent in records written before unsharing stopped channels.
    #[serde(default)]
    unshared: bool,
    /// Absent in records written before replicas shared channel upkeep.
    #[serde(default)]
    claim: Option<ClaimV1>,
    /// Absent in records written before channels were recorded ahead of the watch.
    #[serde(default)]
    pending: Option<PendingV1>,
}

#[derive(Serialize, Deserialize)]
pub struct PendingV1 {
    id: String,
    token_hash: String,
}

#[derive(Serialize, Deserialize)]
pub struct ClaimV1 {
    token: String,
    until: DateTime<Utc>,
}

impl From<&PushState> for PushV1 {
    fn from(p: &PushState) -> Self {
        PushV1 {
            offering: p.offering,
            channel: p.channel.as_ref().map(|c| ChannelV1 {
                id: c.id.clone(),
                resource_id: c.resource_id.clone(),
                calendar_id: c.calendar_id.clone(),
                token_hash: c.token_hash.clone(),
                address: c.address.clone(),
                created: c.created,
                expiration: c.expiration,
                last_message: c.last_message,
            }),
            received: p.received,
            ignored: p.ignored,
            last_notification: p.last_notification,
            last_error: p.last_error.clone(),
            failures: p.failures,
            retry_at: p.retry_at,
            unshared: p.unshared,
            claim: p.claim.as_ref().map(|c| ClaimV1 {
                token: c.token.clone(),
                until: c.until,
            }),
            pending: p.pending.as_ref().map(|c| PendingV1 {
                id: c.id.clone(),
                token_hash: c.token_hash.clone(),
            }),
        }
    }
}
impl From<PushV1> for PushState {
    fn from(p: PushV1) -> Self {
        PushState {
            offering: p.offering,
            channel: p.channel.map(|c| Channel {
                id: c.id,
                resource_id: c.resource_id,
                calendar_id: c.calendar_id,
                token_hash: c.token_hash,
                address: c.address,
                created: c.created,
                expiration: c.expiration,
                last_message: c.last_message,
            }),
            received: p.received,
            ignored: p.ignored,
            last_notification: p.last_notification,
            last_error: p.last_error,
            failures: p.failures,
            retry_at: p.retry_at,
            unshared: p.unshared,
            claim: p.claim.map(|c| Claim {
                token: c.token,
                until: c.until,
            }),
            pending: p.pending.map(|c| Pending {
                id: c.id,
                token_hash: c.token_hash,
            }),
        }
    }
}
versioned!(PushRecord, PushV1, PushState);
#[cfg(test)]
mod sync_record_tests {
    use super::*;

    #[test]
    fn sync_records_written_before_the_usage_limit_fields_still_read() {
        let mut cal = OfferingCalendar::new(Id::new_v4());
        cal.last_run = Some(RunSummary {
            created: 2,
            ..RunSummary::default()
        });
        // A document as written before the fields existed.
        let mut old = serde_json::to_value(CalendarRecord::from(&cal)).unwrap_or_default();
        if let Some(m) = old.as_object_mut() {
            m.remove("waiting");
            m.remove("busy_read_at");
        }
        if let Some(m) = old["last_run"].as_object_mut() {
            m.remove("deferred");
        }
        let read: Option<OfferingCalendar> = serde_json::from_value::<CalendarRecord>(old)
            .ok()
            .map(Into::into);
        assert_eq!(read, Some(cal));
        let m = MappedEvent {
            event_id: "bcxyz".into(),
            fingerprint: "f".into(),
            etag: None,
            needs_push: false,
            remote: None,
        };
        let mut old = serde_json::to_value(MappedRecord::from(&m)).unwrap_or_default();
        if let Some(o) = old.as_object_mut() {
            o.remove("remote");
        }
        let read: Option<MappedEvent> = serde_json::from_value::<MappedRecord>(old)
            .ok()
            .map(Into::into);
        assert_eq!(read, Some(m));
    }
}
