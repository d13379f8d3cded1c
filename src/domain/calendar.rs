//! The Google Calendar side of an offering: its calendar record, what a sync run
//! did, and the events it keeps track of (jobs live in [`super::jobs`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::jobs::{Job, JobKind};
use super::Id;

/// What JavaScript's `encodeURIComponent` leaves alone (Google's links use it).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Life cycle of an offering's calendar (names as upstream Waldur shows them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalendarState {
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

impl CalendarState {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarState::CreationScheduled => "Creation Scheduled",
            CalendarState::Creating => "Creating",
            CalendarState::UpdateScheduled => "Update Scheduled",
            CalendarState::Updating => "Updating",
            CalendarState::Ok => "OK",
            CalendarState::Erred => "Erred",
        }
    }

    /// Whether a new action may be scheduled (the calendar is not busy).
    pub fn is_idle(self) -> bool {
        matches!(self, CalendarState::Ok | CalendarState::Erred)
    }
}

/// Counts of one sync run, shown in `googlecalendar.last_run` and in metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub started: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub created: u32,
    pub updated: u32,
    pub deleted: u32,
    pub adopted: u32,
    pub busy_slots: u32,
    pub warnings: Vec<String>,
    pub api_calls: u64,
    pub full_listing: bool,
}

/// The calendar record of one offering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferingCalendar {
    pub offering: Id,
    /// Google's calendar id once created.
    pub calendar_id: Option<String>,
    pub public: bool,
    pub state: CalendarState,
    pub sync_token: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_run: Option<RunSummary>,
    /// Consecutive failed runs (for back-off).
    pub failures: u32,
    /// The summary the calendar had when last written (rename detection).
    pub synced_name: Option<String>,
}

impl OfferingCalendar {
    pub fn new(offering: Id) -> Self {
        OfferingCalendar {
            offering,
            calendar_id: None,
            public: false,
            state: CalendarState::CreationScheduled,
            sync_token: None,
            last_success: None,
            last_error: None,
            last_run: None,
            failures: 0,
            synced_name: None,
        }
    }

    /// Google's public embed link, while the calendar is public.
    pub fn http_link(&self) -> Option<String> {
        match (&self.calendar_id, self.public) {
            (Some(id), true) => Some(format!(
                "https://calendar.google.com/calendar/embed?src={}",
                percent_encoding::utf8_percent_encode(id, URI_COMPONENT)
            )),
            _ => None,
        }
    }
}

/// What we pushed for one slot: the event it became and a fingerprint of the content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedEvent {
    pub event_id: String,
    pub fingerprint: String,
    /// Etag of our last write; a listed copy with another etag was changed by someone.
    pub etag: Option<String>,
    /// The last push failed or was refused: push again on the next run.
    pub needs_push: bool,
}

/// A time of an external event as Google gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtTime {
    /// A timed instant and the zone Google named for it (recurrences expand in it).
    Instant {
        at: DateTime<Utc>,
        tz: Option<String>,
    },
    /// An all-day date (end dates exclusive).
    Date(chrono::NaiveDate),
}

/// An event in an offering's calendar that bookcal did not create. Kept so that
/// incremental listings (which only carry changes) can be merged, and so that each
/// busy slot can name its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalEvent {
    pub id: String,
    /// `confirmed`, `tentative` or `cancelled`.
    pub status: String,
    pub transparent: bool,
    /// We (the calendar) declined it.
    pub declined: bool,
    pub event_type: Option<String>,
    pub start: Option<ExtTime>,
    pub end: Option<ExtTime>,
    pub recurrence: Vec<String>,
    pub recurring_event_id: Option<String>,
    pub original_start: Option<ExtTime>,
}
