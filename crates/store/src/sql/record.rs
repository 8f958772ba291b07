//! How a domain type maps to a table: its columns, how it becomes bind values
//! and how it is read back from a row, plus the SQL that follows from that
//! mapping (select, insert, update, upsert), written once for every table.
//!
//! Only the types the `Any` driver carries are used: `i64`, `f64`, `String`
//! (and `Option`s of them). Timestamps are microseconds since the epoch,
//! booleans 0/1, unsigned counters `i64` (checked both ways), enums their
//! variant names, nested values JSON text: see the [`Column`] impls.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use hotswap_domain::time::Timestamp;

use crate::{Result, StoreError};

/// One bind parameter.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(i64),
    OptInt(Option<i64>),
    Float(f64),
    Text(String),
    OptText(Option<String>),
}

impl Value {
    /// Appends this value to a query's parameters.
    pub(crate) fn bind(self, query: SqlQuery<'_>) -> SqlQuery<'_> {
        match self {
            Value::Int(v) => query.bind(v),
            Value::OptInt(v) => query.bind(v),
            Value::Float(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::OptText(v) => query.bind(v),
        }
    }
}

/// A query over the `Any` driver.
pub(crate) type SqlQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Builds a query from SQL and its parameters, in order.
pub(crate) fn query_with(sql: &str, values: Vec<Value>) -> SqlQuery<'_> {
    values
        .into_iter()
        .fold(sqlx::query(sql), |query, value| value.bind(query))
}

// ---- parameters ----------------------------------------------------------------

/// A text parameter.
pub(crate) fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}

/// An integer parameter.
pub(crate) fn int(v: u32) -> Value {
    Value::Int(i64::from(v))
}

/// A boolean parameter (stored as 0/1).
pub(crate) fn flag(v: bool) -> Value {
    Value::Int(i64::from(v))
}

// ---- column codecs -------------------------------------------------------------

/// How a field's type is stored in one column and read back.
pub(crate) trait Column: Sized {
    /// The bind value; `column` names it in errors.
    fn encode(&self, column: &str) -> Result<Value>;
    /// Reads the column from a row.
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self>;
}

impl Column for String {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::Text(self.clone()))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.text(column)
    }
}

impl Column for Option<String> {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::OptText(self.clone()))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.opt_text(column)
    }
}

impl Column for u16 {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::Int(i64::from(*self)))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.int(column)
    }
}

impl Column for u32 {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(int(*self))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.int(column)
    }
}

impl Column for Option<u32> {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::OptInt(self.map(i64::from)))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.opt_int(column)
    }
}

/// Counters; values beyond `i64::MAX` are refused rather than wrapped.
impl Column for u64 {
    fn encode(&self, column: &str) -> Result<Value> {
        i64::try_from(*self)
            .map(Value::Int)
            .map_err(|_| StoreError::Conflict(format!("{column} {self} is too large to store")))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.int(column)
    }
}

impl Column for bool {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(flag(*self))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.flag(column)
    }
}

/// Finite values only: SQLite would store NaN as NULL.
impl Column for f64 {
    fn encode(&self, column: &str) -> Result<Value> {
        if self.is_finite() {
            Ok(Value::Float(*self))
        } else {
            Err(StoreError::Conflict(format!(
                "{column} {self} cannot be stored: not a finite number"
            )))
        }
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.float(column)
    }
}

impl Column for Timestamp {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::Int(self.timestamp_micros()))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.time(column)
    }
}

impl Column for Option<Timestamp> {
    fn encode(&self, _: &str) -> Result<Value> {
        Ok(Value::OptInt(
            self.as_ref().map(Timestamp::timestamp_micros),
        ))
    }
    fn decode(cols: &Cols<'_>, column: &str) -> Result<Self> {
        cols.opt_time(column)
    }
}

/// JSON text of `v`. The text is parsed back before it is stored, so that
/// nothing is written that could not be read (JSON has no NaN or infinity:
/// serde_json would write them as `null`).
pub(crate) fn json<T: Serialize + DeserializeOwned>(v: &T, column: &str) -> Result<String> {
    let refused =
        |e: serde_json::Error| StoreError::Conflict(format!("{column} cannot be stored: {e}"));
    let text = serde_json::to_string(v).map_err(refused)?;
    serde_json::from_str::<T>(&text).map_err(refused)?;
    Ok(text)
}

/// Implements [`Column`] for types stored by name (`as_str` / `FromStr`).
macro_rules! named_columns {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::sql::record::Column for $t {
            fn encode(&self, _: &str) -> $crate::Result<$crate::sql::record::Value> {
                Ok($crate::sql::record::text(self.as_str()))
            }
            fn decode(cols: &$crate::sql::record::Cols<'_>, column: &str) -> $crate::Result<Self> {
                cols.parsed(column)
            }
        }
    )*};
}

/// Implements [`Column`] for types stored as JSON text, and for `Option`s
/// of them (SQL NULL for `None`).
macro_rules! json_columns {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::sql::record::Column for $t {
            fn encode(&self, column: &str) -> $crate::Result<$crate::sql::record::Value> {
                $crate::sql::record::json(self, column).map($crate::sql::record::Value::Text)
            }
            fn decode(cols: &$crate::sql::record::Cols<'_>, column: &str) -> $crate::Result<Self> {
                cols.json(column)
            }
        }
        impl $crate::sql::record::Column for Option<$t> {
            fn encode(&self, column: &str) -> $crate::Result<$crate::sql::record::Value> {
                self.as_ref()
                    .map(|v| $crate::sql::record::json(v, column))
                    .transpose()
                    .map($crate::sql::record::Value::OptText)
            }
            fn decode(cols: &$crate::sql::record::Cols<'_>, column: &str) -> $crate::Result<Self> {
                cols.opt_json(column)
            }
        }
    )*};
}

/// The column list, [`Record::values`] and [`Record::from_row`] of a
/// [`Record`] impl, from one list of fields: each field is stored in the
/// column of the same name, by its type's [`Column`] impl.
macro_rules! columns {
    ($($field:ident),* $(,)?) => {
        const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

        fn values(&self) -> $crate::Result<Vec<$crate::sql::record::Value>> {
            use $crate::sql::record::Column;
            Ok(vec![$(self.$field.encode(stringify!($field))?),*])
        }

        fn from_row(row: &sqlx::any::AnyRow) -> $crate::Result<Self> {
            use $crate::sql::record::Column;
            let cols = $crate::sql::record::Cols::new(row, Self::TABLE);
            Ok(Self {
                $($field: Column::decode(&cols, stringify!($field))?),*
            })
        }
    };
}

pub(crate) use {columns, json_columns, named_columns};

// ---- decoding ----------------------------------------------------------------

/// Typed access to the columns of a row; every failure is
/// [`StoreError::Corrupt`] naming the table and column.
pub(crate) struct Cols<'r> {
    row: &'r AnyRow,
    table: &'static str,
}

impl<'r> Cols<'r> {
    pub(crate) fn new(row: &'r AnyRow, table: &'static str) -> Self {
        Self { row, table }
    }

    fn corrupt(&self, column: &str, detail: impl Display) -> StoreError {
        StoreError::Corrupt(format!("{}.{column}: {detail}", self.table))
    }

    fn get<T>(&self, column: &str) -> Result<T>
    where
        T: for<'a> sqlx::Decode<'a, Any> + sqlx::Type<Any>,
    {
        self.row
            .try_get::<T, _>(column)
            .map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn text(&self, column: &str) -> Result<String> {
        self.get(column)
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.get(column)
    }

    pub(crate) fn float(&self, column: &str) -> Result<f64> {
        self.get(column)
    }

    fn i64(&self, column: &str) -> Result<i64> {
        self.get(column)
    }

    fn narrow<T: TryFrom<i64>>(&self, column: &str, v: i64) -> Result<T> {
        T::try_from(v).map_err(|_| self.corrupt(column, format!("{v} is out of range")))
    }

    pub(crate) fn int<T: TryFrom<i64>>(&self, column: &str) -> Result<T> {
        let v = self.i64(column)?;
        self.narrow(column, v)
    }

    pub(crate) fn opt_int<T: TryFrom<i64>>(&self, column: &str) -> Result<Option<T>> {
        self.get::<Option<i64>>(column)?
            .map(|v| self.narrow(column, v))
            .transpose()
    }

    pub(crate) fn flag(&self, column: &str) -> Result<bool> {
        match self.i64(column)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.corrupt(column, format!("{v} is not a boolean (0 or 1)"))),
        }
    }

    fn micros(&self, column: &str, v: i64) -> Result<Timestamp> {
        Timestamp::from_timestamp_micros(v)
            .ok_or_else(|| self.corrupt(column, format!("{v} is not a valid timestamp")))
    }

    pub(crate) fn time(&self, column: &str) -> Result<Timestamp> {
        let v = self.i64(column)?;
        self.micros(column, v)
    }

    pub(crate) fn opt_time(&self, column: &str) -> Result<Option<Timestamp>> {
        self.get::<Option<i64>>(column)?
            .map(|v| self.micros(column, v))
            .transpose()
    }

    /// A value stored as its `Display`/`FromStr` name (the domain's enums).
    pub(crate) fn parsed<T>(&self, column: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.text(column)?
            .parse()
            .map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        let text = self.text(column)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        self.opt_text(column)?
            .map(|text| serde_json::from_str(&text).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }
}

// ---- the mapping ---------------------------------------------------------------

/// A domain type stored as one row of one table. `COLUMNS`, `values` and
/// `from_row` come from [`columns!`].
pub(crate) trait Record: Sized + Send + Sync {
    /// The table.
    const TABLE: &'static str;
    /// What one row is, for messages ("function", "alias", …).
    const KIND: &'static str;
    /// Every column, in the order of [`Record::values`]; the first
    /// [`Record::KEY_LEN`] form the primary key.
    const COLUMNS: &'static [&'static str];
    /// How many leading columns form the primary key.
    const KEY_LEN: usize;
    /// Columns that [`update`](SqlText::update) leaves as they are stored.
    const KEEP_ON_UPDATE: &'static [&'static str] = &[];

    /// The bind values, one per column of [`Record::COLUMNS`].
    fn values(&self) -> Result<Vec<Value>>;
    /// Reads a row selected with [`SqlText::select`].
    fn from_row(row: &AnyRow) -> Result<Self>;
    /// The row's identity for messages (`prod` of `my-fn`, …).
    fn describe(&self) -> String;
    /// The function this row belongs to, when it has a foreign key to one.
    fn parent_function(&self) -> Option<&str> {
        None
    }
}

/// The SQL text generated from a [`Record`]'s mapping.
pub(crate) struct SqlText;

impl SqlText {
    fn placeholders(from: usize, count: usize) -> String {
        (from..from + count)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT <columns> FROM <table> <rest>`.
    pub(crate) fn select<R: Record>(rest: &str) -> String {
        format!("SELECT {} FROM {} {rest}", R::COLUMNS.join(", "), R::TABLE)
    }

    /// `WHERE` over the primary key, with parameters `$1…`.
    pub(crate) fn where_key<R: Record>() -> String {
        let terms: Vec<String> = R::COLUMNS[..R::KEY_LEN]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        format!("WHERE {}", terms.join(" AND "))
    }

    pub(crate) fn insert<R: Record>() -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            R::TABLE,
            R::COLUMNS.join(", "),
            Self::placeholders(1, R::COLUMNS.len())
        )
    }

    /// `INSERT … ON CONFLICT (key) DO UPDATE SET` every other column.
    /// Insert, or replace all but the key and [`Record::KEEP_ON_UPDATE`].
    pub(crate) fn upsert<R: Record>() -> String {
        let sets: Vec<String> = Self::updated_columns::<R>()
            .map(|(_, c)| format!("{c} = excluded.{c}"))
            .collect();
        format!(
            "{} ON CONFLICT ({}) DO UPDATE SET {}",
            Self::insert::<R>(),
            R::COLUMNS[..R::KEY_LEN].join(", "),
            sets.join(", ")
        )
    }

    fn updated_columns<R: Record>() -> impl Iterator<Item = (usize, &'static str)> {
        R::COLUMNS
            .iter()
            .copied()
            .enumerate()
            .skip(R::KEY_LEN)
            .filter(|(_, c)| !R::KEEP_ON_UPDATE.contains(c))
    }

    /// `UPDATE … SET <non-key columns> WHERE <key>`; bind with
    /// [`SqlText::update_values`].
    pub(crate) fn update<R: Record>() -> String {
        let sets: Vec<String> = Self::updated_columns::<R>()
            .enumerate()
            .map(|(i, (_, c))| format!("{c} = ${}", i + 1))
            .collect();
        let first_key = sets.len() + 1;
        let keys: Vec<String> = R::COLUMNS[..R::KEY_LEN]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", first_key + i))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            R::TABLE,
            sets.join(", "),
            keys.join(" AND ")
        )
    }

    /// The values of [`Record::values`] in the order [`SqlText::update`]
    /// binds them: updated columns, then the key.
    pub(crate) fn update_values<R: Record>(values: Vec<Value>) -> Vec<Value> {
        let mut slots: Vec<Option<Value>> = values.into_iter().map(Some).collect();
        let mut out: Vec<Value> = Self::updated_columns::<R>()
            .filter_map(|(i, _)| slots.get_mut(i).and_then(Option::take))
            .collect();
        out.extend(slots.into_iter().take(R::KEY_LEN).flatten());
        out
    }
}
