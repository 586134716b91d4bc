#!/usr/bin/env bash
# Webhook throughput and latency: Release build, ternd on loopback, 16 keep-alive HTTPS
# connections posting the AdmissionReview of a Deployment's pod (hello-probes: probes to rewrite).
#   bench/webhook.sh [REQUESTS] [CONNECTIONS]      (defaults 20000, 16)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
connections=${2:-16}
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
build=build/release
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
ternd_pid=""
cleanup() {
  if [[ -n "$ternd_pid" ]]; then kill "$ternd_pid" 2>/dev/null || true; wait "$ternd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$build/webhook/ternctl" webhook-cert --service ternd --namespace tern-system --out "$work/certs" 2>/dev/null
"$build/control-plane/ternd" --listen=127.0.0.1:0 --port-file="$work/port" --log-level=warn \
  --tls-cert="$work/certs/tls.crt" --tls-key="$work/certs/tls.key" 2> "$work/ternd.log" &
ternd_pid=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port=$(cat "$work/port")
"$build/bench/webhook_bench" "127.0.0.1:$port" "$work/certs/ca.crt" \
  ../shared/compat/istio-inject/hello-probes.yaml "$requests" "$connections"
echo "  ternd peak RSS $(awk '/VmHWM/ {print $2, $3}' /proc/$ternd_pid/status)"
