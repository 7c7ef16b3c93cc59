// The node's block index, in native memory: content-addressed per namespace, one slot per block. (namespace id,
// hash bytes) map to a slot through KeyTable; per-block fields live in arrays indexed by slot; a block's per-shard
// pages and checksums sit in one shared arena (2 words a shard), handed out by shard count; LRU order is two
// intrusive doubly linked lists (pulled copies, local copies) threaded through per-slot fields. No allocation per
// lookup, no object per block, nothing the garbage collector sees.
//
// A slot is in an LRU list exactly when it is unpinned; pinned slots (leases, grants, copies in flight) are never
// eviction candidates. Pages are pool offsets (kNoPage: none). Not thread-safe by itself: BlockIndex::mu() is the
// lock every user holds (the JS wrapper per call, native executors per batch).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "huge_page_allocator.h"
#include "key_table.h"

namespace kvf {

class BlockIndex {
 public:
  static constexpr int32_t kNil = -1;
  static constexpr uint64_t kNoPage = UINT64_MAX;
  static constexpr uint32_t kMaxShards = 64;
  enum Class : uint8_t { kLocal = 0, kPulled = 1 };
  struct Stats {
    uint64_t sealed, partial, pinned, page_bytes;
  };

  explicit BlockIndex(uint32_t expected = 1024);
  std::mutex& mu() { return mu_; }

  // Whether `slot` names a block (for argument checks at the JS boundary).
  bool IsLive(int32_t slot) const { return table_.IsLive(slot); }
  int32_t Lookup(uint32_t ns, const uint8_t* key, uint32_t len) const { return table_.Find(ns, key, len); }
  bool IsSealed(int32_t slot) const { return sealed_[slot] != 0; }
  // Number of leading hashes of `packed` (count hashes of hash_len bytes) that are sealed blocks of `ns`; their
  // slots go to out[0, n); each hit moves to the front of its LRU list.
  uint32_t Prefix(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count, int32_t* out);
  // The slot a write of `shard` of (ns, key) goes into: created (partial) when missing. kNil when nothing is to be
  // written (sealed already, or that shard's page is already assigned).
  int32_t SlotForShard(uint32_t ns, const uint8_t* key, uint32_t len, uint32_t shards, uint32_t shard,
                       uint64_t page_bytes, Class cls);
  // Reserves `shard` of `slot` for `page` (a copy about to run).
  void Assign(int32_t slot, uint32_t shard, uint64_t page);
  // Undoes Assign after a failed copy (the page's checksum goes with it); returns the page to free. Drops the slot
  // when it holds nothing.
  uint64_t Unassign(int32_t slot, uint32_t shard);
  // Marks a shard's page written; true when that sealed the block.
  bool MarkShardWritten(int32_t slot, uint32_t shard);
  uint64_t Page(int32_t slot, uint32_t shard) const { return data_[base_[slot] + 2 * shard]; }
  bool HasChecksum(int32_t slot, uint32_t shard) const { return (summed_[slot] >> shard) & 1; }
  uint64_t Checksum(int32_t slot, uint32_t shard) const { return data_[base_[slot] + 2 * shard + 1]; }
  void SetChecksum(int32_t slot, uint32_t shard, uint64_t sum);
  uint32_t Shards(int32_t slot) const { return shards_[slot]; }
  uint32_t Ns(int32_t slot) const { return table_.Tag(slot); }
  const uint8_t* Key(int32_t slot) const { return table_.Key(slot); }
  uint32_t KeyLength(int32_t slot) const { return table_.KeyLength(slot); }
  uint64_t PageBytes(int32_t slot) const { return page_bytes_[slot]; }
  int32_t Pins(int32_t slot) const { return pins_[slot]; }
  void Pin(int32_t slot);
  // False (nothing changes) when the slot is not pinned. `cold`: back at the end eviction takes first, not at the
  // front (the SSD tier's writer unpins the blocks it just put on SSD this way: cold blocks stay cold).
  bool Unpin(int32_t slot, bool cold = false);
  // The next eviction victim (least recently used; pulled copies first), or kNil when everything is pinned.
  int32_t Victim() const { return tails_[kPulled] != kNil ? tails_[kPulled] : tails_[kLocal]; }
  // Up to `max` unpinned blocks in the order eviction would take them (the SSD tier writes these ahead of it).
  uint32_t Coldest(uint32_t max, int32_t* out) const;
  // Removes an unpinned slot; its assigned pages go to `pages_out` (room for Shards(slot)); returns their count.
  uint32_t Evict(int32_t slot, uint64_t* pages_out);
  Stats GetStats() const { return counts_; }
  uint32_t IdBound() const { return table_.IdBound(); }

 private:
  void Grow(uint32_t slots);
  uint32_t AllocData(uint32_t shards);
  void FreeData(uint32_t shards, uint32_t base);
  bool AnyAssigned(int32_t slot) const;
  void Drop(int32_t slot);
  void PushFront(int32_t slot, uint8_t list);
  void PushBack(int32_t slot, uint8_t list);
  void Remove(int32_t slot);
  void Touch(int32_t slot);

  std::mutex mu_;
  KeyTable table_;
  // Per slot.
  HugeVector<uint16_t> shards_;
  HugeVector<uint64_t> landed_;  // bit s: shard s written
  HugeVector<uint64_t> summed_;  // bit s: shard s's checksum known
  HugeVector<uint8_t> class_;
  HugeVector<uint8_t> sealed_;
  HugeVector<int32_t> pins_;
  HugeVector<uint64_t> page_bytes_;
  HugeVector<uint32_t> base_;  // the slot's [page, checksum] pairs start at data_[base_]
  HugeVector<int32_t> prev_, next_;
  HugeVector<int8_t> list_;  // -1: in no list
  // Per shard of every block: [page, checksum]; free runs kept per shard count.
  HugeVector<uint64_t> data_;
  std::vector<std::vector<uint32_t>> free_data_;
  int32_t heads_[2] = {kNil, kNil};
  int32_t tails_[2] = {kNil, kNil};
  Stats counts_{0, 0, 0, 0};
};

}  // namespace kvf
