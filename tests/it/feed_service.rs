//! The feed service under load and abuse: per-feed invalidation (a write renders only
//! the feeds whose data it touched), validators kept across identical re-renders,
//! no store write on a feed GET, coalesced renders, no lock shared between feeds,
//! normalised windows, a bounded cache and renders shared fairly between clients.
//!
//! Render slots are held with `RenderGate::hold_all` to pile requests up; the tests
//! wait on the gate's and the cache's waiting counts, never on time.

use std::sync::{Arc, Mutex};

use crate::helpers::{
    at, public_feed_path, spawn_app_with, spawn_app_with_state, Options, TestApp,
};
use bookcal::config::FeedSettings;
use bookcal::domain::Id;
use bookcal::feeds::{CacheLimits, FeedCache, FeedId, FeedKey, Window};
use bookcal::ical::RenderedFeed;
use chrono::{Duration, Utc};
use serde_json::json;

/// One render slot and a cache of `cache_mb`: what the flood tests need to be
/// deterministic.
fn constrained(cache_mb: u64) -> Options {
    Options {
        feeds: FeedSettings {
            cache_mb,
            render_threads: 1,
        },
        ..Options::default()
    }
}

/// Waits (yielding, no sleeping) until `cond` holds; a minute without it is a failure
/// (not a synchronisation: the condition is what the test waits on).
async fn until(mut cond: impl FnMut() -> bool) {
    let wait = async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("the condition held within a minute");
}

/// A day relative to today, as a query date.
fn day(days: i64) -> String {
    (Utc::now() + Duration::days(days)).date_naive().to_string()
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
    let aurora = app.make_public("room-aurora").await;
    let tem = app.make_public("tem-2100").await;
    let (_, tem_etag, _, _) = get(&app, &public_feed_path(tem)).await;
    let (_, aurora_etag, _, _) = get(&app, &public_feed_path(aurora)).await;
    let renders = state.feeds.renders();

    let body = app.order_body("room-aurora", &[(at(40, 9), at(40, 11))]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let (status, etag, _, _) = get(&app, &public_feed_path(tem)).await;
    assert_eq!((status, etag), (200, tem_etag));
    assert_eq!(
        state.feeds.renders(),
        renders,
        "the other offering re-rendered"
    );
    let (_, etag, _, _) = get(&app, &public_feed_path(aurora)).await;
    assert_ne!(etag, aurora_etag);
    assert_eq!(state.feeds.renders(), renders + 1);
}

#[tokio::test]
async fn a_re_render_with_the_same_bytes_keeps_etag_and_last_modified() {
    let (app, state) = spawn_app_with_state().await;
    let aurora = app.make_public("room-aurora").await;
    let first = get(&app, &public_feed_path(aurora)).await;
    let renders = state.feeds.renders();
    // The offering's own calendar record is written again (as a sync run does): the
    // feed is re-rendered, to the same bytes.
    app.make_public("room-aurora").await;
    let again = get(&app, &public_feed_path(aurora)).await;
    assert_eq!(state.feeds.renders(), renders + 1);
    assert_eq!(again, first);
}

#[tokio::test]
async fn a_feed_get_writes_nothing_to_the_store() {
    let (app, _state) = spawn_app_with_state().await;
    let aurora = app.make_public("room-aurora").await;
    let commits = app.store.commits();
    for _ in 0..3 {
        let (status, ..) = get(&app, &public_feed_path(aurora)).await;
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
    let mut touches = app.state.feeds.touches();
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

#[tokio::test]
async fn concurrent_misses_of_one_feed_render_it_once() {
    let app = spawn_app_with(constrained(32)).await;
    let feeds = app.state.feeds.clone();
    let aurora = app.make_public("room-aurora").await;
    let path = public_feed_path(aurora);
    let renders = feeds.renders();
    let held = feeds.gate().hold_all().await;
    const N: usize = 8;
    let requests: Vec<_> = (0..N)
        .map(|_| {
            let (http, url) = (app.http.clone(), format!("{}{path}", app.base));
            tokio::spawn(async move {
                let r = http.get(url).send().await.expect("request");
                (r.status().as_u16(), r.text().await.expect("body"))
            })
        })
        .collect();
    // One waits for a render slot, the others for its render.
    until(|| feeds.gate().waiting() == 1 && feeds.cache().waiting() == N - 1).await;
    drop(held);
    let mut bodies = Vec::new();
    for r in requests {
        let (status, body) = r.await.expect("task");
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert_eq!(feeds.renders(), renders + 1);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn a_cached_feed_is_served_while_another_feed_waits_to_render() {
    let app = spawn_app_with(constrained(32)).await;
    let feeds = app.state.feeds.clone();
    let aurora = app.make_public("room-aurora").await;
    let tem = app.make_public("tem-2100").await;
    let (_, tem_etag, _, _) = get(&app, &public_feed_path(tem)).await;
    let held = feeds.gate().hold_all().await;
    let waiting = {
        let (http, url) = (
            app.http.clone(),
            format!("{}{}", app.base, public_feed_path(aurora)),
        );
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    until(|| feeds.gate().waiting() == 1).await;
    let (status, etag, _, _) = get(&app, &public_feed_path(tem)).await;
    assert_eq!((status, etag), (200, tem_etag));
    drop(held);
    assert_eq!(waiting.await.expect("task").ok(), Some(200));
}

#[tokio::test]
async fn windows_are_normalised_to_whole_days_so_equivalent_ones_share_a_render() {
    let (app, state) = spawn_app_with_state().await;
    let aurora = app.make_public("room-aurora").await;
    let path = public_feed_path(aurora);
    let (d1, d2, d3) = (day(1), day(2), day(3));
    let equivalent = [
        format!("?from={d1}&to={d2}"),
        format!("?from={d1}T08:00:00Z&to={d2}T23:59:59Z"),
        format!("?to={d3}T00:00:00Z&from={d1}T00:00:00%2B00:00"),
    ];
    let renders = state.feeds.renders();
    let mut etags = Vec::new();
    for q in &equivalent {
        let (status, etag, _, _) = get(&app, &format!("{path}{q}")).await;
        assert_eq!(status, 200, "{q}");
        etags.push(etag);
    }
    assert_eq!(state.feeds.renders(), renders + 1);
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
    // Far outside the clamp: the one empty window, not an error.
    for q in [
        "?from=1990-01-01&to=1990-02-01",
        "?from=1980-01-01&to=1981-01-01",
    ] {
        let (status, _, _, body) = get(&app, &format!("{path}{q}")).await;
        assert_eq!(status, 200, "{q}");
        assert!(!body.contains("BEGIN:VEVENT"), "{q}");
    }
    assert_eq!(state.feeds.renders(), renders + 2);
}

#[tokio::test]
async fn a_flood_of_distinct_windows_keeps_the_cache_bounded_and_other_feeds_cached() {
    let app = spawn_app_with(constrained(1)).await;
    let feeds = app.state.feeds.clone();
    let aurora = app.make_public("room-aurora").await;
    let tem = app.make_public("tem-2100").await;
    let (_, tem_etag, _, _) = get(&app, &public_feed_path(tem)).await;
    let tem_renders = feeds.renders();
    let flood: Vec<_> = (1..=60)
        .map(|i| {
            let url = format!(
                "{}{}?from={}&to={}",
                app.base,
                public_feed_path(aurora),
                day(-i),
                day(i)
            );
            let http = app.http.clone();
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for r in flood {
        assert_eq!(r.await.expect("task").ok(), Some(200));
    }
    let cache = feeds.cache();
    assert!(cache.bytes() <= 1 << 20, "{} bytes", cache.bytes());
    let windows = cache.windows_of(FeedId::Public(aurora));
    assert!(
        windows <= CacheLimits::default().windows_per_feed + 1,
        "{windows}"
    );
    // The other offering's feed was neither evicted nor re-rendered.
    let renders = feeds.renders();
    let (status, etag, _, _) = get(&app, &public_feed_path(tem)).await;
    assert_eq!((status, etag), (200, tem_etag));
    assert_eq!(feeds.renders(), renders);
    assert!(renders > tem_renders);
    assert_eq!((feeds.gate().waiting(), feeds.gate().clients()), (0, 0));
}

#[tokio::test]
async fn a_client_with_too_many_windows_in_line_gets_a_cached_body_at_once() {
    let app = spawn_app_with(constrained(32)).await;
    let feeds = app.state.feeds.clone();
    let aurora = app.make_public("room-aurora").await;
    let path = public_feed_path(aurora);
    let (_, default_etag, _, _) = get(&app, &path).await;
    let held = feeds.gate().hold_all().await;
    let max = bookcal::feeds::gate::MAX_WAITING_PER_CLIENT;
    let in_line: Vec<_> = (1..=max)
        .map(|i| {
            let url = format!("{}{path}?from={}", app.base, day(-(i as i64)));
            let http = app.http.clone();
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    until(|| feeds.gate().waiting() == max).await;
    // While the slots are held: answered from the cache (the default window), 200,
    // marked for revalidation.
    for i in 10..15 {
        let r = app
            .http
            .get(format!("{}{path}?from={}", app.base, day(-i)))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(h("etag"), Some(default_etag.clone()));
        assert_eq!(h("cache-control").as_deref(), Some("no-cache"));
    }
    drop(held);
    for r in in_line {
        assert_eq!(r.await.expect("task").ok(), Some(200));
    }
}

#[tokio::test]
async fn another_client_renders_between_a_flooding_clients_renders() {
    let app = spawn_app_with(constrained(32)).await;
    let feeds = app.state.feeds.clone();
    let aurora = app.make_public("room-aurora").await;
    let tem = app.make_public("tem-2100").await;
    let held = feeds.gate().hold_all().await;
    let order: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    const FLOOD: usize = 20;
    let mut tasks = Vec::new();
    // Nothing of this feed is cached, so every one of these waits in line.
    for i in 0..FLOOD {
        let url = format!(
            "{}{}?from={}",
            app.base,
            public_feed_path(aurora),
            day(-(i as i64))
        );
        let (http, order) = (app.http.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let ok = http.get(url).send().await.is_ok_and(|r| r.status() == 200);
            order.lock().expect("lock").push("flood");
            ok
        }));
    }
    until(|| feeds.gate().waiting() == FLOOD).await;
    // Another client (another loopback address) asks for another feed.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .expect("client");
    let url = format!("{}{}", app.base, public_feed_path(tem));
    let order2 = order.clone();
    tasks.push(tokio::spawn(async move {
        let ok = other.get(url).send().await.is_ok_and(|r| r.status() == 200);
        order2.lock().expect("lock").push("other");
        ok
    }));
    until(|| feeds.gate().waiting() == FLOOD + 1).await;
    drop(held);
    for t in tasks {
        assert!(t.await.expect("task"));
    }
    let order = order.lock().expect("lock").clone();
    let position = order.iter().position(|o| *o == "other");
    // Its turn comes right after the flooding client's first render, not after all
    // of them (allowing one more flood answer to overtake it on the way out).
    assert!(position.is_some_and(|p| p <= 2), "{order:?}");
}

#[test]
fn the_cache_holds_at_most_its_bytes_and_other_windows_never_push_out_default_ones() {
    let now = Utc::now();
    let cache = FeedCache::new(CacheLimits {
        max_bytes: 12_000,
        max_entries: 100,
        windows_per_feed: 100,
    });
    let feed = |n: u128| FeedId::Public(Id(uuid::Uuid::from_u128(n)));
    let default_key = |n| FeedKey {
        feed: feed(n),
        window: Window::default_at(now),
    };
    let window_key = |days: i64| FeedKey {
        feed: feed(1),
        window: Window::parse(Some(&format!("from={}", day(-days))), now).expect("window"),
    };
    let body = |bytes: usize| RenderedFeed::new("x".repeat(bytes), now);
    let defaults_cached =
        |cache: &FeedCache, n: u128| (1..=n).all(|i| cache.fresh(&default_key(i), 1).is_some());
    // Three default windows (9,000 bytes), then other windows one after another: each
    // evicts the one before it, never a default window.
    for n in 1..=3 {
        cache.insert(default_key(n), 1, true, body(3_000), "f.ics", now);
    }
    for days in 1..=5 {
        cache.insert(window_key(days), 1, false, body(3_000), "f.ics", now);
        assert_eq!((cache.len(), cache.bytes()), (4, 12_000), "window {days}");
        assert!(cache.fresh(&window_key(days), 1).is_some(), "window {days}");
        assert!(defaults_cached(&cache, 3), "window {days}");
    }
    // A window too large to fit beside them is served but not kept.
    let served = cache.insert(window_key(9), 1, false, body(5_000), "f.ics", now);
    assert_eq!(served.body.len(), 5_000);
    assert!(cache.fresh(&window_key(9), 1).is_none());
    assert!(defaults_cached(&cache, 3));
    assert!(cache.bytes() <= 12_000);
    // A fourth default window makes room among the default windows.
    cache.insert(default_key(4), 1, true, body(3_000), "f.ics", now);
    assert!(cache.bytes() <= 12_000, "{}", cache.bytes());
    assert!(cache.fresh(&default_key(4), 1).is_some());
}
