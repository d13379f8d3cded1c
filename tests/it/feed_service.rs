//! The feed service under load and abuse: per-feed invalidation (a write renders only
//! the feeds whose data it touched), validators kept across identical re-renders,
//! no store write on a feed GET.

use crate::helpers::{at, spawn_app_with_state, TestApp};
use bookcal::domain::calendar::OfferingCalendar;
use bookcal::domain::Id;
use bookcal::store::Store;
use serde_json::json;

fn make_public(app: &TestApp, slug: &str) -> Id {
    let id = app.offering_id(slug);
    let cal = OfferingCalendar {
        public: true,
        ..OfferingCalendar::new(id)
    };
    app.store
        .sled()
        .expect("sled")
        .sync_put(vec![Store::calendar_change(&cal).expect("encode")])
        .expect("write calendar");
    id
}

fn public_path(id: Id) -> String {
    format!("/feeds/offerings/{}.ics", id.hex())
}

/// (status, ETag, Last-Modified, body) of a GET.
async fn get(app: &TestApp, path: &str) -> (u16, String, String, String) {
    let r = app
        .http
        .get(format!("{}{}", app.base, path))
        .send()
        .await
        .expect("request");
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (etag, lm) = (h("etag"), h("last-modified"));
    (r.status().as_u16(), etag, lm, r.text().await.expect("body"))
}

#[tokio::test]
async fn a_booking_in_one_offering_re_renders_only_that_offerings_feeds() {
    let (app, state) = spawn_app_with_state().await;
    let aurora = make_public(&app, "room-aurora");
    let tem = make_public(&app, "tem-2100");
    let (_, tem_etag, _, _) = get(&app, &public_path(tem)).await;
    let (_, aurora_etag, _, _) = get(&app, &public_path(aurora)).await;
    let renders = state.feed_cache.renders();

    let body = app.order_body("room-aurora", &[(at(40, 9), at(40, 11))]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let (status, etag, _, _) = get(&app, &public_path(tem)).await;
    assert_eq!((status, etag), (200, tem_etag));
    assert_eq!(
        state.feed_cache.renders(),
        renders,
        "the other offering re-rendered"
    );
    let (_, etag, _, _) = get(&app, &public_path(aurora)).await;
    assert_ne!(etag, aurora_etag);
    assert_eq!(state.feed_cache.renders(), renders + 1);
}

#[tokio::test]
async fn a_re_render_with_the_same_bytes_keeps_etag_and_last_modified() {
    let (app, state) = spawn_app_with_state().await;
    let aurora = make_public(&app, "room-aurora");
    let first = get(&app, &public_path(aurora)).await;
    let renders = state.feed_cache.renders();
    // The offering's own calendar record is written again (as a sync run does): the
    // feed is re-rendered, to the same bytes.
    make_public(&app, "room-aurora");
    let again = get(&app, &public_path(aurora)).await;
    assert_eq!(state.feed_cache.renders(), renders + 1);
    assert_eq!(again, first);
}

#[tokio::test]
async fn a_feed_get_writes_nothing_to_the_store() {
    let (app, _state) = spawn_app_with_state().await;
    let aurora = make_public(&app, "room-aurora");
    let commits = app.store.commits();
    for _ in 0..3 {
        let (status, ..) = get(&app, &public_path(aurora)).await;
        assert_eq!(status, 200);
    }
    // Owner feeds too (their last use is recorded in the background, once a minute:
    // that write is awaited before counting).
    let collection = format!("/api/booking-offerings/{}/feed_tokens/", aurora.hex());
    let r = app
        .post("owner", &collection, json!({"name": "desk"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = r.body["url"]
        .as_str()
        .and_then(|u| u.strip_prefix(&app.base))
        .expect("token feed url")
        .to_owned();
    assert_eq!(app.store.commits(), commits + 1, "the token itself");
    let mut touches = app.state.feed_cache.touches();
    assert_eq!(get(&app, &path).await.0, 200);
    touches
        .wait_for(|n| *n >= 1)
        .await
        .expect("last use written");
    let commits = app.store.commits();
    for _ in 0..3 {
        assert_eq!(get(&app, &path).await.0, 200);
    }
    assert_eq!(app.store.commits(), commits);
}
