//! Google push notifications: one watch channel per offering calendar, kept open and
//! renewed, and the webhook (`POST /google/notifications`) that turns deliveries into
//! incremental syncs.
//!
//! The rules (when to open, renew or stop a channel; what a delivery means) are pure
//! and live in [`crate::domain::push`]; this module does the I/O: Google calls
//! through the sync engine's [`CalendarSource`], the push state in the store, the
//! scheduler's queue.
//!
//! Invariants:
//! - a channel's secret token is random (256 bits), sent to Google once and kept only
//!   as its SHA-256; it never reaches a log (`WatchRequest` prints it redacted);
//! - a delivery is acted on only when its channel id is the offering's current channel
//!   (or the one being opened) and its token hashes to the stored hash (compared in
//!   constant time); anything else is answered 404 and changes nothing;
//! - a channel is recorded as pending (id and token hash) before `events.watch` is
//!   called, since Google delivers its `sync` message before answering; the answer
//!   recorded or the call failed, the pending record goes, so it verifies nothing
//!   later;
//! - the webhook answers at once: it records the delivery and queues a sync in one
//!   store write, and the sync runs in the scheduler;
//! - every write of a push state is a read-modify-write in one store transaction
//!   that locks the state (`Load::push`), so a delivery counted while a channel is
//!   being renewed, here or in another process, is not lost;
//! - any process on the store can verify a delivery: one whose cache does not know
//!   the channel id reads the store before answering 404;
//! - where several processes share the store (PostgreSQL), one at a time opens,
//!   renews or stops an offering's channel: it takes the offering's upkeep claim in
//!   the transaction that reads the push state, and records its result only under
//!   that claim; a process that lost it (its lease ended and another took over) stops
//!   the channel it opened, so no orphan channel delivers; a claim whose process died
//!   ends with its lease (the store's job lease) and another process takes over;
//!   claims are judged by the store's clock (the database's on PostgreSQL), never
//!   by a replica's own;
//! - a channel is opened right after the sync that created its calendar, at start for
//!   every calendar without a live channel (so a restart re-creates what is missing or
//!   expired), renewed `renew_before` ahead of its expiration, and stopped when the
//!   calendar or its offering goes or the calendar is unshared for good (the unshare
//!   job done at Google; a share job done re-opens it); failed attempts back off (a
//!   minute doubling to a day) and polling covers the gap;
//! - while the store fails, the upkeep backs off (a second, doubling up to the look
//!   interval, pokes ignored), logs once per run of failures and once when the
//!   store answers again, which ends the back-off at once.
//!
//! Without a webhook address push is off: bookcal says so once and polls.

mod runner;
mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::jobs::{JobKind, JobRequest, Trigger};
use crate::domain::push::{
    may_record, next_look, open_backoff, read_notice, release, upkeep_turn, Channel, ChannelAction,
    Claim, Delivered, Notice, Outage, Pending, PushState, Turn, Watched,
};
use crate::domain::{Id, OfferingState};
use crate::google::{GoogleError, GoogleErrorKind, WatchRequest};
use crate::metrics::{Exposition, Observed};
use crate::store::{Change, Load, MutateError, Store, StoreError};
use crate::sync::CalendarSource;

pub use runner::PushRunner;
pub use webhook::{router, NOTIFICATIONS_PATH};

/// Offerings whose channels are opened, renewed or stopped at the same time.
const UPKEEP_CONCURRENCY: usize = 8;

/// Errors of channel upkeep (deliveries never fail this way: they answer 404 or 2xx).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("storage failure")]
    Store(#[from] StoreError),
    #[error("Google Calendar request failed")]
    Google(#[from] GoogleError),
    #[error("Google credentials do not exist for this offering's provider")]
    NoCredentials,
}

/// How push behaves.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The webhook address Google delivers to; `None`: push is off.
    pub address: Option<String>,
    /// Why push is off (said once at start), when it is.
    pub off_reason: Option<String>,
    /// Lifetime asked for each channel.
    pub ttl: Duration,
    /// A channel is replaced this long before it expires.
    pub renew_before: Duration,
    /// Periodic sync interval while an offering's channel is healthy.
    pub healthy_interval: Duration,
    /// The scheduler's usual periodic interval (`None`: no periodic syncs).
    pub usual_interval: Option<Duration>,
    /// How often the upkeep looks for channels to open, renew or stop (besides
    /// being poked after each sync run).
    pub look_every: Duration,
    /// How long an upkeep claim holds where several processes share the push states
    /// (the store's job lease on PostgreSQL); `None`: this process is their only
    /// writer (sled) and takes no claim.
    pub lease: Option<Duration>,
}

/// A delivery as the webhook read it from its headers.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub channel_id: String,
    /// `X-Goog-Channel-Token` (secret: never logged).
    pub token: Option<String>,
    pub resource_state: String,
    pub message_number: Option<u64>,
}

/// Process-wide counters for `/metrics` (per-offering figures are in the store).
#[derive(Default)]
struct Counts {
    received: AtomicU64,
    /// Channels' first (`sync`) messages, ignored.
    sync: AtomicU64,
    /// Repeated message numbers, ignored.
    duplicate: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
    renewed: AtomicU64,
    stopped: AtomicU64,
    open_failures: AtomicU64,
    /// Channels opened here but stopped at once: another process recorded one first.
    discarded: AtomicU64,
    /// Upkeep passes and upkeeps that the store failed.
    store_failures: AtomicU64,
}

/// The push side of the service.
pub struct PushService {
    store: Arc<Store>,
    source: Arc<dyn CalendarSource>,
    opts: PushOptions,
    /// Wakes the upkeep loop (a calendar may have been created).
    wake: Notify,
    /// The push states as last read or written here (refreshed from the store at
    /// every upkeep pass: other processes may write them too), and the channel id ->
    /// offering index of the webhook (a miss reads the store).
    cache: Mutex<Cache>,
    /// Offerings whose upkeep is running.
    inflight: Mutex<HashSet<Id>>,
    /// Bounds the upkeeps running at once.
    permits: Arc<tokio::sync::Semaphore>,
    counts: Counts,
    said_off: AtomicBool,
    /// The upkeep's current run of store failures (its back-off).
    outage: Mutex<Outage>,
}

#[derive(Default)]
struct Cache {
    states: HashMap<Id, PushState>,
    by_channel: HashMap<String, Id>,
}

impl Cache {
    fn put(&mut self, state: Option<PushState>, offering: Id) {
        if let Some(old) = self.states.remove(&offering) {
            for id in channel_ids(&old) {
                self.by_channel.remove(id);
            }
        }
        if let Some(state) = state {
            for id in channel_ids(&state) {
                self.by_channel.insert(id.to_owned(), offering);
            }
            self.states.insert(offering, state);
        }
    }

    /// Replaces everything with the states as stored.
    fn replace(&mut self, states: Vec<PushState>) {
        *self = Cache::default();
        for state in states {
            let offering = state.offering;
            self.put(Some(state), offering);
        }
    }
}

/// The ids of the offering's channels a delivery may name: the current one and the
/// one being opened.
fn channel_ids(state: &PushState) -> impl Iterator<Item = &str> {
    let current = state.channel.as_ref().map(|c| c.id.as_str());
    current
        .into_iter()
        .chain(state.pending.as_ref().map(|p| p.id.as_str()))
}

/// SHA-256 (hex) of a channel token.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl PushService {
    /// # Errors
    /// The store cannot be read (the push states are loaded from it).
    pub async fn new(
        store: Arc<Store>,
        source: Arc<dyn CalendarSource>,
        opts: PushOptions,
    ) -> Result<Self, StoreError> {
        let mut cache = Cache::default();
        cache.replace(store.push_states().await?);
        Ok(PushService {
            store,
            source,
            opts,
            wake: Notify::new(),
            cache: Mutex::new(cache),
            inflight: Mutex::new(HashSet::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(UPKEEP_CONCURRENCY)),
            counts: Counts::default(),
            said_off: AtomicBool::new(false),
            outage: Mutex::new(Outage::default()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether push is on (a webhook address is known).
    pub fn enabled(&self) -> bool {
        self.opts.address.is_some()
    }

    /// The webhook address, when push is on.
    pub fn address(&self) -> Option<&str> {
        self.opts.address.as_deref()
    }

    /// The push state of an offering, as stored.
    pub fn state(&self, offering: Id) -> Option<PushState> {
        self.cache().states.get(&offering).cloned()
    }

    /// The periodic sync interval of `offering` while its channel is healthy; `None`
    /// when it is not (then the scheduler's usual interval applies).
    pub fn poll_interval(&self, offering: Id) -> Option<Duration> {
        let healthy = self
            .cache()
            .states
            .get(&offering)
            .is_some_and(|s| s.healthy(Utc::now()));
        (self.enabled() && healthy).then_some(self.opts.healthy_interval)
    }

    /// Asks the upkeep loop to look at the channels now (after a sync run: it may
    /// have created a calendar).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Records that the offering's calendar was shared (`false`) or unshared for good
    /// (`true`) at Google, and has the upkeep look: an unshared calendar's channel is
    /// stopped (polling returns to the usual interval) and none is opened until the
    /// calendar is shared again.
    ///
    /// # Errors
    /// The store cannot be written.
    pub async fn set_unshared(&self, offering: Id, unshared: bool) -> Result<(), StoreError> {
        self.update(offering, |state, _| {
            let write = (state.unshared != unshared).then(|| {
                state.unshared = unshared;
                (Vec::new(), true)
            });
            ((), write)
        })
        .await?;
        self.poke();
        Ok(())
    }

    /// Reads, changes and writes an offering's push state in one store transaction
    /// that locks it against every other writer (in this process or another). `f`
    /// sees the stored state (a new one when none is) and the time by the clock push
    /// claims are judged by (see [`Store::push_clock`]), and returns its answer with
    /// `None` to write nothing, or `Some((extra, keep))` to write the state (or,
    /// without `keep`, remove it) with the `extra` changes. `f` may run more than
    /// once (a transaction that lost a race runs again), so it has no side effects.
    /// Returns `f`'s answer and the state as stored afterwards.
    async fn update<T>(
        &self,
        offering: Id,
        f: impl Fn(&mut PushState, DateTime<Utc>) -> (T, Option<(Vec<Change>, bool)>),
    ) -> Result<(T, Option<PushState>), StoreError> {
        let load = Load {
            push: vec![offering],
            ..Load::default()
        };
        let (out, stored) = self
            .store
            .mutate(&load, |view| {
                let before = view.push.get(&offering).cloned();
                let mut state = before.clone().unwrap_or_else(|| PushState::new(offering));
                let (out, write) = f(&mut state, view.now.unwrap_or_else(Utc::now));
                Ok::<_, std::convert::Infallible>(match write {
                    None => (Vec::new(), (out, before)),
                    Some((mut changes, keep)) => {
                        changes.push(if keep {
                            Store::push_change(&state)
                        } else {
                            Store::push_removal(offering)
                        });
                        (changes, (out, keep.then_some(state)))
                    }
                })
            })
            .await
            .map_err(|e| match e {
                MutateError::Store(e) => e,
                MutateError::Refused(never) => match never {},
            })?;
        self.cache().put(stored.clone(), offering);
        Ok((out, stored))
    }

    /// The change that queues an incremental sync of `offering` now (coalesced with
    /// a pending sync of the offering by the queue).
    fn sync_request(offering: Id, now: DateTime<Utc>) -> Change {
        Change::Enqueue(JobRequest {
            offering,
            kind: JobKind::Sync,
            trigger: Trigger::Remote,
            due: now,
        })
    }

    /// The change that brings the offering's next regular sync to the usual
    /// interval (its channel stopped being healthy, so polling is all it has).
    fn usual_poll(&self, offering: Id, now: DateTime<Utc>) -> Vec<Change> {
        self.opts
            .usual_interval
            .map(|i| {
                Change::Enqueue(JobRequest {
                    offering,
                    kind: JobKind::Sync,
                    trigger: Trigger::Periodic,
                    due: now + chrono_duration(i),
                })
            })
            .into_iter()
            .collect()
    }

    /// Handles one delivery; returns whether it came from one of our channels (else
    /// the webhook answers 404 and nothing changed). A change queues a sync, in the
    /// same write that counts the delivery.
    ///
    /// # Errors
    /// The store cannot be written (the webhook answers 500; Google retries).
    pub async fn receive(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let cached = self.cache().by_channel.get(&delivery.channel_id).copied();
        let offering = match cached {
            Some(offering) => Some(offering),
            // Opened by another process, or since this one last looked.
            None => {
                self.store
                    .push_offering_by_channel(&delivery.channel_id)
                    .await?
            }
        };
        let Some(offering) = offering else {
            self.counts.rejected.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        };
        let now = Utc::now();
        let poll = self.usual_poll(offering, now);
        let (notice, _) = self
            .update(offering, |state, _| {
                let to = state.delivered_to(&delivery.channel_id);
                let token_ok = match (to, &delivery.token) {
                    (Some(to), Some(t)) => subtle::ConstantTimeEq::ct_eq(
                        token_hash(t).as_bytes(),
                        to.token_hash().as_bytes(),
                    )
                    .into(),
                    _ => false,
                };
                let current = matches!(to, Some(Delivered::Current(_)));
                let notice = read_notice(
                    to,
                    token_ok,
                    &delivery.resource_state,
                    delivery.message_number,
                );
                let write = match notice {
                    Notice::Unknown => None,
                    Notice::Sync | Notice::Duplicate => {
                        state.ignored += 1;
                        Some((Vec::new(), true))
                    }
                    Notice::Changed | Notice::Gone => {
                        state.received += 1;
                        state.last_notification = Some(now);
                        // (A channel being opened has no record to number yet.)
                        if let (Some(c), Some(n), true) =
                            (state.channel.as_mut(), delivery.message_number, current)
                        {
                            c.last_message = c.last_message.max(n);
                        }
                        let mut changes = vec![Self::sync_request(offering, now)];
                        if notice == Notice::Gone {
                            // Google ended the channel with its calendar.
                            state.channel = None;
                            changes.extend(poll.iter().cloned());
                        }
                        Some((changes, true))
                    }
                };
                (notice, write)
            })
            .await?;
        match notice {
            Notice::Unknown => {
                self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            Notice::Sync => {
                self.counts.sync.fetch_add(1, Ordering::Relaxed);
            }
            Notice::Duplicate => {
                self.counts.duplicate.fetch_add(1, Ordering::Relaxed);
            }
            Notice::Changed => {
                self.counts.received.fetch_add(1, Ordering::Relaxed);
            }
            Notice::Gone => {
                self.counts.received.fetch_add(1, Ordering::Relaxed);
                self.poke();
            }
        }
        Ok(true)
    }

    /// Keeps channels right until `shutdown`: a pass over every offering at start,
    /// then whenever poked, when a channel is due for renewal or a failed one for a
    /// retry, and at least every `look_every`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if let Some(reason) = &self.opts.off_reason {
            if !self.said_off.swap(true, Ordering::Relaxed) {
                tracing::warn!("push notifications are off ({reason}); Google's changes arrive by polling only");
            }
        }
        loop {
            let next = match self.pass().await {
                Ok(next) => {
                    self.store_answered();
                    next
                }
                Err(e) => {
                    self.store_failed(&e);
                    None
                }
            };
            let backoff = self.outage().backoff(self.opts.look_every);
            if let Some(wait) = backoff {
                // The store fails: no look before the back-off ends, however often
                // the loop is poked meanwhile.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {},
                }
                continue;
            }
            let until = next.map_or(self.opts.look_every, |d| d.min(self.opts.look_every));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(until) => {},
            }
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a store failure of the upkeep; the first of a run is logged (the
    /// upkeep backs off until the store answers again).
    fn store_failed(&self, error: &StoreError) {
        self.counts.store_failures.fetch_add(1, Ordering::Relaxed);
        if self.outage().failed() {
            tracing::error!(%error, "push upkeep cannot use the store; it looks again after a second, doubling up to google.push_look_secs, and says when the store answers");
        }
    }

    /// The store answered the upkeep: a run of failures, if any, is over.
    fn store_answered(&self) {
        let failures = self.outage().answered();
        if failures > 0 {
            tracing::info!(failures, "push upkeep uses the store again");
        }
    }

    /// One look at every offering that has a calendar or a push state (as stored:
    /// the cache is refreshed), starting the upkeep of those whose channel needs
    /// opening, renewing or stopping and that no other process is at (the look itself
    /// only reads). Returns how long until a channel is next due for renewal or a
    /// retry, or another process's claim ends (by the clock claims are judged by,
    /// [`Store::push_clock`], like every decision of the upkeep).
    ///
    /// # Errors
    /// The store cannot be read (nothing was started).
    pub async fn pass(self: &Arc<Self>) -> Result<Option<Duration>, StoreError> {
        let now = self.store.push_clock().await?;
        let due = self.due_offerings(now).await?;
        // Offerings side by side and in the background (a slow Google answer for one
        // holds up neither the others nor the next pass), a few at a time, one upkeep
        // per offering at a time.
        for offering in due {
            let fresh = self
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(offering);
            if !fresh {
                continue;
            }
            let push = Arc::clone(self);
            tokio::spawn(async move {
                let permit = push.permits.clone().acquire_owned().await;
                let result = push.upkeep(offering).await;
                drop(permit);
                push.inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&offering);
                match result {
                    // Looked at again once the store answers (no wake: a store
                    // that fails would be asked again at once).
                    Err(PushError::Store(e)) => push.store_failed(&e),
                    Err(e) => {
                        tracing::warn!(%offering, error = %e, "push channel upkeep failed");
                    }
                    // The upkeep may have opened or renewed a channel, so the loop
                    // looks again and sleeps until that channel's own renewal time,
                    // not the one it computed before this upkeep ended.
                    Ok(()) => push.wake.notify_one(),
                }
            });
        }
        let renew_before = chrono_duration(self.opts.renew_before);
        Ok(self
            .cache()
            .states
            .values()
            .filter_map(|s| next_look(s, now, renew_before))
            .min()
            .and_then(|at| (at - now).to_std().ok()))
    }

    /// Whether each offering is live (exists, not archived) and its provider.
    async fn offerings(&self) -> Result<HashMap<Id, (bool, Id)>, StoreError> {
        Ok(self
            .store
            .all_offerings()
            .await?
            .into_iter()
            .map(|o| (o.id, (o.state != OfferingState::Archived, o.customer)))
            .collect())
    }

    /// The offerings whose channel the rules want changed now.
    async fn due_offerings(&self, now: DateTime<Utc>) -> Result<Vec<Id>, StoreError> {
        let calendars: HashMap<Id, Option<String>> = self
            .store
            .calendars()
            .await?
            .into_iter()
            .map(|c| (c.offering, c.calendar_id))
            .collect();
        let offerings = self.offerings().await?;
        let stored = self.store.push_states().await?;
        let mut cache = self.cache();
        cache.replace(stored);
        let mut ids: Vec<Id> = calendars
            .keys()
            .chain(cache.states.keys())
            .copied()
            .collect();
        ids.sort();
        ids.dedup();
        let renew_before = chrono_duration(self.opts.renew_before);
        Ok(ids
            .into_iter()
            .filter(|id| {
                let watched = Watched {
                    offering_live: offerings.get(id).is_some_and(|(live, _)| *live),
                    calendar_id: calendars.get(id).and_then(|c| c.as_deref()),
                };
                matches!(
                    upkeep_turn(
                        cache.states.get(id),
                        watched,
                        self.opts.address.as_deref(),
                        now,
                        renew_before,
                        self.opts.lease.is_some(),
                    ),
                    Turn::Act(_)
                )
            })
            .collect())
    }

    /// Opens, renews or stops the offering's channel as the rules say, when no
    /// other process is at it: the decision is taken again on the stored state, in
    /// the transaction that takes the offering's upkeep claim.
    ///
    /// # Errors
    /// Storage failure (Google failures are recorded in the push state).
    pub async fn upkeep(&self, offering: Id) -> Result<(), PushError> {
        let now = Utc::now();
        let renew_before = chrono_duration(self.opts.renew_before);
        let calendar = self.store.calendar(offering).await?;
        let (live, customer) = match self.store.offering(offering).await? {
            Some(o) => (o.state != OfferingState::Archived, Some(o.customer)),
            None => (false, None),
        };
        let calendar_id = calendar.as_ref().and_then(|c| c.calendar_id.clone());
        let watched = Watched {
            offering_live: live,
            calendar_id: calendar_id.as_deref(),
        };
        let address = self.opts.address.as_deref();
        let lease = self.opts.lease;
        let token = uuid::Uuid::new_v4().to_string();
        // The channel to ask for, should the rules want one: recorded as pending with
        // the claim, before Google is asked, since Google may deliver the channel's
        // `sync` message before it answers.
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let request = WatchRequest {
            id: uuid::Uuid::new_v4().to_string(),
            address: address.unwrap_or_default().to_owned(),
            token: hex::encode(secret),
            ttl: self.opts.ttl,
        };
        let pending = Pending {
            id: request.id.clone(),
            token_hash: token_hash(&request.token),
        };
        let (turn, state) = self
            .update(offering, |state, now| {
                let turn = upkeep_turn(
                    Some(state),
                    watched,
                    address,
                    now,
                    renew_before,
                    lease.is_some(),
                );
                let Turn::Act(action) = turn else {
                    return (turn, None);
                };
                if let Some(lease) = lease {
                    state.claim = Some(Claim {
                        token: token.clone(),
                        until: now + chrono_duration(lease),
                    });
                }
                state.pending = match action {
                    ChannelAction::Open | ChannelAction::Renew => Some(pending.clone()),
                    _ => None,
                };
                (turn, Some((Vec::new(), true)))
            })
            .await?;
        let Turn::Act(action) = turn else {
            return Ok(());
        };
        let token = token.as_str();
        let old = state.as_ref().and_then(|s| s.channel.clone());
        match action {
            ChannelAction::Keep | ChannelAction::Wait => {}
            ChannelAction::Open | ChannelAction::Renew => match (customer, calendar_id, address) {
                (Some(customer), Some(calendar_id), Some(_)) => {
                    self.open(
                        offering,
                        customer,
                        &calendar_id,
                        &request,
                        old.as_ref(),
                        token,
                    )
                    .await?;
                }
                _ => self.release(offering, token, &request.id).await?,
            },
            ChannelAction::Stop => {
                if let Some(old) = &old {
                    self.stop(offering, customer, old).await;
                }
                let poll = self.usual_poll(offering, now);
                let (recorded, _) = self
                    .update(offering, |state, _| {
                        let held = state.claim.as_ref().is_some_and(|c| c.token == token);
                        release(&mut state.claim, token);
                        let decided_on = old.as_ref().map(|c| c.id.as_str());
                        if !may_record(state.channel.as_ref(), decided_on) {
                            // Another process got there first.
                            return (false, held.then(|| (Vec::new(), true)));
                        }
                        state.channel = None;
                        // Nor does a channel a dead process was opening verify anything.
                        state.pending = None;
                        // A removed offering leaves nothing behind.
                        let extra = if live { poll.clone() } else { Vec::new() };
                        (true, Some((extra, live)))
                    })
                    .await?;
                if recorded {
                    self.counts.stopped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Gives up the offering's upkeep claim `token` (if still held) and the pending
    /// channel `channel_id` (if still recorded) without a result.
    async fn release(&self, offering: Id, token: &str, channel_id: &str) -> Result<(), StoreError> {
        self.update(offering, |state, _| {
            let held = state.claim.as_ref().is_some_and(|c| c.token == token)
                || state.pending.as_ref().is_some_and(|p| p.id == channel_id);
            release(&mut state.claim, token);
            state.forget_pending(channel_id);
            ((), held.then(|| (Vec::new(), true)))
        })
        .await?;
        Ok(())
    }

    /// Opens the channel `request` (recorded as pending with the claim `token`) on
    /// `calendar_id` and records it in place of `old` (releasing the claim and the
    /// pending record); then stops `old`, if any. A channel that cannot be recorded
    /// (another process recorded one first, or the store failed) is stopped at once;
    /// a failed request leaves no pending record behind.
    async fn open(
        &self,
        offering: Id,
        customer: Id,
        calendar_id: &str,
        request: &WatchRequest,
        old: Option<&Channel>,
        token: &str,
    ) -> Result<(), PushError> {
        let decided_on = old.map(|c| c.id.as_str());
        let address = request.address.as_str();
        let opened = match self.source.client_for(customer).await {
            Ok(Some(api)) => api
                .events_watch(calendar_id, request)
                .await
                .map_err(PushError::from),
            Ok(None) => Err(PushError::NoCredentials),
            Err(e) => Err(PushError::Google(e)),
        };
        let now = Utc::now();
        match opened {
            Ok(ch) => {
                let channel = Channel {
                    id: ch.id,
                    resource_id: ch.resource_id,
                    calendar_id: calendar_id.to_owned(),
                    token_hash: token_hash(&request.token),
                    address: address.to_owned(),
                    created: now,
                    expiration: ch.expiration,
                    last_message: 0,
                };
                let recorded = self
                    .update(offering, |state, _| {
                        let held = state.claim.as_ref().is_some_and(|c| c.token == token)
                            || state.pending.as_ref().is_some_and(|p| p.id == request.id);
                        release(&mut state.claim, token);
                        state.forget_pending(&request.id);
                        if !may_record(state.channel.as_ref(), decided_on) {
                            return (false, held.then(|| (Vec::new(), true)));
                        }
                        state.channel = Some(channel.clone());
                        state.failures = 0;
                        state.last_error = None;
                        state.retry_at = None;
                        (true, Some((Vec::new(), true)))
                    })
                    .await;
                let recorded = match recorded {
                    Ok((recorded, _)) => recorded,
                    Err(e) => {
                        self.orphan(offering, customer, &channel).await;
                        return Err(e.into());
                    }
                };
                if !recorded {
                    tracing::warn!(%offering, channel = %channel.id, "another process recorded a channel first (this one's claim ended under a slow Google call); the channel opened here is stopped");
                    self.counts.discarded.fetch_add(1, Ordering::Relaxed);
                    self.orphan(offering, customer, &channel).await;
                    return Ok(());
                }
                tracing::info!(%offering, channel = %channel.id, expires = %channel.expiration, "push channel opened");
                if let Some(old) = old {
                    self.counts.renewed.fetch_add(1, Ordering::Relaxed);
                    self.stop(offering, Some(customer), old).await;
                } else {
                    self.counts.opened.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(PushError::Store(e)) => {
                self.release(offering, token, &request.id).await?;
                Err(PushError::Store(e))
            }
            Err(e) => {
                self.counts.open_failures.fetch_add(1, Ordering::Relaxed);
                let message = match &e {
                    PushError::Google(g) => g.to_string(),
                    other => other.to_string(),
                };
                tracing::warn!(%offering, error = %message, "cannot open a push channel; polling covers the offering");
                let poll = self.usual_poll(offering, now);
                self.update(offering, |state, clock| {
                    let held = state.claim.as_ref().is_some_and(|c| c.token == token)
                        || state.pending.as_ref().is_some_and(|p| p.id == request.id);
                    release(&mut state.claim, token);
                    state.forget_pending(&request.id);
                    if !may_record(state.channel.as_ref(), decided_on) {
                        // Another process opened one meanwhile: not a failure to count.
                        return ((), held.then(|| (Vec::new(), true)));
                    }
                    state.failures += 1;
                    state.last_error = Some(message.clone());
                    // By the clock the upkeep decides by, like the claims.
                    state.retry_at = Some(clock + open_backoff(state.failures));
                    // A renewal that failed leaves the old channel until it expires.
                    let extra = if state.healthy(now) {
                        Vec::new()
                    } else {
                        poll.clone()
                    };
                    ((), Some((extra, true)))
                })
                .await?;
                Ok(())
            }
        }
    }

    /// Stops a channel opened here that is not the offering's (never recorded), and
    /// forgets it in the webhook's index.
    async fn orphan(&self, offering: Id, customer: Id, channel: &Channel) {
        {
            let mut cache = self.cache();
            if cache.by_channel.get(&channel.id) == Some(&offering)
                && cache
                    .states
                    .get(&offering)
                    .and_then(|s| s.channel.as_ref())
                    .is_none_or(|c| c.id != channel.id)
            {
                cache.by_channel.remove(&channel.id);
            }
        }
        self.stop(offering, Some(customer), channel).await;
    }

    /// Stops a channel at Google (best effort: an unknown channel is already gone).
    async fn stop(&self, offering: Id, customer: Option<Id>, channel: &Channel) {
        let customer = match customer {
            Some(c) => c,
            None => match self.store.offering(offering).await {
                Ok(Some(o)) => o.customer,
                _ => return,
            },
        };
        let result = match self.source.client_for(customer).await {
            Ok(Some(api)) => api.channel_stop(&channel.id, &channel.resource_id).await,
            Ok(None) => return,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::info!(%offering, channel = %channel.id, "push channel stopped"),
            Err(e) if e.kind() == GoogleErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(%offering, channel = %channel.id, error = %e, "cannot stop a push channel; it ends at its expiration")
            }
        }
    }
}

impl Observed for PushService {
    fn write_metrics(&self, out: &mut Exposition) {
        let counters = [
            ("received", &self.counts.received),
            ("sync", &self.counts.sync),
            ("duplicate", &self.counts.duplicate),
            ("rejected", &self.counts.rejected),
        ];
        out.family(
            "bookcal_push_notifications_total",
            "counter",
            "Google push deliveries since start, by outcome: received (acted on, a sync queued), sync (a channel's first message, answered and ignored), duplicate (a message number already seen, answered and ignored), rejected (unknown channel or wrong token, answered 404).",
        );
        for (outcome, n) in counters {
            out.sample(
                "bookcal_push_notifications_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        out.family(
            "bookcal_push_channel_changes_total",
            "counter",
            "Watch channels opened, renewed and stopped since start, failed attempts to open one, and channels opened here but stopped at once because another replica recorded one first (discarded).",
        );
        for (what, n) in [
            ("opened", &self.counts.opened),
            ("renewed", &self.counts.renewed),
            ("stopped", &self.counts.stopped),
            ("open_failed", &self.counts.open_failures),
            ("discarded", &self.counts.discarded),
        ] {
            out.sample(
                "bookcal_push_channel_changes_total",
                &[("change", what)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        out.family(
            "bookcal_push_upkeep_store_failures_total",
            "counter",
            "Channel upkeep passes and upkeeps that the store failed since start (the upkeep then backs off: a second, doubling up to google.push_look_secs).",
        );
        out.sample(
            "bookcal_push_upkeep_store_failures_total",
            &[],
            self.counts.store_failures.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "bookcal_push_upkeep_store_failing",
            "gauge",
            "Store failures in a row of the channel upkeep now (0: the store answers).",
        );
        out.sample(
            "bookcal_push_upkeep_store_failing",
            &[],
            f64::from(self.outage().failures),
        );
        out.family(
            "bookcal_push_enabled",
            "gauge",
            "1 when a webhook address is configured and channels are kept open.",
        );
        out.sample(
            "bookcal_push_enabled",
            &[],
            f64::from(u8::from(self.enabled())),
        );
        if !out.detailed() {
            return;
        }
        let mut states: Vec<PushState> = self.cache().states.values().cloned().collect();
        states.sort_by_key(|s| s.offering);
        let now = Utc::now();
        out.family(
            "bookcal_push_channel_active",
            "gauge",
            "1 while the offering's watch channel is open and not expired.",
        );
        for s in &states {
            let offering = s.offering.hex();
            out.sample(
                "bookcal_push_channel_active",
                &[("offering", &offering)],
                f64::from(u8::from(s.healthy(now))),
            );
        }
        out.family(
            "bookcal_push_channel_expiration_timestamp_seconds",
            "gauge",
            "When the offering's watch channel expires (it is renewed before).",
        );
        for s in &states {
            if let Some(c) = &s.channel {
                let offering = s.offering.hex();
                out.sample(
                    "bookcal_push_channel_expiration_timestamp_seconds",
                    &[("offering", &offering)],
                    c.expiration.timestamp() as f64,
                );
            }
        }
        out.family(
            "bookcal_push_last_notification_timestamp_seconds",
            "gauge",
            "When the offering's last acted-on notification arrived.",
        );
        for s in &states {
            if let Some(at) = s.last_notification {
                let offering = s.offering.hex();
                out.sample(
                    "bookcal_push_last_notification_timestamp_seconds",
                    &[("offering", &offering)],
                    at.timestamp() as f64,
                );
            }
        }
        out.family(
            "bookcal_push_offering_notifications_total",
            "counter",
            "Notifications per offering: received (a sync queued) and ignored.",
        );
        for s in &states {
            let offering = s.offering.hex();
            out.sample(
                "bookcal_push_offering_notifications_total",
                &[("offering", &offering), ("outcome", "received")],
                s.received as f64,
            );
            out.sample(
                "bookcal_push_offering_notifications_total",
                &[("offering", &offering), ("outcome", "ignored")],
                s.ignored as f64,
            );
        }
    }
}
