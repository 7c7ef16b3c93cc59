// A remote pull's local per-block work: see pull_ops.h.
#include "pull_ops.h"

#include <algorithm>
#include <mutex>

namespace kvf {

namespace {

using Lock = std::lock_guard<std::mutex>;

// "" when the slots are distinct, pinned, unsealed blocks with all of their pages assigned; else which slot is not.
// Index lock held.
std::string NotPulled(const BlockIndex& index, const int32_t* slots, uint32_t count) {
  std::vector<int32_t> sorted(slots, slots + count);
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return "slots: a slot is named twice";
  for (uint32_t i = 0; i < count; i++) {
    int32_t slot = slots[i];
    std::string at = "slots[" + std::to_string(i) + "]: ";
    if (!index.IsLive(slot)) return at + "not a live slot";
    if (index.IsSealed(slot) || index.Pins(slot) <= 0) return at + "not a pinned, unsealed block being pulled";
    for (uint32_t s = 0; s < index.Shards(slot); s++) {
      if (index.Page(slot, s) == BlockIndex::kNoPage) return at + "shard " + std::to_string(s) + " has no page";
    }
  }
  return std::string();
}

}  // namespace

void SetUpPulled(BlockIndex& index, PageAllocator& alloc, uint32_t ns, uint32_t shards, uint64_t page_bytes,
                 const uint8_t* packed, uint32_t hash_len, uint32_t count, PulledChunk* out) {
  Lock lock(index.mu());
  std::vector<uint64_t> pages;
  uint32_t got = AllocateEvicting(index, alloc, page_bytes, count * shards, &pages, &out->evicted, &out->exhausted);
  uint32_t fit = got / shards, n = 0;
  out->slots.reserve(fit);
  for (; n < fit; n++) {
    const uint8_t* key = packed + static_cast<size_t>(n) * hash_len;
    if (index.Lookup(ns, key, hash_len) != BlockIndex::kNil) break;  // saved locally meanwhile
    int32_t slot = index.SlotForShard(ns, key, hash_len, shards, 0, page_bytes, BlockIndex::kPulled);
    index.Pin(slot);
    for (uint32_t s = 0; s < shards; s++) index.Assign(slot, s, pages[size_t{n} * shards + s]);
    out->slots.push_back(slot);
  }
  std::string why;
  for (size_t p = size_t{n} * shards; p < pages.size(); p++) alloc.Free(pages[p], page_bytes, &why);
  pages.resize(size_t{n} * shards);
  out->pages = std::move(pages);
}

std::string SealPulled(BlockIndex& index, const int32_t* slots, uint32_t count, const uint32_t* sums,
                       uint32_t sums_len, std::string* sealed_hashes, uint32_t* sealed) {
  Lock lock(index.mu());
  std::string bad = NotPulled(index, slots, count);
  if (!bad.empty()) return bad;
  uint64_t pages = 0;
  for (uint32_t i = 0; i < count; i++) pages += index.Shards(slots[i]);
  if (sums_len != 2 * pages) {
    return "checksums: expected " + std::to_string(2 * pages) + " (low, high) halves, one pair per page, got " +
           std::to_string(sums_len);
  }
  *sealed = 0;
  for (uint32_t i = 0, k = 0; i < count; i++) {
    int32_t slot = slots[i];
    bool whole = false;
    for (uint32_t s = 0; s < index.Shards(slot); s++, k += 2) {
      index.SetChecksum(slot, s, uint64_t{sums[k]} | uint64_t{sums[k + 1]} << 32);
      whole = index.MarkShardWritten(slot, s) || whole;
    }
    index.Unpin(slot);
    if (whole) {
      ++*sealed;
      sealed_hashes->append(reinterpret_cast<const char*>(index.Key(slot)), index.KeyLength(slot));
    }
  }
  return std::string();
}

std::string UndoPulled(BlockIndex& index, PageAllocator& alloc, const int32_t* slots, uint32_t count) {
  Lock lock(index.mu());
  std::string bad = NotPulled(index, slots, count);
  if (!bad.empty()) return bad;
  std::string why;
  for (uint32_t i = 0; i < count; i++) {
    int32_t slot = slots[i];
    uint64_t page_bytes = index.PageBytes(slot);
    for (uint32_t s = 0; s < index.Shards(slot); s++) alloc.Free(index.Unassign(slot, s), page_bytes, &why);
    index.Unpin(slot);
  }
  return std::string();
}

}  // namespace kvf
