// KeyTable: see key_table.h.
#include "key_table.h"

#include <xxhash.h>

#include <cstring>

namespace kvf {

namespace {
constexpr uint32_t kMinSlots = 16;
// Load factor 0.7 as a ratio of integers.
inline bool Overfull(uint32_t size, uint32_t slots) { return static_cast<uint64_t>(size) * 10 > uint64_t{slots} * 7; }
}  // namespace

KeyTable::KeyTable(uint32_t expected) {
  uint32_t n = kMinSlots;
  while (Overfull(expected, n)) n *= 2;
  slots_.assign(n, Slot{0, 0});
  mask_ = n - 1;
}

uint32_t KeyTable::Hash(uint32_t tag, const uint8_t* key, uint32_t len) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(key, len, 0x9E3779B97F4A7C15ull ^ tag));
}

bool KeyTable::Matches(const Slot& s, uint32_t h, uint32_t tag, const uint8_t* key, uint32_t len) const {
  if (s.hash != h) return false;
  int32_t id = s.id_plus1 - 1;
  return meta_[id].tag == tag && meta_[id].len == len && std::memcmp(Key(id), key, len) == 0;
}

int32_t KeyTable::Find(uint32_t tag, const uint8_t* key, uint32_t len) const {
  if (len == 0 || len > kMaxKeyBytes) return kNone;
  uint32_t h = Hash(tag, key, len);
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id_plus1 == 0) return kNone;
    if (Matches(s, h, tag, key, len)) return s.id_plus1 - 1;
  }
}

uint32_t KeyTable::FindRun(uint32_t tag, const uint8_t* keys, uint32_t len, uint32_t count, int32_t* out) const {
  if (len == 0 || len > kMaxKeyBytes) return 0;
  constexpr uint32_t kGroup = 32;
  uint32_t hashes[kGroup];
  for (uint32_t base = 0; base < count; base += kGroup) {
    uint32_t n = count - base < kGroup ? count - base : kGroup;
    const uint8_t* group = keys + static_cast<size_t>(base) * len;
    // Pass 1: hash every key of the group and prefetch its home slot.
    for (uint32_t k = 0; k < n; k++) {
      hashes[k] = Hash(tag, group + static_cast<size_t>(k) * len, len);
      __builtin_prefetch(&slots_[hashes[k] & mask_]);
    }
    // Pass 2: the home slots have arrived; prefetch the entry each names when its hash matches (the usual case).
    for (uint32_t k = 0; k < n; k++) {
      const Slot& s = slots_[hashes[k] & mask_];
      if (s.id_plus1 == 0 || s.hash != hashes[k]) continue;
      __builtin_prefetch(&meta_[s.id_plus1 - 1]);
      __builtin_prefetch(Key(s.id_plus1 - 1));
    }
    // Pass 3: compare, probing on past the home slot where needed.
    for (uint32_t k = 0; k < n; k++) {
      const uint8_t* key = group + static_cast<size_t>(k) * len;
      int32_t id = kNone;
      for (uint32_t i = hashes[k] & mask_;; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.id_plus1 == 0) break;
        if (Matches(s, hashes[k], tag, key, len)) {
          id = s.id_plus1 - 1;
          break;
        }
      }
      if (id == kNone) return base + k;
      out[base + k] = id;
    }
  }
  return count;
}

int32_t KeyTable::Add(uint32_t tag, const uint8_t* key, uint32_t len) {
  if (Overfull(size_ + 1, static_cast<uint32_t>(slots_.size()))) Grow();
  int32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<int32_t>(issued_++);
    keys_.resize(static_cast<size_t>(issued_) * kMaxKeyBytes);
    meta_.resize(issued_);
  }
  std::memcpy(&keys_[static_cast<size_t>(id) * kMaxKeyBytes], key, len);
  meta_[id] = Meta{tag, static_cast<uint8_t>(len)};
  uint32_t h = Hash(tag, key, len);
  uint32_t i = h & mask_;
  while (slots_[i].id_plus1 != 0) i = (i + 1) & mask_;
  slots_[i] = Slot{h, id + 1};
  size_++;
  return id;
}

void KeyTable::Remove(int32_t id) {
  uint32_t h = Hash(meta_[id].tag, Key(id), meta_[id].len);
  uint32_t i = h & mask_;
  while (slots_[i].id_plus1 != id + 1) i = (i + 1) & mask_;
  // Backward-shift deletion: pull later entries of the run back over the hole when their home allows it.
  for (uint32_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
    const Slot& s = slots_[j];
    if (s.id_plus1 == 0) break;
    uint32_t home = s.hash & mask_;
    // s may move to i when its home is not in (i, j] (cyclically).
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    slots_[i] = s;
    i = j;
  }
  slots_[i] = Slot{0, 0};
  meta_[id].len = 0;
  free_ids_.push_back(id);
  size_--;
}

void KeyTable::Grow() {
  HugeVector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, Slot{0, 0});
  mask_ = static_cast<uint32_t>(slots_.size()) - 1;
  for (const Slot& s : old) {
    if (s.id_plus1 == 0) continue;
    uint32_t i = s.hash & mask_;
    while (slots_[i].id_plus1 != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace kvf
