//! The input model of a feed: what the endpoint hands to [`render`](super::render()).
//!
//! Plain data, no behaviour beyond small helpers. The mapping to iCalendar properties
//! is documented per field; the rendering rules live in [`super::render`](mod@super::render).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

/// One published calendar (one `VCALENDAR`, RFC 5545 section 3.4).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedCalendar {
    /// `NAME` (RFC 7986 section 5.1) and `X-WR-CALNAME`, escaped as TEXT; line breaks
    /// become spaces.
    pub name: String,
    /// `DESCRIPTION` (RFC 7986 section 5.2) and `X-WR-CALDESC`, when given.
    pub description: Option<String>,
    /// `X-WR-TIMEZONE`; timed events are written as `TZID=<this zone>` local times with
    /// a matching `VTIMEZONE`, or in UTC when this zone is UTC (or cannot be expressed
    /// as a yearly rule pair, see [`super::vtimezone`]).
    pub time_zone: Tz,
    /// `SOURCE;VALUE=URI` (RFC 7986 section 5.8): the feed's own URL, when given.
    pub source_url: Option<String>,
    /// `REFRESH-INTERVAL;VALUE=DURATION` (RFC 7986 section 5.7) and `X-PUBLISHED-TTL`.
    /// Negative values are written as zero.
    pub refresh_interval: Duration,
    /// `COLOR` (RFC 7986 section 5.9), a CSS3 colour name, when given.
    pub color: Option<String>,
    /// The events, in any order: the output is sorted by (start, uid).
    pub events: Vec<FeedEvent>,
}

/// One busy slot or booking (one `VEVENT`, RFC 5545 section 3.6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedEvent {
    /// `UID`: stable across renders, e.g. `"<backend_id>@bookcal"`.
    pub uid: String,
    /// `SUMMARY`.
    pub summary: String,
    /// `DESCRIPTION`, when given.
    pub description: Option<String>,
    /// `LOCATION`, when given.
    pub location: Option<String>,
    /// `DTSTART` and `DTEND`.
    pub when: FeedTime,
    /// `STATUS`.
    pub status: FeedStatus,
    /// `SEQUENCE`: must rise when the slot's time changes (RFC 5545 section 3.8.7.4).
    pub sequence: u32,
    /// `LAST-MODIFIED` and `DTSTAMP`: the slot's last change, never "now", so that an
    /// unchanged slot renders to the same bytes (and the ETag stays put).
    pub last_modified: DateTime<Utc>,
    /// `CREATED`, when known.
    pub created: Option<DateTime<Utc>>,
    /// `URL`, when given.
    pub url: Option<String>,
}

/// When an event happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedTime {
    /// Instants; rendered as `DTSTART;TZID=<calendar zone>:<local time>` (with a
    /// `VTIMEZONE`) or in UTC when the calendar zone is UTC. An `end` before `start`
    /// is written as `end = start`.
    Timed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// All-day: `DTSTART;VALUE=DATE` and an exclusive `DTEND;VALUE=DATE` (the last
    /// day + 1). An `end_exclusive` not after `start` is written as one day.
    AllDay {
        start: NaiveDate,
        end_exclusive: NaiveDate,
    },
}

/// `STATUS` of a `VEVENT` (RFC 5545 section 3.8.1.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedStatus {
    Tentative,
    Confirmed,
    Cancelled,
}

impl FeedStatus {
    /// The property value.
    pub fn as_ical(self) -> &'static str {
        match self {
            FeedStatus::Tentative => "TENTATIVE",
            FeedStatus::Confirmed => "CONFIRMED",
            FeedStatus::Cancelled => "CANCELLED",
        }
    }
}
