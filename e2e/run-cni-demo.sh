#!/usr/bin/env bash
# The demo's capture step with binaries from BUILD_DIR: ternctl injects the seed's
# product-service in CNI mode (the mesh config of manifests/cni), then cni_demo wires the pod
# with containerd's go-cni (bridge + host-local + tern-cni) in network namespaces it makes and
# shows where its traffic goes.
set -euo pipefail
build=${1:?usage: run-cni-demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tern-cni-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

sed -n '/mesh.yaml: |/,$p' "$root/manifests/cni/mesh-cni-mode.yaml" | tail -n +2 | sed 's/^    //' > "$work/mesh.yaml"
"$build/webhook/ternctl" kube-inject -f "$root/manifests/examples/product-service.yaml" \
  --mesh-config "$work/mesh.yaml" -o "$work/injected.yaml"
# Not exec: the EXIT trap must still remove the work directory.
"$build/e2e/cni_demo" "$build" "$root" "$work/injected.yaml"
