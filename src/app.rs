//! Assembling and running the service.
//!
//! [`Application::build`] turns [`Settings`] into a ready service: the store, the
//! Google side (client, per-provider credentials, call statistics), the sync engine,
//! the scheduler, the handler state with its metrics, and a bound listener.
//! [`Application::run_until_stopped`] serves it until shutdown. `bookcal serve`,
//! `bookcal demo` and the integration tests all start the service this way, so the
//! tests exercise the production start-up path; only the port (`127.0.0.1:0`) and the
//! data directory differ. One-shot commands (`bookcal sync`) use the same pieces
//! without a listener ([`Services::build`]).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::credentials::ProviderCredentials;
use crate::google::{
    AclRole, CalendarApi, CallStats, ClientOptions, Credentials, GoogleCalendarClient, RateLimit,
};
use crate::metrics::Metrics;
use crate::push::{PushOptions, PushRunner, PushService};
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::store::{Store, StoreOptions};
use crate::sync::SyncEngine;

/// Errors while starting or running the service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid settings")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the store in {dir}")]
    Store {
        dir: String,
        #[source]
        source: crate::store::StoreError,
    },
    /// The sled data directory is locked by another process.
    #[error("another bookcal is using {dir}: stop it, or use another --data-dir")]
    InUse { dir: String },
    #[error("cannot bind {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("shutdown did not finish within {0:?}; the store was flushed anyway")]
    ShutdownTimedOut(std::time::Duration),
    #[error("Google setup failed: {what}")]
    Google {
        what: String,
        #[source]
        source: crate::google::GoogleError,
    },
}

/// What `config check` found about one file or directory the settings name.
#[derive(Debug, PartialEq, Eq)]
pub enum FileCheck {
    /// Usable; what it is.
    Fine(String),
    /// Usable, but probably not what was meant.
    Warning(String),
    /// bookcal would fail (or a credential would) because of it.
    Problem(String),
}

/// Checks every file and directory the settings refer to, as `serve` would use them,
/// without starting anything: the service-account key (exists, parses, its private
/// key signs) and each provider file (parses). Files named by `*_FILE` variables are
/// read by [`Settings::load`] already.
pub async fn check_files(settings: &Settings) -> Vec<FileCheck> {
    let mut out = Vec::new();
    if let Some(path) = &settings.google.service_account_key {
        const KEY: &str = "google.service_account_key";
        out.push(match tokio::fs::read_to_string(path).await {
            Err(e) => FileCheck::Problem(format!("{KEY}: cannot read {}: {e}", path.display())),
            Ok(json) => match Credentials::check_service_account_key(&json).await {
                Ok(email) => FileCheck::Fine(format!(
                    "{KEY}: {} (service account {email})",
                    path.display()
                )),
                Err(e) => FileCheck::Problem(format!("{KEY}: {}: {e}", path.display())),
            },
        });
    }
    if let Some(dir) = &settings.google.provider_credentials_dir {
        const KEY: &str = "google.provider_credentials_dir";
        match crate::credentials::check_provider_dir(dir) {
            Err(e) => out.push(FileCheck::Problem(format!(
                "{KEY}: cannot read {}: {e}",
                dir.display()
            ))),
            Ok(found) => {
                for (path, problem) in found.files {
                    out.push(match problem {
                        None => FileCheck::Fine(format!("{KEY}: {}", path.display())),
                        Some(why) => {
                            FileCheck::Problem(format!("{KEY}: {}: {why}", path.display()))
                        }
                    });
                }
                for path in found.ignored {
                    out.push(FileCheck::Warning(format!(
                        "{KEY}: {} is not named <provider uuid>.json and is ignored",
                        path.display()
                    )));
                }
            }
        }
    }
    out
}

/// Opens the store the settings name.
///
/// # Errors
/// sled cannot open the directory (locked by another process, permissions).
pub async fn open_store(settings: &Settings) -> Result<Arc<Store>, AppError> {
    let opts = StoreOptions {
        cache_bytes: settings.cache_mb * 1024 * 1024,
        token_salt: settings.token_salt.expose().to_string(),
        sync_debounce: std::time::Duration::from_millis(settings.sync.debounce_ms),
    };
    match &settings.store_url {
        Some(url) => {
            let pg = crate::store::pg::PgOptions {
                max_connections: settings.store_max_connections,
                job_lease: std::time::Duration::from_secs(settings.store_job_lease_secs),
            };
            Store::connect(url.expose(), &opts, &pg)
                .await
                .map(Arc::new)
                .map_err(|source| AppError::Store {
                    // The URL may hold a password: never shown.
                    dir: "the PostgreSQL database of store_url".into(),
                    source,
                })
        }
        None => Store::open(&settings.data_dir, &opts)
            .map(Arc::new)
            .map_err(|source| match source {
                crate::store::StoreError::InUse(dir) => AppError::InUse {
                    dir: dir.display().to_string(),
                },
                source => AppError::Store {
                    dir: settings.data_dir.display().to_string(),
                    source,
                },
            }),
    }
}

/// The options of every Google client the settings make (the service account's and
/// the per-provider ones). The token bucket's burst is one second's worth of the rate,
/// so no 60 s window holds more than `requests_per_minute` plus a second's worth (589
/// with the default 580, under Google's 600).
pub fn client_options(settings: &Settings) -> ClientOptions {
    let per_minute = settings.google.requests_per_minute;
    ClientOptions {
        root_url: settings.google.root_url.clone(),
        rate_limit: RateLimit::per_minute(per_minute),
        page_size: Some(2500),
        limits: crate::google::UsageLimits {
            calendars_per_hour: settings.google.calendars_per_hour,
            pause: std::time::Duration::from_secs(settings.google.usage_limit_pause_secs),
            ..crate::google::UsageLimits::default()
        },
        ..ClientOptions::default()
    }
}

/// The Google side of the service: the service-account client (if a key is
/// configured), the per-provider credentials falling back to it, and the call
/// statistics every client records into (read by `/metrics`).
pub struct Google {
    pub client: Option<Arc<dyn CalendarApi>>,
    pub credentials: Arc<ProviderCredentials>,
    pub stats: Arc<CallStats>,
}

impl Google {
    /// # Errors
    /// The key file cannot be read or is not a service-account key, or the token
    /// HTTP client cannot be built.
    pub async fn build(settings: &Settings) -> Result<Google, AppError> {
        let stats = Arc::new(CallStats::new());
        let options = client_options(settings);
        let mut identity = None;
        let client: Option<Arc<dyn CalendarApi>> = match &settings.google.service_account_key {
            None => None,
            Some(path) => {
                let creds = Credentials::service_account_from_file(
                    path,
                    settings.google.impersonate.clone(),
                )
                .await
                .map_err(|e| AppError::Google {
                    what: format!("reading the service-account key {}", path.display()),
                    source: e,
                })?;
                identity = Some(creds.identity());
                let client = GoogleCalendarClient::builder(creds)
                    .options(options.clone())
                    .stats(stats.clone())
                    .build()
                    .await
                    .map_err(|e| AppError::Google {
                        what: "building the Google client".into(),
                        source: e,
                    })?;
                Some(Arc::new(client))
            }
        };
        let mut credentials = ProviderCredentials::new(
            settings.google.provider_credentials_dir.clone(),
            options,
            stats.clone(),
            client.clone(),
        )
        .map_err(|e| AppError::Google {
            what: "preparing per-provider credentials".into(),
            source: e,
        })?;
        if let (Some(path), Some(identity)) = (&settings.google.service_account_key, &identity) {
            let name = format!(
                "service account {}",
                identity.strip_prefix("sa:").unwrap_or(identity)
            );
            credentials = credentials.with_service_account(name, &path.display().to_string());
        }
        let credentials = Arc::new(credentials);
        Ok(Google {
            client,
            credentials,
            stats,
        })
    }

    /// Whether any credential is configured (a service-account key or a directory of
    /// per-provider tokens).
    pub fn configured(&self, settings: &Settings) -> bool {
        self.client.is_some() || settings.google.provider_credentials_dir.is_some()
    }
}

/// What every command that touches data shares: the store, the Google side and the
/// sync engine over them.
pub struct Services {
    pub store: Arc<Store>,
    pub google: Google,
    pub engine: Arc<SyncEngine>,
}

impl Services {
    /// Validates the settings and opens what they name.
    ///
    /// # Errors
    /// Invalid settings, the store cannot be opened, or the Google side cannot be set up.
    pub async fn build(settings: &Settings) -> Result<Services, AppError> {
        settings.validate()?;
        let store = open_store(settings).await?;
        let google = Google::build(settings).await?;
        let engine = Arc::new(SyncEngine {
            store: store.clone(),
            source: google.credentials.clone(),
            settings: settings.sync.clone(),
            share_role: if settings.google.share_busy_only {
                AclRole::FreeBusyReader
            } else {
                AclRole::Reader
            },
        });
        Ok(Services {
            store,
            google,
            engine,
        })
    }
}

/// The service, assembled and bound, not yet serving.
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    /// `http.probe_listen`'s listener, if set.
    probe_listener: Option<TcpListener>,
    services: Services,
    state: AppState,
    scheduler: Option<Scheduler>,
    push: Arc<PushService>,
}

/// The feeds service with the `feeds` settings.
pub fn feed_service(store: Arc<Store>, settings: &Settings) -> crate::feeds::FeedService {
    let options = crate::feeds::FeedOptions {
        public_url: settings.public_url.clone(),
        cache: crate::feeds::CacheLimits {
            max_bytes: usize::try_from(settings.feeds.cache_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            ..crate::feeds::CacheLimits::default()
        },
        render_slots: settings.feeds.render_threads,
    };
    crate::feeds::FeedService::new(store, options)
}

impl Application {
    /// Assembles the service the settings describe and binds its listener.
    ///
    /// # Errors
    /// As [`Services::build`], or the address cannot be bound.
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        let services = Services::build(&settings).await?;
        let mut state = AppState::new(services.store.clone());
        state.public_url = settings.public_url.clone();
        state.google = services.google.credentials.clone();
        state.feeds = Arc::new(feed_service(services.store.clone(), &settings));
        state.max_busy_age = settings.sync.max_busy_age();
        state.clients = Arc::new(crate::api::throttle::ClientLimits::new(&settings.http));
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| AppError::Bind {
                    addr: settings.listen.to_string(),
                    source,
                })?;
        let probe_listener = match settings.http.probe_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        let push = Arc::new(
            PushService::new(
                services.store.clone(),
                services.google.credentials.clone(),
                push_options(
                    &settings,
                    listener.local_addr().ok(),
                    crate::store::JobQueue::lease(&*services.store),
                ),
            )
            .await
            .map_err(|source| AppError::Store {
                dir: settings.data_dir.display().to_string(),
                source,
            })?,
        );
        let scheduler = Scheduler::with_runner(
            Arc::new(PushRunner::new(services.engine.clone(), push.clone())),
            services.store.clone(),
            scheduler_options(&settings),
        );
        state.metrics = Arc::new(
            Metrics::new(vec![
                scheduler.status.clone(),
                services.google.stats.clone(),
                services.google.credentials.clone(),
                push.clone(),
                state.clients.clone(),
            ])
            .with_token(settings.http.metrics_token.as_ref()),
        );
        Ok(Application {
            settings,
            listener,
            probe_listener,
            services,
            state,
            scheduler: Some(scheduler),
            push,
        })
    }

    /// The address the service listens on (the port chosen for `:0`).
    ///
    /// # Errors
    /// The socket cannot say (it always can once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the probe-only listener (`http.probe_listen`), if set.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.services.store
    }

    /// The sync engine the scheduler runs (`bookcal demo` runs a first sync with it).
    pub fn engine(&self) -> &Arc<SyncEngine> {
        &self.services.engine
    }

    /// Google push notifications: watch channels and the webhook.
    pub fn push(&self) -> &Arc<PushService> {
        &self.push
    }

    /// The handler state the API serves with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Takes the scheduler out: [`run_until_stopped`](Self::run_until_stopped) then
    /// serves the API alone, jobs wait in the store, and the caller runs the scheduler
    /// when it wants them run (tests that watch a job wait, or `/ready` change).
    /// `/ready` and `/metrics` keep reading the taken scheduler's status.
    pub fn take_scheduler(&mut self) -> Option<Scheduler> {
        self.scheduler.take()
    }

    /// Runs the API and the scheduler until `shutdown`; then stops accepting, lets
    /// in-flight requests and running jobs finish, and flushes the store. The drain
    /// may take `settings.shutdown_timeout_secs`; past it the store is flushed anyway
    /// and [`AppError::ShutdownTimedOut`] returned (running sync runs persist only at
    /// their end, so abandoning them loses nothing but their progress).
    ///
    /// # Errors
    /// The drain times out.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let Application {
            settings,
            listener,
            probe_listener,
            services,
            state,
            scheduler,
            push,
        } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(
                %addr,
                store = services.store.engine().as_str(),
                data_dir = %settings.data_dir.display(),
                google = services.google.configured(&settings),
                "bookcal listening"
            );
        }
        if let Some(addr) = probe_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(%addr, "probes (/health, /ready) listening");
        }
        let store = services.store;
        let mut sched = scheduler.map(|s| tokio::spawn(s.run(shutdown.clone())));
        let upkeep = tokio::spawn(push.clone().run(shutdown.clone()));
        let sweeper = tokio::spawn({
            let (store, shutdown) = (store.clone(), shutdown.clone());
            async move { store.sweep_sessions(shutdown).await }
        });
        let limits = settings.http.clone();
        let server_shutdown = shutdown.clone();
        let webhook = crate::push::router(push);
        let mut server = tokio::spawn(async move {
            serve_with(
                listener,
                probe_listener,
                state,
                webhook,
                &limits,
                server_shutdown,
            )
            .await
        });
        // Until shutdown (or the server task panics).
        let early = tokio::select! {
            r = &mut server => Some(r),
            () = shutdown.cancelled() => None,
        };
        shutdown.cancel();
        tracing::info!("shutting down: draining requests and jobs");
        let limit = std::time::Duration::from_secs(settings.shutdown_timeout_secs);
        let drain = async {
            let served = match early {
                Some(r) => r,
                None => (&mut server).await,
            };
            if let Some(s) = &mut sched {
                if s.await.is_err() {
                    tracing::error!("the scheduler task panicked");
                }
            }
            if upkeep.await.is_err() {
                tracing::error!("the push channel upkeep task panicked");
            }
            if sweeper.await.is_err() {
                tracing::error!("the web session sweeper panicked");
            }
            served
        };
        let result = match tokio::time::timeout(limit, drain).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                tracing::error!("the server task panicked");
                Ok(())
            }
            Err(_) => {
                tracing::error!(?limit, "shutdown timed out; abandoning requests and jobs");
                server.abort();
                if let Some(s) = &sched {
                    s.abort();
                }
                Err(AppError::ShutdownTimedOut(limit))
            }
        };
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "flushing the store failed");
        }
        result
    }
}

/// Serves the API on `listener` under the `http` limits until `shutdown` is
/// cancelled, then closes idle connections and finishes in-flight requests (see
/// [`crate::server`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: &crate::config::HttpSettings,
    shutdown: CancellationToken,
) {
    serve_with(listener, None, state, axum::Router::new(), limits, shutdown).await;
}

/// [`serve`] with more routes beside the API (the push webhook, observed as the API
/// is: a span and a count by route template and status in `/metrics`), and the
/// probes on their own listener too if one is given (`http.probe_listen`).
pub async fn serve_with(
    listener: TcpListener,
    probe_listener: Option<TcpListener>,
    state: AppState,
    extra: axum::Router,
    limits: &crate::config::HttpSettings,
    shutdown: CancellationToken,
) {
    let probes = api::probe_router(state.clone());
    let stats = state.metrics.connections.clone();
    // Held 429s are sent at once when shutdown starts, so the drain never waits on
    // them (they hold requests in progress, which a graceful shutdown lets finish).
    let clients = state.clients.clone();
    let release = async {
        shutdown.cancelled().await;
        clients.release_holds();
    };
    let extra = extra.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api::ops::observe,
    ));
    let router = api::router(state.clone())
        .merge(crate::web::router(state))
        .merge(extra);
    let probe_only = async {
        if let Some(l) = probe_listener {
            crate::server::serve_probes(l, probes.clone(), limits, shutdown.clone()).await;
        }
    };
    let api = crate::server::serve(
        listener,
        router,
        probes.clone(),
        limits,
        stats,
        shutdown.clone(),
    );
    tokio::join!(api, probe_only, release);
}

/// Where Google delivers push notifications, or why push is off: `google.push_url`;
/// else `public_url` + the webhook path (HTTPS, unless the Google root URL is not
/// Google's); else, against an emulator, the service's own listening address (the
/// emulator runs on this machine).
pub fn push_address(settings: &Settings, local: Option<SocketAddr>) -> Result<String, String> {
    use crate::push::NOTIFICATIONS_PATH;
    let googles = settings.google.is_googles();
    if !settings.google.push_enabled {
        return Err("google.push_enabled is false".into());
    }
    if let Some(url) = &settings.google.push_url {
        return Ok(url.clone());
    }
    if let Some(public) = &settings.public_url {
        let address = format!("{}{NOTIFICATIONS_PATH}", public.trim_end_matches('/'));
        return if address.starts_with("https://") || !googles {
            Ok(address)
        } else {
            Err("public_url is not https and google.push_url is not set".into())
        };
    }
    match local {
        Some(addr) if !googles => {
            let host = if addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            Ok(format!(
                "http://{}{NOTIFICATIONS_PATH}",
                SocketAddr::new(host, addr.port())
            ))
        }
        _ => Err("no public https URL is configured (public_url or google.push_url)".into()),
    }
}

fn scheduler_options(settings: &Settings) -> SchedulerOptions {
    SchedulerOptions {
        interval: (settings.sync.interval_secs > 0)
            .then(|| std::time::Duration::from_secs(settings.sync.interval_secs)),
        ..SchedulerOptions::default()
    }
}

/// Push's options; `lease`: the store's job lease where several processes share it
/// (channel upkeep claims last as long).
fn push_options(
    settings: &Settings,
    local: Option<SocketAddr>,
    lease: Option<std::time::Duration>,
) -> PushOptions {
    let secs = std::time::Duration::from_secs;
    let (address, off_reason) = match push_address(settings, local) {
        Ok(a) => (Some(a), None),
        Err(reason) => (None, Some(reason)),
    };
    PushOptions {
        address,
        off_reason,
        ttl: secs(settings.google.push_ttl_secs),
        renew_before: secs(settings.google.push_renew_before_secs),
        healthy_interval: secs(settings.sync.push_interval_secs),
        usual_interval: scheduler_options(settings).interval,
        look_every: secs(settings.google.push_look_secs),
        lease,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_address_comes_from_push_url_public_url_or_the_local_emulator_setup() {
        let local: Option<SocketAddr> = "0.0.0.0:8000".parse().ok();
        let emulator = "http://127.0.0.1:8090/";
        let google = "https://www.googleapis.com/";
        type Case = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            bool,
            Result<&'static str, ()>,
        );
        let cases: Vec<Case> = vec![
            (
                "push_url wins",
                google,
                Some("https://hooks.example.org/g"),
                Some("https://b.example.org"),
                true,
                Ok("https://hooks.example.org/g"),
            ),
            (
                "https public_url",
                google,
                None,
                Some("https://b.example.org/"),
                true,
                Ok("https://b.example.org/google/notifications"),
            ),
            (
                "http public_url with Google",
                google,
                None,
                Some("http://b.example.org"),
                true,
                Err(()),
            ),
            (
                "http public_url with an emulator",
                emulator,
                None,
                Some("http://b.example.org"),
                true,
                Ok("http://b.example.org/google/notifications"),
            ),
            (
                "nothing configured with Google",
                google,
                None,
                None,
                true,
                Err(()),
            ),
            (
                "nothing configured with an emulator",
                emulator,
                None,
                None,
                true,
                Ok("http://127.0.0.1:8000/google/notifications"),
            ),
            (
                "turned off",
                emulator,
                Some("https://hooks.example.org/g"),
                None,
                false,
                Err(()),
            ),
        ];
        for (name, root, push_url, public_url, enabled, expected) in cases {
            let mut settings = Settings::default();
            settings.google.root_url = root.into();
            settings.google.push_url = push_url.map(String::from);
            settings.google.push_enabled = enabled;
            settings.public_url = public_url.map(String::from);
            let got = push_address(&settings, local);
            assert_eq!(got.as_deref().map_err(|_| ()), expected, "{name}");
        }
    }
}
