//! A throw-away local PostgreSQL cluster: `initdb` into a new temporary directory,
//! `postgres` on a free port of 127.0.0.1 with its unix socket in that directory, and
//! everything stopped and removed when the [`LocalCluster`] is dropped.
//!
//! Tests, benchmarks and `bookcal demo --store-url local` use it so that nothing
//! depends on a server set up by hand. It needs the PostgreSQL server binaries
//! (Debian's `postgresql` package: `/usr/lib/postgresql/<version>/bin`, or the
//! directory named by `BOOKCAL_PG_BINDIR`).
//!
//! The server runs under a small `sh` watchdog that holds the read end of a pipe
//! whose write end only this process has: when this process ends in any way (even
//! `kill -9`), the pipe closes, and the watchdog stops the server and removes the
//! directory. PostgreSQL refuses to run as root, so as root the watchdog, `initdb`
//! and the server run as the `postgres` user (else `nobody`), owners of the directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Why a local cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no PostgreSQL server binaries found (install Debian's `postgresql`, or set BOOKCAL_PG_BINDIR)")]
    NoBinaries,
    #[error("{what} failed")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("the server did not start: {0}")]
    Start(String),
    #[error("cannot create database {name}")]
    CreateDatabase {
        name: String,
        #[source]
        source: sqlx::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// How carefully the cluster writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and `full_page_writes` off: tests, where the
    /// data dies with the cluster anyway.
    Throwaway,
    /// PostgreSQL's defaults (every commit flushed): benchmarks that compare with
    /// sled, which flushes every write too.
    Full,
}

/// A running throw-away cluster with a `bookcal` superuser (trust authentication on
/// 127.0.0.1 and the socket only) and a `bookcal` database.
pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    watchdog: Option<Child>,
    /// Closing it tells the watchdog to stop the server and remove the directory.
    lifeline: Option<ChildStdin>,
}

/// The server binaries: `BOOKCAL_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else whatever `initdb` is on `PATH`.
fn bindir() -> Result<PathBuf, ClusterError> {
    if let Some(d) = std::env::var_os("BOOKCAL_PG_BINDIR") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .ok_or(ClusterError::NoBinaries)
}

/// The uid/gid to run the server as: ourselves, or an unprivileged user when root.
fn server_user() -> Result<Option<(u32, u32)>, ClusterError> {
    use std::os::unix::fs::MetadataExt;
    // The owner of our own /proc entry is our effective uid (no unsafe geteuid()).
    let me = std::fs::metadata("/proc/self").map_err(io("reading /proc/self"))?;
    if me.uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("reading /etc/passwd"))?;
    for name in ["postgres", "nobody"] {
        let found = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name)
                .then(|| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?)))
                .flatten()
        });
        if let Some(ids) = found {
            return Ok(Some(ids));
        }
    }
    Err(ClusterError::Start(
        "running as root and neither a `postgres` nor a `nobody` user exists".into(),
    ))
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        // std drops root's supplementary groups when it changes the uid.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn free_port() -> Result<u16, ClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// The watchdog: starts the server in the background, waits until its standard
/// input closes, then stops the server at once and removes the directory.
const WATCHDOG: &str = r#"
"$1/postgres" -D "$2/data" -k "$2" -h 127.0.0.1 -p "$3" $4 &
pid=$!
while read -r _; do :; done
kill -QUIT "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$2"
"#;

impl LocalCluster {
    /// Creates and starts a cluster, and its `bookcal` database.
    ///
    /// # Errors
    /// No server binaries, `initdb` fails, or the server does not come up.
    pub async fn start(durability: Durability) -> Result<LocalCluster, ClusterError> {
        let cluster = tokio::task::spawn_blocking(move || Self::start_blocking(durability))
            .await
            .map_err(|e| ClusterError::Start(format!("start-up task failed: {e}")))??;
        cluster.create_database("bookcal").await?;
        Ok(cluster)
    }

    fn start_blocking(durability: Durability) -> Result<LocalCluster, ClusterError> {
        // A free port can be taken between our probe and the server's bind: retry
        // with a new directory.
        let mut last = None;
        for _ in 0..3 {
            match Self::attempt(durability) {
                Ok(c) => return Ok(c),
                Err(e @ ClusterError::Start(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClusterError::Start("no attempt made".into())))
    }

    fn attempt(durability: Durability) -> Result<LocalCluster, ClusterError> {
        use rand::RngCore;
        let bin = bindir()?;
        let user = server_user()?;
        let mut suffix = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut suffix);
        let dir = std::env::temp_dir().join(format!("bookcal-pg-{}", hex::encode(suffix)));
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let remove = |e: ClusterError| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io(format!("handing {} to the server user", dir.display())))
                .map_err(remove)?;
        }
        let out = as_user(&mut Command::new(bin.join("initdb")), user)
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "bookcal",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(io("running initdb"))
            .map_err(remove)?;
        if !out.status.success() {
            return Err(remove(ClusterError::Initdb(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            )));
        }
        let mut options = String::from("-c max_connections=300");
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let port = free_port().map_err(remove)?;
        // From here on the watchdog owns the directory and removes it when it ends.
        let mut child = as_user(&mut Command::new("sh"), user)
            .arg("-c")
            .arg(WATCHDOG)
            .arg("bookcal-pg-watchdog")
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .arg(&options)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("starting the server"))
            .map_err(remove)?;
        let lifeline = child.stdin.take();
        let ready = match child.stderr.take() {
            Some(log) => wait_ready(log),
            None => Err("no server log".into()),
        };
        let cluster = LocalCluster {
            dir: dir.clone(),
            port,
            lifeline,
            watchdog: Some(child),
        };
        // On failure dropping `cluster` makes the watchdog clean up.
        ready.map(|()| cluster).map_err(ClusterError::Start)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data and the unix socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection URL for `database` (over TCP on 127.0.0.1).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://bookcal@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL (one per test keeps tests apart
    /// on one cluster).
    ///
    /// # Errors
    /// The server refuses (the name exists, say).
    pub async fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        use sqlx::Connection;
        let err = |source| ClusterError::CreateDatabase {
            name: name.to_string(),
            source,
        };
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(err)?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
            .map_err(err)?;
        let _ = conn.close().await;
        Ok(self.url(name))
    }
}

/// Reads the server's log until it accepts connections (Ok) or ends (Err with the
/// log); afterwards a thread keeps draining it so the server never blocks on it.
fn wait_ready(stderr: std::process::ChildStderr) -> Result<(), String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if line.contains("ready to accept connections") {
            std::thread::spawn(move || {
                for l in lines.map_while(Result::ok) {
                    tracing::debug!(target: "bookcal::store::pg::cluster", "{l}");
                }
            });
            return Ok(());
        }
        log.push(line);
    }
    Err(log.join("\n"))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        if let Some(mut child) = self.watchdog.take() {
            // The watchdog stops the server at once (SIGQUIT), waits for it and
            // removes the directory.
            let _ = child.wait();
        }
    }
}
