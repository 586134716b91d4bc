#!/usr/bin/env bash
# Runs the main job end to end: builds Release, starts ternd's injection webhook over HTTPS and
# feeds it the seed scenario as kube-apiserver would, printing what each pod becomes.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
exec ./e2e/run-webhook-demo.sh build/release "$@"
