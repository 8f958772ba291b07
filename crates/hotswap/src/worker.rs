//! The asynchronous-invocation worker: claims due invocations from the store
//! under a lease, runs them, and records each attempt's outcome (retry with
//! backoff, success, or final failure). A server that dies mid-attempt
//! leaves the lease to expire; the next worker runs it again.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hotswap_control::{ControlPlane, Principal};
use hotswap_domain::{time, AsyncInvocation, InvocationResult};
use hotswap_runner::{InvokeRequest, Runner};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often to look for due invocations.
    pub poll: Duration,
    /// Invocations claimed per poll.
    pub batch: u32,
    /// Lease beyond the function's timeout before a claimed invocation is
    /// considered abandoned.
    pub lease_grace: Duration,
}

pub fn spawn(control: ControlPlane, runner: &Arc<Runner>, config: WorkerConfig) {
    let runner = Arc::downgrade(runner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.poll);
        loop {
            tick.tick().await;
            let Some(r) = runner.upgrade() else { break };
            let now = time::now();
            let lease = now + chrono::Duration::from_std(config.lease_grace).unwrap_or_default();
            let claimed = match control
                .store()
                .claim_invocations(now, lease, config.batch)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim asynchronous invocations");
                    continue;
                }
            };
            for inv in claimed {
                let (control, r, grace) = (control.clone(), r.clone(), config.lease_grace);
                tokio::spawn(async move { run_one(&control, &r, inv, grace).await });
            }
        }
    });
}

/// Runs one attempt and records its outcome.
async fn run_one(
    control: &ControlPlane,
    runner: &Runner,
    mut inv: AsyncInvocation,
    grace: Duration,
) {
    let (result, executed) = attempt(control, runner, &mut inv, grace).await;
    let ok = result.success;
    inv.finish_attempt(result, executed);
    tracing::debug!(request = %inv.request_id, status = %inv.status, attempt = inv.attempts, ok, "async attempt");
    if let Err(e) = control.store().update_invocation(&inv).await {
        tracing::error!(request = %inv.request_id, error = %e, "cannot record an async attempt; it will run again after its lease");
    }
}

/// Runs with the platform's rights: queueing it was authorised.
async fn attempt(
    control: &ControlPlane,
    runner: &Runner,
    inv: &mut AsyncInvocation,
    grace: Duration,
) -> (InvocationResult, Option<String>) {
    let system = Principal {
        owner_id: "system".into(),
        is_admin: true,
    };
    let (function, version) = match control
        .resolve_invocation(&system, &inv.function_name, &inv.qualifier)
        .await
    {
        Ok(fv) => fv,
        Err(e) => {
            return (
                platform_failure(inv, "Platform.FunctionNotFound", &e.to_string()),
                None,
            )
        }
    };
    // A function deleted and created again under the same name after this
    // event was queued is someone else's: never hand it the event.
    if function.created_at > inv.created_at {
        let msg = format!(
            "function '{}' was replaced after this invocation was queued",
            inv.function_name
        );
        return (
            platform_failure(inv, "Platform.FunctionNotFound", &msg),
            None,
        );
    }
    let executed = if version.version == 0 {
        hotswap_domain::LATEST.to_owned()
    } else {
        version.version.to_string()
    };
    let layers = match control.layers_for(&version).await {
        Ok(l) => l,
        Err(e) => {
            return (
                platform_failure(inv, "Platform.LayerNotFound", &e.to_string()),
                Some(executed),
            )
        }
    };
    // Extend the lease to cover this function's timeout.
    let timeout = Duration::from_secs(u64::from(version.timeout));
    inv.lease_until =
        Some(time::now() + chrono::Duration::from_std(timeout + grace).unwrap_or_default());
    if let Err(e) = control.store().update_invocation(inv).await {
        tracing::warn!(request = %inv.request_id, error = %e, "cannot extend the lease");
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&inv.payload)
        .map(Bytes::from)
        .unwrap_or_default();
    let req = InvokeRequest {
        function: &function,
        version: &version,
        layers: &layers,
        payload,
        content_type: inv.content_type.clone(),
    };
    match runner.invoke(req).await {
        Ok(done) => (done.result, Some(executed)),
        Err(e) => (
            platform_failure(inv, "Platform.InvocationFailed", &e.to_string()),
            Some(executed),
        ),
    }
}

fn platform_failure(inv: &AsyncInvocation, error_type: &str, message: &str) -> InvocationResult {
    InvocationResult {
        success: false,
        status_code: 500,
        request_id: inv.request_id.clone(),
        error_type: Some(error_type.to_owned()),
        error_message: Some(message.to_owned()),
        ..InvocationResult::default()
    }
}
