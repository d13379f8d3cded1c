//! The `bookcal` command: a thin layer over the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use bookcal::app::FileCheck;
use bookcal::config::Settings;

#[derive(Parser)]
#[command(name = "bookcal", version, about = "Keeps booking calendars in sync")]
struct Cli {
    /// Settings file (TOML); every key can also be set by a BOOKCAL_* variable.
    #[arg(long, short, global = true, env = "BOOKCAL_CONFIG")]
    config: Option<PathBuf>,
    /// The sled data directory (overrides `data_dir` and BOOKCAL_DATA_DIR; the demo's
    /// default is ./demo-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve,
    /// Load a JSON data set into the data directory.
    Import {
        /// The data set (see fixtures/demo.json).
        file: PathBuf,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Sync offerings with Google Calendar once (on sled the service must not be
    /// running: sled allows one process per data directory; on PostgreSQL a run waits
    /// for a replica's run of the same offering to end).
    Sync {
        /// Only this offering (hex or dashed UUID).
        #[arg(long)]
        offering: Option<String>,
        /// Every offering, also those without a calendar yet (creates calendars).
        #[arg(long)]
        all: bool,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Override the deletion guards.
        #[arg(long)]
        force: bool,
        /// Make a new, empty store when the data directory holds none (without it,
        /// such a directory is refused: it is most likely the wrong one).
        #[arg(long)]
        create: bool,
    },
    /// Bring the PostgreSQL schema (`store_url`) up to date (sled needs nothing); with
    /// `--from` and `--to`, copy a whole store between engines and check the copy
    /// record by record.
    Migrate {
        /// The store to copy: a sled data directory or a `postgres://` URL.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Where to copy it: a sled data directory or a `postgres://` URL.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Write into a target that already holds records (same ids are overwritten).
        #[arg(long)]
        replace: bool,
    },
    /// Run the local Google Calendar v3 emulator.
    Emulator {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Write a service-account key file for this emulator here.
        #[arg(long)]
        key_out: Option<PathBuf>,
    },
    /// Print an annotated example settings file, or check one.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run the whole loop locally: emulator, service, demo data, first sync.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Start again from the demo data set.
        #[arg(long)]
        reset: bool,
        /// Run on PostgreSQL: `local` (a throw-away cluster for the demo's lifetime,
        /// needs Debian's `postgresql`) or a `postgres://` URL; default sled.
        #[arg(long)]
        store_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print every key with its default and what it means (TOML).
    Example,
    /// Check a settings file together with the BOOKCAL_* environment and every file
    /// they name (the service-account key, provider files); start nothing.
    Check {
        /// The settings file (TOML); default: --config, or none (the environment only).
        file: Option<PathBuf>,
        /// Check the settings alone, not the files they name (a file checked away
        /// from the host it is for, where its key files are not).
        #[arg(long)]
        settings_only: bool,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a new API token for a user and print it (only the token).
    Create {
        #[arg(long)]
        username: String,
    },
}

fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        t.cancel();
    });
    token
}

/// What one `bookcal sync` changed, over all its offerings.
#[derive(Default)]
struct Changes {
    created: usize,
    updated: usize,
    deleted: usize,
    adopted: usize,
    /// Operations a dry run planned.
    planned: usize,
}

impl Changes {
    fn add(&mut self, s: &bookcal::domain::calendar::RunSummary) {
        self.created += s.created as usize;
        self.updated += s.updated as usize;
        self.deleted += s.deleted as usize;
        self.adopted += s.adopted as usize;
    }

    /// The last line of every `bookcal sync`, also when there was nothing to do.
    fn summary(
        &self,
        synced: usize,
        offerings: usize,
        all: bool,
        dry_run: bool,
        failed: usize,
        waiting: usize,
    ) -> String {
        if synced == 0 {
            return if offerings == 0 || all {
                format!("nothing to do: {offerings} offerings in the store")
            } else {
                format!(
                    "nothing to do: {offerings} offerings, none with a calendar yet (`bookcal sync --all` creates their calendars)"
                )
            };
        }
        let trouble = match (failed, waiting) {
            (0, 0) => String::new(),
            (f, w) => format!(", {f} failed, {w} waiting for Google's usage limits"),
        };
        if dry_run {
            return format!(
                "dry run: {} planned operations for {synced} of {offerings} offerings, nothing changed{trouble}",
                self.planned
            );
        }
        let total = self.created + self.updated + self.deleted + self.adopted;
        if total == 0 && trouble.is_empty() {
            return format!("nothing to do: {synced} of {offerings} offerings synced, 0 changes");
        }
        format!(
            "synced {synced} of {offerings} offerings: {total} changes (created {}, updated {}, deleted {}, adopted {}){trouble}",
            self.created, self.updated, self.deleted, self.adopted
        )
    }
}

async fn sync_once(
    settings: &Settings,
    offering: Option<String>,
    all: bool,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let services = bookcal::app::Services::build(settings).await?;
    if !services.google.configured(settings) {
        anyhow::bail!(
            "no Google credentials: set BOOKCAL_GOOGLE_SERVICE_ACCOUNT_KEY (bookcal emulator --key-out writes one) or BOOKCAL_GOOGLE_PROVIDER_CREDENTIALS_DIR"
        );
    }
    let bookcal::app::Services { store, engine, .. } = services;
    let targets: Vec<bookcal::domain::Id> = match offering {
        Some(o) => {
            vec![bookcal::domain::Id::parse(&o).with_context(|| format!("{o:?} is not a UUID"))?]
        }
        None if all => store
            .all_offerings()
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect(),
        None => store
            .calendars()
            .await?
            .into_iter()
            .map(|c| c.offering)
            .collect(),
    };
    let bar = if std::io::stderr().is_terminal() && !dry_run {
        let b = indicatif::ProgressBar::new(targets.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let names: std::collections::HashMap<bookcal::domain::Id, String> = store
        .all_offerings()
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let (mut failed, mut waiting) = (0, 0);
    let mut changes = Changes::default();
    let mut resume_at: Option<chrono::DateTime<chrono::Utc>> = None;
    let opts = bookcal::sync::RunOptions { dry_run, force };
    // Each run takes its offering's claim in the job queue, as the scheduler's runs
    // do: on PostgreSQL a replica's run of the same offering is waited for.
    engine
        .sync_many_claimed(&targets, opts, |id| {
            let name = names.get(&id).cloned().unwrap_or_default();
            let line = format!("{id} {name}: a `bookcal serve` replica is syncing it now; waiting for its run to end");
            match &bar {
                Some(b) => b.println(line),
                None => println!("{line}"),
            }
        }, |id, r| {
            let name = names.get(&id).cloned().unwrap_or_default();
            if let Some(b) = &bar {
                b.set_message(name.clone());
                b.inc(1);
            }
            let retry = match r {
                Ok(rep) => rep.retry_after,
                Err(e) => e.retry_after(),
            };
            if let Some(after) = retry {
                let at = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
                resume_at = Some(resume_at.map_or(at, |t| t.max(at)));
            }
            let line = match r {
                Ok(rep) if dry_run => {
                    changes.planned += rep.plan.len();
                    let mut s = format!("{id} {name}: {} planned operations", rep.plan.len());
                    for l in &rep.plan {
                        s.push_str(&format!("\n  {l}"));
                    }
                    s
                }
                Ok(rep) => {
                    let s = &rep.summary;
                    changes.add(s);
                    let mut line = format!(
                        "{id} {name}: created {}, updated {}, deleted {}, adopted {}, busy slots {}, {} requests, {} ms",
                        s.created, s.updated, s.deleted, s.adopted, s.busy_slots, s.api_calls, s.duration_ms
                    );
                    if s.deferred > 0 {
                        line.push_str(&format!(", {} changes waiting", s.deferred));
                    }
                    for w in &s.warnings {
                        line.push_str(&format!("\n  warning: {w}"));
                    }
                    line
                }
                Err(e) if e.retry_after().is_some() => {
                    waiting += 1;
                    format!("{id} {name}: WAITING: {e}")
                }
                Err(e) => {
                    failed += 1;
                    format!("{id} {name}: FAILED: {e:#}")
                }
            };
            match &bar {
                Some(b) => b.println(line),
                None => println!("{line}"),
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(at) = resume_at {
        println!(
            "{waiting} offering(s) wait for Google's usage limits; nothing was retried. Run `bookcal sync` again after {} (the service's scheduler does so by itself).",
            at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    store.flush().await?;
    println!(
        "{}",
        changes.summary(targets.len(), names.len(), all, dry_run, failed, waiting)
    );
    if failed > 0 {
        anyhow::bail!("{failed} offering(s) failed");
    }
    Ok(())
}

/// Warns about each `BOOKCAL_*` variable of the environment that looks like a
/// misspelt setting (it would be ignored silently), naming the closest one; in the
/// log once it is set up (`logged`), else on stderr. `config check` names every
/// unknown one ([`warn_all_unknown_variables`]).
fn warn_unknown_variables(logged: bool) {
    warn_variables(logged, bookcal::config::Unknown::Typos);
}

/// [`warn_unknown_variables`], also naming the `BOOKCAL_*` variables close to no
/// setting (another tool's, or a setting guessed wrong).
fn warn_all_unknown_variables() {
    warn_variables(false, bookcal::config::Unknown::All);
}

fn warn_variables(logged: bool, which: bookcal::config::Unknown) {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for w in bookcal::config::unknown_variables(names.iter().map(String::as_str), which) {
        if logged {
            tracing::warn!("{w}");
        } else {
            eprintln!("bookcal: warning: {w}");
        }
    }
}

/// Refuses a sled data directory that holds no store (a mistyped `--data-dir` would
/// otherwise get a new, empty one); `create` says how to make one on purpose.
fn require_store(settings: &Settings, create: &str) -> anyhow::Result<()> {
    if settings.store_url.is_none() && !bookcal::store::Store::exists_in(&settings.data_dir) {
        anyhow::bail!(
            "{} holds no bookcal store (check --data-dir, data_dir or BOOKCAL_DATA_DIR); `{create}` makes one there",
            settings.data_dir.display()
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config { action } = &cli.command {
        match action {
            ConfigAction::Example => print!("{}", bookcal::config::EXAMPLE_TOML),
            ConfigAction::Check {
                file,
                settings_only,
            } => {
                let settings = Settings::load(file.as_deref().or(cli.config.as_deref()))
                    .context("invalid settings")?;
                warn_all_unknown_variables();
                let mut problems = 0;
                let checks = if *settings_only {
                    Vec::new()
                } else {
                    bookcal::app::check_files(&settings).await
                };
                for check in checks {
                    match check {
                        FileCheck::Fine(what) => println!("{what}"),
                        FileCheck::Warning(what) => eprintln!("bookcal: warning: {what}"),
                        FileCheck::Problem(what) => {
                            problems += 1;
                            eprintln!("bookcal: {what}");
                        }
                    }
                }
                if problems > 0 {
                    anyhow::bail!("{problems} problem(s) in the files the settings name");
                }
                println!("ok");
            }
        }
        return Ok(());
    }
    let mut settings = Settings::load(cli.config.as_deref()).context("invalid settings")?;
    if let Some(dir) = &cli.data_dir {
        settings.data_dir.clone_from(dir);
    }
    match cli.command {
        Command::Config { .. } => {}
        Command::Serve => {
            bookcal::telemetry::init(&settings.log_format);
            warn_unknown_variables(true);
            tracing::debug!(?settings, "settings");
            if settings.token_salt.expose() == bookcal::store::DEFAULT_TOKEN_SALT {
                tracing::warn!("token_salt is the built-in default: set BOOKCAL_TOKEN_SALT_FILE");
            }
            let app = bookcal::app::Application::build(settings).await?;
            app.run_until_stopped(shutdown_on_signals()).await?;
            tracing::info!("bookcal stopped");
        }
        Command::Sync {
            offering,
            all,
            dry_run,
            force,
            create,
        } => {
            bookcal::telemetry::init(&settings.log_format);
            warn_unknown_variables(true);
            if !create {
                require_store(&settings, "bookcal sync --create")?;
            }
            sync_once(&settings, offering, all, dry_run, force).await?;
        }
        Command::Emulator { listen, key_out } => {
            bookcal::telemetry::init(&settings.log_format);
            bookcal::emulator::run_standalone(listen, key_out, shutdown_on_signals()).await?;
        }
        Command::Demo {
            listen,
            reset,
            store_url,
        } => {
            bookcal::telemetry::init(&settings.log_format);
            warn_unknown_variables(true);
            let opts = bookcal::demo::DemoOptions {
                data_dir: cli.data_dir.unwrap_or_else(|| PathBuf::from("./demo-data")),
                listen,
                reset,
                store_url,
            };
            bookcal::demo::run(opts, shutdown_on_signals()).await?;
        }
        Command::Migrate {
            from: Some(from),
            to: Some(to),
            replace,
        } => {
            let source = open_location(&settings, &from).await?;
            let target = open_location(&settings, &to).await?;
            let report = source
                .copy_to(&target, replace)
                .await
                .context("copying the store")?;
            println!("copied and checked: {report}");
        }
        Command::Migrate { .. } => match &settings.store_url {
            Some(url) => {
                let opts = bookcal::store::pg::PgOptions {
                    max_connections: 1,
                    ..Default::default()
                };
                let pool = bookcal::store::pg::connect(url.expose(), &opts).await?;
                bookcal::store::pg::migrate(&pool).await?;
                // The last migration's version (versions skip numbers: 4, then 10).
                println!(
                    "the database schema is at version {}",
                    bookcal::store::pg::MIGRATIONS.last().map_or(0, |m| m.0)
                );
            }
            None => println!("sled (data_dir) needs no migration; set store_url for PostgreSQL"),
        },
        Command::Import { file } => {
            warn_unknown_variables(false);
            let store = bookcal::app::open_store(&settings).await?;
            let s = bookcal::import::import_file(&store, &file)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            store.flush().await?;
            println!(
                "imported {} users, {} organisations, {} projects, {} offerings, {} bookings into {}",
                s.users,
                s.customers,
                s.projects,
                s.offerings,
                s.bookings,
                match settings.store_url {
                    Some(_) => "the PostgreSQL store".to_string(),
                    None => settings.data_dir.display().to_string(),
                }
            );
        }
        Command::Token {
            action: TokenAction::Create { username },
        } => {
            warn_unknown_variables(false);
            // A token needs a user: a new, empty store is never what was meant.
            require_store(&settings, "bookcal import FILE")?;
            let store = bookcal::app::open_store(&settings).await?;
            let id = store
                .user_by_name(&username)
                .await?
                .map(|u| u.id)
                .with_context(|| format!("no user named {username:?}"))?;
            let token = store.create_token(id).await?;
            store.flush().await?;
            println!("{token}");
        }
    }
    Ok(())
}

/// Threads of tokio's blocking pool (its default is 512). The blocking work is feed
/// renders (bounded by their own render slots), store probes, the metrics' record scan
/// and token bookkeeping: a handful at a time. The bound keeps a burst of such requests
/// from growing the process by one thread, stack and possibly allocator arena per
/// waiting task (BENCHMARKS.md, "Memory under churn").
const MAX_BLOCKING_THREADS: usize = 8;

/// glibc malloc arenas of the process (glibc's default: 8 per core). Chosen by
/// measurement (BENCHMARKS.md, "Memory under churn"): with renders on the blocking
/// threads the default arenas held 250 MiB at peak, 2 held 132 MiB, at the same CPU per
/// request. glibc reads the setting only when the process starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENA_MAX: &str = "2";

/// Re-executes this binary once with `MALLOC_ARENA_MAX` set, unless it is set already
/// (any value the operator gives is kept). Returns only if that is not possible; the
/// process then runs with glibc's default arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd
        .args(args)
        .env("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
        .exec();
    eprintln!("bookcal: not limiting malloc arenas (re-executing failed: {err})");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}

fn main() -> ExitCode {
    bound_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bookcal: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bookcal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A store named on the command line: a `postgres://` URL or a sled data directory.
async fn open_location(
    settings: &bookcal::config::Settings,
    location: &str,
) -> anyhow::Result<bookcal::store::Store> {
    let opts = bookcal::store::StoreOptions {
        cache_bytes: settings.cache_mb * 1024 * 1024,
        token_salt: settings.token_salt.expose().to_string(),
        ..bookcal::store::StoreOptions::default()
    };
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        let pg = bookcal::store::pg::PgOptions {
            max_connections: settings.store_max_connections,
            job_lease: std::time::Duration::from_secs(settings.store_job_lease_secs),
        };
        // The URL may hold a password: it is never repeated in an error.
        bookcal::store::Store::connect(location, &opts, &pg)
            .await
            .context("connecting to the PostgreSQL store")
    } else {
        bookcal::store::Store::open(std::path::Path::new(location), &opts)
            .with_context(|| format!("opening the sled store in {location}"))
    }
}
