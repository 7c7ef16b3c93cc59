#!/usr/bin/env bash
# Builds the fake libibverbs (native/build/fake-verbs/libibverbs.so.1) and its smoke test.
#
#   bash native/test/fake-verbs/build.sh            build the library and the smoke test (what `npm test` needs)
#   bash native/test/fake-verbs/build.sh --asan     also the ASan+UBSan copies under asan/
#   bash native/test/fake-verbs/build.sh --test     all of it, then run the smoke test (normal, ASan+UBSan, modes)
#
# Use it by putting native/build/fake-verbs first on LD_LIBRARY_PATH; the addon's dlopen("libibverbs.so.1")
# then finds the fake. Contract: README.md in this directory. Env: CXX (default g++), FAKE_VERBS_OUT (output dir).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
native="$(cd "$here/../.." && pwd)"
out="${FAKE_VERBS_OUT:-$native/build/fake-verbs}"
cxx="${CXX:-g++}"
mkdir -p "$out"

srcs=("$here/fake_verbs.cc" "$here/fake_wire.cc")
common=(-std=c++17 -Wall -Wextra -g -pthread -fPIC)

# The library: soname libibverbs.so.1, exporting only the ibv_* / _ibv_* symbols (C linkage); the C++ internals
# stay local so nothing in the host process (node) can interpose them.
printf '{ global: ibv_*; _ibv_*; local: *; };\n' >"$out/exports.map"
lib=(-shared -Wl,-soname,libibverbs.so.1 -Wl,--version-script,"$out/exports.map")
"$cxx" "${common[@]}" -O1 "${lib[@]}" -o "$out/libibverbs.so.1" "${srcs[@]}"
ln -sf libibverbs.so.1 "$out/libibverbs.so"

# The smoke test links the fake directly (never the system libibverbs).
"$cxx" "${common[@]}" -O1 -o "$out/smoke" "$here/smoke.cc" -L"$out" -l:libibverbs.so.1 -Wl,-rpath,'$ORIGIN'

if [ -z "${1:-}" ]; then
  echo "fake-verbs: built $out/libibverbs.so.1"
  exit 0
fi

# Sanitized copies (library and smoke test together) under $out/asan.
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
mkdir -p "$out/asan"
"$cxx" "${common[@]}" "${san[@]}" -O1 "${lib[@]}" -o "$out/asan/libibverbs.so.1" "${srcs[@]}"
"$cxx" "${common[@]}" "${san[@]}" -O1 -o "$out/asan/smoke" "$here/smoke.cc" -L"$out/asan" -l:libibverbs.so.1 \
  -Wl,-rpath,'$ORIGIN'
echo "fake-verbs: built $out/libibverbs.so.1"

if [ "${1:-}" = "--test" ]; then
  for bin in "$out/smoke" "$out/asan/smoke"; do
    for mode in full nomw v1only; do
      echo "== $bin $mode"
      "$bin" "$mode"
    done
  done
fi
