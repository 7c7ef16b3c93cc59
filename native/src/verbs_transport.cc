// The `VerbsTransportNative` ObjectWrap: NICs opened off the JS thread, reading and serving connections kept apart
// (one of each per peer), READs cut at window and slice boundaries and handed to the NIC workers, grants bound as
// type-2 memory windows to the reader's QPs. Argument validation with field-naming messages lives in
// native/lib/verbs-transport.ts; the checks here only keep native code safe.
#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "modules.h"
#include "threaded_object.h"
#include "transport.h"
#include "verbs_lib.h"
#include "verbs_worker.h"

namespace kvf {

void InitVerbsProbe(Napi::Env env, Napi::Object exports);

namespace {

uint32_t U32(const Napi::Object& o, const char* k) { return o.Get(k).As<Napi::Number>().Uint32Value(); }

class VerbsTransport : public Napi::ObjectWrap<VerbsTransport>, ThreadedObject {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VerbsTransportNative",
                       {InstanceMethod<&VerbsTransport::Start>("start"),
                        InstanceMethod<&VerbsTransport::Info>("info"),
                        InstanceMethod<&VerbsTransport::CreateQps>("createQps"),
                        InstanceMethod<&VerbsTransport::ConnectQps>("connectQps"),
                        InstanceMethod<&VerbsTransport::AcceptQps>("acceptQps"),
                        InstanceMethod<&VerbsTransport::AddGrant>("addGrant"),
                        InstanceMethod<&VerbsTransport::RemoveGrant>("removeGrant"),
                        InstanceMethod<&VerbsTransport::Readv>("readv"),
                        InstanceMethod<&VerbsTransport::DropPeer>("dropPeer"),
                        InstanceMethod<&VerbsTransport::Counters>("counters"),
                        InstanceMethod<&VerbsTransport::Close>("close")});
  }

  // new VerbsTransportNative(pool, config, onEvent)
  explicit VerbsTransport(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VerbsTransport>(info) {
    Napi::Env env = info.Env();
    mem_ = AcquireMemory(info[0], "pool");
    if (!Verbs().handle) throw CodedError(env, code::kTransportUnavailable, Verbs().error);
    Napi::Object c = info[1].As<Napi::Object>();
    Napi::Array names = c.Get("nics").As<Napi::Array>();
    for (uint32_t i = 0; i < names.Length(); i++) cfg_.nics.push_back(names.Get(i).As<Napi::String>());
    cfg_.port_num = uint8_t(U32(c, "portNum"));
    cfg_.gid_index = c.Get("gidIndex").As<Napi::Number>().Int32Value();
    cfg_.queue_depth = U32(c, "queueDepth");
    cfg_.cq_depth = U32(c, "cqDepth");
    cfg_.read_depth = U32(c, "readDepth");
    cfg_.post_depth = std::max(U32(c, "postDepth"), cfg_.read_depth);
    cfg_.slice_bytes = U32(c, "sliceBytes");
    cfg_.traffic_class = uint8_t(U32(c, "trafficClass"));
    cfg_.service_level = uint8_t(U32(c, "serviceLevel"));
    cfg_.ack_timeout = uint8_t(U32(c, "ackTimeout"));
    cfg_.retry_count = uint8_t(U32(c, "retryCount"));
    cfg_.allow_pool_rkey = c.Get("allowPoolRkey").As<Napi::Boolean>();
    cfg_.busy_poll_us = U32(c, "busyPollUs");
    completer_ = Completer::Create(env, "kvfabric-verbs", info[2].IsFunction() ? info[2].As<Napi::Function>()
                                                                              : Napi::Function());
    Completer* comp = completer_;
    sink_ = VerbsSink{&counters_, &verbs_counters_, [comp](Completion x) { comp->Post(std::move(x)); }};
    WatchEnvExit(env);
  }

  ~VerbsTransport() override { EndUnclosed(); }

 private:
  // start() -> Promise: opens every NIC in parallel on native threads (registration of a large pool takes
  // seconds per NIC), then starts one worker per NIC.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (opener_.joinable() || started_) throw CodedError(env, code::kInvalidArgument, "start: already called");
    auto [promise, op] = completer_->Add(env);
    for (size_t i = 0; i < cfg_.nics.size(); i++) {
      auto nic = std::make_unique<Nic>();
      nic->index = int(i);
      nic->name = cfg_.nics[i];
      nics_.push_back(std::move(nic));
    }
    opener_ = std::thread([this, op = op] {
      std::vector<std::string> errs(nics_.size());
      std::vector<std::thread> ts;
      for (size_t i = 0; i < nics_.size(); i++)
        ts.emplace_back([this, i, &errs] { errs[i] = OpenNic(cfg_, mem_->base(), mem_->size(), nics_[i].get()); });
      for (auto& t : ts) t.join();
      Completion c;
      c.id = op;
      for (auto& e : errs)
        if (!e.empty() && !c.code) c.code = code::kTransportUnavailable, c.message = e;
      if (!c.code) {
        for (auto& nic : nics_) workers_.push_back(std::make_unique<VerbsWorker>(nic.get(), cfg_, sink_));
        for (auto& w : workers_) w->Start();
        started_ = true;
      }
      sink_.post(std::move(c));
    });
    return promise;
  }

  void CheckOpen(Napi::Env env) {
    if (closed_) throw CodedError(env, code::kTransportFailed, "verbs transport is closed");
  }

  void CheckStarted(Napi::Env env) {
    CheckOpen(env);
    if (!started_) throw CodedError(env, code::kTransportUnavailable, "verbs transport: start() has not finished");
  }

  // info() -> [{ name, numaNode, gidIndex, gidType, gid, linkLayer, mtu, qpDepth, cqDepth, rdAtomInit, rdAtomResp,
  //   maxMsg, maxMw, mwType2, registerMs, poolRkey }]
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    Napi::Array out = Napi::Array::New(env);
    for (auto& n : nics_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", n->name);
      o.Set("numaNode", n->numa_node);
      o.Set("gidIndex", n->gid_index);
      o.Set("gidType", n->gid_type);
      o.Set("gid", Napi::Buffer<uint8_t>::Copy(env, n->gid.raw, 16));
      o.Set("linkLayer", n->ethernet() ? "ethernet" : "infiniband");
      o.Set("mtu", 128 << n->port.active_mtu);
      o.Set("qpDepth", n->qp_depth);
      o.Set("cqDepth", n->cq_depth);
      o.Set("rdAtomInit", n->rd_atom_init);
      o.Set("rdAtomResp", n->rd_atom_resp);
      o.Set("maxMsg", double(n->max_msg));
      o.Set("maxMw", n->max_mw);
      o.Set("mwType2", n->mw_type2);
      o.Set("registerMs", n->register_ms);
      o.Set("poolRkey", n->mr->rkey);  // for tests proving the NIC refuses it
      out.Set(out.Length(), o);
    }
    return out;
  }

  // Creates `count` QPs for one direction with `peer`, QP i on NIC nic_of(i), and moves them to INIT.
  std::shared_ptr<Conn> NewConn(Napi::Env env, const std::string& peer, bool serving, const std::vector<int>& nic_of) {
    const VerbsLib& v = Verbs();
    auto conn = std::make_shared<Conn>();
    conn->peer = peer;
    conn->serving = serving;
    static thread_local std::mt19937 rng(std::random_device{}());
    for (size_t i = 0; i < nic_of.size(); i++) {
      Nic* nic = nics_[size_t(nic_of[i])].get();
      auto q = std::make_unique<Qp>();
      if (!FitsWrId(q.get())) {
        DestroyUnadopted(*conn);
        throw CodedError(env, code::kTransportFailed,
                         "verbs: a queue pair's state lies above 2^48, where a work request id cannot name it");
      }
      q->nic = nic;
      q->conn = conn.get();
      q->index = uint32_t(i);
      q->psn = rng() & 0xffffff;
      ibv_qp_init_attr ia{};
      ia.send_cq = ia.recv_cq = nic->cq;
      ia.qp_type = IBV_QPT_RC;
      ia.sq_sig_all = 0;  // completions only where PostAll asks (VerbsWorker::PostAll)
      ia.cap.max_send_wr = nic->qp_depth;
      ia.cap.max_recv_wr = 1;
      ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
      q->qp = v.create_qp(nic->pd, &ia);
      if (!q->qp) {
        int err = errno;
        DestroyUnadopted(*conn);
        throw CodedError(env, code::kTransportFailed, nic->name + ": ibv_create_qp failed: " + ErrnoString(err));
      }
      conn->qps.push_back(std::move(q));
      ibv_qp_attr a{};
      a.qp_state = IBV_QPS_INIT;
      a.port_num = cfg_.port_num;
      a.pkey_index = 0;
      // Reading QPs grant nothing to the remote side; serving QPs allow READs (through windows bound to them).
      a.qp_access_flags = serving ? IBV_ACCESS_REMOTE_READ : 0;
      if (v.modify_qp(conn->qps.back()->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
        int err = errno;
        DestroyUnadopted(*conn);
        throw CodedError(env, code::kTransportFailed, nic->name + ": QP to INIT failed: " + ErrnoString(err));
      }
    }
    return conn;
  }

  void DestroyUnadopted(Conn& conn) {
    for (auto& q : conn.qps)
      if (q->qp) Verbs().destroy_qp(q->qp), q->qp = nullptr;
  }

  // Moves QP `q` to RTR then RTS towards the remote QP described by (rnic, rq); `rd_atom` outstanding READs.
  void Connect(Napi::Env env, Qp* q, const Napi::Object& rnic, const Napi::Object& rq, uint32_t rd_atom, bool serving) {
    const VerbsLib& v = Verbs();
    Nic* nic = q->nic;
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = ibv_mtu(std::min<int>(nic->port.active_mtu, int(U32(rnic, "mtu"))));
    a.dest_qp_num = U32(rq, "qpn");
    a.rq_psn = U32(rq, "psn");
    a.max_dest_rd_atomic = uint8_t(serving ? std::min(rd_atom, nic->rd_atom_resp) : 0);
    a.min_rnr_timer = 12;
    a.ah_attr.dlid = uint16_t(U32(rnic, "lid"));
    a.ah_attr.sl = cfg_.service_level;
    a.ah_attr.port_num = cfg_.port_num;
    a.ah_attr.is_global = nic->ethernet() ? 1 : 0;
    if (a.ah_attr.is_global) {
      auto gid = rnic.Get("gid").As<Napi::Buffer<uint8_t>>();
      std::memcpy(a.ah_attr.grh.dgid.raw, gid.Data(), 16);
      a.ah_attr.grh.sgid_index = uint8_t(nic->gid_index);
      a.ah_attr.grh.hop_limit = 64;
      a.ah_attr.grh.traffic_class = cfg_.traffic_class;
    }
    if (v.modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0)
      throw CodedError(env, code::kTransportFailed, nic->name + ": QP to RTR failed: " + ErrnoString(errno));
    ibv_qp_attr b{};
    b.qp_state = IBV_QPS_RTS;
    b.timeout = cfg_.ack_timeout;
    b.retry_cnt = cfg_.retry_count;
    b.rnr_retry = cfg_.retry_count;
    b.sq_psn = q->psn;
    b.max_rd_atomic = uint8_t(serving ? 0 : std::min(rd_atom, nic->rd_atom_init));
    if (v.modify_qp(q->qp, &b, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                   IBV_QP_MAX_QP_RD_ATOMIC) != 0)
      throw CodedError(env, code::kTransportFailed, nic->name + ": QP to RTS failed: " + ErrnoString(errno));
  }

  // Our side of the handshake material: per NIC gid/lid/mtu, our READ depth, our QPs in conn order.
  Napi::Object Material(Napi::Env env, const Conn& conn, bool serving) {
    Napi::Object out = Napi::Object::New(env);
    Napi::Array nics = Napi::Array::New(env);
    uint32_t rd = 255;
    for (auto& n : nics_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("gid", Napi::Buffer<uint8_t>::Copy(env, n->gid.raw, 16));
      o.Set("lid", n->port.lid);
      o.Set("mtu", int(n->port.active_mtu));
      nics.Set(nics.Length(), o);
      rd = std::min(rd, serving ? n->rd_atom_resp : n->rd_atom_init);
    }
    Napi::Array qps = Napi::Array::New(env);
    for (auto& q : conn.qps) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("nic", q->nic->index);
      o.Set("qpn", q->qp->qp_num);
      o.Set("psn", q->psn);
      qps.Set(qps.Length(), o);
    }
    out.Set("nics", nics);
    out.Set("rdAtom", rd);
    out.Set("qps", qps);
    return out;
  }

  // Replaces the conn of `peer` in `map`; the old one breaks and its QPs go when their work has flushed.
  void Install(std::unordered_map<std::string, std::shared_ptr<Conn>>& map, const std::string& peer,
               std::shared_ptr<Conn> conn) {
    auto it = map.find(peer);
    if (it != map.end()) Retire(it->second, "replaced by a new handshake");
    map[peer] = std::move(conn);
  }

  void Retire(const std::shared_ptr<Conn>& conn, const std::string& why) {
    conn->Break(why);
    if (!conn->ready) DestroyUnadopted(*conn);  // never handed to a worker
  }

  void Adopt(const std::shared_ptr<Conn>& conn) {
    std::vector<std::vector<Qp*>> per(nics_.size());
    for (auto& q : conn->qps) per[size_t(q->nic->index)].push_back(q.get());
    for (size_t i = 0; i < per.size(); i++)
      if (!per[i].empty()) workers_[i]->Adopt(conn, std::move(per[i]));
    conn->ready = true;
  }

  // createQps(peerId, qpsPerNic) -> material (reading side; QP i on local NIC i mod nics)
  Napi::Value CreateQps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    std::string peer = info[0].As<Napi::String>();
    uint32_t per = info[1].As<Napi::Number>().Uint32Value();
    std::vector<int> nic_of(per * nics_.size());
    for (size_t i = 0; i < nic_of.size(); i++) nic_of[i] = int(i % nics_.size());
    auto conn = NewConn(env, peer, false, nic_of);
    Napi::Object m = Material(env, *conn, false);
    Install(reading_, peer, std::move(conn));
    return m;
  }

  // connectQps(peerId, serverMaterial) (reading side): the server answered with one QP per ours, in order.
  void ConnectQps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    std::string peer = info[0].As<Napi::String>();
    Napi::Object m = info[1].As<Napi::Object>();
    auto it = reading_.find(peer);
    if (it == reading_.end() || it->second->ready)
      throw CodedError(env, code::kInvalidArgument, "peerId: no queue pairs waiting to connect to " + peer);
    std::shared_ptr<Conn> conn = it->second;
    Napi::Array rnics = m.Get("nics").As<Napi::Array>();
    Napi::Array rqps = m.Get("qps").As<Napi::Array>();
    if (rqps.Length() != conn->qps.size())
      throw CodedError(env, code::kInvalidArgument, "serverMaterial: QP count differs from ours");
    uint32_t rd = U32(m, "rdAtom");
    try {
      for (uint32_t i = 0; i < rqps.Length(); i++) {
        Napi::Object rq = rqps.Get(i).As<Napi::Object>();
        Connect(env, conn->qps[i].get(), rnics.Get(U32(rq, "nic")).As<Napi::Object>(), rq, rd, false);
      }
    } catch (...) {
      Retire(conn, "connect failed");
      reading_.erase(peer);
      throw;
    }
    Adopt(conn);
  }

  // acceptQps(peerId, readerMaterial) -> material (serving side): one QP per reader QP, on our NIC (its NIC mod ours).
  Napi::Value AcceptQps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    std::string peer = info[0].As<Napi::String>();
    Napi::Object m = info[1].As<Napi::Object>();
    Napi::Array rnics = m.Get("nics").As<Napi::Array>();
    Napi::Array rqps = m.Get("qps").As<Napi::Array>();
    std::vector<int> nic_of(rqps.Length());
    for (uint32_t i = 0; i < rqps.Length(); i++)
      nic_of[i] = int(U32(rqps.Get(i).As<Napi::Object>(), "nic") % nics_.size());
    auto conn = NewConn(env, peer, true, nic_of);
    uint32_t rd = U32(m, "rdAtom");
    try {
      for (uint32_t i = 0; i < rqps.Length(); i++) {
        Napi::Object rq = rqps.Get(i).As<Napi::Object>();
        Connect(env, conn->qps[i].get(), rnics.Get(U32(rq, "nic")).As<Napi::Object>(), rq, rd, true);
      }
    } catch (...) {
      DestroyUnadopted(*conn);
      throw;
    }
    Napi::Object out = Material(env, *conn, true);
    Install(serving_, peer, conn);
    Adopt(conn);
    return out;
  }

  // addGrant(grantId, peerId, ranges: Float64Array (offset, length)*, ttlMs, windowBytes) -> Promise<{ data }>
  Napi::Value AddGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    GrantId id;
    if (!ReadGrantId(info[0], &id)) throw CodedError(env, code::kInvalidArgument, "grantId: expected 16 bytes");
    std::string peer = info[1].As<Napi::String>();
    std::vector<uint64_t> ranges;
    if (!ReadU64Array(info[2], &ranges) || ranges.empty() || ranges.size() % 2)
      throw CodedError(env, code::kInvalidArgument, "ranges: expected (offset, length) pairs");
    int64_t ttl = info[3].As<Napi::Number>().Int64Value();
    uint64_t piece = std::max<uint64_t>(4096, uint64_t(info[4].As<Napi::Number>().Int64Value()));
    auto it = serving_.find(peer);
    if (it == serving_.end() || it->second->broken)
      throw CodedError(env, code::kGrantRefused, "peer " + peer + " has no live connection to read through");
    if (grants_.count(id)) throw CodedError(env, code::kInvalidArgument, "grantId: already live");
    auto g = std::make_shared<Grant>();
    g->id = id;
    g->conn = it->second;
    g->expires_ms = VerbsNowMs() + std::max<int64_t>(ttl, 0);
    g->pool_rkey = !nics_[0]->mw_type2;
    uint32_t nq = uint32_t(g->conn->qps.size());
    // Windows: every range cut into pieces of at most `piece` bytes, spread round-robin over the reader's QPs.
    for (size_t i = 0; i < ranges.size(); i += 2) {
      if (!mem_->Contains(ranges[i], ranges[i + 1]) || ranges[i + 1] == 0)
        throw CodedError(env, code::kInvalidArgument, "ranges: outside the pool");
      for (uint64_t off = 0; off < ranges[i + 1]; off += piece) {
        Window w;
        w.offset = ranges[i] + off;
        w.length = std::min(piece, ranges[i + 1] - off);
        w.qp = uint32_t(g->windows.size() % nq);
        g->windows.push_back(w);
      }
    }
    auto [promise, op] = completer_->Add(env);
    g->add_op = op;
    grants_[id] = g;
    if (g->pool_rkey) {  // nothing to bind: the key names the pool's rkey on each QP's NIC
      std::vector<uint32_t> rkeys;
      for (auto& q : g->conn->qps) rkeys.push_back(q->nic->mr->rkey);
      for (auto& w : g->windows) w.state = WindowState::kDead;
      Completion c;
      c.id = op;
      c.data = EncodeGrantKey(*g, rkeys);
      sink_.post(std::move(c));
      return promise;
    }
    g->binds_left = int32_t(g->windows.size());
    g->live_windows = int32_t(g->windows.size());
    std::vector<std::vector<std::pair<Qp*, Wr>>> per(nics_.size());
    for (uint32_t i = 0; i < g->windows.size(); i++) {
      Qp* q = g->conn->qps[g->windows[i].qp].get();
      Wr w;
      w.kind = WrKind::kBind;
      w.grant = g;
      w.window = i;
      per[size_t(q->nic->index)].emplace_back(q, std::move(w));
    }
    for (size_t i = 0; i < per.size(); i++)
      if (!per[i].empty()) workers_[i]->Submit(std::move(per[i]));
    return promise;
  }

  // removeGrant(grantId) -> Promise: settles when every window of the grant is invalidated (its pages may then be
  // reused: no READ through it can land any more).
  Napi::Value RemoveGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GrantId id;
    if (!ReadGrantId(info[0], &id)) throw CodedError(env, code::kInvalidArgument, "grantId: expected 16 bytes");
    auto [promise, op] = completer_->Add(env);
    auto it = grants_.find(id);
    if (closed_ || it == grants_.end()) {
      Completion c;
      c.id = op;
      sink_.post(std::move(c));
      return promise;
    }
    std::shared_ptr<Grant> g = it->second;
    grants_.erase(it);
    g->remove_op = op;
    g->remove_requested = true;
    if (g->live_windows == 0) {
      if (!g->remove_settled.exchange(true)) {
        Completion c;
        c.id = op;
        sink_.post(std::move(c));
      }
      return promise;
    }
    std::vector<bool> touched(nics_.size());
    for (auto& w : g->windows) touched[size_t(g->conn->qps[w.qp]->nic->index)] = true;
    for (size_t i = 0; i < touched.size(); i++)
      if (touched[i]) workers_[i]->Remove(g);
    return promise;
  }

  // readv(peerId, grantId, remote, local, lengths, timeoutMs, grantKey) -> Promise<{ bytes }>
  Napi::Value Readv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckStarted(env);
    std::vector<uint64_t> remote, local, lengths;
    if (!ReadU64Array(info[2], &remote) || !ReadU64Array(info[3], &local) || !ReadU64Array(info[4], &lengths) ||
        remote.size() != local.size() || remote.size() != lengths.size())
      throw CodedError(env, code::kInvalidArgument, "readv: expected three Float64Arrays of equal length");
    for (size_t i = 0; i < local.size(); i++)
      if (lengths[i] == 0 || !mem_->Contains(local[i], lengths[i]))
        throw CodedError(env, code::kInvalidArgument, "localOffsets[" + std::to_string(i) + "]: outside the pool");
    int64_t timeout = info[5].As<Napi::Number>().Int64Value();
    auto key = info[6].As<Napi::Buffer<uint8_t>>();
    std::vector<KeyWindow> wins;
    if (!ParseGrantKey(key.Data(), key.Length(), &wins))
      throw CodedError(env, code::kInvalidArgument, "grantKey: malformed");
    std::string peer = info[0].As<Napi::String>();
    auto [promise, op] = completer_->Add(env);
    auto* b = new Batch();
    b->op = op;
    b->deadline_ms = VerbsNowMs() + timeout;
    counters_.reads_in_flight++;
    auto it = reading_.find(peer);
    if (it == reading_.end() || !it->second->ready || it->second->broken) {
      b->Fail(code::kTransportFailed, it == reading_.end() || !it->second->ready
                                          ? "no connected queue pairs to peer " + peer
                                          : "connection to " + peer + " broke: " + it->second->Why() + "; reconnect");
      ReleaseBatch(b, 1, sink_);
      return promise;
    }
    Conn& conn = *it->second;
    // Cut every descriptor at window and slice boundaries; refuse the whole batch if any byte is not granted.
    std::vector<std::vector<std::pair<Qp*, Wr>>> per(nics_.size());
    int64_t count = 0;
    const char* refused = nullptr;
    std::string why;
    for (size_t i = 0; i < remote.size() && !refused; i++) {
      uint64_t r = remote[i], l = local[i], left = lengths[i];
      while (left > 0) {
        auto w = std::upper_bound(wins.begin(), wins.end(), r, [](uint64_t x, const KeyWindow& k) { return x < k.offset; });
        if (w == wins.begin() || r >= (w - 1)->offset + (w - 1)->length) {
          refused = code::kGrantRefused, why = "remoteOffsets[" + std::to_string(i) + "]: not covered by grant";
          break;
        }
        --w;
        if (w->qp >= conn.qps.size()) {
          refused = code::kInvalidArgument, why = "grantKey: names QP " + std::to_string(w->qp) + " of " +
                                                  std::to_string(conn.qps.size());
          break;
        }
        Qp* q = conn.qps[w->qp].get();
        Nic* nic = q->nic;
        uint64_t n = std::min({left, w->offset + w->length - r, cfg_.slice_bytes, nic->max_msg});
        Wr x;
        x.kind = WrKind::kRead;
        x.batch = b;
        x.local = nic->base + l;
        x.lkey = nic->mr->lkey;
        x.remote = r;  // windows and the pool are addressed by pool offset (iova 0)
        x.rkey = w->rkey;
        x.length = uint32_t(n);
        per[size_t(nic->index)].emplace_back(q, std::move(x));
        count++;
        r += n, l += n, left -= n;
      }
    }
    if (refused) {
      b->Fail(refused, why);
      ReleaseBatch(b, 1, sink_);
      return promise;
    }
    b->outstanding += count;
    for (size_t i = 0; i < per.size(); i++)
      if (!per[i].empty()) workers_[i]->Submit(std::move(per[i]));
    ReleaseBatch(b, 1, sink_);
    return promise;
  }

  // dropPeer(peerId, reading, serving): forget one or both directions with the peer.
  void DropPeer(const Napi::CallbackInfo& info) {
    if (closed_ || !started_) return;
    std::string peer = info[0].As<Napi::String>();
    bool reading = info[1].As<Napi::Boolean>(), serving = info[2].As<Napi::Boolean>();
    if (reading) {
      auto it = reading_.find(peer);
      if (it != reading_.end()) Retire(it->second, "dropped"), reading_.erase(it);
    }
    if (serving) {
      auto it = serving_.find(peer);
      if (it != serving_.end()) Retire(it->second, "dropped"), serving_.erase(it);
    }
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Object o = counters_.ToObject(info.Env());
    o.Set("timeouts", double(verbs_counters_.timeouts));
    o.Set("windowsBound", double(verbs_counters_.windows_bound));
    o.Set("windowsInvalidated", double(verbs_counters_.windows_invalidated));
    o.Set("bindFailures", double(verbs_counters_.bind_failures));
    o.Set("asyncEvents", double(verbs_counters_.async_events));
    o.Set("brokenConnections", double(verbs_counters_.broken_conns));
    o.Set("posts", double(verbs_counters_.posts));
    o.Set("workRequests", double(verbs_counters_.wrs));
    o.Set("completions", double(verbs_counters_.completions));
    o.Set("readsPosted", double(verbs_counters_.reads_posted));
    o.Set("sleeps", double(verbs_counters_.sleeps));
    o.Set("cqWakeups", double(verbs_counters_.cq_wakeups));
    o.Set("liveGrants", double(grants_.size()));
    return o;
  }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    Shutdown();
    completer_->Release(info.Env());
  }

  void Shutdown() override {
    closed_ = true;
    if (opener_.joinable()) opener_.join();
    for (auto& [p, c] : reading_) c->Break("transport closed");
    for (auto& [p, c] : serving_) c->Break("transport closed");
    for (auto& w : workers_) w->Stop();
    workers_.clear();
    for (auto& [p, c] : reading_) DestroyUnadopted(*c);
    for (auto& [p, c] : serving_) DestroyUnadopted(*c);
    reading_.clear();
    serving_.clear();
    grants_.clear();
    for (auto& n : nics_) CloseNic(n.get());
    nics_.clear();
    mem_.reset();
  }

  MemoryRef mem_;
  VerbsConfig cfg_;
  std::vector<std::unique_ptr<Nic>> nics_;
  std::vector<std::unique_ptr<VerbsWorker>> workers_;
  std::thread opener_;
  std::atomic<bool> started_{false};
  TransportCounters counters_;
  VerbsCounters verbs_counters_;
  VerbsSink sink_;
  std::unordered_map<std::string, std::shared_ptr<Conn>> reading_, serving_;
  std::unordered_map<GrantId, std::shared_ptr<Grant>, GrantIdHash> grants_;
};

}  // namespace

void InitVerbs(Napi::Env env, Napi::Object exports) {
  InitVerbsProbe(env, exports);
  exports.Set("VerbsTransportNative", VerbsTransport::Define(env));
}

}  // namespace kvf
