//! Opening the metadata store named by a URL, with its schema migrated.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
use sqlx::{Executor, Row};

use crate::sql::{Backend, SqlStore};
use crate::{MetadataStore, Result, StoreError};

/// The schema, embedded at build time; the same migrations serve both
/// backends (see [`crate::sql`]).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// Opens the metadata store at `url` and brings its schema up to date.
///
/// - `sqlite://path/to/file.db` (relative to the working directory),
///   `sqlite:///abs/path/file.db` or `sqlite:path.db`: the file and its parent
///   directories are created when missing; the database runs in WAL mode with
///   foreign keys enforced and a 5 s busy timeout. Query parameters of sqlx
///   (`mode`, `cache`, `immutable`, `vfs`) pass through; `mode` defaults to
///   `rwc`. In-memory databases are refused: each pooled connection would see
///   its own.
/// - `postgres://user@host:port/db` or `postgresql://…`: any URL sqlx
///   accepts. Several controllers may share one database; migrations take an
///   advisory lock.
///
/// Any other scheme is [`StoreError::Config`].
pub async fn open_metadata_store(url: &str) -> Result<Arc<dyn MetadataStore>> {
    sqlx::any::install_default_drivers();
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    let store = match scheme {
        "sqlite" => open_sqlite(url).await?,
        "postgres" | "postgresql" => open_postgres(url).await?,
        _ => {
            return Err(StoreError::Config(format!(
                "unsupported metadata store URL '{}': expected sqlite://PATH or postgres://…",
                redact(url)
            )))
        }
    };
    Ok(Arc::new(store))
}

async fn open_sqlite(url: &str) -> Result<SqlStore> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" || params.is_some_and(|p| p.contains("mode=memory")) {
        return Err(StoreError::Config(format!(
            "'{url}' does not name a database file; give a path such as sqlite://hotswap-data/metadata.db"
        )));
    }
    let file = std::path::absolute(path)
        .map_err(|e| StoreError::Config(format!("invalid SQLite path '{path}': {e}")))?;
    create_parent_dir(&file)?;
    let connect_url = sqlite_connect_url(&file, params)?;

    let pool = AnyPoolOptions::new()
        .max_connections(SQLITE_MAX_CONNECTIONS)
        // A SQLite connection is a local file handle that cannot go stale:
        // the default ping before every acquire would double the round
        // trips to its worker thread on every request's reads.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA foreign_keys = ON").await?;
                let timeout = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
                conn.execute(timeout.as_str()).await?;
                Ok(())
            })
        })
        .connect(&connect_url)
        .await
        .map_err(StoreError::Database)?;
    // WAL is a property of the file: set once, kept by every later connection.
    let mode: String = sqlx::query("PRAGMA journal_mode = WAL")
        .fetch_one(&pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::Database)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %file.display(), mode, "SQLite database is not in WAL mode");
    }
    migrate(&pool).await?;
    let summary = format!("sqlite {}", file.display());
    Ok(SqlStore::new(pool, Backend::Sqlite, summary))
}

fn create_parent_dir(file: &Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!("cannot create directory {}: {e}", dir.display()))
        }),
        _ => Ok(()),
    }
}

/// The URL sqlx gets: the absolute path, percent-encoded, with `mode=rwc`
/// unless the caller chose a mode.
fn sqlite_connect_url(file: &PathBuf, params: Option<&str>) -> Result<String> {
    let encoded = url::Url::from_file_path(file)
        .map_err(|()| StoreError::Config(format!("invalid SQLite path '{}'", file.display())))?;
    let mut params: Vec<&str> = params
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(format!("sqlite://{}?{}", encoded.path(), params.join("&")))
}

async fn open_postgres(url: &str) -> Result<SqlStore> {
    let parsed = url::Url::parse(url).map_err(|e| {
        StoreError::Config(format!("invalid PostgreSQL URL '{}': {e}", redact(url)))
    })?;
    let pool = AnyPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .connect(url)
        .await
        .map_err(StoreError::Database)?;
    migrate(&pool).await?;
    let summary = format!(
        "postgres {}:{}{}",
        parsed.host_str().unwrap_or("localhost"),
        parsed.port().unwrap_or(5432),
        parsed.path()
    );
    Ok(SqlStore::new(pool, Backend::Postgres, summary))
}

async fn migrate(pool: &AnyPool) -> Result<()> {
    MIGRATOR.run(pool).await.map_err(StoreError::Migration)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_absolute_and_created() {
        let url = sqlite_connect_url(&PathBuf::from("/tmp/a b/x.db"), None).unwrap();
        assert_eq!(url, "sqlite:///tmp/a%20b/x.db?mode=rwc");
        let url = sqlite_connect_url(&PathBuf::from("/tmp/x.db"), Some("mode=ro")).unwrap();
        assert_eq!(url, "sqlite:///tmp/x.db?mode=ro");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("mysql://h/db"), "mysql://h/db");
    }

    #[tokio::test]
    async fn unknown_schemes_are_config_errors() {
        for url in ["mysql://h/db", "nonsense", "sqlite::memory:", "sqlite://"] {
            match open_metadata_store(url).await {
                Err(StoreError::Config(msg)) => assert!(!msg.is_empty()),
                Err(other) => panic!("{url}: expected Config, got {other:?}"),
                Ok(_) => panic!("{url}: expected Config, got a store"),
            }
        }
    }
}
