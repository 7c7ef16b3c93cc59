// Single flight for remote pulls, per (namespace, block hash): the pull that claims a block fetches it, and every
// other fetch that needs it meanwhile waits for that pull's outcome instead of pulling the same bytes again. Claims
// are made and ended a run of hashes at a time (one call per run or chunk, nothing per block in JavaScript); a
// claim someone waits on is marked, so that its end is reported to the waiters (few: most claims are never waited
// on). Not thread-safe: its owner (the JavaScript binding) calls it from one thread.
#pragma once
#include <cstdint>
#include <vector>

#include "block_index.h"
#include "key_table.h"

namespace kvf {

class FlightTable {
 public:
  // Claims the hashes of `packed` (count of hash_len bytes) in order, stopping at the first that `index` holds
  // (sealed or not) or that is claimed already; returns how many were claimed. Takes the index lock.
  uint32_t ClaimRun(BlockIndex& index, uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count);
  // Whether (ns, key) is claimed; if so it is marked waited on (its end is reported by EndRun).
  bool Wait(uint32_t ns, const uint8_t* key, uint32_t len);
  // Ends the claims among the hashes of `packed` (the others are skipped); the positions of those that were waited
  // on are appended to `waited`.
  void EndRun(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count, std::vector<uint32_t>* waited);
  uint32_t size() const { return keys_.size(); }

 private:
  KeyTable keys_;
  std::vector<uint8_t> waited_;  // per claim id
};

}  // namespace kvf
