//! Our own model of the Calendar v3 resources the sync engine touches.
//!
//! These types are deliberately independent of google-calendar3's generated structs:
//! the rest of the crate never sees the generated types, so a crate upgrade stays
//! inside `src/google/`. Conversions live in `convert.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// A secondary calendar (`calendars` resource).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    /// Google's id, e.g. `c_0123abcd@group.calendar.google.com`.
    pub id: String,
    pub summary: String,
    /// IANA zone name, e.g. `Europe/Tallinn`.
    pub time_zone: Option<String>,
    pub description: Option<String>,
    pub etag: Option<String>,
}

/// What `events.list` should return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListMode {
    /// A full listing; its last page carries the sync token for later incremental runs.
    Full {
        /// Include cancelled events (tombstones).
        show_deleted: bool,
        /// Only events ending after this instant (exclusive bound on the event's end).
        time_min: Option<DateTime<Utc>>,
        /// Expand recurring events into their instances (hides the parents).
        single_events: bool,
    },
    /// Changes since the full listing (or incremental run) that produced `sync_token`.
    /// Deleted events arrive as `EventStatus::Cancelled`. Google refuses the token
    /// with 410 when it expired: [`GoogleErrorKind::SyncTokenExpired`](super::GoogleErrorKind).
    /// Google asks for the full listing's other parameters again ("to avoid undefined
    /// behavior"): build it with [`ListMode::continued`].
    Incremental {
        sync_token: String,
        /// The full listing's `showDeleted` (sent only when true: Google refuses an
        /// explicit false beside a sync token).
        show_deleted: bool,
        /// The full listing's `singleEvents`.
        single_events: bool,
    },
}

impl ListMode {
    /// The incremental listing that continues this one from `sync_token`, repeating
    /// its parameters (`timeMin` is not allowed with a sync token and is dropped).
    pub fn continued(&self, sync_token: impl Into<String>) -> ListMode {
        let (show_deleted, single_events) = match self {
            ListMode::Full {
                show_deleted,
                single_events,
                ..
            }
            | ListMode::Incremental {
                show_deleted,
                single_events,
                ..
            } => (*show_deleted, *single_events),
        };
        ListMode::Incremental {
            sync_token: sync_token.into(),
            show_deleted,
            single_events,
        }
    }
}

/// Every page of one `events.list` run, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Present on the last page of a complete listing.
    pub next_sync_token: Option<String>,
    /// How many pages (HTTP calls) the listing took.
    pub pages: u32,
}

/// `status` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventStatus {
    #[default]
    Confirmed,
    Tentative,
    /// Deleted: listed only with `showDeleted` or in incremental results.
    Cancelled,
}

impl EventStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Confirmed => "confirmed",
            EventStatus::Tentative => "tentative",
            EventStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the wire value; anything unknown is read as `Confirmed` (Google's default).
    pub fn parse(s: &str) -> Self {
        match s {
            "cancelled" => EventStatus::Cancelled,
            "tentative" => EventStatus::Tentative,
            _ => EventStatus::Confirmed,
        }
    }
}

/// `transparency`: whether the event blocks time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transparency {
    /// Busy (Google's default).
    #[default]
    Opaque,
    /// Free: must not block bookings.
    Transparent,
}

impl Transparency {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transparency::Opaque => "opaque",
            Transparency::Transparent => "transparent",
        }
    }

    /// Parses the wire value; anything but `transparent` is opaque.
    pub fn parse(s: &str) -> Self {
        if s == "transparent" {
            Transparency::Transparent
        } else {
            Transparency::Opaque
        }
    }
}

/// An event's start, end or original start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTime {
    /// A timed instant. google-calendar3 reads and writes `dateTime` as UTC, so an
    /// instant read back from Google always has offset zero; the zone, when Google
    /// sends one, is in `time_zone`.
    DateTime {
        at: DateTime<FixedOffset>,
        time_zone: Option<String>,
    },
    /// An all-day date (an end date is exclusive).
    Date(NaiveDate),
}

/// One attendee. bookcal never adds attendees (they trigger e-mail and quota), but
/// external events have them and `is_self` tells whether we declined.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attendee {
    pub email: String,
    /// This attendee is the calendar the event was read from (read-only on the wire).
    pub is_self: bool,
    /// needsAction | declined | tentative | accepted
    pub response_status: Option<String>,
}

/// The fields of an event bookcal reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// base32hex id; empty lets Google choose one on insert.
    pub id: String,
    pub status: EventStatus,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<EventTime>,
    pub end: Option<EventTime>,
    pub transparency: Transparency,
    /// RRULE / EXRULE / RDATE / EXDATE lines.
    pub recurrence: Vec<String>,
    pub recurring_event_id: Option<String>,
    pub original_start: Option<EventTime>,
    /// `extendedProperties.private`: this calendar's copy only.
    pub private_properties: BTreeMap<String, String>,
    pub attendees: Vec<Attendee>,
    /// Read-only: changes on every modification.
    pub etag: Option<String>,
    /// Read-only: last modification time.
    pub updated: Option<DateTime<Utc>>,
    /// `default`, `outOfOffice`, `focusTime`, `workingLocation`, ...
    pub event_type: Option<String>,
}

/// Role granted by [`CalendarApi::acl_insert`](super::CalendarApi::acl_insert) to the
/// `default` scope (everyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclRole {
    /// Full event details are public.
    Reader,
    /// Only busy/free is public.
    FreeBusyReader,
}

impl AclRole {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            AclRole::Reader => "reader",
            AclRole::FreeBusyReader => "freeBusyReader",
        }
    }
}
