//! The SQL metadata store: one implementation of [`MetadataStore`] for both
//! SQLite and PostgreSQL, over sqlx's `Any` driver.
//!
//! # Why `Any` rather than a generic implementation
//!
//! Both backends run the same statements: `$1…` placeholders, `RETURNING`,
//! `ON CONFLICT … DO UPDATE`, partial indexes and `ON DELETE CASCADE` are
//! accepted by SQLite (≥ 3.35) and PostgreSQL alike, and the schema sticks to
//! `TEXT`, `BIGINT` and `DOUBLE PRECISION`, which both understand. So the SQL
//! is written once, the migrations are one directory, and the only
//! per-backend code is the [`Backend`] enum below: how a transaction begins
//! and how the parent function row is locked. A generic implementation
//! (`impl<DB: Database>`) would need a long list of `where` bounds on every
//! method (`for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>`,
//! `i64: Encode<DB> + Type<DB>`, …) for no gain in behaviour.
//!
//! The price of `Any` is its small type set (integers, floats, text, blobs):
//! timestamps are stored as microseconds since the epoch (the domain truncates
//! to microseconds, so they round-trip exactly), booleans as 0/1, unsigned
//! counters as checked `i64`, nested values as JSON text. (A SQLite column
//! declared `BOOLEAN` cannot even be read through `Any`, hence 0/1.) See
//! [`record`] for the mapping.
//!
//! One difference stays visible: `list_functions` orders names by the
//! database's collation, byte order on SQLite and the database's default on
//! PostgreSQL (`C` in CI; with a locale collation `fn-b` may sort after
//! `fna`). Pagination is consistent on either, since the `after` cursor is
//! compared under the same collation. A per-column `COLLATE "C"` would need
//! PostgreSQL-only DDL; function names are `[A-Za-z0-9-]`, so the orders only
//! differ in case and dashes.
//!
//! # Atomicity
//!
//! Every mutation of a function's versions, aliases and deployments runs in a
//! transaction that first locks the function row: on PostgreSQL with
//! `SELECT … FOR UPDATE`, on SQLite by starting the transaction with
//! `BEGIN IMMEDIATE` (which takes the database's write lock up front, so a
//! check and the write that depends on it cannot interleave with another
//! writer). The invariants (versions referenced by aliases are not deleted,
//! aliases only route to existing versions, one active deployment per alias,
//! version numbers never reused) are therefore checked and kept atomically.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::{Any, Executor, Row, Transaction};
use sqlx::{AnyConnection, AnyPool};

use hotswap_domain::{
    AsyncInvocation, AsyncStatus, Deployment, DeploymentStatus, Function, FunctionAlias,
    FunctionVersion, LayerVersion, RunnerNode, SecurityGroup, Subnet, Trigger, VersionStatus,
    VpcConfig,
};

use hotswap_domain::time::Timestamp;

use crate::{
    describe_vpc_users, ApiToken, Claimed, FunctionFilter, InvocationCursor, InvocationFilter,
    MetadataStore, Page, Result, StoreError, TokenRole, VpcUser,
};

mod queues;
pub(crate) mod record;
mod records;
mod streams;

use record::{int, query_with, text, Record, SqlText, Value};

/// Page size of `list_functions` when the filter gives 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page `list_functions` returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// What differs between the two backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Suffix of the `SELECT` that locks a function row for the rest of the
    /// transaction. SQLite has no row locks: `BEGIN IMMEDIATE` already holds
    /// the database's write lock.
    fn row_lock(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// A statement that keeps other writers of `table` out until the
    /// transaction ends (PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
    /// does).
    fn lock_table(self, table: &str) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")),
        }
    }
}

/// Which list of a `vpcConfig` a lookup reads.
#[derive(Debug, Clone, Copy)]
enum VpcField {
    Subnets,
    SecurityGroups,
}

impl VpcField {
    fn ids(self, vpc: &VpcConfig) -> &[String] {
        match self {
            VpcField::Subnets => &vpc.subnet_ids,
            VpcField::SecurityGroups => &vpc.security_group_ids,
        }
    }
}

/// The functions and stored versions whose `vpcConfig` names `id` in
/// `field`. The `LIKE` narrows the rows to those whose JSON holds the id as
/// a string; the decoded config decides.
async fn vpc_users(conn: &mut AnyConnection, field: VpcField, id: &str) -> Result<Vec<VpcUser>> {
    let quoted = serde_json::to_string(id)
        .map_err(|e| StoreError::Corrupt(format!("id '{id}' cannot be searched for: {e}")))?;
    let pattern = format!("%{quoted}%");
    let mut users = BTreeSet::new();
    let queries = [
        (
            "functions",
            "SELECT function_id, owner_id, name, CAST(0 AS BIGINT) AS version, vpc_config FROM functions \
             WHERE vpc_config LIKE $1",
        ),
        (
            "versions",
            "SELECT v.function_id AS function_id, f.owner_id AS owner_id, f.name AS name, \
             v.version AS version, v.vpc_config AS vpc_config \
             FROM versions v JOIN functions f ON f.function_id = v.function_id \
             WHERE v.vpc_config LIKE $1",
        ),
    ];
    for (table, sql) in queries {
        let rows = query_with(sql, vec![text(&pattern)])
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::Database)?;
        for row in &rows {
            let c = record::Cols::new(row, table);
            let vpc: Option<VpcConfig> = c.opt_json("vpc_config")?;
            if vpc.is_some_and(|v| field.ids(&v).iter().any(|i| i == id)) {
                users.insert(VpcUser {
                    owner_id: c.text("owner_id")?,
                    function_name: c.text("name")?,
                    function_id: c.text("function_id")?,
                    version: c.int("version")?,
                });
            }
        }
    }
    Ok(users.into_iter().collect())
}

/// [`MetadataStore`] on a SQLite or PostgreSQL database.
pub(crate) struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    summary: String,
}

/// The parts of a function row that version bookkeeping needs.
struct FunctionHead {
    published: Option<u32>,
    counter: u32,
}

impl SqlStore {
    /// Wraps a pool whose database is migrated.
    pub(crate) fn new(pool: AnyPool, backend: Backend, summary: String) -> Self {
        Self {
            pool,
            backend,
            summary,
        }
    }

    /// A transaction that holds the write lock from its first statement on
    /// SQLite, and a plain one on PostgreSQL (which locks rows instead).
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        tx.map_err(StoreError::Database)
    }

    /// Locks the function row until the transaction ends. `NotFound` when
    /// the function does not exist.
    async fn lock_function(
        &self,
        conn: &mut AnyConnection,
        function_id: &str,
    ) -> Result<FunctionHead> {
        let sql = format!(
            "SELECT published_version, version_counter FROM functions WHERE function_id = $1{}",
            self.backend.row_lock()
        );
        let row = query_with(&sql, vec![text(function_id)])
            .fetch_optional(conn)
            .await
            .map_err(StoreError::Database)?
            .ok_or_else(|| not_found("function", function_id))?;
        let c = record::Cols::new(&row, "functions");
        let published = match c.opt_text("published_version")? {
            None => None,
            Some(v) => Some(parse_version_string(&v).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "functions.published_version: '{v}' is not a version string (v1, v2, …)"
                ))
            })?),
        };
        Ok(FunctionHead {
            published,
            counter: c.int("version_counter")?,
        })
    }
}

fn not_found(kind: &'static str, id: impl Into<String>) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.into(),
    }
}

fn version_id(function: &str, version: u32) -> String {
    format!("{function}:{version}")
}

/// `"v5"` → 5.
fn parse_version_string(v: &str) -> Option<u32> {
    v.strip_prefix('v')?.parse().ok()
}

/// Maps a failed write of `record`: a duplicate key becomes `Conflict` with
/// `duplicate` as its message, a missing parent function `NotFound`.
fn write_error<R: Record>(
    record: &R,
    e: sqlx::Error,
    duplicate: impl FnOnce() -> String,
) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::UniqueViolation => return StoreError::Conflict(duplicate()),
            ErrorKind::ForeignKeyViolation => {
                if let Some(function) = record.parent_function() {
                    return not_found("function", function);
                }
            }
            _ => {}
        }
    }
    StoreError::Database(e)
}

fn already_exists<R: Record>(record: &R) -> String {
    format!("{} {} already exists", R::KIND, record.describe())
}

async fn execute<'c>(
    exec: impl Executor<'c, Database = Any>,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64> {
    query_with(sql, values)
        .execute(exec)
        .await
        .map(|done| done.rows_affected())
        .map_err(StoreError::Database)
}

async fn fetch_optional<'c, R: Record>(
    exec: impl Executor<'c, Database = Any>,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<R>> {
    let row = query_with(sql, values)
        .fetch_optional(exec)
        .await
        .map_err(StoreError::Database)?;
    row.as_ref().map(R::from_row).transpose()
}

async fn fetch_all<'c, R: Record>(
    exec: impl Executor<'c, Database = Any>,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<R>> {
    let rows = query_with(sql, values)
        .fetch_all(exec)
        .await
        .map_err(StoreError::Database)?;
    rows.iter().map(R::from_row).collect()
}

/// The row with this primary key.
async fn fetch_by_key<'c, R: Record>(
    exec: impl Executor<'c, Database = Any>,
    key: Vec<Value>,
) -> Result<Option<R>> {
    let sql = SqlText::select::<R>(&SqlText::where_key::<R>());
    fetch_optional(exec, &sql, key).await
}

/// Deletes the row with this primary key; whether there was one.
async fn delete_by_key<'c, R: Record>(
    exec: impl Executor<'c, Database = Any>,
    key: Vec<Value>,
) -> Result<bool> {
    let sql = format!("DELETE FROM {} {}", R::TABLE, SqlText::where_key::<R>());
    Ok(execute(exec, &sql, key).await? > 0)
}

async fn insert<'c, R: Record>(exec: impl Executor<'c, Database = Any>, record: &R) -> Result<()> {
    query_with(&SqlText::insert::<R>(), record.values()?)
        .execute(exec)
        .await
        .map_err(|e| write_error(record, e, || already_exists(record)))?;
    Ok(())
}

/// Replaces the stored row (but [`Record::KEEP_ON_UPDATE`]); whether it
/// existed. A unique violation becomes `Conflict(duplicate())`.
async fn update<'c, R: Record>(
    exec: impl Executor<'c, Database = Any>,
    record: &R,
    duplicate: impl FnOnce() -> String,
) -> Result<bool> {
    let values = SqlText::update_values::<R>(record.values()?);
    let done = query_with(&SqlText::update::<R>(), values)
        .execute(exec)
        .await
        .map_err(|e| write_error(record, e, duplicate))?;
    Ok(done.rows_affected() > 0)
}

/// Rewrites the function's rows in `function_tags` from `function.tags`.
async fn write_tags(conn: &mut AnyConnection, function: &Function) -> Result<()> {
    execute(
        &mut *conn,
        "DELETE FROM function_tags WHERE function_id = $1",
        vec![text(&function.function_id)],
    )
    .await?;
    for (key, value) in &function.tags {
        execute(
            &mut *conn,
            "INSERT INTO function_tags (function_id, tag_key, tag_value) VALUES ($1, $2, $3)",
            vec![text(&function.function_id), text(key), text(value)],
        )
        .await?;
    }
    Ok(())
}

/// `Conflict` unless every version `alias` routes to exists.
async fn check_routed_versions(conn: &mut AnyConnection, alias: &FunctionAlias) -> Result<()> {
    let rows = query_with(
        "SELECT version FROM versions WHERE function_id = $1",
        vec![text(&alias.function_id)],
    )
    .fetch_all(conn)
    .await
    .map_err(StoreError::Database)?;
    let existing: BTreeSet<i64> = rows
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| StoreError::Corrupt(format!("versions.version: {e}")))?;
    let missing: BTreeSet<u32> = alias
        .referenced_versions()
        .filter(|v| !existing.contains(&i64::from(*v)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = join(missing.iter());
    let (noun, verb) = if missing.len() == 1 {
        ("version", "does")
    } else {
        ("versions", "do")
    };
    Err(StoreError::Conflict(format!(
        "alias '{}' routes to {noun} {list}, which {verb} not exist",
        alias.alias_name
    )))
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

fn check_latest(function: &Function, latest: &FunctionVersion) -> Result<()> {
    if latest.version != 0
        || latest.function_name != function.name
        || latest.function_id != function.function_id
    {
        return Err(StoreError::Conflict(format!(
            "the $LATEST row of function '{}' must be its version 0 (got version {} of '{}')",
            function.name, latest.version, latest.function_name
        )));
    }
    Ok(())
}

/// The `SELECT` of one page of `list_functions`, and its parameters. It
/// asks for one row more than `limit`, which tells whether a page follows.
fn list_functions_query(filter: &FunctionFilter, limit: u32) -> (String, Vec<Value>) {
    fn param(values: &mut Vec<Value>, v: Value) -> String {
        values.push(v);
        format!("${}", values.len())
    }
    let mut values = Vec::new();
    let mut terms = Vec::new();
    if let Some(owner) = &filter.owner_id {
        terms.push(format!("owner_id = {}", param(&mut values, text(owner))));
    }
    match filter.after.as_deref().map(|a| a.split_once(':').ok_or(a)) {
        None => {}
        Some(Ok((name, owner))) => {
            let name = param(&mut values, text(name));
            let owner = param(&mut values, text(owner));
            terms.push(format!(
                "(name > {name} OR (name = {name} AND owner_id > {owner}))"
            ));
        }
        Some(Err(name)) => terms.push(format!("name > {}", param(&mut values, text(name)))),
    }
    if let Some((key, value)) = &filter.tag {
        let mut tag = format!(
            "EXISTS (SELECT 1 FROM function_tags t WHERE t.function_id = functions.function_id AND t.tag_key = {}",
            param(&mut values, text(key))
        );
        if let Some(value) = value {
            let value = param(&mut values, text(value));
            tag.push_str(&format!(" AND t.tag_value = {value}"));
        }
        tag.push(')');
        terms.push(tag);
    }
    let filter_sql = if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    };
    let limit = param(&mut values, int(limit + 1));
    let sql = SqlText::select::<Function>(&format!(
        "{filter_sql} ORDER BY name, owner_id LIMIT {limit}"
    ));
    (sql, values)
}

#[async_trait]
impl MetadataStore for SqlStore {
    fn summary(&self) -> String {
        self.summary.clone()
    }

    // ---- functions -------------------------------------------------------

    async fn create_function(&self, function: &Function, latest: &FunctionVersion) -> Result<()> {
        check_latest(function, latest)?;
        let mut tx = self.begin().await?;
        insert(&mut *tx, function).await?;
        write_tags(&mut tx, function).await?;
        insert(&mut *tx, latest).await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_function(&self, owner_id: &str, name: &str) -> Result<Option<Function>> {
        let sql = SqlText::select::<Function>("WHERE owner_id = $1 AND name = $2");
        fetch_optional(&self.pool, &sql, vec![text(owner_id), text(name)]).await
    }

    async fn get_function_by_id(&self, function_id: &str) -> Result<Option<Function>> {
        fetch_by_key(&self.pool, vec![text(function_id)]).await
    }

    async fn list_functions(&self, filter: &FunctionFilter) -> Result<Page<Function>> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let (sql, values) = list_functions_query(filter, limit);
        let mut items: Vec<Function> = fetch_all(&self.pool, &sql, values).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_token = if more {
            items.last().map(|f| format!("{}:{}", f.name, f.owner_id))
        } else {
            None
        };
        Ok(Page { items, next_token })
    }

    async fn update_function(&self, function: &Function, latest: &FunctionVersion) -> Result<()> {
        check_latest(function, latest)?;
        let mut tx = self.begin().await?;
        if !update(&mut *tx, function, || already_exists(function)).await? {
            return Err(not_found("function", &function.function_id));
        }
        write_tags(&mut tx, function).await?;
        query_with(&SqlText::upsert::<FunctionVersion>(), latest.values()?)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn delete_function(&self, function_id: &str) -> Result<bool> {
        delete_by_key::<Function>(&self.pool, vec![text(function_id)]).await
    }

    async fn record_invocations(
        &self,
        function: &str,
        version: u32,
        count: u64,
        at: hotswap_domain::time::Timestamp,
    ) -> Result<()> {
        let count = i64::try_from(count).map_err(|_| {
            StoreError::Conflict(format!("invocation count {count} is out of range"))
        })?;
        let at = at.timestamp_micros();
        let mut tx = self.begin().await?;
        execute(
            &mut *tx,
            "UPDATE functions SET total_invocations = total_invocations + $2, \
             last_invoked_at = CASE WHEN last_invoked_at IS NULL OR last_invoked_at < $3 THEN $3 ELSE last_invoked_at END \
             WHERE function_id = $1",
            vec![text(function), Value::Int(count), Value::Int(at)],
        )
        .await?;
        execute(
            &mut *tx,
            "UPDATE versions SET invocation_count = invocation_count + $3 WHERE function_id = $1 AND version = $2",
            vec![text(function), int(version), Value::Int(count)],
        )
        .await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    // ---- versions --------------------------------------------------------

    async fn allocate_version_number(&self, function: &str) -> Result<u32> {
        let row = query_with(
            "UPDATE functions SET version_counter = version_counter + 1 WHERE function_id = $1 RETURNING version_counter",
            vec![text(function)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .ok_or_else(|| not_found("function", function))?;
        record::Cols::new(&row, "functions").int("version_counter")
    }

    async fn insert_version(&self, version: &FunctionVersion) -> Result<()> {
        if version.version == 0 {
            return Err(StoreError::Conflict(format!(
                "version 0 of function '{}' is $LATEST; published versions start at 1",
                version.function_name
            )));
        }
        let mut tx = self.begin().await?;
        let head = self.lock_function(&mut tx, &version.function_id).await?;
        insert(&mut *tx, version).await?;
        let published = head.published.max(Some(version.version));
        let counter = head.counter.max(version.version);
        execute(
            &mut *tx,
            "UPDATE functions SET published_version = $2, version_counter = $3 WHERE function_id = $1",
            vec![
                text(&version.function_id),
                Value::OptText(published.map(hotswap_domain::version::version_string)),
                int(counter),
            ],
        )
        .await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_version(&self, function: &str, version: u32) -> Result<Option<FunctionVersion>> {
        fetch_by_key(&self.pool, vec![text(function), int(version)]).await
    }

    async fn list_versions(&self, function: &str) -> Result<Vec<FunctionVersion>> {
        let sql = SqlText::select::<FunctionVersion>("WHERE function_id = $1 ORDER BY version");
        fetch_all(&self.pool, &sql, vec![text(function)]).await
    }

    async fn set_version_status(
        &self,
        function: &str,
        version: u32,
        status: VersionStatus,
    ) -> Result<FunctionVersion> {
        let sql = format!(
            "UPDATE versions SET status = $3 WHERE function_id = $1 AND version = $2 RETURNING {}",
            FunctionVersion::COLUMNS.join(", ")
        );
        let values = vec![text(function), int(version), text(status.as_str())];
        fetch_optional(&self.pool, &sql, values)
            .await?
            .ok_or_else(|| not_found("version", version_id(function, version)))
    }

    async fn delete_version(&self, function: &str, version: u32) -> Result<FunctionVersion> {
        if version == 0 {
            return Err(StoreError::Conflict(format!(
                "$LATEST (version 0) of function '{function}' cannot be deleted; delete the function instead"
            )));
        }
        let mut tx = self.begin().await?;
        self.lock_function(&mut tx, function).await?;
        let key = vec![text(function), int(version)];
        let stored: FunctionVersion = fetch_by_key(&mut *tx, key.clone())
            .await?
            .ok_or_else(|| not_found("version", version_id(function, version)))?;
        let sql = SqlText::select::<FunctionAlias>("WHERE function_id = $1 ORDER BY alias_name");
        let aliases: Vec<FunctionAlias> = fetch_all(&mut *tx, &sql, vec![text(function)]).await?;
        let referencing: Vec<&str> = aliases
            .iter()
            .filter(|a| a.references(version))
            .map(|a| a.alias_name.as_str())
            .collect();
        if !referencing.is_empty() {
            return Err(StoreError::Conflict(format!(
                "version {version} is referenced by alias(es) {}",
                referencing.join(", ")
            )));
        }
        if !stored.can_delete() {
            return Err(StoreError::Conflict(format!(
                "version {version} is {} and has served invocations; deprecate or archive it first",
                stored.status
            )));
        }
        delete_by_key::<FunctionVersion>(&mut *tx, key).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(stored)
    }

    // ---- aliases ---------------------------------------------------------

    async fn create_alias(&self, alias: &FunctionAlias) -> Result<()> {
        let mut tx = self.begin().await?;
        self.lock_function(&mut tx, &alias.function_id).await?;
        check_routed_versions(&mut tx, alias).await?;
        insert(&mut *tx, alias).await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_alias(&self, function: &str, alias: &str) -> Result<Option<FunctionAlias>> {
        fetch_by_key(&self.pool, vec![text(function), text(alias)]).await
    }

    async fn list_aliases(&self, function: &str) -> Result<Vec<FunctionAlias>> {
        let sql = SqlText::select::<FunctionAlias>("WHERE function_id = $1 ORDER BY alias_name");
        fetch_all(&self.pool, &sql, vec![text(function)]).await
    }

    async fn update_alias(&self, alias: &FunctionAlias) -> Result<()> {
        let mut tx = self.begin().await?;
        self.lock_function(&mut tx, &alias.function_id).await?;
        if !update(&mut *tx, alias, || already_exists(alias)).await? {
            return Err(not_found(
                "alias",
                format!("{}:{}", alias.function_name, alias.alias_name),
            ));
        }
        check_routed_versions(&mut tx, alias).await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn delete_alias(&self, function: &str, alias: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        match self.lock_function(&mut tx, function).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(id) = active_deployment_of(&mut tx, function, alias, None).await? {
            return Err(StoreError::Conflict(format!(
                "alias '{alias}' is being moved by deployment {id}; cancel it first"
            )));
        }
        let deleted =
            delete_by_key::<FunctionAlias>(&mut *tx, vec![text(function), text(alias)]).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(deleted)
    }

    // ---- triggers --------------------------------------------------------

    async fn create_trigger(&self, trigger: &Trigger) -> Result<()> {
        insert(&self.pool, trigger).await
    }

    async fn get_trigger(&self, trigger_id: &str) -> Result<Option<Trigger>> {
        fetch_by_key(&self.pool, vec![text(trigger_id)]).await
    }

    async fn list_triggers(&self, function: Option<&str>) -> Result<Vec<Trigger>> {
        let (filter, values) = match function {
            Some(f) => ("WHERE function_id = $1 ", vec![text(f)]),
            None => ("", Vec::new()),
        };
        let sql = SqlText::select::<Trigger>(&format!("{filter}ORDER BY created_at, trigger_id"));
        fetch_all(&self.pool, &sql, values).await
    }

    async fn update_trigger(&self, trigger: &Trigger) -> Result<()> {
        if update(&self.pool, trigger, || already_exists(trigger)).await? {
            Ok(())
        } else {
            Err(not_found("trigger", &trigger.trigger_id))
        }
    }

    async fn delete_trigger(&self, trigger_id: &str) -> Result<bool> {
        delete_by_key::<Trigger>(&self.pool, vec![text(trigger_id)]).await
    }

    async fn record_trigger_runs(
        &self,
        trigger_id: &str,
        runs: u64,
        failures: u64,
        at: Option<hotswap_domain::time::Timestamp>,
    ) -> Result<()> {
        let count = |n: u64| {
            i64::try_from(n)
                .map_err(|_| StoreError::Conflict(format!("run count {n} is out of range")))
        };
        let mut values = vec![
            text(trigger_id),
            Value::Int(count(runs)?),
            Value::Int(count(failures)?),
        ];
        let last = match at {
            Some(at) => {
                values.push(Value::Int(at.timestamp_micros()));
                ", last_executed_at = CASE WHEN last_executed_at IS NULL OR last_executed_at < $4 \
                 THEN $4 ELSE last_executed_at END"
            }
            None => "",
        };
        let sql = format!(
            "UPDATE triggers SET execution_count = execution_count + $2, \
             failure_count = failure_count + $3{last} WHERE trigger_id = $1"
        );
        execute(&self.pool, &sql, values).await?;
        Ok(())
    }

    async fn claim_tick(
        &self,
        trigger_id: &str,
        tick_at: hotswap_domain::time::Timestamp,
        invocation: &AsyncInvocation,
    ) -> Result<bool> {
        let now = hotswap_domain::time::now().timestamp_micros();
        let mut tx = self.begin().await?;
        let claimed = execute(
            &mut *tx,
            "INSERT INTO schedule_ticks (trigger_id, tick_at, request_id, claimed_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM triggers WHERE trigger_id = $1 AND is_enabled = 1 \
               AND (enabled_at IS NULL OR enabled_at <= $2)) \
             ON CONFLICT (trigger_id, tick_at) DO NOTHING",
            vec![
                text(trigger_id),
                Value::Int(tick_at.timestamp_micros()),
                text(&invocation.request_id),
                Value::Int(now),
            ],
        )
        .await?;
        if claimed == 0 {
            return Ok(false);
        }
        execute(
            &mut *tx,
            &SqlText::insert::<AsyncInvocation>(),
            invocation.values()?,
        )
        .await?;
        execute(
            &mut *tx,
            "UPDATE triggers SET execution_count = execution_count + 1, \
             last_executed_at = CASE WHEN last_executed_at IS NULL OR last_executed_at < $2 THEN $2 \
               ELSE last_executed_at END \
             WHERE trigger_id = $1",
            vec![text(trigger_id), Value::Int(now)],
        )
        .await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(true)
    }

    async fn last_tick(&self, trigger_id: &str) -> Result<Option<hotswap_domain::time::Timestamp>> {
        let row = query_with(
            "SELECT MAX(tick_at) FROM schedule_ticks WHERE trigger_id = $1",
            vec![text(trigger_id)],
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let micros: Option<i64> = sqlx::Row::try_get(&row, 0).map_err(StoreError::Database)?;
        Ok(micros.and_then(chrono::DateTime::from_timestamp_micros))
    }

    async fn prune_ticks(&self, before: hotswap_domain::time::Timestamp) -> Result<u64> {
        execute(
            &self.pool,
            "DELETE FROM schedule_ticks WHERE tick_at < $1 AND tick_at < \
             (SELECT MAX(t.tick_at) FROM schedule_ticks t WHERE t.trigger_id = schedule_ticks.trigger_id)",
            vec![Value::Int(before.timestamp_micros())],
        )
        .await
    }

    // ---- runner nodes ----------------------------------------------------

    async fn upsert_runner(&self, runner: &RunnerNode) -> Result<()> {
        execute(
            &self.pool,
            &SqlText::upsert::<RunnerNode>(),
            runner.values()?,
        )
        .await?;
        Ok(())
    }

    async fn get_runner(&self, node_id: &str) -> Result<Option<RunnerNode>> {
        fetch_by_key(&self.pool, vec![text(node_id)]).await
    }

    async fn list_runners(&self) -> Result<Vec<RunnerNode>> {
        fetch_all(
            &self.pool,
            &SqlText::select::<RunnerNode>("ORDER BY node_id"),
            Vec::new(),
        )
        .await
    }

    async fn delete_runner(&self, node_id: &str) -> Result<bool> {
        delete_by_key::<RunnerNode>(&self.pool, vec![text(node_id)]).await
    }

    // ---- deployments -----------------------------------------------------

    async fn create_deployment(&self, deployment: &Deployment) -> Result<()> {
        let mut tx = self.begin().await?;
        self.lock_function(&mut tx, &deployment.function_id).await?;
        if deployment.status.is_active() {
            let active = query_with(
                "SELECT deployment_id FROM deployments WHERE function_id = $1 AND alias_name = $2 AND status IN ($3, $4)",
                vec![
                    text(&deployment.function_id),
                    text(&deployment.alias_name),
                    text(DeploymentStatus::Pending.as_str()),
                    text(DeploymentStatus::InProgress.as_str()),
                ],
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
            if let Some(row) = active {
                let id = record::Cols::new(&row, "deployments").text("deployment_id")?;
                return Err(StoreError::Conflict(active_deployment(
                    deployment,
                    Some(&id),
                )));
            }
        }
        insert(&mut *tx, deployment).await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Option<Deployment>> {
        fetch_by_key(&self.pool, vec![text(deployment_id)]).await
    }

    async fn list_deployments(&self, function: &str) -> Result<Vec<Deployment>> {
        let sql = SqlText::select::<Deployment>(
            "WHERE function_id = $1 ORDER BY started_at DESC, deployment_id DESC",
        );
        fetch_all(&self.pool, &sql, vec![text(function)]).await
    }

    async fn update_deployment(&self, deployment: &Deployment) -> Result<()> {
        // The only unique index an update can violate is the one that allows
        // a single active deployment per alias.
        let duplicate = || active_deployment(deployment, None);
        if update(&self.pool, deployment, duplicate).await? {
            Ok(())
        } else {
            Err(not_found("deployment", &deployment.deployment_id))
        }
    }

    async fn list_active_deployments(&self) -> Result<Vec<Deployment>> {
        let sql = SqlText::select::<Deployment>(
            "WHERE status IN ($1, $2) ORDER BY started_at, deployment_id",
        );
        fetch_all(
            &self.pool,
            &sql,
            vec![
                text(DeploymentStatus::Pending.as_str()),
                text(DeploymentStatus::InProgress.as_str()),
            ],
        )
        .await
    }

    async fn apply_deployment(
        &self,
        deployment: &Deployment,
        alias: Option<&FunctionAlias>,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        self.lock_function(&mut tx, &deployment.function_id).await?;
        let row = query_with(
            "SELECT revision FROM deployments WHERE deployment_id = $1",
            vec![text(&deployment.deployment_id)],
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::Database)?
        .ok_or_else(|| not_found("deployment", &deployment.deployment_id))?;
        let stored: i64 = row
            .try_get("revision")
            .map_err(|e| StoreError::Corrupt(format!("deployments.revision: {e}")))?;
        if u64::try_from(stored).ok() != Some(deployment.revision) {
            return Err(StoreError::Conflict(format!(
                "deployment {} changed meanwhile (revision {stored}, expected {})",
                deployment.deployment_id, deployment.revision
            )));
        }
        if let Some(alias) = alias {
            if alias.function_id != deployment.function_id
                || alias.alias_name != deployment.alias_name
            {
                return Err(StoreError::Conflict(format!(
                    "deployment {} does not own alias '{}'",
                    deployment.deployment_id, alias.alias_name
                )));
            }
            if let Some(other) = active_deployment_of(
                &mut tx,
                &alias.function_id,
                &alias.alias_name,
                Some(&deployment.deployment_id),
            )
            .await?
            {
                return Err(StoreError::Conflict(format!(
                    "alias '{}' is being moved by deployment {other}",
                    alias.alias_name
                )));
            }
            if !update(&mut *tx, alias, || already_exists(alias)).await? {
                return Err(not_found(
                    "alias",
                    format!("{}:{}", alias.function_name, alias.alias_name),
                ));
            }
            check_routed_versions(&mut tx, alias).await?;
        }
        let mut next = deployment.clone();
        next.revision = deployment.revision + 1;
        let duplicate = || active_deployment(deployment, None);
        update(&mut *tx, &next, duplicate).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(next.revision)
    }

    // ---- asynchronous invocations ----------------------------------------

    async fn enqueue_invocation(&self, invocation: &AsyncInvocation) -> Result<()> {
        insert(&self.pool, invocation).await
    }

    async fn get_invocation(&self, request_id: &str) -> Result<Option<AsyncInvocation>> {
        fetch_by_key(&self.pool, vec![text(request_id)]).await
    }

    async fn list_invocations(&self, filter: &InvocationFilter) -> Result<Page<AsyncInvocation>> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let mut values = vec![text(&filter.function_name), text(&filter.owner_id)];
        let mut terms = vec!["function_name = $1".to_owned(), "owner_id = $2".to_owned()];
        if let Some(status) = filter.status {
            values.push(text(status.as_str()));
            terms.push(format!("status = ${}", values.len()));
        }
        if let Some(id) = &filter.function_id {
            values.push(text(id));
            terms.push(format!(
                "(function_id = ${} OR function_id IS NULL)",
                values.len()
            ));
        }
        if let Some(after) = &filter.after {
            values.push(Value::Int(after.created_at.timestamp_micros()));
            values.push(text(&after.request_id));
            let (t, id) = (values.len() - 1, values.len());
            terms.push(format!(
                "(created_at < ${t} OR (created_at = ${t} AND request_id < ${id}))"
            ));
        }
        values.push(int(limit + 1));
        let sql = SqlText::select::<AsyncInvocation>(&format!(
            "WHERE {} ORDER BY created_at DESC, request_id DESC LIMIT ${}",
            terms.join(" AND "),
            values.len()
        ));
        let mut items: Vec<AsyncInvocation> = fetch_all(&self.pool, &sql, values).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_token = if more {
            items.last().map(|i| {
                InvocationCursor {
                    created_at: i.created_at,
                    request_id: i.request_id.clone(),
                }
                .to_string()
            })
        } else {
            None
        };
        Ok(Page { items, next_token })
    }

    async fn claim_invocations(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let mut tx = self.begin().await?;
        // PostgreSQL: several controllers claim side by side, skipping rows
        // another holds; SQLite: BEGIN IMMEDIATE already serialises them.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = SqlText::select::<AsyncInvocation>(&format!(
            "WHERE (status = $1 AND next_attempt_at <= $3) OR (status = $2 AND lease_until < $3) \
             ORDER BY next_attempt_at LIMIT $4{lock}"
        ));
        let due: Vec<AsyncInvocation> = fetch_all(
            &mut *tx,
            &sql,
            vec![
                text(AsyncStatus::Queued.as_str()),
                text(AsyncStatus::Running.as_str()),
                Value::Int(now.timestamp_micros()),
                int(limit),
            ],
        )
        .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for mut inv in due {
            // Attempts are counted when claimed: a Running row past its
            // lease whose count is used up lost its last attempt.
            let run = inv.has_attempts_left();
            inv.status = AsyncStatus::Running;
            if run {
                inv.attempts += 1;
            }
            inv.lease_until = Some(lease_until);
            inv.lease_token = Some(uuid::Uuid::new_v4().simple().to_string());
            inv.updated_at = now;
            update(&mut *tx, &inv, || already_exists(&inv)).await?;
            claimed.push(if run {
                Claimed::Attempt(inv)
            } else {
                Claimed::Exhausted(inv)
            });
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(claimed)
    }

    async fn renew_invocation_lease(
        &self,
        request_id: &str,
        lease_token: &str,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let done = execute(
            &self.pool,
            "UPDATE async_invocations SET lease_until = $3 WHERE request_id = $1 AND lease_token = $2",
            vec![
                text(request_id),
                text(lease_token),
                Value::Int(lease_until.timestamp_micros()),
            ],
        )
        .await?;
        Ok(done > 0)
    }

    async fn record_attempt(
        &self,
        invocation: &AsyncInvocation,
        lease_token: &str,
        dead_letter: Option<&AsyncInvocation>,
    ) -> Result<bool> {
        let mut values = SqlText::update_values::<AsyncInvocation>(invocation.values()?);
        values.push(text(lease_token));
        let sql = format!(
            "{} AND lease_token = ${}",
            SqlText::update::<AsyncInvocation>(),
            values.len()
        );
        let mut tx = self.begin().await?;
        if execute(&mut *tx, &sql, values).await? == 0 {
            return Ok(false);
        }
        if let Some(letter) = dead_letter {
            let sql = format!(
                "{} ON CONFLICT (request_id) DO NOTHING",
                SqlText::insert::<AsyncInvocation>()
            );
            execute(&mut *tx, &sql, letter.values()?).await?;
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(true)
    }

    // ---- layers ------------------------------------------------------------

    async fn publish_layer_version(&self, layer: &LayerVersion) -> Result<LayerVersion> {
        let mut tx = self.begin().await?;
        // The name's row holds its owner and a counter that only grows, so a
        // deleted newest version's number is never handed out again. The
        // UPDATE locks the row: concurrent publishers of one name queue here.
        execute(
            &mut *tx,
            "INSERT INTO layer_names (layer_name, owner_id, version_counter) VALUES ($1, $2, 0) \
             ON CONFLICT (layer_name) DO NOTHING",
            vec![text(&layer.layer_name), text(&layer.owner_id)],
        )
        .await?;
        let row = query_with(
            "UPDATE layer_names SET version_counter = version_counter + 1 \
             WHERE layer_name = $1 AND owner_id = $2 RETURNING version_counter",
            vec![text(&layer.layer_name), text(&layer.owner_id)],
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::Database)?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "layer name '{}' belongs to another owner",
                layer.layer_name
            ))
        })?;
        let mut stored = layer.clone();
        stored.version = record::Cols::new(&row, "layer_names").int("version_counter")?;
        insert(&mut *tx, &stored).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(stored)
    }

    async fn get_layer_version(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<LayerVersion>> {
        match version {
            Some(v) => fetch_by_key(&self.pool, vec![text(name), int(v)]).await,
            None => {
                let sql = SqlText::select::<LayerVersion>(
                    "WHERE layer_name = $1 ORDER BY version DESC LIMIT 1",
                );
                fetch_optional(&self.pool, &sql, vec![text(name)]).await
            }
        }
    }

    async fn list_layer_versions(&self, name: &str) -> Result<Vec<LayerVersion>> {
        let sql = SqlText::select::<LayerVersion>("WHERE layer_name = $1 ORDER BY version");
        fetch_all(&self.pool, &sql, vec![text(name)]).await
    }

    async fn list_layers(&self) -> Result<Vec<LayerVersion>> {
        let sql = SqlText::select::<LayerVersion>(
            "l WHERE version = (SELECT MAX(version) FROM layer_versions m WHERE m.layer_name = l.layer_name) ORDER BY layer_name",
        );
        fetch_all(&self.pool, &sql, vec![]).await
    }

    async fn delete_layer_version(&self, name: &str, version: u32) -> Result<bool> {
        delete_by_key::<LayerVersion>(&self.pool, vec![text(name), int(version)]).await
    }

    // ---- networking --------------------------------------------------------

    async fn create_subnet(&self, subnet: &Subnet) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(lock) = self.backend.lock_table(Subnet::TABLE) {
            execute(&mut *tx, &lock, vec![]).await?;
        }
        let sql = SqlText::select::<Subnet>("ORDER BY subnet_name");
        let existing: Vec<Subnet> = fetch_all(&mut *tx, &sql, vec![]).await?;
        if let Some(other) = existing.iter().find(|o| o.cidr.overlaps(&subnet.cidr)) {
            return Err(StoreError::Conflict(format!(
                "cidr {} overlaps subnet '{}' ({}, {})",
                subnet.cidr, other.subnet_name, other.subnet_id, other.cidr
            )));
        }
        insert(&mut *tx, subnet).await?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_subnet(&self, subnet_id: &str) -> Result<Option<Subnet>> {
        fetch_by_key(&self.pool, vec![text(subnet_id)]).await
    }

    async fn list_subnets(&self) -> Result<Vec<Subnet>> {
        let sql = SqlText::select::<Subnet>("ORDER BY subnet_name, subnet_id");
        fetch_all(&self.pool, &sql, vec![]).await
    }

    async fn delete_subnet(&self, subnet_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let users = vpc_users(&mut tx, VpcField::Subnets, subnet_id).await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "subnet '{subnet_id}' is in use by {}",
                describe_vpc_users(&users)
            )));
        }
        let deleted = delete_by_key::<Subnet>(&mut *tx, vec![text(subnet_id)]).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(deleted)
    }

    async fn subnet_users(&self, subnet_id: &str) -> Result<Vec<VpcUser>> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Database)?;
        vpc_users(&mut conn, VpcField::Subnets, subnet_id).await
    }

    async fn create_security_group(&self, group: &SecurityGroup) -> Result<()> {
        insert(&self.pool, group).await
    }

    async fn get_security_group(&self, group_id: &str) -> Result<Option<SecurityGroup>> {
        fetch_by_key(&self.pool, vec![text(group_id)]).await
    }

    async fn list_security_groups(&self, owner_id: Option<&str>) -> Result<Vec<SecurityGroup>> {
        let (filter, values) = match owner_id {
            Some(owner) => ("WHERE owner_id = $1 ", vec![text(owner)]),
            None => ("", Vec::new()),
        };
        let sql = SqlText::select::<SecurityGroup>(&format!(
            "{filter}ORDER BY group_name, security_group_id"
        ));
        fetch_all(&self.pool, &sql, values).await
    }

    async fn update_security_group(&self, group: &SecurityGroup) -> Result<()> {
        if update(&self.pool, group, || already_exists(group)).await? {
            Ok(())
        } else {
            Err(not_found("security group", &group.security_group_id))
        }
    }

    async fn delete_security_group(&self, group_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let users = vpc_users(&mut tx, VpcField::SecurityGroups, group_id).await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "security group '{group_id}' is in use by {}",
                describe_vpc_users(&users)
            )));
        }
        let deleted = delete_by_key::<SecurityGroup>(&mut *tx, vec![text(group_id)]).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(deleted)
    }

    async fn security_group_users(&self, group_id: &str) -> Result<Vec<VpcUser>> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Database)?;
        vpc_users(&mut conn, VpcField::SecurityGroups, group_id).await
    }

    // ---- embedded queues (see queues.rs) -----------------------------------

    async fn queue_send(&self, message: &hotswap_domain::QueueMessage) -> Result<()> {
        self.queue_send_impl(message).await
    }

    async fn queue_receive(
        &self,
        owner_id: &str,
        queue_name: &str,
        max: u32,
        visibility: std::time::Duration,
        now: Timestamp,
    ) -> Result<Vec<(hotswap_domain::QueueMessage, hotswap_domain::Receipt)>> {
        self.queue_receive_impl(owner_id, queue_name, max, visibility, now)
            .await
    }

    async fn queue_ack(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[hotswap_domain::Receipt],
    ) -> Result<u64> {
        self.queue_ack_impl(owner_id, queue_name, receipts).await
    }

    async fn queue_release(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[hotswap_domain::Receipt],
        delay: std::time::Duration,
        uncount: bool,
        now: Timestamp,
    ) -> Result<u64> {
        self.queue_release_impl(owner_id, queue_name, receipts, delay, uncount, now)
            .await
    }

    async fn queue_move(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipt: &hotswap_domain::Receipt,
        to_queue: &str,
        now: Timestamp,
    ) -> Result<Option<hotswap_domain::QueueMessage>> {
        self.queue_move_impl(owner_id, queue_name, receipt, to_queue, now)
            .await
    }

    async fn queue_purge(&self, owner_id: &str, queue_name: &str) -> Result<u64> {
        self.queue_purge_impl(owner_id, queue_name).await
    }

    async fn queue_summaries(
        &self,
        owner_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<hotswap_domain::QueueSummary>> {
        self.queue_summaries_impl(owner_id, None, now).await
    }

    async fn queue_summary(
        &self,
        owner_id: &str,
        queue_name: &str,
        now: Timestamp,
    ) -> Result<Option<hotswap_domain::QueueSummary>> {
        Ok(self
            .queue_summaries_impl(Some(owner_id), Some(queue_name), now)
            .await?
            .into_iter()
            .next())
    }

    // ---- stream shards (see streams.rs) ------------------------------------

    async fn stream_lease(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Option<String>>> {
        self.stream_lease_impl(trigger_id, shard, owner, until, now)
            .await
    }

    async fn stream_checkpoint(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        sequence: &str,
    ) -> Result<bool> {
        self.stream_checkpoint_impl(trigger_id, shard, owner, sequence)
            .await
    }

    async fn stream_release(&self, trigger_id: &str, shard: u32, owner: &str) -> Result<bool> {
        self.stream_release_impl(trigger_id, shard, owner).await
    }

    async fn stream_shards(&self, trigger_id: &str) -> Result<Vec<crate::StreamShardState>> {
        self.stream_shards_impl(trigger_id).await
    }

    // ---- API tokens ------------------------------------------------------

    async fn insert_token(&self, token: &ApiToken) -> Result<()> {
        insert(&self.pool, token).await
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        fetch_by_key(&self.pool, vec![text(token_hash)]).await
    }

    async fn get_token(&self, token_id: &str) -> Result<Option<ApiToken>> {
        let sql = SqlText::select::<ApiToken>("WHERE token_id = $1");
        fetch_optional(&self.pool, &sql, vec![text(token_id)]).await
    }

    async fn list_tokens(&self, owner_id: Option<&str>) -> Result<Vec<ApiToken>> {
        let (sql, values) = match owner_id {
            Some(owner) => (
                SqlText::select::<ApiToken>(
                    "WHERE revoked_at IS NULL AND owner_id = $1 ORDER BY created_at, token_id",
                ),
                vec![text(owner)],
            ),
            None => (
                SqlText::select::<ApiToken>(
                    "WHERE revoked_at IS NULL ORDER BY created_at, token_id",
                ),
                vec![],
            ),
        };
        fetch_all(&self.pool, &sql, values).await
    }

    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool> {
        let done = execute(
            &self.pool,
            "UPDATE api_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL",
            vec![text(token_id), Value::Int(at.timestamp_micros())],
        )
        .await?;
        Ok(done > 0)
    }

    async fn touch_token(&self, token_id: &str, at: Timestamp) -> Result<()> {
        execute(
            &self.pool,
            "UPDATE api_tokens SET last_used_at = $2 WHERE token_id = $1 \
             AND (last_used_at IS NULL OR last_used_at < $2)",
            vec![text(token_id), Value::Int(at.timestamp_micros())],
        )
        .await?;
        Ok(())
    }

    async fn has_admin_token(&self) -> Result<bool> {
        let row = query_with(
            "SELECT COUNT(*) AS admins FROM api_tokens WHERE role = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
            vec![
                text(TokenRole::Admin.as_str()),
                Value::Int(hotswap_domain::time::now().timestamp_micros()),
            ],
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let admins: u64 = record::Cols::new(&row, "api_tokens").int("admins")?;
        Ok(admins > 0)
    }
}

/// The message for a second active deployment of one alias.
/// The active (Pending or InProgress) deployment of the alias other than
/// `except`, read inside the caller's transaction.
async fn active_deployment_of(
    conn: &mut AnyConnection,
    function: &str,
    alias: &str,
    except: Option<&str>,
) -> Result<Option<String>> {
    let rows = query_with(
        "SELECT deployment_id FROM deployments WHERE function_id = $1 AND alias_name = $2 AND status IN ($3, $4)",
        vec![
            text(function),
            text(alias),
            text(DeploymentStatus::Pending.as_str()),
            text(DeploymentStatus::InProgress.as_str()),
        ],
    )
    .fetch_all(conn)
    .await
    .map_err(StoreError::Database)?;
    for row in rows {
        let id = record::Cols::new(&row, "deployments").text("deployment_id")?;
        if except != Some(id.as_str()) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn active_deployment(deployment: &Deployment, existing: Option<&str>) -> String {
    let existing = existing.map(|id| format!(" ({id})")).unwrap_or_default();
    format!(
        "alias '{}' of function '{}' already has an active deployment{existing}; wait for it to finish or cancel it",
        deployment.alias_name, deployment.function_name
    )
}
