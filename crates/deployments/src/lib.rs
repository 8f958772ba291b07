//! The deployment controller. Every tick it reads the active deployments
//! from the store, asks the pure plan ([`hotswap_domain::deployment::plan`])
//! what each should do given the target's live metrics, and applies the
//! answer through the control plane: warm the target, enter a step (move the
//! alias), roll back, complete. All state is in the store, written after
//! every move, so a controller that dies and restarts resumes where it was
//! (or rolls back when a step's deadline passed while nobody watched).
//!
//! The execution side is behind [`Fleet`]: where the metrics come from and
//! who warms instances. The server wires it to its runner.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotswap_control::{ControlError, ControlPlane};
use hotswap_domain::deployment::plan::{self, Decision, Gate};
use hotswap_domain::{
    time, Deployment, DeploymentMetrics, DeploymentStatus, DeploymentStrategy, Function,
    FunctionVersion, LayerVersion,
};

/// What the controller needs from the runners.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// The version's measured figures since `since`, as the routers saw them.
    fn window(&self, function: &str, version: u32, since: DateTime<Utc>) -> DeploymentMetrics;
    /// Starts and initialises `count` instances of the version and keeps them
    /// warm; an error is a failed health check.
    async fn provision(
        &self,
        function: &Function,
        version: &FunctionVersion,
        layers: &[LayerVersion],
        count: u32,
    ) -> Result<usize, String>;
    /// Stops keeping the version warm.
    fn release(&self, function: &str, version: u32);
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How often each active deployment is looked at.
    pub tick: Duration,
    /// This controller's node, named in timelines.
    pub node_id: String,
}

/// Drives deployments; see the module documentation.
pub struct Controller {
    control: ControlPlane,
    fleet: Arc<dyn Fleet>,
    config: ControllerConfig,
    /// Deployments this process has driven; one it has not seen yet while
    /// InProgress was being driven by a previous process.
    seen: Mutex<HashSet<String>>,
}

impl Controller {
    pub fn new(control: ControlPlane, fleet: Arc<dyn Fleet>, config: ControllerConfig) -> Self {
        Self {
            control,
            fleet,
            config,
            seen: Mutex::default(),
        }
    }

    /// Runs the controller until the runtime stops.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.config.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.tick().await;
            }
        })
    }

    /// One pass over every active deployment.
    pub async fn tick(&self) {
        let active = match self.control.active_deployments().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list active deployments");
                return;
            }
        };
        for d in active {
            let id = d.deployment_id.clone();
            match self.drive(d).await {
                Ok(()) => {}
                // Someone (a promote, a rollback, another controller) moved it
                // first; the next tick sees their result.
                Err(ControlError::Conflict(m)) if m.contains("changed meanwhile") => {
                    tracing::debug!(deployment = %id, "deployment changed meanwhile; next tick")
                }
                Err(e) => tracing::warn!(deployment = %id, error = %e, "cannot drive deployment"),
            }
        }
    }

    fn first_sight(&self, id: &str) -> bool {
        self.seen
            .lock()
            .map(|mut s| s.insert(id.to_owned()))
            .unwrap_or(false)
    }

    async fn warm(&self, d: &Deployment, version: u32) -> Result<usize, String> {
        let (f, v, layers) = self
            .control
            .version_to_warm(&d.function_name, version)
            .await
            .map_err(|e| e.to_string())?;
        let count = f.scaling_config.pre_provisioned_concurrency.max(1);
        self.fleet.provision(&f, &v, &layers, count).await
    }

    async fn drive(&self, mut d: Deployment) -> Result<(), ControlError> {
        let now = time::now();
        let first = self.first_sight(&d.deployment_id);
        if d.status == DeploymentStatus::Pending {
            return self.begin(d).await;
        }
        let steps = plan::plan(&d);
        let index = (d.step as usize).min(steps.len().saturating_sub(1));
        if first {
            // Driven by a controller that is gone: resume, unless the step's
            // deadline passed with nobody watching the metrics.
            if let Some(deadline) = steps.get(index).and_then(|s| plan::step_deadline(&d, s)) {
                if now > deadline {
                    let reason = format!(
                        "the controller was not running at the deadline of step {}/{} ({}); rolled back to be safe",
                        index + 1,
                        steps.len(),
                        steps[index].phase
                    );
                    self.control.roll_back_deployment(&mut d, &reason).await?;
                    self.fleet.release(&d.function_name, d.target_version);
                    return Ok(());
                }
            }
            let warmed = self.warm(&d, d.target_version).await;
            let traffic = current_split(&d, &steps);
            let message = match &warmed {
                Ok(n) => format!(
                    "resumed by the controller on {} at step {}/{}; {n} instance(s) of version {} warm",
                    self.config.node_id,
                    index + 1,
                    steps.len(),
                    d.target_version
                ),
                Err(e) => format!("resumed on {}; warming failed: {e}", self.config.node_id),
            };
            d.record(
                d.current_phase.clone().unwrap_or_default(),
                message,
                traffic,
            );
            if let Err(e) = warmed {
                return self
                    .control
                    .roll_back_deployment(&mut d, &format!("health check failed on resume: {e}"))
                    .await;
            }
            self.control.save_deployment(&mut d).await?;
        }

        let since = d.step_started_at.unwrap_or(now);
        let target = self.fleet.window(&d.function_name, d.target_version, since);
        d.version_metrics = BTreeMap::from([(d.target_version, target.clone())]);
        if let Some(source) = d.source_version.filter(|s| *s != d.target_version) {
            d.version_metrics
                .insert(source, self.fleet.window(&d.function_name, source, since));
        }
        d.metrics = Some(target.clone());
        match plan::decide(&d, &steps, now, &target) {
            Decision::Wait { note } => {
                let phase = steps
                    .get(index)
                    .map(|s| s.phase.clone())
                    .unwrap_or_default();
                d.current_phase = Some(match note {
                    Some(n) => format!("{phase}: {n}"),
                    None => phase,
                });
                d.progress = plan::progress(&d, &steps, now);
                self.control.save_deployment(&mut d).await
            }
            Decision::Enter { step } => {
                if steps
                    .get(step as usize)
                    .is_some_and(|s| s.target_percent > 0.0)
                {
                    // Never send traffic to cold instances.
                    if let Err(e) = self.warm(&d, d.target_version).await {
                        return self
                            .control
                            .roll_back_deployment(&mut d, &format!("health check failed: {e}"))
                            .await;
                    }
                }
                let verdict = verdict_note(&d, &target);
                self.control
                    .enter_step(&mut d, &steps, step, &verdict)
                    .await
            }
            Decision::RollBack { reason } => {
                tracing::warn!(deployment = %d.deployment_id, function = %d.function_name, %reason, "rolling back");
                self.control.roll_back_deployment(&mut d, &reason).await?;
                self.fleet.release(&d.function_name, d.target_version);
                Ok(())
            }
            Decision::Complete => {
                let verdict = verdict_note(&d, &target);
                self.control.complete_deployment(&mut d, &verdict).await?;
                let keep_blue =
                    d.strategy == DeploymentStrategy::BlueGreen && d.config.keep_blue == Some(true);
                if let Some(source) = d.source_version.filter(|s| *s != d.target_version) {
                    if !keep_blue {
                        self.fleet.release(&d.function_name, source);
                    }
                }
                tracing::info!(deployment = %d.deployment_id, function = %d.function_name, version = d.target_version, "deployment completed");
                Ok(())
            }
        }
    }

    /// A new deployment: fix the rolling fleet, warm the target (its health
    /// check), then the first step.
    async fn begin(&self, mut d: Deployment) -> Result<(), ControlError> {
        if d.strategy == DeploymentStrategy::Rolling && d.rolling_nodes.is_empty() {
            d.rolling_nodes = self.control.healthy_runner_ids().await?;
            if d.rolling_nodes.is_empty() {
                d.rolling_nodes = vec![self.config.node_id.clone()];
            }
        }
        match self.warm(&d, d.target_version).await {
            Ok(n) => {
                let steps = plan::plan(&d);
                let note = format!(
                    "{n} instance(s) of version {} warmed and healthy",
                    d.target_version
                );
                self.control.enter_step(&mut d, &steps, 0, &note).await
            }
            Err(e) => {
                tracing::warn!(deployment = %d.deployment_id, error = %e, "target failed to warm");
                let error = format!("version {} could not be warmed: {e}", d.target_version);
                self.control.fail_deployment(&mut d, &error).await
            }
        }
    }
}

/// The traffic a deployment's current step set.
fn current_split(d: &Deployment, steps: &[plan::Step]) -> BTreeMap<u32, f64> {
    steps
        .get(d.step as usize)
        .map(|s| plan::split(d, s.target_percent))
        .unwrap_or_default()
}

/// How a passed step was judged, for the timeline.
fn verdict_note(d: &Deployment, m: &DeploymentMetrics) -> String {
    let steps = plan::plan(d);
    let manual = steps
        .get(d.step as usize)
        .is_some_and(|s| s.gate == Gate::Manual);
    if manual {
        return String::new();
    }
    if !d.config.has_thresholds() {
        return "no rollback thresholds set".into();
    }
    format!(
        "healthy: {} invocations, error rate {:.2}%, p99 {:.1} ms",
        m.invocation_count, m.error_rate, m.p99_duration
    )
}
