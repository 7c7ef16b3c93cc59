// The node's side of an engine's command ring: see engine_ring.h and command_ring.h.
#include "engine_ring.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <utility>

#include "command_ring.h"

namespace kvf {

using namespace ring;

namespace {

constexpr int kSleepMs = 50;  // a sleeping ring thread looks at its stop flag and pending events this often
// Events are announced to JavaScript at most this often: what they carry (sealed hashes for the metaserver, whose
// reporter batches anyway; counters) is not urgent, and each announcement costs the node's event loop a wake-up.
constexpr int kAnnounceGapMs = 50;
// After a completion the engine usually submits its next command within microseconds (a load after its save, a
// release after its query, the next layer group): the ring thread watches the SQ this long before it says it sleeps,
// so a streaming engine pays no futex wake per command (io_uring's SQPOLL idle time, kept short: it spins on a core
// the copy threads may want).
constexpr auto kPollAfterCompletion = std::chrono::microseconds(50);

uint32_t LoadAcquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
uint32_t LoadSeq(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void StoreRelease(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
void StoreSeq(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

void FutexWait(uint32_t* addr, uint32_t expected, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, addr, FUTEX_WAIT, expected, &ts, nullptr, 0);  // shared: the word lives in a shared mapping
}
void FutexWake(uint32_t* addr) { syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

uint64_t NowMs() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}
int64_t SteadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

template <typename T>
void Put(uint8_t* at, T v) {
  std::memcpy(at, &v, sizeof v);
}

// Where a bus error hit, for its message: "region byte N of M", or the raw address when not in `mem`.
std::string Where(uintptr_t addr, const Mapping& mem, const char* name) {
  auto base = reinterpret_cast<uintptr_t>(mem.base());
  if (addr >= base && addr - base < mem.size())
    return std::string(name) + " byte " + std::to_string(addr - base) + " of " + std::to_string(mem.size());
  return "address " + std::to_string(addr);
}

const char* LeaseCode(LeaseTable::Status s) {
  switch (s) {
    case LeaseTable::Status::kUnknown:
      return "LEASE_UNKNOWN";
    case LeaseTable::Status::kExpired:
      return "LEASE_EXPIRED";
    case LeaseTable::Status::kConsumed:
      return "LEASE_CONSUMED";
    case LeaseTable::Status::kForeign:
      return "LEASE_FOREIGN";
    default:
      return code::kInvalidArgument;
  }
}

}  // namespace

struct EngineRing::Command {
  uint32_t index;
  uint8_t op, hash_len, flags;
  uint32_t count;
  char lease[kLeaseIdBytes];
  std::vector<uint8_t> payload;  // the engine's input, copied out of shared memory before anything reads it
};

std::string EngineRing::Check(const Mapping& ring, uint32_t* entries, uint32_t* slot_bytes) {
  if (ring.size() < kHeaderBytes) return "ring: smaller than its 512-byte header";
  const uint8_t* b = ring.base();
  uint32_t magic, version, n, slot;
  std::memcpy(&magic, b + kOffMagic, 4);
  std::memcpy(&version, b + kOffVersion, 4);
  std::memcpy(&n, b + kOffEntries, 4);
  std::memcpy(&slot, b + kOffSlotBytes, 4);
  if (magic != kMagic) return "ring.magic: expected \"KVR1\" (0x3152564b), got " + std::to_string(magic);
  if (version != kVersion) return "ring.version: expected 1, got " + std::to_string(version);
  if (n == 0 || n > kMaxEntries || (n & (n - 1)) != 0)
    return "ring.entries: expected a power of two in 1..4096, got " + std::to_string(n);
  if (slot < 64 || slot > kMaxSlotBytes || slot % 64 != 0)
    return "ring.slot_bytes: expected a multiple of 64 in 64..16777216, got " + std::to_string(slot);
  if (ring.size() < RingBytes(n, slot))
    return "ring: " + std::to_string(ring.size()) + " bytes, its geometry needs " + std::to_string(RingBytes(n, slot));
  *entries = n;
  *slot_bytes = slot;
  return std::string();
}

EngineRing::EngineRing(RingTarget target, MemoryRef ring, uint32_t entries, uint32_t slot_bytes,
                       std::function<void()> announce)
    : t_(std::move(target)),
      ring_(std::move(ring)),
      entries_(entries),
      slot_bytes_(slot_bytes),
      announce_(std::move(announce)),
      busy_(entries) {
  cq_tail_ = LoadAcquire(Word(kOffCqTail));
  thread_ = std::thread([this] { Run(); });
}

EngineRing::~EngineRing() {
  Stop();
  if (t_.event_fd >= 0) close(t_.event_fd);
}

void EngineRing::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true, std::memory_order_seq_cst);
  FutexWake(Word(kOffSqTail));
  thread_.join();
  std::unique_lock<std::mutex> lock(flight_mu_);
  flight_cv_.wait(lock, [this] { return in_flight_ == 0; });
}

RingEvents EngineRing::TakeEvents() {
  std::lock_guard<std::mutex> lock(events_mu_);
  RingEvents out = std::move(events_);
  events_ = RingEvents();
  announced_ = false;
  pending_ = false;
  return out;
}

template <typename F>
void EngineRing::Note(F&& update) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    update(events_);
    pending_ = true;
  }
  MaybeAnnounce();
}

int EngineRing::MaybeAnnounce() {
  int64_t now = SteadyMs();
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    if (!pending_ || announced_) return kSleepMs;
    int64_t wait = last_announce_ms_ + kAnnounceGapMs - now;
    if (wait > 0 && !events_.broken) return static_cast<int>(wait);
    announced_ = true;
    last_announce_ms_ = now;
  }
  announce_();
  return kSleepMs;
}

uint8_t* EngineRing::Slot(uint32_t index) const {
  return ring_->base() + SlotOffset(entries_, slot_bytes_, index);
}

void EngineRing::Break(const std::string& why) {
  Note([&](RingEvents& e) {
    e.broken = true;
    e.problems.push_back({"ring", "ring: " + why + "; the ring takes no more commands"});
  });
}

void EngineRing::Run() {
  (void)pthread_setname_np(pthread_self(), "kvf-ring");
  uint32_t head = LoadAcquire(Word(kOffSqHead));
  const uint32_t mask = entries_ - 1;
  const uint32_t* sq = reinterpret_cast<const uint32_t*>(ring_->base() + SqOffset());
  while (!stop_.load(std::memory_order_acquire)) {
    uint32_t tail = LoadAcquire(Word(kOffSqTail));
    if (tail == head) {
      if (poll_.exchange(false, std::memory_order_seq_cst) && PollSq(head)) continue;
      int sleep_ms = MaybeAnnounce();  // events held back by the announcement gap go out now or soon
      // Say we sleep, then look once more: an engine that advanced the tail before reading the flag is seen here,
      // one that read it after wakes us (both sides use sequentially consistent accesses).
      StoreSeq(Word(kOffNodeSleeping), 1);
      tail = LoadSeq(Word(kOffSqTail));
      // A completion posted since (poll_) means the engine is about to submit: poll instead (Complete wakes us
      // when it saw the flag, and we see its poll_ here when it did not).
      if (tail == head && !stop_.load(std::memory_order_seq_cst) && !poll_.load(std::memory_order_seq_cst))
        FutexWait(Word(kOffSqTail), head, sleep_ms);
      StoreSeq(Word(kOffNodeSleeping), 0);
      continue;
    }
    if (tail - head > entries_) {
      Break("sq_tail " + std::to_string(tail) + " is more than " + std::to_string(entries_) + " ahead of sq_head " +
            std::to_string(head));
      return;
    }
    for (; head != tail; head++) {
      uint32_t index = __atomic_load_n(&sq[head & mask], __ATOMIC_RELAXED);
      if (index >= entries_) {
        Break("sq[" + std::to_string(head & mask) + "]: command index " + std::to_string(index) +
              " is not below entries " + std::to_string(entries_));
        StoreRelease(Word(kOffSqHead), head + 1);
        return;
      }
      if (busy_[index].exchange(1, std::memory_order_acq_rel) != 0) {
        Break("command " + std::to_string(index) + " submitted again while in flight");
        StoreRelease(Word(kOffSqHead), head + 1);
        return;
      }
      {
        std::lock_guard<std::mutex> lock(flight_mu_);
        in_flight_++;
      }
      Execute(index);
    }
    StoreRelease(Word(kOffSqHead), head);
  }
}

void EngineRing::Execute(uint32_t index) {
  const uint8_t* slot = Slot(index);
  Command cmd;
  cmd.index = index;
  cmd.op = __atomic_load_n(slot + kCmdOp, __ATOMIC_RELAXED);
  cmd.hash_len = __atomic_load_n(slot + kCmdHashLen, __ATOMIC_RELAXED);
  cmd.flags = __atomic_load_n(slot + kCmdFlags, __ATOMIC_RELAXED);
  std::memcpy(&cmd.count, slot + kCmdCount, 4);
  std::memcpy(cmd.lease, slot + kCmdLeaseId, kLeaseIdBytes);
  // What the payload holds, from the copied fields only (the engine may rewrite the slot at any time).
  uint64_t need = 0;
  if (cmd.op == kOpSave) need = uint64_t{cmd.count} * (4 + cmd.hash_len);
  if (cmd.op == kOpLoad) need = uint64_t{cmd.count} * 4;
  if (cmd.op == kOpQuery) need = uint64_t{cmd.count} * cmd.hash_len;
  if ((cmd.op == kOpSave || cmd.op == kOpQuery) && (cmd.hash_len == 0 || cmd.hash_len > KeyTable::kMaxKeyBytes))
    return Fail(index, code::kInvalidArgument,
                "hash_len: expected 1.." + std::to_string(KeyTable::kMaxKeyBytes) + ", got " +
                    std::to_string(cmd.hash_len));
  if (need > slot_bytes_)
    return Fail(index, code::kInvalidArgument,
                "count: " + std::to_string(cmd.count) + " items need " + std::to_string(need) +
                    " payload bytes, the ring's slots hold " + std::to_string(slot_bytes_));
  cmd.payload.assign(slot + kCommandHeaderBytes, slot + kCommandHeaderBytes + need);
  switch (cmd.op) {
    case kOpSave:
      return Save(cmd);
    case kOpLoad:
      return Load(cmd);
    case kOpQuery:
      return Query(cmd);
    case kOpRelease:
      return Release(cmd);
    default:
      return Fail(index, code::kInvalidArgument, "op: expected 1 (save), 2 (load), 3 (query) or 4 (release), got " +
                                                     std::to_string(cmd.op));
  }
}

void EngineRing::Save(Command& cmd) {
  const InstanceLayout& layout = *t_.layout;
  uint32_t n = cmd.count;
  auto ids = std::make_shared<std::vector<uint32_t>>(n);
  std::memcpy(ids->data(), cmd.payload.data(), uint64_t{n} * 4);
  auto packed = std::make_shared<std::vector<uint8_t>>(cmd.payload.begin() + uint64_t{n} * 4, cmd.payload.end());
  auto plan = std::make_shared<SavePlan>();
  std::string bad = PlanSave(*t_.index, *t_.alloc, layout, ids->data(), packed->data(), cmd.hash_len, n, plan.get());
  if (bad.empty()) bad = DescsOutside(plan->descs, t_.region->size(), t_.pool->size());
  if (!bad.empty()) {
    std::string none;
    if (!plan->slots.empty()) FinishSave(*t_.index, *t_.alloc, layout, packed->data(), cmd.hash_len, *plan, false, &none);
    return Fail(cmd.index, code::kInvalidArgument, bad);
  }
  Note([&](RingEvents& e) {
    e.save_calls++;
    e.evicted.Merge(plan->evicted);
    if (plan->exhausted) e.exhausted++;
    e.present_blocks += plan->present;
    e.no_space_blocks += plan->no_space;
  });
  plan->evicted = EvictedBlocks();
  if (plan->no_space > 0 && plan->slots.empty()) {
    return Fail(cmd.index, code::kPoolExhausted,
                "pool exhausted: " + std::to_string(plan->no_space) + " pages of " + std::to_string(layout.page_bytes) +
                    " bytes needed and every resident block is pinned");
  }
  uint32_t index = cmd.index, hash_len = cmd.hash_len;
  std::vector<CopyRange> descs = std::move(plan->descs);
  auto done = [this, index, hash_len, ids, packed, plan](bool copied, uintptr_t fault) {
    std::string sealed_hashes;
    uint32_t sealed = FinishSave(*t_.index, *t_.alloc, *t_.layout, packed->data(), hash_len, *plan, copied,
                                 &sealed_hashes);
    if (!copied) {
      Note([&](RingEvents& e) { e.region_failures++; });
      return Fail(index, code::kRegionInvalid,
                  "copy: bus error (SIGBUS) at " + Where(fault, *t_.region, "region") +
                      ": the memory's file shrank under the copy (an engine truncated its region); the save failed",
                  "save");
    }
    uint8_t* slot = Slot(index);
    std::memcpy(slot + kCommandHeaderBytes, plan->outcomes.data(), plan->outcomes.size());
    Put<uint32_t>(slot + kCmdR0, static_cast<uint32_t>(plan->slots.size()));
    Put<uint32_t>(slot + kCmdR1, sealed);
    Put<uint32_t>(slot + kCmdR2, plan->present);
    Put<uint32_t>(slot + kCmdR3, plan->no_space);
    Put<uint8_t>(slot + kCmdStatus, kStatusOk);
    Note([&](RingEvents& e) {
      e.saved_blocks += plan->slots.size();
      e.sealed_blocks += sealed;
      if (sealed > 0) e.sealed[hash_len] += sealed_hashes;
    });
    Complete(index);
  };
  if (!t_.engine->SubmitNative(t_.region, t_.pool, std::move(descs), done, &plan->sums)) {
    std::string none;
    FinishSave(*t_.index, *t_.alloc, layout, packed->data(), cmd.hash_len, *plan, false, &none);
    Fail(cmd.index, code::kInternal, "copy engine: closed");
  }
}

void EngineRing::Load(Command& cmd) {
  const InstanceLayout& layout = *t_.layout;
  uint32_t n = cmd.count;
  auto ids = std::make_shared<std::vector<uint32_t>>(n);
  std::memcpy(ids->data(), cmd.payload.data(), uint64_t{n} * 4);
  // Checked before the lease is consumed, so a bad call spends nothing.
  for (uint32_t i = 0; i < n; i++) {
    if ((*ids)[i] >= layout.num_blocks)
      return Fail(cmd.index, code::kInvalidArgument,
                  "block_ids[" + std::to_string(i) + "]: expected 0.." + std::to_string(layout.num_blocks - 1) +
                      ", got " + std::to_string((*ids)[i]));
  }
  auto slots = std::make_shared<std::vector<int32_t>>();
  std::string message;
  LeaseTable::Status s =
      t_.leases->Consume(cmd.lease, kLeaseIdBytes, t_.owner, layout.ns, t_.rank, n, NowMs(), slots.get(), &message);
  if (s != LeaseTable::Status::kOk) return Fail(cmd.index, LeaseCode(s), message);
  // The consume's pin holds the blocks for the copy; PlanLoad pins them once more, FinishLoad drops that.
  auto unpin = [this, slots] {
    std::lock_guard<std::mutex> lock(t_.index->mu());
    for (int32_t slot : *slots) t_.index->Unpin(slot);
  };
  std::vector<CopyRange> descs;
  std::string bad = PlanLoad(*t_.index, layout, slots->data(), ids->data(), n, &descs);
  if (bad.empty()) bad = DescsOutside(descs, t_.pool->size(), t_.region->size());
  if (!bad.empty()) {
    if (!descs.empty()) FinishLoad(*t_.index, slots->data(), n);
    unpin();
    return Fail(cmd.index, code::kInvalidArgument, bad);
  }
  uint32_t index = cmd.index;
  uint64_t bytes = uint64_t{n} * layout.page_bytes;
  auto done = [this, index, n, bytes, slots, unpin](bool copied, uintptr_t fault) {
    FinishLoad(*t_.index, slots->data(), n);
    unpin();
    if (!copied) {
      Note([&](RingEvents& e) { e.region_failures++; });
      return Fail(index, code::kRegionInvalid,
                  "copy: bus error (SIGBUS) at " + Where(fault, *t_.region, "region") +
                      ": the memory's file shrank under the copy (an engine truncated its region); the load failed",
                  "load");
    }
    uint8_t* slot = Slot(index);
    Put<uint32_t>(slot + kCmdR0, n);
    Put<uint64_t>(slot + kCmdR4, bytes);
    Put<uint8_t>(slot + kCmdStatus, kStatusOk);
    Note([&](RingEvents& e) {
      e.load_calls++;
      e.loaded_blocks += n;
    });
    Complete(index);
  };
  if (!t_.engine->SubmitNative(t_.pool, t_.region, std::move(descs), done)) {
    FinishLoad(*t_.index, slots->data(), n);
    unpin();
    Fail(cmd.index, code::kInternal, "copy engine: closed");
  }
}

void EngineRing::Query(Command& cmd) {
  uint32_t n = cmd.count, ns = t_.layout->ns;
  uint8_t* slot = Slot(cmd.index);
  if (!(cmd.flags & kFlagLocalOnly) && t_.fetchable) {
    std::vector<int32_t> slots(n);
    uint32_t local;
    {
      std::lock_guard<std::mutex> lock(t_.index->mu());
      local = t_.index->Prefix(ns, cmd.payload.data(), cmd.hash_len, n, slots.data());
    }
    if (local < n) {  // the rest may be fetched: that is the gRPC path's work
      Note([&](RingEvents& e) { e.retries++; });
      Put<uint8_t>(slot + kCmdStatus, kStatusRetry);
      return Complete(cmd.index);
    }
  }
  // Looked up again and pinned under one index lock: no block can be evicted (its slot reused) in between.
  uint32_t hits = 0;
  uint64_t expires = 0;
  std::string lease = t_.leases->CreateForPrefix(t_.owner, ns, cmd.payload.data(), cmd.hash_len, n, t_.ranks,
                                                 NowMs(), &expires, &hits);
  char id[kLeaseIdBytes] = {};
  std::memcpy(id, lease.data(), std::min<size_t>(lease.size(), kLeaseIdBytes));
  std::memcpy(slot + kCmdLeaseId, id, kLeaseIdBytes);
  Put<uint32_t>(slot + kCmdR0, hits);
  Put<uint64_t>(slot + kCmdR4, expires);
  Put<uint8_t>(slot + kCmdStatus, kStatusOk);
  Note([&](RingEvents& e) {
    e.queries++;
    e.query_hashes += n;
    e.query_hits += hits;
  });
  Complete(cmd.index);
}

void EngineRing::Release(Command& cmd) {
  std::string message;
  LeaseTable::Status s = t_.leases->Release(cmd.lease, kLeaseIdBytes, t_.owner, NowMs(), &message);
  if (s != LeaseTable::Status::kOk) return Fail(cmd.index, LeaseCode(s), message);
  Put<uint8_t>(Slot(cmd.index) + kCmdStatus, kStatusOk);
  Complete(cmd.index);
}

void EngineRing::Fail(uint32_t index, const char* code, const std::string& message, const char* op) {
  std::string text = std::string(code) + " " + message;
  if (text.size() > slot_bytes_) text.resize(slot_bytes_);
  uint8_t* slot = Slot(index);
  std::memcpy(slot + kCommandHeaderBytes, text.data(), text.size());
  Put<uint32_t>(slot + kCmdMessageBytes, static_cast<uint32_t>(text.size()));
  Put<uint8_t>(slot + kCmdStatus, kStatusError);
  Note([&](RingEvents& e) {
    e.errors++;
    if (op != nullptr) e.problems.push_back({op, message});
  });
  Complete(index);
}

bool EngineRing::PollSq(uint32_t head) {
  // Few rings poll at once, node-wide: with many engines, spinning ring threads would take the cores the copy
  // threads need (the others sleep as before; their engines wake them).
  static const int max_pollers = std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 8));
  static std::atomic<int> pollers{0};
  if (pollers.fetch_add(1, std::memory_order_acq_rel) >= max_pollers) {
    pollers.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  const auto until = std::chrono::steady_clock::now() + kPollAfterCompletion;
  bool arrived = false;
  for (uint32_t spins = 1;; spins++) {
    if (LoadAcquire(Word(kOffSqTail)) != head) {
      arrived = true;
      break;
    }
    if (stop_.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() >= until) break;
    if (spins % 64 == 0) sched_yield();  // an engine thread waiting for this core gets it
    else CpuRelax();
  }
  pollers.fetch_sub(1, std::memory_order_acq_rel);
  return arrived;
}

void EngineRing::Complete(uint32_t index) {
  {
    std::lock_guard<std::mutex> lock(cq_mu_);
    uint32_t* cq = reinterpret_cast<uint32_t*>(ring_->base() + CqOffset(entries_));
    __atomic_store_n(&cq[cq_tail_ & (entries_ - 1)], index, __ATOMIC_RELAXED);
    cq_tail_++;
    busy_[index].store(0, std::memory_order_release);
    StoreSeq(Word(kOffCqTail), cq_tail_);  // publishes the slot's result and the CQ entry
    // An engine that waits for completions said so; wake it once (it sets the flag again when it drained).
    if (__atomic_exchange_n(Word(kOffEngineSleeping), 0, __ATOMIC_SEQ_CST) != 0) {
      uint64_t one = 1;
      (void)!write(t_.event_fd, &one, sizeof one);  // non-blocking: a full counter only means it is awake anyway
    }
  }
  // The engine's next command is likely on its way: have the ring thread poll for it rather than sleep.
  poll_.store(true, std::memory_order_seq_cst);
  if (LoadSeq(Word(kOffNodeSleeping)) != 0) FutexWake(Word(kOffSqTail));
  std::lock_guard<std::mutex> lock(flight_mu_);
  if (--in_flight_ == 0) flight_cv_.notify_all();
}

}  // namespace kvf
