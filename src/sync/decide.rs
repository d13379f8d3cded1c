//! The engine's decisions, pure (no I/O, no clock), beside the planner: what the
//! offering's events should be, which listed events are ours, how an incremental
//! listing changes the known external events, when the busy-slot guard holds a
//! listing back, and which event id a slot gets when Google purged the one it had.
//! [`decide`] puts them together; the engine only loads, lists, executes what was
//! decided and persists it (a dry run is a decision not executed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::busy::{busy_slots, Expansion, Window};
use super::plan::{plan, DesiredEvent, DesiredStatus, Plan, PlanInput, SeenEvent};
use crate::domain::calendar::{ExtTime, ExternalEvent, MappedEvent};
use crate::domain::{legacy_event_id, EventId, Id, ResourceState, Slot};
use crate::google::{Event, EventStatus, EventTime, Transparency};

/// Private extended properties that mark our events (keys <= 44 chars, Google's limit).
pub const PROP_SLOT: &str = "bookcalSlot";
pub const PROP_OFFERING: &str = "bookcalOffering";
pub const PROP_FINGERPRINT: &str = "bookcalFp";

/// A complete listing that suddenly shows no busy time where at least this many busy
/// slots were is held back (kept as it was) unless forced: an emptied calendar is
/// more often a wrong account, a failed share or a bug than a free month.
pub const MIN_BUSY_SLOTS_FOR_GUARD: usize = 5;

/// Event ids tried for one slot when Google keeps purged ids taken.
pub const MAX_GENERATIONS: u32 = 32;

/// One booking of the offering, with its text for the calendar.
#[derive(Clone, Debug)]
pub struct Booking {
    pub state: ResourceState,
    pub slots: Vec<Slot>,
    pub summary: String,
    pub description: String,
}

/// What the offering's events are written with.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub location: &'a str,
    /// The zone name written to Google (an accepted alias of the offering's zone).
    pub time_zone: &'a str,
}

/// The events the bookings should have, and every upstream id their slots ever had.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub events: Vec<DesiredEvent>,
    /// Upstream Waldur's ids of every slot (any booking state), so that its events
    /// are recognised as ours.
    pub legacy_ids: BTreeSet<String>,
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

/// The fingerprint of an event's content as we write it; the same function reads a
/// listed event ([`listed_fingerprint`]), so equal content means equal fingerprints.
fn content_fingerprint(
    summary: &str,
    description: &str,
    location: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    time_zone: &str,
    status: &str,
) -> String {
    fingerprint(&[
        summary,
        description,
        location,
        &start.to_rfc3339(),
        &end.to_rfc3339(),
        time_zone,
        status,
    ])
}

fn status_word(status: DesiredStatus) -> &'static str {
    match status {
        DesiredStatus::Tentative => "tentative",
        DesiredStatus::Confirmed => "confirmed",
    }
}

/// The desired events of an offering's bookings: one per slot of a booking that is
/// being created (tentative) or accepted (confirmed).
pub fn desired_events(target: Target<'_>, bookings: &[Booking]) -> Desired {
    let mut out = Desired::default();
    for b in bookings {
        for s in &b.slots {
            out.legacy_ids.insert(legacy_event_id(&s.backend_id));
        }
        let status = match b.state {
            ResourceState::Creating => DesiredStatus::Tentative,
            ResourceState::Ok => DesiredStatus::Confirmed,
            _ => continue,
        };
        for s in &b.slots {
            out.events.push(DesiredEvent {
                backend_id: s.backend_id.clone(),
                event_id: EventId::for_backend_id(&s.backend_id).to_string(),
                legacy_id: legacy_event_id(&s.backend_id),
                summary: b.summary.clone(),
                description: b.description.clone(),
                location: target.location.to_owned(),
                start: s.start,
                end: s.end,
                time_zone: target.time_zone.to_owned(),
                status,
                fingerprint: content_fingerprint(
                    &b.summary,
                    &b.description,
                    target.location,
                    (s.start, s.end),
                    target.time_zone,
                    status_word(status),
                ),
            });
        }
    }
    out
}

/// The fingerprint of a listed event's content (`None` for a tombstone), comparable
/// with a desired event's.
pub fn listed_fingerprint(e: &Event) -> Option<String> {
    if e.status == EventStatus::Cancelled {
        return None;
    }
    let instant = |t: &Option<EventTime>| match t {
        Some(EventTime::DateTime { at, .. }) => Some(at.with_timezone(&Utc)),
        _ => None,
    };
    let zone = match &e.start {
        Some(EventTime::DateTime { time_zone, .. }) => time_zone.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let (Some(start), Some(end)) = (instant(&e.start), instant(&e.end)) else {
        // All-day or missing times: never what we write.
        return Some(fingerprint(&[&e.id, "not a booking"]));
    };
    Some(content_fingerprint(
        e.summary.as_deref().unwrap_or_default(),
        e.description.as_deref().unwrap_or_default(),
        e.location.as_deref().unwrap_or_default(),
        (start, end),
        &zone,
        e.status.as_str(),
    ))
}

/// The event we write for a desired slot, under `id`.
pub fn to_event(offering: Id, d: &DesiredEvent, id: &str) -> Event {
    let time = |t: DateTime<Utc>| EventTime::DateTime {
        at: t.fixed_offset(),
        time_zone: Some(d.time_zone.clone()),
    };
    let mut props = BTreeMap::new();
    props.insert(PROP_SLOT.to_string(), d.backend_id.clone());
    props.insert(PROP_OFFERING.to_string(), offering.hex());
    props.insert(PROP_FINGERPRINT.to_string(), d.fingerprint.clone());
    Event {
        id: id.to_string(),
        status: match d.status {
            DesiredStatus::Tentative => EventStatus::Tentative,
            DesiredStatus::Confirmed => EventStatus::Confirmed,
        },
        summary: Some(d.summary.clone()),
        description: Some(d.description.clone()),
        location: Some(d.location.clone()).filter(|l| !l.is_empty()),
        start: Some(time(d.start)),
        end: Some(time(d.end)),
        transparency: Transparency::Opaque,
        private_properties: props,
        ..Event::default()
    }
}

/// The mapping a successful write of `d` leaves: the event Google answered.
pub fn mapped(d: &DesiredEvent, written: &Event) -> MappedEvent {
    MappedEvent {
        event_id: written.id.clone(),
        fingerprint: d.fingerprint.clone(),
        etag: written.etag.clone(),
        needs_push: false,
        remote: listed_fingerprint(written).filter(|c| *c != d.fingerprint),
    }
}

/// The id of a slot's event in generation `n`: generation 0 is the slot's own id
/// (`bc` + base32hex of its backend_id); later generations (`g` + two base32hex
/// digits + the same encoding) are taken when Google purged the earlier event but
/// keeps its id reserved (insert 409, update 404). Deterministic, so a replayed run
/// finds the event an earlier attempt made.
pub fn generation_id(backend_id: &str, n: u32) -> String {
    let own = EventId::for_backend_id(backend_id).to_string();
    if n == 0 {
        return own;
    }
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let n = n.min(1023) as usize;
    let encoded = own.strip_prefix("bc").unwrap_or(&own);
    format!(
        "g{}{}{encoded}",
        char::from(DIGITS[n / 32]),
        char::from(DIGITS[n % 32])
    )
}

/// The generation of an event id made by [`generation_id`] (0 for any other id).
pub fn generation_of(event_id: &str) -> u32 {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'v' => Some(u32::from(c - b'a') + 10),
        _ => None,
    };
    match event_id.as_bytes() {
        [b'g', hi, lo, ..] => match (digit(*hi), digit(*lo)) {
            (Some(hi), Some(lo)) => hi * 32 + lo,
            _ => 0,
        },
        _ => 0,
    }
}

fn ext_time(t: &Option<EventTime>) -> Option<ExtTime> {
    match t {
        Some(EventTime::DateTime { at, time_zone }) => Some(ExtTime::Instant {
            at: at.with_timezone(&Utc),
            tz: time_zone.clone(),
        }),
        Some(EventTime::Date(d)) => Some(ExtTime::Date(*d)),
        None => None,
    }
}

fn to_external(e: &Event) -> ExternalEvent {
    ExternalEvent {
        id: e.id.clone(),
        status: e.status.as_str().to_string(),
        transparent: e.transparency == Transparency::Transparent,
        declined: e
            .attendees
            .iter()
            .any(|a| a.is_self && a.response_status.as_deref() == Some("declined")),
        event_type: e.event_type.clone(),
        start: ext_time(&e.start),
        end: ext_time(&e.end),
        recurrence: e.recurrence.clone(),
        recurring_event_id: e.recurring_event_id.clone(),
        original_start: ext_time(&e.original_start),
        summary: e.summary.clone(),
    }
}

/// How a listed external event changes what we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalChange {
    /// New or changed (cancelled instances of a series included: they hide that
    /// instance).
    Upsert(Box<ExternalEvent>),
    /// A deleted event, and with it its exceptions.
    Remove(String),
}

/// A listing split into our events and changes to the external ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classified {
    pub seen: Vec<SeenEvent>,
    pub external: Vec<ExternalChange>,
}

/// Ours: an event we mapped, one carrying our slot property (and, if it names one,
/// this offering), or one with an upstream id of a slot here. Everything else is
/// external, never touched, and may block bookings.
pub fn classify(
    events: &[Event],
    mapping: &BTreeMap<String, MappedEvent>,
    legacy_ids: &BTreeSet<String>,
    offering: Id,
) -> Classified {
    let mapped_ids: BTreeSet<&str> = mapping.values().map(|m| m.event_id.as_str()).collect();
    let off_hex = offering.hex();
    let mut out = Classified::default();
    for e in events {
        let by_prop = e.private_properties.contains_key(PROP_SLOT)
            && e.private_properties
                .get(PROP_OFFERING)
                .is_none_or(|o| *o == off_hex);
        if mapped_ids.contains(e.id.as_str()) || by_prop || legacy_ids.contains(&e.id) {
            out.seen.push(SeenEvent {
                id: e.id.clone(),
                cancelled: e.status == EventStatus::Cancelled,
                etag: e.etag.clone(),
                slot: e.private_properties.get(PROP_SLOT).cloned(),
                fingerprint: e.private_properties.get(PROP_FINGERPRINT).cloned(),
                content: listed_fingerprint(e),
            });
        } else if e.status == EventStatus::Cancelled && e.recurring_event_id.is_none() {
            out.external.push(ExternalChange::Remove(e.id.clone()));
        } else {
            out.external
                .push(ExternalChange::Upsert(Box::new(to_external(e))));
        }
    }
    out
}

/// The external events after a listing: a full listing replaces what was known, an
/// incremental one changes it.
pub fn merge_externals(
    previous: Vec<ExternalEvent>,
    changes: Vec<ExternalChange>,
    full: bool,
) -> Vec<ExternalEvent> {
    let mut known: BTreeMap<String, ExternalEvent> = if full {
        BTreeMap::new()
    } else {
        previous.into_iter().map(|e| (e.id.clone(), e)).collect()
    };
    for change in changes {
        match change {
            ExternalChange::Upsert(e) => {
                known.insert(e.id.clone(), *e);
            }
            ExternalChange::Remove(id) => {
                known.remove(&id);
                known.retain(|_, x| x.recurring_event_id.as_deref() != Some(id.as_str()));
            }
        }
    }
    known.into_values().collect()
}

/// The busy-slot guard: a complete listing that empties the busy time where at least
/// [`MIN_BUSY_SLOTS_FOR_GUARD`] busy slots were is held back unless forced. Returns
/// the warning when it holds.
pub fn busy_guard(full: bool, new_slots: usize, previous: usize, force: bool) -> Option<String> {
    (full && new_slots == 0 && previous >= MIN_BUSY_SLOTS_FOR_GUARD && !force).then(|| {
        format!("busy-slot guard: the listing has no busy time where {previous} busy slots were; kept them (run with force to accept)")
    })
}

/// Everything a decision is made from.
pub struct DecideInput<'a> {
    pub offering: Id,
    pub desired: &'a Desired,
    pub mapping: &'a BTreeMap<String, MappedEvent>,
    pub previous_externals: Vec<ExternalEvent>,
    pub previous_busy: usize,
    /// The listed events (empty for a calendar not created yet).
    pub listed: &'a [Event],
    pub full: bool,
    pub cal_tz: Tz,
    pub window: Window,
    pub max_delete_share: f64,
    pub force: bool,
}

/// What a run will do and what it will store.
#[derive(Debug)]
pub struct Decision {
    pub plan: Plan,
    pub externals: Vec<ExternalEvent>,
    pub busy: Expansion,
    /// Set when the busy-slot guard holds this listing back.
    pub busy_guard: Option<String>,
}

/// Classify, merge, expand busy time, guard, plan.
pub fn decide(input: DecideInput<'_>) -> Decision {
    let classified = classify(
        input.listed,
        input.mapping,
        &input.desired.legacy_ids,
        input.offering,
    );
    let externals = merge_externals(input.previous_externals, classified.external, input.full);
    let busy = busy_slots(&externals, input.cal_tz, &input.window);
    let guard = busy_guard(
        input.full,
        busy.slots.len(),
        input.previous_busy,
        input.force,
    );
    let plan = plan(&PlanInput {
        desired: &input.desired.events,
        mapping: input.mapping,
        seen: &classified.seen,
        full_listing: input.full,
        max_delete_share: input.max_delete_share,
        force: input.force,
    });
    Decision {
        plan,
        externals,
        busy,
        busy_guard: guard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn slot(b: &str, h: u32) -> Slot {
        Slot {
            start: t(h),
            end: t(h + 1),
            backend_id: b.into(),
        }
    }

    fn booking(state: ResourceState, slots: Vec<Slot>) -> Booking {
        Booking {
            state,
            slots,
            summary: "Seminar".into(),
            description: "Booking: Seminar".into(),
        }
    }

    const TARGET: Target<'static> = Target {
        location: "Room 1",
        time_zone: "Europe/Kiev",
    };

    fn offering() -> Id {
        Id::parse("0123456789abcdef0123456789abcdef").unwrap_or_default()
    }

    #[test]
    fn desired_events_follow_booking_states_and_keep_every_legacy_id() {
        let cases = [
            (ResourceState::Creating, Some(DesiredStatus::Tentative)),
            (ResourceState::Ok, Some(DesiredStatus::Confirmed)),
            (ResourceState::Terminated, None),
            (ResourceState::Erred, None),
        ];
        for (state, want) in cases {
            let d = desired_events(TARGET, &[booking(state, vec![slot("booking_1", 9)])]);
            assert_eq!(d.events.first().map(|e| e.status), want, "{state:?}");
            assert!(d.legacy_ids.contains("booking1"), "{state:?}");
        }
        let d = desired_events(
            TARGET,
            &[booking(
                ResourceState::Ok,
                vec![slot("b1", 9), slot("b2", 11)],
            )],
        );
        assert_eq!(d.events.len(), 2);
        assert!(d.events.iter().all(|e| e.time_zone == "Europe/Kiev"));
        assert_ne!(d.events[0].fingerprint, d.events[1].fingerprint);
    }

    #[test]
    fn a_written_event_read_back_has_the_fingerprint_it_was_written_with() {
        let d = desired_events(TARGET, &[booking(ResourceState::Ok, vec![slot("b1", 9)])]);
        let desired = &d.events[0];
        let mut written = to_event(offering(), desired, "bcxyz");
        // What Google sends back: UTC instants, the zone, server fields.
        written.etag = Some("\"1\"".into());
        assert_eq!(
            listed_fingerprint(&written).as_deref(),
            Some(desired.fingerprint.as_str())
        );
        type Edit = Box<dyn Fn(&mut Event)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("title", Box::new(|e| e.summary = Some("Other".into()))),
            ("text", Box::new(|e| e.description = None)),
            ("place", Box::new(|e| e.location = None)),
            (
                "time",
                Box::new(|e| {
                    e.start = Some(EventTime::DateTime {
                        at: t(8).fixed_offset(),
                        time_zone: Some("Europe/Kiev".into()),
                    })
                }),
            ),
            ("status", Box::new(|e| e.status = EventStatus::Tentative)),
        ];
        for (what, edit) in cases {
            let mut edited = written.clone();
            edit(&mut edited);
            assert_ne!(
                listed_fingerprint(&edited).as_deref(),
                Some(desired.fingerprint.as_str()),
                "an edited {what} is a change"
            );
        }
        written.status = EventStatus::Cancelled;
        assert_eq!(listed_fingerprint(&written), None);
    }

    #[test]
    fn listed_events_are_ours_by_mapping_property_or_upstream_id_and_the_rest_external() {
        let ours_prop = |off: Option<&str>| {
            let mut e = Event {
                id: "x1".into(),
                ..Event::default()
            };
            e.private_properties
                .insert(PROP_SLOT.into(), "booking_1".into());
            if let Some(o) = off {
                e.private_properties.insert(PROP_OFFERING.into(), o.into());
            }
            e
        };
        let plain = |id: &str, status: EventStatus, parent: Option<&str>| Event {
            id: id.into(),
            status,
            recurring_event_id: parent.map(String::from),
            ..Event::default()
        };
        let mapping: BTreeMap<String, MappedEvent> = [(
            "b".to_owned(),
            MappedEvent {
                event_id: "mapped1".into(),
                fingerprint: "f".into(),
                etag: None,
                needs_push: false,
                remote: None,
            },
        )]
        .into();
        let legacy: BTreeSet<String> = ["booking9".to_owned()].into();
        let here = offering().hex();
        let cases: Vec<(&str, Event, &str)> = vec![
            (
                "mapped",
                plain("mapped1", EventStatus::Confirmed, None),
                "ours",
            ),
            ("our property", ours_prop(None), "ours"),
            (
                "our property, this offering",
                ours_prop(Some(&here)),
                "ours",
            ),
            (
                "our property, another offering",
                ours_prop(Some("other")),
                "upsert",
            ),
            (
                "upstream id",
                plain("booking9", EventStatus::Confirmed, None),
                "ours",
            ),
            (
                "someone's event",
                plain("ext1", EventStatus::Confirmed, None),
                "upsert",
            ),
            (
                "a deleted event",
                plain("ext1", EventStatus::Cancelled, None),
                "remove",
            ),
            (
                "a cancelled instance",
                plain("ext1_x", EventStatus::Cancelled, Some("ext1")),
                "upsert",
            ),
        ];
        for (name, e, want) in cases {
            let c = classify(&[e], &mapping, &legacy, offering());
            let got = match (c.seen.len(), c.external.first()) {
                (1, None) => "ours",
                (0, Some(ExternalChange::Upsert(_))) => "upsert",
                (0, Some(ExternalChange::Remove(_))) => "remove",
                _ => "?",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn incremental_listings_change_the_known_external_events_and_full_ones_replace_them() {
        let ext = |id: &str, parent: Option<&str>| ExternalEvent {
            id: id.into(),
            status: "confirmed".into(),
            transparent: false,
            declined: false,
            event_type: None,
            start: None,
            end: None,
            recurrence: vec![],
            recurring_event_id: parent.map(String::from),
            original_start: None,
            summary: None,
        };
        let ids = |v: Vec<ExternalEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let previous = vec![ext("a", None), ext("s", None), ext("s_1", Some("s"))];
        let cases: Vec<(&str, Vec<ExternalChange>, bool, Vec<&str>)> = vec![
            ("nothing changed", vec![], false, vec!["a", "s", "s_1"]),
            (
                "a new event",
                vec![ExternalChange::Upsert(Box::new(ext("b", None)))],
                false,
                vec!["a", "b", "s", "s_1"],
            ),
            (
                "a deleted series takes its exceptions",
                vec![ExternalChange::Remove("s".into())],
                false,
                vec!["a"],
            ),
            (
                "a full listing replaces everything",
                vec![ExternalChange::Upsert(Box::new(ext("c", None)))],
                true,
                vec!["c"],
            ),
        ];
        for (name, changes, full, want) in cases {
            assert_eq!(
                ids(merge_externals(previous.clone(), changes, full)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_busy_guard_holds_only_a_complete_listing_that_empties_enough_busy_time() {
        let n = MIN_BUSY_SLOTS_FOR_GUARD;
        let cases = [
            ("emptied by a full listing", true, 0, n, false, true),
            ("forced", true, 0, n, true, false),
            ("incremental", false, 0, n, false, false),
            ("few busy slots before", true, 0, n - 1, false, false),
            ("some busy time left", true, 1, n, false, false),
        ];
        for (name, full, new, previous, force, holds) in cases {
            assert_eq!(
                busy_guard(full, new, previous, force).is_some(),
                holds,
                "{name}"
            );
        }
    }

    #[test]
    fn generations_of_a_slot_id_are_distinct_valid_and_readable() {
        let mut seen = BTreeSet::new();
        for n in [0, 1, 2, 31, 32, 33, 1023] {
            let id = generation_id("booking_5f2e", n);
            assert!(crate::domain::event_id::is_valid_event_id(&id), "{id}");
            assert_eq!(generation_of(&id), n, "{id}");
            assert!(seen.insert(id));
        }
        assert_eq!(
            generation_id("booking_5f2e", 0),
            EventId::for_backend_id("booking_5f2e").to_string()
        );
        assert_ne!(generation_id("a", 1), generation_id("b", 1));
        assert_eq!(generation_of("booking5f2e"), 0);
    }
}
