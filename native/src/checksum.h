// Page checksums: XXH3-64 (Debian's libxxhash, whose runtime dispatch picks the SSE2, AVX2 or AVX-512 kernel) of
// every pool page. A save computes them on the copy engine's threads while it gathers the page (each chunk is
// hashed right after it was copied, while it is still in L1), so no extra pass over memory; a pull verifies the
// pages a transport landed, on the same threads, before the blocks seal. The copy engine owns the threads and the
// batch; this file owns what a summed batch means: which descriptors make which page, the per-page work, the
// result fields.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "memory.h"

namespace kvf {

// One copy descriptor: `len` bytes from `src` to `dst` (offsets in the batch's two memories).
struct CopyRange {
  uint64_t src, dst, len;
};

// XXH3-64 (seed 0) of `len` bytes: the checksum of one page.
uint64_t PageChecksum(const uint8_t* data, uint64_t len);

// The checksum side of one copy-engine batch, in page order: either a save (copy every page's descriptors and sum
// what landed) or a verify (sum pages already in memory and compare with what the holder said).
class PageSums {
 public:
  // Save: the batch's destination ranges, in order, must form whole pages of `page_bytes`, each one contiguous in
  // the destination (descriptors may span several adjacent pages). Returns "" or a message naming the descriptor.
  std::string PlanCopy(const std::vector<CopyRange>& descs, uint64_t page_bytes);
  // Verify: the arguments of CopyEngine.verify(memory, pageOffsets: Float64Array, pageBytes, expected: Uint32Array
  // of (lo, hi) per page), checked (INVALID_ARGUMENT naming the field); `mem` gets the memory to read.
  static std::unique_ptr<PageSums> ForVerify(const Napi::CallbackInfo& info, MemoryRef* mem);

  uint32_t pages() const { return static_cast<uint32_t>(sums_.size()); }
  uint64_t page_bytes() const { return page_bytes_; }

  // Worker thread: pages [first, last]. Save: copies them from `src` into `dst` and sums them; verify: sums the
  // pages of `dst` and flags those that differ. Pages are independent, so parts may run concurrently.
  void Run(uint32_t first, uint32_t last, const uint8_t* src, uint8_t* dst, const CopyRange* descs);

  // JS thread, once every part ran. Save: `checksums`, a Uint32Array of (lo, hi) per page; verify: `mismatches`,
  // a Uint32Array of the indexes of the pages that differ (empty when all match).
  void SetResult(Napi::Env env, Napi::Object result) const;

 private:
  bool verify_ = false;
  uint64_t page_bytes_ = 0;
  std::vector<uint64_t> sums_;
  // Save: where page p starts (descriptor index, bytes into it). Verify: page offsets, expected sums, outcomes.
  std::vector<uint32_t> first_desc_;
  std::vector<uint64_t> first_skip_;
  std::vector<uint64_t> offsets_;
  std::vector<uint64_t> expected_;
  std::vector<uint8_t> bad_;
};

}  // namespace kvf
