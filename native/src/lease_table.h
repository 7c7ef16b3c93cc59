// Leases in native memory: the pin a Query hands to the Loads that consume it, shared by the gRPC path (through
// the JavaScript binding, lease_table_js.cc) and the engines' command rings (a native thread). A lease belongs to
// one engine (its TP group, a number the node assigns), pins its blocks' index slots while it lives, is consumed
// once per TP rank, expires after the TTL, and can be released early. Recently ended leases leave a tombstone so a
// late Load gets LEASE_EXPIRED / LEASE_CONSUMED instead of LEASE_UNKNOWN. Thread-safe: one mutex of its own; pins
// and unpins take the index lock (never held while this table's lock is taken).
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "block_index.h"

namespace kvf {

class LeaseTable {
 public:
  static constexpr uint32_t kIdBytes = 16;  // base64url of 12 random bytes
  static constexpr uint32_t kTombstones = 16384;
  // Why a call on a lease failed; the message names the lease.
  enum class Status : uint8_t { kOk, kUnknown, kExpired, kConsumed, kForeign, kInvalid };
  struct Counters {
    uint64_t created = 0, consumed = 0, expired = 0, released = 0;
  };

  LeaseTable(BlockIndex& index, uint64_t ttl_ms);
  ~LeaseTable();  // ends every lease (unpins)

  // Pins slots[0, count) for `owner` and returns the new lease's id (kIdBytes characters); `*expires_at_ms` is now
  // + ttl. `ranks` is how many TP ranks must load before the lease is used up; `ns` its namespace id. Returns an
  // empty id (nothing pinned, no lease) when a slot is not a live slot of the index (evicted since it was looked up).
  std::string Create(uint32_t owner, uint32_t ns, const int32_t* slots, uint32_t count, uint32_t ranks,
                     uint64_t now_ms, uint64_t* expires_at_ms);

  // Create for the prefix hit of a query: the leading sealed blocks of `ns` among `count` hashes of `hash_len` bytes
  // back to back in `packed` are looked up (BlockIndex::Prefix) and pinned under one index lock, so no block can be
  // evicted, and its slot reused, between the lookup and the pin. `*hits` says how many; 0: no lease (empty id).
  std::string CreateForPrefix(uint32_t owner, uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count,
                              uint32_t ranks, uint64_t now_ms, uint64_t* expires_at_ms, uint32_t* hits);

  // Consumes the lease for `rank`: checks it lives (kUnknown / kExpired / kConsumed), belongs to `owner` and `ns`
  // and has `rank` (kForeign), and that `count` does not exceed its blocks (kInvalid); then copies its first
  // `count` slots to `*slots_out` and pins them once more (the load's own pin, which the caller drops with
  // index.Unpin after its copy). The lease ends (its pins go) when its last rank consumed. On failure nothing changes.
  Status Consume(const char* id, uint32_t id_len, uint32_t owner, uint32_t ns, uint32_t rank, uint32_t count,
                 uint64_t now_ms, std::vector<int32_t>* slots_out, std::string* message);

  // Ends a live lease of `owner` early (kUnknown / kExpired / kForeign otherwise).
  Status Release(const char* id, uint32_t id_len, uint32_t owner, uint64_t now_ms, std::string* message);

  uint32_t Sweep(uint64_t now_ms);      // ends expired leases; returns how many
  uint32_t DropOwner(uint32_t owner);   // ends every lease of an engine that is gone; returns how many
  void Clear();                         // ends every lease (shutdown)
  uint32_t Size() const;
  uint64_t ttl_ms() const { return ttl_ms_; }
  Counters GetCounters() const;

 private:
  enum class Ended : uint8_t { kExpired, kConsumed, kReleased };
  struct Lease {
    uint32_t owner, ns, ranks, consumed_count;
    uint64_t expires_at_ms;
    std::vector<int32_t> slots;
    std::vector<uint8_t> consumed;  // per rank
    uint32_t loading;               // consumers whose load pin is not taken yet (see lease_table.cc)
  };
  void EndLocked(std::unordered_map<std::string, Lease>::iterator it, Ended why,
                 std::vector<int32_t>* unpin);  // caller unpins after dropping mu_
  Status Missing(const std::string& id, std::string* message) const;
  std::string Insert(Lease lease);  // makes a lease whose slots are pinned live; returns its id
  void Loaded(const std::string& id);  // a consumer's load pin is in place; drops a drained lease's pins
  void UnpinAll(const std::vector<int32_t>& slots);  // takes the index lock; mu_ must not be held

  BlockIndex& index_;
  const uint64_t ttl_ms_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Lease> live_;
  std::unordered_map<std::string, Lease> draining_;  // ended while a consumer's pin was in flight
  std::unordered_map<std::string, Ended> ended_;
  std::deque<std::string> ended_order_;
  Counters counters_;
};

}  // namespace kvf
