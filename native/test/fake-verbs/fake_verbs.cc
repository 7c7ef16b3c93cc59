// A fault-injecting stand-in for libibverbs (soname libibverbs.so.1) for kvfabric's native tests: the verbs
// control path (devices, PDs, MRs, MWs, CQs, completion channels, RC QPs, async events). The data path (post_send,
// poll_cq, the "wire" thread executing READs, the control file and the stats file) is in fake_wire.cc.
// Contract (environment, control file, stats) and the differences from real hardware: README.md next to this file.
#include <fcntl.h>
#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fake_verbs.h"

namespace fv {

State& G() {
  static State* s = new State;  // never destroyed: a straggling thread may still call in during exit
  return *s;
}

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

static long EnvLong(const char* name, long dflt) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  char* end = nullptr;
  long x = strtol(v, &end, 0);
  return (end != nullptr && *end == '\0') ? x : dflt;
}

// GID table of device number n (1-based), like a ConnectX port with IPv6 link-local and 10.88.0.n configured:
// 0 = RoCE v1 fe80::<EUI-64 of MAC 02:00:0a:58:00:n>, 1 = the same as RoCE v2, 2 = RoCE v1 ::ffff:10.88.0.n,
// 3 = RoCE v2 ::ffff:10.88.0.n (the one to use), 4..7 empty. KVF_FAKE_VERBS_GIDS=v1only makes all four RoCE v1.
static void BuildGids(Device* d, bool v1only) {
  const uint8_t n = uint8_t(d->index + 1);
  const uint8_t ll[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x0a, 0xff, 0xfe, 0x58, 0x00, n};
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 88, 0, n};
  memcpy(d->gids[0].raw, ll, 16);
  memcpy(d->gids[1].raw, ll, 16);
  memcpy(d->gids[2].raw, v4, 16);
  memcpy(d->gids[3].raw, v4, 16);
  for (int i = 0; i < 4; ++i)
    d->gid_types[i] = (v1only || i % 2 == 0) ? IBV_GID_TYPE_ROCE_V1 : IBV_GID_TYPE_ROCE_V2;
}

void EnsureInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    Config& c = G().cfg;
    const char* names = getenv("KVF_FAKE_VERBS_DEVICES");
    std::string list = (names != nullptr && *names != '\0') ? names : "mlx5_0";
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      std::string name = list.substr(pos, comma - pos);
      while (!name.empty() && name.back() == ' ') name.pop_back();
      while (!name.empty() && name.front() == ' ') name.erase(0, 1);
      if (!name.empty() && name.size() < IBV_SYSFS_NAME_MAX) c.names.push_back(name);
      pos = comma + 1;
    }
    c.max_rd_atom = int(EnvLong("KVF_FAKE_VERBS_MAX_RD_ATOM", 16));
    c.max_cqe = int(EnvLong("KVF_FAKE_VERBS_MAX_CQE", 4096));
    c.max_qp_wr = int(EnvLong("KVF_FAKE_VERBS_MAX_QP_WR", 1024));
    c.max_msg = uint64_t(EnvLong("KVF_FAKE_VERBS_MAX_MSG", 1L << 30));
    c.no_mw = EnvLong("KVF_FAKE_VERBS_NO_MW", 0) != 0;
    const char* gids = getenv("KVF_FAKE_VERBS_GIDS");
    c.v1only = gids != nullptr && strcmp(gids, "v1only") == 0;
    const char* ctl = getenv("KVF_FAKE_VERBS_CONTROL");
    if (ctl != nullptr) c.control = ctl;
    for (size_t i = 0; i < c.names.size(); ++i) {
      auto d = std::make_unique<Device>();
      memset(&d->dev, 0, sizeof d->dev);
      d->index = int(i);
      d->dev.node_type = IBV_NODE_CA;
      d->dev.transport_type = IBV_TRANSPORT_IB;
      snprintf(d->dev.name, sizeof d->dev.name, "%s", c.names[i].c_str());
      snprintf(d->dev.dev_name, sizeof d->dev.dev_name, "uverbs%zu", i);
      snprintf(d->dev.dev_path, sizeof d->dev.dev_path, "/sys/class/infiniband_verbs/uverbs%zu", i);
      snprintf(d->dev.ibdev_path, sizeof d->dev.ibdev_path, "/sys/class/infiniband/%s", c.names[i].c_str());
      BuildGids(d.get(), c.v1only);
      G().devices.push_back(std::move(d));
    }
  });
}

static Device* Dev(ibv_context* ctx) { return C(ctx)->dev; }

// ---- ops table entries implemented here (MW); the data-path ones live in fake_wire.cc ----

static ibv_mw* AllocMw(ibv_pd* pd, ibv_mw_type type) {
  std::lock_guard<std::mutex> l(G().mu);
  if (G().cfg.no_mw) return errno = EOPNOTSUPP, nullptr;
  if (type != IBV_MW_TYPE_1 && type != IBV_MW_TYPE_2) return errno = EINVAL, nullptr;
  Mw* m = new Mw;
  memset(&m->mw, 0, sizeof m->mw);
  uint32_t index = G().next_key_index++;
  m->mw.context = pd->context;
  m->mw.pd = pd;
  m->mw.rkey = m->cur_rkey = (index << 8) | ((index * 29 + 3) & 0xff);
  m->mw.handle = G().next_handle++;
  m->mw.type = type;
  m->valid = (type == IBV_MW_TYPE_1);  // type 1: valid with zero length; type 2: free until bound
  G().mws[index] = m;
  P(pd)->refs++;
  return &m->mw;
}

static int DeallocMw(ibv_mw* mw) {
  std::lock_guard<std::mutex> l(G().mu);
  G().mws.erase(mw->rkey >> 8);
  P(mw->pd)->refs--;
  delete MW(mw);
  return 0;
}

// ibv_bind_mw (type 1 only; the header's static inline already refused type 2 and a PD mismatch): posted as a
// BIND_MW work request with the next rkey, like mlx5_bind_mw; mw->rkey is updated once it is posted.
static int BindMw(ibv_qp* qp, ibv_mw* mw, ibv_mw_bind* b) {
  if (b->bind_info.mw_access_flags & IBV_ACCESS_ZERO_BASED) return errno = EINVAL;
  ibv_send_wr wr{};
  wr.wr_id = b->wr_id;
  wr.send_flags = b->send_flags;
  wr.opcode = IBV_WR_BIND_MW;
  wr.bind_mw.mw = mw;
  wr.bind_mw.rkey = ibv_inc_rkey(mw->rkey);
  wr.bind_mw.bind_info = b->bind_info;
  ibv_send_wr* bad = nullptr;
  std::lock_guard<std::mutex> l(G().mu);
  int rc = PostSendLocked(Q(qp), &wr, &bad, true);
  if (rc == 0) mw->rkey = wr.bind_mw.rkey;
  return rc;
}

static int PostRecv(ibv_qp*, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  *bad = wr;  // READs only: the fake has no receive queue
  return EOPNOTSUPP;
}

}  // namespace fv

using namespace fv;

extern "C" {

// ---------------------------------------------------------------- devices and contexts

ibv_device** ibv_get_device_list(int* num_devices) {
  EnsureInit();
  const size_t n = G().devices.size();
  auto** list = static_cast<ibv_device**>(calloc(n + 1, sizeof(ibv_device*)));
  if (list == nullptr) return errno = ENOMEM, nullptr;
  for (size_t i = 0; i < n; ++i) list[i] = &G().devices[i]->dev;
  if (num_devices != nullptr) *num_devices = int(n);
  return list;
}

void ibv_free_device_list(ibv_device** list) { free(list); }

const char* ibv_get_device_name(ibv_device* device) { return device->name; }

int ibv_query_device(ibv_context* context, ibv_device_attr* a) {
  const Config& c = G().cfg;
  const Device* d = Dev(context);
  memset(a, 0, sizeof *a);
  snprintf(a->fw_ver, sizeof a->fw_ver, "fake-verbs 1.0");
  a->node_guid = htobe64(0x02000afffe580000ull | uint64_t(d->index + 1));
  a->sys_image_guid = a->node_guid;
  a->max_mr_size = ~0ull;
  a->page_size_cap = 0xfffffffffffff000ull;
  a->vendor_id = 0x02c9;  // Mellanox
  a->vendor_part_id = 4123;  // ConnectX-6
  a->hw_ver = 0;
  a->max_qp = 1 << 17;
  a->max_qp_wr = c.max_qp_wr;
  a->device_cap_flags = IBV_DEVICE_BAD_PKEY_CNTR | IBV_DEVICE_BAD_QKEY_CNTR | IBV_DEVICE_CHANGE_PHY_PORT |
                        IBV_DEVICE_PORT_ACTIVE_EVENT | IBV_DEVICE_SYS_IMAGE_GUID | IBV_DEVICE_RC_RNR_NAK_GEN;
  if (!c.no_mw) a->device_cap_flags |= IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B;
  a->max_sge = kMaxSge;
  a->max_sge_rd = kMaxSge;
  a->max_cq = 1 << 16;
  a->max_cqe = c.max_cqe;
  a->max_mr = 1 << 20;
  a->max_pd = 1 << 16;
  a->max_qp_rd_atom = c.max_rd_atom;
  a->max_qp_init_rd_atom = c.max_rd_atom;
  a->max_res_rd_atom = c.max_rd_atom << 10;
  a->atomic_cap = IBV_ATOMIC_HCA;
  a->max_mw = c.no_mw ? 0 : 1024;
  a->max_pkeys = 128;
  a->local_ca_ack_delay = 16;
  a->phys_port_cnt = 1;
  return 0;
}

// Exported with the compat type; callers (the header's inline, the addon via dlsym) pass a full ibv_port_attr.
int ibv_query_port(ibv_context*, uint8_t port_num, struct _compat_ibv_port_attr* compat) {
  if (port_num != 1) return EINVAL;
  auto* a = reinterpret_cast<ibv_port_attr*>(compat);
  memset(a, 0, sizeof *a);
  a->state = IBV_PORT_ACTIVE;
  a->max_mtu = IBV_MTU_4096;
  a->active_mtu = IBV_MTU_4096;
  a->gid_tbl_len = kGidTableLen;
  a->port_cap_flags = IBV_PORT_CM_SUP | IBV_PORT_IP_BASED_GIDS;
  a->max_msg_sz = uint32_t(G().cfg.max_msg);
  a->pkey_tbl_len = 1;
  a->lid = 0;
  a->max_vl_num = 4;
  a->active_width = 2;    // 4x
  a->active_speed = 64;   // HDR
  a->phys_state = 5;      // LinkUp
  a->link_layer = IBV_LINK_LAYER_ETHERNET;
  return 0;
}

int ibv_query_gid(ibv_context* context, uint8_t port_num, int index, ibv_gid* gid) {
  if (port_num != 1 || index < 0 || index >= kGidTableLen) return errno = EINVAL, -1;
  *gid = Dev(context)->gids[index];  // empty entries read as zero, like rdma-core
  return 0;
}

int _ibv_query_gid_ex(ibv_context* context, uint32_t port_num, uint32_t gid_index, ibv_gid_entry* entry,
                      uint32_t flags, size_t entry_size) {
  if (flags != 0) return EOPNOTSUPP;
  if (port_num != 1 || gid_index >= kGidTableLen || entry_size < sizeof(ibv_gid_entry)) return EINVAL;
  const Device* d = Dev(context);
  static const ibv_gid zero{};
  if (memcmp(&d->gids[gid_index], &zero, sizeof zero) == 0) return ENODATA;  // empty entry
  memset(entry, 0, entry_size);
  entry->gid = d->gids[gid_index];
  entry->gid_index = gid_index;
  entry->port_num = port_num;
  entry->gid_type = d->gid_types[gid_index];
  entry->ndev_ifindex = uint32_t(100 + d->index);
  return 0;
}

ibv_context* ibv_open_device(ibv_device* device) {
  EnsureInit();
  Context* c = new Context;
  memset(&c->ctx, 0, sizeof c->ctx);
  if (!c->async.Open()) {
    delete c;
    return nullptr;
  }
  c->dev = reinterpret_cast<Device*>(device);
  ibv_context& x = c->ctx;
  x.device = device;
  x.cmd_fd = -1;
  x.async_fd = c->async.fd;
  x.num_comp_vectors = 1;
  x.abi_compat = nullptr;  // not a verbs_context: the header's inlines take the legacy (exported symbol) paths
  pthread_mutex_init(&x.mutex, nullptr);
  x.ops._compat_query_device = ibv_query_device;
  x.ops._compat_query_port = ibv_query_port;
  x.ops.alloc_mw = AllocMw;
  x.ops.bind_mw = BindMw;
  x.ops.dealloc_mw = DeallocMw;
  x.ops.poll_cq = PollCq;
  x.ops.req_notify_cq = ReqNotifyCq;
  x.ops.post_send = PostSend;
  x.ops.post_recv = PostRecv;
  std::lock_guard<std::mutex> l(G().mu);
  G().contexts.insert(c);
  StartWireLocked();
  return &c->ctx;
}

static void DestroyQpLocked(Qp* q);

// Closing a context releases everything still open on it (the kernel does the same for a closed fd); peers
// connected to its QPs then see their READs time out (RETRY_EXC_ERR).
int ibv_close_device(ibv_context* context) {
  State& g = G();
  Context* c = C(context);
  std::thread join;
  {
    std::lock_guard<std::mutex> l(g.mu);
    for (auto it = g.qps.begin(); it != g.qps.end();) {
      Qp* q = (it++)->second;
      if (q->qp.context == context) DestroyQpLocked(q);
    }
    for (auto it = g.mws.begin(); it != g.mws.end();) {
      if (it->second->mw.context == context) delete it->second, it = g.mws.erase(it);
      else ++it;
    }
    for (auto it = g.mrs.begin(); it != g.mrs.end();) {
      if (it->second->mr.context == context) {
        for (auto& w : g.mws) if (w.second->mr == it->second) w.second->mr = nullptr;
        delete it->second, it = g.mrs.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = g.cqs.begin(); it != g.cqs.end();) {
      if ((*it)->cq.context == context) delete *it, it = g.cqs.erase(it);
      else ++it;
    }
    for (auto it = g.channels.begin(); it != g.channels.end();) {
      if ((*it)->ch.context == context) (*it)->q.Close(), delete *it, it = g.channels.erase(it);
      else ++it;
    }
    for (auto it = g.pds.begin(); it != g.pds.end();) {
      if ((*it)->pd.context == context) delete *it, it = g.pds.erase(it);
      else ++it;
    }
    g.contexts.erase(c);
    FlushStatsLocked(true);
    if (g.contexts.empty()) join = StopWireLocked();
  }
  if (join.joinable()) join.join();
  c->async.Close();
  pthread_mutex_destroy(&c->ctx.mutex);
  delete c;
  return 0;
}

// ---------------------------------------------------------------- PDs and MRs

ibv_pd* ibv_alloc_pd(ibv_context* context) {
  std::lock_guard<std::mutex> l(G().mu);
  Pd* p = new Pd;
  p->pd.context = context;
  p->pd.handle = G().next_handle++;
  G().pds.insert(p);
  return &p->pd;
}

int ibv_dealloc_pd(ibv_pd* pd) {
  std::lock_guard<std::mutex> l(G().mu);
  if (P(pd)->refs > 0) return EBUSY;
  G().pds.erase(P(pd));
  delete P(pd);
  return 0;
}

static ibv_mr* RegMr(ibv_pd* pd, void* addr, size_t length, uint64_t iova, unsigned access) {
  access &= ~unsigned(IBV_ACCESS_OPTIONAL_RANGE);  // relaxed ordering etc.: hints
  const unsigned known = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                         IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND;
  if (access & ~known) return errno = EINVAL, nullptr;
  // Remote write/atomic need local write (IB spec C10-..., enforced by the kernel)
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) && !(access & IBV_ACCESS_LOCAL_WRITE))
    return errno = EINVAL, nullptr;
  if (addr == nullptr && length > 0) return errno = EFAULT, nullptr;
  std::lock_guard<std::mutex> l(G().mu);
  Mr* m = new Mr;
  memset(&m->mr, 0, sizeof m->mr);
  uint32_t index = G().next_key_index++;
  m->mr.context = pd->context;
  m->mr.pd = pd;
  m->mr.addr = addr;
  m->mr.length = length;
  m->mr.handle = G().next_handle++;
  m->mr.lkey = m->mr.rkey = (index << 8) | ((index * 37 + 5) & 0xff);
  m->iova = iova;
  m->access = int(access);
  G().mrs[index] = m;
  P(pd)->refs++;
  return &m->mr;
}

ibv_mr* ibv_reg_mr(ibv_pd* pd, void* addr, size_t length, int access) {
  return RegMr(pd, addr, length, uintptr_t(addr), unsigned(access));
}
ibv_mr* ibv_reg_mr_iova(ibv_pd* pd, void* addr, size_t length, uint64_t iova, int access) {
  return RegMr(pd, addr, length, iova, unsigned(access));
}
ibv_mr* ibv_reg_mr_iova2(ibv_pd* pd, void* addr, size_t length, uint64_t iova, unsigned int access) {
  return RegMr(pd, addr, length, iova, access);
}

// Like mlx5 (and unlike rxe, which refuses), deregistering an MR with windows bound to it succeeds; the windows
// stay bound but every access through them fails (REM_ACCESS_ERR).
int ibv_dereg_mr(ibv_mr* mr) {
  std::lock_guard<std::mutex> l(G().mu);
  Mr* m = reinterpret_cast<Mr*>(mr);
  for (auto& w : G().mws)
    if (w.second->mr == m) w.second->mr = nullptr;
  G().mrs.erase(mr->lkey >> 8);
  P(mr->pd)->refs--;
  delete m;
  return 0;
}

// ---------------------------------------------------------------- completion channels and CQs

ibv_comp_channel* ibv_create_comp_channel(ibv_context* context) {
  Channel* ch = new Channel;
  if (!ch->q.Open()) {
    delete ch;
    return nullptr;
  }
  ch->ch.context = context;
  ch->ch.fd = ch->q.fd;
  ch->ch.refcnt = 0;
  std::lock_guard<std::mutex> l(G().mu);
  G().channels.insert(ch);
  return &ch->ch;
}

int ibv_destroy_comp_channel(ibv_comp_channel* channel) {
  std::lock_guard<std::mutex> l(G().mu);
  if (channel->refcnt > 0) return EBUSY;  // CQs still use it
  Channel* ch = reinterpret_cast<Channel*>(channel);
  G().channels.erase(ch);
  ch->q.Close();
  delete ch;
  return 0;
}

ibv_cq* ibv_create_cq(ibv_context* context, int cqe, void* cq_context, ibv_comp_channel* channel,
                      int comp_vector) {
  if (cqe < 1 || cqe > G().cfg.max_cqe || comp_vector < 0 || comp_vector >= context->num_comp_vectors)
    return errno = EINVAL, nullptr;
  int size = 1;
  while (size < cqe + 1) size <<= 1;  // mlx5: 2^k entries, one kept free, so cq->cqe = 2^k - 1 >= cqe
  std::lock_guard<std::mutex> l(G().mu);
  Cq* c = new Cq;
  memset(&c->cq, 0, sizeof c->cq);
  c->cq.context = context;
  c->cq.channel = channel;
  c->cq.cq_context = cq_context;
  c->cq.handle = G().next_handle++;
  c->cq.cqe = size - 1;
  pthread_mutex_init(&c->cq.mutex, nullptr);
  pthread_cond_init(&c->cq.cond, nullptr);
  if (channel != nullptr) channel->refcnt++;
  G().cqs.insert(c);
  return &c->cq;
}

int ibv_destroy_cq(ibv_cq* cq) {
  std::lock_guard<std::mutex> l(G().mu);
  Cq* c = CQ(cq);
  if (c->qps > 0) return EBUSY;
  if (cq->channel != nullptr) {
    reinterpret_cast<Channel*>(cq->channel)->q.RemoveIf([c](Cq* x) { return x == c; });
    cq->channel->refcnt--;
  }
  if (cq->comp_events_completed != c->events_reported) {
    // libibverbs would block here forever waiting for ibv_ack_cq_events; the fake reports and goes on.
    fprintf(stderr, "fake-verbs: ibv_destroy_cq with %u unacknowledged completion events (real verbs hangs)\n",
            c->events_reported - cq->comp_events_completed);
    G().stats.unacked_cq_events_at_destroy++;
    G().stats_dirty = true;
  }
  G().cqs.erase(c);
  pthread_mutex_destroy(&cq->mutex);
  pthread_cond_destroy(&cq->cond);
  delete c;
  return 0;
}

int ibv_get_cq_event(ibv_comp_channel* channel, ibv_cq** cq, void** cq_context) {
  Channel* ch = reinterpret_cast<Channel*>(channel);
  for (;;) {
    uint64_t v;
    ssize_t n = read(ch->q.fd, &v, sizeof v);  // blocks unless the caller set O_NONBLOCK (then EAGAIN)
    if (n != ssize_t(sizeof v)) {
      if (n < 0 && errno == EINTR) continue;
      return -1;
    }
    std::lock_guard<std::mutex> l(G().mu);
    if (ch->q.stale > 0) {
      ch->q.stale--;
      continue;
    }
    Cq* c = ch->q.items.front();
    ch->q.items.pop_front();
    c->events_reported++;
    *cq = &c->cq;
    *cq_context = c->cq.cq_context;
    return 0;
  }
}

void ibv_ack_cq_events(ibv_cq* cq, unsigned int nevents) {
  std::lock_guard<std::mutex> l(G().mu);
  cq->comp_events_completed += nevents;
}

// ---------------------------------------------------------------- QPs

ibv_qp* ibv_create_qp(ibv_pd* pd, ibv_qp_init_attr* ia) {
  const Config& cfg = G().cfg;
  if (ia->qp_type != IBV_QPT_RC || ia->srq != nullptr) return errno = EOPNOTSUPP, nullptr;
  if (ia->send_cq == nullptr || ia->recv_cq == nullptr) return errno = EINVAL, nullptr;
  const ibv_qp_cap& cap = ia->cap;
  if (cap.max_send_wr < 1 || int(cap.max_send_wr) > cfg.max_qp_wr || int(cap.max_recv_wr) > cfg.max_qp_wr ||
      cap.max_send_sge > kMaxSge || cap.max_recv_sge > kMaxSge || cap.max_inline_data > 256)
    return errno = EINVAL, nullptr;
  std::lock_guard<std::mutex> l(G().mu);
  Qp* q = new Qp;
  memset(&q->qp, 0, sizeof q->qp);
  q->qp.context = pd->context;
  q->qp.qp_context = ia->qp_context;
  q->qp.pd = pd;
  q->qp.send_cq = ia->send_cq;
  q->qp.recv_cq = ia->recv_cq;
  q->qp.handle = G().next_handle++;
  q->qp.qp_num = G().next_qpn++;
  q->qp.state = IBV_QPS_RESET;
  q->qp.qp_type = IBV_QPT_RC;
  pthread_mutex_init(&q->qp.mutex, nullptr);
  pthread_cond_init(&q->qp.cond, nullptr);
  q->cap = cap;  // granted exactly as asked (mlx5 may round up and report more)
  q->sig_all = ia->sq_sig_all != 0;
  q->attr.qp_state = IBV_QPS_RESET;
  q->attr.cap = cap;
  CQ(ia->send_cq)->qps++;
  CQ(ia->recv_cq)->qps++;
  P(pd)->refs++;
  G().qps[q->qp.qp_num] = q;
  return &q->qp;
}

// Required and allowed attribute masks per RC transition: the kernel's ib_modify_qp_is_ok table (rxe and mlx5
// both call it), so a mask the fake refuses is refused by real hardware too.
static bool TransitionOk(ibv_qp_state from, ibv_qp_state to, int mask) {
  int req = 0, opt = 0;
  const int cur = IBV_QP_CUR_STATE;
  if (to == IBV_QPS_RESET || to == IBV_QPS_ERR) {
    req = opt = 0;
  } else if (from == IBV_QPS_RESET && to == IBV_QPS_INIT) {
    req = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  } else if (from == IBV_QPS_INIT && to == IBV_QPS_INIT) {
    opt = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  } else if (from == IBV_QPS_INIT && to == IBV_QPS_RTR) {
    req = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
          IBV_QP_MIN_RNR_TIMER;
    opt = IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX;
  } else if (from == IBV_QPS_RTR && to == IBV_QPS_RTS) {
    req = IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;
    opt = cur | IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER | IBV_QP_PATH_MIG_STATE;
  } else if (from == IBV_QPS_RTS && to == IBV_QPS_RTS) {
    opt = cur | IBV_QP_ACCESS_FLAGS | IBV_QP_ALT_PATH | IBV_QP_PATH_MIG_STATE | IBV_QP_MIN_RNR_TIMER;
  } else {
    return false;  // SQD/SQE and skipped steps are not supported
  }
  mask &= ~IBV_QP_STATE;
  return (mask & req) == req && (mask & ~(req | opt)) == 0;
}

int ibv_modify_qp(ibv_qp* qp, ibv_qp_attr* a, int mask) {
  const Config& cfg = G().cfg;
  std::lock_guard<std::mutex> l(G().mu);
  Qp* q = Q(qp);
  const ibv_qp_state from = q->State();
  const ibv_qp_state to = (mask & IBV_QP_STATE) ? a->qp_state : from;
  if ((mask & IBV_QP_CUR_STATE) && a->cur_qp_state != from) return EINVAL;
  if (!TransitionOk(from, to, mask)) return EINVAL;
  if ((mask & IBV_QP_PORT) && a->port_num != 1) return EINVAL;
  if ((mask & IBV_QP_PKEY_INDEX) && a->pkey_index != 0) return EINVAL;
  if ((mask & IBV_QP_PATH_MTU) && (a->path_mtu < IBV_MTU_256 || a->path_mtu > IBV_MTU_4096)) return EINVAL;
  if ((mask & IBV_QP_MAX_QP_RD_ATOMIC) && a->max_rd_atomic > cfg.max_rd_atom) return EINVAL;
  if ((mask & IBV_QP_MAX_DEST_RD_ATOMIC) && a->max_dest_rd_atomic > cfg.max_rd_atom) return EINVAL;
  if ((mask & IBV_QP_RETRY_CNT) && a->retry_cnt > 7) return EINVAL;
  if ((mask & IBV_QP_RNR_RETRY) && a->rnr_retry > 7) return EINVAL;
  if ((mask & IBV_QP_TIMEOUT) && a->timeout > 31) return EINVAL;
  if (mask & IBV_QP_AV) {
    // RoCE needs a GRH, and its source GID must be a populated entry (the kernel resolves it to a netdev)
    const ibv_ah_attr& ah = a->ah_attr;
    static const ibv_gid zero{};
    if (!ah.is_global || ah.grh.sgid_index >= kGidTableLen) return EINVAL;
    if (memcmp(&C(qp->context)->dev->gids[ah.grh.sgid_index], &zero, sizeof zero) == 0) return EINVAL;
    q->attr.ah_attr = ah;
  }
  if (mask & IBV_QP_ACCESS_FLAGS) q->attr.qp_access_flags = a->qp_access_flags;
  if (mask & IBV_QP_PKEY_INDEX) q->attr.pkey_index = a->pkey_index;
  if (mask & IBV_QP_PORT) q->attr.port_num = a->port_num;
  if (mask & IBV_QP_PATH_MTU) q->attr.path_mtu = a->path_mtu;
  if (mask & IBV_QP_DEST_QPN) q->attr.dest_qp_num = a->dest_qp_num;
  if (mask & IBV_QP_RQ_PSN) q->attr.rq_psn = a->rq_psn;
  if (mask & IBV_QP_SQ_PSN) q->attr.sq_psn = a->sq_psn;
  if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) q->attr.max_dest_rd_atomic = a->max_dest_rd_atomic;
  if (mask & IBV_QP_MAX_QP_RD_ATOMIC) q->attr.max_rd_atomic = a->max_rd_atomic;
  if (mask & IBV_QP_MIN_RNR_TIMER) q->attr.min_rnr_timer = a->min_rnr_timer;
  if (mask & IBV_QP_TIMEOUT) q->attr.timeout = a->timeout;
  if (mask & IBV_QP_RETRY_CNT) q->attr.retry_cnt = a->retry_cnt;
  if (mask & IBV_QP_RNR_RETRY) q->attr.rnr_retry = a->rnr_retry;
  if (to == IBV_QPS_ERR) {
    QpToError(q);  // flushes every queued WR in order
  } else if (to == IBV_QPS_RESET) {
    // Back to a fresh QP: queued WRs vanish without completions, unpolled completions are cleaned from the CQ
    q->sq.clear();
    q->reads_queued = 0;
    PurgeCqes(q);
    q->posted = q->retired = 0;
    q->attr.qp_state = q->qp.state = IBV_QPS_RESET;
  } else {
    q->attr.qp_state = q->qp.state = to;
  }
  G().cv.notify_all();
  return 0;
}

int ibv_query_qp(ibv_qp* qp, ibv_qp_attr* attr, int, ibv_qp_init_attr* init_attr) {
  std::lock_guard<std::mutex> l(G().mu);
  Qp* q = Q(qp);
  *attr = q->attr;
  attr->cur_qp_state = q->attr.qp_state;
  attr->cap = q->cap;
  if (init_attr != nullptr) {
    memset(init_attr, 0, sizeof *init_attr);
    init_attr->qp_context = qp->qp_context;
    init_attr->send_cq = qp->send_cq;
    init_attr->recv_cq = qp->recv_cq;
    init_attr->cap = q->cap;
    init_attr->qp_type = IBV_QPT_RC;
    init_attr->sq_sig_all = q->sig_all;
  }
  return 0;
}

// Destroying a QP drops its queued WRs and its unpolled completions (mlx5 cleans them from the CQ), removes its
// pending async events, and invalidates the type 2 windows bound to it.
static void DestroyQpLocked(Qp* q) {
  State& g = G();
  PurgeCqes(q);
  q->Ctx()->async.RemoveIf([q](const ibv_async_event& e) {
    return (e.event_type == IBV_EVENT_QP_FATAL || e.event_type == IBV_EVENT_QP_REQ_ERR ||
            e.event_type == IBV_EVENT_QP_ACCESS_ERR || e.event_type == IBV_EVENT_COMM_EST ||
            e.event_type == IBV_EVENT_SQ_DRAINED || e.event_type == IBV_EVENT_PATH_MIG ||
            e.event_type == IBV_EVENT_PATH_MIG_ERR || e.event_type == IBV_EVENT_QP_LAST_WQE_REACHED) &&
           e.element.qp == &q->qp;
  });
  for (auto& w : g.mws)
    if (w.second->qp == q) w.second->qp = nullptr, w.second->valid = false;
  CQ(q->qp.send_cq)->qps--;
  CQ(q->qp.recv_cq)->qps--;
  P(q->qp.pd)->refs--;
  g.qps.erase(q->qp.qp_num);
  pthread_mutex_destroy(&q->qp.mutex);
  pthread_cond_destroy(&q->qp.cond);
  delete q;
}

int ibv_destroy_qp(ibv_qp* qp) {
  std::lock_guard<std::mutex> l(G().mu);
  DestroyQpLocked(Q(qp));
  return 0;
}

// ---------------------------------------------------------------- async events

int ibv_get_async_event(ibv_context* context, ibv_async_event* event) {
  Context* c = C(context);
  for (;;) {
    uint64_t v;
    ssize_t n = read(c->async.fd, &v, sizeof v);  // blocks unless async_fd was made O_NONBLOCK (then EAGAIN)
    if (n != ssize_t(sizeof v)) {
      if (n < 0 && errno == EINTR) continue;
      return -1;
    }
    std::lock_guard<std::mutex> l(G().mu);
    if (c->async.stale > 0) {
      c->async.stale--;
      continue;
    }
    *event = c->async.items.front();
    c->async.items.pop_front();
    return 0;
  }
}

void ibv_ack_async_event(ibv_async_event* event) {
  std::lock_guard<std::mutex> l(G().mu);
  switch (event->event_type) {
    case IBV_EVENT_CQ_ERR:
      event->element.cq->async_events_completed++;
      break;
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST:
    case IBV_EVENT_SQ_DRAINED:
    case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR:
    case IBV_EVENT_QP_LAST_WQE_REACHED:
      event->element.qp->events_completed++;
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- strings (rdma-core's wording)

const char* ibv_wc_status_str(ibv_wc_status status) {
  static const char* const s[] = {
      "success", "local length error", "local QP operation error", "local EE context operation error",
      "local protection error", "Work Request Flushed Error", "memory management operation error",
      "bad response error", "local access error", "remote invalid request error", "remote access error",
      "remote operation error", "transport retry counter exceeded", "RNR retry counter exceeded",
      "local RDD violation error", "remote invalid RD request", "aborted error", "invalid EE context number",
      "invalid EE context state", "fatal error", "response timeout error", "general error", "TM error",
      "TM software rendezvous"};
  return (unsigned(status) < sizeof s / sizeof s[0]) ? s[status] : "unknown";
}

const char* ibv_event_type_str(ibv_event_type event) {
  static const char* const s[] = {
      "CQ error", "local work queue catastrophic error", "invalid request local work queue error",
      "local access violation work queue error", "communication established", "send queue drained",
      "path migrated", "path migration request error", "local catastrophic error", "port active", "port error",
      "LID change", "P_Key change", "SM change", "SRQ catastrophic error", "SRQ limit reached",
      "last WQE reached", "client reregistration", "GID table change", "WQ fatal"};
  return (unsigned(event) < sizeof s / sizeof s[0]) ? s[event] : "unknown";
}

}  // extern "C"
