// The engine API's per-block work: see engine_ops.h.
#include "engine_ops.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

namespace kvf {

namespace {

using Lock = std::lock_guard<std::mutex>;

// Marks the hashes of a call that repeat an earlier one of the same call (only the first is saved): a small
// open-addressing table of call positions, reused by the thread across calls.
class RepeatFilter {
 public:
  void Reset(const uint8_t* packed, uint32_t hash_len, uint32_t count) {
    uint32_t size = 16;
    while (size < count * 2) size *= 2;
    table_.assign(size, 0);
    mask_ = size - 1;
    packed_ = packed;
    len_ = hash_len;
  }
  // True when hash i is the first of its value in the call.
  bool IsFirst(uint32_t i) {
    const uint8_t* key = packed_ + static_cast<size_t>(i) * len_;
    uint32_t h = static_cast<uint32_t>(XXH3_64bits(key, len_));
    for (uint32_t s = h & mask_;; s = (s + 1) & mask_) {
      uint32_t v = table_[s];
      if (v == 0) {
        table_[s] = i + 1;
        return true;
      }
      if (std::memcmp(packed_ + static_cast<size_t>(v - 1) * len_, key, len_) == 0) return false;
    }
  }

 private:
  std::vector<uint32_t> table_;
  uint32_t mask_ = 0, len_ = 0;
  const uint8_t* packed_ = nullptr;
};

// Appends block `block`'s descriptors between the region and pool page `page` (to the pool when `to_pool`),
// coalescing runs that are contiguous on both sides; only within the block when `own_runs` (a summed save keeps
// each page's descriptors apart).
void AddBlock(const InstanceLayout& l, uint32_t block, uint64_t page, bool to_pool, bool own_runs,
              std::vector<CopyRange>* out) {
  uint64_t base = uint64_t{block} * l.stride_bytes;
  size_t first = own_runs ? out->size() : 0;
  for (size_t s = 0; s < l.segment_offsets.size(); s++) {
    uint64_t region = l.segment_offsets[s] + base, pool = page + s * l.segment_bytes;
    CopyRange d = to_pool ? CopyRange{region, pool, l.segment_bytes} : CopyRange{pool, region, l.segment_bytes};
    if (out->size() > first) {
      CopyRange& last = out->back();
      if (last.src + last.len == d.src && last.dst + last.len == d.dst) {
        last.len += d.len;
        continue;
      }
    }
    out->push_back(d);
  }
}

std::string BadBlockId(const InstanceLayout& l, const uint32_t* ids, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    if (ids[i] >= l.num_blocks) {
      return "block_ids[" + std::to_string(i) + "]: expected 0.." + std::to_string(l.num_blocks - 1) + ", got " +
             std::to_string(ids[i]);
    }
  }
  return std::string();
}

}  // namespace

void EvictedBlocks::Add(const BlockIndex& index, int32_t slot) {
  ns.push_back(index.Ns(slot));
  sealed.push_back(index.IsSealed(slot) ? 1 : 0);
  lens.push_back(static_cast<uint8_t>(index.KeyLength(slot)));
  hashes.append(reinterpret_cast<const char*>(index.Key(slot)), index.KeyLength(slot));
}

void EvictedBlocks::Merge(const EvictedBlocks& o) {
  ns.insert(ns.end(), o.ns.begin(), o.ns.end());
  sealed.insert(sealed.end(), o.sealed.begin(), o.sealed.end());
  lens.insert(lens.end(), o.lens.begin(), o.lens.end());
  hashes += o.hashes;
  blocks += o.blocks;
  bytes += o.bytes;
}

uint32_t AllocateEvicting(BlockIndex& index, PageAllocator& alloc, uint64_t page_bytes, uint32_t count,
                          std::vector<uint64_t>* pages, EvictedBlocks* evicted, bool* exhausted) {
  *exhausted = false;
  if (count == 0) return 0;
  std::vector<double> got(count);
  uint64_t victim_pages[BlockIndex::kMaxShards];
  for (;;) {
    if (alloc.AllocMany(page_bytes, count, got.data())) {
      for (double p : got) pages->push_back(static_cast<uint64_t>(p));
      return count;
    }
    // Evict least recently used blocks until the request's bytes were freed, then try again.
    uint64_t freed = 0, want = page_bytes * count;
    bool any = false;
    while (freed < want) {
      int32_t slot = index.Victim();
      if (slot == BlockIndex::kNil) break;
      uint64_t pb = index.PageBytes(slot);
      evicted->Add(index, slot);
      uint32_t n = index.Evict(slot, victim_pages);
      std::string why;
      for (uint32_t i = 0; i < n; i++) alloc.Free(victim_pages[i], pb, &why);
      freed += n * pb;
      evicted->blocks++;
      evicted->bytes += n * pb;
      any = true;
    }
    if (!any) break;
  }
  // Nothing left to evict: what fits, one page at a time.
  uint32_t n = 0;
  for (; n < count; n++) {
    uint64_t p = alloc.Alloc(page_bytes);
    if (p == PageAllocator::kNone) break;
    pages->push_back(p);
  }
  *exhausted = true;
  return n;
}

std::string PlanSave(BlockIndex& index, PageAllocator& alloc, const InstanceLayout& l, const uint32_t* block_ids,
                     const uint8_t* packed, uint32_t hash_len, uint32_t count, SavePlan* plan) {
  std::string bad = BadBlockId(l, block_ids, count);
  if (!bad.empty()) return bad;
  thread_local RepeatFilter repeats;
  thread_local std::vector<uint32_t> need;
  thread_local std::vector<uint64_t> pages;
  need.clear();
  pages.clear();
  plan->outcomes.assign(count, kSavePresent);
  if (count > 1) repeats.Reset(packed, hash_len, count);
  Lock lock(index.mu());
  for (uint32_t i = 0; i < count; i++) {
    if (count > 1 && !repeats.IsFirst(i)) continue;
    int32_t slot = index.Lookup(l.ns, packed + static_cast<size_t>(i) * hash_len, hash_len);
    // (a block of another shard count is not this namespace's to fill: namespaces fix their shards)
    if (slot >= 0 && (index.IsSealed(slot) || index.Shards(slot) != l.shards ||
                      index.Page(slot, l.shard) != BlockIndex::kNoPage)) {
      continue;
    }
    need.push_back(i);
    if (slot >= 0) {
      index.Pin(slot);  // keep another rank's partial block from being evicted to make room
      plan->partial.push_back(slot);
    }
  }
  uint32_t stored = AllocateEvicting(index, alloc, l.page_bytes, static_cast<uint32_t>(need.size()), &pages,
                                     &plan->evicted, &plan->exhausted);
  plan->slots.reserve(stored);
  plan->positions.reserve(stored);
  plan->descs.reserve(size_t{stored} * l.segment_offsets.size());
  // Summed as copied when the segments are the whole page (what a peer reads and verifies).
  bool summed = l.segment_bytes > 0 && l.segment_bytes * l.segment_offsets.size() == l.page_bytes;
  plan->sums.starts.clear();
  if (summed) plan->sums.starts.reserve(stored);
  for (uint32_t j = 0; j < stored; j++) {
    uint32_t i = need[j];
    int32_t slot = index.SlotForShard(l.ns, packed + static_cast<size_t>(i) * hash_len, hash_len, l.shards, l.shard,
                                      l.page_bytes, BlockIndex::kLocal);
    index.Assign(slot, l.shard, pages[j]);
    index.Pin(slot);
    plan->slots.push_back(slot);
    plan->positions.push_back(i);
    plan->outcomes[i] = kSaveStored;
    if (summed) plan->sums.starts.push_back(static_cast<uint32_t>(plan->descs.size()));
    AddBlock(l, block_ids[i], pages[j], true, summed, &plan->descs);
  }
  for (size_t j = stored; j < need.size(); j++) plan->outcomes[need[j]] = kSaveNoSpace;
  for (int32_t slot : plan->partial) index.Unpin(slot);
  plan->present = count - static_cast<uint32_t>(need.size());
  plan->no_space = static_cast<uint32_t>(need.size()) - stored;
  return std::string();
}

uint32_t FinishSave(BlockIndex& index, PageAllocator& alloc, const InstanceLayout& l, const uint8_t* packed,
                    uint32_t hash_len, SavePlan& plan, bool copied, std::string* sealed_hashes) {
  Lock lock(index.mu());
  uint32_t sealed = 0;
  bool summed = copied && plan.sums.sums.size() == plan.slots.size();
  for (size_t j = 0; j < plan.slots.size(); j++) {
    int32_t slot = plan.slots[j];
    if (!copied) {
      uint64_t page = index.Unassign(slot, l.shard);
      index.Unpin(slot);
      std::string why;
      alloc.Free(page, l.page_bytes, &why);
      continue;
    }
    if (summed) index.SetChecksum(slot, l.shard, plan.sums.sums[j]);
    if (index.MarkShardWritten(slot, l.shard)) {
      sealed++;
      sealed_hashes->append(reinterpret_cast<const char*>(packed) + size_t{plan.positions[j]} * hash_len, hash_len);
    }
    index.Unpin(slot);
  }
  return sealed;
}

std::string PlanLoad(BlockIndex& index, const InstanceLayout& l, const int32_t* slots, const uint32_t* block_ids,
                     uint32_t count, std::vector<CopyRange>* descs) {
  std::string bad = BadBlockId(l, block_ids, count);
  if (!bad.empty()) return bad;
  Lock lock(index.mu());
  for (uint32_t i = 0; i < count; i++) {
    if (!index.IsLive(slots[i]) || !index.IsSealed(slots[i]) || index.Pins(slots[i]) <= 0 ||
        index.Shards(slots[i]) <= l.shard) {
      return "slots[" + std::to_string(i) + "]: not a pinned block of this lease";
    }
  }
  descs->reserve(size_t{count} * l.segment_offsets.size());
  for (uint32_t i = 0; i < count; i++) {
    index.Pin(slots[i]);
    AddBlock(l, block_ids[i], index.Page(slots[i], l.shard), false, false, descs);
  }
  return std::string();
}

void FinishLoad(BlockIndex& index, const int32_t* slots, uint32_t count) {
  Lock lock(index.mu());
  for (uint32_t i = 0; i < count; i++) index.Unpin(slots[i]);
}

std::string DescsOutside(const std::vector<CopyRange>& descs, uint64_t src_bytes, uint64_t dst_bytes) {
  for (size_t i = 0; i < descs.size(); i++) {
    const CopyRange& d = descs[i];
    if (d.src > src_bytes || d.len > src_bytes - d.src || d.dst > dst_bytes || d.len > dst_bytes - d.dst)
      return "block " + std::to_string(i) + ": outside the region or the pool (the instance's geometry)";
  }
  return std::string();
}

}  // namespace kvf
