//! Resolving what an invocation runs: the qualifier (`$LATEST`, a version
//! number, an alias with weighted routing) to one concrete version.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hotswap_domain::{Function, FunctionVersion, Qualifier};

use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

/// How long a cached version is used before it is read again: the most a
/// version deleted by another server sharing the database stays invocable
/// here.
pub(crate) const VERSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept before the cache starts over.
const VERSION_CACHE_MAX: usize = 10_000;

/// Versions invocations resolved recently, so that a warm invocation reads
/// only its function (and alias) from the store.
///
/// Architecture Invariant: an entry is only found through the function row
/// read fresh for the same request. A published version never changes; its
/// key is the function's id, which a function deleted and recreated under
/// the same name (or another owner's function of that name) never shares. `$LATEST` changes only together
/// with its function's `updated_at` (`update_function` writes both in one
/// transaction), which its key carries too. Aliases are not cached.
#[derive(Default)]
pub(crate) struct VersionCache {
    entries: Mutex<HashMap<VersionKey, (FunctionVersion, Instant)>>,
}

#[derive(Hash, PartialEq, Eq)]
struct VersionKey {
    function_id: String,
    /// The function's `updated_at` for `$LATEST`; 0 for a published version.
    updated_at: i64,
    number: u32,
}

impl VersionKey {
    fn new(f: &Function, number: u32) -> Self {
        Self {
            function_id: f.function_id.clone(),
            updated_at: if number == 0 {
                f.updated_at.timestamp_micros()
            } else {
                0
            },
            number,
        }
    }
}

impl VersionCache {
    fn get(&self, key: &VersionKey) -> Option<FunctionVersion> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < VERSION_CACHE_TTL)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, key: VersionKey, version: &FunctionVersion) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= VERSION_CACHE_MAX {
                entries.clear();
            }
            entries.insert(key, (version.clone(), Instant::now()));
        }
    }

    /// Drops every entry of a function (its version or itself was deleted).
    pub(crate) fn forget(&self, function_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|k, _| k.function_id != function_id);
        }
    }
}

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
        let key = VersionKey::new(&function, number);
        if let Some(version) = self.versions.get(&key) {
            return Ok((function, version));
        }
        let version = self.store.get_version(id, number).await?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "version {} of function '{name}' not found",
                hotswap_domain::version::version_string(number)
            ))
        })?;
        self.versions.put(key, &version);
        Ok((function, version))
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
