// Page checksums: XXH3-64 (Debian's libxxhash, whose runtime dispatch picks the SSE2, AVX2 or AVX-512 kernel) of
// pool pages. A save sums each page while it copies it (save_sums.h); a holder sums, on the copy engine's
// threads, the pages it grants that have no checksum yet (pages a save could not sum: segments that do not fill the
// page, CUDA copies), and keeps the sums with the block; a pull verifies the pages a transport landed against the
// holder's sums before the blocks seal (here for verbs; tcp sums them as they land, landed_pages.h, with the same
// function). The copy engine owns the threads and the batch; this file owns what a summed batch means: its
// arguments, the per-page work, the result.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "memory.h"

namespace kvf {

// XXH3-64 (seed 0) of `len` bytes: the checksum of one page.
uint64_t PageChecksum(const uint8_t* data, uint64_t len);

// The checksum side of one copy-engine batch: pages already in memory, summed (CopyEngine.sum) or summed and
// compared with what the holder said (CopyEngine.verify).
class PageSums {
 public:
  // The arguments (memory, pageOffsets: Float64Array, pageBytes[, expected: Uint32Array of (lo, hi) per page]),
  // checked (INVALID_ARGUMENT naming the field); `expected` is read when `verify`. `mem` gets the memory to read.
  static std::unique_ptr<PageSums> FromArgs(const Napi::CallbackInfo& info, bool verify, MemoryRef* mem);

  uint32_t pages() const { return static_cast<uint32_t>(sums_.size()); }
  uint64_t page_bytes() const { return page_bytes_; }

  // Worker thread: sums pages [first, last] of `base` (and flags those that differ, for a verify). Pages are
  // independent, so parts may run concurrently.
  void Run(uint32_t first, uint32_t last, const uint8_t* base);

  // JS thread, once every part ran. Sum: `checksums`, a Uint32Array of (lo, hi) per page; verify: `mismatches`,
  // a Uint32Array of the indexes of the pages that differ (empty when all match).
  void SetResult(Napi::Env env, Napi::Object result) const;

 private:
  bool verify_ = false;
  uint64_t page_bytes_ = 0;
  std::vector<uint64_t> sums_;
  std::vector<uint64_t> offsets_;
  std::vector<uint64_t> expected_;
  std::vector<uint8_t> bad_;
};

}  // namespace kvf
