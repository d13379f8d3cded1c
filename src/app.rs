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
    #[error("server failed")]
    Serve(#[source] std::io::Error),
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
    let mut state = AppState::new(store);
    state.public_url = settings.public_url.clone();
    state.google = Arc::new(StaticCredentials(
        settings.google.service_account_key.is_some(),
    ));
    state
}

/// Serves the API on `listener` until `shutdown` is cancelled, then finishes
/// in-flight requests.
///
/// # Errors
/// The server's accept loop fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let router = api::router(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(AppError::Serve)
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
