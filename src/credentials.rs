//! Which Google credential serves which provider.
//!
//! A provider (the organisation offering the bookings) uses its own OAuth refresh
//! token when `google.provider_credentials_dir` holds `<provider uuid hex>.json`:
//! `{"client_id": "...", "client_secret": "...", "refresh_token": "...",
//! "token_url": "https://oauth2.googleapis.com/token"}` (`token_url` optional), as
//! upstream Waldur keeps one refresh token per service provider. Every other
//! provider uses the service-account key, if one is configured. Files are read when
//! a client is needed, so adding, rotating or removing one needs no restart; clients
//! and their token caches are shared per credential by [`ClientFactory`].
//!
//! A revoked token (`invalid_grant`) fails that provider's runs with a clear error on
//! its offerings' calendar records; other providers are unaffected.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::api::GoogleCredentialsCheck;
use crate::domain::Id;
use crate::google::{
    CalendarApi, CallStats, ClientFactory, ClientOptions, Credentials, GoogleError,
    GoogleErrorKind, GOOGLE_TOKEN_URL,
};
use crate::sync::CalendarSource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_url: Option<String>,
}

/// Per-provider refresh tokens, falling back to the service account.
pub struct ProviderCredentials {
    dir: Option<PathBuf>,
    factory: ClientFactory,
    default: Option<Arc<dyn CalendarApi>>,
}

impl ProviderCredentials {
    /// # Errors
    /// The HTTP client for tokens cannot be built.
    pub fn new(
        dir: Option<PathBuf>,
        options: ClientOptions,
        stats: Arc<CallStats>,
        default: Option<Arc<dyn CalendarApi>>,
    ) -> Result<Self, GoogleError> {
        Ok(ProviderCredentials {
            dir,
            factory: ClientFactory::new(options, stats)?,
            default,
        })
    }

    fn file(&self, provider: Id) -> Option<PathBuf> {
        let path = self.dir.as_ref()?.join(format!("{}.json", provider.hex()));
        path.is_file().then_some(path)
    }

    /// The provider's own credentials, if a file names them.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed (`InvalidCredentials`).
    pub fn credentials(&self, provider: Id) -> Result<Option<Credentials>, GoogleError> {
        let Some(path) = self.file(provider) else {
            return Ok(None);
        };
        let bad = |why: String| {
            GoogleError::new(
                GoogleErrorKind::InvalidCredentials,
                format!("{}: {why}", path.display()),
            )
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let f: ProviderFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Credentials::RefreshToken {
            client_id: f.client_id,
            client_secret: f.client_secret,
            refresh_token: f.refresh_token,
            token_url: f.token_url.unwrap_or_else(|| GOOGLE_TOKEN_URL.to_string()),
        }))
    }
}

#[async_trait]
impl CalendarSource for ProviderCredentials {
    async fn client_for(&self, provider: Id) -> Result<Option<Arc<dyn CalendarApi>>, GoogleError> {
        match self.credentials(provider)? {
            Some(c) => Ok(Some(self.factory.client(&provider.hex(), &c).await?)),
            None => Ok(self.default.clone()),
        }
    }
}

impl GoogleCredentialsCheck for ProviderCredentials {
    fn has_credentials(&self, provider: Id) -> bool {
        self.default.is_some() || self.file(provider).is_some()
    }
}
