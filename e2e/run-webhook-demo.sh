#!/usr/bin/env bash
# Runs the admission demo with binaries from BUILD_DIR: makes the webhook's certificate with
# ternctl, starts ternd over HTTPS on loopback, and plays kube-apiserver for the seed scenario
# (manifests/examples) plus e2e/demo/*.yaml. Extra arguments go to webhook_demo (e.g. --yaml).
set -euo pipefail
build=${1:?usage: run-webhook-demo.sh BUILD_DIR [--yaml]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tern-demo.XXXXXX)
ternd_pid=""
cleanup() {
  if [[ -n "$ternd_pid" ]]; then kill "$ternd_pid" 2>/dev/null || true; wait "$ternd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$build/webhook/ternctl" webhook-cert --service ternd --namespace tern-system --out "$work/certs"
mesh="$work/mesh.yaml"
# The mesh config the ConfigMap ships (the block under `mesh.yaml: |`).
sed -n '/mesh.yaml: |/,$p' "$root/manifests/configmap-mesh.yaml" | tail -n +2 | sed 's/^    //' > "$mesh"

"$build/control-plane/ternd" --listen=127.0.0.1:0 --port-file="$work/port" \
  --tls-cert="$work/certs/tls.crt" --tls-key="$work/certs/tls.key" --mesh-config="$mesh" \
  2> "$work/ternd.log" &
ternd_pid=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { echo "ternd did not start:"; cat "$work/ternd.log"; exit 1; }
port=$(cat "$work/port")
echo "ternd is serving the injection webhook on https://127.0.0.1:$port/inject"

status=0
"$build/e2e/webhook_demo" "127.0.0.1:$port" "$work/certs/ca.crt" "$root/manifests/webhook.yaml" \
  --namespace=my-app "$root"/manifests/examples/*.yaml --namespace=default "$root"/e2e/demo/*.yaml "$@" || status=$?

echo
echo "ternd's decision log (one JSON line per AdmissionReview):"
grep '"msg":"admission"' "$work/ternd.log" || true
exit $status
