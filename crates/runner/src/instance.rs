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
}

pub(crate) struct Instance {
    pub id: String,
    pub log_stream: String,
    tx: mpsc::Sender<Pending>,
    exit: watch::Receiver<Option<ExitStatus>>,
    guard: Box<dyn InstanceGuard>,
    tasks: Vec<JoinHandle<()>>,
    /// Asks each log-capture task to take in what is already in its pipe.
    drains: Vec<mpsc::Sender<oneshot::Sender<()>>>,
    slot: Arc<runtime_api::Slot>,
    pub last_used: Instant,
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
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(endpoint_err)?;
            let addr = listener.local_addr().map_err(endpoint_err)?;
            spec.endpoint = RuntimeEndpoint::Tcp(addr.to_string());
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
        })
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
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

/// Longest log line kept whole; longer output is split into lines of this size.
const MAX_LINE: usize = 16 * 1024;

/// The next line (without its newline), at most `MAX_LINE` bytes, invalid
/// UTF-8 replaced; `None` at the end of the stream. Cancel-safe: only bytes
/// already moved into `partial` are consumed from the reader.
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    partial: &mut Vec<u8>,
) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    loop {
        let available = match reader.fill_buf().await {
            Ok(a) => a,
            Err(_) => return None,
        };
        if available.is_empty() {
            if partial.is_empty() {
                return None;
            }
            return Some(take_line(partial));
        }
        let room = MAX_LINE.saturating_sub(partial.len()).max(1);
        let (used, done) = match available.iter().take(room).position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (
                available.len().min(room),
                partial.len() + available.len().min(room) >= MAX_LINE,
            ),
        };
        partial.extend_from_slice(&available[..used]);
        reader.consume(used);
        if done {
            return Some(take_line(partial));
        }
    }
}

fn take_line(partial: &mut Vec<u8>) -> String {
    let mut bytes = std::mem::take(partial);
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
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
    let push = |message: String| {
        let request_id = active.lock().ok().and_then(|a| a.clone());
        logs.push(LogLine {
            timestamp: chrono::Utc::now(),
            function_id: meta.0.clone(),
            function_name: meta.1.clone(),
            version: meta.2.clone(),
            log_stream_name: meta.3.clone(),
            request_id,
            stream,
            message,
        });
    };
    let mut reader = BufReader::new(pipe);
    let mut partial = Vec::new();
    loop {
        tokio::select! {
            // Cancel-safe: bytes already taken stay in `partial`.
            line = next_line(&mut reader, &mut partial) => match line {
                Some(message) => push(message),
                None => break,
            },
            Some(ack) = drain.recv() => {
                // Take in whatever is already readable, then acknowledge.
                while let Some(Some(message)) = next_line(&mut reader, &mut partial).now_or_never() {
                    push(message);
                }
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut reader = BufReader::new(input);
        let mut partial = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = next_line(&mut reader, &mut partial).await {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_capped_and_lossy() {
        assert_eq!(lines_of(b"a\r\nb\nlast").await, ["a", "b", "last"]);
        assert_eq!(lines_of(b"bad \xff byte\n").await, ["bad \u{fffd} byte"]);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let got = lines_of(&long).await;
        assert_eq!(
            got.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
        assert!(lines_of(b"").await.is_empty());
    }
}
