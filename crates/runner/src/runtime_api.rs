//! The Lambda Runtime API, served per instance: the instance long-polls
//! `next` for its event and posts the response or error. Wire facts in
//! `shared/lambda-wire.md`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest response or error payload (Lambda's synchronous limit).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// An invocation waiting for the instance to ask for it.
pub(crate) struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    pub content_type: String,
    /// The function's timeout; the deadline header counts from delivery.
    pub timeout: Duration,
    /// Signalled when the runtime takes the event.
    pub delivered: oneshot::Sender<()>,
    pub reply: oneshot::Sender<Outcome>,
}

/// How the instance answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Response {
        body: Bytes,
        elapsed: Duration,
    },
    FunctionError {
        error_type: String,
        body: Bytes,
        elapsed: Duration,
    },
    InitError {
        error_type: String,
        body: Bytes,
    },
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
    delivered: Instant,
}

/// Per-instance state of the Runtime API.
pub(crate) struct Slot {
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    current: Mutex<Option<Current>>,
    function_arn: String,
    /// The request being handled, for tagging log lines.
    pub active_request: Arc<Mutex<Option<String>>>,
    /// Turns true when the runtime first asks for an event: its init is done.
    pub ready: watch::Sender<bool>,
    /// An init error reported while no invocation was waiting (a warm-up).
    pub init_failure: Mutex<Option<String>>,
    created: Instant,
    /// From the endpoint's creation until the runtime first asked for an
    /// event: the instance's init duration.
    pub init_duration: std::sync::OnceLock<Duration>,
}

impl Slot {
    pub fn new(
        queue: mpsc::Receiver<Pending>,
        function_arn: String,
        active_request: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            queue: tokio::sync::Mutex::new(queue),
            current: Mutex::new(None),
            function_arn,
            active_request,
            ready: watch::Sender::new(false),
            init_failure: Mutex::new(None),
            created: Instant::now(),
            init_duration: std::sync::OnceLock::new(),
        }
    }

    fn take_current(&self, request_id: &str) -> Option<Current> {
        let mut cur = self.current.lock().ok()?;
        if cur.as_ref().is_some_and(|c| c.request_id == request_id) {
            cur.take()
        } else {
            None
        }
    }
}

pub(crate) fn router(slot: Arc<Slot>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .with_state(slot)
}

fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errorMessage": message, "errorType": error_type })),
    )
        .into_response()
}

/// Answers the invocation `id` is waiting for with `outcome` (given the time
/// since delivery): 202, or 400 `InvalidRequestID` for an unknown or
/// already-answered id.
fn answer(slot: &Slot, id: &str, outcome: impl FnOnce(Duration) -> Outcome) -> Response {
    match slot.take_current(id) {
        Some(c) => {
            let _ = c.reply.send(outcome(c.delivered.elapsed()));
            accepted()
        }
        None => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or already answered request id",
        ),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "status": "OK" })),
    )
        .into_response()
}

async fn next(State(slot): State<Arc<Slot>>) -> Response {
    slot.init_duration.get_or_init(|| slot.created.elapsed());
    slot.ready.send_if_modified(|r| !std::mem::replace(r, true));
    let pending = slot.queue.lock().await.recv().await;
    let Some(p) = pending else {
        return lambda_error(
            StatusCode::GONE,
            "InstanceShuttingDown",
            "this instance is being shut down",
        );
    };
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, "Lambda-Runtime-Aws-Request-Id", &p.request_id);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(p.timeout)
        .as_millis();
    put(
        &mut headers,
        "Lambda-Runtime-Deadline-Ms",
        &deadline.to_string(),
    );
    put(
        &mut headers,
        "Lambda-Runtime-Invoked-Function-Arn",
        &slot.function_arn,
    );
    put(
        &mut headers,
        "Lambda-Runtime-Trace-Id",
        &format!("Root=1-{}", p.request_id.replace('-', "")),
    );
    put(&mut headers, "Content-Type", &p.content_type);
    if let Ok(mut active) = slot.active_request.lock() {
        *active = Some(p.request_id.clone());
    }
    let _ = p.delivered.send(());
    if let Ok(mut cur) = slot.current.lock() {
        // A runtime that asks again without answering abandons the previous
        // invocation: dropping its reply makes the invoker report it.
        *cur = Some(Current {
            request_id: p.request_id,
            reply: p.reply,
            delivered: Instant::now(),
        });
    }
    (StatusCode::OK, headers, p.payload).into_response()
}

async fn response(
    State(slot): State<Arc<Slot>>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            // The invocation fails with the limit as its error.
            if let Some(c) = slot.take_current(&id) {
                let msg = format!("Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).");
                let body = Bytes::from(serde_json::json!({ "errorMessage": msg, "errorType": "Function.ResponseSizeTooLarge" }).to_string());
                let _ = c.reply.send(Outcome::FunctionError {
                    error_type: "Function.ResponseSizeTooLarge".into(),
                    body,
                    elapsed: c.delivered.elapsed(),
                });
            }
            return lambda_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "response payload too large",
            );
        }
        Err(e) => return lambda_error(StatusCode::BAD_REQUEST, "InvalidRequest", &e.body_text()),
    };
    answer(&slot, &id, |elapsed| Outcome::Response { body, elapsed })
}

/// The error type: the optional header, else the body's `errorType`, else
/// `Unhandled`.
fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
    {
        if !t.is_empty() && !t.eq_ignore_ascii_case("unhandled") {
            return t.to_owned();
        }
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorType")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Unhandled".into())
}

async fn error(
    State(slot): State<Arc<Slot>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = error_type(&headers, &body);
    answer(&slot, &id, |elapsed| Outcome::FunctionError {
        error_type,
        body,
        elapsed,
    })
}

/// An init error answers the first invocation; the instance is discarded.
async fn init_error(State(slot): State<Arc<Slot>>, headers: HeaderMap, body: Bytes) -> Response {
    let error_type = error_type(&headers, &body);
    let current = slot
        .current
        .lock()
        .ok()
        .and_then(|mut c| c.take())
        .map(|c| c.reply);
    let reply = match current {
        Some(r) => Some(r),
        None => slot.queue.lock().await.try_recv().ok().map(|p| p.reply),
    };
    match reply {
        Some(r) => {
            let _ = r.send(Outcome::InitError { error_type, body });
        }
        None => {
            if let Ok(mut f) = slot.init_failure.lock() {
                *f = Some(format!(
                    "{error_type}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(1024)])
                ));
            }
        }
    }
    accepted()
}

/// Serves one instance's Runtime API with at most `max` connections open
/// at once: a connection past the cap is closed as soon as it is accepted,
/// so an instance cannot hold more of the server's file descriptors than
/// that. The runtimes keep one keep-alive connection (the in-sandbox relay
/// opens one per connection made to it).
pub(crate) struct CappedListener<L> {
    inner: L,
    permits: Arc<tokio::sync::Semaphore>,
}

impl<L> CappedListener<L> {
    pub fn new(inner: L, max: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(tokio::sync::Semaphore::new(max.max(1))),
        }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for CappedListener<L> {
    type Io = Permitted<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    return (
                        Permitted {
                            io,
                            _permit: permit,
                        },
                        addr,
                    )
                }
                Err(_) => {
                    tracing::debug!("runtime API connection refused: the instance is at its cap");
                    drop(io);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding one of its instance's connection permits until it
/// is closed.
pub(crate) struct Permitted<IO> {
    io: IO,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Permitted<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Permitted<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/ping", get(|| async { "pong" }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(CappedListener::new(listener, 2), app).await;
        });
        let ping = |mut c: tokio::net::TcpStream| async move {
            c.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 512];
            let n = c.read(&mut buf).await.unwrap_or(0);
            (c, String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        // Two keep-alive connections are served, and stay open.
        let (a, r) = ping(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(r.ends_with("pong"), "{r}");
        let (b, r) = ping(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(r.ends_with("pong"), "{r}");
        // A third is closed without an answer.
        let (_c, r) = ping(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert_eq!(r, "", "closed at once");
        // Once one closes, its place is free again.
        drop(a);
        let mut served = false;
        for _ in 0..50 {
            let (_d, r) = ping(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
            if r.ends_with("pong") {
                served = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(served, "a freed place is reused");
        let (_b, r) = ping(b).await;
        assert!(r.ends_with("pong"), "the kept connection still works: {r}");
        server.abort();
    }

    #[test]
    fn error_type_sources() {
        let mut h = HeaderMap::new();
        assert_eq!(
            error_type(&h, br#"{"errorType":"ValueError"}"#),
            "ValueError"
        );
        assert_eq!(error_type(&h, b"garbage"), "Unhandled");
        h.insert(
            "Lambda-Runtime-Function-Error-Type",
            HeaderValue::from_static("Runtime.Custom"),
        );
        assert_eq!(
            error_type(&h, br#"{"errorType":"ValueError"}"#),
            "Runtime.Custom"
        );
        h.insert(
            "Lambda-Runtime-Function-Error-Type",
            HeaderValue::from_static("unhandled"),
        );
        assert_eq!(
            error_type(&h, br#"{"errorType":"ValueError"}"#),
            "ValueError"
        );
    }
}
