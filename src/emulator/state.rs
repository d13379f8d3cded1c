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
//! - Events are never removed: DELETE turns them into `status: cancelled`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Value};

use super::error::ApiError;

/// One stored event: the full resource as `events.get` returns it.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub body: Value,
    pub changed_seq: u64,
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
        }
    }

    /// Wall-clock time, strictly increasing at millisecond precision (the
    /// precision of `updated`), so every change shows a later `updated`. Under bursts
    /// of more than one change per millisecond it runs slightly ahead.
    pub fn now(&mut self) -> DateTime<Utc> {
        let wall = Utc::now().timestamp_millis();
        self.last_millis = wall.max(self.last_millis + 1);
        DateTime::<Utc>::from_timestamp_millis(self.last_millis).unwrap_or_else(Utc::now)
    }

    /// Resolves `primary` and checks that `caller` may access the calendar at `need`.
    /// Calendars the caller may not see are 404, as on Google.
    pub fn calendar_mut(
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
