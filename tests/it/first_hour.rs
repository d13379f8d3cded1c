//! The first hour of a new user, with the real binary: a running demo's directory is
//! not reset or shared, a second process on a data directory says so in one line,
//! `bookcal sync` always reports and refuses a directory without a store, and the
//! demo leaves its guide in a file and names the web page last.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

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
