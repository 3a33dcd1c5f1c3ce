//! Throwaway PostgreSQL clusters for tests that must stop, kill, restart or reconfigure a
//! server, which a test must never do to the shared one.
//!
//! [`TempCluster::start`] runs `initdb` in a fresh temporary directory, picks a free port on
//! 127.0.0.1, writes the [`Options`]' extra `postgresql.conf` lines, `pg_hba.conf` lines and
//! files (certificates), and starts the server with `pg_ctl -w`. Dropping the cluster stops it
//! and removes the directory. Authentication is `trust` as user `postgres`.
//!
//! The binaries are the newest under `/usr/lib/postgresql/*/bin`, or those in `$CQRS_PG_BIN`.
//! When the process runs as root (a container), the server runs as the `postgres` OS user
//! through `runuser` and its directory belongs to that user; otherwise it runs as the current
//! user.
//!
//! ```no_run
//! use cqrs_test_cluster::{Mode, Options, TempCluster};
//!
//! # fn main() -> Result<(), cqrs_test_cluster::ClusterError> {
//! let mut cluster = TempCluster::start(Options::new().conf("max_connections = 20"))?;
//! assert_eq!(cluster.psql("SHOW max_connections")?, "20");
//! let url = cluster.url(); // postgres://postgres@127.0.0.1:<port>/postgres
//! # let _ = url;
//! cluster.restart(Mode::Immediate)?; // a crash and recovery
//! cluster.stop(Mode::Fast)?;
//! cluster.start_again()?;
//! # Ok(())
//! # }
//! ```
//!
//! Starting a cluster takes about a second (most of it `initdb`); share one per test binary
//! where the tests allow it.
//!
//! Besides `url()` and `psql(sql)`, a cluster gives its `port()`, the server's `pid()` and its
//! `log()`, and can `stop(mode)`, `start_again()` and `restart(mode)` (`Mode::{Smart, Fast,
//! Immediate}`). The crate uses std only and depends on none of the framework's crates, so any test
//! crate can take it as a dev-dependency.

mod bin;
mod error;

use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::ClusterError;

use bin::{Binaries, run};

/// The file, inside the data directory, that holds this crate's settings; `postgresql.conf`
/// includes it, so rewriting it (another port after a clash) needs no editing of the original.
const SETTINGS_FILE: &str = "cqrs_cluster.conf";

/// How often a start is retried on another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// Seconds `pg_ctl` waits for a start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// How a cluster is set up beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    conf: Vec<String>,
    hba: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    database: Option<String>,
}

impl Options {
    /// The defaults: a `trust`-authenticated server on a free port of 127.0.0.1.
    pub fn new() -> Options {
        Options::default()
    }

    /// An extra `postgresql.conf` line, such as `ssl = on` or `max_connections = 20`.
    pub fn conf(mut self, line: impl Into<String>) -> Options {
        self.conf.push(line.into());
        self
    }

    /// A `pg_hba.conf` line placed before the default ones (the first matching line wins),
    /// such as `hostnossl all all 127.0.0.1/32 reject`.
    pub fn hba(mut self, line: impl Into<String>) -> Options {
        self.hba.push(line.into());
        self
    }

    /// A file written into the data directory before the server starts, readable by the
    /// server only (mode 0600, as PostgreSQL requires of a private key): name it in a
    /// [`conf`](Options::conf) line by its bare name, e.g. `ssl_cert_file = 'server.crt'`.
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Options {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Serves TLS (`ssl = on`) with this certificate chain and private key (PEM), written to
    /// the data directory as `server.crt` and `server.key`. Plain connections are still
    /// accepted; add [`hba`](Options::hba) `hostnossl … reject` to refuse them.
    pub fn tls(self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Options {
        self.file("server.crt", cert_pem)
            .file("server.key", key_pem)
            .conf("ssl = on")
            .conf("ssl_cert_file = 'server.crt'")
            .conf("ssl_key_file = 'server.key'")
    }

    /// A database created after the first start, which [`TempCluster::url`] then names
    /// (default: `postgres`).
    pub fn database(mut self, name: impl Into<String>) -> Options {
        self.database = Some(name.into());
        self
    }
}

/// How [`TempCluster::stop`] shuts the server down (`pg_ctl stop -m …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Waits for every client to disconnect.
    Smart,
    /// Rolls back open transactions and disconnects clients, then shuts down cleanly.
    Fast,
    /// Kills the server processes without a shutdown checkpoint: the next start runs crash
    /// recovery, as after a power loss of the server (not of the disk).
    Immediate,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Smart => "smart",
            Mode::Fast => "fast",
            Mode::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL cluster in a temporary directory, stopped and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    bins: Binaries,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    database: String,
    running: bool,
}

impl TempCluster {
    /// Creates, configures and starts a cluster.
    pub fn start(options: Options) -> Result<TempCluster, ClusterError> {
        let bins = Binaries::find()?;
        let root = fresh_dir()?;
        let mut cluster = TempCluster {
            data: root.join("data"),
            root,
            bins,
            port: 0,
            database: "postgres".to_owned(),
            running: false,
        };
        // From here on, a failure drops `cluster`, which removes the directory.
        cluster.own(&cluster.root.clone(), 0o700)?;
        cluster.initdb()?;
        cluster.configure(&options)?;
        cluster.start_on_free_port()?;
        if let Some(database) = options.database {
            let quoted = format!("\"{}\"", database.replace('"', "\"\""));
            cluster.psql(&format!("CREATE DATABASE {quoted}"))?;
            cluster.database = database;
        }
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Whether the server was started and not stopped since, by this handle.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The process id of the postmaster, while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pidfile = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pidfile.lines().next()?.trim().parse().ok()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server (`pg_ctl stop -m <mode> -w`).
    pub fn stop(&mut self, mode: Mode) -> Result<(), ClusterError> {
        let mut command = self.pg_ctl();
        command.args(["stop", "-m", mode.flag()]);
        run(&mut command)?;
        self.running = false;
        Ok(())
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        let mut command = self.pg_ctl();
        command.arg("-l").arg(self.log_path()).arg("start");
        run(&mut command).map_err(|e| self.with_log(e))?;
        self.running = true;
        Ok(())
    }

    /// [`stop`](TempCluster::stop) with `mode`, then [`start_again`](TempCluster::start_again).
    pub fn restart(&mut self, mode: Mode) -> Result<(), ClusterError> {
        self.stop(mode)?;
        self.start_again()
    }

    /// Runs `sql` with `psql` (stops at the first error) and returns the output of its last
    /// statement, unaligned and without headers (`psql -At`), without the final newline.
    pub fn psql(&self, sql: &str) -> Result<String, ClusterError> {
        let mut command = self.bins.client("psql");
        command
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d"])
            .arg(&self.database)
            .arg("-c")
            .arg(sql);
        let output = run(&mut command)?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let mut command = self.bins.server("initdb", &self.root);
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut command).map(drop)
    }

    /// Writes the options' files, `pg_hba.conf` lines and the include of the settings file.
    fn configure(&self, options: &Options) -> Result<(), ClusterError> {
        for (name, contents) in &options.files {
            let path = self.data.join(name);
            write(&path, contents)?;
            self.own(&path, 0o600)?;
        }
        if !options.hba.is_empty() {
            let path = self.data.join("pg_hba.conf");
            let default = std::fs::read_to_string(&path)
                .map_err(ClusterError::io(format!("cannot read {}", path.display())))?;
            let mut hba = options.hba.join("\n");
            hba.push('\n');
            hba.push_str(&default);
            write(&path, hba.as_bytes())?;
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(ClusterError::io(format!("cannot read {}", conf.display())))?;
        text.push_str(&format!("\ninclude = '{SETTINGS_FILE}'\n"));
        for line in &options.conf {
            text.push_str(line);
            text.push('\n');
        }
        write(&conf, text.as_bytes())
    }

    /// Picks a free port and starts; if another process took the port between the pick and
    /// the start, picks another.
    fn start_on_free_port(&mut self) -> Result<(), ClusterError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = free_port()?;
            let settings = format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n",
                self.port,
                self.root.display()
            );
            let path = self.data.join(SETTINGS_FILE);
            write(&path, settings.as_bytes())?;
            self.own(&path, 0o600)?;
            match self.start_again() {
                Err(e) if attempt < PORT_ATTEMPTS && self.log().contains("could not bind") => {
                    drop(e);
                }
                result => return result,
            }
        }
    }

    /// `pg_ctl -D <data> -w -t 60`, run as the server's user.
    fn pg_ctl(&self) -> std::process::Command {
        let mut command = self.bins.server("pg_ctl", &self.root);
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        command
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Adds the server log to a failed start's error: `pg_ctl` only says it failed.
    fn with_log(&self, error: ClusterError) -> ClusterError {
        match error {
            ClusterError::Command {
                command,
                status,
                output,
            } => ClusterError::Command {
                command,
                status,
                output: format!("{output}server log:\n{}", self.log()),
            },
            other => other,
        }
    }

    /// Gives `path` to the server's OS user (when running as root) with `mode`.
    fn own(&self, path: &Path, mode: u32) -> Result<(), ClusterError> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(ClusterError::io(format!("cannot chmod {}", path.display())))?;
        if let Some((uid, gid)) = self.bins.owner {
            chown(path, Some(uid), Some(gid))
                .map_err(ClusterError::io(format!("cannot chown {}", path.display())))?;
        }
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.running || self.pid().is_some() {
            let _ = self.stop(Mode::Immediate);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A new, empty directory under the system's temporary directory.
fn fresh_dir() -> Result<PathBuf, ClusterError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Short: the server's Unix socket lives here, and socket paths are limited to ~100
        // bytes.
        let dir =
            std::env::temp_dir().join(format!("cqrs-pg-{}-{nanos:x}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(ClusterError::Io {
                    what: format!("cannot create {}", dir.display()),
                    source: e,
                });
            }
        }
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago (the kernel's pick).
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(ClusterError::io("cannot bind a free port on 127.0.0.1"))?;
    let port = listener
        .local_addr()
        .map_err(ClusterError::io("cannot read the bound port"))?
        .port();
    Ok(port)
}

fn write(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    std::fs::write(path, contents)
        .map_err(ClusterError::io(format!("cannot write {}", path.display())))
}
