#!/usr/bin/env bash
# Runs the admission demo with binaries from BUILD_DIR: makes the webhook's certificate with
# ternctl, starts ternd over HTTPS on loopback, and plays kube-apiserver for the seed scenario
# (manifests/examples) plus e2e/demo/*.yaml. Extra arguments go to webhook_demo (e.g. --yaml).
set -euo pipefail
build=${1:?usage: run-webhook-demo.sh BUILD_DIR [--yaml]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/e2e/lib/ternd.sh"
work=$(mktemp -d /tmp/tern-demo.XXXXXX)
trap 'stop_ternd; rm -rf "$work"' EXIT

# The mesh config the ConfigMap ships (the block under `mesh.yaml: |`).
sed -n '/mesh.yaml: |/,$p' "$root/manifests/base/configmap-mesh.yaml" | tail -n +2 | sed 's/^    //' > "$work/mesh.yaml"
start_ternd "$build" "$work" --mesh-config="$work/mesh.yaml"
echo "ternd is serving the injection webhook on https://127.0.0.1:$TERND_PORT/inject"

status=0
"$build/e2e/webhook_demo" "127.0.0.1:$TERND_PORT" "$work/certs/ca.crt" "$root/manifests/base/webhook.yaml" \
  --namespace=my-app "$root"/manifests/examples/*.yaml --namespace=default "$root"/e2e/demo/*.yaml "$@" || status=$?

echo
echo "ternd's decision log (one JSON line per AdmissionReview):"
grep '"msg":"admission"' "$work/ternd.log" || true
exit $status
