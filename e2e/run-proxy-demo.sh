#!/usr/bin/env bash
# The demo's traffic step with binaries from BUILD_DIR: the seed's web pod, its sidecar running
# tern-proxy (uid 1337, behind tern-init's capture) from the seed's snapshot
# (core/config/testdata/seed.yaml: its VirtualService and DestinationRule verbatim), and
# product-service v1 and v2 on a peer. The app calls product-service by its cluster IP: plain
# requests split 90/10, `x-canary: true` always reaches v2, over HTTP/1.1 and HTTP/2; then the
# proxy's access log and metrics. Every process started here is ended by its pid, and the
# namespaces are removed. Exits non-zero when the traffic does not go where the seed says.
set -euo pipefail
build=${1:?usage: run-proxy-demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tern-proxy-demo.XXXXXX)
chmod 755 "$work"
pod=tern-demo-pod-$$
peer=tern-demo-peer-$$
pids=()
cleanup() {
  local all=("${pids[@]}" $(ip netns pids "$pod" 2>/dev/null) $(ip netns pids "$peer" 2>/dev/null))
  for p in "${all[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${all[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$pod" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
  [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The pod (10.200.0.1) and a peer holding product-service's endpoints (v1 .2, v2 .3).
ip netns add "$pod"
ip netns add "$peer"
ip link add "td$$a" netns "$pod" type veth peer name "td$$b" netns "$peer"
ip -n "$pod" addr add 10.200.0.1/24 dev "td$$a"
ip -n "$peer" addr add 10.200.0.2/24 dev "td$$b"
ip -n "$peer" addr add 10.200.0.3/24 dev "td$$b"
for ns in "$pod" "$peer"; do ip -n "$ns" link set lo up; done
ip -n "$pod" link set "td$$a" up
ip -n "$peer" link set "td$$b" up
ip -n "$pod" route add default via 10.200.0.2

# product-service v1 and v2: HTTP/1.1 servers that answer with their version.
cat > "$work/backend.py" <<'PY'
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = sys.argv[2].encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-version", sys.argv[2])
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 8080), Handler).serve_forever()
PY
ip netns exec "$peer" /usr/bin/python3 "$work/backend.py" 10.200.0.2 v1 & pids+=($!)
ip netns exec "$peer" /usr/bin/python3 "$work/backend.py" 10.200.0.3 v2 & pids+=($!)

# The seed's snapshot: web's own workload and product-service with its two versions.
{
  echo "apiVersion: tern.dev/v1alpha1"
  echo "kind: ProxySnapshot"
  echo "version: seed-demo"
  echo "workload: {name: web-1, namespace: my-app, labels: {app: web}}"
  echo "services:"
  echo "- hostname: product-service.my-app.svc.cluster.local"
  echo "  clusterIPs: [10.96.0.20]"
  echo "  ports: [{name: http, port: 8080}]"
  echo "endpoints:"
  echo "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: 8080}, labels: {version: v1}}"
  echo "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.3, ports: {http: 8080}, labels: {version: v2}}"
  sed -n '/^resources:/,$p' "$root/core/config/testdata/seed.yaml"
} > "$work/snapshot.yaml"
chmod 644 "$work/snapshot.yaml"

# The pod's init step, then its sidecar as injected: uid/gid 1337.
ip netns exec "$pod" "$build/init/tern-init" -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' \
  -d 15090,15021,15020 >/dev/null
ip netns exec "$pod" setpriv --reuid 1337 --regid 1337 --clear-groups "$build/proxy/tern-proxy" \
  --config "$work/snapshot.yaml" --concurrency 2 2>"$work/proxy.log" & pids+=($!)
for _ in $(seq 50); do
  ip netns exec "$pod" /usr/bin/python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:15000/ready", timeout=1)' \
    2>/dev/null && break
  sleep 0.1
done

# The app (uid 1000) calls product-service by its cluster IP, as `web` does.
cat > "$work/app.py" <<'PY'
import collections, sys, urllib.request
n, canary = int(sys.argv[1]), sys.argv[2] == "canary"
seen = collections.Counter()
for _ in range(n):
    req = urllib.request.Request("http://10.96.0.20:8080/items", headers={"x-canary": "true"} if canary else {})
    with urllib.request.urlopen(req, timeout=5) as res:
        seen[res.read().decode().strip()] += 1
print(" ".join(f"{k}={seen[k]}" for k in sorted(seen)))
PY
app() { ip netns exec "$pod" setpriv --reuid 1000 --regid 1000 --clear-groups "$@"; }

echo "== the seed's VirtualService through tern-proxy (app -> 10.96.0.20:8080 -> sidecar -> endpoint)"
split=$(app /usr/bin/python3 "$work/app.py" 1000 plain)
canary=$(app /usr/bin/python3 "$work/app.py" 100 canary)
echo "HTTP/1.1, 1000 requests:                 $split   (the seed: 90% v1, 10% v2)"
echo "HTTP/1.1, 100 requests, x-canary: true:  $canary   (the seed: all v2)"
h2=$(app nghttp -m 100 http://10.96.0.20:8080/items | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
h2canary=$(app nghttp -m 20 -H "x-canary: true" http://10.96.0.20:8080/items | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
echo "HTTP/2, 100 streams on one connection:   $h2  (to HTTP/1.1 backends)"
echo "HTTP/2, 20 streams, x-canary: true:      $h2canary"
echo
echo "== two access-log lines"
awk '/"msg":"access"/ && /"protocol":"HTTP\/1.1"/ {print; exit}' "$work/proxy.log"
awk '/"msg":"access"/ && /"protocol":"HTTP\/2"/ {print; exit}' "$work/proxy.log"
echo
echo "== /stats/prometheus (connections by service)"
ip netns exec "$pod" /usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:15090/stats/prometheus").read().decode())' \
  | awk '/^istio_tcp_connections_opened_total/' 

# The check: the split lands within tolerance, the canary header always reaches v2.
v1=$(grep -o 'v1=[0-9]*' <<<"$split" | cut -d= -f2); v2=$(grep -o 'v2=[0-9]*' <<<"$split" | cut -d= -f2)
[[ "${v2:-0}" -ge 60 && "${v2:-0}" -le 140 && $((${v1:-0} + ${v2:-0})) -eq 1000 ]] || { echo "FAIL: 90/10 split: $split" >&2; exit 1; }
[[ "$canary" == "v2=100" ]] || { echo "FAIL: canary: $canary" >&2; exit 1; }
[[ "$h2canary" == "v2=20 " ]] || { echo "FAIL: HTTP/2 canary: $h2canary" >&2; exit 1; }
[[ "$h2" != *upstream* ]] || { echo "FAIL: HTTP/2 requests answered by the proxy itself: $h2" >&2; exit 1; }
echo
echo "OK: the seed's canary routing holds through tern-proxy over HTTP/1.1 and HTTP/2"
