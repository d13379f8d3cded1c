//! The HTTP server's limits against slow, idle and oversized clients, driven over raw
//! TCP against the service started the way `main` starts it (`Application::build`):
//! silent and slow heads, stalled and dripping bodies, a huge `Content-Length`, the
//! connection cap with its probe reserve, a client that stops reading, and the DRF
//! shape of every error the server makes outside the handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bookcal::config::{HttpSettings, Settings};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");

/// The service on 127.0.0.1:0 with these limits, the demo data and tokens.
pub struct Service {
    pub addr: SocketAddr,
    pub tokens: HashMap<&'static str, String>,
    pub store: Arc<bookcal::store::Store>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), bookcal::app::AppError>>,
    _dir: tempfile::TempDir,
}

impl Service {
    pub async fn start(http: HttpSettings) -> Service {
        let dir = tempfile::tempdir().expect("tmp");
        let mut settings = Settings {
            data_dir: dir.path().join("store"),
            listen: "127.0.0.1:0".parse().expect("address"),
            http,
            ..Settings::default()
        };
        settings.sync.interval_secs = 0;
        settings.store_url = crate::helpers::engines::default_store_url()
            .await
            .map(bookcal::config::Secret::new);
        let app = bookcal::app::Application::build(settings)
            .await
            .expect("build the service");
        let store = app.store().clone();
        bookcal::import::import_file(&store, Path::new(FIXTURE))
            .await
            .expect("import");
        let mut tokens = HashMap::new();
        for u in ["owner", "alice", "bob"] {
            let id = store.user_by_name(u).await.expect("read").expect("user").id;
            tokens.insert(u, store.create_token(id).await.expect("token"));
        }
        let addr = app.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Service {
            addr,
            tokens,
            store,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("service task")
            .expect("clean shutdown");
    }

    /// A request head for `path` with `user`'s token (if any) and extra header lines.
    pub fn head(&self, method: &str, path: &str, user: Option<&str>, extra: &str) -> String {
        let auth = user
            .map(|u| format!("Authorization: Token {}\r\n", self.tokens[u]))
            .unwrap_or_default();
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}{extra}\r\n",
            self.addr
        )
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads one response (with a `Content-Length` body); `None` if the connection
/// ended (or was reset) before a complete head.
pub async fn read_response(s: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// Sends `bytes` on a new connection and reads one response.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Raw> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_response(&mut s).await
}

/// Reads until the server closes the connection (end of stream or reset); the
/// number of bytes read.
/// How many orders the store holds (any engine).
async fn order_count(store: &bookcal::store::Store) -> usize {
    use bookcal::store::query::{OrderQuery, Visible};
    store
        .list_orders(&OrderQuery {
            visible: Visible::everything(),
            ..OrderQuery::default()
        })
        .await
        .expect("read")
        .total
}

async fn read_to_close(s: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// Bounds a step that must finish on its own (a hang is a failure, not a wait).
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {secs} s"))
}

fn limits() -> HttpSettings {
    HttpSettings::default()
}

// ---------------------------------------------------------------- slow and idle heads

#[tokio::test]
async fn a_silent_connection_is_closed_within_the_header_timeout() {
    let svc = Service::start(HttpSettings {
        header_read_timeout_secs: 3,
        keep_alive_timeout_secs: 1,
        ..limits()
    })
    .await;
    let started = Instant::now();
    let mut s = TcpStream::connect(svc.addr).await.expect("connect");
    let read = within(20, "the silent connection", read_to_close(&mut s)).await;
    let took = started.elapsed();
    assert_eq!(read, 0, "no answer to a request never sent");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    svc.stop().await;
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let svc = Service::start(HttpSettings {
        header_read_timeout_secs: 2,
        keep_alive_timeout_secs: 1,
        ..limits()
    })
    .await;
    let s = TcpStream::connect(svc.addr).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    // Never idle for the keep-alive timeout, never finishing the head.
    let writer = tokio::spawn(async move {
        if wr
            .write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = within(20, "the slow head", rd.read_to_end(&mut buf)).await;
    let took = started.elapsed();
    writer.abort();
    assert!(
        buf.is_empty(),
        "no answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        took >= Duration::from_millis(1900),
        "cut off early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "cut off after {took:?}");
    svc.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let svc = Service::start(HttpSettings {
        header_read_timeout_secs: 10,
        keep_alive_timeout_secs: 1,
        ..limits()
    })
    .await;
    let mut s = TcpStream::connect(svc.addr).await.expect("connect");
    let head = svc.head("GET", "/health", None, "");
    s.write_all(head.as_bytes()).await.expect("write");
    let r = read_response(&mut s).await.expect("response");
    assert_eq!(r.status, 200);
    let started = Instant::now();
    assert_eq!(
        within(20, "the idle connection", read_to_close(&mut s)).await,
        0
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    svc.stop().await;
}

// ---------------------------------------------------------------- bodies

#[tokio::test]
async fn a_huge_content_length_gets_a_drf_413_at_once_whoever_sends_it() {
    let svc = Service::start(HttpSettings {
        body_timeout_secs: 120,
        ..limits()
    })
    .await;
    let orders_before = order_count(&svc.store).await;
    for user in [Some("alice"), None] {
        let head = svc.head(
            "POST",
            "/api/marketplace-orders/",
            user,
            "Content-Type: application/json\r\nContent-Length: 1073741824\r\n",
        );
        let started = Instant::now();
        let r = within(10, "the 413", exchange(svc.addr, head.as_bytes()))
            .await
            .expect("a response");
        assert_eq!(r.status, 413, "{user:?}");
        assert_eq!(r.json(), json!({"detail": "Request body is too large."}));
        assert_eq!(
            r.headers.get("connection").map(String::as_str),
            Some("close")
        );
        // Long before the body timeout: nothing of the body was awaited.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A chunked body (no length announced) is cut off at the limit, in DRF shape.
    let mut s = TcpStream::connect(svc.addr).await.expect("connect");
    let head = svc.head(
        "POST",
        "/api/marketplace-orders/",
        Some("alice"),
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..64 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = within(20, "the chunked 413", rd.read_to_end(&mut buf)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.ends_with("{\"detail\":\"Request body is too large.\"}"),
        "{text}"
    );
    assert_eq!(
        order_count(&svc.store).await,
        orders_before,
        "nothing was stored"
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_or_drips_gets_a_drf_408_at_the_body_timeout() {
    let svc = Service::start(HttpSettings {
        body_timeout_secs: 1,
        ..limits()
    })
    .await;
    let head = svc.head(
        "POST",
        "/api/marketplace-orders/",
        Some("alice"),
        "Content-Type: application/json\r\nContent-Length: 100\r\n",
    );
    // Ten bytes of a hundred, then nothing.
    let started = Instant::now();
    let mut bytes = head.clone().into_bytes();
    bytes.extend_from_slice(b"{\"offering");
    let r = within(20, "the stalled body", exchange(svc.addr, &bytes))
        .await
        .expect("a response");
    assert_eq!(r.status, 408);
    assert_eq!(
        r.json(),
        json!({"detail": "The request body did not arrive in time."})
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A byte every 100 ms: no gap is long, the whole would take 10 s.
    let s = TcpStream::connect(svc.addr).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = within(20, "the dripping body", rd.read_to_end(&mut buf)).await;
    let took = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    svc.stop().await;
}

// ---------------------------------------------------------------- the connection cap

/// Sends `head` on new connections until one is answered (connections refused while
/// the probe reserve is held by others end without an answer).
async fn answered(addr: SocketAddr, head: &str) -> Raw {
    for _ in 0..1000 {
        if let Some(r) = exchange(addr, head.as_bytes()).await {
            return r;
        }
        tokio::task::yield_now().await;
    }
    panic!("never answered: {head}");
}

#[tokio::test]
async fn probes_answer_while_the_connection_cap_is_reached() {
    let svc = Service::start(HttpSettings {
        header_read_timeout_secs: 60,
        keep_alive_timeout_secs: 60,
        max_connections: 3,
        probe_connections: 2,
        ..limits()
    })
    .await;
    // Three served connections, each used once and kept open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(svc.addr).await.expect("connect");
        s.write_all(svc.head("GET", "/health", None, "").as_bytes())
            .await
            .expect("write");
        assert_eq!(read_response(&mut s).await.expect("200").status, 200);
        held.push(s);
    }
    // Two silent connections take the probe reserve; the next one is closed at once,
    // without an answer. (All three are accepted together, in order, when this test
    // next waits.)
    let silent = [
        TcpStream::connect(svc.addr).await.expect("connect"),
        TcpStream::connect(svc.addr).await.expect("connect"),
    ];
    let mut refused = TcpStream::connect(svc.addr).await.expect("connect");
    let _ = refused
        .write_all(svc.head("GET", "/health", None, "").as_bytes())
        .await;
    assert_eq!(
        within(10, "the refused connection", read_to_close(&mut refused)).await,
        0
    );
    // A silent connection holds a reserve place for a second at most; then probes
    // are answered on the reserve, and nothing else is.
    for mut s in silent {
        assert_eq!(
            within(10, "a silent probe connection", read_to_close(&mut s)).await,
            0
        );
    }
    let health = answered(svc.addr, &svc.head("GET", "/health", None, "")).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = answered(svc.addr, &svc.head("GET", "/ready", None, "")).await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (200, json!("ready"))
    );
    let api_head = svc.head("GET", "/api/booking-offerings/", Some("owner"), "");
    let busy = answered(svc.addr, &api_head).await;
    assert_eq!(busy.status, 503);
    assert_eq!(
        busy.json(),
        json!({"detail": "The server is at its connection limit; try again later."})
    );
    assert_eq!(
        busy.headers.get("retry-after").map(String::as_str),
        Some("1")
    );

    // Once the held connections close, the API is served again.
    drop(held);
    let mut status = 0;
    for _ in 0..1000 {
        status = answered(svc.addr, &api_head).await.status;
        if status == 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, 200);
    svc.stop().await;
}

// ---------------------------------------------------------------- a client that stops reading

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let svc = Service::start(HttpSettings {
        send_timeout_secs: 1,
        ..limits()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let s = socket.connect(svc.addr).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    // Many pipelined requests for a large document, and no reading for a while.
    let one = svc.head("GET", "/api/schema/", None, "");
    let writer = tokio::spawn(async move {
        for _ in 0..2000 {
            if wr.write_all(one.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let read = {
        let mut total = 0usize;
        let mut chunk = [0u8; 65536];
        within(20, "the dropped connection", async {
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
        total
    };
    writer.abort();
    let schema_len = reqwest::get(format!("http://{}/api/schema/", svc.addr))
        .await
        .expect("schema")
        .bytes()
        .await
        .expect("bytes")
        .len();
    assert!(
        read < schema_len * 2000,
        "the server wrote everything ({read} bytes) instead of giving up"
    );
    svc.stop().await;
}

// ---------------------------------------------------------------- error shapes

#[tokio::test]
async fn errors_made_outside_the_handlers_have_drf_shape_and_the_right_status() {
    let svc = Service::start(HttpSettings {
        max_uri_bytes: 8192,
        ..limits()
    })
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", svc.addr);
    let owner = format!("Token {}", svc.tokens["owner"]);

    // 414: a long query.
    let long = format!("{base}/api/booking-offerings/?query={}", "a".repeat(10_000));
    let r = http
        .get(&long)
        .header("Authorization", &owner)
        .send()
        .await
        .expect("414");
    assert_eq!(r.status(), 414);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"detail": "Request URI is too long."})
    );
    // Requests hyper refuses itself before bookcal sees them: past 64 KiB of target,
    // past its head buffer, and unparsable ones.
    let longer = format!("/api/booking-offerings/?query={}", "a".repeat(100_000));
    let huge_header = format!("X-Big: {}\r\n", "b".repeat(500_000));
    let cases = [
        (
            svc.head("GET", &longer, None, ""),
            414,
            "Request URI is too long.",
        ),
        (
            svc.head("GET", "/health", None, &huge_header),
            431,
            "Request header fields are too large.",
        ),
        ("GARBAGE\r\n\r\n".to_owned(), 400, "Malformed request."),
        (
            "GET /health HTTP/1.1\r\nNo colon here\r\n\r\n".to_owned(),
            400,
            "Malformed request.",
        ),
    ];
    for (req, status, detail) in cases {
        let r = exchange(svc.addr, req.as_bytes()).await.expect("an answer");
        assert_eq!((r.status, r.json()), (status, json!({ "detail": detail })));
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }

    // 405 on a feed route (outside the API's own layers).
    let r = http
        .post(format!("{base}/feeds/offerings/x.ics"))
        .send()
        .await
        .expect("405");
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"detail": "Method \"POST\" not allowed."})
    );

    // 415: JSON sent to the multipart attachment action.
    let orders: Value = http
        .get(format!("{base}/api/marketplace-orders/"))
        .header("Authorization", format!("Token {}", svc.tokens["alice"]))
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    let order = orders[0]["uuid"].as_str().expect("an order of alice's");
    let r = http
        .post(format!(
            "{base}/api/marketplace-orders/{order}/update_attachment/"
        ))
        .header("Authorization", format!("Token {}", svc.tokens["alice"]))
        .json(&json!({"attachment": "x"}))
        .send()
        .await
        .expect("415");
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"detail": "Unsupported media type \"application/json\" in request."})
    );

    // 400 from a path that is not UTF-8 (an extractor rejection).
    let r = http
        .get(format!("{base}/api/booking-offerings/%FF%FE/"))
        .header("Authorization", &owner)
        .send()
        .await
        .expect("400");
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("a JSON body");
    assert!(matches!(status, 400 | 404), "{status}");
    assert!(body["detail"].is_string(), "{body}");
    svc.stop().await;
}

#[tokio::test]
async fn schedule_times_padded_with_spaces_are_stored_trimmed() {
    let app = crate::helpers::spawn_app().await;
    let (s, e) = (crate::helpers::at(70, 9), crate::helpers::at(70, 10));
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut body = app.order_body("room-aurora", &[(s, e)]);
    body["attributes"]["schedules"] =
        json!([{"start": format!("  {} ", fmt(s)), "end": format!("\t{}\n", fmt(e))}]);
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uuid = r.body["uuid"].as_str().expect("uuid");
    let got = app
        .get("alice", &format!("/api/marketplace-orders/{uuid}/"))
        .await;
    assert_eq!(
        got.body["attributes"]["schedules"],
        json!([{"start": fmt(s), "end": fmt(e)}])
    );
}

#[tokio::test]
async fn error_messages_that_quote_the_request_are_cut_short() {
    let app = crate::helpers::spawn_app().await;
    let limit = bookcal::api::error::MAX_MESSAGE_CHARS;
    let cut = |s: &str| s.chars().count() <= limit + 1 && s.ends_with('…');
    let before = app.snapshot().await;

    // A choice in a body, quoted back.
    let mut body = app.order_body("room-aurora", &[]);
    body["type"] = json!("x".repeat(50_000));
    let r = app.post("alice", "/api/marketplace-orders/", body).await;
    assert_eq!(r.status, 400, "{:.300}", r.text);
    let msg = r.body["type"][0].as_str().expect("a field message");
    assert!(cut(msg) && msg.starts_with("\"xxx"), "{msg}");
    assert!(r.text.len() < 1024, "{} bytes", r.text.len());

    // A choice in a query.
    let r = app
        .get(
            "owner",
            &format!("/api/booking-resources/?state={}", "y".repeat(5000)),
        )
        .await;
    assert_eq!(r.status, 400, "{:.300}", r.text);
    assert!(r.text.len() < 1024, "{} bytes", r.text.len());
    assert!(
        r.body.as_object().is_some_and(|m| m
            .values()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .all(|v| v.as_str().is_some_and(cut))),
        "{}",
        r.text
    );

    // A content type, quoted back by the 415.
    let orders = app.get("alice", "/api/marketplace-orders/").await;
    let order = orders.body[0]["uuid"].as_str().expect("an order");
    let r = app
        .http
        .post(format!(
            "{}/api/marketplace-orders/{order}/update_attachment/",
            app.base
        ))
        .header("Authorization", format!("Token {}", app.tokens["alice"]))
        .header("Content-Type", format!("text/{}", "z".repeat(6000)))
        .body("{}")
        .send()
        .await
        .expect("415");
    assert_eq!(r.status(), 415);
    let v: Value = r.json().await.expect("json");
    let detail = v["detail"].as_str().expect("detail");
    assert!(
        cut(detail) && detail.starts_with("Unsupported media type \"text/zzz"),
        "{detail}"
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request changed the store"
    );
}
