#!/usr/bin/env bash
# Instance networking, side by side in one run (as root, isolated sandbox):
#  (a) cold start of a trivial Python handler through the API on a server
#      whose instances get their own network (default) vs. one started with
#      `--instance-network none` (loopback only, as before networking),
#      invoked alternately so both see the same machine;
#  (b) a function downloading 100 MB from a test host (in its own network
#      namespace, 198.51.100.0/30, routed through the host) vs. the same
#      Python download code run on the host outside the sandbox.
# Usage: bench/network.sh [cold samples, default 40] [MB, default 100]
# BASE_BIN=path/to/an/older/hotswap adds a third server, that binary, to the
# cold-start alternation (e.g. the commit before networking).
# Needs hyperfine-free tools only: curl, ip, /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-40}
mb=${2:-100}
bin=${HOTSWAP_BIN:-target/release/hotswap}
[ -x "$bin" ] || cargo build --release -p hotswap
work=$(mktemp -d)
token=bench-admin-token-0123456789abcdef
auth="Authorization: Bearer $token"
ns=bnet$$
pids=
cleanup() {
  kill $pids 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "${ns}h" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start() { # name, binary, extra args…; sets $started to its URL
  local name=$1 b=$2; shift 2
  HOTSWAP_ADMIN_TOKEN=$token HOTSWAP_LOG=warn "$b" server --listen 127.0.0.1:0 \
    --data-dir "$work/$name" --sandbox isolated "$@" >"$work/$name.log" 2>&1 &
  pids="$pids $!"
  for _ in $(seq 1 100); do grep -q "listening on" "$work/$name.log" && break; sleep 0.1; done
  started=$(sed -n 's/^hotswap listening on //p' "$work/$name.log")
}

# The test host: a network namespace with a veth to the host.
ip netns add "$ns"
ip link add "${ns}h" type veth peer name eth0 netns "$ns"
ip addr add 198.51.100.1/30 dev "${ns}h"
ip link set "${ns}h" up
ip -n "$ns" addr add 198.51.100.2/30 dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
ip -n "$ns" route add default via 198.51.100.1
cat >"$work/serve.py" <<'PY'
import socket, threading
chunk = b"x" * (1 << 20)
def serve(c):
    try:
        req = c.recv(4096).decode()
        mb = int(req.split("mb=")[1].split()[0]) if "mb=" in req else 1
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (mb << 20))
        for _ in range(mb):
            c.sendall(chunk)
    finally:
        c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.2", 8000)); s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
ip netns exec "$ns" /usr/bin/python3 "$work/serve.py" &
pids="$pids $!"

start net "$bin"
with=$started
start nonet "$bin" --instance-network none
without=$started
servers="$with $without"
kinds="net none"
if [ -n "${BASE_BIN:-}" ]; then
  start base "$BASE_BIN"
  base=$started
  servers="$servers $base"
  kinds="$kinds base"
fi

cat >"$work/app.py" <<'PY'
import time, urllib.request
def handler(event, context):
    return {"ok": True}
def download(event, context):
    t = time.perf_counter()
    n = 0
    with urllib.request.urlopen(event["url"], timeout=60) as r:
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            n += len(b)
    return {"bytes": n, "seconds": time.perf_counter() - t}
PY
(cd "$work" && /usr/bin/python3 -c 'import zipfile; z = zipfile.ZipFile("code.zip", "w"); z.write("app.py"); z.close()')
code=$(base64 -w0 "$work/code.zip")
for u in $servers; do
  for i in $(seq 0 "$samples"); do
    curl -sf -H "$auth" -H 'content-type: application/json' "$u/v1/functions" \
      -d "{\"name\":\"cold-$i\",\"runtime\":\"Python311\",\"handler\":\"app.handler\",\"memorySize\":1792,\"code\":{\"zipFile\":\"$code\"}}" >/dev/null
  done
  curl -sf -H "$auth" "$u/v1/functions/cold-0/invoke" -d '{}' >/dev/null
done

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null)"
echo "## (a) cold start, $samples functions each, alternating servers (curl time_total)"
for i in $(seq 1 "$samples"); do
  set -- $kinds
  for u in $servers; do
    printf '%s %s\n' "$1" "$(curl -s -o /dev/null -w '%{time_total}' -H "$auth" "$u/v1/functions/cold-$i/invoke" -d '{}')"
    shift
  done
done >"$work/cold.txt"
for k in $kinds; do
  grep "^$k " "$work/cold.txt" | cut -d' ' -f2 | sort -n | awk -v k="$k" '{ a[NR] = $1 * 1000 } END { printf "cold invoke, network %-4s p50 %.1f ms  p99 %.1f ms  (n=%d)\n", k, a[int(NR*0.5+0.5)], a[int(NR*0.99+0.5)], NR }'
done

echo "## (b) downloading $mb MB from the test host"
curl -sf -H "$auth" -H 'content-type: application/json' "$with/v1/functions" \
  -d "{\"name\":\"dl\",\"runtime\":\"Python311\",\"handler\":\"app.download\",\"memorySize\":3584,\"timeout\":120,\"code\":{\"zipFile\":\"$code\"}}" >/dev/null
event="{\"url\":\"http://198.51.100.2:8000/?mb=$mb\"}"
curl -sf -H "$auth" "$with/v1/functions/dl/invoke" -d '{"url":"http://198.51.100.2:8000/?mb=1"}' >/dev/null
for run in 1 2 3 4 5; do
  inside=$(curl -sf -H "$auth" "$with/v1/functions/dl/invoke" -d "$event")
  outside=$(cd "$work" && /usr/bin/python3 -c 'import json, sys, app; print(json.dumps(app.download(json.loads(sys.argv[1]), None)))' "$event")
  /usr/bin/python3 - "$inside" "$outside" <<'PY' | tee -a "$work/ratios.txt"
import json, sys
i, o = (json.loads(a) for a in sys.argv[1:3])
assert i["bytes"] == o["bytes"], (i, o)
mi, mo = i["bytes"] / i["seconds"] / 1e6, o["bytes"] / o["seconds"] / 1e6
print("in the sandbox %.0f MB/s   on the host %.0f MB/s   ratio %.2f" % (mi, mo, mi / mo))
PY
done
awk '{ r[NR] = $NF } END { n = asort(r); printf "median ratio %.2f (n=%d)\n", r[int((n + 1) / 2)], n }' "$work/ratios.txt"
