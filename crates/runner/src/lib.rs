//! The runner: executes function versions in sandboxed instances that speak
//! the Lambda Runtime API, keeps them warm per (function, version,
//! configuration), and turns each invocation into an `InvocationResult`.
//!
//! Path of one invocation: [`Runner::invoke`] → the version's pool → a warm
//! instance, or a cold start (code from the cache, a fresh Runtime API
//! endpoint, the sandbox) → `next` hands the event over → `response` /
//! `error` / timeout / exit → the result, with logs captured per request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotswap_domain::value::billed_ms;
use hotswap_domain::{Function, FunctionVersion, InvocationResult};
use hotswap_sandbox::{LaunchSpec, RuntimeEndpoint, Sandbox, SandboxError};
use hotswap_store::BlobStore;
use tokio::sync::Semaphore;

mod code;
mod instance;
pub mod logs;
pub mod metrics;
mod runtime_api;
pub mod runtimes;
pub mod scaling;
pub mod window;

pub use hotswap_sandbox::network;
use instance::{Instance, InstanceSetup, RunResult};
pub use logs::{LogLimits, LogLine, LogQuery, LogStore, LogUsage};
pub use metrics::{Metrics, VersionMetrics};
use runtime_api::Outcome;
pub use runtimes::RuntimeCatalog;
pub use scaling::{InstanceInfo, InstanceState, VersionLoad};

/// Errors that stop an invocation before the function could answer.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    RuntimeUnavailable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Code(String),
    #[error("{0}")]
    HealthCheck(String),
    #[error("sandbox error")]
    Sandbox(#[source] SandboxError),
    #[error("{0}")]
    Internal(String),
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Scratch space: code cache, bootstraps.
    pub work_dir: PathBuf,
    /// Idle instances older than this are stopped.
    pub idle_timeout: Duration,
    /// How long an invocation waits for a free instance when the version is
    /// at `MaxInstances`, before 429.
    pub queue_timeout: Duration,
    /// Most processes per instance.
    pub max_pids: u32,
    /// Size of each instance's `/tmp`, MB.
    pub tmp_mb: u32,
    /// Byte caps of log capture and retention.
    pub logs: LogLimits,
    /// Most Runtime API connections one instance may hold open at once.
    pub runtime_api_max_connections: usize,
    /// File descriptors: no instance is started while the server holds
    /// more than `limit - reserve` of them, so that the API and running
    /// instances keep what they need. `None`: not checked.
    pub fd_budget: Option<FdBudget>,
    /// This runner's node id (its instances' `nodeId`).
    pub node_id: String,
}

/// The server's file-descriptor limit and the part of it kept free of new
/// instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    pub limit: u64,
    pub reserve: u64,
}

impl FdBudget {
    /// `reserve` of `limit`, but never more than half of it.
    pub fn new(limit: u64, reserve: u64) -> Self {
        Self {
            limit,
            reserve: reserve.min(limit / 2),
        }
    }

    /// Whether a new instance, which may hold `per_instance` descriptors,
    /// fits while `open` are in use.
    pub fn admits(&self, open: u64, per_instance: u64) -> bool {
        open + per_instance <= self.limit - self.reserve
    }
}

/// Descriptors one instance may hold on the server: its Runtime API
/// listener and connections, its stdout/stderr pipes, its process and
/// cgroup handles.
fn fds_per_instance(max_connections: usize) -> u64 {
    max_connections as u64 + 8
}

/// Descriptors this process has open.
fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

impl RunnerConfig {
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            work_dir,
            idle_timeout: Duration::from_secs(300),
            queue_timeout: Duration::from_secs(1),
            max_pids: 256,
            tmp_mb: 512,
            logs: LogLimits::default(),
            runtime_api_max_connections: 8,
            fd_budget: None,
            node_id: "local".into(),
        }
    }
}

/// What the runner needs to run a version, worked out once per version
/// (the router caches it): the key of the version's instance pool and how
/// to start an instance of its runtime. Nothing here is computed again on a
/// warm call.
#[derive(Debug, Clone)]
pub struct Plan {
    key: String,
    entry: hotswap_sandbox::Entry,
    network: Option<Arc<network::Policy>>,
}

impl Plan {
    /// The pool the version's instances live in.
    pub fn pool_key(&self) -> &str {
        &self.key
    }

    /// The version's VPC policy (`None`: default egress).
    pub fn network(&self) -> Option<&network::Policy> {
        self.network.as_deref()
    }
}

/// One invocation to run.
pub struct InvokeRequest<'a> {
    /// The version's [`Plan`] ([`Runner::plan`]).
    pub plan: &'a Plan,
    pub function: &'a Function,
    pub version: &'a FunctionVersion,
    /// The version's layers, resolved, in order (`ControlPlane::layers_for`).
    pub layers: &'a [hotswap_domain::LayerVersion],
    pub payload: Bytes,
    pub content_type: String,
    /// The request id to run under; a fresh one when `None`. An
    /// asynchronous invocation passes its own, so that the 202, every
    /// attempt (the function's `context.aws_request_id`), its log lines and
    /// its stored result share one id, as on Lambda.
    pub request_id: Option<String>,
    /// Which attempt of an asynchronous invocation this is (1, 2, …); it
    /// is written on the invocation's `START` line.
    pub attempt: Option<u32>,
}

/// What an invocation produced.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub result: InvocationResult,
    /// The payload as returned by the function (or its error JSON).
    pub payload: Bytes,
    /// `errorType` when the function failed.
    pub function_error: Option<String>,
}

struct Pool {
    /// The function's id: a deleted function's pools are never found by a
    /// function created again under its name.
    function_id: String,
    version: u32,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Instance>>,
    /// Provisioned instances the idle reaper leaves alone (a deployment's).
    min_warm: AtomicUsize,
    /// Instances the autoscaler keeps initialised.
    keep: AtomicUsize,
    /// How long an instance past those kept may sit idle (the version's
    /// `scaleDownCooldown`, set by the autoscaler; never longer than the
    /// runner's idle timeout, its default).
    idle_after: Mutex<Option<Duration>>,
    /// Instances out of `idle`: starting, or running a call.
    out: scaling::OutInstances,
    /// Set when its function or version is deleted: an instance that
    /// finishes its call is killed instead of going back to `idle`.
    retired: AtomicBool,
}

/// The runner.
pub struct Runner {
    config: RunnerConfig,
    sandbox: Arc<dyn Sandbox>,
    code: code::CodeCache,
    catalog: RuntimeCatalog,
    runtime_dir: PathBuf,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// Ids of deleted functions: a call that resolved one just before its
    /// delete still runs, but its instance is never kept.
    forgotten: Mutex<std::collections::HashSet<String>>,
    logs: Arc<LogStore>,
    metrics: Metrics,
    java_ready: tokio::sync::OnceCell<Result<(), String>>,
    /// Instances being started, whose descriptors are not open yet.
    starting: AtomicUsize,
}

/// An instance start counted in [`Runner::starting`] until dropped.
struct Starting<'a>(&'a AtomicUsize);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Runner {
    /// Prepares the work directory and the built-in bootstraps, and starts
    /// the idle reaper.
    pub fn start(
        config: RunnerConfig,
        sandbox: Arc<dyn Sandbox>,
        blobs: BlobStore,
    ) -> Result<Arc<Runner>, RunnerError> {
        let runtime_dir = config.work_dir.join("runtime");
        let mut catalog = RuntimeCatalog::detect();
        catalog.install_bootstraps(&runtime_dir).map_err(|e| {
            RunnerError::Internal(format!(
                "cannot install bootstraps in {}: {e}",
                runtime_dir.display()
            ))
        })?;
        let code = code::CodeCache::new(config.work_dir.join("code"), blobs);
        let runner = Arc::new(Runner {
            logs: Arc::new(LogStore::new(config.logs)),
            catalog,
            config,
            sandbox,
            code,
            runtime_dir,
            pools: Mutex::default(),
            forgotten: Mutex::default(),
            metrics: Metrics::default(),
            java_ready: tokio::sync::OnceCell::new(),
            starting: AtomicUsize::new(0),
        });
        if !runner.sandbox.isolated() {
            tracing::warn!(sandbox = %runner.sandbox.summary(), "function instances are NOT isolated");
        }
        let weak = Arc::downgrade(&runner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(r) => r.reap_idle(),
                    None => break,
                }
            }
        });
        Ok(runner)
    }

    pub fn sandbox_summary(&self) -> String {
        self.sandbox.summary()
    }

    pub fn isolated(&self) -> bool {
        self.sandbox.isolated()
    }

    pub fn catalog(&self) -> &RuntimeCatalog {
        &self.catalog
    }

    pub fn logs(&self) -> &Arc<LogStore> {
        &self.logs
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Warm instances across all pools.
    pub fn idle_instances(&self) -> usize {
        let pools: Vec<Arc<Pool>> = self
            .pools
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        pools
            .iter()
            .map(|p| p.idle.lock().map(|i| i.len()).unwrap_or(0))
            .sum()
    }

    fn pool(&self, key: &str, f: &Function, v: &FunctionVersion) -> Arc<Pool> {
        let forgotten = self
            .forgotten
            .lock()
            .is_ok_and(|ids| ids.contains(&f.function_id));
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Pool {
                    function_id: f.function_id.clone(),
                    version: v.version,
                    permits: Arc::new(Semaphore::new(
                        f.scaling_config.max_instances.max(1) as usize
                    )),
                    idle: Mutex::default(),
                    min_warm: AtomicUsize::new(0),
                    keep: AtomicUsize::new(0),
                    idle_after: Mutex::new(None),
                    out: Mutex::default(),
                    retired: AtomicBool::new(forgotten),
                })
            })
            .clone()
    }

    /// Provisions `count` warm instances of the version (at most its
    /// `MaxInstances`), each started and initialised (its runtime has asked
    /// for an event) before this returns, and keeps that many warm until
    /// [`Runner::release`]. Instances already idle count. An init failure is
    /// the version's failed health check.
    pub async fn provision(
        &self,
        plan: &Plan,
        f: &Function,
        v: &FunctionVersion,
        layers: &[hotswap_domain::LayerVersion],
        count: u32,
    ) -> Result<usize, RunnerError> {
        let pool = self.pool(&plan.key, f, v);
        let max = f.scaling_config.max_instances.max(1) as usize;
        let want = (count.max(1) as usize).min(max);
        pool.min_warm.store(want, Ordering::Relaxed);
        loop {
            // Instances serving an invocation hold a permit; never go past
            // MaxInstances in all.
            let idle = pool.idle_alive();
            let busy = max.saturating_sub(pool.permits.available_permits());
            if idle >= want || idle + busy >= max {
                break;
            }
            let instance = match self.start_ready(&pool, plan, f, v, layers).await? {
                Ok(i) => i,
                Err(e) => {
                    pool.min_warm.store(0, Ordering::Relaxed);
                    return Err(RunnerError::HealthCheck(format!(
                        "version {} of '{}' failed its health check: {e}",
                        v.version_string(),
                        f.name
                    )));
                }
            };
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(instance);
            }
        }
        tracing::info!(function = %f.name, version = %v.version_string(), instances = want, "provisioned");
        Ok(want)
    }

    /// Stops keeping the version's provisioned instances warm; the idle
    /// reaper then treats them like any other.
    pub fn release(&self, function_id: &str, version: u32) {
        if let Ok(pools) = self.pools.lock() {
            for p in pools.values() {
                if p.function_id == function_id && p.version == version {
                    p.min_warm.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// The function with this id was deleted: its idle instances are killed
    /// now, its busy ones when their call ends (each call is bounded by the
    /// function's timeout), and its logs, metrics, windows and pins are
    /// forgotten. Returns how many idle instances were killed.
    pub fn forget_function(&self, function_id: &str) -> usize {
        if let Ok(mut ids) = self.forgotten.lock() {
            ids.insert(function_id.to_owned());
        }
        let killed = self.retire(|p| p.function_id == function_id);
        self.logs.forget(function_id);
        self.metrics.forget(function_id);
        tracing::info!(function = %function_id, killed, "function forgotten");
        killed
    }

    /// A version of the function with this id was deleted: its instances
    /// stop as with [`Runner::forget_function`].
    pub fn forget_version(&self, function_id: &str, version: u32) -> usize {
        let killed = self.retire(|p| p.function_id == function_id && p.version == version);
        self.metrics.unwatch(function_id, version);
        killed
    }

    /// Removes the matching pools, kills their idle instances and marks them
    /// so that busy instances are killed when their call ends.
    fn retire(&self, matches: impl Fn(&Pool) -> bool) -> usize {
        let retired: Vec<Arc<Pool>> = match self.pools.lock() {
            Ok(mut pools) => {
                let keys: Vec<String> = pools
                    .iter()
                    .filter(|(_, p)| matches(p))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| pools.remove(k)).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut killed = 0;
        for pool in retired {
            pool.retired.store(true, Ordering::SeqCst);
            pool.min_warm.store(0, Ordering::Relaxed);
            let idle: Vec<Instance> = pool
                .idle
                .lock()
                .map(|mut i| i.drain(..).collect())
                .unwrap_or_default();
            for instance in idle {
                instance.kill();
                killed += 1;
            }
        }
        killed
    }

    fn reap_idle(&self) {
        let now = Instant::now();
        let pools: Vec<(String, Arc<Pool>)> = self
            .pools
            .lock()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (key, pool) in pools {
            let min_warm = pool.kept();
            let idle_after = pool
                .idle_after
                .lock()
                .ok()
                .and_then(|d| *d)
                .map_or(self.config.idle_timeout, |d| {
                    d.min(self.config.idle_timeout)
                });
            let stale: Vec<Instance> = match pool.idle.lock() {
                Ok(mut idle) => {
                    let (mut old, mut keep): (Vec<Instance>, Vec<Instance>) =
                        idle.drain(..).partition(|i| {
                            now.duration_since(i.last_used) >= idle_after || !i.is_alive()
                        });
                    // Provisioned instances stay, the most recently used first.
                    old.sort_by_key(|i| std::cmp::Reverse(i.last_used));
                    let mut i = 0;
                    while keep.len() < min_warm && i < old.len() {
                        if old[i].is_alive() {
                            keep.push(old.remove(i));
                        } else {
                            i += 1;
                        }
                    }
                    *idle = keep;
                    old
                }
                Err(_) => Vec::new(),
            };
            for i in stale {
                tracing::debug!(pool = %key, instance = %i.id, "idle instance reaped");
            }
        }
    }

    /// The plan of a version: its pool key, runtime entry and network
    /// policy, or why its runtime cannot run here. A policy whose rules
    /// changed is applied to the instances already running under it.
    pub fn plan(
        &self,
        f: &Function,
        v: &FunctionVersion,
        layers: &[hotswap_domain::LayerVersion],
        network: Option<network::Policy>,
    ) -> Result<Plan, RunnerError> {
        let mut key = pool_key(f, v, layers);
        if let Some(n) = &network {
            // Another subnet means other addresses: new instances.
            for s in &n.subnets {
                key.push_str(&format!("\u{1f}subnet:{s}"));
            }
            self.sandbox.refresh_network(n);
        }
        Ok(Plan {
            entry: self.catalog.entry(v.runtime, &v.handler)?,
            key,
            network: network.map(Arc::new),
        })
    }

    /// Runs one invocation to its end.
    pub async fn invoke(&self, req: InvokeRequest<'_>) -> Result<Invocation, RunnerError> {
        let (f, v) = (req.function, req.version);
        let plan = req.plan;
        let pool = self.pool(&plan.key, f, v);
        let permit = match tokio::time::timeout(self.config.queue_timeout, pool.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(RunnerError::TooManyRequests(format!(
                    "function '{}' version {} is at its limit of {} concurrent instances (ScalingConfig.MaxInstances)",
                    f.name,
                    v.version_string(),
                    f.scaling_config.max_instances
                )))
            }
        };
        let request_id = req
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let warm = loop {
            let next = pool.idle.lock().ok().and_then(|mut i| i.pop());
            match next {
                Some(i) if i.is_alive() => break Some(i),
                Some(_dead) => continue,
                None => break None,
            }
        };
        let cold = warm.is_none();
        let began = Instant::now();
        let instance = match warm {
            Some(i) => i,
            None => match self.start_instance(plan, f, v, req.layers).await {
                Ok(i) => i,
                Err(e) => {
                    // A version that cannot start is failing: its deployment
                    // must see it.
                    self.metrics.record(metrics::Sample {
                        function: &f.function_id,
                        function_name: &f.name,
                        owner_id: &f.owner_id,
                        version_label: &version_label(v),
                        version_number: v.version,
                        duration: began.elapsed(),
                        success: false,
                        cold_start: Some(began.elapsed()),
                        at: chrono::Utc::now(),
                    });
                    return Err(e);
                }
            },
        };
        let mut instance = instance;
        pool.mark_out(
            &instance.id,
            scaling::InstanceState::Busy,
            instance.started_at,
        );
        let _out = scaling::OutGuard {
            pool: &pool,
            id: instance.id.clone(),
        };
        let timeout = Duration::from_secs(u64::from(v.timeout));
        let label = version_label(v);
        let stream_name = instance.log_stream.clone();
        let platform = |message: String| {
            self.logs.push(LogLine {
                timestamp: chrono::Utc::now(),
                function_id: f.function_id.clone(),
                function_name: f.name.clone(),
                version: label.clone(),
                log_stream_name: stream_name.clone(),
                request_id: Some(request_id.clone()),
                stream: "platform",
                message,
                truncated: false,
            })
        };
        platform(match req.attempt {
            Some(n) => format!("START RequestId: {request_id} Version: {label} Attempt: {n}"),
            None => format!("START RequestId: {request_id} Version: {label}"),
        });
        let outcome = instance
            .run(&request_id, req.payload, &req.content_type, timeout)
            .await;
        instance.drain_logs().await;
        let memory_mb = instance
            .peak_memory_bytes()
            .map(|b| b.div_ceil(1024 * 1024) as u32)
            .unwrap_or(0);
        let log_stream = instance.log_stream.clone();
        let mut result = InvocationResult {
            request_id: request_id.clone(),
            was_cold_start: cold,
            memory_used_mb: memory_mb,
            log_stream_name: Some(log_stream),
            status_code: 200,
            ..InvocationResult::default()
        };
        result
            .headers
            .insert("Content-Type".into(), "application/json".into());
        let mut execution = Duration::ZERO;
        // How the platform ended it, for the REPORT line.
        let mut report_status: Option<(&'static str, Option<String>)> = None;
        let (payload, function_error, reuse) = match outcome {
            RunResult::Answered(Outcome::Response { body, elapsed }) => {
                result.success = true;
                set_times(&mut result, elapsed);
                execution = elapsed;
                (body, None, true)
            }
            RunResult::Answered(Outcome::FunctionError {
                error_type,
                body,
                elapsed,
            }) => {
                set_times(&mut result, elapsed);
                execution = elapsed;
                (body, Some(error_type), true)
            }
            RunResult::Answered(Outcome::InitError { error_type, body }) => {
                report_status = Some(("error", Some(error_type.clone())));
                (body, Some(error_type), false)
            }
            RunResult::TimedOut => {
                report_status = Some(("timeout", None));
                set_times(&mut result, timeout);
                execution = timeout;
                let msg = format!("Task timed out after {} seconds", v.timeout);
                (
                    error_body(&request_id, "Sandbox.Timedout", &msg),
                    Some("Sandbox.Timedout".to_owned()),
                    false,
                )
            }
            RunResult::Exited { status, oom } => {
                let (t, msg) = if oom {
                    (
                        "Runtime.OutOfMemory",
                        format!(
                            "Runtime exited: out of memory (MemorySize {} MB)",
                            v.memory_size
                        ),
                    )
                } else {
                    (
                        "Runtime.ExitError",
                        format!("Runtime exited with error: {status}"),
                    )
                };
                report_status = Some(("error", Some(t.to_owned())));
                (error_body(&request_id, t, &msg), Some(t.to_owned()), false)
            }
        };
        if let Some(t) = &function_error {
            result.error_type = Some(t.clone());
            result.error_message = serde_json::from_slice::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| {
                    v.get("errorMessage")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .or_else(|| Some(String::from_utf8_lossy(&payload).into_owned()));
        }
        result.body = Some(String::from_utf8_lossy(&payload).into_owned());
        let init = cold.then(|| {
            instance
                .init_duration()
                .unwrap_or_else(|| began.elapsed().saturating_sub(execution))
        });
        platform(format!("END RequestId: {request_id}"));
        platform(report_line(&Report {
            request_id: &request_id,
            duration: execution,
            billed_ms: result.billed_duration_ms,
            memory_size_mb: v.memory_size,
            max_memory_used_mb: memory_mb,
            init,
            status: report_status,
        }));
        self.metrics.record(metrics::Sample {
            function: &f.function_id,
            function_name: &f.name,
            owner_id: &f.owner_id,
            version_label: &version_label(v),
            version_number: v.version,
            duration: execution,
            success: result.success,
            cold_start: cold.then(|| began.elapsed().saturating_sub(execution)),
            at: chrono::Utc::now(),
        });
        // A pool retired meanwhile (its function or version was deleted)
        // takes no instance back.
        if reuse && instance.is_alive() && !pool.retired.load(Ordering::SeqCst) {
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(instance);
            }
        } else {
            instance.kill();
        }
        drop(permit);
        Ok(Invocation {
            result,
            payload,
            function_error,
        })
    }

    /// Refuses a new instance (429) when the descriptors in use, plus those
    /// of the instances being started and of this one, would reach into the
    /// reserve.
    fn admit_instance(&self) -> Result<Starting<'_>, RunnerError> {
        let ahead = self.starting.fetch_add(1, Ordering::Relaxed) as u64;
        let starting = Starting(&self.starting);
        let Some(budget) = self.config.fd_budget else {
            return Ok(starting);
        };
        let per_instance = fds_per_instance(self.config.runtime_api_max_connections);
        match open_fds() {
            Some(open) if !budget.admits(open + ahead * per_instance, per_instance) => {
                tracing::warn!(
                    open,
                    starting = ahead,
                    limit = budget.limit,
                    reserve = budget.reserve,
                    "no instance started: the server is short of file descriptors"
                );
                Err(RunnerError::TooManyRequests(format!(
                    "the runner cannot start another instance now: {open} of its {} file descriptors are in use and {} are kept in reserve",
                    budget.limit, budget.reserve
                )))
            }
            _ => Ok(starting),
        }
    }

    async fn start_instance(
        &self,
        plan: &Plan,
        f: &Function,
        v: &FunctionVersion,
        layers: &[hotswap_domain::LayerVersion],
    ) -> Result<Instance, RunnerError> {
        let entry = plan.entry.clone();
        if v.runtime.family() == hotswap_domain::runtime::RuntimeFamily::Java {
            let (catalog, dir) = (self.catalog.clone(), self.runtime_dir.clone());
            let ready = self
                .java_ready
                .get_or_init(|| async move {
                    tokio::task::spawn_blocking(move || catalog.compile_java_bootstrap(&dir))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                })
                .await;
            if let Err(e) = ready {
                return Err(RunnerError::RuntimeUnavailable(format!(
                    "runtime {} is not available on this runner: {e}",
                    v.runtime
                )));
            }
        }
        // Held until the instance has opened its descriptors.
        let _starting = self.admit_instance()?;
        let code_dir = self.code.ensure(v).await?;
        let entry = go_fallback_to_bootstrap(v, entry, &code_dir);
        let opt_dir = self.code.ensure_opt(layers).await?;
        let instance_id = uuid::Uuid::new_v4().simple().to_string();
        let version_label = if v.version == 0 {
            hotswap_domain::LATEST.to_owned()
        } else {
            v.version.to_string()
        };
        let log_stream = format!(
            "{}/[{}]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            version_label,
            &instance_id[..16]
        );
        let env = instance_env(f, v, &version_label, &log_stream);
        let spec = LaunchSpec {
            instance_id,
            entry,
            code_dir,
            runtime_dir: self.runtime_dir.clone(),
            opt_dir,
            env,
            endpoint: RuntimeEndpoint::Tcp(String::new()),
            memory_mb: v.memory_size,
            cpus: f64::from(v.memory_size) / hotswap_domain::function::MB_PER_VCPU,
            max_pids: self.config.max_pids,
            tmp_mb: self.config.tmp_mb,
            network: plan.network.clone(),
        };
        let setup = InstanceSetup {
            function_id: f.function_id.clone(),
            function_name: f.name.clone(),
            version_label: version_label.clone(),
            log_stream,
            function_arn: format!(
                "arn:aws:lambda:local:000000000000:function:{}:{}",
                f.name, version_label
            ),
            max_connections: self.config.runtime_api_max_connections,
        };
        let started = Instant::now();
        let sockets = self.config.work_dir.join("s");
        let instance = Instance::start(
            self.sandbox.as_ref(),
            spec,
            setup,
            self.logs.clone(),
            &sockets,
        )
        .await?;
        tracing::debug!(function = %f.name, version = %version_label, instance = %instance.id,
            spawn_us = started.elapsed().as_micros() as u64, "cold start");
        Ok(instance)
    }
}

/// A Go function built the `provided.al2` way (an executable named
/// `bootstrap`) runs even when its handler names something else.
fn go_fallback_to_bootstrap(
    v: &FunctionVersion,
    entry: hotswap_sandbox::Entry,
    code_dir: &std::path::Path,
) -> hotswap_sandbox::Entry {
    match entry {
        hotswap_sandbox::Entry::TaskExecutable(name)
            if v.runtime.family() == hotswap_domain::runtime::RuntimeFamily::Go
                && !code_dir.join(&name).is_file()
                && code_dir.join("bootstrap").is_file() =>
        {
            hotswap_sandbox::Entry::TaskExecutable("bootstrap".into())
        }
        other => other,
    }
}

fn version_label(v: &FunctionVersion) -> String {
    if v.version == 0 {
        hotswap_domain::LATEST.to_owned()
    } else {
        v.version.to_string()
    }
}

/// The figures of an invocation's `REPORT` line.
struct Report<'a> {
    request_id: &'a str,
    duration: Duration,
    billed_ms: u32,
    memory_size_mb: u32,
    max_memory_used_mb: u32,
    /// Cold starts only: from the instance's start until its runtime asked
    /// for the first event.
    init: Option<Duration>,
    /// `timeout`, or `error` with its type, when the platform ended it
    /// (a function's own error has none, as on Lambda).
    status: Option<(&'static str, Option<String>)>,
}

/// Lambda's `REPORT` line: tab-separated `Name: value` fields.
fn report_line(r: &Report<'_>) -> String {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {}\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
        r.request_id,
        ms(r.duration),
        r.billed_ms,
        r.memory_size_mb,
        r.max_memory_used_mb
    );
    if let Some(init) = r.init {
        line.push_str(&format!("\tInit Duration: {}", ms(init)));
    }
    if let Some((status, error_type)) = &r.status {
        line.push_str(&format!("\tStatus: {status}"));
        if let Some(t) = error_type {
            line.push_str(&format!("\tError Type: {t}"));
        }
    }
    line
}

fn set_times(result: &mut InvocationResult, elapsed: Duration) {
    result.execution_time_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
    result.billed_duration_ms = billed_ms(elapsed);
}

fn error_body(request_id: &str, error_type: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({ "errorMessage": format!("RequestId: {request_id} Error: {message}"), "errorType": error_type })
            .to_string(),
    )
}

/// Instances are shared only by invocations of the same function (by its
/// id: never another owner's function of the same name, nor a function
/// re-created under a deleted one's name) and version, with the same code
/// and configuration.
fn pool_key(f: &Function, v: &FunctionVersion, layers: &[hotswap_domain::LayerVersion]) -> String {
    let mut env: Vec<String> = v
        .environment
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    env.extend(layers.iter().map(|l| format!("layer:{}", l.code_sha256)));
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        f.function_id,
        v.version,
        v.code_sha256,
        v.runtime,
        v.handler,
        v.memory_size,
        v.timeout,
        f.scaling_config.max_instances,
        env.join("\u{1e}")
    )
}

/// Variables the platform sets; a function's own variable of the same name
/// is ignored.
const RESERVED: [&str; 15] = [
    "_HANDLER",
    "AWS_LAMBDA_RUNTIME_API",
    hotswap_sandbox::RUNTIME_API_SOCKET_VAR,
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_EXECUTION_ENV",
    "_LAMBDA_SERVER_PORT",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "TZ",
];

fn instance_env(
    f: &Function,
    v: &FunctionVersion,
    version_label: &str,
    log_stream: &str,
) -> Vec<(String, String)> {
    let exec_env = match v.runtime.family() {
        hotswap_domain::runtime::RuntimeFamily::Python => "AWS_Lambda_python3",
        hotswap_domain::runtime::RuntimeFamily::Node => "AWS_Lambda_nodejs",
        hotswap_domain::runtime::RuntimeFamily::Java => "AWS_Lambda_java",
        hotswap_domain::runtime::RuntimeFamily::Ruby => "AWS_Lambda_ruby",
        hotswap_domain::runtime::RuntimeFamily::Go => "AWS_Lambda_go1.x",
        _ => "AWS_Lambda_provided",
    };
    let mut env: Vec<(String, String)> = vec![
        ("_HANDLER".into(), v.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), f.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_VERSION".into(),
            version_label.to_owned(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            v.memory_size.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", f.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), log_stream.to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_REGION".into(), "local".into()),
        ("AWS_DEFAULT_REGION".into(), "local".into()),
        ("AWS_EXECUTION_ENV".into(), exec_env.into()),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
    ];
    if v.runtime.family() == hotswap_domain::runtime::RuntimeFamily::Java {
        // The JVM cannot see the cgroup limit inside the sandbox: size its
        // heap to three quarters of MemorySize so that it does not outgrow it.
        env.push((
            "JAVA_TOOL_OPTIONS".into(),
            format!("-Xmx{}m -Xss512k", u64::from(v.memory_size) * 3 / 4),
        ));
    }
    for (k, val) in &v.environment {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = val.clone(),
            None => env.push((k.clone(), val.clone())),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotswap_domain::Runtime;

    #[test]
    fn environment_has_the_lambda_variables_and_the_functions_own() {
        let mut f = Function::new("fn", Runtime::Python311, "app.handler", "o");
        f.environment.insert("STAGE".into(), "prod".into());
        f.environment
            .insert("_HANDLER".into(), "evil.handler".into());
        f.environment.insert("PATH".into(), "/custom".into());
        let v = FunctionVersion::snapshot(&f, 3, "ab", 1, "o", None);
        let env: HashMap<String, String> = instance_env(&f, &v, "3", "2026/01/01/[3]abc")
            .into_iter()
            .collect();
        assert_eq!(
            env["_HANDLER"], "app.handler",
            "reserved variables cannot be overridden"
        );
        assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "3");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["STAGE"], "prod");
        assert_eq!(env["PATH"], "/custom");
        assert!(
            !env.contains_key("_LAMBDA_SERVER_PORT")
                && !env.contains_key("AWS_LAMBDA_MAX_CONCURRENCY")
        );
    }

    #[test]
    fn report_lines_have_lambdas_fields() {
        let mut r = Report {
            request_id: "r-1",
            duration: Duration::from_micros(12_345),
            billed_ms: 13,
            memory_size_mb: 128,
            max_memory_used_mb: 40,
            init: Some(Duration::from_micros(150_120)),
            status: None,
        };
        assert_eq!(
            report_line(&r),
            "REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 150.12 ms"
        );
        r.init = None;
        r.status = Some(("timeout", None));
        assert!(report_line(&r).ends_with("\tMax Memory Used: 40 MB\tStatus: timeout"));
        r.status = Some(("error", Some("Runtime.ExitError".into())));
        assert!(report_line(&r).ends_with("\tStatus: error\tError Type: Runtime.ExitError"));
    }

    #[test]
    fn the_fd_reserve_stops_new_instances() {
        let b = FdBudget::new(20_000, 2_000);
        assert!(b.admits(100, fds_per_instance(8)));
        assert!(b.admits(17_984, 16));
        assert!(!b.admits(17_985, 16));
        assert_eq!(FdBudget::new(100, 1_000).reserve, 50, "at most half");
        assert!(open_fds().is_some_and(|n| n > 0));
    }

    #[test]
    fn pool_keys_separate_versions_and_configurations() {
        let f = Function::new("fn", Runtime::Python311, "app.handler", "o");
        let v1 = FunctionVersion::snapshot(&f, 1, "ab", 1, "o", None);
        let v2 = FunctionVersion::snapshot(&f, 2, "ab", 1, "o", None);
        assert_ne!(pool_key(&f, &v1, &[]), pool_key(&f, &v2, &[]));
        let mut latest = FunctionVersion::snapshot(&f, 0, "ab", 1, "o", None);
        let before = pool_key(&f, &latest, &[]);
        latest.memory_size = 512;
        assert_ne!(before, pool_key(&f, &latest, &[]));
        assert_eq!(pool_key(&f, &v1, &[]), pool_key(&f, &v1.clone(), &[]));
        // The same name, code and configuration, but another function.
        let again = Function::new("fn", Runtime::Python311, "app.handler", "o");
        let v1_again = FunctionVersion::snapshot(&again, 1, "ab", 1, "o", None);
        assert_ne!(pool_key(&f, &v1, &[]), pool_key(&again, &v1_again, &[]));
    }
}
