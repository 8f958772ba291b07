//! [`Pulls`]: a queue consumer's pull requests, answered on inboxes that
//! outlive them.
//!
//! A client that subscribes an inbox per pull request and drops it when the
//! request ends loses what the server sends after that: nats-server 2.9
//! can deliver a message to a pull request in the same instant it expires
//! it (the `408` comes first, the message right after). Such a message is
//! in flight, counted as delivered, and read by nobody: it comes back only
//! after its visibility timeout, one receive count later.
//!
//! Here an inbox (a subscription to `{inbox}.*`) serves one request at a
//! time and goes back to a pool when the request ends, so what comes late
//! waits in its subscription for the next request on it, which takes it
//! first. Each request replies to `{inbox}.{n}`: statuses (`408` expired,
//! `404` nothing there, `409` …) come under that subject, so a late status
//! of an earlier request is told apart and ignored. Messages come under
//! their stream subject and are all taken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::{Message, StatusCode, Subscriber};
use futures::{FutureExt, StreamExt};

/// Pull requests on one durable consumer.
pub(super) struct Pulls {
    client: async_nats::Client,
    api_subject: String,
    next_id: AtomicU64,
    idle: Mutex<Vec<Inbox>>,
}

struct Inbox {
    prefix: String,
    sub: Subscriber,
}

/// What ended a pull request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The server ended it (expired, nothing there, too many in flight) or
    /// it got every message it asked for.
    Done,
    /// The server refused or broke it (the consumer was deleted …).
    Failed(String),
    /// Nothing came for the whole wait and the grace after it.
    Unanswered,
}

/// One pull request being read; its inbox goes back to the pool when it
/// is dropped.
pub(super) struct Pull<'a> {
    pulls: &'a Pulls,
    inbox: Option<Inbox>,
    reply: String,
    left: usize,
    /// The server ended it: only messages already there are taken.
    ended: bool,
}

impl Drop for Pull<'_> {
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            lock(&self.pulls.idle).push(inbox);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pull<'_> {
    fn sub(&mut self) -> &mut Subscriber {
        &mut self.inbox.as_mut().expect("an inbox until dropped").sub
    }

    /// The next message of this request, until `deadline`; `Err` when the
    /// request ended.
    pub(super) async fn next(&mut self, deadline: tokio::time::Instant) -> Result<Message, End> {
        loop {
            if self.left == 0 {
                return Err(End::Done);
            }
            let m = if self.ended {
                // What is there already (a message right behind the status).
                match self.sub().next().now_or_never() {
                    Some(Some(m)) => m,
                    _ => return Err(End::Done),
                }
            } else {
                match tokio::time::timeout_at(deadline, self.sub().next()).await {
                    Ok(Some(m)) => m,
                    // The subscription ended (the connection was closed).
                    Ok(None) => return Err(End::Failed("the subscription ended".into())),
                    Err(_) => return Err(End::Unanswered),
                }
            };
            let status = match m.status {
                None | Some(StatusCode::OK) => {
                    self.left -= 1;
                    return Ok(m);
                }
                Some(s) => s,
            };
            // A status of an earlier request on this inbox.
            if m.subject.as_str() != self.reply {
                continue;
            }
            match status {
                StatusCode::TIMEOUT | StatusCode::NOT_FOUND => self.ended = true,
                StatusCode::IDLE_HEARTBEAT => {}
                s => {
                    let what = m.description.clone().unwrap_or_default();
                    // 409 "Exceeded MaxAckPending": nothing more until some
                    // are settled; not an error.
                    if what.contains("MaxAckPending") {
                        self.ended = true;
                        continue;
                    }
                    return Err(End::Failed(format!("{} {what}", s.as_u16())));
                }
            }
        }
    }
}

impl Pulls {
    /// Pull requests of `client` on consumer `consumer` of stream `stream`.
    pub(super) fn new(client: async_nats::Client, stream: &str, consumer: &str) -> Pulls {
        Pulls {
            client,
            api_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            next_id: AtomicU64::new(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends a pull request for up to `max` messages that the server ends
    /// after `wait` (at once with what is there when `wait` is zero).
    pub(super) async fn request(&self, max: usize, wait: Duration) -> Result<Pull<'_>, String> {
        let pooled = lock(&self.idle).pop();
        let inbox = match pooled {
            Some(i) => i,
            None => {
                let prefix = self.client.new_inbox();
                let sub = self
                    .client
                    .subscribe(format!("{prefix}.*"))
                    .await
                    .map_err(|e| e.to_string())?;
                Inbox { prefix, sub }
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reply = format!("{}.{id}", inbox.prefix);
        let pull = Pull {
            pulls: self,
            inbox: Some(inbox),
            reply: reply.clone(),
            left: max,
            ended: false,
        };
        let body = if wait.is_zero() {
            serde_json::json!({ "batch": max, "no_wait": true })
        } else {
            serde_json::json!({ "batch": max, "expires": wait.as_nanos() as u64 })
        };
        self.client
            .publish_with_reply(self.api_subject.clone(), reply, body.to_string().into())
            .await
            .map_err(|e| e.to_string())?;
        Ok(pull)
    }
}
