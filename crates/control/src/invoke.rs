//! Resolving what an invocation runs: the qualifier (`$LATEST`, a version
//! number, an alias with weighted routing) to one concrete version.

use hotswap_domain::{Function, FunctionAlias, FunctionVersion, Qualifier};

use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

impl ControlPlane {
    /// The function and the version an invocation with `qualifier` runs.
    /// Aliases apply their weights with a fresh random draw per call.
    pub async fn resolve_invocation(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        qualifier: &str,
    ) -> Result<(Function, FunctionVersion)> {
        let function = self.owned_function(caller, function, false).await?;
        self.resolve_version(function, qualifier).await
    }

    /// The version of `function` an invocation with `qualifier` runs.
    pub async fn resolve_version(
        &self,
        function: Function,
        qualifier: &str,
    ) -> Result<(Function, FunctionVersion)> {
        let name = function.name.clone();
        let id = function.function_id.as_str();
        let q: Qualifier =
            qualifier
                .parse()
                .map_err(|e: hotswap_domain::names::InvalidQualifier| {
                    ControlError::validation(e.to_string())
                })?;
        let number = match &q {
            Qualifier::Latest => 0,
            Qualifier::Version(n) => *n,
            Qualifier::Alias(a) => {
                let alias = self.store.get_alias(id, a).await?.ok_or_else(|| {
                    ControlError::NotFound(format!("alias '{a}' of function '{name}' not found"))
                })?;
                alias.route_version(rand::random::<f64>())
            }
        };
        let version = self.store.get_version(id, number).await?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "version {} of function '{name}' not found",
                hotswap_domain::version::version_string(number)
            ))
        })?;
        Ok((function, version))
    }

    /// The function the caller may invoke under this reference (404 for
    /// one it cannot see): the router's lookup on a cache miss.
    pub async fn invocable_function(
        &self,
        caller: &Principal,
        function: &FunctionRef,
    ) -> Result<Function> {
        self.owned_function(caller, function, false).await
    }

    /// An alias of the function with this id, read from the store.
    pub async fn find_alias(
        &self,
        function_id: &str,
        alias: &str,
    ) -> Result<Option<FunctionAlias>> {
        Ok(self.store.get_alias(function_id, alias).await?)
    }

    /// A version (0 = `$LATEST`) of the function with this id, read from
    /// the store.
    pub async fn version_of(
        &self,
        function_id: &str,
        number: u32,
    ) -> Result<Option<FunctionVersion>> {
        Ok(self.store.get_version(function_id, number).await?)
    }
}

impl ControlPlane {
    /// Queues an asynchronous invocation after checking that the caller may
    /// invoke the function and that the qualifier resolves now. Persisted
    /// before this returns: the caller's 202 means it will run.
    ///
    /// The invocation belongs to the function's owner (so that the worker
    /// finds the function in that owner's namespace; admins read it too) and
    /// names the function's id: it runs only on that function.
    pub async fn enqueue_invocation(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        qualifier: &str,
        payload_base64: String,
        content_type: &str,
    ) -> Result<hotswap_domain::AsyncInvocation> {
        let (f, _) = self.resolve_invocation(caller, function, qualifier).await?;
        self.enqueue_for(&f, qualifier, payload_base64, content_type)
            .await
    }

    /// Queues an asynchronous invocation of `f`, whose qualifier the caller
    /// (the router) has already resolved and authorised.
    pub async fn enqueue_for(
        &self,
        f: &Function,
        qualifier: &str,
        payload_base64: String,
        content_type: &str,
    ) -> Result<hotswap_domain::AsyncInvocation> {
        let f = f.clone();
        let mut inv = hotswap_domain::AsyncInvocation::new(
            uuid::Uuid::new_v4().to_string(),
            f.name,
            qualifier,
            f.owner_id,
            payload_base64,
            content_type,
        );
        inv.function_id = Some(f.function_id);
        self.store.enqueue_invocation(&inv).await?;
        Ok(inv)
    }

    /// An asynchronous invocation the caller queued (admins: any).
    pub async fn get_invocation(
        &self,
        caller: &Principal,
        request_id: &str,
    ) -> Result<hotswap_domain::AsyncInvocation> {
        match self.store.get_invocation(request_id).await? {
            Some(inv) if caller.owns(&inv.owner_id) => Ok(inv),
            _ => Err(ControlError::NotFound(format!(
                "invocation '{request_id}' not found"
            ))),
        }
    }

    /// A page of the function's asynchronous invocations, newest first
    /// (404 for a function the caller cannot see). Only those of this
    /// function are listed (its owner's, queued for its id): an earlier
    /// function of the same name keeps its invocations to itself.
    pub async fn list_invocations(
        &self,
        caller: &Principal,
        function: &FunctionRef,
        status: Option<hotswap_domain::AsyncStatus>,
        limit: u32,
        next_token: Option<&str>,
    ) -> Result<hotswap_store::Page<hotswap_domain::AsyncInvocation>> {
        let function = self.owned_function(caller, function, false).await?;
        let after = next_token
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<hotswap_store::InvocationCursor>()
                    .map_err(|e| ControlError::validation(e.to_string()))
            })
            .transpose()?;
        let filter = hotswap_store::InvocationFilter {
            function_name: function.name,
            owner_id: function.owner_id,
            function_id: Some(function.function_id),
            status,
            limit,
            after,
        };
        Ok(self.store.list_invocations(&filter).await?)
    }
}
