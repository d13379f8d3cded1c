//! The Google Calendar adapter: [`CalendarApi`] and its production implementation
//! [`GoogleCalendarClient`] over google-calendar3 7 and yup-oauth2 12.
//!
//! Invariants:
//! - This is the only module that imports google-calendar3 or yup-oauth2; every public
//!   type here is our own (nothing of theirs is re-exported), so the sync engine and
//!   the tests code against [`CalendarApi`] and [`Event`] only.
//! - Every call: waits for the credential's token bucket ([`RateLimit`]), uses a
//!   cached access token with the full `calendar` scope, retries rate limits, 5xx
//!   (also from the token endpoint) and transport failures with jittered exponential
//!   backoff ([`RetryPolicy`]), and is counted in [`CallStats`].
//! - Google's usage limits are honoured per credential ([`UsageGuard`]): at most
//!   `calendars_per_hour` calendars are created in any hour, and after a 403
//!   `quotaExceeded` the credential's writes pause; calls held back fail at once with
//!   [`GoogleErrorKind::Deferred`] and say when to try again, so nothing retries in a
//!   loop. 404/403 on a calendar created moments ago are retried (Google needs a few
//!   seconds to make it usable).
//! - Event writes always send `sendUpdates=none` (attendee mail is never sent).
//! - `events_list` follows every page; an expired sync token is
//!   [`GoogleErrorKind::SyncTokenExpired`], never an empty result.
//!
//! Layout: `types` (our resources), `error` (classification), `auth` (credentials,
//! token cache), `ratelimit`, `limits` (creation budget, usage-limit pause, fresh
//! calendars), `retry`, `stats`, `convert` (our types <-> generated ones), `client`
//! (the hub wrapper), `factory` (clients per provider).

mod auth;
mod channels;
mod client;
mod convert;
mod error;
mod factory;
mod limits;
mod ratelimit;
mod retry;
mod stats;
mod types;
mod zones;

use async_trait::async_trait;

pub use auth::{CredentialStatus, Credentials, CALENDAR_SCOPE, GOOGLE_TOKEN_URL};
pub use channels::{WatchChannel, WatchRequest};
pub use client::{
    ClientOptions, GoogleCalendarClient, GoogleCalendarClientBuilder, GOOGLE_ROOT_URL,
};
pub use error::{BoxError, GoogleError, GoogleErrorKind};
pub use factory::ClientFactory;
pub use limits::{UsageGuard, UsageLimits, UsagePause};
pub use ratelimit::{RateLimit, TokenBucket};
pub use retry::RetryPolicy;
pub use stats::{CallStats, CallStatsSnapshot};
pub use types::{
    AclRole, Attendee, Calendar, Event, EventPage, EventStatus, EventTime, ListMode, Transparency,
};
pub use zones::google_time_zone;

/// The Calendar v3 operations the sync engine needs. Object safe: used as
/// `Arc<dyn CalendarApi>`; fakes implement it in tests.
#[async_trait]
pub trait CalendarApi: Send + Sync {
    /// Creates a secondary calendar. Not retried on ambiguous failures (5xx,
    /// timeouts): the caller must look before creating again.
    async fn calendar_insert(
        &self,
        summary: &str,
        time_zone: &str,
    ) -> Result<Calendar, GoogleError>;

    async fn calendar_get(&self, id: &str) -> Result<Calendar, GoogleError>;

    /// Replaces summary, description and time zone (PUT).
    async fn calendar_update(&self, cal: &Calendar) -> Result<Calendar, GoogleError>;

    async fn calendar_delete(&self, id: &str) -> Result<(), GoogleError>;

    /// Lists events, following every page.
    ///
    /// # Errors
    /// [`GoogleErrorKind::SyncTokenExpired`] when Google answers 410 to an
    /// incremental listing: drop the token and list in full.
    async fn events_list(
        &self,
        calendar_id: &str,
        mode: ListMode,
    ) -> Result<EventPage, GoogleError>;

    async fn event_get(&self, calendar_id: &str, event_id: &str) -> Result<Event, GoogleError>;

    /// Inserts with `sendUpdates=none`. A retried insert that meets its own earlier
    /// attempt (409 `duplicate`) returns the stored event.
    async fn event_insert(&self, calendar_id: &str, ev: &Event) -> Result<Event, GoogleError>;

    /// Replaces the event (PUT) with `sendUpdates=none`.
    async fn event_update(&self, calendar_id: &str, ev: &Event) -> Result<Event, GoogleError>;

    /// Deletes with `sendUpdates=none`. An already deleted event is
    /// [`GoogleErrorKind::Gone`].
    async fn event_delete(&self, calendar_id: &str, event_id: &str) -> Result<(), GoogleError>;

    /// Shares the calendar with everyone (`scope: default`); returns the rule id.
    async fn acl_insert(&self, calendar_id: &str, role: AclRole) -> Result<String, GoogleError>;

    async fn acl_delete(&self, calendar_id: &str, rule_id: &str) -> Result<(), GoogleError>;

    /// Opens a push-notification channel on the calendar's events
    /// (`events.watch`). Fakes without push keep the default, which refuses.
    async fn events_watch(
        &self,
        calendar_id: &str,
        request: &WatchRequest,
    ) -> Result<WatchChannel, GoogleError> {
        let _ = (calendar_id, request);
        Err(GoogleError::new(
            GoogleErrorKind::BadRequest,
            "this Calendar API does not support push notifications",
        ))
    }

    /// Ends a push-notification channel (`channels.stop`). A channel Google no
    /// longer knows (expired, stopped) is [`GoogleErrorKind::NotFound`].
    async fn channel_stop(&self, channel_id: &str, resource_id: &str) -> Result<(), GoogleError> {
        let _ = (channel_id, resource_id);
        Err(GoogleError::new(
            GoogleErrorKind::BadRequest,
            "this Calendar API does not support push notifications",
        ))
    }

    /// Whether the credential currently works; fakes may keep the default.
    fn credential_status(&self) -> CredentialStatus {
        CredentialStatus::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_trait_is_object_safe_and_the_client_fits_behind_it() {
        fn takes(_: Option<Arc<dyn CalendarApi>>) {}
        fn is_api<T: CalendarApi + 'static>() {}
        is_api::<GoogleCalendarClient>();
        takes(None);
    }
}
