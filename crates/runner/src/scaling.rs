//! What the autoscaler reads from and sets on a runner: each version's load
//! ([`VersionLoad`]), how many instances it keeps and how soon the others
//! go ([`Runner::set_scale`]), starting instances ahead of demand
//! ([`Runner::scale_up`]), and every instance with its state
//! ([`InstanceInfo`], for `GET /v1/functions/{name}/instances`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotswap_domain::{Function, FunctionVersion};

use crate::{instance, Plan, Pool, Runner, RunnerError};

/// The state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Started, its runtime not yet asking for an event.
    Initializing,
    /// Initialised and waiting for a call.
    Idle,
    /// Running a call.
    Busy,
}

/// One instance of a function, as `GET /v1/functions/{name}/instances`
/// shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    pub instance_id: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub state: InstanceState,
    /// Kept initialised by `minInstances`, keep-warm, the autoscaler or a
    /// deployment's provisioned concurrency (never reaped while it is).
    pub provisioned: bool,
    /// Calls it is running.
    pub in_flight: u32,
    pub started_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The runner node it runs on.
    pub node_id: String,
}

/// An instance out of its pool's idle list: starting, or running a call.
#[derive(Debug, Clone)]
pub(crate) struct OutInstance {
    pub state: InstanceState,
    pub started_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Instances out of a pool's idle list, by id.
pub(crate) type OutInstances = Mutex<HashMap<String, OutInstance>>;

/// Removes an instance from its pool's out-list when dropped (on every
/// path out of a call).
pub(crate) struct OutGuard<'a> {
    pub pool: &'a Pool,
    pub id: String,
}

impl Drop for OutGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut out) = self.pool.out.lock() {
            out.remove(&self.id);
        }
    }
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Initializing => "Initializing",
            InstanceState::Idle => "Idle",
            InstanceState::Busy => "Busy",
        }
    }
}

impl Pool {
    pub(crate) fn mark_out(&self, id: &str, state: InstanceState, started_at: DateTime<Utc>) {
        if let Ok(mut out) = self.out.lock() {
            let last_used_at = (state == InstanceState::Busy).then(Utc::now);
            out.insert(
                id.to_owned(),
                OutInstance {
                    state,
                    started_at,
                    last_used_at,
                },
            );
        }
    }

    /// Instances kept warm: the autoscaler's and a deployment's, the larger.
    pub(crate) fn kept(&self) -> usize {
        self.min_warm
            .load(Ordering::Relaxed)
            .max(self.keep.load(Ordering::Relaxed))
    }

    /// Idle instances whose process is alive.
    pub(crate) fn idle_alive(&self) -> usize {
        self.idle
            .lock()
            .map(|i| i.iter().filter(|i| i.is_alive()).count())
            .unwrap_or(0)
    }

    fn count(&self, state: InstanceState) -> usize {
        self.out
            .lock()
            .map(|o| o.values().filter(|i| i.state == state).count())
            .unwrap_or(0)
    }
}

/// A version's instances and load on this runner, summed over its pools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionLoad {
    pub function_id: String,
    pub version: u32,
    /// Calls running now.
    pub in_flight: usize,
    /// Initialised instances waiting for a call.
    pub idle: usize,
    /// Instances starting.
    pub starting: usize,
}

impl VersionLoad {
    /// Instances running, waiting or starting.
    pub fn instances(&self) -> usize {
        self.in_flight + self.idle + self.starting
    }
}

impl Runner {
    fn pools_now(&self) -> Vec<std::sync::Arc<Pool>> {
        self.pools
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every version with instances or calls on this runner.
    pub fn loads(&self) -> Vec<VersionLoad> {
        let mut by: HashMap<(String, u32), VersionLoad> = HashMap::new();
        for p in self.pools_now() {
            let e = by
                .entry((p.function_id.clone(), p.version))
                .or_insert_with(|| VersionLoad {
                    function_id: p.function_id.clone(),
                    version: p.version,
                    ..VersionLoad::default()
                });
            e.in_flight += p.count(InstanceState::Busy);
            e.starting += p.count(InstanceState::Initializing);
            e.idle += p.idle_alive();
        }
        by.into_values().collect()
    }

    /// Keeps `keep` instances of the version initialised (with a
    /// deployment's provisioned ones, the larger number), and lets the
    /// others go once idle for `idle_after` (the version's
    /// `scaleDownCooldown`).
    pub fn set_scale(&self, function_id: &str, version: u32, keep: usize, idle_after: Duration) {
        for p in self.pools_now() {
            if p.function_id == function_id && p.version == version {
                p.keep.store(keep, Ordering::Relaxed);
                if let Ok(mut d) = p.idle_after.lock() {
                    *d = Some(idle_after);
                }
            }
        }
    }

    /// Starts instances of the version until it has `to` (running, idle or
    /// starting; at most its `MaxInstances`), each initialised before it
    /// joins the idle list. Returns how many were started; a start or an
    /// init that fails ends it with the error.
    pub async fn scale_up(
        &self,
        plan: &Plan,
        f: &Function,
        v: &FunctionVersion,
        layers: &[hotswap_domain::LayerVersion],
        to: usize,
    ) -> Result<usize, RunnerError> {
        let pool = self.pool(&plan.key, f, v);
        let max = f.scaling_config.max_instances.max(1) as usize;
        let to = to.min(max);
        let mut started = 0;
        loop {
            let out = pool.out.lock().map(|o| o.len()).unwrap_or(0);
            let busy = max.saturating_sub(pool.permits.available_permits());
            if pool.idle_alive() + out.max(busy) >= to || pool.retired.load(Ordering::SeqCst) {
                return Ok(started);
            }
            let instance = match self.start_ready(&pool, plan, f, v, layers).await? {
                Ok(i) => i,
                Err(e) => {
                    return Err(RunnerError::HealthCheck(format!(
                        "an instance of version {} of '{}' failed to initialise: {e}",
                        v.version_string(),
                        f.name
                    )))
                }
            };
            if pool.retired.load(Ordering::SeqCst) {
                instance.kill();
                return Ok(started);
            }
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(instance);
            }
            started += 1;
        }
    }

    /// Starts one instance of the pool's version and waits for its init,
    /// listed as `Initializing` meanwhile. `Err` when it cannot start;
    /// `Ok(Err(reason))` when its init failed (the instance is killed).
    pub(crate) async fn start_ready(
        &self,
        pool: &Pool,
        plan: &Plan,
        f: &Function,
        v: &FunctionVersion,
        layers: &[hotswap_domain::LayerVersion],
    ) -> Result<Result<instance::Instance, String>, RunnerError> {
        let instance = self.start_instance(plan, f, v, layers).await?;
        pool.mark_out(
            &instance.id,
            InstanceState::Initializing,
            instance.started_at,
        );
        let listed = OutGuard {
            pool,
            id: instance.id.clone(),
        };
        let ready = instance.wait_ready(instance::INIT_TIMEOUT).await;
        drop(listed);
        Ok(match ready {
            Ok(()) => Ok(instance),
            Err(e) => {
                instance.kill();
                Err(e)
            }
        })
    }

    /// Every instance of the function on this runner, newest first.
    pub fn instances(&self, function_id: &str) -> Vec<InstanceInfo> {
        let now_instant = std::time::Instant::now();
        let now = Utc::now();
        let mut out = Vec::new();
        for p in self.pools_now() {
            if p.function_id != function_id {
                continue;
            }
            // `$LATEST` or the version number, as qualifiers name them.
            let version = match p.version {
                0 => hotswap_domain::names::LATEST.to_owned(),
                n => n.to_string(),
            };
            let kept = p.kept();
            if let Ok(idle) = p.idle.lock() {
                let mut live: Vec<_> = idle.iter().filter(|i| i.is_alive()).collect();
                // The most recently used are the ones kept.
                live.sort_by_key(|i| std::cmp::Reverse(i.last_used));
                for (n, i) in live.into_iter().enumerate() {
                    let ago = now_instant.saturating_duration_since(i.last_used);
                    out.push(InstanceInfo {
                        instance_id: i.id.clone(),
                        version: version.clone(),
                        state: InstanceState::Idle,
                        provisioned: n < kept,
                        in_flight: 0,
                        started_at: i.started_at,
                        last_used_at: i
                            .used
                            .then(|| now - chrono::Duration::from_std(ago).unwrap_or_default()),
                        node_id: self.config.node_id.clone(),
                    });
                }
            }
            if let Ok(o) = p.out.lock() {
                for (id, i) in o.iter() {
                    out.push(InstanceInfo {
                        instance_id: id.clone(),
                        version: version.clone(),
                        state: i.state,
                        provisioned: false,
                        in_flight: u32::from(i.state == InstanceState::Busy),
                        started_at: i.started_at,
                        last_used_at: i.last_used_at,
                        node_id: self.config.node_id.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.started_at));
        out
    }
}
