//! The Google Calendar side of an offering: its calendar record and the jobs that
//! the calendar actions enqueue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Id;

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
                percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            )),
            _ => None,
        }
    }
}

/// What a queued job asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    Sync,
    Share,
    Unshare,
}

/// A durable job: survives restarts until the scheduler completes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub seq: u64,
    pub offering: Id,
    pub kind: JobKind,
    pub created: DateTime<Utc>,
    pub attempts: u32,
}
