//! Aliases: named, movable pointers to versions, with weighted routing.

use std::collections::{BTreeMap, BTreeSet};

use hotswap_domain::{time, Function, FunctionAlias};

use crate::functions::MAX_DESCRIPTION_LEN;
use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

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
    async fn published_versions(&self, function_id: &str) -> Result<BTreeSet<u32>> {
        let versions = self.store.list_versions(function_id).await?;
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
    pub(crate) async fn ensure_no_active_deployment(
        &self,
        function_id: &str,
        alias: &str,
    ) -> Result<()> {
        let deployments = self.store.list_deployments(function_id).await?;
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
        function: &FunctionRef,
        alias_name: &str,
        version: u32,
        routing_config: BTreeMap<u32, f64>,
        description: Option<String>,
    ) -> Result<FunctionAlias> {
        let f = self.owned_function(caller, function, true).await?;
        let mut alias =
            FunctionAlias::new(&f.name, alias_name, version).of_function(&f.function_id);
        alias.routing_config = routing_config;
        alias.description = description;
        Self::check_alias(&alias, &self.published_versions(&f.function_id).await?)?;
        self.store.create_alias(&alias).await?;
        self.routing_changed();
        Ok(alias)
    }

    pub async fn get_alias(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        alias: &str,
    ) -> Result<FunctionAlias> {
        let f = self.owned_function(caller, function, false).await?;
        self.alias_of(&f, alias).await
    }

    pub(crate) async fn alias_of(&self, f: &Function, alias: &str) -> Result<FunctionAlias> {
        self.alias_by_id(&f.function_id, &f.name, alias).await
    }

    /// The alias of the function with this id (`name` for the message).
    pub(crate) async fn alias_by_id(
        &self,
        function_id: &str,
        name: &str,
        alias: &str,
    ) -> Result<FunctionAlias> {
        self.store
            .get_alias(function_id, alias)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("alias '{alias}' of function '{name}' not found"))
            })
    }

    pub async fn list_aliases(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Vec<FunctionAlias>> {
        let f = self.owned_function(caller, function, false).await?;
        Ok(self.store.list_aliases(&f.function_id).await?)
    }

    pub async fn update_alias(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        alias_name: &str,
        update: AliasUpdate,
    ) -> Result<FunctionAlias> {
        let f = self.owned_function(caller, function, true).await?;
        let mut alias = self.alias_of(&f, alias_name).await?;
        self.ensure_no_active_deployment(&f.function_id, alias_name)
            .await?;
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
        Self::check_alias(&alias, &self.published_versions(&f.function_id).await?)?;
        self.store.update_alias(&alias).await?;
        self.routing_changed();
        Ok(alias)
    }

    pub async fn delete_alias(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        alias: &str,
    ) -> Result<()> {
        let f = self.owned_function(caller, function, true).await?;
        let name = &f.name;
        self.ensure_no_active_deployment(&f.function_id, alias)
            .await?;
        let deleted = self.store.delete_alias(&f.function_id, alias).await?;
        self.routing_changed();
        if !deleted {
            return Err(ControlError::NotFound(format!(
                "alias '{alias}' of function '{name}' not found"
            )));
        }
        Ok(())
    }
}
