//! The web pages' sign-in sessions and one-time sign-in links, on both engines.
//!
//! Both are keyed by the SHA-256 of their secret; the secret itself (the session
//! cookie's value, the link's last path segment) is never stored. sled keeps them in
//! its `web_sessions` tree (`s` ++ hash -> [`Session`], `l` ++ hash -> [`SignInLink`]),
//! PostgreSQL in the `web_sessions` table (migration 4) as the same versioned
//! documents.
//!
//! Invariants: a link is taken (read and deleted) in one step, so it signs in at most
//! once however many requests race for it; an expired session or link is never
//! returned (the caller need not check), and expired records are deleted by
//! [`Store::purge_expired_sessions`], which [`Store::sweep_sessions`] (run by the
//! service) calls as each one expires, whether or not anyone signs in. Sessions are
//! not copied by `Store::copy_to`: moving a store signs everyone out, nothing else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sled_engine::Sled;
use super::tree::Tree;
use super::{decode, encode, Engine, Store, StoreError};
use crate::domain::Id;

const SESSION_PREFIX: u8 = b's';
const LINK_PREFIX: u8 = b'l';

/// A signed-in browser: whose, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: Id,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// A one-time sign-in link: for whom, and until when it may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInLink {
    pub user: Id,
    pub expires: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct SessionV1 {
    user: Id,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum SessionRecord {
    #[serde(rename = "1")]
    V1(SessionV1),
}

#[derive(Serialize, Deserialize)]
struct LinkV1 {
    user: Id,
    expires: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum LinkRecord {
    #[serde(rename = "1")]
    V1(LinkV1),
}

/// SHA-256 of a session or link secret: its key.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn key(prefix: u8, hash: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(prefix);
    k.extend_from_slice(hash);
    k
}

fn encode_session(s: &Session) -> Result<Vec<u8>, StoreError> {
    encode(&SessionRecord::V1(SessionV1 {
        user: s.user,
        created: s.created,
        expires: s.expires,
    }))
}

fn decode_session(v: &[u8]) -> Result<Session, StoreError> {
    decode::<SessionRecord>("web_sessions", v).map(|SessionRecord::V1(s)| Session {
        user: s.user,
        created: s.created,
        expires: s.expires,
    })
}

fn encode_link(l: &SignInLink) -> Result<Vec<u8>, StoreError> {
    encode(&LinkRecord::V1(LinkV1 {
        user: l.user,
        expires: l.expires,
    }))
}

fn decode_link(v: &[u8]) -> Result<SignInLink, StoreError> {
    decode::<LinkRecord>("web_sessions", v).map(|LinkRecord::V1(l)| SignInLink {
        user: l.user,
        expires: l.expires,
    })
}

fn text(v: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(v).map_err(|e| StoreError::Corrupt {
        tree: "web_sessions",
        source: serde::de::Error::custom(e),
    })
}

impl Sled {
    fn session_put(&self, prefix: u8, hash: &[u8; 32], value: Vec<u8>) -> Result<(), StoreError> {
        let t = self.tree(Tree::Sessions);
        t.insert(key(prefix, hash), value)?;
        t.flush()?;
        Ok(())
    }

    fn session_remove(&self, prefix: u8, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tree(Tree::Sessions);
        let old = t.remove(key(prefix, hash))?;
        if old.is_some() {
            t.flush()?;
        }
        Ok(old.map(|v| v.to_vec()))
    }

    fn sessions_next_expiry(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut next: Option<DateTime<Utc>> = None;
        for kv in self.tree(Tree::Sessions).iter() {
            let (k, v) = kv?;
            let expires = match k.first() {
                Some(&SESSION_PREFIX) => decode_session(&v)?.expires,
                Some(&LINK_PREFIX) => decode_link(&v)?.expires,
                _ => continue,
            };
            next = Some(next.map_or(expires, |n| n.min(expires)));
        }
        Ok(next)
    }

    fn sessions_purge(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let t = self.tree(Tree::Sessions);
        let mut gone = 0;
        for kv in t.iter() {
            let (k, v) = kv?;
            let expires = match k.first() {
                Some(&SESSION_PREFIX) => decode_session(&v)?.expires,
                Some(&LINK_PREFIX) => decode_link(&v)?.expires,
                _ => continue,
            };
            if expires <= now && t.remove(&k)?.is_some() {
                gone += 1;
            }
        }
        if gone > 0 {
            t.flush()?;
        }
        Ok(gone)
    }
}

async fn pg_put(
    pool: &sqlx::PgPool,
    kind: &str,
    hash: &[u8; 32],
    expires: DateTime<Utc>,
    doc: Vec<u8>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO web_sessions (kind, hash, expires, doc) VALUES ($1, $2, $3, $4::jsonb)
         ON CONFLICT (kind, hash) DO UPDATE SET expires = EXCLUDED.expires, doc = EXCLUDED.doc",
    )
    .bind(kind)
    .bind(&hash[..])
    .bind(expires)
    .bind(text(doc)?)
    .execute(pool)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a session under the hash of its secret.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        let doc = encode_session(s)?;
        match &self.engine {
            Engine::Sled(db) => db.session_put(SESSION_PREFIX, hash, doc)?,
            Engine::Postgres(p) => pg_put(&p.pool, "s", hash, s.expires, doc).await?,
        }
        self.sessions_changed.notify_one();
        Ok(())
    }

    /// The session with this secret hash, unless it has expired by `now`.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn session(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let s = match &self.engine {
            Engine::Sled(db) => db
                .raw_get(Tree::Sessions, &key(SESSION_PREFIX, hash))?
                .map(|v| decode_session(&v))
                .transpose()?,
            Engine::Postgres(p) => {
                let doc: Option<String> = sqlx::query_scalar(
                    "SELECT doc::text FROM web_sessions WHERE kind = 's' AND hash = $1",
                )
                .bind(&hash[..])
                .fetch_optional(&p.pool)
                .await?;
                doc.map(|d| decode_session(d.as_bytes())).transpose()?
            }
        };
        Ok(s.filter(|s| s.expires > now))
    }

    /// Ends a session (signing out); nothing happens when there is none.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn delete_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(db) => db.session_remove(SESSION_PREFIX, hash).map(|_| ()),
            Engine::Postgres(p) => {
                sqlx::query("DELETE FROM web_sessions WHERE kind = 's' AND hash = $1")
                    .bind(&hash[..])
                    .execute(&p.pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Stores a one-time sign-in link under the hash of its secret.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn put_sign_in_link(
        &self,
        hash: &[u8; 32],
        l: &SignInLink,
    ) -> Result<(), StoreError> {
        let doc = encode_link(l)?;
        match &self.engine {
            Engine::Sled(db) => db.session_put(LINK_PREFIX, hash, doc)?,
            Engine::Postgres(p) => pg_put(&p.pool, "l", hash, l.expires, doc).await?,
        }
        self.sessions_changed.notify_one();
        Ok(())
    }

    /// Takes the link with this secret hash: deletes it and returns it unless it had
    /// expired by `now`. A second take of the same link finds nothing.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn take_sign_in_link(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<SignInLink>, StoreError> {
        let l = match &self.engine {
            Engine::Sled(db) => db
                .session_remove(LINK_PREFIX, hash)?
                .map(|v| decode_link(&v))
                .transpose()?,
            Engine::Postgres(p) => {
                let doc: Option<String> = sqlx::query_scalar(
                    "DELETE FROM web_sessions WHERE kind = 'l' AND hash = $1 RETURNING doc::text",
                )
                .bind(&hash[..])
                .fetch_optional(&p.pool)
                .await?;
                doc.map(|d| decode_link(d.as_bytes())).transpose()?
            }
        };
        Ok(l.filter(|l| l.expires > now))
    }

    /// Deletes every session and link that expired by `now`; returns how many.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        match &self.engine {
            Engine::Sled(db) => db.sessions_purge(now),
            Engine::Postgres(p) => {
                let done = sqlx::query("DELETE FROM web_sessions WHERE expires <= $1")
                    .bind(now)
                    .execute(&p.pool)
                    .await?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            }
        }
    }

    /// When the first stored session or link expires (`None`: none is stored).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub async fn next_session_expiry(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match &self.engine {
            Engine::Sled(db) => db.sessions_next_expiry(),
            Engine::Postgres(p) => Ok(sqlx::query_scalar("SELECT min(expires) FROM web_sessions")
                .fetch_one(&p.pool)
                .await?),
        }
    }

    /// Deletes each session and link as it expires until `shutdown`: purges what
    /// expired, then waits for the next expiry, for a new session or link stored
    /// through this store, or at most [`SWEEP_AT_LEAST_EVERY`] (what other replicas
    /// store on the same database), whichever comes first. Failures are logged and
    /// retried after a minute; nothing is lost by a sweep that waits.
    pub async fn sweep_sessions(&self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let now = Utc::now();
            let next = match self.purge_expired_sessions(now).await {
                Ok(gone) => {
                    if gone > 0 {
                        tracing::debug!(gone, "expired web sessions and sign-in links deleted");
                    }
                    self.next_session_expiry().await
                }
                Err(e) => Err(e),
            };
            let wait = match next {
                // A little past the expiry: `expires <= now` must hold when it runs.
                Ok(Some(t)) => (t - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .saturating_add(std::time::Duration::from_millis(5))
                    .min(SWEEP_AT_LEAST_EVERY),
                Ok(None) => SWEEP_AT_LEAST_EVERY,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot sweep expired web sessions; retrying");
                    std::time::Duration::from_secs(60)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.sessions_changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The longest the session sweeper waits between two looks at the store.
pub const SWEEP_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_expire_and_links_are_taken_once() {
        let store = Store::temporary().expect("store");
        let now = Utc::now();
        let user = Id::new_v4();
        let s = Session {
            user,
            created: now,
            expires: now + chrono::Duration::hours(1),
        };
        let h = secret_hash("session secret");
        store.put_session(&h, &s).await.expect("put");
        assert_eq!(store.session(&h, now).await.expect("get"), Some(s.clone()));
        let later = now + chrono::Duration::hours(2);
        assert_eq!(store.session(&h, later).await.expect("get"), None);
        assert_eq!(
            store
                .session(&secret_hash("other"), now)
                .await
                .expect("get"),
            None
        );

        let l = SignInLink {
            user,
            expires: now + chrono::Duration::minutes(15),
        };
        let lh = secret_hash("link secret");
        store.put_sign_in_link(&lh, &l).await.expect("put");
        // A link's hash is not a session's.
        assert_eq!(store.session(&lh, now).await.expect("get"), None);
        assert_eq!(
            store.take_sign_in_link(&lh, now).await.expect("take"),
            Some(l.clone())
        );
        assert_eq!(store.take_sign_in_link(&lh, now).await.expect("take"), None);
        store.put_sign_in_link(&lh, &l).await.expect("put");
        assert_eq!(
            store.take_sign_in_link(&lh, later).await.expect("take"),
            None
        );

        // The links are taken: the session is what expires next, and goes.
        assert_eq!(
            store.next_session_expiry().await.expect("next"),
            Some(s.expires)
        );
        assert_eq!(store.purge_expired_sessions(later).await.expect("purge"), 1);
        assert_eq!(store.next_session_expiry().await.expect("next"), None);
        assert_eq!(store.session(&h, now).await.expect("get"), None);
        store.put_session(&h, &s).await.expect("put");
        store.delete_session(&h).await.expect("delete");
        assert_eq!(store.session(&h, now).await.expect("get"), None);
    }
}
