// The block updates a node's reporter has noted and not yet sent to the metaserver, netted per (namespace, hash),
// in native memory: one KeyTable entry per pending hash and a byte or two beside it, nothing on the V8 heap, so
// noting a chunk's sealed hashes or an eviction's victims is one call whatever the count.
//
// An update is an INSERT (a block new to the node, never announced), a MOVE (a block the metaserver may already
// know, now held in another tier) or a REMOVE; inserts and moves carry the tier the block is held in, the last one
// noted wins. Netting: INSERT then REMOVE cancel (the metaserver never heard of it); MOVE then REMOVE leaves the
// REMOVE (it may hold it); REMOVE then INSERT/MOVE becomes a MOVE (it may hold it, with an older tier). Not
// thread-safe: its owner (the JavaScript binding) calls it from one thread.
#pragma once
#include <cstdint>
#include <vector>

#include "key_table.h"

namespace kvf {

class PendingUpdates {
 public:
  static constexpr int8_t kRemove = -1, kInsert = 1, kMove = 2;

  // What Note did with each hash, counted.
  struct Counts {
    uint32_t added = 0, repeated = 0, replaced = 0, netted = 0, dropped = 0;
  };
  // The pending updates of one (namespace, kind, tier, hash length), packed: inserts and moves both go out as
  // inserts (with their tier), removes as removes.
  struct Group {
    uint32_t ns;
    bool remove;
    uint8_t tier;
    uint32_t hash_len;
    std::vector<uint8_t> packed;
  };

  // `max`: updates held at most; beyond it new hashes are dropped (counted).
  explicit PendingUpdates(uint32_t max) : max_(max) {}

  // Notes `update` (kInsert, kMove or kRemove; `tier` for the first two) of `count` hashes of `hash_len` bytes
  // back to back at `packed`, in namespace `ns`. Arguments are checked by the caller.
  void Note(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count, int8_t update, uint8_t tier,
            Counts* counts);
  // Every pending update, grouped, and none left pending.
  std::vector<Group> Take();
  uint32_t size() const { return keys_.size(); }

 private:
  void NoteOne(uint32_t ns, const uint8_t* hash, uint32_t len, int8_t update, uint8_t tier, Counts* counts);

  const uint32_t max_;
  KeyTable keys_;
  std::vector<int8_t> updates_;  // per entry id
  std::vector<uint8_t> tiers_;   // per entry id (0 for removes)
};

}  // namespace kvf
