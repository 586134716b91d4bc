#!/usr/bin/env bash
# e2e: the demo, run as CI runs it, must show each decision the seed scenario implies.
set -euo pipefail
build=${1:?usage: webhook_demo_test.sh BUILD_DIR}
out=$("$(dirname "$0")/run-webhook-demo.sh" "$build" 2>&1) || { echo "$out"; echo "demo failed"; exit 1; }
fail=0
expect() {
  if ! grep -qF -- "$1" <<<"$out"; then echo "missing from the demo's output: $1"; fail=1; fi
}
expect "Deployment my-app/product-service-v1"
expect "Deployment my-app/product-service-v2"
expect "Deployment my-app/order-service"
expect "webhook namespace.sidecar-injector.tern.dev -> injected"
expect "initContainers: istio-init, istio-proxy (native sidecar)"
expect "canonical-name=product-service canonical-revision=v2"
expect "webhook object.sidecar-injector.tern.dev -> injected"
expect "REFUSED: tern-sidecar-injector: the pod cannot be injected: metadata.annotations[\"traffic.sidecar.istio.io/excludeOutboundPorts\"]: invalid value \"5432,70000\""
injected=$(grep -c '"outcome":"injected"' <<<"$out" || true)
refused=$(grep -c '"outcome":"rejected"' <<<"$out" || true)
unchanged=$(grep -c 'kube-apiserver creates it unchanged' <<<"$out" || true)
[[ "$injected" == 4 ]] || { echo "expected 4 injected pods in ternd's log, saw $injected"; fail=1; }
[[ "$refused" == 1 ]] || { echo "expected 1 refused pod in ternd's log, saw $refused"; fail=1; }
[[ "$unchanged" == 2 ]] || { echo "expected 2 pods no webhook selects, saw $unchanged"; fail=1; }
if ((fail)); then echo "$out"; exit 1; fi
echo "webhook demo: 4 injected, 1 refused, 2 not selected, as expected"
