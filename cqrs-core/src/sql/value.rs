//! [`SqlValue`] and the conversions between it and Rust values.

use std::fmt;

use crate::error::SqlError;
use crate::ids::{Position, StreamId, Uuid};

/// A value written to or read from a column through [`Sql`](super::Sql).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SqlValue {
    /// `NULL`.
    Null,
    /// A boolean (stored as 0 or 1 on SQLite).
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// The kind of value, for error messages: `integer`, `text`, …
    pub fn kind(&self) -> &'static str {
        match self {
            SqlValue::Null => "null",
            SqlValue::Bool(_) => "boolean",
            SqlValue::Int(_) => "integer",
            SqlValue::Real(_) => "double",
            SqlValue::Text(_) => "text",
            SqlValue::Blob(_) => "bytes",
        }
    }
}

impl fmt::Display for SqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlValue::Null => f.write_str("NULL"),
            SqlValue::Bool(b) => write!(f, "{b}"),
            SqlValue::Int(n) => write!(f, "{n}"),
            SqlValue::Real(x) => write!(f, "{x}"),
            SqlValue::Text(s) => write!(f, "{s:?}"),
            SqlValue::Blob(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

/// A Rust value that can be a statement's parameter.
///
/// Implemented for booleans, integers (those beyond `i64` fail with
/// [`SqlErrorKind::Conversion`](crate::sql::SqlErrorKind::Conversion) instead of wrapping),
/// floats, strings, bytes, [`Uuid`] and [`StreamId`] (as text), [`Position`] (as an integer),
/// `serde_json::Value` (as its JSON text), `Option<T>` (`None` is `NULL`) and references to
/// any of these.
pub trait ToSqlValue {
    /// The value to bind.
    fn to_sql_value(&self) -> Result<SqlValue, SqlError>;
}

/// A Rust value a column can be read as ([`SqlRow::get`](super::SqlRow::get)).
///
/// Implemented for the types of [`ToSqlValue`] (owned): integers (range-checked), `f64`
/// (from doubles and integers), `bool` (from booleans and from SQLite's 0 and 1), `String`,
/// `Vec<u8>`, [`Uuid`] (from its text), `serde_json::Value` (from JSON text), [`SqlValue`],
/// and `Option<T>` (`NULL` is `None`; a `NULL` read as `T` is an error).
pub trait FromSqlValue: Sized {
    /// Converts a column's value.
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError>;
}

/// A statement's parameters, bound to `$1`, `$2`, … in order: `()`, a tuple of up to twelve
/// [`ToSqlValue`]s, an array or a `Vec` of them, or a slice of [`SqlValue`]s.
pub trait SqlParams {
    /// The values, in order.
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError>;
}

fn mismatch(wanted: &str, value: &SqlValue) -> SqlError {
    SqlError::conversion(format!(
        "a column holding {value} cannot be read as {wanted}"
    ))
}

impl ToSqlValue for SqlValue {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(self.clone())
    }
}

impl FromSqlValue for SqlValue {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        Ok(value)
    }
}

impl<T: ToSqlValue + ?Sized> ToSqlValue for &T {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        (**self).to_sql_value()
    }
}

impl<T: ToSqlValue> ToSqlValue for Option<T> {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        match self {
            Some(value) => value.to_sql_value(),
            None => Ok(SqlValue::Null),
        }
    }
}

impl<T: FromSqlValue> FromSqlValue for Option<T> {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Null => Ok(None),
            value => T::from_sql_value(value).map(Some),
        }
    }
}

impl ToSqlValue for bool {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Bool(*self))
    }
}

impl FromSqlValue for bool {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Bool(b) => Ok(b),
            // SQLite has no boolean type: it stores them as 0 and 1.
            SqlValue::Int(0) => Ok(false),
            SqlValue::Int(1) => Ok(true),
            other => Err(mismatch("a boolean", &other)),
        }
    }
}

/// Integers: written as `i64` when they fit, read back range-checked.
macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl ToSqlValue for $ty {
            fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
                i64::try_from(*self).map(SqlValue::Int).map_err(|_| {
                    SqlError::conversion(format!(
                        "{} does not fit a 64-bit signed SQL integer",
                        self
                    ))
                })
            }
        }

        impl FromSqlValue for $ty {
            fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
                match value {
                    SqlValue::Int(n) => <$ty>::try_from(n).map_err(|_| {
                        SqlError::conversion(format!(
                            "{n} is out of range for {}",
                            stringify!($ty)
                        ))
                    }),
                    other => Err(mismatch(stringify!($ty), &other)),
                }
            }
        }
    )*};
}

integers!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl ToSqlValue for f64 {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Real(*self))
    }
}

impl ToSqlValue for f32 {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Real(f64::from(*self)))
    }
}

impl FromSqlValue for f64 {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Real(x) => Ok(x),
            // SQLite stores a whole REAL as an integer when the column has no declared type.
            SqlValue::Int(n) => Ok(n as f64),
            other => Err(mismatch("f64", &other)),
        }
    }
}

impl ToSqlValue for str {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Text(self.to_owned()))
    }
}

impl ToSqlValue for String {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Text(self.clone()))
    }
}

impl FromSqlValue for String {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Text(s) => Ok(s),
            other => Err(mismatch("a string", &other)),
        }
    }
}

impl ToSqlValue for [u8] {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Blob(self.to_vec()))
    }
}

impl ToSqlValue for Vec<u8> {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Blob(self.clone()))
    }
}

impl FromSqlValue for Vec<u8> {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Blob(b) => Ok(b),
            other => Err(mismatch("bytes", &other)),
        }
    }
}

impl ToSqlValue for Uuid {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Text(self.hyphenated().to_string()))
    }
}

impl FromSqlValue for Uuid {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Text(s) => Uuid::parse_str(&s)
                .map_err(|e| SqlError::conversion(format!("{s:?} is not a UUID: {e}"))),
            other => Err(mismatch("a UUID", &other)),
        }
    }
}

impl ToSqlValue for StreamId {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Text(self.as_str().to_owned()))
    }
}

impl ToSqlValue for Position {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        self.0.to_sql_value()
    }
}

impl ToSqlValue for serde_json::Value {
    fn to_sql_value(&self) -> Result<SqlValue, SqlError> {
        Ok(SqlValue::Text(self.to_string()))
    }
}

impl FromSqlValue for serde_json::Value {
    fn from_sql_value(value: SqlValue) -> Result<Self, SqlError> {
        match value {
            SqlValue::Text(s) => serde_json::from_str(&s)
                .map_err(|e| SqlError::conversion(format!("the column is not JSON: {e}"))),
            other => Err(mismatch("JSON", &other)),
        }
    }
}

impl SqlParams for () {
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
        Ok(Vec::new())
    }
}

impl SqlParams for [SqlValue] {
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
        Ok(self.to_vec())
    }
}

impl<P: SqlParams + ?Sized> SqlParams for &P {
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
        (**self).to_values()
    }
}

impl<T: ToSqlValue, const N: usize> SqlParams for [T; N] {
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
        self.iter().map(ToSqlValue::to_sql_value).collect()
    }
}

impl<T: ToSqlValue> SqlParams for Vec<T> {
    fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
        self.iter().map(ToSqlValue::to_sql_value).collect()
    }
}

/// Tuples of up to twelve parameters.
macro_rules! tuples {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: ToSqlValue),+> SqlParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn to_values(&self) -> Result<Vec<SqlValue>, SqlError> {
                let ($($name,)+) = self;
                Ok(vec![$($name.to_sql_value()?),+])
            }
        }
    )*};
}

tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::SqlErrorKind;

    #[test]
    fn integers_beyond_i64_are_refused_not_wrapped() {
        assert_eq!(
            (i64::MAX as u64).to_sql_value().unwrap(),
            SqlValue::Int(i64::MAX)
        );
        let error = (i64::MAX as u64 + 1).to_sql_value().unwrap_err();
        assert_eq!(error.kind(), SqlErrorKind::Conversion);
        assert!(error.to_string().contains("9223372036854775808"), "{error}");
        assert_eq!(
            u32::from_sql_value(SqlValue::Int(-1)).unwrap_err().kind(),
            SqlErrorKind::Conversion
        );
        assert_eq!(u64::from_sql_value(SqlValue::Int(7)).unwrap(), 7);
    }

    #[test]
    fn booleans_read_back_from_sqlite_integers_only_as_zero_or_one() {
        assert!(bool::from_sql_value(SqlValue::Int(1)).unwrap());
        assert!(!bool::from_sql_value(SqlValue::Bool(false)).unwrap());
        assert!(bool::from_sql_value(SqlValue::Int(2)).is_err());
    }

    #[test]
    fn null_is_none_and_an_error_for_a_plain_type() {
        assert_eq!(Option::<i64>::from_sql_value(SqlValue::Null).unwrap(), None);
        let error = i64::from_sql_value(SqlValue::Null).unwrap_err();
        assert!(error.to_string().contains("NULL"), "{error}");
        assert_eq!(None::<i64>.to_sql_value().unwrap(), SqlValue::Null);
    }

    #[test]
    fn params_bind_in_order_and_fail_on_the_first_bad_value() {
        let values = (1u8, "a", Some(2.5), None::<String>, b"x".as_slice())
            .to_values()
            .unwrap();
        assert_eq!(
            values,
            vec![
                SqlValue::Int(1),
                SqlValue::Text("a".into()),
                SqlValue::Real(2.5),
                SqlValue::Null,
                SqlValue::Blob(b"x".to_vec()),
            ]
        );
        assert!((1, u64::MAX).to_values().is_err());
        assert_eq!([1, 2].to_values().unwrap().len(), 2);
        assert!(().to_values().unwrap().is_empty());
    }

    #[test]
    fn uuids_and_json_travel_as_text() {
        let id = Uuid::from_u128(7);
        let text = id.to_sql_value().unwrap();
        assert_eq!(Uuid::from_sql_value(text).unwrap(), id);
        let json = serde_json::json!({"a": [1, 2]});
        assert_eq!(
            serde_json::Value::from_sql_value(json.to_sql_value().unwrap()).unwrap(),
            json
        );
        assert!(Uuid::from_sql_value(SqlValue::Text("nope".into())).is_err());
    }
}
