//! What the pages say about times and states, in words and a colour ("tone"): pure
//! functions of plain values (the clock is a parameter), table-tested.
//!
//! Every state shown in colour is also shown in words, so nothing depends on telling
//! colours apart.

use chrono::{DateTime, Utc};

use crate::domain::calendar::{CalendarState, CredentialHealth, OfferingCalendar};
use crate::domain::lifecycle;
use crate::domain::{Order, OrderState, ResourceState};

/// A state's colour. Each tone is a CSS class (`tone-ok`, ...) whose text and
/// background colours meet WCAG AA contrast (tested against `app.css`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Working as it should (green).
    Ok,
    /// Something is under way (blue).
    Busy,
    /// Waits for someone, or needs attention soon (amber).
    Warn,
    /// Failed; someone must act (red).
    Error,
    /// Not set up, or over (grey).
    Off,
}

impl Tone {
    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Ok => "tone-ok",
            Tone::Busy => "tone-busy",
            Tone::Warn => "tone-warn",
            Tone::Error => "tone-error",
            Tone::Off => "tone-off",
        }
    }

    /// Every tone.
    pub const ALL: [Tone; 5] = [Tone::Ok, Tone::Busy, Tone::Warn, Tone::Error, Tone::Off];
}

/// How long ago (or in how long) `t` is from `now`, in words: "just now",
/// "5 minutes ago", "in 2 hours", "3 days ago".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (future, secs) = (secs < 0, secs.unsigned_abs());
    if secs < 45 {
        return if future { "in a moment" } else { "just now" }.to_owned();
    }
    let (n, unit) = if secs < 45 * 60 {
        (secs.div_ceil(60).max(1), "minute")
    } else if secs < 36 * 3600 {
        ((secs + 1800) / 3600, "hour")
    } else {
        ((secs + 43_200) / 86_400, "day")
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// An offering's calendar state in words and colour.
pub fn calendar_state(cal: Option<&OfferingCalendar>) -> (&'static str, Tone) {
    let Some(cal) = cal else {
        return ("No Google calendar yet", Tone::Off);
    };
    if cal.waiting.is_some() && cal.state.is_idle() {
        return ("Waiting for Google", Tone::Warn);
    }
    match cal.state {
        CalendarState::CreationScheduled => ("Calendar creation scheduled", Tone::Busy),
        CalendarState::Creating => ("Creating the calendar", Tone::Busy),
        CalendarState::UpdateScheduled => ("Sync scheduled", Tone::Busy),
        CalendarState::Updating => ("Syncing now", Tone::Busy),
        CalendarState::Ok if cal.last_error.is_some() => ("Last sync failed", Tone::Error),
        CalendarState::Ok => ("In sync", Tone::Ok),
        CalendarState::Erred => ("Sync failed", Tone::Error),
    }
}

/// What the owner can do about a sync error.
pub fn error_advice(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("credential")
        || e.contains("invalid_grant")
        || e.contains("unauthorized")
        || e.contains("401")
    {
        "Google refused bookcal's credential: ask the operator to check it (see Credential \
         below), then press Sync now."
    } else if e.contains("quota") || e.contains("rate") || e.contains("429") {
        "Google is limiting requests: bookcal waits and tries again by itself; nothing to do."
    } else if e.contains("404") || e.contains("not found") || e.contains("410") {
        "The calendar is missing in Google: press Sync now and bookcal re-creates it."
    } else if e.contains("403") || e.contains("forbidden") {
        "Google denied access to the calendar: check that bookcal's account may write to \
         it, then press Sync now."
    } else {
        "bookcal tries again by itself, waiting longer after each failure; press Sync now to \
         try at once."
    }
}

/// A Google credential's health in words and colour.
pub fn credential(h: Option<&CredentialHealth>) -> (&'static str, Tone) {
    match h.map(|h| h.status.as_str()) {
        None => ("No credential in use", Tone::Off),
        Some("ok") => ("Working", Tone::Ok),
        Some("invalid") => ("Invalid: needs a person", Tone::Error),
        Some("failing") => ("Failing: bookcal retries", Tone::Warn),
        Some(_) => ("Not used yet", Tone::Off),
    }
}

/// A booking's creation order as people read it: its state as
/// [`crate::domain::lifecycle::shown_state`] gives it (a booking its owner rejected
/// reads `rejected`, though the API keeps its order `canceled`), and whether it
/// expired unaccepted ([`crate::domain::lifecycle::expired`], also `canceled` in the
/// API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub state: OrderState,
    pub expired: bool,
}

impl Request {
    /// How `order` reads.
    pub fn of(order: &Order) -> Request {
        Request {
            state: lifecycle::shown_state(order),
            expired: lifecycle::expired(order),
        }
    }
}

/// A booking's state in words and colour, from its resource and (when known) its
/// creation order as people read it ([`Request`]): an ended request reads
/// "Rejected", "Expired" (nobody accepted it before its time) or "Cancelled" (its
/// requester withdrew it).
pub fn booking(resource: ResourceState, order: Option<Request>) -> (&'static str, Tone) {
    let state = order.map(|o| o.state);
    match (resource, state) {
        (ResourceState::Creating, Some(OrderState::Executing)) => {
            ("Pending: waits for the owner", Tone::Warn)
        }
        (ResourceState::Creating, Some(OrderState::PendingConsumer)) => {
            ("Pending: waits for the consumer's approval", Tone::Warn)
        }
        (ResourceState::Creating, Some(OrderState::PendingProvider)) => {
            ("Pending: waits for the provider's approval", Tone::Warn)
        }
        (ResourceState::Creating, _) => ("Pending", Tone::Warn),
        (ResourceState::Ok, _) => ("Confirmed", Tone::Ok),
        (ResourceState::Terminated, Some(OrderState::Rejected)) => ("Rejected", Tone::Off),
        (ResourceState::Terminated, Some(OrderState::Canceled))
            if order.is_some_and(|o| o.expired) =>
        {
            ("Expired", Tone::Off)
        }
        (ResourceState::Terminated, Some(OrderState::Canceled)) => ("Cancelled", Tone::Off),
        (ResourceState::Terminated, _) => ("Ended", Tone::Off),
        (ResourceState::Erred, _) => ("Failed", Tone::Error),
        (ResourceState::Updating, _) => ("Changing", Tone::Busy),
        (ResourceState::Terminating, _) => ("Ending", Tone::Busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000 + secs, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn relative_time_words_table() {
        let now = at(0);
        let cases = [
            (0, "just now"),
            (-44, "just now"),
            (-45, "1 minute ago"),
            (-61, "2 minutes ago"),
            (-30 * 60, "30 minutes ago"),
            (-45 * 60, "1 hour ago"),
            (-90 * 60, "2 hours ago"),
            (-35 * 3600, "35 hours ago"),
            (-36 * 3600, "2 days ago"),
            (-10 * 86_400, "10 days ago"),
            (30, "in a moment"),
            (5 * 60, "in 5 minutes"),
            (3 * 3600, "in 3 hours"),
            (3 * 86_400, "in 3 days"),
        ];
        for (offset, want) in cases {
            assert_eq!(relative(at(offset), now), want, "offset {offset}");
        }
    }

    #[test]
    fn calendar_state_words_and_colours_table() {
        let base = OfferingCalendar::new(crate::domain::Id::new_v4());
        let with = |state, error: Option<&str>, waiting: bool| {
            let mut c = base.clone();
            c.state = state;
            c.last_error = error.map(str::to_owned);
            c.waiting = waiting.then(|| crate::domain::calendar::Waiting {
                reason: "creation budget".into(),
                until: at(60),
            });
            c
        };
        use CalendarState as S;
        let cases = [
            (
                with(S::CreationScheduled, None, false),
                "Calendar creation scheduled",
                Tone::Busy,
            ),
            (
                with(S::Creating, None, false),
                "Creating the calendar",
                Tone::Busy,
            ),
            (
                with(S::UpdateScheduled, None, false),
                "Sync scheduled",
                Tone::Busy,
            ),
            (with(S::Updating, None, false), "Syncing now", Tone::Busy),
            (with(S::Ok, None, false), "In sync", Tone::Ok),
            (
                with(S::Ok, Some("boom"), false),
                "Last sync failed",
                Tone::Error,
            ),
            (
                with(S::Erred, Some("boom"), false),
                "Sync failed",
                Tone::Error,
            ),
            (with(S::Ok, None, true), "Waiting for Google", Tone::Warn),
            (with(S::Updating, None, true), "Syncing now", Tone::Busy),
        ];
        for (cal, words, tone) in cases {
            assert_eq!(calendar_state(Some(&cal)), (words, tone), "{cal:?}");
        }
        assert_eq!(calendar_state(None), ("No Google calendar yet", Tone::Off));
    }

    #[test]
    fn booking_state_words_and_colours_table() {
        use OrderState as O;
        use ResourceState as R;
        let req = |state, expired| Request { state, expired };
        let cases = [
            (
                R::Creating,
                Some(req(O::Executing, false)),
                "Pending: waits for the owner",
                Tone::Warn,
            ),
            (
                R::Creating,
                Some(req(O::PendingProvider, false)),
                "Pending: waits for the provider's approval",
                Tone::Warn,
            ),
            (
                R::Creating,
                Some(req(O::PendingConsumer, false)),
                "Pending: waits for the consumer's approval",
                Tone::Warn,
            ),
            (R::Creating, None, "Pending", Tone::Warn),
            (R::Ok, Some(req(O::Done, false)), "Confirmed", Tone::Ok),
            (
                R::Terminated,
                Some(req(O::Rejected, false)),
                "Rejected",
                Tone::Off,
            ),
            (
                R::Terminated,
                Some(req(O::Canceled, false)),
                "Cancelled",
                Tone::Off,
            ),
            (
                R::Terminated,
                Some(req(O::Canceled, true)),
                "Expired",
                Tone::Off,
            ),
            (R::Terminated, Some(req(O::Done, false)), "Ended", Tone::Off),
            (R::Erred, None, "Failed", Tone::Error),
            (R::Updating, None, "Changing", Tone::Busy),
            (R::Terminating, None, "Ending", Tone::Busy),
        ];
        for (r, o, words, tone) in cases {
            assert_eq!(booking(r, o), (words, tone), "{r:?} {o:?}");
        }
    }

    #[test]
    fn credential_health_and_error_advice_table() {
        let h = |status: &str| CredentialHealth {
            name: "service account".into(),
            status: status.into(),
            reason: None,
            action: None,
            since: None,
            until: None,
        };
        assert_eq!(credential(None).1, Tone::Off);
        assert_eq!(credential(Some(&h("ok"))), ("Working", Tone::Ok));
        assert_eq!(credential(Some(&h("invalid"))).1, Tone::Error);
        assert_eq!(credential(Some(&h("failing"))).1, Tone::Warn);
        assert_eq!(credential(Some(&h("unknown"))).1, Tone::Off);
        let advice = [
            ("token endpoint said invalid_grant", "credential"),
            ("Google answered 429 rateLimitExceeded", "limiting"),
            ("calendar not found (404)", "missing"),
            ("403 forbidden", "denied"),
            ("connection reset", "tries again"),
        ];
        for (error, says) in advice {
            assert!(error_advice(error).contains(says), "{error}");
        }
    }
}
