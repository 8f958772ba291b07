//! `hotswap server`: opens the stores, bootstraps the admin token, serves the
//! API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use hotswap_api::{ApiConfig, AppState, PayloadLimits};
use hotswap_control::Principal;
use hotswap_control::{CodeLimits, ControlPlane};
use hotswap_domain::RunnerNode;
use hotswap_router::Router;
use hotswap_runner::{Runner, RunnerConfig};
use hotswap_sandbox::network::{Network, NetworkConfig};
use hotswap_sandbox::{BwrapSandbox, ProcessSandbox, Sandbox};
use hotswap_store::BlobStore;
use hotswap_tasks::{Driver, Flow};
use hotswap_triggers::gateway::Gateway;
use hotswap_triggers::mappings::{Brokers, EventSourceMappings};
use hotswap_triggers::scheduler::{Scheduler, SchedulerConfig};
use hotswap_triggers::stats::TriggerStats;
use std::sync::Arc;
use std::time::Duration;

fn parse_duration(s: &str) -> Result<Duration, String> {
    hotswap_domain::duration::parse_duration(s)
}

/// A size in bytes: `262144`, `256KiB`, `6MiB` (also `K`/`KB`, `M`/`MB`,
/// taken as powers of 1024).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 262144, 256KiB or 6MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("'{s}': unknown unit (use bytes, KiB or MiB)")),
    };
    n.checked_mul(scale)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("'{s}' is out of range"))
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
    /// Largest event of a synchronous invocation (413 `RequestEntityTooLarge`
    /// beyond it): bytes, or with a unit (`6MiB`, `512KiB`).
    #[arg(long, default_value = "6MiB", env = "HOTSWAP_MAX_SYNC_PAYLOAD", value_parser = parse_bytes)]
    max_sync_payload: usize,
    /// Largest event of an asynchronous invocation, refused with 413 before
    /// anything is stored.
    #[arg(long, default_value = "256KiB", env = "HOTSWAP_MAX_ASYNC_PAYLOAD", value_parser = parse_bytes)]
    max_async_payload: usize,
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
    /// Where isolated instances without a VPC configuration get their
    /// addresses (a private IPv4 CIDR no subnet overlaps), or `none`: no
    /// network for instances at all (loopback only).
    #[arg(
        long,
        default_value = "10.213.0.0/16",
        env = "HOTSWAP_INSTANCE_NETWORK"
    )]
    instance_network: String,
    /// Network namespaces kept prepared per subnet in use, so a cold start
    /// only takes one.
    #[arg(long, default_value_t = 4, env = "HOTSWAP_NETWORK_POOL", value_parser = clap::value_parser!(u64).range(1..=256))]
    network_pool: u64,
    /// The hosts file the instances' resolver answers from before asking
    /// the upstream resolvers.
    #[arg(
        long,
        default_value = "/etc/hosts",
        env = "HOTSWAP_INSTANCE_HOSTS_FILE"
    )]
    instance_hosts_file: PathBuf,
    /// Upstream resolvers (`IP` or `IP:PORT`, repeatable) for the
    /// instances' resolver. Default: the nameservers of /etc/resolv.conf.
    #[arg(long = "instance-dns-upstream", env = "HOTSWAP_INSTANCE_DNS_UPSTREAMS", value_delimiter = ',', value_parser = parse_upstream)]
    instance_dns_upstreams: Vec<std::net::SocketAddr>,
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
    // Resource bounds: what one function can take from the server.
    /// Longest log line kept, in bytes; the rest of a longer line is
    /// discarded and the line is marked `truncated`.
    #[arg(long, default_value_t = 64 * 1024, env = "HOTSWAP_LOG_LINE_MAX_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    log_line_max_bytes: u64,
    /// Log bytes kept in memory per function; its oldest lines are dropped
    /// past it.
    #[arg(long, default_value_t = 8 * 1024 * 1024, env = "HOTSWAP_LOG_RETENTION_PER_FUNCTION_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    log_retention_per_function_bytes: u64,
    /// Log bytes kept in memory for all functions together; past it the
    /// function holding the most loses its oldest lines first.
    #[arg(long, default_value_t = 128 * 1024 * 1024, env = "HOTSWAP_LOG_RETENTION_TOTAL_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    log_retention_total_bytes: u64,
    /// Most connections one instance may hold open to its Runtime API;
    /// further ones are closed at once (runtimes use one).
    #[arg(long, default_value_t = 8, env = "HOTSWAP_RUNTIME_API_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(2..=1024))]
    runtime_api_max_connections: u64,
    /// File descriptors kept free of function instances: no instance starts
    /// (429) while fewer than this are left under the server's limit
    /// (`RLIMIT_NOFILE`, raised at start to its hard limit). At most half
    /// the limit.
    #[arg(long, default_value_t = 1024, env = "HOTSWAP_FD_RESERVE")]
    fd_reserve: u64,
    /// Admin API token to install at start (at least 16 characters). Once
    /// revoked, a secret is refused here: the server will not start with it.
    #[arg(long, env = "HOTSWAP_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Serve `GET /metrics` without a token (it names every tenant's
    /// functions: only for a trusted network). Otherwise it needs an admin
    /// or `metrics` token.
    #[arg(long, env = "HOTSWAP_METRICS_PUBLIC")]
    metrics_public: bool,
    /// The base URL clients reach this server at; HTTP trigger URLs
    /// (`GET /v1/triggers/{id}` → `url`) start with it. Default: the
    /// listen address.
    #[arg(long, env = "HOTSWAP_PUBLIC_URL")]
    public_url: Option<String>,
    /// How late a scheduled tick may still fire (a short stall or restart
    /// loses nothing); ticks missed for longer are skipped, not replayed.
    #[arg(long, default_value = "60s", env = "HOTSWAP_SCHEDULE_MAX_LATENESS", value_parser = parse_duration)]
    schedule_max_lateness: Duration,
    /// RabbitMQ for Queue triggers with `source: rabbitmq`
    /// (`amqp://user:password@host:5672/vhost`). Without it such triggers
    /// are refused.
    #[arg(long, env = "HOTSWAP_RABBITMQ_URL", hide_env_values = true)]
    rabbitmq_url: Option<String>,
    /// NATS with JetStream for Queue and Stream triggers with
    /// `source: nats` (`nats://host:4222`).
    #[arg(long, env = "HOTSWAP_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// Redis for Queue and Stream triggers with `source: redis`
    /// (`redis://host:6379`).
    #[arg(long, env = "HOTSWAP_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Kafka for Stream triggers with `source: kafka`: its bootstrap
    /// servers (`host:9092,host2:9092`). Needs a build with the `kafka`
    /// feature (`cargo build --release --features kafka`).
    #[arg(long, env = "HOTSWAP_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// How long a stream shard's lease lasts unless its server renews it
    /// (every third of it): a server that dies has its shards taken over
    /// within this time.
    #[arg(long, default_value = "10s", env = "HOTSWAP_STREAM_LEASE_TTL", value_parser = parse_duration)]
    stream_lease_ttl: Duration,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Log lines (one per `/fn` request at `info`) are written by a thread
    // of their own, so a request never waits on stderr; never dropped (the
    // writer blocks when 128k lines are pending), flushed at exit.
    let stderr_is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOTSWAP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(writer)
        // Colour codes only for a person at a terminal, never into log files.
        .with_ansi(stderr_is_tty)
        .init();

    if args.kafka_brokers.is_some() && !cfg!(feature = "kafka") {
        anyhow::bail!(
            "--kafka-brokers: this hotswap was built without Kafka; build it with `cargo build --release --features kafka`"
        );
    }
    // The listener first: a server that cannot listen (port taken, bad
    // address) must leave nothing behind — no data directory, no database,
    // no admin token printed for a server that never ran.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;

    let fd_limit = raise_fd_limit();
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
    runner_config.logs = hotswap_runner::LogLimits {
        line_max_bytes: usize::try_from(args.log_line_max_bytes).unwrap_or(usize::MAX),
        per_function_bytes: usize::try_from(args.log_retention_per_function_bytes)
            .unwrap_or(usize::MAX),
        total_bytes: usize::try_from(args.log_retention_total_bytes).unwrap_or(usize::MAX),
    };
    runner_config.runtime_api_max_connections = args.runtime_api_max_connections as usize;
    runner_config.fd_budget =
        fd_limit.map(|limit| hotswap_runner::FdBudget::new(limit, args.fd_reserve));
    let (sandbox, network) = choose_sandbox(
        &args,
        &runner_config.work_dir,
        &data_dir,
        addr_of(&listener)?,
    )
    .await?;
    let runner = Runner::start(runner_config, sandbox, blobs).context("cannot start the runner")?;

    let router = Arc::new(hotswap_router::Router::new(control.clone(), runner.clone()));
    let tasks = Arc::new(Driver::new());
    let addr = listener.local_addr()?;
    let trigger_stats = Arc::new(TriggerStats::default());
    let gateway = Arc::new(Gateway::new(router.clone(), trigger_stats.clone()));
    let mut state = AppState::new(router.clone());
    state.tasks = Some(tasks.clone());
    state.gateway = Some(gateway.clone());
    state.trigger_stats = trigger_stats.clone();
    state.public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let app = hotswap_api::router(
        state,
        &ApiConfig {
            max_body_bytes: args.max_body_bytes,
            payload: PayloadLimits {
                sync_bytes: args.max_sync_payload,
                async_bytes: args.max_async_payload,
            },
            metrics_public: args.metrics_public,
        },
    );
    register_local_runner(&control, &runner, &addr).await?;
    start_tasks(&tasks, &control, &router, &args);
    if let Some(n) = &network {
        start_network_task(&tasks, n, &router);
    }
    start_trigger_tasks(&tasks, &control, &router, &gateway, &trigger_stats, &args);
    let brokers = Brokers {
        rabbitmq_url: args.rabbitmq_url.clone(),
        nats_url: args.nats_url.clone(),
        redis_url: args.redis_url.clone(),
        kafka_brokers: args.kafka_brokers.clone(),
    };
    control.serve_sources(hotswap_control::ServedSources {
        queues: brokers.queue_sources(),
        streams: brokers.stream_sources(),
    });
    let consumers = Arc::new(
        EventSourceMappings::new(router.clone(), trigger_stats.clone(), brokers)
            .with_stream_lease_ttl(args.stream_lease_ttl),
    );
    let c = consumers.clone();
    tasks.every(
        "event-source-mappings",
        Duration::from_millis(500),
        move || {
            let c = c.clone();
            async move {
                c.poll().await?;
                Ok(Flow::Continue)
            }
        },
    );
    println!("hotswap listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server error");
    tasks.shutdown(Duration::from_secs(5)).await;
    consumers.shutdown(Duration::from_secs(5)).await;
    flush_counters(&control, &runner).await;
    if let Some(n) = network {
        n.shutdown().await;
    }
    served
}

fn parse_upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("'{s}' is not an IP address or IP:PORT"))
}

fn addr_of(listener: &tokio::net::TcpListener) -> anyhow::Result<std::net::SocketAddr> {
    listener.local_addr().context("listener address")
}

/// The event sources' tasks: the HTTP route table's refresh, the
/// scheduler, and the trigger run counters' flush.
fn start_trigger_tasks(
    tasks: &Driver,
    control: &ControlPlane,
    router: &Arc<Router>,
    gateway: &Arc<Gateway>,
    stats: &Arc<TriggerStats>,
    args: &ServerArgs,
) {
    let g = gateway.clone();
    tasks.every("http-routes", Duration::from_secs(1), move || {
        let g = g.clone();
        async move {
            g.refresh().await.map_err(|e| e.to_string())?;
            Ok(Flow::Continue)
        }
    });
    let scheduler = Arc::new(Scheduler::new(
        router.clone(),
        stats.clone(),
        SchedulerConfig {
            max_lateness: args.schedule_max_lateness,
        },
    ));
    tasks.every("scheduler", Duration::from_millis(250), move || {
        let scheduler = scheduler.clone();
        async move {
            scheduler.poll().await?;
            Ok(Flow::Continue)
        }
    });
    let (c, st) = (control.clone(), stats.clone());
    tasks.every("trigger-counters", Duration::from_secs(1), move || {
        let (control, stats) = (c.clone(), st.clone());
        async move {
            flush_trigger_counters(&control, &stats).await?;
            Ok(Flow::Continue)
        }
    });
}

/// Adds the triggers' pending runs to their stored counters.
async fn flush_trigger_counters(
    control: &ControlPlane,
    stats: &TriggerStats,
) -> Result<(), String> {
    let mut failed = Vec::new();
    let mut error = None;
    for (id, runs, failures, at) in stats.take_pending() {
        if let Err(e) = control
            .store()
            .record_trigger_runs(&id, runs, failures, at)
            .await
        {
            error.get_or_insert_with(|| format!("trigger counters not written: {e}"));
            failed.push((id, runs, failures, at));
        }
    }
    stats.restore_pending(failed);
    error.map_or(Ok(()), Err)
}

/// Every background loop of the server, as a named task of the driver
/// (`GET /v1/status` shows each one's last run and error).
/// Security groups changed elsewhere (another server, or no invocation
/// since) reach the instances already running within this period plus the
/// router's cache bound (1 s): every installed policy's route is resolved
/// again, which re-applies rules that changed.
fn start_network_task(tasks: &Driver, network: &Arc<Network>, router: &Arc<Router>) {
    let (n, r) = (Arc::downgrade(network), Arc::downgrade(router));
    tasks.every("network-policies", Duration::from_secs(2), move || {
        let (network, router) = (n.upgrade(), r.upgrade());
        async move {
            let (Some(network), Some(router)) = (network, router) else {
                return Ok(Flow::Stop);
            };
            for key in network.policy_keys() {
                let Some((function_id, version)) = key.rsplit_once('@') else {
                    continue;
                };
                let qualifier = if version == "0" {
                    hotswap_domain::LATEST.to_owned()
                } else {
                    version.to_owned()
                };
                // A function deleted meanwhile has no route: nothing to do.
                let _ = router.resolve_by_id(function_id, &qualifier).await;
            }
            Ok(Flow::Continue)
        }
    });
}

fn start_tasks(tasks: &Driver, control: &ControlPlane, router: &Arc<Router>, args: &ServerArgs) {
    let weak = Arc::downgrade(router);
    // The local runner's heartbeat: health and metrics, like a remote one.
    let (c, r) = (control.clone(), weak.clone());
    tasks.every(
        "runner-heartbeat",
        args.runner_heartbeat.max(Duration::from_millis(100)),
        move || {
            let (control, router) = (c.clone(), r.upgrade());
            async move {
                let Some(router) = router else {
                    return Ok(Flow::Stop);
                };
                heartbeat(&control, router.runner())
                    .await
                    .map(|()| Flow::Continue)
            }
        },
    );
    // Invocation counters (`TotalInvocations`, `LastInvokedAt`,
    // `InvocationCount`) are written once a second, off the invocation path.
    let (c, r) = (control.clone(), weak.clone());
    tasks.every("counter-flush", Duration::from_secs(1), move || {
        let (control, router) = (c.clone(), r.upgrade());
        async move {
            let Some(router) = router else {
                return Ok(Flow::Stop);
            };
            flush_counters(&control, router.runner()).await;
            Ok(Flow::Continue)
        }
    });
    // Instances per version: minInstances, keep-warm, the cooldowns.
    let autoscalers = Arc::new(hotswap_autoscaler::Autoscalers::new(weak.clone()));
    tasks.every("autoscaler", Duration::from_secs(1), move || {
        let a = autoscalers.clone();
        async move {
            Ok(if a.tick().await? {
                Flow::Continue
            } else {
                Flow::Stop
            })
        }
    });
    // Sliding-window metrics of versions without recent traffic are dropped.
    let r = weak.clone();
    tasks.every("window-prune", Duration::from_secs(60), move || {
        let router = r.upgrade();
        async move {
            let Some(router) = router else {
                return Ok(Flow::Stop);
            };
            router.metrics().prune_windows(chrono::Utc::now());
            Ok(Flow::Continue)
        }
    });
    let worker = Arc::new(hotswap_router::worker::Worker::new(
        router,
        hotswap_router::worker::WorkerConfig {
            poll: Duration::from_millis(100),
            batch: 16,
            max_in_flight: args.async_max_in_flight,
            lease_grace: args.async_lease_grace,
            queue_timeout: args.queue_timeout,
        },
    ));
    tasks.every("async-worker", Duration::from_millis(100), move || {
        let worker = worker.clone();
        async move {
            Ok(if worker.poll().await? {
                Flow::Continue
            } else {
                Flow::Stop
            })
        }
    });
    let controller = Arc::new(hotswap_deployments::Controller::new(
        control.clone(),
        Arc::new(crate::fleet::RunnerFleet(weak)),
        hotswap_deployments::ControllerConfig {
            tick: args.deployment_tick,
            node_id: "local".into(),
        },
    ));
    tasks.every("deployments", args.deployment_tick, move || {
        let controller = controller.clone();
        async move {
            controller.tick().await;
            Ok(Flow::Continue)
        }
    });
}

/// The isolation backend, and the instances' network where it is enforced.
async fn choose_sandbox(
    args: &ServerArgs,
    work_dir: &std::path::Path,
    data_dir: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<(Arc<dyn Sandbox>, Option<Arc<Network>>)> {
    let mode = args.sandbox.as_str();
    if mode == "unisolated" {
        tracing::warn!("sandbox unisolated: network policy is NOT enforced; instances share the host's network");
        return Ok((Arc::new(ProcessSandbox), None));
    }
    let exe = std::env::current_exe().context("cannot find this binary for the sandbox init")?;
    let bwrap = match BwrapSandbox::detect(exe, work_dir) {
        Ok(b) => b,
        Err(why) if mode == "isolated" => anyhow::bail!("--sandbox isolated: {why}"),
        Err(why) => {
            tracing::warn!(reason = %why, "cannot isolate function instances; running them UNISOLATED as plain processes; network policy is NOT enforced");
            return Ok((Arc::new(ProcessSandbox), None));
        }
    };
    if !bwrap.has_cgroups() {
        tracing::warn!(
            "cgroups are not writable: instances are isolated but have NO memory/cpu/pids limits"
        );
    }
    if args.instance_network == "none" {
        tracing::info!(
            "--instance-network none: isolated instances have no network (loopback only)"
        );
        return Ok((
            Arc::new(bwrap.without_network("--instance-network none")),
            None,
        ));
    }
    let default_subnet: hotswap_sandbox::network::Cidr = args
        .instance_network
        .parse()
        .map_err(|e| anyhow::anyhow!("--instance-network: {e}"))?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let config = NetworkConfig {
        state_dir: work_dir.join("net"),
        lock_dir: PathBuf::from("/run/hotswap-net"),
        id: hotswap_sandbox::network::id_for(data_dir),
        default_subnet,
        protected_ports: vec![listen.port()],
        pool_size: args.network_pool as usize,
        dns_upstreams: if args.instance_dns_upstreams.is_empty() {
            hotswap_sandbox::network::dns::upstreams_from_resolv_conf(&resolv)
        } else {
            args.instance_dns_upstreams.clone()
        },
        hosts_file: Some(args.instance_hosts_file.clone()),
    };
    match Network::start(config).await {
        Ok(n) => {
            let n = Arc::new(n);
            tracing::info!(table = n.table(), "{}", n.summary());
            Ok((Arc::new(bwrap.with_network(n.clone())), Some(n)))
        }
        Err(e) if mode == "isolated" => {
            anyhow::bail!("--sandbox isolated: instance networking cannot be set up: {e}")
        }
        Err(e) => {
            tracing::error!(error = %e, "INSTANCE NETWORKING CANNOT BE SET UP: isolated instances get NO network (loopback only); fix it or pass --instance-network none to silence this");
            Ok((Arc::new(bwrap.without_network(&e.to_string())), None))
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
    Ok(())
}

/// One heartbeat of the local runner.
async fn heartbeat(control: &ControlPlane, r: &Runner) -> Result<(), String> {
    let system = Principal {
        owner_id: "system".into(),
        is_admin: true,
    };
    let health = hotswap_domain::RunnerHealth {
        active_containers: r.idle_instances() as u32,
        ..Default::default()
    };
    let beat = hotswap_control::Heartbeat {
        health: Some(health),
        metrics: Some(r.metrics().runner_metrics()),
        ..Default::default()
    };
    control
        .heartbeat(&system, "local", beat)
        .await
        .map(|_| ())
        .map_err(|e| format!("local runner heartbeat failed: {e}"))
}

/// Adds the runner's pending invocation counts to the stored counters.
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

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (function
/// instances and their Runtime API connections hold descriptors of the
/// server) and returns the limit now in force, if it could be read.
fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file-descriptor limit");
            return None;
        }
    };
    // An unlimited hard limit still stops at the kernel's `nr_open`.
    let target = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(hard, |n| hard.min(n));
    if soft >= target {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!(from = soft, to = target, "file-descriptor limit raised");
            Some(target)
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the file-descriptor limit");
            Some(soft)
        }
    }
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

    #[test]
    fn sizes_take_units() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("262144"), Ok(262_144));
        assert_eq!(parse_bytes("256KiB"), Ok(262_144));
        assert_eq!(parse_bytes("6MiB"), Ok(6 * 1024 * 1024));
        assert_eq!(parse_bytes("6 mb"), Ok(6 * 1024 * 1024));
        for bad in ["", "0", "6GiB", "-1", "MiB", "99999999999999999999"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
