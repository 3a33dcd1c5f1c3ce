//! The connection string, parsed once: the TLS keys the driver does not know (`sslmode` values
//! `verify-ca` and `verify-full`, `sslrootcert`) are taken out first, the rest goes to
//! `tokio_postgres::Config::from_str`.
//!
//! Both forms libpq accepts are handled: the URL (`postgres://…?sslmode=verify-full&…`) and the
//! `key=value` list (`host=db sslmode='verify-full' …`, values optionally single-quoted with
//! backslash escapes).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// How a connection negotiates TLS, with libpq's names and meanings (`sslmode=`).
///
/// | mode | encrypted | certificate checked |
/// |---|---|---|
/// | `disable` | never | — |
/// | `prefer` (default) | when the server offers it | no |
/// | `require` | always, or the connection fails | no (as `verify-ca` when a root certificate is configured) |
/// | `verify-ca` | always | chains to a trusted root; the host name is not checked |
/// | `verify-full` | always | chains to a trusted root and names the host connected to |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked unless a root certificate is
    /// configured ([`PostgresConfig::ssl_root_cert`](crate::PostgresConfig::ssl_root_cert)).
    Require,
    /// TLS, with a certificate that chains to a trusted root (any host name).
    VerifyCa,
    /// TLS, with a certificate that chains to a trusted root and is valid for the host name.
    VerifyFull,
}

impl SslMode {
    /// The libpq name (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, ConfigError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConfigError::new(format!(
                    "unsupported sslmode `{other}` (expected disable, prefer, require, verify-ca or verify-full)"
                )));
            }
        })
    }

    /// What the driver is told: it knows only whether TLS is off, optional or required; the
    /// certificate checks of the `verify-*` modes are done by this crate's connector.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection string that cannot be used. The message names the problem (the key, the
/// form) and never contains the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }

    /// What is wrong with the connection string.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid PostgreSQL connection string: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A parsed connection string.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    pub driver: tokio_postgres::Config,
    pub ssl_mode: Option<SslMode>,
    pub ssl_root_cert: Option<PathBuf>,
}

impl ConnInfo {
    pub fn parse(text: &str) -> Result<ConnInfo, ConfigError> {
        let (rest, tls) = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            split_url(text)?
        } else {
            split_key_values(text)?
        };
        let mut ssl_mode = None;
        let mut ssl_root_cert = None;
        for (key, value) in tls {
            if key == "sslmode" {
                ssl_mode = Some(SslMode::parse(&value)?);
            } else {
                ssl_root_cert = Some(PathBuf::from(value));
            }
        }
        let driver = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // The driver's messages name the key or the form, never a value.
            let cause = std::error::Error::source(&e)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            ConfigError::new(format!("{e}{cause}"))
        })?;
        Ok(ConnInfo {
            driver,
            ssl_mode,
            ssl_root_cert,
        })
    }
}

/// Keys handled here rather than by the driver.
fn ours(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

type Split = (String, Vec<(String, String)>);

/// `postgres://…?a=b&sslmode=verify-full`: the URL without our keys, and our keys' values
/// (percent-decoded).
fn split_url(url: &str) -> Result<Split, ConfigError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if ours(key) {
            tls.push((key.to_owned(), percent_decode(key, value)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

fn percent_decode(key: &str, value: &str) -> Result<String, ConfigError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConfigError::new(format!("invalid percent-encoding in the value of `{key}`"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConfigError::new(format!("the value of `{key}` is not UTF-8")))
}

/// `host=db sslmode=verify-full …`: the list without our pairs, and our pairs' values
/// (unquoted). A list that does not tokenise is handed to the driver unchanged, which reports
/// what is wrong with it.
fn split_key_values(text: &str) -> Result<Split, ConfigError> {
    let mut kept = String::with_capacity(text.len());
    let mut tls = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok((kept, tls));
        }
        let Some((key, value, after)) = next_pair(rest) else {
            return Ok((text.to_owned(), Vec::new()));
        };
        let raw = &rest[..rest.len() - after.len()];
        if ours(key) {
            tls.push((key.to_owned(), value));
        } else {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(raw);
        }
        rest = after;
    }
}

/// One `key = value` pair at the start of `text` (no leading whitespace): the key, the
/// unquoted value and what follows.
fn next_pair(text: &str) -> Option<(&str, String, &str)> {
    let key_end = text.find(|c: char| c == '=' || c.is_whitespace())?;
    let key = &text[..key_end];
    let after_key = text[key_end..].trim_start().strip_prefix('=')?.trim_start();
    let mut value = String::new();
    let mut chars = after_key.char_indices();
    if after_key.starts_with('\'') {
        chars.next();
        loop {
            match chars.next()? {
                (i, '\'') => return Some((key, value, &after_key[i + 1..])),
                (_, '\\') => value.push(chars.next()?.1),
                (_, c) => value.push(c),
            }
        }
    }
    loop {
        match chars.next() {
            None => return Some((key, value, "")),
            Some((i, c)) if c.is_whitespace() => return Some((key, value, &after_key[i..])),
            Some((_, '\\')) => value.push(chars.next()?.1),
            Some((_, c)) => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_urls() {
        let info = ConnInfo::parse(
            "postgres://u:pw@db:5433/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(info.ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(info.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(info.driver.get_application_name(), Some("x"));
        assert_eq!(info.driver.get_ports(), &[5433]);
    }

    #[test]
    fn tls_keys_are_taken_out_of_key_value_lists() {
        let info = ConnInfo::parse(
            "host=db sslmode = 'verify-ca' password='it\\'s' sslrootcert='/a b/c\\'d.pem' dbname=app",
        )
        .unwrap();
        assert_eq!(info.ssl_mode, Some(SslMode::VerifyCa));
        assert_eq!(info.ssl_root_cert, Some(PathBuf::from("/a b/c'd.pem")));
        assert_eq!(info.driver.get_password(), Some(&b"it's"[..]));
        assert_eq!(info.driver.get_dbname(), Some("app"));
    }

    #[test]
    fn unknown_ssl_modes_are_refused() {
        let error = ConnInfo::parse("host=db sslmode=allow").err().unwrap();
        assert!(error.message().contains("allow"), "{error}");
    }
}
