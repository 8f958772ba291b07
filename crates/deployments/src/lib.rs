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
use hotswap_domain::{time, Deployment, DeploymentMetrics, DeploymentStatus, DeploymentStrategy};

/// What the controller needs from the runners.
#[async_trait]
/// Functions are named by their id ([`hotswap_domain::Function::function_id`]),
/// never by their name, which another owner (or a re-created function) may
/// share.
pub trait Fleet: Send + Sync {
    /// The version's measured figures since `since`, as the routers saw them.
    fn window(&self, function: &str, version: u32, since: DateTime<Utc>) -> DeploymentMetrics;
    /// Starts and initialises the version's `PreProvisionedConcurrency`
    /// instances (at least one) through the router and keeps them warm; an
    /// error is a failed health check.
    async fn provision(&self, function_id: &str, version: u32) -> Result<usize, String>;
    /// Stops keeping the version warm.
    fn release(&self, function: &str, version: u32);
    /// Starts measuring the version's sliding window.
    fn watch(&self, function: &str, version: u32);
    /// Stops measuring it.
    fn unwatch(&self, function: &str, version: u32);
}

/// Longest a warm-up (start + init of the provisioned instances) may take.
const WARM_TIMEOUT: Duration = Duration::from_secs(60);
/// A waiting deployment's phase/metrics are stored at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(2);

type VersionKey = (String, u32);

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
    /// Deployments being driven right now (one task each).
    in_flight: Mutex<HashSet<String>>,
    /// Versions this controller keeps warm / measures.
    pinned: Mutex<HashSet<VersionKey>>,
    watched: Mutex<HashSet<VersionKey>>,
    /// (function, alias) → blue version kept warm after a BlueGreen switch
    /// with KeepBlue, until the alias's next deployment.
    kept_blue: Mutex<BTreeMap<(String, String), u32>>,
    /// When each waiting deployment was last stored, and its phase then.
    saved: Mutex<BTreeMap<String, (std::time::Instant, Option<String>)>>,
}

/// Takes a deployment out of `in_flight` when its task ends, even by panic.
struct InFlight(Arc<Controller>, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut f) = self.0.in_flight.lock() {
            f.remove(&self.1);
        }
    }
}

impl Controller {
    pub fn new(control: ControlPlane, fleet: Arc<dyn Fleet>, config: ControllerConfig) -> Self {
        Self {
            control,
            fleet,
            config,
            seen: Mutex::default(),
            in_flight: Mutex::default(),
            pinned: Mutex::default(),
            watched: Mutex::default(),
            kept_blue: Mutex::default(),
            saved: Mutex::default(),
        }
    }

    /// Runs the controller until the runtime stops.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let me = Arc::new(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.clone().tick().await;
            }
        })
    }

    /// One pass: each active deployment is driven in its own task (a slow
    /// warm-up or a panic in one never holds up the others), then versions
    /// no deployment needs any more are released.
    pub async fn tick(self: Arc<Self>) {
        let active = match self.control.active_deployments().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list active deployments");
                return;
            }
        };
        let ids: HashSet<String> = active.iter().map(|d| d.deployment_id.clone()).collect();
        if let Ok(mut seen) = self.seen.lock() {
            seen.retain(|id| ids.contains(id) || self.is_in_flight(id));
        }
        if let Ok(mut saved) = self.saved.lock() {
            saved.retain(|id, _| ids.contains(id));
        }
        self.release_unneeded(&active);
        for d in active {
            let id = d.deployment_id.clone();
            let started = self
                .in_flight
                .lock()
                .map(|mut f| f.insert(id.clone()))
                .unwrap_or(false);
            if !started {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let _guard = InFlight(me.clone(), id.clone());
                match me.drive(d).await {
                    Ok(()) => {}
                    // Someone (a promote, a rollback, another controller)
                    // moved it first; the next tick sees their result.
                    Err(ControlError::Conflict(m)) if m.contains("changed meanwhile") => {
                        tracing::debug!(deployment = %id, "deployment changed meanwhile; next tick")
                    }
                    Err(e) => {
                        tracing::warn!(deployment = %id, error = %e, "cannot drive deployment")
                    }
                }
            });
        }
    }

    fn is_in_flight(&self, id: &str) -> bool {
        self.in_flight.lock().is_ok_and(|f| f.contains(id))
    }

    /// Unpins and unwatches what no active deployment (or kept blue) needs:
    /// this covers every end (rollback, completion, a person's cancel) in one
    /// place, and never unpins a version another active deployment of the
    /// function still targets.
    fn release_unneeded(&self, active: &[Deployment]) {
        let mut want_pinned: HashSet<VersionKey> = active
            .iter()
            .map(|d| (d.function_id.clone(), d.target_version))
            .collect();
        if let Ok(kept) = self.kept_blue.lock() {
            want_pinned.extend(kept.iter().map(|((f, _), v)| (f.clone(), *v)));
        }
        let mut want_watched = want_pinned.clone();
        want_watched.extend(
            active
                .iter()
                .filter_map(|d| d.source_version.map(|s| (d.function_id.clone(), s))),
        );
        if let Ok(mut pinned) = self.pinned.lock() {
            for (f, v) in pinned.iter().filter(|k| !want_pinned.contains(*k)) {
                self.fleet.release(f, *v);
            }
            pinned.retain(|k| want_pinned.contains(k));
        }
        if let Ok(mut watched) = self.watched.lock() {
            for (f, v) in watched.iter().filter(|k| !want_watched.contains(*k)) {
                self.fleet.unwatch(f, *v);
            }
            watched.retain(|k| want_watched.contains(k));
        }
    }

    fn watch(&self, d: &Deployment) {
        for v in std::iter::once(d.target_version).chain(d.source_version) {
            let key = (d.function_id.clone(), v);
            let new = self
                .watched
                .lock()
                .map(|mut w| w.insert(key))
                .unwrap_or(false);
            if new {
                self.fleet.watch(&d.function_id, v);
            }
        }
    }

    /// Whether a waiting deployment should be stored now.
    fn due_for_save(&self, d: &Deployment) -> bool {
        let now = std::time::Instant::now();
        let Ok(mut saved) = self.saved.lock() else {
            return true;
        };
        let due = match saved.get(&d.deployment_id) {
            Some((at, phase)) => *phase != d.current_phase || now.duration_since(*at) >= SAVE_EVERY,
            None => true,
        };
        if due {
            saved.insert(d.deployment_id.clone(), (now, d.current_phase.clone()));
        }
        due
    }

    fn first_sight(&self, id: &str) -> bool {
        self.seen
            .lock()
            .map(|mut s| s.insert(id.to_owned()))
            .unwrap_or(false)
    }

    async fn warm(&self, d: &Deployment, version: u32) -> Result<usize, String> {
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert((d.function_id.clone(), version));
        }
        match tokio::time::timeout(WARM_TIMEOUT, self.fleet.provision(&d.function_id, version))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(format!(
                "warming took longer than {} s",
                WARM_TIMEOUT.as_secs()
            )),
        }
    }

    async fn drive(&self, mut d: Deployment) -> Result<(), ControlError> {
        let now = time::now();
        let first = self.first_sight(&d.deployment_id);
        if d.status == DeploymentStatus::Pending {
            return self.begin(d).await;
        }
        self.watch(&d);
        let steps = plan::plan(&d);
        let index = (d.step as usize).min(steps.len().saturating_sub(1));
        if first {
            // Driven by a controller that is gone: resume, unless the step
            // needed a verdict and its deadline passed with nobody watching.
            let step = steps.get(index);
            let deadline = step
                .filter(|s| plan::needs_verdict(&d, s))
                .and_then(|s| plan::step_deadline(&d, s));
            if let Some(deadline) = deadline {
                if now > deadline {
                    let reason = format!(
                        "the controller was not running at the deadline of step {}/{} ({}); rolled back to be safe",
                        index + 1,
                        steps.len(),
                        steps[index].phase
                    );
                    self.control.roll_back_deployment(&mut d, &reason).await?;
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

        // While green is tested apart from live traffic, its provisioned
        // instances are its health check: one that died is replaced, and a
        // replacement that cannot initialise fails the deployment's test.
        if d.strategy == DeploymentStrategy::BlueGreen
            && steps.get(index).is_some_and(|s| s.target_percent == 0.0)
        {
            if let Err(e) = self.warm(&d, d.target_version).await {
                let reason = format!("green failed its health check during the test: {e}");
                self.control.roll_back_deployment(&mut d, &reason).await?;
                return Ok(());
            }
        }
        let since = d.step_started_at.unwrap_or(now);
        let target = self.fleet.window(&d.function_id, d.target_version, since);
        d.version_metrics = BTreeMap::from([(d.target_version, target.clone())]);
        if let Some(source) = d.source_version.filter(|s| *s != d.target_version) {
            d.version_metrics
                .insert(source, self.fleet.window(&d.function_id, source, since));
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
                if self.due_for_save(&d) {
                    self.control.save_deployment(&mut d).await?;
                }
                Ok(())
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
                let verdict = verdict_note(&d, &steps, &target);
                self.control
                    .enter_step(&mut d, &steps, step, &verdict)
                    .await
            }
            Decision::RollBack { reason } => {
                tracing::warn!(deployment = %d.deployment_id, function = %d.function_name, %reason, "rolling back");
                self.control.roll_back_deployment(&mut d, &reason).await?;
                Ok(())
            }
            Decision::Complete => {
                let verdict = verdict_note(&d, &steps, &target);
                let keep_blue =
                    d.strategy == DeploymentStrategy::BlueGreen && d.config.keep_blue == Some(true);
                let blue = d.source_version.filter(|s| *s != d.target_version);
                let mut note = verdict;
                if let (true, Some(blue)) = (keep_blue, blue) {
                    // Keep blue warm for an instant rollback.
                    match self.warm(&d, blue).await {
                        Ok(n) => {
                            if let Ok(mut kept) = self.kept_blue.lock() {
                                kept.insert((d.function_id.clone(), d.alias_name.clone()), blue);
                            }
                            note =
                                format!("{note}; blue (version {blue}) kept warm: {n} instance(s)")
                                    .trim_start_matches("; ")
                                    .to_owned();
                        }
                        Err(e) => {
                            tracing::warn!(deployment = %d.deployment_id, error = %e, "cannot keep blue warm")
                        }
                    }
                }
                self.control.complete_deployment(&mut d, &note).await?;
                tracing::info!(deployment = %d.deployment_id, function = %d.function_name, version = d.target_version, "deployment completed");
                Ok(())
            }
        }
    }

    /// A new deployment: fix the rolling fleet, warm the target (its health
    /// check), then the first step.
    async fn begin(&self, mut d: Deployment) -> Result<(), ControlError> {
        // A new deployment of the alias ends the previous one's kept blue.
        if let Ok(mut kept) = self.kept_blue.lock() {
            kept.remove(&(d.function_id.clone(), d.alias_name.clone()));
        }
        self.watch(&d);
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
fn verdict_note(d: &Deployment, steps: &[plan::Step], m: &DeploymentMetrics) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hotswap_domain::DeploymentConfig;

    /// Records what the controller asks of the runners.
    #[derive(Default)]
    struct FakeFleet {
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Fleet for FakeFleet {
        fn window(&self, _: &str, _: u32, _: DateTime<Utc>) -> DeploymentMetrics {
            DeploymentMetrics::default()
        }
        async fn provision(&self, _: &str, _: u32) -> Result<usize, String> {
            Ok(1)
        }
        fn release(&self, function: &str, version: u32) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("release {function}:{version}"));
        }
        fn watch(&self, function: &str, version: u32) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("watch {function}:{version}"));
        }
        fn unwatch(&self, function: &str, version: u32) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unwatch {function}:{version}"));
        }
    }

    async fn controller(dir: &std::path::Path) -> (Controller, Arc<FakeFleet>) {
        let url = format!("sqlite://{}", dir.join("meta.db").display());
        let store = hotswap_store::open_metadata_store(&url).await.unwrap();
        let blobs = hotswap_store::BlobStore::local(&dir.join("blobs")).unwrap();
        let control = ControlPlane::new(store, blobs, Default::default());
        let fleet = Arc::new(FakeFleet::default());
        let c = Controller::new(
            control,
            fleet.clone(),
            ControllerConfig {
                tick: Duration::from_millis(500),
                node_id: "test".into(),
            },
        );
        (c, fleet)
    }

    fn dep(alias: &str, source: u32, target: u32) -> Deployment {
        let mut d = Deployment::new(
            "name-f",
            alias,
            Some(source),
            target,
            DeploymentStrategy::Canary,
            DeploymentConfig::default(),
            "o",
        );
        // The fleet knows functions by id, never by name.
        d.function_id = "f".into();
        d
    }

    #[tokio::test]
    async fn versions_stay_pinned_and_watched_while_any_active_deployment_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let (c, fleet) = controller(dir.path()).await;
        let prod = dep("prod", 1, 2);
        let beta = dep("beta", 3, 2);
        c.watch(&prod);
        c.watch(&beta);
        c.watch(&prod);
        c.pinned.lock().unwrap().insert(("f".into(), 2));
        assert_eq!(
            *fleet.calls.lock().unwrap(),
            ["watch f:2", "watch f:1", "watch f:3"],
            "each version watched once"
        );
        fleet.calls.lock().unwrap().clear();

        // prod ended: its source goes, the shared target stays for beta.
        c.release_unneeded(std::slice::from_ref(&beta));
        assert_eq!(*fleet.calls.lock().unwrap(), ["unwatch f:1"]);
        fleet.calls.lock().unwrap().clear();

        // A kept blue stays pinned after its deployment ended.
        c.kept_blue
            .lock()
            .unwrap()
            .insert(("f".into(), "beta".into()), 3);
        c.release_unneeded(&[]);
        let mut calls = fleet.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, ["release f:2", "unwatch f:2"]);
        fleet.calls.lock().unwrap().clear();
        c.release_unneeded(&[]);
        assert!(fleet.calls.lock().unwrap().is_empty(), "released once");
    }

    #[tokio::test]
    async fn saves_of_a_waiting_deployment_are_throttled_unless_its_phase_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = controller(dir.path()).await;
        let mut d = dep("prod", 1, 2);
        d.current_phase = Some("Canary 10%".into());
        assert!(c.due_for_save(&d), "first sight");
        assert!(!c.due_for_save(&d), "same phase, too soon");
        d.current_phase = Some("Canary 10%: waiting for traffic: 3/10 invocations".into());
        assert!(c.due_for_save(&d), "the phase changed");
    }
}
