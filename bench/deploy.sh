#!/usr/bin/env bash
# Hot-swap load test: constant wrk traffic on an alias through a canary
# deployment that is promoted, then a second one that is rolled back; per
# phase requests, non-2xx, p50/p99, and how long alias moves take to reach
# the router. See bench/deploy_load.py.
# Usage: CONNS=16 bench/deploy.sh   (needs wrk: apt-get install wrk; root for
# the isolated sandbox, or HOTSWAP_SANDBOX=unisolated)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null)"
URL=$url TOKEN=$token WORK=$work WRK=${WRK:-wrk} /usr/bin/python3 bench/deploy_load.py
