//! Deployments: creation with validation, reads, and every move of one
//! (a step, completion, rollback, promote, cancel). Each move writes the
//! alias and the deployment in one store transaction guarded by the
//! deployment's revision, so the controller (`hotswap-deployments`) and a
//! person's promote/rollback can never interleave into a half-moved alias.

use std::collections::BTreeMap;

use hotswap_domain::deployment::plan::{self, Step};
use hotswap_domain::{
    time, Deployment, DeploymentConfig, DeploymentStatus, DeploymentStrategy, FunctionAlias,
    ValidationErrors, VersionStatus,
};
use hotswap_store::StoreError;

use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

/// Attempts of a person's move when the controller wrote in between.
const MOVE_ATTEMPTS: usize = 8;

fn describe(traffic: &BTreeMap<u32, f64>) -> String {
    traffic
        .iter()
        .map(|(v, p)| format!("{p}% to version {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A deployment request.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub alias_name: String,
    pub target_version: u32,
    pub strategy: DeploymentStrategy,
    pub config: DeploymentConfig,
}

impl ControlPlane {
    /// Records a deployment of `target_version` to the alias, from the
    /// version the alias points at now. Only one active deployment per alias
    /// (the store enforces it atomically).
    pub async fn create_deployment(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        new: NewDeployment,
    ) -> Result<Deployment> {
        let f = self.owned_function(caller, function, true).await?;
        let name = f.name.as_str();
        let mut errors = new.config.validate(new.strategy);
        let alias = self
            .store
            .get_alias(&f.function_id, &new.alias_name)
            .await?;
        if alias.is_none() {
            errors.push(format!(
                "Alias '{}' of function '{name}' does not exist",
                new.alias_name
            ));
        }
        match self
            .store
            .get_version(&f.function_id, new.target_version)
            .await?
        {
            _ if new.target_version == 0 => {
                errors.push("TargetVersion must be a published version (1 or more)")
            }
            None => errors.push(format!(
                "TargetVersion {} does not exist",
                new.target_version
            )),
            Some(v) if v.status == VersionStatus::Archived => errors.push(format!(
                "TargetVersion {} is Archived; set it Active to deploy it",
                new.target_version
            )),
            Some(_) => {}
        }
        if let Some(a) = &alias {
            if a.version == new.target_version {
                errors.push(format!(
                    "Alias '{}' already points at version {}",
                    a.alias_name, a.version
                ));
            }
        }
        ValidationErrors::into_result(errors)?;
        let source = alias.map(|a| a.version);
        let mut deployment = Deployment::new(
            name,
            new.alias_name,
            source,
            new.target_version,
            new.strategy,
            new.config,
            caller.owner_id.clone(),
        );
        deployment.function_id = f.function_id.clone();
        self.store.create_deployment(&deployment).await?;
        tracing::info!(function = %name, deployment = %deployment.deployment_id, alias = %deployment.alias_name,
            target = deployment.target_version, strategy = %deployment.strategy, "deployment recorded");
        Ok(deployment)
    }

    pub async fn get_deployment(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        id: &str,
    ) -> Result<Deployment> {
        let f = self.owned_function(caller, function, false).await?;
        self.deployment_of(&f, id).await
    }

    async fn deployment_of(&self, f: &hotswap_domain::Function, id: &str) -> Result<Deployment> {
        match self.store.get_deployment(id).await? {
            Some(d) if d.function_id == f.function_id => Ok(d),
            _ => Err(ControlError::NotFound(format!(
                "deployment '{id}' of function '{}' not found",
                f.name
            ))),
        }
    }

    pub async fn list_deployments(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Vec<Deployment>> {
        let f = self.owned_function(caller, function, false).await?;
        Ok(self.store.list_deployments(&f.function_id).await?)
    }

    /// Stops a deployment that has not finished and moves all traffic back
    /// to the source version.
    pub async fn cancel_deployment(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        id: &str,
        reason: Option<String>,
    ) -> Result<Deployment> {
        let f = self.owned_function(caller, function, true).await?;
        let reason = reason.unwrap_or_else(|| format!("cancelled by {}", caller.owner_id));
        self.person_moves(&f, id, |cp, d| {
            let reason = reason.clone();
            Box::pin(async move {
                if !d.status.is_active() {
                    return Err(ControlError::Conflict(format!(
                        "deployment is {}; only a Pending or InProgress deployment can be cancelled",
                        d.status
                    )));
                }
                let alias = cp.alias_at(d, 0.0).await?;
                d.cancel(Some(reason.clone()))
                    .map_err(|e| ControlError::Conflict(e.to_string()))?;
                d.current_phase = Some("Cancelled".into());
                d.record("Cancelled", reason, alias.traffic());
                Ok(Some(alias))
            })
        })
        .await
    }

    /// Ends the current step now (a manual gate, or skipping the rest of a
    /// timed step): the next step begins, or the deployment completes.
    pub async fn promote_deployment(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        id: &str,
    ) -> Result<Deployment> {
        let f = self.owned_function(caller, function, true).await?;
        let by = caller.owner_id.clone();
        // Promote ends the step the person saw; if the controller moved on
        // meanwhile, say so rather than skip the next step too.
        let seen = self.deployment_of(&f, id).await?.step;
        self.person_moves(&f, id, |cp, d| {
            let by = by.clone();
            Box::pin(async move {
                if d.status == DeploymentStatus::InProgress && d.step != seen {
                    return Err(ControlError::Conflict(format!(
                        "the deployment moved on to step {} meanwhile; look again before promoting",
                        d.step + 1
                    )));
                }
                if d.status != DeploymentStatus::InProgress {
                    return Err(ControlError::Conflict(format!(
                        "deployment is {}; only an InProgress deployment can be promoted",
                        d.status
                    )));
                }
                let steps = plan::plan(d);
                let next = d.step as usize + 1;
                let note = format!("promoted by {by}");
                if next >= steps.len() {
                    cp.prepare_completion(d, &note).await.map(Some)
                } else {
                    cp.prepare_step(d, &steps, next as u32, &note)
                        .await
                        .map(Some)
                }
            })
        })
        .await
    }

    /// Moves all traffic back to the source version, now: an active
    /// deployment, or a completed one whose result still stands (the seed's
    /// `CanRollback`).
    pub async fn rollback_deployment(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        id: &str,
        reason: Option<String>,
    ) -> Result<Deployment> {
        let f = self.owned_function(caller, function, true).await?;
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| format!("rolled back by {}", caller.owner_id));
        self.person_moves(&f, id, |cp, d| {
            let reason = reason.clone();
            Box::pin(async move {
                if d.status == DeploymentStatus::Completed {
                    if !d.can_rollback() {
                        return Err(ControlError::Conflict(
                            "this deployment has no source version to roll back to".into(),
                        ));
                    }
                    let alias = cp
                        .alias_by_id(&d.function_id, &d.function_name, &d.alias_name)
                        .await?;
                    if alias.version != d.target_version || !alias.routing_config.is_empty() {
                        return Err(ControlError::Conflict(format!(
                            "alias '{}' has moved since this deployment completed; deploy the version you want instead",
                            d.alias_name
                        )));
                    }
                    cp.ensure_no_active_deployment(&d.function_id, &d.alias_name)
                        .await?;
                } else if !d.status.is_active() {
                    return Err(ControlError::Conflict(format!(
                        "deployment is {}; it cannot be rolled back",
                        d.status
                    )));
                }
                cp.prepare_rollback(d, &reason).await.map(Some)
            })
        })
        .await
    }

    /// Runs a person's move, re-reading and retrying when the controller
    /// wrote the deployment in between.
    async fn person_moves<F>(
        &self,
        f: &hotswap_domain::Function,
        id: &str,
        mut change: F,
    ) -> Result<Deployment>
    where
        F: for<'a> FnMut(
            &'a ControlPlane,
            &'a mut Deployment,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Option<FunctionAlias>>> + Send + 'a>,
        >,
    {
        for _ in 0..MOVE_ATTEMPTS {
            let mut d = self.deployment_of(f, id).await?;
            let alias = change(self, &mut d).await?;
            let applied = self.store.apply_deployment(&d, alias.as_ref()).await;
            self.routing_changed();
            match applied {
                Ok(revision) => {
                    d.revision = revision;
                    return Ok(d);
                }
                Err(StoreError::Conflict(m)) if m.contains("changed meanwhile") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(
            "the deployment kept changing; try again".into(),
        ))
    }

    /// Node IDs of the runners that are healthy now, sorted.
    pub async fn healthy_runner_ids(&self) -> Result<Vec<String>> {
        let now = time::now();
        Ok(self
            .store
            .list_runners()
            .await?
            .into_iter()
            .filter(|r| r.is_healthy_at(now))
            .map(|r| r.node_id)
            .collect())
    }

    /// Every deployment still to drive, of every function.
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self.store.list_active_deployments().await?)
    }

    /// Re-reads a deployment (the controller, after a conflict).
    pub async fn reload_deployment(&self, id: &str) -> Result<Option<Deployment>> {
        Ok(self.store.get_deployment(id).await?)
    }

    /// The alias as it will be with `target_percent` of its traffic on the
    /// deployment's target (the rest on its source).
    async fn alias_at(&self, d: &Deployment, target_percent: f64) -> Result<FunctionAlias> {
        let mut alias = self
            .alias_by_id(&d.function_id, &d.function_name, &d.alias_name)
            .await?;
        let traffic = plan::split(d, target_percent);
        match (d.source_version, traffic.len()) {
            (Some(source), 2) => {
                alias.set_weighted_routing(source, d.target_version, target_percent)
            }
            _ => {
                let only = traffic.keys().next().copied().unwrap_or(d.target_version);
                alias.update_version(only);
            }
        }
        Ok(alias)
    }

    async fn prepare_step(
        &self,
        d: &mut Deployment,
        steps: &[Step],
        index: u32,
        note: &str,
    ) -> Result<FunctionAlias> {
        let step = steps
            .get(index as usize)
            .ok_or_else(|| ControlError::Conflict(format!("no step {}", index + 1)))?;
        let alias = self.alias_at(d, step.target_percent).await?;
        if d.status == DeploymentStatus::Pending {
            d.start(step.phase.clone())
                .map_err(|e| ControlError::Conflict(e.to_string()))?;
        }
        let now = time::now();
        d.step = index;
        d.step_started_at = Some(now);
        d.current_phase = Some(step.phase.clone());
        d.progress = plan::progress(d, steps, now);
        let traffic = alias.traffic();
        let mut message = format!("step {}/{}: {}", index + 1, steps.len(), describe(&traffic));
        if !note.is_empty() {
            message = format!("{message} ({note})");
        }
        d.record(step.phase.clone(), message, traffic);
        Ok(alias)
    }

    async fn prepare_completion(&self, d: &mut Deployment, note: &str) -> Result<FunctionAlias> {
        let alias = self.alias_at(d, 100.0).await?;
        d.mark_completed();
        d.current_phase = Some("Completed".into());
        let mut message = format!("version {} serves all traffic", d.target_version);
        if !note.is_empty() {
            message = format!("{message} ({note})");
        }
        d.record("Completed", message, alias.traffic());
        Ok(alias)
    }

    async fn prepare_rollback(&self, d: &mut Deployment, reason: &str) -> Result<FunctionAlias> {
        let alias = self.alias_at(d, 0.0).await?;
        d.mark_rolled_back(reason);
        d.current_phase = Some("RolledBack".into());
        d.record("RolledBack", reason, alias.traffic());
        Ok(alias)
    }

    /// The controller's write of `d`, with the alias when it moves.
    async fn write(&self, d: &mut Deployment, alias: Option<&FunctionAlias>) -> Result<()> {
        d.revision = self.store.apply_deployment(d, alias).await?;
        self.routing_changed();
        Ok(())
    }

    /// Begins step `index` of the plan: moves the alias to its split.
    pub async fn enter_step(
        &self,
        d: &mut Deployment,
        steps: &[Step],
        index: u32,
        note: &str,
    ) -> Result<()> {
        let alias = self.prepare_step(d, steps, index, note).await?;
        self.write(d, Some(&alias)).await
    }

    /// All steps passed: all traffic on the target, Completed.
    pub async fn complete_deployment(&self, d: &mut Deployment, note: &str) -> Result<()> {
        let alias = self.prepare_completion(d, note).await?;
        self.write(d, Some(&alias)).await
    }

    /// A breach (or a lost deadline): all traffic back on the source at once,
    /// RolledBack with the reason.
    pub async fn roll_back_deployment(&self, d: &mut Deployment, reason: &str) -> Result<()> {
        let alias = self.prepare_rollback(d, reason).await?;
        self.write(d, Some(&alias)).await
    }

    /// The deployment could not begin (its target failed to warm): Failed,
    /// with the alias never moved.
    pub async fn fail_deployment(&self, d: &mut Deployment, error: &str) -> Result<()> {
        d.mark_failed(error);
        d.current_phase = Some("Failed".into());
        let alias = self
            .alias_by_id(&d.function_id, &d.function_name, &d.alias_name)
            .await?;
        d.record("Failed", error, alias.traffic());
        self.write(d, None).await
    }

    /// Stores progress, phase, metrics or a timeline note without moving
    /// traffic.
    pub async fn save_deployment(&self, d: &mut Deployment) -> Result<()> {
        self.write(d, None).await
    }
}
