#!/usr/bin/env bash
# Builds the CUDA driver stand-in (native/build/fake-cuda/libcuda.so.1). Use it by putting that directory first on
# LD_LIBRARY_PATH: the addon's dlopen("libcuda.so.1") then finds it. Contract: README.md in this directory.
# Env: CXX (default g++), FAKE_CUDA_OUT (output dir).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${FAKE_CUDA_OUT:-$here/../../build/fake-cuda}"
mkdir -p "$out"
printf '{ global: cu*; local: *; };\n' >"$out/exports.map"
"${CXX:-g++}" -std=c++17 -Wall -Wextra -g -O1 -pthread -fPIC -shared -Wl,-soname,libcuda.so.1 \
  -Wl,--version-script,"$out/exports.map" -o "$out/libcuda.so.1" "$here/fake_cuda.cc"
echo "fake-cuda: built $out/libcuda.so.1"
