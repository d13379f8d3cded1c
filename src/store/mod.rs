//! The store: the single source of truth, behind one boundary with two engines.
//!
//! - [`sled_engine`] (the default): one process, one data directory, an in-memory catalog
//!   for listing; the only module that imports sled.
//! - [`pg`] (`store_url = "postgres://..."`): any number of processes on one
//!   PostgreSQL database, which enforces the invariants across them; listing,
//!   filtering and counting are SQL over indexed columns, nothing is kept in memory
//!   but the data versions.
//!
//! Everything outside the store speaks to [`Store`] only: point reads, typed list
//! queries ([`query`]), a check-then-write mutation whose rule sees plain values
//! ([`Store::mutate`]), the booking transitions ([`Store::transition`],
//! [`Store::create_order`]), the job queue, and typed [`Change`]s. Both engines store
//! the same versioned records ([`records`]); raw key-value access never leaves the
//! store.
//!
//! Invariants (both engines):
//! - a rule's check and its writes are atomic: two racing requests for one slot never
//!   both succeed, and a refused change writes nothing (sled: one write lock and one
//!   transaction; PostgreSQL: one transaction holding the offering's row lock, with the
//!   exclusion constraint as the backstop);
//! - a change is durable before the call that made it returns;
//! - the data versions ([`versions`]) move after the data did, on every process.

pub mod calendars;
pub mod catalog;
mod catalog_query;
pub mod channels;
pub mod feed_tokens;
pub mod index;
pub mod jobs;
pub mod migrate;
pub mod mutate;
pub mod pg;
pub mod query;
pub mod records;
pub mod sessions;
pub mod sled_engine;
pub mod transition;
mod tree;
pub mod versions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use catalog::{Catalog, OrderEntry, ResourceEntry};
pub use jobs::JobQueue;
pub use records::Attachment;
pub use records::BusySlotV1 as BusySlot;
pub use transition::{Target, TransitionError};
use tree::Tree;
pub use versions::Scope;

use crate::domain::calendar::{ExternalEvent, MappedEvent, OfferingCalendar};
use crate::domain::jobs::{Job, JobRequest};
use crate::domain::{Customer, Id, Offering, Order, Project, Resource, User};
use feed_tokens::{FeedScope, FeedToken};
pub use mutate::{Directory, Load, View};
use query::{OfferingQuery, OrderQuery, Page, Parties, ResourceQuery};
use versions::Versions;

/// A raw key and value of a tree.
type KeyValue = (Vec<u8>, Vec<u8>);
/// A raw write: tree, key, value (`None` deletes).
pub(crate) type RawWrite = (Tree, Vec<u8>, Option<Vec<u8>>);

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    /// Another process holds the sled directory's lock (sled allows one process per
    /// directory); its raw error is not kept, it says nothing more.
    #[error("another process is using {0}")]
    InUse(PathBuf),
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
    #[error("database failure: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not supported by this store engine: {0}")]
    Unsupported(&'static str),
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
    /// Writes an offering's calendar record.
    Calendar(OfferingCalendar),
    /// Queues a job, coalesced with the pending one of its offering and kind (see
    /// [`jobs`]).
    Enqueue(JobRequest),
    /// Writes (or, with `None`, removes) the mapping of one slot of an offering.
    Mapping {
        offering: Id,
        backend_id: String,
        event: Option<MappedEvent>,
    },
    /// Replaces the external events of an offering's calendar.
    Externals(Id, Vec<ExternalEvent>),
    /// Writes (or, with `None`, removes) an order's attachment.
    Attachment(Id, Option<Attachment>),
    /// Writes a feed token (created, or its last use).
    FeedToken(FeedToken),
    /// Revokes the feed token with this secret hash.
    RevokeFeedToken([u8; 32]),
    /// Writes (or, with `None`, removes) an offering's push state.
    Push(Id, Option<crate::domain::push::PushState>),
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
    /// How long a sync implied by a change waits for more changes to the same
    /// offering (they all go into that one run).
    pub sync_debounce: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
            token_salt: DEFAULT_TOKEN_SALT.into(),
            sync_debounce: Duration::from_secs(1),
        }
    }
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

/// The caller's relations to organisations and projects, from which visibility
/// follows (see `api::auth::Roles`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Relations {
    /// Organisations the user owns.
    pub owner_of: HashSet<Id>,
    /// Organisations the user manages (service managers).
    pub manager_of: HashSet<Id>,
    /// Projects the user is a member of.
    pub member_of: HashSet<Id>,
}

/// What to load for rendering a page: the records named, the organisations of the
/// offerings and projects among them, the names of resources, and order counts.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub users: Vec<Id>,
    pub customers: Vec<Id>,
    pub projects: Vec<Id>,
    pub offerings: Vec<Id>,
    /// Resources whose name is wanted.
    pub resource_names: Vec<Id>,
    /// Offerings whose number of orders is wanted.
    pub order_counts: Vec<Id>,
}

/// The records a page of answers refers to (see [`Store::related`]).
#[derive(Clone, Debug, Default)]
pub struct Related {
    pub users: HashMap<Id, User>,
    pub customers: HashMap<Id, Customer>,
    pub projects: HashMap<Id, Project>,
    pub offerings: HashMap<Id, Offering>,
    pub resource_names: HashMap<Id, String>,
    pub order_counts: HashMap<Id, usize>,
}

impl Related {
    /// The maps a booking's text is looked up in.
    pub fn directory(&self) -> crate::domain::booking_text::Directory<'_> {
        crate::domain::booking_text::Directory {
            offerings: &self.offerings,
            projects: &self.projects,
            customers: &self.customers,
            users: &self.users,
        }
    }
}

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Sled,
    Postgres,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Sled => "sled",
            EngineKind::Postgres => "postgres",
        }
    }
}

enum Engine {
    Sled(Box<sled_engine::Sled>),
    Postgres(pg::PgStore),
}

/// The store handle. Cheap to share behind an `Arc`.
pub struct Store {
    engine: Engine,
    versions: Arc<Versions>,
    salt: String,
    /// Woken when a web session or sign-in link is stored, so the sweeper
    /// ([`Store::sweep_sessions`]) looks at the next expiry again.
    sessions_changed: tokio::sync::Notify,
}

/// The salted hash an API token is stored under.
fn token_hash(salt: &str, token: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(token.as_bytes());
    h.finalize().to_vec()
}

/// How often a running bookcal folds the searched texts written without their
/// folding ([`Store::keep_folded`]).
pub const REFOLD_EVERY: Duration = Duration::from_secs(60);

impl Store {
    /// Opens (or creates) a sled store in `dir`.
    ///
    /// # Errors
    /// The directory cannot be opened by sled (locked by another process, no
    /// permission), or a stored record does not decode.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let versions = Arc::new(Versions::default());
        let sled = sled_engine::Sled::open(dir, opts, versions.clone())?;
        Ok(Store {
            engine: Engine::Sled(Box::new(sled)),
            versions,
            salt: opts.token_salt.clone(),
            sessions_changed: tokio::sync::Notify::new(),
        })
    }

    /// Whether `dir` holds a sled store (one that [`Store::open`] made earlier), as
    /// opposed to a missing or empty directory, where opening would make a new one.
    pub fn exists_in(dir: &Path) -> bool {
        sled_engine::Sled::exists_in(dir)
    }

    /// A throw-away sled store (tests, dry runs).
    ///
    /// # Errors
    /// sled cannot create its temporary files.
    pub fn temporary() -> Result<Store, StoreError> {
        let versions = Arc::new(Versions::default());
        let sled = sled_engine::Sled::temporary(versions.clone())?;
        Ok(Store {
            engine: Engine::Sled(Box::new(sled)),
            versions,
            salt: StoreOptions::default().token_salt,
            sessions_changed: tokio::sync::Notify::new(),
        })
    }

    /// Connects to a PostgreSQL store, bringing its schema up to date.
    ///
    /// # Errors
    /// The server cannot be reached or refuses, or holds a newer schema.
    pub async fn connect(
        url: &str,
        opts: &StoreOptions,
        pg: &pg::PgOptions,
    ) -> Result<Store, StoreError> {
        let versions = Arc::new(Versions::default());
        let store = pg::PgStore::open(url, pg, opts, versions.clone()).await?;
        Ok(Store {
            engine: Engine::Postgres(store),
            versions,
            salt: opts.token_salt.clone(),
            sessions_changed: tokio::sync::Notify::new(),
        })
    }

    /// Folds the searched texts written without their folding (PostgreSQL: rows an
    /// older bookcal wrote during a rolling update, see `pg/folded.rs`); nothing to
    /// do on sled, which folds as it searches.
    ///
    /// # Errors
    /// The database refuses.
    pub async fn refold(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(_) => Ok(()),
            Engine::Postgres(p) => pg::folded::fill(&p.pool).await,
        }
    }

    /// Runs [`Store::refold`] every `every` until `shutdown` (PostgreSQL; returns at
    /// once on sled), so a folding an older replica's write left NULL is filled
    /// within about `every`. Each run costs a look at the `*_unfolded` partial
    /// indexes, empty while every replica folds. Failures are logged and retried at
    /// the next run.
    pub async fn keep_folded(
        &self,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        if matches!(self.engine, Engine::Sled(_)) {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            // Shutdown does not wait for a run: each batch commits on its own, and the
            // next run (here or on another replica) goes on from what is left.
            let run = tokio::select! {
                () = shutdown.cancelled() => break,
                run = self.refold() => run,
            };
            if let Err(e) = run {
                tracing::warn!(error = %e, "cannot fold the searched texts written without their folding");
            }
        }
    }

    /// The engine this store runs on.
    pub fn engine(&self) -> EngineKind {
        match self.engine {
            Engine::Sled(_) => EngineKind::Sled,
            Engine::Postgres(_) => EngineKind::Postgres,
        }
    }

    /// The sled engine, for what only it has (its catalog, its size on disk).
    ///
    /// # Errors
    /// `Unsupported` on PostgreSQL.
    pub fn sled(&self) -> Result<&sled_engine::Sled, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s),
            Engine::Postgres(_) => Err(StoreError::Unsupported("the sled catalog")),
        }
    }

    /// The version of the data in `scopes`: changes whenever a write (by any process
    /// on the same database) touches one of them, and only then. Cheap: one
    /// read-locked lookup per scope.
    pub fn version(&self, scopes: &[Scope]) -> u64 {
        self.versions.version(scopes)
    }

    /// How many write transactions this process committed (tests check that reads
    /// write nothing).
    pub fn commits(&self) -> u64 {
        match &self.engine {
            Engine::Sled(s) => s.commits(),
            Engine::Postgres(p) => p.commits(),
        }
    }

    // ---- users and tokens

    /// A user by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn user(&self, id: Id) -> Result<Option<User>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.users.get(&id).cloned()),
            Engine::Postgres(p) => pg::read::user(&p.pool, id).await,
        }
    }

    /// A user by username.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => {
                let cat = s.read()?;
                Ok(cat
                    .users_by_name
                    .get(username)
                    .and_then(|id| cat.users.get(id))
                    .cloned())
            }
            Engine::Postgres(p) => pg::read::user_by_name(&p.pool, username).await,
        }
    }

    /// Creates a new API token for `user` and returns it (only its salted hash is
    /// kept).
    ///
    /// # Errors
    /// Storage failure.
    pub async fn create_token(&self, user: Id) -> Result<String, StoreError> {
        use rand::RngCore;
        let mut raw = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let hash = token_hash(&self.salt, &token);
        match &self.engine {
            Engine::Sled(s) => s.put_token(&hash, user)?,
            Engine::Postgres(p) => p.put_token(&hash, user).await?,
        }
        Ok(token)
    }

    /// The user an API token belongs to.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let hash = token_hash(&self.salt, token);
        match &self.engine {
            Engine::Sled(s) => s.user_by_token_hash(&hash),
            Engine::Postgres(p) => pg::read::user_by_token_hash(&p.pool, &hash).await,
        }
    }

    /// The organisations and projects `user` is related to.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn relations(&self, user: Id) -> Result<Relations, StoreError> {
        match &self.engine {
            Engine::Sled(s) => {
                let cat = s.read()?;
                Ok(Relations {
                    owner_of: cat
                        .customers
                        .values()
                        .filter(|c| c.owners.contains(&user))
                        .map(|c| c.id)
                        .collect(),
                    manager_of: cat
                        .customers
                        .values()
                        .filter(|c| c.managers.contains(&user))
                        .map(|c| c.id)
                        .collect(),
                    member_of: cat
                        .projects
                        .values()
                        .filter(|p| p.members.contains(&user))
                        .map(|p| p.id)
                        .collect(),
                })
            }
            Engine::Postgres(p) => p.relations(user).await,
        }
    }

    // ---- directory

    /// A customer (organisation) by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn customer(&self, id: Id) -> Result<Option<Customer>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.customers.get(&id).cloned()),
            Engine::Postgres(p) => pg::read::customer(&p.pool, id).await,
        }
    }

    /// A project by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn project(&self, id: Id) -> Result<Option<Project>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.projects.get(&id).cloned()),
            Engine::Postgres(p) => pg::read::project(&p.pool, id).await,
        }
    }

    /// An offering by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn offering(&self, id: Id) -> Result<Option<Offering>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.offerings.get(&id).cloned()),
            Engine::Postgres(p) => pg::read::offering(&p.pool, id).await,
        }
    }

    /// Every offering (a few hundred at most: `bookcal sync --all`, the demo).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn all_offerings(&self) -> Result<Vec<Offering>, StoreError> {
        let mut out = match &self.engine {
            Engine::Sled(s) => s.read()?.offerings.values().cloned().collect(),
            Engine::Postgres(p) => p.all_offerings().await?,
        };
        out.sort_by(|a: &Offering, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        Ok(out)
    }

    /// The whole directory: users, organisations, projects and offerings (the demo,
    /// imports, `bookcal migrate` and test set-up read it; a few thousand records at
    /// most).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn directory(&self) -> Result<Directory, StoreError> {
        match &self.engine {
            Engine::Sled(s) => {
                let cat = s.read()?;
                Ok(Directory {
                    users: cat.users.clone(),
                    customers: cat.customers.clone(),
                    projects: cat.projects.clone(),
                    offerings: cat.offerings.clone(),
                })
            }
            Engine::Postgres(p) => {
                let mut conn = p.pool.acquire().await?;
                pg::read::directory(&mut conn).await
            }
        }
    }

    /// API token hashes, slot sequences and the feed UID key, as stored.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub(crate) async fn extras(&self) -> Result<migrate::Extras, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.extras(),
            Engine::Postgres(p) => p.extras().await,
        }
    }

    /// Writes API token hashes, slot sequences and the feed UID key (a copy's).
    ///
    /// # Errors
    /// Storage failure.
    pub(crate) async fn put_extras(&self, e: &migrate::Extras) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.put_extras(e),
            Engine::Postgres(p) => p.put_extras(e).await,
        }
    }

    /// The records a page refers to (see [`Wanted`]).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn related(&self, want: &Wanted) -> Result<Related, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.related(want)?),
            Engine::Postgres(p) => p.related(want).await,
        }
    }

    // ---- bookings

    /// A booking resource by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn resource(&self, id: Id) -> Result<Option<Resource>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.resource(id),
            Engine::Postgres(p) => pg::read::resource(&p.pool, id).await,
        }
    }

    /// An order by id.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn order(&self, id: Id) -> Result<Option<Order>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.order(id),
            Engine::Postgres(p) => pg::read::order(&p.pool, id).await,
        }
    }

    /// Who a booking resource concerns (for visibility), without loading it.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn resource_parties(&self, id: Id) -> Result<Option<Parties>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.resources.get(&id).map(|r| Parties {
                offering: r.offering,
                provider: r.provider,
                customer: r.customer,
                project: r.project,
                created_by: r.created_by,
            })),
            Engine::Postgres(p) => p.parties("resources", id).await,
        }
    }

    /// Who an order concerns (for visibility), without loading it.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn order_parties(&self, id: Id) -> Result<Option<Parties>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => Ok(s.read()?.orders.get(&id).map(|o| Parties {
                offering: o.offering,
                provider: o.provider,
                customer: o.customer,
                project: o.project,
                created_by: o.created_by,
            })),
            Engine::Postgres(p) => p.parties("orders", id).await,
        }
    }

    /// Every booking resource of an offering, whatever its state.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn offering_resources(&self, offering: Id) -> Result<Vec<Resource>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.offering_resources(offering),
            Engine::Postgres(p) => p.resources_where("offering", offering).await,
        }
    }

    /// Every booking resource `user` created, whatever its offering and state.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn resources_by(&self, user: Id) -> Result<Vec<Resource>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.resources_by(user),
            Engine::Postgres(p) => p.resources_where("created_by", user).await,
        }
    }

    /// A page of booking resources.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn list_resources(&self, q: &ResourceQuery) -> Result<Page<Resource>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.list_resources(q),
            Engine::Postgres(p) => pg::query::resources(&p.pool, q).await,
        }
    }

    /// A page of orders.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn list_orders(&self, q: &OrderQuery) -> Result<Page<Order>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.list_orders(q),
            Engine::Postgres(p) => pg::query::orders(&p.pool, q).await,
        }
    }

    /// A page of booking offerings.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn list_offerings(&self, q: &OfferingQuery) -> Result<Page<Offering>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.list_offerings(q),
            Engine::Postgres(p) => pg::query::offerings(&p.pool, q).await,
        }
    }

    /// An offering's busy slots with their source events.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn busy_slots(&self, offering: Id) -> Result<Vec<BusySlot>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.busy_slots(offering),
            Engine::Postgres(p) => pg::read::busy_slots(&p.pool, offering).await,
        }
    }

    /// An order's attachment, if one is stored (and readable).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn attachment(&self, order: Id) -> Result<Option<Attachment>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.attachment(order),
            Engine::Postgres(p) => pg::read::attachment(&p.pool, order).await,
        }
    }

    // ---- the Google side

    /// The calendar record of an offering, if any action or sync created one.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn calendar(&self, offering: Id) -> Result<Option<OfferingCalendar>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.calendar(offering),
            Engine::Postgres(p) => pg::read::calendar(&p.pool, offering).await,
        }
    }

    /// Every calendar record.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn calendars(&self) -> Result<Vec<OfferingCalendar>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.calendars(),
            Engine::Postgres(p) => pg::read::calendars(&p.pool).await,
        }
    }

    /// The slot mapping of an offering: backend_id -> what we pushed.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn mapping(&self, offering: Id) -> Result<BTreeMap<String, MappedEvent>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.mapping(offering),
            Engine::Postgres(p) => pg::read::mapping(&p.pool, offering).await,
        }
    }

    /// The external events last seen in an offering's calendar.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn externals(&self, offering: Id) -> Result<Vec<ExternalEvent>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.externals(offering),
            Engine::Postgres(p) => pg::read::externals(&p.pool, offering).await,
        }
    }

    /// Every queued job (pending and running), in sequence order.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.jobs(),
            Engine::Postgres(p) => p.jobs(None).await,
        }
    }

    /// The jobs of one offering: the running one first, then the pending ones by due
    /// time.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn queued_jobs(&self, offering: Id) -> Result<Vec<Job>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.queued_jobs(offering),
            Engine::Postgres(p) => p.jobs(Some(offering)).await,
        }
    }

    /// The sequence number of the offering's running job, if one runs (on any
    /// replica).
    ///
    /// # Errors
    /// Storage failure.
    pub async fn running_job(&self, offering: Id) -> Result<Option<u64>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.running_job(offering),
            Engine::Postgres(p) => p.running_job(offering).await,
        }
    }

    /// Notified whenever jobs are queued, put back or finished.
    pub fn job_wakeup(&self) -> Arc<tokio::sync::Notify> {
        match &self.engine {
            Engine::Sled(s) => s.job_wakeup.clone(),
            Engine::Postgres(p) => p.job_wakeup.clone(),
        }
    }

    /// Forgets everything known about the offerings' Google calendars (calendar
    /// records, slot mappings, external events, busy slots, queued jobs), in one
    /// transaction. For a fresh Google account, such as the demo's new emulator;
    /// bookings are untouched.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn forget_google_state(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.forget_google_state(),
            Engine::Postgres(p) => p.forget_google_state().await,
        }
    }

    // ---- feeds

    /// The token whose secret this is, if it exists (revoked tokens do not).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn feed_token_by_secret(
        &self,
        secret: &str,
    ) -> Result<Option<FeedToken>, StoreError> {
        self.feed_token_by_hash(&feed_tokens::feed_token_hash(secret))
            .await
    }

    /// The token whose secret hashes to `hash` ([`feed_tokens::feed_token_hash`]), if
    /// it exists: for a caller that needs the hash anyway.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn feed_token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<FeedToken>, StoreError> {
        use subtle::ConstantTimeEq;
        let hash = *hash;
        let token = match &self.engine {
            Engine::Sled(s) => s.feed_token(&hash)?,
            Engine::Postgres(p) => pg::read::feed_token(&p.pool, &hash).await?,
        };
        Ok(token.filter(|t| bool::from(t.hash.ct_eq(&hash))))
    }

    /// The tokens of one scope, oldest first.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn feed_tokens(&self, scope: FeedScope) -> Result<Vec<FeedToken>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.feed_tokens(scope),
            Engine::Postgres(p) => pg::read::feed_tokens_of(&p.pool, scope).await,
        }
    }

    /// Records a use of a token at `now`, unless a use within
    /// [`feed_tokens::LAST_USED_RESOLUTION`] is already recorded or the token was
    /// revoked meanwhile (so a revocation is never undone). Returns whether it wrote.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn touch_feed_token(
        &self,
        hash: &[u8; 32],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.touch_feed_token(hash, now),
            Engine::Postgres(p) => p.touch_feed_token(hash, now).await,
        }
    }

    /// The `SEQUENCE` of each slot `(backend_id, start, end)` (see
    /// [`feed_tokens`]). A read: nothing is written.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn slot_sequences(
        &self,
        slots: &[(
            &str,
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
        )],
    ) -> Result<Vec<u32>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.slot_sequences(slots),
            Engine::Postgres(p) => {
                let ids: Vec<String> = slots.iter().map(|(id, _, _)| id.to_string()).collect();
                let recorded = pg::read::slot_sequences(&p.pool, &ids).await?;
                Ok(slots
                    .iter()
                    .map(|(id, start, end)| {
                        feed_tokens::derived_sequence(recorded.get(*id).copied(), *start, *end)
                    })
                    .collect())
            }
        }
    }

    // ---- writes

    /// Runs `rule` on what `load` names and writes the changes it returns, atomically
    /// with the reads (see [`mutate`]). The rule may run more than once on
    /// PostgreSQL (after a lost race), so it must not have side effects.
    ///
    /// # Errors
    /// `Refused` with the rule's error (nothing written), or `Store`.
    pub async fn mutate<R, E>(
        &self,
        load: &Load,
        rule: impl Fn(&View) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, MutateError<E>> {
        match &self.engine {
            Engine::Sled(s) => s.mutate_view(load, rule),
            Engine::Postgres(p) => p.mutate(load, rule).await,
        }
    }

    /// Writes changes atomically, without a check (the sync engine's results,
    /// imports, tokens).
    ///
    /// # Errors
    /// Storage failure (then nothing was written).
    pub async fn write(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.sync_put(changes),
            Engine::Postgres(p) => p.write(&changes).await,
        }
    }

    /// A fresh, unique, increasing number (job sequence numbers and the like).
    ///
    /// # Errors
    /// Storage failure.
    pub async fn next_id(&self) -> Result<u64, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.next_id(),
            Engine::Postgres(p) => pg::read::next_id(&p.pool).await,
        }
    }

    /// Makes every write durable (sled writes are flushed on every commit already;
    /// this also syncs sled's own files). Nothing to do on PostgreSQL.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.flush().await,
            Engine::Postgres(_) => Ok(()),
        }
    }

    /// The secret the feeds key their slot UIDs with (never shown or logged): random,
    /// created once with the data, the same for every process on it.
    pub fn feed_uid_key(&self) -> &[u8; 32] {
        match &self.engine {
            Engine::Sled(s) => s.feed_uid_key(),
            Engine::Postgres(p) => &p.feed_uid_key,
        }
    }

    /// Booking resources still waiting for acceptance whose time (slots, or the
    /// requested time of their order) has all started by `now`.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn stale_requests(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Id>, StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.stale_requests(now),
            Engine::Postgres(p) => p.stale_requests(now).await,
        }
    }

    /// Whether the store answers: a trivial read (`/ready`).
    ///
    /// # Errors
    /// The store does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(s) => s.read().map(|_| ()),
            Engine::Postgres(p) => p.ping().await,
        }
    }
}
