//! The consumer against the in-memory stream and leases, on tokio's paused
//! clock (sleeps, backoffs, lease expiry and record ages run on it).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use base64::Engine;
use hotswap_domain::trigger::source::{StartingPosition, TriggerSource};
use hotswap_domain::trigger::target::DeliveryTarget;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::memory::{MemoryLeases, MemoryStream};
use super::*;

const BASE_MS: i64 = 1_700_000_000_000;

/// A clock on tokio's (paused) time, starting at `BASE_MS`.
fn test_clock() -> Clock {
    let origin = Instant::now();
    Arc::new(move || BASE_MS + origin.elapsed().as_millis() as i64)
}

/// One record as the function saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    key: String,
    seq: String,
    data: String,
}

type Behavior = Box<dyn Fn(usize, &[Seen]) -> (Duration, Invoked) + Send + Sync>;

/// A function that logs every batch it gets (when it starts on it) and
/// answers as `behavior` says (given the call's number, from 1).
struct TestFn {
    behavior: Behavior,
    calls: Mutex<Vec<Vec<Seen>>>,
    failures: Mutex<Vec<Value>>,
    /// Answers of the on-failure destination, used up first to last (then
    /// `Ok`).
    destination: Mutex<VecDeque<Result<(), String>>>,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl TestFn {
    fn new(
        behavior: impl Fn(usize, &[Seen]) -> (Duration, Invoked) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            behavior: Box::new(behavior),
            calls: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            destination: Mutex::new(VecDeque::new()),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    fn ok() -> Arc<Self> {
        Self::new(|_, _| (Duration::ZERO, succeeded("")))
    }

    fn calls(&self) -> Vec<Vec<Seen>> {
        self.calls.lock().unwrap().clone()
    }

    /// The data of every record it got, in order, repeats included.
    fn data(&self) -> Vec<String> {
        self.calls().into_iter().flatten().map(|s| s.data).collect()
    }

    fn failures(&self) -> Vec<Value> {
        self.failures.lock().unwrap().clone()
    }
}

fn succeeded(payload: &str) -> Invoked {
    Invoked::Succeeded(Bytes::from(payload.to_owned()))
}

fn item_failures(seqs: &[&str]) -> Invoked {
    let items: Vec<Value> = seqs
        .iter()
        .map(|s| serde_json::json!({ "itemIdentifier": s }))
        .collect();
    succeeded(&serde_json::json!({ "batchItemFailures": items }).to_string())
}

#[async_trait]
impl StreamInvoker for TestFn {
    async fn invoke(&self, event: Bytes) -> Invoked {
        let event: Value = serde_json::from_slice(&event).expect("the event is JSON");
        let seen: Vec<Seen> = event["Records"]
            .as_array()
            .expect("Records")
            .iter()
            .map(|r| {
                assert_eq!(r["eventSource"], "aws:kinesis");
                let k = &r["kinesis"];
                let data = base64::engine::general_purpose::STANDARD
                    .decode(k["data"].as_str().unwrap())
                    .unwrap();
                Seen {
                    key: k["partitionKey"].as_str().unwrap().into(),
                    seq: k["sequenceNumber"].as_str().unwrap().into(),
                    data: String::from_utf8(data).unwrap(),
                }
            })
            .collect();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(seen.clone());
            calls.len()
        };
        let (sleep, answer) = (self.behavior)(n, &seen);
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(sleep).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    async fn on_failure(&self, record: Value) -> Result<(), String> {
        let answer = self
            .destination
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()));
        if answer.is_ok() {
            self.failures.lock().unwrap().push(record);
        }
        answer
    }
}

fn stream_settings() -> StreamSettings {
    StreamSettings {
        stream: "clicks".into(),
        source: TriggerSource::Nats,
        starting_position: StartingPosition::TrimHorizon,
        batch_size: 10,
        parallelization_factor: 1,
        bisect_batch_on_function_error: false,
        maximum_retry_attempts: None,
        maximum_record_age_s: None,
        report_batch_item_failures: false,
        on_failure: None,
    }
}

fn settings(owner: &str, change: impl FnOnce(&mut StreamSettings)) -> StreamConsumeSettings {
    let mut stream = stream_settings();
    change(&mut stream);
    let mut s = StreamConsumeSettings::new(
        stream,
        owner,
        "arn:aws:lambda:local:000000000000:function:f",
    );
    s.read_wait = Duration::from_millis(100);
    s.idle_pause = Duration::from_millis(100);
    s.retry_backoff = Duration::from_millis(10);
    s.max_retry_backoff = Duration::from_secs(1);
    s.throttle_backoff = Duration::from_millis(50);
    s.clock = test_clock();
    s
}

fn on_failure_queue() -> Option<DeliveryTarget> {
    Some(DeliveryTarget::Queue {
        name: "failed".into(),
    })
}

/// A consumer running in a task.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    reports: Arc<Mutex<Vec<StreamBatchReport>>>,
    errors: Arc<Mutex<Vec<StreamError>>>,
}

fn start(
    stream: &Arc<MemoryStream>,
    f: &Arc<TestFn>,
    leases: &MemoryLeases,
    settings: StreamConsumeSettings,
) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (r, e) = (reports.clone(), errors.clone());
    let reporter: StreamReporter = Arc::new(move |got| match got {
        Ok(report) => r.lock().unwrap().push(report.clone()),
        Err(error) => e.lock().unwrap().push(error.clone()),
    });
    let task = tokio::spawn(consume_stream(
        stream.clone(),
        f.clone(),
        Arc::new(leases.clone()),
        settings,
        stop_rx,
        reporter,
    ));
    Running {
        stop,
        task,
        reports,
        errors,
    }
}

impl Running {
    /// Stops it and waits until it has returned.
    async fn stop(mut self) -> Self {
        self.stop.send_replace(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the consumer stops")
            .unwrap();
        self
    }

    /// Kills it: nothing is written or released.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    fn reports(&self) -> Vec<StreamBatchReport> {
        self.reports.lock().unwrap().clone()
    }
}

/// Waits (on the paused clock) until `done` holds, at most ten minutes.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..60_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn push_all(stream: &MemoryStream, n: usize, key: impl Fn(usize) -> String) -> Vec<String> {
    (0..n)
        .map(|i| stream.push(0, &key(i), format!("r{i}")))
        .collect()
}

fn names(range: Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn records_of_one_key_stay_in_order_across_four_lanes() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    // Pseudo-random pauses of 0–49 ms, so lanes overtake each other.
    let f = TestFn::new(|n, _| {
        let pause = (n as u64).wrapping_mul(2_654_435_761) % 50;
        (Duration::from_millis(pause), succeeded(""))
    });
    let leases = MemoryLeases::new();
    push_all(&stream, 400, |i| format!("user-{}", i % 13));
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| {
            s.parallelization_factor = 4;
            s.batch_size = 7;
        }),
    );
    until("every record is seen", || f.data().len() >= 400).await;
    let c = c.stop().await;

    let seen: Vec<Seen> = f.calls().into_iter().flatten().collect();
    assert_eq!(seen.len(), 400, "each record once");
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in &seen {
        per_key
            .entry(s.key.clone())
            .or_default()
            .push(s.seq.parse().unwrap());
    }
    assert_eq!(per_key.len(), 13);
    for (key, seqs) in &per_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
    assert!(f.calls().iter().all(|b| b.len() <= 7));
    let peak = f.peak.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&peak),
        "lanes ran at once, at most 4: {peak}"
    );
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("400"));
    assert_eq!(leases.holder(0), None, "released on stop");
    assert!(c.reports().iter().all(|r| r.error.is_none()));
}

#[tokio::test(start_paused = true)]
async fn each_starting_position() {
    // TRIM_HORIZON: everything the stream holds.
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    for i in 0..5 {
        stream.push_at(0, "k", format!("r{i}"), BASE_MS + i * 1_000);
    }
    let f = TestFn::ok();
    let c = start(&stream, &f, &MemoryLeases::new(), settings("a", |_| {}));
    until("all five", || f.data().len() == 5).await;
    c.stop().await;
    assert_eq!(f.data(), names(0..5));

    // TRIM_HORIZON after trimming: the oldest record still held.
    stream.trim(0, 2);
    let f = TestFn::ok();
    let c = start(&stream, &f, &MemoryLeases::new(), settings("a", |_| {}));
    until("the two kept", || f.data().len() == 2).await;
    c.stop().await;
    assert_eq!(f.data(), ["r3", "r4"]);

    // AT_TIMESTAMP: from the first record at or after the time.
    let f = TestFn::ok();
    let at = chrono::DateTime::from_timestamp_millis(BASE_MS + 3_000).unwrap();
    let c = start(
        &stream,
        &f,
        &MemoryLeases::new(),
        settings("a", |s| {
            s.starting_position = StartingPosition::AtTimestamp(at)
        }),
    );
    until("from r3", || f.data().len() == 2).await;
    c.stop().await;
    assert_eq!(f.data(), ["r3", "r4"]);

    // LATEST: only what comes after the first start, stored at once so a
    // restart does not skip what arrived while it was down.
    let f = TestFn::ok();
    let leases = MemoryLeases::new();
    let latest = |s: &mut StreamSettings| s.starting_position = StartingPosition::Latest;
    let c = start(&stream, &f, &leases, settings("a", latest));
    until("the start is stored", || leases.checkpoint_of(0).is_some()).await;
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("5"));
    stream.push(0, "k", "r5");
    until("r5", || f.data().len() == 1).await;
    c.stop().await;
    stream.push(0, "k", "r6");
    let c = start(&stream, &f, &leases, settings("a", latest));
    until("r6", || f.data().len() == 2).await;
    c.stop().await;
    assert_eq!(f.data(), ["r5", "r6"]);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_consumer_resumes_after_the_checkpoint() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::ok();
    push_all(&stream, 25, |i| format!("k{}", i % 3));
    let c = start(&stream, &f, &leases, settings("a", |_| {}));
    until("25", || f.data().len() == 25).await;
    c.stop().await;
    for i in 25..40 {
        stream.push(0, "k", format!("r{i}"));
    }
    // Another server (owner) takes the released shard over at once.
    let c = start(&stream, &f, &leases, settings("b", |_| {}));
    until("40", || f.data().len() >= 40).await;
    c.stop().await;
    assert_eq!(f.data(), names(0..40), "no record twice, none lost");
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("40"));
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_the_records_past_the_checkpoint_come_again() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    // Batches of 5; the third one hangs (the server dies during it).
    let f = TestFn::new(|n, _| {
        let hang = if n == 3 { 3_600 } else { 0 };
        (Duration::from_secs(hang), succeeded(""))
    });
    push_all(&stream, 15, |_| "k".into());
    let c = start(&stream, &f, &leases, settings("a", |s| s.batch_size = 5));
    until("the third batch", || f.calls().len() == 3).await;
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("10"));
    let crashed_at = Instant::now();
    c.crash().await;

    let g = TestFn::ok();
    let c = start(&stream, &g, &leases, settings("b", |s| s.batch_size = 5));
    until("the batch again", || g.data().len() == 5).await;
    // Not before the dead server's lease expired.
    assert!(crashed_at.elapsed() >= DEFAULT_LEASE_TTL - DEFAULT_LEASE_TTL / 3);
    c.stop().await;
    assert_eq!(g.data(), names(10..15));
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("15"));
}

#[tokio::test(start_paused = true)]
async fn bisection_isolates_a_poison_record() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::new(|_, batch| {
        let poisoned = batch.iter().any(|s| s.data == "r5");
        let answer = if poisoned {
            Invoked::Failed("Unhandled: poison".into())
        } else {
            succeeded("")
        };
        (Duration::ZERO, answer)
    });
    push_all(&stream, 8, |_| "k".into());
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| {
            s.batch_size = 8;
            s.bisect_batch_on_function_error = true;
            s.maximum_retry_attempts = Some(1);
            s.on_failure = on_failure_queue();
        }),
    );
    until("the poison is given up", || f.failures().len() == 1).await;
    until("checkpointed", || {
        leases.checkpoint_of(0).as_deref() == Some("8")
    })
    .await;
    let c = c.stop().await;

    // Succeeded exactly once each, in order: the batches that succeeded.
    let succeeded: Vec<String> = f
        .calls()
        .into_iter()
        .filter(|b| !b.iter().any(|s| s.data == "r5"))
        .flatten()
        .map(|s| s.data)
        .collect();
    assert_eq!(succeeded, ["r0", "r1", "r2", "r3", "r4", "r6", "r7"]);
    // 8 → 4 → 2 → 1 (splits, not counted), then the record alone twice.
    let sizes: Vec<usize> = f.calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, [8, 4, 4, 2, 1, 1, 1, 2]);
    let failure = &f.failures()[0];
    assert_eq!(
        failure["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 5);
    assert_eq!(failure["responseContext"]["functionError"], "Unhandled");
    let info = &failure["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["startSequenceNumber"], "6");
    assert_eq!(info["endSequenceNumber"], "6");
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(
        info["streamArn"],
        "arn:aws:kinesis:local:000000000000:stream/clicks"
    );
    let reports = c.reports();
    assert_eq!(reports.iter().map(|r| r.discarded).sum::<usize>(), 1);
    assert_eq!(reports.iter().map(|r| r.on_failure_sent).sum::<usize>(), 1);
    assert_eq!(reports.iter().map(|r| r.succeeded).sum::<usize>(), 7);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_go_to_on_failure_and_the_shard_moves_on() {
    for destination in [on_failure_queue(), None] {
        let stream = Arc::new(MemoryStream::new("clicks", 1));
        let leases = MemoryLeases::new();
        let f = TestFn::new(|_, batch| {
            let answer = if batch[0].data == "bad" {
                Invoked::Failed("Unhandled: no".into())
            } else {
                succeeded("")
            };
            (Duration::ZERO, answer)
        });
        stream.push(0, "k", "bad");
        stream.push(0, "k", "bad");
        let c = start(
            &stream,
            &f,
            &leases,
            settings("a", |s| {
                s.maximum_retry_attempts = Some(2);
                s.on_failure = destination.clone();
            }),
        );
        until("given up", || {
            leases.checkpoint_of(0).as_deref() == Some("2")
        })
        .await;
        stream.push(0, "k", "good");
        until("the next record", || {
            f.data().last().map(String::as_str) == Some("good")
        })
        .await;
        let c = c.stop().await;
        // Three attempts: the first and two retries.
        assert_eq!(f.data(), ["bad", "bad", "bad", "bad", "bad", "bad", "good"]);
        let reports = c.reports();
        let failed: Vec<(usize, usize, usize)> = reports
            .iter()
            .filter(|r| r.failed > 0)
            .map(|r| (r.failed, r.retried, r.discarded))
            .collect();
        assert_eq!(failed, [(2, 2, 0), (2, 2, 0), (2, 0, 2)]);
        assert!(reports
            .iter()
            .any(|r| r.error.as_deref() == Some("Unhandled: no")));
        match destination {
            Some(_) => {
                let failures = f.failures();
                assert_eq!(failures.len(), 1);
                let r = &failures[0];
                assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
                assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
                assert_eq!(
                    r["requestContext"]["functionArn"],
                    "arn:aws:lambda:local:000000000000:function:f"
                );
                assert_eq!(r["KinesisBatchInfo"]["batchSize"], 2);
                assert_eq!(r["KinesisBatchInfo"]["startSequenceNumber"], "1");
                assert_eq!(r["KinesisBatchInfo"]["endSequenceNumber"], "2");
                assert_eq!(r["version"], "1.0");
                assert_eq!(reports.iter().map(|r| r.on_failure_sent).sum::<usize>(), 2);
            }
            None => {
                assert!(f.failures().is_empty());
                assert_eq!(reports.iter().map(|r| r.on_failure_sent).sum::<usize>(), 0);
                assert_eq!(reports.iter().map(|r| r.discarded).sum::<usize>(), 2);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_destination_holds_the_checkpoint_until_it_takes_the_record() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::new(|_, _| (Duration::ZERO, Invoked::Failed("x".into())));
    f.destination
        .lock()
        .unwrap()
        .extend([Err("queue down".to_owned()), Err("queue down".to_owned())]);
    stream.push(0, "k", "bad");
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| {
            s.maximum_retry_attempts = Some(0);
            s.on_failure = on_failure_queue();
        }),
    );
    until("sent", || f.failures().len() == 1).await;
    until("checkpointed", || {
        leases.checkpoint_of(0).as_deref() == Some("1")
    })
    .await;
    let c = c.stop().await;
    let errors = c.errors.lock().unwrap().clone();
    assert_eq!(
        errors,
        vec![
            StreamError::OnFailure {
                shard: 0,
                error: "queue down".into()
            };
            2
        ]
    );
    assert_eq!(f.data(), ["bad"], "given up on, not retried");
}

#[tokio::test(start_paused = true)]
async fn records_past_the_maximum_age_are_given_up_on() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    // Fails everything but "fresh".
    let f = TestFn::new(|_, batch| {
        let answer = if batch.iter().all(|s| s.data == "fresh") {
            succeeded("")
        } else {
            Invoked::Failed("Unhandled: no".into())
        };
        (Duration::ZERO, answer)
    });
    // Two hours old: never sent.
    stream.push_at(0, "k", "old", BASE_MS - 7_200_000);
    let s = settings("a", |s| {
        s.maximum_record_age_s = Some(60);
        s.on_failure = on_failure_queue();
    });
    let clock = s.clock.clone();
    let c = start(&stream, &f, &leases, s);
    until("the old one is given up", || f.failures().len() == 1).await;
    assert!(f.calls().is_empty(), "never sent");
    let r = &f.failures()[0];
    assert_eq!(r["requestContext"]["condition"], "RecordAgeExceeded");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 0);
    assert_eq!(r["responseContext"]["statusCode"], 0);

    // Fresh when first sent, failing (retries unlimited) until it is 60 s
    // old: then given up on, and the next record goes through.
    stream.push_at(0, "k", "failing", clock());
    until("the failing one expires", || f.failures().len() == 2).await;
    stream.push_at(0, "k", "fresh", clock());
    until("fresh", || {
        f.data().last().map(String::as_str) == Some("fresh")
    })
    .await;
    c.stop().await;
    let r = &f.failures()[1];
    assert_eq!(r["requestContext"]["condition"], "RecordAgeExceeded");
    let attempts = r["requestContext"]["approximateInvokeCount"]
        .as_u64()
        .unwrap();
    assert!(attempts > 10, "retried until it expired: {attempts}");
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("3"));
}

#[tokio::test(start_paused = true)]
async fn item_failures_checkpoint_before_the_lowest_and_retry_from_it() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let seen_checkpoint = Arc::new(Mutex::new(Vec::new()));
    let (l, seen) = (leases.clone(), seen_checkpoint.clone());
    let f = TestFn::new(move |n, _| {
        seen.lock().unwrap().push(l.checkpoint_of(0));
        let answer = match n {
            // Records 3 and 5 failed: done up to 2, retried from 3.
            1 => item_failures(&["5", "3"]),
            // Then 4 (listed twice) fails again: done up to 3.
            2 => item_failures(&["4", "4"]),
            _ => item_failures(&[]),
        };
        (Duration::ZERO, answer)
    });
    push_all(&stream, 5, |_| "k".into());
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| {
            s.report_batch_item_failures = true;
            s.maximum_retry_attempts = Some(5);
        }),
    );
    until("done", || leases.checkpoint_of(0).as_deref() == Some("5")).await;
    let c = c.stop().await;
    let batches: Vec<Vec<String>> = f
        .calls()
        .into_iter()
        .map(|b| b.into_iter().map(|s| s.seq).collect())
        .collect();
    assert_eq!(
        batches,
        [
            vec!["1", "2", "3", "4", "5"],
            vec!["3", "4", "5"],
            vec!["4", "5"]
        ]
    );
    assert_eq!(
        *seen_checkpoint.lock().unwrap(),
        [Some(String::new()), Some("2".into()), Some("3".into())]
    );
    let partial: Vec<(usize, usize, usize)> = c
        .reports()
        .iter()
        .filter(|r| r.records > 0)
        .map(|r| (r.records, r.succeeded, r.retried))
        .collect();
    assert_eq!(partial, [(5, 2, 3), (3, 1, 2), (2, 2, 0)]);
    assert!(f.failures().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_item_failures_answer_fails_the_batch() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::new(|n, _| {
        let answer = if n == 1 {
            item_failures(&["999"])
        } else {
            succeeded("{}")
        };
        (Duration::ZERO, answer)
    });
    push_all(&stream, 2, |_| "k".into());
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| s.report_batch_item_failures = true),
    );
    until("done", || leases.checkpoint_of(0).as_deref() == Some("2")).await;
    let c = c.stop().await;
    assert_eq!(f.data(), ["r0", "r1", "r0", "r1"]);
    let first = &c.reports().into_iter().find(|r| r.records > 0).unwrap();
    assert_eq!((first.failed, first.retried), (2, 2));
    assert!(first.error.as_deref().unwrap().contains("999"));
}

#[tokio::test(start_paused = true)]
async fn throttled_attempts_are_not_counted() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::new(|n, _| {
        let answer = if n <= 3 {
            Invoked::Throttled
        } else {
            succeeded("")
        };
        (Duration::ZERO, answer)
    });
    stream.push(0, "k", "r0");
    let c = start(
        &stream,
        &f,
        &leases,
        settings("a", |s| {
            s.maximum_retry_attempts = Some(0);
            s.on_failure = on_failure_queue();
        }),
    );
    until("done", || leases.checkpoint_of(0).as_deref() == Some("1")).await;
    let c = c.stop().await;
    assert_eq!(f.calls().len(), 4);
    assert!(f.failures().is_empty(), "throttling is not a failure");
    let reports = c.reports();
    assert_eq!(reports.iter().filter(|r| r.throttled).count(), 3);
    assert_eq!(reports.iter().map(|r| r.succeeded).sum::<usize>(), 1);
}

#[tokio::test(start_paused = true)]
async fn one_consumer_per_shard_and_a_takeover_when_its_lease_expires() {
    let stream = Arc::new(MemoryStream::new("clicks", 2));
    let leases = MemoryLeases::new();
    let fa = TestFn::ok();
    let fb = TestFn::ok();
    let a = start(&stream, &fa, &leases, settings("a", |_| {}));
    until("a holds both shards", || {
        leases.holder(0).as_deref() == Some("a") && leases.holder(1).as_deref() == Some("a")
    })
    .await;
    let b = start(&stream, &fb, &leases, settings("b", |_| {}));
    for i in 0..30 {
        stream.push(i % 2, "k", format!("r{i}"));
    }
    until("a has them all", || fa.data().len() == 30).await;
    // b kept asking all along, in vain.
    tokio::time::sleep(DEFAULT_LEASE_TTL * 2).await;
    assert!(
        fb.calls().is_empty(),
        "b processed nothing: {:?}",
        fb.data()
    );
    assert_eq!(leases.holder(0).as_deref(), Some("a"), "a renews its lease");

    // a dies: its leases run out, then b takes both shards over.
    a.crash().await;
    let died = Instant::now();
    for i in 30..40 {
        stream.push(i % 2, "k", format!("r{i}"));
    }
    until("b has the rest", || fb.data().len() == 10).await;
    assert!(died.elapsed() >= DEFAULT_LEASE_TTL - DEFAULT_LEASE_TTL / 3);
    assert_eq!(leases.holder(0).as_deref(), Some("b"));
    let mut all = fa.data();
    all.extend(fb.data());
    all.sort();
    let mut expected = names(0..40);
    expected.sort();
    assert_eq!(all, expected, "each record once");
    b.stop().await;
    assert_eq!(leases.checkpoint_of(0).as_deref(), Some("20"));
    assert_eq!(leases.checkpoint_of(1).as_deref(), Some("20"));
}

#[tokio::test(start_paused = true)]
async fn a_consumer_that_loses_its_lease_stops_the_shard() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    // Each batch takes 10 s.
    let f = TestFn::new(|_, _| (Duration::from_secs(10), succeeded("")));
    push_all(&stream, 50, |_| "k".into());
    let c = start(&stream, &f, &leases, settings("a", |s| s.batch_size = 1));
    until("a is in its first batch", || f.calls().len() == 1).await;
    // Another server holds the lease now (as if a's had run out).
    leases.hand_over(0, "intruder", Duration::from_secs(3_600));
    tokio::time::sleep(DEFAULT_LEASE_TTL * 2).await;
    assert_eq!(
        f.calls().len(),
        1,
        "the batch in flight ended, none started"
    );
    assert_eq!(
        leases.checkpoint_of(0),
        Some(String::new()),
        "its checkpoint was refused"
    );
    assert_eq!(leases.holder(0).as_deref(), Some("intruder"));
    c.stop().await;
    assert_eq!(
        leases.holder(0).as_deref(),
        Some("intruder"),
        "not released by a"
    );
}

#[tokio::test(start_paused = true)]
async fn source_errors_are_reported_and_retried() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::ok();
    stream.set_unavailable(true);
    let c = start(&stream, &f, &leases, settings("a", |_| {}));
    until("an error is reported", || {
        !c.errors.lock().unwrap().is_empty()
    })
    .await;
    assert!(matches!(
        c.errors.lock().unwrap()[0],
        StreamError::Shards(SourceError::Unavailable(..))
    ));
    stream.push(0, "k", "r0");
    stream.set_unavailable(false);
    until("r0", || f.data() == ["r0"]).await;
    until("lag 0 reported", || {
        c.reports().iter().any(|r| r.lag == Some(0))
    })
    .await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reports_carry_the_lag() {
    let stream = Arc::new(MemoryStream::new("clicks", 1));
    let leases = MemoryLeases::new();
    let f = TestFn::ok();
    push_all(&stream, 35, |_| "k".into());
    let c = start(&stream, &f, &leases, settings("a", |_| {}));
    until("all", || f.data().len() == 35).await;
    until("idle", || {
        c.reports().last().is_some_and(|r| r.lag == Some(0))
    })
    .await;
    let c = c.stop().await;
    let lags: Vec<Option<u64>> = c
        .reports()
        .iter()
        .filter(|r| r.records > 0)
        .map(|r| r.lag)
        .collect();
    // Each report shows the lag last measured (at most every second while
    // records flow): 25 after the first read; an idle shard reports 0.
    assert_eq!(lags.len(), 4);
    assert_eq!(lags[0], Some(25), "{lags:?}");
    assert!(lags.iter().all(|l| l.is_some_and(|l| l <= 25)), "{lags:?}");
    assert_eq!(c.reports().last().and_then(|r| r.lag), Some(0));
}

/// The store's leases, on SQLite, in real time.
#[tokio::test]
async fn store_leases_keep_the_checkpoint_in_the_metadata_store() {
    use hotswap_domain::{Function, FunctionVersion, Runtime, Trigger, TriggerConfig, TriggerType};

    let dir = tempfile::tempdir().unwrap();
    let store = hotswap_store::open_metadata_store(&format!(
        "sqlite://{}",
        dir.path().join("m.db").display()
    ))
    .await
    .unwrap();
    let function = Function::new("f", Runtime::Python311, "app.handler", "alice");
    let latest = FunctionVersion::snapshot(&function, 0, "0".repeat(64), 1, "alice", None);
    store.create_function(&function, &latest).await.unwrap();
    let mut trigger = Trigger::new("f", TriggerType::Stream, TriggerConfig::default());
    trigger.function_id = function.function_id.clone();
    store.create_trigger(&trigger).await.unwrap();

    let stream = Arc::new(MemoryStream::new("clicks", 1));
    push_all(&stream, 12, |_| "k".into());
    let leases = StoreLeases::new(store.clone(), trigger.trigger_id.clone());
    let f = TestFn::ok();
    let mut s = settings("server-1", |s| s.batch_size = 5);
    s.read_wait = Duration::from_millis(20);
    s.lease_ttl = Duration::from_secs(5);
    s.clock = system_clock();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(consume_stream(
        stream.clone(),
        f.clone(),
        Arc::new(leases.clone()),
        s,
        stop_rx,
        Arc::new(|r| {
            if let Err(e) = r {
                panic!("{e}");
            }
        }),
    ));
    for _ in 0..500 {
        if f.data().len() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send_replace(true);
    task.await.unwrap();
    assert_eq!(f.data(), names(0..12));
    let shards = store.stream_shards(&trigger.trigger_id).await.unwrap();
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0].checkpoint.as_deref(), Some("12"));
    assert_eq!(shards[0].lease_owner, None, "released on stop");
    // A stale owner cannot move it back.
    assert!(!leases.checkpoint(0, "server-0", "3").await.unwrap());
    assert_eq!(
        leases
            .take_or_renew(0, "server-2", Duration::from_secs(5))
            .await
            .unwrap(),
        LeaseState::Held {
            checkpoint: Some("12".into())
        }
    );
}
