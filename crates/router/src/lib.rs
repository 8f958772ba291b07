//! The invocation router: the one way into a function.
//!
//! Every caller — the `/v1` invoke API, the asynchronous worker, each
//! trigger (HTTP, schedule) and the deployment controller's warm-ups —
//! asks the router for a [`Route`] (qualifier → version, with an alias's
//! weights drawn per request) and runs it through [`Router::invoke`].
//!
//! What a route needs is cached so that a warm call reads nothing from the
//! store: the function by (owner, name) and by id, each alias, and per
//! version a [`Prepared`] description (the version, its resolved layers and
//! the runner's [`Plan`]: pool key and runtime entry), built once.
//!
//! Architecture Invariant: a cached entry is used only while the control
//! plane's routing epoch is the one it was read under (every write to a
//! function, version, alias, layer, trigger or deployment step on this
//! server bumps it) and for at most [`CACHE_TTL`] (the bound on a change
//! made by another server sharing the database). Tested by
//! `route_cache_follows_changes` below and the alias/deployment
//! integration suites.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotswap_control::{ControlError, ControlPlane, FunctionRef, Principal};
use hotswap_domain::{
    AsyncInvocation, Function, FunctionAlias, FunctionVersion, LayerVersion, Qualifier,
};
use hotswap_runner::InvokeRequest;

pub use hotswap_runner::metrics::escape_label;
pub use hotswap_runner::{
    Invocation, LogLine, LogQuery, LogStore, Metrics, Plan, Runner, RunnerError, VersionMetrics,
};

/// Longest a cached route is used without reading the store again: the
/// most a change made by another server sharing the database takes to
/// reach this one.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept per cache before it starts over.
const CACHE_MAX: usize = 10_000;

/// Why an invocation could not be routed or run.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Resolving the target failed (not found, forbidden, bad qualifier,
    /// store unavailable).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The version's layers cannot be read (one was deleted).
    #[error(transparent)]
    Layer(ControlError),
    /// The runner could not run it (throttled, runtime unavailable, …).
    #[error(transparent)]
    Run(#[from] RunnerError),
}

/// A version ready to run: everything the runner needs, worked out once.
#[derive(Debug)]
pub struct Prepared {
    pub function: Arc<Function>,
    pub version: FunctionVersion,
    pub layers: Vec<LayerVersion>,
    plan: Plan,
}

impl Prepared {
    /// `$LATEST` or the version number that runs.
    pub fn executed_version(&self) -> String {
        qualifier_of(self.version.version)
    }
}

/// The qualifier naming version `number` (0 = `$LATEST`).
pub fn qualifier_of(number: u32) -> String {
    if number == 0 {
        hotswap_domain::LATEST.to_owned()
    } else {
        number.to_string()
    }
}

/// One call's target: the prepared version an invocation runs.
pub type Route = Arc<Prepared>;

/// One invocation's input.
#[derive(Debug, Clone)]
pub struct Call {
    pub payload: Bytes,
    pub content_type: String,
    /// Keep this request id (async invocations keep theirs across
    /// attempts); a fresh one when `None`.
    pub request_id: Option<String>,
    /// The attempt number of an asynchronous invocation.
    pub attempt: Option<u32>,
}

impl Call {
    /// A synchronous call with a fresh request id.
    pub fn new(payload: Bytes, content_type: impl Into<String>) -> Self {
        Self {
            payload,
            content_type: content_type.into(),
            request_id: None,
            attempt: None,
        }
    }
}

struct Cached<T> {
    value: T,
    epoch: u64,
    at: Instant,
}

struct Cache<K, T> {
    entries: Mutex<HashMap<K, Cached<T>>>,
}

impl<K: std::hash::Hash + Eq, T: Clone> Cache<K, T> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get<Q>(&self, key: &Q, epoch: u64) -> Option<T>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|c| c.epoch == epoch && c.at.elapsed() < CACHE_TTL)
            .map(|c| c.value.clone())
    }

    fn put(&self, key: K, value: T, epoch: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, c| c.epoch == epoch && c.at.elapsed() < CACHE_TTL);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(
                key,
                Cached {
                    value,
                    epoch,
                    at: Instant::now(),
                },
            );
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// The router.
pub struct Router {
    control: ControlPlane,
    runner: Arc<Runner>,
    /// (owner, name) → function.
    by_name: Cache<(String, String), Arc<Function>>,
    /// function id → function.
    by_id: Cache<String, Arc<Function>>,
    /// (function id, alias) → alias.
    aliases: Cache<(String, String), Arc<FunctionAlias>>,
    /// (function id, `$LATEST`'s `updated_at` or 0, number) → prepared.
    prepared: Cache<(String, i64, u32), Route>,
}

impl Router {
    pub fn new(control: ControlPlane, runner: Arc<Runner>) -> Self {
        Self {
            control,
            runner,
            by_name: Cache::new(),
            by_id: Cache::new(),
            aliases: Cache::new(),
            prepared: Cache::new(),
        }
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// The runner behind the router (its logs and metrics are read through
    /// it).
    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    pub fn logs(&self) -> &Arc<LogStore> {
        self.runner.logs()
    }

    pub fn metrics(&self) -> &Metrics {
        self.runner.metrics()
    }

    /// The route of an invocation by `caller` of `function` at `qualifier`
    /// (404 for a function the caller cannot see).
    pub async fn resolve(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        qualifier: &str,
    ) -> Result<Route, RouteError> {
        let f = self.function(caller, function).await?;
        self.route(f, qualifier).await
    }

    /// The route of an invocation of the function with this id, with the
    /// platform's rights (the async worker, triggers): its caller was
    /// authorised when the work was accepted.
    pub async fn resolve_by_id(
        &self,
        function_id: &str,
        qualifier: &str,
    ) -> Result<Route, RouteError> {
        let epoch = self.control.routing_epoch();
        let f = match self.by_id.get(function_id, epoch) {
            Some(f) => f,
            None => {
                let f = self
                    .control
                    .function_by_id(function_id)
                    .await?
                    .map(Arc::new)
                    .ok_or_else(|| {
                        ControlError::NotFound(format!("function '{function_id}' not found"))
                    })?;
                self.by_id.put(function_id.to_owned(), f.clone(), epoch);
                f
            }
        };
        self.route(f, qualifier).await
    }

    /// The function `caller` may invoke under `function`.
    pub async fn function(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Arc<Function>, RouteError> {
        let owner = function.owner_for(caller);
        if !caller.owns(owner) {
            return Err(
                ControlError::NotFound(format!("function '{}' not found", function.name)).into(),
            );
        }
        let epoch = self.control.routing_epoch();
        let key = (owner.to_owned(), function.name.clone());
        if let Some(f) = self.by_name.get(&key, epoch) {
            return Ok(f);
        }
        let f = Arc::new(self.control.invocable_function(caller, function).await?);
        self.by_name.put(key, f.clone(), epoch);
        Ok(f)
    }

    /// The route of `f` at `qualifier`: an alias's weights are drawn afresh.
    pub async fn route(&self, f: Arc<Function>, qualifier: &str) -> Result<Route, RouteError> {
        let epoch = self.control.routing_epoch();
        let q: Qualifier =
            qualifier
                .parse()
                .map_err(|e: hotswap_domain::names::InvalidQualifier| {
                    ControlError::validation(e.to_string())
                })?;
        let number = match &q {
            Qualifier::Latest => 0,
            Qualifier::Version(n) => *n,
            Qualifier::Alias(a) => {
                let key = (f.function_id.clone(), a.clone());
                let alias = match self.aliases.get(&key, epoch) {
                    Some(alias) => alias,
                    None => {
                        let alias = self
                            .control
                            .find_alias(&f.function_id, a)
                            .await?
                            .ok_or_else(|| {
                                ControlError::NotFound(format!(
                                    "alias '{a}' of function '{}' not found",
                                    f.name
                                ))
                            })?;
                        let alias = Arc::new(alias);
                        self.aliases.put(key, alias.clone(), epoch);
                        alias
                    }
                };
                alias.route_version(rand::random::<f64>())
            }
        };
        self.prepare(f, number, epoch).await
    }

    async fn prepare(
        &self,
        f: Arc<Function>,
        number: u32,
        epoch: u64,
    ) -> Result<Route, RouteError> {
        // `$LATEST` changes together with its function's `updated_at`.
        let stamp = if number == 0 {
            f.updated_at.timestamp_micros()
        } else {
            0
        };
        let key = (f.function_id.clone(), stamp, number);
        if let Some(p) = self.prepared.get(&key, epoch) {
            return Ok(p);
        }
        let version = self
            .control
            .version_of(&f.function_id, number)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "version {} of function '{}' not found",
                    hotswap_domain::version::version_string(number),
                    f.name
                ))
            })?;
        let layers = self
            .control
            .layers_for(&version)
            .await
            .map_err(RouteError::Layer)?;
        let network = self
            .control
            .network_for(&version)
            .await?
            .map(|spec| network_policy(&f.function_id, number, &spec));
        let plan = self.runner.plan(&f, &version, &layers, network)?;
        let prepared = Arc::new(Prepared {
            function: f,
            version,
            layers,
            plan,
        });
        self.prepared.put(key, prepared.clone(), epoch);
        Ok(prepared)
    }

    /// Runs one invocation of a resolved route to its end.
    pub async fn invoke(&self, route: &Prepared, call: Call) -> Result<Invocation, RouteError> {
        Ok(self
            .runner
            .invoke(InvokeRequest {
                plan: &route.plan,
                function: &route.function,
                version: &route.version,
                layers: &route.layers,
                payload: call.payload,
                content_type: call.content_type,
                request_id: call.request_id,
                attempt: call.attempt,
            })
            .await?)
    }

    /// Queues an asynchronous invocation of `function` at `qualifier`,
    /// after checking the caller may invoke it and the qualifier resolves.
    pub async fn enqueue(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        qualifier: &str,
        payload_base64: String,
        content_type: &str,
    ) -> Result<AsyncInvocation, RouteError> {
        let route = self.resolve(caller, function, qualifier).await?;
        Ok(self
            .control
            .enqueue_for(&route.function, qualifier, payload_base64, content_type)
            .await?)
    }

    /// Starts and initialises `count` instances of a version and keeps
    /// them warm (a deployment's health check).
    pub async fn provision(&self, route: &Prepared, count: u32) -> Result<usize, RouteError> {
        Ok(self
            .runner
            .provision(
                &route.plan,
                &route.function,
                &route.version,
                &route.layers,
                count,
            )
            .await?)
    }

    /// Starts and initialises instances of a version until it has `to`
    /// (the autoscaler's start-ups ahead of calls).
    pub async fn scale_up(&self, route: &Prepared, to: usize) -> Result<usize, RouteError> {
        Ok(self
            .runner
            .scale_up(
                &route.plan,
                &route.function,
                &route.version,
                &route.layers,
                to,
            )
            .await?)
    }

    /// A function was deleted: its cached routes go, its idle instances
    /// are stopped and busy ones are not kept after their call.
    pub fn forget_function(&self, function_id: &str) -> usize {
        self.clear();
        self.runner.forget_function(function_id)
    }

    /// A version was deleted: likewise for its instances.
    pub fn forget_version(&self, function_id: &str, version: u32) -> usize {
        self.clear();
        self.runner.forget_version(function_id, version)
    }

    fn clear(&self) {
        self.by_name.clear();
        self.by_id.clear();
        self.aliases.clear();
        self.prepared.clear();
    }
}

pub mod worker;

#[cfg(test)]
mod tests;

/// The network layer's policy for a version's VPC configuration, keyed by
/// `functionId@version` so that a security group changed later replaces
/// the rules of the instances already running under it.
pub fn network_policy(
    function_id: &str,
    version: u32,
    spec: &hotswap_domain::NetworkSpec,
) -> hotswap_runner::network::Policy {
    hotswap_runner::network::Policy {
        key: format!("{function_id}@{version}"),
        subnets: spec.subnets.iter().map(|s| s.cidr).collect(),
        rules: spec.rules.clone(),
    }
}
