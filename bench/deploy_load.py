"""Load test of hot swaps (run by bench/deploy.sh, which starts the server).

Constant wrk traffic on alias `prod` of a Python function through:
  before → a canary deployment (10% → 50% → 100%, promoted) → after →
  a second canary of a version failing 30% of calls (rolled back) → after.
wrk runs for each phase back to back (a deployment phase lasts exactly as
long as the deployment: wrk is stopped with SIGINT when it ends). A separate
observer connection records which version served each request and when it
started, to measure how long an alias move takes to reach the router: the
latest request that started after a move's timestamp but was still served by
the old routing.
"""
import base64, http.client, io, json, os, re, signal, subprocess, sys, threading, time, zipfile
from datetime import datetime

URL, TOKEN, WRK, WORK = os.environ["URL"], os.environ["TOKEN"], os.environ.get("WRK", "wrk"), os.environ["WORK"]
CONNS, THREADS = int(os.environ.get("CONNS", "16")), int(os.environ.get("WRK_THREADS", "2"))
HOST, PORT = URL.split("//")[1].split(":")
PORT = int(PORT)
AUTH = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}


def api(method, path, body=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    c.request(method, path, json.dumps(body) if body is not None else None, AUTH)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def code(body):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "COUNT = [0]\n\ndef handler(event, context):\n" + body + "\n")
    return base64.b64encode(buf.getvalue()).decode()


V1 = "    return 'v1'"
V2 = "    return 'v2'"
FLAKY = "    COUNT[0] += 1\n    if COUNT[0] % 10 < 3:\n        raise RuntimeError('flaky')\n    return 'v3'"

api("POST", "/v1/functions", {"name": "swap", "runtime": "Python311", "handler": "app.handler",
                              "memorySize": 1792, "scalingConfig": {"maxInstances": 32, "preProvisionedConcurrency": 4},
                              "code": {"zipFile": code(V1)}})
for i, body in enumerate([V1, V2, FLAKY]):
    if i:
        api("PUT", "/v1/functions/swap/code", {"zipFile": code(body)})
    api("POST", "/v1/functions/swap/versions", {})
api("POST", "/v1/functions/swap/aliases", {"aliasName": "prod", "version": 1})

lua = os.path.join(WORK, "post.lua")
with open(lua, "w") as f:
    f.write('wrk.method = "POST"\nwrk.body = "{}"\n'
            f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\nwrk.headers["Content-Type"] = "application/json"\n')
target = f"{URL}/v1/functions/swap/invoke?qualifier=prod"

# The observer: one keep-alive connection, (start, end, version, status) per request.
samples, stop_obs = [], threading.Event()


def observe():
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    while not stop_obs.is_set():
        t0 = time.time()
        c.request("POST", "/v1/functions/swap/invoke?qualifier=prod", "{}", AUTH)
        r = c.getresponse()
        r.read()
        samples.append((t0, time.time(), r.getheader("X-Executed-Version"), r.status))


obs = threading.Thread(target=observe, daemon=True)
obs.start()


def wrk_run(seconds=None, until=None):
    """wrk for `seconds`, or until `until()` is true (then SIGINT)."""
    args = [WRK, "-t", str(THREADS), "-c", str(CONNS), "-d", f"{seconds or 600}s", "--latency", "-s", lua, target]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    result = None
    if until:
        while not (result := until()):
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
    out = p.communicate()[0]
    return parse(out), result


def ms(text):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def parse(out):
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    pct = {p: ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"requests": total, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "none", "p50": pct["50"], "p99": pct["99"], "rps": rps}


def deployment(version, config):
    d = api("POST", "/v1/functions/swap/deployments",
            {"aliasName": "prod", "targetVersion": version, "strategy": "Canary", "config": config})
    return d["deploymentId"]


def ended(dep_id):
    d = api("GET", f"/v1/functions/swap/deployments/{dep_id}")
    return d if d["status"] in ("Completed", "RolledBack", "Failed", "Cancelled") else None


rows = []
time.sleep(1)
rows.append(("before", wrk_run(5)[0]))
first = deployment(2, {"canaryIncrements": [10, 50], "canaryDuration": 4, "rollbackOnErrorRate": 5, "minInvocations": 50})
stats, d1 = wrk_run(until=lambda: ended(first))
rows.append((f"during canary 1→2 ({d1['status']})", stats))
rows.append(("after promotion", wrk_run(5)[0]))
second = deployment(3, {"canaryPercentage": 30, "canaryDuration": "5m", "rollbackOnErrorRate": 10, "minInvocations": 50})
stats, d2 = wrk_run(until=lambda: ended(second))
rows.append((f"during canary 2→3 ({d2['status']})", stats))
rows.append(("after rollback", wrk_run(5)[0]))
stop_obs.set()
obs.join()

print(f"wrk -t{THREADS} -c{CONNS}, POST {target}")
print("| phase | requests | non-2xx | socket errors | req/s | p50 ms | p99 ms |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
for name, s in rows:
    print(f"| {name} | {s['requests']} | {s['non2xx']} | {s['socket_errors']} | {s['rps']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} |")
print(f"\ntotal requests {sum(s['requests'] for _, s in rows)}, non-2xx {sum(s['non2xx'] for _, s in rows)}")
print(f"first deployment: {d1['status']}; second: {d2['status']}: {d2.get('rollbackReason')}")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# Alias moves: each timeline entry's traffic; a request that started after the
# entry's time but was served by a version the entry no longer routes to was
# routed with the old alias.
print("\nalias move → router (observer: %d requests, non-2xx %d)" % (len(samples), sum(1 for s in samples if s[3] >= 300)))
print("| deployment | move | stale requests after it | latest stale start after the move |")
print("| --- | --- | ---: | ---: |")
moves = [(label, e) for label, d in (("1→2", d1), ("2→3", d2)) for e in d["timeline"]]
for i, (label, e) in enumerate(moves):
    at = ts(e["at"])
    # Until the next move of either deployment.
    end = ts(moves[i + 1][1]["at"]) if i + 1 < len(moves) else float("inf")
    routed = {k for k, p in e["traffic"].items() if p > 0}
    stale = [s for s in samples if at <= s[0] < end and s[2] not in routed]
    late = max((s[0] - at for s in stale), default=0.0)
    print(f"| {label} | {e['phase']}: {json.dumps(e['traffic'])} | {len(stale)} | {late * 1000:.2f} ms |")
