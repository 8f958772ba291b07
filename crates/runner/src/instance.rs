//! One running instance: its process (in a sandbox), its Runtime API
//! endpoint, its log capture, and one invocation at a time.

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotswap_sandbox::{Instance as Process, InstanceGuard, LaunchSpec, RuntimeEndpoint, Sandbox};
use tokio::io::{AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::logs::{LogLine, LogStore};
use crate::runtime_api::{self, Outcome, Pending, Slot};
use crate::RunnerError;

/// How an invocation on an instance ended.
#[derive(Debug)]
pub(crate) enum RunResult {
    Answered(Outcome),
    /// No answer within the function's timeout.
    TimedOut,
    /// The process ended first (crash, `exit`, OOM kill).
    Exited {
        status: String,
        oom: bool,
    },
}

/// What a new instance needs besides the sandbox spec.
pub(crate) struct InstanceSetup {
    pub function_id: String,
    pub function_name: String,
    pub version_label: String,
    pub log_stream: String,
    pub function_arn: String,
    /// Most Runtime API connections the instance may hold open at once.
    pub max_connections: usize,
}

pub(crate) struct Instance {
    pub id: String,
    pub log_stream: String,
    tx: mpsc::Sender<Pending>,
    exit: watch::Receiver<Option<ExitStatus>>,
    guard: Arc<dyn InstanceGuard>,
    tasks: Vec<JoinHandle<()>>,
    /// Asks each log-capture task to take in what is already in its pipe.
    drains: Vec<mpsc::Sender<oneshot::Sender<()>>>,
    slot: Arc<runtime_api::Slot>,
    pub last_used: Instant,
    /// When it was started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// It ran a call (else `last_used` is its start).
    pub used: bool,
}

/// How long a cold instance may take to ask for its first event.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(10);

impl Instance {
    pub async fn start(
        sandbox: &dyn Sandbox,
        mut spec: LaunchSpec,
        setup: InstanceSetup,
        logs: Arc<LogStore>,
        sockets_dir: &std::path::Path,
    ) -> Result<Instance, RunnerError> {
        let endpoint_err = |e: std::io::Error| {
            RunnerError::Internal(format!("cannot open a Runtime API endpoint: {e}"))
        };
        let (tx, rx) = mpsc::channel(1);
        let active = Arc::new(Mutex::new(None));
        let slot = Arc::new(Slot::new(rx, setup.function_arn.clone(), active.clone()));
        let app = runtime_api::router(slot.clone());
        // The socket directory of a launch that fails is removed here (once
        // launched, the sandbox's guard owns it).
        let mut socket_dir = None;
        let server = if sandbox.wants_unix_endpoint() {
            // One directory per instance: all the sandbox sees of the host's files.
            let dir = sockets_dir.join(&spec.instance_id[..16]);
            std::fs::create_dir_all(&dir).map_err(endpoint_err)?;
            socket_dir = Some(dir.clone());
            // On the host only root reaches the sockets; inside its sandbox
            // the socket is open to the runtime's unprivileged user, so that
            // a bootstrap can skip the init's loopback relay.
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode;
            let path = dir.join("rt.sock");
            let bound = std::fs::set_permissions(sockets_dir, perms(0o700))
                .and_then(|()| tokio::net::UnixListener::bind(&path))
                .and_then(|l| std::fs::set_permissions(&path, perms(0o666)).map(|()| l));
            let listener = match bound {
                Ok(l) => l,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(endpoint_err(e));
                }
            };
            spec.endpoint = RuntimeEndpoint::Unix(path);
            let listener = runtime_api::CappedListener::new(listener, setup.max_connections);
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(endpoint_err)?;
            let addr = listener.local_addr().map_err(endpoint_err)?;
            spec.endpoint = RuntimeEndpoint::Tcp(addr.to_string());
            let listener = runtime_api::CappedListener::new(listener, setup.max_connections);
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        };

        let Process { mut child, guard } = match sandbox.launch(&spec) {
            Ok(p) => p,
            Err(e) => {
                server.abort();
                if let Some(dir) = &socket_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(RunnerError::Sandbox(e));
            }
        };
        let mut tasks = vec![server];
        let mut drains = Vec::new();
        let meta = Arc::new((
            setup.function_id,
            setup.function_name,
            setup.version_label,
            setup.log_stream.clone(),
        ));
        if let Some(out) = child.stdout.take() {
            let (tx, rx) = mpsc::channel(1);
            drains.push(tx);
            tasks.push(tokio::spawn(capture(
                out,
                "stdout",
                meta.clone(),
                active.clone(),
                logs.clone(),
                rx,
            )));
        }
        if let Some(err) = child.stderr.take() {
            let (tx, rx) = mpsc::channel(1);
            drains.push(tx);
            tasks.push(tokio::spawn(capture(err, "stderr", meta, active, logs, rx)));
        }
        let (exit_tx, exit) = watch::channel(None);
        tasks.push(tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                let _ = exit_tx.send(Some(status));
            }
        }));
        // Init runs without the CPU quota; it applies once the runtime asks
        // for its first event.
        let guard: Arc<dyn InstanceGuard> = Arc::from(guard);
        let mut ready = slot.ready.subscribe();
        let g = guard.clone();
        tasks.push(tokio::spawn(async move {
            if ready.wait_for(|r| *r).await.is_ok() {
                g.init_done();
            }
        }));
        Ok(Instance {
            id: spec.instance_id,
            log_stream: setup.log_stream,
            tx,
            exit,
            guard,
            tasks,
            drains,
            slot,
            last_used: Instant::now(),
            started_at: chrono::Utc::now(),
            used: false,
        })
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// How long the runtime took to initialise (ask for its first event).
    pub fn init_duration(&self) -> Option<Duration> {
        self.slot.init_duration.get().copied()
    }

    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.guard.peak_memory_bytes()
    }

    /// Waits until the runtime has initialised (asked for its first event):
    /// the health check of a warmed instance. Errs with the reason when it
    /// reported an init error, exited, or took longer than `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let mut ready = self.slot.ready.subscribe();
        tokio::select! {
            r = ready.wait_for(|r| *r) => if r.is_ok() { return Ok(()) },
            _ = exit_signal(self.exit.clone()) => {}
            _ = tokio::time::sleep(limit) => {
                return Err(format!("the runtime did not initialise within {} s", limit.as_secs()))
            }
        }
        let reported = self.slot.init_failure.lock().ok().and_then(|f| f.clone());
        let status = self.exit.borrow().map(describe);
        Err(match (reported, status) {
            (Some(e), _) => format!("init error: {e}"),
            (None, Some(s)) => format!("the runtime exited during init: {s}"),
            (None, None) => "the runtime stopped during init".into(),
        })
    }

    /// Hands one event to the instance and waits for its answer: up to
    /// `INIT_TIMEOUT` for a cold instance to ask for it, then `timeout` from
    /// the moment it has it.
    pub async fn run(
        &mut self,
        request_id: &str,
        payload: Bytes,
        content_type: &str,
        timeout: Duration,
    ) -> RunResult {
        let (reply_tx, mut reply_rx) = oneshot::channel();
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.to_owned(),
            payload,
            content_type: content_type.to_owned(),
            timeout,
            delivered: delivered_tx,
            reply: reply_tx,
        };
        self.last_used = Instant::now();
        self.used = true;
        if self.tx.send(pending).await.is_err() {
            return self.exited().await;
        }
        // Phase 1: until the runtime takes the event.
        tokio::select! {
            biased;
            r = &mut reply_rx => return self.answered(r).await,
            d = delivered_rx => if d.is_err() {
                // Taken without delivery: an init error answers it, or the
                // instance is going away.
                return match tokio::time::timeout(Duration::from_millis(200), &mut reply_rx).await {
                    Ok(r) => self.answered(r).await,
                    Err(_) => self.exited().await,
                };
            },
            _ = exit_signal(self.exit.clone()) => return self.exited().await,
            _ = tokio::time::sleep(INIT_TIMEOUT.max(timeout)) => return RunResult::TimedOut,
        }
        // Phase 2: the function's own timeout.
        let result = tokio::select! {
            biased;
            r = &mut reply_rx => self.answered(r).await,
            _ = exit_signal(self.exit.clone()) => self.exited().await,
            _ = tokio::time::sleep(timeout) => RunResult::TimedOut,
        };
        self.last_used = Instant::now();
        result
    }

    async fn answered(&mut self, r: Result<Outcome, oneshot::error::RecvError>) -> RunResult {
        match r {
            Ok(o) => RunResult::Answered(o),
            // The runtime asked for another event without answering this one.
            Err(_) => RunResult::Exited {
                status: "the runtime abandoned the invocation".into(),
                oom: false,
            },
        }
    }

    async fn exited(&mut self) -> RunResult {
        let _ = tokio::time::timeout(Duration::from_secs(2), exit_signal(self.exit.clone())).await;
        let status = self
            .exit
            .borrow()
            .map(describe)
            .unwrap_or_else(|| "the runtime stopped answering".into());
        RunResult::Exited {
            status,
            oom: self.guard.oom_killed(),
        }
    }

    /// Waits (briefly) until every line the instance printed before its
    /// answer is captured, so that the invocation's log tail is complete and
    /// no line of it is tagged with the next request.
    pub async fn drain_logs(&self) {
        // Both streams at once: the wait is one round trip, not one per stream.
        let mut acks = Vec::with_capacity(self.drains.len());
        for d in &self.drains {
            let (ack, done) = oneshot::channel();
            if d.send(ack).await.is_ok() {
                acks.push(done);
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(50), futures::future::join_all(acks)).await;
    }

    pub fn kill(&self) {
        self.guard.kill_all();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.guard.kill_all();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Resolves when the process has exited (holding no lock across awaits).
async fn exit_signal(mut exit: watch::Receiver<Option<ExitStatus>>) {
    let _ = exit.wait_for(Option::is_some).await.map(|_| ());
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown exit".into(),
    }
}

/// Bytes read from an instance's pipe at a time.
const READ_BUFFER: usize = 16 * 1024;

/// Most reads a drain takes in: 1 MiB, the largest a pipe can be made.
const DRAIN_READS: usize = (1 << 20) / READ_BUFFER;

/// One line of output: its text (invalid UTF-8 replaced) and whether it
/// was cut at the line cap.
#[derive(Debug, PartialEq)]
struct Line {
    text: String,
    truncated: bool,
}

/// What one read of a pipe gave.
#[derive(Debug, PartialEq)]
enum Step {
    Line(Line),
    /// Bytes taken in, no line finished yet.
    More,
    End,
}

/// Splits a pipe into lines holding at most `cap` bytes of one line: a
/// longer line is cut there (and marked) and the rest of it, up to its
/// newline, is read and discarded, so an endless line costs no memory.
struct LineSplitter {
    cap: usize,
    partial: Vec<u8>,
    /// Inside the discarded rest of a cut line.
    discarding: bool,
}

impl LineSplitter {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// Takes in one read of the pipe. Cancel-safe: only bytes already moved
    /// into `self` are consumed from the reader.
    async fn step<R: tokio::io::AsyncBufRead + Unpin>(&mut self, reader: &mut R) -> Step {
        use tokio::io::AsyncBufReadExt;
        let available = match reader.fill_buf().await {
            Ok(a) if !a.is_empty() => a,
            _ => return self.finish().map_or(Step::End, Step::Line),
        };
        if self.discarding {
            let used = match available.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.discarding = false;
                    i + 1
                }
                None => available.len(),
            };
            reader.consume(used);
            return Step::More;
        }
        // A newline right after `cap` bytes still ends a whole line.
        let room = self.cap - self.partial.len();
        let look = available.len().min(room + 1);
        if let Some(i) = available[..look].iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&available[..i]);
            reader.consume(i + 1);
            return Step::Line(self.take(false));
        }
        let used = available.len().min(room);
        let more_follows = available.len() > room;
        self.partial.extend_from_slice(&available[..used]);
        reader.consume(used);
        if more_follows {
            self.discarding = true;
            return Step::Line(self.take(true));
        }
        Step::More
    }

    /// The next line; `None` at the end of the stream. Cancel-safe.
    async fn next<R: tokio::io::AsyncBufRead + Unpin>(&mut self, reader: &mut R) -> Option<Line> {
        loop {
            match self.step(reader).await {
                Step::Line(l) => return Some(l),
                Step::More => {}
                Step::End => return None,
            }
        }
    }

    /// What is left at the end of the stream, or when an invocation ends:
    /// the unterminated line belongs to the request that printed it.
    fn finish(&mut self) -> Option<Line> {
        self.discarding = false;
        (!self.partial.is_empty()).then(|| self.take(false))
    }

    fn take(&mut self, truncated: bool) -> Line {
        let mut bytes = std::mem::take(&mut self.partial);
        if !truncated {
            while matches!(bytes.last(), Some(b'\r')) {
                bytes.pop();
            }
        }
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if truncated {
            text.push_str(crate::logs::TRUNCATED_MARK);
        }
        Line { text, truncated }
    }
}

async fn capture(
    pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    meta: Arc<(String, String, String, String)>,
    active: Arc<Mutex<Option<String>>>,
    logs: Arc<LogStore>,
    mut drain: mpsc::Receiver<oneshot::Sender<()>>,
) {
    use futures::FutureExt;
    let push = |line: Line| {
        let request_id = active.lock().ok().and_then(|a| a.clone());
        logs.push(LogLine {
            timestamp: chrono::Utc::now(),
            function_id: meta.0.clone(),
            function_name: meta.1.clone(),
            version: meta.2.clone(),
            log_stream_name: meta.3.clone(),
            request_id,
            stream,
            message: line.text,
            truncated: line.truncated,
        });
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, pipe);
    let mut lines = LineSplitter::new(logs.limits().line_max_bytes);
    loop {
        tokio::select! {
            // Cancel-safe: bytes already taken stay in `lines`.
            line = lines.next(&mut reader) => match line {
                Some(line) => push(line),
                None => break,
            },
            Some(ack) = drain.recv() => {
                // Take in what is already readable (at most what a pipe
                // can hold, so that a function printing without pause
                // cannot hold the drain), then acknowledge; an unfinished
                // line is the ending invocation's.
                for _ in 0..DRAIN_READS {
                    match lines.step(&mut reader).now_or_never() {
                        Some(Step::Line(line)) => push(line),
                        Some(Step::More) => {}
                        Some(Step::End) | None => break,
                    }
                }
                if let Some(line) = lines.finish() {
                    push(line);
                }
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogQuery;

    async fn lines_of(input: &[u8], cap: usize) -> Vec<(String, bool)> {
        // A small read buffer, so that lines span several reads.
        let mut reader = BufReader::with_capacity(7, input);
        let mut lines = LineSplitter::new(cap);
        let mut out = Vec::new();
        while let Some(l) = lines.next(&mut reader).await {
            out.push((l.text, l.truncated));
        }
        out
    }

    fn whole(texts: &[&str]) -> Vec<(String, bool)> {
        texts.iter().map(|t| (t.to_string(), false)).collect()
    }

    #[tokio::test]
    async fn lines_are_split_and_lossy() {
        assert_eq!(
            lines_of(b"a\r\nb\nlast", 100).await,
            whole(&["a", "b", "last"])
        );
        assert_eq!(
            lines_of(b"bad \xff byte\n", 100).await,
            whole(&["bad \u{fffd} byte"])
        );
        assert!(lines_of(b"", 100).await.is_empty());
        assert_eq!(lines_of(b"\n\n", 100).await, whole(&["", ""]));
    }

    #[tokio::test]
    async fn a_long_line_is_cut_at_the_cap_and_the_rest_discarded() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nnext\n");
        let got = lines_of(&input, 16).await;
        assert_eq!(
            got,
            [
                (
                    format!("{}{}", "x".repeat(16), crate::logs::TRUNCATED_MARK),
                    true
                ),
                ("next".to_owned(), false)
            ]
        );
        // Exactly the cap is a whole line, whether its newline comes in
        // the same read or the next.
        for cap in [5, 7, 8] {
            let text = "y".repeat(cap);
            let got = lines_of(format!("{text}\nz\n").as_bytes(), cap).await;
            assert_eq!(got, whole(&[&text, "z"]), "cap {cap}");
        }
        // An endless line: one cut line, nothing else.
        let got = lines_of(&vec![b'e'; 100_000], 10).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].1);
    }

    #[tokio::test]
    async fn capture_keeps_lines_within_the_cap_and_tags_them() {
        use tokio::io::AsyncWriteExt;
        let logs = Arc::new(LogStore::new(crate::logs::LogLimits {
            line_max_bytes: 32,
            ..Default::default()
        }));
        let (mut w, r) = tokio::io::duplex(64);
        let active = Arc::new(Mutex::new(Some("req-1".to_owned())));
        let (drain_tx, drain_rx) = mpsc::channel(1);
        let meta = Arc::new((
            "f".to_owned(),
            "f".to_owned(),
            "1".to_owned(),
            "stream".to_owned(),
        ));
        let task = tokio::spawn(capture(
            r,
            "stdout",
            meta,
            active.clone(),
            logs.clone(),
            drain_rx,
        ));
        w.write_all(&vec![b'a'; 1 << 20]).await.unwrap();
        w.write_all(b"\nunfinished").await.unwrap();
        // The end of an invocation closes its unfinished line.
        let (ack, done) = oneshot::channel();
        drain_tx.send(ack).await.unwrap();
        done.await.unwrap();
        *active.lock().unwrap() = Some("req-2".to_owned());
        w.write_all(b"second\n").await.unwrap();
        drop(w);
        task.await.unwrap();
        let got: Vec<(String, bool, Option<String>)> = logs
            .query(
                "f",
                &LogQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .into_iter()
            .map(|l| (l.message, l.truncated, l.request_id))
            .collect();
        let req = |r: &str| Some(r.to_owned());
        assert_eq!(
            got,
            [
                (
                    format!("{}{}", "a".repeat(32), crate::logs::TRUNCATED_MARK),
                    true,
                    req("req-1")
                ),
                ("unfinished".to_owned(), false, req("req-1")),
                ("second".to_owned(), false, req("req-2")),
            ]
        );
    }
}
