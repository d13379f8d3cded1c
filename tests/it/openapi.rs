//! The OpenAPI document at `/api/schema/`: real responses validate against it and
//! name no field it leaves out, every routed operation is in it, it passes
//! `openapi-spec-validator`, and schemathesis finds no 5xx and no response that
//! contradicts it (the last two with the tools `.ci/run` installs).

use std::collections::BTreeSet;

use crate::helpers::{assert_snapshot, at, spawn_app, spawn_app_with, sync_env, Options};
use serde_json::{json, Map, Value};

async fn document(app: &crate::helpers::TestApp) -> Value {
    let r = app
        .req(reqwest::Method::GET, None, "/api/schema/", None)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("application/json")));
    r.body
}

fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {r}")),
        ),
        None => s,
    }
}

/// The properties an object schema names, through `$ref`, `allOf`, `oneOf`, `anyOf`.
fn properties(doc: &Value, s: &Value) -> Option<Map<String, Value>> {
    let s = resolve(doc, s);
    let mut out: Option<Map<String, Value>> = None;
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        out.get_or_insert_with(Map::new).extend(p.clone());
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for sub in s.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = properties(doc, sub) {
                out.get_or_insert_with(Map::new).extend(p);
            }
        }
    }
    out
}

fn items<'a>(doc: &'a Value, s: &'a Value) -> Option<&'a Value> {
    let s = resolve(doc, s);
    s.get("items").or_else(|| {
        ["oneOf", "anyOf"]
            .iter()
            .filter_map(|k| s.get(*k).and_then(Value::as_array))
            .flatten()
            .find_map(|sub| items(doc, sub))
    })
}

/// Fields of `v` that its schema does not name (objects whose schema names no
/// properties at all, such as `attributes`, may hold anything).
fn undocumented(doc: &Value, s: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(props) = properties(doc, s) {
                for (k, x) in m {
                    match props.get(k) {
                        None => out.push(format!("{path}.{k}")),
                        Some(ps) => undocumented(doc, ps, x, &format!("{path}.{k}"), out),
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(it) = items(doc, s) {
                for (i, x) in a.iter().enumerate() {
                    undocumented(doc, it, x, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Checks one real response against the document: its status is documented for the
/// operation, and a JSON body validates and names no undocumented field.
fn check(doc: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not documented");
    let resp = resolve(doc, &op["responses"][status.to_string()]);
    assert!(
        resp.is_object(),
        "{method} {template}: status {status} is not documented"
    );
    let Some(schema) = resp.pointer("/content/application~1json/schema") else {
        return;
    };
    let mut root = schema.clone();
    if let Value::Object(m) = &mut root {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: {errors:#?}\n{body:#}"
    );
    let mut extra = Vec::new();
    undocumented(doc, schema, body, "", &mut extra);
    assert!(
        extra.is_empty(),
        "{method} {template} {status}: fields missing from the schema: {extra:?}"
    );
}

#[tokio::test]
async fn real_responses_validate_against_the_document_and_name_no_undocumented_field() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let env = sync_env(&app).await;
    let room = app.offering_id("room-aurora").hex();
    // A synced, shared calendar fills every `googlecalendar` field.
    env.sync(app.offering_id("room-aurora")).await;
    env.engine
        .set_public(app.offering_id("room-aurora"), true)
        .await
        .expect("share");
    let other = bookcal::domain::Id::new_v4().hex();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let mut seen = Vec::new();
    macro_rules! case {
        ($method:expr, $user:expr, $path:expr, $template:expr, $body:expr, $status:expr) => {{
            let path: String = $path.into();
            let r = app.req($method.clone(), $user, &path, $body).await;
            assert_eq!(r.status, $status, "{} {}: {}", $method, path, r.text);
            check(
                &doc,
                &$method.as_str().to_lowercase(),
                $template,
                r.status,
                &r.body,
            );
            seen.push(($method.as_str().to_lowercase(), $template));
            r
        }};
    }

    let offerings = "/api/booking-offerings/".to_string();
    let list = case!(
        get,
        Some("owner"),
        offerings,
        "/api/booking-offerings/",
        None,
        200
    );
    assert!(list.body.as_array().is_some_and(|a| a.len() == 3));
    let one = case!(
        get,
        Some("owner"),
        format!("/api/booking-offerings/{room}/"),
        "/api/booking-offerings/{uuid}/",
        None,
        200
    );
    assert!(one.body["googlecalendar"]["last_run"].is_object());
    assert!(one.body["googlecalendar"]["ical_feed_url"].is_string());
    case!(
        get,
        None,
        format!("/api/booking-offerings/{room}/"),
        "/api/booking-offerings/{uuid}/",
        None,
        401
    );
    case!(
        get,
        Some("owner"),
        format!("/api/booking-offerings/{other}/"),
        "/api/booking-offerings/{uuid}/",
        None,
        404
    );
    case!(
        get,
        Some("owner"),
        "/api/booking-offerings/?page=99",
        "/api/booking-offerings/",
        None,
        404
    );
    case!(
        post,
        Some("owner"),
        format!("/api/booking-offerings/{room}/google_calendar_sync/"),
        "/api/booking-offerings/{uuid}/google_calendar_sync/",
        Some(json!({})),
        200
    );
    case!(
        post,
        Some("owner"),
        format!("/api/booking-offerings/{room}/share_google_calendar/"),
        "/api/booking-offerings/{uuid}/share_google_calendar/",
        Some(json!({})),
        400
    );

    case!(
        get,
        Some("owner"),
        "/api/booking-resources/",
        "/api/booking-resources/",
        None,
        200
    );
    case!(
        get,
        Some("owner"),
        "/api/booking-resources/?state=Nope",
        "/api/booking-resources/",
        None,
        400
    );

    let created = case!(
        post,
        Some("alice"),
        "/api/marketplace-orders/",
        "/api/marketplace-orders/",
        Some(app.order_body("room-aurora", &[(at(60, 9), at(60, 10))])),
        201
    );
    let order = created.body["uuid"].as_str().expect("uuid").to_string();
    let resource = created.body["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_string();
    case!(
        post,
        Some("alice"),
        "/api/marketplace-orders/",
        "/api/marketplace-orders/",
        Some(json!({"attributes": []})),
        400
    );
    case!(
        post,
        Some("alice"),
        "/api/marketplace-orders/",
        "/api/marketplace-orders/",
        Some(app.order_body("room-aurora", &[(at(60, 9), at(60, 10))])),
        400
    );
    case!(
        get,
        Some("alice"),
        "/api/marketplace-orders/",
        "/api/marketplace-orders/",
        None,
        200
    );
    case!(
        get,
        Some("alice"),
        format!("/api/marketplace-orders/{order}/"),
        "/api/marketplace-orders/{uuid}/",
        None,
        200
    );
    case!(
        get,
        Some("alice"),
        format!("/api/marketplace-orders/{order}/offering/"),
        "/api/marketplace-orders/{uuid}/offering/",
        None,
        200
    );
    let res = case!(
        get,
        Some("owner"),
        format!("/api/booking-resources/{resource}/"),
        "/api/booking-resources/{uuid}/",
        None,
        200
    );
    assert_eq!(res.body["slots"].as_array().map(Vec::len), Some(1));
    case!(
        post,
        Some("owner"),
        format!("/api/booking-resources/{resource}/accept/"),
        "/api/booking-resources/{uuid}/accept/",
        Some(json!({})),
        200
    );
    case!(
        post,
        Some("owner"),
        format!("/api/booking-resources/{resource}/accept/"),
        "/api/booking-resources/{uuid}/accept/",
        Some(json!({})),
        409
    );
    case!(
        post,
        Some("admin"),
        format!("/api/marketplace-orders/{order}/set_backend_id/"),
        "/api/marketplace-orders/{uuid}/set_backend_id/",
        Some(json!({"backend_id": "b-1"})),
        200
    );
    case!(
        get,
        Some("alice"),
        format!("/api/marketplace-orders/{order}/"),
        "/api/marketplace-orders/{uuid}/",
        None,
        200
    );
    case!(
        post,
        Some("alice"),
        format!("/api/marketplace-orders/{order}/approve_by_provider/"),
        "/api/marketplace-orders/{uuid}/approve_by_provider/",
        Some(json!({})),
        403
    );
    case!(
        get,
        Some("alice"),
        format!("/api/marketplace-bookings/{room}/"),
        "/api/marketplace-bookings/{uuid}/",
        None,
        200
    );
    // The directory the answers link to.
    case!(get, None, "/api/", "/api/", None, 200);
    let project = app.project_id("imaging").hex();
    let one = case!(
        get,
        Some("alice"),
        format!("/api/projects/{project}/"),
        "/api/projects/{uuid}/",
        None,
        200
    );
    let customer = one.body["customer_uuid"]
        .as_str()
        .expect("customer")
        .to_string();
    case!(
        get,
        Some("alice"),
        "/api/projects/",
        "/api/projects/",
        None,
        200
    );
    case!(
        get,
        Some("owner"),
        format!("/api/projects/{project}/"),
        "/api/projects/{uuid}/",
        None,
        404
    );
    case!(
        get,
        Some("alice"),
        "/api/customers/",
        "/api/customers/",
        None,
        200
    );
    case!(
        get,
        Some("alice"),
        format!("/api/customers/{customer}/"),
        "/api/customers/{uuid}/",
        None,
        200
    );
    let users = case!(get, Some("alice"), "/api/users/", "/api/users/", None, 200);
    let alice = users.body[0]["uuid"].as_str().expect("a user").to_string();
    case!(
        get,
        Some("alice"),
        format!("/api/users/{alice}/"),
        "/api/users/{uuid}/",
        None,
        200
    );
    case!(
        get,
        Some("alice"),
        "/api/users/?o=nope",
        "/api/users/",
        None,
        400
    );
    case!(
        get,
        Some("alice"),
        "/api/marketplace-public-offerings/",
        "/api/marketplace-public-offerings/",
        None,
        200
    );
    case!(
        get,
        Some("alice"),
        format!("/api/marketplace-public-offerings/{room}/"),
        "/api/marketplace-public-offerings/{uuid}/",
        None,
        200
    );
    case!(get, None, "/health", "/health", None, 200);
    case!(get, None, "/ready", "/ready", None, 503);
    assert!(seen.len() > 20);
}

#[tokio::test]
async fn a_real_429_validates_against_the_document_on_every_kind_of_route_the_limiter_refuses() {
    // One anonymous request a second, none more at once, answered at once.
    let app = spawn_app_with(Options {
        google_credentials: false,
        http: bookcal::config::HttpSettings {
            client_requests_per_sec: 1,
            client_burst: 1,
            throttle_hold_ms: 0,
            ..bookcal::config::HttpSettings::default()
        },
        ..Options::default()
    })
    .await;
    // The document itself is an anonymous request: fetched until it is admitted.
    let doc = loop {
        let r = app
            .req(reqwest::Method::GET, None, "/api/schema/", None)
            .await;
        if r.status == 200 {
            break r.body;
        }
        assert_eq!(r.status, 429, "{}", r.text);
    };
    // Every operation but the probes and the scrape documents the 429 and its header.
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("ops") {
            let throttled = resolve(&doc, &op["responses"]["429"]);
            let never = ["/health", "/ready", "/metrics"].contains(&path.as_str());
            assert_eq!(throttled.is_object(), !never, "{method} {path}: 429");
            if !never {
                assert_eq!(
                    throttled["headers"]["Retry-After"]["schema"]["type"], "integer",
                    "{method} {path}"
                );
            }
        }
    }
    let room = app.offering_id("room-aurora").hex();
    let junk = "A".repeat(43);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    // (method, path, the documented template): a public feed, a guessed token feed,
    // the anonymous API root, and operations asked without credentials.
    let cases = [
        (
            &get,
            format!("/feeds/offerings/{room}.ics"),
            "/feeds/offerings/{file}",
        ),
        (&get, format!("/feeds/t/{junk}.ics"), "/feeds/t/{file}"),
        (&get, "/api/".to_owned(), "/api/"),
        (&get, "/api/schema/".to_owned(), "/api/schema/"),
        (
            &get,
            "/api/booking-offerings/".to_owned(),
            "/api/booking-offerings/",
        ),
        (
            &post,
            "/api/marketplace-orders/".to_owned(),
            "/api/marketplace-orders/",
        ),
    ];
    for (method, path, template) in cases {
        // Admitted answers (the allowance refills once a second) are asked again:
        // each uses the allowance up, so the next is refused.
        let mut tries = 0;
        let refused = loop {
            let body = (method == post).then(|| json!({}));
            let r = app.req(method.clone(), None, &path, body).await;
            if r.status == 429 {
                break r;
            }
            tries += 1;
            assert!(tries < 50, "{path}: never refused ({} last)", r.status);
        };
        check(
            &doc,
            &method.as_str().to_lowercase(),
            template,
            429,
            &refused.body,
        );
        let retry_after: u64 = refused.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{path}: Retry-After {:?}", refused.headers));
        assert!(retry_after >= 1, "{path}: Retry-After {retry_after}");
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("Request was throttled.")),
            "{path}: {}",
            refused.text
        );
    }
}

/// `(method, path)` of every `.route(..)` in `api::router`, read from its source.
fn routed() -> BTreeSet<(String, String)> {
    let src = include_str!("../../src/api/mod.rs");
    let start = src.find("pub fn router").expect("router");
    let body = &src[start..];
    // The whole router chain: up to `.with_state(`, which ends it.
    let body = &body[..body.find(".with_state(").expect("with_state")];
    let mut out = BTreeSet::new();
    for chunk in body.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("path literal").to_string();
        for m in ["get", "post", "put", "patch", "delete"] {
            let needle = format!("{m}(");
            let hit = chunk.match_indices(&needle).any(|(i, _)| {
                i == 0
                    || !chunk[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if hit {
                out.insert((m.to_string(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_routed_operation_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("ops").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routes = routed();
    assert!(routes.len() > 25, "{routes:?}");
    let missing: Vec<_> = routes.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[tokio::test]
async fn the_document_passes_openapi_spec_validator() {
    let Ok(python) = std::env::var("BOOKCAL_PYTHON") else {
        eprintln!("skipped: BOOKCAL_PYTHON is not set (.ci/run sets it)");
        return;
    };
    let app = spawn_app().await;
    let doc = document(&app).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_response_contradicting_the_document() {
    let Ok(st) = std::env::var("BOOKCAL_SCHEMATHESIS") else {
        eprintln!("skipped: BOOKCAL_SCHEMATHESIS is not set (.ci/run sets it)");
        return;
    };
    let app = spawn_app().await;
    // A running scheduler syncing against the emulator, so that `/ready` is 200 and
    // the calendar actions do real work.
    let scheduler = app.start_scheduler();
    let dir = tempfile::tempdir().expect("tmp");
    // The token goes to schemathesis in a file-free way (a header), but is also
    // written for anyone reproducing a failure by hand.
    let token = app.tokens["admin"].clone();
    std::fs::write(dir.path().join("token"), &token).expect("token");
    let examples = std::env::var("BOOKCAL_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let schema_url = format!("{}/api/schema/", app.base);
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(st)
            .current_dir(cwd)
            .args(["run", &schema_url])
            .args(["--header", &format!("Authorization: Token {token}")])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--max-examples", &examples])
            // One worker: hypothesis' lambda descriptions are not thread-safe.
            .args(["--workers", "1", "--seed", "1"])
            .args(["--request-timeout", "10"])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .expect("join")
    .expect("run schemathesis");
    scheduler.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}",
        stdout
            .lines()
            .filter(|l| l.contains("generated") || l.contains("passed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_document_matches_its_snapshot() {
    // Every change to the API's documented shapes shows in review as a diff of
    // `tests/snapshots/openapi.json` (UPDATE_SNAPSHOTS=1 rewrites it).
    let app = spawn_app().await;
    let doc = document(&app).await;
    let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
    assert_snapshot("openapi.json", &text);
}

#[tokio::test]
async fn the_strict_check_reports_fields_the_schema_does_not_name() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schema = json!({"$ref": "#/components/schemas/Offering"});
    let body = json!({
        "url": "http://x/",
        "customer_name": "from the flattened fields",
        "nonsense": 1,
        "googlecalendar": {"public": false, "nested_nonsense": true},
    });
    let mut extra = Vec::new();
    undocumented(&doc, &schema, &body, "", &mut extra);
    assert_eq!(extra, vec![".googlecalendar.nested_nonsense", ".nonsense"]);
}
