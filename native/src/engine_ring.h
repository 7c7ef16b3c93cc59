// The node's side of an engine's command ring (command_ring.h): a native thread that takes the engine's commands
// off the submission queue, runs them against the node's block index, leases, pool and copy engine (the same
// planning functions as the gRPC path: engine_ops.h, lease_table.h), and posts each result when its copy is done,
// from the copy thread that finished it. The node's JavaScript sees none of this per call: what it must learn
// (blocks sealed, for the metaserver; evictions; counts) is gathered into RingEvents and announced once until taken.
// No napi here: the JavaScript binding is engine_ring_js.cc.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "block_index.h"
#include "copy_engine.h"
#include "engine_ops.h"
#include "lease_table.h"
#include "memory.h"
#include "pool.h"

namespace kvf {

// What one ring works on: the instance it is attached to, and the node's shared parts (kept alive by the binding).
struct RingTarget {
  CopyEngine* engine = nullptr;
  BlockIndex* index = nullptr;
  std::shared_ptr<PageAllocator> alloc;
  MemoryRef pool, region;
  int event_fd = -1;  // the engine's eventfd (the ring owns this duplicate and closes it)
  const InstanceLayout* layout = nullptr;
  LeaseTable* leases = nullptr;
  uint32_t owner = 0;  // the engine's number: owner of its leases
  uint32_t rank = 0;   // this instance's TP rank (what its loads consume)
  uint32_t ranks = 1;  // the engine's TP size (how many ranks a lease waits for)
  // A query's missing suffix may be fetched (SSD, peers): such queries are answered RETRY (they go over gRPC).
  bool fetchable = false;
};

// What the node's JavaScript learns from a ring, in batches.
struct RingEvents {
  std::map<uint32_t, std::string> sealed;  // hash length -> hashes of blocks that sealed, back to back
  EvictedBlocks evicted;
  uint32_t exhausted = 0;  // saves that found the pool full of pinned blocks
  uint64_t save_calls = 0, saved_blocks = 0, sealed_blocks = 0, present_blocks = 0, no_space_blocks = 0;
  uint64_t load_calls = 0, loaded_blocks = 0, queries = 0, query_hashes = 0, query_hits = 0, retries = 0;
  uint64_t region_failures = 0, errors = 0;
  struct Problem {
    std::string op;  // "save" or "load" (its copy failed on the engine's region), "ring" (a protocol violation)
    std::string message;
  };
  std::vector<Problem> problems;  // what deserves a log line
  bool broken = false;                // the engine broke the protocol: the ring stopped taking commands
};

class EngineRing {
 public:
  // Checks a mapped ring's header; "" or what is wrong, naming the field. Sets its geometry on success.
  static std::string Check(const Mapping& ring, uint32_t* entries, uint32_t* slot_bytes);

  // Starts the ring's thread. `announce` is called from native threads when events wait and none were announced
  // since the last TakeEvents.
  EngineRing(RingTarget target, MemoryRef ring, uint32_t entries, uint32_t slot_bytes,
             std::function<void()> announce);
  ~EngineRing();
  EngineRing(const EngineRing&) = delete;
  EngineRing& operator=(const EngineRing&) = delete;

  // Stops taking commands and waits until those in flight completed; idempotent.
  void Stop();
  RingEvents TakeEvents();

 private:
  struct Command;  // one command copied out of shared memory (engine_ring.cc)
  void Run();
  void Execute(uint32_t index);
  void Save(Command& cmd);
  void Load(Command& cmd);
  void Query(Command& cmd);
  void Release(Command& cmd);
  // Answers the command with an error; `op` ("save", "load") also logs it as a failure on the engine's region.
  void Fail(uint32_t index, const char* code, const std::string& message, const char* op = nullptr);
  void Complete(uint32_t index);  // publishes the slot's result on the CQ, wakes a sleeping engine
  // Watches the SQ for a short while after a completion; true when a command arrived.
  bool PollSq(uint32_t head);
  void Break(const std::string& why);
  template <typename F>
  void Note(F&& update);  // updates the pending events under their lock; announces them (MaybeAnnounce)
  // Announces pending events unless announced already or the last announcement was under the gap ago (a protocol
  // violation goes out at once); returns how long the ring thread may sleep before it should look again.
  int MaybeAnnounce();

  uint8_t* Slot(uint32_t index) const;
  uint32_t* Word(uint32_t offset) const { return reinterpret_cast<uint32_t*>(ring_->base() + offset); }

  RingTarget t_;
  MemoryRef ring_;
  const uint32_t entries_, slot_bytes_;
  std::function<void()> announce_;
  std::vector<std::atomic<uint8_t>> busy_;  // per command slot: submitted and not yet completed

  std::mutex cq_mu_;
  uint32_t cq_tail_ = 0;

  std::mutex events_mu_;
  RingEvents events_;
  bool pending_ = false;    // events_ holds something JavaScript has not taken
  bool announced_ = false;  // JavaScript was told and has not taken them yet
  int64_t last_announce_ms_ = 0;

  std::mutex flight_mu_;
  std::condition_variable flight_cv_;
  uint32_t in_flight_ = 0;

  std::atomic<bool> stop_{false};
  std::atomic<bool> poll_{false};  // a completion was posted: the ring thread polls before it sleeps
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace kvf
