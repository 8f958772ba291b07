//! Versions: immutable snapshots of `$LATEST`'s code and configuration.

use hotswap_domain::{time, version, FunctionVersion, VersionStatus};

use crate::functions::MAX_DESCRIPTION_LEN;
use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

impl ControlPlane {
    /// Publishes `$LATEST` as the next version number: its code is copied to
    /// the version's own location first, then the version is recorded.
    pub async fn publish_version(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        description: Option<String>,
    ) -> Result<FunctionVersion> {
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN)
        {
            return Err(ControlError::validation(format!(
                "Description must be at most {MAX_DESCRIPTION_LEN} characters"
            )));
        }
        let function = self.owned_function(caller, function, true).await?;
        let name = function.name.as_str();
        let latest = self.latest(&function).await?;
        // What the version will run with must resolve now (a version keeps
        // its vpcConfig for good).
        self.check_vpc_references(&function.owner_id, latest.vpc_config.as_ref())
            .await?;
        // Pin each layer to the version it resolves to now: a published
        // version never changes, not even through its layers.
        let owner = Principal {
            owner_id: function.owner_id.clone(),
            is_admin: caller.is_admin,
        };
        let pinned: Vec<String> = self
            .resolve_layer_refs(&owner, &latest.layers)
            .await?
            .iter()
            .map(|l| l.reference())
            .collect();
        let number = self
            .store
            .allocate_version_number(&function.function_id)
            .await?;
        let mut v = latest.clone();
        v.version = number;
        v.code_location =
            version::code_location(&function.function_id, number, &latest.code_sha256);
        v.created_at = time::now();
        v.created_by = caller.owner_id.clone();
        v.description = description;
        v.invocation_count = 0;
        v.status = VersionStatus::Active;
        v.layers = pinned;
        self.blobs
            .copy(&latest.code_location, &v.code_location)
            .await?;
        self.store.insert_version(&v).await?;
        self.routing_changed();
        tracing::info!(function = %name, version = number, sha256 = %v.code_sha256, "version published");
        Ok(v)
    }

    pub async fn list_versions(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Vec<FunctionVersion>> {
        let f = self.owned_function(caller, function, false).await?;
        Ok(self.store.list_versions(&f.function_id).await?)
    }

    pub async fn get_version(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        number: u32,
    ) -> Result<FunctionVersion> {
        let f = self.owned_function(caller, function, false).await?;
        let name = &f.name;
        self.store
            .get_version(&f.function_id, number)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "version {} of function '{name}' not found",
                    version::version_string(number)
                ))
            })
    }

    pub async fn set_version_status(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        number: u32,
        status: VersionStatus,
    ) -> Result<FunctionVersion> {
        let f = self.owned_function(caller, function, true).await?;
        if number == 0 {
            return Err(ControlError::validation(
                "$LATEST has no status; publish a version first",
            ));
        }
        Ok(self
            .store
            .set_version_status(&f.function_id, number, status)
            .await?)
    }

    /// Refused while an alias routes to the version or `can_delete()` says
    /// no; the store checks both atomically with the delete.
    /// Returns the deleted version: the caller (the API) then stops its
    /// instances.
    pub async fn delete_version(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        number: u32,
    ) -> Result<(hotswap_domain::Function, FunctionVersion)> {
        let f = self.owned_function(caller, function, true).await?;
        let name = f.name.clone();
        if number == 0 {
            return Err(ControlError::Conflict(
                "$LATEST cannot be deleted; delete the function instead".into(),
            ));
        }
        let deleted = self.store.delete_version(&f.function_id, number).await?;
        self.routing_changed();
        if let Err(e) = self.blobs.delete(&deleted.code_location).await {
            tracing::warn!(function = %name, version = number, error = %e, "code of a deleted version left behind");
        }
        Ok((f, deleted))
    }
}
