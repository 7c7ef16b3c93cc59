// BlockIndex: see block_index.h.
#include "block_index.h"

#include <algorithm>

namespace kvf {

BlockIndex::BlockIndex(uint32_t expected) : table_(expected), free_data_(kMaxShards + 1) { Grow(expected); }

void BlockIndex::Grow(uint32_t slots) {
  if (slots <= shards_.size()) return;
  shards_.resize(slots, 0);
  landed_.resize(slots, 0);
  summed_.resize(slots, 0);
  class_.resize(slots, 0);
  sealed_.resize(slots, 0);
  pins_.resize(slots, 0);
  page_bytes_.resize(slots, 0);
  base_.resize(slots, 0);
  prev_.resize(slots, kNil);
  next_.resize(slots, kNil);
  list_.resize(slots, -1);
}

uint32_t BlockIndex::AllocData(uint32_t shards) {
  std::vector<uint32_t>& free = free_data_[shards];
  uint32_t base;
  if (!free.empty()) {
    base = free.back();
    free.pop_back();
  } else {
    base = static_cast<uint32_t>(data_.size());
    data_.resize(data_.size() + 2 * shards);
  }
  for (uint32_t s = 0; s < shards; s++) {
    data_[base + 2 * s] = kNoPage;
    data_[base + 2 * s + 1] = 0;
  }
  return base;
}

void BlockIndex::FreeData(uint32_t shards, uint32_t base) { free_data_[shards].push_back(base); }

uint32_t BlockIndex::Prefix(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count, int32_t* out) {
  uint32_t found = table_.FindRun(ns, packed, hash_len, count, out);
  // The hits are far apart in the per-slot arrays once eviction has churned the index: fetch what the seal check
  // and the LRU moves read for all of them at once, then the list neighbours those moves rewrite.
  for (uint32_t i = 0; i < found; i++) {
    __builtin_prefetch(&sealed_[out[i]]);
    __builtin_prefetch(&list_[out[i]]);
    __builtin_prefetch(&prev_[out[i]]);
    __builtin_prefetch(&next_[out[i]]);
  }
  for (uint32_t i = 0; i < found; i++) {
    if (prev_[out[i]] != kNil) __builtin_prefetch(&next_[prev_[out[i]]], 1);
    if (next_[out[i]] != kNil) __builtin_prefetch(&prev_[next_[out[i]]], 1);
  }
  uint32_t n = 0;
  while (n < found && sealed_[out[n]]) n++;
  for (uint32_t i = 0; i < n; i++) Touch(out[i]);
  return n;
}

int32_t BlockIndex::SlotForShard(uint32_t ns, const uint8_t* key, uint32_t len, uint32_t shards, uint32_t shard,
                                 uint64_t page_bytes, Class cls) {
  int32_t existing = table_.Find(ns, key, len);
  if (existing != kNil) {
    if (sealed_[existing]) return kNil;
    return Page(existing, shard) == kNoPage ? existing : kNil;
  }
  int32_t slot = table_.Add(ns, key, len);
  if (static_cast<uint32_t>(slot) >= shards_.size()) Grow(std::max<uint32_t>(slot + 1, shards_.size() * 2));
  shards_[slot] = static_cast<uint16_t>(shards);
  landed_[slot] = 0;
  summed_[slot] = 0;
  class_[slot] = cls;
  sealed_[slot] = 0;
  pins_[slot] = 0;
  page_bytes_[slot] = page_bytes;
  base_[slot] = AllocData(shards);
  counts_.partial++;
  PushFront(slot, cls);
  return slot;
}

void BlockIndex::Assign(int32_t slot, uint32_t shard, uint64_t page) {
  data_[base_[slot] + 2 * shard] = page;
  counts_.page_bytes += page_bytes_[slot];
}

uint64_t BlockIndex::Unassign(int32_t slot, uint32_t shard) {
  uint64_t page = data_[base_[slot] + 2 * shard];
  data_[base_[slot] + 2 * shard] = kNoPage;
  summed_[slot] &= ~(uint64_t{1} << shard);  // the checksum was the page's
  counts_.page_bytes -= page_bytes_[slot];
  if (landed_[slot] == 0 && !AnyAssigned(slot) && pins_[slot] == 0) Drop(slot);
  return page;
}

bool BlockIndex::MarkShardWritten(int32_t slot, uint32_t shard) {
  uint64_t bit = uint64_t{1} << shard;
  if (landed_[slot] & bit) return false;
  landed_[slot] |= bit;
  if (static_cast<uint32_t>(__builtin_popcountll(landed_[slot])) == shards_[slot] && !sealed_[slot]) {
    sealed_[slot] = 1;
    counts_.partial--;
    counts_.sealed++;
    return true;
  }
  return false;
}

void BlockIndex::SetChecksum(int32_t slot, uint32_t shard, uint64_t sum) {
  data_[base_[slot] + 2 * shard + 1] = sum;
  summed_[slot] |= uint64_t{1} << shard;
}

void BlockIndex::Pin(int32_t slot) {
  if (pins_[slot]++ == 0) {
    Remove(slot);
    counts_.pinned++;
  }
}

bool BlockIndex::Unpin(int32_t slot, bool cold) {
  if (pins_[slot] <= 0) return false;
  if (--pins_[slot] == 0) {
    counts_.pinned--;
    if (landed_[slot] == 0 && !AnyAssigned(slot)) {
      Drop(slot);
    } else if (cold) {
      PushBack(slot, class_[slot]);
    } else {
      PushFront(slot, class_[slot]);
    }
  }
  return true;
}

uint32_t BlockIndex::Coldest(uint32_t max, int32_t* out) const {
  uint32_t n = 0;
  for (int list : {kPulled, kLocal})
    for (int32_t s = tails_[list]; s != kNil && n < max; s = prev_[s]) out[n++] = s;
  return n;
}

uint32_t BlockIndex::Evict(int32_t slot, uint64_t* pages_out) {
  uint32_t n = 0;
  for (uint32_t s = 0; s < shards_[slot]; s++) {
    uint64_t page = Page(slot, s);
    if (page != kNoPage) pages_out[n++] = page;
  }
  counts_.page_bytes -= n * page_bytes_[slot];
  Drop(slot);
  return n;
}

bool BlockIndex::AnyAssigned(int32_t slot) const {
  for (uint32_t s = 0; s < shards_[slot]; s++)
    if (Page(slot, s) != kNoPage) return true;
  return false;
}

void BlockIndex::Drop(int32_t slot) {
  Remove(slot);
  if (sealed_[slot]) {
    counts_.sealed--;
  } else {
    counts_.partial--;
  }
  FreeData(shards_[slot], base_[slot]);
  table_.Remove(slot);
  sealed_[slot] = 0;
  landed_[slot] = 0;
  summed_[slot] = 0;
}

void BlockIndex::PushBack(int32_t slot, uint8_t list) {
  int32_t tail = tails_[list];
  next_[slot] = kNil;
  prev_[slot] = tail;
  list_[slot] = static_cast<int8_t>(list);
  if (tail != kNil) {
    next_[tail] = slot;
  } else {
    heads_[list] = slot;
  }
  tails_[list] = slot;
}

void BlockIndex::PushFront(int32_t slot, uint8_t list) {
  int32_t head = heads_[list];
  prev_[slot] = kNil;
  next_[slot] = head;
  list_[slot] = static_cast<int8_t>(list);
  if (head != kNil) {
    prev_[head] = slot;
  } else {
    tails_[list] = slot;
  }
  heads_[list] = slot;
}

void BlockIndex::Remove(int32_t slot) {
  int8_t list = list_[slot];
  if (list < 0) return;
  int32_t p = prev_[slot], n = next_[slot];
  if (p != kNil) {
    next_[p] = n;
  } else {
    heads_[list] = n;
  }
  if (n != kNil) {
    prev_[n] = p;
  } else {
    tails_[list] = p;
  }
  prev_[slot] = next_[slot] = kNil;
  list_[slot] = -1;
}

void BlockIndex::Touch(int32_t slot) {
  int8_t list = list_[slot];
  if (list < 0 || heads_[list] == slot) return;
  Remove(slot);
  PushFront(slot, static_cast<uint8_t>(list));
}

}  // namespace kvf
