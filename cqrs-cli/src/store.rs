//! Opening the store a `--store` URL names.

use crate::Failure;

/// What a `--store` value names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH`, or a path ending in `.db`/`.sqlite`/`.sqlite3`.
    Sqlite(String),
    /// `postgres://…` or `postgresql://…` (or a libpq `key=value` string after `postgres:`).
    Postgres(String),
}

impl StoreUrl {
    /// Reads a `--store` value.
    pub fn parse(text: &str) -> Result<StoreUrl, Failure> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` needs a path: `sqlite:bank.db`".into());
            }
            return Ok(StoreUrl::Sqlite(path.to_owned()));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        if let Some(conninfo) = text.strip_prefix("postgres:") {
            return Ok(StoreUrl::Postgres(conninfo.to_owned()));
        }
        if [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| text.ends_with(ext))
        {
            return Ok(StoreUrl::Sqlite(text.to_owned()));
        }
        Err(
            format!("cannot tell which store `{text}` is: write `sqlite:PATH` or `postgres://…`")
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::StoreUrl;

    #[test]
    fn store_urls_name_their_kind() {
        let parse = |s| StoreUrl::parse(s).map_err(|e| e.to_string());
        assert_eq!(
            parse("sqlite:bank.db"),
            Ok(StoreUrl::Sqlite("bank.db".into()))
        );
        assert_eq!(
            parse("sqlite:///tmp/x"),
            Ok(StoreUrl::Sqlite("/tmp/x".into()))
        );
        assert_eq!(
            parse("data/bank.db"),
            Ok(StoreUrl::Sqlite("data/bank.db".into()))
        );
        assert_eq!(
            parse("postgres://u@h/db"),
            Ok(StoreUrl::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            parse("postgres:host=h dbname=d"),
            Ok(StoreUrl::Postgres("host=h dbname=d".into()))
        );
        assert!(parse("mysql://x").unwrap_err().contains("sqlite:PATH"));
        assert!(parse("sqlite:").is_err());
    }
}
