//! The runner registry: registration, heartbeats and the health rules.

use std::collections::{BTreeMap, HashMap};

use hotswap_domain::{time, RunnerHealth, RunnerMetrics, RunnerNode, RunnerResources};

use crate::{ControlError, ControlPlane, Principal, Result};

/// What a runner reports with each heartbeat; absent parts keep their value.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub health: Option<RunnerHealth>,
    pub resources: Option<RunnerResources>,
    pub metrics: Option<RunnerMetrics>,
    pub active_containers: Option<BTreeMap<String, String>>,
}

/// A runner with the rules evaluated now.
#[derive(Debug, Clone)]
pub struct RunnerView {
    pub runner: RunnerNode,
    /// The seed's `IsHealthy()`: a heartbeat within two minutes and a healthy
    /// self-report.
    pub healthy: bool,
    /// The seed's `CanAcceptInvocations()`.
    pub can_accept_invocations: bool,
}

impl RunnerView {
    fn of(runner: RunnerNode) -> Self {
        let now = time::now();
        Self {
            healthy: runner.is_healthy_at(now),
            can_accept_invocations: runner.can_accept_invocations_at(now),
            runner,
        }
    }
}

impl ControlPlane {
    /// Registers (or re-registers, after a restart) a runner. Admins only:
    /// runners authenticate with an admin token.
    pub async fn register_runner(
        &self,
        caller: &Principal,
        mut runner: RunnerNode,
    ) -> Result<RunnerView> {
        caller.require_admin()?;
        runner.validate()?;
        let now = time::now();
        runner.started_at = now;
        runner.record_heartbeat_at(now);
        self.store.upsert_runner(&runner).await?;
        tracing::info!(node = %runner.node_id, host = %runner.hostname, port = runner.port, "runner registered");
        Ok(RunnerView::of(runner))
    }

    pub async fn heartbeat(
        &self,
        caller: &Principal,
        node_id: &str,
        beat: Heartbeat,
    ) -> Result<RunnerView> {
        caller.require_admin()?;
        let mut runner = self.store.get_runner(node_id).await?.ok_or_else(|| {
            ControlError::NotFound(format!("runner '{node_id}' is not registered"))
        })?;
        if let Some(h) = beat.health {
            runner.health = h;
        }
        if let Some(r) = beat.resources {
            runner.resources = r;
        }
        if let Some(m) = beat.metrics {
            runner.metrics = m;
        }
        if let Some(c) = beat.active_containers {
            runner.active_containers = c;
        }
        runner.validate()?;
        runner.record_heartbeat();
        self.store.upsert_runner(&runner).await?;
        Ok(RunnerView::of(runner))
    }

    pub async fn list_runners(&self, caller: &Principal) -> Result<Vec<RunnerView>> {
        let runners = self.store.list_runners().await?;
        let mut owners = HashMap::new();
        let mut out = Vec::with_capacity(runners.len());
        for r in runners {
            out.push(RunnerView::of(self.redact(caller, r, &mut owners).await?));
        }
        Ok(out)
    }

    pub async fn get_runner(&self, caller: &Principal, node_id: &str) -> Result<RunnerView> {
        let r = self
            .store
            .get_runner(node_id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("runner '{node_id}' not found")))?;
        Ok(RunnerView::of(
            self.redact(caller, r, &mut HashMap::new()).await?,
        ))
    }

    /// Non-admins see only their own functions among a runner's instances.
    async fn redact(
        &self,
        caller: &Principal,
        mut r: RunnerNode,
        owners: &mut HashMap<String, bool>,
    ) -> Result<RunnerNode> {
        if caller.is_admin {
            return Ok(r);
        }
        let mut kept = BTreeMap::new();
        for (key, id) in std::mem::take(&mut r.active_containers) {
            let function = key.split(':').next().unwrap_or_default().to_owned();
            let mine = match owners.get(&function) {
                Some(m) => *m,
                None => {
                    // Keys name the function by its id, or by a name in
                    // the caller's own namespace.
                    let by_id = self
                        .store
                        .get_function_by_id(&function)
                        .await?
                        .is_some_and(|f| caller.owns(&f.owner_id));
                    let m = by_id
                        || self
                            .store
                            .get_function(&caller.owner_id, &function)
                            .await?
                            .is_some();
                    owners.insert(function, m);
                    m
                }
            };
            if mine {
                kept.insert(key, id);
            }
        }
        r.active_containers = kept;
        Ok(r)
    }
}
