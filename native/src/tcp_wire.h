// The tcp transport's wire format. Every frame starts with a fixed 48-byte little-endian header; sizes are
// bounded and validated before anything is allocated, so garbage closes the connection instead of growing buffers.
//
//   server -> client  CHALLENGE  payload: 32 random bytes (a nonce), sent as soon as the connection is accepted
//   client -> server  HELLO   payload: u16 peer id length, peer id bytes, 32-byte proof:
//                             HMAC-SHA256(key = the reader's secret, "kvfabric-tcp-hello/3" || nonce || peer id)
//   server -> client  HELLO_OK (no payload) | HELLO_REFUSED payload: message
// The secret itself never crosses this plaintext stream (it comes with the Peer handshake, over mutual TLS), and a
// recorded HELLO is worthless on another connection, whose nonce differs.
//   client -> server  READ    req, grant (16 random bytes), count descriptors; payload: count x (u64 remote
//                             offset, u64 length)
//   server -> client  DATA    req, length = sum of lengths; payload: the bytes, descriptor after descriptor
//                     ERROR   req, code (1 GRANT_REFUSED, 2 INVALID_ARGUMENT); payload: message
// Responses come back in request order on each connection.
#pragma once
#include <cstdint>
#include <cstring>

namespace kvf::tcpwire {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian; add byte swaps");

inline constexpr uint32_t kMagic = 0x5446564B;  // "KVFT"
inline constexpr uint16_t kVersion = 3;  // 2: 128-bit grant ids; 3: challenge-response HELLO
inline constexpr size_t kSecretBytes = 32;
inline constexpr size_t kGrantIdBytes = 16;
inline constexpr size_t kMaxPeerId = 256;
inline constexpr uint32_t kMaxDescs = 1024;                  // per READ frame
inline constexpr uint64_t kMaxReadBytes = 256ull << 20;      // per READ frame
inline constexpr uint64_t kMaxMessage = 1024;                // ERROR / HELLO_REFUSED payload
inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kProofBytes = 32;  // HMAC-SHA256
inline constexpr char kHelloContext[] = "kvfabric-tcp-hello/3";
inline constexpr uint64_t kMaxHello = 2 + kMaxPeerId + kProofBytes;

enum Type : uint16_t { kHello = 1, kHelloOk = 2, kHelloRefused = 3, kRead = 4, kData = 5, kError = 6, kChallenge = 7 };
enum ErrCode : uint16_t { kErrGrantRefused = 1, kErrInvalid = 2 };

struct Header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint64_t req;
  uint8_t grant[kGrantIdBytes];
  uint32_t count;
  uint16_t code;
  uint16_t reserved;
  uint64_t length;  // payload bytes after the header
};
static_assert(sizeof(Header) == 48, "wire header must be 48 bytes");

inline Header MakeHeader(uint16_t type, uint64_t req, uint64_t length) {
  Header h;
  std::memset(&h, 0, sizeof h);
  h.magic = kMagic;
  h.version = kVersion;
  h.type = type;
  h.req = req;
  h.length = length;
  return h;
}

struct WireDesc {
  uint64_t offset;
  uint64_t length;
};
static_assert(sizeof(WireDesc) == 16, "wire descriptor must be 16 bytes");

}  // namespace kvf::tcpwire
