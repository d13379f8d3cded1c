//! yup-oauth2's service-account flow (what the Rust client side uses) against the
//! emulator's token endpoint, plain HTTP on loopback.
#![allow(clippy::unwrap_used)]

use bookcal::emulator::{Emulator, EmulatorOptions};
use serde_json::json;

const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

#[tokio::test]
async fn yup_oauth2_service_account_tokens_work_with_and_without_impersonation() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let key = yup_oauth2::parse_service_account_key(emulator.service_account_key_json()).unwrap();
    let http = reqwest::Client::new();
    let events_of =
        |cal: &str| format!("{}calendar/v3/calendars/{cal}/events", emulator.root_url());
    let with_attendee = json!({
        "summary": "Meeting",
        "start": {"dateTime": "2024-01-01T10:00:00Z"},
        "end": {"dateTime": "2024-01-01T11:00:00Z"},
        "attendees": [{"email": "guest@example.org"}],
    });

    let mut statuses = Vec::new();
    for subject in [None, Some("owner@example.org")] {
        let mut builder = yup_oauth2::ServiceAccountAuthenticator::builder(key.clone());
        if let Some(subject) = subject {
            builder = builder.subject(subject);
        }
        let auth = builder.build().await.unwrap();
        let token = auth.token(&[SCOPE]).await.unwrap();
        let token = token.token().unwrap().to_owned();
        let created: serde_json::Value = http
            .post(format!("{}calendar/v3/calendars", emulator.root_url()))
            .bearer_auth(&token)
            .json(&json!({"summary": "Room"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cal = created["id"].as_str().unwrap();
        let status = http
            .post(events_of(cal))
            .bearer_auth(&token)
            .json(&with_attendee)
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![403, 200]);
    assert_eq!(
        emulator.controls().counters().get("oauth2.token:200"),
        Some(&2)
    );
}
