// Smoke test of the fake libibverbs: two "hosts" (mlx5_0 reads, mlx5_1 serves) in this one process, linked
// straight against the fake. Every step checks what a real RC NIC would report.
//
//   smoke [full|nomw|v1only]      (build.sh --test runs all three, plain and under ASan+UBSan)
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)
#define OK(...) (printf("ok - " __VA_ARGS__), printf("\n"), fflush(stdout))

static std::string g_control;

struct Host {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_comp_channel* ch = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  uint8_t* buf = nullptr;
  ibv_mr* mr = nullptr;  // reader: LOCAL_WRITE; server: LOCAL_WRITE|MW_BIND (no REMOTE_READ)
};

static void WriteControl(const std::string& text) {
  std::string tmp = g_control + ".new";
  FILE* f = fopen(tmp.c_str(), "w");
  CHECK(f != nullptr);
  fputs(text.c_str(), f);
  fclose(f);
  CHECK(rename(tmp.c_str(), g_control.c_str()) == 0);  // a new inode: the change is always seen
}

static std::map<std::string, long> ReadStats() {
  std::map<std::string, long> m;
  FILE* f = fopen((g_control + ".stats").c_str(), "r");
  CHECK(f != nullptr);
  char line[256];
  while (fgets(line, sizeof line, f) != nullptr) {
    char* eq = strchr(line, '=');
    if (eq != nullptr) *eq = 0, m[line] = strtol(eq + 1, nullptr, 10);
  }
  fclose(f);
  return m;
}

// Polls until one completion arrives or timeout_ms passes.
static bool WaitWc(ibv_cq* cq, ibv_wc* wc, int timeout_ms = 2000) {
  for (int i = 0; i < timeout_ms; ++i) {
    int n = ibv_poll_cq(cq, 1, wc);
    CHECK(n >= 0);
    if (n == 1) return true;
    usleep(1000);
  }
  return false;
}

// Waits for an async event of the given type on ctx (async_fd is O_NONBLOCK), acking everything seen.
static ibv_async_event WaitAsync(ibv_context* ctx, ibv_event_type type) {
  for (int tries = 0; tries < 200; ++tries) {
    pollfd p{ctx->async_fd, POLLIN, 0};
    if (poll(&p, 1, 10) == 1) {
      ibv_async_event ev;
      CHECK(ibv_get_async_event(ctx, &ev) == 0);
      ibv_ack_async_event(&ev);
      if (ev.event_type == type) return ev;
      printf("     (async event %s skipped)\n", ibv_event_type_str(ev.event_type));
    }
  }
  fprintf(stderr, "FAIL: no async event %s\n", ibv_event_type_str(type));
  exit(1);
}

static void DrainAsync(ibv_context* ctx) {
  ibv_async_event ev;
  while (ibv_get_async_event(ctx, &ev) == 0) ibv_ack_async_event(&ev);
  CHECK(errno == EAGAIN);
}

static ibv_qp_state State(ibv_qp* qp) {
  ibv_qp_attr a;
  ibv_qp_init_attr ia;
  CHECK(ibv_query_qp(qp, &a, IBV_QP_STATE, &ia) == 0);
  return a.qp_state;
}

// RESET -> INIT -> RTR -> RTS towards the peer, as the addon does (RoCE: GRH with the chosen GID index).
static int Connect(ibv_qp* qp, ibv_qp* peer, ibv_context* peer_ctx, int sgid, int dgid_index, int timeout = 14) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RESET;
  if (int rc = ibv_modify_qp(qp, &a, IBV_QP_STATE)) return rc;
  a = {};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_READ;
  if (int rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    return rc;
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_4096;
  a.dest_qp_num = peer->qp_num;
  a.max_dest_rd_atomic = 16;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.port_num = 1;
  a.ah_attr.grh.sgid_index = uint8_t(sgid);
  a.ah_attr.grh.hop_limit = 64;
  CHECK(ibv_query_gid(peer_ctx, 1, dgid_index, &a.ah_attr.grh.dgid) == 0);
  if (int rc = ibv_modify_qp(qp, &a,
                             IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    return rc;
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = uint8_t(timeout);
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 16;
  return ibv_modify_qp(qp, &a,
                       IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                           IBV_QP_MAX_QP_RD_ATOMIC);
}

static void ConnectPair(Host& a, Host& b) {
  CHECK(Connect(a.qp, b.qp, b.ctx, 3, 3) == 0);
  CHECK(Connect(b.qp, a.qp, a.ctx, 3, 3) == 0);
}

static int PostRead(ibv_qp* qp, uint64_t wr_id, ibv_mr* lmr, void* laddr, uint32_t len, uint32_t rkey,
                    uint64_t raddr, bool signaled = true) {
  ibv_sge sge{uint64_t(uintptr_t(laddr)), len, lmr->lkey};
  ibv_send_wr wr{}, *bad = nullptr;
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_READ;
  wr.send_flags = signaled ? IBV_SEND_SIGNALED : 0;
  wr.wr.rdma.remote_addr = raddr;
  wr.wr.rdma.rkey = rkey;
  return ibv_post_send(qp, &wr, &bad);
}

static ibv_wc ReadOnce(Host& a, uint32_t rkey, uint64_t raddr, uint32_t len, size_t loff = 0) {
  CHECK(PostRead(a.qp, 42, a.mr, a.buf + loff, len, rkey, raddr) == 0);
  ibv_wc wc{};
  CHECK(WaitWc(a.cq, &wc));
  CHECK(wc.wr_id == 42);
  return wc;
}

static ibv_wc PostBind(Host& b, ibv_mw* mw, uint32_t rkey, ibv_mr* mr, uint64_t addr, uint64_t len) {
  ibv_send_wr wr{}, *bad = nullptr;
  wr.wr_id = 7;
  wr.opcode = IBV_WR_BIND_MW;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.bind_mw.mw = mw;
  wr.bind_mw.rkey = rkey;
  wr.bind_mw.bind_info = {mr, addr, len, IBV_ACCESS_REMOTE_READ};
  CHECK(ibv_post_send(b.qp, &wr, &bad) == 0);
  ibv_wc wc{};
  CHECK(WaitWc(b.cq, &wc));
  CHECK(wc.wr_id == 7 && wc.opcode == IBV_WC_BIND_MW);
  return wc;
}

static void Modes(const char* mode) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  CHECK(list != nullptr && n == 1);
  ibv_context* ctx = ibv_open_device(list[0]);
  ibv_free_device_list(list);
  ibv_device_attr da;
  CHECK(ibv_query_device(ctx, &da) == 0);
  if (strcmp(mode, "nomw") == 0) {
    CHECK(da.max_mw == 0 && !(da.device_cap_flags & (IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B)));
    ibv_pd* pd = ibv_alloc_pd(ctx);
    errno = 0;
    CHECK(ibv_alloc_mw(pd, IBV_MW_TYPE_2) == nullptr && errno == EOPNOTSUPP);
    CHECK(ibv_dealloc_pd(pd) == 0);
    OK("KVF_FAKE_VERBS_NO_MW=1: max_mw 0, no MEM_WINDOW caps, ibv_alloc_mw fails EOPNOTSUPP");
  } else {
    for (int i = 0; i < 4; ++i) {
      ibv_gid_entry e;
      CHECK(ibv_query_gid_ex(ctx, 1, uint32_t(i), &e, 0) == 0 && e.gid_type == IBV_GID_TYPE_ROCE_V1);
    }
    OK("KVF_FAKE_VERBS_GIDS=v1only: GIDs 0..3 are all RoCE v1");
  }
  CHECK(ibv_close_device(ctx) == 0);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "full";
  char dir[] = "/tmp/fake-verbs-smoke.XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  g_control = std::string(dir) + "/control";
  setenv("KVF_FAKE_VERBS_CONTROL", g_control.c_str(), 1);
  if (strcmp(mode, "full") != 0) {
    setenv(strcmp(mode, "nomw") == 0 ? "KVF_FAKE_VERBS_NO_MW" : "KVF_FAKE_VERBS_GIDS",
           strcmp(mode, "nomw") == 0 ? "1" : "v1only", 1);
    Modes(mode);
    remove((g_control + ".stats").c_str());
    rmdir(dir);
    return 0;
  }
  setenv("KVF_FAKE_VERBS_DEVICES", "mlx5_0,mlx5_1", 1);
  setenv("KVF_FAKE_VERBS_MAX_MSG", "1048576", 1);

  // ---- devices, ports, GIDs
  int ndev = 0;
  ibv_device** list = ibv_get_device_list(&ndev);
  CHECK(list != nullptr && ndev == 2 && list[2] == nullptr);
  CHECK(strcmp(ibv_get_device_name(list[1]), "mlx5_1") == 0);
  Host A, B;
  A.ctx = ibv_open_device(list[0]);
  B.ctx = ibv_open_device(list[1]);
  ibv_free_device_list(list);
  CHECK(A.ctx && B.ctx && A.ctx->num_comp_vectors == 1);
  ibv_device_attr da;
  CHECK(ibv_query_device(A.ctx, &da) == 0);
  CHECK(da.max_qp_rd_atom == 16 && da.max_cqe == 4096 && da.max_qp_wr == 1024 && da.max_mw == 1024);
  CHECK(da.device_cap_flags & IBV_DEVICE_MEM_WINDOW_TYPE_2B);
  ibv_port_attr pa;
  CHECK(ibv_query_port(A.ctx, 1, &pa) == 0);  // the header's inline -> the exported compat symbol
  CHECK(pa.state == IBV_PORT_ACTIVE && pa.active_mtu == IBV_MTU_4096 && pa.link_layer == IBV_LINK_LAYER_ETHERNET &&
        pa.gid_tbl_len == 8 && pa.max_msg_sz == 1048576 && pa.lid == 0);
  const ibv_gid_type want[4] = {IBV_GID_TYPE_ROCE_V1, IBV_GID_TYPE_ROCE_V2, IBV_GID_TYPE_ROCE_V1,
                                IBV_GID_TYPE_ROCE_V2};
  for (int i = 0; i < 4; ++i) {
    ibv_gid_entry e;
    CHECK(ibv_query_gid_ex(B.ctx, 1, uint32_t(i), &e, 0) == 0 && e.gid_type == uint32_t(want[i]));
  }
  ibv_gid_entry e4;
  CHECK(ibv_query_gid_ex(B.ctx, 1, 4, &e4, 0) == ENODATA);
  ibv_gid g3;
  CHECK(ibv_query_gid(B.ctx, 1, 3, &g3) == 0);
  const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 88, 0, 2};
  CHECK(memcmp(g3.raw, v4, 16) == 0);
  OK("2 devices; port ACTIVE/4096/Ethernet; GID 3 of mlx5_1 = ::ffff:10.88.0.2 RoCE v2; GID 4 ENODATA");

  // ---- objects, limits
  const size_t kBuf = 2 << 20;
  for (Host* h : {&A, &B}) {
    h->pd = ibv_alloc_pd(h->ctx);
    h->ch = ibv_create_comp_channel(h->ctx);
    h->cq = ibv_create_cq(h->ctx, 256, h, h->ch, 0);
    CHECK(h->pd && h->ch && h->cq && h->cq->cqe == 511);
    h->buf = static_cast<uint8_t*>(malloc(kBuf));
    for (size_t i = 0; i < kBuf; ++i) h->buf[i] = uint8_t(h == &B ? i * 7 + 1 : 0);
    h->mr = ibv_reg_mr(h->pd, h->buf, kBuf,
                       h == &B ? IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND : IBV_ACCESS_LOCAL_WRITE);
    ibv_qp_init_attr ia{};
    ia.send_cq = ia.recv_cq = h->cq;
    ia.qp_type = IBV_QPT_RC;
    ia.cap = {64, 1, 1, 1, 0};
    h->qp = ibv_create_qp(h->pd, &ia);
    CHECK(h->mr && h->qp);
    int fl = fcntl(h->ctx->async_fd, F_GETFL);
    CHECK(fcntl(h->ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0);
  }
  // B's data is also reachable through an MR with REMOTE_READ in another address space (iova)
  const uint64_t kIova = 0x10000000;
  ibv_mr* mrR = ibv_reg_mr_iova2(B.pd, B.buf, kBuf, kIova, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  CHECK(mrR != nullptr);
  errno = 0;
  CHECK(ibv_create_cq(A.ctx, 4097, nullptr, nullptr, 0) == nullptr && errno == EINVAL);
  ibv_qp_init_attr big{};
  big.send_cq = big.recv_cq = A.cq;
  big.qp_type = IBV_QPT_RC;
  big.cap = {1025, 1, 1, 1, 0};
  errno = 0;
  CHECK(ibv_create_qp(A.pd, &big) == nullptr && errno == EINVAL);
  OK("create_cq(4097) and create_qp(max_send_wr 1025) fail EINVAL; cq->cqe rounds 256 up to 511 like mlx5");

  CHECK(Connect(A.qp, B.qp, B.ctx, 5, 3) == EINVAL);  // sgid index 5 is an empty GID
  {
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_RESET;
    CHECK(ibv_modify_qp(A.qp, &a, IBV_QP_STATE) == 0);
    a.qp_state = IBV_QPS_INIT;
    a.port_num = 1;
    CHECK(ibv_modify_qp(A.qp, &a, IBV_QP_STATE | IBV_QP_PORT) == EINVAL);  // RESET->INIT: masks missing
  }
  ConnectPair(A, B);
  {
    ibv_qp_attr a{};
    a.max_rd_atomic = 17;
    CHECK(ibv_modify_qp(A.qp, &a, IBV_QP_MAX_QP_RD_ATOMIC) == EINVAL);
  }
  CHECK(State(A.qp) == IBV_QPS_RTS && State(B.qp) == IBV_QPS_RTS);
  OK("modify_qp: empty sgid -> EINVAL, missing masks -> EINVAL, max_rd_atomic 17 -> EINVAL; pair is RTS");

  // ---- memory window: bind, read inside, read across the end
  ibv_mw* mw = ibv_alloc_mw(B.pd, IBV_MW_TYPE_2);
  CHECK(mw != nullptr);
  uint8_t* win = B.buf + 4096;
  const uint64_t winAddr = uint64_t(uintptr_t(win)), winLen = 8192;
  uint32_t rkey = ibv_inc_rkey(mw->rkey);
  CHECK(PostBind(B, mw, rkey, B.mr, winAddr, winLen).status == IBV_WC_SUCCESS);
  ibv_wc wc = ReadOnce(A, rkey, winAddr + 100, 1000);
  CHECK(wc.status == IBV_WC_SUCCESS && wc.byte_len == 1000 && wc.opcode == IBV_WC_RDMA_READ &&
        wc.qp_num == A.qp->qp_num && memcmp(A.buf, win + 100, 1000) == 0);
  OK("BIND_MW (type 2) then READ of 1000 bytes inside the window: SUCCESS, data matches");

  wc = ReadOnce(A, rkey, winAddr + winLen - 10, 100);
  CHECK(wc.status == IBV_WC_REM_ACCESS_ERR);
  CHECK(State(A.qp) == IBV_QPS_ERR && State(B.qp) == IBV_QPS_ERR);
  ibv_async_event ev = WaitAsync(B.ctx, IBV_EVENT_QP_ACCESS_ERR);
  CHECK(ev.element.qp == B.qp);
  OK("READ crossing the window end: %s, both QPs ERR, responder gets %s", ibv_wc_status_str(wc.status),
     ibv_event_type_str(ev.event_type));
  ConnectPair(A, B);

  wc = ReadOnce(A, B.mr->rkey, uint64_t(uintptr_t(B.buf)), 64);
  CHECK(wc.status == IBV_WC_REM_ACCESS_ERR);
  WaitAsync(B.ctx, IBV_EVENT_QP_ACCESS_ERR);
  OK("READ with the rkey of an MR lacking REMOTE_READ: %s", ibv_wc_status_str(wc.status));
  ConnectPair(A, B);

  wc = ReadOnce(A, mrR->rkey, kIova + 12345, 4096);
  CHECK(wc.status == IBV_WC_SUCCESS && memcmp(A.buf, B.buf + 12345, 4096) == 0);
  OK("READ through a REMOTE_READ MR registered with ibv_reg_mr_iova2 (iova-based address): SUCCESS");

  // ---- send queue: unsignaled WRs, queueing beyond max_rd_atomic, ENOMEM when full
  {
    std::vector<ibv_sge> sge(64);
    std::vector<ibv_send_wr> wrs(64);
    for (int i = 0; i < 64; ++i) {
      sge[i] = {uint64_t(uintptr_t(A.buf + i * 512)), 512, A.mr->lkey};
      wrs[i] = {};
      wrs[i].wr_id = 1000 + i;
      wrs[i].sg_list = &sge[i];
      wrs[i].num_sge = 1;
      wrs[i].opcode = IBV_WR_RDMA_READ;
      wrs[i].send_flags = (i == 63) ? IBV_SEND_SIGNALED : 0;
      wrs[i].wr.rdma.remote_addr = winAddr + i * 64;
      wrs[i].wr.rdma.rkey = rkey;
      wrs[i].next = i < 63 ? &wrs[i + 1] : nullptr;
    }
    ibv_send_wr* bad = nullptr;
    CHECK(ibv_post_send(A.qp, &wrs[0], &bad) == 0);  // 64 READs > max_rd_atomic 16: queued, not refused
    usleep(20000);
    CHECK(PostRead(A.qp, 9, A.mr, A.buf, 8, rkey, winAddr) == ENOMEM);  // slots held until the CQE is polled
    CHECK(WaitWc(A.cq, &wc) && wc.wr_id == 1063 && wc.status == IBV_WC_SUCCESS);
    CHECK(ibv_poll_cq(A.cq, 1, &wc) == 0);  // the 63 unsignaled ones produced nothing
    CHECK(memcmp(A.buf + 63 * 512, win + 63 * 64, 512) == 0);
    CHECK(PostRead(A.qp, 9, A.mr, A.buf, 8, rkey, winAddr) == 0);
    CHECK(WaitWc(A.cq, &wc) && wc.wr_id == 9);
    OK("64 chained READs (63 unsignaled): one CQE; the 65th post fails ENOMEM until that CQE is polled");
  }

  // ---- local invalidate, then the window refuses; rebind from the free state works
  {
    ibv_send_wr wr{}, *bad = nullptr;
    wr.wr_id = 8;
    wr.opcode = IBV_WR_LOCAL_INV;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.invalidate_rkey = rkey;
    CHECK(ibv_post_send(B.qp, &wr, &bad) == 0);
    CHECK(WaitWc(B.cq, &wc) && wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_LOCAL_INV);
    wc = ReadOnce(A, rkey, winAddr, 64);
    CHECK(wc.status == IBV_WC_REM_ACCESS_ERR);
    WaitAsync(B.ctx, IBV_EVENT_QP_ACCESS_ERR);
    ConnectPair(A, B);
    uint32_t rkey2 = ibv_inc_rkey(rkey);
    CHECK(PostBind(B, mw, rkey2, B.mr, winAddr, winLen).status == IBV_WC_SUCCESS);
    wc = ReadOnce(A, rkey, winAddr, 64);  // the old rkey stays dead
    CHECK(wc.status == IBV_WC_REM_ACCESS_ERR);
    WaitAsync(B.ctx, IBV_EVENT_QP_ACCESS_ERR);
    ConnectPair(A, B);
    CHECK(ReadOnce(A, rkey2, winAddr, 64).status == IBV_WC_SUCCESS);
    CHECK(PostBind(B, mw, ibv_inc_rkey(rkey2), B.mr, winAddr, winLen).status == IBV_WC_MW_BIND_ERR);
    CHECK(State(B.qp) == IBV_QPS_ERR);  // binding a bound type 2 window: bind error, QP to ERR
    ConnectPair(A, B);
    rkey = rkey2;
    OK("LOCAL_INV -> READ refused; rebind with a new key works, old key refused; rebind while bound -> %s",
       ibv_wc_status_str(IBV_WC_MW_BIND_ERR));
  }

  // ---- local errors: bad local range, message too large
  wc = ReadOnce(A, rkey, winAddr, 64, kBuf - 10);
  CHECK(wc.status == IBV_WC_LOC_PROT_ERR && State(A.qp) == IBV_QPS_ERR && State(B.qp) == IBV_QPS_RTS);
  ConnectPair(A, B);
  wc = ReadOnce(A, mrR->rkey, kIova, (1 << 20) + 1);
  CHECK(wc.status == IBV_WC_LOC_LEN_ERR);
  ConnectPair(A, B);
  OK("local sge outside its MR: %s (responder untouched); 1 MiB + 1 > max_msg_sz: %s",
     ibv_wc_status_str(IBV_WC_LOC_PROT_ERR), ibv_wc_status_str(IBV_WC_LOC_LEN_ERR));

  // ---- stall, then flush in order
  WriteControl("stall=1\n");
  for (int i = 1; i <= 3; ++i) CHECK(PostRead(A.qp, uint64_t(i), A.mr, A.buf, 64, rkey, winAddr) == 0);
  usleep(100000);
  CHECK(ibv_poll_cq(A.cq, 1, &wc) == 0);
  {
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_ERR;
    CHECK(ibv_modify_qp(A.qp, &a, IBV_QP_STATE) == 0);
  }
  for (int i = 1; i <= 3; ++i) CHECK(WaitWc(A.cq, &wc) && wc.status == IBV_WC_WR_FLUSH_ERR && wc.wr_id == uint64_t(i));
  CHECK(PostRead(A.qp, 4, A.mr, A.buf, 64, rkey, winAddr) == 0);  // posting to ERR: accepted, flushed
  CHECK(WaitWc(A.cq, &wc) && wc.status == IBV_WC_WR_FLUSH_ERR && wc.wr_id == 4);
  WriteControl("");
  ConnectPair(A, B);
  OK("stall=1: 3 READs pending 100 ms; QP -> ERR flushes them in order; a post to the ERR QP flushes too");

  // ---- a bind queued behind a stalled READ whose window is deallocated meanwhile: bind error, no crash
  {
    ibv_mr* mrA = ibv_reg_mr(A.pd, A.buf, kBuf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
    ibv_mw* mw2 = ibv_alloc_mw(B.pd, IBV_MW_TYPE_2);
    CHECK(mrA && mw2);
    WriteControl("stall=1\nfault_device=mlx5_1\n");  // only READs posted on mlx5_1 stall
    CHECK(PostRead(B.qp, 12, B.mr, B.buf + (1 << 20), 64, mrA->rkey, uint64_t(uintptr_t(A.buf))) == 0);
    ibv_send_wr wr{}, *bad = nullptr;
    wr.wr_id = 13;
    wr.opcode = IBV_WR_BIND_MW;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.bind_mw.mw = mw2;
    wr.bind_mw.rkey = ibv_inc_rkey(mw2->rkey);
    wr.bind_mw.bind_info = {B.mr, winAddr, 4096, IBV_ACCESS_REMOTE_READ};
    CHECK(ibv_post_send(B.qp, &wr, &bad) == 0);
    CHECK(ReadOnce(A, rkey, winAddr, 64).status == IBV_WC_SUCCESS);  // mlx5_0 is not stalled
    CHECK(ibv_dealloc_mw(mw2) == 0);
    WriteControl("");
    CHECK(WaitWc(B.cq, &wc) && wc.wr_id == 12 && wc.status == IBV_WC_SUCCESS);
    CHECK(WaitWc(B.cq, &wc) && wc.wr_id == 13 && wc.status == IBV_WC_MW_BIND_ERR);
    CHECK(ibv_dereg_mr(mrA) == 0);
    ConnectPair(A, B);
    OK("fault_device=mlx5_1 stalls only that device; a queued bind of a since-deallocated window: %s",
       ibv_wc_status_str(wc.status));
  }

  // ---- completion channel
  {
    pollfd p{A.ch->fd, POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0);
    CHECK(ibv_req_notify_cq(A.cq, 0) == 0);
    CHECK(PostRead(A.qp, 5, A.mr, A.buf, 64, rkey, winAddr) == 0);
    ibv_cq* evcq = nullptr;
    void* evctx = nullptr;
    CHECK(ibv_get_cq_event(A.ch, &evcq, &evctx) == 0);  // blocking
    CHECK(evcq == A.cq && evctx == &A);
    ibv_ack_cq_events(evcq, 1);
    CHECK(ibv_poll_cq(A.cq, 1, &wc) == 1 && wc.wr_id == 5 && wc.status == IBV_WC_SUCCESS);
    CHECK(fcntl(A.ch->fd, F_SETFL, fcntl(A.ch->fd, F_GETFL) | O_NONBLOCK) == 0);
    errno = 0;
    CHECK(ibv_get_cq_event(A.ch, &evcq, &evctx) == -1 && errno == EAGAIN);
    OK("armed CQ: channel fd readable, ibv_get_cq_event returns cq + cq_context; O_NONBLOCK empty -> EAGAIN");
  }

  // ---- injected read errors
  WriteControl("read_error=retry_exc\nread_error_after=2\n");
  CHECK(ReadOnce(A, rkey, winAddr, 64).status == IBV_WC_SUCCESS);
  CHECK(ReadOnce(A, rkey, winAddr, 64).status == IBV_WC_SUCCESS);
  wc = ReadOnce(A, rkey, winAddr, 64);
  CHECK(wc.status == IBV_WC_RETRY_EXC_ERR && State(A.qp) == IBV_QPS_ERR && State(B.qp) == IBV_QPS_RTS);
  ConnectPair(A, B);
  WriteControl("read_error=rem_access\n");
  wc = ReadOnce(A, rkey, winAddr, 64);
  CHECK(wc.status == IBV_WC_REM_ACCESS_ERR && State(B.qp) == IBV_QPS_ERR);
  WaitAsync(B.ctx, IBV_EVENT_QP_ACCESS_ERR);
  ConnectPair(A, B);
  OK("read_error=retry_exc after 2: READs 1-2 succeed, 3rd %s; read_error=rem_access: both QPs ERR",
     ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR));

  // ---- qp_fatal (one shot) and port_err
  WriteControl("qp_fatal=1\n");
  CHECK(PostRead(A.qp, 6, A.mr, A.buf, 64, rkey, winAddr) == 0);
  ev = WaitAsync(A.ctx, IBV_EVENT_QP_FATAL);
  CHECK(ev.element.qp == A.qp);
  CHECK(WaitWc(A.cq, &wc) && wc.wr_id == 6 && wc.status == IBV_WC_WR_FLUSH_ERR);
  ConnectPair(A, B);
  CHECK(ReadOnce(A, rkey, winAddr, 64).status == IBV_WC_SUCCESS);  // one shot: the next READ is fine
  WriteControl("port_err=1\n");
  CHECK(WaitAsync(A.ctx, IBV_EVENT_PORT_ERR).element.port_num == 1);
  CHECK(WaitAsync(B.ctx, IBV_EVENT_PORT_ERR).element.port_num == 1);
  WriteControl("");
  OK("qp_fatal=1: QP_FATAL on the reading QP, its READ flushed, next READ fine; port_err=1: PORT_ERR on both");

  // ---- paths that lose packets: RoCE v1 vs v2 mismatch, timeout 0, peer destroyed
  {
    CHECK(Connect(A.qp, B.qp, B.ctx, 2, 3) == 0);  // A speaks RoCE v1, B v2
    CHECK(Connect(B.qp, A.qp, A.ctx, 3, 2) == 0);
    CHECK(ReadOnce(A, rkey, winAddr, 64).status == IBV_WC_RETRY_EXC_ERR);
    CHECK(Connect(A.qp, B.qp, B.ctx, 2, 3, /*timeout=*/0) == 0);
    CHECK(PostRead(A.qp, 11, A.mr, A.buf, 64, rkey, winAddr) == 0);
    usleep(50000);
    CHECK(ibv_poll_cq(A.cq, 1, &wc) == 0);  // timeout 0 = wait forever
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_ERR;
    CHECK(ibv_modify_qp(A.qp, &a, IBV_QP_STATE) == 0);
    CHECK(WaitWc(A.cq, &wc) && wc.status == IBV_WC_WR_FLUSH_ERR);
    ConnectPair(A, B);
    OK("GID type mismatch -> RETRY_EXC_ERR; with timeout 0 the READ hangs until the QP is moved to ERR");
  }

  // ---- CQ overrun, peer gone, busy resources
  {
    ibv_cq* small = ibv_create_cq(A.ctx, 4, nullptr, nullptr, 0);
    CHECK(small != nullptr && small->cqe == 7);
    ibv_qp_init_attr ia{};
    ia.send_cq = ia.recv_cq = small;
    ia.qp_type = IBV_QPT_RC;
    ia.cap = {16, 1, 1, 1, 0};
    ibv_qp* a2 = ibv_create_qp(A.pd, &ia);
    ia.send_cq = ia.recv_cq = B.cq;
    ibv_qp* b2 = ibv_create_qp(B.pd, &ia);
    CHECK(a2 && b2);
    CHECK(Connect(a2, b2, B.ctx, 3, 3) == 0 && Connect(b2, a2, A.ctx, 3, 3) == 0);
    for (int i = 0; i < 8; ++i) CHECK(PostRead(a2, uint64_t(i), A.mr, A.buf, 64, mrR->rkey, kIova) == 0);
    ev = WaitAsync(A.ctx, IBV_EVENT_CQ_ERR);
    CHECK(ev.element.cq == small);
    ibv_wc wcs[16];
    CHECK(ibv_poll_cq(small, 16, wcs) == 7);
    CHECK(ibv_destroy_cq(small) == EBUSY);  // a2 still uses it
    CHECK(ibv_destroy_qp(a2) == 0 && ibv_destroy_cq(small) == 0);
    // peer gone: A's READ towards a destroyed QP times out
    CHECK(Connect(A.qp, b2, B.ctx, 3, 3) == 0);
    CHECK(ibv_destroy_qp(b2) == 0);
    CHECK(ReadOnce(A, mrR->rkey, kIova, 64).status == IBV_WC_RETRY_EXC_ERR);
    ConnectPair(A, B);
    CHECK(ibv_dealloc_pd(B.pd) == EBUSY);
    OK("8 completions into a 7-entry CQ: CQ_ERR, 7 delivered; READ to a destroyed QP: RETRY_EXC_ERR; "
       "busy CQ/PD: EBUSY");
  }

  // ---- type 1 window through ibv_bind_mw (the header's inline -> ops.bind_mw)
  {
    ibv_mw* mw1 = ibv_alloc_mw(B.pd, IBV_MW_TYPE_1);
    CHECK(mw1 != nullptr);
    const uint32_t before = mw1->rkey;
    ibv_mw_bind bind{};
    bind.wr_id = 14;
    bind.send_flags = IBV_SEND_SIGNALED;
    bind.bind_info = {B.mr, winAddr, 4096, IBV_ACCESS_REMOTE_READ};
    CHECK(ibv_bind_mw(B.qp, mw1, &bind) == 0 && mw1->rkey == ibv_inc_rkey(before));
    CHECK(WaitWc(B.cq, &wc) && wc.wr_id == 14 && wc.status == IBV_WC_SUCCESS);
    CHECK(ReadOnce(A, mw1->rkey, winAddr + 10, 100).status == IBV_WC_SUCCESS);
    CHECK(memcmp(A.buf, win + 10, 100) == 0);
    CHECK(ibv_dealloc_mw(mw1) == 0);
    OK("type 1 window bound with ibv_bind_mw (rkey advanced), READ through it: SUCCESS");
  }

  // ---- stats
  auto s = ReadStats();
  printf("     stats:");
  for (auto& kv : s) printf(" %s=%ld", kv.first.c_str(), kv.second);
  printf("\n");
  CHECK(s["cq_overruns"] == 1 && s["binds"] == 3 && s["binds_failed"] == 2 && s["invalidates"] == 1);
  CHECK(s["reads_refused"] == 5 && s["max_reads_outstanding"] == 64 && s["reads_ok"] >= 70);
  OK("stats file: cq_overruns=1 binds=3 invalidates=1 reads_refused=5 max_reads_outstanding=64");

  // ---- teardown
  CHECK(ibv_dealloc_mw(mw) == 0);
  CHECK(ibv_dereg_mr(mrR) == 0);
  for (Host* h : {&A, &B}) {
    CHECK(ibv_destroy_qp(h->qp) == 0);
    CHECK(ibv_destroy_cq(h->cq) == 0);
    CHECK(ibv_destroy_comp_channel(h->ch) == 0);
    CHECK(ibv_dereg_mr(h->mr) == 0);
    CHECK(ibv_dealloc_pd(h->pd) == 0);
    DrainAsync(h->ctx);
    CHECK(ibv_close_device(h->ctx) == 0);
    free(h->buf);
  }
  remove((g_control + ".stats").c_str());
  remove(g_control.c_str());
  rmdir(dir);
  OK("teardown complete");
  return 0;
}
