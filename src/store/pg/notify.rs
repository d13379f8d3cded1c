//! Data versions across replicas: every transaction that touches a [`Scope`] takes a
//! stamp from the database sequence `ids` and announces it with
//! `NOTIFY bookcal_versions, '<stamp> <scope> <scope> ...'`, delivered to every
//! listening replica when (and only if) the transaction commits. Each replica's
//! listener stamps its in-memory [`Versions`], so its feed caches follow a change made
//! anywhere within the notification's delay (milliseconds), and a cached feed is
//! still answered without touching the database.
//!
//! A listener that lost its connection may have missed announcements: on reconnecting
//! it moves every scope to a fresh stamp (all caches render again once).

use std::sync::Arc;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::PgConnection;

use super::super::versions::{Scope, Versions};
use super::super::StoreError;
use crate::domain::Id;

/// The notification channel.
pub(crate) const CHANNEL: &str = "bookcal_versions";

/// The channel a transaction that queues, puts back or finishes a job notifies (no
/// payload): every replica's scheduler looks at the queue again.
pub(crate) const JOBS_CHANNEL: &str = "bookcal_jobs";

/// PostgreSQL refuses payloads of 8000 bytes or more; past this many scopes a
/// transaction announces "everything".
const MAX_SCOPES: usize = 150;

fn encode_scope(s: &Scope) -> String {
    match s {
        Scope::Offering(id) => format!("o{}", id.hex()),
        Scope::BookingsBy(id) => format!("b{}", id.hex()),
        Scope::Directory => "d".into(),
    }
}

fn decode_scope(s: &str) -> Option<Scope> {
    match s.split_at_checked(1)? {
        ("o", id) => Id::parse(id).map(Scope::Offering),
        ("b", id) => Id::parse(id).map(Scope::BookingsBy),
        ("d", "") => Some(Scope::Directory),
        _ => None,
    }
}

/// What one announcement says.
#[derive(Debug, PartialEq)]
pub(crate) enum Announcement {
    Scopes(u64, Vec<Scope>),
    Everything(u64),
}

fn scopes_text(scopes: &[Scope]) -> String {
    if scopes.len() > MAX_SCOPES {
        return "*".into();
    }
    scopes
        .iter()
        .map(encode_scope)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn parse(payload: &str) -> Option<Announcement> {
    let mut words = payload.split(' ');
    let stamp = words.next()?.parse::<u64>().ok()?;
    let rest: Vec<&str> = words.collect();
    if rest == ["*"] {
        return Some(Announcement::Everything(stamp));
    }
    rest.into_iter()
        .map(decode_scope)
        .collect::<Option<Vec<_>>>()
        .map(|s| Announcement::Scopes(stamp, s))
}

/// Takes a stamp and announces `scopes` with it, inside the caller's transaction
/// (the notification is sent at commit). Returns the stamp.
///
/// # Errors
/// The database refuses.
pub(crate) async fn announce(conn: &mut PgConnection, scopes: &[Scope]) -> Result<u64, StoreError> {
    let stamp: i64 = sqlx::query_scalar(
        "WITH s AS (SELECT nextval('ids') AS v)
         SELECT v FROM s, LATERAL (SELECT pg_notify($1, v::text || ' ' || $2)) n",
    )
    .bind(CHANNEL)
    .bind(scopes_text(scopes))
    .fetch_one(&mut *conn)
    .await?;
    Ok(stamp as u64)
}

/// Applies one announcement.
pub(crate) fn apply(versions: &Versions, a: Announcement) {
    match a {
        Announcement::Scopes(stamp, scopes) => versions.stamp(scopes, stamp),
        Announcement::Everything(stamp) => versions.stamp_all(stamp),
    }
}

/// Starts listening; returns once the listener is subscribed (so no announcement
/// after this call is missed), with the task that keeps applying them.
///
/// # Errors
/// The database cannot be reached.
pub(crate) async fn listen(
    pool: &PgPool,
    versions: Arc<Versions>,
    jobs: Arc<tokio::sync::Notify>,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, JOBS_CHANNEL]).await?;
    let pool = pool.clone();
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == JOBS_CHANNEL => jobs.notify_one(),
                Ok(Some(n)) => match parse(n.payload()) {
                    Some(a) => apply(&versions, a),
                    None => {
                        tracing::warn!(payload = n.payload(), "unreadable version announcement")
                    }
                },
                Ok(None) => {
                    // The connection was lost (and is re-established on the next
                    // call): announcements may have been missed.
                    tracing::warn!("version listener reconnecting; every feed renders again");
                    jobs.notify_one();
                    match sqlx::query_scalar::<_, i64>("SELECT nextval('ids')")
                        .fetch_one(&pool)
                        .await
                    {
                        Ok(stamp) => versions.stamp_all(stamp as u64),
                        Err(e) => tracing::warn!(error = %e, "cannot take a stamp"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "version listener failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_many_scopes_mean_everything() {
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let scopes = vec![Scope::Offering(a), Scope::BookingsBy(b), Scope::Directory];
        let text = format!("42 {}", scopes_text(&scopes));
        assert_eq!(parse(&text), Some(Announcement::Scopes(42, scopes)));
        let many: Vec<Scope> = (0..=MAX_SCOPES)
            .map(|_| Scope::Offering(Id::new_v4()))
            .collect();
        let text = format!("7 {}", scopes_text(&many));
        assert!(text.len() < 8000);
        assert_eq!(parse(&text), Some(Announcement::Everything(7)));
        // The longest payload that names scopes stays under PostgreSQL's limit.
        let most: Vec<Scope> = (0..MAX_SCOPES)
            .map(|_| Scope::Offering(Id::new_v4()))
            .collect();
        assert!(format!("{} {}", u64::MAX, scopes_text(&most)).len() < 8000);
        for bad in ["", "x o1", "5 q12", "5 o123"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
