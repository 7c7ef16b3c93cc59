// Bulk copies with non-temporal ("streaming") stores. A save's bytes land in pool pages that no CPU reads soon
// (they wait for a load, a peer or the SSD), and a load's land in an engine region that the GPU reads by DMA:
// an ordinary store first reads each destination cache line into the cache (a read-for-ownership) and later
// writes it back, so a memcpy of memory-sized data moves every destination byte over the memory bus twice and
// evicts what the cache held. Streaming stores write whole lines straight to memory. On the development machine
// (2 vCPUs, Intel Xeon with AVX-512) a 16 KiB-segment copy costs about a third less CPU per GiB this way than with
// glibc's memcpy, which only streams copies larger than a share of the last-level cache.
//
// Plain C++, no napi. StreamCopy picks the widest kernel the CPU has once (AVX-512, else SSE2) and falls back to
// memcpy for short copies and on other architectures. Streaming stores are weakly ordered: a thread must call
// StreamFence() after its copies and before it publishes them (an atomic release does not order them).
#pragma once
#include <cstdint>

namespace kvf {

// Copies `len` bytes from `src` to `dst` (not overlapping); streams when `len` is at least kStreamMinBytes.
void StreamCopy(uint8_t* dst, const uint8_t* src, uint64_t len);

// StreamCopy that also leaves the bytes in `keep` (a small buffer the caller reads next, e.g. to hash them): each
// line of `src` is read once and stored to both, so `keep` holds exactly what was written to `dst`.
void StreamCopyKeep(uint8_t* dst, uint8_t* keep, const uint8_t* src, uint64_t len);

// Orders every streaming store this thread made before the stores that follow (sfence on x86; nothing elsewhere).
void StreamFence();

// Shorter copies go through memcpy: their lines are likely read again soon, and the fence would cost more.
inline constexpr uint64_t kStreamMinBytes = 4096;

// The kernel StreamCopy uses: "avx512", "sse2" or "memcpy".
const char* StreamCopyKernel();

}  // namespace kvf
