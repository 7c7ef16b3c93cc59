// The verbs transport: RC queue pairs per (NIC, peer), the pool registered once per NIC (REMOTE_READ, iova 0 so
// remote addresses are pool offsets), RDMA READs striped over NICs and QPs, one native thread posting work and
// polling the CQs. Compiled and load-tested here; never run against a real device (see native/README.md).
// Handshake material is encoded/validated in native/lib/verbs-transport.ts; this file sees plain objects.
#include <fstream>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <random>
#include <thread>

#include "modules.h"
#include "transport.h"
#include "verbs_lib.h"

namespace kvf {
namespace {

constexpr int kCqDepth = 4096;
constexpr uint32_t kQpDepth = 256;  // outstanding RDMA READs per QP

std::string ReadSys(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

Napi::Buffer<uint8_t> GidBuffer(Napi::Env env, const ibv_gid& gid) {
  return Napi::Buffer<uint8_t>::Copy(env, gid.raw, 16);
}

// verbsProbe() -> { ok, reason, devices: [{ name, numaNode, ports: [{ port, state, lid, activeMtu, speed, gids }] }] }
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array devices = Napi::Array::New(env);
  out.Set("devices", devices);
  const VerbsLib& v = Verbs();
  if (!v.handle) {
    out.Set("ok", false);
    out.Set("reason", v.error);
    return out;
  }
  int n = 0;
  ibv_device** list = v.get_device_list(&n);
  if (list == nullptr || n == 0) {
    if (list) v.free_device_list(list);
    out.Set("ok", false);
    out.Set("reason", "no RDMA devices found");
    return out;
  }
  uint32_t usable = 0;
  for (int i = 0; i < n; i++) {
    std::string name = v.get_device_name(list[i]);
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", name);
    std::string numa = ReadSys("/sys/class/infiniband/" + name + "/device/numa_node");
    d.Set("numaNode", numa.empty() ? -1 : std::atoi(numa.c_str()));
    Napi::Array ports = Napi::Array::New(env);
    d.Set("ports", ports);
    ibv_context* ctx = v.open_device(list[i]);
    if (ctx) {
      ibv_device_attr attr{};
      if (v.query_device(ctx, &attr) == 0) {
        for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
          ibv_port_attr pa{};
          if (v.query_port(ctx, p, &pa) != 0) continue;
          Napi::Object po = Napi::Object::New(env);
          po.Set("port", p);
          po.Set("state", pa.state == IBV_PORT_ACTIVE ? "active" : pa.state == IBV_PORT_DOWN ? "down" : "init");
          po.Set("lid", pa.lid);
          po.Set("activeMtu", 128 << pa.active_mtu);
          po.Set("linkLayer", pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "ethernet" : "infiniband");
          po.Set("speed", ReadSys("/sys/class/infiniband/" + name + "/ports/" + std::to_string(p) + "/rate"));
          Napi::Array gids = Napi::Array::New(env);
          for (int g = 0, k = 0; g < pa.gid_tbl_len && g < 16; g++) {
            ibv_gid gid{};
            if (v.query_gid(ctx, p, g, &gid) != 0) break;
            bool zero = true;
            for (uint8_t b : gid.raw) zero &= b == 0;
            if (!zero) gids.Set(k++, GidBuffer(env, gid));
          }
          po.Set("gids", gids);
          if (pa.state == IBV_PORT_ACTIVE) usable++;
          ports.Set(ports.Length(), po);
        }
      }
      v.close_device(ctx);
    }
    devices.Set(devices.Length(), d);
  }
  v.free_device_list(list);
  out.Set("ok", usable > 0);
  if (usable == 0) out.Set("reason", "RDMA devices found but no active port");
  return out;
}

struct Nic {
  std::string name;
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_mr* mr = nullptr;
  ibv_cq* cq = nullptr;
  ibv_port_attr port{};
  ibv_gid gid{};
  uint64_t base = 0;  // address of pool offset 0 in this MR's address space (0 with iova registration)
};

struct Batch {
  uint64_t op = 0;
  size_t outstanding = 0;
  const char* code = nullptr;
  std::string msg;
  uint64_t bytes = 0;
  int64_t deadline = 0;
  int64_t timeout_ms = 0;
};

struct Qp {
  ibv_qp* qp = nullptr;
  Nic* nic = nullptr;
  uint32_t psn = 0;
  uint32_t inflight = 0;
  uint32_t remote_rkey = 0;
  uint64_t remote_base = 0;
};

struct Peer {
  ~Peer() {
    for (auto& q : qps)
      if (q.qp) Verbs().destroy_qp(q.qp);
  }
  std::vector<Qp> qps;
  bool ready = false, broken = false;
  size_t rr = 0;
};

struct Work {  // one RDMA READ waiting for room on a QP
  Batch* batch;
  uint64_t remote, local, length;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class VerbsTransport : public Napi::ObjectWrap<VerbsTransport> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VerbsTransportNative",
                       {InstanceMethod<&VerbsTransport::CreateQps>("createQps"),
                        InstanceMethod<&VerbsTransport::ConnectQps>("connectQps"),
                        InstanceMethod<&VerbsTransport::Readv>("readv"),
                        InstanceMethod<&VerbsTransport::DropPeer>("dropPeer"),
                        InstanceMethod<&VerbsTransport::Counters>("counters"),
                        InstanceMethod<&VerbsTransport::Close>("close")});
  }

  // new VerbsTransportNative(pool, nicNames: string[], portNum, gidIndex)
  explicit VerbsTransport(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VerbsTransport>(info) {
    Napi::Env env = info.Env();
    mem_ = AcquireMemory(info[0], "pool");
    const VerbsLib& v = Verbs();
    if (!v.handle) throw CodedError(env, code::kTransportUnavailable, v.error);
    Napi::Array names = info[1].As<Napi::Array>();
    port_num_ = uint8_t(info[2].As<Napi::Number>().Uint32Value());
    gid_index_ = info[3].As<Napi::Number>().Int32Value();
    int n = 0;
    ibv_device** list = v.get_device_list(&n);
    std::string err;
    for (uint32_t i = 0; i < names.Length() && err.empty(); i++) {
      std::string want = names.Get(i).As<Napi::String>();
      ibv_device* dev = nullptr;
      for (int d = 0; d < n; d++)
        if (want == v.get_device_name(list[d])) dev = list[d];
      if (!dev) err = "no RDMA device named " + want;
      else err = OpenNic(dev, want);
    }
    if (list) v.free_device_list(list);
    if (err.empty() && nics_.empty()) err = "no RDMA devices found";
    if (!err.empty()) {
      Teardown();
      throw CodedError(env, code::kTransportUnavailable, err);
    }
    completer_ = Completer::Create(env, "kvfabric-verbs", Napi::Function());
    thread_ = std::thread([this] { Run(); });
  }

  ~VerbsTransport() override {
    if (closed_ || !completer_) return;
    Stop();
    completer_->Abandon();
  }

 private:
  std::string OpenNic(ibv_device* dev, const std::string& name) {
    const VerbsLib& v = Verbs();
    auto nic = std::make_unique<Nic>();
    nic->name = name;
    nic->ctx = v.open_device(dev);
    if (!nic->ctx) return name + ": ibv_open_device failed: " + ErrnoString(errno);
    Nic* p = nic.get();
    nics_.push_back(std::move(nic));
    if (v.query_port(p->ctx, port_num_, &p->port) != 0) return name + ": ibv_query_port failed";
    if (p->port.state != IBV_PORT_ACTIVE) return name + ": port " + std::to_string(port_num_) + " is not active";
    if (v.query_gid(p->ctx, port_num_, gid_index_, &p->gid) != 0) return name + ": ibv_query_gid failed";
    p->pd = v.alloc_pd(p->ctx);
    if (!p->pd) return name + ": ibv_alloc_pd failed";
    int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ;
    if (v.reg_mr_iova2) {
      p->mr = v.reg_mr_iova2(p->pd, mem_->base(), mem_->size(), 0, unsigned(access));
      p->base = 0;
    } else {
      p->mr = v.reg_mr(p->pd, mem_->base(), mem_->size(), access);
      p->base = reinterpret_cast<uint64_t>(mem_->base());
    }
    if (!p->mr) return name + ": registering the pool failed: " + ErrnoString(errno);
    p->cq = v.create_cq(p->ctx, kCqDepth, nullptr, nullptr, 0);
    if (!p->cq) return name + ": ibv_create_cq failed";
    return "";
  }

  // createQps(peerId, qpsPerNic) -> { nics: [{ gid, lid, mtu, rkey, base, qps: [{ qpn, psn }] }] }
  Napi::Value CreateQps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    std::string id = info[0].As<Napi::String>();
    uint32_t per = info[1].As<Napi::Number>().Uint32Value();
    const VerbsLib& v = Verbs();
    auto peer = std::make_unique<Peer>();
    std::mt19937 rng(std::random_device{}());
    Napi::Array nics = Napi::Array::New(env);
    for (auto& nic : nics_) {
      Napi::Object o = Napi::Object::New(env);
      Napi::Array qps = Napi::Array::New(env);
      for (uint32_t j = 0; j < per; j++) {
        ibv_qp_init_attr ia{};
        ia.send_cq = ia.recv_cq = nic->cq;
        ia.qp_type = IBV_QPT_RC;
        ia.cap.max_send_wr = kQpDepth;
        ia.cap.max_recv_wr = 1;
        ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
        Qp q;
        q.nic = nic.get();
        q.psn = rng() & 0xffffff;
        q.qp = v.create_qp(nic->pd, &ia);
        if (!q.qp) {
          DestroyPeer(*peer);
          throw CodedError(env, code::kTransportFailed, nic->name + ": ibv_create_qp failed: " + ErrnoString(errno));
        }
        ibv_qp_attr a{};
        a.qp_state = IBV_QPS_INIT;
        a.port_num = port_num_;
        a.pkey_index = 0;
        a.qp_access_flags = IBV_ACCESS_REMOTE_READ;
        peer->qps.push_back(q);
        if (v.modify_qp(q.qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
          DestroyPeer(*peer);
          throw CodedError(env, code::kTransportFailed, nic->name + ": QP to INIT failed");
        }
        Napi::Object qo = Napi::Object::New(env);
        qo.Set("qpn", q.qp->qp_num);
        qo.Set("psn", q.psn);
        qps.Set(j, qo);
      }
      o.Set("gid", GidBuffer(env, nic->gid));
      o.Set("lid", nic->port.lid);
      o.Set("mtu", int(nic->port.active_mtu));
      o.Set("rkey", nic->mr->rkey);
      o.Set("base", Napi::BigInt::New(env, nic->base));
      o.Set("qps", qps);
      nics.Set(nics.Length(), o);
    }
    std::lock_guard<std::mutex> g(mu_);
    auto old = peers_.find(id);
    if (old != peers_.end()) {
      Break(*old->second);
      graveyard_.push_back(std::move(old->second));
    }
    peers_[id] = std::move(peer);
    Napi::Object out = Napi::Object::New(env);
    out.Set("nics", nics);
    return out;
  }

  // connectQps(peerId, remote: same shape as createQps' result) -> QPs to RTR and RTS
  void ConnectQps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    std::string id = info[0].As<Napi::String>();
    Napi::Array rnics = info[1].As<Napi::Object>().Get("nics").As<Napi::Array>();
    std::lock_guard<std::mutex> g(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) throw CodedError(env, code::kInvalidArgument, "peerId: no queue pairs created for " + id);
    Peer& peer = *it->second;
    size_t per = peer.qps.size() / nics_.size();
    const VerbsLib& v = Verbs();
    for (size_t i = 0; i < peer.qps.size(); i++) {
      Qp& q = peer.qps[i];
      Napi::Object rn = rnics.Get(uint32_t((i / per) % rnics.Length())).As<Napi::Object>();
      Napi::Object rq = rn.Get("qps").As<Napi::Array>().Get(uint32_t(i % per)).As<Napi::Object>();
      auto gid = rn.Get("gid").As<Napi::Buffer<uint8_t>>();
      bool lossless = false;
      ibv_qp_attr a{};
      a.qp_state = IBV_QPS_RTR;
      a.path_mtu = ibv_mtu(std::min<int>(q.nic->port.active_mtu, rn.Get("mtu").As<Napi::Number>().Int32Value()));
      a.dest_qp_num = rq.Get("qpn").As<Napi::Number>().Uint32Value();
      a.rq_psn = rq.Get("psn").As<Napi::Number>().Uint32Value();
      a.max_dest_rd_atomic = 16;
      a.min_rnr_timer = 12;
      a.ah_attr.dlid = uint16_t(rn.Get("lid").As<Napi::Number>().Uint32Value());
      a.ah_attr.port_num = port_num_;
      a.ah_attr.is_global = q.nic->port.link_layer == IBV_LINK_LAYER_ETHERNET || lossless;
      if (a.ah_attr.is_global) {
        std::memcpy(a.ah_attr.grh.dgid.raw, gid.Data(), 16);
        a.ah_attr.grh.sgid_index = uint8_t(gid_index_);
        a.ah_attr.grh.hop_limit = 64;
      }
      if (v.modify_qp(q.qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0)
        throw CodedError(env, code::kTransportFailed, q.nic->name + ": QP to RTR failed: " + ErrnoString(errno));
      ibv_qp_attr b{};
      b.qp_state = IBV_QPS_RTS;
      b.timeout = 14;
      b.retry_cnt = 7;
      b.rnr_retry = 7;
      b.sq_psn = q.psn;
      b.max_rd_atomic = 16;
      if (v.modify_qp(q.qp, &b, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                    IBV_QP_MAX_QP_RD_ATOMIC) != 0)
        throw CodedError(env, code::kTransportFailed, q.nic->name + ": QP to RTS failed: " + ErrnoString(errno));
      q.remote_rkey = rn.Get("rkey").As<Napi::Number>().Uint32Value();
      bool lossless2 = false;
      q.remote_base = rn.Get("base").As<Napi::BigInt>().Uint64Value(&lossless2);
    }
    peer.ready = true;
  }

  // readv(peerId, grantId, remote, local, lengths, timeoutMs) -> Promise<{ bytes }>
  Napi::Value Readv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    std::vector<uint64_t> remote, local, lengths;
    if (!ReadU64Array(info[2], &remote) || !ReadU64Array(info[3], &local) || !ReadU64Array(info[4], &lengths) ||
        remote.size() != local.size() || remote.size() != lengths.size())
      throw CodedError(env, code::kInvalidArgument, "readv: expected three Float64Arrays of equal length");
    for (size_t i = 0; i < local.size(); i++)
      if (lengths[i] == 0 || lengths[i] > (1u << 30) || !mem_->Contains(local[i], lengths[i]))
        throw CodedError(env, code::kInvalidArgument, "localOffsets[" + std::to_string(i) + "]: outside the pool");
    auto [promise, op] = completer_->Add(env);
    auto* b = new Batch();
    b->op = op;
    b->timeout_ms = info[5].As<Napi::Number>().Int64Value();
    b->deadline = NowMs() + b->timeout_ms;
    counters_.reads_in_flight++;
    std::lock_guard<std::mutex> g(mu_);
    auto it = peers_.find(info[0].As<Napi::String>());
    if (it == peers_.end() || !it->second->ready || it->second->broken) {
      b->outstanding = 1;
      Finish(b, code::kTransportFailed, "no connected queue pairs to peer " + std::string(info[0].As<Napi::String>()));
      return promise;
    }
    b->outstanding = remote.size();
    Peer& p = *it->second;
    for (size_t i = 0; i < remote.size(); i++) {
      queue_.push_back({b, remote[i], local[i], lengths[i]});
      queue_peer_.push_back(&p);
    }
    cv_.notify_one();
    return promise;
  }

  void DropPeer(const Napi::CallbackInfo& info) {
    if (closed_) return;
    std::lock_guard<std::mutex> g(mu_);
    auto it = peers_.find(info[0].As<Napi::String>());
    if (it == peers_.end()) return;
    Break(*it->second);
    graveyard_.push_back(std::move(it->second));
    peers_.erase(it);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) { return counters_.ToObject(info.Env()); }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    Stop();
    completer_->Release(info.Env());
  }

  void CheckOpen(Napi::Env env) {
    if (closed_) throw CodedError(env, code::kTransportFailed, "verbs transport is closed");
  }

  // Moves a peer's QPs to ERROR: outstanding READs flush (with error completions), nothing new is posted.
  void Break(Peer& p) {
    p.broken = true;
    for (auto& q : p.qps) {
      ibv_qp_attr a{};
      a.qp_state = IBV_QPS_ERR;
      if (q.qp) Verbs().modify_qp(q.qp, &a, IBV_QP_STATE);
    }
  }

  void DestroyPeer(Peer& p) {
    for (auto& q : p.qps)
      if (q.qp) Verbs().destroy_qp(q.qp), q.qp = nullptr;
  }

  // mu_ held. Settles the batch when its last READ completes (a failure is remembered until then, so pages are
  // never written after the promise settles).
  void Finish(Batch* b, const char* code, const std::string& msg) {
    if (code && !b->code) b->code = code, b->msg = msg;
    if (--b->outstanding > 0) return;
    counters_.reads_in_flight--;
    if (b->code) counters_.batches_failed++;
    else counters_.batches_ok++, counters_.bytes_read += b->bytes;
    Completion c;
    c.id = b->op;
    c.code = b->code;
    c.message = b->msg;
    c.bytes = double(b->bytes);
    completer_->Post(std::move(c));
    delete b;
  }

  // The poll thread: posts queued READs where QPs have room, polls every CQ, enforces batch deadlines.
  void Run() {
    ibv_wc wc[64];
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      if (queue_.empty() && inflight_ == 0) {
        cv_.wait_for(lk, std::chrono::milliseconds(100));
        graveyard_.clear();  // nothing in flight: dropped peers' QPs can go
        continue;
      }
      // post
      for (size_t k = queue_.size(); k > 0; k--) {
        Work w = queue_.front();
        Peer* p = queue_peer_.front();
        queue_.pop_front();
        queue_peer_.pop_front();
        if (p->broken) {
          Finish(w.batch, code::kTransportFailed, "peer dropped or failed");
          continue;
        }
        Qp& q = p->qps[p->rr++ % p->qps.size()];
        if (q.inflight >= kQpDepth) {
          queue_.push_back(w);
          queue_peer_.push_back(p);
          continue;
        }
        ibv_sge sge{q.nic->base + w.local, uint32_t(w.length), q.nic->mr->lkey};
        ibv_send_wr wr{};
        ibv_send_wr* bad = nullptr;
        wr.wr_id = reinterpret_cast<uint64_t>(new std::pair<Batch*, Qp*>(w.batch, &q));
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_RDMA_READ;
        wr.send_flags = IBV_SEND_SIGNALED;
        wr.wr.rdma.remote_addr = q.remote_base + w.remote;
        wr.wr.rdma.rkey = q.remote_rkey;
        if (ibv_post_send(q.qp, &wr, &bad) != 0) {
          delete reinterpret_cast<std::pair<Batch*, Qp*>*>(wr.wr_id);
          counters_.errors++;
          Finish(w.batch, code::kTransportFailed, "ibv_post_send failed");
          continue;
        }
        q.inflight++;
        inflight_++;
        w.batch->bytes += w.length;
      }
      // poll
      for (auto& nic : nics_) {
        int n = ibv_poll_cq(nic->cq, 64, wc);
        for (int i = 0; i < n; i++) {
          auto* ctx = reinterpret_cast<std::pair<Batch*, Qp*>*>(wc[i].wr_id);
          ctx->second->inflight--;
          inflight_--;
          if (wc[i].status != IBV_WC_SUCCESS) {
            counters_.errors++;
            Finish(ctx->first, code::kTransportFailed,
                   std::string("RDMA READ failed: ") + Verbs().wc_status_str(wc[i].status));
          } else {
            Finish(ctx->first, nullptr, "");
          }
          delete ctx;
        }
      }
      lk.unlock();
      std::this_thread::yield();
      lk.lock();
    }
  }

  void Stop() {
    closed_ = true;
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
      for (auto& [id, p] : peers_) Break(*p);
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    // Drain flushed completions briefly so no READ lands after the pool reference is dropped.
    for (int spin = 0; spin < 1000 && inflight_ > 0; spin++) {
      ibv_wc wc[64];
      for (auto& nic : nics_) {
        int n = ibv_poll_cq(nic->cq, 64, wc);
        for (int i = 0; i < n; i++) delete reinterpret_cast<std::pair<Batch*, Qp*>*>(wc[i].wr_id), inflight_--;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    Teardown();
  }

  void Teardown() {
    const VerbsLib& v = Verbs();
    for (auto& [id, p] : peers_) DestroyPeer(*p);
    for (auto& p : graveyard_)
      if (p) DestroyPeer(*p);
    peers_.clear();
    graveyard_.clear();
    for (auto& nic : nics_) {
      if (nic->cq) v.destroy_cq(nic->cq);
      if (nic->mr) v.dereg_mr(nic->mr);
      if (nic->pd) v.dealloc_pd(nic->pd);
      if (nic->ctx) v.close_device(nic->ctx);
    }
    nics_.clear();
    mem_.reset();
  }

  MemoryRef mem_;
  uint8_t port_num_ = 1;
  int gid_index_ = 0;
  std::vector<std::unique_ptr<Nic>> nics_;
  TransportCounters counters_;
  Completer* completer_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, closed_ = false;
  std::unordered_map<std::string, std::unique_ptr<Peer>> peers_;
  std::vector<std::unique_ptr<Peer>> graveyard_;
  std::deque<Work> queue_;
  std::deque<Peer*> queue_peer_;
  uint64_t inflight_ = 0;
};

}  // namespace

void InitVerbs(Napi::Env env, Napi::Object exports) {
  exports.Set("verbsProbe", Napi::Function::New(env, Probe, "verbsProbe"));
  exports.Set("VerbsTransportNative", VerbsTransport::Define(env));
}

}  // namespace kvf
