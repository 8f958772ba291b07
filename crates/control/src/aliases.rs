//! Aliases: named, movable pointers to versions, with weighted routing.

use std::collections::{BTreeMap, BTreeSet};

use hotswap_domain::{time, FunctionAlias};

use crate::functions::MAX_DESCRIPTION_LEN;
use crate::{ControlError, ControlPlane, Principal, Result};

/// A change to an alias. `version` alone moves the alias and clears any
/// weights (the seed's `UpdateVersion`); `routing_config` replaces the
/// weights (an empty map clears them).
#[derive(Debug, Clone, Default)]
pub struct AliasUpdate {
    pub version: Option<u32>,
    pub routing_config: Option<BTreeMap<u32, f64>>,
    pub description: Option<Option<String>>,
}

impl ControlPlane {
    async fn published_versions(&self, name: &str) -> Result<BTreeSet<u32>> {
        let versions = self.store.list_versions(name).await?;
        Ok(versions
            .into_iter()
            .map(|v| v.version)
            .filter(|v| *v > 0)
            .collect())
    }

    fn check_alias(alias: &FunctionAlias, published: &BTreeSet<u32>) -> Result<()> {
        let mut result = alias.validate(|v| published.contains(&v));
        if alias
            .description
            .as_deref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN)
        {
            let mut errors = result.err().unwrap_or_default();
            errors.push(format!(
                "Description must be at most {MAX_DESCRIPTION_LEN} characters"
            ));
            result = Err(errors);
        }
        result.map_err(ControlError::from)
    }

    /// Refuses manual changes while a deployment is moving the alias.
    pub(crate) async fn ensure_no_active_deployment(&self, name: &str, alias: &str) -> Result<()> {
        let deployments = self.store.list_deployments(name).await?;
        if let Some(d) = deployments
            .iter()
            .find(|d| d.alias_name == alias && d.status.is_active())
        {
            return Err(ControlError::Conflict(format!(
                "alias '{alias}' is being moved by deployment {} ({}); cancel it first",
                d.deployment_id, d.status
            )));
        }
        Ok(())
    }

    pub async fn create_alias(
        &self,
        caller: &Principal,
        name: &str,
        alias_name: &str,
        version: u32,
        routing_config: BTreeMap<u32, f64>,
        description: Option<String>,
    ) -> Result<FunctionAlias> {
        self.owned_function(caller, name, true).await?;
        let mut alias = FunctionAlias::new(name, alias_name, version);
        alias.routing_config = routing_config;
        alias.description = description;
        Self::check_alias(&alias, &self.published_versions(name).await?)?;
        self.store.create_alias(&alias).await?;
        Ok(alias)
    }

    pub async fn get_alias(
        &self,
        caller: &Principal,
        name: &str,
        alias: &str,
    ) -> Result<FunctionAlias> {
        self.owned_function(caller, name, false).await?;
        self.alias_of(name, alias).await
    }

    pub(crate) async fn alias_of(&self, name: &str, alias: &str) -> Result<FunctionAlias> {
        self.store.get_alias(name, alias).await?.ok_or_else(|| {
            ControlError::NotFound(format!("alias '{alias}' of function '{name}' not found"))
        })
    }

    pub async fn list_aliases(&self, caller: &Principal, name: &str) -> Result<Vec<FunctionAlias>> {
        self.owned_function(caller, name, false).await?;
        Ok(self.store.list_aliases(name).await?)
    }

    pub async fn update_alias(
        &self,
        caller: &Principal,
        name: &str,
        alias_name: &str,
        update: AliasUpdate,
    ) -> Result<FunctionAlias> {
        self.owned_function(caller, name, true).await?;
        let mut alias = self.alias_of(name, alias_name).await?;
        self.ensure_no_active_deployment(name, alias_name).await?;
        if let Some(v) = update.version {
            alias.update_version(v);
        }
        if let Some(r) = update.routing_config {
            alias.routing_config = r;
        }
        if let Some(d) = update.description {
            alias.description = d;
        }
        alias.updated_at = time::now();
        Self::check_alias(&alias, &self.published_versions(name).await?)?;
        self.store.update_alias(&alias).await?;
        Ok(alias)
    }

    pub async fn delete_alias(&self, caller: &Principal, name: &str, alias: &str) -> Result<()> {
        self.owned_function(caller, name, true).await?;
        self.ensure_no_active_deployment(name, alias).await?;
        if !self.store.delete_alias(name, alias).await? {
            return Err(ControlError::NotFound(format!(
                "alias '{alias}' of function '{name}' not found"
            )));
        }
        Ok(())
    }
}
