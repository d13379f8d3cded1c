//! `ClientFactory`: one cached client per provider, one token cache and one
//! rate-limit bucket per credential.
//!
//! Providers that share a credential (the same service account, say) share its
//! bucket, so together they stay under the credential's quota. A provider whose
//! credentials change gets a new client on its next lookup.

use std::collections::HashMap;
use std::sync::Arc;

use google_calendar3::common;

use super::auth::{CredentialStatus, Credentials};
use super::client::{
    https_connector, hub_http_client, token_http_client, ClientOptions, Connector, CredentialState,
    GoogleCalendarClient,
};
use super::error::GoogleError;
use super::stats::CallStats;
use super::CalendarApi;

struct Cached {
    identity: String,
    client: Arc<GoogleCalendarClient>,
}

#[derive(Default)]
struct Registry {
    /// By credential identity.
    credentials: HashMap<String, Arc<CredentialState>>,
    /// By provider key.
    clients: HashMap<String, Cached>,
}

/// Hands out `Arc<dyn CalendarApi>` per provider.
pub struct ClientFactory {
    options: ClientOptions,
    stats: Arc<CallStats>,
    connector: Connector,
    http: common::Client<Connector>,
    token_http: reqwest::Client,
    registry: tokio::sync::Mutex<Registry>,
    /// The current client of each provider, readable without awaiting (health).
    current: std::sync::Mutex<HashMap<String, Arc<GoogleCalendarClient>>>,
}

impl ClientFactory {
    /// A factory whose clients all use `options` and report into `stats`.
    ///
    /// # Errors
    /// Only if the HTTP client for token requests cannot be built.
    pub fn new(options: ClientOptions, stats: Arc<CallStats>) -> Result<Self, GoogleError> {
        let connector = https_connector();
        let token_http = token_http_client(options.request_timeout)?;
        Ok(ClientFactory {
            http: hub_http_client(connector.clone()),
            connector,
            token_http,
            options,
            stats,
            registry: tokio::sync::Mutex::new(Registry::default()),
            current: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<CallStats> {
        Arc::clone(&self.stats)
    }

    /// The client for `provider`, built on first use or when its credentials changed.
    ///
    /// # Errors
    /// `InvalidCredentials` when a service account key cannot be parsed.
    pub async fn client(
        &self,
        provider: &str,
        credentials: &Credentials,
    ) -> Result<Arc<dyn CalendarApi>, GoogleError> {
        Ok(self.concrete(provider, credentials).await?)
    }

    /// Like [`client`](Self::client), but the concrete type.
    ///
    /// # Errors
    /// As [`client`](Self::client).
    pub async fn concrete(
        &self,
        provider: &str,
        credentials: &Credentials,
    ) -> Result<Arc<GoogleCalendarClient>, GoogleError> {
        let identity = credentials.identity();
        let mut registry = self.registry.lock().await;
        if let Some(cached) = registry.clients.get(provider) {
            if cached.identity == identity {
                return Ok(Arc::clone(&cached.client));
            }
        }
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(provider);
        let state = match registry.credentials.get(&identity) {
            Some(state) => Arc::clone(state),
            None => {
                let state = Arc::new(
                    CredentialState::new(
                        credentials,
                        &self.options,
                        &self.stats,
                        &self.connector,
                        &self.token_http,
                    )
                    .await?,
                );
                registry
                    .credentials
                    .insert(identity.clone(), Arc::clone(&state));
                state
            }
        };
        let client = Arc::new(GoogleCalendarClient::from_parts(
            self.http.clone(),
            &state,
            self.options.clone(),
            Arc::clone(&self.stats),
        ));
        registry.clients.insert(
            provider.to_owned(),
            Cached {
                identity,
                client: Arc::clone(&client),
            },
        );
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(provider.to_owned(), Arc::clone(&client));
        Ok(client)
    }

    /// The credential status of `provider`'s client, if one was built.
    pub fn credential_status(&self, provider: &str) -> Option<CredentialStatus> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
            .map(|c| c.credential_status())
    }

    /// Drops `provider`'s cached client (its credential state stays for others).
    pub async fn forget(&self, provider: &str) {
        self.registry.lock().await.clients.remove(provider);
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(token: &str) -> Credentials {
        Credentials::RefreshToken {
            client_id: "client".into(),
            client_secret: "secret".into(),
            refresh_token: token.into(),
            token_url: "http://127.0.0.1:9/token".into(),
        }
    }

    #[tokio::test]
    async fn the_factory_caches_per_provider_and_shares_state_per_credential() {
        let factory = ClientFactory::new(ClientOptions::default(), Arc::new(CallStats::new()))
            .expect("factory");
        let a1 = factory.concrete("a", &refresh("t1")).await.expect("client");
        let a2 = factory.concrete("a", &refresh("t1")).await.expect("client");
        assert!(Arc::ptr_eq(&a1, &a2));
        let b = factory.concrete("b", &refresh("t1")).await.expect("client");
        assert!(!Arc::ptr_eq(&a1, &b));
        assert!(a1.shares_credential_with(&b));
        let a3 = factory.concrete("a", &refresh("t2")).await.expect("client");
        assert!(!Arc::ptr_eq(&a1, &a3));
        assert!(!a1.shares_credential_with(&a3));
        assert_eq!(
            factory.credential_status("a"),
            Some(CredentialStatus::Unknown)
        );
        assert_eq!(factory.credential_status("zzz"), None);
    }

    #[tokio::test]
    async fn an_unparsable_service_account_key_is_invalid_credentials() {
        let factory = ClientFactory::new(ClientOptions::default(), Arc::new(CallStats::new()))
            .expect("factory");
        let err = match factory
            .client("p", &Credentials::service_account("{not json"))
            .await
        {
            Ok(_) => panic!("must fail"),
            Err(e) => e,
        };
        assert_eq!(
            err.kind(),
            super::super::GoogleErrorKind::InvalidCredentials
        );
    }
}
