//! The PostgreSQL engine: the store for more than one process. Any number of bookcal
//! replicas share one database, which enforces the invariants across them.
//!
//! - sqlx with runtime-checked queries (no database at compile time) and its pool.
//! - Versioned migrations ([`MIGRATIONS`], `migrations/*.sql`) run at start-up and by
//!   `bookcal migrate`, under sqlx's advisory lock, so replicas starting together
//!   apply each migration once; then bookcal folds the searched texts of rows that
//!   lack their folding ([`folded`]).
//! - Records are the same versioned JSON documents the sled engine writes (`doc`);
//!   the other columns are derived from them in the same statement, for listing.
//!
//! Invariants (see `migrations/0001_schema.sql`): no two live slots of an offering
//! overlap (an exclusion constraint, whatever replica writes them).

pub mod cluster;
pub(crate) mod folded;
pub(crate) mod jobs;
pub(crate) mod notify;
pub(crate) mod query;
pub(crate) mod read;
pub(crate) mod write;

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::feed_tokens::{FeedToken, LAST_USED_RESOLUTION};
use super::mutate::{Load, View};
use super::records::OfferingRecord;
use super::versions::Versions;
use super::{Change, MutateError, Related, Relations, StoreError, Wanted};
use crate::domain::{Id, Offering, Resource};

/// The schema's migrations, in order: (version, description, SQL). A released
/// migration never changes (sqlx refuses a database whose applied migration has
/// another checksum); a new layout is a new migration.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("migrations/0001_schema.sql")),
    (
        2,
        "push channels",
        include_str!("migrations/0002_push_channels.sql"),
    ),
    (
        3,
        "job leases",
        include_str!("migrations/0003_job_leases.sql"),
    ),
    (
        4,
        "web sessions",
        include_str!("migrations/0004_web_sessions.sql"),
    ),
    (
        10,
        "list indexes",
        include_str!("migrations/0010_list_indexes.sql"),
    ),
    (
        11,
        "folded text",
        include_str!("migrations/0011_folded_text.sql"),
    ),
    (
        12,
        "pending push channels",
        include_str!("migrations/0012_pending_push_channels.sql"),
    ),
    (
        14,
        "open requests",
        include_str!("migrations/0014_open_requests.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>>
                + Send,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Applies the migrations the database lacks (under an advisory lock), then folds
/// the searched texts of rows written without their folding ([`folded::fill`]: SQL
/// cannot fold as bookcal does).
///
/// # Errors
/// The database refuses, or holds a migration this binary does not know (a newer
/// bookcal migrated it) or one with another checksum.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let migrator = Migrator::new(Embedded).await?;
    migrator.run(pool).await?;
    folded::fill(pool).await
}

/// Connection settings of the PostgreSQL engine.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections this process keeps at most.
    pub max_connections: u32,
    /// How long a claimed job stays this process's without renewal (runs renew it
    /// every third of it); after that another replica may take the job over.
    pub job_lease: std::time::Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            job_lease: std::time::Duration::from_secs(60),
        }
    }
}

/// Opens a pool on `url` (`postgres://user:password@host:port/database`).
///
/// # Errors
/// The URL is malformed or the server cannot be reached.
pub async fn connect(url: &str, opts: &PgOptions) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(pool)
}

/// The PostgreSQL engine of one process: its pool, and the listener that keeps the
/// process's data versions in step with every replica's writes.
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) versions: Arc<Versions>,
    listener: tokio::task::JoinHandle<()>,
    /// Write transactions this process committed.
    commits: std::sync::atomic::AtomicU64,
    /// The feeds' UID key (see `Store::feed_uid_key`), the same for every replica.
    pub(crate) feed_uid_key: [u8; 32],
    /// This process's name on the job leases it holds (random per process).
    pub(crate) job_owner: String,
    /// See [`PgOptions::job_lease`].
    pub(crate) job_lease: std::time::Duration,
    /// How long a sync implied by a change waits (see `StoreOptions::sync_debounce`).
    pub(crate) sync_debounce: std::time::Duration,
    /// Woken when any replica queues, puts back or finishes a job.
    pub(crate) job_wakeup: Arc<tokio::sync::Notify>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects, brings the schema up to date and starts listening for other
    /// replicas' writes.
    ///
    /// # Errors
    /// The server cannot be reached, refuses, or holds a newer schema.
    pub(crate) async fn open(
        url: &str,
        opts: &PgOptions,
        store: &super::StoreOptions,
        versions: Arc<Versions>,
    ) -> Result<PgStore, StoreError> {
        let pool = connect(url, opts).await?;
        migrate(&pool).await?;
        let feed_uid_key = feed_uid_key(&pool).await?;
        let job_wakeup = Arc::new(tokio::sync::Notify::new());
        let listener = notify::listen(&pool, versions.clone(), job_wakeup.clone()).await?;
        Ok(PgStore {
            pool,
            versions,
            listener,
            commits: Default::default(),
            feed_uid_key,
            job_owner: jobs::replica_id(),
            job_lease: opts.job_lease,
            sync_debounce: store.sync_debounce,
            job_wakeup,
        })
    }

    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn committed(&self) {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// API token hashes, slot sequences and the feed UID key, as stored.
    pub(crate) async fn extras(&self) -> Result<super::migrate::Extras, StoreError> {
        let tokens: Vec<(Vec<u8>, uuid::Uuid)> =
            sqlx::query_as("SELECT hash, user_id FROM api_tokens")
                .fetch_all(&self.pool)
                .await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT backend_id, doc::text FROM slot_sequences")
                .fetch_all(&self.pool)
                .await?;
        let sequences = rows
            .into_iter()
            .map(|(id, doc)| super::feed_tokens::decode_sequence(doc.as_bytes()).map(|s| (id, s)))
            .collect::<Result<_, _>>()?;
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'feed_uid_key_v1'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(super::migrate::Extras {
            tokens: tokens.into_iter().map(|(h, u)| (h, Id(u))).collect(),
            sequences,
            feed_uid_key: key.and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()),
        })
    }

    /// Writes API token hashes, slot sequences and the feed UID key in one
    /// transaction (the key takes effect when the store is opened again).
    pub(crate) async fn put_extras(&self, e: &super::migrate::Extras) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (hash, user) in &e.tokens {
            sqlx::query(
                "INSERT INTO api_tokens (hash, user_id) VALUES ($1, $2)
                 ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id",
            )
            .bind(hash.as_slice())
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        }
        for (backend_id, seq) in &e.sequences {
            sqlx::query(
                "INSERT INTO slot_sequences (backend_id, doc) VALUES ($1, $2::jsonb)
                 ON CONFLICT (backend_id) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(backend_id)
            .bind(String::from_utf8_lossy(&super::feed_tokens::encode_sequence(seq)?).into_owned())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(k) = e.feed_uid_key {
            sqlx::query(
                "INSERT INTO meta (name, value) VALUES ('feed_uid_key_v1', $1)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(k.as_slice())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    /// The parties of a resource or an order (`table`).
    pub(crate) async fn parties(
        &self,
        table: &'static str,
        id: Id,
    ) -> Result<Option<super::query::Parties>, StoreError> {
        let sql = match table {
            "resources" => {
                "SELECT offering, provider, customer, project, created_by FROM resources WHERE id = $1"
            }
            _ => "SELECT offering, provider, customer, project, created_by FROM orders WHERE id = $1",
        };
        type Row = (uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid);
        let row: Option<Row> = sqlx::query_as(sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(o, pv, c, pj, by)| super::query::Parties {
            offering: Id(o),
            provider: Id(pv),
            customer: Id(c),
            project: Id(pj),
            created_by: Id(by),
        }))
    }

    /// See `Store::stale_requests`.
    pub(crate) async fn stale_requests(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Id>, StoreError> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT r.doc::text, o.doc::text FROM resources r
             LEFT JOIN orders o ON o.resource = r.id AND o.kind = 'Create'
             WHERE r.state = 'Creating'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut requested: std::collections::HashMap<Id, Vec<crate::domain::Interval>> =
            Default::default();
        let mut resources = std::collections::HashMap::new();
        for (r, o) in rows {
            let r = Resource::from(super::decode::<super::records::ResourceRecord>(
                "resources",
                r.as_bytes(),
            )?);
            if let Some(o) = o {
                let o = crate::domain::Order::from(super::decode::<super::records::OrderRecord>(
                    "orders",
                    o.as_bytes(),
                )?);
                requested.entry(r.id).or_default().extend(o.requested());
            }
            resources.insert(r.id, r);
        }
        let mut out: Vec<Id> = resources
            .values()
            .filter(|r| {
                let slots = r.slots.iter().map(|s| s.interval()).collect::<Vec<_>>();
                let asked = requested.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
                super::transition::all_started(slots.iter().chain(asked), now)
            })
            .map(|r| r.id)
            .collect();
        out.sort();
        Ok(out)
    }

    /// A trivial round trip.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn put_token(&self, hash: &[u8], user: Id) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (hash, user_id) VALUES ($1, $2)
             ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id",
        )
        .bind(hash)
        .bind(user.0)
        .execute(&self.pool)
        .await?;
        self.committed();
        Ok(())
    }

    pub(crate) async fn relations(&self, user: Id) -> Result<Relations, StoreError> {
        let customers: Vec<(uuid::Uuid, bool, bool)> = sqlx::query_as(
            "SELECT id, owners @> ARRAY[$1], managers @> ARRAY[$1] FROM customers
             WHERE owners @> ARRAY[$1] OR managers @> ARRAY[$1]",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        let projects: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM projects WHERE members @> ARRAY[$1]")
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Relations::default();
        for (id, owner, manager) in customers {
            if owner {
                out.owner_of.insert(Id(id));
            }
            if manager {
                out.manager_of.insert(Id(id));
            }
        }
        out.member_of = projects.into_iter().map(Id).collect();
        Ok(out)
    }

    pub(crate) async fn all_offerings(&self) -> Result<Vec<Offering>, StoreError> {
        let docs: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM offerings")
            .fetch_all(&self.pool)
            .await?;
        read::decode_all::<OfferingRecord, Offering>("offerings", &docs)
    }

    /// Resources whose `column` (`offering` or `created_by`) is `id`.
    pub(crate) async fn resources_where(
        &self,
        column: &'static str,
        id: Id,
    ) -> Result<Vec<Resource>, StoreError> {
        let sql = match column {
            "offering" => "SELECT doc::text FROM resources WHERE offering = $1 ORDER BY name, id",
            _ => "SELECT doc::text FROM resources WHERE created_by = $1 ORDER BY name, id",
        };
        let docs: Vec<String> = sqlx::query_scalar(sql)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        read::decode_all::<super::records::ResourceRecord, Resource>("resources", &docs)
    }

    pub(crate) async fn related(&self, want: &Wanted) -> Result<Related, StoreError> {
        let mut out = Related::default();
        for u in read::users(&self.pool, &want.users).await? {
            out.users.insert(u.id, u);
        }
        for p in read::projects(&self.pool, &want.projects).await? {
            out.projects.insert(p.id, p);
        }
        for o in read::offerings(&self.pool, &want.offerings).await? {
            out.offerings.insert(o.id, o);
        }
        let organisations: Vec<Id> = want
            .customers
            .iter()
            .chain(out.projects.values().map(|p| &p.customer))
            .chain(out.offerings.values().map(|o| &o.customer))
            .copied()
            .collect();
        if !organisations.is_empty() {
            for c in read::customers(&self.pool, &organisations).await? {
                out.customers.insert(c.id, c);
            }
        }
        if !want.resource_names.is_empty() {
            let rows: Vec<(uuid::Uuid, String)> =
                sqlx::query_as("SELECT id, name FROM resources WHERE id = ANY($1)")
                    .bind(read::ids(&want.resource_names))
                    .fetch_all(&self.pool)
                    .await?;
            out.resource_names = rows.into_iter().map(|(i, n)| (Id(i), n)).collect();
        }
        if !want.order_counts.is_empty() {
            out.order_counts = want.order_counts.iter().map(|o| (*o, 0)).collect();
            out.order_counts
                .extend(query::order_counts(&self.pool, &want.order_counts).await?);
        }
        Ok(out)
    }

    pub(crate) async fn forget_google_state(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let offerings: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT offering FROM calendars UNION SELECT offering FROM busy")
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("TRUNCATE calendars, slot_map, externals, jobs, busy, push_channels")
            .execute(&mut *tx)
            .await?;
        let touched: Vec<Change> = offerings
            .into_iter()
            .map(|o| Change::Busy(Id(o), Vec::new()))
            .collect();
        let stamp = self.announce(&mut tx, &touched).await?;
        tx.commit().await?;
        self.committed();
        self.stamped(&touched, stamp);
        Ok(())
    }

    /// Records a use of a token (see `Store::touch_feed_token`): one conditional
    /// update, so a revoked token stays revoked and concurrent uses write once.
    pub(crate) async fn touch_feed_token(
        &self,
        hash: &[u8; 32],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut t): Option<FeedToken> = ({
            let doc: Option<String> =
                sqlx::query_scalar("SELECT doc::text FROM feed_tokens WHERE hash = $1 FOR UPDATE")
                    .bind(hash.as_slice())
                    .fetch_optional(&mut *tx)
                    .await?;
            doc.map(|d| super::feed_tokens::decode_token(d.as_bytes()))
                .transpose()?
        }) else {
            return Ok(false);
        };
        if t.last_used.is_some_and(|u| now - u < LAST_USED_RESOLUTION) {
            return Ok(false);
        }
        t.last_used = Some(now);
        write::apply(&mut tx, &[Change::FeedToken(t)]).await?;
        tx.commit().await?;
        self.committed();
        Ok(true)
    }

    /// Writes `changes` in one transaction, announcing the scopes they touch.
    ///
    /// # Errors
    /// The database refuses (then nothing was written).
    pub(crate) async fn write(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        self.apply(&mut tx, changes).await?;
        let stamp = self.announce(&mut tx, changes).await?;
        tx.commit().await?;
        self.committed();
        self.stamped(changes, stamp);
        Ok(())
    }

    /// See `Store::mutate`.
    pub(crate) async fn mutate<R, E>(
        &self,
        load: &Load,
        rule: impl Fn(&View) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, MutateError<E>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.mutate_once(load, &rule).await {
                Err(MutateError::Store(e)) if attempt < 4 && transient(&e) => continue,
                other => return other,
            }
        }
    }

    async fn mutate_once<R, E>(
        &self,
        load: &Load,
        rule: &impl Fn(&View) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, MutateError<E>> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let mut view = View::default();
        if load.directory {
            // One import (or other directory-wide rule) at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bookcal directory'))")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            view.directory = read::directory(&mut tx).await?;
        }
        let locked = load.locked_offerings();
        if !locked.is_empty() {
            let ids = locked;
            let docs: Vec<String> = sqlx::query_scalar(
                "SELECT doc::text FROM offerings WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind(read::ids(&ids))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            for o in read::decode_all::<OfferingRecord, Offering>("offerings", &docs)? {
                view.offerings.insert(o.id, o);
            }
        }
        for id in &load.taken {
            view.taken
                .insert(*id, read::taken(&mut tx, *id, load.taken_within).await?);
        }
        for p in read::projects(&mut *tx, &load.projects).await? {
            view.projects.insert(p.id, p);
        }
        let organisations: Vec<Id> = load
            .customers
            .iter()
            .chain(view.offerings.values().map(|o| &o.customer))
            .chain(view.projects.values().map(|p| &p.customer))
            .copied()
            .collect();
        if !organisations.is_empty() {
            for c in read::customers(&mut *tx, &organisations).await? {
                view.customers.insert(c.id, c);
            }
        }
        if !load.resources.is_empty() {
            for r in read::resources_locked(&mut tx, &load.resources).await? {
                view.resources.insert(r.id, r);
            }
        }
        if !load.orders.is_empty() {
            for o in read::orders_locked(&mut tx, &load.orders).await? {
                view.orders.insert(o.id, o);
            }
        }
        for c in read::calendars_of(&mut *tx, &load.calendars).await? {
            view.calendars.insert(c.offering, c);
        }
        if let Some(scope) = load.feed_tokens {
            view.feed_tokens = read::feed_tokens_of(&mut *tx, scope).await?;
        }
        if !load.push.is_empty() {
            // A push state may not exist yet, so no row lock: an advisory lock per
            // offering (in one order) serialises its read-modify-writes.
            let mut ids = load.push.clone();
            ids.sort();
            ids.dedup();
            for id in &ids {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bookcal push ' || $1::text))")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            }
            for p in read::push_states_of(&mut *tx, &ids).await? {
                view.push.insert(p.offering, p);
            }
            view.now = Some(read::clock(&mut *tx).await?);
        }
        let (changes, out) = rule(&view).map_err(MutateError::Refused)?;
        if !changes.is_empty() {
            self.apply(&mut tx, &changes).await?;
            let stamp = self.announce(&mut tx, &changes).await?;
            tx.commit().await.map_err(StoreError::from)?;
            self.committed();
            self.stamped(&changes, stamp);
        }
        Ok(out)
    }

    /// Announces the scopes `changes` touch (inside the transaction that writes them).
    pub(crate) async fn announce(
        &self,
        conn: &mut sqlx::PgConnection,
        changes: &[Change],
    ) -> Result<Option<u64>, StoreError> {
        let mut scopes: Vec<super::Scope> = changes.iter().flat_map(Change::scopes).collect();
        scopes.sort_by_key(|s| format!("{s:?}"));
        scopes.dedup();
        if scopes.is_empty() {
            return Ok(None);
        }
        notify::announce(conn, &scopes).await.map(Some)
    }

    /// Stamps this process's versions at once after a commit (the announcement
    /// reaches the listener a moment later and changes nothing more).
    pub(crate) fn stamped(&self, changes: &[Change], stamp: Option<u64>) {
        if let Some(stamp) = stamp {
            self.versions
                .stamp(changes.iter().flat_map(Change::scopes), stamp);
        }
    }
}

/// The installation's feed UID key: made once by whichever replica comes first.
async fn feed_uid_key(pool: &PgPool) -> Result<[u8; 32], StoreError> {
    use rand::RngCore;
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    sqlx::query(
        "INSERT INTO meta (name, value) VALUES ('feed_uid_key_v1', $1) ON CONFLICT DO NOTHING",
    )
    .bind(k.as_slice())
    .execute(pool)
    .await?;
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM meta WHERE name = 'feed_uid_key_v1'")
            .fetch_one(pool)
            .await?;
    <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| StoreError::CorruptIndex("meta"))
}

/// Whether a failed transaction lost a race and may succeed when run again: a
/// deadlock, a serialisation failure, or the exclusion constraint (another
/// transaction booked the time first; run again, the rule sees it and refuses).
pub(crate) fn transient(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001" | "23P01"))
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! One throw-away cluster for the unit tests of this process, a database each.
    use super::cluster::{Durability, LocalCluster};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CLUSTER: tokio::sync::OnceCell<LocalCluster> = tokio::sync::OnceCell::const_new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    /// A new, empty database on the shared cluster.
    pub async fn database() -> String {
        let cluster = CLUSTER
            .get_or_try_init(|| LocalCluster::start(Durability::Throwaway))
            .await
            .expect("a local PostgreSQL cluster (install Debian's postgresql)");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        cluster
            .create_database(&format!("unit_{}_{n}", std::process::id()))
            .await
            .expect("create database")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> PgPool {
        let url = testing::database().await;
        let pool = connect(&url, &PgOptions::default()).await.expect("connect");
        migrate(&pool).await.expect("migrate");
        pool
    }

    async fn slot(
        pool: &PgPool,
        offering: uuid::Uuid,
        n: i32,
        hours: (u32, u32),
        live: bool,
    ) -> Result<(), sqlx::Error> {
        let resource = uuid::Uuid::new_v4();
        let t = |h: u32| {
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2030, 1, 1, h, 0, 0)
                .single()
                .expect("time")
        };
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO resources (id, offering, project, customer, provider, name, slug,
             backend_id, state, created, modified, created_by, doc)
             VALUES ($1, $2, $1, $1, $1, 'r', 'r', '', 'OK', now(), now(), $1, '{}')",
        )
        .bind(resource)
        .bind(offering)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO slots (resource, n, offering, backend_id, start_at, end_at, live)
             VALUES ($1, $2, $3, 'b', $4, $5, $6)",
        )
        .bind(resource)
        .bind(n)
        .bind(offering)
        .bind(t(hours.0))
        .bind(t(hours.1))
        .bind(live)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    #[tokio::test]
    async fn a_write_on_one_replica_moves_the_versions_of_another() {
        use super::super::Scope;
        let url = testing::database().await;
        let opts = PgOptions::default();
        let a = PgStore::open(&url, &opts, &Default::default(), Arc::default())
            .await
            .expect("a");
        let b = PgStore::open(&url, &opts, &Default::default(), Arc::default())
            .await
            .expect("b");
        let offering = Id::new_v4();
        let scope = [Scope::Offering(offering)];
        let other = [Scope::Offering(Id::new_v4())];
        let before = (b.versions.version(&scope), b.versions.version(&other));
        a.write(&[Change::Busy(offering, Vec::new())])
            .await
            .expect("write");
        assert!(
            a.versions.version(&scope) > before.0,
            "the writer sees it at once"
        );
        // The other replica follows through its listener.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while b.versions.version(&scope) == before.0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no announcement arrived"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(
            b.versions.version(&other),
            before.1,
            "other scopes keep theirs"
        );
        let busy = read::busy_slots(&b.pool, offering).await.expect("read");
        assert!(busy.is_empty());
    }

    #[tokio::test]
    async fn migrations_apply_once_and_again_change_nothing() {
        let pool = pool().await;
        migrate(&pool).await.expect("second run");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn rows_written_without_their_folding_are_folded_by_bookcal_at_the_next_start() {
        use crate::domain::search::fold;
        let pool = pool().await;
        let (r, p, o, order) = (
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
        );
        // As a bookcal older than migration 11 writes them: no folded columns.
        sqlx::raw_sql(&format!(
            "INSERT INTO projects (id, customer, name, members, doc)
                 VALUES ('{p}', '{p}', 'ΣΕΜΙΝΆΡΙΟ Émile', '{{}}', '{{}}');
             INSERT INTO offerings (id, customer, name, slug, category, doc)
                 VALUES ('{o}', '{p}', 'İZMİR Straße', 'izmir', '{p}', '{{}}');
             INSERT INTO resources (id, offering, project, customer, provider, name, slug,
                 backend_id, state, created, modified, created_by, doc)
                 VALUES ('{r}', '{o}', '{p}', '{p}', '{p}', 'ÉMILE ΟΔΟΣ', 'Émile-Slug',
                         'BACKEND-İ', 'OK', now(), now(), '{p}', '{{}}');
             INSERT INTO orders (id, offering, project, customer, provider, resource, state,
                 kind, created, modified, created_by, resource_name, doc)
                 VALUES ('{order}', '{o}', '{p}', '{p}', '{p}', '{r}', 'done', 'Create',
                         now(), now(), '{p}', 'ÉMILE ΟΔΟΣ', '{{}}');"
        ))
        .execute(&pool)
        .await
        .expect("insert");
        migrate(&pool).await.expect("start again");
        let folded: (String, String, String, String, String, String) = sqlx::query_as(
            "SELECT r.name_folded, r.slug_folded, r.backend_id_folded, p.name_folded,
                    f.name_folded, o.resource_name_folded
             FROM resources r, projects p, offerings f, orders o
             WHERE r.id = $1 AND p.id = $2 AND f.id = $3 AND o.id = $4",
        )
        .bind(r)
        .bind(p)
        .bind(o)
        .bind(order)
        .fetch_one(&pool)
        .await
        .expect("folded");
        assert_eq!(
            folded,
            (
                fold("ÉMILE ΟΔΟΣ"),
                fold("Émile-Slug"),
                fold("BACKEND-İ"),
                fold("ΣΕΜΙΝΆΡΙΟ Émile"),
                fold("İZMİR Straße"),
                fold("ÉMILE ΟΔΟΣ"),
            )
        );
        // Nothing is left for the next start.
        let unfolded: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM resources WHERE name_folded IS NULL)
                  + (SELECT count(*) FROM projects WHERE name_folded IS NULL)
                  + (SELECT count(*) FROM offerings WHERE name_folded IS NULL)
                  + (SELECT count(*) FROM orders WHERE resource_name_folded IS NULL)",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(unfolded, 0);
    }

    #[tokio::test]
    async fn the_database_refuses_overlapping_live_slots_of_one_offering() {
        let pool = pool().await;
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        slot(&pool, a, 0, (10, 12), true).await.expect("first");
        // (offering, hours, live, accepted)
        let cases = [
            (a, (11, 13), true, false),
            (a, (9, 11), true, false),
            (a, (10, 12), true, false),
            (a, (12, 13), true, true),
            (a, (8, 10), true, true),
            (a, (10, 12), false, true),
            (b, (10, 12), true, true),
        ];
        for (offering, hours, live, accepted) in cases {
            let r = slot(&pool, offering, 0, hours, live).await;
            match r {
                Ok(()) => assert!(accepted, "{hours:?} live {live} was accepted"),
                Err(sqlx::Error::Database(e)) => {
                    assert!(!accepted, "{hours:?} live {live} was refused: {e}");
                    assert_eq!(e.constraint(), Some("slots_no_overlap"));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}
