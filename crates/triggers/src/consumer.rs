//! Running one batch of queue messages through a function, with the
//! semantics of Lambda's SQS event source mappings:
//!
//! - a message is acknowledged only after the function succeeded for it;
//! - on failure the batch (or, with `reportBatchItemFailures`, only the
//!   items the function lists) becomes visible again after the visibility
//!   timeout, counted as a receive;
//! - a failed message that has been received `maxReceiveCount` times goes to
//!   the dead-letter destination instead (kept in the queue when there is
//!   none: never dropped);
//! - a throttled batch (the function at `MaxInstances`) goes back at once
//!   without counting as a receive.
//!
//! How the event is built and how the function's answer is read are
//! arguments, so this module knows no wire shape; where messages come from
//! is a [`QueueSource`] and how the function is run a [`BatchInvoker`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::queue::redrive::{after_failure, AfterFailure};
use crate::sources::{Delivery, QueueSource, SourceError};

/// What became of one invocation with a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function returned this payload.
    Succeeded(Bytes),
    /// The function failed (error, timeout, crash): the whole batch failed.
    Failed(String),
    /// Not run: the function is at its concurrency limit.
    Throttled,
}

/// Runs a batch's event through the trigger's function.
#[async_trait]
pub trait BatchInvoker: Send + Sync {
    async fn invoke(&self, event: Bytes) -> Invoked;
    /// Sends a dead message to a function (`deadLetterTarget: fn:…`) as an
    /// asynchronous invocation; `Err` leaves the message in the queue.
    async fn dead_letter_to_function(&self, message: &Delivery) -> Result<(), String>;
    /// Sends a dead message to the owner's embedded queue `queue`
    /// (`deadLetterTarget: queue:…` of a broker's queue); `Err` leaves the
    /// message where it is.
    async fn dead_letter_to_queue(&self, queue: &str, message: &Delivery) -> Result<(), String>;
}

pub use crate::queue::response::BatchOutcome;

/// Where messages go after `max_receive_count` failed receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// Kept in the queue (and counted): never dropped.
    Keep,
    Queue(String),
    Function,
}

/// The settings of one queue trigger that a batch needs.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub visibility: Duration,
    pub max_receive_count: u32,
    pub dead_letter: DeadLetter,
    /// How long a throttled batch waits before it is visible again.
    pub throttle_backoff: Duration,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub succeeded: usize,
    /// Failed and left to be delivered again.
    pub retried: usize,
    pub dead_lettered: usize,
    /// Failed past `maxReceiveCount` with no destination: kept.
    pub kept: usize,
    pub throttled: bool,
    /// The function failed (the batch or some of its items).
    pub failed: bool,
    /// The function's error (or why its answer was read as a failure).
    pub error: Option<String>,
    /// A failure of the platform's (a dead-letter destination refused the
    /// message), for the trigger's `lastError`.
    pub platform_error: Option<String>,
}

/// Runs `batch` through the function and settles every message with the
/// source. `event` builds the function's event; `outcome` reads its answer
/// (given the batch's message ids).
pub async fn run_batch(
    source: &dyn QueueSource,
    invoker: &dyn BatchInvoker,
    settings: &BatchSettings,
    batch: Vec<Delivery>,
    event: impl FnOnce(&[Delivery]) -> Bytes,
    outcome: impl FnOnce(&Bytes, &[String]) -> BatchOutcome,
) -> Result<BatchReport, SourceError> {
    let mut report = BatchReport {
        received: batch.len(),
        ..BatchReport::default()
    };
    if batch.is_empty() {
        return Ok(report);
    }
    let ids: Vec<String> = batch.iter().map(|d| d.message_id.clone()).collect();
    let failed_ids: Vec<String> = match invoker.invoke(event(&batch)).await {
        Invoked::Throttled => {
            let receipts: Vec<String> = batch.iter().map(|d| d.receipt.clone()).collect();
            source
                .release(&receipts, settings.throttle_backoff, false)
                .await?;
            report.throttled = true;
            return Ok(report);
        }
        Invoked::Failed(e) => {
            report.error = Some(e);
            ids.clone()
        }
        Invoked::Succeeded(payload) => {
            match outcome(&payload, &ids) {
                BatchOutcome::AllSucceeded => Vec::new(),
                BatchOutcome::AllFailed => {
                    report.error = Some("the function's batchItemFailures answer is invalid: the whole batch failed".into());
                    ids.clone()
                }
                BatchOutcome::Partial(failed) => failed,
            }
        }
    };
    report.failed = !failed_ids.is_empty();
    let (failed, succeeded): (Vec<Delivery>, Vec<Delivery>) = batch
        .into_iter()
        .partition(|d| failed_ids.contains(&d.message_id));
    let done: Vec<String> = succeeded.iter().map(|d| d.receipt.clone()).collect();
    if !done.is_empty() {
        source.ack(&done).await?;
    }
    report.succeeded = done.len();
    let mut retry = Vec::new();
    for d in failed {
        if after_failure(d.receive_count, settings.max_receive_count) == AfterFailure::Retry {
            retry.push(d.receipt);
            continue;
        }
        match &settings.dead_letter {
            DeadLetter::Keep => {
                report.kept += 1;
                retry.push(d.receipt);
            }
            DeadLetter::Queue(q) => {
                if source.dead_letter(&d.receipt, q).await? {
                    report.dead_lettered += 1;
                    continue;
                }
                match invoker.dead_letter_to_queue(q, &d).await {
                    Ok(()) => {
                        source.ack(std::slice::from_ref(&d.receipt)).await?;
                        report.dead_lettered += 1;
                    }
                    Err(e) => {
                        report.platform_error = Some(format!("dead-letter queue '{q}': {e}"));
                        report.kept += 1;
                        retry.push(d.receipt);
                    }
                }
            }
            DeadLetter::Function => match invoker.dead_letter_to_function(&d).await {
                Ok(()) => {
                    source.ack(std::slice::from_ref(&d.receipt)).await?;
                    report.dead_lettered += 1;
                }
                Err(e) => {
                    report.platform_error = Some(format!("dead-letter function: {e}"));
                    report.kept += 1;
                    retry.push(d.receipt);
                }
            },
        }
    }
    report.retried = retry.len() - report.kept.min(retry.len());
    if !retry.is_empty() {
        // Visible again when its visibility timeout ends, as on SQS.
        source.release(&retry, settings.visibility, true).await?;
    }
    Ok(report)
}

/// Builds the function's event from a batch.
pub type EventBuilder = std::sync::Arc<dyn Fn(&[Delivery]) -> Bytes + Send + Sync>;
/// Reads the function's answer, given the batch's message ids.
pub type OutcomeReader = std::sync::Arc<dyn Fn(&Bytes, &[String]) -> BatchOutcome + Send + Sync>;
/// Sees every batch's report and every source error.
pub type Reporter = std::sync::Arc<dyn Fn(Result<&BatchReport, &SourceError>) + Send + Sync>;

/// How a trigger's consumer polls and scales.
#[derive(Clone)]
pub struct ConsumeSettings {
    pub batch: BatchSettings,
    pub batch_size: usize,
    /// Longest wait for a batch to fill (`maximumBatchingWindow`).
    pub window: Duration,
    /// Longest wait of one receive for a first message (a long poll).
    pub long_poll: Duration,
    /// Most batches in flight at once (`maximumConcurrency`).
    pub max_concurrency: usize,
    /// Pause after an empty receive, a throttled batch or a source error.
    pub idle_pause: Duration,
    /// The pause after consecutive source errors doubles up to this (the
    /// backoff of a broker's reconnection).
    pub max_error_pause: Duration,
    /// Builds the function's event from a batch.
    pub event: EventBuilder,
    /// Reads the function's answer (given the batch's message ids).
    pub outcome: OutcomeReader,
}

/// Consumes `source` until `stop` turns true: one poller, plus one more
/// concurrent batch for each full batch received, up to `max_concurrency`
/// (a poller that finds the queue empty retires, the first one excepted).
/// Throttled batches go back uncounted and slow the pollers down, so a
/// trigger never pushes a function past its `MaxInstances`. `report` sees
/// every batch's [`BatchReport`] and every source error.
pub async fn consume(
    source: std::sync::Arc<dyn QueueSource>,
    invoker: std::sync::Arc<dyn BatchInvoker>,
    settings: ConsumeSettings,
    stop: tokio::sync::watch::Receiver<bool>,
    report: Reporter,
) {
    let active = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let (grow_tx, mut grow_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let spawn = |tasks: &mut tokio::task::JoinSet<()>, first: bool| {
        active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (source, invoker, settings, stop, report, active, grow) = (
            source.clone(),
            invoker.clone(),
            settings.clone(),
            stop.clone(),
            report.clone(),
            active.clone(),
            grow_tx.clone(),
        );
        tasks.spawn(async move {
            poller(source, invoker, settings, stop, report, grow, first).await;
            active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    };
    spawn(&mut tasks, true);
    let mut stop_rx = stop.clone();
    loop {
        tokio::select! {
            _ = stop_rx.changed() => {
                if *stop_rx.borrow() { break; }
            }
            Some(()) = grow_rx.recv() => {
                if active.load(std::sync::atomic::Ordering::SeqCst) < settings.max_concurrency.max(1) {
                    spawn(&mut tasks, false);
                }
            }
            Some(_) = tasks.join_next() => {}
        }
    }
    // In-flight batches finish (their messages are settled); none starts.
    while tasks.join_next().await.is_some() {}
}

/// Receives one batch: long-polls for the first messages, then, with a
/// batching window, keeps receiving until the batch is full or the window
/// (counted from the first message) has passed. A message waits in a
/// filling batch for at most the window, so it is received invisible for
/// the window plus the visibility timeout: it never comes back while its
/// batch is still filling or the function still runs.
async fn fill_batch(
    source: &dyn QueueSource,
    settings: &ConsumeSettings,
) -> Result<Vec<Delivery>, SourceError> {
    let (max, vis) = (
        settings.batch_size,
        settings.batch.visibility + settings.window,
    );
    let policy = crate::queue::BatchPolicy::new(
        u32::try_from(max).unwrap_or(u32::MAX),
        settings.window,
        BATCH_PAYLOAD_BYTES,
    );
    let mut batch = source.receive(max, vis, settings.long_poll).await?;
    if !batch.is_empty() && !settings.window.is_zero() {
        let deadline = tokio::time::Instant::now() + settings.window;
        while batch.len() < max && batch.iter().map(record_bytes).sum::<usize>() < policy.max_bytes
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match source.receive(max - batch.len(), vis, left).await {
                Ok(more) => batch.extend(more),
                // What was received is run (or comes back after its timeout).
                Err(_) => break,
            }
        }
    }
    // Within the invocation payload limit: what does not fit goes back at
    // once, its receive not counted.
    let sizes: Vec<usize> = batch.iter().map(record_bytes).collect();
    let fits = policy.batch_len(&sizes);
    if fits < batch.len() {
        let over: Vec<String> = batch.drain(fits..).map(|d| d.receipt).collect();
        if let Err(e) = source.release(&over, Duration::ZERO, false).await {
            tracing::warn!(queue = %source.describe(), error = %e, "cannot release the messages past a batch's payload limit: they come back after their visibility timeout");
        }
    }
    Ok(batch)
}

/// Most bytes of messages in one batch: the 6 MiB invocation payload limit,
/// less room for the event's envelope.
pub const BATCH_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;

/// About what a message takes in an SQS event: its body, receipt and
/// attributes, plus the record's fixed fields.
fn record_bytes(d: &Delivery) -> usize {
    d.body.len()
        + d.receipt.len()
        + d.attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
        + 512
}

async fn poller(
    source: std::sync::Arc<dyn QueueSource>,
    invoker: std::sync::Arc<dyn BatchInvoker>,
    settings: ConsumeSettings,
    stop: tokio::sync::watch::Receiver<bool>,
    report: Reporter,
    grow: tokio::sync::mpsc::UnboundedSender<()>,
    first: bool,
) {
    let mut error_pause = settings.idle_pause;
    while !*stop.borrow() {
        let batch = match fill_batch(source.as_ref(), &settings).await {
            Ok(b) => {
                error_pause = settings.idle_pause;
                b
            }
            Err(e) => {
                report(Err(&e));
                tokio::time::sleep(error_pause).await;
                error_pause =
                    (error_pause * 2).min(settings.max_error_pause.max(settings.idle_pause));
                continue;
            }
        };
        if batch.is_empty() {
            if !first {
                return;
            }
            // A long poll waited already.
            if settings.long_poll.is_zero() {
                tokio::time::sleep(settings.idle_pause).await;
            }
            continue;
        }
        if batch.len() >= settings.batch_size {
            let _ = grow.send(());
        }
        let (event, outcome) = (settings.event.clone(), settings.outcome.clone());
        match run_batch(
            source.as_ref(),
            invoker.as_ref(),
            &settings.batch,
            batch,
            |b| event(b),
            |p, ids| outcome(p, ids),
        )
        .await
        {
            Ok(r) => {
                report(Ok(&r));
                if r.throttled {
                    tokio::time::sleep(settings.idle_pause).await;
                }
            }
            Err(e) => {
                report(Err(&e));
                tokio::time::sleep(settings.idle_pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::sources::MemoryQueue;

    const VIS: Duration = Duration::from_secs(30);

    /// Fails the messages whose body is in `bad`, the way it is told.
    struct Fn {
        answer: Mutex<Vec<Invoked>>,
        dead: Mutex<Vec<String>>,
    }

    impl Fn {
        fn answering(answers: Vec<Invoked>) -> Fn {
            Fn {
                answer: Mutex::new(answers),
                dead: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl BatchInvoker for Fn {
        async fn invoke(&self, _event: Bytes) -> Invoked {
            self.answer.lock().unwrap().remove(0)
        }
        async fn dead_letter_to_function(&self, m: &Delivery) -> Result<(), String> {
            self.dead.lock().unwrap().push(m.body.clone());
            Ok(())
        }
        async fn dead_letter_to_queue(&self, q: &str, m: &Delivery) -> Result<(), String> {
            self.dead.lock().unwrap().push(format!("{q}:{}", m.body));
            Ok(())
        }
    }

    fn settings(dead_letter: DeadLetter) -> BatchSettings {
        BatchSettings {
            visibility: VIS,
            max_receive_count: 2,
            dead_letter,
            throttle_backoff: Duration::ZERO,
        }
    }

    fn event(b: &[Delivery]) -> Bytes {
        Bytes::from(
            b.iter()
                .map(|d| d.body.clone())
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// Reads `"fail:<id>,…"` payloads as partial failures.
    fn outcome(p: &Bytes, _ids: &[String]) -> BatchOutcome {
        let s = std::str::from_utf8(p).unwrap();
        match s.strip_prefix("fail:") {
            Some(ids) => BatchOutcome::Partial(ids.split(',').map(str::to_owned).collect()),
            None if s == "invalid" => BatchOutcome::AllFailed,
            None => BatchOutcome::AllSucceeded,
        }
    }

    async fn step(q: &MemoryQueue, f: &Fn, s: &BatchSettings) -> BatchReport {
        let batch = q.receive(10, VIS, Duration::ZERO).await.unwrap();
        run_batch(q, f, s, batch, event, outcome).await.unwrap()
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_invocation_payload_limit() {
        let q = MemoryQueue::new();
        let big = "x".repeat(300_000);
        for _ in 0..30 {
            q.send(&big);
        }
        let cs = ConsumeSettings {
            batch: settings(DeadLetter::Keep),
            batch_size: 100,
            window: Duration::ZERO,
            long_poll: Duration::ZERO,
            max_concurrency: 1,
            idle_pause: Duration::ZERO,
            max_error_pause: Duration::ZERO,
            event: std::sync::Arc::new(|b: &[Delivery]| event(b)),
            outcome: std::sync::Arc::new(|p: &Bytes, ids: &[String]| outcome(p, ids)),
        };
        let batch = fill_batch(&q, &cs).await.unwrap();
        let bytes: usize = batch.iter().map(record_bytes).sum();
        assert_eq!(batch.len(), 20, "{bytes} bytes");
        assert!(bytes <= BATCH_PAYLOAD_BYTES);
        // The ten that did not fit are visible again, their receive not
        // counted; the twenty taken are in flight.
        let next = q.receive(100, VIS, Duration::ZERO).await.unwrap();
        assert_eq!(next.len(), 10);
        assert!(
            next.iter().all(|d| d.receive_count == 1),
            "{:?}",
            next.iter().map(|d| d.receive_count).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_successful_batch_is_acknowledged() {
        let q = MemoryQueue::new();
        q.send("a");
        q.send("b");
        let f = Fn::answering(vec![Invoked::Succeeded(Bytes::from_static(b"ok"))]);
        let r = step(&q, &f, &settings(DeadLetter::Keep)).await;
        assert_eq!((r.received, r.succeeded, r.failed), (2, 2, false));
        assert!(q.remaining().is_empty());
    }

    #[tokio::test]
    async fn only_the_listed_items_are_retried_after_the_visibility_timeout() {
        let q = MemoryQueue::new();
        q.send("a");
        let b = q.send("b");
        let f = Fn::answering(vec![Invoked::Succeeded(Bytes::from(format!("fail:{b}")))]);
        let r = step(&q, &f, &settings(DeadLetter::Keep)).await;
        assert_eq!((r.succeeded, r.retried, r.failed), (1, 1, true));
        assert_eq!(q.remaining(), [(b.clone(), 1)]);
        // Not visible before the timeout, visible after it.
        assert!(q.receive(10, VIS, Duration::ZERO).await.unwrap().is_empty());
        q.advance(VIS);
        let again = q.receive(10, VIS, Duration::ZERO).await.unwrap();
        assert_eq!(
            (again[0].message_id.as_str(), again[0].receive_count),
            (b.as_str(), 2)
        );
    }

    #[tokio::test]
    async fn a_failed_or_misread_batch_fails_whole() {
        for answer in [
            Invoked::Failed("Unhandled".into()),
            Invoked::Succeeded(Bytes::from_static(b"invalid")),
        ] {
            let q = MemoryQueue::new();
            q.send("a");
            q.send("b");
            let f = Fn::answering(vec![answer]);
            let r = step(&q, &f, &settings(DeadLetter::Keep)).await;
            assert_eq!((r.succeeded, r.retried), (0, 2));
            assert!(r.error.is_some());
            assert_eq!(q.remaining().len(), 2);
        }
    }

    #[tokio::test]
    async fn past_max_receive_count_messages_go_to_their_destination() {
        for dl in [
            DeadLetter::Queue("dlq".into()),
            DeadLetter::Function,
            DeadLetter::Keep,
        ] {
            let q = MemoryQueue::new();
            q.send("poison");
            let f = Fn::answering(vec![
                Invoked::Failed("boom".into()),
                Invoked::Failed("boom".into()),
            ]);
            let s = settings(dl.clone());
            let first = step(&q, &f, &s).await;
            assert_eq!((first.retried, first.dead_lettered), (1, 0));
            q.advance(VIS);
            let second = step(&q, &f, &s).await;
            match dl {
                DeadLetter::Queue(_) => {
                    assert_eq!(second.dead_lettered, 1);
                    assert_eq!(q.dead_lettered("dlq"), ["poison"]);
                    assert!(q.remaining().is_empty());
                }
                DeadLetter::Function => {
                    assert_eq!(second.dead_lettered, 1);
                    assert_eq!(*f.dead.lock().unwrap(), ["poison"]);
                    assert!(q.remaining().is_empty());
                }
                DeadLetter::Keep => {
                    assert_eq!((second.kept, second.dead_lettered), (1, 0));
                    assert_eq!(q.remaining().len(), 1, "never dropped");
                }
            }
        }
    }

    /// Succeeds for every batch, counting messages and concurrent batches.
    struct Counting {
        seen: Mutex<Vec<String>>,
        now: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl BatchInvoker for Counting {
        async fn invoke(&self, event: Bytes) -> Invoked {
            use std::sync::atomic::Ordering::SeqCst;
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(n, SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            let body = String::from_utf8(event.to_vec()).unwrap();
            self.seen
                .lock()
                .unwrap()
                .extend(body.split(',').map(str::to_owned));
            self.now.fetch_sub(1, SeqCst);
            Invoked::Succeeded(Bytes::from_static(b"ok"))
        }
        async fn dead_letter_to_function(&self, _m: &Delivery) -> Result<(), String> {
            Ok(())
        }
        async fn dead_letter_to_queue(&self, _q: &str, _m: &Delivery) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_backlog_is_consumed_once_by_at_most_max_concurrency_batches() {
        let q = std::sync::Arc::new(MemoryQueue::new());
        for i in 0..300 {
            q.send(&format!("b{i}"));
        }
        let f = std::sync::Arc::new(Counting {
            seen: Mutex::new(Vec::new()),
            now: Default::default(),
            peak: Default::default(),
        });
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let settings = ConsumeSettings {
            batch: settings(DeadLetter::Keep),
            batch_size: 10,
            window: Duration::ZERO,
            long_poll: Duration::ZERO,
            max_concurrency: 3,
            idle_pause: Duration::from_millis(5),
            max_error_pause: Duration::from_millis(50),
            event: std::sync::Arc::new(event),
            outcome: std::sync::Arc::new(outcome),
        };
        let task = tokio::spawn(consume(
            q.clone(),
            f.clone(),
            settings,
            stop,
            std::sync::Arc::new(|_| {}),
        ));
        for _ in 0..400 {
            if q.remaining().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let mut seen = f.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 300, "each message once");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 300);
        let peak = f.peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (2..=3).contains(&peak),
            "scaled up to, never past, 3: {peak}"
        );
        assert!(q.remaining().is_empty());
    }

    #[tokio::test]
    async fn a_throttled_batch_goes_back_without_counting_a_receive() {
        let q = MemoryQueue::new();
        let a = q.send("a");
        let f = Fn::answering(vec![Invoked::Throttled]);
        let r = step(&q, &f, &settings(DeadLetter::Keep)).await;
        assert!(r.throttled);
        assert_eq!(q.remaining(), [(a, 0)]);
        assert_eq!(q.receive(10, VIS, Duration::ZERO).await.unwrap().len(), 1);
    }
}
