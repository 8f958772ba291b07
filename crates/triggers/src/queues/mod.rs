//! Queue triggers' side of the router: a [`BatchInvoker`] that runs a
//! batch's event through the trigger's target (its version, alias or
//! `$LATEST`, with a deployment's weights, as every trigger) and sends dead
//! messages to a function as asynchronous invocations.

pub mod embedded;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use hotswap_control::{FunctionRef, NewQueueMessage, Principal};
use hotswap_domain::queue::{DEAD_LETTER_SOURCE_ATTRIBUTE, MAX_ATTRIBUTES};
use hotswap_router::{Call, RouteError, Router, RunnerError};

use crate::consumer::{BatchInvoker, Invoked};
use crate::sources::Delivery;

/// A dead-letter function: `fn:NAME[:QUALIFIER]` of the trigger's owner.
#[derive(Clone)]
pub struct DeadLetterFunction {
    pub name: String,
    pub qualifier: String,
    /// Builds the event a dead message is delivered with.
    pub event: Arc<dyn Fn(&Delivery) -> Bytes + Send + Sync>,
}

/// Runs a queue trigger's batches through the router.
pub struct RouterInvoker {
    pub router: Arc<Router>,
    pub function_id: String,
    /// The trigger's `targetVersion`.
    pub qualifier: String,
    /// The trigger's (and its function's) owner.
    pub owner: String,
    /// The queue consumed (a dead message names it in its
    /// `DeadLetterSourceQueue` attribute).
    pub queue: String,
    pub dead_letter: Option<DeadLetterFunction>,
}

/// Invokes the trigger's target (`function_id` at `qualifier`, through a
/// deployment's weights) with `event`, synchronously, as a queue or stream
/// batch is run.
pub async fn invoke_target(
    router: &Router,
    function_id: &str,
    qualifier: &str,
    event: Bytes,
) -> Invoked {
    let route = match router.resolve_by_id(function_id, qualifier).await {
        Ok(r) => r,
        Err(e) => return Invoked::Failed(e.to_string()),
    };
    match router
        .invoke(&route, Call::new(event, "application/json"))
        .await
    {
        Ok(inv) => match inv.function_error {
            None => Invoked::Succeeded(inv.payload),
            Some(kind) => Invoked::Failed(format!(
                "{kind}: {}",
                inv.result.error_message.unwrap_or_default()
            )),
        },
        Err(RouteError::Run(RunnerError::TooManyRequests(_))) => Invoked::Throttled,
        Err(e) => Invoked::Failed(e.to_string()),
    }
}

#[async_trait]
impl BatchInvoker for RouterInvoker {
    async fn invoke(&self, event: Bytes) -> Invoked {
        invoke_target(&self.router, &self.function_id, &self.qualifier, event).await
    }

    async fn dead_letter_to_function(&self, message: &Delivery) -> Result<(), String> {
        let Some(dl) = &self.dead_letter else {
            return Err("no dead-letter function".into());
        };
        let caller = Principal {
            owner_id: self.owner.clone(),
            is_admin: false,
        };
        let payload = base64::engine::general_purpose::STANDARD.encode((dl.event)(message));
        self.router
            .enqueue(
                &caller,
                &FunctionRef::new(dl.name.clone()),
                &dl.qualifier,
                payload,
                "application/json",
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn dead_letter_to_queue(&self, queue: &str, message: &Delivery) -> Result<(), String> {
        // Room for the source attribute within the attribute limit.
        let mut attributes: std::collections::BTreeMap<String, String> = message
            .attributes
            .iter()
            .filter(|(k, _)| k.as_str() != DEAD_LETTER_SOURCE_ATTRIBUTE)
            .take(MAX_ATTRIBUTES - 1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.insert(DEAD_LETTER_SOURCE_ATTRIBUTE.into(), self.queue.clone());
        self.router
            .control()
            .send_queue_message_for(
                &self.owner,
                queue,
                NewQueueMessage {
                    body: message.body.clone(),
                    attributes,
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
