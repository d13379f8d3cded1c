//! `bookcal demo` as a user runs it: start, follow the printed steps, stop with
//! SIGTERM, start again and find the data still there.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Demo {
    child: tokio::process::Child,
    base: String,
    tokens: std::collections::HashMap<String, String>,
    /// One-time sign-in links of the web pages, by user.
    links: std::collections::HashMap<String, String>,
    feed: String,
}

async fn start(dir: &std::path::Path) -> Demo {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookcal"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut tokens = std::collections::HashMap::new();
    let mut feed = None;
    let mut links = std::collections::HashMap::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix("bookcal demo ready: ") {
                base = Some(u.trim().to_string());
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() == 2
                && ["admin", "owner", "alice"].contains(&parts[0])
                && parts[1].len() == 40
            {
                tokens.insert(parts[0].to_string(), parts[1].to_string());
            }
            if parts.len() == 2 && parts[1].contains("/sign-in/link/") {
                links.insert(parts[0].to_string(), parts[1].to_string());
            }
            if let Some(f) = line.strip_prefix("Feeds (public while shared): ") {
                feed = Some(f.trim().to_string());
            }
            if line.starts_with("Ctrl-C stops the demo.") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the demo printed its guide");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo {
        child,
        base: base.expect("ready line"),
        tokens,
        links,
        feed: feed.expect("feed line"),
    }
}

async fn stop(mut d: Demo) {
    let pid = d.child.id().expect("pid");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = tokio::time::timeout(Duration::from_secs(30), d.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "the demo exits 0 on SIGTERM");
}

#[tokio::test]
async fn the_demo_runs_the_whole_loop_and_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let demo = start(dir.path()).await;
    let http = reqwest::Client::new();
    // Each user's one-time sign-in link signs in once, then no more.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for user in ["admin", "owner", "alice"] {
        let link = &demo.links[user];
        let first = no_redirects.get(link).send().await.expect("link");
        assert_eq!(first.status(), 303, "{user}");
        assert!(first.headers().get("set-cookie").is_some(), "{user}");
        let again = no_redirects.get(link).send().await.expect("link");
        assert_eq!(again.status(), 404, "{user}");
    }
    let auth = |u: &str| format!("Token {}", demo.tokens[u]);
    let get = |u: &'static str, path: String| {
        let req = http
            .get(format!("{}{path}", demo.base))
            .header("Authorization", auth(u));
        async move {
            req.send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let offerings = get("owner", "/api/booking-offerings/?name=Aurora".into()).await;
    let room = offerings[0]["uuid"].as_str().expect("room").to_string();
    assert!(
        offerings[0]["googlecalendar"]["backend_id"].is_string(),
        "the first sync created the calendar"
    );
    let project = get("alice", "/api/booking-resources/".into()).await[0]["project_uuid"]
        .as_str()
        .expect("project")
        .to_string();
    let day = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let order: Value = http
        .post(format!("{}/api/marketplace-orders/", demo.base))
        .header("Authorization", auth("alice"))
        .json(&json!({
            "offering": format!("{}/api/booking-offerings/{room}/", demo.base),
            "project": format!("{}/api/projects/{project}/", demo.base),
            "attributes": {"name": "Demo test booking", "schedules": [{"start": format!("{day}T13:00:00Z"), "end": format!("{day}T14:00:00Z")}]},
        }))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("json");
    let res = order["marketplace_resource_uuid"]
        .as_str()
        .expect("resource")
        .to_string();
    let post = |u: &str, path: String| {
        http.post(format!("{}{path}", demo.base))
            .header("Authorization", auth(u))
            .send()
    };
    assert_eq!(
        post("owner", format!("/api/booking-resources/{res}/accept/"))
            .await
            .expect("accept")
            .status(),
        200
    );
    assert_eq!(
        post(
            "owner",
            format!("/api/booking-offerings/{room}/google_calendar_sync/")
        )
        .await
        .expect("sync")
        .status(),
        200
    );
    // The scheduler runs the job; then sharing is possible.
    let mut shared = false;
    for _ in 0..2000 {
        let r = post(
            "owner",
            format!("/api/booking-offerings/{room}/share_google_calendar/"),
        )
        .await
        .expect("share");
        if r.status() == 200 {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(shared, "share was accepted once the sync finished");
    let mut feed = String::new();
    for _ in 0..2000 {
        let r = http.get(&demo.feed).send().await.expect("feed");
        if r.status() == 200 {
            feed = r.text().await.expect("text");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(feed.starts_with("BEGIN:VCALENDAR"), "{feed}");
    assert!(
        !feed.contains("Demo test booking"),
        "the public feed shows no booking names"
    );
    stop(demo).await;

    // Again, on the same data directory: the booking is still there.
    let demo = start(dir.path()).await;
    let r: Value = http
        .get(format!("{}/api/booking-resources/{res}/", demo.base))
        .header("Authorization", format!("Token {}", demo.tokens["owner"]))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(r["state"], "OK");
    assert_eq!(r["name"], "Demo test booking");
    stop(demo).await;
}
