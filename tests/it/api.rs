//! The Waldur booking API, driven over HTTP against the real server.

use crate::helpers::{at, spawn_app, spawn_app_with, Options};
use reqwest::Method;
use serde_json::{json, Value};

fn count(r: &crate::helpers::Resp) -> usize {
    r.headers
        .get("x-result-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Result-Count")
}

#[tokio::test]
async fn requests_without_or_with_a_bad_token_get_drf_401s() {
    let app = spawn_app().await;
    let r = app
        .req(Method::GET, None, "/api/booking-offerings/", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"detail": "Authentication credentials were not provided."})
    );
    assert_eq!(
        r.headers.get("www-authenticate").map(|v| v.to_str().ok()),
        Some(Some("Token"))
    );
    let r = app
        .http
        .get(format!("{}/api/booking-offerings/", app.base))
        .header("Authorization", "token nonsense")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"detail": "Invalid token."})
    );
    // The query-string form upstream accepts.
    let r = app
        .req(
            Method::GET,
            None,
            &format!(
                "/api/booking-offerings/?x-auth-token={}",
                app.tokens["owner"]
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn booking_offerings_are_visible_to_provider_staff_only() {
    let app = spawn_app().await;
    let r = app.get("owner", "/api/booking-offerings/").await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&r), 3);
    let names: Vec<&str> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "Electron microscope JEM-2100",
            "Meeting room Aurora",
            "Telescope night slots"
        ]
    );
    for o in r.body.as_array().expect("array") {
        assert_eq!(
            o["googlecalendar"],
            json!({"backend_id": null, "public": false, "http_link": null})
        );
        assert_eq!(o["type"], "Marketplace.Booking");
        for k in [
            "uuid",
            "created",
            "attributes",
            "options",
            "resource_options",
            "plugin_options",
            "state",
            "country",
            "backend_metadata",
            "billing_period_applies",
            "billing_mode_components",
            "category_uuid",
            "account_settings",
        ] {
            assert!(!o[k].is_null(), "{k} is null");
        }
        assert!(o["url"].as_str().expect("url").starts_with(&app.base));
    }
    assert_eq!(count(&app.get("alice", "/api/booking-offerings/").await), 0);
    assert_eq!(count(&app.get("admin", "/api/booking-offerings/").await), 3);
    assert_eq!(
        count(&app.get("manager", "/api/booking-offerings/").await),
        3
    );
    let id = app.offering_id("room-aurora");
    let dashed = id.0.hyphenated().to_string();
    let r = app
        .get("owner", &format!("/api/booking-offerings/{dashed}/"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["uuid"], id.hex());
    assert_eq!(
        app.get("alice", &format!("/api/booking-offerings/{dashed}/"))
            .await
            .status,
        404
    );
    let r = app
        .get(
            "owner",
            "/api/booking-offerings/00000000000000000000000000000000/",
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (404, json!({"detail": "Not found."}))
    );
    assert_eq!(
        app.get("owner", "/api/booking-offerings/not-a-uuid/")
            .await
            .status,
        404
    );
    let r = app
        .get(
            "owner",
            &format!(
                "/api/booking-offerings/{}/?field=name&field=uuid&field=bogus",
                id.hex()
            ),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"name": "Meeting room Aurora", "uuid": id.hex()})
    );
}

#[tokio::test]
async fn lists_paginate_with_link_and_count_headers_and_head() {
    let app = spawn_app().await;
    let r = app
        .get("owner", "/api/booking-resources/?page_size=3&o=name")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&r), 4);
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    let link = r
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .expect("Link")
        .to_string();
    assert!(link.contains("rel=\"first\""));
    assert!(
        link.contains(&format!(
            "<{}/api/booking-resources/?page_size=3&o=name&page=2>; rel=\"next\"",
            app.base
        )),
        "{link}"
    );
    assert!(!link.contains("rel=\"prev\""));
    let r2 = app
        .get("owner", "/api/booking-resources/?page_size=3&o=name&page=2")
        .await;
    assert_eq!(r2.body.as_array().map(Vec::len), Some(1));
    let link2 = r2
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .expect("Link")
        .to_string();
    assert!(
        link2.contains("rel=\"prev\"") && !link2.contains("rel=\"next\""),
        "{link2}"
    );
    let r = app.get("owner", "/api/booking-resources/?page=9").await;
    assert_eq!(
        (r.status, r.body.clone()),
        (404, json!({"detail": "Invalid page."}))
    );
    let h = app
        .req(
            Method::HEAD,
            Some("owner"),
            "/api/booking-resources/?state=OK",
            None,
        )
        .await;
    assert_eq!(h.status, 200);
    assert_eq!(count(&h), 2);
    assert!(h.text.is_empty());
}

#[tokio::test]
async fn booking_resources_filter_and_order_like_waldur() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora");
    let dashed = room.0.hyphenated();
    let cases: Vec<(String, usize)> = vec![
        (format!("offering_uuid={dashed}"), 2),
        (
            format!(
                "offering_uuid={},{}",
                room.hex(),
                app.offering_id("tem-2100").hex()
            ),
            4,
        ),
        ("offering_slug=tem-2100".into(), 2),
        ("state=OK".into(), 2),
        ("state=Creating&state=OK".into(), 4),
        ("state=Terminated".into(), 0),
        ("name=imaging".into(), 2),
        ("name_exact=Weekly sync".into(), 1),
        ("query=kick".into(), 1),
        (
            format!("project_uuid={}", app.project_id("imaging").hex()),
            4,
        ),
        ("created=2000-01-01".into(), 4),
        ("modified=2999-01-01T00:00:00Z".into(), 0),
    ];
    for (q, want) in cases {
        let r = app
            .get("owner", &format!("/api/booking-resources/?{q}"))
            .await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        assert_eq!(count(&r), want, "{q}");
    }
    let provider = app.store.read().expect("read").offerings[&room].customer;
    assert_eq!(
        count(
            &app.get(
                "owner",
                &format!("/api/booking-resources/?provider_uuid={}", provider.hex())
            )
            .await
        ),
        4
    );
    assert_eq!(
        count(
            &app.get(
                "owner",
                &format!(
                    "/api/booking-resources/?connected_customer_uuid={}",
                    provider.hex()
                )
            )
            .await
        ),
        4
    );
    let r = app
        .get("owner", "/api/booking-resources/?o=schedules")
        .await;
    let starts: Vec<String> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x["slots"][0]["start"].as_str().unwrap_or("").to_string())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    let r = app
        .get("owner", "/api/booking-resources/?o=-schedules")
        .await;
    let first = r.body[0]["slots"][0]["start"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(Some(&first), sorted.last());
    for bad in [
        "state=Bogus",
        "offering_uuid=xyz",
        "o=nonsense",
        "created=yesterday",
    ] {
        let r = app
            .get("owner", &format!("/api/booking-resources/?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn booking_resources_are_visible_to_staff_the_provider_and_their_creator_only() {
    let app = spawn_app().await;
    assert_eq!(count(&app.get("admin", "/api/booking-resources/").await), 4);
    assert_eq!(count(&app.get("owner", "/api/booking-resources/").await), 4);
    assert_eq!(
        count(&app.get("manager", "/api/booking-resources/").await),
        4
    );
    // alice owns the project's customer but sees only the three she booked; bob, a
    // member of the project, only his own.
    assert_eq!(count(&app.get("alice", "/api/booking-resources/").await), 3);
    assert_eq!(count(&app.get("bob", "/api/booking-resources/").await), 1);
    // A stranger: a new user with no roles.
    let stranger = bookcal::domain::User {
        id: bookcal::domain::Id::new_v4(),
        username: "stranger".into(),
        full_name: "S".into(),
        email: String::new(),
        is_staff: false,
        created: chrono::Utc::now(),
    };
    app.store
        .mutate(|_| Ok::<_, ()>((vec![bookcal::store::Change::User(stranger.clone())], ())))
        .expect("user");
    let tok = app.store.create_token(stranger.id).expect("token");
    let r = app
        .http
        .get(format!("{}/api/booking-resources/", app.base))
        .header("Authorization", format!("Token {tok}"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()
            .get("x-result-count")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    let some = app.get("owner", "/api/booking-resources/").await.body[0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let r = app
        .http
        .get(format!("{}/api/booking-resources/{some}/", app.base))
        .header("Authorization", format!("Token {tok}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_owner_booking_is_executing_at_once_and_accept_makes_it_ok() {
    let app = spawn_app().await;
    let body = app.order_body(
        "room-aurora",
        &[(at(30, 9), at(30, 10)), (at(31, 9), at(31, 10))],
    );
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["state"], "executing");
    assert_eq!(r.body["type"], "Create");
    let order = r.body["uuid"].as_str().expect("uuid").to_string();
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_string();
    let rr = app
        .get("alice", &format!("/api/booking-resources/{res}/"))
        .await;
    assert_eq!(rr.body["state"], "Creating");
    assert_eq!(rr.body["slots"].as_array().map(Vec::len), Some(2));
    assert!(rr.body["slots"][0]["backend_id"]
        .as_str()
        .expect("bid")
        .starts_with("booking_"));
    // Only the provider accepts.
    assert_eq!(
        app.post(
            "alice",
            &format!("/api/booking-resources/{res}/accept/"),
            json!({})
        )
        .await
        .status,
        403
    );
    let a = app
        .post(
            "owner",
            &format!("/api/booking-resources/{res}/accept/"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"order_uuid": order}));
    assert_eq!(
        app.get("alice", &format!("/api/booking-resources/{res}/"))
            .await
            .body["state"],
        "OK"
    );
    assert_eq!(
        app.get("alice", &format!("/api/marketplace-orders/{order}/"))
            .await
            .body["state"],
        "done"
    );
    let again = app
        .post(
            "owner",
            &format!("/api/booking-resources/{res}/accept/"),
            json!({}),
        )
        .await;
    assert_eq!(
        (again.status, again.body),
        (
            409,
            json!({"detail": "Valid states for operation: Creating."})
        )
    );
}

#[tokio::test]
async fn rejecting_a_booking_cancels_its_order_and_frees_the_slot() {
    let app = spawn_app().await;
    let slot = [(at(40, 9), at(40, 11))];
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &slot),
        )
        .await;
    let res = r.body["marketplace_resource_uuid"]
        .as_str()
        .expect("res")
        .to_string();
    let rej = app
        .post(
            "owner",
            &format!("/api/booking-resources/{res}/reject/"),
            json!({}),
        )
        .await;
    assert_eq!(rej.status, 200);
    assert_eq!(rej.body["order_uuid"], r.body["uuid"]);
    assert_eq!(
        app.get("alice", &format!("/api/booking-resources/{res}/"))
            .await
            .body["state"],
        "Terminated"
    );
    assert_eq!(
        app.get(
            "alice",
            &format!(
                "/api/marketplace-orders/{}/",
                r.body["uuid"].as_str().unwrap_or("")
            )
        )
        .await
        .body["state"],
        "canceled"
    );
    let again = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &slot),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
}

#[tokio::test]
async fn overlapping_and_invalid_schedules_are_refused_with_upstream_messages() {
    let app = spawn_app().await;
    let ok = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(50, 9), at(50, 12))]),
        )
        .await;
    assert_eq!(ok.status, 201);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cases = vec![
        (
            "partial overlap at the start",
            vec![(at(50, 8), at(50, 10))],
            "is not available.",
        ),
        (
            "partial overlap at the end",
            vec![(at(50, 11), at(50, 13))],
            "is not available.",
        ),
        (
            "containing",
            vec![(at(50, 7), at(50, 14))],
            "is not available.",
        ),
        (
            "end before start",
            vec![(at(51, 10), at(51, 9))],
            "the end must be after the start",
        ),
        (
            "in the past",
            vec![(at(-2, 9), at(-2, 10))],
            "Past slots are not available for selection.",
        ),
        (
            "beyond availability",
            vec![(at(500, 9), at(500, 10))],
            "is not available for selected offering.",
        ),
        (
            "overlapping items",
            vec![(at(52, 9), at(52, 11)), (at(52, 10), at(52, 12))],
            "overlaps another item",
        ),
    ];
    for (name, slots, msg) in cases {
        let before = app.snapshot();
        let r = app
            .post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("room-aurora", &slots),
            )
            .await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        let msgs = r.body.as_array().expect("list body");
        assert!(
            msgs.iter()
                .any(|m| m.as_str().is_some_and(|m| m.contains(msg))),
            "{name}: {msgs:?}"
        );
        assert_eq!(app.snapshot(), before, "{name} changed the store");
    }
    // Touching the end of a booking is fine.
    let r = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("room-aurora", &[(at(50, 12), at(50, 13))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let _ = fmt;
}

#[tokio::test]
async fn a_pending_request_blocks_overlapping_requests_until_it_is_rejected() {
    let app = spawn_app().await;
    // bob is a project member, not an owner: his order waits for consumer approval.
    let r = app
        .post(
            "bob",
            "/api/marketplace-orders/",
            app.order_body("telescope", &[(at(60, 10), at(60, 12))]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["state"], "pending-consumer");
    let order = r.body["uuid"].as_str().expect("uuid").to_string();
    let clash = app
        .post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("telescope", &[(at(60, 11), at(60, 13))]),
        )
        .await;
    assert_eq!(clash.status, 400);
    assert!(
        clash.text.contains("Other booking request exists."),
        "{}",
        clash.text
    );
    // bob may not approve his own order for the organisation.
    assert_eq!(
        app.post(
            "bob",
            &format!("/api/marketplace-orders/{order}/approve_by_consumer/"),
            json!({})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            "bob",
            &format!("/api/marketplace-orders/{order}/approve_by_provider/"),
            json!({})
        )
        .await
        .status,
        403
    );
    let rej = app
        .post(
            "alice",
            &format!("/api/marketplace-orders/{order}/reject_by_consumer/"),
            json!({}),
        )
        .await;
    assert_eq!(rej.status, 200);
    assert!(rej.body["detail"].is_string());
    assert_eq!(
        app.post(
            "alice",
            "/api/marketplace-orders/",
            app.order_body("telescope", &[(at(60, 11), at(60, 13))])
        )
        .await
        .status,
        201
    );
}

#[tokio::test]
async fn order_state_actions_follow_the_state_machine() {
    let app = spawn_app().await;
    let mk = |h: u32| app.order_body("telescope", &[(at(70, h), at(70, h + 1))]);
    // Pending order: approve by consumer -> executing -> done.
    let o = app
        .post("bob", "/api/marketplace-orders/", mk(1))
        .await
        .body["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let p = |a: &str| format!("/api/marketplace-orders/{o}/{a}/");
    let r = app.post("owner", &p("set_state_done"), json!({})).await;
    assert_eq!(
        (r.status, r.body),
        (
            409,
            json!({"detail": "Valid states for operation: executing."})
        )
    );
    let r = app
        .post("alice", &p("approve_by_consumer"), json!({}))
        .await;
    assert_eq!((r.status, r.body["detail"].is_string()), (200, true));
    assert_eq!(
        app.post("alice", &p("approve_by_consumer"), json!({}))
            .await
            .status,
        409
    );
    assert_eq!(
        app.post("alice", &p("set_state_done"), json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        app.post("owner", &p("set_state_done"), json!({}))
            .await
            .status,
        200
    );
    let order = app
        .get("owner", &format!("/api/marketplace-orders/{o}/"))
        .await
        .body;
    assert_eq!(order["state"], "done");
    let res = order["marketplace_resource_uuid"].as_str().expect("res");
    assert_eq!(
        app.get("owner", &format!("/api/booking-resources/{res}/"))
            .await
            .body["state"],
        "OK"
    );
    // set_backend_id, erred, executing again.
    let r = app
        .post(
            "owner",
            &p("set_backend_id"),
            json!({"backend_id": "ext-1"}),
        )
        .await;
    assert_eq!((r.status, r.body["status"].is_string()), (200, true));
    assert_eq!(
        app.get("owner", &format!("/api/marketplace-orders/{o}/"))
            .await
            .body["backend_id"],
        "ext-1"
    );
    assert_eq!(
        app.post("owner", &p("set_backend_id"), json!({}))
            .await
            .status,
        400
    );
    // done is terminal: no erring it afterwards.
    assert_eq!(
        app.post(
            "owner",
            &p("set_state_erred"),
            json!({"error_message": "boom"})
        )
        .await
        .status,
        409
    );
    // An executing order errs and executes again.
    let o = app
        .post("alice", "/api/marketplace-orders/", mk(7))
        .await
        .body["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let p = |a: &str| format!("/api/marketplace-orders/{o}/{a}/");
    assert_eq!(
        app.post(
            "owner",
            &p("set_state_erred"),
            json!({"error_message": "boom"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.get("owner", &format!("/api/marketplace-orders/{o}/"))
            .await
            .body["error_message"],
        "boom"
    );
    assert_eq!(
        app.post("owner", &p("set_state_executing"), json!({}))
            .await
            .status,
        200
    );
    // Cancel answers 202, then the state is final.
    let r = app.post("alice", &p("cancel"), json!({})).await;
    assert_eq!(r.status, 202);
    assert_eq!(app.post("alice", &p("cancel"), json!({})).await.status, 409);
    // Destroy a pending order: 204; unlink: staff only.
    let o2 = app
        .post("bob", "/api/marketplace-orders/", mk(3))
        .await
        .body["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let r = app
        .req(
            Method::DELETE,
            Some("bob"),
            &format!("/api/marketplace-orders/{o2}/"),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.get("bob", &format!("/api/marketplace-orders/{o2}/"))
            .await
            .status,
        404
    );
    let o3 = app
        .post("bob", "/api/marketplace-orders/", mk(5))
        .await
        .body["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    assert_eq!(
        app.post(
            "owner",
            &format!("/api/marketplace-orders/{o3}/reject_by_provider/"),
            json!({})
        )
        .await
        .status,
        409
    );
    assert_eq!(
        app.post(
            "alice",
            &format!("/api/marketplace-orders/{o3}/unlink/"),
            json!({})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            "admin",
            &format!("/api/marketplace-orders/{o3}/unlink/"),
            json!({})
        )
        .await
        .status,
        204
    );
}

#[tokio::test]
async fn orders_list_filters_and_the_order_offering_view() {
    let app = spawn_app().await;
    let r = app
        .get("owner", "/api/marketplace-orders/?state=executing")
        .await;
    assert_eq!(count(&r), 2);
    assert_eq!(
        count(
            &app.get("owner", "/api/marketplace-orders/?state=done,executing")
                .await
        ),
        4
    );
    assert_eq!(
        count(
            &app.get(
                "alice",
                &format!(
                    "/api/marketplace-orders/?offering_uuid={}",
                    app.offering_id("tem-2100").0.hyphenated()
                )
            )
            .await
        ),
        2
    );
    assert_eq!(
        app.get("alice", "/api/marketplace-orders/?state=nope")
            .await
            .status,
        400
    );
    let created: Vec<String> = app
        .get("owner", "/api/marketplace-orders/")
        .await
        .body
        .as_array()
        .expect("a")
        .iter()
        .map(|o| o["created"].as_str().unwrap_or("").to_string())
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(created, sorted);
    let any = r.body[0]["uuid"].as_str().expect("uuid").to_string();
    let off = app
        .get("alice", &format!("/api/marketplace-orders/{any}/offering/"))
        .await;
    assert_eq!(off.status, 200);
    assert_eq!(off.body["google_calendar_is_public"], false);
    assert!(off.body["google_calendar_link"].is_null());
}

#[tokio::test]
async fn calendar_actions_validate_then_answer_200() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora").hex();
    let p = |a: &str| format!("/api/booking-offerings/{room}/{a}/");
    assert_eq!(
        app.post("alice", &p("google_calendar_sync"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        app.post("manager", &p("google_calendar_sync"), json!({}))
            .await
            .status,
        403
    );
    let r = app
        .post("owner", &p("unshare_google_calendar"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, json!(["The calendar does not exist."]))
    );
    let r = app
        .post("owner", &p("google_calendar_sync"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("owner", &p("share_google_calendar"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, json!(["The calendar cannot be updated."]))
    );
    let gc = app
        .get("owner", &format!("/api/booking-offerings/{room}/"))
        .await
        .body["googlecalendar"]
        .clone();
    assert_eq!(gc["state"], "Creation Scheduled");
    assert_eq!(gc["public"], false);
    assert_eq!(app.store.jobs().expect("jobs").len(), 1);

    let app = spawn_app_with(Options {
        google_credentials: false,
        ..Options::default()
    })
    .await;
    let room = app.offering_id("room-aurora").hex();
    let r = app
        .post(
            "owner",
            &format!("/api/booking-offerings/{room}/share_google_calendar/"),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, json!(["Google credentials do not exist."]))
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let before = app.snapshot();
    let url = format!("{}/api/marketplace-orders/", app.base);
    let tok = format!("Token {}", app.tokens["alice"]);
    let send = |body: Vec<u8>| {
        app.http
            .post(url.clone())
            .header("Authorization", tok.clone())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let r = send(b"{not json".to_vec()).await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("t").contains("JSON parse error"));
    let r = send(b"[1,2]".to_vec()).await.expect("send");
    assert_eq!(r.status(), 400);
    let r = send(vec![b' '; 3 * 1024 * 1024]).await.expect("send");
    assert_eq!(r.status(), 413);
    let mut body = app.order_body("room-aurora", &[(at(80, 9), at(80, 10))]);
    body["offering"] = json!(42);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 400);
    assert!(r.body["offering"].is_array(), "{}", r.text);
    let mut body = app.order_body("room-aurora", &[(at(80, 9), at(80, 10))]);
    body["offering"] = json!(format!(
        "{}/api/marketplace-public-offerings/00000000000000000000000000000001/",
        app.base
    ));
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!({"offering": ["Invalid hyperlink - Object does not exist."]})
        )
    );
    let mut body = app.order_body("room-aurora", &[(at(80, 9), at(80, 10))]);
    body["attributes"]["schedules"] = json!([{"start": "tomorrow", "end": "2030-01-01T10:00:00Z"}]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!(["The value tomorrow does not match the format."])
        )
    );
    let mut body = app.order_body("room-aurora", &[(at(80, 9), at(80, 10))]);
    body["attributes"]["schedules"] = json!([]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (400, json!(["Schedules are required."]))
    );
    let r = app
        .post("alice", "/api/marketplace-orders/", json!({}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["project"], json!(["This field is required."]));
    assert_eq!(app.snapshot(), before);
}

#[tokio::test]
async fn racing_requests_for_one_slot_book_it_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            // Overlapping but different intervals, so it is the overlap rule that decides.
            let body = app.order_body(
                "room-aurora",
                &[(at(90, 9) + chrono::Duration::minutes(i), at(90, 11))],
            );
            app.post("alice", "/api/marketplace-orders/", body)
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 15);
}

#[tokio::test]
async fn unsupported_methods_and_unknown_routes_answer_in_drf_shape() {
    let app = spawn_app().await;
    let r = app
        .req(Method::PUT, Some("owner"), "/api/booking-offerings/", None)
        .await;
    assert_eq!(
        (r.status, r.body),
        (405, json!({"detail": "Method \"PUT\" not allowed."}))
    );
    let r = app
        .req(
            Method::POST,
            Some("owner"),
            "/api/booking-resources/",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 405);
    let r = app.get("owner", "/api/nothing-here/").await;
    assert_eq!((r.status, r.body), (404, json!({"detail": "Not found."})));
}

#[tokio::test]
async fn marketplace_bookings_lists_taken_slots() {
    let app = spawn_app().await;
    let room = app.offering_id("room-aurora").hex();
    let r = app
        .get("alice", &format!("/api/marketplace-bookings/{room}/"))
        .await;
    assert_eq!(r.status, 200);
    let items = r.body.as_array().expect("array");
    assert_eq!(items.len(), 3);
    for i in items {
        assert!(
            i["start"].is_string() && i["end"].is_string() && i["created_by_full_name"].is_string()
        );
    }
}

#[tokio::test]
async fn order_attachments_can_be_uploaded_read_and_deleted() {
    let app = spawn_app().await;
    let o = app
        .post(
            "bob",
            "/api/marketplace-orders/",
            app.order_body("telescope", &[(at(95, 1), at(95, 2))]),
        )
        .await
        .body["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let form = reqwest::multipart::Form::new().part(
        "attachment",
        reqwest::multipart::Part::bytes(b"%PDF-1.4 hello".to_vec())
            .file_name("plan.pdf")
            .mime_str("application/pdf")
            .expect("mime"),
    );
    let r = app
        .http
        .post(format!(
            "{}/api/marketplace-orders/{o}/update_attachment/",
            app.base
        ))
        .header("Authorization", format!("Token {}", app.tokens["bob"]))
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let url = v["attachment"].as_str().expect("url").to_string();
    let got = app
        .http
        .get(&url)
        .header("Authorization", format!("Token {}", app.tokens["bob"]))
        .send()
        .await
        .expect("send");
    assert_eq!(
        got.bytes().await.expect("bytes").as_ref(),
        b"%PDF-1.4 hello"
    );
    assert_eq!(
        app.post(
            "bob",
            &format!("/api/marketplace-orders/{o}/delete_attachment/"),
            json!({})
        )
        .await
        .status,
        204
    );
    assert!(app
        .get("bob", &format!("/api/marketplace-orders/{o}/"))
        .await
        .body["attachment"]
        .is_null());
}

// Found by the waldur-api-client check (tests/waldur_client.rs): the client offers
// `o=type` for booking resources, and its datetime filters send Python's
// `isoformat()`, which for a naive datetime carries microseconds and no zone.

#[tokio::test]
async fn booking_resources_accept_every_ordering_the_python_client_offers() {
    let app = spawn_app().await;
    // BookingResourceOEnum of waldur-api-client 8.1.x.
    for o in [
        "created",
        "-created",
        "name",
        "-name",
        "schedules",
        "-schedules",
        "type",
        "-type",
    ] {
        let r = app
            .get("owner", &format!("/api/booking-resources/?o={o}&o=name"))
            .await;
        assert_eq!(r.status, 200, "o={o}: {}", r.text);
        assert_eq!(count(&r), 4, "o={o}");
    }
    // `type` is the same for every booking resource: the next key decides.
    let r = app
        .get("owner", "/api/booking-resources/?o=type&o=-name")
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "Weekly sync",
            "Sample imaging run",
            "Kick-off meeting",
            "Follow-up imaging"
        ]
    );
}

#[tokio::test]
async fn datetime_filters_take_naive_isoformat_values_with_microseconds_as_utc() {
    let app = spawn_app().await;
    let cases = [
        ("created=2000-01-01T10:00:00.123456", 4),
        ("modified=2000-01-01T10:00:00", 4),
        ("created=2999-01-01T10:00:00.5", 0),
        ("created=2000-01-01T10:00:00.123456%2B00:00", 4),
    ];
    for (q, want) in cases {
        for path in ["/api/booking-resources/", "/api/marketplace-orders/"] {
            let r = app.get("owner", &format!("{path}?{q}")).await;
            assert_eq!(r.status, 200, "{path}?{q}: {}", r.text);
            assert_eq!(count(&r), want, "{path}?{q}");
        }
    }
    let r = app
        .get(
            "owner",
            "/api/booking-resources/?created=2000-01-01T10:00:00.x",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

// The list hot path orders only the requested page (see `listing::sort_prefix`) and
// matches `query`/`name` without allocating: pages must still tile the full order.

#[tokio::test]
async fn booking_resource_pages_tile_the_full_order_for_every_ordering() {
    let app = spawn_app().await;
    // Nine more bookings (three with equal names) next to the four of the demo.
    for (i, name) in [
        "Zeta",
        "alpha",
        "Émile run",
        "Same",
        "Same",
        "Same",
        "beta",
        "Gamma",
        "delta",
    ]
    .iter()
    .enumerate()
    {
        let d = 40 + i as i64;
        let mut body = app.order_body("telescope", &[(at(d, 20), at(d, 21 + (i % 2) as u32))]);
        body["attributes"]["name"] = json!(name);
        let r = app.post("alice", "/api/marketplace-orders/", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    for o in [
        "",
        "name",
        "-name",
        "schedules",
        "-schedules",
        "created",
        "-state",
        "type",
        "-created&o=name",
    ] {
        let all = app
            .get(
                "owner",
                &format!("/api/booking-resources/?o={o}&page_size=100"),
            )
            .await;
        assert_eq!(all.status, 200, "{}", all.text);
        let full: Vec<Value> = all.body.as_array().expect("array").clone();
        assert_eq!(full.len(), 13);
        let mut paged = Vec::new();
        for page in 1..=5 {
            let r = app
                .get(
                    "owner",
                    &format!("/api/booking-resources/?o={o}&page_size=3&page={page}"),
                )
                .await;
            assert_eq!(r.status, 200, "o={o} page {page}: {}", r.text);
            paged.extend(r.body.as_array().expect("array").iter().cloned());
        }
        let uuids = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|x| x["uuid"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(uuids(&paged), uuids(&full), "o={o}");
    }
    // Default order: name (byte order, as before), then uuid for equal names.
    let r = app
        .get("owner", "/api/booking-resources/?page_size=100")
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let same: Vec<&str> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter(|x| x["name"] == "Same")
        .filter_map(|x| x["uuid"].as_str())
        .collect();
    let mut same_sorted = same.clone();
    same_sorted.sort();
    assert_eq!(same, same_sorted);
    // o=schedules: by first slot start.
    let r = app
        .get("owner", "/api/booking-resources/?o=-schedules&page_size=2")
        .await;
    assert_eq!(r.body[0]["name"], "delta");
    // Case-insensitive query and name, ASCII or not; query also takes the uuid.
    for (q, want) in [
        ("query=ÉMILE", 1),
        ("query=émile", 1),
        ("query=SAME", 3),
        ("name=Alpha", 1),
        ("name=A", 10),
        ("query=zz", 0),
    ] {
        let r = app
            .get("owner", &format!("/api/booking-resources/?{q}"))
            .await;
        assert_eq!(count(&r), want, "{q}");
    }
    let id = r_uuid(&app).await;
    let r = app
        .get(
            "owner",
            &format!("/api/booking-resources/?query={}", id.to_uppercase()),
        )
        .await;
    assert_eq!(count(&r), 1);
}

async fn r_uuid(app: &crate::helpers::TestApp) -> String {
    let r = app
        .get("owner", "/api/booking-resources/?name_exact=Zeta")
        .await;
    r.body[0]["uuid"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn offering_filters_work_the_same_on_resources_and_orders() {
    let app = spawn_app().await;
    let tem = app.offering_id("tem-2100");
    let category = app.store.read().expect("read").offerings[&tem].category.id;
    let url = format!(
        "{}/api/marketplace-public-offerings/{}/",
        app.base,
        tem.hex()
    );
    let cases = [
        format!("offering_uuid={}", tem.0.hyphenated()),
        format!("offering={url}"),
        format!("parent_offering_uuid={}", tem.hex()),
        "offering_slug=tem-2100".to_string(),
        format!("category_uuid={}", category.hex()),
    ];
    for q in &cases {
        for list in ["booking-resources", "marketplace-orders"] {
            let r = app.get("owner", &format!("/api/{list}/?{q}")).await;
            assert_eq!(r.status, 200, "{list}?{q}: {}", r.text);
            assert_eq!(count(&r), 2, "{list}?{q}");
            assert!(
                r.body
                    .as_array()
                    .expect("a")
                    .iter()
                    .all(|x| x["offering_uuid"] == tem.hex()),
                "{list}?{q}"
            );
        }
    }
    for list in ["booking-resources", "marketplace-orders"] {
        let r = app
            .get("owner", &format!("/api/{list}/?offering=not-a-link"))
            .await;
        assert_eq!(
            (r.status, r.body.clone()),
            (400, json!({"offering": ["Invalid hyperlink."]})),
            "{list}"
        );
    }
}

#[tokio::test]
async fn orders_are_found_by_resource_name_project_name_or_uuid_and_their_pages_tile_every_ordering(
) {
    let app = spawn_app().await;
    for (i, name) in ["Kickoff seminar", "Seminar B", "Night run", "Émile's run"]
        .iter()
        .enumerate()
    {
        let d = 40 + i as i64;
        let mut body = app.order_body("telescope", &[(at(d, 20), at(d, 21))]);
        body["attributes"]["name"] = json!(name);
        let r = app.post("alice", "/api/marketplace-orders/", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let all = app
        .get("alice", "/api/marketplace-orders/?page_size=100")
        .await;
    let all = all.body.as_array().expect("array").clone();
    assert!(all.len() >= 4);
    // What a full scan finds: resource or project name containing the needle.
    let project_names: std::collections::HashMap<String, String> = app
        .store
        .read()
        .expect("read")
        .projects
        .values()
        .map(|p| (p.id.hex(), p.name.to_lowercase()))
        .collect();
    let scan = |needle: &str| {
        let n = needle.to_lowercase();
        all.iter()
            .filter(|o| {
                o["resource_name"]
                    .as_str()
                    .is_some_and(|r| r.to_lowercase().contains(&n))
                    || o["project_uuid"]
                        .as_str()
                        .and_then(|p| project_names.get(p))
                        .is_some_and(|p| p.contains(&n))
            })
            .count()
    };
    let some_project = project_names.values().next().cloned().unwrap_or_default();
    let needles = [
        "seminar",
        "SEMINAR",
        "émile",
        "run",
        "ru",
        "zzz",
        some_project.as_str(),
    ];
    for needle in needles {
        let r = app
            .get(
                "alice",
                &format!("/api/marketplace-orders/?query={needle}&page_size=100"),
            )
            .await;
        assert_eq!(r.status, 200, "{needle}: {}", r.text);
        assert_eq!(count(&r), scan(needle), "query={needle}");
    }
    assert_eq!(scan("seminar"), 2);
    let uuid = all[0]["uuid"].as_str().unwrap_or_default().to_string();
    let r = app
        .get("alice", &format!("/api/marketplace-orders/?query={uuid}"))
        .await;
    assert_eq!(count(&r), 1);
    // Pages of 3 put together are the whole list, in every order.
    for o in [
        "",
        "created",
        "-created",
        "state",
        "-state",
        "modified",
        "-modified",
    ] {
        let whole = app
            .get(
                "alice",
                &format!("/api/marketplace-orders/?o={o}&page_size=100"),
            )
            .await;
        let uuids = |r: &crate::helpers::Resp| -> Vec<String> {
            r.body
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|x| x["uuid"].as_str().map(String::from))
                .collect()
        };
        let whole = uuids(&whole);
        let mut paged = Vec::new();
        for page in 1..=whole.len().div_ceil(3) {
            let r = app
                .get(
                    "alice",
                    &format!("/api/marketplace-orders/?o={o}&page_size=3&page={page}"),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            paged.extend(uuids(&r));
        }
        assert_eq!(paged, whole, "o={o}");
    }
}
