//! How every connection of a store is opened: the pools', the notification connection, lease
//! connections. One [`Connector`] per store holds the driver configuration, the TLS connector,
//! the connect timeout and the session settings, so no connection can skip any of them.
//!
//! Every connection the store opens goes through its `Connector`: same TLS mode and roots, same
//! connect timeout, same session bounds; there is no `NoTls` connect anywhere else. One timeout
//! covers TCP, TLS, authentication and the session settings.
//!
//! The session bounds are set by the store, not left to the server's defaults:
//! `idle_in_transaction_session_timeout` and `tcp_keepalives_*` are `SET` after connecting, in one
//! round trip per new connection. Not the startup `options` parameter, which poolers such as
//! PgBouncer refuse. They bound how long a writer that died inside its transaction holds readers at
//! its hole: `idle_in_transaction_session_timeout` (default 10 s) for a live but stuck client, the
//! server's keepalives (`idle + interval × retries`, default 10 + 5 × 3 = 25 s) for a host that
//! vanished; then the server rolls the transaction back, the appender lock goes, and the hole is
//! stepped over.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use eventweave_core::{BackendError, StoreError};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};

use crate::config::PostgresConfig;
use crate::error::{OpenError, backend};

#[cfg(feature = "tls")]
pub(crate) use crate::tls::Tls;
/// Without the `tls` feature, connections are plain TCP or Unix sockets.
#[cfg(not(feature = "tls"))]
pub(crate) type Tls = tokio_postgres::NoTls;

/// A driver connection (the half that does the I/O) made with [`Tls`].
pub(crate) type Connection =
    tokio_postgres::Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

/// Opens the store's connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    driver: tokio_postgres::Config,
    tls: Tls,
    timeout: Duration,
    session: String,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The driver's error (refused, authentication, TLS, …) or one of the session settings'.
    Driver(tokio_postgres::Error),
    /// Connecting, the handshakes and the session settings took longer than this.
    TimedOut(Duration),
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConnectError::Driver(e)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Driver(e) => match std::error::Error::source(e) {
                Some(cause) => write!(f, "{e}: {cause}"),
                None => write!(f, "{e}"),
            },
            ConnectError::TimedOut(limit) => write!(
                f,
                "no connection to PostgreSQL within the connect timeout of {limit:?}"
            ),
        }
    }
}

impl ConnectError {
    /// As an operation's error: [`StoreError::Unavailable`] for a timeout or a lost
    /// connection, else as [`backend`] classifies it.
    pub fn into_store_error(self) -> StoreError {
        match self {
            ConnectError::Driver(e) => backend(e),
            timeout @ ConnectError::TimedOut(_) => {
                StoreError::Unavailable(BackendError::new(timeout.to_string()))
            }
        }
    }

    /// As an [`OpenError`]: TLS failures are [`OpenError::Tls`], the rest
    /// [`OpenError::Connect`].
    pub fn into_open_error(self) -> OpenError {
        match self {
            // The driver's TLS errors display as this; the kind itself is not public.
            ConnectError::Driver(e) if e.to_string() == "error performing TLS handshake" => {
                let cause = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let hint = if cause.contains("UnknownIssuer") {
                    " (the server's certificate does not chain to a trusted root: name its CA \
                     with `sslrootcert` or `PostgresConfig::ssl_root_cert`)"
                } else {
                    ""
                };
                OpenError::Tls(format!("TLS with the server failed: {cause}{hint}").into())
            }
            ConnectError::Driver(e) => OpenError::Connect(Box::new(e)),
            timeout @ ConnectError::TimedOut(_) => OpenError::Connect(timeout.to_string().into()),
        }
    }
}

impl Connector {
    pub fn new(config: &PostgresConfig) -> Result<Connector, OpenError> {
        let driver = config
            .driver_config()
            .map_err(OpenError::ConnectionString)?;
        Ok(Connector {
            inner: Arc::new(Inner {
                driver,
                tls: tls(config)?,
                timeout: config.connect_timeout,
                session: config.session_sql(),
            }),
        })
    }

    /// A connection whose I/O half the caller drives, with the session settings and `extra`
    /// applied. The whole of it (TCP, TLS, authentication, settings) is bounded by the connect
    /// timeout; `drive` is called with the I/O half before the settings are sent.
    pub async fn open_with(
        &self,
        extra: &str,
        drive: impl FnOnce(Connection),
    ) -> Result<Client, ConnectError> {
        let inner = &self.inner;
        let work = async {
            // `NoTls` is `Copy` without the `tls` feature.
            #[allow(clippy::clone_on_copy)]
            let tls = inner.tls.clone();
            let (client, connection) = inner.driver.connect(tls).await?;
            drive(connection);
            let setup = if extra.is_empty() {
                inner.session.clone()
            } else {
                format!("{}; {extra}", inner.session)
            };
            client.batch_execute(&setup).await?;
            Ok(client)
        };
        // Boxed: the driver's connect future (TLS state included) is large, and would otherwise
        // be inlined into every operation that may open a connection.
        tokio::time::timeout(inner.timeout, Box::pin(work))
            .await
            .map_err(|_| ConnectError::TimedOut(inner.timeout))?
    }

    /// A connection driven on a spawned task (which ends when the connection closes).
    pub async fn connect(&self, extra: &str) -> Result<Client, ConnectError> {
        self.open_with(extra, |connection| {
            tokio::spawn(async move {
                // An I/O error closes the client; callers see it as an error of their next
                // request.
                let _ = connection.await;
            });
        })
        .await
    }
}

#[cfg(feature = "tls")]
fn tls(config: &PostgresConfig) -> Result<Tls, OpenError> {
    crate::tls::connector(config.get_ssl_mode(), config.get_ssl_root_cert())
}

#[cfg(not(feature = "tls"))]
fn tls(config: &PostgresConfig) -> Result<Tls, OpenError> {
    use crate::conninfo::SslMode;
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => Ok(tokio_postgres::NoTls),
        mode => Err(OpenError::Tls(
            format!(
                "sslmode `{mode}` needs TLS, and eventweave-postgres was built without its `tls` feature"
            )
            .into(),
        )),
    }
}
