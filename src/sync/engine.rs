//! Running a sync: load -> (ensure the calendar, list) -> decide -> execute -> persist.
//!
//! [`SyncEngine::run`] reads as those steps; every decision is made by the pure
//! functions of [`super::decide`] and [`super::plan`], so this module only does I/O:
//! store reads, Google calls, the one store transaction at the end. A dry run stops
//! after the decision. One run per offering at a time is the job queue's claim, taken
//! by the scheduler and by [`super::claim`] (`bookcal sync`); this module assumes it.
//!
//! Google's usage limits never make a run loop: a calendar that may not be created
//! yet (the hourly creation budget is spent, or Google paused the credential's
//! writes) ends the run with [`SyncError::Deferred`] and a time to come back; writes
//! held back during a run are pushed by a later run, and the report says when
//! ([`RunReport::retry_after`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::busy::Window;
use super::decide::{
    decide, desired_events, generation_id, generation_of, mapped, to_event, Booking, DecideInput,
    Decision, Desired, Target, MAX_GENERATIONS, PROP_FINGERPRINT,
};
use super::plan::{DesiredEvent, Op, UpdateReason};
use crate::config::SyncSettings;
use crate::domain::booking_text::{self, BookingFacts};
use crate::domain::calendar::{
    CalendarState, ExternalEvent, MappedEvent, OfferingCalendar, RunSummary, Waiting,
};
use crate::domain::{Id, Offering};
use crate::google::{
    google_time_zone, AclRole, CalendarApi, Event, EventPage, GoogleError, GoogleErrorKind,
    ListMode,
};
use crate::store::{Change, Store, StoreError};

pub use super::decide::{PROP_OFFERING, PROP_SLOT};

/// Errors that fail a whole run (per-event problems are warnings in the report).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("offering {0} does not exist")]
    UnknownOffering(Id),
    #[error("Google credentials do not exist for this offering's provider")]
    NoCredentials,
    /// Not an error of the offering: Google's usage limits ask us to wait.
    #[error("waiting for Google's usage limits: {reason}")]
    Deferred {
        reason: String,
        retry_after: StdDuration,
    },
    #[error("Google Calendar request failed")]
    Google(#[source] GoogleError),
    #[error("storage failure")]
    Store(#[from] StoreError),
    /// The run's claim on its offering was taken over (its lease ended without
    /// renewal): another process runs the offering now, so this run stopped.
    #[error("the offering's claim was lost to another process; its run stopped there")]
    ClaimLost,
}

impl From<GoogleError> for SyncError {
    /// A call held back by Google's usage limits (or refused by them) is a wait, not
    /// a failure.
    fn from(e: GoogleError) -> Self {
        match (e.kind(), e.retry_after()) {
            (GoogleErrorKind::Deferred | GoogleErrorKind::UsageLimited, Some(after)) => {
                SyncError::Deferred {
                    reason: e.message().to_owned(),
                    retry_after: after,
                }
            }
            _ => SyncError::Google(e),
        }
    }
}

impl SyncError {
    /// When a run that waits for Google's usage limits may run again.
    pub fn retry_after(&self) -> Option<StdDuration> {
        match self {
            SyncError::Deferred { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
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
    /// Decide only: no writes to Google or the store (the listing still happens when
    /// a calendar exists).
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
    /// Some writes waited for Google's usage limits: run again after this.
    pub retry_after: Option<StdDuration>,
}

/// The sync engine.
pub struct SyncEngine {
    pub store: Arc<Store>,
    pub source: Arc<dyn CalendarSource>,
    pub settings: SyncSettings,
    pub share_role: AclRole,
}

/// What a run starts from, read from the store.
struct Loaded {
    offering: Offering,
    calendar: OfferingCalendar,
    desired: Desired,
    mapping: BTreeMap<String, MappedEvent>,
    externals: Vec<ExternalEvent>,
    previous_busy: usize,
}

/// This run's look at the calendar.
#[derive(Default)]
struct Listing {
    calendar_id: Option<String>,
    page: EventPage,
    full: bool,
}

/// What executing a plan did.
#[derive(Default)]
struct Executed {
    changes: Vec<Change>,
    warnings: Vec<String>,
    retry_after: Option<StdDuration>,
    deferred: u32,
}

fn describe(op: &Op) -> String {
    match op {
        Op::Insert { desired, event_id } => format!(
            "insert {event_id} {} ({} .. {})",
            desired.summary, desired.start, desired.end
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

/// The outcome of one executed op.
enum Outcome {
    /// Set (Some) or remove (None) the mapping of this slot.
    Map(String, Option<MappedEvent>),
    /// Nothing to record (an orphan deleted).
    Nothing,
    /// A warning; the mapping to keep (marked for another push); when Google's usage
    /// limits held the write back, when to try again.
    Failed {
        warning: String,
        keep: Option<(String, MappedEvent)>,
        retry_after: Option<StdDuration>,
    },
}

/// One op against Google.
struct OpContext {
    api: Arc<dyn CalendarApi>,
    calendar: String,
    offering: Id,
    calls: Arc<AtomicU64>,
}

impl OpContext {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes `d` as an event, starting with `first_id` (updating it first when
    /// `update_first`). A deleted event is revived by update (its id stays reserved);
    /// when Google purged it (insert 409, update 404) the slot moves to the next
    /// generation of its id, so it is never stuck.
    async fn write(
        &self,
        d: &DesiredEvent,
        first_id: &str,
        update_first: bool,
    ) -> Result<Event, GoogleError> {
        let mut id = first_id.to_owned();
        if update_first {
            self.count();
            match self
                .api
                .event_update(&self.calendar, &to_event(self.offering, d, &id))
                .await
            {
                Err(e) if e.kind() == GoogleErrorKind::NotFound => {}
                other => return other,
            }
        }
        let mut last = None;
        for _ in 0..MAX_GENERATIONS {
            let body = to_event(self.offering, d, &id);
            self.count();
            match self.api.event_insert(&self.calendar, &body).await {
                // A replayed insert met its earlier attempt with other content.
                Ok(ev) if ev.private_properties.get(PROP_FINGERPRINT) != Some(&d.fingerprint) => {
                    self.count();
                    return self.api.event_update(&self.calendar, &body).await;
                }
                Ok(ev) => return Ok(ev),
                Err(e) if e.kind() == GoogleErrorKind::Duplicate => {
                    self.count();
                    match self.api.event_update(&self.calendar, &body).await {
                        Err(e) if e.kind() == GoogleErrorKind::NotFound => {
                            tracing::info!(event = %id, "event id purged by Google; taking the next generation");
                            id = generation_id(&d.backend_id, generation_of(&id) + 1);
                            last = Some(e);
                        }
                        other => return other,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            GoogleError::new(GoogleErrorKind::Other, "no free event id for the slot")
        }))
    }

    async fn run(&self, op: Op) -> Outcome {
        let failed = |warning: String, keep: Option<(String, MappedEvent)>, e: &GoogleError| {
            Outcome::Failed {
                warning,
                keep,
                retry_after: e.retry_after(),
            }
        };
        match op {
            Op::Insert { desired, event_id } => {
                match self.write(&desired, &event_id, false).await {
                    Ok(ev) => Outcome::Map(desired.backend_id.clone(), Some(mapped(&desired, &ev))),
                    Err(e) => failed(
                        format!("slot {}: insert failed: {e}", desired.backend_id),
                        None,
                        &e,
                    ),
                }
            }
            Op::Update {
                event_id,
                desired,
                reason,
            } => match self.write(&desired, &event_id, true).await {
                Ok(ev) => Outcome::Map(desired.backend_id.clone(), Some(mapped(&desired, &ev))),
                Err(e) => failed(
                    format!(
                        "slot {}: update ({reason:?}) failed: {e}",
                        desired.backend_id
                    ),
                    Some((
                        desired.backend_id.clone(),
                        MappedEvent {
                            event_id,
                            fingerprint: String::new(),
                            etag: None,
                            needs_push: true,
                            remote: None,
                        },
                    )),
                    &e,
                ),
            },
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
                    remote: None,
                }),
            ),
            Op::Delete {
                event_id,
                backend_id,
            } => {
                self.count();
                match self.api.event_delete(&self.calendar, &event_id).await {
                    Ok(()) => backend_id.map_or(Outcome::Nothing, |b| Outcome::Map(b, None)),
                    Err(e)
                        if matches!(
                            e.kind(),
                            GoogleErrorKind::Gone | GoogleErrorKind::NotFound
                        ) =>
                    {
                        backend_id.map_or(Outcome::Nothing, |b| Outcome::Map(b, None))
                    }
                    Err(e) => failed(format!("event {event_id}: delete failed: {e}"), None, &e),
                }
            }
            Op::Forget { backend_id } => Outcome::Map(backend_id, None),
        }
    }
}

fn later(a: Option<StdDuration>, b: Option<StdDuration>) -> Option<StdDuration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl SyncEngine {
    /// Everything a run starts from: the offering, its bookings with the names for
    /// their text, the calendar record, mapping, external events and busy count.
    async fn load(&self, offering: Id) -> Result<Loaded, SyncError> {
        let off = self
            .store
            .offering(offering)
            .await?
            .ok_or(SyncError::UnknownOffering(offering))?;
        let resources = self.store.offering_resources(offering).await?;
        let related = self
            .store
            .related(&crate::store::Wanted {
                users: resources.iter().map(|r| r.created_by).collect(),
                projects: resources.iter().map(|r| r.project).collect(),
                ..Default::default()
            })
            .await?;
        let bookings: Vec<Booking> = resources
            .into_iter()
            .map(|r| {
                let facts = BookingFacts::look_up(&r, related.directory());
                let summary = booking_text::title(&facts, booking_text::Reader::Calendar);
                let description = booking_text::description(&facts, booking_text::Reader::Calendar)
                    .unwrap_or_default();
                Booking {
                    state: r.state,
                    slots: r.slots,
                    summary,
                    description,
                }
            })
            .collect();
        let desired = desired_events(
            Target {
                location: &off.location,
                time_zone: google_time_zone(off.time_zone.name()),
            },
            &bookings,
        );
        Ok(Loaded {
            calendar: self
                .store
                .calendar(offering)
                .await?
                .unwrap_or_else(|| OfferingCalendar::new(offering)),
            mapping: self.store.mapping(offering).await?,
            externals: self.store.externals(offering).await?,
            previous_busy: self.store.busy_slots(offering).await?.len(),
            desired,
            offering: off,
        })
    }

    async fn client(&self, off: &Offering) -> Result<Arc<dyn CalendarApi>, SyncError> {
        self.source
            .client_for(off.customer)
            .await?
            .ok_or(SyncError::NoCredentials)
    }

    async fn save_calendar(&self, cal: &OfferingCalendar) -> Result<(), SyncError> {
        self.store
            .write(vec![Change::Calendar(cal.clone())])
            .await?;
        Ok(())
    }

    /// Creates the offering's calendar once, or renames it when the offering was
    /// renamed. The calendar id is stored before anything else happens. Creation
    /// waits (as [`SyncError::Deferred`]) while Google's usage limits say so; a
    /// rename held back by them is tried again next run.
    async fn ensure_calendar(
        &self,
        api: &Arc<dyn CalendarApi>,
        off: &Offering,
        cal: &mut OfferingCalendar,
        calls: &AtomicU64,
    ) -> Result<String, SyncError> {
        let zone = google_time_zone(off.time_zone.name()).to_owned();
        match cal.calendar_id.clone() {
            Some(id) => {
                if cal.synced_name.as_deref() != Some(off.name.as_str()) {
                    calls.fetch_add(1, Ordering::Relaxed);
                    let mut c = api.calendar_get(&id).await?;
                    c.summary = off.name.clone();
                    c.time_zone = Some(zone);
                    calls.fetch_add(1, Ordering::Relaxed);
                    match api.calendar_update(&c).await {
                        Ok(_) => {
                            cal.synced_name = Some(off.name.clone());
                            self.save_calendar(cal).await?;
                        }
                        Err(e) if e.kind() == GoogleErrorKind::Deferred => {
                            tracing::info!(offering = %off.id, error = %e, "calendar rename waits");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(id)
            }
            None => {
                cal.state = CalendarState::Creating;
                self.save_calendar(cal).await?;
                calls.fetch_add(1, Ordering::Relaxed);
                let c = api.calendar_insert(&off.name, &zone).await?;
                cal.calendar_id = Some(c.id.clone());
                cal.synced_name = Some(off.name.clone());
                self.save_calendar(cal).await?;
                Ok(c.id)
            }
        }
    }

    /// Records a failed run on the calendar record (Erred, the error, one more
    /// failure for the back-off).
    async fn fail(&self, offering: Id, err: &SyncError) {
        let msg = match err {
            SyncError::Google(g) => g.to_string(),
            other => other.to_string(),
        };
        if let Ok(Some(mut cal)) = self.store.calendar(offering).await {
            cal.state = CalendarState::Erred;
            cal.last_error = Some(msg);
            cal.failures = cal.failures.saturating_add(1);
            if let Err(e) = self.save_calendar(&cal).await {
                tracing::error!(offering = %offering, error = %e, "could not record a failed sync");
            }
        }
    }

    /// Records a run that waits for Google's usage limits: scheduled again (not
    /// Erred, no failure counted), with the reason and the time.
    async fn wait(&self, offering: Id, reason: &str, after: StdDuration) {
        let mut cal = match self.store.calendar(offering).await {
            Ok(Some(cal)) => cal,
            Ok(None) => OfferingCalendar::new(offering),
            Err(e) => {
                tracing::error!(offering = %offering, error = %e, "could not record a waiting sync");
                return;
            }
        };
        cal.state = if cal.calendar_id.is_some() {
            CalendarState::UpdateScheduled
        } else {
            CalendarState::CreationScheduled
        };
        cal.waiting = Some(Waiting {
            reason: reason.to_owned(),
            until: Utc::now() + Duration::from_std(after).unwrap_or_else(|_| Duration::days(1)),
        });
        if let Err(e) = self.save_calendar(&cal).await {
            tracing::error!(offering = %offering, error = %e, "could not record a waiting sync");
        }
    }

    /// Records the end of a run that did not succeed.
    async fn record_outcome(&self, offering: Id, err: &SyncError) {
        match err {
            SyncError::Deferred {
                reason,
                retry_after,
            } => {
                tracing::info!(offering = %offering, %reason, ?retry_after, "sync waits for Google's usage limits");
                self.wait(offering, reason, *retry_after).await;
            }
            other => self.fail(offering, other).await,
        }
    }

    /// Shares (`public = true`) or unshares the offering's calendar.
    ///
    /// # Errors
    /// No credentials, Google refused, or the calendar must wait for Google's usage
    /// limits ([`SyncError::Deferred`]).
    pub async fn set_public(&self, offering: Id, public: bool) -> Result<(), SyncError> {
        let r = self.set_public_inner(offering, public).await;
        if let Err(e) = &r {
            self.record_outcome(offering, e).await;
        }
        r
    }

    async fn set_public_inner(&self, offering: Id, public: bool) -> Result<(), SyncError> {
        let off = self
            .store
            .offering(offering)
            .await?
            .ok_or(SyncError::UnknownOffering(offering))?;
        let api = self.client(&off).await?;
        let mut cal = self
            .store
            .calendar(offering)
            .await?
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
        cal.waiting = None;
        self.save_calendar(&cal).await
    }

    /// Syncs one offering.
    ///
    /// # Errors
    /// The run failed as a whole (no credentials, the calendar could not be created
    /// or listed, storage failure); the calendar record then says `Erred`. Or it waits
    /// for Google's usage limits ([`SyncError::Deferred`]); the record then says why
    /// and until when.
    #[tracing::instrument(name = "sync_run", skip(self, opts), fields(offering = %offering, dry_run = opts.dry_run))]
    pub async fn sync_offering(
        &self,
        offering: Id,
        opts: RunOptions,
    ) -> Result<RunReport, SyncError> {
        let r = self.run(offering, opts).await;
        if let (Err(e), false) = (&r, opts.dry_run) {
            self.record_outcome(offering, e).await;
        }
        r
    }

    /// Syncs `targets` one after the other (as `bookcal sync` does), telling `each`
    /// how every run ended. Offerings that must wait for Google's usage limits cost
    /// no request once the limit is known.
    pub async fn sync_many(
        &self,
        targets: &[Id],
        opts: RunOptions,
        mut each: impl FnMut(Id, &Result<RunReport, SyncError>),
    ) {
        for id in targets {
            let r = self.sync_offering(*id, opts).await;
            each(*id, &r);
        }
    }

    /// load -> (ensure the calendar, list) -> decide -> execute -> persist.
    async fn run(&self, offering: Id, opts: RunOptions) -> Result<RunReport, SyncError> {
        let started = Instant::now();
        let now = Utc::now();
        let mut loaded = self.load(offering).await?;
        let api = self.client(&loaded.offering).await?;
        let calls = Arc::new(AtomicU64::new(0));
        let listing = self.look(&api, &mut loaded, opts, &calls).await?;
        let decision = decide(DecideInput {
            offering,
            desired: &loaded.desired,
            mapping: &loaded.mapping,
            previous_externals: std::mem::take(&mut loaded.externals),
            previous_busy: loaded.previous_busy,
            listed: &listing.page.events,
            full: listing.full,
            cal_tz: loaded.offering.time_zone,
            window: Window {
                from: now - Duration::days(30),
                to: now + Duration::days(i64::from(self.settings.horizon_days)),
            },
            max_delete_share: self.settings.max_delete_share,
            force: opts.force,
        });
        let mut summary = RunSummary {
            started: Some(now),
            full_listing: listing.full,
            busy_slots: u32::try_from(decision.busy.slots.len()).unwrap_or(u32::MAX),
            ..RunSummary::default()
        };
        summary
            .warnings
            .extend(decision.plan.warnings.iter().cloned());
        summary
            .warnings
            .extend(decision.busy.warnings.iter().cloned());
        summary.warnings.extend(decision.busy_guard.iter().cloned());
        let mut report = RunReport {
            offering,
            plan: decision.plan.ops.iter().map(describe).collect(),
            calendar_id: listing.calendar_id.clone(),
            ..RunReport::default()
        };
        let Some(calendar_id) = listing.calendar_id.clone().filter(|_| !opts.dry_run) else {
            // A dry run: the decision, not executed.
            summary.api_calls = calls.load(Ordering::Relaxed);
            report.summary = summary;
            return Ok(report);
        };
        for op in &decision.plan.ops {
            match op {
                Op::Insert { .. } => summary.created += 1,
                Op::Update {
                    reason: UpdateReason::Adopted,
                    ..
                }
                | Op::Adopt { .. } => summary.adopted += 1,
                Op::Update { .. } => summary.updated += 1,
                Op::Delete { .. } => summary.deleted += 1,
                Op::Forget { .. } => {}
            }
        }
        let ctx = Arc::new(OpContext {
            api: api.clone(),
            calendar: calendar_id,
            offering,
            calls: calls.clone(),
        });
        let executed = self
            .execute(ctx, decision.plan.ops.clone(), &loaded.mapping)
            .await?;
        summary.warnings.extend(executed.warnings.iter().cloned());
        summary.deferred = executed.deferred;
        summary.api_calls = calls.load(Ordering::Relaxed);
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.retry_after = executed.retry_after;
        self.persist(loaded, listing, decision, executed, &summary)
            .await?;
        report.summary = summary;
        tracing::info!(offering = %offering, created = report.summary.created, updated = report.summary.updated, deleted = report.summary.deleted, busy = report.summary.busy_slots, calls = report.summary.api_calls, "sync run finished");
        Ok(report)
    }

    /// The calendar's events now: nothing yet for a dry run without a calendar; else
    /// the calendar is created if needed, then listed incrementally with the stored
    /// token (repeating the full listing's parameters), or in full the first time and
    /// after a 410.
    async fn look(
        &self,
        api: &Arc<dyn CalendarApi>,
        loaded: &mut Loaded,
        opts: RunOptions,
        calls: &AtomicU64,
    ) -> Result<Listing, SyncError> {
        let cal = &mut loaded.calendar;
        if opts.dry_run && cal.calendar_id.is_none() {
            return Ok(Listing {
                full: true,
                ..Listing::default()
            });
        }
        if !opts.dry_run {
            cal.state = if cal.calendar_id.is_some() {
                CalendarState::Updating
            } else {
                CalendarState::Creating
            };
            self.save_calendar(cal).await?;
        }
        let calendar_id = match (&cal.calendar_id, opts.dry_run) {
            (Some(id), true) => id.clone(),
            _ => {
                self.ensure_calendar(api, &loaded.offering, cal, calls)
                    .await?
            }
        };
        let full_mode = ListMode::Full {
            show_deleted: true,
            time_min: None,
            single_events: false,
        };
        let (page, full) = match &cal.sync_token {
            Some(t) => match api.events_list(&calendar_id, full_mode.continued(t)).await {
                Ok(p) => (p, false),
                Err(e) if e.kind() == GoogleErrorKind::SyncTokenExpired => {
                    calls.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(offering = %cal.offering, "sync token expired; listing in full");
                    (api.events_list(&calendar_id, full_mode).await?, true)
                }
                Err(e) => return Err(e.into()),
            },
            None => (api.events_list(&calendar_id, full_mode).await?, true),
        };
        calls.fetch_add(u64::from(page.pages.max(1)), Ordering::Relaxed);
        Ok(Listing {
            calendar_id: Some(calendar_id),
            page,
            full,
        })
    }

    /// Runs the ops with bounded concurrency (the client's token bucket paces the
    /// requests) and turns their outcomes into store changes.
    async fn execute(
        &self,
        ctx: Arc<OpContext>,
        ops: Vec<Op>,
        mapping: &BTreeMap<String, MappedEvent>,
    ) -> Result<Executed, SyncError> {
        let sem = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut set = JoinSet::new();
        for op in ops {
            let (ctx, sem) = (ctx.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                ctx.run(op).await
            });
        }
        let offering = ctx.offering;
        let mut out = Executed::default();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Outcome::Map(bid, m)) => {
                    out.changes
                        .push(Store::mapping_change(offering, &bid, m.as_ref())?)
                }
                Ok(Outcome::Nothing) => {}
                Ok(Outcome::Failed {
                    warning,
                    keep,
                    retry_after,
                }) => {
                    if retry_after.is_some() {
                        out.deferred += 1;
                    } else {
                        tracing::warn!(offering = %offering, "{warning}");
                    }
                    out.retry_after = later(out.retry_after, retry_after);
                    out.warnings.push(warning);
                    if let Some((bid, mut m)) = keep {
                        if let Some(old) = mapping.get(&bid) {
                            m.fingerprint = old.fingerprint.clone();
                            m.etag = old.etag.clone();
                            m.remote = old.remote.clone();
                        }
                        out.changes
                            .push(Store::mapping_change(offering, &bid, Some(&m))?);
                    }
                }
                Err(e) => out.warnings.push(format!("a sync task failed: {e}")),
            }
        }
        Ok(out)
    }

    /// Stores, in one transaction, everything the listing implied (with its token)
    /// and what the writes did; a listing the busy-slot guard holds back leaves the
    /// external events, busy slots and token as they were.
    async fn persist(
        &self,
        loaded: Loaded,
        listing: Listing,
        decision: Decision,
        executed: Executed,
        summary: &RunSummary,
    ) -> Result<(), SyncError> {
        let offering = loaded.offering.id;
        let mut cal = loaded.calendar;
        let mut changes = executed.changes;
        let now = Utc::now();
        if decision.busy_guard.is_none() {
            changes.push(Store::externals_change(offering, &decision.externals)?);
            changes.push(Change::Busy(offering, decision.busy.slots));
            cal.sync_token = listing.page.next_sync_token.or(cal.sync_token.take());
            cal.busy_read_at = Some(now);
        }
        cal.state = CalendarState::Ok;
        cal.last_success = Some(now);
        cal.last_error = None;
        cal.failures = 0;
        cal.waiting = executed.retry_after.map(|after| Waiting {
            reason: format!(
                "{} change(s) wait for Google's usage limits",
                executed.deferred
            ),
            until: now + Duration::from_std(after).unwrap_or_else(|_| Duration::days(1)),
        });
        cal.last_run = Some(summary.clone());
        changes.push(Store::calendar_change(&cal)?);
        self.store.write(changes).await?;
        Ok(())
    }
}
