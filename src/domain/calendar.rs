//! The Google Calendar side of an offering: its calendar record, what a sync run
//! did, and the events it keeps track of (jobs live in [`super::jobs`]).

use chrono::{DateTime, Duration, Utc};
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
    /// Writes held back by Google's usage limits (pushed on a later run).
    #[serde(default)]
    pub deferred: u32,
}

/// Why an offering's sync waits, and until when: Google's usage limits (the hourly
/// calendar-creation budget is spent, or Google made the account read-only for a
/// while). Nothing is retried before `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// In plain words.
    pub reason: String,
    pub until: DateTime<Utc>,
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
    /// Set while the sync waits for Google's usage limits (see [`Waiting`]).
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// When the calendar's busy time was last read and stored in full (the listing
    /// succeeded and no guard held its result back). New orders are refused once this
    /// is older than `sync.max_busy_age_secs`.
    #[serde(default)]
    pub busy_read_at: Option<DateTime<Utc>>,
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
            waiting: None,
            busy_read_at: None,
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

/// Busy time read from an offering's Google Calendar that is too old to trust: an
/// order checked against it could land on time someone took in Google meanwhile, so
/// new orders are refused while it is (`sync.max_busy_age_secs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleBusy {
    /// When it was last read in full (`None`: not since the calendar exists).
    pub read_at: Option<DateTime<Utc>>,
    /// The oldest it may be.
    pub max_age: Duration,
}

impl StaleBusy {
    /// Whether the busy time of `cal` is too old at `now` (`max_age` `None`: no
    /// limit). Only an offering with a Google Calendar has busy time to read; a record
    /// written before bookcal kept `busy_read_at` counts from its last success.
    pub fn of(
        cal: Option<&OfferingCalendar>,
        now: DateTime<Utc>,
        max_age: Option<Duration>,
    ) -> Option<StaleBusy> {
        let max_age = max_age?;
        let cal = cal.filter(|c| c.calendar_id.is_some())?;
        let read_at = cal.busy_read_at.or(cal.last_success);
        match read_at {
            Some(at) if now - at <= max_age => None,
            _ => Some(StaleBusy { read_at, max_age }),
        }
    }

    /// Why a new order is refused, in plain words.
    pub fn message(&self) -> String {
        let limit = plain_duration(self.max_age);
        match self.read_at {
            Some(at) => format!(
                "The busy time of this offering's Google Calendar was last read at {}, more than {limit} ago; new orders are refused until it is read again (see the offering's googlecalendar).",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "The busy time of this offering's Google Calendar has not been read yet; new orders are refused until it is (see the offering's googlecalendar).".to_owned(),
        }
    }
}

/// `2 hours`, `90 minutes`, `45 seconds`.
fn plain_duration(d: Duration) -> String {
    let s = d.num_seconds();
    let (n, unit) = if s >= 3600 && s % 3600 == 0 {
        (s / 3600, "hour")
    } else if s >= 60 && s % 60 == 0 {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// How one Google credential (the service account, or a provider's refresh-token
/// file) is doing, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialHealth {
    /// Which credential, without secrets (`service account a@b`, `provider <hex>`).
    pub name: String,
    /// `ok`, `invalid` (needs a person), `failing` (bookcal retries by itself) or
    /// `unknown` (not used yet).
    pub status: String,
    /// What is wrong, in plain words.
    pub reason: Option<String>,
    /// What to do about it.
    pub action: Option<String>,
    /// Since when the status holds (invalid or failing).
    pub since: Option<DateTime<Utc>>,
    /// Until when Google pauses it, when it said so.
    pub until: Option<DateTime<Utc>>,
}

/// What we pushed for one slot: the event it became and a fingerprint of the content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedEvent {
    /// The event's id: the slot's deterministic id, or a later generation of it when
    /// Google purged the earlier one.
    pub event_id: String,
    pub fingerprint: String,
    /// Etag of our last write (kept for diagnosis; changes are read from content).
    pub etag: Option<String>,
    /// The last push failed or was refused: push again on the next run.
    pub needs_push: bool,
    /// Fingerprint of the content Google answered our last write with, when it differs
    /// from what we sent (Google normalised something): that is not an edit either.
    #[serde(default)]
    pub remote: Option<String>,
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
    /// The event's title, shown to the offering's owner on its web page (never in a
    /// feed or to consumers).
    pub summary: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn busy_time_is_stale_only_for_a_google_calendar_read_too_long_ago() {
        let now = Utc
            .with_ymd_and_hms(2030, 1, 1, 12, 0, 0)
            .single()
            .expect("time");
        let hours = |h: i64| Some(now - Duration::hours(h));
        let two_hours = Some(Duration::hours(2));
        let with = |calendar: bool, busy_read_at, last_success| {
            let mut c = OfferingCalendar::new(Id::new_v4());
            c.calendar_id = calendar.then(|| "c@group.calendar.google.com".to_owned());
            c.busy_read_at = busy_read_at;
            c.last_success = last_success;
            c
        };
        // (what, calendar record, limit, stale since: `Some(None)` never read)
        type Case = (
            &'static str,
            Option<OfferingCalendar>,
            Option<Duration>,
            Option<Option<DateTime<Utc>>>,
        );
        let cases: Vec<Case> = vec![
            ("no calendar record: nothing to read", None, two_hours, None),
            (
                "no Google calendar yet (waiting for the creation budget)",
                Some(with(false, None, None)),
                two_hours,
                None,
            ),
            (
                "read an hour ago",
                Some(with(true, hours(1), hours(1))),
                two_hours,
                None,
            ),
            (
                "read exactly at the limit",
                Some(with(true, hours(2), hours(2))),
                two_hours,
                None,
            ),
            (
                "read three hours ago",
                Some(with(true, hours(3), hours(0))),
                two_hours,
                Some(hours(3)),
            ),
            (
                "never read since the calendar exists",
                Some(with(true, None, None)),
                two_hours,
                Some(None),
            ),
            (
                "a record from before busy_read_at counts from its last success",
                Some(with(true, None, hours(1))),
                two_hours,
                None,
            ),
            (
                "no limit",
                Some(with(true, hours(30), hours(30))),
                None,
                None,
            ),
        ];
        for (what, cal, limit, want) in cases {
            let got = StaleBusy::of(cal.as_ref(), now, limit);
            assert_eq!(got.map(|s| s.read_at), want, "{what}");
        }
    }

    #[test]
    fn the_refusal_says_when_the_busy_time_was_read_and_how_old_it_may_be() {
        let at = Utc
            .with_ymd_and_hms(2030, 1, 1, 9, 30, 0)
            .single()
            .expect("time");
        let cases = [
            (
                Some(at),
                Duration::hours(2),
                "last read at 2030-01-01 09:30 UTC, more than 2 hours ago",
            ),
            (Some(at), Duration::minutes(90), "more than 90 minutes ago"),
            (Some(at), Duration::hours(1), "more than 1 hour ago"),
            (Some(at), Duration::seconds(45), "more than 45 seconds ago"),
            (None, Duration::hours(2), "has not been read yet"),
        ];
        for (read_at, max_age, want) in cases {
            let msg = StaleBusy { read_at, max_age }.message();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("new orders are refused"), "{msg}");
        }
    }
}
