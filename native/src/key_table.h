// An open-addressing hash table from (tag, byte key) to a dense entry id: the node's block index keys it by
// (namespace id, block hash). Linear probing, backward-shift deletion (no tombstones), power-of-two slots kept at
// most 70 % full. A slot is [32-bit hash, id + 1] (0 marks an empty slot), so a probe reads one cache line and
// growth and deletion never re-hash a key. Keys live in one arena indexed by entry id, kMaxKeyBytes apart. Not
// thread-safe: the block index that owns it serialises access.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "huge_page_allocator.h"

namespace kvf {

class KeyTable {
 public:
  static constexpr uint32_t kMaxKeyBytes = 64;  // MAX_HASH_BYTES in @kvfabric/common
  static constexpr int32_t kNone = -1;

  explicit KeyTable(uint32_t expected = 0);

  // The id of (tag, key[0, len)), or kNone.
  int32_t Find(uint32_t tag, const uint8_t* key, uint32_t len) const;
  // Looks up `count` consecutive keys of `len` bytes at `keys`: the ids of the leading keys present go to out[0, n)
  // and n is returned (the first absent key ends the run). Keys go in groups through three passes: hash each and
  // prefetch its home slot; read the home slots and prefetch the entries they name; compare. The cache misses of
  // a group overlap instead of following one another.
  uint32_t FindRun(uint32_t tag, const uint8_t* keys, uint32_t len, uint32_t count, int32_t* out) const;
  // Adds a key that is absent (1 <= len <= kMaxKeyBytes); returns its new id.
  int32_t Add(uint32_t tag, const uint8_t* key, uint32_t len);
  void Remove(int32_t id);

  bool IsLive(int32_t id) const { return id >= 0 && static_cast<uint32_t>(id) < issued_ && meta_[id].len != 0; }
  uint32_t Tag(int32_t id) const { return meta_[id].tag; }
  uint32_t KeyLength(int32_t id) const { return meta_[id].len; }
  const uint8_t* Key(int32_t id) const { return &keys_[static_cast<size_t>(id) * kMaxKeyBytes]; }
  // Ids are below this bound (for scans).
  uint32_t IdBound() const { return issued_; }
  uint32_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t hash;
    int32_t id_plus1;  // 0: empty
  };
  // An entry's tag and key length side by side: one cache line read checks both.
  struct Meta {
    uint32_t tag;
    uint8_t len;  // 0: id free
  };
  static uint32_t Hash(uint32_t tag, const uint8_t* key, uint32_t len);
  bool Matches(const Slot& s, uint32_t h, uint32_t tag, const uint8_t* key, uint32_t len) const;
  void Grow();

  HugeVector<Slot> slots_;
  uint32_t mask_ = 0;
  uint32_t size_ = 0;
  HugeVector<uint8_t> keys_;
  HugeVector<Meta> meta_;
  std::vector<int32_t> free_ids_;
  uint32_t issued_ = 0;
};

}  // namespace kvf
