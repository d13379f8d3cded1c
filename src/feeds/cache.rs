//! Rendered feeds in memory: each feed and window is rendered once per change of the
//! data it is made from and served from here otherwise.
//!
//! - Entries are keyed by [`FeedKey`] and tagged with the version of the feed's scopes
//!   ([`Store::version`](crate::store::Store::version)) read *before* its data. An entry
//!   whose tag equals the current version is fresh; an older one is kept as the stale
//!   copy served when a render fails or must wait (a feed URL never answers a
//!   transient error while a body exists).
//! - A render giving the bytes already cached keeps the entry's validators (ETag,
//!   Last-Modified), so subscribers keep getting 304s; new bytes never get a
//!   Last-Modified earlier than the old one.
//! - Bounded by body bytes (and entries). A feed keeps at most
//!   [`CacheLimits::windows_per_feed`] windows besides its default one, so many
//!   distinct windows of one feed evict each other, not other feeds. Beyond the byte
//!   bound, non-default windows go first (least recently served first); a non-default
//!   window that does not fit otherwise is not kept (it is still served once); default
//!   windows make room only for default windows.
//! - Renders of one key coalesce: [`FeedCache::lock`] is held by the one request that
//!   renders; the others wait for it and then find a fresh entry. Different keys never
//!   share a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};

use super::window::Window;
use super::FeedId;
use crate::ical::RenderedFeed;

/// A feed and the (normalised) window of time it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeedKey {
    pub feed: FeedId,
    pub window: Window,
}

/// A rendered feed with its validators, ready to serve.
#[derive(Debug)]
pub struct Rendered {
    /// The `text/calendar; charset=utf-8` body.
    pub body: Bytes,
    /// The quoted strong entity tag (`"<hex SHA-256>"`).
    pub etag: Bytes,
    pub last_modified: DateTime<Utc>,
    /// `last_modified` as an IMF-fixdate.
    pub last_modified_http: Bytes,
    /// The `Content-Disposition` value: `inline; filename="<name>"` (the name is plain
    /// `[A-Za-z0-9._-]`).
    pub disposition: Bytes,
}

impl Rendered {
    fn new(feed: RenderedFeed, filename: &str) -> Rendered {
        Rendered {
            last_modified_http: Bytes::from(feed.last_modified_http()),
            etag: Bytes::from(feed.etag),
            last_modified: feed.last_modified,
            body: Bytes::from(feed.body),
            disposition: Bytes::from(format!("inline; filename=\"{filename}\"")),
        }
    }

    /// The entity tag as text.
    pub fn etag_str(&self) -> &str {
        std::str::from_utf8(&self.etag).unwrap_or("")
    }
}

struct Entry {
    version: u64,
    rendered: Arc<Rendered>,
    default_window: bool,
    last_hit: AtomicU64,
}

/// Limits of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Body bytes held at most (the newest entry is kept even if alone larger).
    pub max_bytes: usize,
    /// Entries held at most.
    pub max_entries: usize,
    /// Windows other than the default one kept per feed.
    pub windows_per_feed: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_bytes: 32 * 1024 * 1024,
            max_entries: 4096,
            windows_per_feed: 4,
        }
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<FeedKey, Entry>,
    bytes: usize,
}

impl Entries {
    fn remove(&mut self, key: &FeedKey) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= e.rendered.body.len();
        }
    }

    /// The least recently served entry matching `pick`, other than `keep`.
    fn oldest(&self, keep: &FeedKey, pick: impl Fn(&FeedKey, &Entry) -> bool) -> Option<FeedKey> {
        self.map
            .iter()
            .filter(|(k, e)| *k != keep && pick(k, e))
            .min_by_key(|(_, e)| e.last_hit.load(Ordering::Relaxed))
            .map(|(k, _)| *k)
    }
}

/// A key's render lock.
type KeyLock = tokio::sync::Mutex<()>;

/// Held while rendering one key (see [`FeedCache::lock`]).
pub struct KeyGuard<'a> {
    cache: &'a FeedCache,
    key: FeedKey,
    lock: Arc<KeyLock>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = self.cache.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else waits, the lock can go.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.key);
        }
    }
}

/// The feed cache (one per service).
pub struct FeedCache {
    entries: RwLock<Entries>,
    locks: Mutex<HashMap<FeedKey, Arc<KeyLock>>>,
    /// Requests waiting for a key's lock.
    waiting: AtomicUsize,
    renders: AtomicU64,
    clock: AtomicU64,
    limits: CacheLimits,
}

impl Default for FeedCache {
    fn default() -> Self {
        FeedCache::new(CacheLimits::default())
    }
}

impl FeedCache {
    pub fn new(limits: CacheLimits) -> Self {
        FeedCache {
            entries: RwLock::new(Entries::default()),
            locks: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            renders: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            limits,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// How many renders were stored.
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Body bytes held.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Entries held for one feed.
    pub fn windows_of(&self, feed: FeedId) -> usize {
        self.read().map.keys().filter(|k| k.feed == feed).count()
    }

    /// Requests waiting for another request's render of the same key.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn touch(&self, e: &Entry) {
        e.last_hit.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// The entry for `key` if it was rendered at `version`.
    pub fn fresh(&self, key: &FeedKey, version: u64) -> Option<Arc<Rendered>> {
        let entries = self.read();
        let e = entries.map.get(key).filter(|e| e.version == version)?;
        self.touch(e);
        Some(e.rendered.clone())
    }

    /// The entry for `key` whatever its version (the stale copy).
    pub fn stale(&self, key: &FeedKey) -> Option<Arc<Rendered>> {
        let entries = self.read();
        let e = entries.map.get(key)?;
        self.touch(e);
        Some(e.rendered.clone())
    }

    /// Some body of `feed`, for another window: the default window's if cached, else
    /// the most recently served one (what a request is degraded to).
    pub fn any_window(&self, feed: FeedId) -> Option<Arc<Rendered>> {
        let entries = self.read();
        entries
            .map
            .iter()
            .filter(|(k, _)| k.feed == feed)
            .max_by_key(|(_, e)| (e.default_window, e.last_hit.load(Ordering::Relaxed)))
            .map(|(_, e)| e.rendered.clone())
    }

    /// Waits until no other request renders `key`, and holds that until the guard is
    /// dropped. Check [`fresh`](Self::fresh) again once it is yours.
    pub async fn lock(&self, key: FeedKey) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key).or_default().clone()
        };
        // Counted while waiting; a cancelled request stops waiting too.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let guard = {
            let _w = Waiting(&self.waiting);
            lock.clone().lock_owned().await
        };
        KeyGuard {
            cache: self,
            key,
            lock,
            guard: Some(guard),
        }
    }

    /// Stores a render made at `version` and returns what to serve: the cached entry
    /// itself when the bytes did not change (its validators stay), else the new one
    /// with a Last-Modified after the old one's.
    pub fn insert(
        &self,
        key: FeedKey,
        version: u64,
        default_window: bool,
        rendered: RenderedFeed,
        filename: &str,
        now: DateTime<Utc>,
    ) -> Arc<Rendered> {
        self.renders.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.write();
        let previous = entries.map.get(&key).map(|e| e.rendered.clone());
        let served = match previous {
            Some(p) if p.etag == rendered.etag.as_bytes() => p,
            _ => {
                let mut rendered = rendered;
                if let Some(p) = &previous {
                    if rendered.last_modified <= p.last_modified {
                        let bumped = p.last_modified + chrono::Duration::seconds(1);
                        rendered.last_modified = bumped.max(now).trunc_subsecs(0);
                    }
                }
                Arc::new(Rendered::new(rendered, filename))
            }
        };
        entries.remove(&key);
        entries.bytes += served.body.len();
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        entries.map.insert(
            key,
            Entry {
                version,
                rendered: served.clone(),
                default_window,
                last_hit: AtomicU64::new(tick),
            },
        );
        self.evict(&mut entries, &key);
        served
    }

    fn evict(&self, entries: &mut Entries, keep: &FeedKey) {
        let limits = self.limits;
        if !self.is_default_key(entries, keep) {
            let windows = entries
                .map
                .iter()
                .filter(|(k, e)| k.feed == keep.feed && !e.default_window)
                .count();
            if windows > limits.windows_per_feed {
                if let Some(k) =
                    entries.oldest(keep, |k, e| k.feed == keep.feed && !e.default_window)
                {
                    entries.remove(&k);
                }
            }
        }
        // Other windows go first, the new entry included (a one-off window never
        // pushes out a default window); default windows only for a default window.
        let keep_is_default = self.is_default_key(entries, keep);
        while entries.bytes > limits.max_bytes || entries.map.len() > limits.max_entries {
            let victim = entries
                .oldest(keep, |_, e| !e.default_window)
                .or((!keep_is_default).then_some(*keep))
                .or_else(|| entries.oldest(keep, |_, _| true));
            match victim {
                Some(k) => entries.remove(&k),
                None => break,
            }
        }
    }

    fn is_default_key(&self, entries: &Entries, key: &FeedKey) -> bool {
        entries.map.get(key).is_some_and(|e| e.default_window)
    }

    /// Drops every entry of a feed (it stopped existing or being public: its stale
    /// copies must not be served either).
    pub fn forget(&self, feed: FeedId) {
        let mut entries = self.write();
        let keys: Vec<FeedKey> = entries
            .map
            .keys()
            .filter(|k| k.feed == feed)
            .copied()
            .collect();
        for k in keys {
            entries.remove(&k);
        }
    }
}
