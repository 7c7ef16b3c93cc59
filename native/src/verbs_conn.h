// The verbs transport's shared state: connections (one per peer and direction), their queue pairs, readv batches
// and grants with their memory windows. Who touches what:
//   - the JS thread creates connections and grants and submits work; it never posts to a QP;
//   - each QP belongs to the worker of its NIC (verbs_worker.cc), which alone posts to it and polls its CQ;
//   - batches and grants span NICs: their counters are atomic, and whoever takes one to zero settles it.
#pragma once
#include <infiniband/verbs.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport.h"
#include "verbs_nic.h"

namespace kvf {

int64_t VerbsNowMs();

// One readv call. Settled (posted to the Completer) by whoever drops `outstanding` to zero; until then every READ
// of it has completed or flushed, so no byte lands in its pages after it settles.
struct Batch {
  uint64_t op = 0;
  int64_t deadline_ms = 0;
  std::atomic<int64_t> outstanding{1};  // READs not yet completed + 1 held by the submitter
  std::atomic<uint64_t> bytes{0};
  std::mutex mu;
  const char* code = nullptr;  // first failure wins
  std::string msg;

  void Fail(const char* c, const std::string& m) {
    std::lock_guard<std::mutex> g(mu);
    if (!code) code = c, msg = m;
  }
};

struct Grant;

enum class WrKind : uint8_t { kRead, kBind, kInvalidate };

// One work request waiting for, or occupying, a slot in a QP's send queue.
struct Wr {
  WrKind kind = WrKind::kRead;
  Batch* batch = nullptr;               // kRead
  std::shared_ptr<Grant> grant;         // kBind, kInvalidate
  uint32_t window = 0;                  // kBind, kInvalidate: index into grant->windows
  uint64_t local = 0, remote = 0;       // kRead: addresses in the local / remote MR address space
  uint32_t lkey = 0, rkey = 0, length = 0;
  uint16_t seq = 0;  // position in the QP's send queue order (mod 2^16), carried in wr_id
};

struct Conn;

struct Qp {
  ibv_qp* qp = nullptr;
  Nic* nic = nullptr;
  Conn* conn = nullptr;
  uint32_t index = 0;  // position in conn->qps (the reader's QP i talks to the server's QP i)
  uint32_t psn = 0;
  // worker-owned:
  std::deque<Wr> pending;  // waiting for room
  std::deque<Wr> posted;   // in the send queue, in order (RC completes in order)
  uint32_t reads_posted = 0;  // READs in `posted`
  uint16_t next_seq = 0;      // `seq` of the next WR posted
  bool errored = false;    // moved to ERR by this worker
};

// A send WR's wr_id: its QP (a heap pointer, below 2^48 in x86-64 and arm64 user space; checked when the QP is
// made) and its 16-bit `seq`. Only some READs ask for a completion (VerbsWorker::PostAll); since RC completes a
// send queue in order, a completion of WR `seq` also completes every earlier WR of its QP, and an error one names
// the WR that failed. A QP holds at most kMaxQpDepth WRs (verbs_nic.h), so `seq` is unique among those in flight.
inline uint64_t WrIdOf(const Qp* q, uint16_t seq) {
  return uint64_t(seq) << 48 | uint64_t(reinterpret_cast<uintptr_t>(q));
}
inline bool FitsWrId(const Qp* q) { return (uint64_t(reinterpret_cast<uintptr_t>(q)) >> 48) == 0; }
inline Qp* QpOfWrId(uint64_t wr_id) { return reinterpret_cast<Qp*>(uintptr_t(wr_id & ((uint64_t(1) << 48) - 1))); }
inline uint16_t SeqOfWrId(uint64_t wr_id) { return uint16_t(wr_id >> 48); }

// One direction with one peer: our reading QPs to it, or our serving QPs for it.
struct Conn {
  std::string peer;
  bool serving = false;
  std::vector<std::unique_ptr<Qp>> qps;
  std::atomic<bool> ready{false};
  std::atomic<bool> broken{false};
  std::atomic<uint32_t> rr{0};
  std::mutex mu;     // guards `why` and QP teardown against Break()
  std::string why;  // why it broke

  // Marks the conn broken and moves every QP to ERR (safe from any thread: providers serialize modify_qp with
  // posting), so outstanding READs flush and nothing new is posted. Returns true the first time.
  bool Break(const std::string& reason);
  std::string Why() {
    std::lock_guard<std::mutex> g(mu);
    return why;
  }
};

enum class WindowState : uint8_t { kBinding, kBound, kInvalidating, kDead };

struct Window {
  uint64_t offset = 0, length = 0;  // pool range
  uint32_t qp = 0;                  // index into the serving conn's QPs
  uint32_t rkey = 0;
  ibv_mw* mw = nullptr;
  WindowState state = WindowState::kBinding;  // changed only by the worker of the window's NIC
};

// A grant on the serving side: its windows (one per piece of the granted ranges) bound to the reader's QPs.
struct Grant {
  GrantId id;
  int64_t expires_ms = 0;
  std::shared_ptr<Conn> conn;
  std::vector<Window> windows;
  bool pool_rkey = false;               // no windows: the pool's rkey (--verbs-allow-pool-rkey)
  std::atomic<int32_t> binds_left{0};   // add settles at zero
  std::atomic<int32_t> live_windows{0}; // windows not yet dead; remove settles at zero
  std::atomic<bool> bind_failed{false};
  std::atomic<bool> remove_requested{false};
  std::atomic<bool> remove_settled{false};
  uint64_t add_op = 0;
  std::atomic<uint64_t> remove_op{0};
  std::mutex mu;
  std::string fail_msg;
};

// Encodes the grant's key for the reader: u8 version (1), u8 mode (1 windows, 2 pool rkey), u32 count, then per
// window u64 offset, u64 length, u32 rkey, u16 qp index (little-endian). Parsed in native/lib/verbs-grant.ts and
// ParseGrantKey below.
std::vector<uint8_t> EncodeGrantKey(const Grant& g, const std::vector<uint32_t>& pool_rkeys);

struct KeyWindow {
  uint64_t offset, length;
  uint32_t rkey;
  uint16_t qp;
};
// Windows sorted by offset; false when malformed.
bool ParseGrantKey(const uint8_t* p, size_t n, std::vector<KeyWindow>* out);

}  // namespace kvf
