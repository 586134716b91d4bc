#!/usr/bin/env bash
# A soak of tern-proxy as the ci preset builds it (ASan + UBSan): for DURATION seconds, in a pod
# behind tern-init's capture, well-behaved clients (h2load over HTTP/1.1 and HTTP/2 at a fixed
# rate to a healthy service whose canary weights change with every reload) beside misbehaving
# ones (bench/soak_chaos.py: every fault of bench/soak_faults.py, both protocols, malformed and
# cut-off requests), while the snapshot is reloaded every second (weights and retry policies
# rotate). Prints: requests made, crashes and sanitizer reports (must be 0), tern-proxy's RSS at
# the start, the end and its peak, the well-behaved clients' failures and the largest p99 they
# saw in any minute.
#   bench/soak.sh [DURATION_S]      (default 1800)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-1800}
./scripts/install-deps.sh
for p in nginx; do command -v "$p" >/dev/null || { apt-get install -y -qq "$p" >/dev/null; }; done
cmake --preset ci >/dev/null
cmake --build --preset ci --target tern-proxy tern-init >/dev/null
build=$PWD/build/ci
ns=tern-soak-$$
work=$(mktemp -d /tmp/tern-soak.XXXXXX)
chmod 755 "$work"
install -d -m 777 "$work/clients"  # the clients run as the app's uid
pids=()
source bench/pod.sh
trap pod_cleanup EXIT INT TERM
pod_create
ip -n "$ns-peer" addr add 10.200.0.2/24 dev "tb$$b"
ip -n "$ns-peer" addr add 10.200.0.3/24 dev "tb$$b"
ip -n "$ns-peer" link set lo up
peer() { ip netns exec "$ns-peer" "$@"; }

cat > "$work/healthy.conf" <<CONF
worker_processes 1; daemon off; pid $work/healthy.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 10.200.0.2:9100; listen 10.200.0.3:9100; location / { return 200 "healthy \$server_addr\n"; } } }
CONF
peer nginx -c "$work/healthy.conf" &
peer /usr/bin/python3 bench/soak_faults.py 10.200.0.2 &

# Snapshot number N: the canary's weights and the fault services' retry policies rotate.
snapshot() {
  local n=$1 weights=("100 0" "50 50" "0 100") retries=('{attempts: 0}' '' '{attempts: 2, perTryTimeout: 200ms, retryOn: "5xx,reset,connect-failure"}')
  read -r w1 w2 <<<"${weights[$((n % 3))]}"
  local r=${retries[$((n % 3))]}
  echo "apiVersion: tern.dev/v1alpha1"
  echo "kind: ProxySnapshot"
  echo "version: \"soak-$n\""
  echo "workload: {name: web-1, namespace: my-app, labels: {app: web}}"
  echo "services:"
  echo "- {hostname: healthy.my-app.svc.cluster.local, clusterIPs: [10.96.99.1], ports: [{name: http, port: 8080}]}"
  for i in 1 2 3 4 5 6 7 8; do
    echo "- {hostname: f$i.my-app.svc.cluster.local, clusterIPs: [10.96.1.$i], ports: [{name: http, port: 8080}]}"
  done
  echo "endpoints:"
  echo "- {service: healthy.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: 9100}, labels: {version: v1}}"
  echo "- {service: healthy.my-app.svc.cluster.local, address: 10.200.0.3, ports: {http: 9100}, labels: {version: v2}}"
  for i in 1 2 3 4 5 6 7 8; do
    echo "- {service: f$i.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: $((8999 + i))}}"
  done
  echo "resources:"
  echo "- apiVersion: networking.istio.io/v1"
  echo "  kind: VirtualService"
  echo "  metadata: {name: healthy, namespace: my-app}"
  echo "  spec: {hosts: [healthy], http: [{timeout: 2s, route: [{destination: {host: healthy, subset: v1}, weight: $w1}, {destination: {host: healthy, subset: v2}, weight: $w2}]}]}"
  echo "- apiVersion: networking.istio.io/v1"
  echo "  kind: DestinationRule"
  echo "  metadata: {name: healthy, namespace: my-app}"
  echo "  spec: {host: healthy, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}"
  for i in 1 2 3 4 5 6 7 8; do
    echo "- apiVersion: networking.istio.io/v1"
    echo "  kind: VirtualService"
    echo "  metadata: {name: f$i, namespace: my-app}"
    echo "  spec: {hosts: [f$i], http: [{timeout: 1s, ${r:+retries: $r, }route: [{destination: {host: f$i}}]}]}"
    echo "- apiVersion: networking.istio.io/v1"
    echo "  kind: DestinationRule"
    echo "  metadata: {name: f$i, namespace: my-app}"
    echo "  spec: {host: f$i, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}, outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 100}}}"
  done
}
snapshot 0 > "$work/snapshot.yaml"
run "$build/init/tern-init" -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020 2>/dev/null
# ASan holds freed memory in a quarantine (256 MB by default) that would read as growth: a small
# one keeps RSS a measure of the proxy's own memory.
ASAN_OPTIONS=quarantine_size_mb=16:malloc_context_size=5 \
  run setpriv --reuid 1337 --regid 1337 --clear-groups "$build/proxy/tern-proxy" --config "$work/snapshot.yaml" \
  --concurrency 2 --log-level warn >"$work/proxy.log" 2>&1 &
sleep 2
tern_pid=$(pgrep -n -f "$build/proxy/tern-proxy --config $work" || true)
[[ -n "$tern_pid" ]] || { echo "bench/soak.sh: tern-proxy did not start" >&2; cat "$work/proxy.log" >&2; exit 1; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_start=$(rss_kb "$tern_pid")

as_app() { run setpriv --reuid 1000 --regid 1000 --clear-groups "$@"; }
as_app h2load --h1 -c 8 --rps 25 -D "$duration" --log-file "$work/clients/h1.log" http://10.96.99.1:8080/ >"$work/h2load-h1.txt" 2>&1 &
as_app h2load -c 4 -m 4 --rps 25 -D "$duration" --log-file "$work/clients/h2.log" http://10.96.99.1:8080/ >"$work/h2load-h2.txt" 2>&1 &
chaos=()
for seed in 1 2 3 4; do
  as_app /usr/bin/python3 bench/soak_chaos.py "$duration" "$seed" >"$work/chaos$seed.txt" 2>&1 &
  chaos+=($!)
done

# Reload every second; sample RSS every 10 s; stop early if the proxy dies.
rss_peak=$rss_start
rss_warm=""  # a minute in: pools, caches and the sanitizer's quarantine are filled by then
end=$((SECONDS + duration))
n=0
while ((SECONDS < end)); do
  n=$((n + 1))
  snapshot "$n" >"$work/snapshot.next" && mv "$work/snapshot.next" "$work/snapshot.yaml"
  sleep 1
  kill -0 "$tern_pid" 2>/dev/null || break
  if ((n % 10 == 0)); then
    rss=$(rss_kb "$tern_pid")
    ((rss > rss_peak)) && rss_peak=$rss
    ((n == 60)) && rss_warm=$rss
  fi
done
alive=yes
kill -0 "$tern_pid" 2>/dev/null || alive=no
rss_end=$(rss_kb "$tern_pid")
wait "${chaos[@]}" 2>/dev/null || true
sleep 3  # h2load ends with its duration
reports=$(grep -c "ERROR: AddressSanitizer\|runtime error:\|invariant broken" "$work/proxy.log" || true)
# The largest p99 of any minute, per client: its log's 1st column is the request's start (us
# since the epoch), the 3rd its latency (us).
worst_p99() {
  [[ -s "$1" ]] || { echo n/a; return; }
  awk '{print int($1 / 60000000), $3}' "$1" | sort -k1,1n -k2,2n |
    awk 'function close_minute() { if (n > 0) { i = int(n * 0.99); if (i < n * 0.99) i++; p = a[i > 0 ? i : 1]; if (p > w) w = p }; n = 0 }
         $1 != minute { close_minute(); minute = $1 } { a[++n] = $2 }
         END { close_minute(); printf "%.1f ms", w / 1000 }'
}
requests() { grep -o '^requests: [0-9]* total' "$1" | awk '{print $2}'; }
statuses() { grep -o '^status codes: .*' "$1" | sed 's/status codes: //'; }
echo "duration: ${duration}s, snapshot reloads: $n"
echo "tern-proxy: alive at the end: $alive; sanitizer or invariant reports: $reports"
echo "RSS: start ${rss_start} KB, after a minute ${rss_warm:-n/a} KB, end ${rss_end} KB, peak ${rss_peak} KB"
echo "well-behaved HTTP/1.1: $(requests "$work/h2load-h1.txt") requests ($(statuses "$work/h2load-h1.txt")); worst minute's p99 $(worst_p99 "$work/clients/h1.log")"
echo "well-behaved HTTP/2:   $(requests "$work/h2load-h2.txt") requests ($(statuses "$work/h2load-h2.txt")); worst minute's p99 $(worst_p99 "$work/clients/h2.log")"
cat "$work"/chaos*.txt
if [[ "$reports" != 0 || "$alive" != yes ]]; then
  grep -m 20 -A 30 "ERROR: AddressSanitizer\|runtime error:\|invariant broken" "$work/proxy.log" || tail -50 "$work/proxy.log"
  exit 1
fi
