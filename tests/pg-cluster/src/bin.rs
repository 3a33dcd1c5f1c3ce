//! Finding the server binaries and running them as the right OS user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::ClusterError;

/// Where the Debian/Ubuntu packages install the server binaries, one directory per major
/// version.
const PACKAGE_ROOT: &str = "/usr/lib/postgresql";

/// Overrides the binary directory (a build from source, another distribution's layout).
const BIN_VAR: &str = "CQRS_PG_BIN";

/// The binaries of one PostgreSQL installation and the OS user to run the server as.
#[derive(Clone, Debug)]
pub(crate) struct Binaries {
    dir: PathBuf,
    /// `Some((uid, gid))` of `postgres` when this process runs as root: the server refuses to
    /// run as root, so server binaries run through `runuser` and its files belong to it.
    pub owner: Option<(u32, u32)>,
}

impl Binaries {
    /// The newest installation under `/usr/lib/postgresql/*/bin` (or `$CQRS_PG_BIN`), checked to
    /// hold the binaries a cluster needs.
    pub fn find() -> Result<Binaries, ClusterError> {
        let candidates = match std::env::var_os(BIN_VAR) {
            Some(dir) if !dir.is_empty() => vec![PathBuf::from(dir)],
            _ => package_dirs(),
        };
        let dir = bin_dir(&candidates)?;
        let owner = if is_root()? {
            Some(postgres_user()?)
        } else {
            None
        };
        Ok(Binaries { dir, owner })
    }

    /// A command running server binary `name` as the server's OS user.
    pub fn server(&self, name: &str, cwd: &Path) -> Command {
        let program = self.dir.join(name);
        let mut command = if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The caller's directory may be unreadable to `postgres`.
        command.current_dir(cwd);
        command
    }

    /// A command running client binary `name` (`psql`) as this process's user.
    pub fn client(&self, name: &str) -> Command {
        Command::new(self.dir.join(name))
    }
}

/// The first of `candidates` that holds `pg_ctl`, checked to hold the other binaries too.
fn bin_dir(candidates: &[PathBuf]) -> Result<PathBuf, ClusterError> {
    let dir = candidates
        .iter()
        .find(|dir| dir.join("pg_ctl").is_file())
        .cloned()
        .ok_or_else(|| ClusterError::MissingBinary {
            name: "pg_ctl".to_owned(),
            searched: candidates.to_vec(),
        })?;
    for name in ["initdb", "postgres", "psql"] {
        if !dir.join(name).is_file() {
            return Err(ClusterError::MissingBinary {
                name: name.to_owned(),
                searched: vec![dir],
            });
        }
    }
    Ok(dir)
}

/// Runs `command`, returning its output, or an error with its stderr and stdout.
pub(crate) fn run(command: &mut Command) -> Result<Output, ClusterError> {
    let line = describe(command);
    let output = command
        .output()
        .map_err(ClusterError::io(format!("cannot run `{line}`")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ClusterError::Command {
            command: line,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        })
    }
}

fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// `/usr/lib/postgresql/<version>/bin`, newest major version first.
fn package_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(PACKAGE_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = name.split('.').filter_map(|p| p.parse().ok()).collect();
            (key, entry.path().join("bin"))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_root() -> Result<bool, ClusterError> {
    let output = run(Command::new("id").arg("-u"))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The uid and gid of the `postgres` OS user, from the password database.
fn postgres_user() -> Result<(u32, u32), ClusterError> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(ClusterError::io("cannot read /etc/passwd"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .ok_or(ClusterError::NoPostgresUser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_named_with_the_directories_searched() {
        let error = bin_dir(&[PathBuf::from("/nonexistent/bin")]).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ClusterError::MissingBinary { .. }));
        assert!(message.contains("`pg_ctl`"), "{message}");
        assert!(message.contains("/nonexistent/bin"), "{message}");
        let none = bin_dir(&[]).unwrap_err().to_string();
        assert!(none.contains("/usr/lib/postgresql/*/bin"), "{none}");
    }

    #[test]
    fn package_directories_come_newest_first() {
        let dirs = package_dirs();
        let versions: Vec<u32> = dirs
            .iter()
            .filter_map(|d| {
                d.parent()?
                    .file_name()?
                    .to_str()?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert!(versions.windows(2).all(|w| w[0] >= w[1]), "{dirs:?}");
    }
}
