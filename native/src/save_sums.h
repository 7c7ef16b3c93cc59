// Page checksums made while a save copies the pages (checksum.h has the function: XXH3-64 of a page's bytes).
// A holder must know a page's checksum before it grants the page to a peer; summing at grant time reads the page
// back from memory (the streaming stores of the save left it out of the cache), which costs a pull more CPU on the
// holder than the copy itself. Summed during the copy, the bytes are hashed while they sit in the L1 cache.
//
// The hash covers exactly the bytes written: each piece of the engine's region is read once and stored both to the
// pool page (streaming stores) and to a small per-thread buffer that stays in L1, which is then hashed. An engine
// that rewrites its region during the save can change what is saved, never make the page and its checksum
// disagree.
//
// Plain C++, no napi: the copy engine calls SumPage from its worker threads.
#pragma once
#include <cstdint>
#include <vector>

#include "copy_range.h"

namespace kvf {

// A save batch's pages, for a summed copy: page p's bytes are descriptors [starts[p], starts[p + 1]) (the last
// page's run to the end of the batch), back to back in the pool page from its first byte. `sums` gets one
// checksum per page, written by the copy threads before the batch completes.
struct SaveSums {
  std::vector<uint32_t> starts;
  std::vector<uint64_t> sums;
};

// Copies descriptors [first, end) of `descs` from `src` to `dst` through the bounce buffer (streaming stores to
// `dst`) and returns the checksum of the bytes written. The caller fences (StreamFence) before publishing.
uint64_t CopyPageSummed(const CopyRange* descs, uint32_t first, uint32_t end, const uint8_t* src, uint8_t* dst);

}  // namespace kvf
