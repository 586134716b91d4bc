#!/usr/bin/env bash
# tern-cni ADD/CHECK/DEL wall time (p50/p99 over RUNS calls, API round trip included) and
# ruleset apply time, against `ip netns exec nft -f` as the baseline. Release build; root.
#   bench/cni.sh [RUNS] [API_DELAY_MS]      (defaults 200, 0; a delay stands in for a remote API)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
delay=${2:-0}
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
build/release/bench/cni_bench build/release/cni-plugin/tern-cni "$runs" "$delay"
