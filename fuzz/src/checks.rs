//! The invariants of the attack suite, one function per fuzz target. Each takes the
//! raw input and panics when bookcal breaks a rule on it:
//!
//! - [`order_body`]: any bytes POSTed as an order get 201 or a DRF-shaped 4xx, never
//!   a 5xx; an accepted order's slots are valid, in the future and overlap nothing
//!   that was taken before it.
//! - [`query_strings`]: any query string on the list, bookings and feed routes gets
//!   an answer that is not a 5xx, JSON in DRF shape on the API.
//! - [`datetimes`]: schedule times, list filters and feed windows parse without
//!   panicking, and an accepted schedule time reads back as the same instant.
//! - [`rrule_expansion`]: any recurrence lines of an external event expand, in
//!   bounded time, to sorted, non-empty busy slots inside the window.
//! - [`feed_render`]: any names, texts, zones and times render to RFC 5545 content
//!   lines (CRLF, at most 75 octets, folds never splitting UTF-8, no bare controls)
//!   whose unfolded, unescaped text is the input text.
//!
//! Shared between `fuzz/` (cargo-fuzz) and `tests/it/attack.rs` (replaying the
//! corpora on stable), so both check the same things.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use chrono::{Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::Value;
use tower::ServiceExt;

use bookcal::domain::Id;
use bookcal::store::Store;

/// The API over a store loaded with the demo data, built once per process.
struct Api {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    store: Arc<Store>,
    tokens: HashMap<&'static str, String>,
    offerings: HashMap<String, Id>,
    project: Id,
    feed_secret: String,
    _dir: tempfile::TempDir,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            Store::open(dir.path(), &bookcal::store::StoreOptions::default()).expect("store"),
        );
        let demo: bookcal::import::DataSet =
            serde_json::from_str(bookcal::demo::DEMO_DATA).expect("demo data");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(bookcal::import::import(&store, &demo, Utc::now()))
            .expect("import");
        let cat = store.sled().expect("sled").read().expect("read");
        let mut tokens = HashMap::new();
        for u in ["owner", "alice", "bob", "admin"] {
            let token = rt.block_on(store.create_token(cat.users_by_name[u]));
            tokens.insert(u, token.expect("token"));
        }
        let offerings = cat
            .offerings
            .values()
            .map(|o| (o.slug.clone(), o.id))
            .collect();
        let project = *cat.projects.keys().next().expect("a project");
        drop(cat);
        let state = bookcal::api::AppState::new(store.clone());
        let router = bookcal::server::with_limits(
            bookcal::api::router(state),
            &bookcal::config::HttpSettings::default(),
        );
        let mut api = Api {
            rt,
            router,
            store,
            tokens,
            offerings,
            project,
            feed_secret: String::new(),
            _dir: dir,
        };
        // A secret feed of alice's, for the token feed route.
        let (status, body) = api.call(
            Method::POST,
            "/api/feed-tokens/",
            Some("alice"),
            br#"{"name": "fuzz"}"#.to_vec(),
        );
        assert_eq!(status, 201, "{body:?}");
        let url = body["url"].as_str().expect("feed url");
        api.feed_secret = url
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".ics"))
            .expect("secret")
            .to_owned();
        api
    })
}

impl Api {
    /// One request through the router (with the server's limits and error shapes);
    /// the status and the body as JSON (`Null` when it is not JSON).
    fn call(&self, method: Method, uri: &str, user: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let (status, bytes, _) = self.call_raw(method, uri, user, body);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn call_raw(
        &self,
        method: Method,
        uri: &str,
        user: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "bookcal.test")
            .header("content-type", "application/json");
        if let Some(u) = user {
            req = req.header("authorization", format!("Token {}", self.tokens[u]));
        }
        let req = req.body(Body::from(body)).expect("request");
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (status, bytes.to_vec(), content_type)
        })
    }
}

/// A DRF error body: `{"detail": "..."}`, a field map, or a list of messages.
fn assert_drf_error(status: u16, body: &Value, what: &str) {
    let ok = match body {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    };
    assert!(ok, "{what}: {status} without a DRF body: {body}");
}

// ---------------------------------------------------------------- order bodies

/// Seeds may use `@ROOM@`, `@TEM@`, `@TELESCOPE@`, `@PROJECT@` (hyperlinks) and
/// `@DAY@` (a date a month ahead), so that kept corpora stay bookable as time passes.
fn expand_placeholders(body: &[u8]) -> Vec<u8> {
    let api = api();
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    if !text.contains('@') {
        return body.to_vec();
    }
    let base = "http://bookcal.test/api";
    let link = |kind: &str, id: Id| format!("{base}/{kind}/{}/", id.hex());
    let day = (Utc::now() + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    text.replace(
        "@ROOM@",
        &link("marketplace-public-offerings", api.offerings["room-aurora"]),
    )
    .replace(
        "@TEM@",
        &link("marketplace-public-offerings", api.offerings["tem-2100"]),
    )
    .replace(
        "@TELESCOPE@",
        &link("marketplace-public-offerings", api.offerings["telescope"]),
    )
    .replace("@PROJECT@", &link("projects", api.project))
    .replace("@DAY@", &day)
    .into_bytes()
}

/// Any bytes as an order body: 201 or a DRF 4xx; an accepted order books free time.
/// Returns whether the order was accepted.
pub fn order_body(data: &[u8]) -> bool {
    let api = api();
    let body = expand_placeholders(data);
    let (taken, known): (HashMap<Id, Vec<bookcal::domain::Interval>>, HashSet<Id>) = {
        let cat = api.store.sled().expect("sled").read().expect("read");
        let taken = api
            .offerings
            .values()
            .map(|o| (*o, cat.occupied(*o).iter().map(|x| x.interval).collect()))
            .collect();
        (taken, cat.orders.keys().copied().collect())
    };
    let before = Utc::now();
    let (status, resp) = api.call(
        Method::POST,
        "/api/marketplace-orders/",
        Some("alice"),
        body,
    );
    match status {
        201 => {}
        400 | 413 => {
            assert_drf_error(status, &resp, "order");
            return false;
        }
        other => panic!("an order body got {other}: {resp}"),
    }
    let cat = api.store.sled().expect("sled").read().expect("read");
    let new: Vec<_> = cat
        .orders
        .values()
        .filter(|o| !known.contains(&o.id))
        .collect();
    assert_eq!(new.len(), 1, "one 201, one new order");
    let order = new[0];
    assert!(
        !order.requested.is_empty(),
        "an order without slots was accepted"
    );
    let taken = &taken[&order.offering];
    for (i, slot) in order.requested.iter().enumerate() {
        assert!(
            slot.start < slot.end,
            "an empty or reversed slot was accepted: {slot:?}"
        );
        assert!(
            slot.start >= before - Duration::seconds(5),
            "a past slot was accepted: {slot:?}"
        );
        for t in taken {
            assert!(
                !slot.overlaps(t),
                "double booking: {slot:?} overlaps taken {t:?}"
            );
        }
        for other in &order.requested[..i] {
            assert!(
                !slot.overlaps(other),
                "an order overlapping itself was accepted"
            );
        }
    }
    true
}

// ---------------------------------------------------------------- query strings

/// The input as a query string: bytes a query may hold stay (so `&`, `=` and `%`
/// keep their meaning), everything else is percent-encoded.
fn as_query(data: &[u8]) -> String {
    let mut q = String::with_capacity(data.len());
    for &b in data {
        if b.is_ascii_alphanumeric() || b"&=%-._~:+,/!$'()*;@".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// Any query on the lists, the bookings view and the feeds: never a 5xx; API
/// answers are JSON (a list when 200, a DRF error otherwise).
pub fn query_strings(data: &[u8]) {
    let api = api();
    let q = as_query(data);
    let room = api.offerings["room-aurora"].hex();
    let api_paths = [
        "/api/booking-resources/".to_owned(),
        "/api/marketplace-orders/".to_owned(),
        "/api/booking-offerings/".to_owned(),
        format!("/api/marketplace-bookings/{room}/"),
    ];
    for (path, user) in api_paths.iter().zip(["owner", "alice", "owner", "bob"]) {
        let uri = format!("{path}?{q}");
        let (status, body) = api.call(Method::GET, &uri, Some(user), Vec::new());
        match status {
            200 => assert!(body.is_array(), "{uri}: 200 without a list: {body}"),
            400 | 404 | 414 => assert_drf_error(status, &body, &uri),
            other => panic!("{uri}: {other} {body}"),
        }
    }
    let feeds = [
        format!("/feeds/offerings/{room}.ics"),
        format!("/feeds/t/{}.ics", api.feed_secret),
    ];
    for path in feeds {
        let uri = format!("{path}?{q}");
        let (status, body, content_type) = api.call_raw(Method::GET, &uri, None, Vec::new());
        assert!(status < 500, "{uri}: {status}");
        if status == 200 {
            assert!(
                content_type.starts_with("text/calendar"),
                "{uri}: {content_type}"
            );
            assert_content_lines(&String::from_utf8(body).expect("a feed is UTF-8"));
        }
    }
}

// ---------------------------------------------------------------- datetimes

/// Schedule times, list datetime filters and feed windows: no panic, and accepted
/// schedule times read back as the same instant.
pub fn datetimes(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parse =
        |s: &str| bookcal::domain::booking::parse_schedule_time(&Value::String(s.to_owned()));
    if let Ok(t) = parse(s) {
        let again = parse(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        assert_eq!(again, Ok(t), "{s:?} does not read back");
        assert_eq!(
            parse(s.trim()),
            Ok(t),
            "{s:?}: spaces around a time change its meaning"
        );
    }
    let q = format!("created={}&modified={}", as_query(data), as_query(data));
    let params = bookcal::api::listing::Params::parse(Some(&q));
    let _ = params.datetime("created");
    // The feed window through the real route.
    let api = api();
    let room = api.offerings["room-aurora"].hex();
    for key in ["from", "to"] {
        let uri = format!("/feeds/offerings/{room}.ics?{key}={}", as_query(data));
        let (status, _, _) = api.call_raw(Method::GET, &uri, None, Vec::new());
        assert!(status < 500, "{uri}: {status}");
    }
}

// ---------------------------------------------------------------- RRULE expansion

/// Any recurrence lines (one per input line, at most eight) of a weekly-ish event in
/// Berlin: the expansion ends, and its slots are sorted, non-empty and in the window.
pub fn rrule_expansion(data: &[u8]) {
    use bookcal::domain::calendar::{ExtTime, ExternalEvent};
    use bookcal::sync::busy::{busy_slots, Window};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    // The first line may name the event's zone.
    let zone = lines.next().unwrap_or("");
    let recurrence: Vec<String> = lines.take(8).map(str::to_owned).collect();
    let at = Utc
        .with_ymd_and_hms(2030, 1, 7, 9, 30, 0)
        .single()
        .expect("valid");
    let event = ExternalEvent {
        id: "fuzz".into(),
        status: "confirmed".into(),
        transparent: false,
        declined: false,
        event_type: None,
        start: Some(ExtTime::Instant {
            at,
            tz: Some(zone.to_owned()),
        }),
        end: Some(ExtTime::Instant {
            at: at + Duration::minutes(45),
            tz: Some(zone.to_owned()),
        }),
        recurrence,
        recurring_event_id: None,
        original_start: None,
        summary: None,
    };
    let window = Window {
        from: Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("valid"),
        to: Utc
            .with_ymd_and_hms(2031, 2, 5, 0, 0, 0)
            .single()
            .expect("valid"),
    };
    let out = busy_slots(&[event], chrono_tz::Europe::Berlin, &window);
    for pair in out.slots.windows(2) {
        assert!(pair[0].start <= pair[1].start, "slots out of order");
    }
    for s in &out.slots {
        assert!(s.start < s.end, "an empty busy slot: {s:?}");
        assert!(
            s.end > window.from && s.start < window.to,
            "outside the window: {s:?}"
        );
    }
}

// ---------------------------------------------------------------- feed rendering

/// Checks RFC 5545 section 3.1 on a whole feed: CRLF line ends, at most 75 octets per
/// physical line, continuation lines starting with a space, no ASCII control
/// characters but HTAB, and BEGIN/END balanced. Returns the unfolded content lines.
pub fn assert_content_lines(feed: &str) -> Vec<String> {
    assert!(feed.ends_with("\r\n"), "the feed does not end in CRLF");
    let mut unfolded: Vec<String> = Vec::new();
    for line in feed[..feed.len() - 2].split("\r\n") {
        assert!(
            line.len() <= 75,
            "a line of {} octets: {line:?}",
            line.len()
        );
        // RFC 5545's CONTROL is ASCII only: %x00-08 / %x0A-1F / %x7F.
        assert!(
            !line.chars().any(|c| c.is_ascii_control() && c != '\t'),
            "a control character in {line:?}"
        );
        if let Some(rest) = line.strip_prefix(' ') {
            unfolded
                .last_mut()
                .expect("a fold after a line")
                .push_str(rest);
        } else {
            assert!(!line.is_empty(), "an empty content line");
            unfolded.push(line.to_owned());
        }
    }
    let mut depth: Vec<&str> = Vec::new();
    for l in &unfolded {
        if let Some(c) = l.strip_prefix("BEGIN:") {
            depth.push(c);
        } else if let Some(c) = l.strip_prefix("END:") {
            assert_eq!(depth.pop(), Some(c), "unbalanced END:{c}");
        }
    }
    assert!(depth.is_empty(), "unclosed {depth:?}");
    unfolded
}

/// RFC 5545 TEXT unescaping (section 3.3.11), written independently of the renderer.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a TEXT value should read back as: line breaks as LF, other ASCII controls
/// but HTAB dropped (the renderer's documented normalisation).
fn normalised(v: &str) -> String {
    let v = v.replace("\r\n", "\n").replace('\r', "\n");
    v.chars()
        .filter(|c| !(c.is_ascii_control() && *c != '\t' && *c != '\n'))
        .collect()
}

/// The value of `NAME` (params skipped) in an unfolded content line.
fn value_of<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?;
    if !rest.starts_with([':', ';']) {
        return None;
    }
    // Parameters may quote a colon; TEXT values start after the first unquoted one.
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(&rest[i + 1..]),
            _ => {}
        }
    }
    None
}

/// Input layout: fields separated by 0xFF (never in UTF-8): a control field (zone,
/// times), the calendar's name and description, then one field per event with its
/// summary, description, location and uid separated by 0xFE.
pub fn feed_render(data: &[u8]) {
    use bookcal::ical::{render, FeedCalendar, FeedEvent, FeedStatus, FeedTime};
    let mut fields = data.split(|b| *b == 0xFF);
    let control = fields.next().unwrap_or(&[]);
    let byte = |i: usize| control.get(i).copied().unwrap_or(0);
    let zones = chrono_tz::TZ_VARIANTS;
    let time_zone = zones[(usize::from(byte(0)) * 7 + usize::from(byte(1))) % zones.len()];
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or(&[])).into_owned();
    let name = text(fields.next());
    let description = Some(text(fields.next())).filter(|d| !d.is_empty());
    let epoch = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let events: Vec<FeedEvent> = fields
        .take(16)
        .enumerate()
        .map(|(i, f)| {
            let mut parts = f.split(|b| *b == 0xFE);
            let mut next = || text(parts.next());
            let (summary, desc, location, uid) = (next(), next(), next(), next());
            let k = usize::from(byte(2 + i));
            // Minutes within 2018..2022, across DST changes. (The VTIMEZONE derivation
            // probes every hour of every year the events span, up to its 200-year
            // bound: a span of decades would make each run slow, not the check better.)
            const SPAN: i64 = 4 * 525_600;
            let raw = (i64::from(byte(20 + i)) << 16 | (k as i64) << 8 | i as i64) * 7919;
            let minutes = raw % SPAN - 2 * 525_600;
            let start = epoch + Duration::minutes(minutes);
            let when = if k % 5 == 0 {
                let d: NaiveDate = start.date_naive();
                FeedTime::AllDay {
                    start: d,
                    end_exclusive: d + Duration::days((k % 3) as i64),
                }
            } else {
                FeedTime::Timed {
                    start,
                    end: start + Duration::minutes((k as i64 % 7) * 45 - 30),
                }
            };
            FeedEvent {
                uid: if uid.is_empty() {
                    format!("e{i}@bookcal")
                } else {
                    uid
                },
                summary,
                description: Some(desc).filter(|d| !d.is_empty()),
                location: Some(location).filter(|l| !l.is_empty()),
                when,
                status: [
                    FeedStatus::Confirmed,
                    FeedStatus::Tentative,
                    FeedStatus::Cancelled,
                ][k % 3],
                sequence: k as u32,
                last_modified: epoch,
                created: None,
                url: None,
            }
        })
        .collect();
    let cal = FeedCalendar {
        name: name.clone(),
        description,
        time_zone,
        source_url: None,
        refresh_interval: Duration::hours(1),
        color: None,
        events: events.clone(),
    };
    let feed = render(&cal);
    assert_eq!(feed, render(&cal), "rendering is not deterministic");
    let lines = assert_content_lines(&feed);
    // The calendar name reads back on one line.
    let got_name = lines.iter().find_map(|l| value_of(l, "X-WR-CALNAME"));
    let want_name = normalised(&name).replace('\n', " ");
    assert_eq!(got_name.map(unescape), Some(want_name), "the calendar name");
    // Every event's texts read back, in the rendered order.
    let mut in_event = false;
    let mut rendered: Vec<HashMap<&str, String>> = Vec::new();
    for l in &lines {
        if l == "BEGIN:VEVENT" {
            in_event = true;
            rendered.push(HashMap::new());
        } else if l == "END:VEVENT" {
            in_event = false;
        } else if in_event {
            for key in [
                "UID",
                "SUMMARY",
                "DESCRIPTION",
                "LOCATION",
                "DTSTART",
                "DTEND",
            ] {
                if let Some(v) = value_of(l, key) {
                    if let Some(e) = rendered.last_mut() {
                        e.insert(key, v.to_owned());
                    }
                }
            }
        }
    }
    assert_eq!(rendered.len(), events.len(), "one VEVENT per event");
    for r in &rendered {
        assert!(
            r.contains_key("DTSTART") && r.contains_key("DTEND"),
            "{r:?}"
        );
        let uid = unescape(r.get("UID").expect("a UID"));
        let e = events
            .iter()
            .find(|e| normalised(&e.uid) == uid)
            .unwrap_or_else(|| panic!("UID {uid:?} is not one of the events"));
        assert_eq!(
            r.get("SUMMARY").map(|v| unescape(v)),
            Some(normalised(&e.summary))
        );
        let opt = |v: &Option<String>| v.as_deref().map(normalised);
        assert_eq!(
            r.get("DESCRIPTION").map(|v| unescape(v)),
            opt(&e.description)
        );
        assert_eq!(r.get("LOCATION").map(|v| unescape(v)), opt(&e.location));
    }
}
