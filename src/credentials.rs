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
//!
//! Health: every credential (the service account, each provider file) has a status
//! (`ok`, `invalid`, `failing`, `unknown`) with the reason in plain words and what to
//! do ([`health_of`]), shown in each offering's `googlecalendar.credential`, in
//! `/metrics` (`bookcal_google_credential_status`) and in `/ready`'s detail; the
//! Google adapter logs every change of status once.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::api::GoogleCredentialsCheck;
use crate::domain::calendar::CredentialHealth;
use crate::domain::Id;
use crate::google::{
    CalendarApi, CallStats, ClientFactory, ClientOptions, CredentialStatus, Credentials,
    GoogleError, GoogleErrorKind, GOOGLE_TOKEN_URL,
};
use crate::metrics::{Exposition, Observed};
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
    /// How the service account is named in health reports, and how to replace it.
    default_name: (String, String),
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
            default_name: (
                "service account".into(),
                "replace the service-account key (google.service_account_key) and restart bookcal"
                    .into(),
            ),
        })
    }

    /// Names the service account in health reports (`service account a@b`) and says
    /// where its key is (`/etc/bookcal/google-key.json`).
    #[must_use]
    pub fn with_service_account(mut self, name: impl Into<String>, key_path: &str) -> Self {
        self.default_name = (
            name.into(),
            format!("replace the key file {key_path} with a current key and restart bookcal"),
        );
        self
    }

    fn provider_health(&self, provider: Id) -> Option<CredentialHealth> {
        let path = self.file(provider)?;
        let name = format!("provider {}", provider.hex());
        let fix = format!(
            "the provider must authorise bookcal again; write its new refresh token to {} (read on the next sync, no restart)",
            path.display()
        );
        let status = match self.credentials(provider) {
            Err(e) => CredentialStatus::Invalid {
                reason: e.to_string(),
                since: chrono::Utc::now(),
            },
            Ok(_) => self
                .factory
                .credential_status(&provider.hex())
                .unwrap_or(CredentialStatus::Unknown),
        };
        Some(health_of(&name, &status, &fix))
    }

    fn service_account_health(&self) -> Option<CredentialHealth> {
        let client = self.default.as_ref()?;
        let (name, fix) = &self.default_name;
        Some(health_of(name, &client.credential_status(), fix))
    }

    /// Providers that have a credentials file.
    fn providers_with_files(&self) -> Vec<Id> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut ids: Vec<Id> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Id::parse(name.strip_suffix(".json")?)
            })
            .collect();
        ids.sort();
        ids
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

/// Checks every provider file in `dir` (`config check`): each `<uuid>.json` must
/// parse as a refresh-token file. Returns each file with what is wrong with it, if
/// anything, and the entries that are not provider files (they are ignored).
///
/// # Errors
/// `dir` cannot be read.
pub fn check_provider_dir(dir: &std::path::Path) -> std::io::Result<ProviderDirCheck> {
    let mut check = ProviderDirCheck::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let provider = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(Id::parse);
        if provider.is_none() {
            check.ignored.push(path);
            continue;
        }
        let problem = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<ProviderFile>(&t).map_err(|e| e.to_string()))
            .err();
        check.files.push((path, problem));
    }
    check.files.sort();
    check.ignored.sort();
    Ok(check)
}

/// What [`check_provider_dir`] found.
#[derive(Debug, Default)]
pub struct ProviderDirCheck {
    /// Each provider file and what is wrong with it (`None`: it parses).
    pub files: Vec<(PathBuf, Option<String>)>,
    /// Entries not named `<provider uuid>.json`.
    pub ignored: Vec<PathBuf>,
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

    fn health(&self, provider: Id) -> Option<CredentialHealth> {
        self.provider_health(provider)
            .or_else(|| self.service_account_health())
    }

    fn all_health(&self) -> Vec<CredentialHealth> {
        self.service_account_health()
            .into_iter()
            .chain(
                self.providers_with_files()
                    .into_iter()
                    .filter_map(|p| self.provider_health(p)),
            )
            .collect()
    }
}

impl Observed for ProviderCredentials {
    fn write_metrics(&self, out: &mut Exposition) {
        const STATUSES: [&str; 4] = ["ok", "invalid", "failing", "unknown"];
        let all = self.all_health();
        const COUNT: &str = "bookcal_google_credentials";
        out.family(
            COUNT,
            "gauge",
            "Google credentials (the service account, each provider file) by status: ok, invalid (a person must replace it), failing (bookcal retries), unknown (not used yet).",
        );
        for status in STATUSES {
            let n = all.iter().filter(|h| h.status == status).count();
            out.sample(COUNT, &[("status", status)], n as f64);
        }
        // Series naming a credential (a provider, an account) need the metrics token.
        if !out.detailed() {
            return;
        }
        const NAME: &str = "bookcal_google_credential_status";
        out.family(
            NAME,
            "gauge",
            "Each Google credential's status (1 for the current one); with the metrics token only.",
        );
        for h in &all {
            for status in STATUSES {
                let value = f64::from(u8::from(h.status == status));
                out.sample(NAME, &[("credential", &h.name), ("status", status)], value);
            }
        }
    }
}

/// A credential's status in words an operator can act on: what is wrong and what to
/// do (`fix` says how to replace this credential).
pub fn health_of(name: &str, status: &CredentialStatus, fix: &str) -> CredentialHealth {
    let (reason, action, since, until) = match status {
        CredentialStatus::Unknown => (None, None, None, None),
        CredentialStatus::Ok => (None, None, None, None),
        CredentialStatus::Invalid { reason, since } => (
            Some(format!("Google refuses this credential: {reason}")),
            Some(format!(
                "Nothing is synced with it until it is replaced: {fix}. Bookings on its offerings are refused once their busy time is older than sync.max_busy_age_secs."
            )),
            Some(*since),
            None,
        ),
        CredentialStatus::Failing {
            reason,
            since,
            until: Some(until),
        } => (
            Some(format!("{reason}.")),
            Some(format!(
                "Nothing to do: writes resume by themselves after {}; busy time is still read. Creating fewer calendars per hour (google.calendars_per_hour) avoids this.",
                until.format("%Y-%m-%d %H:%M UTC")
            )),
            Some(*since),
            Some(*until),
        ),
        CredentialStatus::Failing {
            reason,
            since,
            until: None,
        } => (
            Some(format!("Google does not answer for this credential: {reason}")),
            Some("Nothing to do yet: bookcal retries with back-off. If it lasts, check Google's status page and the network path to Google.".to_owned()),
            Some(*since),
            None,
        ),
    };
    CredentialHealth {
        name: name.to_owned(),
        status: status.label().to_owned(),
        reason,
        action,
        since,
        until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_as_words_with_what_to_do() {
        let t = chrono::Utc::now();
        let cases = [
            (CredentialStatus::Unknown, "unknown", None, None),
            (CredentialStatus::Ok, "ok", None, None),
            (
                CredentialStatus::Invalid {
                    reason: "invalid_grant: Token has been expired or revoked.".into(),
                    since: t,
                },
                "invalid",
                Some("Token has been expired or revoked"),
                Some("replace me"),
            ),
            (
                CredentialStatus::Failing {
                    reason: "token fetch: internal_failure".into(),
                    since: t,
                    until: None,
                },
                "failing",
                Some("internal_failure"),
                Some("retries with back-off"),
            ),
            (
                CredentialStatus::Failing {
                    reason: "Google answered \"Calendar usage limits exceeded.\"".into(),
                    since: t,
                    until: Some(t),
                },
                "failing",
                Some("usage limits"),
                Some("resume by themselves"),
            ),
        ];
        for (status, label, reason, action) in cases {
            let h = health_of("provider x", &status, "replace me");
            assert_eq!(h.status, label);
            assert_eq!(h.name, "provider x");
            match reason {
                Some(r) => assert!(h.reason.as_deref().is_some_and(|x| x.contains(r)), "{h:?}"),
                None => assert!(h.reason.is_none(), "{h:?}"),
            }
            match action {
                Some(a) => assert!(h.action.as_deref().is_some_and(|x| x.contains(a)), "{h:?}"),
                None => assert!(h.action.is_none(), "{h:?}"),
            }
        }
    }
}
