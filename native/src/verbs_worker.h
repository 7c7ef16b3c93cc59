// The thread of one NIC: posts work requests to the NIC's QPs (chained, within the send queue's and the CQ's
// room), polls the NIC's CQ, ends batches whose deadline passed (their connection's QPs go to ERR, so they flush),
// binds and invalidates memory windows, expires grants, and reads the device's async events. It polls busily only
// for `busy_poll_us` after the last completion, then sleeps on the completion channel: it never spins while idle
// and holds no lock while polling.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "transport.h"
#include "verbs_conn.h"

namespace kvf {

// Counters only verbs keeps, beside TransportCounters.
struct VerbsCounters {
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> windows_bound{0};
  std::atomic<uint64_t> windows_invalidated{0};
  std::atomic<uint64_t> bind_failures{0};
  std::atomic<uint64_t> async_events{0};
  std::atomic<uint64_t> broken_conns{0};
  std::atomic<uint64_t> posts{0};  // ibv_post_send calls (each posts a chain)
  std::atomic<uint64_t> wrs{0};    // work requests posted
  std::atomic<uint64_t> completions{0};  // work completions polled (fewer than WRs: only some READs ask for one)
  std::atomic<int64_t> reads_posted{0};    // READs in send queues right now (all QPs, all NICs)
  std::atomic<uint64_t> sleeps{0};         // times a worker slept on its completion channel
  std::atomic<uint64_t> cq_wakeups{0};     // ... and was woken by a completion event (the rest: work or timeout)
};

struct VerbsSink {
  TransportCounters* counters;
  VerbsCounters* verbs;
  std::function<void(Completion)> post;
};

// Settles `b` if this call drops its count to zero (any thread).
void ReleaseBatch(Batch* b, int64_t n, const VerbsSink& sink);

class VerbsWorker {
 public:
  VerbsWorker(Nic* nic, const VerbsConfig& cfg, VerbsSink sink);
  ~VerbsWorker();
  VerbsWorker(const VerbsWorker&) = delete;
  VerbsWorker& operator=(const VerbsWorker&) = delete;

  void Start();
  // Breaks every connection, waits (bounded) for flushes, destroys QPs and windows, joins. Idempotent.
  void Stop();

  // Any thread. The QPs must be on this worker's NIC and already connected (RTS).
  void Adopt(const std::shared_ptr<Conn>& conn, std::vector<Qp*> qps);
  // Any thread: queue work requests for QPs of this NIC.
  void Submit(std::vector<std::pair<Qp*, Wr>>&& items);
  // Any thread: invalidate (or, on a dead QP, deallocate) every window of `g` on this NIC.
  void Remove(const std::shared_ptr<Grant>& g);

 private:
  struct Owned {
    Qp* qp;
    std::shared_ptr<Conn> conn;
    uint32_t bound = 0;  // windows bound through this QP
  };

  void Run();
  void Wake();
  bool Drain();
  bool PostAll();
  int Poll();
  void Scan(int64_t now_ms);
  void Sleep(int timeout_ms);
  void ReadEvents();
  void Complete(const ibv_wc& wc);
  void Retire(Qp* q, Wr& w, ibv_wc_status status, uint32_t vendor_err);
  void FailPending(Owned& o, const std::string& why);
  void Invalidate(const std::shared_ptr<Grant>& g, uint32_t w);
  void WindowDead(const std::shared_ptr<Grant>& g, uint32_t w, bool reuse);
  void BindDone(const std::shared_ptr<Grant>& g);
  bool DestroyIdle(bool force);
  Owned* Find(ibv_qp* qp);
  bool TakeMw(Window* win);
  void Event(const std::string& kind, const std::string& peer, const std::string& message);

  Nic* nic_;
  VerbsConfig cfg_;
  VerbsSink sink_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  bool started_ = false, stopped_ = false;

  std::mutex mu_;  // guards the inboxes only
  std::vector<std::pair<Qp*, Wr>> inbox_;
  std::vector<std::pair<std::shared_ptr<Conn>, std::vector<Qp*>>> adopt_;
  std::vector<std::shared_ptr<Grant>> removes_;

  // worker-owned
  std::vector<Owned> owned_;
  std::unordered_map<ibv_qp*, size_t> by_qp_;  // index into owned_
  std::vector<std::pair<std::shared_ptr<Grant>, uint32_t>> bound_;  // windows bound (or binding) on this NIC
  std::vector<std::pair<ibv_mw*, uint32_t>> free_mws_;  // invalidated windows and their last rkey
  uint32_t cq_inflight_ = 0;
  uint32_t unacked_events_ = 0;
};

}  // namespace kvf
