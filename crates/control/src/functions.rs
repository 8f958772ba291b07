//! Functions: create with code, read, list, reconfigure, replace code, delete.

use std::collections::BTreeMap;

use bytes::Bytes;
use hotswap_domain::{
    time, DeadLetterTarget, Function, FunctionVersion, Runtime, ScalingConfig, VpcConfig,
};
use hotswap_store::{FunctionFilter, Page};

use crate::code::CodePackage;
use crate::{ControlError, ControlPlane, Principal, Result};

/// Everything a new function is made of, besides its code.
#[derive(Debug, Clone)]
pub struct NewFunction {
    pub name: String,
    pub runtime: Runtime,
    pub handler: String,
    pub description: Option<String>,
    pub memory_size: Option<u32>,
    pub timeout: Option<u32>,
    pub environment: BTreeMap<String, String>,
    pub layers: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub vpc_config: Option<VpcConfig>,
    pub scaling_config: Option<ScalingConfig>,
    /// `function[:qualifier]` that receives failed asynchronous invocations.
    pub dead_letter_target: Option<String>,
}

/// A configuration change: every `Some` replaces that setting.
#[derive(Debug, Clone, Default)]
pub struct FunctionPatch {
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub runtime: Option<Runtime>,
    pub handler: Option<String>,
    pub memory_size: Option<u32>,
    pub timeout: Option<u32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub layers: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    /// `Some(None)` detaches the function from its VPC.
    pub vpc_config: Option<Option<VpcConfig>>,
    pub scaling_config: Option<ScalingConfig>,
    /// `Some(None)` removes the dead-letter target.
    pub dead_letter_target: Option<Option<String>>,
}

pub const MAX_DESCRIPTION_LEN: usize = 256;
pub const MAX_TAGS: usize = 50;

/// Rules the seed leaves open but a user relies on.
fn check_extras(f: &Function) -> Result<()> {
    let mut errors = match f.validate() {
        Ok(()) => hotswap_domain::ValidationErrors::new(),
        Err(e) => e,
    };
    if f.description
        .as_deref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN)
    {
        errors.push(format!(
            "Description must be at most {MAX_DESCRIPTION_LEN} characters"
        ));
    }
    if f.tags.len() > MAX_TAGS {
        errors.push(format!("At most {MAX_TAGS} tags allowed"));
    }
    if f.tags
        .iter()
        .any(|(k, v)| k.trim().is_empty() || k.len() > 128 || v.len() > 256)
    {
        errors.push("Tag keys must be 1-128 characters and values at most 256");
    }
    errors.into_result().map_err(ControlError::from)
}

impl ControlPlane {
    /// Loads a function the caller may read (`write == false`) or change.
    /// Invisible functions are "not found"; visible but foreign ones are
    /// "forbidden" for writes (api.md).
    pub(crate) async fn owned_function(
        &self,
        caller: &Principal,
        name: &str,
        write: bool,
    ) -> Result<Function> {
        let not_found = || ControlError::NotFound(format!("function '{name}' not found"));
        let f = self.store.get_function(name).await?.ok_or_else(not_found)?;
        if caller.owns(&f.owner_id) {
            Ok(f)
        } else if write {
            Err(ControlError::Forbidden(format!(
                "function '{name}' belongs to another owner"
            )))
        } else {
            Err(not_found())
        }
    }

    pub async fn create_function(
        &self,
        caller: &Principal,
        new: NewFunction,
        code: Bytes,
    ) -> Result<Function> {
        let mut f = Function::new(new.name, new.runtime, new.handler, caller.owner_id.clone());
        f.description = new.description;
        f.memory_size = new.memory_size.unwrap_or(f.memory_size);
        f.timeout = new.timeout.unwrap_or(f.timeout);
        f.environment = new.environment;
        f.layers = new.layers;
        f.tags = new.tags;
        f.vpc_config = new.vpc_config;
        f.scaling_config = new.scaling_config.unwrap_or_default();
        f.dead_letter_target = new.dead_letter_target;
        check_extras(&f)?;
        self.resolve_layer_refs(caller, &f.layers).await?;
        self.check_dead_letter_target(&f).await?;
        let package = CodePackage::inspect(code, f.runtime, &self.limits)?;
        if self.store.get_function(&f.name).await?.is_some() {
            return Err(ControlError::Conflict(format!(
                "function '{}' already exists",
                f.name
            )));
        }
        let latest =
            FunctionVersion::snapshot(&f, 0, &package.sha256, package.size, &caller.owner_id, None);
        self.blobs.put(&latest.code_location, package.bytes).await?;
        // On a lost race the content-addressed blob is left alone: it may be
        // the winner's.
        self.store.create_function(&f, &latest).await?;
        tracing::info!(function = %f.name, owner = %f.owner_id, sha256 = %latest.code_sha256, "function created");
        Ok(f)
    }

    pub async fn get_function(&self, caller: &Principal, name: &str) -> Result<Function> {
        self.owned_function(caller, name, false).await
    }

    /// Non-admins list only their own functions, whatever owner they ask for.
    pub async fn list_functions(
        &self,
        caller: &Principal,
        mut filter: FunctionFilter,
    ) -> Result<Page<Function>> {
        if !caller.is_admin {
            if filter
                .owner_id
                .as_deref()
                .is_some_and(|o| o != caller.owner_id)
            {
                return Ok(Page {
                    items: Vec::new(),
                    next_token: None,
                });
            }
            filter.owner_id = Some(caller.owner_id.clone());
        }
        Ok(self.store.list_functions(&filter).await?)
    }

    /// Applies a configuration change to the function and its `$LATEST`.
    pub async fn update_function(
        &self,
        caller: &Principal,
        name: &str,
        patch: FunctionPatch,
    ) -> Result<Function> {
        let mut f = self.owned_function(caller, name, true).await?;
        if let Some(d) = patch.description {
            f.description = d;
        }
        if let Some(r) = patch.runtime {
            f.runtime = r;
        }
        if let Some(h) = patch.handler {
            f.handler = h;
        }
        if let Some(m) = patch.memory_size {
            f.memory_size = m;
        }
        if let Some(t) = patch.timeout {
            f.timeout = t;
        }
        if let Some(e) = patch.environment {
            f.environment = e;
        }
        if let Some(l) = patch.layers {
            f.layers = l;
        }
        if let Some(t) = patch.tags {
            f.tags = t;
        }
        if let Some(v) = patch.vpc_config {
            f.vpc_config = v;
        }
        if let Some(s) = patch.scaling_config {
            f.scaling_config = s;
        }
        if let Some(d) = patch.dead_letter_target {
            f.dead_letter_target = d;
        }
        check_extras(&f)?;
        let owner = Principal {
            owner_id: f.owner_id.clone(),
            is_admin: caller.is_admin,
        };
        self.resolve_layer_refs(&owner, &f.layers).await?;
        self.check_dead_letter_target(&f).await?;
        f.updated_at = time::now();
        let old = self.latest(name).await?;
        let latest = FunctionVersion::snapshot(
            &f,
            0,
            &old.code_sha256,
            old.code_size,
            &caller.owner_id,
            None,
        );
        self.store.update_function(&f, &latest).await?;
        Ok(f)
    }

    /// Replaces `$LATEST`'s code. Published versions keep their own copies.
    pub async fn update_code(
        &self,
        caller: &Principal,
        name: &str,
        code: Bytes,
    ) -> Result<FunctionVersion> {
        let mut f = self.owned_function(caller, name, true).await?;
        let package = CodePackage::inspect(code, f.runtime, &self.limits)?;
        let old = self.latest(name).await?;
        f.updated_at = time::now();
        let latest =
            FunctionVersion::snapshot(&f, 0, &package.sha256, package.size, &caller.owner_id, None);
        self.blobs.put(&latest.code_location, package.bytes).await?;
        self.store.update_function(&f, &latest).await?;
        if old.code_location != latest.code_location {
            if let Err(e) = self.blobs.delete(&old.code_location).await {
                tracing::warn!(function = %name, location = %old.code_location, error = %e, "old $LATEST code left behind");
            }
        }
        Ok(latest)
    }

    pub async fn delete_function(&self, caller: &Principal, name: &str) -> Result<()> {
        self.owned_function(caller, name, true).await?;
        if !self.store.delete_function(name).await? {
            return Err(ControlError::NotFound(format!(
                "function '{name}' not found"
            )));
        }
        self.versions.forget(name);
        if let Err(e) = self
            .blobs
            .delete_prefix(&format!("functions/{name}/"))
            .await
        {
            tracing::warn!(function = %name, error = %e, "code packages of a deleted function left behind");
        }
        tracing::info!(function = %name, "function deleted");
        Ok(())
    }

    /// A dead-letter target must name an existing function of the same
    /// owner (its syntax and "not itself" are checked by `Function::validate`).
    async fn check_dead_letter_target(&self, f: &Function) -> Result<()> {
        let Some(target) = &f.dead_letter_target else {
            return Ok(());
        };
        let parsed: DeadLetterTarget =
            target
                .parse()
                .map_err(|e: hotswap_domain::names::InvalidDeadLetterTarget| {
                    ControlError::validation(e.to_string())
                })?;
        match self.store.get_function(&parsed.function).await? {
            Some(t) if t.owner_id == f.owner_id => Ok(()),
            _ => Err(ControlError::validation(format!(
                "DeadLetterTarget function '{}' does not exist",
                parsed.function
            ))),
        }
    }

    pub(crate) async fn latest(&self, name: &str) -> Result<FunctionVersion> {
        self.store.get_version(name, 0).await?.ok_or_else(|| {
            ControlError::NotFound(format!("function '{name}' has no $LATEST version"))
        })
    }
}
