//! No secret in any log at any level: the real binary at `RUST_LOG=trace` syncs an
//! offering against the emulator with the service account (a signed JWT assertion
//! traded for an access token), shares it, serves secret feeds, then syncs again
//! with a per-provider refresh token (client secret, refresh token, access token);
//! its whole output must not contain any of those secrets, the API tokens or the
//! token salt.

use std::time::Duration;

use serde_json::{json, Value};

use crate::operations::{get_json, prepare, serve};

/// Polls the offering until `cond` holds for its `googlecalendar` object.
async fn until_calendar(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..3000 {
        let (status, v) = get_json(http, url, token).await;
        if status == 200 && cond(&v["googlecalendar"]) {
            return v["googlecalendar"].clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened");
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .header("Authorization", format!("Token {token}"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_whole_sync_at_trace_level_logs_no_key_token_assertion_or_feed_secret() {
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let key_json = emu.service_account_key_json();
    let key_path = dir.path().join("key.json");
    std::fs::write(&key_path, &key_json).expect("key");
    let providers = dir.path().join("providers");
    std::fs::create_dir(&providers).expect("providers dir");
    let salt = "trace-test-salt-5d1f0c2a";
    // The engine the suite runs on: sled in the data directory, or a database whose
    // URL (a secret setting: it may hold a password) must not be logged either.
    let store_url = crate::helpers::engines::default_store_url().await;
    let mut env = vec![("BOOKCAL_TOKEN_SALT", salt)];
    env.extend(store_url.iter().map(|u| ("BOOKCAL_STORE_URL", u.as_str())));
    let tokens = prepare(&data, &env, &["owner", "alice"]);
    let (owner, alice) = (&tokens["owner"], &tokens["alice"]);

    let key_path = key_path.to_str().expect("utf-8").to_owned();
    let providers_path = providers.to_str().expect("utf-8").to_owned();
    let root = emu.root_url();
    env.extend([
        ("RUST_LOG", "trace"),
        ("BOOKCAL_LOG_FORMAT", "text"),
        ("BOOKCAL_GOOGLE_ROOT_URL", root.as_str()),
        ("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", key_path.as_str()),
        (
            "BOOKCAL_GOOGLE_PROVIDER_CREDENTIALS_DIR",
            providers_path.as_str(),
        ),
        ("BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE", "60000"),
    ]);
    let mut served = serve(&data, &env);
    let http = reqwest::Client::new();
    served.wait_ready(&http).await;
    let base = served.base.clone();

    let (_, offerings) = get_json(&http, &format!("{base}/api/booking-offerings/"), owner).await;
    let room = offerings
        .as_array()
        .and_then(|a| a.iter().find(|o| o["slug"] == "room-aurora"))
        .expect("room")
        .clone();
    let room_uuid = room["uuid"].as_str().expect("uuid").to_owned();
    let provider = room["customer_uuid"].as_str().expect("provider").to_owned();
    let room_url = format!("{base}/api/booking-offerings/{room_uuid}/");

    // 1. Sync and share with the service account: a JWT assertion, an access token.
    post(
        &http,
        format!("{room_url}google_calendar_sync/"),
        owner,
        json!({}),
    )
    .await;
    let first = until_calendar(&http, &room_url, owner, "the first sync", |g| {
        g["last_success"].is_string()
    })
    .await;
    post(
        &http,
        format!("{room_url}share_google_calendar/"),
        owner,
        json!({}),
    )
    .await;
    until_calendar(&http, &room_url, owner, "sharing", |g| g["public"] == true).await;

    // 2. Secret feeds: the offering owner's and alice's own.
    let mut feed_secrets = Vec::new();
    for (url, token) in [
        (format!("{room_url}feed_tokens/"), owner),
        (format!("{base}/api/feed-tokens/"), alice),
    ] {
        let created = post(&http, url, token, json!({"name": "phone"})).await;
        let feed_url = created["url"].as_str().expect("feed url").to_owned();
        let r = http.get(&feed_url).send().await.expect("feed");
        assert_eq!(r.status(), 200);
        let secret = feed_url
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".ics"))
            .expect("secret")
            .to_owned();
        feed_secrets.push(secret);
    }
    let r = http
        .get(format!("{base}/feeds/offerings/{room_uuid}.ics"))
        .send()
        .await
        .expect("public feed");
    assert_eq!(r.status(), 200);

    // 3. The provider's own refresh token (read on use: no restart).
    let (client_id, client_secret, refresh_token) = (
        "provider-client.apps.example",
        "client-secret-0f4e7b9d2c",
        "1//refresh-token-8a3c6e1f5b",
    );
    emu.controls()
        .register_refresh_token(client_id, client_secret, refresh_token);
    std::fs::write(
        providers.join(format!("{provider}.json")),
        json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "token_url": emu.token_uri(),
        })
        .to_string(),
    )
    .expect("provider file");
    post(
        &http,
        format!("{room_url}google_calendar_sync/"),
        owner,
        json!({}),
    )
    .await;
    until_calendar(&http, &room_url, owner, "the second sync", |g| {
        g["last_success"].is_string() && g["last_success"] != first["last_success"]
    })
    .await;

    let status = served.terminate(Duration::from_secs(30)).await;
    let log = served.log();
    if let Ok(path) = std::env::var("BOOKCAL_DUMP_TRACE") {
        let _ = std::fs::write(path, &log);
    }
    assert!(status.success(), "exit {status}");
    let grants = emu
        .controls()
        .counters()
        .get("oauth2.token")
        .copied()
        .unwrap_or(0);
    emu.shutdown().await;

    // It really ran at trace level, through both token grants.
    assert!(log.contains(" TRACE "), "not at trace level");
    assert!(
        grants >= 2,
        "{grants} token grants: one of each kind expected"
    );

    let key: Value = serde_json::from_str(&key_json).expect("key json");
    let pem = key["private_key"].as_str().expect("private key");
    let mut secrets: Vec<(String, String)> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(|l| ("a line of the private key".to_owned(), l.to_owned()))
        .collect();
    secrets.extend([
        ("the token salt".to_owned(), salt.to_owned()),
        ("the owner's API token".to_owned(), owner.clone()),
        ("alice's API token".to_owned(), alice.clone()),
        ("the client secret".to_owned(), client_secret.to_owned()),
        ("the refresh token".to_owned(), refresh_token.to_owned()),
        // Every access token the emulator issues starts so (Google's start `ya29.`).
        ("an access token".to_owned(), "ya29.".to_owned()),
        // A JWT (the signed assertion) starts with base64url of `{"`.
        ("a JWT".to_owned(), "eyJ".to_owned()),
    ]);
    for s in &feed_secrets {
        secrets.push(("a feed token".to_owned(), s.clone()));
    }
    if let Some(url) = &store_url {
        secrets.push(("the store URL".to_owned(), url.clone()));
    }
    let leaks: Vec<String> = secrets
        .iter()
        .filter_map(|(what, secret)| {
            log.lines()
                .find(|l| l.contains(secret.as_str()))
                .map(|line| {
                    // The line up to the secret: time, level, target and context.
                    let at = line.find(secret.as_str()).unwrap_or(0);
                    let shown: String = line[..at].chars().take(200).collect();
                    format!("{what} in: {shown}...")
                })
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the trace output ({} lines):\n{}",
        log.lines().count(),
        leaks.join("\n")
    );
}
