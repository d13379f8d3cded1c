//! Assembling and running the service: open the store, build the router, serve on an
//! already bound listener until shutdown (so tests bind `127.0.0.1:0`).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, StaticCredentials};
use crate::config::Settings;
use crate::store::{Store, StoreOptions};

/// Errors while starting or running the service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open the store in {dir}")]
    Store {
        dir: String,
        #[source]
        source: crate::store::StoreError,
    },
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

/// Opens the store the settings name.
///
/// # Errors
/// sled cannot open the directory (locked by another process, permissions).
pub fn open_store(settings: &Settings) -> Result<Arc<Store>, AppError> {
    let opts = StoreOptions {
        cache_bytes: settings.cache_mb * 1024 * 1024,
        token_salt: settings.token_salt.expose().to_string(),
    };
    Store::open(&settings.data_dir, &opts)
        .map(Arc::new)
        .map_err(|source| AppError::Store {
            dir: settings.data_dir.display().to_string(),
            source,
        })
}

/// The handler state for these settings.
pub fn app_state(store: Arc<Store>, settings: &Settings) -> AppState {
    let mut state = AppState::new(store.clone());
    state.public_url = settings.public_url.clone();
    let feeds = crate::feeds::FeedOptions {
        public_url: settings.public_url.clone(),
        cache: crate::feeds::CacheLimits {
            max_bytes: usize::try_from(settings.feeds.cache_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            ..crate::feeds::CacheLimits::default()
        },
        render_slots: settings.feeds.render_threads,
    };
    state.feeds = Arc::new(crate::feeds::FeedService::new(store, feeds));
    state.google = Arc::new(StaticCredentials(
        settings.google.service_account_key.is_some()
            || settings.google.provider_credentials_dir.is_some(),
    ));
    state
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
    let probes = api::probe_router(state.clone());
    let stats = state.metrics.connections.clone();
    let router = api::router(state);
    crate::server::serve(listener, router, probes, limits, stats, shutdown).await;
}

/// Binds the configured address.
///
/// # Errors
/// The address is in use or not allowed.
pub async fn bind(settings: &Settings) -> Result<TcpListener, AppError> {
    TcpListener::bind(settings.listen)
        .await
        .map_err(|source| AppError::Bind {
            addr: settings.listen.to_string(),
            source,
        })
}

/// Builds the Google client the settings describe (a service-account key), if any.
///
/// # Errors
/// The key file cannot be read or is not a service-account key.
pub async fn google_client(
    settings: &Settings,
    stats: Arc<crate::google::CallStats>,
) -> Result<Option<Arc<dyn crate::google::CalendarApi>>, AppError> {
    use crate::google::{ClientOptions, Credentials, GoogleCalendarClient, RateLimit};
    let Some(path) = &settings.google.service_account_key else {
        return Ok(None);
    };
    let creds = Credentials::service_account_from_file(path, settings.google.impersonate.clone())
        .await
        .map_err(|e| AppError::Google {
            what: format!("reading the service-account key {}", path.display()),
            source: e,
        })?;
    let per_minute = settings.google.requests_per_minute;
    let options = ClientOptions {
        root_url: settings.google.root_url.clone(),
        rate_limit: RateLimit {
            per_minute,
            burst: (per_minute / 20).clamp(1, 50),
        },
        page_size: Some(2500),
        ..ClientOptions::default()
    };
    let client = GoogleCalendarClient::builder(creds)
        .options(options)
        .stats(stats)
        .build()
        .await
        .map_err(|e| AppError::Google {
            what: "building the Google client".into(),
            source: e,
        })?;
    Ok(Some(Arc::new(client)))
}

/// Which credential serves which provider: per-provider refresh tokens from
/// `google.provider_credentials_dir`, else the service-account `client`.
///
/// # Errors
/// The token HTTP client cannot be built.
pub fn credentials(
    settings: &Settings,
    client: Option<Arc<dyn crate::google::CalendarApi>>,
    stats: Arc<crate::google::CallStats>,
) -> Result<Arc<crate::credentials::ProviderCredentials>, AppError> {
    let per_minute = settings.google.requests_per_minute;
    let options = crate::google::ClientOptions {
        root_url: settings.google.root_url.clone(),
        rate_limit: crate::google::RateLimit {
            per_minute,
            burst: (per_minute / 20).clamp(1, 50),
        },
        page_size: Some(2500),
        ..crate::google::ClientOptions::default()
    };
    crate::credentials::ProviderCredentials::new(
        settings.google.provider_credentials_dir.clone(),
        options,
        stats,
        client,
    )
    .map(Arc::new)
    .map_err(|e| AppError::Google {
        what: "preparing per-provider credentials".into(),
        source: e,
    })
}

/// The sync engine for these settings.
pub fn sync_engine(
    store: Arc<Store>,
    settings: &Settings,
    source: Arc<dyn crate::sync::CalendarSource>,
) -> Arc<crate::sync::SyncEngine> {
    Arc::new(crate::sync::SyncEngine {
        store,
        source,
        settings: settings.sync.clone(),
        share_role: if settings.google.share_busy_only {
            crate::google::AclRole::FreeBusyReader
        } else {
            crate::google::AclRole::Reader
        },
    })
}

/// The Google side of a running service: the client, if credentials exist, and the
/// call statistics that client records into (also read by `/metrics`).
pub struct Google {
    pub client: Option<Arc<dyn crate::google::CalendarApi>>,
    pub stats: Arc<crate::google::CallStats>,
}

/// Runs the API and the scheduler until `shutdown`; then stops accepting, lets
/// in-flight requests and running jobs finish, and flushes the store. The drain may
/// take `settings.shutdown_timeout_secs`; past it the store is flushed anyway and
/// [`AppError::ShutdownTimedOut`] returned (running sync runs persist only at their
/// end, so abandoning them loses nothing but their progress).
///
/// # Errors
/// Google credentials cannot be prepared, or the drain times out.
pub async fn run_service(
    listener: TcpListener,
    store: Arc<Store>,
    settings: &Settings,
    google: Google,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let mut state = app_state(store.clone(), settings);
    let creds = credentials(settings, google.client, google.stats.clone())?;
    state.google = creds.clone();
    state.metrics.attach_google(google.stats);
    let engine = sync_engine(store.clone(), settings, creds);
    let opts = crate::scheduler::SchedulerOptions {
        interval: (settings.sync.interval_secs > 0)
            .then(|| std::time::Duration::from_secs(settings.sync.interval_secs)),
        ..crate::scheduler::SchedulerOptions::default()
    };
    let scheduler = crate::scheduler::Scheduler::new(engine, state.jobs_ready.clone(), opts);
    state.metrics.attach_scheduler(scheduler.status.clone());
    let mut sched = tokio::spawn(scheduler.run(shutdown.clone()));
    let limits = settings.http.clone();
    let server_shutdown = shutdown.clone();
    let mut server =
        tokio::spawn(async move { serve(listener, state, &limits, server_shutdown).await });
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
        if (&mut sched).await.is_err() {
            tracing::error!("the scheduler task panicked");
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
            sched.abort();
            Err(AppError::ShutdownTimedOut(limit))
        }
    };
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "flushing the store failed");
    }
    result
}
