//! `POST /google/notifications`: where Google delivers push notifications.
//!
//! A delivery has no body; everything is in the `X-Goog-*` headers. The answer comes
//! at once (the sync it asks for is queued, not run): 200 for a delivery of one of our
//! channels, the one being opened included (acted on, or ignored as a `sync` message or a repeated number), 404 in
//! DRF's shape for anything else (unknown channel, wrong or missing token), so a
//! forged delivery changes nothing. A storage failure answers 500 and Google retries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::{Delivery, PushService};

/// The webhook's path under the service's public URL.
pub const NOTIFICATIONS_PATH: &str = "/google/notifications";

/// The webhook route, to merge into the service's router.
pub fn router(push: Arc<PushService>) -> Router {
    Router::new()
        .route(NOTIFICATIONS_PATH, post(notify))
        .with_state(push)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn notify(State(push): State<Arc<PushService>>, headers: HeaderMap) -> Response {
    let not_found =
        || (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))).into_response();
    let Some(channel_id) = header(&headers, "x-goog-channel-id") else {
        return not_found();
    };
    let delivery = Delivery {
        channel_id: channel_id.to_owned(),
        token: header(&headers, "x-goog-channel-token").map(str::to_owned),
        resource_state: header(&headers, "x-goog-resource-state")
            .unwrap_or_default()
            .to_owned(),
        message_number: header(&headers, "x-goog-message-number")
            .and_then(|n| n.trim().parse().ok()),
    };
    match push.receive(&delivery).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => not_found(),
        Err(error) => {
            tracing::error!(%error, "cannot record a push notification");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"detail": "The notification could not be recorded."})),
            )
                .into_response()
        }
    }
}
