// Single-flight claims of remote pulls: see flight_table.h.
#include "flight_table.h"

#include <algorithm>
#include <mutex>

namespace kvf {

uint32_t FlightTable::ClaimRun(BlockIndex& index, uint32_t ns, const uint8_t* packed, uint32_t hash_len,
                               uint32_t count) {
  std::lock_guard<std::mutex> lock(index.mu());
  uint32_t n = 0;
  for (; n < count; n++) {
    const uint8_t* key = packed + static_cast<size_t>(n) * hash_len;
    if (index.Lookup(ns, key, hash_len) != BlockIndex::kNil || keys_.Find(ns, key, hash_len) != KeyTable::kNone) break;
    size_t id = static_cast<size_t>(keys_.Add(ns, key, hash_len));
    if (id >= waited_.size()) waited_.resize(std::max<size_t>(64, 2 * (id + 1)));
    waited_[id] = 0;
  }
  return n;
}

bool FlightTable::Wait(uint32_t ns, const uint8_t* key, uint32_t len) {
  int32_t id = keys_.Find(ns, key, len);
  if (id == KeyTable::kNone) return false;
  waited_[id] = 1;
  return true;
}

void FlightTable::EndRun(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count,
                         std::vector<uint32_t>* waited) {
  for (uint32_t i = 0; i < count; i++) {
    int32_t id = keys_.Find(ns, packed + static_cast<size_t>(i) * hash_len, hash_len);
    if (id == KeyTable::kNone) continue;
    if (waited_[id]) waited->push_back(i);
    keys_.Remove(id);
  }
}

}  // namespace kvf
