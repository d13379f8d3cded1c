//! The sync engine against the in-process Google Calendar emulator.

use crate::helpers::{add_booking_with_slots, at, spawn_app, sync_env, sync_env_as};
use bookcal::domain::calendar::CalendarState;
use bookcal::google::{Attendee, Event, EventStatus, EventTime, Transparency};
use bookcal::sync::RunOptions;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

#[tokio::test]
async fn first_sync_creates_a_year_of_slots_and_a_resync_with_nothing_changed_makes_one_request() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    add_booking_with_slots(&app, room, 300).await;
    let r = env.sync(room).await;
    // 300 + the demo data's 3 slots in this room.
    assert_eq!(r.summary.created, 303, "{:?}", r.summary);
    assert!(r.summary.warnings.is_empty(), "{:?}", r.summary.warnings);
    let cal = app.calendar_id(room).await;
    let events = env.live_events(&cal);
    assert_eq!(events.len(), 303);
    let ids: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 303);
    assert!(
        events.iter().all(|e| e.get("attendees").is_none()),
        "no attendees by default"
    );
    let tentative = events.iter().filter(|e| e["status"] == "tentative").count();
    assert_eq!(
        tentative, 2,
        "the pending 'Weekly sync' booking is tentative"
    );
    let c = app.store.calendar(room).await.expect("read").expect("cal");
    assert_eq!(c.state, CalendarState::Ok);
    assert!(c.sync_token.is_some());
    assert_eq!(env.emu.inspect().calendars().len(), 1);

    for _ in 0..2 {
        env.reset();
        let r = env.sync(room).await;
        assert_eq!(env.requests(), 1, "{:?}", env.emu.controls().counters());
        assert_eq!(
            (r.summary.created, r.summary.updated, r.summary.deleted),
            (0, 0, 0)
        );
    }
}

#[tokio::test]
async fn k_changes_make_k_plus_one_requests_and_follow_booking_states() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    // Accept the pending 2-slot booking, and book one more slot (1 insert).
    let pending = app
        .get(
            "owner",
            &format!(
                "/api/booking-resources/?offering_uuid={}&state=Creating",
                room.hex()
            ),
        )
        .await
        .body[0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    assert_eq!(
        app.post(
            "owner",
            &format!("/api/booking-resources/{pending}/accept/"),
            json!({})
        )
        .await
        .status,
        200
    );
    let order = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(20, 9), at(20, 10))]),
        )
        .await;
    assert_eq!(order.status, 201);
    env.reset();
    let r = env.sync(room).await;
    assert_eq!((r.summary.created, r.summary.updated), (1, 2));
    assert_eq!(env.requests(), 4, "{:?}", env.emu.controls().counters());
    let events = env.live_events(&cal);
    assert_eq!(
        events.iter().filter(|e| e["status"] == "confirmed").count(),
        3
    );
    assert_eq!(
        events.iter().filter(|e| e["status"] == "tentative").count(),
        1
    );
    // Cancel the new order: its event is deleted (1 change, 2 requests).
    let o = order.body["uuid"].as_str().expect("uuid");
    assert_eq!(
        app.post(
            "alice",
            &format!("/api/marketplace-orders/{o}/cancel/"),
            json!({})
        )
        .await
        .status,
        202
    );
    env.reset();
    let r = env.sync(room).await;
    assert_eq!(r.summary.deleted, 1);
    assert_eq!(env.requests(), 2);
    assert_eq!(env.live_events(&cal).len(), 3);
    // Rejecting a booking deletes its events too.
    let created = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(21, 9), at(21, 10))]),
        )
        .await;
    let fresh = created.body["marketplace_resource_uuid"]
        .as_str()
        .expect("res")
        .to_string();
    env.sync(room).await;
    assert_eq!(
        app.post(
            "owner",
            &format!("/api/booking-resources/{fresh}/reject/"),
            json!({})
        )
        .await
        .status,
        200
    );
    env.reset();
    assert_eq!(env.sync(room).await.summary.deleted, 1);
    assert_eq!(env.requests(), 2);
    assert_eq!(env.live_events(&cal).len(), 3);
}

#[tokio::test]
async fn events_moved_or_deleted_by_hand_in_google_are_restored() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    let before = env.live_events(&cal);
    let a = before[0]["id"].as_str().expect("id").to_string();
    let b = before[1]["id"].as_str().expect("id").to_string();
    let mut moved = env.human.event_get(&cal, &a).await.expect("get");
    let later = |t: &Option<EventTime>| match t {
        Some(EventTime::DateTime { at, time_zone }) => Some(EventTime::DateTime {
            at: *at + chrono::Duration::hours(3),
            time_zone: time_zone.clone(),
        }),
        other => other.clone(),
    };
    moved.start = later(&moved.start);
    moved.end = later(&moved.end);
    moved.summary = Some("Hijacked".into());
    env.human.event_update(&cal, &moved).await.expect("move");
    env.human.event_delete(&cal, &b).await.expect("delete");
    env.reset();
    let r = env.sync(room).await;
    assert_eq!(r.summary.updated, 2, "{:?}", r.plan);
    assert_eq!(env.requests(), 3);
    let after = env.live_events(&cal);
    assert_eq!(after.len(), before.len());
    for e in &before {
        let now = after.iter().find(|x| x["id"] == e["id"]).expect("restored");
        assert_eq!(
            now["start"]["dateTime"]
                .as_str()
                .map(|s| DateTime::parse_from_rfc3339(s).ok()),
            e["start"]["dateTime"]
                .as_str()
                .map(|s| DateTime::parse_from_rfc3339(s).ok())
        );
        assert_eq!(now["summary"], e["summary"]);
    }
}

fn ev(id: &str, start: EventTime, end: EventTime) -> Event {
    Event {
        id: id.into(),
        start: Some(start),
        end: Some(end),
        summary: Some("external".into()),
        ..Event::default()
    }
}

fn dt(s: &str, tz: Option<&str>) -> EventTime {
    EventTime::DateTime {
        at: DateTime::parse_from_rfc3339(s).expect("time"),
        time_zone: tz.map(String::from),
    }
}

fn date(s: &str) -> EventTime {
    EventTime::Date(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date"))
}

#[tokio::test]
async fn external_events_become_exactly_the_expected_busy_slots_across_dst() {
    let app = spawn_app().await;
    let env = sync_env_as(&app, Some("owner@northlab.example.org")).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    let h = &env.human;
    h.event_insert(
        &cal,
        &ev(
            "e0one",
            dt("2027-01-15T10:00:00Z", None),
            dt("2027-01-15T12:00:00Z", None),
        ),
    )
    .await
    .expect("single");
    h.event_insert(&cal, &ev("e0dates", date("2027-03-27"), date("2027-03-29")))
        .await
        .expect("all-day");
    let free = Event {
        transparency: Transparency::Transparent,
        ..ev(
            "e0free",
            dt("2027-01-16T10:00:00Z", None),
            dt("2027-01-16T12:00:00Z", None),
        )
    };
    h.event_insert(&cal, &free).await.expect("transparent");
    let declined = Event {
        attendees: vec![Attendee {
            email: cal.clone(),
            is_self: false,
            response_status: Some("declined".into()),
        }],
        ..ev(
            "e0decl",
            dt("2027-01-17T10:00:00Z", None),
            dt("2027-01-17T12:00:00Z", None),
        )
    };
    h.event_insert(&cal, &declined).await.expect("declined");
    // Weekly on Fridays at 09:00 Berlin from 12 March 2027, five times, across the
    // 28 March DST change; the 19 March one moved to 11:00, the 2 April one cancelled.
    let series = Event {
        recurrence: vec!["RRULE:FREQ=WEEKLY;COUNT=5".into()],
        ..ev(
            "e0rec",
            dt("2027-03-12T09:00:00+01:00", Some("Europe/Berlin")),
            dt("2027-03-12T10:00:00+01:00", Some("Europe/Berlin")),
        )
    };
    h.event_insert(&cal, &series).await.expect("series");
    let mut moved = h
        .event_get(&cal, "e0rec_20270319T080000Z")
        .await
        .expect("instance");
    moved.start = Some(dt("2027-03-19T11:00:00+01:00", Some("Europe/Berlin")));
    moved.end = Some(dt("2027-03-19T12:00:00+01:00", Some("Europe/Berlin")));
    h.event_update(&cal, &moved).await.expect("exception");
    h.event_delete(&cal, "e0rec_20270402T070000Z")
        .await
        .expect("cancel instance");

    let r = env.sync(room).await;
    assert!(r.summary.warnings.is_empty(), "{:?}", r.summary.warnings);
    let busy: Vec<(String, String)> = app
        .store
        .busy_slots(room)
        .await
        .expect("busy")
        .iter()
        .map(|b| {
            (
                b.start.format("%Y-%m-%dT%H:%MZ").to_string(),
                b.end.format("%Y-%m-%dT%H:%MZ").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("2027-01-15T10:00Z", "2027-01-15T12:00Z"),
        ("2027-03-12T08:00Z", "2027-03-12T09:00Z"),
        ("2027-03-19T10:00Z", "2027-03-19T11:00Z"),
        ("2027-03-26T08:00Z", "2027-03-26T09:00Z"),
        ("2027-03-26T23:00Z", "2027-03-28T22:00Z"),
        ("2027-04-09T07:00Z", "2027-04-09T08:00Z"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(busy, want);
    // Our own events are not busy time, and busy time blocks orders.
    let t = |s: &str| {
        Utc.from_utc_datetime(
            &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").expect("t"),
        )
    };
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body(
                "room-aurora",
                &[(t("2027-01-15T11:00"), t("2027-01-15T13:00"))],
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("is not available."), "{}", r.text);
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body(
                "room-aurora",
                &[(t("2027-01-16T10:00"), t("2027-01-16T11:00"))],
            ),
        )
        .await;
    assert_eq!(r.status, 201, "transparent time is free: {}", r.text);
    let bookings = app
        .get(
            "alice",
            &format!("/api/marketplace-bookings/{}/", room.hex()),
        )
        .await;
    assert!(bookings.body.as_array().expect("a").len() >= 6 + 4);

    // Deleting the external single event frees its time on the next (incremental) run.
    h.event_delete(&cal, "e0one").await.expect("delete");
    env.sync(room).await;
    assert_eq!(app.store.busy_slots(room).await.expect("busy").len(), 5);
}

#[tokio::test]
async fn an_expired_sync_token_triggers_a_full_relisting_that_loses_nothing() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    add_booking_with_slots(&app, room, 120).await;
    env.sync(room).await;
    env.sync(room).await;
    env.human
        .event_insert(
            &app.calendar_id(room).await,
            &ev(
                "e0one",
                dt("2027-01-15T10:00:00Z", None),
                dt("2027-01-15T12:00:00Z", None),
            ),
        )
        .await
        .expect("ext");
    env.sync(room).await;
    let busy_before = app.store.busy_slots(room).await.expect("busy");
    env.emu.controls().expire_sync_tokens();
    env.emu.controls().set_max_page_size(Some(50));
    env.reset();
    let r = env.sync(room).await;
    assert!(r.summary.full_listing);
    assert_eq!(
        (r.summary.created, r.summary.updated, r.summary.deleted),
        (0, 0, 0),
        "{:?}",
        r.plan
    );
    // 1 refused incremental listing + a full listing of 124 events in pages of 50.
    assert_eq!(env.requests(), 1 + 3);
    assert_eq!(app.store.busy_slots(room).await.expect("busy"), busy_before);
    assert_eq!(env.live_events(&app.calendar_id(room).await).len(), 124);
}

#[tokio::test]
async fn twenty_percent_injected_faults_still_converge_with_no_duplicate_and_no_lost_event() {
    use bookcal::emulator::InjectedFault::*;
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    add_booking_with_slots(&app, room, 150).await;
    env.sync(room).await; // creates the calendar without faults
    let res = add_booking_with_slots(&app, room, 50).await;
    env.emu.controls().set_fault_rate(
        0.2,
        &[RateLimit403, RateLimit429, BackendError500, Unavailable503],
        7,
    );
    // Remove one booking and change another meanwhile.
    let mut r = app.store.resource(res).await.expect("read").expect("res");
    r.slots.truncate(40);
    app.store
        .write(vec![bookcal::store::Change::Resource(r)])
        .await
        .expect("edit");
    let mut runs = 0;
    loop {
        runs += 1;
        match env.engine.sync_offering(room, RunOptions::default()).await {
            Ok(r) if r.summary.warnings.is_empty() => break,
            _ if runs < 6 => continue,
            other => panic!("did not converge: {:?}", other.map(|r| r.summary)),
        }
    }
    env.emu.controls().clear_faults();
    env.sync(room).await;
    let events = env.live_events(&app.calendar_id(room).await);
    assert_eq!(events.len(), 150 + 40 + 3);
    let ids: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), events.len());
    let mapping = app.store.mapping(room).await.expect("mapping");
    assert_eq!(mapping.len(), 193);
    assert!(mapping
        .values()
        .all(|m| ids.contains(m.event_id.as_str()) && !m.needs_push));
}

#[tokio::test]
async fn a_legacy_calendar_with_booking_hex_events_is_adopted_without_duplicates() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    // A calendar upstream Waldur filled: events named booking<hex>.
    let cal = env
        .human
        .calendar_insert("Meeting room Aurora", "Europe/Berlin")
        .await
        .expect("calendar");
    let slots: Vec<bookcal::domain::Slot> = app
        .store
        .offering_resources(room)
        .await
        .expect("read")
        .into_iter()
        .flat_map(|r| r.slots)
        .collect();
    for s in &slots {
        let id = bookcal::domain::legacy_event_id(&s.backend_id);
        let e = ev(
            &id,
            EventTime::DateTime {
                at: s.start.fixed_offset(),
                time_zone: None,
            },
            EventTime::DateTime {
                at: s.end.fixed_offset(),
                time_zone: None,
            },
        );
        env.human
            .event_insert(
                &cal.id,
                &Event {
                    status: EventStatus::Confirmed,
                    summary: Some("Meeting room Aurora".into()),
                    ..e
                },
            )
            .await
            .expect("legacy");
    }
    let mut record = bookcal::domain::calendar::OfferingCalendar::new(room);
    record.calendar_id = Some(cal.id.clone());
    record.synced_name = Some("Meeting room Aurora".into());
    record.state = CalendarState::Ok;
    app.store
        .write(vec![
            bookcal::store::Store::calendar_change(&record).expect("rec")
        ])
        .await
        .expect("put");
    let r = env.sync(room).await;
    assert_eq!(r.summary.created, 0, "{:?}", r.plan);
    assert_eq!(r.summary.adopted as usize, slots.len());
    let events = env.live_events(&cal.id);
    assert_eq!(events.len(), slots.len());
    assert!(events
        .iter()
        .all(|e| e["id"].as_str().is_some_and(|i| i.starts_with("booking"))));
    assert!(
        app.store.busy_slots(room).await.expect("busy").is_empty(),
        "legacy events are ours, not busy time"
    );
    env.reset();
    env.sync(room).await;
    assert_eq!(env.requests(), 1);
}

#[tokio::test]
async fn sharing_adds_the_public_acl_and_unsharing_removes_it() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.engine.set_public(room, true).await.expect("share");
    let cal = app.calendar_id(room).await;
    let acl = env.emu.inspect().acl(&cal);
    assert!(
        acl.iter()
            .any(|r| r["id"] == "default" && r["role"] == "reader"),
        "{acl:?}"
    );
    let off = app
        .get("owner", &format!("/api/booking-offerings/{}/", room.hex()))
        .await
        .body;
    assert_eq!(off["googlecalendar"]["public"], true);
    let link = off["googlecalendar"]["http_link"].as_str().expect("link");
    assert!(
        link.starts_with("https://calendar.google.com/calendar/embed?src=c_"),
        "{link}"
    );
    assert!(link.contains("%40group.calendar.google.com"));
    env.engine.set_public(room, false).await.expect("unshare");
    assert!(!env
        .emu
        .inspect()
        .acl(&cal)
        .iter()
        .any(|r| r["id"] == "default"));
    assert!(app
        .get("owner", &format!("/api/booking-offerings/{}/", room.hex()))
        .await
        .body["googlecalendar"]["http_link"]
        .is_null());
}

#[tokio::test]
async fn a_dry_run_plans_without_writing_anything() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    let r = env
        .engine
        .sync_offering(
            room,
            RunOptions {
                dry_run: true,
                force: false,
            },
        )
        .await
        .expect("dry");
    assert_eq!(r.plan.len(), 3);
    assert!(r.plan.iter().all(|l| l.starts_with("insert ")));
    assert_eq!(env.requests(), 0);
    assert!(app.store.calendar(room).await.expect("read").is_none());
}

#[tokio::test]
async fn a_renamed_offering_renames_its_calendar() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let mut o = app
        .store
        .offering(room)
        .await
        .expect("read")
        .expect("offering");
    o.name = "Aurora (renovated)".into();
    app.store
        .write(vec![bookcal::store::Change::Offering(o)])
        .await
        .expect("rename");
    env.sync(room).await;
    let cals = env.emu.inspect().calendars();
    assert_eq!(cals[0]["summary"], "Aurora (renovated)");
}

#[tokio::test]
async fn one_refused_slot_is_a_warning_and_is_pushed_again_next_run() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    add_booking_with_slots(&app, room, 5).await;
    // The 3rd insert of this run is refused with a permanent 400.
    env.emu
        .controls()
        .fail_nth_call("calendar.events.insert", 3, 400);
    let r = env
        .engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect("the run itself succeeds");
    assert_eq!(r.summary.warnings.len(), 1, "{:?}", r.summary.warnings);
    let cal = app.calendar_id(room).await;
    assert_eq!(env.live_events(&cal).len(), 7);
    assert_eq!(
        app.store
            .calendar(room)
            .await
            .expect("read")
            .expect("cal")
            .state,
        CalendarState::Ok
    );
    let gc = app
        .get("owner", &format!("/api/booking-offerings/{}/", room.hex()))
        .await
        .body["googlecalendar"]
        .clone();
    assert_eq!(gc["last_run"]["warnings"].as_array().map(Vec::len), Some(1));
    env.reset();
    let r = env.sync(room).await;
    assert_eq!(r.summary.created, 1);
    assert!(r.summary.warnings.is_empty());
    assert_eq!(env.live_events(&cal).len(), 8);
    assert_eq!(env.requests(), 2);
}

#[tokio::test]
async fn a_provider_with_its_own_refresh_token_syncs_with_it_and_a_bad_token_is_a_visible_error() {
    use bookcal::api::GoogleCredentialsCheck;
    use bookcal::credentials::ProviderCredentials;
    use bookcal::google::{CallStats, ClientOptions, RateLimit};
    use std::sync::Arc;
    let app = spawn_app().await;
    let emu = bookcal::emulator::Emulator::start(bookcal::emulator::EmulatorOptions::default())
        .await
        .expect("emu");
    emu.controls()
        .register_refresh_token("northlab-client", "northlab-secret", "rt-northlab");
    let room = app.offering_id("room-aurora");
    let (provider, consumer) = {
        let directory = app.store.directory().await.expect("read");
        let p = directory.offerings[&room].customer;
        let c = directory
            .customers
            .values()
            .find(|c| c.id != p)
            .expect("other")
            .id;
        (p, c)
    };
    let dir = tempfile::tempdir().expect("tmp");
    let write = |token: &str| {
        let body = json!({"client_id": "northlab-client", "client_secret": "northlab-secret", "refresh_token": token, "token_url": emu.token_uri()});
        std::fs::write(
            dir.path().join(format!("{}.json", provider.hex())),
            body.to_string(),
        )
        .expect("write");
    };
    write("rt-revoked-long-ago");
    let options = ClientOptions {
        root_url: emu.root_url(),
        rate_limit: RateLimit {
            per_minute: 600_000,
            burst: 1_000,
        },
        page_size: Some(2500),
        ..ClientOptions::default()
    };
    let creds = Arc::new(
        ProviderCredentials::new(
            Some(dir.path().to_path_buf()),
            options,
            Arc::new(CallStats::new()),
            None,
        )
        .expect("creds"),
    );
    assert!(creds.has_credentials(provider));
    assert!(
        !creds.has_credentials(consumer),
        "no file and no service account"
    );
    let engine = bookcal::sync::SyncEngine {
        store: app.store.clone(),
        source: creds,
        settings: bookcal::config::SyncSettings::default(),
        share_role: bookcal::google::AclRole::Reader,
    };
    // A token Google refuses: the run fails and says so on the offering.
    assert!(engine
        .sync_offering(room, RunOptions::default())
        .await
        .is_err());
    let gc = app
        .get("owner", &format!("/api/booking-offerings/{}/", room.hex()))
        .await
        .body["googlecalendar"]
        .clone();
    assert_eq!(gc["state"], "Erred");
    assert!(
        gc["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid_grant")),
        "{gc}"
    );
    // The provider fixes its token: the next run uses it (files are read each time).
    write("rt-northlab");
    let r = engine
        .sync_offering(room, RunOptions::default())
        .await
        .expect("sync with the provider's token");
    assert_eq!(r.summary.created, 3);
    assert_eq!(
        app.store
            .calendar(room)
            .await
            .expect("read")
            .expect("cal")
            .state,
        CalendarState::Ok
    );
    assert_eq!(emu.inspect().calendars().len(), 1);
}

#[tokio::test]
async fn a_full_listing_that_empties_the_busy_time_is_held_back_unless_forced() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let cal = app.calendar_id(room).await;
    let ids = ["e0b1", "e0b2", "e0b3", "e0b4", "e0b5"].map(|i| format!("{i}000"));
    for (n, id) in ids.iter().enumerate() {
        let day = format!("2027-02-{:02}", n + 1);
        env.human
            .event_insert(
                &cal,
                &ev(
                    id,
                    dt(&format!("{day}T10:00:00Z"), None),
                    dt(&format!("{day}T11:00:00Z"), None),
                ),
            )
            .await
            .expect("ext");
    }
    env.sync(room).await;
    assert_eq!(app.store.busy_slots(room).await.expect("busy").len(), 5);
    // All of them vanish and the next listing is a full one (the token expired).
    for id in &ids {
        env.human.event_delete(&cal, id).await.expect("delete");
    }
    env.emu.controls().expire_sync_tokens();
    let r = env.sync(room).await;
    assert!(r.summary.full_listing);
    assert!(
        r.summary
            .warnings
            .iter()
            .any(|w| w.contains("busy-slot guard")),
        "{:?}",
        r.summary.warnings
    );
    assert_eq!(
        app.store.busy_slots(room).await.expect("busy").len(),
        5,
        "kept"
    );
    let r = env
        .engine
        .sync_offering(
            room,
            RunOptions {
                dry_run: false,
                force: true,
            },
        )
        .await
        .expect("forced");
    assert!(r.summary.warnings.is_empty(), "{:?}", r.summary.warnings);
    assert!(app.store.busy_slots(room).await.expect("busy").is_empty());
}
