// Streaming-store copies; see stream_copy.h.
#include "stream_copy.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kvf {

#if defined(__x86_64__)
namespace {

constexpr uint64_t kLine = 64;

// `len` bytes from `src` to a 64-byte aligned `dst`, whole lines only (len a multiple of 64).
__attribute__((target("avx512f"))) void StreamLinesAvx512(uint8_t* dst, const uint8_t* src, uint64_t len) {
  uint64_t i = 0;
  for (; i + 4 * kLine <= len; i += 4 * kLine) {
    __m512i a = _mm512_loadu_si512(src + i);
    __m512i b = _mm512_loadu_si512(src + i + kLine);
    __m512i c = _mm512_loadu_si512(src + i + 2 * kLine);
    __m512i d = _mm512_loadu_si512(src + i + 3 * kLine);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), a);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + kLine), b);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 2 * kLine), c);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 3 * kLine), d);
  }
  for (; i < len; i += kLine)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
}

void StreamLinesSse2(uint8_t* dst, const uint8_t* src, uint64_t len) {
  for (uint64_t i = 0; i < len; i += kLine) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
}

// The same, also storing each line to `keep` with ordinary (cached) stores: one read of `src` for both.
__attribute__((target("avx512f"))) void KeepLinesAvx512(uint8_t* dst, uint8_t* keep, const uint8_t* src,
                                                        uint64_t len) {
  for (uint64_t i = 0; i < len; i += kLine) {
    __m512i a = _mm512_loadu_si512(src + i);
    _mm512_storeu_si512(keep + i, a);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), a);
  }
}

void KeepLinesSse2(uint8_t* dst, uint8_t* keep, const uint8_t* src, uint64_t len) {
  for (uint64_t i = 0; i < len; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(keep + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
  }
}

using LinesFn = void (*)(uint8_t*, const uint8_t*, uint64_t);
using KeepFn = void (*)(uint8_t*, uint8_t*, const uint8_t*, uint64_t);

bool HasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

const bool kAvx512 = HasAvx512();
const LinesFn kStreamLines = kAvx512 ? StreamLinesAvx512 : StreamLinesSse2;
const KeepFn kKeepLines = kAvx512 ? KeepLinesAvx512 : KeepLinesSse2;

}  // namespace

void StreamCopy(uint8_t* dst, const uint8_t* src, uint64_t len) {
  if (len < kStreamMinBytes) {
    std::memcpy(dst, src, len);
    return;
  }
  // Ordinary stores up to the first line boundary of dst and for the tail; whole lines in between stream.
  uint64_t head = (kLine - reinterpret_cast<uintptr_t>(dst) % kLine) % kLine;
  std::memcpy(dst, src, head);
  uint64_t body = (len - head) / kLine * kLine;
  kStreamLines(dst + head, src + head, body);
  std::memcpy(dst + head + body, src + head + body, len - head - body);
}

void StreamCopyKeep(uint8_t* dst, uint8_t* keep, const uint8_t* src, uint64_t len) {
  // Ordinary stores are read back from `keep`, so both copies hold the bytes of one read even if `src` changes.
  if (len < kStreamMinBytes) {
    std::memcpy(keep, src, len);
    std::memcpy(dst, keep, len);
    return;
  }
  uint64_t head = (kLine - reinterpret_cast<uintptr_t>(dst) % kLine) % kLine;
  std::memcpy(keep, src, head);
  std::memcpy(dst, keep, head);
  uint64_t body = (len - head) / kLine * kLine;
  kKeepLines(dst + head, keep + head, src + head, body);
  uint64_t at = head + body;
  std::memcpy(keep + at, src + at, len - at);
  std::memcpy(dst + at, keep + at, len - at);
}

void StreamFence() { _mm_sfence(); }

const char* StreamCopyKernel() { return kAvx512 ? "avx512" : "sse2"; }

#else

void StreamCopy(uint8_t* dst, const uint8_t* src, uint64_t len) { std::memcpy(dst, src, len); }
void StreamCopyKeep(uint8_t* dst, uint8_t* keep, const uint8_t* src, uint64_t len) {
  std::memcpy(keep, src, len);
  std::memcpy(dst, keep, len);
}
void StreamFence() {}
const char* StreamCopyKernel() { return "memcpy"; }

#endif

}  // namespace kvf
