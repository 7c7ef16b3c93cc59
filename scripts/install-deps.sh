#!/usr/bin/env bash
# Debian packages kvfabric needs to build and test: a C++ toolchain for the addon (and clang with its libFuzzer
# runtime plus OpenSSL's libcrypto for the native fuzzers), protoc for `gen:proto`,
# libibverbs/liburing headers, the reference peers (iperf3, redis, fio) and etcd the tests and benches start on
# loopback, and QEMU, busybox and the RDMA user space for scripts/rdma-vm.sh (soft-RoCE in a VM), whose kernel is
# fetched last.
set -euo pipefail
packages=(g++ make python3 python3-venv pkg-config protobuf-compiler protobuf-compiler-grpc libibverbs-dev liburing-dev libxxhash-dev clang libclang-rt-14-dev libssl-dev etcd-server etcd-client time iperf3 redis-server fio valgrind
  qemu-system-x86 busybox-static rdma-core ibverbs-providers ibverbs-utils perftest stress-ng)
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-deps: ${packages[*]} installed"
# As root like apt, since the default kernel cache is under /var/cache; the variable survives sudo this way.
run env KVFABRIC_VM_CACHE="${KVFABRIC_VM_CACHE:-/var/cache/kvfabric/rdma-vm}" bash "$(dirname "$0")/rdma-vm.sh" fetch
