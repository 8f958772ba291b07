//! Function networking: subnets (created and deleted by admins, readable by
//! every caller), security groups (owner-scoped like functions), the checks
//! of a function's `vpcConfig`, and the [`NetworkSpec`] a version's
//! instances get.
//!
//! Every write to a subnet or a group moves the routing epoch, so that
//! routers prepare their routes (and the networks in them) again.

use hotswap_domain::network::{check_vpc_config, parse_egress, parse_subnet_cidr, validate_name};
use hotswap_domain::{
    time, EgressRuleInput, FunctionVersion, NetworkSpec, SecurityGroup, Subnet, ValidationErrors,
    VpcConfig,
};

use crate::{ControlError, ControlPlane, Principal, Result};

/// A subnet to create (`POST /v1/subnets`).
#[derive(Debug, Clone)]
pub struct NewSubnet {
    pub subnet_name: String,
    /// A private block, /16 to /28, e.g. `10.20.0.0/24`.
    pub cidr: String,
}

/// What a security group is made of (`POST` creates one, `PUT` replaces
/// these of an existing one).
#[derive(Debug, Clone)]
pub struct SecurityGroupSpec {
    pub group_name: String,
    /// The rules as given; each field that cannot be read is a validation
    /// message naming it (`egress[1].ports: …`).
    pub egress: Vec<EgressRuleInput>,
}

impl SecurityGroupSpec {
    /// The group's name and parsed rules checked: every message at once.
    fn apply(&self, group: &mut SecurityGroup) -> Result<()> {
        let mut errors = ValidationErrors::new();
        group.group_name = self.group_name.clone();
        match parse_egress(&self.egress) {
            Ok(rules) => group.egress = rules,
            Err(e) => {
                errors.extend(e);
                group.egress.clear();
            }
        }
        let count = self.egress.len();
        if let Err(e) = group.validate() {
            errors.extend(e);
        }
        if count > hotswap_domain::network::MAX_EGRESS_RULES
            && !errors.messages().iter().any(|m| m.starts_with("egress: "))
        {
            errors.push(format!(
                "egress: at most {} rules (got {count})",
                hotswap_domain::network::MAX_EGRESS_RULES
            ));
        }
        errors.into_result().map_err(ControlError::from)
    }
}

impl ControlPlane {
    // ---- subnets -------------------------------------------------------------

    /// Admins only. The block must be private, /16 to /28, and overlap no
    /// other subnet's (a validation error); the name must be free (a
    /// conflict).
    pub async fn create_subnet(&self, caller: &Principal, new: NewSubnet) -> Result<Subnet> {
        caller.require_admin()?;
        let mut errors = validate_name("subnetName", &new.subnet_name);
        let cidr = parse_subnet_cidr(&new.cidr).map_err(|e| errors.extend(e));
        let (Ok(cidr), true) = (cidr, errors.is_empty()) else {
            return Err(errors.into());
        };
        let existing = self.store.list_subnets().await?;
        if let Some(other) = existing.iter().find(|s| s.cidr.overlaps(&cidr)) {
            return Err(ControlError::validation(format!(
                "cidr: {cidr} overlaps subnet '{}' ({}, {})",
                other.subnet_name, other.subnet_id, other.cidr
            )));
        }
        if existing.iter().any(|s| s.subnet_name == new.subnet_name) {
            return Err(ControlError::Conflict(format!(
                "subnet '{}' already exists",
                new.subnet_name
            )));
        }
        let subnet = Subnet::new(new.subnet_name, cidr, &caller.owner_id);
        subnet.validate()?;
        self.store.create_subnet(&subnet).await?;
        self.routing_changed();
        tracing::info!(subnet = %subnet.subnet_id, name = %subnet.subnet_name, cidr = %subnet.cidr, "subnet created");
        Ok(subnet)
    }

    /// Every subnet (any caller may place functions in any subnet).
    pub async fn list_subnets(&self, _caller: &Principal) -> Result<Vec<Subnet>> {
        Ok(self.store.list_subnets().await?)
    }

    pub async fn get_subnet(&self, _caller: &Principal, subnet_id: &str) -> Result<Subnet> {
        self.store
            .get_subnet(subnet_id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("subnet '{subnet_id}' not found")))
    }

    /// Admins only; refused (409, naming them) while a function or a stored
    /// version names the subnet.
    pub async fn delete_subnet(&self, caller: &Principal, subnet_id: &str) -> Result<()> {
        caller.require_admin()?;
        if !self.store.delete_subnet(subnet_id).await? {
            return Err(ControlError::NotFound(format!(
                "subnet '{subnet_id}' not found"
            )));
        }
        self.routing_changed();
        tracing::info!(subnet = %subnet_id, "subnet deleted");
        Ok(())
    }

    // ---- security groups -----------------------------------------------------

    /// Creates the group in the caller's namespace, or (an admin) in
    /// `owner`'s.
    pub async fn create_security_group(
        &self,
        caller: &Principal,
        owner: Option<&str>,
        spec: SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        let owner = owner.unwrap_or(&caller.owner_id).to_owned();
        if !caller.owns(&owner) {
            return Err(ControlError::Forbidden(format!(
                "security groups of owner '{owner}' belong to another owner"
            )));
        }
        let mut group = SecurityGroup::new(String::new(), owner, Vec::new());
        spec.apply(&mut group)?;
        self.check_group_name_free(&group).await?;
        self.store.create_security_group(&group).await?;
        self.routing_changed();
        tracing::info!(group = %group.security_group_id, owner = %group.owner_id, rules = group.egress.len(), "security group created");
        Ok(group)
    }

    /// `Conflict` when another group of the owner has the name.
    async fn check_group_name_free(&self, group: &SecurityGroup) -> Result<()> {
        let taken = self
            .store
            .list_security_groups(Some(&group.owner_id))
            .await?
            .into_iter()
            .any(|g| {
                g.group_name == group.group_name && g.security_group_id != group.security_group_id
            });
        if taken {
            return Err(ControlError::Conflict(format!(
                "security group '{}' already exists",
                group.group_name
            )));
        }
        Ok(())
    }

    /// A tenant lists only its own groups, whatever owner it names; an
    /// admin every owner's, or one owner's.
    pub async fn list_security_groups(
        &self,
        caller: &Principal,
        owner: Option<&str>,
    ) -> Result<Vec<SecurityGroup>> {
        if !caller.is_admin {
            if owner.is_some_and(|o| o != caller.owner_id) {
                return Ok(Vec::new());
            }
            return Ok(self
                .store
                .list_security_groups(Some(&caller.owner_id))
                .await?);
        }
        Ok(self.store.list_security_groups(owner).await?)
    }

    /// Another owner's group is "not found".
    pub async fn get_security_group(
        &self,
        caller: &Principal,
        group_id: &str,
    ) -> Result<SecurityGroup> {
        match self.store.get_security_group(group_id).await? {
            Some(g) if caller.owns(&g.owner_id) => Ok(g),
            _ => Err(ControlError::NotFound(format!(
                "security group '{group_id}' not found"
            ))),
        }
    }

    /// A group the caller may change: 404 when it does not exist, 403 when
    /// it is another owner's.
    async fn group_for_write(&self, caller: &Principal, group_id: &str) -> Result<SecurityGroup> {
        let g = self
            .store
            .get_security_group(group_id)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("security group '{group_id}' not found"))
            })?;
        if !caller.owns(&g.owner_id) {
            return Err(ControlError::Forbidden(format!(
                "security group '{group_id}' belongs to another owner"
            )));
        }
        Ok(g)
    }

    /// Replaces the group's name and rules.
    pub async fn update_security_group(
        &self,
        caller: &Principal,
        group_id: &str,
        spec: SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        let mut group = self.group_for_write(caller, group_id).await?;
        spec.apply(&mut group)?;
        self.check_group_name_free(&group).await?;
        group.updated_at = time::now();
        self.store.update_security_group(&group).await?;
        self.routing_changed();
        tracing::info!(group = %group.security_group_id, rules = group.egress.len(), "security group updated");
        Ok(group)
    }

    /// Refused (409, naming them) while a function or a stored version
    /// names the group.
    pub async fn delete_security_group(&self, caller: &Principal, group_id: &str) -> Result<()> {
        self.group_for_write(caller, group_id).await?;
        if !self.store.delete_security_group(group_id).await? {
            return Err(ControlError::NotFound(format!(
                "security group '{group_id}' not found"
            )));
        }
        self.routing_changed();
        tracing::info!(group = %group_id, "security group deleted");
        Ok(())
    }

    // ---- functions' vpcConfig ------------------------------------------------

    /// The references of a `vpcConfig` of a function owned by `owner`: every
    /// subnet must exist, every group must exist and be `owner`'s (another
    /// owner's group reads as an unknown id). Messages name
    /// `vpcConfig.subnetIds[i]` / `vpcConfig.securityGroupIds[i]`.
    pub(crate) async fn check_vpc_references(
        &self,
        owner: &str,
        vpc: Option<&VpcConfig>,
    ) -> Result<()> {
        let Some(vpc) = vpc else { return Ok(()) };
        let mut errors = vpc.validate();
        errors.extend(check_vpc_config(vpc));
        // Counts are bounded before any lookup.
        errors.into_result()?;
        let mut errors = ValidationErrors::new();
        for (i, id) in vpc.subnet_ids.iter().enumerate() {
            if self.store.get_subnet(id).await?.is_none() {
                errors.push(format!(
                    "vpcConfig.subnetIds[{i}]: subnet '{id}' does not exist"
                ));
            }
        }
        for (i, id) in vpc.security_group_ids.iter().enumerate() {
            match self.store.get_security_group(id).await? {
                Some(g) if g.owner_id == owner => {}
                _ => errors.push(format!(
                    "vpcConfig.securityGroupIds[{i}]: security group '{id}' does not exist"
                )),
            }
        }
        errors.into_result().map_err(ControlError::from)
    }

    /// What the instances of `version` get from its `vpcConfig`: `None`
    /// (the default egress only) when it has no `vpcConfig` or no subnet;
    /// otherwise its subnets, in order, and the union of its groups' egress
    /// rules, in group order.
    ///
    /// A subnet or group in use cannot be deleted, but a reference that
    /// went missing anyway (a race with a delete, data from before
    /// networking) is skipped with a warning; a group that is not the
    /// function's owner's is skipped too. With no subnet left, the answer
    /// is `None`.
    pub async fn network_for(&self, version: &FunctionVersion) -> Result<Option<NetworkSpec>> {
        let Some(vpc) = version
            .vpc_config
            .as_ref()
            .filter(|v| !v.subnet_ids.is_empty())
        else {
            return Ok(None);
        };
        let function = version.function_name.as_str();
        let mut subnets = Vec::with_capacity(vpc.subnet_ids.len());
        for id in &vpc.subnet_ids {
            match self.store.get_subnet(id).await? {
                Some(s) => subnets.push(s),
                None => {
                    tracing::warn!(function, version = version.version, subnet = %id, "subnet of a vpcConfig does not exist; skipped")
                }
            }
        }
        if subnets.is_empty() {
            tracing::warn!(
                function,
                version = version.version,
                "no subnet of the vpcConfig exists; default egress only"
            );
            return Ok(None);
        }
        let owner = self
            .store
            .get_function_by_id(&version.function_id)
            .await?
            .map(|f| f.owner_id);
        let mut groups = Vec::with_capacity(vpc.security_group_ids.len());
        for id in &vpc.security_group_ids {
            match self.store.get_security_group(id).await? {
                Some(g) if owner.as_deref() == Some(g.owner_id.as_str()) => groups.push(g),
                Some(_) => {
                    tracing::warn!(function, version = version.version, group = %id, "security group of another owner in a vpcConfig; skipped")
                }
                None => {
                    tracing::warn!(function, version = version.version, group = %id, "security group of a vpcConfig does not exist; skipped")
                }
            }
        }
        Ok(Some(NetworkSpec::new(subnets, &groups)))
    }
}
