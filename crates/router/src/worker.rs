//! The asynchronous-invocation worker: claims due invocations from the store
//! under a lease, runs them, and records each attempt's outcome (retry with
//! backoff, success, or final failure with its dead letter).
//!
//! - **In flight**: at most `max_in_flight` attempts run at once; a poll
//!   claims only as many as there are free slots.
//! - **Leases**: a claim leases an invocation for `lease_grace`; once the
//!   version is resolved the lease is extended to cover the wait for an
//!   instance and the function's timeout, and it is renewed every half grace
//!   while the attempt runs (a slow cold start cannot outlive it). A server
//!   that dies stops renewing: the invocation is claimed again after at most
//!   its timeout plus the grace.
//! - **Stale workers**: every claim gets a fresh lease token and outcomes are
//!   written only under it (`record_attempt`), so a worker whose lease ran
//!   out cannot overwrite a newer attempt.
//! - **Throttling**: an attempt refused because the function is at
//!   `MaxInstances` is put back after `THROTTLE_DELAY`, uncounted.
//! - **Dead letters**: a final failure queues the function's dead letter in
//!   the same transaction that records it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hotswap_control::{ControlPlane, FunctionRef, Principal};
use hotswap_domain::invocation::THROTTLE_DELAY;
use hotswap_domain::{time, AsyncInvocation, AsyncStatus, DeadLetterTarget, InvocationResult};
use hotswap_runner::RunnerError;
use hotswap_store::Claimed;
use tokio::sync::Semaphore;

use crate::{Call, RouteError, Router};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often to look for due invocations.
    pub poll: Duration,
    /// Most invocations claimed per poll.
    pub batch: u32,
    /// Most attempts running at once.
    pub max_in_flight: usize,
    /// Lease beyond the function's timeout before a claimed invocation is
    /// considered abandoned.
    pub lease_grace: Duration,
    /// The runner's longest wait for a free instance (part of an attempt).
    pub queue_timeout: Duration,
}

/// The asynchronous worker: one [`Worker::poll`] per tick of its
/// background task claims as many due invocations as it has free slots and
/// starts each attempt.
pub struct Worker {
    router: std::sync::Weak<Router>,
    slots: Arc<Semaphore>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(router: &Arc<Router>, config: WorkerConfig) -> Self {
        Self {
            router: Arc::downgrade(router),
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
        }
    }

    /// Claims due invocations and starts their attempts; `Ok(false)` once
    /// the router has stopped.
    pub async fn poll(&self) -> Result<bool, String> {
        let Some(router) = self.router.upgrade() else {
            return Ok(false);
        };
        let config = &self.config;
        let free = u32::try_from(self.slots.available_permits())
            .unwrap_or(u32::MAX)
            .min(config.batch);
        if free == 0 {
            return Ok(true);
        }
        let now = time::now();
        let lease = now + chrono::Duration::from_std(config.lease_grace).unwrap_or_default();
        let claimed = router
            .control()
            .store()
            .claim_invocations(now, lease, free)
            .await
            .map_err(|e| format!("cannot claim asynchronous invocations: {e}"))?;
        for claim in claimed {
            // Only this task takes slots, and it claimed no more than were
            // free: this never waits.
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return Ok(false);
            };
            let (r, config) = (router.clone(), config.clone());
            tokio::spawn(async move {
                run_claimed(&r, claim, &config).await;
                drop(slot);
            });
        }
        Ok(true)
    }
}

/// What one attempt came to.
enum Attempt {
    /// The function ran (or the platform failed it): the result to record.
    Ran(InvocationResult, Option<String>),
    /// The function was at its concurrency limit: try again, uncounted.
    Throttled,
    /// Another claim owns the invocation now: record nothing.
    Lost,
}

async fn run_claimed(router: &Router, claim: Claimed, config: &WorkerConfig) {
    let control = router.control();
    let Some(token) = claim.invocation().lease_token.clone() else {
        tracing::error!(request = %claim.invocation().request_id, "claimed without a lease token; left for its lease to run out");
        return;
    };
    let mut inv = match claim {
        Claimed::Exhausted(mut inv) => {
            tracing::warn!(request = %inv.request_id, attempts = inv.attempts, "the last attempt was lost with its worker; the invocation has failed");
            inv.fail_lost_attempt();
            record(control, inv, &token).await;
            return;
        }
        Claimed::Attempt(inv) => inv,
    };
    match attempt(router, &inv, &token, config).await {
        Attempt::Ran(result, executed) => {
            let ok = result.success;
            inv.finish_attempt(result, executed);
            tracing::debug!(request = %inv.request_id, status = %inv.status, attempt = inv.attempts, ok, "async attempt");
            record(control, inv, &token).await;
        }
        Attempt::Throttled => {
            tracing::debug!(request = %inv.request_id, function = %inv.function_name, "async attempt throttled; queued again");
            inv.requeue_throttled(THROTTLE_DELAY);
            record(control, inv, &token).await;
        }
        Attempt::Lost => {
            tracing::warn!(request = %inv.request_id, "another worker claimed this invocation; this attempt is not recorded");
        }
    }
}

/// Writes the outcome under the claim's token, with the dead letter of a
/// final failure in the same transaction.
async fn record(control: &ControlPlane, mut inv: AsyncInvocation, token: &str) {
    let letter = if inv.status == AsyncStatus::Failed {
        dead_letter_for(control, &inv).await
    } else {
        None
    };
    inv.dead_letter_request_id = letter.as_ref().map(|l| l.request_id.clone());
    match control
        .store()
        .record_attempt(&inv, token, letter.as_ref())
        .await
    {
        Ok(true) => {
            if let (AsyncStatus::Failed, Some(trigger)) = (inv.status, &inv.trigger_id) {
                // A scheduled tick that finally failed counts against its trigger.
                if let Err(e) = control
                    .store()
                    .record_trigger_runs(trigger, 0, 1, None)
                    .await
                {
                    tracing::warn!(trigger = %trigger, error = %e, "cannot count a failed tick");
                }
            }
            if let Some(l) = &letter {
                tracing::info!(request = %inv.request_id, dead_letter = %l.request_id, target = %l.function_name, "failed asynchronous invocation dead-lettered");
            }
        }
        Ok(false) => {
            tracing::warn!(request = %inv.request_id, "a newer claim owns this invocation; this attempt's outcome is dropped");
        }
        Err(e) => {
            tracing::error!(request = %inv.request_id, error = %e, "cannot record an async attempt; it will run again after its lease");
        }
    }
}

/// The dead letter of a finally failed invocation, if its function names a
/// target that exists and belongs to the same owner. Dead letters are not
/// dead-lettered again.
async fn dead_letter_for(control: &ControlPlane, inv: &AsyncInvocation) -> Option<AsyncInvocation> {
    if inv.dead_letter_of.is_some() {
        return None;
    }
    let store = control.store();
    let found = match &inv.function_id {
        Some(id) => store.get_function_by_id(id).await,
        None => store.get_function(&inv.owner_id, &inv.function_name).await,
    };
    let function = match found {
        Ok(Some(f)) if queued_for(inv, &f) => f,
        Ok(_) => return None,
        Err(e) => {
            tracing::error!(request = %inv.request_id, error = %e, "cannot read the function's dead-letter target");
            return None;
        }
    };
    let target: DeadLetterTarget = function.dead_letter_target.as_deref()?.parse().ok()?;
    match store.get_function(&inv.owner_id, &target.function).await {
        Ok(Some(t)) => {
            let mut letter = inv.dead_letter(&target);
            letter.function_id = Some(t.function_id);
            Some(letter)
        }
        Ok(_) => {
            tracing::warn!(request = %inv.request_id, target = %target, "the dead-letter target no longer exists; the failure stays visible only as this invocation");
            None
        }
        Err(e) => {
            tracing::error!(request = %inv.request_id, error = %e, "cannot read the dead-letter target");
            None
        }
    }
}

/// Whether `f` is the function `inv` was queued for: the same id (or, for an
/// invocation queued before function ids, a function that existed then).
fn queued_for(inv: &AsyncInvocation, f: &hotswap_domain::Function) -> bool {
    match &inv.function_id {
        Some(id) => *id == f.function_id,
        None => f.created_at <= inv.created_at,
    }
}

/// Runs with the platform's rights: queueing it was authorised.
async fn attempt(
    router: &Router,
    inv: &AsyncInvocation,
    token: &str,
    config: &WorkerConfig,
) -> Attempt {
    let control = router.control();
    let system = Principal {
        owner_id: "system".into(),
        is_admin: true,
    };
    // The function it was queued for, by its id; one queued before ids
    // existed by its name in its owner's namespace.
    let resolved = match &inv.function_id {
        Some(id) => router.resolve_by_id(id, &inv.qualifier).await,
        None => {
            let function = FunctionRef::of_owner(inv.owner_id.clone(), inv.function_name.clone());
            router.resolve(&system, &function, &inv.qualifier).await
        }
    };
    let route = match resolved {
        Ok(route) => route,
        Err(RouteError::Run(e)) => {
            return Attempt::Ran(
                platform_failure(inv, "Platform.InvocationFailed", &e.to_string()),
                None,
            )
        }
        Err(RouteError::Layer(e)) => {
            return Attempt::Ran(
                platform_failure(inv, "Platform.LayerNotFound", &e.to_string()),
                None,
            )
        }
        Err(RouteError::Control(e)) => {
            let message = match (&inv.function_id, &e) {
                (Some(_), hotswap_control::ControlError::NotFound(m))
                    if m.starts_with("function ") =>
                {
                    format!(
                        "function '{}' not found (it was deleted after this invocation was queued)",
                        inv.function_name
                    )
                }
                _ => e.to_string(),
            };
            return Attempt::Ran(
                platform_failure(inv, "Platform.FunctionNotFound", &message),
                None,
            );
        }
    };
    // A function deleted and created again under the same name after this
    // event was queued is another function: never hand it the event.
    if !queued_for(inv, &route.function) {
        let msg = format!(
            "function '{}' was replaced after this invocation was queued",
            inv.function_name
        );
        return Attempt::Ran(
            platform_failure(inv, "Platform.FunctionNotFound", &msg),
            None,
        );
    }
    let executed = route.executed_version();
    // The lease now covers the wait for an instance and the whole timeout;
    // renewals below keep it ahead of a slow cold start.
    let timeout = Duration::from_secs(u64::from(route.version.timeout));
    let lease_for =
        |span: Duration| time::now() + chrono::Duration::from_std(span).unwrap_or_default();
    let renew = |span: Duration| async move {
        control
            .store()
            .renew_invocation_lease(&inv.request_id, token, lease_for(span))
            .await
    };
    match renew(config.queue_timeout + timeout + config.lease_grace).await {
        Ok(true) => {}
        Ok(false) => return Attempt::Lost,
        Err(e) => {
            tracing::warn!(request = %inv.request_id, error = %e, "cannot extend the lease");
        }
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&inv.payload)
        .map(Bytes::from)
        .unwrap_or_default();
    let call = Call {
        payload,
        content_type: inv.content_type.clone(),
        request_id: Some(inv.request_id.clone()),
        attempt: Some(inv.attempts),
    };
    let invoke = router.invoke(&route, call);
    tokio::pin!(invoke);
    let period = (config.lease_grace / 2).max(Duration::from_millis(100));
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let outcome = loop {
        tokio::select! {
            outcome = &mut invoke => break outcome,
            _ = renewals.tick() => match renew(timeout + config.lease_grace).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(request = %inv.request_id, "lease taken over by another claim while running"),
                Err(e) => tracing::warn!(request = %inv.request_id, error = %e, "cannot renew the lease"),
            },
        }
    };
    match outcome {
        Ok(done) => Attempt::Ran(done.result, Some(executed)),
        Err(RouteError::Run(RunnerError::TooManyRequests(_))) => Attempt::Throttled,
        Err(e) => Attempt::Ran(
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
