#!/usr/bin/env bash
# Queue and stream triggers, every backend side by side in one run (issue 12),
# on one server started with --rabbitmq-url, --nats-url and --redis-url and
# the default sandbox (auto), against the brokers of the test suite
# (RabbitMQ 127.0.0.1:5672, NATS JetStream :4222, Redis :6379):
#  (1) throughput: N messages published beforehand, a Queue trigger (batchSize
#      10, maximumConcurrency 4) on a trivial Python function (`return {}`):
#      seconds from creating the trigger until its state.succeeded reaches N;
#      next to a plain client (crates/sources/examples/raw_client.rs) taking N
#      messages of another queue in batches of 10, acknowledging each batch.
#      The embedded queue has no plain client: its row shows the API's send
#      rate instead.
#  (2) latency from publish to the function's start, at RATE msgs/s for SECS
#      seconds: the body is the publisher's time.time_ns(); the function
#      prints `LAT t (now - t)` per record, collected from the logs API.
#  (3) Stream triggers on nats and redis (batchSize 100, parallelizationFactor
#      1, TRIM_HORIZON) over N records, next to a plain in-order read
#      (XRANGE COUNT 100 / an ordered consumer).
# Usage: bench/queues.sh [N, default 20000] [N for the embedded queue,
#        default N] [RATE, default 50] [SECS, default 10]
# Broker objects are named bq-*-$$ and deleted on exit, with the server.
# SECTIONS (default "1 2 3") runs only the sections named; BACKENDS (default
# "embedded rabbitmq nats redis") only the queue backends named.
set -euo pipefail
cd "$(dirname "$0")/.."
sections=" ${SECTIONS:-1 2 3} "
want() { [[ "$sections" == *" $1 "* ]]; }
n=${1:-20000}
n_embedded=${2:-$n}
rate=${3:-50}
secs=${4:-10}
export HOTSWAP_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f
export HOTSWAP_NATS_URL=nats://127.0.0.1:4222
export HOTSWAP_REDIS_URL=redis://127.0.0.1:6379/
raw=${RAW_CLIENT:-target/release/examples/raw_client}
[ -x "$raw" ] || cargo build --release -p hotswap-sources --example raw_client
py=/usr/bin/python3
. bench/lib.sh
objects=
cleanup() {
  for o in $objects; do "$raw" delete "${o%%:*}" "${o#*:}" >/dev/null 2>&1 || true; done
  kill $pid $extra_pids 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "$url" ] || { cat "$work/log"; exit 1; }
tok=$(curl -sf -H "$auth" -H 'content-type: application/json' "$url/v1/tokens" -d '{"ownerId":"bench"}' |
  $py -c 'import json, sys; print(json.load(sys.stdin)["token"])')
h() { $py bench/queues.py "$url" "$tok" "$@"; }
new_object() { # backend name: creates it, deleted on exit
  "$raw" create "$1" "$2"
  objects="$objects $1:$2"
}

cat >"$work/app.py" <<'PY'
import time
def noop(event, context):
    return {}
def lat(event, context):
    now = time.time_ns()
    print("\n".join("LAT %s %d" % (r["body"], now - int(r["body"])) for r in event["Records"]))
    return {}
PY
(cd "$work" && $py -c 'import zipfile; z = zipfile.ZipFile("code.zip", "w"); z.write("app.py"); z.close()')
code=$(base64 -w0 "$work/code.zip")
create_fn() { # name handler
  curl -sf -H "Authorization: Bearer $tok" -H 'content-type: application/json' "$url/v1/functions" \
    -d "{\"name\":\"$1\",\"runtime\":\"Python311\",\"handler\":\"app.$2\",\"timeout\":30,\"code\":{\"zipFile\":\"$code\"}}" >/dev/null
}
queue_config() { # backend queue
  echo "{\"queueName\":\"$2\",\"source\":\"$1\",\"batchSize\":10,\"maximumConcurrency\":4}"
}
# CPU seconds so far: the server's own (its instances are other processes)
# and the whole machine's busy time.
cpu() {
  awk '{ printf "%.2f ", ($14 + $15) / 100 }' "/proc/$pid/stat"
  awk '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat
}
cpu_delta() { # "before" "after" seconds -> "server x%, machine y% of the cores"
  $py -c 'import sys, os
a, b, s = sys.argv[1].split(), sys.argv[2].split(), float(sys.argv[3])
print("server %.0f%% of a core, machine %.0f%% of %d cores" % ((float(b[0]) - float(a[0])) / s * 100,
      (float(b[1]) - float(a[1])) / s / os.cpu_count() * 100, os.cpu_count()))' "$1" "$2" "$3"
}
declare -A result
backends="${BACKENDS:-embedded rabbitmq nats redis}"

echo "# $(date -u +%FT%TZ) $(nproc) cores, commit $(git rev-parse --short HEAD), N=$n (embedded $n_embedded)"
echo "## (1) throughput"
for b in $backends; do
  q=bq-$b-$$
  count=$n
  create_fn "noop-$b" noop
  if [ "$b" = embedded ]; then
    count=$n_embedded
    pub=$(h send "$q" "$count")
    rawline="API send rate: $pub"
  else
    new_object "$b" "$q"
    pub=$("$raw" publish "$b" "$q" "$count")
  fi
  c0=$(cpu); w0=$(date +%s.%N)
  read -r s ok batches failed first steady id err < <(h trigger "noop-$b" Queue "$(queue_config "$b" "$q")" "$count" 600)
  busy=$(cpu_delta "$c0" "$(cpu)" "$(echo "$(date +%s.%N) - $w0" | bc)")
  h delete-trigger "$id"
  if [ "$b" != embedded ]; then
    new_object "$b" "$q-raw"
    "$raw" publish "$b" "$q-raw" "$count" >/dev/null
    rawline=$("$raw" consume "$b" "$q-raw" "$count")
  fi
  echo "$b: trigger $ok/$count in $s s (first batch counted at $first s, then $steady msgs/s), $batches batches, $failed failed, lastError $err; publish: $pub; plain: $rawline; CPU during the trigger: $busy"
  result[$b]="$count $s $ok $steady $(sed -n 's/.*(\([0-9]*\) msgs\/s).*/\1/p' <<<"$rawline")"
done

# The function alone: 4 clients invoking it through the API with 10-record
# events, as many invokes as the trigger made batches.
c0=$(cpu); t=$(date +%s.%N)
invokes=$(h invoke "noop-${backends%% *}" $(( n / 10 )) 4)
echo "the function through the API, 4 clients: $invokes; CPU: $(cpu_delta "$c0" "$(cpu)" "$(echo "$(date +%s.%N) - $t" | bc)")"
inv_rate=$(sed -n 's/.*(\([0-9]*\) invokes\/s).*/\1/p' <<<"$invokes")

if want 2; then
echo "## (2) latency, publish -> function start, $rate msgs/s for $secs s"
for b in $backends; do
  q=bq-lat-$b-$$
  create_fn "lat-$b" lat
  [ "$b" = embedded ] || new_object "$b" "$q"
  publish_rate() { # rate secs
    if [ "$b" = embedded ]; then h rate "$q" "$1" "$2"; else "$raw" rate "$b" "$q" "$1" "$2"; fi
  }
  # The trigger, and a warm-up of 2 s at the same rate (not counted).
  warm=$(( rate * 2 ))
  publish_rate "$rate" 2 >/dev/null
  read -r _ _ _ _ _ _ id _ < <(h trigger "lat-$b" Queue "$(queue_config "$b" "$q")" "$warm" 60)
  rm -f "$work/stop"
  h collect "lat-$b" "$work/lat-$b" "$work/stop" &
  collector=$!
  t0=$($py -c 'import time; print(time.time_ns())')
  publish_rate "$rate" "$secs" >/dev/null
  total=$(( warm + rate * secs ))
  for _ in $(seq 1 100); do
    [ "$(curl -sf -H "Authorization: Bearer $tok" "$url/v1/triggers/$id" | $py -c 'import json, sys; print(json.load(sys.stdin)["state"]["succeeded"])')" -ge "$total" ] && break
    sleep 0.1
  done
  touch "$work/stop"
  wait $collector
  h delete-trigger "$id"
  result[lat-$b]=$($py bench/queues.py - - pct "$work/lat-$b" "$t0" "$b")
  echo "${result[lat-$b]}"
done

fi
if want 3; then
echo "## (3) stream triggers"
for b in nats redis; do
  st=bq-stream-$b-$$
  create_fn "snoop-$b" noop
  new_object "$b" "$st"
  pub=$("$raw" publish "$b" "$st" "$n" stream)
  config="{\"streamArn\":\"$st\",\"source\":\"$b\",\"startingPosition\":\"TRIM_HORIZON\",\"batchSize\":100,\"parallelizationFactor\":1}"
  c0=$(cpu); w0=$(date +%s.%N)
  read -r s ok batches failed first steady id err < <(h trigger "snoop-$b" Stream "$config" "$n" 600)
  busy=$(cpu_delta "$c0" "$(cpu)" "$(echo "$(date +%s.%N) - $w0" | bc)")
  h delete-trigger "$id"
  rawline=$("$raw" read "$b" "$st" "$n")
  echo "$b: trigger $ok/$n in $s s (first batch counted at $first s, then $steady records/s), $batches batches, $failed failed, lastError $err; publish: $pub; plain read: $rawline; CPU during the trigger: $busy"
  result[stream-$b]="$n $s $ok $steady $(sed -n 's/.*(\([0-9]*\) msgs\/s).*/\1/p' <<<"$rawline")"
done

fi
echo
echo "| Queue trigger, batchSize 10, maximumConcurrency 4 | messages | trigger msgs/s (whole run) | steady msgs/s (after the first batch) | plain client msgs/s | steady ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for b in $backends; do
  read -r c s ok steady r <<<"${result[$b]}"
  $py -c 'import sys
b, c, s, ok, steady, r = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
t = ok / s
print("| %s | %d%s | %.0f | %.0f | %s | %s |" % (b, c, "" if ok >= c else " (%d done)" % ok, t, steady,
      (r + (" (API send)" if b == "embedded" else "")) if r else "-", "%.2f" % (steady / float(r)) if r else "-"))' "$b" "$c" "$s" "$ok" "$steady" "${r:-}"
done
echo
echo "The same function invoked through the API by 4 clients with 10-record events: $inv_rate invokes/s, i.e. $(( inv_rate * 10 )) msgs/s."
if want 2; then
echo
echo "| publish → function start, $rate msgs/s for $secs s | n | p50 | p90 | p99 | max |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for b in $backends; do
  $py -c 'import sys
f = dict(kv.split("=") for kv in sys.argv[2:])
print("| %s | %s | %s ms | %s ms | %s ms | %s ms |" % (sys.argv[1], f.get("n"), f.get("p50"), f.get("p90"), f.get("p99"), f.get("max")))' ${result[lat-$b]}
done
fi
if want 3; then
echo
echo "| Stream trigger, batchSize 100, parallelizationFactor 1 | records | trigger records/s (whole run) | steady records/s | plain read records/s | steady ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for b in nats redis; do
  read -r c s ok steady r <<<"${result[stream-$b]}"
  $py -c 'import sys
b, c, s, ok, steady, r = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
t = ok / s
print("| %s | %d%s | %.0f | %.0f | %.0f | %.3f |" % (b, c, "" if ok >= c else " (%d done)" % ok, t, steady, r, steady / r))' "$b" "$c" "$s" "$ok" "$steady" "$r"
done
fi
if grep -qiE 'error|warn|panic' "$work/log"; then
  echo
  echo "server log (warnings and errors, first 20):"
  grep -iE 'error|warn|panic' "$work/log" | head -20
fi
