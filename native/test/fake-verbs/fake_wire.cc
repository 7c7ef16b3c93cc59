// The fake's data path: post_send / poll_cq / req_notify_cq (the ops the header's inlines call), the "wire"
// thread that executes work requests asynchronously and in post order per QP, error transitions with flushes,
// async events, the fault-injection control file and the stats file.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fake_verbs.h"

namespace fv {

// ---------------------------------------------------------------- completions and errors

static ibv_wc_opcode WcOpcode(ibv_wr_opcode op) {
  switch (op) {
    case IBV_WR_BIND_MW: return IBV_WC_BIND_MW;
    case IBV_WR_LOCAL_INV: return IBV_WC_LOCAL_INV;
    default: return IBV_WC_RDMA_READ;
  }
}

void RaiseAsync(Context* c, const ibv_async_event& ev) {
  c->async.Push(ev);
  G().stats.async_events++;
  G().stats_dirty = true;
}

// Puts one completion on the QP's send CQ. A CQ that is full overruns: it raises IBV_EVENT_CQ_ERR once and delivers
// nothing from then on (what a real NIC does; the completion is lost).
static void Deliver(Qp* q, const Wr& w, ibv_wc_status st, uint32_t byte_len) {
  State& g = G();
  Cq* c = CQ(q->qp.send_cq);
  if (c->overrun) return;
  if (int(c->q.size()) >= c->cq.cqe) {
    c->overrun = true;
    g.stats.cq_overruns++;
    g.stats_dirty = true;
    ibv_async_event ev{};
    ev.event_type = IBV_EVENT_CQ_ERR;
    ev.element.cq = &c->cq;
    RaiseAsync(reinterpret_cast<Context*>(c->cq.context), ev);
    return;
  }
  Cqe e{};
  e.wc.wr_id = w.wr_id;
  e.wc.status = st;
  e.wc.opcode = WcOpcode(w.op);
  e.wc.byte_len = byte_len;
  e.wc.qp_num = q->qp.qp_num;
  e.qp = q;
  e.seq = w.seq;
  c->q.push_back(e);
  // An armed CQ fires once; solicited-only arming fires for error completions only (READs are never solicited)
  if (c->armed && (!c->solicited_only || st != IBV_WC_SUCCESS) && c->cq.channel != nullptr) {
    c->armed = false;
    reinterpret_cast<Channel*>(c->cq.channel)->q.Push(c);
  }
}

// Completes the WR at the head of q's send queue: a success only if signaled, an error always.
static void CompleteHead(Qp* q, ibv_wc_status st, uint32_t byte_len) {
  Wr w = q->sq.front();
  q->sq.pop_front();
  if (w.op == IBV_WR_RDMA_READ) q->reads_queued--;
  if (st != IBV_WC_SUCCESS || w.signaled) Deliver(q, w, st, byte_len);
}

// Moves q to ERR: every queued WR completes with IBV_WC_WR_FLUSH_ERR, in order, signaled or not (hardware
// generates flush completions for all outstanding WRs).
void QpToError(Qp* q) {
  State& g = G();
  if (q->State() != IBV_QPS_ERR) g.stats.qp_errors++, g.stats_dirty = true;
  q->attr.qp_state = q->qp.state = IBV_QPS_ERR;
  while (!q->sq.empty()) {
    if (q->sq.front().op == IBV_WR_RDMA_READ) g.stats.reads_flushed++, g.stats_dirty = true;
    CompleteHead(q, IBV_WC_WR_FLUSH_ERR, 0);
  }
}

void PurgeCqes(Qp* q) {
  for (ibv_cq* cq : {q->qp.send_cq, q->qp.recv_cq}) {
    auto& d = CQ(cq)->q;
    for (auto it = d.begin(); it != d.end();) it = (it->qp == q) ? d.erase(it) : it + 1;
  }
}

// ---------------------------------------------------------------- ops: post_send, poll_cq, req_notify_cq

int PostSendLocked(Qp* q, ibv_send_wr* wr, ibv_send_wr** bad_wr, bool via_bind_verb) {
  State& g = G();
  for (; wr != nullptr; wr = wr->next) {
    int err = 0;
    const ibv_qp_state st = q->State();
    if (st != IBV_QPS_RTS && st != IBV_QPS_ERR) err = EINVAL;  // posting needs RTS (ERR: accepted, flushed)
    else if (q->posted - q->retired >= q->cap.max_send_wr) err = ENOMEM;  // send queue full
    else if (wr->opcode == IBV_WR_RDMA_READ) {
      if (wr->num_sge < 0 || wr->num_sge > int(q->cap.max_send_sge) || (wr->send_flags & IBV_SEND_INLINE))
        err = EINVAL;
    } else if (wr->opcode == IBV_WR_BIND_MW) {
      const Mw* m = MW(wr->bind_mw.mw);
      if (m == nullptr || (m->mw.type == IBV_MW_TYPE_1) != via_bind_verb) err = EINVAL;
      else if (wr->bind_mw.bind_info.length > (1ull << 31)) err = EOPNOTSUPP;  // mlx5: KLM limit of 2 GiB
    } else if (wr->opcode != IBV_WR_LOCAL_INV) {
      err = EINVAL;  // the stand-in speaks only READ, BIND_MW and LOCAL_INV (README.md)
    }
    if (err != 0) {
      *bad_wr = wr;
      return err;
    }
    Wr w;
    w.wr_id = wr->wr_id;
    w.op = wr->opcode;
    w.signaled = q->sig_all || (wr->send_flags & IBV_SEND_SIGNALED);
    w.seq = q->posted++;
    if (w.op == IBV_WR_RDMA_READ) {
      w.num_sge = wr->num_sge;
      if (w.num_sge > 0) memcpy(w.sge, wr->sg_list, sizeof(ibv_sge) * size_t(w.num_sge));
      w.remote_addr = wr->wr.rdma.remote_addr;
      w.rkey = wr->wr.rdma.rkey;
      q->reads_queued++;
      if (uint64_t(q->reads_queued) > g.stats.max_reads_outstanding)
        g.stats.max_reads_outstanding = uint64_t(q->reads_queued), g.stats_dirty = true;
    } else if (w.op == IBV_WR_BIND_MW) {
      w.mw_index = wr->bind_mw.mw->rkey >> 8;
      w.rkey = wr->bind_mw.rkey;
      w.bind = wr->bind_mw.bind_info;
      w.mr_key = w.bind.mr != nullptr ? w.bind.mr->lkey : 0;
    } else {
      w.rkey = wr->invalidate_rkey;
    }
    q->sq.push_back(w);
    if (st == IBV_QPS_ERR) QpToError(q);  // mlx5: the post succeeds and the WR completes flushed
  }
  g.cv.notify_all();
  return 0;
}

int PostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) {
  std::lock_guard<std::mutex> l(G().mu);
  return PostSendLocked(Q(qp), wr, bad_wr, false);
}

int PollCq(ibv_cq* cq, int n, ibv_wc* wc) {
  std::lock_guard<std::mutex> l(G().mu);
  Cq* c = CQ(cq);
  int got = 0;
  while (got < n && !c->q.empty()) {
    const Cqe& e = c->q.front();
    wc[got++] = e.wc;
    // Send-queue slots (this WR's and every earlier unsignaled one's) are free once the completion is polled
    if (e.seq + 1 > e.qp->retired) e.qp->retired = e.seq + 1;
    c->q.pop_front();
  }
  if (G().stats_dirty) FlushStatsLocked(false);  // the stats file is current whenever a completion is seen
  return got;
}

int ReqNotifyCq(ibv_cq* cq, int solicited_only) {
  std::lock_guard<std::mutex> l(G().mu);
  CQ(cq)->armed = true;  // fires on the next completion only (not for ones already queued), as the spec says
  CQ(cq)->solicited_only = solicited_only != 0;
  return 0;
}

// ---------------------------------------------------------------- executing work requests

static bool Inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t size) {
  return addr >= base && len <= size && addr - base <= size - len;
}

static const Mr* FindMr(uint32_t key) {
  auto it = G().mrs.find(key >> 8);
  return (it != G().mrs.end() && it->second->mr.lkey == key) ? it->second : nullptr;
}

static bool GidEq(const ibv_gid& a, const ibv_gid& b) { return memcmp(&a, &b, sizeof a) == 0; }

// Does the path between q and its peer r work both ways? RoCE packets go to the dgid of the AV and come back to
// the peer's dgid; both ends must use the same RoCE version. A mismatch loses packets (the READ times out).
static bool PathOk(Qp* q, Qp* r) {
  const Device* qd = q->Ctx()->dev;
  const Device* rd = r->Ctx()->dev;
  const ibv_global_route& qg = q->attr.ah_attr.grh;
  const ibv_global_route& rg = r->attr.ah_attr.grh;
  return r->attr.dest_qp_num == q->qp.qp_num && GidEq(qg.dgid, rd->gids[rg.sgid_index]) &&
         GidEq(rg.dgid, qd->gids[qg.sgid_index]) && qd->gid_types[qg.sgid_index] == rd->gid_types[rg.sgid_index];
}

// Where [addr, +len) of the responder r answers for rkey: an MR of r's PD with REMOTE_READ, or a window bound to r
// (type 2) / of r's PD (type 1) with REMOTE_READ whose bound range holds the whole read. nullptr = refused.
static const uint8_t* ResolveRemote(Qp* r, uint32_t rkey, uint64_t addr, uint64_t len) {
  if (const Mr* m = FindMr(rkey)) {
    if (m->mr.pd != r->qp.pd || !(m->access & IBV_ACCESS_REMOTE_READ) || !Inside(addr, len, m->iova, m->mr.length))
      return nullptr;
    return static_cast<const uint8_t*>(m->mr.addr) + (addr - m->iova);
  }
  auto it = G().mws.find(rkey >> 8);
  if (it == G().mws.end()) return nullptr;
  const Mw* w = it->second;
  if (!w->valid || w->cur_rkey != rkey || w->mr == nullptr || w->mw.pd != r->qp.pd) return nullptr;
  if (w->mw.type == IBV_MW_TYPE_2 && w->qp != r) return nullptr;
  if (!(w->access & IBV_ACCESS_REMOTE_READ) || !Inside(addr, len, w->addr, w->len)) return nullptr;
  return static_cast<const uint8_t*>(w->mr->mr.addr) + (addr - w->mr->iova);
}

static bool FaultApplies(Qp* q) {
  const std::string& d = G().ctl.fault_device;
  return d.empty() || d == q->Ctx()->dev->dev.name;
}

static void RefreshControlLocked(bool force);

// A remote access violation: NAK to the requester (REM_ACCESS_ERR); the responder QP goes to ERR with the
// affiliated "local access violation" async event (IB spec responder behaviour; the pair must be reconnected).
static void RefuseAtResponder(Qp* q, Qp* r) {
  ibv_async_event ev{};
  ev.event_type = IBV_EVENT_QP_ACCESS_ERR;
  ev.element.qp = &r->qp;
  RaiseAsync(r->Ctx(), ev);
  if (r != q) QpToError(r);  // a QP connected to itself goes to ERR once its error completion is out
}

constexpr int kStall = -1;  // "no completion yet": leave the READ at the head of its queue

// Executes the READ at the head of q. Returns a wc status, or kStall.
static int ExecRead(Qp* q, Wr& w, uint32_t* byte_len) {
  State& g = G();
  const bool faults = FaultApplies(q);
  if (faults && g.ctl.stall) return kStall;
  if (faults && g.ctl.read_delay_ms > 0) {
    if (w.ready_ms == 0) w.ready_ms = NowMs() + g.ctl.read_delay_ms;
    if (NowMs() < w.ready_ms) return kStall;
  }
  if (faults && g.qp_fatal_pending) {
    g.qp_fatal_pending = false;
    ibv_async_event ev{};
    ev.event_type = IBV_EVENT_QP_FATAL;
    ev.element.qp = &q->qp;
    RaiseAsync(q->Ctx(), ev);
    return IBV_WC_WR_FLUSH_ERR;  // the caller moves q to ERR, which flushes this READ and the rest
  }
  uint64_t len = 0;
  for (int i = 0; i < w.num_sge; ++i) len += w.sge[i].length;
  auto it = g.qps.find(q->attr.dest_qp_num);
  Qp* r = (it == g.qps.end()) ? nullptr : it->second;
  const bool peer_up = r != nullptr && (r->State() == IBV_QPS_RTR || r->State() == IBV_QPS_RTS) && PathOk(q, r);
  if (faults && g.ctl.read_error != IBV_WC_SUCCESS && g.reads_since_change >= g.ctl.read_error_after) {
    if (g.ctl.read_error == IBV_WC_REM_ACCESS_ERR && peer_up) RefuseAtResponder(q, r);
    return g.ctl.read_error;
  }
  if (faults) g.reads_since_change++;
  if (len > g.cfg.max_msg) return IBV_WC_LOC_LEN_ERR;
  uint8_t* dst[kMaxSge];
  for (int i = 0; i < w.num_sge; ++i) {
    const Mr* m = FindMr(w.sge[i].lkey);
    if (m == nullptr || m->mr.pd != q->qp.pd || !(m->access & IBV_ACCESS_LOCAL_WRITE) ||
        !Inside(w.sge[i].addr, w.sge[i].length, m->iova, m->mr.length))
      return IBV_WC_LOC_PROT_ERR;
    dst[i] = static_cast<uint8_t*>(m->mr.addr) + (w.sge[i].addr - m->iova);
  }
  // No responder (gone, not RTR/RTS, wrong path): the request is retried until retry_cnt runs out; with
  // timeout 0 (infinite) it never completes at all.
  if (!peer_up) return q->attr.timeout == 0 ? kStall : IBV_WC_RETRY_EXC_ERR;
  // An initiator depth above the responder's max_dest_rd_atomic: hardware NAKs (invalid request) once that many
  // READs are really in flight; the fake, to be deterministic, fails the first READ of such a pair.
  if (q->attr.max_rd_atomic > r->attr.max_dest_rd_atomic) return IBV_WC_REM_INV_REQ_ERR;
  const uint8_t* src = nullptr;
  if (len > 0) {  // zero-length READs carry no rkey check
    if (r->attr.qp_access_flags & IBV_ACCESS_REMOTE_READ) src = ResolveRemote(r, w.rkey, w.remote_addr, len);
    if (src == nullptr) {
      RefuseAtResponder(q, r);
      return IBV_WC_REM_ACCESS_ERR;
    }
  }
  uint64_t off = 0;
  for (int i = 0; i < w.num_sge; ++i) {
    memmove(dst[i], src + off, w.sge[i].length);
    off += w.sge[i].length;
  }
  *byte_len = uint32_t(len);
  g.stats.bytes_read += len;
  return IBV_WC_SUCCESS;
}

// Type 2 bind (BIND_MW work request) or type 1 bind (ibv_bind_mw): the rules of the IB spec as rxe checks them.
static int ExecBind(Qp* q, const Wr& w) {
  auto it = G().mws.find(w.mw_index);
  if (it == G().mws.end()) return IBV_WC_MW_BIND_ERR;  // deallocated since it was posted
  Mw* m = it->second;
  const ibv_mw_bind_info& b = w.bind;
  const Mr* mr = (b.mr != nullptr) ? FindMr(w.mr_key) : nullptr;
  if (b.mr != nullptr && (mr == nullptr || &mr->mr != b.mr)) return IBV_WC_MW_BIND_ERR;  // deregistered
  if (m->mw.pd != q->qp.pd) return IBV_WC_MW_BIND_ERR;  // C10-72
  if ((w.rkey >> 8) != (m->mw.rkey >> 8)) return IBV_WC_MW_BIND_ERR;   // index part names this window
  if ((w.rkey & 0xff) == (m->cur_rkey & 0xff)) return IBV_WC_MW_BIND_ERR;  // key part must change
  if (m->mw.type == IBV_MW_TYPE_2 && (m->valid || mr == nullptr || b.length == 0))
    return IBV_WC_MW_BIND_ERR;  // o10-37.2.30: type 2 binds only from the free state, never to nothing
  if (mr != nullptr) {
    if (mr->mr.pd != q->qp.pd) return IBV_WC_MW_BIND_ERR;
    if (!(mr->access & IBV_ACCESS_MW_BIND)) return IBV_WC_MW_BIND_ERR;  // C10-73
    if ((b.mw_access_flags & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
        !(mr->access & IBV_ACCESS_LOCAL_WRITE))
      return IBV_WC_MW_BIND_ERR;  // C10-74
    if (b.mw_access_flags & IBV_ACCESS_ZERO_BASED) return IBV_WC_MW_BIND_ERR;
    if (!Inside(b.addr, b.length, mr->iova, mr->mr.length)) return IBV_WC_MW_BIND_ERR;
  }
  m->cur_rkey = w.rkey;
  m->mr = const_cast<Mr*>(mr);
  m->addr = b.addr;
  m->len = (mr != nullptr) ? b.length : 0;
  m->access = int(b.mw_access_flags);
  m->qp = (m->mw.type == IBV_MW_TYPE_2) ? q : nullptr;
  m->valid = true;
  return IBV_WC_SUCCESS;
}

// LOCAL_INV of a type 2 window: it must be bound (valid), with this exact rkey, in the QP's PD. Afterwards it is
// free and answers to nothing. (Local invalidation of MRs needs fast-registration MRs, which the fake lacks.)
static int ExecLocalInv(Qp* q, const Wr& w) {
  auto it = G().mws.find(w.rkey >> 8);
  if (it == G().mws.end()) return IBV_WC_LOC_QP_OP_ERR;
  Mw* m = it->second;
  if (m->mw.type != IBV_MW_TYPE_2 || !m->valid || m->cur_rkey != w.rkey || m->mw.pd != q->qp.pd)
    return IBV_WC_LOC_QP_OP_ERR;  // the status rxe reports; mlx5 may differ
  m->valid = false;
  m->qp = nullptr;
  return IBV_WC_SUCCESS;
}

// Runs every QP's queue as far as it can go. Returns whether anything completed.
static bool RunQueues() {
  State& g = G();
  bool progressed = false;
  for (auto& kv : g.qps) {
    Qp* q = kv.second;
    while (q->State() == IBV_QPS_RTS && !q->sq.empty()) {
      Wr& w = q->sq.front();
      uint32_t byte_len = 0;
      int st;
      if (w.op == IBV_WR_RDMA_READ) {
        RefreshControlLocked(false);  // may move QPs (even q) to ERR: re-check before using w
        if (q->State() != IBV_QPS_RTS) break;
        st = ExecRead(q, w, &byte_len);
        if (st == kStall) break;
        if (st != IBV_WC_WR_FLUSH_ERR) {
          g.stats.reads++;
          if (st == IBV_WC_SUCCESS) g.stats.reads_ok++;
          else if (st == IBV_WC_REM_ACCESS_ERR) g.stats.reads_refused++;
          else g.stats.reads_failed++;
        }
      } else if (w.op == IBV_WR_BIND_MW) {
        st = ExecBind(q, w);
        (st == IBV_WC_SUCCESS ? g.stats.binds : g.stats.binds_failed)++;
      } else {
        st = ExecLocalInv(q, w);
        (st == IBV_WC_SUCCESS ? g.stats.invalidates : g.stats.invalidates_failed)++;
      }
      g.stats_dirty = true;
      progressed = true;
      if (st == IBV_WC_WR_FLUSH_ERR) {  // qp_fatal: the whole queue flushes
        QpToError(q);
        break;
      }
      CompleteHead(q, ibv_wc_status(st), byte_len);
      if (st != IBV_WC_SUCCESS) QpToError(q);  // an error completion moves the QP to ERR; the rest flush
    }
  }
  return progressed;
}

static void WireMain(uint64_t gen) {
  State& g = G();
  std::unique_lock<std::mutex> l(g.mu);
  while (g.wire_gen == gen) {
    RefreshControlLocked(false);
    bool progressed = RunQueues();
    if (g.stats_dirty) FlushStatsLocked(false);
    // Idle: wait for a post/modify; wake every 10 ms anyway to notice control-file edits and read delays.
    if (!progressed) g.cv.wait_for(l, std::chrono::milliseconds(10));
  }
}

void StartWireLocked() {
  State& g = G();
  if (g.wire.joinable()) return;
  g.wire = std::thread(WireMain, g.wire_gen);
}

std::thread StopWireLocked() {
  State& g = G();
  g.wire_gen++;
  g.cv.notify_all();
  return std::move(g.wire);
}

// At unload/exit: stop the wire thread and write the final stats. Objects still open are left to the caller.
__attribute__((destructor)) static void Shutdown() {
  std::thread t;
  {
    std::lock_guard<std::mutex> l(G().mu);
    t = StopWireLocked();
    FlushStatsLocked(true);
  }
  if (t.joinable()) t.join();
}

// ---------------------------------------------------------------- control file and stats

static void ParseControl(const std::string& text, Control* c) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      const char* ws = " \t\r";
      s.erase(0, s.find_first_not_of(ws));
      s.erase(s.find_last_not_of(ws) + 1);
      return s;
    };
    const std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    const long n = strtol(v.c_str(), nullptr, 10);
    if (k == "read_error") {
      c->read_error = v == "retry_exc" ? IBV_WC_RETRY_EXC_ERR : v == "rem_access" ? IBV_WC_REM_ACCESS_ERR
                                                                                  : IBV_WC_SUCCESS;
    } else if (k == "read_error_after") c->read_error_after = n;
    else if (k == "stall") c->stall = n != 0;
    else if (k == "qp_fatal") c->qp_fatal = n != 0;
    else if (k == "port_err") c->port_err = n != 0;
    else if (k == "device_fatal") c->device_fatal = n != 0;
    else if (k == "read_delay_ms") c->read_delay_ms = n;
    else if (k == "fault_device") c->fault_device = v;
  }
}

// Re-reads the control file when its identity (inode, size, mtime) changed; checked before every READ and by
// the wire thread every 10 ms. A change resets read_error_after's count and fires the one-shot faults.
static void RefreshControlLocked(bool force) {
  State& g = G();
  if (g.cfg.control.empty()) return;
  struct stat st {};
  const bool exists = stat(g.cfg.control.c_str(), &st) == 0;
  const uint64_t mtime = uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec);
  if (!force && g.ctl_seen && exists == g.ctl_exists &&
      (!exists || (st.st_ino == g.ctl_ino && uint64_t(st.st_size) == g.ctl_size && mtime == g.ctl_mtime_ns)))
    return;
  g.ctl_seen = true;
  g.ctl_exists = exists;
  g.ctl_ino = st.st_ino, g.ctl_size = uint64_t(st.st_size), g.ctl_mtime_ns = mtime;
  std::string text;
  if (FILE* f = exists ? fopen(g.cfg.control.c_str(), "r") : nullptr) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    fclose(f);
  }
  g.ctl = Control{};
  ParseControl(text, &g.ctl);
  g.reads_since_change = 0;
  g.qp_fatal_pending = g.ctl.qp_fatal;
  g.stats.control_changes++;
  for (Context* c : g.contexts) {
    const bool applies = g.ctl.fault_device.empty() || g.ctl.fault_device == c->dev->dev.name;
    if (applies && g.ctl.port_err) {
      ibv_async_event ev{};
      ev.event_type = IBV_EVENT_PORT_ERR;
      ev.element.port_num = 1;
      RaiseAsync(c, ev);
    }
    if (applies && g.ctl.device_fatal) {
      ibv_async_event ev{};
      ev.event_type = IBV_EVENT_DEVICE_FATAL;
      RaiseAsync(c, ev);
      for (auto& kv : g.qps)
        if (kv.second->Ctx() == c) QpToError(kv.second);
    }
  }
  FlushStatsLocked(true);
  g.cv.notify_all();  // a lifted stall lets queued READs run
}

// Writes $KVF_FAKE_VERBS_CONTROL.stats atomically (temp file + rename), so a reader never sees half of it.
void FlushStatsLocked(bool force) {
  State& g = G();
  if (g.cfg.control.empty() || (!force && !g.stats_dirty)) return;
  g.stats_dirty = false;
  const Stats& s = g.stats;
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "reads=%llu\nreads_ok=%llu\nreads_refused=%llu\nreads_failed=%llu\nreads_flushed=%llu\n"
                   "bytes_read=%llu\nbinds=%llu\nbinds_failed=%llu\ninvalidates=%llu\ninvalidates_failed=%llu\n"
                   "cq_overruns=%llu\nqp_errors=%llu\nasync_events=%llu\nmax_reads_outstanding=%llu\n"
                   "control_changes=%llu\nunacked_cq_events_at_destroy=%llu\n",
                   (unsigned long long)s.reads, (unsigned long long)s.reads_ok,
                   (unsigned long long)s.reads_refused, (unsigned long long)s.reads_failed,
                   (unsigned long long)s.reads_flushed, (unsigned long long)s.bytes_read,
                   (unsigned long long)s.binds, (unsigned long long)s.binds_failed,
                   (unsigned long long)s.invalidates, (unsigned long long)s.invalidates_failed,
                   (unsigned long long)s.cq_overruns, (unsigned long long)s.qp_errors,
                   (unsigned long long)s.async_events, (unsigned long long)s.max_reads_outstanding,
                   (unsigned long long)s.control_changes, (unsigned long long)s.unacked_cq_events_at_destroy);
  const std::string path = g.cfg.control + ".stats";
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  if (FILE* f = fopen(tmp.c_str(), "w")) {
    bool ok = fwrite(buf, 1, size_t(n), f) == size_t(n);
    ok = (fclose(f) == 0) && ok;
    if (ok) rename(tmp.c_str(), path.c_str());
    else remove(tmp.c_str());
  }
}

}  // namespace fv
