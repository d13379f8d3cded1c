//! The store: sled, the single source of truth on one machine, and the only module
//! that imports sled.
//!
//! Layout: one tree per record kind (`users`, `customers`, `projects`, `offerings`,
//! `resources`, `orders`, `busy`, ...), keys are the 16 raw bytes of an [`Id`], values
//! are versioned JSON records (see [`records`]). API tokens live in `tokens` keyed by a
//! salted SHA-256 of the token, never the token itself.
//!
//! Invariants:
//! - every change goes through [`Store::mutate`], which holds one write lock, checks
//!   the caller's rules against the [`Catalog`], then writes all changed records in
//!   one sled transaction before updating the catalog. So a booking check and its
//!   insert are atomic: two racing requests for one slot never both succeed, and a
//!   refused change writes nothing;
//! - the [`Catalog`] mirrors sled exactly (it is rebuilt from sled on open);
//! - a change is flushed to disk before `mutate`/`sync_put` return.

pub mod calendars;
pub mod catalog;
pub mod feed_tokens;
pub mod index;
pub mod records;
pub mod sync_state;
pub mod versions;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

pub use catalog::{Catalog, OrderEntry, ResourceEntry};
use index::{OrderIdx, ResourceIdx};
pub use records::BusySlotV1 as BusySlot;
pub use versions::Scope;

use crate::domain::{Customer, Id, Interval, Offering, Order, Project, Resource, User};
use records::{
    BusyRecord, CustomerRecord, OfferingRecord, OrderRecord, ProjectRecord, ResourceRecord,
    UserRecord,
};

/// A raw key and value of a sync-state tree.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One write of a transaction: tree index, key, value (`None` deletes).
pub(crate) type TreeWrite = (usize, Vec<u8>, Option<Vec<u8>>);

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record in tree {tree} is unreadable")]
    Corrupt {
        tree: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("record could not be encoded")]
    Encode(#[source] serde_json::Error),
    #[error("the store lock was poisoned by a panic")]
    Poisoned,
    #[error("index tree {0} holds an unreadable entry")]
    CorruptIndex(&'static str),
}

/// Why a [`Store::mutate`] did not happen: the caller's rule refused it, or storage failed.
#[derive(Debug, thiserror::Error)]
pub enum MutateError<E> {
    #[error(transparent)]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One record change in a [`Store::mutate`] batch.
#[derive(Debug, Clone)]
pub enum Change {
    User(User),
    Customer(Customer),
    Project(Project),
    Offering(Offering),
    Resource(Resource),
    Order(Order),
    DeleteOrder(Id),
    /// Replaces an offering's busy slots with a new generation.
    Busy(Id, Vec<BusySlot>),
    /// A sync-state record (see [`sync_state`]): tree, key, value (None deletes).
    SyncState(sync_state::Kind, Vec<u8>, Option<Vec<u8>>),
}

/// The token salt when none is configured (`token_salt`; `bookcal serve` warns).
pub const DEFAULT_TOKEN_SALT: &str = "bookcal-default-salt";

/// Store tuning.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page cache in bytes (sled's default, 1 GiB, is far too much here).
    pub cache_bytes: u64,
    /// Salt mixed into token hashes.
    pub token_salt: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
            token_salt: DEFAULT_TOKEN_SALT.into(),
        }
    }
}

const TREES: [&str; 17] = [
    "users",
    "customers",
    "projects",
    "offerings",
    "resources",
    "orders",
    "busy",
    "tokens",
    "calendars",
    "slot_map",
    "feed_tokens",
    "jobs",
    "attachments",
    "externals",
    "idx_resources",
    "idx_orders",
    "meta",
];
const T_USERS: usize = 0;
const T_CUSTOMERS: usize = 1;
const T_PROJECTS: usize = 2;
const T_OFFERINGS: usize = 3;
const T_RESOURCES: usize = 4;
const T_ORDERS: usize = 5;
const T_BUSY: usize = 6;
const T_TOKENS: usize = 7;
const T_IDX_RESOURCES: usize = 14;
const T_IDX_ORDERS: usize = 15;
const T_META: usize = 16;
/// `meta` key saying the index trees are complete (written by the migration from a
/// store that predates them, or when a new store is opened).
const META_INDEXED: &[u8] = b"catalog_index_v1";

/// The store handle. Cheap to share behind an `Arc`.
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    catalog: RwLock<Catalog>,
    write: Mutex<()>,
    salt: String,
    /// Data versions per scope for caches (the feed cache), stamped at the end of every
    /// [`Store::apply`] after sled and the catalog hold the new data (see [`versions`]).
    versions: versions::Versions,
    /// Committed write transactions since opening (see [`Store::commits`]).
    commits: AtomicU64,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(StoreError::Encode)
}

pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

impl Store {
    /// Opens (or creates) the store in `dir` and builds the catalog.
    ///
    /// # Errors
    /// The directory cannot be opened by sled (locked by another process, no
    /// permission), or a stored record does not decode.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(Some(500))
            .open()?;
        Self::from_db(db, opts)
    }

    /// A throw-away store (tests, dry runs).
    ///
    /// # Errors
    /// sled cannot create its temporary files.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_db(db, &StoreOptions::default())
    }

    fn from_db(db: sled::Db, opts: &StoreOptions) -> Result<Store, StoreError> {
        let trees = TREES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store {
            db,
            trees,
            catalog: RwLock::new(Catalog::default()),
            write: Mutex::new(()),
            salt: opts.token_salt.clone(),
            versions: versions::Versions::default(),
            commits: AtomicU64::new(0),
        };
        store.rebuild_catalog()?;
        Ok(store)
    }

    fn rebuild_catalog(&self) -> Result<(), StoreError> {
        let mut cat = Catalog::default();
        for kv in self.trees[T_USERS].iter() {
            let (_, v) = kv?;
            cat.put_user(&User::from(decode::<UserRecord>("users", &v)?));
        }
        for kv in self.trees[T_CUSTOMERS].iter() {
            let (_, v) = kv?;
            let c = Customer::from(decode::<CustomerRecord>("customers", &v)?);
            cat.customers.insert(c.id, c);
        }
        for kv in self.trees[T_PROJECTS].iter() {
            let (_, v) = kv?;
            let p = Project::from(decode::<ProjectRecord>("projects", &v)?);
            cat.projects.insert(p.id, p);
        }
        for kv in self.trees[T_OFFERINGS].iter() {
            let (_, v) = kv?;
            let o = Offering::from(decode::<OfferingRecord>("offerings", &v)?);
            cat.offerings.insert(o.id, o);
        }
        if self.trees[T_META].get(META_INDEXED)?.is_some() {
            for kv in self.trees[T_IDX_RESOURCES].iter() {
                let (_, v) = kv?;
                let r =
                    index::decode_resource(&v).ok_or(StoreError::CorruptIndex("idx_resources"))?;
                cat.put_resource(&r);
            }
            for kv in self.trees[T_IDX_ORDERS].iter() {
                let (_, v) = kv?;
                let o = index::decode_order(&v).ok_or(StoreError::CorruptIndex("idx_orders"))?;
                cat.put_order(&o);
            }
        } else {
            // A store written before the index existed (or a new one): build it once.
            for kv in self.trees[T_RESOURCES].iter() {
                let (k, v) = kv?;
                let r =
                    ResourceIdx::of(&Resource::from(decode::<ResourceRecord>("resources", &v)?));
                self.trees[T_IDX_RESOURCES].insert(k, index::encode_resource(&r))?;
                cat.put_resource(&r);
            }
            for kv in self.trees[T_ORDERS].iter() {
                let (k, v) = kv?;
                let o = OrderIdx::of(&Order::from(decode::<OrderRecord>("orders", &v)?));
                self.trees[T_IDX_ORDERS].insert(k, index::encode_order(&o))?;
                cat.put_order(&o);
            }
            self.trees[T_META].insert(META_INDEXED, b"1".to_vec())?;
            self.db.flush()?;
        }
        for kv in self.trees[T_BUSY].iter() {
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

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // Encode first: a record that cannot be encoded aborts before any write.
        let mut writes: Vec<TreeWrite> = Vec::with_capacity(changes.len());
        let cat = self.read()?;
        for c in changes {
            let w = match c {
                Change::User(u) => (
                    T_USERS,
                    u.id.as_bytes().to_vec(),
                    Some(encode(&UserRecord::from(u))?),
                ),
                Change::Customer(x) => (
                    T_CUSTOMERS,
                    x.id.as_bytes().to_vec(),
                    Some(encode(&CustomerRecord::from(x))?),
                ),
                Change::Project(x) => (
                    T_PROJECTS,
                    x.id.as_bytes().to_vec(),
                    Some(encode(&ProjectRecord::from(x))?),
                ),
                Change::Offering(x) => (
                    T_OFFERINGS,
                    x.id.as_bytes().to_vec(),
                    Some(encode(&OfferingRecord::from(x))?),
                ),
                Change::Resource(x) => {
                    // A slot's time change is recorded with it (feeds read it as SEQUENCE).
                    writes.extend(self.sequence_writes(&cat, x)?);
                    let idx = index::encode_resource(&ResourceIdx::of(x));
                    writes.push((T_IDX_RESOURCES, x.id.as_bytes().to_vec(), Some(idx)));
                    (
                        T_RESOURCES,
                        x.id.as_bytes().to_vec(),
                        Some(encode(&ResourceRecord::from(x))?),
                    )
                }
                Change::Order(x) => {
                    let idx = index::encode_order(&OrderIdx::of(x));
                    writes.push((T_IDX_ORDERS, x.id.as_bytes().to_vec(), Some(idx)));
                    (
                        T_ORDERS,
                        x.id.as_bytes().to_vec(),
                        Some(encode(&OrderRecord::from(x))?),
                    )
                }
                Change::DeleteOrder(id) => {
                    writes.push((T_IDX_ORDERS, id.as_bytes().to_vec(), None));
                    (T_ORDERS, id.as_bytes().to_vec(), None)
                }
                Change::Busy(id, slots) => {
                    let generation = self.db.generate_id()?;
                    let rec = BusyRecord::V1 {
                        generation,
                        slots: slots.clone(),
                    };
                    (T_BUSY, id.as_bytes().to_vec(), Some(encode(&rec)?))
                }
                Change::SyncState(kind, key, value) => {
                    (kind.tree_index(), key.clone(), value.clone())
                }
            };
            writes.push(w);
        }
        drop(cat);
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let res: Result<(), TransactionError<()>> = trees.as_slice().transaction(|tx| {
            for (t, k, v) in &writes {
                match v {
                    Some(v) => {
                        tx[*t].insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx[*t].remove(k.as_slice())?;
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
                Change::SyncState(..) => {}
            }
        }
        drop(cat);
        self.versions.bump(changes);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many write transactions were committed since the store was opened (tests
    /// check that reads write nothing).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Loads a full booking resource.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn resource(&self, id: Id) -> Result<Option<Resource>, StoreError> {
        self.trees[T_RESOURCES]
            .get(id.as_bytes())?
            .map(|v| decode::<ResourceRecord>("resources", &v).map(Resource::from))
            .transpose()
    }

    /// Loads a full order.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn order(&self, id: Id) -> Result<Option<Order>, StoreError> {
        self.trees[T_ORDERS]
            .get(id.as_bytes())?
            .map(|v| decode::<OrderRecord>("orders", &v).map(Order::from))
            .transpose()
    }

    /// An offering's busy slots with their source events.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn busy_slots(&self, offering: Id) -> Result<Vec<BusySlot>, StoreError> {
        Ok(match self.trees[T_BUSY].get(offering.as_bytes())? {
            Some(v) => match decode::<BusyRecord>("busy", &v)? {
                BusyRecord::V1 { slots, .. } => slots,
            },
            None => Vec::new(),
        })
    }

    fn token_hash(&self, token: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update(b":");
        h.update(token.as_bytes());
        h.finalize().to_vec()
    }

    /// Creates a new API token for `user` and returns it (only its hash is kept).
    ///
    /// # Errors
    /// Storage failure.
    pub fn create_token(&self, user: Id) -> Result<String, StoreError> {
        let mut raw = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        self.trees[T_TOKENS].insert(self.token_hash(&token), user.as_bytes().to_vec())?;
        self.trees[T_TOKENS].flush()?;
        Ok(token)
    }

    /// The user an API token belongs to.
    ///
    /// # Errors
    /// Storage failure.
    pub fn user_by_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let Some(v) = self.trees[T_TOKENS].get(self.token_hash(token))? else {
            return Ok(None);
        };
        let Some(id) = Id::from_slice(&v) else {
            return Ok(None);
        };
        Ok(self.read()?.users.get(&id).cloned())
    }

    /// Reads a sync-state value.
    ///
    /// # Errors
    /// Storage failure.
    pub fn sync_get(
        &self,
        kind: sync_state::Kind,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.trees[kind.tree_index()].get(key)?.map(|v| v.to_vec()))
    }

    /// Lists sync-state values whose key starts with `prefix`.
    ///
    /// # Errors
    /// Storage failure.
    pub fn sync_scan(
        &self,
        kind: sync_state::Kind,
        prefix: &[u8],
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.trees[kind.tree_index()]
            .scan_prefix(prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// Writes sync-state values atomically (no catalog involvement).
    ///
    /// # Errors
    /// Storage failure.
    pub fn sync_put(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let _w = self.write.lock().map_err(|_| StoreError::Poisoned)?;
        self.apply(&changes)
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
mod index_tests {
    use super::*;

    fn resource_ids(s: &Store) -> Vec<(Id, String, usize)> {
        let cat = s.read().expect("read");
        let mut v: Vec<(Id, String, usize)> = cat
            .resources
            .values()
            .map(|r| (r.id, r.name.to_string(), r.slots.len()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_catalog_reopens_from_the_index_and_a_store_without_one_is_migrated() {
        let dir = tempfile::tempdir().expect("tmp");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
        let (before, orders) = {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            crate::import::import_file(&s, std::path::Path::new(fixture)).expect("import");
            let orders = s.read().expect("read").orders.len();
            (resource_ids(&s), orders)
        };
        assert_eq!(before.len(), 4);
        // Reopened from the index trees.
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            assert_eq!(resource_ids(&s), before);
            assert_eq!(s.read().expect("read").orders.len(), orders);
            // Forget the index, as a store written before it existed.
            for t in [T_IDX_RESOURCES, T_IDX_ORDERS, T_META] {
                s.trees[t].clear().expect("clear");
            }
            s.db.flush().expect("flush");
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        assert_eq!(resource_ids(&s), before);
        assert_eq!(s.read().expect("read").orders.len(), orders);
        assert!(s.trees[T_META].get(META_INDEXED).expect("get").is_some());
        assert_eq!(s.trees[T_IDX_RESOURCES].len(), 4);
    }
}
