#!/usr/bin/env bash
# Debian packages kvfabric needs to build and test: a C++ toolchain for the addon, protoc for `gen:proto`,
# libibverbs/liburing headers, and the reference peers and etcd the tests and benches start on loopback.
set -euo pipefail
packages=(g++ make python3 pkg-config protobuf-compiler libibverbs-dev liburing-dev etcd-server iperf3 redis-server valgrind)
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-deps: ${packages[*]} installed"
