//! One throw-away PostgreSQL cluster for the tests of this binary, started on first
//! use (`bookcal::store::pg::cluster`), a fresh database per test.
//!
//! The cluster's first database is migrated once and kept as a template; every test
//! database is a copy of it (`CREATE DATABASE .. TEMPLATE`), which is much cheaper
//! than running the migrations again for each of the hundreds of services the suite
//! spawns on PostgreSQL.
//!
//! Without the server binaries the PostgreSQL tests skip with a message; with
//! `BOOKCAL_REQUIRE_POSTGRES` set (CI sets it) they fail instead.

use bookcal::store::pg::cluster::{ClusterError, Durability, LocalCluster};
use bookcal::store::{Store, StoreOptions};
use sqlx::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running cluster and the name of its migrated template database.
struct Cluster {
    cluster: LocalCluster,
    template: String,
}

static CLUSTER: tokio::sync::OnceCell<Option<Cluster>> = tokio::sync::OnceCell::const_new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Starts the cluster and migrates its template database (through the store's own
/// start-up path), then makes sure nothing stays connected to the template.
async fn start() -> Option<Cluster> {
    let cluster = match LocalCluster::start(Durability::Throwaway).await {
        Ok(c) => c,
        Err(ClusterError::NoBinaries) if std::env::var_os("BOOKCAL_REQUIRE_POSTGRES").is_none() => {
            return None
        }
        Err(e) => panic!("cannot start a local PostgreSQL cluster: {e}"),
    };
    let template = format!("it_template_{}", std::process::id());
    let url = cluster
        .create_database(&template)
        .await
        .expect("create the template database");
    let store = Store::connect(&url, &StoreOptions::default(), &Default::default())
        .await
        .expect("migrate the template database");
    drop(store);
    // The store's pool and listener close their connections in the background: end
    // whatever is left, since a template with connections cannot be copied.
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the cluster");
    sqlx::query(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        quoted(&template)
    ))
    .execute(&mut admin)
    .await
    .expect("close the template");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&template)
        .execute(&mut admin)
        .await
        .expect("end the template's connections");
    let _ = admin.close().await;
    Some(Cluster { cluster, template })
}

/// The URL of a new database holding the current schema and no records, or `None`
/// (with a message) when PostgreSQL is not installed and not required.
pub async fn database() -> Option<String> {
    let Some(c) = CLUSTER.get_or_init(start).await else {
        eprintln!(
            "skipped: no PostgreSQL server binaries (install Debian's postgresql, or set BOOKCAL_PG_BINDIR)"
        );
        return None;
    };
    let name = format!(
        "it_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&c.cluster.url("postgres"))
        .await
        .expect("connect to the cluster");
    sqlx::query(&format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quoted(&name),
        quoted(&c.template)
    ))
    .execute(&mut admin)
    .await
    .expect("copy the template database");
    let _ = admin.close().await;
    Some(c.cluster.url(&name))
}
