#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch directory (the normal
# build/ is left untouched), runs every native test (native/test/*.test.ts, transports included) against it with
# the ASan runtime preloaded into node, and fails on any sanitizer report.
#
#   npm run test:native:asan -w @kvfabric/native      (or: bash native/test/asan.sh [test files...])
#
# Leak detection is off: node itself is not instrumented and keeps memory until exit by design; every ASan
# error (overflow, use-after-free, double free, ...) and every UBSan finding is fatal and reported.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
native="$(cd "$here/.." && pwd)"
repo="$(cd "$native/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kvfabric-asan.XXXXXX")"
keep="${KVFABRIC_ASAN_KEEP:-0}"
cleanup() { if [ "$keep" != 1 ]; then rm -rf "$work"; else echo "asan: kept $work"; fi; }
trap cleanup EXIT

libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "asan: libasan.so not found (gcc -print-file-name=libasan.so gave '$libasan'); apt-get install g++" >&2
  exit 2
fi

# 1. Build a sanitized copy of the addon in $work (sources copied, node_modules linked).
mkdir -p "$work/addon"
cp -r "$native/binding.gyp" "$native/src" "$work/addon/"
ln -s "$repo/node_modules" "$work/addon/node_modules"
# UBSan minus null/nonnull-attribute/returns-nonnull-attribute: with those, GCC 12 refuses node-addon-api's
# TypedThreadSafeFunction<..., &Class::InlineCallJs> ("'(CallJs == 0)' is not a constant expression") when the
# callback is an inline function. A null dereference still faults under ASan.
ubsan="-fsanitize=undefined -fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute"
san="-fsanitize=address $ubsan -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
echo "asan: building the addon with $san"
(
  cd "$work/addon"
  KVFABRIC_NATIVE_CFLAGS="$san" KVFABRIC_NATIVE_LDFLAGS="-fsanitize=address,undefined" \
    node "$repo/node_modules/node-gyp/bin/node-gyp.js" rebuild -j 2 --nodedir="${npm_config_nodedir:-/usr}" \
    >"$work/build.log" 2>&1
) || { cat "$work/build.log" >&2; echo "asan: build failed" >&2; exit 1; }
addon="$work/addon/build/Release/kvfabric_native.node"
if ! nm -D "$addon" | grep __asan_ >/dev/null; then echo "asan: $addon is not instrumented" >&2; exit 1; fi

# 2. Run the native tests against it.
if [ "$#" -gt 0 ]; then tests=("$@"); else tests=("$native"/test/*.test.ts); fi
mkdir -p "$work/reports"
echo "asan: running ${#tests[@]} test file(s): ${tests[*]##*/}"
status=0
(
  cd "$repo"
  export KVFABRIC_NATIVE_ADDON="$addon"
  export LD_PRELOAD="$libasan"
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=0:allocator_may_return_null=1:log_path=$work/reports/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$work/reports/ubsan"
  node --conditions=source --import tsx --test --test-concurrency=1 "${tests[@]}"
) || status=$?

# 3. Any report fails the run, even from a child process whose failure a test tolerated.
reports=("$work"/reports/*)
if [ -e "${reports[0]}" ]; then
  for r in "${reports[@]}"; do echo "----- $r" >&2; cat "$r" >&2; done
  echo "asan: FAILED: ${#reports[@]} sanitizer report(s)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then echo "asan: FAILED: tests exited with status $status" >&2; exit "$status"; fi
echo "asan: OK (no sanitizer reports)"
