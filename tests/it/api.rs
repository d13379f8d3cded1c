//! The Waldur booking API, driven over HTTP against the real server.

use crate::helpers::table::{delete, get, post, request};
use crate::helpers::{at, spawn_app, spawn_app_with, Options, Resp};
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
    for (user, visible) in [("alice", 0), ("admin", 3), ("manager", 3)] {
        let r = app.get(user, "/api/booking-offerings/").await;
        assert_eq!(count(&r), visible, "{user}");
    }
    let id = app.offering_id("room-aurora");
    let dashed = id.0.hyphenated().to_string();
    let rs = app
        .check([
            get("owner", format!("/api/booking-offerings/{dashed}/")),
            get("alice", format!("/api/booking-offerings/{dashed}/")).is(404),
            get(
                "owner",
                "/api/booking-offerings/00000000000000000000000000000000/",
            )
            .answers(404, json!({"detail": "Not found."})),
            get("owner", "/api/booking-offerings/not-a-uuid/").is(404),
            get(
                "owner",
                format!(
                    "/api/booking-offerings/{}/?field=name&field=uuid&field=bogus",
                    id.hex()
                ),
            )
            .answers(
                200,
                json!({"name": "Meeting room Aurora", "uuid": id.hex()}),
            ),
        ])
        .await;
    assert_eq!(rs[0].body["uuid"], id.hex());
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
    let provider = app.provider_of(room).await;
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
    // alice owns the project's customer but sees only the three she booked; bob, a
    // member of the project, only his own.
    for (user, visible) in [
        ("admin", 4),
        ("owner", 4),
        ("manager", 4),
        ("alice", 3),
        ("bob", 1),
    ] {
        let r = app.get(user, "/api/booking-resources/").await;
        assert_eq!(count(&r), visible, "{user}");
    }
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
        .write(vec![bookcal::store::Change::User(stranger.clone())])
        .await
        .expect("user");
    let tok = app.store.create_token(stranger.id).await.expect("token");
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
    let accept = format!("/api/booking-resources/{res}/accept/");
    let rs = app
        .check([
            // Only the provider accepts.
            post("alice", &accept, json!({})).is(403),
            post("owner", &accept, json!({})).answers(200, json!({"order_uuid": order})),
            get("alice", format!("/api/booking-resources/{res}/")),
            get("alice", format!("/api/marketplace-orders/{order}/")),
            post("owner", &accept, json!({})).answers(
                409,
                json!({"detail": "Valid states for operation: Creating."}),
            ),
        ])
        .await;
    assert_eq!(rs[2].body["state"], "OK");
    assert_eq!(rs[3].body["state"], "done");
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
        let before = app.snapshot().await;
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
        assert_eq!(app.snapshot().await, before, "{name} changed the store");
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
    let p = |a: &str| format!("/api/marketplace-orders/{order}/{a}/");
    let rs = app
        .check([
            // bob may not approve his own order for the organisation.
            post("bob", p("approve_by_consumer"), json!({})).is(403),
            post("bob", p("approve_by_provider"), json!({})).is(403),
            post("alice", p("reject_by_consumer"), json!({})),
            post(
                "alice",
                "/api/marketplace-orders/",
                app.order_body("telescope", &[(at(60, 11), at(60, 13))]),
            )
            .is(201),
        ])
        .await;
    assert!(rs[2].body["detail"].is_string());
}

#[tokio::test]
async fn order_state_actions_follow_the_state_machine() {
    let app = spawn_app().await;
    let mk = |h: u32| app.order_body("telescope", &[(at(70, h), at(70, h + 1))]);
    let uuid = |r: Vec<Resp>| r[0].body["uuid"].as_str().expect("uuid").to_string();
    let book = |user: &'static str, h: u32| post(user, "/api/marketplace-orders/", mk(h)).is(201);
    let o = uuid(app.check([book("bob", 1)]).await);
    let p = |a: &str| format!("/api/marketplace-orders/{o}/{a}/");
    let order = format!("/api/marketplace-orders/{o}/");
    let rs = app
        .check([
            // Pending order: approve by consumer -> executing -> done.
            post("owner", p("set_state_done"), json!({})).answers(
                409,
                json!({"detail": "Valid states for operation: executing."}),
            ),
            post("alice", p("approve_by_consumer"), json!({})),
            post("alice", p("approve_by_consumer"), json!({})).is(409),
            post("alice", p("set_state_done"), json!({})).is(403),
            post("owner", p("set_state_done"), json!({})),
            get("owner", &order),
            // set_backend_id, then done is terminal: no erring it afterwards.
            post("owner", p("set_backend_id"), json!({"backend_id": "ext-1"})),
            get("owner", &order),
            post("owner", p("set_backend_id"), json!({})).is(400),
            post(
                "owner",
                p("set_state_erred"),
                json!({"error_message": "boom"}),
            )
            .is(409),
        ])
        .await;
    assert!(rs[1].body["detail"].is_string());
    assert_eq!(rs[5].body["state"], "done");
    let res = rs[5].body["marketplace_resource_uuid"]
        .as_str()
        .expect("res");
    assert_eq!(
        app.get("owner", &format!("/api/booking-resources/{res}/"))
            .await
            .body["state"],
        "OK"
    );
    assert!(rs[6].body["status"].is_string());
    assert_eq!(rs[7].body["backend_id"], "ext-1");

    // An executing order errs and executes again; cancel answers 202, then the state
    // is final.
    let o = uuid(app.check([book("alice", 7)]).await);
    let p = |a: &str| format!("/api/marketplace-orders/{o}/{a}/");
    let rs = app
        .check([
            post(
                "owner",
                p("set_state_erred"),
                json!({"error_message": "boom"}),
            ),
            get("owner", format!("/api/marketplace-orders/{o}/")),
            post("owner", p("set_state_executing"), json!({})),
            post("alice", p("cancel"), json!({})).is(202),
            post("alice", p("cancel"), json!({})).is(409),
        ])
        .await;
    assert_eq!(rs[1].body["error_message"], "boom");

    // Destroy a pending order: 204; unlink: staff only.
    let o2 = uuid(app.check([book("bob", 3)]).await);
    let o3 = uuid(app.check([book("bob", 5)]).await);
    app.check([
        delete("bob", format!("/api/marketplace-orders/{o2}/")),
        get("bob", format!("/api/marketplace-orders/{o2}/")).is(404),
        post(
            "owner",
            format!("/api/marketplace-orders/{o3}/reject_by_provider/"),
            json!({}),
        )
        .is(409),
        post(
            "alice",
            format!("/api/marketplace-orders/{o3}/unlink/"),
            json!({}),
        )
        .is(403),
        post(
            "admin",
            format!("/api/marketplace-orders/{o3}/unlink/"),
            json!({}),
        )
        .is(204),
    ])
    .await;
}

#[tokio::test]
async fn orders_list_filters_and_the_order_offering_view() {
    let app = spawn_app().await;
    let tem = app.offering_id("tem-2100").0.hyphenated().to_string();
    for (user, query, visible) in [
        ("owner", "state=executing".to_string(), 2),
        ("owner", "state=done,executing".to_string(), 4),
        ("alice", format!("offering_uuid={tem}"), 2),
    ] {
        let r = app
            .get(user, &format!("/api/marketplace-orders/?{query}"))
            .await;
        assert_eq!(count(&r), visible, "{user} {query}");
    }
    assert_eq!(
        app.get("alice", "/api/marketplace-orders/?state=nope")
            .await
            .status,
        400
    );
    let r = app
        .get("owner", "/api/marketplace-orders/?state=executing")
        .await;
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
    app.check([
        post("alice", p("google_calendar_sync"), json!({})).is(404),
        post("manager", p("google_calendar_sync"), json!({})).is(403),
        post("owner", p("unshare_google_calendar"), json!({}))
            .answers(400, json!(["The calendar does not exist."])),
        post("owner", p("google_calendar_sync"), json!({})),
        post("owner", p("share_google_calendar"), json!({}))
            .answers(400, json!(["The calendar cannot be updated."])),
    ])
    .await;
    let gc = app
        .get("owner", &format!("/api/booking-offerings/{room}/"))
        .await
        .body["googlecalendar"]
        .clone();
    assert_eq!(gc["state"], "Creation Scheduled");
    assert_eq!(gc["public"], false);
    assert_eq!(app.store.jobs().await.expect("jobs").len(), 1);

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
    let before = app.snapshot().await;
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
    let order = app.order_body("room-aurora", &[(at(80, 9), at(80, 10))]);
    let with = |key: &str, v: Value| {
        let mut b = order.clone();
        match key.split_once('/') {
            Some((outer, inner)) => b[outer][inner] = v,
            None => b[key] = v,
        }
        b
    };
    let orders = "/api/marketplace-orders/";
    let unknown = format!(
        "{}/api/marketplace-public-offerings/00000000000000000000000000000001/",
        app.base
    );
    let rs = app
        .check([
            post("alice", orders, with("offering", json!(42))).is(400),
            post("alice", orders, with("offering", json!(unknown))).answers(
                400,
                json!({"offering": ["Invalid hyperlink - Object does not exist."]}),
            ),
            post(
                "alice",
                orders,
                with(
                    "attributes/schedules",
                    json!([{"start": "tomorrow", "end": "2030-01-01T10:00:00Z"}]),
                ),
            )
            .answers(
                400,
                json!(["The value tomorrow does not match the format."]),
            ),
            post("alice", orders, with("attributes/schedules", json!([])))
                .answers(400, json!(["Schedules are required."])),
            post("alice", orders, json!({})).is(400),
        ])
        .await;
    assert!(rs[0].body["offering"].is_array(), "{}", rs[0].text);
    assert_eq!(rs[4].body["project"], json!(["This field is required."]));
    assert_eq!(app.snapshot().await, before);
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
    app.check([
        request(Method::PUT, "owner", "/api/booking-offerings/")
            .answers(405, json!({"detail": "Method \"PUT\" not allowed."})),
        post("owner", "/api/booking-resources/", json!({})).is(405),
        get("owner", "/api/nothing-here/").answers(404, json!({"detail": "Not found."})),
    ])
    .await;
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

/// Pages of 3 of `list` (a path ending in `?` or `&`) in each ordering concatenate to
/// the whole list of `n` items in that ordering.
async fn assert_pages_tile(
    app: &crate::helpers::TestApp,
    list: &str,
    orderings: &[&str],
    n: usize,
) {
    let uuids = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x["uuid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    for o in orderings {
        let all = app
            .get("owner", &format!("{list}o={o}&page_size=100"))
            .await;
        assert_eq!(all.status, 200, "{}", all.text);
        let full = uuids(&all.body);
        assert_eq!(full.len(), n, "o={o}");
        let mut paged = Vec::new();
        for page in 1..=n.div_ceil(3) {
            let r = app
                .get("owner", &format!("{list}o={o}&page_size=3&page={page}"))
                .await;
            assert_eq!(r.status, 200, "o={o} page {page}: {}", r.text);
            paged.extend(uuids(&r.body));
        }
        assert_eq!(paged, full, "o={o}");
    }
}

#[tokio::test]
async fn order_pages_tile_the_full_order_for_every_ordering() {
    let app = spawn_app().await;
    // Eight more orders next to the four of the demo: bob's wait for alice, who
    // approves some (a review time) and rejects one (another state).
    let mut mine = Vec::new();
    for i in 0..8 {
        let d = 40 + i as i64;
        let body = app.order_body("telescope", &[(at(d, 20), at(d, 21))]);
        let r = app.post("bob", "/api/marketplace-orders/", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        mine.push(r.body["uuid"].as_str().expect("uuid").to_string());
    }
    let p = |o: &str, a: &str| format!("/api/marketplace-orders/{o}/{a}/");
    app.check([
        post("alice", p(&mine[5], "approve_by_consumer"), json!({})),
        post("alice", p(&mine[1], "approve_by_consumer"), json!({})),
        post("alice", p(&mine[3], "approve_by_consumer"), json!({})),
        post("alice", p(&mine[6], "reject_by_consumer"), json!({})),
    ])
    .await;
    let orderings = [
        "",
        "created",
        "-created",
        "state",
        "-state",
        "consumer_reviewed_at",
        "-consumer_reviewed_at",
        "-state&o=-created",
    ];
    assert_pages_tile(&app, "/api/marketplace-orders/?", &orderings, 12).await;
    let telescope = app.offering_id("telescope").hex();
    let by_offering = format!("/api/marketplace-orders/?offering_uuid={telescope}&");
    let n = count(&app.get("owner", &format!("{by_offering}page_size=1")).await);
    assert!(n >= 8, "{n}");
    assert_pages_tile(&app, &by_offering, &orderings, n).await;
    // The default order is by creation; the reviewed come first by review time.
    let created = |o: &str| {
        let app = &app;
        let o = o.to_string();
        async move {
            app.get(
                "owner",
                &format!("/api/marketplace-orders/?page_size=100{o}"),
            )
            .await
            .body
            .as_array()
            .expect("array")
            .iter()
            .map(|x| x["created"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
        }
    };
    let asc = created("").await;
    let mut sorted = asc.clone();
    sorted.sort();
    assert_eq!(asc, sorted);
    let desc = created("&o=-created").await;
    sorted.reverse();
    assert_eq!(desc, sorted);
    let reviewed = app
        .get(
            "owner",
            "/api/marketplace-orders/?o=consumer_reviewed_at&page_size=100",
        )
        .await;
    // By review time, the never reviewed last (by creation).
    let mine_in_order: Vec<&str> = uuid_list(&reviewed.body)
        .into_iter()
        .filter(|u| mine.iter().any(|m| m == u))
        .collect();
    let want: Vec<&str> = [5, 1, 3, 6, 0, 2, 4, 7]
        .iter()
        .map(|&i| mine[i].as_str())
        .collect();
    assert_eq!(mine_in_order, want);
}

fn uuid_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["uuid"].as_str())
        .collect()
}

// The list hot path orders only the requested page (see the store's `catalog_query::sort_prefix`) and
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
    assert_pages_tile(
        &app,
        "/api/booking-resources/?",
        &[
            "",
            "name",
            "-name",
            "schedules",
            "-schedules",
            "created",
            "-state",
            "type",
            "-created&o=name",
        ],
        13,
    )
    .await;
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
    let category = app
        .store
        .offering(tem)
        .await
        .expect("read")
        .expect("offering")
        .category
        .id;
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
        .directory()
        .await
        .expect("directory")
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
