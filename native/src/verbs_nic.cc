// Opening a NIC for the verbs transport and probing the host's devices (verbsProbe). GID choice follows what
// perftest and the RoCE deployment guides do: a RoCE v2 entry, IPv4-mapped first, never a zero GID.
#include "verbs_nic.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>

#include "memory.h"
#include "modules.h"
#include "verbs_lib.h"

namespace kvf {
namespace {

std::string ReadSys(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

bool IsZero(const ibv_gid& g) {
  for (uint8_t b : g.raw)
    if (b != 0) return false;
  return true;
}

bool IsV4Mapped(const ibv_gid& g) {
  for (int i = 0; i < 10; i++)
    if (g.raw[i] != 0) return false;
  return g.raw[10] == 0xff && g.raw[11] == 0xff;
}

bool IsLinkLocal(const ibv_gid& g) { return g.raw[0] == 0xfe && (g.raw[1] & 0xc0) == 0x80; }

std::string MemlockLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0) return "unknown";
  if (r.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(r.rlim_cur >> 10) + " KiB";
}

}  // namespace

int ChooseGid(const std::vector<GidEntry>& gids, bool ethernet, std::string* why) {
  if (!ethernet) {
    for (const auto& g : gids)
      if (g.index == 0) return 0;
    *why = "no GID at index 0";
    return -1;
  }
  int best = -1, best_score = 0;
  for (const auto& g : gids) {
    if (g.type != "RoCE v2" || IsZero(g.gid)) continue;
    int score = IsV4Mapped(g.gid) ? 3 : IsLinkLocal(g.gid) ? 1 : 2;
    if (score > best_score) best = g.index, best_score = score;
  }
  if (best < 0) *why = "no RoCE v2 GID (give the NIC's netdev an IP address, or pass a GID index)";
  return best;
}

std::vector<GidEntry> ReadGids(ibv_context* ctx, const std::string& dev, uint8_t port, int table_len, int max) {
  const VerbsLib& v = Verbs();
  std::vector<GidEntry> out;
  for (int i = 0; i < table_len && i < max; i++) {
    GidEntry e;
    e.index = i;
    if (v.query_gid_ex) {
      ibv_gid_entry x{};
      if (v.query_gid_ex(ctx, port, uint32_t(i), &x, 0, sizeof(x)) != 0) continue;  // empty entries fail
      e.gid = x.gid;
      e.type = x.gid_type == IBV_GID_TYPE_ROCE_V2 ? "RoCE v2" : x.gid_type == IBV_GID_TYPE_ROCE_V1 ? "RoCE v1" : "IB";
    } else {
      if (v.query_gid(ctx, port, i, &e.gid) != 0) break;
      std::string t = ReadSys("/sys/class/infiniband/" + dev + "/ports/" + std::to_string(port) +
                              "/gid_attrs/types/" + std::to_string(i));
      e.type = t.find("v2") != std::string::npos ? "RoCE v2" : t.find("RoCE") != std::string::npos ? "RoCE v1" : "IB";
    }
    if (!IsZero(e.gid)) out.push_back(e);
  }
  return out;
}

std::string OpenNic(const VerbsConfig& cfg, uint8_t* base, uint64_t size, Nic* p) {
  const VerbsLib& v = Verbs();
  const std::string& name = p->name;
  int n = 0;
  ibv_device** list = v.get_device_list(&n);
  ibv_device* dev = nullptr;
  for (int d = 0; d < n; d++)
    if (name == v.get_device_name(list[d])) dev = list[d];
  if (dev) p->ctx = v.open_device(dev);
  int open_err = errno;
  if (list) v.free_device_list(list);
  if (!dev) return "no RDMA device named " + name;
  if (!p->ctx) return name + ": ibv_open_device failed: " + ErrnoString(open_err);
  std::string numa = ReadSys("/sys/class/infiniband/" + name + "/device/numa_node");
  p->numa_node = numa.empty() ? -1 : std::atoi(numa.c_str());

  ibv_device_attr attr{};
  if (v.query_device(p->ctx, &attr) != 0) return name + ": ibv_query_device failed";
  if (v.query_port(p->ctx, cfg.port_num, &p->port) != 0)
    return name + ": ibv_query_port(" + std::to_string(cfg.port_num) + ") failed";
  if (p->port.state != IBV_PORT_ACTIVE) return name + ": port " + std::to_string(cfg.port_num) + " is not active";

  // GID: the configured index (checked non-zero) or the best RoCE v2 entry.
  std::vector<GidEntry> gids = ReadGids(p->ctx, name, cfg.port_num, p->port.gid_tbl_len, 64);
  std::string why;
  int gi = cfg.gid_index;
  if (gi < 0) {
    gi = ChooseGid(gids, p->ethernet(), &why);
    if (gi < 0) return name + " port " + std::to_string(cfg.port_num) + ": " + why;
  }
  bool found = false;
  for (const auto& g : gids)
    if (g.index == gi) p->gid = g.gid, p->gid_type = g.type, found = true;
  if (!found) return name + ": GID index " + std::to_string(gi) + " is empty (zero GID) on port " +
                     std::to_string(cfg.port_num);
  p->gid_index = gi;

  // Limits: never ask the device for more than it has.
  p->qp_depth = std::min<uint32_t>({cfg.queue_depth, uint32_t(std::max(attr.max_qp_wr, 1)), kMaxQpDepth});
  p->cq_depth = std::min<uint32_t>(cfg.cq_depth, uint32_t(std::max(attr.max_cqe, 1)));
  p->rd_atom_init = std::min<uint32_t>(cfg.read_depth, uint32_t(std::max(attr.max_qp_init_rd_atom, 1)));
  p->rd_atom_resp = uint32_t(std::max(attr.max_qp_rd_atom, 1));
  p->max_msg = p->port.max_msg_sz ? p->port.max_msg_sz : (1ull << 31);
  p->max_mw = uint32_t(std::max(attr.max_mw, 0));
  p->mw_type2 = (attr.device_cap_flags & IBV_DEVICE_MEM_WINDOW_TYPE_2B) != 0 && p->max_mw > 0;
  if (!p->mw_type2 && !cfg.allow_pool_rkey)
    return name + ": no type-2 memory windows (device_cap_flags lacks MEM_WINDOW_TYPE_2B or max_mw is 0), so grants "
                  "cannot be limited to their pages; --verbs-allow-pool-rkey lets any connected peer read the whole pool";

  p->pd = v.alloc_pd(p->ctx);
  if (!p->pd) return name + ": ibv_alloc_pd failed: " + ErrnoString(errno);
  // Serving reads go through memory windows only: the MR itself grants no remote access unless the operator
  // accepted pool-wide rkeys.
  int access = IBV_ACCESS_LOCAL_WRITE | (p->mw_type2 ? IBV_ACCESS_MW_BIND : 0) |
               (cfg.allow_pool_rkey ? IBV_ACCESS_REMOTE_READ : 0);
  // iova 0: remote addresses are pool offsets, and no pointer of ours goes on the wire.
  if (!v.reg_mr_iova2) return "libibverbs lacks ibv_reg_mr_iova2 (rdma-core 22 or newer is needed)";
  auto t0 = std::chrono::steady_clock::now();
  p->mr = v.reg_mr_iova2(p->pd, base, size, 0, unsigned(access));
  p->base = 0;
  int reg_err = errno;
  p->register_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!p->mr) {
    std::string m = name + ": registering the pool (" + std::to_string(size) + " bytes) failed: " + ErrnoString(reg_err);
    if (reg_err == ENOMEM || reg_err == EPERM)
      m += "; RLIMIT_MEMLOCK is " + MemlockLimit() + " and every NIC's registration counts against it " +
           "(ulimit -l unlimited, systemd LimitMEMLOCK=infinity, or the container's memlock ulimit)";
    return m;
  }
  p->channel = v.create_comp_channel(p->ctx);
  if (!p->channel) return name + ": ibv_create_comp_channel failed: " + ErrnoString(errno);
  fcntl(p->channel->fd, F_SETFL, fcntl(p->channel->fd, F_GETFL) | O_NONBLOCK);
  fcntl(p->ctx->async_fd, F_SETFL, fcntl(p->ctx->async_fd, F_GETFL) | O_NONBLOCK);
  p->cq = v.create_cq(p->ctx, int(p->cq_depth), p, p->channel, 0);
  if (!p->cq) return name + ": ibv_create_cq(" + std::to_string(p->cq_depth) + ") failed: " + ErrnoString(errno);
  p->cq_depth = uint32_t(p->cq->cqe) < p->cq_depth ? uint32_t(p->cq->cqe) : p->cq_depth;
  return "";
}

void CloseNic(Nic* p) {
  const VerbsLib& v = Verbs();
  if (p->cq) v.destroy_cq(p->cq), p->cq = nullptr;
  if (p->channel) v.destroy_comp_channel(p->channel), p->channel = nullptr;
  if (p->mr) v.dereg_mr(p->mr), p->mr = nullptr;
  if (p->pd) v.dealloc_pd(p->pd), p->pd = nullptr;
  if (p->ctx) v.close_device(p->ctx), p->ctx = nullptr;
}

namespace {

// verbsProbe() -> { ok, reason, devices: [{ name, numaNode, maxMw, mwType2, maxQpWr, maxCqe, maxQpRdAtom,
//   ports: [{ port, state, lid, activeMtu, linkLayer, speed, maxMsg, gids: [{ index, gid, type }], gidIndex, gidReason }] }] }
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
    ibv_device_attr attr{};
    if (ctx && v.query_device(ctx, &attr) == 0) {
      d.Set("maxMw", attr.max_mw);
      d.Set("mwType2", (attr.device_cap_flags & IBV_DEVICE_MEM_WINDOW_TYPE_2B) != 0 && attr.max_mw > 0);
      d.Set("maxQpWr", attr.max_qp_wr);
      d.Set("maxCqe", attr.max_cqe);
      d.Set("maxQpRdAtom", attr.max_qp_rd_atom);
      for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
        ibv_port_attr pa{};
        if (v.query_port(ctx, p, &pa) != 0) continue;
        bool eth = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
        Napi::Object po = Napi::Object::New(env);
        po.Set("port", p);
        po.Set("state", pa.state == IBV_PORT_ACTIVE ? "active" : pa.state == IBV_PORT_DOWN ? "down" : "init");
        po.Set("lid", pa.lid);
        po.Set("activeMtu", 128 << pa.active_mtu);
        po.Set("linkLayer", eth ? "ethernet" : "infiniband");
        po.Set("speed", ReadSys("/sys/class/infiniband/" + name + "/ports/" + std::to_string(p) + "/rate"));
        po.Set("maxMsg", double(pa.max_msg_sz));
        std::vector<GidEntry> gids = ReadGids(ctx, name, p, pa.gid_tbl_len, 16);
        Napi::Array ga = Napi::Array::New(env);
        for (const auto& g : gids) {
          Napi::Object go = Napi::Object::New(env);
          go.Set("index", g.index);
          go.Set("gid", Napi::Buffer<uint8_t>::Copy(env, g.gid.raw, 16));
          go.Set("type", g.type);
          ga.Set(ga.Length(), go);
        }
        po.Set("gids", ga);
        std::string why;
        int chosen = ChooseGid(gids, eth, &why);
        po.Set("gidIndex", chosen);
        if (chosen < 0) po.Set("gidReason", why);
        if (pa.state == IBV_PORT_ACTIVE && chosen >= 0) usable++;
        ports.Set(ports.Length(), po);
      }
    }
    if (ctx) v.close_device(ctx);
    devices.Set(devices.Length(), d);
  }
  v.free_device_list(list);
  out.Set("ok", usable > 0);
  if (usable == 0) out.Set("reason", "RDMA devices found but no active port with a usable GID");
  return out;
}

}  // namespace

void InitVerbsProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("verbsProbe", Napi::Function::New(env, Probe, "verbsProbe"));
}

}  // namespace kvf
