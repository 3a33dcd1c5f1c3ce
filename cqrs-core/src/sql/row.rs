//! [`SqlRow`]: one row of a query run through [`Sql`](super::Sql).

use std::sync::Arc;

use super::value::{FromSqlValue, SqlValue};
use crate::error::SqlError;

/// One row a query returned: its values in column order, and the column names.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlRow {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl SqlRow {
    /// A row of `values` under `columns` (shared by every row of one query). For the stores'
    /// implementations of [`Sql`](super::Sql).
    ///
    /// # Panics
    ///
    /// If the number of values is not the number of columns.
    pub fn new(columns: Arc<[String]>, values: Vec<SqlValue>) -> SqlRow {
        assert_eq!(columns.len(), values.len(), "one value per column");
        SqlRow { columns, values }
    }

    /// The value of column `index` (from 0) as `T`; an error names the column when it is
    /// missing or its value does not convert.
    pub fn get<T: FromSqlValue>(&self, index: usize) -> Result<T, SqlError> {
        let value = self.values.get(index).ok_or_else(|| {
            SqlError::conversion(format!(
                "the query returned {} columns: there is no column {index}",
                self.values.len()
            ))
        })?;
        T::from_sql_value(value.clone()).map_err(|e| self.in_column(index, e))
    }

    /// The value of the column named `name` as `T`.
    pub fn get_named<T: FromSqlValue>(&self, name: &str) -> Result<T, SqlError> {
        let index = self.columns.iter().position(|c| c == name).ok_or_else(|| {
            SqlError::conversion(format!(
                "the query returned no column named {name:?} (it returned {:?})",
                self.columns
            ))
        })?;
        self.get(index)
    }

    /// The values, in column order.
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    fn in_column(&self, index: usize, error: SqlError) -> SqlError {
        SqlError::new(
            error.kind(),
            format!(
                "column {index} ({:?}): {}",
                self.columns[index],
                error.message()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SqlRow {
        SqlRow::new(
            Arc::from(vec!["account".to_owned(), "total".to_owned()]),
            vec![SqlValue::Int(7), SqlValue::Null],
        )
    }

    #[test]
    fn columns_are_read_by_index_and_by_name() {
        let row = row();
        assert_eq!(row.get::<u64>(0).unwrap(), 7);
        assert_eq!(row.get_named::<u64>("account").unwrap(), 7);
        assert_eq!(row.get_named::<Option<i64>>("total").unwrap(), None);
    }

    #[test]
    fn a_bad_read_names_the_column() {
        let row = row();
        let error = row.get::<i64>(1).unwrap_err();
        assert!(error.message().contains("\"total\""), "{error}");
        assert!(
            row.get::<i64>(2)
                .unwrap_err()
                .message()
                .contains("no column 2")
        );
        assert!(row.get_named::<i64>("nope").is_err());
    }
}
