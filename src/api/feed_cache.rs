//! The in-memory cache of rendered feeds: each feed is rendered once per change of the
//! data it is made from and served from memory otherwise.
//!
//! Entries are keyed by [`FeedKey`] (which feed, which time window) and tagged with the
//! [`Store::generation`](crate::store::Store::generation) read *before* the data was
//! read. An entry whose tag equals the current generation is fresh and served without
//! touching the store; an older one is re-rendered on the next request, and kept as the
//! stale copy served when rendering fails (a feed URL must never answer a transient
//! error while a body exists). A re-render that gives the same bytes keeps the entry's
//! validators, so clients keep getting 304s.
//!
//! Bounded by entry count and body bytes; the least recently served entries go first.
//! Renders are serialised (one at a time, re-checking freshness once inside), so a
//! burst of requests after a change renders a feed once, not once per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::domain::Id;
use crate::ical::RenderedFeed;
use crate::store::Scope;

/// Which feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedId {
    /// The public busy-only feed of an offering.
    Public(Id),
    /// The owner feed of an offering (with details; secret token).
    Owner(Id),
    /// A user's own bookings (secret token).
    Mine(Id),
}

impl FeedId {
    /// The stored data the feed is made from: a public feed shows its offering's
    /// data only; an owner feed adds names (who booked, project, organisation); a "my
    /// bookings" feed shows its user's bookings with offering and project names.
    /// (Two entries always, repeated for the public feed: no allocation per request.)
    pub fn scopes(self) -> [Scope; 2] {
        match self {
            FeedId::Public(o) => [Scope::Offering(o); 2],
            FeedId::Owner(o) => [Scope::Offering(o), Scope::Directory],
            FeedId::Mine(u) => [Scope::BookingsBy(u), Scope::Directory],
        }
    }
}

/// A feed and the window of time it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeedKey {
    pub feed: FeedId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A rendered feed with its response headers built once.
#[derive(Debug)]
pub struct Served {
    pub body: Bytes,
    /// The quoted strong entity tag.
    pub etag: String,
    pub etag_header: HeaderValue,
    pub last_modified: DateTime<Utc>,
    pub last_modified_header: HeaderValue,
    /// `inline; filename="..."`.
    pub disposition: HeaderValue,
}

impl Served {
    /// Wraps a rendered feed. `filename` should be a plain `[A-Za-z0-9._-]` name; one
    /// that cannot be a header value degrades to a bare `inline`.
    pub fn new(feed: &RenderedFeed, filename: &str) -> Served {
        let header = |s: &str, fallback: &'static str| {
            HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(fallback))
        };
        Served {
            body: Bytes::copy_from_slice(feed.body.as_bytes()),
            // Hex in quotes and an IMF-fixdate: always valid header values.
            etag_header: header(&feed.etag, "\"\""),
            etag: feed.etag.clone(),
            last_modified: feed.last_modified,
            last_modified_header: header(
                &feed.last_modified_http(),
                "Thu, 01 Jan 1970 00:00:00 GMT",
            ),
            disposition: header(&format!("inline; filename=\"{filename}\""), "inline"),
        }
    }
}

struct Entry {
    generation: u64,
    served: Arc<Served>,
    last_hit: AtomicU64,
}

/// Limits of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 512,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The feed cache (one per service, in [`AppState`](super::AppState)).
pub struct FeedCache {
    entries: RwLock<HashMap<FeedKey, Entry>>,
    /// Serialises renders.
    render_lock: Mutex<()>,
    renders: AtomicU64,
    clock: AtomicU64,
    limits: CacheLimits,
    /// Secret-token hashes seen valid, with their feed: lets a token feed be served
    /// stale while the store cannot be read. Forgotten on revocation.
    tokens: RwLock<HashMap<[u8; 32], FeedId>>,
    /// Count of finished last-use writes (tests wait on it instead of sleeping).
    touches: watch::Sender<u64>,
}

impl Default for FeedCache {
    fn default() -> Self {
        FeedCache::new(CacheLimits::default())
    }
}

impl FeedCache {
    pub fn new(limits: CacheLimits) -> Self {
        FeedCache {
            entries: RwLock::new(HashMap::new()),
            render_lock: Mutex::new(()),
            renders: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            limits,
            tokens: RwLock::new(HashMap::new()),
            touches: watch::Sender::new(0),
        }
    }

    /// How many times a feed was rendered (cache misses that rendered).
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `key` if it was rendered at `generation`.
    pub fn fresh(&self, key: &FeedKey, generation: u64) -> Option<Arc<Served>> {
        let entries = self.entries.read().ok()?;
        let e = entries.get(key).filter(|e| e.generation == generation)?;
        e.last_hit.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(e.served.clone())
    }

    /// The entry for `key` whatever its generation (the stale copy).
    pub fn stale(&self, key: &FeedKey) -> Option<Arc<Served>> {
        let entries = self.entries.read().ok()?;
        entries.get(key).map(|e| e.served.clone())
    }

    /// Returns the fresh entry, rendering it (once, even under concurrency) when there
    /// is none. `generation` reads the current data version; `render` must read the
    /// data only after it is called. A render giving the bytes already cached keeps
    /// the cached validators; new bytes get a Last-Modified after the old one, so an
    /// `If-Modified-Since` client never keeps a stale copy.
    ///
    /// # Errors
    /// Whatever `render` fails with; the caller decides about the stale copy.
    pub fn get_or_render<E>(
        &self,
        key: FeedKey,
        generation: impl Fn() -> u64,
        render: impl FnOnce() -> Result<RenderedFeed, E>,
        filename: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Served>, E> {
        let _one_at_a_time = self.render_lock.lock();
        let g = generation();
        if let Some(s) = self.fresh(&key, g) {
            return Ok(s);
        }
        let rendered = render()?;
        self.renders.fetch_add(1, Ordering::Relaxed);
        let previous = self.stale(&key);
        let served = match previous {
            Some(p) if p.etag == rendered.etag => p,
            _ => {
                let mut rendered = rendered;
                if let Some(p) = &previous {
                    if rendered.last_modified <= p.last_modified {
                        let bumped = p.last_modified + chrono::Duration::seconds(1);
                        rendered.last_modified = truncate(bumped.max(now));
                    }
                }
                Arc::new(Served::new(&rendered, filename))
            }
        };
        self.insert(key, g, served.clone());
        Ok(served)
    }

    fn insert(&self, key: FeedKey, generation: u64, served: Arc<Served>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        entries.insert(
            key,
            Entry {
                generation,
                served,
                last_hit: AtomicU64::new(tick),
            },
        );
        let bytes = |m: &HashMap<FeedKey, Entry>| -> usize {
            m.values().map(|e| e.served.body.len()).sum()
        };
        while entries.len() > 1
            && (entries.len() > self.limits.max_entries || bytes(&entries) > self.limits.max_bytes)
        {
            let oldest = entries
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, e)| e.last_hit.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    entries.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Drops every entry of a feed (it stopped existing or being public: its stale
    /// copies must not be served either).
    pub fn forget(&self, feed: FeedId) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|k, _| k.feed != feed);
        }
    }

    /// Remembers that a token hash opens `feed` (for stale serving during an outage).
    pub fn remember_token(&self, hash: [u8; 32], feed: FeedId) {
        let known = self
            .tokens
            .read()
            .map(|t| t.get(&hash) == Some(&feed))
            .unwrap_or(false);
        if !known {
            if let Ok(mut t) = self.tokens.write() {
                if t.len() >= self.limits.max_entries * 4 {
                    t.clear();
                }
                t.insert(hash, feed);
            }
        }
    }

    /// The feed a token hash was last seen opening.
    pub fn known_token(&self, hash: &[u8; 32]) -> Option<FeedId> {
        self.tokens.read().ok()?.get(hash).copied()
    }

    /// Forgets a token hash (revoked or unknown).
    pub fn forget_token(&self, hash: &[u8; 32]) {
        let known = self
            .tokens
            .read()
            .map(|t| t.contains_key(hash))
            .unwrap_or(false);
        if known {
            if let Ok(mut t) = self.tokens.write() {
                t.remove(hash);
            }
        }
    }

    /// Counts a finished last-use write.
    pub fn touched(&self) {
        self.touches.send_modify(|n| *n += 1);
    }

    /// Watches the count of finished last-use writes.
    pub fn touches(&self) -> watch::Receiver<u64> {
        self.touches.subscribe()
    }
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, s)
            .single()
            .unwrap_or_default()
    }

    fn key(n: u128) -> FeedKey {
        FeedKey {
            feed: FeedId::Public(Id(uuid::Uuid::from_u128(n))),
            from: at(0),
            to: at(1),
        }
    }

    fn ok(body: &str, lm: DateTime<Utc>) -> Result<RenderedFeed, ()> {
        Ok(RenderedFeed::new(body, lm))
    }

    #[test]
    fn a_feed_is_rendered_once_per_generation() {
        let cache = FeedCache::default();
        let k = key(1);
        let cases = [
            (0, "a", 1),
            (0, "a", 1),
            (1, "a", 2),
            (1, "b", 2),
            (2, "b", 3),
        ];
        for (generation, body, renders) in cases {
            let s = cache.get_or_render(k, || generation, || ok(body, at(0)), "f.ics", at(9));
            assert!(s.is_ok());
            assert_eq!(cache.renders(), renders, "generation {generation}");
            assert!(cache.fresh(&k, generation).is_some());
        }
    }

    #[test]
    fn same_bytes_keep_the_validators_and_new_bytes_move_last_modified_forward() {
        let cache = FeedCache::default();
        let k = key(1);
        let first = cache.get_or_render(k, || 0, || ok("a", at(5)), "f.ics", at(9));
        let same = cache.get_or_render(k, || 1, || ok("a", at(5)), "f.ics", at(9));
        let (Ok(first), Ok(same)) = (first, same) else {
            panic!("render failed");
        };
        assert!(Arc::ptr_eq(&first, &same));
        // A removal: the body changed, its own latest LAST-MODIFIED did not.
        let Ok(changed) = cache.get_or_render(k, || 2, || ok("b", at(5)), "f.ics", at(9)) else {
            panic!("render failed");
        };
        assert_ne!(changed.etag, first.etag);
        assert_eq!(changed.last_modified, at(9));
    }

    #[test]
    fn a_failed_render_leaves_the_stale_copy() {
        let cache = FeedCache::default();
        let k = key(1);
        assert!(cache
            .get_or_render(k, || 0, || ok("a", at(0)), "f.ics", at(9))
            .is_ok());
        let failed = cache.get_or_render(k, || 1, || Err::<RenderedFeed, _>("down"), "f", at(9));
        assert_eq!(failed.err(), Some("down"));
        assert!(cache.fresh(&k, 1).is_none());
        assert_eq!(
            cache.stale(&k).map(|s| s.body.clone()),
            Some(Bytes::from("a"))
        );
        cache.forget(k.feed);
        assert!(cache.stale(&k).is_none());
    }

    #[test]
    fn the_least_recently_served_entries_are_evicted_beyond_the_limits() {
        let cache = FeedCache::new(CacheLimits {
            max_entries: 2,
            max_bytes: 1000,
        });
        for n in 1..=2 {
            assert!(cache
                .get_or_render(key(n), || 0, || ok("x", at(0)), "f.ics", at(9))
                .is_ok());
        }
        assert!(cache.fresh(&key(1), 0).is_some());
        assert!(cache
            .get_or_render(key(3), || 0, || ok("x", at(0)), "f.ics", at(9))
            .is_ok());
        assert_eq!(cache.len(), 2);
        assert!(cache.stale(&key(2)).is_none());
        assert!(cache.stale(&key(1)).is_some());
        let big = "y".repeat(600);
        for n in 4..=5 {
            assert!(cache
                .get_or_render(key(n), || 0, || ok(&big, at(0)), "f.ics", at(9))
                .is_ok());
        }
        assert_eq!(cache.len(), 1);
        assert!(cache.stale(&key(5)).is_some());
    }
}
