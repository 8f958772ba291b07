"""HotSwap built-in Python runtime: an AWS Lambda Runtime API client.

Launched as ``python3 -S -B bootstrap.py`` with AWS_LAMBDA_RUNTIME_API,
_HANDLER (``module.function``, module may be dotted or use slashes) and
LAMBDA_TASK_ROOT set.  Standard library only.

Cold start matters, so this file only imports C modules that cost next to
nothing (``_socket``, ``_json``, ``posix``): the ``socket`` and ``json``
packages each pull in ``re``/``enum``/``selectors`` and add ~6 ms apiece.
It speaks HTTP/1.1 over one keep-alive connection itself and falls back to
the ``json`` package if the private ``_json`` API ever changes shape.
``traceback`` is imported only when an error has to be reported.
"""

import sys
import time
import posix
import _socket

API_PREFIX = "/2018-06-01/runtime"
MAX_HEADER_BYTES = 64 * 1024
# The name frames of this file carry (also when run from a precompiled .pyc).
_SELF = (lambda: 0).__code__.co_filename
_PATH_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _env(name, default=None):
    value = posix.environ.get(name.encode())
    if value is None:
        return default
    return value.decode("utf-8", "surrogateescape")


def _setenv(name, value):
    """Set (or unset, value None) a variable for this process, keeping
    ``os.environ`` coherent whether or not ``os`` is imported yet."""
    os_mod = sys.modules.get("os")
    if os_mod is not None:
        if value is None:
            os_mod.environ.pop(name, None)
        else:
            os_mod.environ[name] = value
        return
    key = name.encode()
    if value is None:
        posix.environ.pop(key, None)
        try:
            posix.unsetenv(key)
        except OSError:
            pass
    else:
        raw = value.encode("utf-8", "surrogateescape")
        posix.environ[key] = raw
        posix.putenv(key, raw)


def _is_dir(path):
    try:
        return (posix.stat(path).st_mode & 0o170000) == 0o040000
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------
# JSON: the C accelerator directly (same code json.loads/json.dumps run).

_NO_JSON = object()


def _default(obj):
    dec = sys.modules.get("decimal")
    if dec is not None and isinstance(obj, dec.Decimal):
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _make_json():
    try:
        import _json

        class _ScanContext:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = {
                "NaN": float("nan"),
                "Infinity": float("inf"),
                "-Infinity": float("-inf"),
            }.__getitem__
            memo = {}

        scan_once = _json.make_scanner(_ScanContext())
        ws = " \t\n\r"

        def loads(text):
            start = len(text) - len(text.lstrip(ws))
            try:
                value, end = scan_once(text, start)
            except StopIteration:
                return _NO_JSON
            if end != len(text.rstrip(ws)):
                return _NO_JSON
            return value

        def dumps(obj):
            # markers={} enables the circular-reference check, like json.dumps.
            encode = _json.make_encoder(
                {}, _default, _json.encode_basestring_ascii, None,
                ":", ",", False, False, False,
            )
            return "".join(encode(obj, 0))

        # Self-check so a changed private API falls back instead of misbehaving.
        if loads(' {"a": [1, 2.5, null, "\\u00e9"]} ') != {"a": [1, 2.5, None, "\u00e9"]}:
            raise ValueError("scanner self-check")
        if dumps({"a": [1, None, "\u00e9"]}) != '{"a":[1,null,"\\u00e9"]}':
            raise ValueError("encoder self-check")
        return loads, dumps
    except Exception:
        import json

        def loads(text):
            try:
                return json.loads(text)
            except ValueError:
                return _NO_JSON

        def dumps(obj):
            return json.dumps(obj, default=_default, separators=(",", ":"), allow_nan=False)

        return loads, dumps


json_loads, json_dumps = _make_json()


def parse_event(body):
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        stripped = text[1:]
    else:
        stripped = text
    try:
        value = json_loads(stripped)
    except Exception:
        value = _NO_JSON
    return text if value is _NO_JSON else value


# --------------------------------------------------------------------------
# Minimal HTTP/1.1 client with one keep-alive connection.


class HTTPError(Exception):
    pass


class Connection:
    def __init__(self, hostport, unix_path=None):
        # The platform's own endpoint as a Unix socket (the isolated sandbox
        # offers it): one hop fewer than its loopback relay. TCP otherwise.
        self.unix_path = unix_path
        # One receive buffer for the instance's life: a fresh 256 KB bytes
        # object per recv() costs an mmap/mremap/munmap per request.
        self.rbuf = memoryview(bytearray(262144))
        if hostport.startswith("http://"):
            hostport = hostport[7:].rstrip("/")
        self.hostport = hostport
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise HTTPError("AWS_LAMBDA_RUNTIME_API must be host:port, got %r" % hostport)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.host = host
        self.port = int(port)
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b""

    def _connect(self):
        if self.unix_path:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.connect(self.unix_path)
                return sock
            except OSError:
                sock.close()
                self.unix_path = None  # not reachable from here: use TCP
        last = None
        try:
            # bytes: a str host makes getaddrinfo import encodings.idna (+8 ms).
            host = self.host.encode("ascii")
        except UnicodeEncodeError:
            host = self.host
        for family, kind, proto, _, addr in _socket.getaddrinfo(
            host, self.port, 0, _socket.SOCK_STREAM
        ):
            sock = None
            try:
                sock = _socket.socket(family, kind, proto)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(addr)
                return sock
            except OSError as e:
                last = e
                if sock is not None:
                    sock.close()
        raise last or HTTPError("cannot resolve %s" % self.host)

    def request(self, method, path, body=None, headers=()):
        head = ["%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hotswap-python\r\n" % (method, path, self.hostport)]
        for name, value in headers:
            head.append("%s: %s\r\n" % (name, value))
        if body is not None:
            head.append("Content-Length: %d\r\n" % len(body))
        head.append("\r\n")
        data = "".join(head).encode("latin-1")
        if body is not None:
            data += body
        # A reused connection may have been closed by the server while idle:
        # retry once on a fresh one if not a single response byte arrived.
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self.sock = self._connect()
                self.buf = b""
            try:
                try:
                    self.sock.sendall(data)
                except OSError:
                    # The server may have answered (e.g. 413) and closed early.
                    resp = self._try_read_response(method)
                    if resp is None:
                        raise
                    return resp
                return self._read_response(method)
            except (OSError, HTTPError) as e:
                got_bytes = bool(self.buf) or getattr(e, "got_bytes", False)
                self.close()
                if not reused or got_bytes or attempt:
                    raise

    def _try_read_response(self, method):
        try:
            return self._read_response(method)
        except (OSError, HTTPError):
            self.close()
            return None

    def _fill(self):
        n = self.sock.recv_into(self.rbuf)
        if not n:
            err = HTTPError("connection closed by the Runtime API")
            err.got_bytes = bool(self.buf)
            raise err
        self.buf += self.rbuf[:n]

    def _read_exact(self, n):
        buf = self.buf
        if len(buf) < n:
            pieces = [buf]
            have = len(buf)
            while have < n:
                chunk = self.sock.recv(max(n - have, 65536))
                if not chunk:
                    self.buf = b"".join(pieces)
                    err = HTTPError("connection closed by the Runtime API")
                    err.got_bytes = True
                    raise err
                pieces.append(chunk)
                have += len(chunk)
            buf = b"".join(pieces)
        self.buf = buf[n:]
        return buf[:n] if len(buf) != n else buf

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self.buf[:i]
                self.buf = self.buf[i + 2:]
                return line
            if len(self.buf) > MAX_HEADER_BYTES:
                raise HTTPError("line too long")
            self._fill()

    def _read_response(self, method):
        got_any = False
        try:
            while True:
                while True:
                    i = self.buf.find(b"\r\n\r\n")
                    if i >= 0:
                        break
                    if len(self.buf) > MAX_HEADER_BYTES:
                        raise HTTPError("response header too large")
                    self._fill()
                got_any = True
                head = self.buf[:i].decode("latin-1")
                self.buf = self.buf[i + 4:]
                lines = head.split("\r\n")
                parts = lines[0].split(" ", 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                    raise HTTPError("bad status line %r" % lines[0])
                version, status = parts[0], int(parts[1])
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if not sep:
                        continue
                    name = name.strip().lower()
                    value = value.strip()
                    if name in headers:
                        headers[name] += ", " + value
                    else:
                        headers[name] = value
                if 100 <= status < 200:
                    continue  # interim response (100 Continue): read the real one
                break

            conn_tokens = headers.get("connection", "").lower()
            keep = "close" not in conn_tokens and (version != "HTTP/1.0" or "keep-alive" in conn_tokens)
            te = headers.get("transfer-encoding", "").lower()
            if method == "HEAD" or status in (204, 304):
                body = b""
            elif "chunked" in te:
                pieces = []
                while True:
                    size_line = self._read_line().split(b";", 1)[0].strip()
                    size = int(size_line, 16)
                    if size == 0:
                        while self._read_line():  # trailers
                            pass
                        break
                    pieces.append(self._read_exact(size))
                    self._read_exact(2)
                body = b"".join(pieces)
            elif "content-length" in headers:
                length = int(headers["content-length"].split(",")[0].strip())
                body = self._read_exact(length)
            else:
                # Body delimited by the end of the connection.
                try:
                    while True:
                        self._fill()
                except HTTPError:
                    pass
                body = self.buf
                self.buf = b""
                keep = False
        except HTTPError as e:
            if got_any:
                e.got_bytes = True
            raise
        except ValueError as e:
            err = HTTPError("malformed response: %s" % e)
            err.got_bytes = True
            raise err
        if not keep:
            self.close()
        return status, headers, body


# --------------------------------------------------------------------------
# Lambda programming model


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data=None):
        data = data if isinstance(data, dict) else {}
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")

    def __repr__(self):
        return "CognitoIdentity(cognito_identity_id=%r, cognito_identity_pool_id=%r)" % (
            self.cognito_identity_id, self.cognito_identity_pool_id)


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, data):
        for name in self.__slots__:
            setattr(self, name, data.get(name))

    def __repr__(self):
        return "Client(%s)" % ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data):
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = data.get("custom")
        self.env = data.get("env")

    def __repr__(self):
        return "ClientContext(client=%r, custom=%r, env=%r)" % (self.client, self.custom, self.env)


def _json_header(headers, name):
    raw = headers.get(name)
    if not raw:
        return None
    value = parse_event(raw.encode("latin-1"))
    return value if isinstance(value, dict) else None


class LambdaContext:
    def __init__(self, request_id, headers, static):
        self.aws_request_id = request_id
        self.function_name = static["function_name"]
        self.function_version = static["function_version"]
        self.memory_limit_in_mb = static["memory_limit_in_mb"]
        self.log_group_name = static["log_group_name"]
        self.log_stream_name = static["log_stream_name"]
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        try:
            self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        except ValueError:
            self._deadline_ms = 0
        self.identity = CognitoIdentity(_json_header(headers, "lambda-runtime-cognito-identity"))
        cc = _json_header(headers, "lambda-runtime-client-context")
        self.client_context = ClientContext(cc) if cc is not None else None

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self):
        return (
            "LambdaContext(aws_request_id=%r, function_name=%r, function_version=%r, "
            "invoked_function_arn=%r, memory_limit_in_mb=%r, remaining_time_in_millis=%r)"
            % (self.aws_request_id, self.function_name, self.function_version,
               self.invoked_function_arn, self.memory_limit_in_mb, self.get_remaining_time_in_millis())
        )


class InitError(Exception):
    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


def _format_tb(tb):
    import traceback

    frames = [
        f for f in traceback.extract_tb(tb)
        if not (f.filename.startswith("<frozen importlib") or f.filename == _SELF)
    ]
    return traceback.format_list(frames)


def _safe_str(obj):
    try:
        return str(obj)
    except Exception:
        return "<unprintable %s object>" % type(obj).__name__


def _header_value(text):
    cleaned = "".join(c for c in str(text) if " " <= c <= "~")
    return cleaned[:200] or "Unhandled"


def _log_error(payload, trace_text=None):
    try:
        msg = "[ERROR] %s: %s" % (payload["errorType"], payload["errorMessage"])
        if payload.get("stackTrace"):
            msg += "\nTraceback (most recent call last):\n" + "".join(payload["stackTrace"]).rstrip("\n")
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _quote(segment):
    if all(c in _PATH_SAFE for c in segment):
        return segment
    return "".join(c if c in _PATH_SAFE else "".join("%%%02X" % b for b in c.encode("utf-8")) for c in segment)


def load_handler(spec, task_root):
    modname, dot, fname = spec.strip().rpartition(".")
    if not dot or not modname or not fname:
        raise InitError("Runtime.MalformedHandlerName", "Bad handler '%s': expected module.function" % spec)
    modname = modname.replace("/", ".").strip(".")
    try:
        __import__(modname)
        module = sys.modules[modname]
    except ImportError as e:
        raise InitError(
            "Runtime.ImportModuleError",
            "Unable to import module '%s': %s" % (modname, e),
            _format_tb(e.__traceback__),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s\n' % (e.filename, e.lineno, (e.text or "").strip())]
        raise InitError(
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module '%s': %s" % (modname, e),
            trace,
        )
    except Exception as e:
        raise InitError(type(e).__name__, _safe_str(e), _format_tb(e.__traceback__))
    try:
        handler = getattr(module, fname)
    except AttributeError:
        raise InitError("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))
    if not callable(handler):
        raise InitError("Runtime.HandlerNotFound", "Handler '%s' on module '%s' is not callable" % (fname, modname))
    return handler


def _setup_paths(task_root):
    # sys.path[0] is this script's directory: the function's code must not be
    # shadowed by (or resolve to) the runtime's own files.
    script_dir = __file__.rpartition("/")[0] or "."
    if sys.path and sys.path[0] in (script_dir, ""):
        del sys.path[0]
    extra = [task_root] if task_root else []
    ver = "python%d.%d" % sys.version_info[:2]
    for layer in ("/opt/python/lib/%s/site-packages" % ver, "/opt/python"):
        if _is_dir(layer):
            extra.append(layer)
    sys.path[0:0] = [p for p in extra if p not in sys.path]


def main():
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass

    api = _env("AWS_LAMBDA_RUNTIME_API")
    if not api:
        sys.stderr.write("bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 2
    conn = Connection(api, _env("_HOTSWAP_RUNTIME_API_SOCKET"))
    spec = _env("_HANDLER") or (sys.argv[1] if len(sys.argv) > 1 else "")
    task_root = _env("LAMBDA_TASK_ROOT", "/var/task")
    _setup_paths(task_root)

    try:
        memory = int(_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    except ValueError:
        memory = 128
    static = {
        "function_name": _env("AWS_LAMBDA_FUNCTION_NAME"),
        "function_version": _env("AWS_LAMBDA_FUNCTION_VERSION"),
        "memory_limit_in_mb": memory,
        "log_group_name": _env("AWS_LAMBDA_LOG_GROUP_NAME"),
        "log_stream_name": _env("AWS_LAMBDA_LOG_STREAM_NAME"),
    }

    try:
        handler = load_handler(spec, task_root)
    except InitError as e:
        payload = {"errorMessage": e.message, "errorType": e.error_type, "stackTrace": e.trace}
        _log_error(payload)
        try:
            post(conn, API_PREFIX + "/init/error", payload, e.error_type)
        except Exception as pe:
            sys.stderr.write("bootstrap: could not report init error: %s\n" % pe)
        return 1

    next_path = API_PREFIX + "/invocation/next"
    while True:
        try:
            status, headers, body = conn.request("GET", next_path)
        except Exception as e:
            sys.stderr.write("bootstrap: GET next failed: %s\n" % e)
            return 1
        if status != 200:
            sys.stderr.write("bootstrap: GET next returned %d: %s\n" % (status, body[:500].decode("utf-8", "replace")))
            return 1
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        _setenv("_X_AMZN_TRACE_ID", headers.get("lambda-runtime-trace-id"))
        context = LambdaContext(request_id, headers, static)
        event = parse_event(body)
        base = API_PREFIX + "/invocation/" + _quote(request_id)
        try:
            result = handler(event, context)
        except Exception as e:
            payload = {
                "errorMessage": _safe_str(e),
                "errorType": type(e).__name__,
                "stackTrace": _format_tb(e.__traceback__.tb_next if e.__traceback__ else None),
                "requestId": request_id,
            }
            report_error(conn, base, payload)
            continue
        finally:
            try:
                sys.stdout.flush()
            except Exception:
                pass
        try:
            data = json_dumps(result).encode("ascii")
        except Exception as e:
            payload = {
                "errorMessage": "Unable to marshal response: %s" % e,
                "errorType": "Runtime.MarshalError",
                "stackTrace": [],
                "requestId": request_id,
            }
            report_error(conn, base, payload)
            continue
        result = None
        try:
            status, _, rbody = conn.request(
                "POST", base + "/response", data, (("Content-Type", "application/json"),)
            )
        except Exception as e:
            sys.stderr.write("bootstrap: POST response failed: %s\n" % e)
            continue
        if status == 413:
            report_error(conn, base, {
                "errorMessage": "Response payload size (%d bytes) exceeded maximum allowed payload size." % len(data),
                "errorType": "Function.ResponseSizeTooLarge",
                "stackTrace": [],
                "requestId": request_id,
            })
        elif not 200 <= status < 300:
            sys.stderr.write("bootstrap: POST response returned %d: %s\n" % (status, rbody[:500].decode("utf-8", "replace")))


def post(conn, path, payload, error_type):
    data = json_dumps(payload).encode("ascii")
    status, _, body = conn.request(
        "POST", path, data,
        (("Content-Type", "application/json"), ("Lambda-Runtime-Function-Error-Type", _header_value(error_type))),
    )
    if not 200 <= status < 300:
        sys.stderr.write("bootstrap: POST %s returned %d: %s\n" % (path, status, body[:500].decode("utf-8", "replace")))
    return status


def report_error(conn, base, payload):
    _log_error(payload)
    try:
        post(conn, base + "/error", payload, payload["errorType"])
    except Exception as e:
        sys.stderr.write("bootstrap: POST error failed: %s\n" % e)


if __name__ == "__main__":
    sys.exit(main())
