// Internal state of the fake libibverbs (fake_verbs.cc: the verbs API, fake_wire.cc: the data path).
//
// Every "host" lives in this one process. One global lock (G().mu) guards every object; the only thing done
// outside it is the blocking read() of an event fd. Each public verbs object (ibv_qp, ibv_mr, ...) is the first
// member of a fake object, so the pointer handed to the caller converts back with a cast.
#pragma once

#include <infiniband/verbs.h>
// verbs.h turns these exported names into macros that call static inlines; the fake defines the real symbols.
#undef ibv_query_port
#undef ibv_reg_mr
#undef ibv_reg_mr_iova

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace fv {

constexpr int kGidTableLen = 8;
constexpr int kMaxSge = 4;

struct Device {
  ibv_device dev;  // first member: ibv_device* <-> Device*
  int index = 0;   // 0-based; the device number in GIDs and addresses is index + 1
  ibv_gid gids[kGidTableLen] = {};
  ibv_gid_type gid_types[kGidTableLen] = {};
};

// An event queue whose readiness is a real fd: an eventfd in semaphore mode whose counter always equals
// items.size() + stale. A taker reads the fd (blocking, or EAGAIN if the caller made it O_NONBLOCK) and then pops
// under the lock; items removed before they were taken (their object was destroyed) become "stale" counts that
// the next taker skips.
template <class T>
struct EventQueue {
  int fd = -1;
  std::deque<T> items;
  unsigned stale = 0;
  bool Open() { return (fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE)) >= 0; }
  void Push(const T& t) {
    items.push_back(t);
    uint64_t one = 1;
    if (write(fd, &one, sizeof one) != sizeof one) { /* counter overflow: impossible in practice */ }
  }
  template <class Pred>
  void RemoveIf(Pred p) {
    for (auto it = items.begin(); it != items.end();) {
      if (p(*it)) it = items.erase(it), ++stale;
      else ++it;
    }
  }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

struct Context {
  ibv_context ctx;  // first member
  Device* dev = nullptr;
  EventQueue<ibv_async_event> async;  // ctx.async_fd == async.fd
};

struct Pd {
  ibv_pd pd;
  int refs = 0;  // MRs, MWs and QPs using it: dealloc fails EBUSY while > 0 (like the kernel)
};

struct Mr {
  ibv_mr mr;          // mr.addr = process address, lkey == rkey
  uint64_t iova = 0;  // the address space the keys are used in (virtual address for ibv_reg_mr)
  int access = 0;
};

struct Qp;
struct Mw {
  ibv_mw mw;              // mw.rkey stays the allocation rkey for type 2 (like mlx5; the consumer tracks it)
  uint32_t cur_rkey = 0;  // the rkey the window answers to now
  bool valid = false;     // bound (type 2: not free); type 1 is valid-but-empty after alloc
  Mr* mr = nullptr;       // bound region; nullptr after that MR was deregistered
  uint64_t addr = 0, len = 0;
  int access = 0;
  Qp* qp = nullptr;  // type 2: the QP it is bound to (cleared when that QP is destroyed)
};

struct Cq;
struct Channel {
  ibv_comp_channel ch;  // first member; ch.fd == q.fd
  EventQueue<Cq*> q;
};

struct Cqe {
  ibv_wc wc;
  Qp* qp;        // for send-queue slot accounting when polled
  uint64_t seq;  // the WR's position in its QP's send queue
};

struct Cq {
  ibv_cq cq;  // first member; cq.cqe = usable size (mlx5 rounding: 2^k - 1 >= requested)
  std::deque<Cqe> q;
  bool armed = false, solicited_only = false;
  bool overrun = false;  // after an overrun the CQ delivers nothing more (CQ_ERR was raised)
  int qps = 0;           // QPs using it: destroy fails EBUSY while > 0
  uint32_t events_reported = 0;
};

// One posted send work request, copied at post time (the caller may reuse its ibv_send_wr at once).
struct Wr {
  uint64_t wr_id = 0;
  ibv_wr_opcode op = IBV_WR_RDMA_READ;
  bool signaled = false;
  uint64_t seq = 0;
  int num_sge = 0;
  ibv_sge sge[kMaxSge] = {};
  uint64_t remote_addr = 0;
  uint32_t rkey = 0;        // READ: remote key; BIND_MW: the new rkey; LOCAL_INV: rkey to invalidate
  uint32_t mw_index = 0;    // BIND_MW: the window, by key index (it may be deallocated before the WR runs)
  uint32_t mr_key = 0;      // BIND_MW: the region's lkey (likewise; 0 with bind.mr == nullptr)
  ibv_mw_bind_info bind{};  // BIND_MW (bind.mr is only compared, never dereferenced, once posted)
  int64_t ready_ms = 0;        // READ with read_delay_ms: not executed before this time (0 = not started)
};

struct Qp {
  ibv_qp qp;  // first member
  ibv_qp_cap cap{};
  bool sig_all = false;
  ibv_qp_attr attr{};  // everything modify_qp recorded (attr.qp_state mirrors qp.state)
  std::deque<Wr> sq;   // posted, not yet completed, in order
  uint64_t posted = 0, retired = 0;  // send-queue slots: occupancy = posted - retired (freed when polled)
  int reads_queued = 0;               // READs in sq
  Context* Ctx() { return reinterpret_cast<Context*>(qp.context); }
  ibv_qp_state State() const { return attr.qp_state; }
};

struct Config {
  std::vector<std::string> names;  // KVF_FAKE_VERBS_DEVICES
  int max_rd_atom = 16, max_cqe = 4096, max_qp_wr = 1024;
  uint64_t max_msg = 1ull << 30;
  bool no_mw = false, v1only = false;
  std::string control;  // KVF_FAKE_VERBS_CONTROL ("" = no faults, no stats)
};

// The parsed control file (see fake_wire.cc).
struct Control {
  ibv_wc_status read_error = IBV_WC_SUCCESS;  // SUCCESS = none
  long read_error_after = 0;
  bool stall = false, qp_fatal = false, port_err = false, device_fatal = false;
  long read_delay_ms = 0;
  std::string fault_device;  // "" = faults apply to READs on every device
};

struct Stats {
  uint64_t reads = 0, reads_ok = 0, reads_refused = 0, reads_failed = 0, reads_flushed = 0, bytes_read = 0;
  uint64_t binds = 0, binds_failed = 0, invalidates = 0, invalidates_failed = 0;
  uint64_t cq_overruns = 0, qp_errors = 0, async_events = 0, max_reads_outstanding = 0, control_changes = 0;
  uint64_t unacked_cq_events_at_destroy = 0;
};

struct State {
  std::mutex mu;
  std::condition_variable cv;  // wakes the wire thread
  Config cfg;
  std::vector<std::unique_ptr<Device>> devices;
  std::set<Context*> contexts;
  std::set<Pd*> pds;
  std::set<Cq*> cqs;
  std::set<Channel*> channels;
  std::map<uint32_t, Qp*> qps;  // by qp_num (unique over all devices)
  std::map<uint32_t, Mr*> mrs;  // by key index (key >> 8); MRs and MWs share the index space
  std::map<uint32_t, Mw*> mws;
  uint32_t next_qpn = 0x100, next_key_index = 0x100, next_handle = 1;

  // wire thread (fake_wire.cc): runs while at least one context is open
  std::thread wire;
  uint64_t wire_gen = 0;  // a wire thread exits when this moves past the value it started with

  // control file state (fake_wire.cc)
  Control ctl;
  bool ctl_seen = false;  // identity below is valid
  bool ctl_exists = false;
  uint64_t ctl_ino = 0, ctl_size = 0, ctl_mtime_ns = 0;
  int64_t ctl_checked_ms = -1000;
  long reads_since_change = 0;
  bool qp_fatal_pending = false;

  Stats stats;
  bool stats_dirty = false;
};

State& G();              // the process-wide state (never destroyed)
void EnsureInit();       // reads the environment and builds the devices once
int64_t NowMs();         // steady clock

inline Context* C(ibv_context* c) { return reinterpret_cast<Context*>(c); }
inline Pd* P(ibv_pd* p) { return reinterpret_cast<Pd*>(p); }
inline Cq* CQ(ibv_cq* c) { return reinterpret_cast<Cq*>(c); }
inline Qp* Q(ibv_qp* q) { return reinterpret_cast<Qp*>(q); }
inline Mw* MW(ibv_mw* m) { return reinterpret_cast<Mw*>(m); }

// fake_wire.cc (all with G().mu held unless noted)
int PostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr);  // ops.post_send (takes the lock)
int PollCq(ibv_cq* cq, int n, ibv_wc* wc);                         // ops.poll_cq (takes the lock)
int ReqNotifyCq(ibv_cq* cq, int solicited_only);                   // ops.req_notify_cq (takes the lock)
int PostSendLocked(Qp* q, ibv_send_wr* wr, ibv_send_wr** bad_wr, bool via_bind_verb);
void QpToError(Qp* q);                                   // moves to ERR, flushes every queued WR in order
void RaiseAsync(Context* c, const ibv_async_event& ev);  // queues an async event on that context
void PurgeCqes(Qp* q);                                   // drops the QP's unpolled completions (destroy/reset)
void StartWireLocked();
std::thread StopWireLocked();  // returns the thread to join once the lock is released
void FlushStatsLocked(bool force);

}  // namespace fv
