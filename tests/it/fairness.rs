//! Fairness between clients under floods: an anonymous client over its request rate
//! gets DRF's 429 with `Retry-After` while other clients' feeds (and its own
//! address's token feeds and authenticated calls) still answer; `X-Forwarded-For`
//! names the client only from a trusted proxy; and the probe-only listener answers
//! while a flood of fresh connections holds the API's connection cap and its reserve.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bookcal::config::{HttpSettings, Settings};
use bookcal::domain::calendar::OfferingCalendar;
use bookcal::domain::Id;
use bookcal::store::Store;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::helpers::{eventually, spawn_app_with, Options, TestApp};

/// A low rate so a test can exhaust it: 1 per second, 5 at once.
fn slow_rate(trusted: &[&str]) -> Options {
    Options {
        google_credentials: false,
        http: HttpSettings {
            client_requests_per_sec: 1,
            client_burst: 5,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..HttpSettings::default()
        },
        ..Options::default()
    }
}

async fn make_public(app: &TestApp, slug: &str) -> Id {
    let id = app.offering_id(slug);
    let cal = OfferingCalendar {
        public: true,
        ..OfferingCalendar::new(id)
    };
    app.store
        .write(vec![Store::calendar_change(&cal).expect("encode")])
        .await
        .expect("write calendar");
    id
}

/// An HTTP client whose connections come from `ip` (any 127.0.0.0/8 address works
/// on loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().ok())
        .build()
        .expect("client")
}

async fn status(r: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let r = r.send().await.expect("request");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status().as_u16(), retry, r.text().await.expect("body"))
}

#[tokio::test]
async fn a_flooding_client_gets_429_while_other_clients_feeds_still_answer() {
    let app = spawn_app_with(slow_rate(&[])).await;
    let aurora = make_public(&app, "room-aurora").await;
    let public = format!("{}/feeds/offerings/{}.ics", app.base, aurora.hex());
    let token = app
        .post(
            "owner",
            &format!(
                "/api/booking-offerings/{}/feed_tokens/",
                app.offering_id("tem-2100").hex()
            ),
            json!({"name": "owner's calendar app"}),
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.text);
    let owner_feed = token.body["url"].as_str().expect("url").to_owned();

    // The flooder (127.0.0.2) asks for distinct windows: its burst of 5 is answered,
    // then 429 in DRF's shape with Retry-After, before any render.
    let flooder = client_from("127.0.0.2");
    let renders_before = app.state.feeds.renders();
    let mut statuses = Vec::new();
    let mut refused = None;
    let started = std::time::Instant::now();
    for i in 0..20 {
        let from = (chrono::Utc::now() - chrono::Duration::days(i + 1)).date_naive();
        let url = format!("{public}?from={from}");
        let (s, retry, body) = status(flooder.get(url)).await;
        statuses.push(s);
        if s == 429 && refused.is_none() {
            refused = Some((retry, body));
        }
    }
    // The burst of 5, plus what the rate (1 a second) refilled while the 20 requests
    // were answered: a loaded machine may take a few seconds for them.
    let refilled = started.elapsed().as_secs() as usize + 1;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=5 + refilled).contains(&answered)
            && answered < statuses.len()
            && statuses[..5].iter().all(|s| *s == 200),
        "{statuses:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20 - answered
    );
    let (retry, body) = refused.expect("a 429");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"detail": "Request was throttled. Expected available in 1 second."})
    );
    assert!(app.state.feeds.renders() - renders_before <= answered as u64);
    assert_eq!(app.state.clients.throttled(), (20 - answered) as u64);
    // Anonymous API calls share the flooder's allowance (it refills at one a second).
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(
            status(flooder.get(format!("{}/api/schema/", app.base)))
                .await
                .0,
        );
    }
    assert!(codes.contains(&429), "{codes:?}");

    // Another anonymous client reads the same public feed.
    let other = client_from("127.0.0.3");
    let (s, _, _) = status(other.get(&public)).await;
    assert_eq!(s, 200);
    // The owner's token feed answers from the flooder's own address too (token feeds
    // are not counted), then 304 on revalidation.
    let r = flooder.get(&owner_feed).send().await.expect("owner feed");
    assert_eq!(r.status().as_u16(), 200);
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("etag");
    let (s, _, _) = status(flooder.get(&owner_feed).header("If-None-Match", &etag)).await;
    assert_eq!(s, 304);
    // So do authenticated API calls and the probes.
    let (s, _, _) = status(
        flooder
            .get(format!("{}/api/booking-offerings/", app.base))
            .header("Authorization", format!("Token {}", app.tokens["owner"])),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = status(flooder.get(format!("{}/health", app.base))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    // 127.0.0.1 is the trusted proxy; 127.0.0.2 is not.
    let app = spawn_app_with(slow_rate(&["127.0.0.1"])).await;
    let schema = format!("{}/api/schema/", app.base);
    let proxy = client_from("127.0.0.1");
    let as_client = |ip: &'static str| proxy.get(&schema).header("X-Forwarded-For", ip);
    for _ in 0..5 {
        assert_eq!(status(as_client("203.0.113.1")).await.0, 200);
    }
    assert_eq!(status(as_client("203.0.113.1")).await.0, 429);
    // Another client behind the same proxy has its own allowance.
    assert_eq!(status(as_client("203.0.113.2")).await.0, 200);
    // An untrusted peer cannot pick a fresh allowance by sending the header.
    let direct = client_from("127.0.0.2");
    let mut codes = Vec::new();
    for i in 0..10 {
        let r = direct
            .get(&schema)
            .header("X-Forwarded-For", format!("198.51.100.{i}"));
        codes.push(status(r).await.0);
    }
    assert!(codes.contains(&429), "{codes:?}");
}

/// A connection that sends `GET path` and reads the whole answer; its status.
async fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn probes_on_their_own_listener_answer_while_a_connection_flood_holds_the_cap() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut settings = Settings {
        data_dir: dir.path().join("store"),
        listen: "127.0.0.1:0".parse().expect("address"),
        http: HttpSettings {
            header_read_timeout_secs: 60,
            keep_alive_timeout_secs: 60,
            max_connections: 4,
            probe_connections: 2,
            probe_listen: Some("127.0.0.1:0".parse().expect("address")),
            ..HttpSettings::default()
        },
        ..Settings::default()
    };
    settings.sync.interval_secs = 0;
    let app = bookcal::app::Application::build(settings)
        .await
        .expect("build the service");
    let api = app.local_addr().expect("addr");
    let probes = app.probe_addr().expect("a probe listener");
    let connections = app.state().metrics.connections.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    // The flood: fresh silent connections to the API's port, opened without pause
    // (the last 256 kept open), so the cap and the probe reserve stay full.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut open = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = TcpStream::connect(api).await {
                    open.push_back(s);
                }
                if open.len() > 256 {
                    open.pop_front();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Wait until the flood is being turned away at the API's port.
    let turned_away = || connections.refused.load(Ordering::Relaxed) >= 50;
    assert!(
        eventually(60, turned_away).await,
        "the flood never filled the cap"
    );
    // Every probe on the probe listener is answered meanwhile.
    for _ in 0..20 {
        assert_eq!(probe(probes, "/health").await, Some(200));
        assert_eq!(probe(probes, "/ready").await, Some(200));
        // It serves nothing else.
        assert_eq!(probe(probes, "/api/booking-offerings/").await, Some(503));
    }
    stop.store(true, Ordering::Relaxed);
    flood.await.expect("flood task");
    shutdown.cancel();
    task.await.expect("service task").expect("clean shutdown");
}
