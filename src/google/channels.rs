//! Push-notification channels: our types for `events.watch` and `channels.stop` and
//! their conversion to and from google-calendar3's `Channel`.
//!
//! Google's contract (push guide): a channel has a caller-chosen `id` (at most 64
//! characters), a `web_hook` address, an opaque `token` echoed in every delivery, and a
//! lifetime asked for with `params.ttl` (seconds); the answer names the watched
//! resource (`resourceId`, needed to stop the channel) and the `expiration` Google
//! granted (ms since the epoch), which may be shorter than asked. Channels do not
//! renew themselves.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use google_calendar3::api;

use super::error::{GoogleError, GoogleErrorKind};

/// What to watch with: `events.watch`'s request body.
#[derive(Clone, PartialEq, Eq)]
pub struct WatchRequest {
    /// The channel id (unique per channel; at most 64 characters).
    pub id: String,
    /// The webhook address Google delivers to.
    pub address: String,
    /// The secret echoed in `X-Goog-Channel-Token` (never logged).
    pub token: String,
    /// The lifetime asked for (`params.ttl`); Google may grant less.
    pub ttl: Duration,
}

impl std::fmt::Debug for WatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchRequest")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("token", &"[redacted]")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A channel Google opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchChannel {
    pub id: String,
    /// Google's opaque id of the watched resource (needed by `channels.stop`).
    pub resource_id: String,
    pub resource_uri: Option<String>,
    /// When Google stops delivering.
    pub expiration: DateTime<Utc>,
}

pub(crate) fn watch_to_api(req: &WatchRequest) -> api::Channel {
    let mut params = HashMap::new();
    params.insert("ttl".to_owned(), req.ttl.as_secs().max(1).to_string());
    api::Channel {
        id: Some(req.id.clone()),
        type_: Some("web_hook".to_owned()),
        address: Some(req.address.clone()),
        token: Some(req.token.clone()),
        params: Some(params),
        ..Default::default()
    }
}

pub(crate) fn channel_from_api(
    asked: &WatchRequest,
    got: api::Channel,
) -> Result<WatchChannel, GoogleError> {
    let missing = |what: &str| {
        GoogleError::new(
            GoogleErrorKind::Other,
            format!("events.watch answered without {what}"),
        )
        .with_method("calendar.events.watch")
    };
    let resource_id = got.resource_id.ok_or_else(|| missing("a resourceId"))?;
    let expiration = got
        .expiration
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(|| missing("an expiration"))?;
    Ok(WatchChannel {
        id: got.id.unwrap_or_else(|| asked.id.clone()),
        resource_id,
        resource_uri: got.resource_uri,
        expiration,
    })
}

pub(crate) fn stop_to_api(channel_id: &str, resource_id: &str) -> api::Channel {
    api::Channel {
        id: Some(channel_id.to_owned()),
        resource_id: Some(resource_id.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_requests_ask_for_a_web_hook_with_a_ttl_and_hide_the_token() {
        let req = WatchRequest {
            id: "chan".into(),
            address: "https://x.example/google/notifications".into(),
            token: "s3cret".into(),
            ttl: Duration::from_secs(3600),
        };
        let body = watch_to_api(&req);
        assert_eq!(body.type_.as_deref(), Some("web_hook"));
        assert_eq!(
            body.params.and_then(|p| p.get("ttl").cloned()).as_deref(),
            Some("3600")
        );
        assert!(!format!("{req:?}").contains("s3cret"));
    }

    #[test]
    fn answers_without_resource_id_or_expiration_are_errors() {
        let req = WatchRequest {
            id: "chan".into(),
            address: "a".into(),
            token: "t".into(),
            ttl: Duration::from_secs(1),
        };
        let full = api::Channel {
            id: Some("chan".into()),
            resource_id: Some("r".into()),
            expiration: Some(1_384_823_632_000),
            ..Default::default()
        };
        let ok = channel_from_api(&req, full.clone()).expect("complete answer");
        assert_eq!(ok.expiration.timestamp(), 1_384_823_632);
        let no_resource = api::Channel {
            resource_id: None,
            ..full.clone()
        };
        assert!(channel_from_api(&req, no_resource).is_err());
        let no_expiration = api::Channel {
            expiration: None,
            ..full
        };
        assert!(channel_from_api(&req, no_expiration).is_err());
    }
}
