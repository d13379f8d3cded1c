//! The Google Calendar emulator over real HTTP: auth, id rules, paging, sync tokens,
//! recurrence, time bounds, filters, etags, ACL, and the switches.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bookcal::emulator::{Emulator, EmulatorOptions, FailNth, InjectedFault};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// A started emulator plus an authorised client.
struct Api {
    emulator: Emulator,
    http: Client,
    token: String,
}

fn key_of(emulator: &Emulator) -> Value {
    serde_json::from_str(&emulator.service_account_key_json()).unwrap()
}

fn assertion(emulator: &Emulator, pem: &str, sub: Option<&str>) -> String {
    let key = key_of(emulator);
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": key["client_email"],
        "scope": SCOPE,
        "aud": key["token_uri"],
        "iat": now,
        "exp": now + 3600,
    });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    sign(emulator, pem, &claims)
}

fn sign(emulator: &Emulator, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = key_of(emulator)["private_key_id"]
        .as_str()
        .map(String::from);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn token_request(
    http: &Client,
    emulator: &Emulator,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = http
        .post(emulator.token_uri())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn jwt_token(http: &Client, emulator: &Emulator, sub: Option<&str>) -> String {
    let key = key_of(emulator);
    let jwt = assertion(emulator, key["private_key"].as_str().unwrap(), sub);
    let (status, body) = token_request(
        http,
        emulator,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

impl Api {
    async fn start() -> Api {
        Self::start_with(EmulatorOptions::default()).await
    }

    async fn start_with(opts: EmulatorOptions) -> Api {
        let emulator = Emulator::start(opts).await.unwrap();
        let http = Client::new();
        let token = jwt_token(&http, &emulator, None).await;
        Api {
            emulator,
            http,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}calendar/v3/{path}", self.emulator.root_url())
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = if_match {
            request = request.header("If-Match", etag);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, body, Some(&self.token), None)
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn new_calendar(&self, time_zone: &str) -> String {
        let (status, body) = self
            .post(
                "calendars",
                json!({"summary": "Room 1", "timeZone": time_zone}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn insert(&self, calendar: &str, event: Value) -> (StatusCode, Value) {
        self.post(
            &format!("calendars/{calendar}/events?sendUpdates=none"),
            event,
        )
        .await
    }

    async fn insert_ok(&self, calendar: &str, event: Value) -> Value {
        let (status, body) = self.insert(calendar, event).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// All pages of a listing; returns the items and the final page's sync token.
    async fn list_all(&self, calendar: &str, query: &str) -> (Vec<Value>, Option<String>, usize) {
        let mut items = Vec::new();
        let mut page_token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("calendars/{calendar}/events?{query}");
            if let Some(token) = &page_token {
                path.push_str(&format!("&pageToken={token}"));
            }
            let (status, body) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            pages += 1;
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["nextPageToken"].as_str() {
                Some(next) => {
                    assert!(
                        body.get("nextSyncToken").is_none(),
                        "sync token before the last page"
                    );
                    page_token = Some(next.to_owned());
                }
                None => {
                    return (
                        items,
                        body["nextSyncToken"].as_str().map(String::from),
                        pages,
                    )
                }
            }
        }
    }
}

fn timed(id: Option<&str>, start: &str, end: &str) -> Value {
    let mut event = json!({
        "summary": "Booking",
        "start": {"dateTime": start},
        "end": {"dateTime": end},
    });
    if let Some(id) = id {
        event["id"] = json!(id);
    }
    event
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn encode_query(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn requests_without_a_valid_token_get_googles_401_body() {
    let api = Api::start().await;
    for token in [None, Some("ya29.not-issued")] {
        let (status, body) = api
            .call_with(Method::GET, "users/me/calendarList", None, token, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], 401);
        let error = &body["error"]["errors"][0];
        assert_eq!(error["domain"], "global");
        assert_eq!(error["reason"], "authError");
        assert_eq!(error["locationType"], "header");
        assert_eq!(error["location"], "Authorization");
        assert!(body["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn jwt_grant_with_the_generated_key_issues_a_bearer_token() {
    let api = Api::start().await;
    let key = key_of(&api.emulator);
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["token_uri"], api.emulator.token_uri());
    assert!(key["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let jwt = assertion(&api.emulator, key["private_key"].as_str().unwrap(), None);
    let (status, body) = token_request(
        &api.http,
        &api.emulator,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    let (status, _) = api
        .call_with(
            Method::GET,
            "users/me/calendarList",
            None,
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn jwt_signed_by_another_key_is_an_invalid_grant() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let api = Api::start().await;
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = other.to_pkcs8_pem(LineEnding::LF).unwrap();
    let jwt = assertion(&api.emulator, &pem, None);
    let (status, body) = token_request(
        &api.http,
        &api.emulator,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");
}

#[tokio::test]
async fn jwt_grants_with_bad_claims_are_invalid_grants() {
    let api = Api::start().await;
    let key = key_of(&api.emulator);
    let pem = key["private_key"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let good = json!({"iss": key["client_email"], "scope": SCOPE, "aud": key["token_uri"], "iat": now, "exp": now + 3600});
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let cases = [
        (
            with("aud", json!("https://oauth2.googleapis.com/token")),
            StatusCode::OK,
            None,
        ),
        (
            with("aud", json!("https://example.org/token")),
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
        ),
        (
            with("iss", json!("someone@else.iam.gserviceaccount.com")),
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
        ),
        (
            with("exp", json!(now + 7200)),
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
        ),
        (
            with("exp", json!(now - 600)).tap_iat(now - 1200),
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
        ),
        (
            with("scope", json!("")),
            StatusCode::BAD_REQUEST,
            Some("invalid_scope"),
        ),
    ];
    for (claims, status, error) in cases {
        let jwt = sign(&api.emulator, pem, &claims);
        let (got, body) = token_request(
            &api.http,
            &api.emulator,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ],
        )
        .await;
        assert_eq!((got, body["error"].as_str()), (status, error), "{claims}");
    }
    let (status, body) =
        token_request(&api.http, &api.emulator, &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

trait TapIat {
    fn tap_iat(self, iat: i64) -> Value;
}

impl TapIat for Value {
    fn tap_iat(mut self, iat: i64) -> Value {
        self["iat"] = json!(iat);
        self
    }
}

#[tokio::test]
async fn refresh_token_grant_works_until_the_token_is_revoked() {
    let api = Api::start().await;
    let controls = api.emulator.controls();
    controls.register_refresh_token("client-1", "secret-1", "1//refresh");
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "client-1"),
        ("client_secret", "secret-1"),
        ("refresh_token", "1//refresh"),
    ];
    let (status, body) = token_request(&api.http, &api.emulator, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call_with(
            Method::POST,
            "calendars",
            Some(json!({"summary": "x"})),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = token_request(
        &api.http,
        &api.emulator,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "client-1"),
            ("client_secret", "secret-1"),
            ("refresh_token", "1//unknown"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    assert!(controls.revoke_refresh_token("1//refresh"));
    let (status, body) = token_request(&api.http, &api.emulator, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
}

#[tokio::test]
async fn expired_access_tokens_answer_401() {
    let api = Api::start_with(EmulatorOptions {
        access_token_ttl: Duration::ZERO,
        ..EmulatorOptions::default()
    })
    .await;
    let (status, body) = api.get("users/me/calendarList").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");
}

// ---------------------------------------------------------------- calendars

#[tokio::test]
async fn calendars_can_be_created_read_changed_listed_and_deleted() {
    let api = Api::start().await;
    let (status, body) = api
        .post("calendars", json!({"description": "no title"}))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "required")
    );

    let id = api.new_calendar("Europe/Berlin").await;
    assert!(
        id.starts_with("c_") && id.ends_with("@group.calendar.google.com"),
        "{id}"
    );
    let (status, body) = api.get(&format!("calendars/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["kind"].as_str(), body["timeZone"].as_str()),
        (Some("calendar#calendar"), Some("Europe/Berlin"))
    );

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("calendars/{id}"),
            Some(json!({"summary": "Room 2"})),
        )
        .await;
    assert_eq!(
        (status, body["summary"].as_str(), body["timeZone"].as_str()),
        (StatusCode::OK, Some("Room 2"), Some("Europe/Berlin"))
    );
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("calendars/{id}"),
            Some(json!({"summary": "Room 3", "timeZone": "UTC"})),
        )
        .await;
    assert_eq!(
        (status, body["summary"].as_str(), body["timeZone"].as_str()),
        (StatusCode::OK, Some("Room 3"), Some("UTC"))
    );

    let (_, list) = api.get("users/me/calendarList").await;
    assert_eq!(list["kind"], "calendar#calendarList");
    assert_eq!(ids(list["items"].as_array().unwrap()), vec![id.clone()]);
    assert_eq!(list["items"][0]["accessRole"], "owner");

    let (status, _) = api
        .call(Method::DELETE, &format!("calendars/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("calendars/{id}")).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "notFound"));
    assert!(api.emulator.inspect().calendars().is_empty());
}

// ---------------------------------------------------------------- id rules

#[tokio::test]
async fn event_ids_outside_base32hex_are_rejected_as_invalid() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    for bad in ["abcd", "bookingxyz", "ABCDEF", "abc-def", &"a".repeat(1025)] {
        let (status, body) = api
            .insert(
                &cal,
                timed(Some(bad), "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reason(&body), "invalid");
        assert_eq!(body["error"]["message"], "Invalid resource id value.");
    }
    let event = api
        .insert_ok(
            &cal,
            timed(None, "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
        )
        .await;
    let generated = event["id"].as_str().unwrap();
    assert!(
        generated.len() >= 5
            && generated
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
    );
}

#[tokio::test]
async fn duplicate_ids_conflict_even_after_deletion() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let event = timed(
        Some("booking0001"),
        "2024-01-01T10:00:00Z",
        "2024-01-01T11:00:00Z",
    );
    api.insert_ok(&cal, event.clone()).await;
    let (status, body) = api.insert(&cal, event.clone()).await;
    assert_eq!((status, reason(&body)), (StatusCode::CONFLICT, "duplicate"));
    assert_eq!(
        body["error"]["message"],
        "The requested identifier already exists."
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("calendars/{cal}/events/booking0001"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.insert(&cal, event).await;
    assert_eq!((status, reason(&body)), (StatusCode::CONFLICT, "duplicate"));
}

#[tokio::test]
async fn deleting_a_deleted_event_answers_410_deleted_and_get_still_returns_it() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    api.insert_ok(
        &cal,
        timed(
            Some("abcdef"),
            "2024-01-01T10:00:00Z",
            "2024-01-01T11:00:00Z",
        ),
    )
    .await;
    let path = format!("calendars/{cal}/events/abcdef");
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = api.call(Method::DELETE, &path, None).await;
    assert_eq!((status, reason(&body)), (StatusCode::GONE, "deleted"));
    let (status, body) = api.get(&path).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, body) = api.get(&format!("calendars/{cal}/events/abcdeg")).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "notFound"));
    let stored = api.emulator.inspect().events(&cal);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "cancelled");
}

#[tokio::test]
async fn update_with_status_confirmed_revives_a_cancelled_event() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let event = timed(
        Some("abcdef"),
        "2024-01-01T10:00:00Z",
        "2024-01-01T11:00:00Z",
    );
    api.insert_ok(&cal, event.clone()).await;
    let path = format!("calendars/{cal}/events/abcdef");
    api.call(Method::DELETE, &path, None).await;
    let mut revived = event;
    revived["status"] = json!("confirmed");
    let (status, body) = api.call(Method::PUT, &path, Some(revived)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
}

#[tokio::test]
async fn events_carry_googles_server_fields() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let mut event = timed(
        Some("abcdef"),
        "2024-01-01T10:00:00Z",
        "2024-01-01T11:00:00Z",
    );
    event["transparency"] = json!("transparent");
    event["location"] = json!("Lab");
    event["description"] = json!("d");
    let body = api.insert_ok(&cal, event).await;
    assert_eq!(body["kind"], "calendar#event");
    assert_eq!(body["iCalUID"], "abcdef@google.com");
    assert_eq!(body["sequence"], 0);
    assert_eq!(body["status"], "confirmed");
    assert_eq!(body["transparency"], "transparent");
    assert_eq!(body["organizer"]["email"], cal.as_str());
    assert_eq!(
        body["creator"]["email"],
        api.emulator.service_account_email()
    );
    assert!(body["etag"].as_str().unwrap().starts_with('"'));
    assert!(body["htmlLink"]
        .as_str()
        .unwrap()
        .starts_with("https://www.google.com/calendar/event?eid="));
    assert!(body["created"].is_string() && body["updated"].is_string());
}

#[tokio::test]
async fn attendees_from_a_service_account_need_impersonation() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let mut event = timed(None, "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z");
    event["attendees"] = json!([{"email": "guest@example.org"}]);
    let (status, body) = api.insert(&cal, event.clone()).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::FORBIDDEN, "forbiddenForServiceAccounts")
    );

    let delegated = jwt_token(&api.http, &api.emulator, Some("owner@example.org")).await;
    let (status, body) = api
        .call_with(
            Method::POST,
            "calendars",
            Some(json!({"summary": "Delegated"})),
            Some(&delegated),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cal = body["id"].as_str().unwrap();
    let (status, body) = api
        .call_with(
            Method::POST,
            &format!("calendars/{cal}/events"),
            Some(event),
            Some(&delegated),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["attendees"][0]["email"], "guest@example.org");
}

// ---------------------------------------------------------------- paging

#[tokio::test]
async fn six_hundred_events_list_in_pages_of_250_with_the_sync_token_on_the_last_page() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    for i in 0..600 {
        api.insert_ok(
            &cal,
            timed(
                Some(&format!("evt{i:05}")),
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:00:00Z",
            ),
        )
        .await;
    }
    let (status, first) = api.get(&format!("calendars/{cal}/events")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 250);
    assert!(first["nextPageToken"].is_string());
    assert!(first.get("nextSyncToken").is_none());

    let (items, sync_token, pages) = api.list_all(&cal, "").await;
    assert_eq!(pages, 3);
    assert!(sync_token.is_some());
    let mut seen = ids(&items);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 600);

    let (items, _, pages) = api.list_all(&cal, "maxResults=100").await;
    assert_eq!((items.len(), pages), (600, 6));
}

#[tokio::test]
async fn max_results_above_2500_is_capped() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, url, token) = (
            api.http.clone(),
            api.url(&format!("calendars/{cal}/events")),
            api.token.clone(),
        );
        tasks.spawn(async move {
            for i in (worker..2501).step_by(8) {
                let event = timed(
                    Some(&format!("evt{i:05}")),
                    "2024-01-01T10:00:00Z",
                    "2024-01-01T11:00:00Z",
                );
                let status = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&event)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let (status, page) = api
        .get(&format!("calendars/{cal}/events?maxResults=100000"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2500);
    let next = page["nextPageToken"].as_str().unwrap();
    let (_, last) = api
        .get(&format!(
            "calendars/{cal}/events?maxResults=100000&pageToken={next}"
        ))
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(last["nextSyncToken"].is_string());
}

// ---------------------------------------------------------------- sync tokens

#[tokio::test]
async fn incremental_sync_returns_changes_with_deleted_events_as_minimal_tombstones() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    for id in ["aaaaa1", "aaaaa2", "aaaaa3"] {
        api.insert_ok(
            &cal,
            timed(Some(id), "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
        )
        .await;
    }
    let (items, token, _) = api.list_all(&cal, "").await;
    assert_eq!(items.len(), 3);
    let token = token.unwrap();

    let (status, empty) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty["items"].as_array().unwrap().is_empty());

    api.call(
        Method::DELETE,
        &format!("calendars/{cal}/events/aaaaa1"),
        None,
    )
    .await;
    api.call(
        Method::PATCH,
        &format!("calendars/{cal}/events/aaaaa2"),
        Some(json!({"summary": "changed"})),
    )
    .await;
    api.insert_ok(
        &cal,
        timed(
            Some("aaaaa4"),
            "2024-01-02T10:00:00Z",
            "2024-01-02T11:00:00Z",
        ),
    )
    .await;

    let (changes, next, _) = api.list_all(&cal, &format!("syncToken={token}")).await;
    assert_eq!(ids(&changes), vec!["aaaaa1", "aaaaa2", "aaaaa4"]);
    let tombstone = &changes[0];
    let mut keys: Vec<&str> = tombstone
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["etag", "id", "kind", "status"]);
    assert_eq!(tombstone["status"], "cancelled");
    assert_eq!(changes[1]["summary"], "changed");

    let (again, _, _) = api
        .list_all(&cal, &format!("syncToken={}", next.unwrap()))
        .await;
    assert!(again.is_empty());

    // Outside incremental sync, deleted events appear only with showDeleted.
    let (live, _, _) = api.list_all(&cal, "").await;
    assert_eq!(ids(&live), vec!["aaaaa2", "aaaaa3", "aaaaa4"]);
    let (all, _, _) = api.list_all(&cal, "showDeleted=true").await;
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn sync_token_rejects_forbidden_and_mismatching_parameters() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let (_, token, _) = api.list_all(&cal, "").await;
    let token = token.unwrap();
    for extra in [
        "iCalUID=x@google.com",
        "orderBy=updated",
        "privateExtendedProperty=a%3Db",
        "q=x",
        "sharedExtendedProperty=a%3Db",
        "timeMin=2024-01-01T00:00:00Z",
        "timeMax=2024-01-01T00:00:00Z",
        "updatedMin=2024-01-01T00:00:00Z",
        "singleEvents=true",
    ] {
        let (status, body) = api
            .get(&format!("calendars/{cal}/events?syncToken={token}&{extra}"))
            .await;
        assert_eq!(
            (status, reason(&body)),
            (StatusCode::BAD_REQUEST, "invalid"),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn expired_or_unknown_sync_tokens_answer_410_full_sync_required() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let (_, token, _) = api.list_all(&cal, "").await;
    let token = token.unwrap();
    let (status, _) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(status, StatusCode::OK);

    api.emulator.controls().expire_sync_tokens();
    for bad in [token.as_str(), "CPDAlvWDx70CEPDAlvWDx70CGAU"] {
        let (status, body) = api
            .get(&format!("calendars/{cal}/events?syncToken={bad}"))
            .await;
        assert_eq!(
            (status, reason(&body)),
            (StatusCode::GONE, "fullSyncRequired")
        );
        assert_eq!(
            body["error"]["message"],
            "Sync token is no longer valid, a full sync is required."
        );
    }
    let (_, fresh, _) = api.list_all(&cal, "").await;
    let (status, _) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={}",
            fresh.unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------- recurrence

#[tokio::test]
async fn single_events_expand_a_berlin_series_across_dst_with_an_exception_and_a_cancelled_instance(
) {
    let api = Api::start().await;
    let cal = api.new_calendar("Europe/Berlin").await;
    let series = json!({
        "id": "series01",
        "summary": "Daily",
        "start": {"dateTime": "2024-03-29T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-29T11:00:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"],
    });
    api.insert_ok(&cal, series).await;
    let (status, body) = api
        .insert(
            &cal,
            json!({
                "summary": "No zone",
                "start": {"dateTime": "2024-03-29T10:00:00+01:00"},
                "end": {"dateTime": "2024-03-29T11:00:00+01:00"},
                "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"],
            }),
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "required")
    );

    // Move the 30th to 14:00 (an exception) and cancel the 1st of April.
    let (status, moved) = api
        .call(
            Method::PATCH,
            &format!("calendars/{cal}/events/series01_20240330T090000Z"),
            Some(json!({
                "start": {"dateTime": "2024-03-30T14:00:00+01:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2024-03-30T15:00:00+01:00", "timeZone": "Europe/Berlin"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["recurringEventId"], "series01");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("calendars/{cal}/events/series01_20240401T080000Z"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (items, _, _) = api
        .list_all(&cal, "singleEvents=true&orderBy=startTime")
        .await;
    assert_eq!(
        ids(&items),
        vec![
            "series01_20240329T090000Z",
            "series01_20240330T090000Z",
            "series01_20240331T080000Z",
            "series01_20240402T080000Z",
        ]
    );
    let starts: Vec<&str> = items
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![
            "2024-03-29T10:00:00+01:00",
            "2024-03-30T14:00:00+01:00",
            "2024-03-31T10:00:00+02:00",
            "2024-04-02T10:00:00+02:00",
        ]
    );
    for item in &items {
        assert_eq!(item["recurringEventId"], "series01");
        assert!(item["originalStartTime"]["dateTime"].is_string());
        assert!(item.get("recurrence").is_none());
    }
    assert_eq!(
        items[1]["originalStartTime"]["dateTime"],
        "2024-03-30T10:00:00+01:00"
    );

    // Without singleEvents: the series, its moved exception and, as the reference
    // says for showDeleted and singleEvents both false, its cancelled instance (a
    // tombstone carrying recurringEventId and originalStartTime).
    for query in ["", "showDeleted=true"] {
        let (plain, _, _) = api.list_all(&cal, query).await;
        assert_eq!(
            ids(&plain),
            vec![
                "series01",
                "series01_20240330T090000Z",
                "series01_20240401T080000Z"
            ],
            "{query}"
        );
        let cancelled = &plain[2];
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["recurringEventId"], "series01");
        assert!(cancelled["originalStartTime"].is_object());
        assert!(cancelled.get("summary").is_none());
    }
    // With singleEvents and without showDeleted the cancelled instance is absent.
    let (single, _, _) = api.list_all(&cal, "singleEvents=true").await;
    assert!(!ids(&single).contains(&"series01_20240401T080000Z".to_owned()));

    let (status, instances) = api
        .get(&format!("calendars/{cal}/events/series01/instances"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(instances["items"].as_array().unwrap().len(), 4);
}

// ---------------------------------------------------------------- time bounds and filters

#[tokio::test]
async fn time_min_bounds_the_end_and_time_max_the_start_exclusively() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    api.insert_ok(
        &cal,
        timed(
            Some("first1"),
            "2024-01-01T08:00:00Z",
            "2024-01-01T10:00:00Z",
        ),
    )
    .await;
    api.insert_ok(
        &cal,
        timed(
            Some("middle1"),
            "2024-01-01T10:00:00Z",
            "2024-01-01T12:00:00Z",
        ),
    )
    .await;
    api.insert_ok(
        &cal,
        timed(
            Some("late1"),
            "2024-01-01T12:00:00Z",
            "2024-01-01T14:00:00Z",
        ),
    )
    .await;
    api.insert_ok(
        &cal,
        json!({"id": "dates1", "start": {"date": "2024-01-02"}, "end": {"date": "2024-01-03"}}),
    )
    .await;
    let query = format!(
        "timeMin={}&timeMax={}",
        encode_query("2024-01-01T10:00:00Z"),
        encode_query("2024-01-01T12:00:00Z")
    );
    let (items, _, _) = api.list_all(&cal, &query).await;
    assert_eq!(ids(&items), vec!["middle1"]);
    let query = format!("timeMin={}", encode_query("2024-01-02T23:00:00+01:00"));
    let (items, _, _) = api.list_all(&cal, &query).await;
    assert_eq!(ids(&items), vec!["dates1"]);

    let query = format!(
        "timeMin={}&timeMax={}",
        encode_query("2024-01-01T12:00:00Z"),
        encode_query("2024-01-01T10:00:00Z")
    );
    let (status, body) = api.get(&format!("calendars/{cal}/events?{query}")).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "timeRangeEmpty")
    );

    let (status, body) = api
        .insert(
            &cal,
            timed(None, "2024-01-01T12:00:00Z", "2024-01-01T11:00:00Z"),
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "timeRangeEmpty")
    );
    assert_eq!(
        body["error"]["message"],
        "The specified time range is empty."
    );
    let (status, body) = api
        .insert(
            &cal,
            timed(None, "2024-01-01T12:00:00", "2024-01-01T13:00:00"),
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "required")
    );
}

#[tokio::test]
async fn private_extended_property_filter_selects_matching_events() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    for (id, slot, offering) in [
        ("evnt1", "s1", "o1"),
        ("evnt2", "s2", "o1"),
        ("evnt3", "s3", "o2"),
    ] {
        let mut event = timed(Some(id), "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z");
        event["extendedProperties"] =
            json!({"private": {"slot": slot, "offering": offering, "k".repeat(45): "dropped"}});
        let body = api.insert_ok(&cal, event).await;
        assert_eq!(
            body["extendedProperties"]["private"]
                .as_object()
                .unwrap()
                .len(),
            2
        );
    }
    let one = encode_query("offering=o1");
    let (items, _, _) = api
        .list_all(&cal, &format!("privateExtendedProperty={one}"))
        .await;
    assert_eq!(ids(&items), vec!["evnt1", "evnt2"]);
    let two = encode_query("slot=s2");
    let (items, _, _) = api
        .list_all(
            &cal,
            &format!("privateExtendedProperty={one}&privateExtendedProperty={two}"),
        )
        .await;
    assert_eq!(ids(&items), vec!["evnt2"]);
    let (items, _, _) = api
        .list_all(&cal, &format!("sharedExtendedProperty={one}"))
        .await;
    assert!(items.is_empty());
}

// ---------------------------------------------------------------- etags

#[tokio::test]
async fn stale_if_match_answers_412_and_the_etag_changes_on_every_modification() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let created = api
        .insert_ok(
            &cal,
            timed(
                Some("etag01"),
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:00:00Z",
            ),
        )
        .await;
    let path = format!("calendars/{cal}/events/etag01");
    let first = created["etag"].as_str().unwrap().to_owned();
    let (status, patched) = api
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"summary": "v2"})),
            Some(&api.token),
            Some(&first),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = patched["etag"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert!(patched["updated"].as_str() > created["updated"].as_str());
    for method in [Method::PATCH, Method::PUT] {
        let (status, body) = api
            .call_with(
                method,
                &path,
                Some(timed(None, "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z")),
                Some(&api.token),
                Some(&first),
            )
            .await;
        assert_eq!(
            (status, reason(&body)),
            (StatusCode::PRECONDITION_FAILED, "conditionNotMet")
        );
    }
    let (status, body) = api
        .call_with(Method::DELETE, &path, None, Some(&api.token), Some(&first))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::PRECONDITION_FAILED, "conditionNotMet")
    );
    let (status, _) = api
        .call_with(Method::DELETE, &path, None, Some(&api.token), Some(&second))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

// ---------------------------------------------------------------- ACL

#[tokio::test]
async fn acl_rules_can_be_inserted_read_and_deleted_and_changes_expire_sync_tokens() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let (_, token, _) = api.list_all(&cal, "").await;
    let token = token.unwrap();

    let (status, rule) = api
        .post(
            &format!("calendars/{cal}/acl"),
            json!({"role": "reader", "scope": {"type": "default"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (rule["id"].as_str(), rule["kind"].as_str()),
        (Some("default"), Some("calendar#aclRule"))
    );
    let (status, rule) = api
        .post(
            &format!("calendars/{cal}/acl"),
            json!({"role": "writer", "scope": {"type": "user", "value": "a@example.org"}}),
        )
        .await;
    assert_eq!(
        (status, rule["id"].as_str()),
        (StatusCode::OK, Some("user:a@example.org"))
    );

    let (status, body) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::GONE, "fullSyncRequired")
    );

    let (status, got) = api.get(&format!("calendars/{cal}/acl/default")).await;
    assert_eq!(
        (status, got["role"].as_str()),
        (StatusCode::OK, Some("reader"))
    );
    let (_, list) = api.get(&format!("calendars/{cal}/acl")).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        3,
        "owner, default, user"
    );
    assert_eq!(api.emulator.inspect().acl(&cal).len(), 3);

    let (_, fresh, _) = api.list_all(&cal, "").await;
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("calendars/{cal}/acl/default"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("calendars/{cal}/acl/default")).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "notFound"));
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("calendars/{cal}/acl/default"),
            None,
        )
        .await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "notFound"));
    let (status, _) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={}",
            fresh.unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::GONE);
}

// ---------------------------------------------------------------- switches

#[tokio::test]
async fn injected_faults_follow_the_rate_and_are_deterministic_for_a_seed() {
    let api = Api::start().await;
    let controls = api.emulator.controls();
    controls.set_fault_rate(
        1.0,
        &[InjectedFault::Unavailable503, InjectedFault::RateLimit429],
        9,
    );
    let mut first = Vec::new();
    for _ in 0..20 {
        let (status, body) = api.get("users/me/calendarList").await;
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
            assert_eq!(reason(&body), "rateLimitExceeded");
        } else {
            assert_eq!(reason(&body), "backendError");
        }
        first.push(status);
    }
    assert!(
        first.contains(&StatusCode::SERVICE_UNAVAILABLE)
            && first.contains(&StatusCode::TOO_MANY_REQUESTS)
    );

    controls.set_fault_rate(0.3, &InjectedFault::ALL, 5);
    let mut run = Vec::new();
    for _ in 0..40 {
        run.push(api.get("users/me/calendarList").await.0);
    }
    controls.set_fault_rate(0.3, &InjectedFault::ALL, 5);
    let mut replay = Vec::new();
    for _ in 0..40 {
        replay.push(api.get("users/me/calendarList").await.0);
    }
    assert_eq!(run, replay);
    let failures = run.iter().filter(|s| **s != StatusCode::OK).count();
    assert!((3..=25).contains(&failures), "{failures}");

    controls.clear_faults();
    assert_eq!(api.get("users/me/calendarList").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_nth_call_of_a_method_fails_with_the_given_status() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    api.emulator
        .controls()
        .fail_nth_call("calendar.events.insert", 2, 500);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let (status, body) = api
            .insert(
                &cal,
                timed(
                    Some(&format!("nth{i:03}")),
                    "2024-01-01T10:00:00Z",
                    "2024-01-01T11:00:00Z",
                ),
            )
            .await;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(reason(&body), "backendError");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![200, 500, 200]);
    assert_eq!(
        api.emulator.inspect().events(&cal).len(),
        2,
        "the failed insert did nothing"
    );
}

#[tokio::test]
async fn a_failure_after_effect_performs_the_call_and_loses_the_answer() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    api.emulator.controls().add_fail_nth(FailNth {
        method: "calendar.events.insert".into(),
        nth: 1,
        status: 503,
        after_effect: true,
        seen: 0,
    });
    let event = timed(
        Some("lost0001"),
        "2024-01-01T10:00:00Z",
        "2024-01-01T11:00:00Z",
    );
    assert_eq!(
        api.insert(&cal, event.clone()).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = api.insert(&cal, event).await;
    assert_eq!((status, reason(&body)), (StatusCode::CONFLICT, "duplicate"));
}

#[tokio::test]
async fn requests_past_the_per_minute_quota_answer_403_rate_limit_exceeded() {
    let api = Api::start_with(EmulatorOptions {
        quota_per_minute: Some(5),
        ..EmulatorOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, body) = api.get("users/me/calendarList").await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(reason(&body), "rateLimitExceeded");
            assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 403, 403]);
    // Another credential has its own window.
    let delegated = jwt_token(&api.http, &api.emulator, Some("other@example.org")).await;
    let (status, _) = api
        .call_with(
            Method::GET,
            "users/me/calendarList",
            None,
            Some(&delegated),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_latency_switch_delays_every_request() {
    let api = Api::start().await;
    let started = Instant::now();
    api.get("users/me/calendarList").await;
    let baseline = started.elapsed();
    let latency = Duration::from_millis(150);
    api.emulator.controls().set_latency(latency);
    let started = Instant::now();
    let (status, _) = api.get("users/me/calendarList").await;
    let slowed = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        slowed >= latency,
        "{slowed:?} < {latency:?} (baseline {baseline:?})"
    );
}

#[tokio::test]
async fn counters_count_requests_by_method_and_status_and_reset() {
    let api = Api::start().await;
    let controls = api.emulator.controls();
    controls.reset_counters();
    let cal = api.new_calendar("UTC").await;
    api.insert_ok(
        &cal,
        timed(
            Some("count1"),
            "2024-01-01T10:00:00Z",
            "2024-01-01T11:00:00Z",
        ),
    )
    .await;
    api.insert(
        &cal,
        timed(
            Some("count1"),
            "2024-01-01T10:00:00Z",
            "2024-01-01T11:00:00Z",
        ),
    )
    .await;
    api.get(&format!("calendars/{cal}/events")).await;
    api.call_with(Method::GET, "users/me/calendarList", None, None, None)
        .await;
    let counters = controls.counters();
    assert_eq!(counters.get("calendar.calendars.insert"), Some(&1));
    assert_eq!(counters.get("calendar.events.insert"), Some(&2));
    assert_eq!(counters.get("calendar.events.insert:409"), Some(&1));
    assert_eq!(counters.get("calendar.events.list"), Some(&1));
    assert_eq!(counters.get("calendar.calendarList.list:401"), Some(&1));
    assert_eq!(counters.get("status:200"), Some(&3));
    // Inspection and the control API are not counted.
    api.emulator.inspect().events(&cal);
    api.http
        .get(format!("{}emulator/counters", api.emulator.root_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(controls.counters(), counters);
    controls.reset_counters();
    assert!(controls.counters().is_empty());
}

#[tokio::test]
async fn the_control_http_api_changes_and_reports_the_switches() {
    let api = Api::start().await;
    let base = api.emulator.root_url();
    let settings: Value = api
        .http
        .put(format!("{base}emulator/settings"))
        .json(
            &json!({"latency_ms": 5, "quota_per_minute": 100, "fault_rate": 0.0, "faults": [500]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["latency_ms"], 5);
    assert_eq!(settings["quota_per_minute"], 100);
    assert_eq!(settings["faults"], json!([500]));
    let bad = api
        .http
        .put(format!("{base}emulator/settings"))
        .json(&json!({"fault_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let rule = api
        .http
        .post(format!("{base}emulator/fail-nth"))
        .json(&json!({"method": "calendar.calendarList.list", "nth": 1, "status": 429}))
        .send()
        .await
        .unwrap();
    assert_eq!(rule.status(), StatusCode::OK);
    assert_eq!(
        api.get("users/me/calendarList").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let registered = api
        .http
        .post(format!("{base}emulator/refresh-tokens"))
        .json(&json!({"client_id": "c", "client_secret": "s", "refresh_token": "r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::OK);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "c"),
        ("client_secret", "s"),
        ("refresh_token", "r"),
    ];
    assert_eq!(
        token_request(&api.http, &api.emulator, &form).await.0,
        StatusCode::OK
    );
    api.http
        .post(format!("{base}emulator/refresh-tokens/revoke"))
        .json(&json!({"refresh_token": "r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        token_request(&api.http, &api.emulator, &form).await.0,
        StatusCode::BAD_REQUEST
    );

    let cal = api.new_calendar("UTC").await;
    api.insert_ok(
        &cal,
        timed(
            Some("ctrl01"),
            "2024-01-01T10:00:00Z",
            "2024-01-01T11:00:00Z",
        ),
    )
    .await;
    api.call(
        Method::DELETE,
        &format!("calendars/{cal}/events/ctrl01"),
        None,
    )
    .await;
    let events: Value = api
        .http
        .get(format!("{base}emulator/calendars/{cal}/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events[0]["status"], "cancelled");
    let counters: Value = api
        .http
        .get(format!("{base}emulator/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["calendar.events.delete"], 1);
    let (_, token, _) = api.list_all(&cal, "").await;
    api.http
        .post(format!("{base}emulator/expire-sync-tokens"))
        .send()
        .await
        .unwrap();
    let (status, _) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={}",
            token.unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn a_page_size_cap_serves_short_pages_that_still_cover_everything() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    for i in 0..7 {
        api.insert_ok(
            &cal,
            timed(
                Some(&format!("short{i:03}")),
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:00:00Z",
            ),
        )
        .await;
    }
    api.emulator.controls().set_max_page_size(Some(3));
    let (items, token, pages) = api.list_all(&cal, "maxResults=250").await;
    assert_eq!((items.len(), pages), (7, 3));
    assert!(token.is_some());
}

#[tokio::test]
async fn other_credentials_see_a_calendar_only_through_its_acl() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let other = jwt_token(&api.http, &api.emulator, Some("colleague@example.org")).await;
    let events = format!("calendars/{cal}/events");
    let event = timed(None, "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z");
    let (status, _) = api
        .call_with(Method::GET, &events, None, Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    api.post(
        &format!("calendars/{cal}/acl"),
        json!({"role": "reader", "scope": {"type": "user", "value": "colleague@example.org"}}),
    )
    .await;
    let (status, _) = api
        .call_with(Method::GET, &events, None, Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call_with(
            Method::POST,
            &events,
            Some(event.clone()),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    api.post(
        &format!("calendars/{cal}/acl"),
        json!({"role": "writer", "scope": {"type": "user", "value": "colleague@example.org"}}),
    )
    .await;
    let (status, _) = api
        .call_with(Method::POST, &events, Some(event), Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = api
        .call_with(
            Method::GET,
            "users/me/calendarList",
            None,
            Some(&other),
            None,
        )
        .await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "calendarList shows only own calendars"
    );
}

#[tokio::test]
async fn without_strict_parameters_an_incremental_listing_needs_not_repeat_show_deleted_but_may_not_set_it_false(
) {
    let api = Api::start().await;
    api.emulator
        .controls()
        .set(bookcal::emulator::SettingsUpdate {
            strict_sync_parameters: Some(false),
            ..Default::default()
        });
    let cal = api.new_calendar("UTC").await;
    api.insert_ok(&cal, json!({"id": "abcde1", "start": {"dateTime": "2030-01-01T10:00:00Z"}, "end": {"dateTime": "2030-01-01T11:00:00Z"}})).await;
    let (_, token, _) = api.list_all(&cal, "showDeleted=true").await;
    let token = token.unwrap();
    // Google: with a syncToken deletions are always included and showDeleted=false is refused.
    let (status, body) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={token}&showDeleted=true"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={token}&showDeleted=false"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn attendee_self_is_set_by_the_server_for_the_calendar_itself() {
    let api = Api::start().await;
    let http = Client::new();
    // Attendees need a delegated (impersonating) credential.
    let token = jwt_token(&http, &api.emulator, Some("person@example.org")).await;
    let (status, body) = api
        .call_with(
            Method::POST,
            "calendars",
            Some(json!({"summary": "R"})),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cal = body["id"].as_str().unwrap().to_owned();
    let event = json!({
        "start": {"dateTime": "2030-01-01T10:00:00Z"}, "end": {"dateTime": "2030-01-01T11:00:00Z"},
        "attendees": [
            {"email": cal, "responseStatus": "declined", "self": false},
            {"email": "someone@example.org", "self": true},
        ],
    });
    let (status, body) = api
        .call_with(
            Method::POST,
            &format!("calendars/{cal}/events"),
            Some(event),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["attendees"][0]["self"], true);
    assert!(
        body["attendees"][1].get("self").is_none(),
        "clients cannot claim self: {body}"
    );
}

// ---------------------------------------------------------------- Google as it really is

#[tokio::test]
async fn recurrence_in_every_form_google_writes_is_accepted_and_expanded() {
    let api = Api::start().await;
    let cal = api.new_calendar("Europe/Berlin").await;
    // Timed weekly series ending on a plain date, with exceptions in two forms.
    api.insert_ok(
        &cal,
        json!({
            "id": "seminar1",
            "summary": "Seminar",
            "start": {"dateTime": "2030-03-18T10:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-03-18T11:00:00", "timeZone": "Europe/Berlin"},
            "recurrence": [
                "RRULE:FREQ=WEEKLY;WKST=SU;UNTIL=20300415;BYDAY=MO",
                "EXDATE;TZID=Europe/Berlin:20300325T100000",
                "EXDATE:20300408T080000Z",
            ],
        }),
    )
    .await;
    // All-day series ending on a date, with excluded dates.
    api.insert_ok(
        &cal,
        json!({
            "id": "closed01",
            "summary": "Lab closed",
            "start": {"date": "2030-03-04"},
            "end": {"date": "2030-03-05"},
            "recurrence": [
                "RRULE:FREQ=WEEKLY;UNTIL=20300401",
                "EXDATE;VALUE=DATE:20300311,20300318",
            ],
        }),
    )
    .await;
    // UNTIL as a UTC date-time.
    api.insert_ok(
        &cal,
        json!({
            "id": "standup1",
            "summary": "Stand-up",
            "start": {"dateTime": "2030-03-29T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-03-29T09:15:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20300331T070000Z"],
        }),
    )
    .await;
    let (items, _, _) = api
        .list_all(&cal, "singleEvents=true&orderBy=startTime")
        .await;
    assert_eq!(
        ids(&items),
        vec![
            "closed01_20300304",
            "seminar1_20300318T090000Z",
            "closed01_20300325",
            "standup1_20300329T080000Z",
            "standup1_20300330T080000Z",
            "standup1_20300331T070000Z",
            "closed01_20300401",
            "seminar1_20300401T080000Z",
            "seminar1_20300415T080000Z",
        ]
    );
}

#[tokio::test]
async fn incremental_listings_must_repeat_the_full_listings_parameters() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let (_, token, _) = api.list_all(&cal, "showDeleted=true").await;
    let token = token.unwrap();
    let (status, body) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let (status, _) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={token}&showDeleted=true"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The lenient reading only compares singleEvents.
    api.emulator
        .controls()
        .set(bookcal::emulator::SettingsUpdate {
            strict_sync_parameters: Some(false),
            ..Default::default()
        });
    let (status, _) = api
        .get(&format!("calendars/{cal}/events?syncToken={token}"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn time_zones_google_refuses_are_invalid_and_their_old_names_accepted() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "calendars",
            json!({"summary": "Kyiv", "timeZone": "Europe/Kyiv"}),
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let cal = api.new_calendar("Europe/Kiev").await;
    let event = |zone: &str| {
        json!({
            "summary": "Booking",
            "start": {"dateTime": "2030-01-01T10:00:00+02:00", "timeZone": zone},
            "end": {"dateTime": "2030-01-01T11:00:00+02:00", "timeZone": zone},
        })
    };
    let (status, body) = api.insert(&cal, event("Europe/Kyiv")).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    assert_eq!(
        body["error"]["message"],
        "Invalid time zone definition for start time."
    );
    api.insert_ok(&cal, event("Europe/Kiev")).await;
    let zones: Vec<String> = api
        .http
        .get(format!("{}emulator/time-zones", api.emulator.root_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(zones.iter().any(|z| z == "Europe/Kiev"));
    assert!(!zones.iter().any(|z| z == "Europe/Kyiv"));
    api.emulator
        .controls()
        .set(bookcal::emulator::SettingsUpdate {
            strict_time_zones: Some(false),
            ..Default::default()
        });
    api.insert_ok(&cal, event("Europe/Kyiv")).await;
}

#[tokio::test]
async fn with_etag_drift_reads_show_another_etag_than_the_write_answered() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    api.emulator
        .controls()
        .set(bookcal::emulator::SettingsUpdate {
            etag_drift: Some(true),
            ..Default::default()
        });
    let written = api
        .insert_ok(
            &cal,
            timed(
                Some("drift01"),
                "2030-01-01T10:00:00Z",
                "2030-01-01T11:00:00Z",
            ),
        )
        .await;
    let (_, read) = api.get(&format!("calendars/{cal}/events/drift01")).await;
    assert_ne!(written["etag"], read["etag"]);
    assert_eq!(written["updated"], read["updated"]);
    let (listed, _, _) = api.list_all(&cal, "").await;
    assert_eq!(listed[0]["etag"], read["etag"]);
    // If-Match compares with what reads show.
    let path = format!("calendars/{cal}/events/drift01");
    let body = timed(None, "2030-01-01T12:00:00Z", "2030-01-01T13:00:00Z");
    let stale = written["etag"].as_str().unwrap();
    let (status, _) = api
        .call_with(
            Method::PUT,
            &path,
            Some(body.clone()),
            Some(&api.token),
            Some(stale),
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let current = read["etag"].as_str().unwrap();
    let (status, _) = api
        .call_with(
            Method::PUT,
            &path,
            Some(body),
            Some(&api.token),
            Some(current),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_purged_tombstone_keeps_its_id_taken_but_cannot_be_revived() {
    let api = Api::start().await;
    let cal = api.new_calendar("UTC").await;
    let controls = api.emulator.controls();
    controls.set(bookcal::emulator::SettingsUpdate {
        purge_tombstones_after_secs: Some(600),
        ..Default::default()
    });
    let event = timed(
        Some("purge01"),
        "2030-01-01T10:00:00Z",
        "2030-01-01T11:00:00Z",
    );
    api.insert_ok(&cal, event.clone()).await;
    let (_, token, _) = api.list_all(&cal, "showDeleted=true").await;
    let path = format!("calendars/{cal}/events/purge01");
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    // Before the delay: an ordinary tombstone.
    assert_eq!(api.get(&path).await.1["status"], "cancelled");
    controls.advance_clock(Duration::from_secs(601));
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
    let mut revive = event.clone();
    revive["status"] = json!("confirmed");
    assert_eq!(
        api.call(Method::PUT, &path, Some(revive)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = api.insert(&cal, event).await;
    assert_eq!((status, reason(&body)), (StatusCode::CONFLICT, "duplicate"));
    let (listed, _, _) = api.list_all(&cal, "showDeleted=true").await;
    assert!(listed.is_empty(), "{listed:?}");
    // A sync token from before the purge cannot tell of the deletion any more.
    let (status, body) = api
        .get(&format!(
            "calendars/{cal}/events?syncToken={}&showDeleted=true",
            token.unwrap()
        ))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::GONE, "fullSyncRequired")
    );
}

#[tokio::test]
async fn a_fresh_calendar_answers_404_or_403_until_the_propagation_delay_passed() {
    let api = Api::start().await;
    let controls = api.emulator.controls();
    controls.set(bookcal::emulator::SettingsUpdate {
        fresh_calendar_delay_secs: Some(5),
        ..Default::default()
    });
    let cal = api.new_calendar("UTC").await;
    let events = format!("calendars/{cal}/events");
    let (status, body) = api.get(&events).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "notFound"));
    assert_eq!(api.get(&format!("calendars/{cal}")).await.0, StatusCode::OK);
    controls.set(bookcal::emulator::SettingsUpdate {
        fresh_calendar_status: Some(403),
        ..Default::default()
    });
    let (status, body) = api
        .post(
            &format!("calendars/{cal}/acl"),
            json!({"role": "reader", "scope": {"type": "default"}}),
        )
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::FORBIDDEN, "requiredAccessLevel")
    );
    controls.advance_clock(Duration::from_secs(5));
    assert_eq!(api.get(&events).await.0, StatusCode::OK);
}

#[tokio::test]
async fn creating_too_many_calendars_puts_the_account_in_read_only_mode_for_the_lockout() {
    let mut api = Api::start().await;
    let controls = api.emulator.controls();
    controls.set(bookcal::emulator::SettingsUpdate {
        calendar_creation_limit: Some(bookcal::emulator::CreationLimit {
            max: 3,
            window_secs: 3600,
            lockout_secs: 7200,
        }),
        ..Default::default()
    });
    let first = api.new_calendar("UTC").await;
    api.new_calendar("UTC").await;
    api.new_calendar("UTC").await;
    let (status, body) = api
        .post("calendars", json!({"summary": "Fourth", "timeZone": "UTC"}))
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::FORBIDDEN, "quotaExceeded")
    );
    assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
    assert_eq!(body["error"]["message"], "Calendar usage limits exceeded.");
    // Read-only: writes fail, reads work.
    let event = timed(
        Some("ro0001"),
        "2030-01-01T10:00:00Z",
        "2030-01-01T11:00:00Z",
    );
    let (status, body) = api.insert(&first, event.clone()).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::FORBIDDEN, "quotaExceeded")
    );
    assert_eq!(
        api.get(&format!("calendars/{first}/events")).await.0,
        StatusCode::OK
    );
    let lockouts = controls.lockouts();
    assert_eq!(lockouts.len(), 1);
    assert!(lockouts
        .values()
        .all(|left| *left > Duration::from_secs(7000)));
    controls.advance_clock(Duration::from_secs(7200));
    // Two hours later the access token has expired too.
    api.token = jwt_token(&api.http, &api.emulator, None).await;
    api.insert_ok(&first, event).await;
    api.new_calendar("UTC").await;
    assert!(controls.lockouts().is_empty());
}

#[tokio::test]
async fn the_token_endpoint_fails_with_internal_failure_or_invalid_grant_as_told() {
    use bookcal::emulator::{TokenFailNth, TokenFault};
    let api = Api::start().await;
    api.emulator
        .controls()
        .set(bookcal::emulator::SettingsUpdate {
            token_fail_nth: Some(vec![
                TokenFailNth {
                    nth: 1,
                    count: 2,
                    error: TokenFault::InternalFailure,
                    seen: 0,
                },
                TokenFailNth {
                    nth: 4,
                    count: 1,
                    error: TokenFault::InvalidGrant,
                    seen: 0,
                },
            ]),
            ..Default::default()
        });
    let key = key_of(&api.emulator);
    let pem = key["private_key"].as_str().unwrap().to_owned();
    let (emulator, http) = (&api.emulator, &api.http);
    let grant = || {
        let jwt = assertion(emulator, &pem, None);
        async move {
            token_request(
                http,
                emulator,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &jwt),
                ],
            )
            .await
        }
    };
    for _ in 0..2 {
        let (status, body) = grant().await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"error": "internal_failure"}));
    }
    assert_eq!(grant().await.0, StatusCode::OK);
    let (status, body) = grant().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(grant().await.0, StatusCode::OK);
}
