//! `bookcal demo`: the whole loop on one machine. Starts the Google Calendar emulator
//! and the service in one process with a data directory of its own, loads the demo
//! data set (first run, or `--reset`), runs a first sync, and prints what to try
//! (also written to `demo-guide.txt` in the data directory, since the log scrolls it
//! away), the web page's address last.
//!
//! A running demo holds a lock on its data directory: a second demo on it, or a
//! `--reset` of it, is refused before anything is touched.
//!
//! Running it again reuses the data directory (bookings made in the last run stay);
//! the emulator is new each time, so the demo forgets the previous calendars and
//! re-creates them on the first sync. `--reset` starts from the demo data set again.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::emulator::{Emulator, EmulatorOptions};
use crate::sync::RunOptions;

/// The demo data set, embedded so that the demo runs from any directory.
pub const DEMO_DATA: &str = include_str!("../fixtures/demo.json");

/// The metrics token's place among the printed tokens.
const METRICS: &str = "metrics";

/// Options of `bookcal demo`.
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub reset: bool,
    /// The store: none is sled in `data_dir`; `local` a throw-away PostgreSQL cluster
    /// for the demo's lifetime (needs Debian's `postgresql`); else a `postgres://` URL.
    pub store_url: Option<String>,
}

/// Runs the demo until `shutdown`.
///
/// # Errors
/// The data directory or a port cannot be used.
pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    // Held until the demo ends: a second demo (or a `--reset`) on this directory
    // stops here, before it touches anything.
    let _lock = lock_data_dir(&opts.data_dir)?;
    if opts.reset {
        reset_data_dir(&opts.data_dir)?;
    }
    let emu = Emulator::start_on(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        EmulatorOptions::default(),
        // Its own token: it stops after the service drained (a sync still running at
        // shutdown finishes against it instead of retrying into a closed port).
        CancellationToken::new(),
    )
    .await?;
    let key_path = opts.data_dir.join("emulator-service-account.json");
    std::fs::write(&key_path, emu.service_account_key_json())?;

    let mut settings = Settings {
        data_dir: opts.data_dir.join("store"),
        listen: opts.listen,
        ..Settings::default()
    };
    // Kept until the demo ends: dropping it stops and removes the cluster.
    let mut _cluster = None;
    match opts.store_url.as_deref() {
        None => {}
        Some("local") => {
            let c = crate::store::pg::cluster::LocalCluster::start(
                crate::store::pg::cluster::Durability::Full,
            )
            .await
            .context("starting a local PostgreSQL cluster")?;
            settings.store_url = Some(crate::config::Secret::new(c.url("bookcal")));
            _cluster = Some(c);
        }
        Some(url) => settings.store_url = Some(crate::config::Secret::new(url)),
    }
    settings.google.root_url = emu.root_url();
    settings.google.service_account_key = Some(key_path.clone());
    settings.sync.interval_secs = 60;
    // A fresh metrics token each run: /metrics names offerings only with it.
    let metrics_token = hex::encode(rand::random::<[u8; 16]>());
    settings.http.metrics_token = Some(crate::config::Secret::new(metrics_token.clone()));

    let app = crate::app::Application::build(settings).await?;
    let store = app.store().clone();
    let fresh = store.user_by_name("admin").await?.is_none();
    if fresh {
        let ds: crate::import::DataSet = serde_json::from_str(DEMO_DATA)?;
        crate::import::import(&store, &ds, chrono::Utc::now()).await?;
    }
    store.forget_google_state().await?;
    let mut tokens = Vec::new();
    let mut users = Vec::new();
    let mut project = crate::domain::Id::default();
    for user in ["admin", "owner", "alice"] {
        let id = store
            .user_by_name(user)
            .await?
            .with_context(|| format!("demo user {user} is missing"))?
            .id;
        users.push((user, id));
        if user == "alice" {
            let mut projects: Vec<_> = store.relations(id).await?.member_of.into_iter().collect();
            projects.sort();
            project = projects.first().copied().unwrap_or_default();
        }
        tokens.push((user, store.create_token(id).await?));
    }
    let offerings: Vec<(crate::domain::Id, String)> = store
        .all_offerings()
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    for (id, _) in &offerings {
        app.engine()
            .sync_offering(*id, RunOptions::default())
            .await
            .with_context(|| format!("first sync of offering {id}"))?;
    }
    let base = format!("http://{}", app.local_addr()?);
    // Shown beside the API tokens' curl lines, under its own heading.
    tokens.push((METRICS, metrics_token));
    // The web pages: a one-time sign-in link per user (each signs in once).
    let mut links = Vec::new();
    for (user, id) in &users {
        links.push((
            *user,
            crate::web::session::create_sign_in_link(&store, *id, &base).await?,
        ));
    }
    let text = guide(
        &base,
        &emu.root_url(),
        &tokens,
        &links,
        &offerings,
        project,
        fresh,
        &opts.data_dir,
    );
    print!("{text}");
    // The log below scrolls the guide away: it stays in a file too.
    let guide_path = opts.data_dir.join(GUIDE_FILE);
    match write_private(&guide_path, &text) {
        Ok(()) => println!(
            "This guide and the tokens are also in {}",
            guide_path.display()
        ),
        Err(e) => println!("(could not write {}: {e})", guide_path.display()),
    }
    println!("Ctrl-C stops the demo.");
    println!();
    println!("Web page: {base}/");
    let room = offerings
        .iter()
        .find(|(_, n)| n.contains("Aurora"))
        .or(offerings.first())
        .map(|(i, _)| *i);
    if let Some(room) = room {
        let (store, key) = (store.clone(), emu.service_account_key_json());
        let (root, stop) = (emu.root_url(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                shown = show_push(store, room, key, root) => {
                    if let Err(e) = shown {
                        println!("push: not shown ({e:#})");
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
    app.run_until_stopped(shutdown.clone()).await?;
    emu.shutdown().await;
    println!(
        "bookcal demo stopped; data kept in {}",
        opts.data_dir.display()
    );
    Ok(())
}

/// The file in the data directory that a running demo holds locked.
const LOCK_FILE: &str = ".bookcal-demo.lock";

/// The file the demo writes its guide (with the tokens) to, in the data directory.
pub const GUIDE_FILE: &str = "demo-guide.txt";

/// Locks `dir` for this demo: an exclusive lock on its lock file, released by the
/// operating system when the returned file closes (also if the process dies).
///
/// # Errors
/// Another process holds the lock (another demo runs on `dir`), or the file cannot
/// be created.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use fs2::FileExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        anyhow::bail!(
            "another bookcal is using {}: stop it, or use another --data-dir",
            dir.display()
        );
    }
    Ok(file)
}

/// Removes everything in `dir` but the lock file (`--reset`; the caller holds the lock).
///
/// # Errors
/// An entry cannot be removed.
fn reset_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Writes the guide to `path`, readable by its owner only (it holds API tokens).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.create(true).truncate(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    open.open(path)?.write_all(text.as_bytes())
}

/// Waits (a minute at most) until `cond` holds.
async fn until<F, Fut>(what: &str, cond: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond().await {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Shows push notifications at work: once the room's calendar has its watch channel,
/// "someone" adds an event in Google (the emulator) and the demo prints how soon the
/// time was blocked, with no periodic sync involved.
async fn show_push(
    store: std::sync::Arc<crate::store::Store>,
    room: crate::domain::Id,
    key_json: String,
    root_url: String,
) -> anyhow::Result<()> {
    use crate::google::{CalendarApi, ClientOptions, Credentials, Event, EventTime};
    use std::time::Instant;
    let channel_open = || async {
        store
            .push_state(room)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.channel.is_some())
    };
    until("opening the room's push channel", channel_open).await?;
    let calendar = store
        .calendar(room)
        .await?
        .and_then(|c| c.calendar_id)
        .context("the room has no calendar")?;
    let google = crate::google::GoogleCalendarClient::builder(Credentials::ServiceAccount {
        key_json,
        subject: None,
    })
    .options(ClientOptions {
        root_url,
        ..ClientOptions::default()
    })
    .build()
    .await?;
    let day = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    let start = day.and_hms_opt(14, 0, 0).context("a valid time")?.and_utc();
    let end = start + chrono::Duration::hours(1);
    let at = |t: chrono::DateTime<chrono::Utc>| EventTime::DateTime {
        at: t.fixed_offset(),
        time_zone: None,
    };
    let event = Event {
        summary: Some("Maintenance (added in Google)".into()),
        start: Some(at(start)),
        end: Some(at(end)),
        ..Event::default()
    };
    let t0 = Instant::now();
    google.event_insert(&calendar, &event).await?;
    let blocked = || async {
        store
            .busy_slots(room)
            .await
            .map(|b| b.iter().any(|s| s.start == start))
            .unwrap_or(false)
    };
    until("blocking the event's time", blocked).await?;
    println!(
        "push: an event added in Google ({} {}-{} UTC) blocked the room's time {} ms later, by push (no periodic sync); see googlecalendar.push",
        day,
        start.format("%H:%M"),
        end.format("%H:%M"),
        t0.elapsed().as_millis()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn guide(
    base: &str,
    emu: &str,
    tokens: &[(&str, String)],
    links: &[(&str, String)],
    offerings: &[(crate::domain::Id, String)],
    project: crate::domain::Id,
    fresh: bool,
    dir: &std::path::Path,
) -> String {
    let mut g = String::new();
    macro_rules! println {
        () => {
            g.push('\n')
        };
        ($($arg:tt)*) => {{
            g.push_str(&format!($($arg)*));
            g.push('\n');
        }};
    }
    let tok = |u: &str| {
        tokens
            .iter()
            .find(|(n, _)| *n == u)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let room = offerings
        .iter()
        .find(|(_, n)| n.contains("Aurora"))
        .or(offerings.first())
        .map(|(i, _)| *i)
        .unwrap_or_default();
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d");
    println!("bookcal demo ready: {base}");
    println!();
    println!(
        "data directory: {} ({})",
        dir.display(),
        if fresh {
            "new, demo data loaded"
        } else {
            "reused; --reset starts over"
        }
    );
    println!("API tokens:");
    for (u, t) in tokens.iter().filter(|(u, _)| *u != METRICS) {
        println!("  {u:<6} {t}");
    }
    println!();
    println!("Try:");
    println!("  # offerings of the provider (owner)");
    println!(
        "  curl -s -H 'Authorization: Token {}' {base}/api/booking-offerings/",
        tok("owner")
    );
    println!("  # book a slot as alice");
    println!(
        "  curl -s -H 'Authorization: Token {}' -H 'Content-Type: application/json' -X POST {base}/api/marketplace-orders/ \\\n    -d '{{\"offering\": \"{base}/api/booking-offerings/{room}/\", \"project\": \"{base}/api/projects/{project}/\", \"attributes\": {{\"name\": \"Demo booking\", \"schedules\": [{{\"start\": \"{day}T13:00:00Z\", \"end\": \"{day}T14:00:00Z\"}}]}}}}'",
        tok("alice")
    );
    println!("  # accept it as the owner (use marketplace_resource_uuid from the answer)");
    println!("  curl -s -H 'Authorization: Token {}' -X POST {base}/api/booking-resources/RESOURCE_UUID/accept/", tok("owner"));
    println!("  # alice ends it again (a Terminate order; the slot is free)");
    println!("  curl -s -H 'Authorization: Token {}' -X POST {base}/api/marketplace-resources/RESOURCE_UUID/terminate/", tok("alice"));
    println!("  # the room's calendar follows each booking change within about a second (no sync");
    println!("  # needed); its queued jobs (trigger, due, attempts) are in googlecalendar.jobs:");
    println!(
        "  curl -s -H 'Authorization: Token {}' {base}/api/booking-offerings/{room}/",
        tok("owner")
    );
    println!("  # Google's changes arrive by push: each calendar has a watch channel (shown in");
    println!("  # googlecalendar.push); the demo adds an event in Google once to show it");
    println!("  # sync now and share the room's calendar");
    println!("  curl -s -H 'Authorization: Token {}' -X POST {base}/api/booking-offerings/{room}/google_calendar_sync/", tok("owner"));
    println!("  curl -s -H 'Authorization: Token {}' -X POST {base}/api/booking-offerings/{room}/share_google_calendar/", tok("owner"));
    println!();
    println!("Operations (limits under [http] in `bookcal config example`):");
    println!("  curl -s {base}/metrics    # aggregates only, no offering ids");
    println!(
        "  curl -s -H 'Authorization: Bearer {}' {base}/metrics    # with per-offering series",
        tok(METRICS)
    );
    println!("  # each Google credential's health (ok, invalid, failing) and what to do about it");
    println!("  curl -s {base}/ready");
    println!();
    println!("Google as it really is (the emulator's switches, PUT {emu}emulator/settings):");
    println!("  # Google's calendar-creation limit: read-only for 2 hours after 2 new calendars;");
    println!(
        "  # bookcal paces creation (google.calendars_per_hour) and offerings past the budget"
    );
    println!("  # show googlecalendar.waiting instead of failing");
    println!(
        "  curl -s -X PUT -H 'Content-Type: application/json' {emu}emulator/settings -d '{{\"calendar_creation_limit\": {{\"max\": 2, \"window_secs\": 3600, \"lockout_secs\": 7200}}}}'"
    );
    println!("  # etags that change by themselves: a sync after a no-change sync still makes one request");
    println!(
        "  curl -s -X PUT -H 'Content-Type: application/json' {emu}emulator/settings -d '{{\"etag_drift\": true}}'"
    );
    println!("  # googlecalendar.busy_read_at: new orders are refused once it is older than");
    println!("  # sync.max_busy_age_secs (a dead credential cannot cause a double booking)");
    println!();
    println!("Feeds (public while shared): {base}/feeds/offerings/{room}.ics");
    println!("Google Calendar emulator: {emu}");
    println!("  its calendars:  curl -s {emu}emulator/calendars");
    println!("  their events:   curl -s {emu}emulator/calendars/CALENDAR_ID/events");
    println!();
    println!("Web pages: {base}/ (sign in with an API token above, or once with a link)");
    for (user, link) in links {
        println!("  {user:<6} {link}");
    }
    println!();
    g
}
