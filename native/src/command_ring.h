// The engine command ring: save, load, query and release commands that an engine on the node's host writes into
// shared memory and a native node thread executes, without gRPC or the node's JavaScript per call. The shape of
// io_uring: the engine fills a command slot, puts its index on the submission queue (SQ) and advances the SQ tail;
// the node copies the command out, runs it, writes the result into the same slot and puts the index on the
// completion queue (CQ). Sleeping sides are woken with a futex on the tail they wait for (shared mapping, so it
// works across processes), only when the other side said it sleeps. The ring is a sealed memfd the engine creates
// and hands over like a region, then attaches to its instance (AttachRing). Header only: the layout both sides use
// (the node: engine_ring.cc; the engine SDK: fdpass/command_ring_client.cc and packages/client/src/engine-ring.ts).
//
// Layout, little-endian, offsets in bytes:
//   0    u32 magic 0x3152564b ("KVR1")   4 u32 version (1)   8 u32 entries (power of two, 1..4096)
//   12   u32 slot_bytes (payload bytes per command, a multiple of 64, 64..16 MiB)
//   64   u32 sq_head (node)      68  u32 node_sleeping (node: 1 while it waits on sq_tail)
//   128  u32 sq_tail (engine)
//   192  u32 cq_head (engine)    196 u32 engine_sleeping (engine: 1 while it waits on cq_tail)
//   256  u32 cq_tail (node)
//   512  SQ: entries x u32 command index      then CQ: entries x u32 command index
//   then, 64-aligned, entries command slots of (64 + slot_bytes): a 64-byte command header and its payload.
//
// Command header: 0 u8 op, 1 u8 hash_len, 2 u8 flags, 3 u8 status (node), 4 u32 count, 8 u64 user_data (echoed),
//   16..31 lease id (16 ASCII bytes: in for load and release, out for a READY query),
//   32 u32 r0, 36 u32 r1, 40 u32 r2, 44 u32 r3, 48 u64 r4, 56 u32 message_bytes (node, status ERROR).
// Payloads: save in = block_ids u32[count] then hashes (count x hash_len); out = outcomes u8[count] at 0,
//   r0 stored, r1 sealed, r2 present, r3 no_space. load in = block_ids u32[count]; out r0 loaded, r4 bytes.
//   query in = hashes (count x hash_len); out r0 hits, r4 lease expiry (ms since the epoch), the lease id.
//   release: no payload. status ERROR: payload = "<CODE> <message>" (message_bytes long). status RETRY: the
//   command must go over gRPC instead (a query whose missing suffix the node may fetch from SSD or peers).
#pragma once
#include <cstdint>

namespace kvf::ring {

constexpr uint32_t kMagic = 0x3152564b;
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxEntries = 4096;
constexpr uint32_t kMaxSlotBytes = 16u << 20;
constexpr uint32_t kHeaderBytes = 512;
constexpr uint32_t kCommandHeaderBytes = 64;
constexpr uint32_t kLeaseIdBytes = 16;

enum HeaderOffset : uint32_t {
  kOffMagic = 0,
  kOffVersion = 4,
  kOffEntries = 8,
  kOffSlotBytes = 12,
  kOffSqHead = 64,
  kOffNodeSleeping = 68,
  kOffSqTail = 128,
  kOffCqHead = 192,
  kOffEngineSleeping = 196,
  kOffCqTail = 256,
};

enum CommandOffset : uint32_t {
  kCmdOp = 0,
  kCmdHashLen = 1,
  kCmdFlags = 2,
  kCmdStatus = 3,
  kCmdCount = 4,
  kCmdUserData = 8,
  kCmdLeaseId = 16,
  kCmdR0 = 32,
  kCmdR1 = 36,
  kCmdR2 = 40,
  kCmdR3 = 44,
  kCmdR4 = 48,
  kCmdMessageBytes = 56,
};

enum Op : uint8_t { kOpSave = 1, kOpLoad = 2, kOpQuery = 3, kOpRelease = 4 };
enum Flag : uint8_t { kFlagLocalOnly = 1 };
enum Status : uint8_t { kStatusOk = 0, kStatusError = 1, kStatusRetry = 2 };

inline uint64_t SqOffset() { return kHeaderBytes; }
inline uint64_t CqOffset(uint32_t entries) { return kHeaderBytes + 4ull * entries; }
inline uint64_t SlotsOffset(uint32_t entries) { return (kHeaderBytes + 8ull * entries + 63) & ~63ull; }
inline uint64_t SlotOffset(uint32_t entries, uint32_t slot_bytes, uint32_t index) {
  return SlotsOffset(entries) + static_cast<uint64_t>(index) * (kCommandHeaderBytes + slot_bytes);
}
inline uint64_t RingBytes(uint32_t entries, uint32_t slot_bytes) { return SlotOffset(entries, slot_bytes, entries); }

}  // namespace kvf::ring
