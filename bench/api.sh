#!/usr/bin/env bash
# API throughput and latency, side by side in one run, against the release
# binary on loopback with the embedded default (SQLite + local blobs).
# Usage: bench/api.sh [seconds per endpoint, default 10] [connections, default 32]
# Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
. bench/lib.sh

zip="$work/code.zip"
/usr/bin/python3 - "$zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("app.py", "def handler(event, context):\n    return event\n")
PY
code=$(base64 -w0 "$zip")
curl -sf -H "$auth" -H 'content-type: application/json' "$url/v1/functions" \
  -d "{\"name\":\"bench\",\"runtime\":\"Python311\",\"handler\":\"app.handler\",\"code\":{\"zipFile\":\"$code\"}}" >/dev/null
curl -sf -H "$auth" -X POST "$url/v1/functions/bench/versions" >/dev/null
curl -sf -H "$auth" -X POST "$url/v1/functions/bench/versions" >/dev/null
curl -sf -H "$auth" -H 'content-type: application/json' "$url/v1/functions/bench/aliases" \
  -d '{"aliasName":"prod","version":1,"routingConfig":{"1":90,"2":10}}' >/dev/null

echo "# $(date -u +%FT%TZ) $(nproc) cores, wrk -c$conns -d${secs}s, $(git rev-parse --short HEAD 2>/dev/null)"
printf '%-44s %12s %10s %10s %10s\n' endpoint req/s p50 p99 non-2xx
run() {
  local name=$1 path=$2; shift 2
  local out
  out=$(wrk -t"$(( conns < 2 ? 1 : 2 ))" -c"$conns" -d"${secs}s" --latency "$@" "$url$path")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); errs=${errs:-0}
  printf '%-44s %12s %10s %10s %10s\n' "$name" "$rps" "$p50" "$p99" "$errs"
}
run "GET /healthz (no auth, store ping)" /healthz
run "GET /v1/whoami (auth only, cached token)" /v1/whoami -H "$auth"
run "GET /v1/functions/bench" /v1/functions/bench -H "$auth"
run "GET /v1/functions/bench/aliases/prod" /v1/functions/bench/aliases/prod -H "$auth"
