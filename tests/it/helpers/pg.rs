//! One throw-away PostgreSQL cluster for the tests of this binary, started on first
//! use (`bookcal::store::pg::cluster`), a fresh database per test.
//!
//! Without the server binaries the PostgreSQL tests skip with a message; with
//! `BOOKCAL_REQUIRE_POSTGRES` set (CI sets it) they fail instead.

use bookcal::store::pg::cluster::{ClusterError, Durability, LocalCluster};
use std::sync::atomic::{AtomicUsize, Ordering};

static CLUSTER: tokio::sync::OnceCell<Option<LocalCluster>> = tokio::sync::OnceCell::const_new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The URL of a new, empty database, or `None` (with a message) when PostgreSQL is
/// not installed and not required.
pub async fn database() -> Option<String> {
    let cluster = CLUSTER
        .get_or_init(|| async {
            match LocalCluster::start(Durability::Throwaway).await {
                Ok(c) => Some(c),
                Err(ClusterError::NoBinaries)
                    if std::env::var_os("BOOKCAL_REQUIRE_POSTGRES").is_none() =>
                {
                    None
                }
                Err(e) => panic!("cannot start a local PostgreSQL cluster: {e}"),
            }
        })
        .await;
    let Some(cluster) = cluster else {
        eprintln!(
            "skipped: no PostgreSQL server binaries (install Debian's postgresql, or set BOOKCAL_PG_BINDIR)"
        );
        return None;
    };
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Some(
        cluster
            .create_database(&format!("it_{}_{n}", std::process::id()))
            .await
            .expect("create a database"),
    )
}
