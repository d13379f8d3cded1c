//! Killing `bookcal sync` in the middle of a run and running it again converges with
//! no duplicate event and no lost one.

use std::process::Stdio;
use std::time::Duration;

use bookcal::domain::{Id, Resource, ResourceState, Slot};
use bookcal::emulator::{Emulator, EmulatorOptions};
use bookcal::store::{Change, Store, StoreOptions};

fn bookcal(
    dir: &std::path::Path,
    emu: &Emulator,
    key: &std::path::Path,
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookcal"));
    c.args(["sync", "--all"])
        .env("BOOKCAL_DATA_DIR", dir)
        .env("BOOKCAL_GOOGLE_ROOT_URL", emu.root_url())
        .env("BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY", key)
        .env("BOOKCAL_SYNC_CONCURRENCY", "2")
        .env("BOOKCAL_GOOGLE_REQUESTS_PER_MINUTE", "100000")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[tokio::test]
async fn a_sync_killed_mid_run_converges_on_the_next_run_without_duplicates() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let slots_total = {
        let store = Store::open(&data, &StoreOptions::default()).expect("store");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
        bookcal::import::import_file(&store, std::path::Path::new(fixture))
            .await
            .expect("import");
        let (room, project, user) = {
            let cat = store.sled().expect("sled").read().expect("read");
            let room = cat
                .offerings
                .values()
                .find(|o| o.slug == "room-aurora")
                .expect("room")
                .id;
            (
                room,
                *cat.projects.keys().next().expect("p"),
                cat.users_by_name["alice"],
            )
        };
        let now = chrono::Utc::now();
        let slots: Vec<Slot> = (0..200)
            .map(|i| Slot {
                start: now + chrono::Duration::hours(24 + i),
                end: now + chrono::Duration::hours(25 + i),
                backend_id: format!("booking_{}", Id::new_v4().hex()),
            })
            .collect();
        let r = Resource {
            id: Id::new_v4(),
            name: "Many".into(),
            slug: "many".into(),
            description: String::new(),
            offering: room,
            project,
            state: ResourceState::Ok,
            backend_id: String::new(),
            attributes: serde_json::json!({}),
            slots,
            created: now,
            modified: now,
            created_by: user,
            consumer_reviewed_by: None,
            creation_order: None,
            end_date: None,
            error_message: String::new(),
        };
        store.write(vec![Change::Resource(r)]).await.expect("add");
        let cat = store.sled().expect("sled").read().expect("read");
        cat.resources
            .values()
            .filter(|r| r.state.holds_slots())
            .map(|r| r.slots.len())
            .sum::<usize>()
    };
    let emu = Emulator::start(EmulatorOptions {
        latency: Duration::from_millis(10),
        ..EmulatorOptions::default()
    })
    .await
    .expect("emu");
    let key = dir.path().join("key.json");
    std::fs::write(&key, emu.service_account_key_json()).expect("key");

    // Start a run and kill it once it has written some events.
    let mut child = bookcal(&data, &emu, &key).spawn().expect("spawn");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let inserts = emu
            .controls()
            .counters()
            .get("calendar.events.insert")
            .copied()
            .unwrap_or(0);
        if inserts >= 40 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never got going"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.expect("kill");
    let _ = child.wait().await;
    let partial: usize = emu
        .inspect()
        .calendars()
        .iter()
        .map(|c| emu.inspect().events(c["id"].as_str().unwrap_or("")).len())
        .sum();
    assert!(
        partial < slots_total,
        "the kill came too late to test anything ({partial} events)"
    );

    // Run again to completion, then once more: nothing left to do.
    let out = bookcal(&data, &emu, &key).output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bookcal(&data, &emu, &key).output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    let summary = lines.pop().unwrap_or_default();
    assert!(
        lines
            .iter()
            .all(|l| l.contains("created 0, updated 0, deleted 0")),
        "{text}"
    );
    assert_eq!(
        summary, "nothing to do: 3 of 3 offerings synced, 0 changes",
        "{text}"
    );

    let cals = emu.inspect().calendars();
    assert_eq!(
        cals.len(),
        3,
        "one calendar per offering, none created twice"
    );
    let mut live = 0;
    for c in &cals {
        let events = emu.inspect().events(c["id"].as_str().unwrap_or(""));
        let ids: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| e["id"].as_str().map(String::from))
            .collect();
        assert_eq!(ids.len(), events.len(), "duplicate event ids");
        live += events.iter().filter(|e| e["status"] != "cancelled").count();
    }
    assert_eq!(live, slots_total);
}
