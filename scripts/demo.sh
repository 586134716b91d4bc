#!/usr/bin/env bash
# Runs the main job end to end: builds Release, starts ternd's injection webhook over HTTPS and
# feeds it the seed scenario as kube-apiserver would, printing what each pod becomes; then wires
# an injected pod on a local node with containerd's go-cni and tern-cni and shows its traffic
# captured; then runs the seed's web pod with tern-proxy as its sidecar and shows the seed's
# canary routing hold over HTTP/1.1 and HTTP/2.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
./e2e/run-webhook-demo.sh build/release "$@"
./e2e/run-cni-demo.sh build/release
./e2e/run-proxy-demo.sh build/release
