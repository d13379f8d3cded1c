//! The first hour of a new user, with the real binary: a running demo's directory is
//! not reset or shared, a second process on a data directory says so in one line,
//! `bookcal sync` always reports and refuses a directory without a store, and the
//! demo leaves its guide in a file and names the web page last; HEAD on every list
//! has GET's headers; the links in answers (projects, organisations, users, public
//! offerings, the API root) lead somewhere, for Waldur's own client too.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::operations::{prepare, serve};
use bookcal::emulator::{Emulator, EmulatorOptions};

const BIN: &str = env!("CARGO_BIN_EXE_bookcal");

/// The binary with `args` and `env` only (no config file, none of the caller's
/// `BOOKCAL_*` variables).
fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BOOKCAL_") {
            c.env_remove(k);
        }
    }
    c.args(args)
        .env("RUST_LOG", "warn")
        .env("BOOKCAL_TOKEN_SALT", "a-salt-for-the-first-hour")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs the binary to its end (at most a minute).
async fn bookcal(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), command(args, env).output())
        .await
        .expect("bookcal ends within a minute")
        .expect("run bookcal")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `bookcal demo` and everything it printed up to its last guide line.
struct Demo {
    child: tokio::process::Child,
    printed: Vec<String>,
}

async fn start_demo(dir: &Path) -> Demo {
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("BOOKCAL_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let last = line.starts_with("Web page: ");
            printed.push(line);
            if last {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the demo printed its guide");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo { child, printed }
}

/// Every file under `dir` with its length, sorted (what "untouched" compares).
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((p.display().to_string(), len));
            }
        }
    }
    out.sort();
    out
}

/// The error lines of a failed command: stderr without log lines.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.contains(" WARN ") && !l.contains(" INFO "))
        .collect()
}

#[tokio::test]
async fn a_running_demo_refuses_a_reset_and_a_second_demo_and_leaves_its_guide_in_a_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("demo");
    let mut demo = start_demo(&dir).await;

    // The guide ends with the web page's address and says where its copy is.
    let last = demo.printed.last().expect("printed");
    let page = last.strip_prefix("Web page: ").expect("web page last");
    assert!(
        page.starts_with("http://127.0.0.1:") && page.ends_with('/'),
        "{page}"
    );
    let guide_path = dir.join(bookcal::demo::GUIDE_FILE);
    assert!(
        demo.printed
            .iter()
            .any(|l| l.contains(&guide_path.display().to_string())),
        "the output names the guide file: {:?}",
        demo.printed
    );
    let guide = std::fs::read_to_string(&guide_path).expect("the guide file");
    let tokens: Vec<&String> = demo
        .printed
        .iter()
        .filter(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            p.len() == 2 && ["admin", "owner", "alice"].contains(&p[0]) && p[1].len() == 40
        })
        .collect();
    assert_eq!(tokens.len(), 3, "{:?}", demo.printed);
    for t in &tokens {
        assert!(guide.contains(t.as_str()), "the guide file holds {t}");
    }
    assert!(guide.contains("curl -s -H 'Authorization: Token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&guide_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the tokens");
    }

    // A reset (and a second demo) while it runs: one clear line, non-zero, nothing
    // touched.
    let before = listing(&dir);
    let d = dir.to_str().expect("utf-8");
    for args in [
        vec![
            "demo",
            "--reset",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            d,
        ],
        vec!["demo", "--listen", "127.0.0.1:0", "--data-dir", d],
    ] {
        let out = bookcal(&args, &[]).await;
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            error_lines(&err),
            vec![format!(
                "bookcal: another bookcal is using {d}: stop it, or use another --data-dir"
            )],
            "{args:?}"
        );
        assert!(
            text(&out.stdout).is_empty(),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    assert!(dir.join("store").is_dir());
    // sled may have flushed meanwhile: the same files are there, none smaller.
    let after = listing(&dir);
    let names = |l: &[(String, u64)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    for (name, len) in &before {
        let now = after.iter().find(|(n, _)| n == name);
        assert!(
            now.is_some_and(|(_, l)| l >= len) || name.contains("snap."),
            "{name} was touched: {:?}",
            names(&after)
        );
    }

    // The demo still answers.
    let r = reqwest::get(format!("{page}health"))
        .await
        .expect("the first demo still runs");
    assert_eq!(r.status(), 200);
    demo.child.kill().await.expect("kill");
    let _ = demo.child.wait().await;

    // Stopped, the reset goes ahead (up to binding a port that is taken).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = bookcal(
        &["demo", "--reset", "--listen", &addr, "--data-dir", d],
        &[],
    )
    .await;
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("another bookcal"), "{err}");
    assert!(err.contains(&format!("cannot bind {addr}")), "{err}");
    assert!(!guide_path.exists(), "the reset removed the old guide");
}

#[tokio::test]
async fn a_second_process_on_a_data_directory_says_in_one_line_who_holds_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let salt = [("BOOKCAL_TOKEN_SALT", "a-salt-for-the-first-hour")];
    prepare(&data, &salt, &[]);
    let mut first = serve(&data, &salt);
    let d = data.to_str().expect("utf-8");
    let env = [
        ("BOOKCAL_DATA_DIR", d),
        ("BOOKCAL_LISTEN", "127.0.0.1:0"),
        ("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", ""),
    ];
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    let commands: [&[&str]; 5] = [
        &["serve"],
        &["sync"],
        &["import", fixture],
        &["token", "create", "--username", "alice"],
        &["serve", "--data-dir", d],
    ];
    let expected =
        format!("bookcal: another bookcal is using {d}: stop it, or use another --data-dir");
    // At once: each waits a few seconds for the lock before it gives up.
    let children: Vec<_> = commands
        .iter()
        .map(|args| command(args, &env).spawn().expect("spawn"))
        .collect();
    let mut outputs = Vec::new();
    for c in children {
        let out = tokio::time::timeout(Duration::from_secs(60), c.wait_with_output())
            .await
            .expect("ends within a minute")
            .expect("output");
        outputs.push(out);
    }
    for (args, out) in commands.iter().zip(outputs) {
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(error_lines(&err), vec![expected.as_str()], "{args:?}");
        assert!(!err.contains("could not acquire lock"), "{err}");
    }
    let status = first.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", first.log());
}

#[tokio::test]
async fn sync_refuses_a_directory_without_a_store_and_always_prints_a_summary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let emu = Emulator::start_on(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        EmulatorOptions::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("emulator");
    let key = tmp.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key");
    let root = emu.root_url();
    let google = |dir: &'static str| {
        let data = tmp.path().join(dir).display().to_string();
        vec![
            ("BOOKCAL_DATA_DIR".to_string(), data),
            ("BOOKCAL_GOOGLE_ROOT_URL".to_string(), root.clone()),
            (
                "BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY".to_string(),
                key.display().to_string(),
            ),
            (
                "BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE".to_string(),
                "100000".to_string(),
            ),
        ]
    };
    let run = |args: &'static [&'static str], env: Vec<(String, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        bookcal(args, &env).await
    };

    // A mistyped directory: refused, nothing made.
    let out = run(&["sync"], google("typo")).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let typo = tmp.path().join("typo");
    assert_eq!(
        error_lines(&err),
        vec![format!(
            "bookcal: {} holds no bookcal store (check --data-dir, data_dir or BOOKCAL_DATA_DIR); `bookcal sync --create` makes one there",
            typo.display()
        )]
    );
    assert!(!typo.exists(), "nothing was created");
    // `token create` refuses it too.
    let out = run(&["token", "create", "--username", "alice"], google("typo")).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("holds no bookcal store"));
    assert!(!typo.exists());

    // Told to create one: an empty store, and a summary saying there was nothing.
    let out = run(&["sync", "--create"], google("new")).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "nothing to do: 0 offerings in the store"
    );
    assert!(bookcal::store::Store::exists_in(&tmp.path().join("new")));

    // Offerings without calendars: nothing to do, and how to create them.
    let data = tmp.path().join("data");
    prepare(
        &data,
        &[("BOOKCAL_TOKEN_SALT", "a-salt-for-the-first-hour")],
        &[],
    );
    let out = run(&["sync"], google("data")).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("nothing to do: ") && last.contains("--all"),
        "{stdout}"
    );
    let offerings: usize = last
        .trim_start_matches("nothing to do: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(offerings >= 2, "{stdout}");

    // --all creates the calendars and counts what it wrote.
    let out = run(&["sync", "--all"], google("data")).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("synced {offerings} of {offerings} offerings: "))
            && last.contains("created"),
        "{stdout}"
    );

    // Again: nothing changed, and it says so.
    let out = run(&["sync"], google("data")).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some(
            format!("nothing to do: {offerings} of {offerings} offerings synced, 0 changes")
                .as_str()
        ),
        "{stdout}"
    );
    emu.shutdown().await;
}

// ---------------------------------------------------------------- the API's links

/// Every list the OpenAPI document names (a GET whose 200 is an array), with
/// `{uuid}` made concrete.
async fn list_paths(app: &TestApp) -> Vec<String> {
    let schema = app.get("admin", "/api/schema/").await.body;
    let room = app.offering_id("room-aurora").hex();
    let mut lists = Vec::new();
    for (path, ops) in schema["paths"].as_object().expect("paths") {
        let ok = &ops["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        if ok["type"] == "array" {
            lists.push(path.replace("{uuid}", &room));
        }
    }
    lists
}

#[tokio::test]
async fn head_on_every_list_answers_with_the_headers_of_get() {
    let app = spawn_app().await;
    let lists = list_paths(&app).await;
    assert!(lists.len() >= 10, "{lists:?}");
    for path in &lists {
        // Two items a page: the Link header has somewhere to point.
        let path = format!("{path}?page_size=2");
        let get = app.req(Method::GET, Some("admin"), &path, None).await;
        let head = app.req(Method::HEAD, Some("admin"), &path, None).await;
        assert_eq!(get.status, 200, "GET {path}: {}", get.text);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.text.is_empty(), "HEAD {path} has a body");
        let shown = |r: &crate::helpers::Resp| {
            let mut h: Vec<(String, String)> = r
                .headers
                .iter()
                .filter(|(k, _)| *k != "date")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                .collect();
            h.sort();
            h
        };
        assert_eq!(shown(&head), shown(&get), "HEAD {path}");
        let length = get
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        assert_eq!(length, Some(get.text.len()), "GET {path}");
    }
}

#[tokio::test]
async fn the_links_in_answers_lead_to_the_project_organisations_users_and_public_offering() {
    let app = spawn_app().await;
    let orders = app
        .get("alice", "/api/marketplace-orders/?page_size=100")
        .await;
    assert_eq!(orders.status, 200, "{}", orders.text);
    let order = orders
        .body
        .as_array()
        .and_then(|a| a.iter().find(|o| o["project_name"] == "Imaging study"))
        .expect("an order")
        .clone();
    let path = |url: &Value| {
        url.as_str()
            .and_then(|u| u.strip_prefix(&app.base))
            .expect("an absolute link to this server")
            .to_string()
    };
    // (link, who sees it, who does not)
    let project = app.get("bob", &path(&order["project"])).await;
    assert_eq!(project.status, 200, "{}", project.text);
    assert_eq!(project.body["name"], "Imaging study");
    assert_eq!(project.body["url"], order["project"]);
    let customer_url = project.body["customer"].clone();
    let provider_url = Value::String(format!(
        "{}/api/customers/{}/",
        app.base,
        order["provider_uuid"].as_str().expect("provider")
    ));
    let links = [
        (
            order["project"].clone(),
            ["bob", "alice", "admin"],
            ["owner", "manager"],
        ),
        (
            customer_url,
            ["bob", "alice", "admin"],
            ["owner", "manager"],
        ),
        (
            order["created_by"].clone(),
            ["bob", "alice", "admin"],
            ["owner", "manager"],
        ),
        (provider_url, ["bob", "alice", "owner"], ["admin", "admin"]),
        (
            order["offering"].clone(),
            ["bob", "alice", "owner"],
            ["admin", "admin"],
        ),
    ];
    for (url, sees, blind) in &links {
        let p = path(url);
        for who in sees {
            let r = app.get(who, &p).await;
            assert_eq!(r.status, 200, "{who} GET {p}: {}", r.text);
            assert_eq!(&r.body["url"], url, "{who} GET {p}");
            assert!(r.body["uuid"].is_string(), "{p}");
        }
        for who in blind.iter().filter(|w| **w != "admin") {
            let r = app.get(who, &p).await;
            assert_eq!(r.status, 404, "{who} GET {p}: {}", r.text);
            assert_eq!(r.body, json!({"detail": "Not found."}));
        }
        let anonymous = app.req(Method::GET, None, &p, None).await;
        assert_eq!(anonymous.status, 401, "{p}");
        // Read-only: other methods are 405 in DRF's shape, naming GET.
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = app
                .req(method.clone(), Some("admin"), &p, Some(json!({})))
                .await;
            assert_eq!(r.status, 405, "{method} {p}");
            assert_eq!(
                r.body,
                json!({"detail": format!("Method \"{method}\" not allowed.")})
            );
            let allow = r.headers.get("allow").and_then(|v| v.to_str().ok());
            assert!(
                allow.is_some_and(|a| a.contains("GET")),
                "{method} {p}: {allow:?}"
            );
        }
    }

    // The lists: what each sees, paged like every list.
    let names = |r: &crate::helpers::Resp, key: &str| {
        let mut v: Vec<String> = r
            .body
            .as_array()
            .unwrap_or_else(|| panic!("a list: {}", r.text))
            .iter()
            .map(|x| x[key].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    };
    let cases: [(&str, &str, &str, &[&str]); 9] = [
        ("bob", "/api/projects/", "name", &["Imaging study"]),
        ("owner", "/api/projects/", "name", &[]),
        (
            "alice",
            "/api/customers/",
            "name",
            &["Alice Research", "Northlab Facilities"],
        ),
        ("owner", "/api/customers/", "name", &["Northlab Facilities"]),
        ("bob", "/api/users/", "username", &["alice", "bob"]),
        ("owner", "/api/users/", "username", &["manager", "owner"]),
        (
            "admin",
            "/api/users/",
            "username",
            &["admin", "alice", "bob", "manager", "owner"],
        ),
        (
            "alice",
            "/api/marketplace-public-offerings/",
            "name",
            &[
                "Electron microscope JEM-2100",
                "Meeting room Aurora",
                "Telescope night slots",
            ],
        ),
        ("alice", "/api/users/?username=bo", "username", &["bob"]),
    ];
    for (who, list, key, want) in cases {
        let r = app.get(who, list).await;
        assert_eq!(r.status, 200, "{who} {list}: {}", r.text);
        assert_eq!(names(&r, key), want.to_vec(), "{who} {list}");
        assert_eq!(
            r.headers
                .get("x-result-count")
                .and_then(|v| v.to_str().ok()),
            Some(want.len().to_string().as_str()),
            "{who} {list}"
        );
    }
    let page = app
        .get("admin", "/api/users/?page_size=2&page=2&o=-username")
        .await;
    // -username: owner, manager, bob, alice, admin; page 2 of 2 a page.
    assert_eq!(names(&page, "username"), vec!["alice", "bob"]);
    assert!(page.headers.get("link").is_some());
    let bad = app.get("admin", "/api/users/?o=password").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let gone = app.get("admin", "/api/users/?page=9").await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body, json!({"detail": "Invalid page."}));

    // The API root names every collection, and each answers.
    let root = app.req(Method::GET, None, "/api/", None).await;
    assert_eq!(root.status, 200, "{}", root.text);
    let collections = root.body.as_object().expect("an object");
    for name in [
        "booking-offerings",
        "booking-resources",
        "marketplace-orders",
        "marketplace-public-offerings",
        "projects",
        "customers",
        "users",
        "feed-tokens",
    ] {
        let url = collections.get(name).unwrap_or_else(|| panic!("{name}"));
        let r = app.get("admin", &path(url)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert!(r.body.is_array(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waldurs_python_client_follows_the_links_to_projects_customers_users_and_public_offerings()
{
    let Some(python) = std::env::var_os("BOOKCAL_PYTHON") else {
        eprintln!("skipping: set BOOKCAL_PYTHON to an interpreter with waldur-api-client");
        return;
    };
    let app = spawn_app().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/realclients/waldur_directory_check.py"
    );
    let out = tokio::process::Command::new(python)
        .arg(script)
        .envs(app.client_env("BOOKCAL"))
        .output()
        .await
        .expect("run the check");
    let stdout = text(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", text(&out.stderr));
    assert!(out.status.success(), "the client's check failed: {stdout}");
    assert!(
        stdout.lines().any(|l| l == "4 passed, 0 failed"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------- config check

#[tokio::test]
async fn config_check_reads_every_file_the_settings_name_and_warns_of_misspelled_variables() {
    let tmp = tempfile::tempdir().expect("tmp");
    let emu = Emulator::start_on(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        EmulatorOptions::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("emulator");
    let good_key = tmp.path().join("key.json");
    std::fs::write(&good_key, emu.service_account_key_json()).expect("key");
    let email: Value = serde_json::from_str(&emu.service_account_key_json()).expect("json");
    let email = email["client_email"]
        .as_str()
        .expect("client_email")
        .to_string();
    let bad_key = tmp.path().join("bad-key.json");
    std::fs::write(
        &bad_key,
        r#"{"type": "service_account", "private_key": "nope"}"#,
    )
    .expect("bad key");
    let missing = tmp.path().join("missing.json");
    let providers = tmp.path().join("providers");
    std::fs::create_dir(&providers).expect("dir");
    let good_provider = providers.join(format!("{}.json", bookcal::domain::Id::new_v4().hex()));
    std::fs::write(
        &good_provider,
        r#"{"client_id": "c", "client_secret": "s", "refresh_token": "r"}"#,
    )
    .expect("w");
    let bad_provider = providers.join(format!("{}.json", bookcal::domain::Id::new_v4().hex()));
    std::fs::write(&bad_provider, r#"{"client_id": "c"}"#).expect("w");
    std::fs::write(providers.join("README.txt"), "notes").expect("w");
    let p = |x: &Path| x.display().to_string();

    // A key that reads and signs: named with its account, then ok.
    let out = bookcal(
        &["config", "check"],
        &[("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", &p(&good_key))],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "google.service_account_key: {} (service account {email})",
            p(&good_key)
        )),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("ok"));

    // A missing key and one that does not parse: each named, no ok, non-zero.
    for (key, why) in [(&missing, "cannot read"), (&bad_key, "")] {
        let out = bookcal(
            &["config", "check"],
            &[("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", &p(key))],
        )
        .await;
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{key:?} passed");
        assert!(!text(&out.stdout).contains("ok"), "{}", text(&out.stdout));
        let line = err
            .lines()
            .find(|l| l.starts_with("bookcal: google.service_account_key: "))
            .unwrap_or_else(|| panic!("{err}"));
        assert!(line.contains(&p(key)) && line.contains(why), "{line}");
        assert!(err.contains("1 problem(s)"), "{err}");
    }

    // The settings alone, away from the host the files are on.
    let out = bookcal(
        &["config", "check", "--settings-only"],
        &[("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", &p(&missing))],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "ok");

    // Provider files: each checked; what is not one is named and ignored.
    let out = bookcal(
        &["config", "check"],
        &[("BOOKCAL_GOOGLE_PROVIDER_CREDENTIALS_DIR", &p(&providers))],
    )
    .await;
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(stdout.contains(&p(&good_provider)), "{stdout}");
    assert!(
        err.lines().any(
            |l| l.starts_with("bookcal: google.provider_credentials_dir: ")
                && l.contains(&p(&bad_provider))
                && l.contains("missing field")
        ),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("bookcal: warning: ") && l.contains("README.txt")),
        "{err}"
    );
    let out = bookcal(
        &["config", "check"],
        &[(
            "BOOKCAL_GOOGLE_PROVIDER_CREDENTIALS_DIR",
            &p(&tmp.path().join("nowhere")),
        )],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );

    // A misspelled variable: still ok, with a warning naming the right one.
    let out = bookcal(
        &["config", "check"],
        &[
            ("BOOKCAL_SYNC_INTERVAL_SEC", "60"),
            ("BOOKCAL_LISTN", "127.0.0.1:1"),
            ("BOOKCAL_SOME_TEST_TOOL", "/opt/tool"),
        ],
    )
    .await;
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout.trim(), "ok");
    assert!(
        err.contains("bookcal: warning: BOOKCAL_SYNC_INTERVAL_SEC is not a bookcal setting and is ignored; did you mean BOOKCAL_SYNC_INTERVAL_SECS (sync.interval_secs)?"),
        "{err}"
    );
    assert!(
        err.contains("did you mean BOOKCAL_LISTEN (listen)?"),
        "{err}"
    );
    // `config check` names a variable close to no setting too.
    assert!(
        err.contains("BOOKCAL_SOME_TEST_TOOL is not a bookcal setting and is ignored"),
        "{err}"
    );
    // Other commands say so in their log, about the misspelling alone: another
    // tool's variable passes silently.
    let out = bookcal(
        &["sync"],
        &[
            ("BOOKCAL_DATA_DIR", &p(&tmp.path().join("none"))),
            ("BOOKCAL_SYNC_INTERVAL_SEC", "60"),
            ("BOOKCAL_SOME_TEST_TOOL", "/opt/tool"),
        ],
    )
    .await;
    let err = text(&out.stderr);
    assert!(
        err.contains("did you mean BOOKCAL_SYNC_INTERVAL_SECS"),
        "{err}"
    );
    assert!(!err.contains("BOOKCAL_SOME_TEST_TOOL"), "{err}");
    emu.shutdown().await;
}
