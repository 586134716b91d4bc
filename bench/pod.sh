# Sourced by the proxy benches: the bench's "pod", a network namespace `$ns` with a peer so the
# services' cluster IPs route somewhere for the capture to see, `run` to execute in it, a
# cleanup that ends every process in it (by pid) and removes it and `$work`, and the snapshot's
# backend service. The sourcing script sets `ns`, `work` and (optionally) `pids` first.

# `run ... &` leaves a subshell's pid in $!; the servers themselves are every pid in the pod's
# namespace and its peer's, which `ip netns pids` lists.
pod_cleanup() {
  local all=("${pids[@]}" $(ip netns pids "$ns" 2>/dev/null) $(ip netns pids "$ns-peer" 2>/dev/null))
  for p in "${all[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${all[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  ip netns del "$ns-peer" 2>/dev/null || true
  rm -rf "$work"
}

# The pod (10.200.0.1) and its peer, the default route through it.
pod_create() {
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns add "$ns-peer"
  ip link add "tb$$a" netns "$ns" type veth peer name "tb$$b" netns "$ns-peer"
  ip -n "$ns" addr add 10.200.0.1/24 dev "tb$$a"
  ip -n "$ns" link set "tb$$a" up
  ip -n "$ns-peer" link set "tb$$b" up
  ip -n "$ns" route add default via 10.200.0.2
}

run() { ip netns exec "$ns" "$@"; }

# A snapshot whose service backend.default (10.96.0.20:8080) is the nginx backend on
# 127.0.0.1:18080: pod_snapshot VERSION [MORE_SERVICES] [MORE_ENDPOINTS] (YAML list items).
pod_snapshot() {
  cat <<CONF
apiVersion: tern.dev/v1alpha1
kind: ProxySnapshot
version: $1
workload: {name: bench, namespace: default}
services:
- hostname: backend.default.svc.cluster.local
  clusterIPs: [10.96.0.20]
  ports: [{name: http, port: 8080}]
${2:-}endpoints:
- {service: backend.default.svc.cluster.local, address: 127.0.0.1, ports: {http: 18080}}
${3:-}
CONF
}
