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

/// How a request names a function: its name within one owner's namespace.
/// Names are unique per owner; `owner: None` means the caller's own (an
/// admin addresses another owner's function with `?owner=OWNER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub owner: Option<String>,
    pub name: String,
}

impl FunctionRef {
    /// `name` in the caller's own namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            owner: None,
            name: name.into(),
        }
    }

    /// `name` of `owner`.
    pub fn of_owner(owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            owner: Some(owner.into()),
            name: name.into(),
        }
    }

    /// The namespace this reference means for `caller`.
    pub fn owner_for<'a>(&'a self, caller: &'a Principal) -> &'a str {
        self.owner.as_deref().unwrap_or(&caller.owner_id)
    }
}

impl From<&str> for FunctionRef {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<&Function> for FunctionRef {
    fn from(f: &Function) -> Self {
        Self::of_owner(f.owner_id.clone(), f.name.clone())
    }
}

impl std::fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
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
    /// Loads a function the caller may read (`write == false`) or change,
    /// by (owner, name): the caller's own namespace unless `function.owner`
    /// names another. Another owner's namespace is "not found" for a
    /// tenant's reads and "forbidden" for its writes (api.md), whether or
    /// not the function exists there.
    pub(crate) async fn owned_function(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        write: bool,
    ) -> Result<Function> {
        let name = &function.name;
        let owner = function.owner_for(caller);
        let not_found = || ControlError::NotFound(format!("function '{name}' not found"));
        if !caller.owns(owner) {
            return Err(if write {
                ControlError::Forbidden(format!(
                    "functions of owner '{owner}' belong to another owner"
                ))
            } else {
                not_found()
            });
        }
        self.store
            .get_function(owner, name)
            .await?
            .ok_or_else(not_found)
    }

    /// The function with this id, whoever owns it (the controller, the
    /// worker and the runner's flusher act for the platform).
    pub async fn function_by_id(&self, function_id: &str) -> Result<Option<Function>> {
        Ok(self.store.get_function_by_id(function_id).await?)
    }

    /// Creates the function in the caller's namespace, or (an admin) in
    /// `owner`'s.
    pub async fn create_function(
        &self,
        caller: &Principal,
        owner: Option<&str>,
        new: NewFunction,
        code: Bytes,
    ) -> Result<Function> {
        let owner = owner.unwrap_or(&caller.owner_id).to_owned();
        if !caller.owns(&owner) {
            return Err(ControlError::Forbidden(format!(
                "functions of owner '{owner}' belong to another owner"
            )));
        }
        let mut f = Function::new(new.name, new.runtime, new.handler, owner);
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
        self.check_vpc_references(&f.owner_id, f.vpc_config.as_ref())
            .await?;
        let as_owner = Principal {
            owner_id: f.owner_id.clone(),
            is_admin: caller.is_admin,
        };
        self.resolve_layer_refs(&as_owner, &f.layers).await?;
        self.check_dead_letter_target(&f).await?;
        let package = CodePackage::inspect(code, f.runtime, &self.limits)?;
        if self
            .store
            .get_function(&f.owner_id, &f.name)
            .await?
            .is_some()
        {
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
        tracing::info!(function = %f.name, id = %f.function_id, owner = %f.owner_id, sha256 = %latest.code_sha256, "function created");
        Ok(f)
    }

    pub async fn get_function(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Function> {
        self.owned_function(caller, function, false).await
    }

    /// Non-admins list only their own functions, whatever owner they ask
    /// for; admins list every owner's, or one owner's with `owner_id`.
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
        function: &FunctionRef,
        patch: FunctionPatch,
    ) -> Result<Function> {
        let mut f = self.owned_function(caller, function, true).await?;
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
        self.check_vpc_references(&f.owner_id, f.vpc_config.as_ref())
            .await?;
        let owner = Principal {
            owner_id: f.owner_id.clone(),
            is_admin: caller.is_admin,
        };
        self.resolve_layer_refs(&owner, &f.layers).await?;
        self.check_dead_letter_target(&f).await?;
        f.updated_at = time::now();
        let old = self.latest(&f).await?;
        let latest = FunctionVersion::snapshot(
            &f,
            0,
            &old.code_sha256,
            old.code_size,
            &caller.owner_id,
            None,
        );
        self.store.update_function(&f, &latest).await?;
        self.routing_changed();
        Ok(f)
    }

    /// Replaces `$LATEST`'s code. Published versions keep their own copies.
    pub async fn update_code(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        code: Bytes,
    ) -> Result<FunctionVersion> {
        let mut f = self.owned_function(caller, function, true).await?;
        let name = f.name.clone();
        let package = CodePackage::inspect(code, f.runtime, &self.limits)?;
        let old = self.latest(&f).await?;
        f.updated_at = time::now();
        let latest =
            FunctionVersion::snapshot(&f, 0, &package.sha256, package.size, &caller.owner_id, None);
        self.blobs.put(&latest.code_location, package.bytes).await?;
        self.store.update_function(&f, &latest).await?;
        self.routing_changed();
        if old.code_location != latest.code_location {
            if let Err(e) = self.blobs.delete(&old.code_location).await {
                tracing::warn!(function = %name, location = %old.code_location, error = %e, "old $LATEST code left behind");
            }
        }
        Ok(latest)
    }

    /// Deletes the function with its versions, aliases, triggers and
    /// deployments, and its code. Returns the deleted function: the caller
    /// (the API) then stops its instances and forgets its logs and metrics
    /// by its id.
    pub async fn delete_function(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Function> {
        let f = self.owned_function(caller, function, true).await?;
        let name = &f.name;
        let versions = self.store.list_versions(&f.function_id).await?;
        if !self.store.delete_function(&f.function_id).await? {
            return Err(ControlError::NotFound(format!(
                "function '{name}' not found"
            )));
        }
        self.routing_changed();
        self.triggers_changed();
        // Each version's own location (versions stored before function ids
        // live under the name), then everything under the id.
        for v in &versions {
            if let Err(e) = self.blobs.delete(&v.code_location).await {
                tracing::warn!(function = %name, location = %v.code_location, error = %e, "code package of a deleted function left behind");
            }
        }
        if let Err(e) = self
            .blobs
            .delete_prefix(&format!("functions/{}/", f.function_id))
            .await
        {
            tracing::warn!(function = %name, error = %e, "code packages of a deleted function left behind");
        }
        tracing::info!(function = %name, id = %f.function_id, owner = %f.owner_id, "function deleted");
        Ok(f)
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
        match self
            .store
            .get_function(&f.owner_id, &parsed.function)
            .await?
        {
            Some(_) => Ok(()),
            _ => Err(ControlError::validation(format!(
                "DeadLetterTarget function '{}' does not exist",
                parsed.function
            ))),
        }
    }

    pub(crate) async fn latest(&self, f: &Function) -> Result<FunctionVersion> {
        self.store
            .get_version(&f.function_id, 0)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("function '{}' has no $LATEST version", f.name))
            })
    }
}
