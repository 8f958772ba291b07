#!/usr/bin/env bash
# A/B of two release binaries in one sitting: bench/invoke.sh alternately
# with each (old, new, old, new, …), with the load average before each run.
# Usage: bench/ab.sh OLD_BIN NEW_BIN [rounds, default 2] [cold samples, default 40] [seconds per wrk run, default 2]
# Prints every run's output, then one summary line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-2} samples=${4:-40} secs=${5:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for side in 1-old 2-new; do
    bin=$old
    [ "$side" = 2-new ] && bin=$new
    f="$out/$r-$side"
    echo "# run $r $side: $bin, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$f"
    HOTSWAP_BIN=$bin bench/invoke.sh "$samples" "$secs" | tee -a "$f"
  done
done
echo "## summary (platform rows)"
for f in "$out"/*; do
  awk -v run="$(basename "$f")" '
    /^# run/ { load = $NF; for (i = 1; i <= NF; i++) if ($i == "average") load = $(i+1) " " $(i+2) " " $(i+3) }
    /^platform cold invoke/ { cold = $5 }
    /python3 -S -c pass|node -e 0/ && /p50/ { for (i = 1; i <= NF; i++) if ($i == "p50") ref = $(i+1) }
    /^## \(b\)/ { sect = "b" } /^## \(c\)/ { sect = "c" }
    /^platform POST \/v1/ {
      for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i+1); if ($i == "req/s") r = $(i-1) }
      if (sect == "b") warm1 = p50; else rps = r
    }
    END { printf "%-6s load %s  cold p50 %s ms (reference %s ms)  warm 1-conn p50 %s  16-conn %s req/s\n", run, load, cold, ref, warm1, rps }
  ' "$f"
done
