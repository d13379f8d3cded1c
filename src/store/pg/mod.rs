//! The PostgreSQL engine: the store for more than one process. Any number of bookcal
//! replicas share one database, which enforces the invariants across them.
//!
//! - sqlx with runtime-checked queries (no database at compile time) and its pool.
//! - Versioned migrations ([`MIGRATIONS`], `migrations/*.sql`) run at start-up and by
//!   `bookcal migrate`, under sqlx's advisory lock, so replicas starting together
//!   apply each migration once.
//! - Records are the same versioned JSON documents the sled engine writes (`doc`);
//!   the other columns are derived from them in the same statement, for listing.
//!
//! Invariants (see `migrations/0001_schema.sql`): no two live slots of an offering
//! overlap (an exclusion constraint, whatever replica writes them).

pub mod cluster;

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreError;

/// The schema's migrations, in order: (version, description, SQL). A released
/// migration never changes (sqlx refuses a database whose applied migration has
/// another checksum); a new layout is a new migration.
pub const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "schema", include_str!("migrations/0001_schema.sql"))];

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

/// Applies the migrations the database lacks (under an advisory lock).
///
/// # Errors
/// The database refuses, or holds a migration this binary does not know (a newer
/// bookcal migrated it) or one with another checksum.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let migrator = Migrator::new(Embedded).await?;
    migrator.run(pool).await?;
    Ok(())
}

/// Connection settings of the PostgreSQL engine.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections this process keeps at most.
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
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
