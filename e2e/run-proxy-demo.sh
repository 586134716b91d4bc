#!/usr/bin/env bash
# The demo's traffic step with binaries from BUILD_DIR: ternd (on a peer, as the control plane)
# reads the seed scenario as shipped (manifests/examples: its Services, VirtualService and
# DestinationRule verbatim) and the pods' own objects from a folder, and streams the web pod's
# sidecar its snapshot over HTTPS. The sidecar is tern-proxy started as the injector starts it
# (uid 1337 behind tern-init's capture, no --config: TERN_DISCOVERY_ADDRESS, POD_NAME, ...);
# product-service v1 and v2 run on the peer. The app calls product-service by its cluster IP:
# plain requests split 90/10, `x-canary: true` always reaches v2, over HTTP/1.1 and HTTP/2;
# then the folder is edited (50/50) and the traffic follows; then ternctl proxy-status, the
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

# ternd on the peer (10.200.0.2:15012) with its serving certificate; the folder it watches: the
# seed scenario as shipped, and the pods the cluster would report (web-1 here, v1 and v2 there).
"$build/webhook/ternctl" webhook-cert --service ternd --namespace tern-system --ip 10.200.0.2 --out "$work/certs" 2>/dev/null
mkdir -p "$work/mesh"
cp "$root"/manifests/examples/*.yaml "$work/mesh/"
cat > "$work/mesh/pods.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {serviceAccountName: web}
status: {podIP: 10.200.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: product-v1, labels: {app: product-service, version: v1}}
spec: {serviceAccountName: product-service}
status: {podIP: 10.200.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: product-v2, labels: {app: product-service, version: v2}}
spec: {serviceAccountName: product-service}
status: {podIP: 10.200.0.3}
YAML
ip netns exec "$peer" "$build/control-plane/ternd" --listen 10.200.0.2:15012 --tls-cert "$work/certs/tls.crt" \
  --tls-key "$work/certs/tls.key" --config-folder "$work/mesh" 2>"$work/ternd.log" & pids+=($!)

# The pod's files as the kubelet mounts them (the mesh root, its data volume), its init step,
# then its sidecar as injected: uid/gid 1337, the injected flags and environment, no --config.
mkdir -p "$work/pod/var/run/secrets/istio" "$work/pod/var/lib/istio/data" "$work/pod/etc/istio/pod"
cp "$work/certs/ca.crt" "$work/pod/var/run/secrets/istio/root-cert.pem"
chown 1337:1337 "$work/pod/var/lib/istio/data"
chmod -R a+rX "$work"
ip netns exec "$pod" "$build/init/tern-init" -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' \
  -d 15090,15021,15020 >/dev/null
ip netns exec "$pod" env -i PATH=/usr/bin:/bin TERN_FILES_ROOT="$work/pod" TERN_DISCOVERY_ADDRESS=10.200.0.2:15012 \
  POD_NAME=web-1 POD_NAMESPACE=my-app SERVICE_ACCOUNT=web INSTANCE_IP=10.200.0.1 ISTIO_META_INTERCEPTION_MODE=REDIRECT \
  setpriv --reuid 1337 --regid 1337 --clear-groups "$build/proxy/tern-proxy" \
  --domain my-app.svc.cluster.local --log-level info --concurrency 2 --status-port 15020 2>"$work/proxy.log" & pids+=($!)
ready=""
for _ in $(seq 100); do
  ip netns exec "$pod" /usr/bin/python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:15021/healthz/ready", timeout=1)' \
    2>/dev/null && { ready=1; break; }
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "FAIL: the sidecar never became ready" >&2; cat "$work/ternd.log" "$work/proxy.log" >&2; exit 1; }
ternctl() { ip netns exec "$peer" "$build/webhook/ternctl" "$@" --ternd 10.200.0.2:15012 --ca "$work/certs/ca.crt"; }
# product-service's cluster IP, as ternd gave it to the sidecar.
ip=$(ternctl proxy-config web-1.my-app | /usr/bin/python3 -c '
import json, sys
for s in json.load(sys.stdin)["services"]:
    if s["hostname"] == "product-service.my-app.svc.cluster.local": print(s["clusterIPs"][0])')
port=80

# The app (uid 1000) calls product-service by its cluster IP, as `web` does.
cat > "$work/app.py" <<'PY'
import collections, sys, urllib.request
n, canary = int(sys.argv[1]), sys.argv[2] == "canary"
seen = collections.Counter()
for _ in range(n):
    req = urllib.request.Request("http://%s/items" % sys.argv[3], headers={"x-canary": "true"} if canary else {})
    with urllib.request.urlopen(req, timeout=5) as res:
        seen[res.read().decode().strip()] += 1
print(" ".join(f"{k}={seen[k]}" for k in sorted(seen)))
PY
app() { ip netns exec "$pod" setpriv --reuid 1000 --regid 1000 --clear-groups "$@"; }

echo "== the sidecar, configured by ternd"
ternctl proxy-status
echo
echo "== the seed's VirtualService through tern-proxy (app -> $ip:$port -> sidecar -> endpoint)"
split=$(app /usr/bin/python3 "$work/app.py" 1000 plain "$ip:$port")
canary=$(app /usr/bin/python3 "$work/app.py" 100 canary "$ip:$port")
echo "HTTP/1.1, 1000 requests:                 $split   (the seed: 90% v1, 10% v2)"
echo "HTTP/1.1, 100 requests, x-canary: true:  $canary   (the seed: all v2)"
h2=$(app nghttp -m 100 "http://$ip:$port/items" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
h2canary=$(app nghttp -m 20 -H "x-canary: true" "http://$ip:$port/items" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
echo "HTTP/2, 100 streams on one connection:   $h2  (to HTTP/1.1 backends)"
echo "HTTP/2, 20 streams, x-canary: true:      $h2canary"
echo
echo "== the folder edited: the VirtualService's weights to 50/50"
sed -e 's/weight: 90/weight: 50/' -e 's/weight: 10/weight: 50/' "$root/manifests/examples/virtualservice.yaml" > "$work/vs.tmp"
mv "$work/vs.tmp" "$work/mesh/virtualservice.yaml"
sleep 1
half=$(app /usr/bin/python3 "$work/app.py" 400 plain "$ip:$port")
echo "HTTP/1.1, 400 requests a second later:   $half   (50% v1, 50% v2)"
ternctl proxy-status
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
h1=$(grep -o 'v1=[0-9]*' <<<"$half" | cut -d= -f2); h2v=$(grep -o 'v2=[0-9]*' <<<"$half" | cut -d= -f2)
[[ "${h2v:-0}" -ge 140 && "${h2v:-0}" -le 260 && $((${h1:-0} + ${h2v:-0})) -eq 400 ]] || { echo "FAIL: 50/50 after the edit: $half" >&2; exit 1; }
echo
echo "OK: ternd's snapshot drives the injected sidecar: the seed's canary routing holds over HTTP/1.1 and HTTP/2, and an edit reaches the traffic"
