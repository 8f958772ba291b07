//! Layers: publishing versioned zips, resolving a function's layer
//! references (pinned at publish), and refusing to delete what is in use.

use bytes::Bytes;
use hotswap_domain::layer::layer_location;
use hotswap_domain::{time, FunctionVersion, LayerRef, LayerVersion, Runtime, ValidationErrors};
use hotswap_store::FunctionFilter;

use crate::code::CodePackage;
use crate::functions::MAX_DESCRIPTION_LEN;
use crate::{ControlError, ControlPlane, Principal, Result};

impl ControlPlane {
    pub async fn publish_layer(
        &self,
        caller: &Principal,
        name: &str,
        description: Option<String>,
        code: Bytes,
    ) -> Result<LayerVersion> {
        let mut errors = ValidationErrors::new();
        if !hotswap_domain::layer::is_valid_layer_name(name) {
            errors.push("LayerName must be alphanumeric with dashes, max 64 characters");
        }
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN)
        {
            errors.push(format!(
                "Description must be at most {MAX_DESCRIPTION_LEN} characters"
            ));
        }
        errors.into_result()?;
        // A layer is any zip; no bootstrap is required of it.
        let package = CodePackage::inspect(code, Runtime::Python311, &self.limits)?;
        if let Some(existing) = self.store.get_layer_version(name, None).await? {
            if !caller.owns(&existing.owner_id) {
                return Err(ControlError::Conflict(format!(
                    "layer name '{name}' belongs to another owner"
                )));
            }
        }
        let location = layer_location(name, &package.sha256);
        self.blobs.put(&location, package.bytes).await?;
        let layer = LayerVersion {
            layer_name: name.to_owned(),
            version: 0,
            description,
            code_sha256: package.sha256,
            code_size: package.size,
            code_location: location,
            owner_id: caller.owner_id.clone(),
            created_at: time::now(),
        };
        let stored = self.store.publish_layer_version(&layer).await?;
        tracing::info!(layer = %stored.reference(), sha256 = %stored.code_sha256, "layer version published");
        Ok(stored)
    }

    fn visible(caller: &Principal, layer: &LayerVersion) -> bool {
        caller.owns(&layer.owner_id)
    }

    pub async fn list_layers(&self, caller: &Principal) -> Result<Vec<LayerVersion>> {
        let all = self.store.list_layers().await?;
        Ok(all
            .into_iter()
            .filter(|l| Self::visible(caller, l))
            .collect())
    }

    pub async fn list_layer_versions(
        &self,
        caller: &Principal,
        name: &str,
    ) -> Result<Vec<LayerVersion>> {
        let versions = self.store.list_layer_versions(name).await?;
        if versions.is_empty() || !versions.iter().all(|l| Self::visible(caller, l)) {
            return Err(ControlError::NotFound(format!("layer '{name}' not found")));
        }
        Ok(versions)
    }

    pub async fn get_layer_version(
        &self,
        caller: &Principal,
        name: &str,
        version: u32,
    ) -> Result<LayerVersion> {
        match self.store.get_layer_version(name, Some(version)).await? {
            Some(l) if Self::visible(caller, &l) => Ok(l),
            _ => Err(ControlError::NotFound(format!(
                "layer version '{name}:{version}' not found"
            ))),
        }
    }

    /// Refused while a function's `$LATEST` or a published version uses it.
    pub async fn delete_layer_version(
        &self,
        caller: &Principal,
        name: &str,
        version: u32,
    ) -> Result<()> {
        let layer = self.get_layer_version(caller, name, version).await?;
        let newest = self
            .store
            .get_layer_version(name, None)
            .await?
            .map(|l| l.version);
        let pinned = layer.reference();
        let filter = FunctionFilter {
            owner_id: Some(layer.owner_id.clone()),
            limit: 1000,
            ..Default::default()
        };
        let mut users = Vec::new();
        let mut page = self.store.list_functions(&filter).await?;
        loop {
            for f in &page.items {
                for v in self.store.list_versions(&f.function_id).await? {
                    let uses = v.layers.iter().any(|r| {
                        *r == pinned || (*r == layer.layer_name && newest == Some(version))
                    });
                    if uses {
                        users.push(format!("{}:{}", f.name, v.version_string()));
                    }
                }
            }
            match page.next_token.take() {
                Some(after) => {
                    page = self
                        .store
                        .list_functions(&FunctionFilter {
                            after: Some(after),
                            ..filter.clone()
                        })
                        .await?
                }
                None => break,
            }
        }
        if !users.is_empty() {
            return Err(ControlError::Conflict(format!(
                "layer version '{pinned}' is used by {}",
                users.join(", ")
            )));
        }
        self.store.delete_layer_version(name, version).await?;
        self.routing_changed();
        Ok(())
    }

    /// The layer versions `refs` name, in order, for a function owned by
    /// `owner`: `Validation` errors for any that is malformed, missing or
    /// another owner's.
    pub(crate) async fn resolve_layer_refs(
        &self,
        owner: &Principal,
        refs: &[String],
    ) -> Result<Vec<LayerVersion>> {
        let mut out = Vec::with_capacity(refs.len());
        let mut errors = ValidationErrors::new();
        for r in refs {
            let parsed = match LayerRef::parse(r) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match self
                .store
                .get_layer_version(&parsed.name, parsed.version)
                .await?
            {
                Some(l) if Self::visible(owner, &l) => out.push(l),
                _ => errors.push(format!("Layer '{r}' does not exist")),
            }
        }
        errors.into_result()?;
        Ok(out)
    }

    /// The layers an invocation of `version` mounts at `/opt`, in order.
    pub async fn layers_for(&self, version: &FunctionVersion) -> Result<Vec<LayerVersion>> {
        if version.layers.is_empty() {
            return Ok(Vec::new());
        }
        let system = Principal {
            owner_id: "system".into(),
            is_admin: true,
        };
        self.resolve_layer_refs(&system, &version.layers)
            .await
            .map_err(|e| match e {
                ControlError::Validation(v) => ControlError::NotFound(v.to_string()),
                other => other,
            })
    }
}
