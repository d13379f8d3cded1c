//! Fairness between clients under floods: an anonymous client over its request rate
//! gets DRF's 429 with `Retry-After` while other clients' feeds (and its own
//! address's token feeds and authenticated calls) still answer; `X-Forwarded-For`
//! names the client only from a trusted proxy; the probe-only listener answers
//! while a flood of fresh connections holds the API's connection cap and its reserve.
//!
//! The tarpit for clients that ignore `Retry-After`: held 429s make a flooding
//! client's answers far fewer, held answers past `http.max_held_answers` are sent at
//! once with `Connection: close`, so are the 429s of a client refused again and
//! again, and SIGTERM while answers are held exits at once; feed token guessing
//! counts against the anonymous rate while a valid token still answers; `/metrics`
//! counts all of it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bookcal::config::{HttpSettings, Settings};
use bookcal::domain::calendar::OfferingCalendar;
use bookcal::domain::Id;
use bookcal::store::Store;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::helpers::{eventually, spawn_app_with, Options, TestApp};

/// A low rate so a test can exhaust it: 1 per second, 5 at once; 429s answered at
/// once (the tarpit's tests set their own hold).
fn slow_rate(trusted: &[&str]) -> Options {
    Options {
        google_credentials: false,
        http: HttpSettings {
            client_requests_per_sec: 1,
            client_burst: 5,
            throttle_hold_ms: 0,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..HttpSettings::default()
        },
        ..Options::default()
    }
}

/// `slow_rate` with the tarpit's settings.
fn tarpit(burst: u32, hold_ms: u64, max_held: usize, close_after: u32) -> Options {
    let mut o = slow_rate(&[]);
    o.http.client_burst = burst;
    o.http.throttle_hold_ms = hold_ms;
    o.http.max_held_answers = max_held;
    o.http.close_after_refusals = close_after;
    o
}

/// The value of an unlabelled sample in the anonymous `/metrics` at `base`.
async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A path every anonymous request to which is counted and cheap: an unknown public
/// feed (404 when admitted).
const NO_FEED: &str = "/feeds/offerings/00000000000000000000000000000000.ics";

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
async fn a_made_up_authorization_header_takes_no_flood_past_the_rate() {
    let app = spawn_app_with(slow_rate(&[])).await;
    let aurora = make_public(&app, "room-aurora").await;
    let public = format!("{}/feeds/offerings/{}.ics", app.base, aurora.hex());
    let flooder = client_from("127.0.0.2");
    // On a public feed the header means nothing: counted like any anonymous request.
    let mut feed = Vec::new();
    for _ in 0..12 {
        feed.push(
            status(
                flooder
                    .get(&public)
                    .header("Authorization", "Token made-up"),
            )
            .await
            .0,
        );
    }
    assert!(feed.contains(&429), "{feed:?}");
    // On the API the made-up token is refused (401) and counted after the answer, so
    // a client guessing tokens is throttled like one guessing feed tokens.
    let guesser = client_from("127.0.0.4");
    let mut api = Vec::new();
    for i in 0..12 {
        api.push(
            status(
                guesser
                    .get(format!("{}/api/booking-offerings/", app.base))
                    .header("Authorization", format!("Token guess{i}")),
            )
            .await
            .0,
        );
    }
    assert_eq!(api[0], 401, "{api:?}");
    assert!(api.contains(&429), "{api:?}");
    // Nor does the header pass uncounted on routes that never read credentials.
    let schema = client_from("127.0.0.5");
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            status(
                schema
                    .get(format!("{}/api/schema/", app.base))
                    .header("Authorization", "Token made-up"),
            )
            .await
            .0,
        );
    }
    assert_eq!(codes[0], 200, "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    // A valid token from the same address is never refused.
    for _ in 0..3 {
        let (s, _, _) = status(
            guesser
                .get(format!("{}/api/booking-offerings/", app.base))
                .header("Authorization", format!("Token {}", app.tokens["owner"])),
        )
        .await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn a_valid_x_auth_token_query_is_exempt_from_the_rate_like_the_header() {
    let app = spawn_app_with(slow_rate(&[])).await;
    let owner = &app.tokens["owner"];
    // The flooder (127.0.0.2) spends its anonymous allowance.
    let flooder = client_from("127.0.0.2");
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            status(flooder.get(format!("{}{NO_FEED}", app.base)))
                .await
                .0,
        );
    }
    assert!(codes.contains(&429), "{codes:?}");
    let refused = app.state.clients.throttled();
    // API calls from the same address with a valid query token are never counted
    // nor refused: on a route that authenticates them, and on one that never reads
    // them (the schema), as with the header.
    for path in ["/api/booking-offerings/", "/api/schema/"] {
        for _ in 0..8 {
            let (s, _, body) =
                status(flooder.get(format!("{}{path}?x-auth-token={owner}", app.base))).await;
            assert_eq!(s, 200, "{path}: {body}");
        }
    }
    assert_eq!(app.state.clients.throttled(), refused);
    // A fresh client spending more than its burst with it keeps its allowance: its
    // first anonymous request afterwards is admitted.
    let user = client_from("127.0.0.6");
    for _ in 0..12 {
        let (s, _, body) = status(user.get(format!(
            "{}/api/booking-offerings/?page_size=1&x-auth-token={owner}",
            app.base
        )))
        .await;
        assert_eq!(s, 200, "{body}");
    }
    let (s, _, _) = status(user.get(format!("{}{NO_FEED}", app.base))).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_made_up_x_auth_token_takes_no_flood_past_the_rate() {
    let app = spawn_app_with(slow_rate(&[])).await;
    let aurora = make_public(&app, "room-aurora").await;
    let public = format!("{}/feeds/offerings/{}.ics", app.base, aurora.hex());
    // On a public feed the query parameter means nothing: counted like any
    // anonymous request.
    let flooder = client_from("127.0.0.2");
    let mut feed = Vec::new();
    for _ in 0..12 {
        feed.push(
            status(flooder.get(format!("{public}?x-auth-token=made-up")))
                .await
                .0,
        );
    }
    assert!(feed.contains(&429), "{feed:?}");
    // On the API the made-up token is refused (401) and counted after the answer.
    let guesser = client_from("127.0.0.4");
    let mut api = Vec::new();
    for i in 0..12 {
        api.push(
            status(guesser.get(format!(
                "{}/api/booking-offerings/?x-auth-token=guess{i}",
                app.base
            )))
            .await
            .0,
        );
    }
    assert_eq!(api[0], 401, "{api:?}");
    assert!(api.contains(&429), "{api:?}");
    // Nor does it pass uncounted on routes that never read credentials.
    let schema = client_from("127.0.0.5");
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            status(schema.get(format!("{}/api/schema/?x-auth-token=made-up", app.base)))
                .await
                .0,
        );
    }
    assert_eq!(codes[0], 200, "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    // A valid query token from the same address is never refused.
    for _ in 0..3 {
        let (s, _, _) = status(guesser.get(format!(
            "{}/api/booking-offerings/?x-auth-token={}",
            app.base, app.tokens["owner"]
        )))
        .await;
        assert_eq!(s, 200);
    }
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

/// `workers` clients from 127.0.0.2 that ignore `Retry-After` and ask for
/// [`NO_FEED`] again at once, each on its own connections, for `secs`: the answers
/// they got, and how many were 429.
async fn flood(base: &str, workers: usize, secs: u64) -> (u64, u64) {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let url = format!("{base}{NO_FEED}");
            tokio::spawn(async move {
                let http = client_from("127.0.0.2");
                let (mut answers, mut refused) = (0u64, 0u64);
                while tokio::time::Instant::now() < until {
                    let Ok(r) = http.get(&url).send().await else {
                        continue;
                    };
                    let s = r.status().as_u16();
                    assert!(s == 404 || s == 429, "{s}");
                    let _ = r.bytes().await;
                    answers += 1;
                    refused += u64::from(s == 429);
                }
                (answers, refused)
            })
        })
        .collect();
    let mut total = (0, 0);
    for t in tasks {
        let (a, r) = t.await.expect("flood task");
        total.0 += a;
        total.1 += r;
    }
    total
}

#[tokio::test]
async fn a_client_that_ignores_retry_after_gets_far_fewer_answers_a_second_from_the_tarpit() {
    // The same flood (4 connections, 2 s) against 429s answered at once and 429s
    // held up to a second.
    let at_once = spawn_app_with(tarpit(5, 0, 128, 3)).await;
    let (fast, fast_refused) = flood(&at_once.base, 4, 2).await;
    let held = spawn_app_with(tarpit(5, 1000, 128, 3)).await;
    let (slow, slow_refused) = flood(&held.base, 4, 2).await;
    // Held: each connection gets about one answer a second once refused, plus the
    // burst and the refill (holding only makes answers later, so this bound holds
    // however loaded the machine is).
    assert!(slow <= 4 * 3 + 5 + 3 + 4, "{slow} answers while held");
    assert!(slow_refused >= 4, "{slow_refused} refused");
    // At once: the loop runs as fast as the machine answers.
    assert!(
        fast >= 100 && fast >= 5 * slow,
        "{fast} answers at once against {slow} held"
    );
    assert!(fast_refused > fast / 2, "{fast_refused} of {fast} refused");
    // /metrics counts refusals and held answers (no identifiers).
    // (The server may have refused a request whose answer a client did not read.)
    let refused = metric(&held.base, "bookcal_http_throttled_total").await;
    assert!(refused >= slow_refused as f64, "{refused} counted");
    assert_eq!(
        metric(&held.base, "bookcal_http_throttled_held_total").await,
        refused
    );
    assert_eq!(metric(&held.base, "bookcal_http_throttled_held").await, 0.0);
    assert!(metric(&at_once.base, "bookcal_http_throttled_total").await >= fast_refused as f64);
    assert_eq!(
        metric(&at_once.base, "bookcal_http_throttled_held_total").await,
        0.0
    );
}

/// A keep-alive connection from `ip` to `addr`, if it can be made.
async fn try_connect_from(ip: &str, addr: SocketAddr) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(ip.parse().ok()?, 0)).ok()?;
    socket.connect(addr).await.ok()
}

async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    try_connect_from(ip, addr).await.expect("connect")
}

/// Sends `GET path` on `s` and reads the answer: its status and its head (lower
/// case); `None` if the connection fails or closes first.
async fn try_exchange(s: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())?;
    Some((status, head))
}

async fn exchange(s: &mut TcpStream, path: &str) -> (u16, String) {
    try_exchange(s, path).await.expect("an answer")
}

fn closes(head: &str) -> bool {
    head.lines().any(|l| l.trim() == "connection: close")
}

#[tokio::test]
async fn held_answers_beyond_the_cap_are_refused_at_once_with_connection_close() {
    // A burst of 1; two answers held at most; closing for repeated refusals off, so
    // only the cap closes connections.
    let app = spawn_app_with(tarpit(1, 1000, 2, 0)).await;
    let addr: SocketAddr = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut first = connect_from("127.0.0.2", addr).await;
    assert_eq!(exchange(&mut first, NO_FEED).await.0, 404);
    // Two refused requests on their own connections are held.
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = connect_from("127.0.0.2", addr).await;
                exchange(&mut s, NO_FEED).await
            })
        })
        .collect();
    let clients = app.state.clients.clone();
    assert!(
        eventually(30, || clients.holding() == 2).await,
        "two answers held"
    );
    // A third is refused at once, and its connection closed.
    let (status, head) = exchange(&mut first, NO_FEED).await;
    assert_eq!(status, 429);
    assert!(closes(&head), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.expect("closed");
    assert!(rest.is_empty());
    // The held ones are answered 429 when their hold ends, keeping their connection.
    for h in held {
        let (status, head) = h.await.expect("held task");
        assert_eq!(status, 429);
        assert!(!closes(&head), "{head}");
    }
    assert_eq!(
        metric(&app.base, "bookcal_http_throttled_held_total").await,
        2.0
    );
    assert_eq!(
        metric(&app.base, "bookcal_http_throttled_unheld_total").await,
        1.0
    );
    assert_eq!(
        metric(&app.base, "bookcal_http_throttled_closed_total").await,
        1.0
    );
}

#[tokio::test]
async fn a_client_refused_again_and_again_gets_connection_close_on_its_429s() {
    // 429s at once, closing from the third refusal in a row.
    let app = spawn_app_with(tarpit(1, 0, 128, 3)).await;
    let addr: SocketAddr = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut s = connect_from("127.0.0.2", addr).await;
    assert_eq!(exchange(&mut s, NO_FEED).await.0, 404);
    let mut seen = Vec::new();
    loop {
        let (status, head) = exchange(&mut s, NO_FEED).await;
        seen.push((status, closes(&head)));
        if closes(&head) {
            break;
        }
        assert!(seen.len() < 50, "never closed: {seen:?}");
    }
    // Refusals 1 and 2 keep the connection; the third closes it (a request admitted
    // between them, if the bucket refilled, starts the count over).
    let tail: Vec<_> = seen.iter().rev().take(3).rev().copied().collect();
    assert_eq!(tail, [(429, false), (429, false), (429, true)], "{seen:?}");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("closed");
    assert!(rest.is_empty());
    // Probes and token-less API calls with credentials are never refused.
    let mut probe = connect_from("127.0.0.2", addr).await;
    for path in ["/health", "/ready", "/metrics"] {
        let (status, _) = exchange(&mut probe, path).await;
        // (/ready may say 503 here: this service runs no scheduler.)
        assert!(
            status == 200 || (path == "/ready" && status == 503),
            "{path}: {status}"
        );
    }
    let r = client_from("127.0.0.2")
        .get(format!("{}/api/booking-offerings/", app.base))
        .header("Authorization", format!("Token {}", app.tokens["owner"]))
        .send()
        .await
        .expect("authenticated");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn sigterm_while_answers_are_held_exits_at_once_and_sends_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut served = crate::operations::serve(
        &dir.path().join("store"),
        &[
            ("BOOKCAL_HTTP_CLIENT_REQUESTS_PER_SEC", "1"),
            ("BOOKCAL_HTTP_CLIENT_BURST", "1"),
            ("BOOKCAL_HTTP_THROTTLE_HOLD_MS", "1000"),
            ("BOOKCAL_HTTP_CLOSE_AFTER_REFUSALS", "0"),
        ],
    );
    served.wait_ready(&reqwest::Client::new()).await;
    let addr: SocketAddr = served
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    // Four connections from 127.0.0.2 keep asking, so answers are held at any time;
    // a held 429 that is sent because of shutdown closes its connection (closing
    // for refusals is off, so nothing else closes one).
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut closed_by_shutdown = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Some(mut s) = try_connect_from("127.0.0.2", addr).await else {
                        break;
                    };
                    loop {
                        let Some((status, head)) = try_exchange(&mut s, NO_FEED).await else {
                            break;
                        };
                        if status == 429 && closes(&head) {
                            closed_by_shutdown += 1;
                            break;
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
                closed_by_shutdown
            })
        })
        .collect();
    let http = client_from("127.0.0.1");
    let held = || async {
        let r = http.get(format!("{}/metrics", served.base)).send().await;
        let Ok(r) = r else { return 0.0 };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("bookcal_http_throttled_held ")?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        crate::helpers::eventually_async(30, || async { held().await >= 2.0 }).await,
        "answers held"
    );
    // The drain does not wait for the holds: bookcal exits well within a hold
    // (generous for a loaded machine: the hold is at most a second, the bound is
    // about not waiting for holds one after another).
    let status = served.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{}", served.log());
    stop.store(true, Ordering::Relaxed);
    let mut sent_at_shutdown = 0;
    for w in workers {
        sent_at_shutdown += w.await.expect("worker");
    }
    assert!(sent_at_shutdown >= 1, "no held answer was sent at shutdown");
}

#[tokio::test]
async fn guessing_feed_tokens_gets_429_after_the_burst_while_a_valid_token_from_the_same_address_still_answers(
) {
    let app = spawn_app_with(slow_rate(&[])).await;
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
    let valid = token.body["url"].as_str().expect("url").to_owned();
    let guesser = client_from("127.0.0.2");
    let guess = |n: u32| format!("{}/feeds/t/{n:0>43}.ics", app.base);
    // The burst of 5 guesses is answered 404; then 429 with Retry-After.
    let mut codes = Vec::new();
    for n in 0..12 {
        codes.push(status(guesser.get(guess(n))).await.0);
    }
    assert_eq!(&codes[..5], [404; 5], "{codes:?}");
    assert!(codes[5..].contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 404 || *c == 429), "{codes:?}");
    let (s, retry, body) = status(guesser.get(guess(99))).await;
    assert_eq!((s, retry.as_deref()), (429, Some("1")), "{body}");
    // Malformed tokens count too.
    assert_eq!(
        status(guesser.get(format!("{}/feeds/t/x.ics", app.base)))
            .await
            .0,
        429
    );
    // The valid token from the same address is not counted nor refused.
    for _ in 0..3 {
        let (s, _, _) = status(guesser.get(&valid)).await;
        assert_eq!(s, 200);
    }
    // Another address guesses with its own allowance.
    let other = client_from("127.0.0.3");
    assert_eq!(status(other.get(guess(7))).await.0, 404);
    let refused = codes.iter().filter(|c| **c == 429).count() as f64 + 2.0;
    assert_eq!(
        metric(&app.base, "bookcal_http_throttled_total").await,
        refused
    );
    assert_eq!(
        metric(&app.base, "bookcal_feed_invalid_tokens_total").await,
        12.0 + 2.0 + 1.0
    );
}
