#!/usr/bin/env bash
# Runs every test: installs what the build needs, builds the `ci` preset (Debug, ASan+UBSan,
# warnings as errors) and runs ctest. Labels: unit, integration, e2e (`ctest -L unit` for a subset).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset ci >/dev/null
cmake --build --preset ci
ctest --preset ci
