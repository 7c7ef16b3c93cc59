#include "verbs_worker.h"

#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <tuple>

#include "verbs_lib.h"

namespace kvf {
namespace {

constexpr int kPollBatch = 64;
constexpr int kChain = 64;             // WRs per ibv_post_send at most
constexpr int kScanEveryMs = 5;        // deadlines and grant expiry
constexpr int64_t kStopDrainMs = 2000; // how long Stop() waits for flushes before destroying QPs anyway

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Pins the calling thread to the CPUs of `node` (best effort: a NIC's completions are handled next to it).
void PinToNode(int node) {
  if (node < 0) return;
  std::ifstream f("/sys/devices/system/node/node" + std::to_string(node) + "/cpulist");
  std::string list;
  if (!std::getline(f, list) || list.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ',')) {
    int a = 0, b = 0;
    if (std::sscanf(part.c_str(), "%d-%d", &a, &b) == 2) {
      for (int c = a; c <= b && c < CPU_SETSIZE; c++) CPU_SET(c, &set);
    } else if (std::sscanf(part.c_str(), "%d", &a) == 1 && a < CPU_SETSIZE) {
      CPU_SET(a, &set);
    }
  }
  sched_setaffinity(0, sizeof(set), &set);
}

// What an error completion means to the reader (DESIGN §7: the NIC refuses reads outside live grants).
const char* CodeOf(ibv_wc_status s) {
  switch (s) {
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
      return code::kGrantRefused;
    default:
      return code::kTransportFailed;
  }
}

}  // namespace

int64_t VerbsNowMs() { return NowNs() / 1000000; }

void ReleaseBatch(Batch* b, int64_t n, const VerbsSink& sink) {
  if (b->outstanding.fetch_sub(n) != n) return;
  sink.counters->reads_in_flight--;
  Completion c;
  c.id = b->op;
  c.code = b->code;
  c.message = b->msg;
  c.bytes = double(b->bytes.load());
  if (b->code) sink.counters->batches_failed++;
  else sink.counters->batches_ok++, sink.counters->bytes_read += b->bytes.load();
  sink.post(std::move(c));
  delete b;
}

bool Conn::Break(const std::string& reason) {
  std::lock_guard<std::mutex> g(mu);  // also keeps a worker from destroying a QP under us
  if (broken.exchange(true)) return false;
  why = reason;
  for (auto& q : qps) {
    if (!q->qp) continue;
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_ERR;
    Verbs().modify_qp(q->qp, &a, IBV_QP_STATE);
  }
  return true;
}

VerbsWorker::VerbsWorker(Nic* nic, const VerbsConfig& cfg, VerbsSink sink)
    : nic_(nic), cfg_(cfg), sink_(std::move(sink)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

VerbsWorker::~VerbsWorker() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void VerbsWorker::Start() {
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void VerbsWorker::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
}

void VerbsWorker::Wake() {
  uint64_t one = 1;
  ssize_t r = write(wake_fd_, &one, sizeof(one));
  (void)r;
}

void VerbsWorker::Adopt(const std::shared_ptr<Conn>& conn, std::vector<Qp*> qps) {
  {
    std::lock_guard<std::mutex> g(mu_);
    adopt_.emplace_back(conn, std::move(qps));
  }
  Wake();
}

void VerbsWorker::Submit(std::vector<std::pair<Qp*, Wr>>&& items) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (inbox_.empty()) inbox_ = std::move(items);
    else
      for (auto& it : items) inbox_.push_back(std::move(it));
  }
  Wake();
}

void VerbsWorker::Remove(const std::shared_ptr<Grant>& g) {
  {
    std::lock_guard<std::mutex> l(mu_);
    removes_.push_back(g);
  }
  Wake();
}

VerbsWorker::Owned* VerbsWorker::Find(ibv_qp* qp) {
  auto it = by_qp_.find(qp);
  return it == by_qp_.end() ? nullptr : &owned_[it->second];
}

void VerbsWorker::Event(const std::string& kind, const std::string& peer, const std::string& message) {
  Completion c;
  c.event = kind;
  c.peer = peer;
  c.message = nic_->name + ": " + message;
  sink_.post(std::move(c));
}

// Takes what other threads handed over. Work for a QP this worker does not own (dropped meanwhile) fails.
bool VerbsWorker::Drain() {
  std::vector<std::pair<Qp*, Wr>> inbox;
  std::vector<std::pair<std::shared_ptr<Conn>, std::vector<Qp*>>> adopt;
  std::vector<std::shared_ptr<Grant>> removes;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (inbox_.empty() && adopt_.empty() && removes_.empty()) return false;
    inbox.swap(inbox_);
    adopt.swap(adopt_);
    removes.swap(removes_);
  }
  for (auto& [conn, qps] : adopt) {
    for (Qp* q : qps) {
      by_qp_[q->qp] = owned_.size();
      owned_.push_back({q, conn, 0});
    }
  }
  for (auto& [qp, wr] : inbox) {
    if (wr.kind == WrKind::kBind && !TakeMw(&wr.grant->windows[wr.window])) {
      int err = errno;
      sink_.verbs->bind_failures++;
      {
        std::lock_guard<std::mutex> l(wr.grant->mu);
        if (wr.grant->fail_msg.empty()) wr.grant->fail_msg = "ibv_alloc_mw failed: " + ErrnoString(err);
      }
      wr.grant->bind_failed = true;
      WindowDead(wr.grant, wr.window, false);
      BindDone(wr.grant);
      continue;
    }
    qp->pending.push_back(std::move(wr));
  }
  for (auto& g : removes) {
    for (uint32_t i = 0; i < g->windows.size(); i++) {
      Qp* q = g->conn->qps[g->windows[i].qp].get();
      if (q->nic == nic_ && g->windows[i].state == WindowState::kBound) Invalidate(g, i);
    }
  }
  return true;
}

void VerbsWorker::FailPending(Owned& o, const std::string& why) {
  for (Wr& w : o.qp->pending) {
    if (w.kind == WrKind::kRead) {
      w.batch->Fail(code::kTransportFailed, why);
      ReleaseBatch(w.batch, 1, sink_);
    } else if (w.kind == WrKind::kBind) {
      w.grant->bind_failed = true;
      WindowDead(w.grant, w.window, false);
      BindDone(w.grant);
    } else {
      WindowDead(w.grant, w.window, false);
    }
  }
  o.qp->pending.clear();
}

bool VerbsWorker::PostAll() {
  bool progress = false;
  for (auto& o : owned_) {
    Qp* q = o.qp;
    if (q->pending.empty()) continue;
    if (o.conn->broken) {
      q->errored = true;
      FailPending(o, "connection to " + o.conn->peer + " broke: " + o.conn->Why());
      progress = true;
      continue;
    }
    ibv_send_wr wrs[kChain];
    ibv_sge sges[kChain];
    int n = 0;
    uint32_t room = std::min<uint32_t>(nic_->qp_depth - uint32_t(q->posted.size()), nic_->cq_depth - cq_inflight_);
    // READs go in refills: once at most half the post depth is left at the NIC, top it up in one chain. One
    // doorbell per completed READ starves the NIC (soft-RoCE runs the requester inline on every doorbell).
    uint32_t reads = q->reads_posted;
    uint32_t read_budget = reads > cfg_.post_depth / 2 ? 0 : cfg_.post_depth - reads;
    while (n < kChain && uint32_t(n) < room && size_t(n) < q->pending.size()) {
      Wr& w = q->pending[n];
      if (w.kind == WrKind::kRead && read_budget == 0) break;
      if (w.kind == WrKind::kRead) read_budget--;
      w.seq = uint16_t(q->next_seq + n);
      ibv_send_wr& wr = wrs[n];
      wr = ibv_send_wr{};
      wr.wr_id = WrIdOf(q, w.seq);
      wr.next = nullptr;
      if (n > 0) wrs[n - 1].next = &wr;
      if (w.kind == WrKind::kRead) {
        sges[n] = ibv_sge{w.local, w.length, w.lkey};
        wr.sg_list = &sges[n];
        wr.num_sge = 1;
        wr.opcode = IBV_WR_RDMA_READ;
        wr.wr.rdma.remote_addr = w.remote;
        wr.wr.rdma.rkey = w.rkey;
      } else if (w.kind == WrKind::kBind) {
        Window& win = w.grant->windows[w.window];
        wr.opcode = IBV_WR_BIND_MW;
        wr.bind_mw.mw = win.mw;
        wr.bind_mw.rkey = win.rkey;
        wr.bind_mw.bind_info.mr = nic_->mr;
        wr.bind_mw.bind_info.addr = nic_->base + win.offset;
        wr.bind_mw.bind_info.length = win.length;
        wr.bind_mw.bind_info.mw_access_flags = IBV_ACCESS_REMOTE_READ;
      } else {
        wr.opcode = IBV_WR_LOCAL_INV;
        wr.invalidate_rkey = w.grant->windows[w.window].rkey;
      }
      n++;
    }
    if (n == 0) continue;
    // A READ asks for a completion only every quarter of the post depth (so refills start while the NIC still has
    // a quarter queued), at the end of its batch on this QP (so a batch settles as soon as its last READ is done)
    // and at the end of the chain (so every WR is covered by a later completion); windows' binds and
    // invalidations always do. A completion retires every earlier WR of its QP (Complete).
    const uint32_t every = std::max<uint32_t>(1, cfg_.post_depth / 4);
    for (int i = 0; i < n; i++) {
      const Wr& w = q->pending[size_t(i)];
      bool last_of_batch = size_t(i) + 1 >= q->pending.size() || q->pending[size_t(i) + 1].batch != w.batch;
      bool signal = w.kind != WrKind::kRead || i == n - 1 || last_of_batch || (uint32_t(w.seq) + 1) % every == 0;
      if (signal) wrs[i].send_flags = IBV_SEND_SIGNALED;
    }
    ibv_send_wr* bad = nullptr;
    int rc = ibv_post_send(q->qp, wrs, &bad);
    int posted = rc == 0 ? n : int(bad - wrs);
    sink_.verbs->posts++;
    sink_.verbs->wrs += uint64_t(posted);
    for (int i = 0; i < posted; i++) {
      if (q->pending.front().kind == WrKind::kRead) q->reads_posted++, sink_.verbs->reads_posted++;
      q->posted.push_back(std::move(q->pending.front()));
      q->pending.pop_front();
    }
    q->next_seq = uint16_t(q->next_seq + posted);
    cq_inflight_ += uint32_t(posted);  // each WR may still complete on its own: flushed WRs always do
    progress = true;
    if (rc != 0) {
      sink_.counters->errors++;
      std::string why = "ibv_post_send failed: " + ErrnoString(rc);
      if (o.conn->Break(why)) sink_.verbs->broken_conns++, Event("broken", o.conn->peer, why);
    }
  }
  return progress;
}

int VerbsWorker::Poll() {
  ibv_wc wc[kPollBatch];
  int n = ibv_poll_cq(nic_->cq, kPollBatch, wc);
  if (n < 0) {
    Event("error", "", "ibv_poll_cq failed");
    return 0;
  }
  for (int i = 0; i < n; i++) Complete(wc[i]);
  if (n > 0) sink_.verbs->completions += uint64_t(n);
  return n;
}

// A completion names WR `seq` of its QP: every earlier WR of that QP completed without one (RC completes a send
// queue in order, and only some WRs ask for a completion), then this one with the completion's status.
void VerbsWorker::Complete(const ibv_wc& wc) {
  Qp* q = QpOfWrId(wc.wr_id);
  uint16_t seq = SeqOfWrId(wc.wr_id);
  // cannot happen: every posted WR is tracked, in order, and `seq` is unique among them
  if (q->posted.empty() || uint16_t(seq - q->posted.front().seq) >= q->posted.size()) return;
  for (;;) {
    Wr w = std::move(q->posted.front());
    q->posted.pop_front();
    cq_inflight_--;
    if (w.seq != seq) {
      Retire(q, w, IBV_WC_SUCCESS, 0);
      continue;
    }
    Retire(q, w, wc.status, wc.vendor_err);
    return;
  }
}

// One WR left the send queue with `status`.
void VerbsWorker::Retire(Qp* q, Wr& w, ibv_wc_status status, uint32_t vendor_err) {
  if (w.kind == WrKind::kRead) q->reads_posted--, sink_.verbs->reads_posted--;
  bool ok = status == IBV_WC_SUCCESS;
  if (!ok && status != IBV_WC_WR_FLUSH_ERR) {
    sink_.counters->errors++;
    char vendor[16];
    std::snprintf(vendor, sizeof(vendor), "0x%x", vendor_err);
    std::string why = std::string(Verbs().wc_status_str(status)) + " (vendor_err " + vendor + ", qp " +
                      std::to_string(q->qp->qp_num) + ")";
    if (q->conn->Break(why)) sink_.verbs->broken_conns++, Event("broken", q->conn->peer, why);
  }
  switch (w.kind) {
    case WrKind::kRead:
      if (ok) {
        w.batch->bytes += w.length;
      } else if (status == IBV_WC_WR_FLUSH_ERR) {
        w.batch->Fail(code::kTransportFailed, "READ flushed: connection to " + q->conn->peer + " broke: " + q->conn->Why());
      } else {
        w.batch->Fail(CodeOf(status), std::string("RDMA READ from ") + q->conn->peer + " failed: " + q->conn->Why());
      }
      ReleaseBatch(w.batch, 1, sink_);
      break;
    case WrKind::kBind: {
      Window& win = w.grant->windows[w.window];
      if (ok) {
        // Providers name the window by ibv_mw::rkey in later binds (rxe checks it against the current key), and a
        // type-2 bind through post_send does not update it: keep it current here.
        win.mw->rkey = win.rkey;
        win.state = WindowState::kBound;
        sink_.verbs->windows_bound++;
        if (Owned* o = Find(q->qp)) o->bound++;
        bound_.emplace_back(w.grant, w.window);
        if (w.grant->remove_requested) Invalidate(w.grant, w.window);
      } else {
        sink_.verbs->bind_failures++;
        w.grant->bind_failed = true;
        {
          std::lock_guard<std::mutex> g(w.grant->mu);
          if (w.grant->fail_msg.empty())
            w.grant->fail_msg = std::string("binding a memory window failed: ") + Verbs().wc_status_str(status);
        }
        WindowDead(w.grant, w.window, false);
      }
      BindDone(w.grant);
      break;
    }
    case WrKind::kInvalidate:
      WindowDead(w.grant, w.window, ok);
      break;
  }
}

// The last bind of a grant settles its addGrant promise: the key the reader needs, or the failure.
void VerbsWorker::BindDone(const std::shared_ptr<Grant>& g) {
  if (g->binds_left.fetch_sub(1) != 1) return;
  Completion c;
  c.id = g->add_op;
  if (g->bind_failed) {
    c.code = code::kTransportFailed;
    std::lock_guard<std::mutex> l(g->mu);
    c.message = "grant " + g->id.Hex() + ": " + (g->fail_msg.empty() ? "connection broke" : g->fail_msg);
  } else {
    c.data = EncodeGrantKey(*g, {});
  }
  sink_.post(std::move(c));
}

// Posts LOCAL_INV for a bound window, or deallocates the window when its QP can no longer post.
void VerbsWorker::Invalidate(const std::shared_ptr<Grant>& g, uint32_t i) {
  Window& win = g->windows[i];
  if (win.state != WindowState::kBound) return;
  Qp* q = g->conn->qps[win.qp].get();
  win.state = WindowState::kInvalidating;
  if (g->conn->broken || q->errored) {
    WindowDead(g, i, false);
    return;
  }
  Wr w;
  w.kind = WrKind::kInvalidate;
  w.grant = g;
  w.window = i;
  q->pending.push_back(std::move(w));
}

// A window is gone: back to the free list when it was invalidated cleanly, else deallocated (which also
// invalidates it). The grant's removal settles when its last window dies.
void VerbsWorker::WindowDead(const std::shared_ptr<Grant>& g, uint32_t i, bool reuse) {
  Window& win = g->windows[i];
  bool was_bound = win.state == WindowState::kInvalidating || win.state == WindowState::kBound;
  if (win.state == WindowState::kDead) return;
  win.state = WindowState::kDead;
  if (win.mw) {
    if (reuse) free_mws_.emplace_back(win.mw, win.rkey);
    else ibv_dealloc_mw(win.mw);
    win.mw = nullptr;
  }
  if (was_bound) {
    sink_.verbs->windows_invalidated++;
    if (Owned* o = Find(g->conn->qps[win.qp]->qp))
      if (o->bound > 0) o->bound--;
    for (size_t k = 0; k < bound_.size(); k++) {
      if (bound_[k].first == g && bound_[k].second == i) {
        bound_[k] = std::move(bound_.back());
        bound_.pop_back();
        break;
      }
    }
  }
  if (g->live_windows.fetch_sub(1) == 1 && g->remove_requested && !g->remove_settled.exchange(true)) {
    Completion c;
    c.id = g->remove_op;
    sink_.post(std::move(c));
  }
}

// A window for a new bind and the rkey to bind it with (the key's low byte must change on every bind, so a
// reader holding the previous key is refused).
bool VerbsWorker::TakeMw(Window* win) {
  uint32_t last = 0;
  if (!free_mws_.empty()) {
    std::tie(win->mw, last) = free_mws_.back();
    free_mws_.pop_back();
  } else {
    win->mw = ibv_alloc_mw(nic_->pd, IBV_MW_TYPE_2);
    if (!win->mw) return false;
    last = win->mw->rkey;
  }
  win->rkey = ibv_inc_rkey(last);
  return true;
}

// Deadlines of READs, expiry of grants, windows left on dead QPs.
void VerbsWorker::Scan(int64_t now) {
  for (auto& o : owned_) {
    Qp* q = o.qp;
    if (o.conn->broken) {
      q->errored = true;
      if (!q->pending.empty()) FailPending(o, "connection to " + o.conn->peer + " broke: " + o.conn->Why());
      continue;
    }
    const Wr* head = !q->posted.empty() ? &q->posted.front() : !q->pending.empty() ? &q->pending.front() : nullptr;
    if (head && head->kind == WrKind::kRead && head->batch->deadline_ms <= now) {
      std::string why = "no completion within the batch deadline (a stalled peer or path)";
      head->batch->Fail(code::kTransportTimeout, "RDMA READ from " + o.conn->peer + ": " + why);
      sink_.verbs->timeouts++;
      if (o.conn->Break(why)) sink_.verbs->broken_conns++, Event("broken", o.conn->peer, why);
    }
  }
  for (size_t k = 0; k < bound_.size();) {
    auto [g, i] = bound_[k];
    Window& win = g->windows[i];
    Qp* q = g->conn->qps[win.qp].get();
    size_t before = bound_.size();
    if (win.state == WindowState::kBound && (g->conn->broken || q->errored)) WindowDead(g, i, false);
    else if (win.state == WindowState::kBound && g->expires_ms <= now) Invalidate(g, i);
    if (bound_.size() == before) k++;
  }
}

void VerbsWorker::ReadEvents() {
  const VerbsLib& v = Verbs();
  ibv_async_event ev;
  while (v.get_async_event(nic_->ctx, &ev) == 0) {
    sink_.verbs->async_events++;
    std::string what = v.event_type_str(ev.event_type);
    std::string peer;
    switch (ev.event_type) {
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_QP_REQ_ERR:
      case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_PATH_MIG_ERR:
        if (Owned* o = Find(ev.element.qp)) {
          peer = o->conn->peer;
          if (o->conn->Break(what)) sink_.verbs->broken_conns++;
        }
        what += " on qp " + std::to_string(ev.element.qp->qp_num);
        break;
      case IBV_EVENT_CQ_ERR:
      case IBV_EVENT_DEVICE_FATAL:
        // The CQ (or device) is gone: every connection on this NIC is dead.
        for (auto& o : owned_)
          if (o.conn->Break(what)) sink_.verbs->broken_conns++;
        break;
      case IBV_EVENT_PORT_ERR:
      case IBV_EVENT_PORT_ACTIVE:
        what += " on port " + std::to_string(ev.element.port_num);
        break;
      default:
        break;
    }
    v.ack_async_event(&ev);
    Event("async", peer, what);
  }
}

void VerbsWorker::Sleep(int timeout_ms) {
  if (ibv_req_notify_cq(nic_->cq, 0) != 0) timeout_ms = std::min(timeout_ms, 1);
  if (Poll() > 0) return;  // a completion raced the arming
  pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {nic_->channel->fd, POLLIN, 0}, {nic_->ctx->async_fd, POLLIN, 0}};
  sink_.verbs->sleeps++;
  if (poll(fds, 3, timeout_ms) <= 0) return;
  if (fds[1].revents & POLLIN) sink_.verbs->cq_wakeups++;
  if (fds[0].revents & POLLIN) {
    uint64_t x;
    ssize_t r = read(wake_fd_, &x, sizeof(x));
    (void)r;
  }
  if (fds[1].revents & POLLIN) {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    while (Verbs().get_cq_event(nic_->channel, &cq, &ctx) == 0) unacked_events_++;
    if (unacked_events_ >= 64) Verbs().ack_cq_events(nic_->cq, unacked_events_), unacked_events_ = 0;
  }
  if (fds[2].revents & POLLIN) ReadEvents();
}

// Destroys QPs of broken connections once nothing of theirs is in the send queue (or, with `force`, at once).
bool VerbsWorker::DestroyIdle(bool force) {
  bool any = false;
  for (size_t k = 0; k < owned_.size();) {
    Owned& o = owned_[k];
    if (!o.conn->broken || (!force && (!o.qp->posted.empty() || o.bound > 0))) {
      k++;
      continue;
    }
    if (!o.qp->pending.empty()) FailPending(o, "connection to " + o.conn->peer + " closed");
    for (size_t b = 0; b < bound_.size();) {  // windows must go before their QP
      size_t before = bound_.size();
      auto [g, i] = bound_[b];
      if (g->conn->qps[g->windows[i].qp].get() == o.qp) WindowDead(g, i, false);
      if (bound_.size() == before) b++;
    }
    by_qp_.erase(o.qp->qp);
    {
      std::lock_guard<std::mutex> g(o.conn->mu);
      Verbs().destroy_qp(o.qp->qp);
      o.qp->qp = nullptr;
    }
    if (k != owned_.size() - 1) {
      owned_[k] = std::move(owned_.back());
      by_qp_[owned_[k].qp->qp] = k;
    }
    owned_.pop_back();
    any = true;
  }
  return any;
}

void VerbsWorker::Run() {
  (void)pthread_setname_np(pthread_self(), "kvf-verbs");  // for top -H, perf and the benches' CPU split
  PinToNode(nic_->numa_node);
  int64_t last_progress = NowNs();
  int64_t next_scan = 0;
  int64_t stop_deadline = 0;
  const int64_t spin_ns = int64_t(cfg_.busy_poll_us) * 1000;
  for (;;) {
    bool progress = Drain();
    if (stop_ && stop_deadline == 0) {
      stop_deadline = VerbsNowMs() + kStopDrainMs;
      for (auto& o : owned_) o.conn->Break("transport closed");
    }
    progress |= PostAll();
    progress |= Poll() > 0;
    int64_t now = VerbsNowMs();
    if (now >= next_scan) {
      Scan(now);
      DestroyIdle(false);
      next_scan = now + kScanEveryMs;
    }
    if (stop_deadline != 0) {
      bool drained = true;
      for (auto& o : owned_) drained &= o.qp->posted.empty();
      if (drained || now >= stop_deadline) break;
    }
    if (progress) {
      last_progress = NowNs();
      continue;
    }
    if (cq_inflight_ > 0 && NowNs() - last_progress < spin_ns) continue;
    Sleep(cq_inflight_ > 0 || !bound_.empty() || stop_deadline != 0 ? kScanEveryMs : 200);
  }
  DestroyIdle(true);
  for (auto& [mw, rkey] : free_mws_) ibv_dealloc_mw(mw);
  free_mws_.clear();
  if (unacked_events_) Verbs().ack_cq_events(nic_->cq, unacked_events_), unacked_events_ = 0;
}

}  // namespace kvf
