//! The production Google adapter against the local Calendar v3 emulator: every
//! `CalendarApi` call, paging, incremental sync, retries, the quota limiter and the
//! token lifecycle. Each test starts its own emulator on 127.0.0.1:0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bookcal::emulator::{Emulator, EmulatorOptions, FailNth};
use bookcal::google::{
    AclRole, CalendarApi, CallStats, ClientOptions, CredentialStatus, Credentials, Event,
    EventStatus, EventTime, GoogleCalendarClient, GoogleErrorKind, ListMode, RateLimit,
    RetryPolicy, Transparency,
};
use chrono::{Duration as Days, TimeZone, Utc};

/// Retries in milliseconds and no practical rate limit: tests are about behaviour.
fn fast_options(root_url: String) -> ClientOptions {
    ClientOptions {
        root_url,
        retry: RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(10),
        },
        rate_limit: RateLimit {
            per_minute: 10_000_000,
            burst: 100_000,
        },
        ..ClientOptions::default()
    }
}

async fn emulator() -> Emulator {
    Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts")
}

/// Refresh-token credentials registered with the emulator (our own token source).
fn user_credentials(emu: &Emulator, refresh_token: &str) -> Credentials {
    emu.controls()
        .register_refresh_token("cid", "csecret", refresh_token);
    Credentials::RefreshToken {
        client_id: "cid".into(),
        client_secret: "csecret".into(),
        refresh_token: refresh_token.into(),
        token_url: emu.token_uri(),
    }
}

/// The client most tests use: the production path, a service-account key through
/// yup-oauth2 whose `token_uri` is the emulator.
async fn test_client(emu: &Emulator) -> GoogleCalendarClient {
    GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
        .options(fast_options(emu.root_url()))
        .build()
        .await
        .expect("client builds")
}

fn counter(emu: &Emulator, key: &str) -> u64 {
    emu.controls().counters().get(key).copied().unwrap_or(0)
}

/// A valid base32hex event id.
fn event_id(n: usize) -> String {
    format!("bk{n:08}")
}

fn booking(n: usize) -> Event {
    let start = Utc
        .with_ymd_and_hms(2030, 3, 1, 9, 0, 0)
        .single()
        .expect("valid time")
        + Days::hours(i64::try_from(n).unwrap_or(0));
    Event {
        id: event_id(n),
        summary: Some(format!("Booking {n}")),
        start: Some(EventTime::DateTime {
            at: start.fixed_offset(),
            time_zone: Some("Europe/Tallinn".into()),
        }),
        end: Some(EventTime::DateTime {
            at: (start + Days::minutes(30)).fixed_offset(),
            time_zone: Some("Europe/Tallinn".into()),
        }),
        private_properties: BTreeMap::from([("bookcal".into(), n.to_string())]),
        ..Event::default()
    }
}

fn full() -> ListMode {
    ListMode::Full {
        show_deleted: false,
        time_min: None,
        single_events: false,
    }
}

#[tokio::test]
async fn every_calendar_and_acl_call_round_trips_through_the_emulator() {
    let emu = emulator().await;
    let client = test_client(&emu).await;

    let created = client
        .calendar_insert("Room 1", "Europe/Tallinn")
        .await
        .expect("insert");
    assert!(created.id.contains('@'), "{created:?}");
    assert_eq!(created.summary, "Room 1");
    assert_eq!(created.time_zone.as_deref(), Some("Europe/Tallinn"));

    let fetched = client.calendar_get(&created.id).await.expect("get");
    assert_eq!(fetched.id, created.id);

    let mut changed = fetched.clone();
    changed.summary = "Room 1 (renamed)".into();
    changed.description = Some("bookings of room 1".into());
    let updated = client.calendar_update(&changed).await.expect("update");
    assert_eq!(updated.summary, "Room 1 (renamed)");
    assert_eq!(
        client
            .calendar_get(&created.id)
            .await
            .expect("get")
            .description
            .as_deref(),
        Some("bookings of room 1")
    );

    let rule = client
        .acl_insert(&created.id, AclRole::FreeBusyReader)
        .await
        .expect("acl insert");
    assert_eq!(rule, "default");
    let acl = emu.inspect().acl(&created.id);
    assert!(
        acl.iter()
            .any(|r| r["role"] == "freeBusyReader" && r["scope"]["type"] == "default"),
        "{acl:?}"
    );
    client
        .acl_delete(&created.id, &rule)
        .await
        .expect("acl delete");
    assert!(!emu
        .inspect()
        .acl(&created.id)
        .iter()
        .any(|r| r["scope"]["type"] == "default"));

    client
        .calendar_delete(&created.id)
        .await
        .expect("calendar delete");
    let gone = client
        .calendar_get(&created.id)
        .await
        .expect_err("deleted calendar");
    assert_eq!(gone.kind(), GoogleErrorKind::NotFound);
    assert_eq!(gone.status(), Some(404));

    let snap = client.stats().snapshot();
    assert_eq!(snap.count("calendar.calendars.insert", "ok"), 1);
    assert_eq!(snap.count("calendar.calendars.get", "ok"), 2);
    assert_eq!(snap.count("calendar.calendars.get", "error:notFound"), 1);
    assert_eq!(snap.count("calendar.acl.insert", "ok"), 1);
    assert_eq!(client.credential_status(), CredentialStatus::Ok);
    emu.shutdown().await;
}

#[tokio::test]
async fn every_event_call_round_trips_through_the_emulator() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    let cal = client
        .calendar_insert("Room", "Europe/Tallinn")
        .await
        .expect("calendar");

    let mut ev = booking(1);
    ev.transparency = Transparency::Transparent;
    ev.status = EventStatus::Tentative;
    let inserted = client.event_insert(&cal.id, &ev).await.expect("insert");
    assert_eq!(inserted.id, ev.id);
    assert_eq!(inserted.status, EventStatus::Tentative);
    assert_eq!(inserted.transparency, Transparency::Transparent);
    assert_eq!(inserted.private_properties, ev.private_properties);
    assert!(inserted.etag.is_some());
    match (&inserted.start, &ev.start) {
        (Some(EventTime::DateTime { at: a, .. }), Some(EventTime::DateTime { at: b, .. })) => {
            assert_eq!(a, b)
        }
        other => panic!("{other:?}"),
    }

    let got = client.event_get(&cal.id, &ev.id).await.expect("get");
    assert_eq!(got.summary, ev.summary);

    let mut changed = got.clone();
    changed.summary = Some("Renamed".into());
    changed.status = EventStatus::Confirmed;
    let updated = client
        .event_update(&cal.id, &changed)
        .await
        .expect("update");
    assert_eq!(updated.summary.as_deref(), Some("Renamed"));
    assert_ne!(updated.etag, got.etag);

    let all_day = Event {
        id: event_id(2),
        summary: Some("All day".into()),
        start: Some(EventTime::Date(
            chrono::NaiveDate::from_ymd_opt(2030, 3, 5).expect("date"),
        )),
        end: Some(EventTime::Date(
            chrono::NaiveDate::from_ymd_opt(2030, 3, 6).expect("date"),
        )),
        ..Event::default()
    };
    client
        .event_insert(&cal.id, &all_day)
        .await
        .expect("all-day insert");

    let page = client.events_list(&cal.id, full()).await.expect("list");
    let ids: BTreeSet<_> = page.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([event_id(1), event_id(2)]));
    assert!(page.next_sync_token.is_some());
    let listed_all_day = page
        .events
        .iter()
        .find(|e| e.id == event_id(2))
        .expect("listed");
    assert_eq!(listed_all_day.start, all_day.start);

    client.event_delete(&cal.id, &ev.id).await.expect("delete");
    let tombstone = client
        .event_get(&cal.id, &ev.id)
        .await
        .expect("get deleted");
    assert_eq!(tombstone.status, EventStatus::Cancelled);
    let again = client
        .event_delete(&cal.id, &ev.id)
        .await
        .expect_err("double delete");
    assert_eq!(again.kind(), GoogleErrorKind::Gone);
    assert_eq!(again.status(), Some(410));
    let dup = client
        .event_insert(&cal.id, &ev)
        .await
        .expect_err("id of a deleted event");
    assert_eq!(dup.kind(), GoogleErrorKind::Duplicate);

    assert_eq!(counter(&emu, "calendar.events.insert:200"), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn ids_with_reserved_characters_are_percent_encoded_in_the_path() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    // Never a valid id, but it must reach the server as one path segment and come
    // back as a clean 404 rather than as a request for another URL.
    for weird in ["no#such?cal/x", "c_1@group.calendar.google.com"] {
        let e = client.calendar_get(weird).await.expect_err("unknown id");
        assert_eq!(e.kind(), GoogleErrorKind::NotFound, "{weird}: {e}");
    }
    assert_eq!(counter(&emu, "calendar.calendars.get:404"), 2);
    emu.shutdown().await;
}

async fn insert_many(client: &Arc<GoogleCalendarClient>, cal: &str, range: std::ops::Range<usize>) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in range.collect::<Vec<_>>().chunks(50) {
        let chunk = chunk.to_vec();
        let client = Arc::clone(client);
        let cal = cal.to_owned();
        tasks.spawn(async move {
            for n in chunk {
                client
                    .event_insert(&cal, &booking(n))
                    .await
                    .expect("insert");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("insert task");
    }
}

#[tokio::test]
async fn listing_follows_every_page_of_a_600_event_calendar() {
    let emu = emulator().await;
    let client = Arc::new(test_client(&emu).await);
    let cal = client
        .calendar_insert("Busy", "UTC")
        .await
        .expect("calendar");
    insert_many(&client, &cal.id, 0..600).await;

    emu.controls().reset_counters();
    let page = client.events_list(&cal.id, full()).await.expect("list");
    assert_eq!(page.events.len(), 600);
    assert_eq!(
        page.pages, 3,
        "250 + 250 + 100 with Google's default page size"
    );
    assert!(page.next_sync_token.is_some());
    let ids: BTreeSet<_> = page.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 600);
    assert_eq!(counter(&emu, "calendar.events.list"), 3);
    assert_eq!(
        client
            .stats()
            .snapshot()
            .count("calendar.events.list", "ok"),
        3
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn incremental_sync_delivers_changes_and_deletions_then_an_expired_token_is_reported() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    let cal = client
        .calendar_insert("Room", "UTC")
        .await
        .expect("calendar");
    for n in 0..3 {
        client
            .event_insert(&cal.id, &booking(n))
            .await
            .expect("insert");
    }
    let first = client.events_list(&cal.id, full()).await.expect("full");
    assert_eq!(first.events.len(), 3);
    let token = first.next_sync_token.expect("sync token");

    client
        .event_delete(&cal.id, &event_id(0))
        .await
        .expect("delete");
    let mut changed = booking(1);
    changed.summary = Some("moved".into());
    client
        .event_update(&cal.id, &changed)
        .await
        .expect("update");
    client
        .event_insert(&cal.id, &booking(7))
        .await
        .expect("insert");

    let delta = client
        .events_list(&cal.id, full().continued(token.clone()))
        .await
        .expect("incremental");
    let by_id: BTreeMap<_, _> = delta
        .events
        .iter()
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    assert_eq!(
        by_id.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([event_id(0), event_id(1), event_id(7)])
    );
    assert_eq!(by_id[&event_id(0)].status, EventStatus::Cancelled);
    assert_eq!(by_id[&event_id(1)].summary.as_deref(), Some("moved"));
    let next = delta.next_sync_token.expect("next token");
    assert_ne!(next, token);

    let quiet = client
        .events_list(&cal.id, full().continued(next.clone()))
        .await
        .expect("nothing changed");
    assert!(quiet.events.is_empty(), "{:?}", quiet.events);

    emu.controls().expire_sync_tokens();
    let expired = client
        .events_list(&cal.id, full().continued(next))
        .await
        .expect_err("expired token");
    assert_eq!(expired.kind(), GoogleErrorKind::SyncTokenExpired);
    assert_eq!(expired.status(), Some(410));
    assert!(!expired.is_retryable());
    assert_eq!(
        counter(&emu, "calendar.events.list:410"),
        1,
        "never retried"
    );

    // The documented recovery: a full listing works and hands out a new token.
    let refetched = client
        .events_list(&cal.id, full())
        .await
        .expect("full again");
    assert_eq!(refetched.events.len(), 3);
    assert!(refetched.next_sync_token.is_some());
    emu.shutdown().await;
}

#[tokio::test]
async fn injected_rate_limits_and_server_errors_are_retried_until_success() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    let cal = client
        .calendar_insert("Room", "UTC")
        .await
        .expect("calendar");
    client
        .event_insert(&cal.id, &booking(1))
        .await
        .expect("insert");

    for status in [500u16, 503, 403, 429] {
        emu.controls().clear_faults();
        emu.controls().reset_counters();
        // Two failures in a row, then the real answer.
        emu.controls()
            .fail_nth_call("calendar.events.get", 1, status);
        emu.controls()
            .fail_nth_call("calendar.events.get", 2, status);
        let got = client
            .event_get(&cal.id, &event_id(1))
            .await
            .unwrap_or_else(|e| panic!("status {status} not retried: {e}"));
        assert_eq!(got.id, event_id(1));
        assert_eq!(
            counter(&emu, &format!("calendar.events.get:{status}")),
            2,
            "{status}"
        );
        assert_eq!(counter(&emu, "calendar.events.get:200"), 1, "{status}");
    }
    let snap = client.stats().snapshot();
    assert_eq!(snap.count("calendar.events.get", "retried"), 4);
    assert_eq!(snap.retries, 8);

    // Random faults on a quarter of all calls: a whole listing still completes.
    emu.controls().clear_faults();
    emu.controls()
        .set_fault_rate(0.25, &bookcal::emulator::InjectedFault::ALL, 42);
    for n in 2..12 {
        client
            .event_insert(&cal.id, &booking(n))
            .await
            .expect("insert under faults");
    }
    let page = client
        .events_list(&cal.id, full())
        .await
        .expect("list under faults");
    assert_eq!(page.events.len(), 11);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_retried_insert_whose_first_attempt_landed_returns_the_stored_event() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    let cal = client
        .calendar_insert("Room", "UTC")
        .await
        .expect("calendar");
    emu.controls().add_fail_nth(FailNth {
        method: "calendar.events.insert".into(),
        nth: 1,
        status: 503,
        after_effect: true,
        seen: 0,
    });
    let ev = client
        .event_insert(&cal.id, &booking(3))
        .await
        .expect("recovered from the lost response");
    assert_eq!(ev.id, event_id(3));
    assert_eq!(counter(&emu, "calendar.events.insert:503"), 1);
    assert_eq!(counter(&emu, "calendar.events.insert:409"), 1);
    assert_eq!(emu.inspect().events(&cal.id).len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let emu = emulator().await;
    let client = test_client(&emu).await;
    // Created by another client: 404/403 on a calendar this one just created would
    // be retried while Google settles it (tested below).
    let cal = test_client(&emu)
        .await
        .calendar_insert("Room", "UTC")
        .await
        .expect("calendar");
    emu.controls().reset_counters();

    // 404 from the handler.
    let missing = client
        .event_get(&cal.id, "nosuchevent0")
        .await
        .expect_err("missing");
    assert_eq!(missing.kind(), GoogleErrorKind::NotFound);
    assert_eq!(counter(&emu, "calendar.events.get"), 1);

    // 400 from the handler: upper case is not base32hex.
    let mut bad = booking(1);
    bad.id = "NotBase32Hex".into();
    let invalid = client
        .event_insert(&cal.id, &bad)
        .await
        .expect_err("invalid id");
    assert_eq!(invalid.kind(), GoogleErrorKind::BadRequest);
    assert_eq!(invalid.status(), Some(400));
    assert_eq!(counter(&emu, "calendar.events.insert"), 1);

    // Injected 400 and 404.
    for status in [400u16, 404] {
        emu.controls().reset_counters();
        emu.controls()
            .fail_nth_call("calendar.calendars.get", 1, status);
        let e = client
            .calendar_get(&cal.id)
            .await
            .expect_err("injected client error");
        assert_eq!(e.status(), Some(status));
        assert_eq!(counter(&emu, "calendar.calendars.get"), 1, "{status}");
    }

    // Calendar creation is not repeated after an ambiguous 500.
    emu.controls().reset_counters();
    emu.controls()
        .fail_nth_call("calendar.calendars.insert", 1, 500);
    let e = client
        .calendar_insert("Twice?", "UTC")
        .await
        .expect_err("not retried");
    assert_eq!(e.kind(), GoogleErrorKind::Server);
    assert_eq!(counter(&emu, "calendar.calendars.insert"), 1);

    let snap = client.stats().snapshot();
    assert_eq!(snap.retries, 0);
    assert_eq!(snap.count("calendar.events.get", "error:notFound"), 1);
    assert_eq!(snap.count("calendar.events.insert", "error:invalid"), 1);
    emu.shutdown().await;
}

/// Runs `calls` concurrent `calendars.get` under `limit` against an emulator with
/// `quota` per sliding minute; returns (rate-limit errors, rate-limit waits).
///
/// Runs under paused tokio time: the emulator's sliding window and our bucket both
/// use tokio's clock, so two virtual minutes pass in a fraction of a real second. No
/// request timeout is set, so the only timers are the bucket's.
async fn quota_run(quota: u32, limit: RateLimit, calls: usize) -> (u64, u64) {
    let emu = Emulator::start(EmulatorOptions {
        quota_per_minute: Some(quota),
        ..EmulatorOptions::default()
    })
    .await
    .expect("emulator");
    let setup = test_client(&emu).await;
    let cal = setup
        .calendar_insert("Quota", "UTC")
        .await
        .expect("calendar");
    emu.controls().set_quota_per_minute(Some(quota));
    emu.controls().reset_counters();

    let stats = Arc::new(CallStats::new());
    let client = Arc::new(
        GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
            .options(ClientOptions {
                root_url: emu.root_url(),
                retry: RetryPolicy::none(),
                rate_limit: limit,
                request_timeout: None,
                ..ClientOptions::default()
            })
            .stats(Arc::clone(&stats))
            .build()
            .await
            .expect("client"),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..calls {
        let client = Arc::clone(&client);
        let id = cal.id.clone();
        tasks.spawn(async move { client.calendar_get(&id).await.map(|_| ()) });
    }
    let mut rate_limited = 0;
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            Ok(()) => {}
            Err(e) if e.kind() == GoogleErrorKind::RateLimited => rate_limited += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(
        rate_limited,
        counter(&emu, "calendar.calendars.get:403"),
        "every 403 seen by the emulator reached the caller"
    );
    emu.shutdown().await;
    (rate_limited, stats.snapshot().rate_limit_waits)
}

#[tokio::test(start_paused = true)]
async fn the_bucket_keeps_a_burst_of_1000_calls_under_the_emulator_quota() {
    // Any 60 s window admits at most burst + per_minute = 50 + 500 < 600.
    let (rate_limited, waits) = quota_run(
        600,
        RateLimit {
            per_minute: 500,
            burst: 50,
        },
        1_000,
    )
    .await;
    assert_eq!(rate_limited, 0);
    assert!(waits >= 900, "most calls waited for the bucket: {waits}");
}

#[tokio::test(start_paused = true)]
async fn without_a_tight_bucket_the_same_burst_does_hit_the_quota() {
    // The control for the test above: a bucket over the quota lets 403s through.
    let (rate_limited, _) = quota_run(
        600,
        RateLimit {
            per_minute: 1_200,
            burst: 50,
        },
        1_000,
    )
    .await;
    assert!(rate_limited > 100, "{rate_limited}");
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_expiry_but_not_per_request() {
    let emu = emulator().await;
    emu.controls()
        .register_refresh_token("cid", "csecret", "1//refresh-a");
    // expires_in 1 s: the client refreshes half-way, at 0.5 s.
    emu.controls().set_access_token_ttl(Duration::from_secs(1));
    let client = GoogleCalendarClient::builder(Credentials::RefreshToken {
        client_id: "cid".into(),
        client_secret: "csecret".into(),
        refresh_token: "1//refresh-a".into(),
        token_url: emu.token_uri(),
    })
    .options(fast_options(emu.root_url()))
    .build()
    .await
    .expect("client");
    let cal = client
        .calendar_insert("Mine", "UTC")
        .await
        .expect("calendar");

    // Work continuously for a bit over two token lifetimes.
    let started = std::time::Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < Duration::from_millis(2_200) {
        client
            .calendar_get(&cal.id)
            .await
            .expect("get with a fresh token");
        calls += 1;
    }
    let fetches = client.token_fetches();
    assert_eq!(fetches, counter(&emu, "oauth2.token"));
    assert!(fetches >= 3, "refreshed as tokens aged: {fetches}");
    assert!(fetches <= 8, "about one per half-second: {fetches}");
    assert!(
        calls >= 10 * fetches,
        "{calls} calls, {fetches} token fetches"
    );
    assert_eq!(
        counter(&emu, "status:401"),
        0,
        "never used an expired token"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_is_invalid_credentials_and_visible_in_the_status() {
    let emu = emulator().await;
    emu.controls()
        .register_refresh_token("cid", "csecret", "1//refresh-b");
    let credentials = Credentials::RefreshToken {
        client_id: "cid".into(),
        client_secret: "csecret".into(),
        refresh_token: "1//refresh-b".into(),
        token_url: emu.token_uri(),
    };
    let client = GoogleCalendarClient::builder(credentials.clone())
        .options(fast_options(emu.root_url()))
        .build()
        .await
        .expect("client");
    assert_eq!(client.credential_status(), CredentialStatus::Unknown);
    let cal = client
        .calendar_insert("Mine", "UTC")
        .await
        .expect("calendar");
    assert_eq!(client.credential_status(), CredentialStatus::Ok);

    assert!(emu.controls().revoke_refresh_token("1//refresh-b"));
    // A client without a cached access token has to use the refresh token now.
    let fresh = GoogleCalendarClient::builder(credentials)
        .options(fast_options(emu.root_url()))
        .build()
        .await
        .expect("client");
    let before = counter(&emu, "oauth2.token");
    let e = fresh
        .calendar_get(&cal.id)
        .await
        .expect_err("revoked credential");
    assert_eq!(e.kind(), GoogleErrorKind::InvalidCredentials);
    assert_eq!(e.reason(), Some("invalid_grant"));
    assert!(!e.is_retryable());
    assert_eq!(counter(&emu, "oauth2.token"), before + 1, "not retried");
    assert_eq!(
        counter(&emu, "calendar.calendars.get"),
        0,
        "no API call without a token"
    );
    match fresh.credential_status() {
        CredentialStatus::Invalid { reason, since } => {
            assert!(reason.contains("invalid_grant"), "{reason}");
            assert!(since <= Utc::now());
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let api: Arc<dyn CalendarApi> = Arc::new(fresh);
    assert!(matches!(
        api.credential_status(),
        CredentialStatus::Invalid { .. }
    ));

    // Re-granted: the next success clears the state.
    emu.controls()
        .register_refresh_token("cid", "csecret", "1//refresh-b");
    api.calendar_get(&cal.id).await.expect("works again");
    assert_eq!(api.credential_status(), CredentialStatus::Ok);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_factory_shares_one_token_per_credential_across_providers() {
    let emu = emulator().await;
    let stats = Arc::new(CallStats::new());
    let factory =
        bookcal::google::ClientFactory::new(fast_options(emu.root_url()), Arc::clone(&stats))
            .expect("factory");
    let creds = user_credentials(&emu, "1//shared-user");
    let a = factory.client("provider-a", &creds).await.expect("a");
    let b = factory.client("provider-b", &creds).await.expect("b");
    let cal = a.calendar_insert("A", "UTC").await.expect("calendar");
    b.calendar_get(&cal.id).await.expect("b sees it");
    a.calendar_get(&cal.id).await.expect("a sees it");
    assert_eq!(counter(&emu, "oauth2.token"), 1);
    let snap = stats.snapshot();
    assert_eq!(snap.token_fetches, 1);
    assert_eq!(snap.count("calendar.calendars.get", "ok"), 2);
    assert_eq!(
        factory.credential_status("provider-b"),
        Some(CredentialStatus::Ok)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_service_account_key_from_the_emulator_authenticates_once_for_many_calls() {
    let emu = emulator().await;
    let client =
        GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
            .options(fast_options(emu.root_url()))
            .build()
            .await
            .expect("client builds");
    let cal = client
        .calendar_insert("Service account", "UTC")
        .await
        .expect("service account token");
    for _ in 0..5 {
        client.calendar_get(&cal.id).await.expect("cached token");
    }
    assert_eq!(client.token_fetches(), 1);
    assert_eq!(counter(&emu, "oauth2.token"), 1);
    assert_eq!(client.credential_status(), CredentialStatus::Ok);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_token_endpoints_internal_failure_is_retried_on_both_credential_paths() {
    use bookcal::emulator::{SettingsUpdate, TokenFailNth, TokenFault};
    let emu = emulator().await;
    let fail_twice = |error| SettingsUpdate {
        token_fail_nth: Some(vec![TokenFailNth {
            nth: 1,
            count: 2,
            error,
            seen: 0,
        }]),
        ..SettingsUpdate::default()
    };
    let service_account = Credentials::service_account(emu.service_account_key_json());
    let refresh_token = user_credentials(&emu, "1//refresh-500");
    for (path, credentials) in [
        ("service account (yup-oauth2)", service_account),
        ("refresh token", refresh_token),
    ] {
        emu.controls().reset_counters();
        emu.controls().set(fail_twice(TokenFault::InternalFailure));
        let client = GoogleCalendarClient::builder(credentials.clone())
            .options(fast_options(emu.root_url()))
            .build()
            .await
            .expect("client");
        // Even the one call that is never repeated on ambiguous failures: the token
        // failed, so the calendar was certainly not created yet.
        let cal = client
            .calendar_insert("Retried", "UTC")
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(counter(&emu, "oauth2.token:500"), 2, "{path}");
        assert_eq!(counter(&emu, "calendar.calendars.insert"), 1, "{path}");
        assert_eq!(client.credential_status(), CredentialStatus::Ok, "{path}");

        // invalid_grant is final: one token request, no API call, status invalid.
        emu.controls().reset_counters();
        emu.controls().set(fail_twice(TokenFault::InvalidGrant));
        let fresh = GoogleCalendarClient::builder(credentials)
            .options(fast_options(emu.root_url()))
            .build()
            .await
            .expect("client");
        let e = fresh.calendar_get(&cal.id).await.expect_err(path);
        assert_eq!(e.kind(), GoogleErrorKind::InvalidCredentials, "{path}");
        assert_eq!(counter(&emu, "oauth2.token"), 1, "{path}");
        assert_eq!(counter(&emu, "calendar.calendars.get"), 0, "{path}");
        assert_eq!(fresh.credential_status().label(), "invalid", "{path}");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn while_google_refuses_for_usage_limits_writes_are_held_back_without_a_request() {
    use bookcal::emulator::{CreationLimit, SettingsUpdate};
    let emu = emulator().await;
    emu.controls().set(SettingsUpdate {
        calendar_creation_limit: Some(CreationLimit {
            max: 1,
            window_secs: 3600,
            lockout_secs: 3600,
        }),
        ..SettingsUpdate::default()
    });
    let client = test_client(&emu).await;
    let cal = client.calendar_insert("One", "UTC").await.expect("first");
    let e = client
        .calendar_insert("Two", "UTC")
        .await
        .expect_err("Google's limit");
    assert_eq!(e.kind(), GoogleErrorKind::UsageLimited);
    assert!(e.retry_after().is_some());
    assert_eq!(client.credential_status().label(), "failing");
    emu.controls().reset_counters();
    let e = client
        .event_insert(&cal.id, &booking(1))
        .await
        .expect_err("held back");
    assert_eq!(e.kind(), GoogleErrorKind::Deferred);
    assert!(e
        .retry_after()
        .is_some_and(|d| d > Duration::from_secs(3000)));
    assert_eq!(counter(&emu, "calendar.events.insert"), 0, "not sent");
    // Reads go on.
    client
        .events_list(&cal.id, full())
        .await
        .expect("reads are not paused");
    assert_eq!(
        client
            .stats()
            .snapshot()
            .count("calendar.events.insert", "deferred"),
        1
    );
    emu.shutdown().await;
}
