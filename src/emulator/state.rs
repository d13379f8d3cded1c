//! The emulator's in-memory model: calendars, their events (tombstones included),
//! ACL rules, change sequences, issued access tokens and registered refresh tokens.
//!
//! Invariants:
//! - Every modification of a calendar's events takes the next value of that
//!   calendar's `change_seq`; an event remembers the sequence of its last change, so
//!   "changes since a sync token" is `changed_seq > token.seq`.
//! - `sync_epoch` is part of every sync token; ACL changes and forced expiry bump it,
//!   which turns all outstanding tokens of the calendar into 410 `fullSyncRequired`.
//! - Timestamps come from [`Store::now`], strictly increasing, so `updated` and the
//!   etags derived from it change on every modification.
//! - Events are never removed by DELETE: it turns them into `status: cancelled`. Only
//!   the tombstone purge ([`Behaviour::tombstone_ttl`]) forgets a tombstone; its id
//!   stays reserved (insert 409) while get/update answer 404, as on Google.
//! - Time-based switches (lock-outs, propagation, purges, token expiry, quota) read
//!   [`Store::instant`]: tokio's clock plus an offset the controls can advance.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Value};

use super::error::ApiError;

/// One stored event: the full resource as `events.get` returns it.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub body: Value,
    pub changed_seq: u64,
    /// When DELETE made it a tombstone (emulator clock), for the purge.
    pub deleted_at: Option<tokio::time::Instant>,
}

impl StoredEvent {
    pub fn is_cancelled(&self) -> bool {
        self.body["status"] == "cancelled"
    }
}

/// A calendar with everything in it.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    /// The `calendar#calendar` resource.
    pub resource: Value,
    /// Identity (e-mail) of the credential that created it.
    pub owner: String,
    pub events: BTreeMap<String, StoredEvent>,
    /// ACL rules by rule id.
    pub acl: BTreeMap<String, Value>,
    pub change_seq: u64,
    pub sync_epoch: u64,
    /// When `calendars.insert` created it (emulator clock), for the propagation
    /// delay; `None` for primary calendars, which have always existed.
    pub created_at: Option<tokio::time::Instant>,
    /// Ids of purged tombstones: reserved for insert (409), unknown otherwise (404).
    pub purged: BTreeSet<String>,
}

impl Calendar {
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.resource["timeZone"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }
    pub fn next_seq(&mut self) -> u64 {
        self.change_seq += 1;
        self.change_seq
    }

    /// Forgets tombstones deleted at least `ttl` ago (series exceptions excepted:
    /// forgetting a cancelled instance would bring it back). Purging invalidates the
    /// calendar's sync tokens: a client holding one could no longer learn of the
    /// deletion incrementally.
    pub fn purge_tombstones(&mut self, now: tokio::time::Instant, ttl: Duration) {
        let due: Vec<String> = self
            .events
            .iter()
            .filter(|(_, e)| {
                e.is_cancelled()
                    && e.body.get("recurringEventId").is_none()
                    && e.deleted_at.is_some_and(|at| now.duration_since(at) >= ttl)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            self.events.remove(&id);
            self.purged.insert(id);
        }
        self.sync_epoch += 1;
    }
}

/// Switch values the handlers consult while holding the store lock (mirrored from
/// [`super::controls::Settings`] on every change).
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    /// Incremental listings must repeat `showDeleted` and `singleEvents`.
    pub strict_sync_parameters: bool,
    /// Only zones Google accepts (see `zones`) are valid `timeZone` values.
    pub strict_time_zones: bool,
    /// Writes answer one etag and reads show another (the etag changes after a write).
    pub etag_drift: bool,
    /// Tombstones are purged this long after deletion.
    pub tombstone_ttl: Option<Duration>,
    /// For this long after `calendars.insert`, requests on the calendar fail...
    pub fresh_calendar_delay: Duration,
    /// ...with this status: 404 `notFound` or 403 `requiredAccessLevel`.
    pub fresh_calendar_status: u16,
    /// Calendar creations allowed per identity and window before a lock-out.
    pub creation_limit: Option<CreationLimit>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            strict_sync_parameters: true,
            strict_time_zones: true,
            etag_drift: false,
            tombstone_ttl: None,
            fresh_calendar_delay: Duration::ZERO,
            fresh_calendar_status: 404,
            creation_limit: None,
        }
    }
}

/// Google's secondary-calendar creation limit: more than `max` creations within
/// `window` put the account in read-only mode for `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreationLimit {
    pub max: u32,
    pub window_secs: u64,
    pub lockout_secs: u64,
}

/// How much a credential may do with a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    FreeBusy,
    Reader,
    Writer,
    Owner,
}

impl Access {
    fn from_role(role: &str) -> Option<Self> {
        match role {
            "freeBusyReader" => Some(Self::FreeBusy),
            "reader" => Some(Self::Reader),
            "writer" => Some(Self::Writer),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
    pub fn role(self) -> &'static str {
        match self {
            Self::FreeBusy => "freeBusyReader",
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Owner => "owner",
        }
    }
}

/// Who is calling, as derived from the access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The e-mail the credential acts as (service account, impersonated user, or the
    /// refresh token's user); quota and counters are kept per identity.
    pub identity: String,
    /// A service account acting as itself (no `sub`): attendees are forbidden.
    pub service_account_without_subject: bool,
    pub scopes: Vec<String>,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub caller: Caller,
    pub expires_at: tokio::time::Instant,
}

/// A refresh token registered through the control API.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    pub client_secret: String,
    pub user_email: String,
    pub revoked: bool,
}

/// All mutable emulator state, behind one mutex.
#[derive(Debug)]
pub(crate) struct Store {
    last_millis: i64,
    pub calendars: BTreeMap<String, Calendar>,
    /// Creation order of calendars, for a stable calendarList.
    pub calendar_order: Vec<String>,
    pub tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    /// Key for the MAC on sync and page tokens.
    pub token_secret: [u8; 32],
    pub behaviour: Behaviour,
    /// Added to tokio's clock (the controls advance it).
    pub clock_offset: Duration,
    /// Calendar creations per identity (emulator clock), for the creation limit.
    pub creations: HashMap<String, VecDeque<tokio::time::Instant>>,
    /// Identities in read-only mode until the instant (usage limits exceeded).
    pub locked_out: HashMap<String, tokio::time::Instant>,
}

impl Store {
    pub fn new() -> Self {
        Self {
            last_millis: 0,
            calendars: BTreeMap::new(),
            calendar_order: Vec::new(),
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            token_secret: rand::thread_rng().gen(),
            behaviour: Behaviour::default(),
            clock_offset: Duration::ZERO,
            creations: HashMap::new(),
            locked_out: HashMap::new(),
        }
    }

    /// The emulator's clock for time-based switches: tokio's (pausable in tests)
    /// plus the offset the controls added.
    pub fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.clock_offset
    }

    /// Whether `identity` is in read-only mode (usage limits exceeded); forgets
    /// lock-outs that ended.
    pub fn is_locked_out(&mut self, identity: &str) -> bool {
        let now = self.instant();
        match self.locked_out.get(identity) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.locked_out.remove(identity);
                false
            }
            None => false,
        }
    }

    /// Counts a calendar creation against the creation limit; past the limit the
    /// identity is locked out and the creation refused (403 `quotaExceeded`).
    pub fn admit_calendar_creation(&mut self, identity: &str) -> Result<(), ApiError> {
        if self.is_locked_out(identity) {
            return Err(ApiError::QuotaExceeded);
        }
        let Some(limit) = self.behaviour.creation_limit else {
            return Ok(());
        };
        let now = self.instant();
        let window = Duration::from_secs(limit.window_secs);
        let history = self.creations.entry(identity.to_owned()).or_default();
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            history.pop_front();
        }
        if history.len() >= usize::try_from(limit.max).unwrap_or(usize::MAX) {
            self.locked_out.insert(
                identity.to_owned(),
                now + Duration::from_secs(limit.lockout_secs),
            );
            return Err(ApiError::QuotaExceeded);
        }
        history.push_back(now);
        Ok(())
    }

    /// Wall-clock time, strictly increasing at millisecond precision (the
    /// precision of `updated`), so every change shows a later `updated`. Under bursts
    /// of more than one change per millisecond it runs slightly ahead.
    pub fn now(&mut self) -> DateTime<Utc> {
        let wall = Utc::now().timestamp_millis();
        self.last_millis = wall.max(self.last_millis + 1);
        DateTime::<Utc>::from_timestamp_millis(self.last_millis).unwrap_or_else(Utc::now)
    }

    /// [`calendar_resource_mut`](Self::calendar_resource_mut) for requests on what is
    /// *in* a calendar (events, ACL): within the propagation delay after creation they
    /// fail as the switch says, and due tombstones are purged first.
    pub fn calendar_mut(
        &mut self,
        calendar_id: &str,
        caller: &Caller,
        need: Access,
    ) -> Result<&mut Calendar, ApiError> {
        let now = self.instant();
        let behaviour = self.behaviour.clone();
        let calendar = self.calendar_resource_mut(calendar_id, caller, need)?;
        let fresh = calendar
            .created_at
            .is_some_and(|at| now.duration_since(at) < behaviour.fresh_calendar_delay);
        if fresh {
            return Err(if behaviour.fresh_calendar_status == 403 {
                ApiError::RequiredAccessLevel
            } else {
                ApiError::NotFound
            });
        }
        if let Some(ttl) = behaviour.tombstone_ttl {
            calendar.purge_tombstones(now, ttl);
        }
        Ok(calendar)
    }

    /// Resolves `primary` and checks that `caller` may access the calendar at `need`.
    /// Calendars the caller may not see are 404, as on Google.
    pub fn calendar_resource_mut(
        &mut self,
        calendar_id: &str,
        caller: &Caller,
        need: Access,
    ) -> Result<&mut Calendar, ApiError> {
        let id = if calendar_id == "primary" {
            self.ensure_primary(caller);
            caller.identity.clone()
        } else {
            calendar_id.to_owned()
        };
        let calendar = self.calendars.get_mut(&id).ok_or(ApiError::NotFound)?;
        let access = access_of(calendar, &caller.identity).ok_or(ApiError::NotFound)?;
        if access < need {
            return Err(if access >= Access::Reader {
                ApiError::Forbidden
            } else {
                ApiError::NotFound
            });
        }
        Ok(calendar)
    }

    /// The caller's primary calendar (id = its e-mail), created on first use.
    fn ensure_primary(&mut self, caller: &Caller) {
        if self.calendars.contains_key(&caller.identity) {
            return;
        }
        let now = self.now();
        let calendar = new_calendar(
            &caller.identity,
            &caller.identity,
            json!({"summary": caller.identity, "timeZone": "UTC"}),
            now,
        );
        self.calendar_order.push(caller.identity.clone());
        self.calendars.insert(caller.identity.clone(), calendar);
    }

    /// Bumps every calendar's sync epoch: all outstanding sync tokens expire.
    pub fn expire_sync_tokens(&mut self) {
        for calendar in self.calendars.values_mut() {
            calendar.sync_epoch += 1;
        }
    }
}

/// The access `identity` has to `calendar`, if any.
pub(crate) fn access_of(calendar: &Calendar, identity: &str) -> Option<Access> {
    if calendar.owner == identity {
        return Some(Access::Owner);
    }
    let user = calendar
        .acl
        .get(&format!("user:{identity}"))
        .and_then(|rule| rule["role"].as_str())
        .and_then(Access::from_role);
    let public = calendar
        .acl
        .get("default")
        .and_then(|rule| rule["role"].as_str())
        .and_then(Access::from_role);
    user.max(public)
}

/// A fresh calendar with its owner ACL rule. `fields` holds the client's
/// summary/description/location/timeZone.
pub(crate) fn new_calendar(id: &str, owner: &str, fields: Value, now: DateTime<Utc>) -> Calendar {
    let mut resource = json!({
        "kind": "calendar#calendar",
        "etag": etag_for(now),
        "id": id,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    copy_calendar_fields(&mut resource, &fields);
    let owner_rule_id = format!("user:{owner}");
    let mut acl = BTreeMap::new();
    acl.insert(
        owner_rule_id.clone(),
        json!({
            "kind": "calendar#aclRule",
            "etag": etag_for(now),
            "id": owner_rule_id,
            "scope": {"type": "user", "value": owner},
            "role": "owner",
        }),
    );
    Calendar {
        resource,
        owner: owner.to_owned(),
        events: BTreeMap::new(),
        acl,
        change_seq: 0,
        sync_epoch: 0,
        created_at: None,
        purged: BTreeSet::new(),
    }
}

/// Copies the writable calendar fields from `fields` into `resource`, clearing the
/// optional ones that are absent (update semantics).
pub(crate) fn copy_calendar_fields(resource: &mut Value, fields: &Value) {
    for key in ["summary", "description", "location"] {
        match fields.get(key) {
            Some(value) if !value.is_null() => resource[key] = value.clone(),
            _ => {
                if let Some(map) = resource.as_object_mut() {
                    map.remove(key);
                }
            }
        }
    }
    resource["timeZone"] = fields
        .get("timeZone")
        .filter(|v| v.is_string())
        .cloned()
        .unwrap_or_else(|| json!("UTC"));
}

/// Google's etags are quoted decimal strings.
pub(crate) fn etag_for(now: DateTime<Utc>) -> String {
    format!("\"{}\"", now.timestamp_micros() * 2)
}

/// Another etag for the same moment (even and odd never meet): what reads show
/// instead of the written one when etags drift.
pub(crate) fn drifted_etag(now: DateTime<Utc>) -> String {
    format!("\"{}\"", now.timestamp_micros() * 2 + 1)
}

/// RFC 3339 with milliseconds and `Z`, as in Google's `created`/`updated`.
pub(crate) fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Random lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A server-generated event id: 26 base32hex characters, like Google's.
pub(crate) fn random_event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::thread_rng();
    (0..26)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Google's rule for client-supplied event ids: base32hex (0-9, a-v), 5..=1024 chars.
pub(crate) fn is_valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_follow_googles_base32hex_rule() {
        let long = "a".repeat(1024);
        let too_long = "a".repeat(1025);
        let cases: [(&str, bool); 10] = [
            ("abcde", true),
            ("0123456789abcdefghijklmnopqrstuv", true),
            (long.as_str(), true),
            ("abcd", false),
            (too_long.as_str(), false),
            ("abcdw", false),
            ("bookingxyz", false),
            ("ABCDE", false),
            ("abc-de", false),
            ("abc_de", false),
        ];
        for (id, valid) in cases {
            assert_eq!(is_valid_event_id(id), valid, "{id}");
        }
    }

    #[test]
    fn generated_event_ids_are_valid_client_ids_too() {
        for _ in 0..100 {
            assert!(is_valid_event_id(&random_event_id()));
        }
    }

    #[test]
    fn store_clock_is_strictly_increasing() {
        let mut store = Store::new();
        let mut last = store.now();
        for _ in 0..1000 {
            let next = store.now();
            assert!(next > last);
            last = next;
        }
    }
}
