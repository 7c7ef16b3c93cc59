// One RDMA NIC as the verbs transport uses it: device limits, the chosen GID, a PD, the pool registered once, one
// CQ with its completion channel. Opened off the JavaScript thread (registering a large pool takes seconds).
#pragma once
#include <infiniband/verbs.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kvf {

// Send WRs a QP may hold at most: a WR's 16-bit sequence number (verbs_conn.h) must be unique among them.
constexpr uint32_t kMaxQpDepth = 1u << 15;

// What the node asked for (validated and defaulted in native/lib/verbs-transport.ts).
struct VerbsConfig {
  std::vector<std::string> nics;
  uint8_t port_num = 1;
  int gid_index = -1;          // -1: choose (RoCE v2, IPv4-mapped first)
  uint32_t queue_depth = 256;  // send WRs per QP; clamped to the device's max_qp_wr
  uint32_t cq_depth = 16384;   // clamped to max_cqe; posting never lets a CQ hold more than it can
  uint32_t read_depth = 16;    // READs in flight per QP (max_rd_atomic); clamped to the device and to the peer
  uint32_t post_depth = 32;    // READs posted per QP at once (the rest wait in the worker); >= read_depth
  uint64_t slice_bytes = 1 << 20;  // longest single READ (also clamped to the port's max_msg_sz)
  uint8_t traffic_class = 0;
  uint8_t service_level = 0;
  uint8_t ack_timeout = 14;    // 4.096 us * 2^14 = 67 ms per try
  uint8_t retry_count = 6;     // never 7: rxe treats 7 as "retry forever"
  bool allow_pool_rkey = false;
  uint32_t busy_poll_us = 20;  // spin this long after the last completion before sleeping on the channel
};

// A GID table entry with its type, as read from the device.
struct GidEntry {
  int index = 0;
  ibv_gid gid{};
  std::string type;  // "RoCE v2", "RoCE v1", "IB"
};

// Picks the GID to use on a port: on Ethernet a RoCE v2 entry (IPv4-mapped first, then global IPv6, then
// link-local); on InfiniBand index 0. Returns -1 and sets `why` when nothing fits.
int ChooseGid(const std::vector<GidEntry>& gids, bool ethernet, std::string* why);

// Reads up to `max` non-zero GID entries of a port (with their types: ibv_query_gid_ex, else sysfs).
std::vector<GidEntry> ReadGids(ibv_context* ctx, const std::string& dev, uint8_t port, int table_len, int max);

struct Nic {
  int index = 0;
  std::string name;
  int numa_node = -1;
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_mr* mr = nullptr;
  ibv_comp_channel* channel = nullptr;
  ibv_cq* cq = nullptr;
  ibv_port_attr port{};
  ibv_gid gid{};
  int gid_index = 0;
  std::string gid_type;
  uint64_t base = 0;         // address of pool offset 0 in the MR's address space (0 with iova registration)
  uint32_t qp_depth = 0;     // send WRs per QP (clamped, at most kMaxQpDepth)
  uint32_t cq_depth = 0;     // CQ entries (clamped)
  uint32_t rd_atom_init = 0; // outstanding READs one QP may issue (max_qp_init_rd_atom)
  uint32_t rd_atom_resp = 0; // READs one QP may serve at once (max_qp_rd_atom)
  uint64_t max_msg = 0;      // port max_msg_sz
  uint32_t max_mw = 0;
  bool mw_type2 = false;
  double register_ms = 0;
  bool ethernet() const { return port.link_layer == IBV_LINK_LAYER_ETHERNET; }
};

// Opens `nic->name` and registers [base, base + size): fills `nic`; returns "" or why not (resources opened so far
// stay in `nic` for CloseNic).
std::string OpenNic(const VerbsConfig& cfg, uint8_t* base, uint64_t size, Nic* nic);
void CloseNic(Nic* nic);

}  // namespace kvf
