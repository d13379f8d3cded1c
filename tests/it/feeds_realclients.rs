//! Served feeds read by real clients nobody here wrote: vdirsyncer subscribes to the
//! feed URL (its `http` storage) into a filesystem vdir and khal lists what arrived;
//! Python `icalendar` + `recurring-ical-events` and ical.js (the scripts in
//! `tests/realclients/`) check a served feed saved to disk against instants taken
//! straight from the store.
//!
//! Each check skips with a note when its variable is unset (CI sets them all):
//! ```text
//! python3 -m venv /tmp/fvenv && /tmp/fvenv/bin/pip install vdirsyncer khal
//! python3 -m venv /tmp/ivenv && /tmp/ivenv/bin/pip install icalendar recurring-ical-events
//! npm install --prefix /tmp/inode ical.js
//! BOOKCAL_VDIRSYNCER=/tmp/fvenv/bin/vdirsyncer BOOKCAL_KHAL=/tmp/fvenv/bin/khal \
//! BOOKCAL_PYTHON=/tmp/ivenv/bin/python BOOKCAL_NODE_MODULES=/tmp/inode \
//!     cargo test --test it feeds_realclients::
//! ```
//! vdirsyncer replaces UIDs by content hashes, so that path compares times and titles.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{at, spawn_app, TestApp};
use bookcal::domain::Id;
use bookcal::feeds::content::busy_uid;
use bookcal::store::{BusySlot, Change};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

/// A timed busy slot and a two-day all-day one (local midnights of the offering).
async fn add_busy(app: &TestApp, offering: Id) -> Vec<BusySlot> {
    let tz = app
        .store
        .offering(offering)
        .await
        .expect("read")
        .expect("offering")
        .time_zone;
    let day = (Utc::now() + Duration::days(20)).date_naive();
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .expect("exists")
            .with_timezone(&Utc)
    };
    let slots = vec![
        BusySlot {
            start: at(3, 15),
            end: at(3, 16),
            source_event_id: "ev1".into(),
        },
        BusySlot {
            start: midnight(day),
            end: midnight(day + Duration::days(2)),
            source_event_id: "ev2".into(),
        },
    ];
    app.store
        .write(vec![Change::Busy(offering, slots.clone())])
        .await
        .expect("write busy");
    slots
}

/// Expected events of a feed: (uid, title, start, end, all-day dates if whole days).
struct Want {
    uid: String,
    title: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    all_day: Option<(NaiveDate, NaiveDate)>,
    status: &'static str,
}

/// What the public (`titles = false`) or owner feed of `offering` must show, from the
/// store, not from the rendering.
async fn expected(app: &TestApp, offering: Id, busy: &[BusySlot], titles: bool) -> Vec<Want> {
    let tz = app
        .store
        .offering(offering)
        .await
        .expect("read")
        .expect("offering")
        .time_zone;
    let mut out = Vec::new();
    for r in app.store.offering_resources(offering).await.expect("read") {
        if !r.state.holds_slots() {
            continue;
        }
        for s in &r.slots {
            out.push(Want {
                uid: bookcal::feeds::content::slot_uid(app.store.feed_uid_key(), &s.backend_id),
                title: if titles {
                    r.name.to_string()
                } else {
                    "Booked".into()
                },
                start: s.start,
                end: s.end,
                all_day: None,
                status: if r.state.as_str() == "OK" {
                    "CONFIRMED"
                } else {
                    "TENTATIVE"
                },
            });
        }
    }
    for b in busy {
        let (ls, le) = (b.start.with_timezone(&tz), b.end.with_timezone(&tz));
        let whole = ls.time() == chrono::NaiveTime::MIN && le.time() == chrono::NaiveTime::MIN;
        out.push(Want {
            uid: busy_uid(offering, &b.source_event_id, b.start, b.end),
            title: "Busy".into(),
            start: b.start,
            end: b.end,
            all_day: whole.then(|| (ls.date_naive(), le.date_naive())),
            status: "CONFIRMED",
        });
    }
    out
}

async fn download(app: &TestApp, path: &str) -> String {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("body")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env_path(var: &str, what: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var).map(PathBuf::from);
    if v.is_none() {
        eprintln!(
            "skipping the {what} check: set {var} (python3 -m venv /tmp/fvenv && \
             /tmp/fvenv/bin/pip install vdirsyncer khal; {var}=/tmp/fvenv/bin/...)"
        );
    }
    v
}

/// Subscribes vdirsyncer to `url`, syncs into a vdir, and lists it with khal:
/// one line `start|end|title` per event, in UTC.
fn vdirsyncer_then_khal(
    vdirsyncer: &Path,
    khal: &Path,
    dir: &Path,
    url: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeSet<String> {
    let vdir = dir.join("vdir");
    std::fs::create_dir_all(&vdir).expect("vdir");
    std::fs::create_dir_all(dir.join("status")).expect("status dir");
    let vconf = dir.join("vdirsyncer.conf");
    std::fs::write(
        &vconf,
        format!(
            "[general]\nstatus_path = \"{status}/\"\n\n\
             [pair feed]\na = \"feed_remote\"\nb = \"feed_local\"\ncollections = null\n\
             conflict_resolution = \"a wins\"\n\n\
             [storage feed_remote]\ntype = \"http\"\nurl = \"{url}\"\n\n\
             [storage feed_local]\ntype = \"filesystem\"\npath = \"{vdir}/\"\n\
             fileext = \".ics\"\n",
            status = dir.join("status").display(),
            vdir = vdir.display(),
        ),
    )
    .expect("vdirsyncer config");
    run(Command::new(vdirsyncer)
        .arg("-c")
        .arg(&vconf)
        .arg("discover")
        .arg("feed"));
    run(Command::new(vdirsyncer).arg("-c").arg(&vconf).arg("sync"));

    let kconf = dir.join("khal.conf");
    std::fs::write(
        &kconf,
        format!(
            "[calendars]\n[[feed]]\npath = {vdir}/\ntype = calendar\n\n\
             [sqlite]\npath = {db}\n\n\
             [locale]\ntimeformat = %H:%M\ndateformat = %Y-%m-%d\n\
             longdateformat = %Y-%m-%d\ndatetimeformat = %Y-%m-%dT%H:%M\n\
             longdatetimeformat = %Y-%m-%dT%H:%M\nlocal_timezone = UTC\n\
             default_timezone = UTC\n\n\
             [default]\ndefault_calendar = feed\n",
            vdir = vdir.display(),
            db = dir.join("khal.db").display(),
        ),
    )
    .expect("khal config");
    let out = run(Command::new(khal)
        .arg("-c")
        .arg(&kconf)
        .arg("list")
        .arg("--once")
        .arg("--day-format")
        .arg("")
        .arg("--format")
        .arg("{start}|{end}|{title}")
        .arg(from.to_string())
        .arg(to.to_string()));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What khal prints for an expected event (UTC; all-day: dates, end inclusive).
fn khal_line(w: &Want) -> String {
    match w.all_day {
        Some((s, e)) => format!("{s}|{}|{}", e - Duration::days(1), w.title),
        None => format!(
            "{}|{}|{}",
            w.start.format("%Y-%m-%dT%H:%M"),
            w.end.format("%Y-%m-%dT%H:%M"),
            w.title
        ),
    }
}

#[tokio::test]
async fn vdirsyncer_subscribes_to_the_public_and_owner_feeds_and_khal_lists_their_events() {
    let (Some(vdirsyncer), Some(khal)) = (
        env_path("BOOKCAL_VDIRSYNCER", "vdirsyncer"),
        env_path("BOOKCAL_KHAL", "khal"),
    ) else {
        return;
    };
    let app = spawn_app().await;
    let offering = app.make_public("room-aurora").await;
    let busy = add_busy(&app, offering).await;
    let r = app
        .post(
            "owner",
            &format!("/api/booking-offerings/{}/feed_tokens/", offering.hex()),
            json!({"name": "vdirsyncer"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let owner_url = r.body["url"].as_str().expect("url").to_owned();
    let public_url = format!("{}/feeds/offerings/{}.ics", app.base, offering.hex());
    let today = Utc::now().date_naive();
    let (from, to) = (today - Duration::days(1), today + Duration::days(60));

    for (url, titles) in [(public_url, false), (owner_url, true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let want: BTreeSet<String> = expected(&app, offering, &busy, titles)
            .await
            .iter()
            .map(khal_line)
            .collect();
        // Three booked slots (two bookings), a timed and an all-day busy slot.
        assert_eq!(want.len(), 5, "{want:?}");
        // Run the blocking clients off the runtime that serves the feed.
        let (v, k, d) = (vdirsyncer.clone(), khal.clone(), dir.path().to_owned());
        let got =
            tokio::task::spawn_blocking(move || vdirsyncer_then_khal(&v, &k, &d, &url, from, to))
                .await
                .expect("client task");
        println!(
            "khal lists:\n{}",
            got.iter().cloned().collect::<Vec<_>>().join("\n")
        );
        assert_eq!(got, want, "titles: {titles}");
    }
}

/// The sidecar `tests/realclients/ical_check.*` compare with.
fn sidecar(name: &str, want: &[Want]) -> Value {
    let iso = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let lo = want.iter().map(|w| w.start.date_naive()).min();
    let hi = want.iter().map(|w| w.end.date_naive()).max();
    json!({
        "name": name,
        "description": null,
        "range_start": lo.map(|d| (d - Duration::days(2)).to_string()),
        "range_end": hi.map(|d| (d + Duration::days(2)).to_string()),
        "events": want.iter().map(|w| {
            let (start, end, all_day) = match w.all_day {
                Some((s, e)) => (s.to_string(), e.to_string(), true),
                None => (iso(w.start), iso(w.end), false),
            };
            json!({
                "uid": w.uid,
                "summary": w.title,
                "description": null,
                "location": "Northlab, Building 2, Room 2.14",
                "all_day": all_day,
                "start": start,
                "end": end,
                "sequence": 0,
                "status": w.status,
                "repeated_local_hour": false,
            })
        }).collect::<Vec<_>>(),
    })
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/realclients")
        .join(name)
}

#[tokio::test]
async fn the_python_and_ical_js_checkers_read_a_served_public_feed_at_the_expected_instants() {
    let python = std::env::var_os("BOOKCAL_PYTHON");
    let modules = std::env::var_os("BOOKCAL_NODE_MODULES");
    if python.is_none() {
        eprintln!("skipping the Python check: set BOOKCAL_PYTHON (see tests/ical_feeds.rs)");
    }
    if modules.is_none() {
        eprintln!("skipping the ical.js check: set BOOKCAL_NODE_MODULES (see tests/ical_feeds.rs)");
    }
    if python.is_none() && modules.is_none() {
        return;
    }
    let app = spawn_app().await;
    let offering = app.make_public("room-aurora").await;
    let busy = add_busy(&app, offering).await;
    let body = download(&app, &format!("/feeds/offerings/{}.ics", offering.hex())).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ics = dir.path().join("served.ics");
    std::fs::write(&ics, &body).expect("write feed");
    let want = expected(&app, offering, &busy, false).await;
    let side = sidecar("Meeting room Aurora (busy times)", &want);
    std::fs::write(
        dir.path().join("served.expected.json"),
        serde_json::to_string_pretty(&side).expect("json"),
    )
    .expect("write sidecar");

    let mut checks = Vec::new();
    if let Some(p) = python {
        let mut c = Command::new(p);
        c.arg(script("ical_check.py")).arg(&ics);
        checks.push(("Python icalendar", c));
    }
    if let Some(m) = modules {
        let node = std::env::var_os("BOOKCAL_NODE").unwrap_or_else(|| "node".into());
        let mut c = Command::new(node);
        c.arg(script("ical_check.mjs"))
            .arg(&ics)
            .env("BOOKCAL_NODE_MODULES", m);
        checks.push(("ical.js", c));
    }
    for (what, mut cmd) in checks {
        let out = tokio::task::spawn_blocking(move || run(&mut cmd))
            .await
            .expect("checker task");
        println!("{what}:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "{what}:\n{out}");
    }
}
