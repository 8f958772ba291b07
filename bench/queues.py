"""HTTP side of bench/queues.sh (stdlib only, one keep-alive connection).

  queues.py URL TOKEN send QUEUE N          embedded queue: N messages m0.. through the API
  queues.py URL TOKEN rate QUEUE RATE SECS  embedded queue: bodies are time.time_ns() at sending
  queues.py URL TOKEN trigger FUNCTION TYPE CONFIG_JSON N TIMEOUT
      creates the trigger, then polls it every 10 ms until state.succeeded
      reaches N (or TIMEOUT s); prints: seconds succeeded batches failed
      first-batch-seconds steady-msgs/s trigger-id last-error (seconds from
      just before the POST; the steady rate from the first counted batch on)
  queues.py URL TOKEN delete-trigger ID
  queues.py URL TOKEN invoke FUNCTION N THREADS
      N synchronous invokes through the API by THREADS clients, each event
      10 SQS-shaped records; prints seconds and invokes/s
  queues.py URL TOKEN collect FUNCTION OUT STOPFILE
      polls the function's logs (newest 1,000 lines) every 0.5 s until
      STOPFILE exists, then once more; writes each distinct `LAT t ns`
      line's "t ns" to OUT
  queues.py - - pct FILE T0 LABEL           percentiles of the ns column of
      the rows whose t >= T0, in ms (nearest rank on the sorted values)
"""
import http.client
import json
import os
import sys
import time
import urllib.parse


class Api:
    def __init__(self, url, token):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                headers = {"Authorization": "Bearer " + self.token}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                self.conn.request(method, path, data, headers)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, (json.loads(text) if text else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def main():
    url, token, cmd = sys.argv[1:4]
    args = sys.argv[4:]
    api = Api(url, token) if url != "-" else None
    if cmd == "send":
        queue, n = args[0], int(args[1])
        t = time.perf_counter()
        for i in range(n):
            st, b = api.call("POST", "/v1/queues/%s/messages" % queue, {"body": "m%d" % i})
            assert st == 201, (st, b)
        s = time.perf_counter() - t
        print("published %d in %.3f s (%.0f msgs/s)" % (n, s, n / s))
    elif cmd == "rate":
        queue, rate, secs = args[0], float(args[1]), float(args[2])
        n = round(rate * secs)
        start = time.monotonic()
        for i in range(n):
            due = start + i / rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            st, b = api.call("POST", "/v1/queues/%s/messages" % queue, {"body": str(time.time_ns())})
            assert st == 201, (st, b)
        print("published %d at %g/s" % (n, rate))
    elif cmd == "trigger":
        function, kind, config, n, timeout = args[0], args[1], json.loads(args[2]), int(args[3]), float(args[4])
        t0 = time.perf_counter()
        st, t = api.call("POST", "/v1/triggers", {"functionName": function, "type": kind, "config": config})
        assert st == 201, (st, t)
        tid = t["triggerId"]
        state = {}
        first = None  # (seconds, succeeded) when the first batch was counted
        while True:
            st, t = api.call("GET", "/v1/triggers/" + tid)
            assert st == 200, (st, t)
            state = t.get("state") or {}
            elapsed = time.perf_counter() - t0
            done = state.get("succeeded", 0)
            if first is None and done > 0:
                first = (elapsed, done)
            if done >= n or elapsed > timeout:
                break
            time.sleep(0.01)
        # The steady rate: from the first counted batch to the last (the
        # consumer's start, a cold start and the lanes' ramp left out).
        steady = 0.0
        if first is not None and elapsed > first[0] and done > first[1]:
            steady = (done - first[1]) / (elapsed - first[0])
        print("%.3f %d %d %d %.3f %.0f %s %s" % (elapsed, done, state.get("batches", 0),
                                               state.get("failed", 0), first[0] if first else -1, steady,
                                               tid, json.dumps(state.get("lastError"))))
    elif cmd == "delete-trigger":
        st, b = api.call("DELETE", "/v1/triggers/" + args[0])
        assert st in (200, 204), (st, b)
    elif cmd == "invoke":
        import threading
        function, n, threads = args[0], int(args[1]), int(args[2])
        event = {"Records": [{"messageId": "id-%d" % i, "receiptHandle": "r-%d" % i, "body": "m%d" % i,
                              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                              "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:local:000000000000:q"}
                             for i in range(10)]}
        per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

        def run(k):
            a = Api(url, token)
            for _ in range(k):
                st, b = a.call("POST", "/v1/functions/%s/invoke" % function, event)
                assert st == 200, (st, b)

        run(1)  # warm
        ts = [threading.Thread(target=run, args=(k,)) for k in per]
        t = time.perf_counter()
        for x in ts:
            x.start()
        for x in ts:
            x.join()
        s = time.perf_counter() - t
        print("invoked %d in %.3f s (%.0f invokes/s)" % (n, s, n / s))
    elif cmd == "collect":
        function, out, stop = args
        seen = {}
        while True:
            last = os.path.exists(stop)
            st, page = api.call("GET", "/v1/functions/%s/logs?limit=1000" % function)
            assert st == 200, (st, page)
            for line in page["items"]:
                for part in line["message"].split("\n"):
                    f = part.split()
                    if len(f) == 3 and f[0] == "LAT":
                        seen[f[1]] = f[2]
            if last:
                break
            time.sleep(0.5)
        with open(out, "w") as f:
            for t, ns in seen.items():
                f.write("%s %s\n" % (t, ns))
    elif cmd == "pct":
        path, t0, label = args[0], int(args[1]), args[2]
        v = sorted(int(l.split()[1]) / 1e6 for l in open(path) if l.strip() and int(l.split()[0]) >= t0)
        if not v:
            print("%s n=0" % label)
            return

        def p(q):  # nearest rank, as HdrHistogram's getValueAtPercentile
            return v[max(0, min(len(v) - 1, -(-len(v) * q // 100) - 1))]

        print("%s n=%d p50=%.2f p90=%.2f p99=%.2f max=%.2f" % (label, len(v), p(50), p(90), p(99), v[-1]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
