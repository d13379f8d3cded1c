//! The feeds service: between the store and [`crate::ical`], it decides what each
//! iCalendar feed shows ([`content`]), opens token feeds, and renders each feed once
//! per change of its own data, serving it from memory otherwise ([`cache`]), with the
//! renders bounded and shared fairly between clients ([`gate`]). The HTTP layer
//! (`api::feeds`) only parses the URL, negotiates (conditional requests) and writes
//! headers.
//!
//! # Feeds and what they depend on
//! - [`FeedId::Public`]: an offering's busy-only feed, while its calendar is public.
//! - [`FeedId::Owner`]: an offering's feed with booking details (secret token).
//! - [`FeedId::Mine`]: a user's own bookings across offerings (secret token).
//!
//! Each feed depends on a known set of stored data ([`FeedId::scopes`]); a cached
//! render is fresh while the [`Store::version`] of that set is unchanged, so a write to
//! another offering never re-renders it.
//!
//! # Serving a request
//! 1. Fresh in the cache: served at once (no store access, no lock shared with
//!    renders).
//! 2. Otherwise one request per feed and window renders ([`FeedCache::lock`]); the
//!    others wait for it and serve its result.
//! 3. The render waits for the client's turn and a render slot ([`RenderGate`]). With a
//!    stale copy at hand it waits at most [`STALE_WAIT`] and then serves the stale copy;
//!    a client with too many renders waiting is served the stale copy, or another
//!    window of the same feed, at once.
//! 4. The render reads the store (async) and writes the text on the blocking pool;
//!    it reads only (no store write on a GET).
//!    When it fails, the stale copy (or another window's) is served; only a feed
//!    never rendered has nothing to serve ([`FeedError::Unavailable`]).
//!
//! A token feed reads its token on every request (a revoked token is refused at
//! once), but checks its creator's access (user, offering, organisation) only when
//! the data that check read has changed since ([`Store::version`], as for renders).
//!
//! A token's last use is recorded in the background at most once a minute per token
//! (the one write a feed request causes, never on its path).

pub mod cache;
pub mod content;
pub mod gate;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::domain::Id;
use crate::ical::RenderedFeed;
use crate::store::feed_tokens::{feed_token_hash, FeedScope, FeedToken, LAST_USED_RESOLUTION};
use crate::store::{Scope, Store, StoreError};
pub use cache::{CacheLimits, FeedCache, FeedKey, Rendered};
use gate::Join;
pub use gate::{Client, RenderGate};
pub use window::{Window, WindowError};

/// How long a request with a stale copy at hand waits for a render slot before it
/// serves that copy.
pub const STALE_WAIT: Duration = Duration::from_secs(1);

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

    /// Public feeds may be cached by anyone; token feeds only by their subscriber.
    pub fn is_public(self) -> bool {
        matches!(self, FeedId::Public(_))
    }
}

/// How an answer was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Fresh from the cache (possibly rendered by a request this one waited for).
    Cached,
    /// Rendered for this request.
    Rendered,
    /// The last render of this window; the data changed since (the render failed or
    /// would have had to wait).
    Stale,
    /// Another window of the same feed (the client asked for too many windows at once,
    /// or the render failed with no copy of this window).
    OtherWindow,
}

/// A feed body to serve.
#[derive(Clone, Debug)]
pub struct Answer {
    pub rendered: Arc<Rendered>,
    pub source: Source,
}

/// Why a feed request has no body to serve.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// No such feed (unknown or revoked token, private or unknown offering).
    #[error("no such feed")]
    NotFound,
    /// The feed exists but the window cannot be used.
    #[error("bad window: {}", .0.message)]
    BadWindow(WindowError),
    /// The feed could not be rendered and was never rendered before.
    #[error("the feed could not be rendered")]
    Unavailable(#[source] Option<StoreError>),
}

/// Settings of the service.
#[derive(Clone, Debug, Default)]
pub struct FeedOptions {
    /// Base URL of the service, for the public feeds' `SOURCE`.
    pub public_url: Option<String>,
    pub cache: CacheLimits,
    /// Renders at once; 0 = half the CPUs (at least one).
    pub render_slots: usize,
}

/// The feeds service (one per process, shared by the handlers).
pub struct FeedService {
    store: Arc<Store>,
    cache: FeedCache,
    gate: RenderGate,
    public_url: Option<String>,
    /// Secret-token hashes seen valid, with their feed and the data version
    /// ([`Store::version`] of [`access_scopes`]) at which the token's creator was
    /// found allowed: the check is reused while that version stands (the token
    /// itself is still read on every request, so a revocation shows at once), and
    /// lets a token feed be served stale while the store cannot be read. Forgotten on
    /// revocation.
    tokens: RwLock<HashMap<[u8; 32], Granted>>,
    /// Count of finished last-use writes (tests wait on it instead of sleeping).
    touches: watch::Sender<u64>,
}

/// A token found valid: its feed, and the version its creator's access was checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Granted {
    feed: FeedId,
    version: u64,
}

/// The stored data a token's access depends on: its creator (a user), and for an
/// offering's token the offering and its organisation's owners and managers. Users
/// and organisations are the directory; an offering's record is its own scope (and
/// the directory's).
fn access_scopes(scope: FeedScope) -> [Scope; 2] {
    match scope {
        FeedScope::Offering(o) => [Scope::Offering(o), Scope::Directory],
        FeedScope::User(_) => [Scope::Directory; 2],
    }
}

/// Most token hashes remembered for stale serving.
const MAX_KNOWN_TOKENS: usize = 16_384;

impl FeedService {
    pub fn new(store: Arc<Store>, opts: FeedOptions) -> Self {
        let slots = match opts.render_slots {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() / 2),
            n => n,
        };
        FeedService {
            store,
            cache: FeedCache::new(opts.cache),
            gate: RenderGate::new(slots),
            public_url: opts.public_url,
            tokens: RwLock::new(HashMap::new()),
            touches: watch::Sender::new(0),
        }
    }

    /// The rendered-feed cache (statistics).
    pub fn cache(&self) -> &FeedCache {
        &self.cache
    }

    /// The render slots (statistics; tests hold them).
    pub fn gate(&self) -> &RenderGate {
        &self.gate
    }

    /// How many renders were stored.
    pub fn renders(&self) -> u64 {
        self.cache.renders()
    }

    /// Watches the count of finished last-use writes.
    pub fn touches(&self) -> watch::Receiver<u64> {
        self.touches.subscribe()
    }

    /// The feed a secret token opens, while its creator may still see it.
    ///
    /// # Errors
    /// [`FeedError::NotFound`] for an unknown or revoked token or one whose creator
    /// lost access; [`FeedError::Unavailable`] when the store cannot be read and the
    /// token was never seen.
    pub async fn open_token(self: &Arc<Self>, secret: &str) -> Result<Opened, FeedError> {
        let hash = feed_token_hash(secret);
        let found = async {
            let Some(t) = self.store.feed_token_by_hash(&hash).await? else {
                return Ok::<_, StoreError>(None);
            };
            // The version before the data it stands for (as the feed cache does).
            let version = self.store.version(&access_scopes(t.scope));
            if let Some(feed) = self.granted(&hash, version) {
                return Ok(Some((t, Granted { feed, version })));
            }
            Ok(self
                .authorised(&t)
                .await?
                .map(|feed| (t, Granted { feed, version })))
        }
        .await;
        match found {
            Ok(Some((token, granted))) => {
                self.remember_token(hash, granted);
                self.touch_later(&token);
                Ok(Opened {
                    feed: granted.feed,
                    stale: false,
                })
            }
            Ok(None) => {
                self.forget_token(&hash);
                Err(FeedError::NotFound)
            }
            Err(e) => {
                tracing::warn!(error = %e, "feed token lookup failed; serving stale if possible");
                let known = self
                    .tokens
                    .read()
                    .ok()
                    .and_then(|t| t.get(&hash).map(|g| g.feed));
                known
                    .map(|feed| Opened { feed, stale: true })
                    .ok_or(FeedError::Unavailable(Some(e)))
            }
        }
    }

    /// The feed a token opens while its creator may still see it.
    async fn authorised(&self, t: &FeedToken) -> Result<Option<FeedId>, StoreError> {
        let Some(creator) = self.store.user(t.created_by).await? else {
            return Ok(None);
        };
        Ok(match t.scope {
            FeedScope::Offering(o) => {
                let Some(offering) = self.store.offering(o).await? else {
                    return Ok(None);
                };
                let provider = self.store.customer(offering.customer).await?;
                let allowed = creator.is_staff
                    || provider.is_some_and(|c| {
                        c.owners.contains(&creator.id) || c.managers.contains(&creator.id)
                    });
                allowed.then_some(FeedId::Owner(o))
            }
            FeedScope::User(u) => (u == creator.id).then_some(FeedId::Mine(u)),
        })
    }

    /// The feed a token opens if its creator's access was checked at `version`.
    fn granted(&self, hash: &[u8; 32], version: u64) -> Option<FeedId> {
        let tokens = self.tokens.read().ok()?;
        tokens
            .get(hash)
            .filter(|g| g.version == version)
            .map(|g| g.feed)
    }

    fn remember_token(&self, hash: [u8; 32], granted: Granted) {
        let known = self
            .tokens
            .read()
            .map(|t| t.get(&hash) == Some(&granted))
            .unwrap_or(false);
        if !known {
            if let Ok(mut t) = self.tokens.write() {
                if t.len() >= MAX_KNOWN_TOKENS {
                    t.clear();
                }
                t.insert(hash, granted);
            }
        }
    }

    fn forget_token(&self, hash: &[u8; 32]) {
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

    /// Records the token's use in the background, at most once per minute.
    fn touch_later(self: &Arc<Self>, token: &FeedToken) {
        let now = Utc::now();
        if token
            .last_used
            .is_some_and(|u| now - u < LAST_USED_RESOLUTION)
        {
            return;
        }
        let this = self.clone();
        let hash = token.hash;
        tokio::spawn(async move {
            if let Err(e) = this.store.touch_feed_token(&hash, now).await {
                tracing::warn!(error = %e, "could not record a feed token's last use");
            }
            this.touches.send_modify(|n| *n += 1);
        });
    }

    /// The feed over `window` for `client` (see the module docs for the steps).
    ///
    /// # Errors
    /// [`FeedError::NotFound`] when the feed does not exist (checked before the
    /// window), [`FeedError::BadWindow`], or [`FeedError::Unavailable`] when nothing
    /// can be served.
    pub async fn serve(
        self: &Arc<Self>,
        feed: FeedId,
        window: Result<Window, WindowError>,
        client: Client,
    ) -> Result<Answer, FeedError> {
        let scopes = feed.scopes();
        let w = match window {
            Ok(w) => w,
            Err(e) => {
                return match content::filename(&self.store, feed).await {
                    Ok(Some(_)) => Err(FeedError::BadWindow(e)),
                    Ok(None) => Err(FeedError::NotFound),
                    Err(e) => Err(FeedError::Unavailable(Some(e))),
                }
            }
        };
        let key = FeedKey { feed, window: w };
        if let Some(r) = self.cache.fresh(&key, self.store.version(&scopes)) {
            return Ok(answer(r, Source::Cached));
        }
        let _rendering = self.cache.lock(key).await;
        if let Some(r) = self.cache.fresh(&key, self.store.version(&scopes)) {
            // Rendered by the request this one waited for.
            return Ok(answer(r, Source::Cached));
        }
        let stale = self.cache.stale(&key);
        let deadline = stale
            .is_some()
            .then(|| tokio::time::Instant::now() + STALE_WAIT);
        let ticket = match self.gate.enter(client, Join::Capped, deadline).await {
            Ok(t) => t,
            Err(gate::Refused::TimedOut) => {
                return stale
                    .map(|r| answer(r, Source::Stale))
                    .ok_or(FeedError::Unavailable(None))
            }
            Err(gate::Refused::ClientBusy) => {
                if let Some(r) = stale {
                    return Ok(answer(r, Source::Stale));
                }
                if let Some(r) = self.cache.any_window(feed) {
                    return Ok(answer(r, Source::OtherWindow));
                }
                // Nothing to degrade to: wait in line like everyone else.
                self.gate
                    .enter(client, Join::Always, None)
                    .await
                    .map_err(|_| FeedError::Unavailable(None))?
            }
        };
        let default_window = w == Window::default_at(Utc::now());
        // The version before the data: a write in between makes the entry stale.
        let version = self.store.version(&scopes);
        let built = content::build(&self.store, feed, w, self.public_url.as_deref()).await;
        let rendered = match built {
            Ok(Some(b)) => {
                // Turning the calendar into text is CPU work: off the async workers.
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    let body = RenderedFeed::from_calendar(&b.calendar, b.fallback_last_modified);
                    this.cache
                        .insert(key, version, default_window, body, &b.filename, Utc::now())
                })
                .await
                .map(Some)
                .map_err(|e| {
                    tracing::error!(error = %e, ?feed, "feed render task failed");
                })
            }
            Ok(None) => Ok(None),
            Err(e) => {
                drop(ticket);
                tracing::warn!(error = %e, ?feed, "feed render failed; serving stale if possible");
                return self.fallback(&key).ok_or(FeedError::Unavailable(Some(e)));
            }
        };
        drop(ticket);
        match rendered {
            Ok(Some(r)) => Ok(answer(r, Source::Rendered)),
            Ok(None) => {
                self.cache.forget(feed);
                Err(FeedError::NotFound)
            }
            Err(()) => self.fallback(&key).ok_or(FeedError::Unavailable(None)),
        }
    }

    /// Serves whatever is cached for the key (or another window of its feed) without
    /// rendering: for a token feed whose token could not be checked.
    ///
    /// # Errors
    /// [`FeedError::Unavailable`] when nothing is cached.
    pub fn serve_stale(
        &self,
        feed: FeedId,
        window: Result<Window, WindowError>,
    ) -> Result<Answer, FeedError> {
        let key = FeedKey {
            feed,
            window: window.unwrap_or_else(|_| Window::default_at(Utc::now())),
        };
        self.fallback(&key).ok_or(FeedError::Unavailable(None))
    }

    fn fallback(&self, key: &FeedKey) -> Option<Answer> {
        self.cache
            .stale(key)
            .map(|r| answer(r, Source::Stale))
            .or_else(|| {
                self.cache
                    .any_window(key.feed)
                    .map(|r| answer(r, Source::OtherWindow))
            })
    }
}

/// A feed a token opened.
#[derive(Clone, Copy, Debug)]
pub struct Opened {
    pub feed: FeedId,
    /// The token could not be checked (the store failed): serve only what is cached.
    pub stale: bool,
}

fn answer(rendered: Arc<Rendered>, source: Source) -> Answer {
    Answer { rendered, source }
}
