#!/usr/bin/python3
"""Tests for the built-in runtime bootstraps (python/bootstrap.py, node/bootstrap.js,
ruby/bootstrap.rb).

Run:   /usr/bin/python3 crates/runner/runtimes/test_bootstraps.py [-k substring] [-v]
Bench: /usr/bin/python3 crates/runner/runtimes/test_bootstraps.py --bench [N]

Each test starts a stub Runtime API (ThreadingHTTPServer on 127.0.0.1:0),
writes handlers into a temporary LAMBDA_TASK_ROOT, launches the bootstrap the
way the runner does and checks what it posts back. The last line printed is
"N passed, M failed"; the exit status is non-zero on any failure.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PY_BOOTSTRAP = os.path.join(HERE, "python", "bootstrap.py")
NODE_BOOTSTRAP = os.path.join(HERE, "node", "bootstrap.js")
RUBY_BOOTSTRAP = os.path.join(HERE, "ruby", "bootstrap.rb")
PYTHON = os.environ.get("HOTSWAP_PYTHON", "/usr/bin/python3")
NODE = os.environ.get("HOTSWAP_NODE") or shutil.which("node") or "node"
RUBY = os.environ.get("HOTSWAP_RUBY") or shutil.which("ruby") or "ruby"
BOOTSTRAPS = {"python": PY_BOOTSTRAP, "node": NODE_BOOTSTRAP, "ruby": RUBY_BOOTSTRAP}
WAIT = 10.0


# ---------------------------------------------------------------------------
# Stub Runtime API


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A bootstrap killed at the end of a test drops its connection.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            ThreadingHTTPServer.handle_error(self, request, client_address)


class StubAPI:
    """Serves queued events on /next and records what the runtime posts."""

    def __init__(self, http10=False, chunked=False, stale_close=False):
        """http10: close after every response (HTTP/1.0 semantics);
        chunked: send events with Transfer-Encoding: chunked;
        stale_close: claim keep-alive but drop the connection after each
        response (the client must notice and retry on a fresh one)."""
        self.events = queue.Queue()
        self.results = {}  # request id -> (kind, body bytes, headers dict)
        self.init_errors = []  # (body bytes, headers dict)
        self.next_calls = 0
        self.first_next_at = None
        self.peers = set()  # client (host, port): one per TCP connection
        self.cv = threading.Condition()
        self.closed = False
        self.proc = None
        self.dead_since = None
        self.chunked = chunked
        self.stale_close = stale_close
        self.seq = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if http10 else "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, *args):
                pass

            def _reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with stub.cv:
                    stub.peers.add(self.client_address)
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404, {"errorMessage": "not found", "errorType": "NotFound"})
                with stub.cv:
                    stub.next_calls += 1
                    if stub.first_next_at is None:
                        stub.first_next_at = time.perf_counter()
                    stub.cv.notify_all()
                while True:
                    try:
                        rid, body, headers = stub.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if stub.closed:
                            self.close_connection = True
                            return
                if stub.stale_close:
                    self.close_connection = True
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:000000000000:function:testfn")
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                if stub.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 1000):
                        piece = body[i:i + 1000]
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_POST(self):
                with stub.cv:
                    stub.peers.add(self.client_address)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                parts = self.path.split("/")
                # /2018-06-01/runtime/init/error
                # /2018-06-01/runtime/invocation/{id}/(response|error)
                if stub.stale_close:
                    self.close_connection = True
                if self.path == "/2018-06-01/runtime/init/error":
                    with stub.cv:
                        stub.init_errors.append((body, hdrs))
                        stub.cv.notify_all()
                    return self._reply(202, {"status": "OK"})
                if len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    rid = parts[4]
                    with stub.cv:
                        if rid in stub.results:
                            dup = True
                        else:
                            dup = False
                            stub.results[rid] = (parts[5], body, hdrs)
                            stub.cv.notify_all()
                    if dup:
                        return self._reply(400, {"errorMessage": "already answered", "errorType": "InvalidRequestID"})
                    return self._reply(202, {"status": "OK"})
                return self._reply(404, {"errorMessage": "not found", "errorType": "NotFound"})

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def push(self, event, raw=False, headers=None):
        self.seq += 1
        rid = "req-%d-%s" % (self.seq, os.urandom(4).hex())
        body = event if raw else json.dumps(event).encode()
        self.events.put((rid, body, headers or {}))
        return rid

    def wait_result(self, rid, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cv:
            while rid not in self.results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no result for %s within %.1fs" % (rid, timeout))
                self._check_alive()
                self.cv.wait(min(left, 0.1))
            return self.results[rid]

    def response(self, rid, timeout=WAIT):
        kind, body, hdrs = self.wait_result(rid, timeout)
        if kind != "response":
            raise AssertionError("expected a response for %s, got %s: %s" % (rid, kind, body[:2000].decode(errors="replace")))
        return json.loads(body)

    def error(self, rid, timeout=WAIT):
        kind, body, hdrs = self.wait_result(rid, timeout)
        if kind != "error":
            raise AssertionError("expected an error for %s, got %s: %s" % (rid, kind, body[:2000].decode(errors="replace")))
        return json.loads(body), hdrs

    def wait_init_error(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not self.init_errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no init error within %.1fs" % timeout)
                self._check_alive()
                self.cv.wait(min(left, 0.1))
            body, hdrs = self.init_errors[0]
            return json.loads(body), hdrs

    def _check_alive(self):
        # Fail fast when the bootstrap died instead of waiting for the timeout.
        # (A grace period lets a post sent just before the exit be recorded.)
        if self.proc is not None and self.proc.poll() is not None:
            if self.dead_since is None:
                self.dead_since = time.monotonic()
            elif time.monotonic() - self.dead_since > 0.3:
                raise AssertionError("bootstrap exited with status %s" % self.proc.returncode)

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# Launching a bootstrap


class Instance:
    def __init__(self, lang, files, handler, extra_env=None, bootstrap=None, api_host=None, **stub_options):
        self.stub = StubAPI(**stub_options)
        self.root = tempfile.mkdtemp(prefix="hotswap-rt-test-")
        for name, content in files.items():
            p = os.path.join(self.root, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(textwrap.dedent(content))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": self.stub.address.replace("127.0.0.1", api_host or "127.0.0.1"),
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": self.root,
            "LAMBDA_RUNTIME_DIR": os.path.dirname(BOOTSTRAPS[lang]),
            "AWS_LAMBDA_FUNCTION_NAME": "testfn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/testfn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
        }
        env.update(extra_env or {})
        if lang == "python":
            argv = [PYTHON, "-S", "-B", bootstrap or PY_BOOTSTRAP]
        elif lang == "ruby":
            argv = [RUBY, "--disable-gems", bootstrap or RUBY_BOOTSTRAP]
        else:
            argv = [NODE, bootstrap or NODE_BOOTSTRAP]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, cwd=self.root, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stub.proc = self.proc
        self.out = self.err = None

    def wait_exit(self, timeout=WAIT):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("bootstrap did not exit within %.1fs" % timeout)
        return self.proc.returncode

    def finish(self):
        """Stop the process (if running) and collect its output."""
        if self.out is None:
            if self.proc.poll() is None:
                self.proc.kill()
            out, err = self.proc.communicate(timeout=WAIT)
            self.out, self.err = out.decode(errors="replace"), err.decode(errors="replace")
        return self.out, self.err

    def close(self):
        try:
            self.finish()
        finally:
            self.stub.close()
            shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------
# Tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what or "value", expected, actual))


def run_instance(inst, body):
    try:
        body(inst)
    except BaseException:
        out, err = inst.finish()
        sys.stderr.write("    --- bootstrap stdout ---\n%s\n    --- bootstrap stderr ---\n%s\n" % (out[-3000:], err[-3000:]))
        raise
    finally:
        inst.close()


def with_instance(lang, files, handler, **kw):
    def deco(body):
        def runner():
            run_instance(Instance(lang, files, handler, **kw), body)
        runner.__name__ = body.__name__
        return runner
    return deco


PY_APP = {
    "app.py": """
        import os
        counter = 0

        def echo(event, context):
            print("LOG-LINE from python", event.get("n") if isinstance(event, dict) else None)
            return event

        def ctx(event, context):
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "remaining": context.get_remaining_time_in_millis(),
                "identity_id": context.identity.cognito_identity_id if context.identity else "missing",
                "client_custom": context.client_context.custom if context.client_context else None,
                "client_app": context.client_context.client.app_title if context.client_context and context.client_context.client else None,
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            }

        def count(event, context):
            global counter
            counter += 1
            return {"counter": counter, "pid": os.getpid()}

        def fail(event, context):
            raise ValueError("boom: " + str(event.get("why")))

        def unserialisable(event, context):
            return {"s": {1, 2, 3}}

        def nothing(event, context):
            return None

        def kind(event, context):
            return {"type": type(event).__name__, "event": event}

        def decimal_result(event, context):
            from decimal import Decimal
            return {"d": Decimal("1.5")}

        not_callable = 42
    """,
    "pkg/__init__.py": "",
    "pkg/sub/__init__.py": "",
    "pkg/sub/mod.py": """
        def fn(event, context):
            return {"from": __name__, "event": event}
    """,
    "broken.py": """
        def handler(event, context)
            return 1
    """,
    "explodes.py": """
        raise RuntimeError("module init failed")
    """,
    "needsdep.py": """
        import does_not_exist_dep
        def handler(event, context):
            return 1
    """,
}


@test
def py_echo_roundtrip_and_stdout():
    @with_instance("python", PY_APP, "app.echo")
    def body(inst):
        ev = {"n": 7, "s": "h\u00e9llo \u2603", "nested": {"list": [1, 2.5, None, True]}}
        rid = inst.stub.push(ev)
        eq(inst.stub.response(rid), ev, "echo")
        out, _ = inst.finish()
        check("LOG-LINE from python 7" in out, "print output missing from stdout: %r" % out)
    body()


@test
def py_context_fields():
    @with_instance("python", PY_APP, "app.ctx")
    def body(inst):
        rid = inst.stub.push({}, headers={
            "Lambda-Runtime-Trace-Id": "Root=1-abc;Sampled=1",
            "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"}),
            "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}, "client": {"app_title": "app"}, "env": {}}),
        })
        r = inst.stub.response(rid)
        eq(r["function_name"], "testfn", "function_name")
        eq(r["function_version"], "$LATEST", "function_version")
        eq(r["memory_limit_in_mb"], 256, "memory_limit_in_mb (int)")
        eq(r["aws_request_id"], rid, "aws_request_id")
        eq(r["invoked_function_arn"], "arn:aws:lambda:us-east-1:000000000000:function:testfn", "arn")
        eq(r["log_group_name"], "/aws/lambda/testfn", "log_group_name")
        eq(r["log_stream_name"], "2024/01/01/[$LATEST]0123456789abcdef", "log_stream_name")
        check(0 < r["remaining"] <= 30000, "remaining time %r" % r["remaining"])
        eq(r["identity_id"], "id-1", "identity")
        eq(r["client_custom"], {"k": "v"}, "client_context.custom")
        eq(r["client_app"], "app", "client_context.client.app_title")
        eq(r["trace"], "Root=1-abc;Sampled=1", "_X_AMZN_TRACE_ID")
        # Without the optional headers: identity object with None fields, no client context.
        rid = inst.stub.push({})
        r = inst.stub.response(rid)
        eq(r["identity_id"], None, "identity without header")
        eq(r["client_custom"], None, "client_context without header")
        eq(r["trace"], None, "_X_AMZN_TRACE_ID cleared")
    body()


@test
def py_reuses_process_and_connection():
    @with_instance("python", PY_APP, "app.count")
    def body(inst):
        rs = [inst.stub.response(inst.stub.push({})) for _ in range(5)]
        eq([r["counter"] for r in rs], [1, 2, 3, 4, 5], "counter")
        eq(len({r["pid"] for r in rs}), 1, "distinct pids")
        eq(rs[0]["pid"], inst.proc.pid, "pid")
        eq(len(inst.stub.peers), 1, "TCP connections used (keep-alive)")
    body()


@test
def py_http10_server_closing_connections():
    @with_instance("python", PY_APP, "app.count", http10=True)
    def body(inst):
        rs = [inst.stub.response(inst.stub.push({})) for _ in range(3)]
        eq([r["counter"] for r in rs], [1, 2, 3], "counter")
    body()


def connection_variants(lang, files, handler):
    big = {"blob": "x" * (2 * 1024 * 1024), "n": 1}
    for opts in ({"chunked": True}, {"stale_close": True}, {"http10": True}, {}):
        @with_instance(lang, files, handler, **opts)
        def body(inst):
            for i in range(3):
                ev = big if i == 1 else {"i": i, "opts": sorted(opts)}
                eq(inst.stub.response(inst.stub.push(ev)), ev, "echo with %r #%d" % (opts, i))
            time.sleep(0.05)  # let the last POST's reply be read before the kill
            closing = opts.get("stale_close") or opts.get("http10")
            check(len(inst.stub.peers) >= 6 if closing else len(inst.stub.peers) == 1,
                  "%d TCP connections with %r" % (len(inst.stub.peers), opts))
            _, err = inst.finish()
            check("bootstrap:" not in err, "runtime complained with %r: %s" % (opts, err))
        body()


@test
def py_http_variants_chunked_stale_large():
    connection_variants("python", PY_APP, "app.echo")


@test
def hostname_in_runtime_api():
    for lang, files, handler in (("python", PY_APP, "app.echo"), ("node", NODE_APP, "index.echo")):
        @with_instance(lang, files, handler, api_host="localhost")
        def body(inst):
            eq(inst.stub.response(inst.stub.push({"n": 1})), {"n": 1}, lang + " via localhost:port")
        body()


def unix_forwarder(path, target):
    """Serves the Unix socket `path` by forwarding each connection to the TCP
    host:port that `target` (a one-item list, filled in later) names;
    returns the list of accepted connections."""
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    accepted = []

    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        while True:
            conn, _ = server.accept()
            accepted.append(conn)
            while not target:
                time.sleep(0.01)
            host, port = target[0].rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return accepted


@test
def unix_socket_endpoint():
    """The isolated sandbox names the Runtime API's Unix socket in
    _HOTSWAP_RUNTIME_API_SOCKET: the Python and Node bootstraps talk over it (here
    AWS_LAMBDA_RUNTIME_API names a closed port), and uses TCP when the
    socket cannot be reached."""
    tmp = tempfile.mkdtemp(prefix="hotswap-rt-sock-")
    try:
        for lang, files, handler in (("python", PY_APP, "app.echo"), ("node", NODE_APP, "index.echo")):
            path = os.path.join(tmp, lang + ".sock")
            target = []
            accepted = unix_forwarder(path, target)
            env = {"_HOTSWAP_RUNTIME_API_SOCKET": path, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}

            @with_instance(lang, files, handler, extra_env=env)
            def via_socket(inst):
                target.append(inst.stub.address)
                for n in range(3):
                    eq(inst.stub.response(inst.stub.push({"n": n})), {"n": n}, lang + " over the Unix socket")
                eq(len(accepted), 1, lang + ": connections to the Unix socket (one, kept alive)")
            via_socket()

            missing = {"_HOTSWAP_RUNTIME_API_SOCKET": os.path.join(tmp, "absent.sock")}

            @with_instance(lang, files, handler, extra_env=missing)
            def fallback(inst):
                eq(inst.stub.response(inst.stub.push({"n": 1})), {"n": 1}, lang + ": TCP when the socket is absent")
            fallback()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def py_dotted_module():
    for spec in ("pkg.sub.mod.fn", "pkg/sub/mod.fn"):
        @with_instance("python", PY_APP, spec)
        def body(inst):
            rid = inst.stub.push({"x": 1})
            eq(inst.stub.response(rid), {"from": "pkg.sub.mod", "event": {"x": 1}}, "handler " + spec)
        body()


@test
def py_decimal_result():
    @with_instance("python", PY_APP, "app.decimal_result")
    def body(inst):
        eq(inst.stub.response(inst.stub.push({})), {"d": 1.5}, "Decimal serialised as a number")
    body()


@test
def py_handler_exception():
    @with_instance("python", PY_APP, "app.fail")
    def body(inst):
        rid = inst.stub.push({"why": "because"})
        err, hdrs = inst.stub.error(rid)
        eq(err["errorType"], "ValueError", "errorType")
        eq(err["errorMessage"], "boom: because", "errorMessage")
        eq(err["requestId"], rid, "requestId")
        check(isinstance(err["stackTrace"], list) and err["stackTrace"], "stackTrace empty: %r" % err)
        check(any("app.py" in l and "in fail" in l for l in err["stackTrace"]), "stackTrace lacks handler frame: %r" % err["stackTrace"])
        check(not any("bootstrap.py" in l for l in err["stackTrace"]), "stackTrace includes bootstrap frames")
        eq(hdrs.get("lambda-runtime-function-error-type"), "ValueError", "error-type header")
        # The process survives and serves the next invocation.
        rid2 = inst.stub.push({"why": 2})
        eq(inst.stub.error(rid2)[0]["errorMessage"], "boom: 2", "second error")
        _, errout = inst.finish()
        check("[ERROR] ValueError: boom: because" in errout, "error not logged to stderr: %r" % errout)
    body()


@test
def py_marshal_error():
    @with_instance("python", PY_APP, "app.unserialisable")
    def body(inst):
        rid = inst.stub.push({})
        err, hdrs = inst.stub.error(rid)
        eq(err["errorType"], "Runtime.MarshalError", "errorType")
        check("set" in err["errorMessage"], "message: %r" % err["errorMessage"])
        eq(hdrs.get("lambda-runtime-function-error-type"), "Runtime.MarshalError", "header")
        eq(inst.proc.poll(), None, "process still running")
    body()


@test
def py_none_result_and_non_json_event():
    @with_instance("python", PY_APP, "app.nothing")
    def body(inst):
        rid = inst.stub.push({"a": 1})
        kind, raw, _ = inst.stub.wait_result(rid)
        eq((kind, raw.strip()), ("response", b"null"), "None result")
    body()

    @with_instance("python", PY_APP, "app.kind")
    def body2(inst):
        rid = inst.stub.push(b"hello, not json {", raw=True, headers={"Content-Type": "text/plain"})
        eq(inst.stub.response(rid), {"type": "str", "event": "hello, not json {"}, "non-JSON event")
        rid = inst.stub.push(b"", raw=True)
        eq(inst.stub.response(rid), {"type": "str", "event": ""}, "empty body")
        rid = inst.stub.push(b'  [1, "two"]  \n', raw=True)
        eq(inst.stub.response(rid), {"type": "list", "event": [1, "two"]}, "JSON array with whitespace")
        rid = inst.stub.push(b'"just a string"', raw=True)
        eq(inst.stub.response(rid), {"type": "str", "event": "just a string"}, "JSON string")
        rid = inst.stub.push(b'{"a": 1} trailing', raw=True)
        eq(inst.stub.response(rid), {"type": "str", "event": '{"a": 1} trailing'}, "JSON with trailing garbage")
    body2()


def py_init_error_case(handler, expected_type, fragment):
    @with_instance("python", PY_APP, handler)
    def body(inst):
        err, hdrs = inst.stub.wait_init_error()
        eq(err["errorType"], expected_type, "errorType")
        check(fragment in err["errorMessage"], "errorMessage %r lacks %r" % (err["errorMessage"], fragment))
        check(isinstance(err.get("stackTrace"), list), "stackTrace must be a list")
        eq(hdrs.get("lambda-runtime-function-error-type"), expected_type, "header")
        code = inst.wait_exit()
        check(code != 0, "exit code %r should be non-zero" % code)
        eq(inst.stub.next_calls, 0, "next calls after an init error")
    body()


@test
def py_missing_module():
    py_init_error_case("nosuchmodule.handler", "Runtime.ImportModuleError", "nosuchmodule")


@test
def py_missing_dependency():
    py_init_error_case("needsdep.handler", "Runtime.ImportModuleError", "does_not_exist_dep")


@test
def py_missing_function():
    py_init_error_case("app.nosuchfunction", "Runtime.HandlerNotFound", "nosuchfunction")


@test
def py_not_callable():
    py_init_error_case("app.not_callable", "Runtime.HandlerNotFound", "not_callable")


@test
def py_syntax_error():
    py_init_error_case("broken.handler", "Runtime.UserCodeSyntaxError", "broken")


@test
def py_module_raises_at_import():
    py_init_error_case("explodes.handler", "RuntimeError", "module init failed")


@test
def py_malformed_handler():
    py_init_error_case("nodot", "Runtime.MalformedHandlerName", "nodot")


NODE_APP = {
    "index.js": """
        let counter = 0;
        exports.echo = async (event) => {
          console.log('LOG-LINE from node', event && event.n);
          return event;
        };
        exports.ctx = async (event, context) => ({
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          invokedFunctionArn: context.invokedFunctionArn,
          memoryLimitInMB: context.memoryLimitInMB,
          awsRequestId: context.awsRequestId,
          logGroupName: context.logGroupName,
          logStreamName: context.logStreamName,
          remaining: context.getRemainingTimeInMillis(),
          waits: context.callbackWaitsForEmptyEventLoop,
          identity: context.identity,
          clientContext: context.clientContext,
          trace: process.env._X_AMZN_TRACE_ID || null,
        });
        exports.count = async () => ({ counter: ++counter, pid: process.pid });
        exports.asyncDelayed = async (event) => {
          await new Promise((r) => setTimeout(r, 20));
          return { style: 'async', event };
        };
        exports.callback = (event, context, callback) => {
          setTimeout(() => callback(null, { style: 'callback', event }), 20);
        };
        exports.callbackErr = (event, context, callback) => {
          const e = new RangeError('cb failed');
          setTimeout(() => callback(e), 5);
        };
        exports.callbackString = (event, context, callback) => callback('plain string error');
        exports.callbackTwice = (event, context, callback) => {
          callback(null, 'first');
          callback(null, 'second');
        };
        exports.contextSucceed = (event, context) => { context.succeed({ via: 'succeed' }); };
        exports.sync = (event) => ({ style: 'sync', event });
        exports.syncUndefined = (event) => { console.log('nothing to return'); };
        exports.throws = () => {
          class CustomError extends Error {}
          const e = new CustomError('sync throw');
          e.name = 'CustomError';
          throw e;
        };
        exports.rejects = async () => { throw new TypeError('async reject'); };
        exports.rejectsPlain = () => Promise.reject(new Error('plain reject'));
        exports.bigint = async () => ({ n: 10n });
        exports.circular = async () => { const o = {}; o.self = o; return o; };
        exports.kind = async (event) => ({ type: typeof event, event });
        exports.neverCallsBack = (event, context, callback) => { /* nothing pending */ };
        exports.strayRejection = async () => {
          setTimeout(() => Promise.reject(new Error('stray rejection')), 5);
          setTimeout(() => { throw new Error('stray throw'); }, 10);
          return 'ok';
        };
        exports.nested = { deeper: { fn: async () => 'nested ok' } };
        exports.notAFunction = 42;
    """,
    "src/index.js": """
        const helper = require('./helper');
        exports.handler = async (event) => ({ dir: 'src', helped: helper(event.v) });
    """,
    "src/helper.js": "module.exports = (v) => v * 2;\n",
    "esm.mjs": """
        import { basename } from 'node:path';
        export const handler = async (event) => ({ esm: true, file: basename(import.meta.url), event });
    """,
    "typed/package.json": '{"type": "module"}\n',
    "typed/mod.js": "export const handler = async () => 'esm via package.json type';\n",
    "plain.cjs": "module.exports.handler = async () => 'cjs file';\n",
    "broken.js": "exports.handler = async (event) => { return {;\n",
    "needsdep.js": "require('no-such-dependency-xyz');\nexports.handler = async () => 1;\n",
    "explodes.js": "throw new Error('node module init failed');\n",
}


@test
def node_echo_roundtrip_and_stdout():
    @with_instance("node", NODE_APP, "index.echo")
    def body(inst):
        ev = {"n": 9, "s": "h\u00e9llo \u2603", "nested": {"list": [1, 2.5, None, True]}}
        rid = inst.stub.push(ev)
        eq(inst.stub.response(rid), ev, "echo")
        out, _ = inst.finish()
        check("LOG-LINE from node 9" in out, "console.log output missing from stdout: %r" % out)
    body()


@test
def node_context_fields():
    @with_instance("node", NODE_APP, "index.ctx")
    def body(inst):
        rid = inst.stub.push({}, headers={
            "Lambda-Runtime-Trace-Id": "Root=1-def;Sampled=0",
            "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-2"}),
            "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}}),
        })
        r = inst.stub.response(rid)
        eq(r["functionName"], "testfn", "functionName")
        eq(r["functionVersion"], "$LATEST", "functionVersion")
        eq(r["memoryLimitInMB"], "256", "memoryLimitInMB (string)")
        eq(r["awsRequestId"], rid, "awsRequestId")
        eq(r["invokedFunctionArn"], "arn:aws:lambda:us-east-1:000000000000:function:testfn", "arn")
        eq(r["logGroupName"], "/aws/lambda/testfn", "logGroupName")
        eq(r["logStreamName"], "2024/01/01/[$LATEST]0123456789abcdef", "logStreamName")
        check(0 < r["remaining"] <= 30000, "remaining %r" % r["remaining"])
        eq(r["waits"], True, "callbackWaitsForEmptyEventLoop")
        eq(r["identity"], {"cognitoIdentityId": "id-2"}, "identity")
        eq(r["clientContext"], {"custom": {"k": "v"}}, "clientContext")
        eq(r["trace"], "Root=1-def;Sampled=0", "_X_AMZN_TRACE_ID")
    body()


@test
def node_reuses_process_and_connection():
    @with_instance("node", NODE_APP, "index.count")
    def body(inst):
        rs = [inst.stub.response(inst.stub.push({})) for _ in range(5)]
        eq([r["counter"] for r in rs], [1, 2, 3, 4, 5], "counter")
        eq(rs[0]["pid"], inst.proc.pid, "pid")
        eq(len({r["pid"] for r in rs}), 1, "distinct pids")
        eq(len(inst.stub.peers), 1, "TCP connections used (keep-alive)")
    body()


@test
def node_http10_server_closing_connections():
    @with_instance("node", NODE_APP, "index.count", http10=True)
    def body(inst):
        rs = [inst.stub.response(inst.stub.push({})) for _ in range(3)]
        eq([r["counter"] for r in rs], [1, 2, 3], "counter")
    body()


def node_case(handler, steps):
    @with_instance("node", NODE_APP, handler)
    def body(inst):
        steps(inst)
    body()


@test
def node_http_variants_chunked_stale_large():
    connection_variants("node", NODE_APP, "index.echo")


@test
def node_async_handler():
    node_case("index.asyncDelayed", lambda inst: eq(
        inst.stub.response(inst.stub.push({"a": 1})), {"style": "async", "event": {"a": 1}}, "async"))


@test
def node_callback_handler():
    def steps(inst):
        eq(inst.stub.response(inst.stub.push({"b": 2})), {"style": "callback", "event": {"b": 2}}, "callback")
        eq(inst.stub.response(inst.stub.push({"b": 3})), {"style": "callback", "event": {"b": 3}}, "callback 2")
    node_case("index.callback", steps)


@test
def node_callback_first_call_wins():
    def steps(inst):
        eq(inst.stub.response(inst.stub.push({})), "first", "first callback wins")
        eq(inst.stub.response(inst.stub.push({})), "first", "second invocation")
        _, err = inst.finish()
        check("InvalidRequestID" not in err, "second callback must not be posted: %r" % err)
    node_case("index.callbackTwice", steps)


@test
def node_context_succeed():
    node_case("index.contextSucceed", lambda inst: eq(
        inst.stub.response(inst.stub.push({})), {"via": "succeed"}, "context.succeed"))


@test
def node_sync_handler():
    def steps(inst):
        eq(inst.stub.response(inst.stub.push({"c": 3})), {"style": "sync", "event": {"c": 3}}, "sync")
    node_case("index.sync", steps)
    node_case("index.syncUndefined", lambda inst: eq(
        inst.stub.wait_result(inst.stub.push({}))[:2], ("response", b"null"), "undefined -> null"))


@test
def node_callback_never_called_resolves_null_when_idle():
    node_case("index.neverCallsBack", lambda inst: eq(
        inst.stub.wait_result(inst.stub.push({}))[:2], ("response", b"null"), "null on empty event loop"))


def node_error_case(handler, etype, message):
    def steps(inst):
        rid = inst.stub.push({})
        err, hdrs = inst.stub.error(rid)
        eq(err["errorType"], etype, "errorType")
        eq(err["errorMessage"], message, "errorMessage")
        eq(err["requestId"], rid, "requestId")
        check(isinstance(err["stackTrace"], list), "stackTrace list")
        eq(hdrs.get("lambda-runtime-function-error-type"), etype, "header")
        # The loop survives.
        err2, _ = inst.stub.error(inst.stub.push({}))
        eq(err2["errorType"], etype, "second invocation")
        return err
    node_case(handler, steps)


@test
def node_thrown_error():
    def steps(inst):
        rid = inst.stub.push({})
        err, hdrs = inst.stub.error(rid)
        eq(err["errorType"], "CustomError", "errorType")
        eq(err["errorMessage"], "sync throw", "errorMessage")
        eq(err["requestId"], rid, "requestId")
        check(err["stackTrace"] and err["stackTrace"][0].startswith("CustomError: sync throw"), "stack: %r" % err["stackTrace"])
        check(any("index.js" in l for l in err["stackTrace"]), "stack lacks handler file: %r" % err["stackTrace"])
        eq(hdrs.get("lambda-runtime-function-error-type"), "CustomError", "header")
    node_case("index.throws", steps)


@test
def node_rejected_promise():
    node_error_case("index.rejects", "TypeError", "async reject")
    node_error_case("index.rejectsPlain", "Error", "plain reject")


@test
def node_callback_error():
    node_error_case("index.callbackErr", "RangeError", "cb failed")
    node_error_case("index.callbackString", "Error", "plain string error")


@test
def node_marshal_error():
    for h in ("index.bigint", "index.circular"):
        def steps(inst):
            err, hdrs = inst.stub.error(inst.stub.push({}))
            eq(err["errorType"], "Runtime.MarshalError", "errorType for " + h)
            eq(hdrs.get("lambda-runtime-function-error-type"), "Runtime.MarshalError", "header")
            eq(inst.proc.poll(), None, "process still running")
        node_case(h, steps)


@test
def node_non_json_event():
    def steps(inst):
        rid = inst.stub.push(b"hello, not json {", raw=True, headers={"Content-Type": "text/plain"})
        eq(inst.stub.response(rid), {"type": "string", "event": "hello, not json {"}, "non-JSON event")
        rid = inst.stub.push(b"", raw=True)
        eq(inst.stub.response(rid), {"type": "string", "event": ""}, "empty body")
    node_case("index.kind", steps)


@test
def node_subdirectory_handler():
    node_case("src/index.handler", lambda inst: eq(
        inst.stub.response(inst.stub.push({"v": 21})), {"dir": "src", "helped": 42}, "src/index.handler"))


@test
def node_nested_export():
    node_case("index.nested.deeper.fn", lambda inst: eq(
        inst.stub.response(inst.stub.push({})), "nested ok", "nested export"))


@test
def node_esm_and_cjs_files():
    node_case("esm.handler", lambda inst: eq(
        inst.stub.response(inst.stub.push({"m": 1})), {"esm": True, "file": "esm.mjs", "event": {"m": 1}}, ".mjs"))
    node_case("typed/mod.handler", lambda inst: eq(
        inst.stub.response(inst.stub.push({})), "esm via package.json type", "type: module .js"))
    node_case("plain.handler", lambda inst: eq(
        inst.stub.response(inst.stub.push({})), "cjs file", ".cjs"))


@test
def node_stray_errors_do_not_kill_loop():
    def steps(inst):
        eq(inst.stub.response(inst.stub.push({})), "ok", "first")
        time.sleep(0.1)  # let the stray rejection/throw fire between invocations
        eq(inst.stub.response(inst.stub.push({})), "ok", "second")
        eq(inst.proc.poll(), None, "process still running")
        _, err = inst.finish()
        check("unhandledRejection" in err and "stray rejection" in err, "rejection not logged: %r" % err)
        check("uncaughtException" in err and "stray throw" in err, "exception not logged: %r" % err)
    node_case("index.strayRejection", steps)


def node_init_error_case(handler, expected_type, fragment):
    @with_instance("node", NODE_APP, handler)
    def body(inst):
        err, hdrs = inst.stub.wait_init_error()
        eq(err["errorType"], expected_type, "errorType")
        check(fragment in err["errorMessage"], "errorMessage %r lacks %r" % (err["errorMessage"], fragment))
        check(isinstance(err.get("stackTrace"), list), "stackTrace must be a list")
        eq(hdrs.get("lambda-runtime-function-error-type"), expected_type, "header")
        code = inst.wait_exit()
        check(code != 0, "exit code %r should be non-zero" % code)
        eq(inst.stub.next_calls, 0, "next calls after an init error")
    body()


@test
def node_missing_module():
    node_init_error_case("nosuchfile.handler", "Runtime.ImportModuleError", "nosuchfile")


@test
def node_missing_dependency():
    node_init_error_case("needsdep.handler", "Runtime.ImportModuleError", "no-such-dependency-xyz")


@test
def node_missing_export():
    node_init_error_case("index.nosuchexport", "Runtime.HandlerNotFound", "nosuchexport")


@test
def node_export_not_function():
    node_init_error_case("index.notAFunction", "Runtime.HandlerNotFound", "not a function")


@test
def node_syntax_error():
    node_init_error_case("broken.handler", "Runtime.UserCodeSyntaxError", "SyntaxError")


@test
def node_module_throws_at_load():
    node_init_error_case("explodes.handler", "Error", "node module init failed")


@test
def node_malformed_handler():
    node_init_error_case("nodot", "Runtime.MalformedHandlerName", "nodot")


RUBY_APP = {
    "lambda_function.rb": """
        require "json"
        $counter = 0

        def echo(event:, context:)
          puts "LOG-LINE from ruby #{event.is_a?(Hash) ? event['n'] : nil}"
          event
        end

        def ctx(event:, context:)
          {
            "function_name" => context.function_name,
            "function_version" => context.function_version,
            "invoked_function_arn" => context.invoked_function_arn,
            "memory_limit_in_mb" => context.memory_limit_in_mb,
            "aws_request_id" => context.aws_request_id,
            "log_group_name" => context.log_group_name,
            "log_stream_name" => context.log_stream_name,
            "remaining" => context.get_remaining_time_in_millis,
            "identity" => context.identity,
            "client_context" => context.client_context,
            "trace" => ENV["_X_AMZN_TRACE_ID"],
          }
        end

        def count(event:, context:)
          $counter += 1
          { "counter" => $counter, "pid" => Process.pid }
        end

        def fail(event:, context:)
          raise ArgumentError, "boom: #{event['why']}"
        end

        def nan(event:, context:)
          { "x" => Float::NAN }
        end

        def nothing(event:, context:)
          nil
        end

        def kind(event:, context:)
          { "type" => event.class.name, "event" => event }
        end

        def positional(event, context)
          { "style" => "positional", "id" => context.aws_request_id.size > 0, "event" => event }
        end

        def only_event(event)
          { "style" => "event only", "event" => event }
        end

        def only_event_kw(event:)
          { "style" => "event keyword", "event" => event }
        end

        module Outer
          class Handler
            def self.process(event:, context:)
              { "style" => "class method", "event" => event }
            end
          end
        end
    """,
    "lib/dir/nested.rb": """
        def handler(event:, context:)
          { "file" => __FILE__.split("/").last(3).join("/"), "event" => event }
        end
    """,
    "broken.rb": """
        def handler(event:, context:)
          if
        end
    """,
    "explodes.rb": """
        raise IOError, "ruby module init failed"
    """,
    "needsdep.rb": """
        require "no_such_dependency_xyz"
        def handler(event:, context:) = 1
    """,
}


@test
def ruby_echo_roundtrip_and_stdout():
    @with_instance("ruby", RUBY_APP, "lambda_function.echo")
    def body(inst):
        ev = {"n": 5, "s": "h\u00e9llo \u2603", "nested": {"list": [1, 2.5, None, True]}}
        rid = inst.stub.push(ev)
        eq(inst.stub.response(rid), ev, "echo")
        out, _ = inst.finish()
        check("LOG-LINE from ruby 5" in out, "puts output missing from stdout: %r" % out)
    body()


@test
def ruby_context_fields():
    @with_instance("ruby", RUBY_APP, "lambda_function.ctx")
    def body(inst):
        identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"}
        client = {"custom": {"k": "v"}, "client": {"app_title": "app"}, "env": {}}
        rid = inst.stub.push({}, headers={
            "Lambda-Runtime-Trace-Id": "Root=1-abc;Sampled=1",
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Client-Context": json.dumps(client),
        })
        r = inst.stub.response(rid)
        eq(r["function_name"], "testfn", "function_name")
        eq(r["function_version"], "$LATEST", "function_version")
        eq(r["memory_limit_in_mb"], "256", "memory_limit_in_mb (a string, as on AWS)")
        eq(r["aws_request_id"], rid, "aws_request_id")
        eq(r["invoked_function_arn"], "arn:aws:lambda:us-east-1:000000000000:function:testfn", "arn")
        eq(r["log_group_name"], "/aws/lambda/testfn", "log_group_name")
        eq(r["log_stream_name"], "2024/01/01/[$LATEST]0123456789abcdef", "log_stream_name")
        check(0 < r["remaining"] <= 30000, "remaining time %r" % r["remaining"])
        eq(r["identity"], identity, "identity")
        eq(r["client_context"], client, "client_context")
        eq(r["trace"], "Root=1-abc;Sampled=1", "_X_AMZN_TRACE_ID")
        r = inst.stub.response(inst.stub.push({}))
        eq((r["identity"], r["client_context"], r["trace"]), (None, None, None), "without the optional headers")
    body()


@test
def ruby_reuses_process_and_connection():
    @with_instance("ruby", RUBY_APP, "lambda_function.count")
    def body(inst):
        rs = [inst.stub.response(inst.stub.push({})) for _ in range(5)]
        eq([r["counter"] for r in rs], [1, 2, 3, 4, 5], "counter")
        eq(rs[0]["pid"], inst.proc.pid, "pid")
        eq(len(inst.stub.peers), 1, "TCP connections used (keep-alive)")
    body()


@test
def ruby_http_variants_chunked_stale_large():
    connection_variants("ruby", RUBY_APP, "lambda_function.echo")


@test
def ruby_handler_forms():
    cases = [
        ("lambda_function.Outer::Handler.process", "class method"),
        ("lambda_function.positional", "positional"),
        ("lambda_function.only_event", "event only"),
        ("lambda_function.only_event_kw", "event keyword"),
    ]
    for spec, style in cases:
        @with_instance("ruby", RUBY_APP, spec)
        def body(inst):
            r = inst.stub.response(inst.stub.push({"x": 1}))
            eq((r["style"], r["event"]), (style, {"x": 1}), spec)
        body()

    @with_instance("ruby", RUBY_APP, "lib/dir/nested.handler", api_host="localhost")
    def nested(inst):
        eq(inst.stub.response(inst.stub.push(2)), {"file": "lib/dir/nested.rb", "event": 2}, "file in a subdirectory")
    nested()


@test
def ruby_handler_exception():
    @with_instance("ruby", RUBY_APP, "lambda_function.fail")
    def body(inst):
        rid = inst.stub.push({"why": "because"})
        err, hdrs = inst.stub.error(rid)
        eq(err["errorType"], "ArgumentError", "errorType")
        eq(err["errorMessage"], "boom: because", "errorMessage")
        eq(err["requestId"], rid, "requestId")
        check(any("lambda_function.rb" in l and "fail" in l for l in err["stackTrace"]),
              "stackTrace lacks the handler frame: %r" % err["stackTrace"])
        check(not any("bootstrap.rb" in l for l in err["stackTrace"]), "stackTrace includes bootstrap frames")
        eq(hdrs.get("lambda-runtime-function-error-type"), "ArgumentError", "error-type header")
        eq(inst.stub.error(inst.stub.push({"why": 2}))[0]["errorMessage"], "boom: 2", "second error")
        _, errout = inst.finish()
        check("[ERROR] ArgumentError: boom: because" in errout, "error not logged to stderr: %r" % errout)
    body()


@test
def ruby_marshal_error_nil_and_non_json_event():
    @with_instance("ruby", RUBY_APP, "lambda_function.nan")
    def body(inst):
        err, _ = inst.stub.error(inst.stub.push({}))
        eq(err["errorType"], "Runtime.MarshalError", "errorType")
        eq(inst.proc.poll(), None, "process still running")
    body()

    @with_instance("ruby", RUBY_APP, "lambda_function.nothing")
    def body2(inst):
        kind, raw, _ = inst.stub.wait_result(inst.stub.push({"a": 1}))
        eq((kind, raw.strip()), ("response", b"null"), "nil result")
    body2()

    @with_instance("ruby", RUBY_APP, "lambda_function.kind")
    def body3(inst):
        rid = inst.stub.push(b"hello, not json {", raw=True, headers={"Content-Type": "text/plain"})
        eq(inst.stub.response(rid), {"type": "String", "event": "hello, not json {"}, "non-JSON event")
        rid = inst.stub.push(b'  [1, "two"]  \n', raw=True)
        eq(inst.stub.response(rid), {"type": "Array", "event": [1, "two"]}, "JSON array")
        rid = inst.stub.push(b"42", raw=True)
        eq(inst.stub.response(rid), {"type": "Integer", "event": 42}, "JSON scalar")
    body3()


@test
def ruby_gems_from_vendor_bundle():
    abi = subprocess.run([RUBY, "--disable-gems", "-e", "print RUBY_VERSION.split('.')[0, 2].join('.') + '.0'"],
                         capture_output=True, text=True, check=True).stdout
    base = "vendor/bundle/ruby/%s/" % abi
    files = {
        base + "specifications/greeter-1.2.0.gemspec": """
            Gem::Specification.new do |s|
              s.name = "greeter"
              s.version = "1.2.0"
              s.summary = "test gem"
              s.authors = ["t"]
              s.files = ["lib/greeter.rb"]
              s.require_paths = ["lib"]
            end
        """,
        base + "gems/greeter-1.2.0/lib/greeter.rb": "module Greeter\n  def self.hi(n) = \"hi #{n}\"\nend\n",
        "app.rb": """
            require "greeter"
            def handler(event:, context:)
              { "greeting" => Greeter.hi(event["name"]), "version" => Gem.loaded_specs["greeter"].version.to_s }
            end
        """,
    }

    @with_instance("ruby", files, "app.handler")
    def body(inst):
        eq(inst.stub.response(inst.stub.push({"name": "bob"})), {"greeting": "hi bob", "version": "1.2.0"}, "vendored gem")
    body()


def ruby_init_error_case(handler, expected_type, fragment):
    @with_instance("ruby", RUBY_APP, handler)
    def body(inst):
        err, hdrs = inst.stub.wait_init_error()
        eq(err["errorType"], expected_type, "errorType")
        check(fragment in err["errorMessage"], "errorMessage %r lacks %r" % (err["errorMessage"], fragment))
        check(isinstance(err.get("stackTrace"), list), "stackTrace must be a list")
        eq(hdrs.get("lambda-runtime-function-error-type"), expected_type, "header")
        check(inst.wait_exit() != 0, "exit code should be non-zero")
        eq(inst.stub.next_calls, 0, "next calls after an init error")
    body()


@test
def ruby_init_errors():
    ruby_init_error_case("nosuchfile.handler", "Runtime.ImportModuleError", "nosuchfile")
    ruby_init_error_case("needsdep.handler", "Runtime.ImportModuleError", "no_such_dependency_xyz")
    ruby_init_error_case("lambda_function.nosuchmethod", "Runtime.HandlerNotFound", "nosuchmethod")
    ruby_init_error_case("lambda_function.puts", "Runtime.HandlerNotFound", "puts")
    ruby_init_error_case("lambda_function.Nope::Handler.process", "Runtime.HandlerNotFound", "Nope::Handler")
    ruby_init_error_case("broken.handler", "Runtime.UserCodeSyntaxError", "broken")
    ruby_init_error_case("explodes.handler", "IOError", "ruby module init failed")
    ruby_init_error_case("nodot", "Runtime.MalformedHandlerName", "nodot")


# ---------------------------------------------------------------------------
# Cold-start benchmark


def bench(n):
    trivial = {
        "python": ({"app.py": "def handler(event, context):\n    return event\n"}, "app.handler"),
        "node": ({"index.js": "exports.handler = async (event) => event;\n"}, "index.handler"),
        "ruby": ({"lambda_function.rb": "def handler(event:, context:) = event\n"}, "lambda_function.handler"),
    }
    t = []
    for _ in range(n):
        s = time.perf_counter()
        subprocess.run([PYTHON, "-S", "-c", "pass"])
        t.append((time.perf_counter() - s) * 1000)
    print("baseline python3 -S -c pass (spawn to exit): %s" % stats(t))
    for label, argv in (("ruby -e 0", [RUBY, "-e", "0"]), ("ruby --disable-gems -e 0", [RUBY, "--disable-gems", "-e", "0"])):
        t = []
        for _ in range(max(n // 2, 5)):
            s = time.perf_counter()
            subprocess.run(argv)
            t.append((time.perf_counter() - s) * 1000)
        print("baseline %s (spawn to exit): %s" % (label, stats(t)))
    pyc_dir = tempfile.mkdtemp(prefix="hotswap-rt-bench-")
    pyc = os.path.join(pyc_dir, "bootstrap.pyc")
    subprocess.run([PYTHON, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
                    PY_BOOTSTRAP, pyc], check=True)
    runs = [("python", None), ("python", pyc), ("node", None), ("ruby", None)]
    for lang, bootstrap in runs:
        files, handler = trivial[lang]
        label = lang + (" (.pyc)" if bootstrap else "")
        to_next, to_resp = [], []
        for i in range(n if lang == "python" else max(n // 2, 5)):
            inst = Instance(lang, files, handler, bootstrap=bootstrap)
            rid = inst.stub.push({"k": i})
            inst.stub.response(rid)
            done = time.perf_counter()
            to_next.append((inst.stub.first_next_at - inst.started) * 1000)
            to_resp.append((done - inst.started) * 1000)
            inst.close()
        print("%-13s spawn -> first GET next: %s" % (label, stats(to_next)))
        print("%-13s spawn -> response posted: %s" % (label, stats(to_resp)))
    shutil.rmtree(pyc_dir, ignore_errors=True)


def stats(xs):
    xs = sorted(xs)
    return "min %.2f ms, median %.2f ms, p90 %.2f ms (n=%d)" % (xs[0], xs[len(xs) // 2], xs[int(len(xs) * 0.9) - 1 if len(xs) > 1 else 0], len(xs))


# ---------------------------------------------------------------------------


def main(argv):
    if "--bench" in argv:
        i = argv.index("--bench")
        n = int(argv[i + 1]) if len(argv) > i + 1 else 50
        bench(n)
        return 0
    pattern = argv[argv.index("-k") + 1] if "-k" in argv else None
    verbose = "-v" in argv
    passed = failed = 0
    started = time.perf_counter()
    for fn in TESTS:
        if pattern and pattern not in fn.__name__:
            continue
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, e))
            if verbose or not isinstance(e, AssertionError):
                traceback.print_exc()
        else:
            passed += 1
            print("ok   %s (%.0f ms)" % (fn.__name__, (time.perf_counter() - t0) * 1000))
    print("total %.1f s" % (time.perf_counter() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
