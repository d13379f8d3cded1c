//! The entities of the booking slice, as the API and the sync engine use them.
//!
//! The store persists them through its own versioned record types
//! (`store::records`), so these can change without breaking stored data.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::{Id, Interval, OfferingState, OrderState, OrderType, ResourceState};

/// A person who can log in with an API token.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: Id,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub is_staff: bool,
    pub created: DateTime<Utc>,
}

/// An organisation: a service provider (offers offerings) or a client (has projects).
#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: Id,
    pub name: String,
    pub slug: String,
    pub owners: Vec<Id>,
    pub managers: Vec<Id>,
    pub created: DateTime<Utc>,
}

/// A project of a client organisation; its members may book.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    pub id: Id,
    pub customer: Id,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub members: Vec<Id>,
    pub created: DateTime<Utc>,
}

/// The marketplace category an offering belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Category {
    pub id: Id,
    pub title: String,
}

/// A bookable offering (type `Marketplace.Booking`).
#[derive(Clone, Debug, PartialEq)]
pub struct Offering {
    pub id: Id,
    /// The provider organisation.
    pub customer: Id,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub full_description: String,
    pub category: Category,
    pub state: OfferingState,
    /// IANA zone of the offering (its calendar and feeds use it).
    pub time_zone: chrono_tz::Tz,
    pub location: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Free-form attributes; `schedules` holds the availability windows.
    pub attributes: Value,
    pub plugin_options: Value,
    pub shared: bool,
    pub billable: bool,
    pub backend_id: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

impl Offering {
    /// The availability windows from `attributes.schedules` (items that do not parse
    /// are ignored: they cannot make anything bookable).
    pub fn availability(&self) -> Vec<Interval> {
        let Some(Value::Array(items)) = self.attributes.get("schedules") else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|it| {
                let s = super::booking::parse_schedule_time(it.get("start")?).ok()?;
                let e = super::booking::parse_schedule_time(it.get("end")?).ok()?;
                Some(Interval::new(s, e))
            })
            .filter(Interval::is_valid)
            .collect()
    }
}

/// One booked time slot of a booking resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Stable identity of the slot (`booking_<hex>`), also the source of its event id.
    pub backend_id: String,
}

impl Slot {
    pub fn interval(&self) -> Interval {
        Interval::new(self.start, self.end)
    }
}

/// A booking: a marketplace resource of a booking offering.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub id: Id,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub offering: Id,
    pub project: Id,
    pub state: ResourceState,
    pub backend_id: String,
    pub attributes: Value,
    pub slots: Vec<Slot>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub consumer_reviewed_by: Option<Id>,
    pub creation_order: Option<Id>,
    pub end_date: Option<NaiveDate>,
    pub error_message: String,
}

/// A marketplace order (for bookings: type Create with `attributes.schedules`).
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub id: Id,
    pub offering: Id,
    pub project: Id,
    pub resource: Id,
    pub kind: OrderType,
    pub state: OrderState,
    pub attributes: Value,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Id,
    pub consumer_reviewed_by: Option<Id>,
    pub consumer_reviewed_at: Option<DateTime<Utc>>,
    pub provider_reviewed_by: Option<Id>,
    pub provider_reviewed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error_message: String,
    pub error_traceback: String,
    pub backend_id: String,
    /// Name of the stored attachment, if any.
    pub attachment: Option<String>,
    pub request_comment: String,
    pub callback_url: String,
    pub start_date: Option<NaiveDate>,
    pub termination_comment: String,
}

impl Order {
    /// The intervals this order requests (from `attributes.schedules`).
    pub fn requested(&self) -> Vec<Interval> {
        super::booking::parse_schedules(self.attributes.get("schedules")).unwrap_or_default()
    }
}

/// An order's attachment: the uploaded file as the API received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}
