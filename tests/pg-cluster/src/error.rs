//! [`ClusterError`]: why a throwaway cluster could not be set up, started, stopped or queried.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a [`TempCluster`](crate::TempCluster) operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// A PostgreSQL server binary was not found.
    MissingBinary {
        /// The binary (`initdb`, `pg_ctl`, `psql`, …).
        name: String,
        /// Where it was looked for.
        searched: Vec<PathBuf>,
    },
    /// A file system operation failed.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// A command ran but failed.
    Command {
        /// The command line.
        command: String,
        /// Its exit status, as printed.
        status: String,
        /// Its standard error and output (and the server log, when starting failed).
        output: String,
    },
    /// The OS user the server must run as (`postgres`, when this process runs as root) does
    /// not exist.
    NoPostgresUser,
}

impl ClusterError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::Io { what, source }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::MissingBinary { name, searched } => {
                write!(f, "PostgreSQL binary `{name}` not found (looked in ")?;
                for (i, dir) in searched.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", dir.display())?;
                }
                if searched.is_empty() {
                    write!(f, "no directory: none matched /usr/lib/postgresql/*/bin")?;
                }
                write!(
                    f,
                    "); install the PostgreSQL server package or set CQRS_PG_BIN to its bin directory"
                )
            }
            ClusterError::Io { what, source } => write!(f, "{what}: {source}"),
            ClusterError::Command {
                command,
                status,
                output,
            } => write!(f, "`{command}` failed ({status}):\n{output}"),
            ClusterError::NoPostgresUser => write!(
                f,
                "running as root, but there is no `postgres` OS user to run the server as"
            ),
        }
    }
}

impl std::error::Error for ClusterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClusterError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
