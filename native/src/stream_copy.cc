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

using LinesFn = void (*)(uint8_t*, const uint8_t*, uint64_t);

LinesFn PickKernel() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") ? StreamLinesAvx512 : StreamLinesSse2;
}

const LinesFn kStreamLines = PickKernel();

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

void StreamFence() { _mm_sfence(); }

const char* StreamCopyKernel() { return kStreamLines == StreamLinesAvx512 ? "avx512" : "sse2"; }

#else

void StreamCopy(uint8_t* dst, const uint8_t* src, uint64_t len) { std::memcpy(dst, src, len); }
void StreamFence() {}
const char* StreamCopyKernel() { return "memcpy"; }

#endif

}  // namespace kvf
