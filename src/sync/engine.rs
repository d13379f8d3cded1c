//! Running a sync: load state, list remote changes, plan, execute, persist.
//!
//! One run per offering at a time is the scheduler's job; this module assumes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::busy::{busy_slots, Window};
use super::plan::{
    plan, DesiredEvent, DesiredStatus, Op, Plan, PlanInput, SeenEvent, UpdateReason,
};
use crate::config::SyncSettings;
use crate::domain::booking_text::{self, BookingFacts};
use crate::domain::calendar::{
    CalendarState, ExtTime, ExternalEvent, MappedEvent, OfferingCalendar, RunSummary,
};
use crate::domain::{legacy_event_id, EventId, Id, ResourceState};
use crate::google::{
    AclRole, CalendarApi, Event, EventStatus, EventTime, GoogleError, GoogleErrorKind, ListMode,
    Transparency,
};
use crate::store::{Change, Store, StoreError};

/// Private extended properties that mark our events (keys <= 44 chars, Google's limit).
pub const PROP_SLOT: &str = "bookcalSlot";
pub const PROP_OFFERING: &str = "bookcalOffering";
pub const PROP_FINGERPRINT: &str = "bookcalFp";

/// Errors that fail a whole run (per-event problems are warnings in the report).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("offering {0} does not exist")]
    UnknownOffering(Id),
    #[error("Google credentials do not exist for this offering's provider")]
    NoCredentials,
    #[error("Google Calendar request failed")]
    Google(#[from] GoogleError),
    #[error("storage failure")]
    Store(#[from] StoreError),
}

/// Where the engine gets a Calendar client for a provider.
#[async_trait]
pub trait CalendarSource: Send + Sync {
    /// The client for `provider`, or `None` when it has no credentials.
    ///
    /// # Errors
    /// Building the client failed (an unreadable key).
    async fn client_for(&self, provider: Id) -> Result<Option<Arc<dyn CalendarApi>>, GoogleError>;
}

/// One client for every provider (a service account), or none.
pub struct SingleClient(pub Option<Arc<dyn CalendarApi>>);

#[async_trait]
impl CalendarSource for SingleClient {
    async fn client_for(&self, _provider: Id) -> Result<Option<Arc<dyn CalendarApi>>, GoogleError> {
        Ok(self.0.clone())
    }
}

/// Options of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Plan only: no writes to Google or the store (the listing still happens when a
    /// calendar exists).
    pub dry_run: bool,
    /// Override the deletion guards.
    pub force: bool,
}

/// What a run did (or, dry, would do).
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub offering: Id,
    pub summary: RunSummary,
    /// Human-readable plan lines (always filled).
    pub plan: Vec<String>,
    pub calendar_id: Option<String>,
}

/// The sync engine.
pub struct SyncEngine {
    pub store: Arc<Store>,
    pub source: Arc<dyn CalendarSource>,
    pub settings: SyncSettings,
    pub share_role: AclRole,
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

/// The events an offering's bookings should have, with their legacy ids.
fn desired_events(
    store: &Store,
    offering: Id,
) -> Result<(Vec<DesiredEvent>, BTreeSet<String>), StoreError> {
    let cat = store.read()?;
    let Some(off) = cat.offerings.get(&offering) else {
        return Ok((Vec::new(), BTreeSet::new()));
    };
    let ids: Vec<Id> = cat
        .resources_by_offering
        .get(&offering)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut legacy_all = BTreeSet::new();
    for id in ids {
        let Some(r) = store.resource(id)? else {
            continue;
        };
        for s in &r.slots {
            legacy_all.insert(legacy_event_id(&s.backend_id));
        }
        let status = match r.state {
            ResourceState::Creating => DesiredStatus::Tentative,
            ResourceState::Ok => DesiredStatus::Confirmed,
            _ => continue,
        };
        let facts = BookingFacts::look_up(&r, cat.directory());
        let reader = booking_text::Reader::Calendar;
        let summary = booking_text::title(&facts, reader);
        let description = booking_text::description(&facts, reader).unwrap_or_default();
        for s in &r.slots {
            let tz = off.time_zone.name().to_string();
            let st = match status {
                DesiredStatus::Tentative => "tentative",
                DesiredStatus::Confirmed => "confirmed",
            };
            let fp = fingerprint(&[
                &summary,
                &description,
                &off.location,
                &s.start.to_rfc3339(),
                &s.end.to_rfc3339(),
                &tz,
                st,
            ]);
            out.push(DesiredEvent {
                backend_id: s.backend_id.clone(),
                event_id: EventId::for_backend_id(&s.backend_id).to_string(),
                legacy_id: legacy_event_id(&s.backend_id),
                summary: summary.clone(),
                description: description.clone(),
                location: off.location.clone(),
                start: s.start,
                end: s.end,
                time_zone: tz,
                status,
                fingerprint: fp,
            });
        }
    }
    Ok((out, legacy_all))
}

fn to_event(offering: Id, d: &DesiredEvent, id: &str) -> Event {
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
    }
}

/// The outcome of one executed op.
enum Outcome {
    /// Set (Some) or remove (None) the mapping of this slot.
    Map(String, Option<MappedEvent>),
    /// Nothing to record (an orphan deleted).
    Nothing,
    Failed(String, Option<(String, MappedEvent)>),
}

fn describe(op: &Op) -> String {
    match op {
        Op::Insert(d) => format!(
            "insert {} {} ({} .. {})",
            d.event_id, d.summary, d.start, d.end
        ),
        Op::Update {
            event_id,
            desired,
            reason,
        } => format!("update {event_id} {} ({reason:?})", desired.summary),
        Op::Adopt {
            event_id,
            backend_id,
            ..
        } => format!("adopt {event_id} for slot {backend_id}"),
        Op::Delete { event_id, .. } => format!("delete {event_id}"),
        Op::Forget { backend_id } => format!("forget slot {backend_id} (event already deleted)"),
    }
}

async fn execute_op(
    api: Arc<dyn CalendarApi>,
    cal: String,
    offering: Id,
    op: Op,
    calls: Arc<AtomicU64>,
) -> Outcome {
    let mapped = |d: &DesiredEvent, ev: &Event| MappedEvent {
        event_id: ev.id.clone(),
        fingerprint: d.fingerprint.clone(),
        etag: ev.etag.clone(),
        needs_push: false,
    };
    let count = || calls.fetch_add(1, Ordering::Relaxed);
    match op {
        Op::Insert(d) => {
            count();
            let body = to_event(offering, &d, &d.event_id);
            let res = match api.event_insert(&cal, &body).await {
                // The id is taken by a deleted event (ids stay reserved): revive it.
                Err(e) if e.kind() == GoogleErrorKind::Duplicate => {
                    count();
                    api.event_update(&cal, &body).await
                }
                // A replayed insert met its earlier attempt with other content: update.
                Ok(ev) if ev.private_properties.get(PROP_FINGERPRINT) != Some(&d.fingerprint) => {
                    count();
                    api.event_update(&cal, &body).await
                }
                other => other,
            };
            match res {
                Ok(ev) => Outcome::Map(d.backend_id.clone(), Some(mapped(&d, &ev))),
                Err(e) => {
                    Outcome::Failed(format!("slot {}: insert failed: {e}", d.backend_id), None)
                }
            }
        }
        Op::Update {
            event_id,
            desired: d,
            reason,
        } => {
            count();
            let body = to_event(offering, &d, &event_id);
            let res = match api.event_update(&cal, &body).await {
                Err(e) if e.kind() == GoogleErrorKind::NotFound => {
                    count();
                    let fresh = to_event(offering, &d, &d.event_id);
                    api.event_insert(&cal, &fresh).await
                }
                other => other,
            };
            match res {
                Ok(ev) => Outcome::Map(d.backend_id.clone(), Some(mapped(&d, &ev))),
                Err(e) => Outcome::Failed(
                    format!("slot {}: update ({reason:?}) failed: {e}", d.backend_id),
                    Some((
                        d.backend_id.clone(),
                        MappedEvent {
                            event_id,
                            fingerprint: String::new(),
                            etag: None,
                            needs_push: true,
                        },
                    )),
                ),
            }
        }
        Op::Adopt {
            event_id,
            backend_id,
            fingerprint,
            etag,
        } => Outcome::Map(
            backend_id,
            Some(MappedEvent {
                event_id,
                fingerprint,
                etag,
                needs_push: false,
            }),
        ),
        Op::Delete {
            event_id,
            backend_id,
        } => {
            count();
            match api.event_delete(&cal, &event_id).await {
                Ok(()) => match backend_id {
                    Some(b) => Outcome::Map(b, None),
                    None => Outcome::Nothing,
                },
                Err(e) if matches!(e.kind(), GoogleErrorKind::Gone | GoogleErrorKind::NotFound) => {
                    match backend_id {
                        Some(b) => Outcome::Map(b, None),
                        None => Outcome::Nothing,
                    }
                }
                Err(e) => Outcome::Failed(format!("event {event_id}: delete failed: {e}"), None),
            }
        }
        Op::Forget { backend_id } => Outcome::Map(backend_id, None),
    }
}

impl SyncEngine {
    async fn client(
        &self,
        offering: Id,
    ) -> Result<(Arc<dyn CalendarApi>, crate::domain::Offering), SyncError> {
        let off = self
            .store
            .read()?
            .offerings
            .get(&offering)
            .cloned()
            .ok_or(SyncError::UnknownOffering(offering))?;
        let api = self
            .source
            .client_for(off.customer)
            .await?
            .ok_or(SyncError::NoCredentials)?;
        Ok((api, off))
    }

    fn save_calendar(&self, cal: &OfferingCalendar) -> Result<(), SyncError> {
        self.store.sync_put(vec![Store::calendar_change(cal)?])?;
        Ok(())
    }

    /// Creates the offering's calendar once, or renames it when the offering was
    /// renamed. The calendar id is stored before anything else happens.
    async fn ensure_calendar(
        &self,
        api: &Arc<dyn CalendarApi>,
        off: &crate::domain::Offering,
        cal: &mut OfferingCalendar,
        calls: &AtomicU64,
    ) -> Result<String, SyncError> {
        match cal.calendar_id.clone() {
            Some(id) => {
                if cal.synced_name.as_deref() != Some(off.name.as_str()) {
                    calls.fetch_add(2, Ordering::Relaxed);
                    let mut c = api.calendar_get(&id).await?;
                    c.summary = off.name.clone();
                    c.time_zone = Some(off.time_zone.name().to_string());
                    api.calendar_update(&c).await?;
                    cal.synced_name = Some(off.name.clone());
                    self.save_calendar(cal)?;
                }
                Ok(id)
            }
            None => {
                cal.state = CalendarState::Creating;
                self.save_calendar(cal)?;
                calls.fetch_add(1, Ordering::Relaxed);
                let c = api.calendar_insert(&off.name, off.time_zone.name()).await?;
                cal.calendar_id = Some(c.id.clone());
                cal.synced_name = Some(off.name.clone());
                self.save_calendar(cal)?;
                Ok(c.id)
            }
        }
    }

    fn fail(&self, offering: Id, err: &SyncError) {
        let msg = match err {
            SyncError::Google(g) => g.to_string(),
            other => other.to_string(),
        };
        if let Ok(Some(mut cal)) = self.store.calendar(offering) {
            cal.state = CalendarState::Erred;
            cal.last_error = Some(msg);
            cal.failures = cal.failures.saturating_add(1);
            if let Err(e) = self.save_calendar(&cal) {
                tracing::error!(offering = %offering, error = %e, "could not record a failed sync");
            }
        }
    }

    /// Shares (`public = true`) or unshares the offering's calendar.
    ///
    /// # Errors
    /// No credentials, or Google refused.
    pub async fn set_public(&self, offering: Id, public: bool) -> Result<(), SyncError> {
        let r = self.set_public_inner(offering, public).await;
        if let Err(e) = &r {
            self.fail(offering, e);
        }
        r
    }

    async fn set_public_inner(&self, offering: Id, public: bool) -> Result<(), SyncError> {
        let (api, off) = self.client(offering).await?;
        let mut cal = self
            .store
            .calendar(offering)?
            .unwrap_or_else(|| OfferingCalendar::new(offering));
        let calls = AtomicU64::new(0);
        let id = self.ensure_calendar(&api, &off, &mut cal, &calls).await?;
        if public {
            api.acl_insert(&id, self.share_role).await?;
        } else {
            match api.acl_delete(&id, "default").await {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), GoogleErrorKind::NotFound | GoogleErrorKind::Gone) => {
                }
                Err(e) => return Err(e.into()),
            }
        }
        cal.public = public;
        cal.state = CalendarState::Ok;
        cal.last_error = None;
        cal.failures = 0;
        self.save_calendar(&cal)
    }

    /// Syncs one offering.
    ///
    /// # Errors
    /// The run failed as a whole (no credentials, the calendar could not be created
    /// or listed, storage failure); the calendar record then says `Erred`.
    #[tracing::instrument(name = "sync_run", skip(self, opts), fields(offering = %offering, dry_run = opts.dry_run))]
    pub async fn sync_offering(
        &self,
        offering: Id,
        opts: RunOptions,
    ) -> Result<RunReport, SyncError> {
        let r = self.run(offering, opts).await;
        if let (Err(e), false) = (&r, opts.dry_run) {
            self.fail(offering, e);
        }
        r
    }

    async fn run(&self, offering: Id, opts: RunOptions) -> Result<RunReport, SyncError> {
        let started = Instant::now();
        let now = Utc::now();
        let (api, off) = self.client(offering).await?;
        let mut cal = self
            .store
            .calendar(offering)?
            .unwrap_or_else(|| OfferingCalendar::new(offering));
        let calls = Arc::new(AtomicU64::new(0));
        let (desired, legacy_ids) = desired_events(&self.store, offering)?;
        let mapping = self.store.mapping(offering)?;
        if opts.dry_run && cal.calendar_id.is_none() {
            let p = plan(&PlanInput {
                desired: &desired,
                mapping: &mapping,
                seen: &[],
                full_listing: true,
                max_delete_share: self.settings.max_delete_share,
                force: opts.force,
            });
            return Ok(RunReport {
                offering,
                plan: p.ops.iter().map(describe).collect(),
                ..RunReport::default()
            });
        }
        if !opts.dry_run {
            cal.state = if cal.calendar_id.is_some() {
                CalendarState::Updating
            } else {
                CalendarState::Creating
            };
            self.save_calendar(&cal)?;
        }
        let cal_id = match (&cal.calendar_id, opts.dry_run) {
            (Some(id), true) => id.clone(),
            _ => self.ensure_calendar(&api, &off, &mut cal, &calls).await?,
        };

        // Remote changes: incremental with the token, full the first time or after 410.
        let full_mode = ListMode::Full {
            show_deleted: true,
            time_min: None,
            single_events: false,
        };
        let (page, full) = match &cal.sync_token {
            Some(t) => match api.events_list(&cal_id, full_mode.continued(t)).await {
                Ok(p) => (p, false),
                Err(e) if e.kind() == GoogleErrorKind::SyncTokenExpired => {
                    calls.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(offering = %offering, "sync token expired; listing in full");
                    (api.events_list(&cal_id, full_mode).await?, true)
                }
                Err(e) => return Err(e.into()),
            },
            None => (api.events_list(&cal_id, full_mode).await?, true),
        };
        calls.fetch_add(u64::from(page.pages.max(1)), Ordering::Relaxed);

        // Split ours from external.
        let mapped_ids: BTreeSet<&str> = mapping.values().map(|m| m.event_id.as_str()).collect();
        let off_hex = offering.hex();
        let mut seen = Vec::new();
        let mut externals: BTreeMap<String, ExternalEvent> = if full {
            BTreeMap::new()
        } else {
            self.store
                .externals(offering)?
                .into_iter()
                .map(|e| (e.id.clone(), e))
                .collect()
        };
        let previous_busy = self.store.busy_slots(offering)?.len();
        for e in &page.events {
            let by_prop = e.private_properties.contains_key(PROP_SLOT)
                && e.private_properties
                    .get(PROP_OFFERING)
                    .is_none_or(|o| *o == off_hex);
            let ours = mapped_ids.contains(e.id.as_str()) || by_prop || legacy_ids.contains(&e.id);
            if ours {
                seen.push(SeenEvent {
                    id: e.id.clone(),
                    cancelled: e.status == EventStatus::Cancelled,
                    etag: e.etag.clone(),
                    slot: e.private_properties.get(PROP_SLOT).cloned(),
                    fingerprint: e.private_properties.get(PROP_FINGERPRINT).cloned(),
                });
                continue;
            }
            if e.status == EventStatus::Cancelled && e.recurring_event_id.is_none() {
                // A deleted event (and, with it, its exceptions).
                externals.remove(&e.id);
                externals.retain(|_, x| x.recurring_event_id.as_deref() != Some(e.id.as_str()));
                continue;
            }
            externals.insert(e.id.clone(), to_external(e));
        }
        let externals: Vec<ExternalEvent> = externals.into_values().collect();
        let tz = off.time_zone;
        let window = Window {
            from: now - Duration::days(30),
            to: now + Duration::days(i64::from(self.settings.horizon_days)),
        };
        let expansion = busy_slots(&externals, tz, &window);

        let p: Plan = plan(&PlanInput {
            desired: &desired,
            mapping: &mapping,
            seen: &seen,
            full_listing: full,
            max_delete_share: self.settings.max_delete_share,
            force: opts.force,
        });
        let mut report = RunReport {
            offering,
            plan: p.ops.iter().map(describe).collect(),
            calendar_id: Some(cal_id.clone()),
            ..RunReport::default()
        };
        let mut summary = RunSummary {
            started: Some(now),
            full_listing: full,
            ..RunSummary::default()
        };
        summary.warnings.extend(p.warnings.iter().cloned());
        summary.warnings.extend(expansion.warnings.iter().cloned());
        // Guard: a complete listing that empties a calendar's busy time is suspicious.
        let busy_guard = full && expansion.slots.is_empty() && previous_busy >= 5 && !opts.force;
        if busy_guard {
            summary.warnings.push(format!("busy-slot guard: the listing has no busy time where {previous_busy} busy slots were; kept them (run with force to accept)"));
        }
        if opts.dry_run {
            summary.busy_slots = expansion.slots.len() as u32;
            summary.api_calls = calls.load(Ordering::Relaxed);
            report.summary = summary;
            return Ok(report);
        }

        // Execute with bounded concurrency (the client's token bucket paces requests).
        let sem = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut set = JoinSet::new();
        for op in p.ops {
            match &op {
                Op::Insert(_) => summary.created += 1,
                Op::Update {
                    reason: UpdateReason::Adopted,
                    ..
                }
                | Op::Adopt { .. } => summary.adopted += 1,
                Op::Update { .. } => summary.updated += 1,
                Op::Delete { .. } => summary.deleted += 1,
                Op::Forget { .. } => {}
            }
            let (api, cal_id, calls, sem) =
                (api.clone(), cal_id.clone(), calls.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                execute_op(api, cal_id, offering, op, calls).await
            });
        }
        let mut changes: Vec<Change> = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Outcome::Map(bid, m)) => {
                    changes.push(Store::mapping_change(offering, &bid, m.as_ref())?)
                }
                Ok(Outcome::Nothing) => {}
                Ok(Outcome::Failed(msg, keep)) => {
                    tracing::warn!(offering = %offering, "{msg}");
                    summary.warnings.push(msg);
                    if let Some((bid, mut m)) = keep {
                        if let Some(old) = mapping.get(&bid) {
                            m.fingerprint = old.fingerprint.clone();
                            m.etag = old.etag.clone();
                        }
                        changes.push(Store::mapping_change(offering, &bid, Some(&m))?);
                    }
                }
                Err(e) => summary.warnings.push(format!("a sync task failed: {e}")),
            }
        }

        // Persist everything the listing implied, with its token, in one transaction.
        summary.busy_slots = expansion.slots.len() as u32;
        summary.api_calls = calls.load(Ordering::Relaxed);
        summary.duration_ms = started.elapsed().as_millis() as u64;
        if !busy_guard {
            changes.push(Store::externals_change(offering, &externals)?);
            changes.push(Change::Busy(offering, expansion.slots));
            cal.sync_token = page.next_sync_token.clone().or(cal.sync_token.take());
        }
        cal.state = CalendarState::Ok;
        cal.last_success = Some(Utc::now());
        cal.last_error = None;
        cal.failures = 0;
        cal.last_run = Some(summary.clone());
        changes.push(Store::calendar_change(&cal)?);
        self.store.sync_put(changes)?;
        report.summary = summary;
        tracing::info!(offering = %offering, created = report.summary.created, updated = report.summary.updated, deleted = report.summary.deleted, busy = report.summary.busy_slots, calls = report.summary.api_calls, "sync run finished");
        Ok(report)
    }
}
