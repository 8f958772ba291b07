# Shared by the bench scripts (sourced): builds the release binary if needed
# and starts a server on a free loopback port with its own data directory.
# Sets: work (scratch dir, removed on exit), token, url, auth, pid; extra
# processes to stop on exit go in `extra_pids`. BENCH_LOG sets the server's
# log filter (default warn; info writes the /fn access log).

bin=${HOTSWAP_BIN:-target/release/hotswap}
[ -x "$bin" ] || cargo build --release -p hotswap
work=$(mktemp -d)
token=bench-admin-token-0123456789abcdef
extra_pids=
HOTSWAP_ADMIN_TOKEN=$token HOTSWAP_LOG=${BENCH_LOG:-warn} HOTSWAP_SANDBOX=${HOTSWAP_SANDBOX:-auto} \
  "$bin" server --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid $extra_pids 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/log" && break; sleep 0.1; done
url=$(sed -n 's/^hotswap listening on //p' "$work/log")
auth="Authorization: Bearer $token"
