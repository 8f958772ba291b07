//! `hotswap server`: opens the stores, bootstraps the admin token, serves the
//! API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use hotswap_api::{ApiConfig, AppState};
use hotswap_control::{CodeLimits, ControlPlane};
use hotswap_store::BlobStore;

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "HOTSWAP_LISTEN")]
    listen: SocketAddr,
    /// Directory for the embedded defaults (SQLite file and code blobs).
    #[arg(long, default_value = "./hotswap-data", env = "HOTSWAP_DATA_DIR")]
    data_dir: PathBuf,
    /// Metadata store: `postgres://…`, or `sqlite://FILE` (default: DATA_DIR/hotswap.db).
    #[arg(long, env = "HOTSWAP_DATABASE_URL")]
    database_url: Option<String>,
    /// Blob store for code: `file:///DIR` or `s3://BUCKET?endpoint=…` (default: DATA_DIR/blobs).
    #[arg(long, env = "HOTSWAP_BLOB_URL")]
    blob_url: Option<String>,
    /// Largest request body, in bytes (413 beyond it).
    #[arg(long, default_value_t = 70 * 1024 * 1024, env = "HOTSWAP_MAX_BODY_BYTES")]
    max_body_bytes: usize,
    /// Largest code zip, in bytes.
    #[arg(long, default_value_t = 50 * 1024 * 1024, env = "HOTSWAP_MAX_CODE_BYTES")]
    max_code_bytes: u64,
    /// Admin API token to install at start (at least 16 characters).
    #[arg(long, env = "HOTSWAP_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOTSWAP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .context("cannot resolve the data directory")?;
    let db_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hotswap.db").display()));
    let store = hotswap_store::open_metadata_store(&db_url)
        .await
        .with_context(|| format!("cannot open the metadata store {}", redact(&db_url)))?;
    let blobs =
        match &args.blob_url {
            Some(url) => BlobStore::from_url(url)
                .with_context(|| format!("cannot open the blob store {url}"))?,
            None => BlobStore::local(&data_dir.join("blobs"))
                .context("cannot open the local blob store")?,
        };
    tracing::info!(metadata = %store.summary(), blobs = %blobs.summary(), "storage ready");

    let limits = CodeLimits {
        max_zip_bytes: args.max_code_bytes,
        ..CodeLimits::default()
    };
    let control = ControlPlane::new(store, blobs, limits);
    if let Some(secret) = control
        .bootstrap_admin(args.admin_token.as_deref())
        .await
        .context("cannot install the admin token")?
    {
        println!("admin token (shown once, stored only as a hash): {secret}");
    }

    let app = hotswap_api::router(
        AppState::new(control),
        &ApiConfig {
            max_body_bytes: args.max_body_bytes,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("hotswap listening on http://{addr}");
    tracing::info!(%addr, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
