// The per-block work of the engine API's save and load, and of making room in the pool, done natively: a call's
// hashes are resolved against the block index, pages allocated (evicting least recently used blocks, pulled copies
// first), descriptors built, and the index updated once the copy is done. Pure C++ (no napi): the JavaScript
// binding (engine_ops_js.cc) runs a plan on the JS thread and its finish where the copy engine delivers; a native
// command ring runs the same functions on its own thread. Every function takes the index lock itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "block_index.h"
#include "copy_range.h"
#include "pool.h"
#include "save_sums.h"

namespace kvf {

// One engine instance's layout (RegisterInstance's geometry) and where its saves go: block b's segment s sits at
// segment_offsets[s] + b * stride_bytes in the region and at page + s * segment_bytes in the pool.
struct InstanceLayout {
  uint32_t ns = 0, shards = 1, shard = 0, num_blocks = 0;
  uint64_t page_bytes = 0, segment_bytes = 0, stride_bytes = 0;
  std::vector<uint64_t> segment_offsets;
};

// Blocks evicted to make room: what the metaserver must be told about (the sealed ones).
struct EvictedBlocks {
  std::vector<uint32_t> ns;
  std::vector<uint8_t> sealed, lens;
  std::string hashes;  // the hashes, back to back (lens[i] bytes each)
  uint64_t blocks = 0, bytes = 0;
  void Add(const BlockIndex& index, int32_t slot);
  void Merge(const EvictedBlocks& other);
};

// Up to `count` pages of `page_bytes` into `pages`: all of them, evicting unpinned blocks until they fit, or (when
// nothing is left to evict) what fits. Returns how many; `*exhausted` when fewer than asked. Index lock held.
uint32_t AllocateEvicting(BlockIndex& index, PageAllocator& alloc, uint64_t page_bytes, uint32_t count,
                          std::vector<uint64_t>* pages, EvictedBlocks* evicted, bool* exhausted);

enum SaveOutcome : uint8_t { kSaveStored = 0, kSavePresent = 1, kSaveNoSpace = 2 };

struct SavePlan {
  std::vector<uint8_t> outcomes;  // per hash of the call
  std::vector<int32_t> slots;     // per stored block
  std::vector<uint32_t> positions;  // per stored block: its hash's position in the call
  std::vector<int32_t> partial;   // partial blocks (other ranks' pages) pinned while pages were found
  std::vector<CopyRange> descs;   // region -> pool
  // Per stored block, its descriptors' first index, for a copy that sums the pages (save_sums.h) when the
  // segments fill the page; empty otherwise. Filled sums are the pages' checksums, which FinishSave keeps.
  SaveSums sums;
  EvictedBlocks evicted;
  uint32_t present = 0, no_space = 0;
  bool exhausted = false;
};

// Plans a save of `count` blocks: block_ids[i] of the instance's region under hash i (hash_len bytes each, packed).
// Returns "" or an INVALID_ARGUMENT message naming the field (nothing changed). On success the stored blocks' pages
// are assigned and pinned and `plan->descs` gathers them; when none could be stored though some were needed,
// `plan->slots` is empty and the caller answers POOL_EXHAUSTED.
std::string PlanSave(BlockIndex& index, PageAllocator& alloc, const InstanceLayout& layout, const uint32_t* block_ids,
                     const uint8_t* packed, uint32_t hash_len, uint32_t count, SavePlan* plan);

// After the copy: `copied` seals the stored shards (their hashes, when that sealed the block, appended to
// `sealed_hashes`; their pages' checksums kept when the copy summed them) and unpins them; otherwise the pages are
// unassigned and freed. Returns the blocks sealed.
uint32_t FinishSave(BlockIndex& index, PageAllocator& alloc, const InstanceLayout& layout, const uint8_t* packed,
                    uint32_t hash_len, SavePlan& plan, bool copied, std::string* sealed_hashes);

// Plans a load: the first `count` slots of a lease (pinned by it) scatter into block_ids of the region. Pins them
// for the copy and fills `descs` (pool -> region). Returns "" or an INVALID_ARGUMENT message (nothing pinned).
std::string PlanLoad(BlockIndex& index, const InstanceLayout& layout, const int32_t* slots, const uint32_t* block_ids,
                     uint32_t count, std::vector<CopyRange>* descs);
// "" when every descriptor lies inside both memories (src_bytes, dst_bytes long); else which block does not (the
// layout was checked against the region at registration: this keeps a mistake from reading or writing outside).
std::string DescsOutside(const std::vector<CopyRange>& descs, uint64_t src_bytes, uint64_t dst_bytes);

// After the copy, whatever its outcome: unpins what PlanLoad pinned.
void FinishLoad(BlockIndex& index, const int32_t* slots, uint32_t count);

}  // namespace kvf
