//! Booking integrity: the attacks that once double-booked a slot, aimed at another
//! tenant's event or showed a booking to the wrong people, replayed against the real
//! service and the Google emulator. Each is refused with the store unchanged and
//! Google untouched; plus terminate, and many clients racing for overlapping slots.

use std::collections::HashMap;

use bookcal::domain::lifecycle::pair_allowed;
use bookcal::domain::{
    Customer, Id, Interval, OrderState, OrderType, Project, Resource, ResourceState, Slot, User,
};
use bookcal::store::{Change, Store};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{at, spawn_app, sync_env, Resp, SyncEnv, TestApp};

type Span = (DateTime<Utc>, DateTime<Utc>);
/// Every booking's (resource, state, slots) and every order's (id, state).
type Snapshot = (
    Vec<(Id, ResourceState, Vec<Interval>)>,
    Vec<(Id, OrderState)>,
);

/// Adds a tenant: a user owning a customer of their own with one project. Their
/// orders execute at once (they approve for their customer). Returns the project.
async fn add_tenant(app: &mut TestApp, name: &'static str) -> Id {
    let now = Utc::now();
    let user = User {
        id: Id::new_v4(),
        username: name.into(),
        full_name: format!("{name} tenant"),
        email: format!("{name}@example.org"),
        is_staff: false,
        created: now,
    };
    let customer = Customer {
        id: Id::new_v4(),
        name: format!("{name} org"),
        slug: format!("{name}-org"),
        owners: vec![user.id],
        managers: vec![],
        created: now,
    };
    let project = Project {
        id: Id::new_v4(),
        customer: customer.id,
        name: format!("{name} project"),
        slug: format!("{name}-project"),
        description: String::new(),
        members: vec![],
        created: now,
    };
    let pid = project.id;
    app.store
        .write(vec![
            Change::User(user.clone()),
            Change::Customer(customer),
            Change::Project(project),
        ])
        .await
        .expect("tenant");
    let token = app.store.create_token(user.id).await.expect("token");
    app.tokens.insert(name, token);
    pid
}

fn body(app: &TestApp, offering: &str, project: Id, slots: &[Span], extra: Value) -> Value {
    let mut b = app.order_body(offering, slots);
    b["project"] = json!(format!("{}/api/projects/{}/", app.base, project.hex()));
    if let (Some(items), Some(extra)) = (
        b["attributes"]["schedules"].as_array_mut(),
        extra.as_object(),
    ) {
        for it in items {
            for (k, v) in extra {
                it[k] = v.clone();
            }
        }
    }
    b
}

/// The telescope offering with alice's imaging project and a second tenant of its
/// own organisation beside it: (app, the tenant's project, imaging, the Google side
/// the service syncs to, the telescope).
async fn telescope_with_tenant(name: &'static str) -> (TestApp, Id, Id, SyncEnv, Id) {
    let mut app = spawn_app().await;
    let tenant = add_tenant(&mut app, name).await;
    let imaging = app.project_id("imaging");
    let env = sync_env(&app).await;
    let scope = app.offering_id("telescope");
    (app, tenant, imaging, env, scope)
}

async fn order(
    app: &TestApp,
    user: &str,
    offering: &str,
    project: Id,
    slot: Span,
) -> (String, String) {
    let r = app
        .post(
            user,
            "/api/marketplace-orders/",
            body(app, offering, project, &[slot], json!({})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["uuid"].as_str().expect("uuid").to_string(),
        r.body["marketplace_resource_uuid"]
            .as_str()
            .expect("resource")
            .to_string(),
    )
}

/// `user` books `slot` of the telescope for `project` and the provider accepts;
/// returns the booking resource's uuid.
async fn accepted(app: &TestApp, user: &str, project: Id, slot: Span) -> String {
    let (_, resource) = order(app, user, "telescope", project, slot).await;
    assert_eq!(decide(app, "owner", &resource, "accept").await.status, 200);
    resource
}

async fn act(app: &TestApp, user: &str, order: &str, action: &str) -> Resp {
    app.post(
        user,
        &format!("/api/marketplace-orders/{order}/{action}/"),
        json!({}),
    )
    .await
}

async fn decide(app: &TestApp, user: &str, resource: &str, action: &str) -> Resp {
    let path = match action {
        "terminate" => format!("/api/marketplace-resources/{resource}/terminate/"),
        _ => format!("/api/booking-resources/{resource}/{action}/"),
    };
    app.post(user, &path, json!({})).await
}

/// Everything stored about bookings: (resource, state, slots) and (order, state).
async fn full_snapshot(app: &TestApp) -> Snapshot {
    let mut r: Vec<_> = app
        .all_resources()
        .await
        .into_iter()
        .map(|r| {
            (
                r.id,
                r.state,
                r.slots.iter().map(|s| s.interval()).collect(),
            )
        })
        .collect();
    r.sort_by_key(|x| x.0);
    let mut o: Vec<_> = app
        .all_orders()
        .await
        .into_iter()
        .map(|o| (o.id, o.state))
        .collect();
    o.sort_by_key(|x| x.0);
    (r, o)
}

/// The live events of an offering's calendar that overlap `slot`.
async fn events_at(
    env: &crate::helpers::SyncEnv,
    app: &TestApp,
    offering: Id,
    slot: Span,
) -> Vec<Value> {
    let cal = app.calendar_id(offering).await;
    env.live_events(&cal)
        .into_iter()
        .filter(|ev| {
            let es = ev["start"]["dateTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            let ee = ev["end"]["dateTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            match (es, ee) {
                (Some(es), Some(ee)) => {
                    es.with_timezone(&Utc) < slot.1 && slot.0 < ee.with_timezone(&Utc)
                }
                _ => false,
            }
        })
        .collect()
}

/// Asserts a refused call changed nothing, and a following sync writes nothing.
async fn assert_refused_untouched(
    app: &TestApp,
    env: &crate::helpers::SyncEnv,
    offering: Id,
    r: &Resp,
    status: u16,
    before: &Snapshot,
) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(&full_snapshot(app).await, before, "the store changed");
    env.reset();
    let run = env.sync(offering).await;
    assert_eq!(
        (
            run.summary.created,
            run.summary.updated,
            run.summary.deleted
        ),
        (0, 0, 0),
        "Google was touched: {:?}",
        run.summary
    );
}

#[tokio::test]
async fn a_slot_freed_by_erring_an_order_is_not_booked_twice_when_the_order_executes_again() {
    let (app, dave, imaging, env, scope) = telescope_with_tenant("dave").await;
    let s = (at(40, 10), at(40, 11));
    // bob (a member) orders S: pending the consumer's approval, holding S.
    let (bob_order, bob_res) = order(&app, "bob", "telescope", imaging, s).await;
    // The provider errs it, which frees S; dave books S.
    let r = app
        .post(
            "owner",
            &format!("/api/marketplace-orders/{bob_order}/set_state_erred/"),
            json!({"error_message": "x"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    accepted(&app, "dave", dave, s).await;
    env.sync(scope).await;
    assert_eq!(events_at(&env, &app, scope, s).await.len(), 1);
    // Executing bob's order again would hold S twice: refused with creation's message.
    let before = full_snapshot(&app).await;
    let r = act(&app, "owner", &bob_order, "set_state_executing").await;
    assert_refused_untouched(&app, &env, scope, &r, 400, &before).await;
    assert!(r.text.contains("is not available."), "{}", r.text);
    // And accepting it finds no executing order.
    let r = decide(&app, "owner", &bob_res, "accept").await;
    assert_refused_untouched(&app, &env, scope, &r, 409, &before).await;
    assert_eq!(events_at(&env, &app, scope, s).await.len(), 1);
}

#[tokio::test]
async fn a_new_order_is_checked_against_every_time_it_asks_for_however_far_apart() {
    // A new order reads only the offering's time that overlaps what it asks for: every
    // item of a request with items weeks apart must still meet every kind of held time
    // (a booking, a pending request, busy time from Google), and time between the
    // items refuses nothing.
    let (mut app, dave, imaging, env, scope) = telescope_with_tenant("dave").await;
    let erin = add_tenant(&mut app, "erin").await;
    let booked = (at(44, 10), at(44, 11));
    let requested = (at(46, 10), at(46, 11));
    let busy = (at(48, 10), at(48, 11));
    accepted(&app, "dave", dave, booked).await;
    // bob's order waits for the consumer's approval, holding its time.
    order(&app, "bob", "telescope", imaging, requested).await;
    // Someone takes time in the offering's Google Calendar; a sync imports it as busy.
    env.sync(scope).await;
    let cal = app.calendar_id(scope).await;
    let when = |t: DateTime<Utc>| bookcal::google::EventTime::DateTime {
        at: t.fixed_offset(),
        time_zone: None,
    };
    let external = bookcal::google::Event {
        id: "e0googleside".into(),
        start: Some(when(busy.0)),
        end: Some(when(busy.1)),
        summary: Some("Maintenance".into()),
        ..bookcal::google::Event::default()
    };
    env.human
        .event_insert(&cal, &external)
        .await
        .expect("external event");
    assert_eq!(env.sync(scope).await.summary.busy_slots, 1);
    let free_before = (at(30, 9), at(30, 10));
    let free_after = (at(60, 9), at(60, 10));
    for (held, why) in [
        (booked, "is not available."),
        (requested, "Other booking request exists."),
        (busy, "is not available."),
    ] {
        for items in [
            vec![free_before, held],
            vec![held, free_after],
            vec![free_before, held, free_after],
        ] {
            let before = full_snapshot(&app).await;
            let r = app
                .post(
                    "erin",
                    "/api/marketplace-orders/",
                    body(&app, "telescope", erin, &items, json!({})),
                )
                .await;
            assert_refused_untouched(&app, &env, scope, &r, 400, &before).await;
            assert!(r.text.contains(why), "{items:?}: {}", r.text);
        }
    }
    // Items on both sides of all that held time are free.
    let r = app
        .post(
            "erin",
            "/api/marketplace-orders/",
            body(
                &app,
                "telescope",
                erin,
                &[free_before, free_after],
                json!({}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_canceled_order_is_terminal_and_never_takes_its_slot_back() {
    let (app, carol, imaging, env, scope) = telescope_with_tenant("carol").await;
    let s = (at(41, 10), at(41, 12));
    let (alice_order, _) = order(&app, "alice", "telescope", imaging, s).await;
    assert_eq!(act(&app, "alice", &alice_order, "cancel").await.status, 202);
    accepted(&app, "carol", carol, s).await;
    env.sync(scope).await;
    let before = full_snapshot(&app).await;
    for action in [
        "set_state_erred",
        "set_state_executing",
        "set_state_done",
        "approve_by_consumer",
        "cancel",
    ] {
        let r = act(&app, "admin", &alice_order, action).await;
        assert_refused_untouched(&app, &env, scope, &r, 409, &before).await;
    }
    assert_eq!(events_at(&env, &app, scope, s).await.len(), 1);
}

#[tokio::test]
async fn a_backend_id_from_the_public_feed_cannot_aim_at_another_tenants_event() {
    let (app, carol, imaging, env, scope) = telescope_with_tenant("carol").await;
    let s1 = (at(42, 9), at(42, 10));
    let s2 = (at(43, 15), at(43, 16));
    let alice_res = accepted(&app, "alice", imaging, s1).await;
    env.sync(scope).await;
    let mut cal = app
        .store
        .calendar(scope)
        .await
        .expect("read")
        .expect("calendar");
    cal.public = true;
    app.store
        .write(vec![Store::calendar_change(&cal).expect("encode")])
        .await
        .expect("public");
    // carol reads alice's UID from the public feed.
    let feed = app
        .req(
            reqwest::Method::GET,
            None,
            &format!("/feeds/offerings/{}.ics", scope.hex()),
            None,
        )
        .await;
    assert_eq!(feed.status, 200);
    let uids: Vec<String> = feed
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("UID:"))
        .map(|u| u.trim().to_string())
        .collect();
    let alice_slot = app
        .store
        .resource(Id::parse(&alice_res).expect("id"))
        .await
        .expect("read")
        .expect("resource")
        .slots[0]
        .clone();
    assert!(alice_slot.backend_id.starts_with("booking_"));
    let stolen = uids
        .iter()
        .find(|u| u.starts_with("slot-"))
        .expect("a booked slot in the feed")
        .clone();
    for u in &uids {
        assert!(!u.contains(&alice_slot.backend_id), "the feed reveals {u}");
    }
    let google_before = events_at(&env, &app, scope, s1).await;
    assert_eq!(google_before.len(), 1);
    // carol orders another slot naming that id (and, had it leaked, the real one).
    for aimed in [
        stolen.trim_end_matches("@bookcal").to_string(),
        alice_slot.backend_id.clone(),
    ] {
        let s = if aimed == alice_slot.backend_id {
            (at(44, 15), at(44, 16))
        } else {
            s2
        };
        let r = app
            .post(
                "carol",
                "/api/marketplace-orders/",
                body(&app, "telescope", carol, &[s], json!({"backend_id": aimed})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let res = app
            .store
            .resource(
                Id::parse(r.body["marketplace_resource_uuid"].as_str().expect("res")).expect("id"),
            )
            .await
            .expect("read")
            .expect("resource");
        assert_ne!(
            res.slots[0].backend_id, aimed,
            "the server chooses slot ids"
        );
        assert!(res.slots[0].backend_id.starts_with("booking_"));
    }
    env.sync(scope).await;
    // alice's event is still alice's, at her time.
    let after = events_at(&env, &app, scope, s1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], google_before[0]["id"]);
    assert_eq!(after[0]["summary"], google_before[0]["summary"]);
    assert_eq!(after[0]["start"], google_before[0]["start"]);
    // And the feed carries one VEVENT per UID.
    let feed = app
        .req(
            reqwest::Method::GET,
            None,
            &format!("/feeds/offerings/{}.ics", scope.hex()),
            None,
        )
        .await;
    let uids: Vec<&str> = feed
        .text
        .lines()
        .filter(|l| l.starts_with("UID:"))
        .collect();
    let distinct: std::collections::HashSet<&&str> = uids.iter().collect();
    assert_eq!(distinct.len(), uids.len(), "{uids:?}");
}

#[tokio::test]
async fn two_long_backend_ids_with_one_prefix_become_two_events() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let scope = app.offering_id("telescope");
    let project = app.project_id("imaging");
    let alice = app
        .store
        .user_by_name("alice")
        .await
        .expect("read")
        .expect("alice")
        .id;
    let long = "x".repeat(1500);
    let now = Utc::now();
    let spans = [(at(45, 9), at(45, 10)), (at(45, 11), at(45, 12))];
    for (i, s) in spans.iter().enumerate() {
        let r = Resource {
            id: Id::new_v4(),
            name: format!("Imported {i}"),
            slug: format!("imported-{i}"),
            description: String::new(),
            offering: scope,
            project,
            state: ResourceState::Ok,
            backend_id: String::new(),
            attributes: json!({}),
            slots: vec![Slot {
                start: s.0,
                end: s.1,
                backend_id: format!("{long}{i}"),
            }],
            created: now,
            modified: now,
            created_by: alice,
            consumer_reviewed_by: None,
            creation_order: None,
            end_date: None,
            error_message: String::new(),
        };
        app.store
            .write(vec![Change::Resource(r)])
            .await
            .expect("store");
    }
    let run = env.sync(scope).await;
    assert!(
        run.summary.warnings.is_empty(),
        "{:?}",
        run.summary.warnings
    );
    let a = events_at(&env, &app, scope, spans[0]).await;
    let b = events_at(&env, &app, scope, spans[1]).await;
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_ne!(a[0]["id"], b[0]["id"]);
    // Stable: a second sync changes nothing.
    env.reset();
    let run = env.sync(scope).await;
    assert_eq!(
        (
            run.summary.created,
            run.summary.updated,
            run.summary.deleted
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn accept_never_skips_the_consumers_approval_and_always_names_the_order() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let scope = app.offering_id("telescope");
    let imaging = app.project_id("imaging");
    env.sync(scope).await;
    let (bob_order, bob_res) =
        order(&app, "bob", "telescope", imaging, (at(46, 9), at(46, 10))).await;
    let before = full_snapshot(&app).await;
    let r = decide(&app, "owner", &bob_res, "accept").await;
    assert_refused_untouched(&app, &env, scope, &r, 400, &before).await;
    assert_eq!(
        r.body,
        json!(["Unable to complete action because related order is not found."])
    );
    // Approved by the consumer, then accepted: the order's uuid.
    assert_eq!(
        act(&app, "alice", &bob_order, "approve_by_consumer")
            .await
            .status,
        200
    );
    let r = decide(&app, "owner", &bob_res, "accept").await;
    assert_eq!(
        (r.status, r.body["order_uuid"].as_str()),
        (200, Some(bob_order.as_str()))
    );
    // After unlink there is no order to complete: 400, never {"order_uuid": null}.
    let (o2, r2) = order(
        &app,
        "alice",
        "telescope",
        imaging,
        (at(46, 11), at(46, 12)),
    )
    .await;
    assert_eq!(act(&app, "admin", &o2, "unlink").await.status, 204);
    env.sync(scope).await;
    let before = full_snapshot(&app).await;
    for action in ["accept", "reject"] {
        let r = decide(&app, "owner", &r2, action).await;
        assert_refused_untouched(&app, &env, scope, &r, 400, &before).await;
        assert!(r.body.get("order_uuid").is_none(), "{}", r.text);
    }
}

#[tokio::test]
async fn a_project_member_who_did_not_book_cannot_see_or_touch_the_booking() {
    let app = spawn_app().await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    env.sync(room).await;
    let kickoff = app
        .get("owner", "/api/booking-resources/?name=Kick-off")
        .await
        .body[0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let before = full_snapshot(&app).await;
    let r = app
        .get("bob", &format!("/api/booking-resources/{kickoff}/"))
        .await;
    assert_eq!(r.status, 404);
    let listed = app
        .get("bob", "/api/booking-resources/?page_size=100")
        .await;
    assert!(!listed.text.contains(&kickoff));
    for action in ["accept", "reject"] {
        let r = decide(&app, "bob", &kickoff, action).await;
        assert_refused_untouched(&app, &env, room, &r, 404, &before).await;
    }
    // As a marketplace resource of his project it exists for bob, but is not his.
    let r = decide(&app, "bob", &kickoff, "terminate").await;
    assert_refused_untouched(&app, &env, room, &r, 403, &before).await;
}

#[tokio::test]
async fn terminate_frees_an_accepted_slot_and_its_event_goes_on_the_next_sync() {
    let mut app = spawn_app().await;
    let carol = add_tenant(&mut app, "carol").await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora");
    let kickoff = app
        .get("owner", "/api/booking-resources/?name=Kick-off")
        .await
        .body[0]
        .clone();
    let uuid = kickoff["uuid"].as_str().expect("uuid").to_string();
    let slot: Span = (
        DateTime::parse_from_rfc3339(kickoff["slots"][0]["start"].as_str().expect("start"))
            .expect("t")
            .with_timezone(&Utc),
        DateTime::parse_from_rfc3339(kickoff["slots"][0]["end"].as_str().expect("end"))
            .expect("t")
            .with_timezone(&Utc),
    );
    env.sync(room).await;
    assert_eq!(events_at(&env, &app, room, slot).await.len(), 1);
    // A stranger cannot find it; carol's order for that time is refused.
    assert_eq!(decide(&app, "carol", &uuid, "terminate").await.status, 404);
    let r = app
        .post(
            "carol",
            "/api/marketplace-orders/",
            body(&app, "room-aurora", carol, &[slot], json!({})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Its creator terminates it.
    let r = decide(&app, "alice", &uuid, "terminate").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.body["order_uuid"]
        .as_str()
        .expect("order uuid")
        .to_string();
    let o = app
        .get("alice", &format!("/api/marketplace-orders/{t}/"))
        .await;
    assert_eq!(
        (o.body["type"].as_str(), o.body["state"].as_str()),
        (Some("Terminate"), Some("done"))
    );
    let res = app
        .get("owner", &format!("/api/booking-resources/{uuid}/"))
        .await;
    assert_eq!(res.body["state"], "Terminated");
    assert_eq!(decide(&app, "alice", &uuid, "terminate").await.status, 409);
    // The event goes; the time is free again.
    let run = env.sync(room).await;
    assert_eq!(run.summary.deleted, 1, "{:?}", run.summary);
    assert!(events_at(&env, &app, room, slot).await.is_empty());
    let r = app
        .post(
            "carol",
            "/api/marketplace-orders/",
            body(&app, "room-aurora", carol, &[slot], json!({})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Every (Create order, resource) pair is one the lifecycle allows, and no two
/// bookings hold overlapping time.
async fn assert_consistent(app: &TestApp, offering: Id) -> usize {
    let orders = app.all_orders().await;
    let mut held: Vec<(Id, Interval)> = Vec::new();
    for r in app.store.offering_resources(offering).await.expect("read") {
        let order = orders
            .iter()
            .find(|o| o.resource == r.id && o.kind == OrderType::Create);
        if let Some(o) = order {
            assert!(
                pair_allowed(o.state, r.state),
                "{:?} with {:?}",
                o.state,
                r.state
            );
        }
        if !r.state.holds_slots() {
            continue;
        }
        if !r.slots.is_empty() {
            held.extend(r.slots.iter().map(|s| (r.id, s.interval())));
        } else if let Some(o) = order.filter(|o| o.state.holds_request()) {
            held.extend(o.requested().into_iter().map(|s| (r.id, s)));
        }
    }
    for (i, (a, x)) in held.iter().enumerate() {
        for (b, y) in &held[i + 1..] {
            assert!(
                a == b || !x.overlaps(y),
                "{a} and {b} both hold {x:?} / {y:?}"
            );
        }
    }
    held.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_racing_over_overlapping_slots_never_double_book() {
    let app = spawn_app().await;
    let imaging = app.project_id("imaging");
    let scope = app.offering_id("telescope");
    // Six overlapping candidate slots on one day.
    let slots: Vec<Span> = (0..6u32).map(|i| (at(50, 8 + i), at(50, 10 + i))).collect();
    let users = ["alice", "bob", "owner", "manager", "admin"];
    let order_actions = [
        "approve_by_consumer",
        "cancel",
        "set_state_erred",
        "set_state_executing",
        "set_state_done",
    ];
    let known: std::sync::Arc<tokio::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let counts: std::sync::Arc<std::sync::Mutex<HashMap<u16, usize>>> = Default::default();
    // A fixed amount of work (8 clients x 16 actions), not a time budget: a loaded
    // machine must not make the race smaller than the assertions below need.
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for seed in 0..8u64 {
        let (app, known, counts, slots) =
            (app.clone(), known.clone(), counts.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..16 {
                let user = users[rng.gen_range(0..users.len())];
                let pick = { known.lock().await.clone() };
                let choice = rng.gen_range(0..10);
                let r = if choice < 3 || pick.is_empty() {
                    let s = slots[rng.gen_range(0..slots.len())];
                    let r = app
                        .post(
                            user,
                            "/api/marketplace-orders/",
                            body(&app, "telescope", imaging, &[s], json!({})),
                        )
                        .await;
                    if r.status == 201 {
                        known.lock().await.push((
                            r.body["uuid"].as_str().unwrap_or_default().to_string(),
                            r.body["marketplace_resource_uuid"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        ));
                    }
                    r
                } else {
                    let (o, res) = &pick[rng.gen_range(0..pick.len())];
                    match choice {
                        3..=6 => {
                            let a = order_actions[rng.gen_range(0..order_actions.len())];
                            act(&app, user, o, a).await
                        }
                        7 => decide(&app, user, res, "accept").await,
                        8 => decide(&app, user, res, "reject").await,
                        _ => decide(&app, user, res, "terminate").await,
                    }
                };
                assert!(r.status < 500, "{}", r.text);
                *counts.lock().expect("counts").entry(r.status).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let held = assert_consistent(&app, scope).await;
    let counts = counts.lock().expect("counts").clone();
    let total: usize = counts.values().sum();
    assert!(total >= 100, "{counts:?}");
    assert!(counts.get(&200).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(
        counts.get(&400).copied().unwrap_or(0) > 0,
        "some collisions: {counts:?}"
    );
    assert!(held > 0, "{counts:?}");
}

fn uuids(r: &Resp) -> Vec<String> {
    r.body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["uuid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_filters_and_orderings_waldur_forms_send_are_answered() {
    let app = spawn_app().await;
    let imaging = app.project_id("imaging");
    let (pending, pending_res) =
        order(&app, "bob", "telescope", imaging, (at(47, 9), at(47, 10))).await;
    let (_mine, _) = order(
        &app,
        "alice",
        "telescope",
        imaging,
        (at(47, 11), at(47, 12)),
    )
    .await;
    let customer = app
        .store
        .project(imaging)
        .await
        .expect("read")
        .expect("project")
        .customer;
    let owner = app
        .store
        .user_by_name("owner")
        .await
        .expect("read")
        .expect("owner")
        .id;
    let cust_url = format!("{}/api/customers/{}/", app.base, customer.hex());
    let count = |r: &Resp| r.body.as_array().map_or(0, Vec::len);
    for list in ["/api/marketplace-orders/", "/api/booking-resources/"] {
        let all = count(&app.get("admin", &format!("{list}?page_size=100")).await);
        assert!(all >= 2);
        // (query, expect all, none, or 400)
        let cases: Vec<(String, Option<bool>)> = vec![
            ("offering_type=Marketplace.Booking".into(), Some(true)),
            ("offering_type=Marketplace.Basic".into(), Some(false)),
            (format!("customer={cust_url}"), Some(true)),
            (
                format!(
                    "customer={}/api/customers/{}/",
                    app.base,
                    Id::new_v4().hex()
                ),
                Some(false),
            ),
            ("customer=nonsense".into(), None),
            ("created_before=2000-01-01 00:00".into(), Some(false)),
            (
                "created_before=2999-01-01T00:00:00%2B0100".into(),
                Some(true),
            ),
            (
                "modified_before=2999-01-01T00:00:00%2B01".into(),
                Some(true),
            ),
            ("created=2999-01-01T00:00:00-0100".into(), Some(false)),
            ("created=yesterday".into(), None),
            (format!("service_manager_uuid={}", owner.hex()), Some(true)),
            (
                format!("service_manager_uuid={}", Id::new_v4().hex()),
                Some(false),
            ),
            ("o=nonsense".into(), None),
        ];
        for (q, want) in cases {
            let r = app.get("admin", &format!("{list}?page_size=100&{q}")).await;
            match want {
                None => assert_eq!(r.status, 400, "{list}?{q}: {}", r.text),
                Some(all_of_them) => {
                    assert_eq!(r.status, 200, "{list}?{q}: {}", r.text);
                    assert_eq!(count(&r), if all_of_them { all } else { 0 }, "{list}?{q}");
                }
            }
        }
    }
    // Orders by resource name; ordered by the consumer's review time (unreviewed last).
    let r = app
        .get(
            "admin",
            "/api/marketplace-orders/?resource_name=TEST+book&page_size=100",
        )
        .await;
    assert!(count(&r) >= 2, "{}", r.text);
    let r = app
        .get(
            "admin",
            "/api/marketplace-orders/?o=consumer_reviewed_at&page_size=100",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        uuids(&r).last(),
        Some(&pending),
        "the unreviewed order sorts last"
    );
    let r = app
        .get(
            "admin",
            "/api/marketplace-orders/?o=-consumer_reviewed_at&page_size=100",
        )
        .await;
    assert_eq!(uuids(&r).first(), Some(&pending));
    assert_eq!(
        app.get("owner", "/api/booking-offerings/?o=bogus")
            .await
            .status,
        400
    );
    // can_approve_as_consumer=false: exactly the orders alice cannot approve.
    let yes = uuids(
        &app.get(
            "alice",
            "/api/marketplace-orders/?can_approve_as_consumer=true&page_size=100",
        )
        .await,
    );
    let no = uuids(
        &app.get(
            "alice",
            "/api/marketplace-orders/?can_approve_as_consumer=false&page_size=100",
        )
        .await,
    );
    let every = uuids(
        &app.get("alice", "/api/marketplace-orders/?page_size=100")
            .await,
    );
    assert_eq!(yes, vec![pending.clone()]);
    assert!(!no.contains(&pending));
    assert_eq!(yes.len() + no.len(), every.len());
    let _ = pending_res;
}

#[tokio::test]
async fn offerings_show_their_windows_from_now_on() {
    let app = spawn_app().await;
    let scope = app.offering_id("telescope");
    let mut off = app
        .store
        .offering(scope)
        .await
        .expect("read")
        .expect("offering");
    let past = (at(-3, 0), at(-2, 0));
    let ongoing = (at(-1, 0), at(30, 0));
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    off.attributes["schedules"] = json!([
        {"start": iso(past.0), "end": iso(past.1)},
        {"start": iso(ongoing.0), "end": iso(ongoing.1)},
    ]);
    app.store
        .write(vec![Change::Offering(off)])
        .await
        .expect("offering");
    let r = app
        .get("owner", &format!("/api/booking-offerings/{}/", scope.hex()))
        .await;
    let shown = r.body["attributes"]["schedules"]
        .as_array()
        .expect("schedules")
        .clone();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["end"], iso(ongoing.1));
    let start = DateTime::parse_from_rfc3339(shown[0]["start"].as_str().expect("start"))
        .expect("time")
        .with_timezone(&Utc);
    assert!(start > ongoing.0 && start <= Utc::now(), "{start}");
    assert!(shown[0]["start"]
        .as_str()
        .expect("start")
        .ends_with(".000Z"));
}
