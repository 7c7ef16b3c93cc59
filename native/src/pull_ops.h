// The per-block work of a remote pull's local side, done natively (DESIGN §2 "Remote pull"): one call per chunk
// sets up fresh pool pages and pinned, unsealed "pulled" slots for the blocks about to be read, and one call per
// chunk seals them once their pages arrived and verified (keeping the holder's checksums, so they can be served on)
// or undoes them. An unsealed slot is never a hit, so a half-read block is never visible. Pure C++ over the index
// and the pool's allocator (no napi): the JavaScript binding is pull_ops_js.cc. Every function takes the index
// lock itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "block_index.h"
#include "engine_ops.h"
#include "pool.h"

namespace kvf {

// What SetUpPulled made: per block set up its slot, and its pages (block-major, `shards` a block).
struct PulledChunk {
  std::vector<int32_t> slots;
  std::vector<uint64_t> pages;
  EvictedBlocks evicted;  // made room for the pages
  bool exhausted = false;  // fewer pages than asked for were found
};

// Sets up the `count` blocks whose hashes are `packed` (hash_len bytes each) in namespace `ns`, `shards` pages of
// `page_bytes` a block: every page is allocated first (evicting least recently used blocks, pulled copies first),
// then block by block, stopping at the first that the index has already (sealed or not: saved locally meanwhile)
// or that no pages are left for, a new pulled slot is made, pinned, and given its pages. Pages left over are freed.
void SetUpPulled(BlockIndex& index, PageAllocator& alloc, uint32_t ns, uint32_t shards, uint64_t page_bytes,
                 const uint8_t* packed, uint32_t hash_len, uint32_t count, PulledChunk* out);

// Seals blocks set up by SetUpPulled whose pages all arrived and matched: records each page's checksum (`sums`:
// (low, high) per page, block-major), marks every page written and unpins the slot; the hashes of the blocks that
// sealed are appended to `sealed_hashes`, back to back. Returns "" (and the blocks sealed in `*sealed`), or why a
// slot is not such a block (nothing changed).
std::string SealPulled(BlockIndex& index, const int32_t* slots, uint32_t count, const uint32_t* sums,
                       uint32_t sums_len, std::string* sealed_hashes, uint32_t* sealed);

// Undoes blocks set up by SetUpPulled that did not arrive: their pages are unassigned and freed and their slots
// unpinned (unsealed and holding nothing, they go away). Returns "" or why a slot is not such a block (nothing
// changed).
std::string UndoPulled(BlockIndex& index, PageAllocator& alloc, const int32_t* slots, uint32_t count);

}  // namespace kvf
