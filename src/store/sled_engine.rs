//! The sled engine: the store of one process, in one data directory.
//!
//! Layout: one tree per record kind ([`Tree`]), keys are the 16 raw bytes of an
//! [`Id`], values are versioned JSON records (see [`records`](super::records)). API
//! tokens live in `tokens` keyed by a salted SHA-256 of the token, never the token
//! itself.
//!
//! Invariants:
//! - every change goes through [`Sled::mutate`] (or [`Sled::sync_put`]), which holds
//!   one write lock, checks the caller's rules against the [`Catalog`], then writes
//!   all changed records in one sled transaction before updating the catalog. So a
//!   booking check and its insert are atomic: two racing requests for one slot never
//!   both succeed, and a refused change writes nothing;
//! - the [`Catalog`] mirrors sled exactly (it is rebuilt from sled on open);
//! - a change is flushed to disk before `mutate`/`sync_put` return.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::catalog::Catalog;
use super::index::{self, OrderIdx, ResourceIdx};
use super::jobs::{JobIndex, JobPlan};
use super::mutate::{Directory, Load, View};
use super::query::{OfferingQuery, OrderQuery, Page, ResourceQuery};
use super::records::{
    AttachmentRecord, BusyRecord, CalendarRecord, CustomerRecord, ExternalsRecord, MappedRecord,
    OfferingRecord, OrderRecord, ProjectRecord, PushRecord, ResourceRecord, UserRecord,
};
use super::tree::Tree;
use super::versions::Versions;
use super::{
    calendars, catalog_query, decode, encode, feed_tokens, BusySlot, Change, KeyValue, MutateError,
    RawWrite, Related, StoreError, StoreOptions, Wanted,
};
use crate::domain::calendar::OfferingCalendar;
use crate::domain::jobs::{
    calendars_touched, offering_calendar_changed, BookingView, JobKind, JobRequest, Trigger,
};
use crate::domain::{Customer, Id, Interval, Offering, Order, Project, Resource, User};

/// `meta` key saying the index trees are complete (written by the migration from a
/// store that predates them, or when a new store is opened).
const META_INDEXED: &[u8] = b"catalog_index_v1";
/// `meta` key of the random secret the feeds' slot UIDs are keyed with.
const META_FEED_UID_KEY: &[u8] = b"feed_uid_key_v1";

/// The sled engine: one process, one data directory.
pub struct Sled {
    db: sled::Db,
    /// The open trees, in [`Tree::ALL`] order.
    trees: Vec<sled::Tree>,
    catalog: RwLock<Catalog>,
    write: Mutex<()>,
    /// Data versions per scope for caches (the feed cache), stamped at the end of every
    /// [`Sled::apply`] after sled and the catalog hold the new data (see
    /// [`versions`](super::versions)).
    versions: Arc<Versions>,
    /// Committed write transactions since opening.
    commits: AtomicU64,
    /// The job queue's index; changed only under `write`, after the records.
    pub(crate) jobs: Mutex<JobIndex>,
    /// Woken whenever jobs are queued or put back (the scheduler waits on it).
    pub(crate) job_wakeup: Arc<tokio::sync::Notify>,
    sync_debounce: Duration,
    /// Secret key of the feeds' slot UIDs (see [`Sled::feed_uid_key`]).
    feed_uid_key: [u8; 32],
}

impl Sled {
    /// Opens (or creates) the store in `dir` and builds the catalog.
    ///
    /// # Errors
    /// The directory cannot be opened by sled (locked by another process, no
    /// permission), or a stored record does not decode.
    pub(crate) fn open(
        dir: &Path,
        opts: &StoreOptions,
        versions: Arc<Versions>,
    ) -> Result<Sled, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(Some(500));
        // The directory's lock is released when the previous holder's last handle
        // closes, which a store just dropped in this process (a restart, a test that
        // reopens) may not have done yet: wait a little for it rather than fail.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::InUse(dir.to_path_buf()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Self::from_db(db, opts.sync_debounce, versions)
    }

    /// Whether sled's files are in `dir` (its configuration and its log).
    pub(crate) fn exists_in(dir: &Path) -> bool {
        dir.join("conf").is_file() && dir.join("db").is_file()
    }

    /// A throw-away store (tests, dry runs).
    ///
    /// # Errors
    /// sled cannot create its temporary files.
    pub(crate) fn temporary(versions: Arc<Versions>) -> Result<Sled, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_db(db, StoreOptions::default().sync_debounce, versions)
    }

    fn from_db(
        db: sled::Db,
        sync_debounce: Duration,
        versions: Arc<Versions>,
    ) -> Result<Sled, StoreError> {
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut store = Sled {
            db,
            trees,
            catalog: RwLock::new(Catalog::default()),
            write: Mutex::new(()),
            versions,
            commits: AtomicU64::new(0),
            jobs: Mutex::new(JobIndex::default()),
            job_wakeup: Arc::new(tokio::sync::Notify::new()),
            sync_debounce,
            feed_uid_key: [0; 32],
        };
        store.feed_uid_key = store.load_feed_uid_key()?;
        store.rebuild_catalog()?;
        store.rebuild_jobs()?;
        Ok(store)
    }

    fn rebuild_jobs(&self) -> Result<(), StoreError> {
        let jobs = self.tree(Tree::Jobs).iter().map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        });
        let calendars = self.tree(Tree::Calendars).iter().map(|kv| {
            kv.map_err(StoreError::from).and_then(|(_, v)| {
                decode::<CalendarRecord>("calendars", &v).map(OfferingCalendar::from)
            })
        });
        let (idx, fix) = JobIndex::load(jobs, calendars)?;
        *self.jobs_index()? = idx;
        if !fix.is_empty() {
            let _w = self.locked_write()?;
            self.write_jobs(fix)?;
        }
        Ok(())
    }

    pub(crate) fn jobs_index(&self) -> Result<MutexGuard<'_, JobIndex>, StoreError> {
        self.jobs.lock().map_err(|_| StoreError::Poisoned)
    }

    pub(crate) fn locked_write(&self) -> Result<MutexGuard<'_, ()>, StoreError> {
        self.write.lock().map_err(|_| StoreError::Poisoned)
    }

    /// The syncs a batch implies: one per offering with a calendar whose events the
    /// batch changes, due after the debounce window.
    fn implied_syncs(
        &self,
        cat: &Catalog,
        jobs: &JobIndex,
        changes: &[Change],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<JobRequest> {
        let mut touched = Vec::new();
        for c in changes {
            match c {
                Change::Resource(r) => {
                    let slots: Vec<Interval> = r.slots.iter().map(|s| s.interval()).collect();
                    let new = BookingView {
                        offering: r.offering,
                        name: &r.name,
                        project: r.project,
                        created_by: r.created_by,
                        state: r.state,
                        slots: &slots,
                    };
                    let old = cat.resources.get(&r.id).map(|e| BookingView {
                        offering: e.offering,
                        name: &e.name,
                        project: e.project,
                        created_by: e.created_by,
                        state: e.state,
                        slots: &e.slots,
                    });
                    touched.extend(calendars_touched(old.as_ref(), &new));
                }
                Change::Offering(o)
                    if cat
                        .offerings
                        .get(&o.id)
                        .is_some_and(|old| offering_calendar_changed(old, o)) =>
                {
                    touched.push(o.id);
                }
                _ => {}
            }
        }
        touched.sort();
        touched.dedup();
        let due = chrono::Duration::from_std(self.sync_debounce)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now);
        touched
            .into_iter()
            .filter(|o| jobs.has_calendar(*o))
            .map(|offering| JobRequest {
                offering,
                kind: JobKind::Sync,
                trigger: Trigger::Change,
                due,
            })
            .collect()
    }

    /// Writes a job plan's records, then applies it to the index (the caller holds
    /// the write lock).
    pub(crate) fn write_jobs(&self, plan: JobPlan) -> Result<(), StoreError> {
        if plan.is_empty() {
            return Ok(());
        }
        self.commit(&plan.writes()?)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs_index()?.commit(plan);
        self.job_wakeup.notify_one();
        Ok(())
    }

    /// API token hashes, slot sequences and the feed UID key, as stored.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn extras(&self) -> Result<super::migrate::Extras, StoreError> {
        let tokens = self
            .raw_scan(Tree::Tokens, &[])?
            .into_iter()
            .filter_map(|(k, v)| Id::from_slice(&v).map(|id| (k, id)))
            .collect();
        let sequences = self
            .raw_scan(Tree::FeedTokens, &[feed_tokens::SEQUENCE_PREFIX])?
            .into_iter()
            .map(|(k, v)| {
                let id = String::from_utf8_lossy(k.get(1..).unwrap_or_default()).into_owned();
                feed_tokens::decode_sequence(&v).map(|s| (id, s))
            })
            .collect::<Result<_, _>>()?;
        let feed_uid_key = self
            .raw_get(Tree::Meta, META_FEED_UID_KEY)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok());
        Ok(super::migrate::Extras {
            tokens,
            sequences,
            feed_uid_key,
        })
    }

    /// Writes API token hashes, slot sequences and the feed UID key in one
    /// transaction (the key takes effect when the store is opened again).
    ///
    /// # Errors
    /// Storage failure.
    pub(crate) fn put_extras(&self, e: &super::migrate::Extras) -> Result<(), StoreError> {
        let _w = self.locked_write()?;
        let mut writes: Vec<RawWrite> = Vec::new();
        for (hash, user) in &e.tokens {
            writes.push((Tree::Tokens, hash.clone(), Some(user.as_bytes().to_vec())));
        }
        for (backend_id, seq) in &e.sequences {
            writes.push((
                Tree::FeedTokens,
                feed_tokens::sequence_key(backend_id),
                Some(feed_tokens::encode_sequence(seq)?),
            ));
        }
        if let Some(k) = e.feed_uid_key {
            writes.push((Tree::Meta, META_FEED_UID_KEY.to_vec(), Some(k.to_vec())));
        }
        self.commit(&writes)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The feed UID key, created once (random) and kept with the data, so UIDs stay
    /// stable across restarts and differ between installations.
    fn load_feed_uid_key(&self) -> Result<[u8; 32], StoreError> {
        use rand::RngCore;
        if let Some(v) = self.tree(Tree::Meta).get(META_FEED_UID_KEY)? {
            if let Ok(k) = <[u8; 32]>::try_from(v.as_ref()) {
                return Ok(k);
            }
        }
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        self.tree(Tree::Meta)
            .insert(META_FEED_UID_KEY, k.to_vec())?;
        self.tree(Tree::Meta).flush()?;
        Ok(k)
    }

    /// The secret the feeds key their slot UIDs with.
    pub(crate) fn feed_uid_key(&self) -> &[u8; 32] {
        &self.feed_uid_key
    }

    /// See `Store::stale_requests`.
    pub(crate) fn stale_requests(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Id>, StoreError> {
        use crate::domain::OrderType;
        let cat = self.read()?;
        Ok(cat
            .resources
            .values()
            .filter(|r| r.state == crate::domain::ResourceState::Creating)
            .filter(|r| {
                let requested = cat
                    .orders_by_offering
                    .get(&r.offering)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| cat.orders.get(o))
                    .filter(|o| o.resource == r.id && o.kind == OrderType::Create)
                    .flat_map(|o| o.requested.iter());
                super::transition::all_started(r.slots.iter().chain(requested), now)
            })
            .map(|r| r.id)
            .collect())
    }

    pub(crate) fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[t.index()]
    }

    fn rebuild_catalog(&self) -> Result<(), StoreError> {
        let mut cat = Catalog::default();
        for kv in self.tree(Tree::Users).iter() {
            let (_, v) = kv?;
            cat.put_user(&User::from(decode::<UserRecord>("users", &v)?));
        }
        for kv in self.tree(Tree::Customers).iter() {
            let (_, v) = kv?;
            let c = Customer::from(decode::<CustomerRecord>("customers", &v)?);
            cat.customers.insert(c.id, c);
        }
        for kv in self.tree(Tree::Projects).iter() {
            let (_, v) = kv?;
            let p = Project::from(decode::<ProjectRecord>("projects", &v)?);
            cat.projects.insert(p.id, p);
        }
        for kv in self.tree(Tree::Offerings).iter() {
            let (_, v) = kv?;
            let o = Offering::from(decode::<OfferingRecord>("offerings", &v)?);
            cat.offerings.insert(o.id, o);
        }
        if self.tree(Tree::Meta).get(META_INDEXED)?.is_some() {
            for kv in self.tree(Tree::IdxResources).iter() {
                let (_, v) = kv?;
                let r =
                    index::decode_resource(&v).ok_or(StoreError::CorruptIndex("idx_resources"))?;
                cat.put_resource(&r);
            }
            for kv in self.tree(Tree::IdxOrders).iter() {
                let (_, v) = kv?;
                let o = index::decode_order(&v).ok_or(StoreError::CorruptIndex("idx_orders"))?;
                cat.put_order(&o);
            }
        } else {
            // A store written before the index existed (or a new one): build it once.
            for kv in self.tree(Tree::Resources).iter() {
                let (k, v) = kv?;
                let r =
                    ResourceIdx::of(&Resource::from(decode::<ResourceRecord>("resources", &v)?));
                self.tree(Tree::IdxResources)
                    .insert(k, index::encode_resource(&r))?;
                cat.put_resource(&r);
            }
            for kv in self.tree(Tree::Orders).iter() {
                let (k, v) = kv?;
                let o = OrderIdx::of(&Order::from(decode::<OrderRecord>("orders", &v)?));
                self.tree(Tree::IdxOrders)
                    .insert(k, index::encode_order(&o))?;
                cat.put_order(&o);
            }
            self.tree(Tree::Meta).insert(META_INDEXED, b"1".to_vec())?;
            self.db.flush()?;
        }
        for kv in self.tree(Tree::Busy).iter() {
            let (k, v) = kv?;
            if let Some(id) = Id::from_slice(&k) {
                cat.busy
                    .insert(id, decode::<BusyRecord>("busy", &v)?.intervals());
            }
        }
        *self.catalog.write().map_err(|_| StoreError::Poisoned)? = cat;
        Ok(())
    }

    /// Read access to the catalog. Hold the guard briefly: writers wait for it.
    ///
    /// # Errors
    /// Only if a writer panicked while holding the lock.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Catalog>, StoreError> {
        self.catalog.read().map_err(|_| StoreError::Poisoned)
    }

    /// Reads what `load` names under the write lock, runs `rule` on it and writes
    /// its changes.
    ///
    /// # Errors
    /// `Refused` with the rule's error, or `Store`.
    pub(crate) fn mutate_view<R, E>(
        &self,
        load: &Load,
        rule: impl Fn(&View) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, MutateError<E>> {
        let _w = self.write.lock().map_err(|_| StoreError::Poisoned)?;
        let mut view = View::default();
        {
            let cat = self.read()?;
            if load.directory {
                view.directory = Directory {
                    users: cat.users.clone(),
                    customers: cat.customers.clone(),
                    projects: cat.projects.clone(),
                    offerings: cat.offerings.clone(),
                };
            }
            for id in load.locked_offerings() {
                if let Some(o) = cat.offerings.get(&id) {
                    view.offerings.insert(id, o.clone());
                }
            }
            for id in &load.taken {
                let mut taken = cat.occupied(*id);
                if let Some(window) = load.taken_within {
                    taken.retain(|o| o.interval.overlaps(&window));
                }
                view.taken.insert(*id, taken);
            }
            for id in &load.projects {
                if let Some(p) = cat.projects.get(id) {
                    view.projects.insert(*id, p.clone());
                }
            }
            let organisations: Vec<Id> = load
                .customers
                .iter()
                .chain(view.offerings.values().map(|o| &o.customer))
                .chain(view.projects.values().map(|p| &p.customer))
                .copied()
                .collect();
            for id in organisations {
                if let Some(c) = cat.customers.get(&id) {
                    view.customers.insert(id, c.clone());
                }
            }
        }
        for id in &load.resources {
            if let Some(r) = self.resource(*id)? {
                view.resources.insert(*id, r);
            }
        }
        for id in &load.orders {
            if let Some(o) = self.order(*id)? {
                view.orders.insert(*id, o);
            }
        }
        for id in &load.calendars {
            if let Some(c) = self.calendar(*id)? {
                view.calendars.insert(*id, c);
            }
        }
        if let Some(scope) = load.feed_tokens {
            view.feed_tokens = self.feed_tokens(scope)?;
        }
        for id in &load.push {
            if let Some(p) = self.push_state(*id)? {
                view.push.insert(*id, p);
            }
        }
        let (changes, out) = rule(&view).map_err(MutateError::Refused)?;
        self.apply(&changes)?;
        Ok(out)
    }

    /// Applies a batch of changes atomically after `check` approves them.
    ///
    /// `check` runs under the store's write lock with a consistent view of the
    /// catalog and returns the changes to write plus a value for the caller; if it
    /// refuses, nothing is written.
    ///
    /// # Errors
    /// `Refused` with the check's error, or `Store` when sled fails (then nothing
    /// was applied either: the sled transaction is all or nothing).
    pub fn mutate<R, E>(
        &self,
        check: impl FnOnce(&Catalog) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, MutateError<E>> {
        let _w = self.write.lock().map_err(|_| StoreError::Poisoned)?;
        let (changes, out) = {
            let cat = self.read()?;
            check(&cat).map_err(MutateError::Refused)?
        };
        self.apply(&changes)?;
        Ok(out)
    }

    pub(crate) fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // Jobs: the ones asked for and the syncs the changes imply, coalesced. The
        // index is only changed under the write lock (held here), so the plan stays
        // valid while the records are written.
        let now = chrono::Utc::now();
        let cat = self.read()?;
        let job_plan = {
            let jobs = self.jobs_index()?;
            let mut requests: Vec<JobRequest> = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Enqueue(r) => Some(*r),
                    _ => None,
                })
                .collect();
            requests.extend(self.implied_syncs(&cat, &jobs, changes, now));
            jobs.plan_requests(&requests, now, || self.next_id())?
        };
        // Encode first: a record that cannot be encoded aborts before any write.
        let mut writes: Vec<RawWrite> = job_plan.writes()?;
        for c in changes {
            let key = |id: &Id| id.as_bytes().to_vec();
            let w = match c {
                Change::User(u) => (Tree::Users, key(&u.id), Some(encode(&UserRecord::from(u))?)),
                Change::Customer(x) => (
                    Tree::Customers,
                    key(&x.id),
                    Some(encode(&CustomerRecord::from(x))?),
                ),
                Change::Project(x) => (
                    Tree::Projects,
                    key(&x.id),
                    Some(encode(&ProjectRecord::from(x))?),
                ),
                Change::Offering(x) => (
                    Tree::Offerings,
                    key(&x.id),
                    Some(encode(&OfferingRecord::from(x))?),
                ),
                Change::Resource(x) => {
                    // A slot's time change is recorded with it (feeds read it as SEQUENCE).
                    writes.extend(self.sequence_writes(&cat, x)?);
                    let idx = index::encode_resource(&ResourceIdx::of(x));
                    writes.push((Tree::IdxResources, key(&x.id), Some(idx)));
                    (
                        Tree::Resources,
                        key(&x.id),
                        Some(encode(&ResourceRecord::from(x))?),
                    )
                }
                Change::Order(x) => {
                    let idx = index::encode_order(&OrderIdx::of(x));
                    writes.push((Tree::IdxOrders, key(&x.id), Some(idx)));
                    (
                        Tree::Orders,
                        key(&x.id),
                        Some(encode(&OrderRecord::from(x))?),
                    )
                }
                Change::DeleteOrder(id) => {
                    writes.push((Tree::IdxOrders, key(id), None));
                    (Tree::Orders, key(id), None)
                }
                Change::Busy(id, slots) => {
                    let generation = self.db.generate_id()?;
                    let rec = BusyRecord::V1 {
                        generation,
                        slots: slots.clone(),
                    };
                    (Tree::Busy, key(id), Some(encode(&rec)?))
                }
                Change::Calendar(cal) => (
                    Tree::Calendars,
                    key(&cal.offering),
                    Some(encode(&CalendarRecord::from(cal))?),
                ),
                Change::Enqueue(_) => continue,
                Change::Mapping {
                    offering,
                    backend_id,
                    event,
                } => (
                    Tree::SlotMap,
                    calendars::slot_key(*offering, backend_id),
                    event
                        .as_ref()
                        .map(|m| encode(&MappedRecord::from(m)))
                        .transpose()?,
                ),
                Change::Externals(offering, events) => (
                    Tree::Externals,
                    key(offering),
                    Some(encode(&ExternalsRecord::of(events))?),
                ),
                Change::Attachment(order, a) => (
                    Tree::Attachments,
                    key(order),
                    a.as_ref()
                        .map(|a| encode(&AttachmentRecord::of(a)))
                        .transpose()?,
                ),
                Change::FeedToken(t) => (
                    Tree::FeedTokens,
                    feed_tokens::token_key(&t.hash),
                    Some(feed_tokens::encode_token(t)?),
                ),
                Change::RevokeFeedToken(hash) => {
                    (Tree::FeedTokens, feed_tokens::token_key(hash), None)
                }
                Change::Push(offering, state) => (
                    Tree::Channels,
                    key(offering),
                    state
                        .as_ref()
                        .map(|p| encode(&PushRecord::from(p)))
                        .transpose()?,
                ),
            };
            writes.push(w);
        }
        drop(cat);
        if writes.is_empty() {
            return Ok(());
        }
        self.commit(&writes)?;
        let mut cat = self.catalog.write().map_err(|_| StoreError::Poisoned)?;
        for c in changes {
            match c {
                Change::User(u) => cat.put_user(u),
                Change::Customer(x) => {
                    cat.customers.insert(x.id, x.clone());
                }
                Change::Project(x) => {
                    cat.projects.insert(x.id, x.clone());
                }
                Change::Offering(x) => {
                    cat.offerings.insert(x.id, x.clone());
                }
                Change::Resource(x) => cat.put_resource(&ResourceIdx::of(x)),
                Change::Order(x) => cat.put_order(&OrderIdx::of(x)),
                Change::DeleteOrder(id) => cat.remove_order(*id),
                Change::Busy(id, slots) => {
                    let ivs: Vec<Interval> = slots
                        .iter()
                        .map(|s| Interval::new(s.start, s.end))
                        .collect();
                    cat.busy.insert(*id, ivs);
                }
                _ => {}
            }
        }
        drop(cat);
        {
            let mut jobs = self.jobs_index()?;
            for c in changes {
                if let Change::Calendar(cal) = c {
                    jobs.set_calendar(cal.offering, cal.calendar_id.is_some());
                }
            }
            if !job_plan.is_empty() {
                jobs.commit(job_plan);
                self.job_wakeup.notify_one();
            }
        }
        self.versions.bump(changes);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes raw values in one sled transaction and flushes them to disk.
    pub(crate) fn commit(&self, writes: &[RawWrite]) -> Result<(), StoreError> {
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let res: Result<(), TransactionError<()>> = trees.as_slice().transaction(|tx| {
            for (t, k, v) in writes {
                match v {
                    Some(v) => {
                        tx[t.index()].insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx[t.index()].remove(k.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match res {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(())) => return Err(StoreError::Poisoned),
        }
        // Durable before anyone is told: an acknowledged booking, or a calendar id
        // recorded before events are written into that calendar, must survive a crash.
        self.db.flush()?;
        Ok(())
    }

    /// How many write transactions were committed since the store was opened.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Loads a full booking resource.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn resource(&self, id: Id) -> Result<Option<Resource>, StoreError> {
        self.tree(Tree::Resources)
            .get(id.as_bytes())?
            .map(|v| decode::<ResourceRecord>("resources", &v).map(Resource::from))
            .transpose()
    }

    /// Loads a full order.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn order(&self, id: Id) -> Result<Option<Order>, StoreError> {
        self.tree(Tree::Orders)
            .get(id.as_bytes())?
            .map(|v| decode::<OrderRecord>("orders", &v).map(Order::from))
            .transpose()
    }

    /// An offering's busy slots with their source events.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn busy_slots(&self, offering: Id) -> Result<Vec<BusySlot>, StoreError> {
        Ok(match self.tree(Tree::Busy).get(offering.as_bytes())? {
            Some(v) => match decode::<BusyRecord>("busy", &v)? {
                BusyRecord::V1 { slots, .. } => slots,
            },
            None => Vec::new(),
        })
    }

    /// Stores an API token's hash for `user`.
    ///
    /// # Errors
    /// Storage failure.
    pub(crate) fn put_token(&self, hash: &[u8], user: Id) -> Result<(), StoreError> {
        self.tree(Tree::Tokens)
            .insert(hash, user.as_bytes().to_vec())?;
        self.tree(Tree::Tokens).flush()?;
        Ok(())
    }

    /// The user an API token hash belongs to.
    ///
    /// # Errors
    /// Storage failure.
    pub(crate) fn user_by_token_hash(&self, hash: &[u8]) -> Result<Option<User>, StoreError> {
        let Some(v) = self.tree(Tree::Tokens).get(hash)? else {
            return Ok(None);
        };
        let Some(id) = Id::from_slice(&v) else {
            return Ok(None);
        };
        Ok(self.read()?.users.get(&id).cloned())
    }

    /// Every booking resource of an offering.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn offering_resources(&self, offering: Id) -> Result<Vec<Resource>, StoreError> {
        let ids: Vec<Id> = self
            .read()?
            .resources_by_offering
            .get(&offering)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        self.resources(&ids)
    }

    /// Every booking resource `user` created.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn resources_by(&self, user: Id) -> Result<Vec<Resource>, StoreError> {
        let ids: Vec<Id> = self
            .read()?
            .resources
            .values()
            .filter(|r| r.created_by == user)
            .map(|r| r.id)
            .collect();
        self.resources(&ids)
    }

    /// The records of these resources (missing ones left out), in the given order.
    fn resources(&self, ids: &[Id]) -> Result<Vec<Resource>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.resource(*id)?);
        }
        Ok(out)
    }

    /// A page of booking resources.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn list_resources(&self, q: &ResourceQuery) -> Result<Page<Resource>, StoreError> {
        let (total, ids) = catalog_query::resources(&*self.read()?, q);
        Ok(Page {
            total,
            items: self.resources(&ids)?,
        })
    }

    /// A page of orders.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) fn list_orders(&self, q: &OrderQuery) -> Result<Page<Order>, StoreError> {
        let reviewed = |id| {
            self.order(id)
                .ok()
                .flatten()
                .and_then(|o| o.consumer_reviewed_at)
        };
        let (total, ids) = catalog_query::orders(&*self.read()?, q, reviewed);
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.extend(self.order(id)?);
        }
        Ok(Page { total, items })
    }

    /// A page of booking offerings.
    ///
    /// # Errors
    /// Only a poisoned lock.
    pub(crate) fn list_offerings(&self, q: &OfferingQuery) -> Result<Page<Offering>, StoreError> {
        let (total, items) = catalog_query::offerings(&*self.read()?, q);
        Ok(Page { total, items })
    }

    /// The records a page refers to.
    ///
    /// # Errors
    /// Only a poisoned lock.
    pub(crate) fn related(&self, want: &Wanted) -> Result<Related, StoreError> {
        let cat = self.read()?;
        let mut out = Related::default();
        for id in &want.users {
            if let Some(u) = cat.users.get(id) {
                out.users.insert(*id, u.clone());
            }
        }
        for id in &want.projects {
            if let Some(p) = cat.projects.get(id) {
                out.projects.insert(*id, p.clone());
            }
        }
        for id in &want.offerings {
            if let Some(o) = cat.offerings.get(id) {
                out.offerings.insert(*id, o.clone());
            }
        }
        let organisations = want
            .customers
            .iter()
            .chain(out.projects.values().map(|p| &p.customer))
            .chain(out.offerings.values().map(|o| &o.customer))
            .copied()
            .collect::<Vec<_>>();
        for id in organisations {
            if let Some(c) = cat.customers.get(&id) {
                out.customers.insert(id, c.clone());
            }
        }
        for id in &want.resource_names {
            if let Some(r) = cat.resources.get(id) {
                out.resource_names.insert(*id, r.name.to_string());
            }
        }
        for id in &want.order_counts {
            out.order_counts.insert(
                *id,
                cat.orders_by_offering.get(id).map(|s| s.len()).unwrap_or(0),
            );
        }
        Ok(out)
    }

    /// Reads one raw value.
    pub(crate) fn raw_get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Lists the raw values whose key starts with `prefix`.
    pub(crate) fn raw_scan(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// Writes changes atomically without a check (the sync engine's results, jobs).
    ///
    /// # Errors
    /// Storage failure.
    pub fn sync_put(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let _w = self.write.lock().map_err(|_| StoreError::Poisoned)?;
        self.apply(&changes)
    }

    /// Forgets everything known about the offerings' Google calendars (calendar
    /// records, slot mappings, external events, busy slots, queued jobs), in one
    /// transaction. For a fresh Google account, such as the demo's new emulator;
    /// bookings are untouched.
    ///
    /// # Errors
    /// Storage failure.
    pub fn forget_google_state(&self) -> Result<(), StoreError> {
        let _w = self.write.lock().map_err(|_| StoreError::Poisoned)?;
        let mut writes = Vec::new();
        // The offerings whose data this changes (calendar records and busy slots).
        let mut touched = Vec::new();
        for tree in [
            Tree::Calendars,
            Tree::SlotMap,
            Tree::Externals,
            Tree::Jobs,
            Tree::Busy,
            Tree::Channels,
        ] {
            for (k, _) in self.raw_scan(tree, &[])? {
                if matches!(tree, Tree::Calendars | Tree::Busy) {
                    touched.extend(Id::from_slice(&k).map(|o| Change::Busy(o, Vec::new())));
                }
                writes.push((tree, k, None));
            }
        }
        self.commit(&writes)?;
        self.catalog
            .write()
            .map_err(|_| StoreError::Poisoned)?
            .busy
            .clear();
        *self.jobs_index()? = JobIndex::default();
        self.versions.bump(&touched);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A fresh, unique, increasing number (job sequence numbers and the like).
    ///
    /// # Errors
    /// Storage failure.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Writes everything to disk.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Approximate size on disk in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_ids(s: &Sled) -> Vec<(Id, String, usize)> {
        let cat = s.read().expect("read");
        let mut v: Vec<(Id, String, usize)> = cat
            .resources
            .values()
            .map(|r| (r.id, r.name.to_string(), r.slots.len()))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn the_catalog_reopens_from_the_index_and_a_store_without_one_is_migrated() {
        let dir = tempfile::tempdir().expect("tmp");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
        let (before, orders) = {
            let store =
                super::super::Store::open(dir.path(), &StoreOptions::default()).expect("open");
            crate::import::import_file(&store, std::path::Path::new(fixture))
                .await
                .expect("import");
            let s = store.sled().expect("sled");
            let orders = s.read().expect("read").orders.len();
            (resource_ids(s), orders)
        };
        assert_eq!(before.len(), 4);
        // Reopened from the index trees.
        {
            let s = Sled::open(dir.path(), &StoreOptions::default(), Arc::default()).expect("open");
            assert_eq!(resource_ids(&s), before);
            assert_eq!(s.read().expect("read").orders.len(), orders);
            // Forget the index, as a store written before it existed.
            for t in [Tree::IdxResources, Tree::IdxOrders, Tree::Meta] {
                s.tree(t).clear().expect("clear");
            }
            s.db.flush().expect("flush");
        }
        let s = Sled::open(dir.path(), &StoreOptions::default(), Arc::default()).expect("open");
        assert_eq!(resource_ids(&s), before);
        assert_eq!(s.read().expect("read").orders.len(), orders);
        assert!(s.tree(Tree::Meta).get(META_INDEXED).expect("get").is_some());
        assert_eq!(s.tree(Tree::IdxResources).len(), 4);
    }
}
