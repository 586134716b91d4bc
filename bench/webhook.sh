#!/usr/bin/env bash
# Webhook throughput and latency: Release build, ternd on loopback, keep-alive HTTPS
# connections posting the AdmissionReview of a Deployment's pod (hello-probes: probes to rewrite).
#   bench/webhook.sh [REQUESTS] [CONNECTIONS]      (defaults 20000, 16)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
connections=${2:-16}
source e2e/lib/ternd.sh
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
trap 'stop_ternd; rm -rf "$work"' EXIT
start_ternd build/release "$work" --log-level=warn
build/release/bench/webhook_bench "127.0.0.1:$TERND_PORT" "$work/certs/ca.crt" \
  ../shared/compat/istio-inject/hello-probes.yaml "$requests" "$connections"
awk '/VmHWM/ {print "  ternd peak RSS", $2, $3}' "/proc/$TERND_PID/status"
awk '{printf "  ternd CPU %.2f s user, %.2f s system\n", $14/100, $15/100}' "/proc/$TERND_PID/stat"
