//! HotSwap's autoscaler: for every function version with instances, calls,
//! `minInstances` or keep-warm, how many instances the runner keeps
//! initialised and how many it starts ahead of calls.
//!
//! [`policy`] is the arithmetic (pure); [`Autoscalers`] is the task that
//! feeds it each version's load from the runner every tick (the server runs
//! it every second as the task `autoscaler`) and applies its decisions:
//! [`Runner::set_scale`](hotswap_runner::Runner::set_scale) (what the idle
//! reaper keeps, and how long the rest may idle: `scaleDownCooldown`) and
//! [`Runner::scale_up`](hotswap_runner::Runner::scale_up) (instances
//! started and initialised in the background).
//!
//! Which versions `minInstances` and keep-warm apply to: each version an
//! alias routes traffic to (a weight above 0, or its primary version), or
//! `$LATEST` of a function without aliases. They are read from the store
//! for the functions that ask for any (`minInstances` > 0 or keep-warm),
//! again when the routing epoch changes and at least every 10 s; the same
//! listing gives every function's `ScalingConfig`, so a tick reads nothing
//! from the store unless it must start instances (it then resolves the
//! version through the router's cache). Keep-warm
//! keeps one instance initialised; the runner's reaper drops an instance
//! whose process died, and the next tick starts another, so the kept
//! instance is checked every tick (the handler is never called for it).

pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotswap_domain::Function;
use hotswap_router::{qualifier_of, Router};
use hotswap_store::FunctionFilter;

pub use policy::{Autoscaler, Bounds, Decision};

/// How long the list of versions kept warm is trusted without a change of
/// the routing epoch.
const TARGETS_TTL: Duration = Duration::from_secs(10);

/// Concurrent calls one instance takes: one, until instances serve several
/// (`targetConcurrency`).
const PER_INSTANCE: u32 = 1;

/// Every version's autoscaler on this server.
pub struct Autoscalers {
    router: std::sync::Weak<Router>,
    versions: Mutex<HashMap<(String, u32), Autoscaler>>,
    targets: tokio::sync::Mutex<Targets>,
    /// Versions whose instances are being started.
    starting: Arc<Mutex<HashSet<(String, u32)>>>,
}

#[derive(Default)]
struct Targets {
    epoch: u64,
    loaded: Option<Instant>,
    /// (function id, version) pairs that `minInstances` or keep-warm apply to.
    list: Vec<(String, u32)>,
    /// Every function as last listed (their scaling configs), by id: a
    /// tick reads no store for versions that only have load.
    functions: HashMap<String, Arc<Function>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Autoscalers {
    /// The autoscalers of `router`'s versions (held weakly: the task ends
    /// with the router).
    pub fn new(router: std::sync::Weak<Router>) -> Self {
        Self {
            router,
            versions: Mutex::default(),
            targets: tokio::sync::Mutex::default(),
            starting: Arc::default(),
        }
    }

    /// The versions `minInstances` or keep-warm apply to, and every
    /// function by id.
    async fn targets(
        &self,
        router: &Router,
    ) -> Result<(Vec<(String, u32)>, HashMap<String, Arc<Function>>), String> {
        let epoch = router.control().routing_epoch();
        let mut t = self.targets.lock().await;
        if t.epoch == epoch && t.loaded.is_some_and(|at| at.elapsed() < TARGETS_TTL) {
            return Ok((t.list.clone(), t.functions.clone()));
        }
        let store = router.control().store();
        let mut list = Vec::new();
        let mut functions = HashMap::new();
        let mut after = None;
        loop {
            let page = store
                .list_functions(&FunctionFilter {
                    owner_id: None,
                    tag: None,
                    limit: 1000,
                    after: after.take(),
                })
                .await
                .map_err(|e| e.to_string())?;
            for f in &page.items {
                functions.insert(f.function_id.clone(), Arc::new(f.clone()));
                let c = &f.scaling_config;
                if c.min_instances == 0 && !c.keep_warm_enabled {
                    continue;
                }
                let aliases = store
                    .list_aliases(&f.function_id)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut versions: Vec<u32> = aliases
                    .iter()
                    .flat_map(|a| {
                        let leftover: f64 = 100.0 - a.routing_config.values().sum::<f64>();
                        a.routing_config
                            .iter()
                            .filter(|(_, w)| **w > 0.0)
                            .map(|(v, _)| *v)
                            .chain(
                                (leftover > 0.0 || a.routing_config.is_empty())
                                    .then_some(a.version),
                            )
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if aliases.is_empty() {
                    versions.push(0);
                }
                versions.sort_unstable();
                versions.dedup();
                list.extend(versions.into_iter().map(|v| (f.function_id.clone(), v)));
            }
            match page.next_token {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        *t = Targets {
            epoch,
            loaded: Some(Instant::now()),
            list: list.clone(),
            functions: functions.clone(),
        };
        Ok((list, functions))
    }

    /// One tick: observe every version's load, decide, apply. `false` when
    /// the router is gone.
    pub async fn tick(&self) -> Result<bool, String> {
        let Some(router) = self.router.upgrade() else {
            return Ok(false);
        };
        let (targets, functions) = self.targets(&router).await?;
        let runner = router.runner().clone();
        let mut wanted: HashMap<(String, u32), (bool, hotswap_runner::VersionLoad)> =
            HashMap::new();
        for (f, v) in targets {
            wanted.insert((f, v), (true, hotswap_runner::VersionLoad::default()));
        }
        for l in runner.loads() {
            let key = (l.function_id.clone(), l.version);
            wanted
                .entry(key)
                .or_insert_with(|| (false, hotswap_runner::VersionLoad::default()))
                .1 = l;
        }
        let now = Instant::now();
        for ((function_id, version), (routed, load)) in &wanted {
            let function = match functions.get(function_id) {
                Some(f) => f.clone(),
                // Created since the last listing.
                None => match router.control().function_by_id(function_id).await {
                    Ok(Some(f)) => Arc::new(f),
                    // Deleted meanwhile: its instances go with it.
                    _ => continue,
                },
            };
            let bounds = Bounds::new(&function.scaling_config, *routed, PER_INSTANCE);
            let instances = u32::try_from(load.instances()).unwrap_or(u32::MAX);
            let d = {
                let mut versions = lock(&self.versions);
                let a = versions.entry((function_id.clone(), *version)).or_default();
                a.observe(now, load.in_flight as f64);
                a.decide(now, instances, &bounds)
            };
            runner.set_scale(
                function_id,
                *version,
                d.keep as usize,
                bounds.scale_down_cooldown,
            );
            if d.start == 0 {
                continue;
            }
            let key = (function_id.clone(), *version);
            if !lock(&self.starting).insert(key.clone()) {
                continue;
            }
            let (router, starting) = (router.clone(), self.starting.clone());
            let to = load.instances() + d.start as usize;
            let (keep, idle_after) = (d.keep as usize, bounds.scale_down_cooldown);
            tokio::spawn(async move {
                // Resolved only to start instances (the router's cache).
                let route = match router.resolve_by_id(&key.0, &qualifier_of(key.1)).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(function = %key.0, version = key.1, error = %e, "autoscaler cannot resolve a version");
                        lock(&starting).remove(&key);
                        return;
                    }
                };
                match router.scale_up(&route, to).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(function = %route.function.name, version = %route.executed_version(), started = n, "autoscaler started instances");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(function = %route.function.name, version = %route.executed_version(), error = %e, "autoscaler could not start instances");
                    }
                }
                router.runner().set_scale(&key.0, key.1, keep, idle_after);
                lock(&starting).remove(&key);
            });
        }
        lock(&self.versions).retain(|k, _| wanted.contains_key(k));
        Ok(true)
    }
}
