#!/usr/bin/env bash
# Invocation benchmarks, side by side in one run:
#  (a) cold start of a trivial Python handler end to end through the API,
#      next to `/usr/bin/python3 -S -c pass`;
#  (b) warm invocation latency through the platform (1 connection) vs. the
#      same handler served directly by a minimal Python HTTP server;
#  (c) warm throughput with many connections, same comparison;
#  (b, c) also through an HTTP trigger (`/fn/bench`) when the server has them;
#  (d) with BENCH_RUNTIME=node, the same for a Node handler (reference
#      `node -e 0`, direct server: Node's http module).
# The functions get 1792 MB, i.e. one whole vCPU (CPU quota = MemorySize/1792),
# or BENCH_MEMORY MB: smaller ones are CPU-throttled by their cgroup under
# load, by design (but not during their init).
# Usage: bench/invoke.sh [cold samples, default 40] [seconds per wrk run, default 10]
# Needs wrk and hyperfine (apt-get install wrk hyperfine). Run as root for the
# isolated sandbox; HOTSWAP_SANDBOX=unisolated to compare without it.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-40}
secs=${2:-10}
. bench/lib.sh
sandbox=$(curl -s -H "$auth" "$url/v1/runners/local" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sandbox"])')

runtime=${BENCH_RUNTIME:-python}
memory=${BENCH_MEMORY:-1792}
cat >"$work/app.py" <<'PY'
def handler(event, context):
    return {"ok": True}
PY
cat >"$work/index.js" <<'JS'
exports.handler = async () => ({ ok: true });
JS
if [ "$runtime" = node ]; then
  fn_runtime=Node20; fn_handler=index.handler; src=index.js; reference="node -e 0"
else
  fn_runtime=Python311; fn_handler=app.handler; src=app.py; reference="/usr/bin/python3 -S -c pass"
fi
(cd "$work" && /usr/bin/python3 -c 'import sys, zipfile; z = zipfile.ZipFile("code.zip", "w"); z.write(sys.argv[1]); z.close()' "$src")
code=$(base64 -w0 "$work/code.zip")
for i in $(seq 0 "$samples"); do
  curl -sf -H "$auth" -H 'content-type: application/json' "$url/v1/functions" \
    -d "{\"name\":\"cold-$i\",\"runtime\":\"$fn_runtime\",\"handler\":\"$fn_handler\",\"memorySize\":$memory,\"code\":{\"zipFile\":\"$code\"}}" >/dev/null
done
# cold-0 warms the code path (first unpack of the package is per code hash, shared by all)
curl -sf -H "$auth" "$url/v1/functions/cold-0/invoke" -d '{}' >/dev/null

echo "# $(date -u +%FT%TZ) $(nproc) cores, runtime: $runtime, memory: $memory MB, sandbox: $sandbox, $(git rev-parse --short HEAD 2>/dev/null)"
echo "## (a) cold start, $samples functions invoked once each (curl time_total)"
for i in $(seq 1 "$samples"); do
  curl -s -o /dev/null -w '%{time_total}\n' -H "$auth" "$url/v1/functions/cold-$i/invoke" -d '{}'
done | sort -n | awk '{ a[NR] = $1 * 1000 } END { printf "platform cold invoke: p50 %.1f ms  p99 %.1f ms  (n=%d)\n", a[int(NR*0.5+0.5)], a[int(NR*0.99+0.5)], NR }'
hyperfine -N -w 3 -r "$samples" --export-json "$work/ref.json" "$reference" >/dev/null 2>&1
/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]["times"]; r.sort(); print("%s:   p50 %.1f ms  p99 %.1f ms" % (sys.argv[2], r[len(r)//2]*1000, r[min(len(r)-1, int(len(r)*0.99))]*1000))' "$work/ref.json" "$reference"

# The same handler served directly by a minimal Python HTTP server.
cat >"$work/direct.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, sys.argv[2])
from app import handler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        event = json.loads(self.rfile.read(n) or b"{}")
        body = json.dumps(handler(event, None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat >"$work/direct.js" <<'JS'
const http = require("http");
const { handler } = require(process.argv[3] + "/index.js");
http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", async () => {
    const out = JSON.stringify(await handler(JSON.parse(body || "{}"), {}));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(Number(process.argv[2]), "127.0.0.1");
JS
if [ "$runtime" = node ]; then
  node "$work/direct.js" 18777 "$work" &
else
  /usr/bin/python3 "$work/direct.py" 18777 "$work" &
fi
extra_pids=$!
sleep 0.5
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
row() {
  local name=$1 conns=$2 target=$3 threads=1
  [ "$conns" -ge 2 ] && threads=2
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "$target")
  printf '%-48s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}
curl -sf -H "$auth" "$url/v1/functions/cold-0/invoke" -d '{}' >/dev/null
# The same function behind an HTTP trigger (servers with /fn only). Its
# result has no statusCode: the trigger answers 200 with it as JSON.
has_fn=0
curl -sf -H "$auth" -H 'content-type: application/json' "$url/v1/triggers" \
  -d '{"functionName":"cold-0","type":"Http","config":{"httpPath":"/bench"}}' >/dev/null 2>&1 || true
if curl -sf "$url/fn/bench" -d '{}' >/dev/null 2>&1; then
  has_fn=1
fi
echo "## (b) warm latency, 1 connection"
row "direct $runtime server" 1 "http://127.0.0.1:18777/"
row "platform POST /v1/functions/{name}/invoke" 1 "$url/v1/functions/cold-0/invoke"
if [ "$has_fn" = 1 ]; then row "platform POST /fn/bench (HTTP trigger)" 1 "$url/fn/bench"; fi
echo "## (c) warm throughput, 16 connections"
row "direct $runtime server" 16 "http://127.0.0.1:18777/"
row "platform POST /v1/functions/{name}/invoke" 16 "$url/v1/functions/cold-0/invoke"
if [ "$has_fn" = 1 ]; then row "platform POST /fn/bench (HTTP trigger)" 16 "$url/fn/bench"; fi
