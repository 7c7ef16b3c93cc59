#!/usr/bin/env bash
# Builds the libFuzzer targets of the native tcp wire with clang (ASan + UBSan) into native/build-fuzz/ and runs
# each for a bounded time; exits non-zero if any target crashed, hung or tripped a sanitizer.
#
#   bash native/fuzz/run.sh [seconds per target, default 60] [target...]   (default: every fuzz/*_fuzz.cc)
#   npm run fuzz:native -- 300
#
# Each target starts from its committed seeds (native/fuzz/corpus/<target>/, read only) plus the inputs it found
# before (native/build-fuzz/corpus/<target>/, kept between runs). A failing input is written to
# native/build-fuzz/crashes/<target>/ and the full log to native/build-fuzz/<target>.log; rerun one input with
# native/build-fuzz/<target> <file>.
set -euo pipefail

native="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$native/.." && pwd)"
out="$native/build-fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for f in "$native"/fuzz/*_fuzz.cc; do targets+=("$(basename "$f" _fuzz.cc)"); done
fi
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: seconds must be a positive integer, got '$seconds'" >&2; exit 2; }

cxx="${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}"
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
napi="$(cd "$repo" && node -p "require('node-addon-api').include_dir")"
node_inc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
[ -e "$node_inc/node_api.h" ] || { echo "fuzz: node headers not found at $node_inc" >&2; exit 2; }
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  -pthread -Wall -Wextra -Wno-unused-parameter -I"$repo/$napi" -I"$node_inc" -DNAPI_VERSION=8
  -DNODE_ADDON_API_DISABLE_DEPRECATED)
sources=("$native/src/tcp_server.cc" "$native/src/tcp_client.cc" "$native/src/tcp_hello.cc" "$native/src/memory.cc"
  "$native/src/landed_pages.cc")

mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
  main="$native/fuzz/${t}_fuzz.cc"
  [ -e "$main" ] || { echo "fuzz: unknown target '$t' (no $main)" >&2; exit 2; }
  bin="$out/$t"
  if [ ! -x "$bin" ] || [ -n "$(find "$main" "$native/fuzz/fuzz_wire.h" "${sources[@]}" "$native"/src/*.h -newer "$bin")" ]; then
    echo "fuzz: building $t with $cxx"
    "$cxx" "${flags[@]}" "$main" "${sources[@]}" -lcrypto -lxxhash -o "$bin"
  fi
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  log="$out/$t.log"
  rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="print_stacktrace=1" \
    "$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$t/" "$out/corpus/$t" "$native/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
  crashes="$(find "$out/crashes/$t" -type f -newer "$bin" | wc -l)"
  echo "fuzz $t: ${seconds} s, ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, exit $rc, new failing inputs $crashes"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "----- last lines of $log" >&2
    tail -40 "$log" >&2
  fi
done
exit "$status"
