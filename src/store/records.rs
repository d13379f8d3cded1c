//! Versioned record types: what is written to sled.
//!
//! Every record is an internally tagged enum (`{"v":1,...}`): a new layout adds a
//! variant and a conversion, old data keeps loading. Records are converted to and
//! from the domain structs at the store boundary and never leak out of `store`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
