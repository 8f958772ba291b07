//! `hotswap server`: opens the stores, bootstraps the admin token, serves the
//! API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use hotswap_api::{ApiConfig, AppState};
use hotswap_control::Principal;
use hotswap_control::{CodeLimits, ControlPlane};
use hotswap_domain::RunnerNode;
use hotswap_runner::{Runner, RunnerConfig};
use hotswap_sandbox::{BwrapSandbox, ProcessSandbox, Sandbox};
use hotswap_store::BlobStore;
use std::sync::Arc;
use std::time::Duration;

fn parse_duration(s: &str) -> Result<Duration, String> {
    hotswap_domain::duration::parse_duration(s)
}

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
    /// Stop warm instances idle for longer than this (e.g. `5m`, `30s`).
    #[arg(long, default_value = "5m", env = "HOTSWAP_INSTANCE_IDLE_TIMEOUT", value_parser = parse_duration)]
    instance_idle_timeout: Duration,
    /// How long an invocation may wait for a free instance at MaxInstances before 429.
    #[arg(long, default_value = "1s", env = "HOTSWAP_QUEUE_TIMEOUT", value_parser = parse_duration)]
    queue_timeout: Duration,
    /// Isolation of function instances: `auto` (namespaces + cgroups when
    /// possible, else unisolated with a warning), `isolated` (fail if not
    /// possible) or `unisolated`.
    #[arg(long, default_value = "auto", env = "HOTSWAP_SANDBOX", value_parser = ["auto", "isolated", "unisolated"])]
    sandbox: String,
    /// How often the server's own runner reports its health and metrics.
    #[arg(long, default_value = "30s", env = "HOTSWAP_RUNNER_HEARTBEAT", value_parser = parse_duration)]
    runner_heartbeat: Duration,
    /// Extra lease on a claimed asynchronous invocation beyond the function's
    /// timeout; after it, the invocation is taken to be abandoned and runs again.
    #[arg(long, default_value = "30s", env = "HOTSWAP_ASYNC_LEASE_GRACE", value_parser = parse_duration)]
    async_lease_grace: Duration,
    /// How often the deployment controller looks at each active deployment.
    #[arg(long, default_value = "500ms", env = "HOTSWAP_DEPLOYMENT_TICK", value_parser = parse_duration)]
    deployment_tick: Duration,
    /// Most asynchronous attempts this server runs at once.
    #[arg(long, default_value_t = 64, env = "HOTSWAP_ASYNC_MAX_IN_FLIGHT")]
    async_max_in_flight: usize,
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
    let control = ControlPlane::new(store, blobs.clone(), limits);
    if let Some(secret) = control
        .bootstrap_admin(args.admin_token.as_deref())
        .await
        .context("cannot install the admin token")?
    {
        println!("admin token (shown once, stored only as a hash): {secret}");
    }

    let mut runner_config = RunnerConfig::new(data_dir.join("runner"));
    runner_config.idle_timeout = args.instance_idle_timeout;
    runner_config.queue_timeout = args.queue_timeout;
    let sandbox = choose_sandbox(&args.sandbox, &runner_config.work_dir)?;
    let runner = Runner::start(runner_config, sandbox, blobs).context("cannot start the runner")?;

    let app = hotswap_api::router(
        AppState::new(control.clone(), runner.clone()),
        &ApiConfig {
            max_body_bytes: args.max_body_bytes,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    register_local_runner(&control, &runner, &addr, args.runner_heartbeat).await?;
    spawn_counter_flusher(control.clone(), &runner);
    crate::worker::spawn(
        control.clone(),
        &runner,
        crate::worker::WorkerConfig {
            poll: Duration::from_millis(100),
            batch: 16,
            max_in_flight: args.async_max_in_flight,
            lease_grace: args.async_lease_grace,
            queue_timeout: args.queue_timeout,
        },
    );
    hotswap_deployments::Controller::new(
        control.clone(),
        std::sync::Arc::new(crate::fleet::RunnerFleet(std::sync::Arc::downgrade(
            &runner,
        ))),
        hotswap_deployments::ControllerConfig {
            tick: args.deployment_tick,
            node_id: "local".into(),
        },
    )
    .spawn();
    spawn_window_pruner(&runner);
    println!("hotswap listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error");
    flush_counters(&control, &runner).await;
    served
}

fn choose_sandbox(mode: &str, work_dir: &std::path::Path) -> anyhow::Result<Arc<dyn Sandbox>> {
    if mode == "unisolated" {
        return Ok(Arc::new(ProcessSandbox));
    }
    let exe = std::env::current_exe().context("cannot find this binary for the sandbox init")?;
    match BwrapSandbox::detect(exe, work_dir) {
        Ok(b) => {
            if !b.has_cgroups() {
                tracing::warn!("cgroups are not writable: instances are isolated but have NO memory/cpu/pids limits");
            }
            Ok(Arc::new(b))
        }
        Err(why) if mode == "isolated" => anyhow::bail!("--sandbox isolated: {why}"),
        Err(why) => {
            tracing::warn!(reason = %why, "cannot isolate function instances; running them UNISOLATED as plain processes");
            Ok(Arc::new(ProcessSandbox))
        }
    }
}

/// The all-in-one server's runner registers itself like a remote one would,
/// so that `GET /v1/runners` shows its runtimes and isolation, and keeps its
/// heartbeat going.
async fn register_local_runner(
    control: &ControlPlane,
    runner: &Arc<Runner>,
    listen: &std::net::SocketAddr,
    every: Duration,
) -> anyhow::Result<()> {
    let system = Principal {
        owner_id: "system".into(),
        is_admin: true,
    };
    let mut node = RunnerNode::new("local", listen.ip().to_string());
    node.port = listen.port();
    node.runtimes = runner.catalog().available();
    node.sandbox = Some(runner.sandbox_summary());
    if let Some(mb) = total_memory_mb() {
        node.resources.total_memory_mb = mb;
    }
    node.resources.total_cpu_cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    control
        .register_runner(&system, node)
        .await
        .context("cannot register the local runner")?;
    let (control, runner) = (control.clone(), Arc::downgrade(runner));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(r) = runner.upgrade() else { break };
            let health = hotswap_domain::RunnerHealth {
                active_containers: r.idle_instances() as u32,
                ..Default::default()
            };
            let beat = hotswap_control::Heartbeat {
                health: Some(health),
                metrics: Some(r.metrics().runner_metrics()),
                ..Default::default()
            };
            if let Err(e) = control.heartbeat(&system, "local", beat).await {
                tracing::warn!(error = %e, "local runner heartbeat failed");
            }
        }
    });
    Ok(())
}

/// Adds the runner's invocation counts to the stored counters
/// (`TotalInvocations`, `LastInvokedAt`, `InvocationCount`) once a second,
/// off the invocation path.
fn spawn_counter_flusher(control: ControlPlane, runner: &Arc<Runner>) {
    let runner = Arc::downgrade(runner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(r) = runner.upgrade() else { break };
            flush_counters(&control, &r).await;
        }
    });
}

pub(crate) async fn flush_counters(control: &ControlPlane, runner: &Runner) {
    let pending = runner.metrics().take_pending();
    let mut failed = Vec::new();
    for (function, version, count, at) in pending {
        if let Err(e) = control
            .store()
            .record_invocations(&function, version, count, at)
            .await
        {
            tracing::warn!(function_id = %function, version, error = %e, "invocation counters not written; retrying");
            failed.push((function, version, count, at));
        }
    }
    runner.metrics().restore_pending(failed);
}

/// `MemTotal` from `/proc/meminfo`, in MB.
fn total_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
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

/// Forgets the sliding-window metrics of versions without recent traffic.
fn spawn_window_pruner(runner: &std::sync::Arc<Runner>) {
    let weak = std::sync::Arc::downgrade(runner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(r) => r.metrics().prune_windows(chrono::Utc::now()),
                None => break,
            }
        }
    });
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
