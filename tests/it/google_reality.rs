//! Google as it really is, against the emulator with its realism switches on:
//! recurrence as Google writes it, calendar creation limits, fresh calendars, token
//! endpoint failures, dying credentials, drifting etags, purged tombstones and time
//! zone names Google refuses.

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::helpers::{spawn_app, sync_env};
use bookcal::google::{Event, EventTime};

/// The Monday at least a week from now.
fn next_monday() -> NaiveDate {
    let mut d = (Utc::now() + Duration::days(7)).date_naive();
    while d.weekday() != chrono::Weekday::Mon {
        d += Duration::days(1);
    }
    d
}

#[tokio::test]
async fn a_weekly_series_ending_on_a_plain_date_blocks_all_its_weeks_and_refuses_an_order_in_the_seventh(
) {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    // "Lab closed on Monday mornings" as Google writes it: 13 weeks, UNTIL a date.
    let berlin = chrono_tz::Europe::Berlin;
    let first = next_monday();
    let last = first + Duration::weeks(12);
    let local = |d: NaiveDate, h: u32| {
        berlin
            .from_local_datetime(&d.and_hms_opt(h, 0, 0).expect("time"))
            .earliest()
            .expect("local time")
    };
    let series = Event {
        id: "labclosed1".into(),
        summary: Some("Lab closed".into()),
        start: Some(EventTime::DateTime {
            at: local(first, 8).fixed_offset(),
            time_zone: Some("Europe/Berlin".into()),
        }),
        end: Some(EventTime::DateTime {
            at: local(first, 12).fixed_offset(),
            time_zone: Some("Europe/Berlin".into()),
        }),
        recurrence: vec![format!("RRULE:FREQ=WEEKLY;UNTIL={}", last.format("%Y%m%d"))],
        ..Event::default()
    };
    env.human
        .event_insert(&cal, &series)
        .await
        .expect("Google takes a date UNTIL");
    let report = env.sync(room).await;
    assert!(
        report.summary.warnings.is_empty(),
        "{:?}",
        report.summary.warnings
    );
    let busy: Vec<_> = app
        .store
        .busy_slots(room)
        .await
        .expect("busy")
        .into_iter()
        .filter(|b| b.source_event_id == "labclosed1")
        .collect();
    let expected: Vec<_> = (0..13)
        .map(|w| {
            let d = first + Duration::weeks(w);
            (
                local(d, 8).with_timezone(&Utc),
                local(d, 12).with_timezone(&Utc),
            )
        })
        .collect();
    let got: Vec<_> = busy.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(got, expected, "all 13 Monday mornings, 08:00-12:00 Berlin");

    // An order in the 7th week's closed morning is refused, one after it accepted.
    let seventh = first + Duration::weeks(6);
    let body = app.order_body(
        "room-aurora",
        &[(
            local(seventh, 9).with_timezone(&Utc),
            local(seventh, 10).with_timezone(&Utc),
        )],
    );
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("is not available."), "{}", r.text);
    let body = app.order_body(
        "room-aurora",
        &[(
            local(seventh, 13).with_timezone(&Utc),
            local(seventh, 14).with_timezone(&Utc),
        )],
    );
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

// ------------------------------------------------------------------ shared set-up

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::helpers::calendar_requests;
use bookcal::domain::calendar::CalendarState;
use bookcal::domain::Id;
use bookcal::emulator::{CreationLimit, Emulator, EmulatorOptions, SettingsUpdate};
use bookcal::google::{
    google_time_zone, CalendarApi, ClientOptions, Credentials, GoogleCalendarClient, RateLimit,
    RetryPolicy, UsageLimits,
};
use bookcal::store::{Change, Store};
use bookcal::sync::{RunOptions, RunReport, SingleClient, SyncEngine, SyncError};

/// A store with the demo data and a sync engine whose service-account client talks
/// to `emu` with Google-like retries (from 1 s) and no request timeout, so tests can
/// run under paused tokio time (the emulator's clock is tokio's too).
struct Engine {
    emu: Emulator,
    store: Arc<Store>,
    engine: SyncEngine,
}

async fn engine_with(emu: Emulator, limits: UsageLimits) -> Engine {
    let store = Arc::new(Store::temporary().expect("store"));
    let ds: bookcal::import::DataSet =
        serde_json::from_str(bookcal::demo::DEMO_DATA).expect("demo data");
    bookcal::import::import(&store, &ds, Utc::now())
        .await
        .expect("import");
    let options = ClientOptions {
        root_url: emu.root_url(),
        retry: RetryPolicy {
            max_attempts: 6,
            base: StdDuration::from_secs(1),
            cap: StdDuration::from_secs(8),
        },
        rate_limit: RateLimit {
            per_minute: 600_000,
            burst: 1_000,
        },
        request_timeout: None,
        page_size: Some(2500),
        limits,
        ..ClientOptions::default()
    };
    let client: Arc<dyn CalendarApi> = Arc::new(
        GoogleCalendarClient::builder(Credentials::service_account(emu.service_account_key_json()))
            .options(options)
            .build()
            .await
            .expect("client"),
    );
    let engine = SyncEngine {
        store: store.clone(),
        source: Arc::new(SingleClient(Some(client))),
        settings: bookcal::config::SyncSettings::default(),
        share_role: bookcal::google::AclRole::Reader,
    };
    Engine { emu, store, engine }
}

/// An engine (default usage limits) on a new emulator set up with `settings`.
async fn engine_on(settings: SettingsUpdate) -> Engine {
    let emu = emulator().await;
    emu.controls().set(settings);
    engine_with(emu, UsageLimits::default()).await
}

async fn emulator() -> Emulator {
    Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator")
}

impl Engine {
    fn offering(&self, slug: &str) -> Id {
        self.store
            .sled()
            .expect("sled")
            .read()
            .expect("read")
            .offerings
            .values()
            .find(|o| o.slug == slug)
            .expect("offering")
            .id
    }

    /// `n` copies of room-aurora (no bookings).
    fn add_offerings(&self, n: usize) -> Vec<Id> {
        let template = self
            .store
            .sled()
            .expect("sled")
            .read()
            .expect("read")
            .offerings[&self.offering("room-aurora")]
            .clone();
        let offerings: Vec<_> = (0..n)
            .map(|i| bookcal::domain::Offering {
                id: Id::new_v4(),
                name: format!("Room {i:03}"),
                slug: format!("room-{i:03}"),
                ..template.clone()
            })
            .collect();
        let ids = offerings.iter().map(|o| o.id).collect();
        let changes = offerings.into_iter().map(Change::Offering).collect();
        self.store
            .sled()
            .expect("sled")
            .mutate(|_| Ok::<_, ()>((changes, ())))
            .expect("store");
        ids
    }

    fn counter(&self, key: &str) -> u64 {
        self.emu
            .controls()
            .counters()
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Calendar API requests so far (token requests and control calls excluded).
    fn requests(&self) -> u64 {
        calendar_requests(&self.emu)
    }

    /// One run of the engine for `offering`.
    async fn run(&self, offering: Id) -> Result<RunReport, SyncError> {
        self.engine
            .sync_offering(offering, RunOptions::default())
            .await
    }

    /// Syncs `targets` as `bookcal sync` does: (synced, waiting with their waits).
    async fn sync_all(&self, targets: &[Id]) -> (Vec<Id>, Vec<(Id, StdDuration)>) {
        let (mut done, mut waiting) = (Vec::new(), Vec::new());
        self.engine
            .sync_many(targets, RunOptions::default(), |id, r| match r {
                Ok(_) => done.push(id),
                Err(SyncError::Deferred { retry_after, .. }) => waiting.push((id, *retry_after)),
                Err(e) => panic!("{id}: {e}"),
            })
            .await;
        (done, waiting)
    }
}

fn limits(per_hour: u32, pause_secs: u64) -> UsageLimits {
    UsageLimits {
        calendars_per_hour: per_hour,
        pause: StdDuration::from_secs(pause_secs),
        ..UsageLimits::default()
    }
}

fn creation_limit(max: u32) -> SettingsUpdate {
    SettingsUpdate {
        calendar_creation_limit: Some(CreationLimit {
            max,
            window_secs: 3600,
            lockout_secs: 7200,
        }),
        ..SettingsUpdate::default()
    }
}

// ------------------------------------------------------------------ creation limits

#[tokio::test(start_paused = true)]
async fn sync_all_over_100_offerings_creates_25_calendars_an_hour_and_the_rest_wait_without_a_request(
) {
    let emu = emulator().await;
    emu.controls().set(creation_limit(25));
    let env = engine_with(emu, limits(25, 7200)).await;
    let targets = env.add_offerings(100);

    let (done, waiting) = env.sync_all(&targets).await;
    assert_eq!((done.len(), waiting.len()), (25, 75));
    assert!(waiting
        .iter()
        .all(|(_, after)| *after <= StdDuration::from_secs(3600)
            && *after > StdDuration::from_secs(3500)));
    assert_eq!(env.counter("calendar.calendars.insert"), 25);
    assert_eq!(
        env.counter("status:403"),
        0,
        "the budget kept under Google's limit"
    );
    let waiting_record = env
        .store
        .calendar(waiting[0].0)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(waiting_record.state, CalendarState::CreationScheduled);
    let why = waiting_record.waiting.expect("says it waits");
    assert!(why.reason.contains("budget of 25"), "{}", why.reason);
    assert_eq!(waiting_record.failures, 0, "waiting is not failing");

    // Asking again at once costs nothing: no request in a loop.
    let before = env.requests();
    let waiting_ids: Vec<Id> = waiting.iter().map(|(id, _)| *id).collect();
    let (done, still) = env.sync_all(&waiting_ids).await;
    assert_eq!((done.len(), still.len()), (0, 75));
    assert_eq!(env.requests(), before);

    // Each hour the next 25, until all are done.
    let mut remaining = waiting_ids;
    for hour in 1..=3 {
        tokio::time::advance(StdDuration::from_secs(3600)).await;
        let (done, waiting) = env.sync_all(&remaining).await;
        assert_eq!(done.len(), 25, "hour {hour}");
        remaining = waiting.into_iter().map(|(id, _)| id).collect();
    }
    assert!(remaining.is_empty());
    assert_eq!(env.counter("calendar.calendars.insert"), 100);
    assert_eq!(env.counter("status:403"), 0);
    // Two requests per offering in all: the calendar and its first listing.
    assert_eq!(env.requests(), 200);
    for id in &targets {
        let cal = env
            .store
            .calendar(*id)
            .await
            .expect("read")
            .expect("record");
        assert_eq!(cal.state, CalendarState::Ok);
        assert!(cal.waiting.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn a_usage_limit_refusal_pauses_creation_until_the_lock_out_ends_and_is_met_only_once() {
    let emu = emulator().await;
    // Google refuses the 26th calendar; our budget (40) did not know.
    emu.controls().set(creation_limit(25));
    let env = engine_with(emu, limits(40, 7200)).await;
    let targets = env.add_offerings(100);

    let (done, waiting) = env.sync_all(&targets).await;
    assert_eq!((done.len(), waiting.len()), (25, 75));
    assert_eq!(env.counter("calendar.calendars.insert:403"), 1);
    assert_eq!(
        env.counter("calendar.calendars.insert"),
        26,
        "after the refusal, nothing more was sent"
    );
    assert!(waiting
        .iter()
        .all(|(_, after)| *after > StdDuration::from_secs(7000)));
    let why = env
        .store
        .calendar(waiting[0].0)
        .await
        .expect("read")
        .and_then(|c| c.waiting)
        .expect("waits");
    assert!(why.reason.contains("usage limits"), "{}", why.reason);

    // After the lock-out: the budget learned Google's 25 an hour.
    let mut remaining: Vec<Id> = waiting.into_iter().map(|(id, _)| id).collect();
    tokio::time::advance(StdDuration::from_secs(7200)).await;
    let mut hours = 0;
    while !remaining.is_empty() {
        let (done, waiting) = env.sync_all(&remaining).await;
        assert!(done.len() <= 25, "{}", done.len());
        remaining = waiting.into_iter().map(|(id, _)| id).collect();
        tokio::time::advance(StdDuration::from_secs(3600)).await;
        hours += 1;
        assert!(hours <= 4, "finishes within the hours the limit needs");
    }
    assert_eq!(env.counter("calendar.calendars.insert"), 101);
    assert_eq!(
        env.counter("status:403"),
        1,
        "the limit was met once, never again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fresh_calendar_answering_404_and_403_for_seconds_is_waited_for_not_failed() {
    let env = engine_on(SettingsUpdate {
        fresh_calendar_delay_secs: Some(3),
        ..SettingsUpdate::default()
    })
    .await;
    let room = env.offering("room-aurora");
    let r = env
        .run(room)
        .await
        .expect("the first sync waits for the new calendar");
    assert_eq!(r.summary.created, 3);
    assert!(env.counter("calendar.events.list:404") >= 1);
    // Sharing a calendar that is still settling (Google's 403 this time).
    env.emu.controls().set(SettingsUpdate {
        fresh_calendar_status: Some(403),
        ..SettingsUpdate::default()
    });
    let tem = env.offering("tem-2100");
    env.engine
        .set_public(tem, true)
        .await
        .expect("share waits for the new calendar");
    assert!(env.counter("calendar.acl.insert:403") >= 1);
    assert!(
        env.store
            .calendar(tem)
            .await
            .expect("read")
            .expect("cal")
            .public
    );
}

// ------------------------------------------------------------------ token endpoint

#[tokio::test]
async fn the_token_endpoints_internal_failure_is_retried_and_the_run_succeeds() {
    use bookcal::emulator::{TokenFailNth, TokenFault};
    let env = engine_on(SettingsUpdate {
        token_fail_nth: Some(vec![TokenFailNth {
            nth: 1,
            count: 2,
            error: TokenFault::InternalFailure,
            seen: 0,
        }]),
        ..SettingsUpdate::default()
    })
    .await;
    let room = env.offering("room-aurora");
    let r = env
        .run(room)
        .await
        .expect("retried past the token endpoint's 500s");
    assert_eq!(r.summary.created, 3);
    assert_eq!(env.counter("oauth2.token:500"), 2);
    assert_eq!(env.counter("oauth2.token:200"), 1);
    assert_eq!(env.counter("calendar.calendars.insert"), 1, "created once");
}

// ------------------------------------------------------------------ etags, tombstones, zones

#[tokio::test]
async fn with_drifting_etags_a_run_after_a_no_change_run_makes_one_request() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    env.emu.controls().set(SettingsUpdate {
        etag_drift: Some(true),
        ..SettingsUpdate::default()
    });
    let room = app.offering_id("room-aurora");
    crate::helpers::add_booking_with_slots(&app, room, 50).await;
    let first = env.sync(room).await;
    assert_eq!(first.summary.created, 53);
    for _ in 0..3 {
        env.reset();
        let r = env.sync(room).await;
        assert_eq!(env.requests(), 1, "{:?}", env.emu.controls().counters());
        assert_eq!((r.summary.created, r.summary.updated), (0, 0));
    }
    // A real edit is still seen and repaired.
    let cal = app.calendar_id(room).await;
    let mapping = app.store.mapping(room).await.expect("mapping");
    let (_, victim) = mapping.iter().next().expect("a slot");
    let mut edited = env
        .human
        .event_get(&cal, &victim.event_id)
        .await
        .expect("get");
    edited.summary = Some("Hijacked".into());
    env.human.event_update(&cal, &edited).await.expect("edit");
    let r = env.sync(room).await;
    assert_eq!(r.summary.updated, 1);
}

#[tokio::test]
async fn a_purged_tombstone_gives_the_slot_its_next_event_id_and_the_mapping_follows() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    let before: BTreeMap<String, String> = app
        .store
        .mapping(room)
        .await
        .expect("mapping")
        .into_iter()
        .map(|(slot, m)| (slot, m.event_id))
        .collect();
    let (slot, old_id) = before.iter().next().expect("a slot");
    env.human.event_delete(&cal, old_id).await.expect("delete");
    env.emu.controls().purge_tombstones_now();
    let r = env.sync(room).await;
    assert!(r.summary.warnings.is_empty(), "{:?}", r.summary.warnings);
    let after = app.store.mapping(room).await.expect("mapping");
    let new_id = &after[slot].event_id;
    assert_ne!(new_id, old_id);
    assert_eq!(bookcal::sync::decide::generation_of(new_id), 1);
    let live: Vec<String> = env
        .live_events(&cal)
        .iter()
        .filter_map(|e| e["id"].as_str().map(String::from))
        .collect();
    assert!(live.contains(new_id), "{live:?}");
    assert_eq!(live.len(), 3);
    env.reset();
    env.sync(room).await;
    assert_eq!(env.requests(), 1, "settled");
}

#[tokio::test]
async fn every_zone_is_written_with_a_name_google_accepts_and_a_kyiv_offering_syncs() {
    let emu = emulator().await;
    let accepted = emu.controls().accepted_time_zones();
    for tz in chrono_tz::TZ_VARIANTS {
        assert!(
            accepted.contains(&google_time_zone(tz.name())),
            "{} is written as {}, which Google refuses",
            tz.name(),
            google_time_zone(tz.name())
        );
    }
    let env = engine_with(emu, UsageLimits::default()).await;
    let room = env.offering("room-aurora");
    let kyiv = {
        let cat = env.store.sled().expect("sled").read().expect("read");
        bookcal::domain::Offering {
            time_zone: chrono_tz::Europe::Kyiv,
            ..cat.offerings[&room].clone()
        }
    };
    env.store
        .write(vec![Change::Offering(kyiv)])
        .await
        .expect("store");
    let r = env.run(room).await.expect("sync");
    assert_eq!(r.summary.created, 3);
    assert!(r.summary.warnings.is_empty(), "{:?}", r.summary.warnings);
    let cal = env.emu.inspect().calendars()[0].clone();
    assert_eq!(cal["timeZone"], "Europe/Kiev");
    let id = cal["id"].as_str().expect("id").to_owned();
    for e in env.emu.inspect().events(&id) {
        assert_eq!(e["start"]["timeZone"], "Europe/Kiev");
    }
}

// ------------------------------------------------------------------ dying credentials

/// The value of a sample in a Prometheus text exposition, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn a_revoked_provider_token_shows_in_googlecalendar_metrics_and_ready_and_refuses_orders_once_busy_time_is_too_old(
) {
    let dir = tempfile::tempdir().expect("tmp");
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        provider_credentials_dir: Some(dir.path().to_path_buf()),
        ..crate::helpers::Options::default()
    })
    .await;
    let emu = app.emu.as_ref().expect("the app's emulator");
    let room = app.offering_id("room-aurora");
    let provider = app.provider_of(room).await;
    let user = "calendars@northlab.example";
    emu.controls().register_refresh_token_for(
        "northlab-client",
        "northlab-secret",
        "rt-northlab",
        user,
    );
    let file = dir.path().join(format!("{}.json", provider.hex()));
    std::fs::write(
        &file,
        serde_json::json!({
            "client_id": "northlab-client",
            "client_secret": "northlab-secret",
            "refresh_token": "rt-northlab",
            "token_url": emu.token_uri(),
        })
        .to_string(),
    )
    .expect("provider file");
    let path = format!("/api/booking-offerings/{}/", room.hex());
    let name = format!("provider {}", provider.hex());

    app.engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect("sync with the provider's token");
    let gc = app.get("owner", &path).await.body["googlecalendar"].clone();
    assert_eq!(gc["credential"]["name"], name.as_str(), "{gc}");
    assert_eq!(gc["credential"]["status"], "ok", "{gc}");
    assert!(gc["busy_read_at"].is_string(), "{gc}");

    // The provider revokes bookcal's access; the access token runs out an hour later.
    assert!(emu.controls().revoke_refresh_token("rt-northlab"));
    emu.controls().advance_clock(StdDuration::from_secs(3600));
    let e = app
        .engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect_err("the credential is dead");
    assert!(e.to_string().contains("Google"), "{e}");
    let gc = app.get("owner", &path).await.body["googlecalendar"].clone();
    let credential = &gc["credential"];
    assert_eq!(credential["status"], "invalid", "{gc}");
    let reason = credential["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("expired or revoked"), "{reason}");
    let action = credential["action"].as_str().unwrap_or_default();
    assert!(
        action.contains("authorise bookcal again") && action.contains(&file.display().to_string()),
        "{action}"
    );
    assert!(credential["since"].is_string(), "{gc}");
    assert_eq!(gc["state"], "Erred");

    let metrics = app.metrics().await;
    // Anonymous scrapes count credentials by status and name none of them.
    assert_eq!(
        sample(&metrics, "bookcal_google_credentials", "status=\"invalid\""),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "bookcal_google_credentials", "status=\"unknown\""),
        Some(1.0),
        "the service account is counted too: {metrics}"
    );
    assert!(!metrics.contains(&provider.hex()), "{metrics}");
    let ready: serde_json::Value = app
        .http
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    let listed = ready["google"]["credentials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        listed
            .iter()
            .any(|c| c["name"] == name.as_str() && c["status"] == "invalid"),
        "{ready}"
    );

    // Busy time is no longer read. While what was read is recent, orders go through;
    // once it is older than sync.max_busy_age_secs (2 hours by default), new orders
    // are refused with a 400 that says why, and nothing is stored.
    let berlin = chrono_tz::Europe::Berlin;
    let slot = |weeks: i64| {
        let d = next_monday() + Duration::weeks(weeks);
        let at = |h: u32| {
            berlin
                .from_local_datetime(&d.and_hms_opt(h, 0, 0).expect("time"))
                .earliest()
                .expect("local time")
                .with_timezone(&Utc)
        };
        (at(13), at(14))
    };
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[slot(1)]),
        )
        .await;
    assert_eq!(r.status, 201, "busy time read just now: {}", r.text);
    let mut cal = app
        .store
        .calendar(room)
        .await
        .expect("read")
        .expect("record");
    let read_at = Utc::now() - Duration::hours(3);
    cal.busy_read_at = Some(read_at);
    app.store
        .write(vec![Store::calendar_change(&cal).expect("change")])
        .await
        .expect("write");
    let before = app.snapshot().await;
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[slot(2)]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let said = r.body[0].as_str().unwrap_or_default().to_owned();
    assert!(
        said.contains(&format!(
            "last read at {}, more than 2 hours ago",
            read_at.format("%Y-%m-%d %H:%M UTC")
        )) && said.contains("new orders are refused"),
        "{}",
        r.text
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused order stores nothing"
    );

    // The same user authorises again: the next run uses the new token, status ok.
    emu.controls().register_refresh_token_for(
        "northlab-client",
        "northlab-secret",
        "rt-northlab-2",
        user,
    );
    let body = std::fs::read_to_string(&file)
        .expect("read")
        .replace("rt-northlab", "rt-northlab-2");
    std::fs::write(&file, body).expect("rewrite");
    app.engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect("works again");
    let gc = app.get("owner", &path).await.body["googlecalendar"].clone();
    assert_eq!(gc["credential"]["status"], "ok", "{gc}");
    // Busy time read again: orders are taken again.
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[slot(2)]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

// ------------------------------------------------------------------ the scheduler

#[tokio::test]
async fn the_service_holds_offerings_past_the_hourly_creation_budget_until_it_refills_and_never_retries_them_in_a_loop(
) {
    use std::sync::atomic::Ordering;
    // The service's defaults: 20 calendars per hour and credential.
    let app = spawn_app().await;
    let template = app
        .store
        .offering(app.offering_id("room-aurora"))
        .await
        .expect("read")
        .expect("room");
    let offerings: Vec<bookcal::domain::Offering> = (0..22)
        .map(|i| bookcal::domain::Offering {
            id: bookcal::domain::Id::new_v4(),
            name: format!("Room {i:02}"),
            slug: format!("room-{i:02}"),
            ..template.clone()
        })
        .collect();
    let ids: Vec<_> = offerings.iter().map(|o| o.id).collect();
    app.store
        .write(
            offerings
                .into_iter()
                .map(bookcal::store::Change::Offering)
                .collect(),
        )
        .await
        .expect("offerings");
    for id in &ids {
        let path = format!("/api/booking-offerings/{}/google_calendar_sync/", id.hex());
        assert_eq!(
            app.post("owner", &path, serde_json::json!({})).await.status,
            200
        );
    }
    let scheduler = app.start_scheduler();
    let store = app.store.clone();
    let deferred = |status: &bookcal::scheduler::SchedulerStatus| {
        status
            .runs
            .lock()
            .map(|r| r.get("deferred").copied().unwrap_or(0))
            .unwrap_or(0)
    };
    // The offerings' calendar records matching `want`.
    let count = |want: fn(&bookcal::domain::calendar::OfferingCalendar) -> bool| {
        let (store, ids) = (&store, &ids);
        async move {
            let mut n = 0;
            for id in ids {
                if store
                    .calendar(*id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|c| want(&c))
                {
                    n += 1;
                }
            }
            n
        }
    };
    let waiting = || count(|c| c.waiting.is_some());
    let done = || count(|c| c.state == CalendarState::Ok && c.calendar_id.is_some());
    assert!(
        crate::helpers::eventually_async(60, || async {
            done().await == 20
                && waiting().await == 2
                && deferred(&scheduler.status) == 2
                && scheduler.status.active_runs.load(Ordering::Relaxed) == 0
        })
        .await,
        "done {}, waiting {}, deferred runs {}",
        done().await,
        waiting().await,
        deferred(&scheduler.status)
    );
    let inserts = |app: &crate::helpers::TestApp| {
        app.emu()
            .controls()
            .counters()
            .get("calendar.calendars.insert")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(inserts(&app), 20, "the budget held");
    // Each waiting offering keeps its job, due when the budget refills (about an hour
    // from now), and says why in googlecalendar: nothing runs it before.
    let now = Utc::now();
    let mut held = Vec::new();
    for id in &ids {
        if store
            .calendar(*id)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.waiting.is_some())
        {
            held.push(*id);
        }
    }
    for id in &held {
        let jobs = store.queued_jobs(*id).await.expect("jobs");
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert!(
            jobs[0].due > now + Duration::minutes(50) && jobs[0].due <= now + Duration::minutes(61),
            "{jobs:?}"
        );
        let gc = app
            .get("owner", &format!("/api/booking-offerings/{}/", id.hex()))
            .await
            .body["googlecalendar"]
            .clone();
        let reason = gc["waiting"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("budget of 20"), "{gc}");
        assert!(gc["waiting"]["until"].is_string(), "{gc}");
    }
    // And in /metrics (anonymous: a count, no offering named).
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "bookcal_sync_waiting_offerings", ""),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "bookcal_sync_runs_total", "outcome=\"deferred\""),
        Some(2.0),
        "{metrics}"
    );
    // Poking the scheduler (an action on a synced offering) does not run the held ones.
    let synced = *ids
        .iter()
        .find(|id| !held.contains(id))
        .expect("a synced offering");
    let path = format!(
        "/api/booking-offerings/{}/google_calendar_sync/",
        synced.hex()
    );
    assert_eq!(
        app.post("owner", &path, serde_json::json!({})).await.status,
        200
    );
    let store2 = app.store.clone();
    assert!(
        crate::helpers::eventually_async(30, || async {
            store2.queued_jobs(synced).await.is_ok_and(|j| {
                j.iter()
                    .all(|j| j.trigger != bookcal::domain::jobs::Trigger::Action)
            }) && scheduler.status.active_runs.load(Ordering::Relaxed) == 0
        })
        .await
    );
    assert_eq!(deferred(&scheduler.status), 2, "no held job ran again");
    assert_eq!(inserts(&app), 20);
    scheduler.stop().await;
}
