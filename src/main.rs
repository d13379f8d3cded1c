//! The `bookcal` command: a thin layer over the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use bookcal::config::Settings;

#[derive(Parser)]
#[command(name = "bookcal", version, about = "Keeps booking calendars in sync")]
struct Cli {
    /// Settings file (TOML); every key can also be set by a BOOKCAL_* variable.
    #[arg(long, short, global = true, env = "BOOKCAL_CONFIG")]
    config: Option<PathBuf>,
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("invalid settings")?;
    match cli.command {
        Command::Serve => {
            bookcal::telemetry::init(&settings.log_format);
            let store = bookcal::app::open_store(&settings)?;
            let listener = bookcal::app::bind(&settings).await?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, data_dir = %settings.data_dir.display(), "bookcal listening");
            let shutdown = shutdown_on_signals();
            let state = bookcal::app::app_state(store.clone(), &settings);
            bookcal::app::serve(listener, state, shutdown).await?;
            store.flush().await.context("flushing the store")?;
            tracing::info!("bookcal stopped");
        }
        Command::Import { file } => {
            let store = bookcal::app::open_store(&settings)?;
            let s = bookcal::import::import_file(&store, &file)
                .with_context(|| format!("importing {}", file.display()))?;
            store.flush().await?;
            println!(
                "imported {} users, {} organisations, {} projects, {} offerings, {} bookings into {}",
                s.users,
                s.customers,
                s.projects,
                s.offerings,
                s.bookings,
                settings.data_dir.display()
            );
        }
        Command::Token {
            action: TokenAction::Create { username },
        } => {
            let store = bookcal::app::open_store(&settings)?;
            let id = store
                .read()?
                .users_by_name
                .get(&username)
                .copied()
                .with_context(|| format!("no user named {username:?}"))?;
            let token = store.create_token(id)?;
            store.flush().await?;
            println!("{token}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bookcal: {e:#}");
            ExitCode::FAILURE
        }
    }
}
