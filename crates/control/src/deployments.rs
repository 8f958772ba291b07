//! Deployment records: creation with validation, reads, cancellation. The
//! orchestration that moves traffic builds on these records.

use hotswap_domain::{
    Deployment, DeploymentConfig, DeploymentStrategy, ValidationErrors, VersionStatus,
};

use crate::{ControlError, ControlPlane, Principal, Result};

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
        name: &str,
        new: NewDeployment,
    ) -> Result<Deployment> {
        self.owned_function(caller, name, true).await?;
        let mut errors = new.config.validate(new.strategy);
        let alias = self.store.get_alias(name, &new.alias_name).await?;
        if alias.is_none() {
            errors.push(format!(
                "Alias '{}' of function '{name}' does not exist",
                new.alias_name
            ));
        }
        match self.store.get_version(name, new.target_version).await? {
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
            if a.version == new.target_version && a.routing_config.is_empty() {
                errors.push(format!(
                    "Alias '{}' already points at version {}",
                    a.alias_name, a.version
                ));
            }
        }
        ValidationErrors::into_result(errors)?;
        let source = alias.map(|a| a.version);
        let deployment = Deployment::new(
            name,
            new.alias_name,
            source,
            new.target_version,
            new.strategy,
            new.config,
            caller.owner_id.clone(),
        );
        self.store.create_deployment(&deployment).await?;
        tracing::info!(function = %name, deployment = %deployment.deployment_id, alias = %deployment.alias_name,
            target = deployment.target_version, strategy = %deployment.strategy, "deployment recorded");
        Ok(deployment)
    }

    pub async fn get_deployment(
        &self,
        caller: &Principal,
        name: &str,
        id: &str,
    ) -> Result<Deployment> {
        self.owned_function(caller, name, false).await?;
        self.deployment_of(name, id).await
    }

    async fn deployment_of(&self, name: &str, id: &str) -> Result<Deployment> {
        match self.store.get_deployment(id).await? {
            Some(d) if d.function_name == name => Ok(d),
            _ => Err(ControlError::NotFound(format!(
                "deployment '{id}' of function '{name}' not found"
            ))),
        }
    }

    pub async fn list_deployments(
        &self,
        caller: &Principal,
        name: &str,
    ) -> Result<Vec<Deployment>> {
        self.owned_function(caller, name, false).await?;
        Ok(self.store.list_deployments(name).await?)
    }

    /// Stops a deployment that has not finished.
    pub async fn cancel_deployment(
        &self,
        caller: &Principal,
        name: &str,
        id: &str,
        reason: Option<String>,
    ) -> Result<Deployment> {
        self.owned_function(caller, name, true).await?;
        let mut d = self.deployment_of(name, id).await?;
        d.cancel(Some(
            reason.unwrap_or_else(|| format!("cancelled by {}", caller.owner_id)),
        ))
        .map_err(|e| ControlError::Conflict(e.to_string()))?;
        self.store.update_deployment(&d).await?;
        Ok(d)
    }
}
