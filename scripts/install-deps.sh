#!/usr/bin/env bash
# Installs the Debian 12 packages Tern builds, tests and demos with. Idempotent: it only calls
# apt-get when something is missing, so repeated runs cost a dpkg query and nothing else.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libssl-dev openssl
  nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libnftables-dev libnl-3-dev libnl-route-3-dev nftables iproute2
  libjemalloc-dev libre2-dev libnghttp2-dev liburing-dev nghttp2-client nghttp2-server python3-grpcio
  python3-websockets
  # tern-proxy: Asio and Beast (headers).
  libboost1.81-dev
  # The tern-cni e2e: containerd's go-cni (built with Debian's Go) and the reference plugins.
  golang-go golang-github-containerd-go-cni-dev containernetworking-plugins
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
