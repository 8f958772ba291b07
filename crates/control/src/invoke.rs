//! The store reads behind the router's resolution (`hotswap-router` owns
//! the qualifier rules and the caches), and queueing asynchronous
//! invocations.

use hotswap_domain::{Function, FunctionAlias, FunctionVersion};

use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

impl ControlPlane {
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
