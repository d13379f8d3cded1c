//! The booking domain: parsed identifiers, states, intervals and the booking rules.
//!
//! Everything here is pure (no I/O, no clock reads: "now" is a parameter) so that
//! the rules can be tested as tables. The store keeps its own versioned record types;
//! the API and the sync engine speak in these.

pub mod booking;
pub mod booking_text;
pub mod calendar;
pub mod event_id;
pub mod format;
pub mod interval;
pub mod jobs;
pub mod lifecycle;
pub mod model;
pub mod push;
pub mod search;
pub mod states;
pub mod uuid;

pub use booking::{check_schedules, BookingError, Occupied, OccupiedKind};
pub use event_id::{legacy_event_id, EventId};
pub use interval::Interval;
pub use model::{Attachment, Category, Customer, Offering, Order, Project, Resource, Slot, User};
pub use states::{OfferingState, OrderState, OrderType, ResourceState};
pub use uuid::Id;
