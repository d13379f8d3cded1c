//! The pure sync planner: what to do in Google so the calendar matches our slots.
//!
//! Input: the desired events (one per slot of a booking in Creating/OK), our mapping
//! (what we pushed), and what this run's listing showed of our events. Output: a
//! deterministic list of operations. No I/O, no clock: tested as a table.
//!
//! Rules:
//! - a desired slot without a mapping is inserted under its deterministic id, or
//!   adopted when the listing shows it already exists (a crashed run, a legacy
//!   upstream event): adopted as is when its fingerprint property matches, else
//!   updated;
//! - a mapped slot is updated when its fingerprint changed, when the last push
//!   failed, or when the listing shows someone edited it or deleted it (a deleted
//!   event is revived by an update: its id stays reserved). "Edited" is read from the
//!   listed content (its fingerprint, [`SeenEvent::content`]) compared with what we
//!   wrote, never from etags: Google's etags are opaque and may change without an
//!   edit, which would make every run rewrite the previous run's writes;
//! - a mapped slot whose event is gone altogether (a full listing without even a
//!   tombstone, e.g. a purged one) is inserted again under the id it had;
//! - a mapped slot that is no longer desired is deleted (unless already deleted);
//!   events we own but cannot map (our property, slot gone) are deleted too;
//! - external events are never touched;
//! - the deletion guard holds back deletions above a share of our events unless forced
//!   (a calendar may always lose up to [`ALWAYS_DELETABLE`] events).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::calendar::MappedEvent;

/// Deletions the guard always allows: a small calendar may be emptied of a few events.
pub const ALWAYS_DELETABLE: usize = 3;

/// Status we give an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredStatus {
    /// The booking is `Creating` (not yet accepted).
    Tentative,
    /// The booking is `OK`.
    Confirmed,
}

/// One event as it should be in Google.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredEvent {
    pub backend_id: String,
    /// Deterministic id for inserts (`EventId::for_backend_id`).
    pub event_id: String,
    /// Upstream Waldur's id for this slot (`booking<hex>`), for adoption.
    pub legacy_id: String,
    pub summary: String,
    pub description: String,
    pub location: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub time_zone: String,
    pub status: DesiredStatus,
    pub fingerprint: String,
}

/// What the listing showed of an event that may be ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEvent {
    pub id: String,
    pub cancelled: bool,
    /// Recorded with the mapping; never compared (see the module docs).
    pub etag: Option<String>,
    /// Our private property naming the slot, if present.
    pub slot: Option<String>,
    /// Our private fingerprint property, if present.
    pub fingerprint: Option<String>,
    /// The fingerprint of the listed content (title, text, place, times, zone,
    /// status), computed as for a desired event; `None` for a tombstone.
    pub content: Option<String>,
}

/// One planned Google operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Insert under `event_id` (the slot's id, or the id its vanished event had).
    Insert {
        desired: DesiredEvent,
        event_id: String,
    },
    /// Update (PUT) an existing or deleted event to the desired content.
    Update {
        event_id: String,
        desired: DesiredEvent,
        reason: UpdateReason,
    },
    /// Record an existing event as ours without writing it.
    Adopt {
        event_id: String,
        backend_id: String,
        fingerprint: String,
        etag: Option<String>,
    },
    Delete {
        event_id: String,
        backend_id: Option<String>,
    },
    /// Forget a mapping whose event is already gone.
    Forget { backend_id: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateReason {
    Changed,
    RetryFailed,
    EditedRemotely,
    DeletedRemotely,
    Adopted,
}

/// Planner inputs.
pub struct PlanInput<'a> {
    pub desired: &'a [DesiredEvent],
    pub mapping: &'a BTreeMap<String, MappedEvent>,
    /// Events of the listing that are or may be ours (by id or by property).
    pub seen: &'a [SeenEvent],
    /// Whether the listing was complete (then a mapped event that is not listed at
    /// all no longer exists).
    pub full_listing: bool,
    /// Largest share of mapped events one run may delete.
    pub max_delete_share: f64,
    pub force: bool,
}

/// The plan and what it held back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub warnings: Vec<String>,
    /// Deletions held back by the guard.
    pub held_back: usize,
}

impl Plan {
    pub fn count(&self, f: impl Fn(&Op) -> bool) -> usize {
        self.ops.iter().filter(|o| f(o)).count()
    }
}

/// Whether a listed live event still shows what we wrote: its content is what we
/// pushed, or what Google answered to our write (if Google normalised something).
fn as_written(seen: &SeenEvent, m: &MappedEvent) -> bool {
    let content = seen.content.as_deref();
    content == Some(m.fingerprint.as_str()) || (content.is_some() && content == m.remote.as_deref())
}

/// Builds the plan. Deterministic: ops are ordered by slot start, then backend id.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    let by_id: BTreeMap<&str, &SeenEvent> = input.seen.iter().map(|s| (s.id.as_str(), s)).collect();
    let by_slot: BTreeMap<&str, &SeenEvent> = input
        .seen
        .iter()
        .filter_map(|s| s.slot.as_deref().map(|b| (b, s)))
        .collect();
    let mut desired: Vec<&DesiredEvent> = input.desired.iter().collect();
    desired.sort_by(|a, b| (a.start, &a.backend_id).cmp(&(b.start, &b.backend_id)));
    let desired_ids: BTreeSet<&str> = desired.iter().map(|d| d.backend_id.as_str()).collect();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();

    for d in &desired {
        match input.mapping.get(&d.backend_id) {
            None => {
                // Already there? Our id (a crashed run), our property, or upstream's id.
                let found = by_id
                    .get(d.event_id.as_str())
                    .or_else(|| by_slot.get(d.backend_id.as_str()))
                    .or_else(|| by_id.get(d.legacy_id.as_str()))
                    .copied();
                match found {
                    Some(s) => {
                        claimed.insert(s.id.as_str());
                        if !s.cancelled && s.content.as_deref() == Some(d.fingerprint.as_str()) {
                            out.ops.push(Op::Adopt {
                                event_id: s.id.clone(),
                                backend_id: d.backend_id.clone(),
                                fingerprint: d.fingerprint.clone(),
                                etag: s.etag.clone(),
                            });
                        } else {
                            out.ops.push(Op::Update {
                                event_id: s.id.clone(),
                                desired: (*d).clone(),
                                reason: UpdateReason::Adopted,
                            });
                        }
                    }
                    None => out.ops.push(Op::Insert {
                        desired: (*d).clone(),
                        event_id: d.event_id.clone(),
                    }),
                }
            }
            Some(m) => {
                claimed.insert(m.event_id.as_str());
                let seen = by_id.get(m.event_id.as_str());
                let reason = match seen {
                    Some(s) if s.cancelled => Some(UpdateReason::DeletedRemotely),
                    Some(s) if !as_written(s, m) => Some(UpdateReason::EditedRemotely),
                    _ if m.fingerprint != d.fingerprint => Some(UpdateReason::Changed),
                    _ if m.needs_push => Some(UpdateReason::RetryFailed),
                    None if input.full_listing => Some(UpdateReason::DeletedRemotely),
                    _ => None,
                };
                if let Some(reason) = reason {
                    if seen.is_none() && input.full_listing {
                        // Not even a tombstone: the event does not exist; create it.
                        out.ops.push(Op::Insert {
                            desired: (*d).clone(),
                            event_id: m.event_id.clone(),
                        });
                    } else {
                        out.ops.push(Op::Update {
                            event_id: m.event_id.clone(),
                            desired: (*d).clone(),
                            reason,
                        });
                    }
                }
            }
        }
    }

    // Deletions: mapped but no longer desired, and unmapped events carrying our property.
    let mut deletes = Vec::new();
    for (backend_id, m) in input.mapping {
        if desired_ids.contains(backend_id.as_str()) {
            continue;
        }
        claimed.insert(m.event_id.as_str());
        match by_id.get(m.event_id.as_str()) {
            Some(s) if s.cancelled => out.ops.push(Op::Forget {
                backend_id: backend_id.clone(),
            }),
            None if input.full_listing => out.ops.push(Op::Forget {
                backend_id: backend_id.clone(),
            }),
            _ => deletes.push(Op::Delete {
                event_id: m.event_id.clone(),
                backend_id: Some(backend_id.clone()),
            }),
        }
    }
    for s in input.seen {
        if s.cancelled || claimed.contains(s.id.as_str()) {
            continue;
        }
        if let Some(slot) = &s.slot {
            if !desired_ids.contains(slot.as_str()) {
                deletes.push(Op::Delete {
                    event_id: s.id.clone(),
                    backend_id: None,
                });
            }
        }
    }
    let owned = input.mapping.len().max(1);
    let limit = (input.max_delete_share * owned as f64).floor() as usize;
    // Small calendars may always be emptied of a few events; the guard is for mass deletion.
    if !input.force && deletes.len() > limit.max(ALWAYS_DELETABLE) {
        out.held_back = deletes.len();
        out.warnings.push(format!(
            "deletion guard: {} of {} owned events would be deleted (limit {:.0}%); none deleted, run with force to proceed",
            deletes.len(),
            input.mapping.len(),
            input.max_delete_share * 100.0
        ));
    } else {
        out.ops.extend(deletes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(bid: &str, h: u32, fp: &str) -> DesiredEvent {
        let t = |h| {
            Utc.with_ymd_and_hms(2030, 1, 1, h, 0, 0)
                .single()
                .expect("time")
        };
        DesiredEvent {
            backend_id: bid.into(),
            event_id: format!("bc{bid}"),
            legacy_id: format!("booking{bid}"),
            summary: "s".into(),
            description: String::new(),
            location: String::new(),
            start: t(h),
            end: t(h + 1),
            time_zone: "UTC".into(),
            status: DesiredStatus::Confirmed,
            fingerprint: fp.into(),
        }
    }
    fn m(eid: &str, fp: &str, etag: &str) -> MappedEvent {
        MappedEvent {
            event_id: eid.into(),
            fingerprint: fp.into(),
            etag: Some(etag.into()),
            needs_push: false,
            remote: None,
        }
    }
    /// A listed event whose content is what its fingerprint property says.
    fn seen(
        id: &str,
        cancelled: bool,
        etag: &str,
        slot: Option<&str>,
        fp: Option<&str>,
    ) -> SeenEvent {
        SeenEvent {
            id: id.into(),
            cancelled,
            etag: Some(etag.into()),
            slot: slot.map(String::from),
            fingerprint: fp.map(String::from),
            content: if cancelled {
                None
            } else {
                Some(fp.unwrap_or("upstream").into())
            },
        }
    }
    /// A listed event someone edited: its content no longer matches its property.
    fn edited(id: &str, etag: &str, slot: &str, fp: &str) -> SeenEvent {
        SeenEvent {
            content: Some("edited".into()),
            ..seen(id, false, etag, Some(slot), Some(fp))
        }
    }
    /// A compact rendering of a plan for the table.
    fn show(p: &Plan) -> Vec<String> {
        p.ops
            .iter()
            .map(|o| match o {
                Op::Insert { event_id, .. } => format!("insert {event_id}"),
                Op::Update {
                    event_id, reason, ..
                } => format!("update {event_id} {reason:?}"),
                Op::Adopt { event_id, .. } => format!("adopt {event_id}"),
                Op::Delete { event_id, .. } => format!("delete {event_id}"),
                Op::Forget { backend_id } => format!("forget {backend_id}"),
            })
            .collect()
    }

    #[test]
    fn planner_table() {
        struct Case {
            name: &'static str,
            desired: Vec<DesiredEvent>,
            mapping: Vec<(&'static str, MappedEvent)>,
            seen: Vec<SeenEvent>,
            full: bool,
            want: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "new slot is inserted under its deterministic id",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![],
                seen: vec![],
                full: true,
                want: vec!["insert bca"],
            },
            Case {
                name: "nothing changed, nothing to do",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![],
                full: false,
                want: vec![],
            },
            Case {
                name: "our own last write in the listing is not a change",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![seen("bca", false, "e1", Some("a"), Some("f1"))],
                full: false,
                want: vec![],
            },
            Case {
                name: "a changed slot is updated",
                desired: vec![d("a", 9, "f2")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![],
                full: false,
                want: vec!["update bca Changed"],
            },
            Case {
                name: "an event edited in Google is repaired",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![edited("bca", "e2", "a", "f1")],
                full: false,
                want: vec!["update bca EditedRemotely"],
            },
            Case {
                name: "an etag that changed without an edit is not a change",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![seen("bca", false, "e2-drifted", Some("a"), Some("f1"))],
                full: false,
                want: vec![],
            },
            Case {
                name: "content Google normalised after our write is not a change",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![(
                    "a",
                    MappedEvent {
                        remote: Some("edited".into()),
                        ..m("bca", "f1", "e1")
                    },
                )],
                seen: vec![edited("bca", "e2", "a", "f1")],
                full: false,
                want: vec![],
            },
            Case {
                name: "a purged event (gone from a full listing) is inserted under its id",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("g01bca", "f1", "e1"))],
                seen: vec![],
                full: true,
                want: vec!["insert g01bca"],
            },
            Case {
                name: "an event deleted in Google is revived, not re-inserted",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![seen("bca", true, "e2", None, None)],
                full: false,
                want: vec!["update bca DeletedRemotely"],
            },
            Case {
                name: "a mapped event missing from a full listing is inserted",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![],
                full: true,
                want: vec!["insert bca"],
            },
            Case {
                name: "a removed slot's event is deleted",
                desired: vec![],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![],
                full: false,
                want: vec!["delete bca"],
            },
            Case {
                name: "a removed slot whose event is already deleted is forgotten",
                desired: vec![],
                mapping: vec![("a", m("bca", "f1", "e1"))],
                seen: vec![seen("bca", true, "e2", None, None)],
                full: false,
                want: vec!["forget a"],
            },
            Case {
                name: "an event a crashed run created is adopted without a write",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![],
                seen: vec![seen("bca", false, "e1", Some("a"), Some("f1"))],
                full: false,
                want: vec!["adopt bca"],
            },
            Case {
                name: "a crashed run's stale event is adopted by an update",
                desired: vec![d("a", 9, "f2")],
                mapping: vec![],
                seen: vec![seen("bca", false, "e1", Some("a"), Some("f1"))],
                full: false,
                want: vec!["update bca Adopted"],
            },
            Case {
                name: "an upstream booking<hex> event is adopted, not duplicated",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![],
                seen: vec![seen("bookinga", false, "e1", None, None)],
                full: true,
                want: vec!["update bookinga Adopted"],
            },
            Case {
                name: "our orphan event (slot gone, mapping lost) is deleted",
                desired: vec![],
                mapping: vec![],
                seen: vec![seen("bcz", false, "e1", Some("z"), Some("f"))],
                full: false,
                want: vec!["delete bcz"],
            },
            Case {
                name: "external events are never touched",
                desired: vec![],
                mapping: vec![],
                seen: vec![seen("external1", false, "e1", None, None)],
                full: true,
                want: vec![],
            },
            Case {
                name: "a failed push is retried",
                desired: vec![d("a", 9, "f1")],
                mapping: vec![(
                    "a",
                    MappedEvent {
                        needs_push: true,
                        ..m("bca", "f1", "e1")
                    },
                )],
                seen: vec![],
                full: false,
                want: vec!["update bca RetryFailed"],
            },
            Case {
                name: "ops come in slot order",
                desired: vec![d("b", 11, "f"), d("a", 9, "f")],
                mapping: vec![],
                seen: vec![],
                full: true,
                want: vec!["insert bca", "insert bcb"],
            },
        ];
        for c in cases {
            let mapping: BTreeMap<String, MappedEvent> = c
                .mapping
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let p = plan(&PlanInput {
                desired: &c.desired,
                mapping: &mapping,
                seen: &c.seen,
                full_listing: c.full,
                max_delete_share: 0.5,
                force: false,
            });
            assert_eq!(show(&p), c.want, "{}", c.name);
        }
    }

    #[test]
    fn the_deletion_guard_holds_back_mass_deletion_unless_forced() {
        let mapping: BTreeMap<String, MappedEvent> = (0..10)
            .map(|i| (format!("s{i}"), m(&format!("bcs{i}"), "f", "e")))
            .collect();
        let keep: Vec<DesiredEvent> = (0..4).map(|i| d(&format!("s{i}"), 9, "f")).collect();
        // 6 of 10 would go: above 50%.
        let p = plan(&PlanInput {
            desired: &keep,
            mapping: &mapping,
            seen: &[],
            full_listing: false,
            max_delete_share: 0.5,
            force: false,
        });
        assert_eq!(p.held_back, 6);
        assert_eq!(p.count(|o| matches!(o, Op::Delete { .. })), 0);
        assert!(p.warnings[0].contains("deletion guard"));
        let p = plan(&PlanInput {
            desired: &keep,
            mapping: &mapping,
            seen: &[],
            full_listing: false,
            max_delete_share: 0.5,
            force: true,
        });
        assert_eq!(p.count(|o| matches!(o, Op::Delete { .. })), 6);
        // 5 of 10 is within the share.
        let keep5: Vec<DesiredEvent> = (0..5).map(|i| d(&format!("s{i}"), 9, "f")).collect();
        let p = plan(&PlanInput {
            desired: &keep5,
            mapping: &mapping,
            seen: &[],
            full_listing: false,
            max_delete_share: 0.5,
            force: false,
        });
        assert_eq!(p.count(|o| matches!(o, Op::Delete { .. })), 5);
    }

    #[test]
    fn plans_are_deterministic() {
        let desired: Vec<DesiredEvent> = (0..20)
            .map(|i| d(&format!("k{}", 19 - i), i % 5, "f"))
            .collect();
        let mapping = BTreeMap::new();
        let a = plan(&PlanInput {
            desired: &desired,
            mapping: &mapping,
            seen: &[],
            full_listing: true,
            max_delete_share: 0.5,
            force: false,
        });
        let mut rev = desired.clone();
        rev.reverse();
        let b = plan(&PlanInput {
            desired: &rev,
            mapping: &mapping,
            seen: &[],
            full_listing: true,
            max_delete_share: 0.5,
            force: false,
        });
        assert_eq!(a, b);
    }
}
