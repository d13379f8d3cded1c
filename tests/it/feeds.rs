//! The feed endpoints end to end, on the real server with the demo data: the public
//! busy-only feed, owner and "my bookings" token feeds, token management, HTTP caching
//! (ETag, Last-Modified, 304, HEAD, the in-memory cache), SEQUENCE on reschedules and
//! byte checks on what is served (RFC 5545 section 3.1).

use std::collections::BTreeMap;

use crate::helpers::{at, public_feed_path, spawn_app, spawn_app_with_state, Resp, TestApp};
use bookcal::domain::calendar::OfferingCalendar;
use bookcal::domain::Id;
use bookcal::store::{BusySlot, Change, Store};
use chrono::{Duration, TimeZone, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// Helpers

async fn set_busy(app: &TestApp, offering: Id, slots: Vec<BusySlot>) {
    app.store
        .write(vec![Change::Busy(offering, slots)])
        .await
        .expect("write busy slots");
}

async fn fetch(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut r = app.http.request(method, format!("{}{}", app.base, path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Resp {
        status,
        headers,
        body: Value::Null,
        text,
    }
}

async fn get_feed(app: &TestApp, path: &str) -> Resp {
    fetch(app, Method::GET, path, &[]).await
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Creates a token through the API and returns (response body, feed path).
async fn create_token(app: &TestApp, user: &str, collection: &str, name: &str) -> (Value, String) {
    let r = app.post(user, collection, json!({ "name": name })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.body["url"].as_str().expect("url").to_owned();
    let path = url
        .strip_prefix(&app.base)
        .expect("absolute URL on this server")
        .to_owned();
    (r.body, path)
}

fn offering_tokens(app: &TestApp, slug: &str) -> String {
    format!(
        "/api/booking-offerings/{}/feed_tokens/",
        app.offering_id(slug).hex()
    )
}

fn unfold(body: &str) -> Vec<String> {
    body.replace("\r\n ", "")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Unescaped TEXT, for looking for names in what a client would show.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\N", "\n")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\")
}

/// Every VEVENT's properties (name without parameters -> value), by UID.
fn events(body: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<BTreeMap<String, String>> = None;
    for line in unfold(body) {
        match line.as_str() {
            "BEGIN:VEVENT" => current = Some(BTreeMap::new()),
            "END:VEVENT" => {
                let props = current.take().expect("in an event");
                out.insert(props["UID"].clone(), props);
            }
            _ => {
                if let (Some(props), Some((k, v))) = (current.as_mut(), line.split_once(':')) {
                    let name = k.split(';').next().unwrap_or(k).to_owned();
                    let value = if k.contains(';') {
                        format!("{k}:{v}")
                    } else {
                        v.to_owned()
                    };
                    props.insert(name, value);
                }
            }
        }
    }
    out
}

fn summaries(body: &str) -> Vec<String> {
    let mut s: Vec<String> = events(body)
        .values()
        .map(|e| unescape(&e["SUMMARY"]))
        .collect();
    s.sort();
    s
}

/// RFC 5545 section 3.1: CRLF only, at most 75 octets per line, each line UTF-8.
fn assert_wire_format(body: &[u8]) {
    assert!(body.ends_with(b"\r\n"), "does not end in CRLF");
    for (i, b) in body.iter().enumerate() {
        if *b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r', "bare LF at byte {i}");
        }
        if *b == b'\r' {
            assert_eq!(body.get(i + 1), Some(&b'\n'), "bare CR at byte {i}");
        }
    }
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= 75, "line {n} has {} octets", line.len());
        assert!(std::str::from_utf8(line).is_ok(), "line {n} is not UTF-8");
    }
    let text = String::from_utf8_lossy(body);
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    for e in events(&text).values() {
        for prop in ["UID", "DTSTAMP", "DTSTART", "DTEND", "SEQUENCE", "SUMMARY"] {
            assert!(e.contains_key(prop), "an event lacks {prop}: {e:?}");
        }
    }
}

fn assert_calendar_headers(r: &Resp, private: bool) {
    assert_eq!(header(r, "content-type"), "text/calendar; charset=utf-8");
    let etag = header(r, "etag");
    assert!(
        etag.len() == 66 && etag.starts_with('"') && !etag.starts_with("W/"),
        "strong ETag: {etag}"
    );
    assert!(httpdate::parse_http_date(header(r, "last-modified")).is_ok());
    assert_eq!(header(r, "x-robots-tag"), "noindex");
    assert!(
        header(r, "content-disposition").starts_with("inline; filename=\""),
        "{}",
        header(r, "content-disposition")
    );
    if private {
        assert_eq!(header(r, "cache-control"), "private, max-age=300");
        assert_eq!(header(r, "referrer-policy"), "no-referrer");
    } else {
        assert_eq!(header(r, "cache-control"), "public, max-age=300");
    }
}

/// A resource of the demo data by name.
async fn resource_id(app: &TestApp, name: &str) -> Id {
    app.resource_named(name).await.id
}

// ---------------------------------------------------------------------------
// Public feed

#[tokio::test]
async fn the_public_feed_is_not_found_while_the_calendar_is_private() {
    let app = spawn_app().await;
    let id = app.offering_id("room-aurora");
    let r = get_feed(&app, &public_feed_path(id)).await;
    assert_eq!(r.status, 404);
    let private = OfferingCalendar::new(id);
    app.store
        .write(vec![Store::calendar_change(&private).expect("encode")])
        .await
        .expect("write");
    assert_eq!(get_feed(&app, &public_feed_path(id)).await.status, 404);
    for path in [
        "/feeds/offerings/nonsense.ics".to_owned(),
        format!("/feeds/offerings/{}", id.hex()),
        format!("/feeds/offerings/{}.ics", Id::new_v4().hex()),
    ] {
        assert_eq!(get_feed(&app, &path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_public_feed_shows_booked_and_busy_slots_without_personal_data() {
    let app = spawn_app().await;
    let id = app.make_public("room-aurora").await;
    // Berlin: 2 May 00:00 to 4 May 00:00 local is a two-day all-day block.
    let day = (Utc::now() + Duration::days(20)).date_naive();
    let berlin = chrono_tz::Europe::Berlin;
    let midnight = |d: chrono::NaiveDate| {
        berlin
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .single()
            .expect("unambiguous")
            .with_timezone(&Utc)
    };
    set_busy(
        &app,
        id,
        vec![
            BusySlot {
                start: at(3, 15),
                end: at(3, 16),
                source_event_id: "private-google-event-id".into(),
            },
            BusySlot {
                start: midnight(day),
                end: midnight(day + Duration::days(2)),
                source_event_id: "holiday".into(),
            },
        ],
    )
    .await;
    let r = get_feed(&app, &public_feed_path(id)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_calendar_headers(&r, false);
    assert_eq!(header(&r, "referrer-policy"), "");
    assert_eq!(
        header(&r, "content-disposition"),
        "inline; filename=\"room-aurora-busy.ics\""
    );
    assert_wire_format(r.text.as_bytes());
    // The two Aurora bookings have three slots; plus two busy slots.
    assert_eq!(
        summaries(&r.text),
        ["Booked", "Booked", "Booked", "Busy", "Busy"]
    );
    let all_day = events(&r.text)
        .into_values()
        .filter(|e| e["DTSTART"].starts_with("DTSTART;VALUE=DATE:"))
        .count();
    assert_eq!(all_day, 1);
    for e in events(&r.text).values() {
        assert!(!e.contains_key("DESCRIPTION"), "{e:?}");
        assert!(!e.contains_key("ATTENDEE") && !e.contains_key("ORGANIZER"));
        assert_eq!(unescape(&e["LOCATION"]), "Northlab, Building 2, Room 2.14");
    }
    let shown = unescape(&unfold(&r.text).join("\n"));
    let directory = app.store.directory().await.expect("read");
    let mut secrets: Vec<String> = directory
        .users
        .values()
        .flat_map(|u| [u.username.clone(), u.full_name.clone(), u.email.clone()])
        .chain(app.all_resources().await.iter().map(|r| r.name.to_string()))
        .chain(directory.projects.values().map(|p| p.name.clone()))
        .collect();
    secrets.push("private-google-event-id".into());
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!shown.contains(s.as_str()), "the public feed shows {s:?}");
    }
}

#[tokio::test]
async fn the_offering_shows_its_public_feed_and_where_its_tokens_are_managed() {
    let app = spawn_app().await;
    let id = app.offering_id("room-aurora");
    let path = format!("/api/booking-offerings/{}/", id.hex());
    let before = app.get("owner", &path).await.body;
    assert!(before["googlecalendar"].get("ical_feed_url").is_none());
    assert_eq!(
        before["feed_tokens_url"],
        format!("{}{}", app.base, offering_tokens(&app, "room-aurora"))
    );
    app.make_public("room-aurora").await;
    let after = app.get("owner", &path).await.body;
    assert_eq!(
        after["googlecalendar"]["ical_feed_url"],
        format!("{}{}", app.base, public_feed_path(id))
    );
}

// ---------------------------------------------------------------------------
// Owner token feeds and token management

#[tokio::test]
async fn an_owner_token_is_shown_once_and_opens_a_feed_with_booking_details() {
    let app = spawn_app().await;
    let collection = offering_tokens(&app, "room-aurora");
    let (created, path) = create_token(&app, "manager", &collection, "Front desk").await;
    assert_eq!(created["name"], "Front desk");
    assert!(created["last_used"].is_null());
    let secret = path
        .strip_prefix("/feeds/t/")
        .and_then(|p| p.strip_suffix(".ics"))
        .expect("token feed path");
    assert_eq!(secret.len(), 43);

    let list = app.get("owner", &collection).await;
    assert_eq!(list.status, 200);
    let items = list.body.as_array().expect("a bare array");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["uuid"], created["uuid"]);
    assert_eq!(items[0]["created_by_username"], "manager");
    assert!(items[0].get("url").is_none());
    assert!(!list.text.contains(secret));

    let r = get_feed(&app, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_calendar_headers(&r, true);
    assert_wire_format(r.text.as_bytes());
    assert!(
        !r.text.contains(secret),
        "the feed must not carry its token"
    );
    assert_eq!(
        summaries(&r.text),
        ["Kick-off meeting", "Weekly sync", "Weekly sync"]
    );
    for e in events(&r.text).values() {
        let desc = unescape(&e["DESCRIPTION"]);
        assert!(
            desc.contains("Booked by: Alice Åkesson <alice@alice-research.example.org>"),
            "{desc}"
        );
        assert!(desc.contains("Project: Imaging study"), "{desc}");
        assert!(desc.contains("Organisation: Alice Research"), "{desc}");
        let want = if e["SUMMARY"] == "Weekly sync" {
            "TENTATIVE"
        } else {
            "CONFIRMED"
        };
        assert_eq!(e["STATUS"], want);
        assert!(e["UID"].starts_with("slot-") && e["UID"].ends_with("@bookcal"));
    }
}

#[tokio::test]
async fn an_owner_token_stops_opening_its_feed_once_its_creator_no_longer_manages_the_offering() {
    let app = spawn_app().await;
    let collection = offering_tokens(&app, "room-aurora");
    let (_, path) = create_token(&app, "manager", &collection, "Front desk").await;
    // Twice: the second request reuses the access check of the first.
    assert_eq!(get_feed(&app, &path).await.status, 200);
    assert_eq!(get_feed(&app, &path).await.status, 200);
    let offering = app
        .store
        .offering(app.offering_id("room-aurora"))
        .await
        .expect("read")
        .expect("the offering");
    let provider = app
        .store
        .customer(offering.customer)
        .await
        .expect("read")
        .expect("the provider");
    let mut without = provider.clone();
    without.managers.clear();
    app.store
        .write(vec![Change::Customer(without)])
        .await
        .expect("write");
    assert_eq!(get_feed(&app, &path).await.status, 404);
    // Managing it again opens the feed again (the token was never revoked).
    app.store
        .write(vec![Change::Customer(provider)])
        .await
        .expect("write");
    assert_eq!(get_feed(&app, &path).await.status, 200);
}

#[tokio::test]
async fn a_revoked_token_feed_is_not_found() {
    let app = spawn_app().await;
    let collection = offering_tokens(&app, "room-aurora");
    let (a, path_a) = create_token(&app, "owner", &collection, "a").await;
    let (_, path_b) = create_token(&app, "owner", &collection, "b").await;
    assert_eq!(get_feed(&app, &path_a).await.status, 200);
    let r = app
        .req(
            Method::DELETE,
            Some("owner"),
            &format!("{collection}{}/", a["uuid"].as_str().expect("uuid")),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(get_feed(&app, &path_a).await.status, 404);
    assert_eq!(get_feed(&app, &path_b).await.status, 200);
    assert_eq!(
        app.get("owner", &collection)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Unknown and malformed secrets alike.
    for path in [
        format!("/feeds/t/{}.ics", "A".repeat(43)),
        "/feeds/t/short.ics".to_owned(),
        path_b.trim_end_matches(".ics").to_owned(),
    ] {
        assert_eq!(get_feed(&app, &path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn users_who_do_not_manage_the_offering_cannot_see_or_change_its_tokens() {
    let app = spawn_app().await;
    let collection = offering_tokens(&app, "room-aurora");
    let (token, _) = create_token(&app, "owner", &collection, "desk").await;
    let one = format!("{collection}{}/", token["uuid"].as_str().expect("uuid"));
    for user in ["alice", "bob"] {
        assert_eq!(app.get(user, &collection).await.status, 404, "{user}");
        let r = app.post(user, &collection, json!({"name": "mine"})).await;
        assert_eq!(r.status, 404, "{user}");
        let r = app.req(Method::DELETE, Some(user), &one, None).await;
        assert_eq!(r.status, 404, "{user}");
    }
    let r = app.req(Method::GET, None, &collection, None).await;
    assert_eq!(r.status, 401);
    // Staff and the provider's managers may.
    for user in ["admin", "manager"] {
        assert_eq!(app.get(user, &collection).await.status, 200, "{user}");
    }
    assert_eq!(
        app.get("owner", &collection)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A token of another offering cannot be deleted through this one.
    let other = offering_tokens(&app, "tem-2100");
    let r = app
        .req(
            Method::DELETE,
            Some("owner"),
            &format!("{other}{}/", token["uuid"].as_str().expect("uuid")),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn bad_token_names_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let collection = offering_tokens(&app, "room-aurora");
    let long = "x".repeat(151);
    let cases = [
        (json!({}), "This field is required."),
        (json!({"name": null}), "This field is required."),
        (json!({"name": "  "}), "This field may not be blank."),
        (json!({"name": 5}), "Not a valid string."),
        (
            json!({"name": long}),
            "Ensure this field has no more than 150 characters.",
        ),
        (
            json!({"name": "a\u{7}b"}),
            "Control characters are not allowed.",
        ),
    ];
    for (body, msg) in cases {
        for path in [collection.as_str(), "/api/feed-tokens/"] {
            let r = app.post("owner", path, body.clone()).await;
            assert_eq!(r.status, 400, "{body}");
            assert_eq!(r.body, json!({"name": [msg]}), "{body}");
        }
    }
    let r = app
        .req(Method::POST, Some("owner"), "/api/feed-tokens/", None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(app.get("owner", &collection).await.body, json!([]));
    assert_eq!(app.get("owner", "/api/feed-tokens/").await.body, json!([]));
}

// ---------------------------------------------------------------------------
// My bookings

#[tokio::test]
async fn the_my_bookings_feed_holds_only_the_callers_own_bookings_across_offerings() {
    let app = spawn_app().await;
    let (_, alice) = create_token(&app, "alice", "/api/feed-tokens/", "phone").await;
    let (bob_token, bob) = create_token(&app, "bob", "/api/feed-tokens/", "laptop").await;
    let r = get_feed(&app, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_calendar_headers(&r, true);
    assert_wire_format(r.text.as_bytes());
    assert!(r.text.contains("X-WR-TIMEZONE:UTC\r\n"));
    assert_eq!(
        summaries(&r.text),
        [
            "Kick-off meeting",
            "Sample imaging run",
            "Weekly sync",
            "Weekly sync"
        ]
    );
    let descriptions: Vec<String> = events(&r.text)
        .values()
        .map(|e| unescape(&e["DESCRIPTION"]))
        .collect();
    assert!(descriptions
        .iter()
        .any(|d| d.contains("Offering: Electron microscope JEM-2100")));
    let r = get_feed(&app, &bob).await;
    assert_eq!(summaries(&r.text), ["Follow-up imaging"]);

    // Tokens are private to their owner.
    assert_eq!(
        app.get("alice", "/api/feed-tokens/")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let bob_one = format!(
        "/api/feed-tokens/{}/",
        bob_token["uuid"].as_str().expect("uuid")
    );
    let r = app.req(Method::DELETE, Some("alice"), &bob_one, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(get_feed(&app, &bob).await.status, 200);
    let r = app.req(Method::DELETE, Some("bob"), &bob_one, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(get_feed(&app, &bob).await.status, 404);
}

#[tokio::test]
async fn a_token_use_is_recorded_in_the_background_without_re_rendering() {
    let (app, state) = spawn_app_with_state().await;
    let (token, path) = create_token(&app, "alice", "/api/feed-tokens/", "phone").await;
    let mut touches = state.feeds.touches();
    assert_eq!(get_feed(&app, &path).await.status, 200);
    let renders = state.feeds.renders();
    touches
        .wait_for(|n| *n >= 1)
        .await
        .expect("the last-use write finished");
    let list = app.get("alice", "/api/feed-tokens/").await.body;
    assert_eq!(list[0]["uuid"], token["uuid"]);
    assert!(list[0]["last_used"].is_string(), "{list}");
    // Within the minute no further write is started; the cache stays valid.
    assert_eq!(get_feed(&app, &path).await.status, 200);
    assert_eq!(state.feeds.renders(), renders);
    assert_eq!(*touches.borrow(), 1);
}

// ---------------------------------------------------------------------------
// HTTP caching

#[tokio::test]
async fn conditional_requests_are_answered_with_304_and_head_matches_get() {
    let app = spawn_app().await;
    let id = app.make_public("room-aurora").await;
    let path = public_feed_path(id);
    let full = get_feed(&app, &path).await;
    assert_eq!(full.status, 200);
    let etag = header(&full, "etag").to_owned();
    let lm = header(&full, "last-modified").to_owned();

    let listed = format!("W/\"whatever\", {etag}");
    // (If-None-Match, If-Modified-Since, status)
    let cases = [
        (Some(etag.as_str()), None, 304),
        (Some(listed.as_str()), None, 304),
        (Some("*"), None, 304),
        (Some("\"other\""), None, 200),
        (None, Some(lm.as_str()), 304),
        (None, Some("Thu, 01 Jan 1970 00:00:00 GMT"), 200),
        (None, Some("not a date"), 200),
        // If-None-Match decides alone when present.
        (Some("\"other\""), Some(lm.as_str()), 200),
    ];
    for (inm, ims, want) in cases {
        let mut h = Vec::new();
        if let Some(v) = inm {
            h.push(("if-none-match", v));
        }
        if let Some(v) = ims {
            h.push(("if-modified-since", v));
        }
        for method in [Method::GET, Method::HEAD] {
            let r = fetch(&app, method.clone(), &path, &h).await;
            assert_eq!(r.status, want, "{method} {inm:?} {ims:?}");
            assert_eq!(header(&r, "etag"), etag);
            if want == 304 {
                assert!(r.text.is_empty());
            }
        }
    }

    let head = fetch(&app, Method::HEAD, &path, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "x-robots-tag",
        "content-disposition",
    ] {
        assert_eq!(header(&head, name), header(&full, name), "{name}");
    }
    assert_eq!(header(&full, "content-length"), full.text.len().to_string());
}

#[tokio::test]
async fn a_feed_is_served_without_an_accept_header_and_with_any_accept_header() {
    let app = spawn_app().await;
    let id = app.make_public("room-aurora").await;
    let path = public_feed_path(id);
    // A raw request: no Accept at all, as Google's importer sends.
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Google-Calendar-Importer\r\n\
         Connection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("BEGIN:VCALENDAR"));
    for accept in [
        "application/json",
        "text/html",
        "text/calendar,*/*;q=0.8",
        "*/*",
    ] {
        let r = fetch(&app, Method::GET, &path, &[("accept", accept)]).await;
        assert_eq!(r.status, 200, "{accept}");
    }
}

#[tokio::test]
async fn a_data_change_changes_the_etag_and_an_unchanged_feed_is_served_from_memory() {
    let (app, state) = spawn_app_with_state().await;
    let id = app.make_public("room-aurora").await;
    let path = public_feed_path(id);
    let first = get_feed(&app, &path).await;
    let renders = state.feeds.renders();
    for _ in 0..3 {
        let again = get_feed(&app, &path).await;
        assert_eq!(again.text, first.text);
        assert_eq!(header(&again, "etag"), header(&first, "etag"));
    }
    assert_eq!(state.feeds.renders(), renders, "served from memory");

    let body = app.order_body("room-aurora", &[(at(40, 9), at(40, 11))]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let changed = get_feed(&app, &path).await;
    assert_eq!(state.feeds.renders(), renders + 1);
    assert_ne!(header(&changed, "etag"), header(&first, "etag"));
    assert_ne!(changed.text, first.text);
    assert_eq!(
        summaries(&changed.text).len(),
        summaries(&first.text).len() + 1
    );
    // The old validator no longer matches.
    let r = fetch(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", header(&first, "etag"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        httpdate::parse_http_date(header(&changed, "last-modified")).expect("date")
            >= httpdate::parse_http_date(header(&first, "last-modified")).expect("date")
    );

    // A write that leaves this feed's bytes alone keeps its validators.
    app.make_public("tem-2100").await;
    let same = get_feed(&app, &path).await;
    assert_eq!(header(&same, "etag"), header(&changed, "etag"));
    assert_eq!(
        header(&same, "last-modified"),
        header(&changed, "last-modified")
    );
}

#[tokio::test]
async fn a_rescheduled_slot_keeps_its_uid_and_gets_a_higher_sequence() {
    let app = spawn_app().await;
    let id = app.make_public("room-aurora").await;
    let path = public_feed_path(id);
    let rid = resource_id(&app, "Kick-off meeting").await;
    let resource = app
        .store
        .resource(rid)
        .await
        .expect("read")
        .expect("resource");
    let uid =
        bookcal::feeds::content::slot_uid(app.store.feed_uid_key(), &resource.slots[0].backend_id);
    let before = events(&get_feed(&app, &path).await.text)[&uid].clone();
    assert_eq!(before["SEQUENCE"], "0");

    let mut moved = resource.clone();
    moved.slots[0].start += Duration::hours(1);
    moved.slots[0].end += Duration::hours(1);
    moved.modified = resource.modified + Duration::minutes(5);
    app.store
        .write(vec![Change::Resource(moved.clone())])
        .await
        .expect("reschedule");
    let after = events(&get_feed(&app, &path).await.text)[&uid].clone();
    assert_eq!(after["SEQUENCE"], "1");
    assert_ne!(after["DTSTART"], before["DTSTART"]);
    assert_ne!(after["LAST-MODIFIED"], before["LAST-MODIFIED"]);

    // Other feeds showing the slot agree; an unrelated change does not raise it again.
    let (_, owner) = create_token(&app, "owner", &offering_tokens(&app, "room-aurora"), "x").await;
    assert_eq!(
        events(&get_feed(&app, &owner).await.text)[&uid]["SEQUENCE"],
        "1"
    );
    app.make_public("tem-2100").await;
    assert_eq!(
        events(&get_feed(&app, &path).await.text)[&uid]["SEQUENCE"],
        "1"
    );
    // Moving it back is another change.
    app.store
        .write(vec![Change::Resource(resource.clone())])
        .await
        .expect("reschedule back");
    assert_eq!(
        events(&get_feed(&app, &path).await.text)[&uid]["SEQUENCE"],
        "2"
    );
}

#[tokio::test]
async fn a_window_limits_the_events_and_a_malformed_one_is_a_bad_request() {
    let app = spawn_app().await;
    let id = app.make_public("room-aurora").await;
    let path = public_feed_path(id);
    let d = |days: i64| (Utc::now() + Duration::days(days)).date_naive().to_string();
    // Aurora slots: day 2, day 9 and day 16.
    let cases = [
        (format!("?from={}&to={}", d(1), d(3)), 1),
        (format!("?from={}", d(8)), 2),
        (format!("?to={}", d(10)), 2),
        (format!("?from={}T00:00:00Z&to={}T00:00:00Z", d(3), d(4)), 0),
        ("?unrelated=1".to_owned(), 3),
    ];
    for (q, n) in cases {
        let r = get_feed(&app, &format!("{path}{q}")).await;
        assert_eq!(r.status, 200, "{q}");
        assert_eq!(events(&r.text).len(), n, "{q}");
    }
    let bad = [
        ("?from=tomorrow", "from"),
        ("?to=2024-02-30", "to"),
        ("?from=2024-03-01&to=2024-02-01", "to"),
    ];
    for (q, field) in bad {
        let r = app
            .req(Method::GET, None, &format!("{path}{q}"), None)
            .await;
        assert_eq!(r.status, 400, "{q}");
        assert!(r.body[field][0].is_string(), "{q}: {}", r.text);
    }
    // Existence is checked first: a private feed stays 404 whatever the window.
    let private = app.offering_id("telescope");
    let r = get_feed(&app, &format!("{}?from=bad", public_feed_path(private))).await;
    assert_eq!(r.status, 404);
}
