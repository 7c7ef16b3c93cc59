// libFuzzer target: a real TcpServer (src/tcp_server.cc) on 127.0.0.1, fed each input over a fresh connection.
//
// The server is started once, over a small pool whose granted bytes hold a known pattern and whose other bytes are
// all kOutside; one peer with a secret, one live grant of that peer, one grant of another peer, one expired grant.
// The input's first byte picks the mode and how the bytes are cut into writes:
//   bit 0 = 0  raw: the rest goes out before any authentication; no HELLO_OK and no DATA may come back.
//   bit 0 = 1  authenticated: the harness answers the challenge (v3) and sends a correct HELLO, then the rest.
//              When the rest splits into whole frames, a final READ (req kProbeReq) follows, and its answer must
//              arrive if every frame was a well-formed READ. Every DATA answer must carry exactly the requested
//              pool bytes, each range inside the live grant, in answer to a READ of that grant.
//   bits 1-3   write size: all at once, 1, 7, 48, 49, 100, 512 or 4096 bytes per send.
// The harness then shuts its write side and reads until the server closes; a server that does not is hung.
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "../src/tcp_server.h"
#include "fuzz_wire.h"

namespace kvf::fuzz {
namespace {
using namespace tcpwire;

constexpr uint64_t kPoolBytes = 16 << 10;
constexpr uint8_t kOutside = 0xEE;             // every pool byte outside the live grant
constexpr uint64_t kProbeReq = 0xF0F0F0F0F0F0F0F0ull;
const std::string kPeer = "fuzz-reader";
const uint8_t kSecret[kSecretBytes] = {'s', 'e', 'c', 'r', 'e', 't', '-', 'o', 'f', '-', 'f', 'u', 'z', 'z'};
// The live grant of kPeer, as added and as the server merges it (adjacent ranges become one).
const GrantId kGrant = {{'f', 'u', 'z', 'z', '-', 'g', 'r', 'a', 'n', 't', '-', 'l', 'i', 'v', 'e', '1'}};
const std::vector<WireDesc> kGrantRanges = {{4096, 2048}, {6144, 1024}, {10240, 1024}};
const std::vector<WireDesc> kGrantMerged = {{4096, 3072}, {10240, 1024}};
const GrantId kForeignGrant = {{'f', 'u', 'z', 'z', '-', 'g', 'r', 'a', 'n', 't', '-', 'o', 't', 'h', 'e', 'r'}};
const GrantId kExpiredGrant = {{'f', 'u', 'z', 'z', '-', 'g', 'r', 'a', 'n', 't', '-', 'o', 'l', 'd', '0', '0'}};

uint8_t Granted(uint64_t offset) { return uint8_t(offset % 223); }  // never kOutside (238)

bool InsideGrant(const WireDesc& d) {
  for (const WireDesc& r : kGrantMerged)
    if (d.length > 0 && d.offset >= r.offset && d.length <= r.length && d.offset - r.offset <= r.length - d.length)
      return true;
  return false;
}

struct Fixture {
  MemoryRef mem;
  TransportCounters counters;
  std::unique_ptr<TcpServer> server;
};

Fixture& Server() {
  static Fixture* f = [] {
    auto* fx = new Fixture();
    void* base = mmap(nullptr, kPoolBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) Fail("mmap of the pool failed");
    uint8_t* b = static_cast<uint8_t*>(base);
    std::memset(b, kOutside, kPoolBytes);
    for (const WireDesc& r : kGrantRanges)
      for (uint64_t i = r.offset; i < r.offset + r.length; i++) b[i] = Granted(i);
    fx->mem = std::make_shared<Mapping>(b, kPoolBytes, kPoolBytes, -1);
    fx->server = std::make_unique<TcpServer>(fx->mem, &fx->counters, [](Completion) {});
    std::string err = fx->server->Start("127.0.0.1", 0, TcpServer::Options{});
    if (!err.empty()) Fail("TcpServer::Start: %s", err.c_str());
    fx->server->AddPeer(kPeer, kSecret);
    int64_t far = int64_t(1) << 50;
    fx->server->AddGrant(kGrant, kPeer, kGrantRanges, far);
    fx->server->AddGrant(kForeignGrant, "another-reader", {{0, 4096}}, far);
    fx->server->AddGrant(kExpiredGrant, kPeer, {{12288, 1024}}, 1);
    return fx;
  }();
  return *f;
}

// A READ frame the server would accept as well-formed (it closes the connection on anything else).
bool WellFormedRead(const Header& h) {
  return h.magic == kMagic && h.version == kVersion && h.type == kRead && h.count > 0 && h.count <= kMaxDescs &&
         h.length == uint64_t(h.count) * sizeof(WireDesc);
}

// Reads the CHALLENGE (v3) into `nonce`; nothing to read before HELLO in v2.
void TakeChallenge(Conn& c, uint8_t* nonce) {
  if constexpr (!kChallenged) return;
  const size_t want = sizeof(Header) + kNonceBytes;
  c.ReadUntil([&](const std::vector<uint8_t>& in) { return in.size() >= want; }, "challenge");
  if (c.in.size() < want) Fail("server closed before its challenge");
  Header h;
  std::memcpy(&h, c.in.data(), sizeof h);
  if (h.magic != kMagic || h.version != kVersion || h.type != kChallenge || h.length != kNonceBytes)
    Fail("first frame is not a CHALLENGE (type %u, length %llu)", h.type, (unsigned long long)h.length);
  std::memcpy(nonce, c.in.data() + sizeof h, kNonceBytes);
  c.in.erase(c.in.begin(), c.in.begin() + want);
}

void CheckRaw(const std::vector<uint8_t>& replies) {
  for (const Frame& f : SplitFrames(replies))
    if (f.h.type == kHelloOk || f.h.type == kData)
      Fail("unauthenticated connection got a frame of type %u", f.h.type);
}

// Matches each answer to the next sent READ with its req id (answers come in request order) and checks DATA.
// Returns whether the probe's answer was among them.
bool CheckAnswers(const std::vector<uint8_t>& sent, const std::vector<uint8_t>& replies) {
  const uint8_t* pool = Server().mem->base();
  std::vector<Frame> reqs = SplitFrames(sent), answers = SplitFrames(replies);
  // Nothing at all is fine: a bad frame right after HELLO closes the connection before HELLO_OK is written.
  if (!answers.empty() && answers[0].h.type != kHelloOk) Fail("a correct HELLO was answered with type %u", answers[0].h.type);
  size_t next = 0;
  bool probe = false;
  for (size_t a = 1; a < answers.size(); a++) {
    const Header& h = answers[a].h;
    if (h.type != kData && h.type != kError) Fail("answer of type %u", h.type);
    while (next < reqs.size() && !(WellFormedRead(reqs[next].h) && reqs[next].h.req == h.req)) next++;
    if (next == reqs.size()) Fail("answer to req %llu, which was never asked", (unsigned long long)h.req);
    const Frame& r = reqs[next++];
    probe |= h.req == kProbeReq;
    if (h.type == kError) continue;
    if (std::memcmp(r.h.grant, kGrant.bytes.data(), GrantId::kBytes) != 0)
      Fail("DATA for req %llu under a grant that is not the reader's live one", (unsigned long long)h.req);
    uint64_t at = answers[a].payload;
    for (uint32_t i = 0; i < r.h.count; i++) {
      WireDesc d;
      std::memcpy(&d, sent.data() + r.payload + i * sizeof d, sizeof d);
      if (!InsideGrant(d))
        Fail("DATA for req %llu covers [%llu, +%llu) outside the grant", (unsigned long long)h.req,
             (unsigned long long)d.offset, (unsigned long long)d.length);
      if (d.length > answers[a].payload + h.length - at || std::memcmp(replies.data() + at, pool + d.offset, d.length))
        Fail("DATA for req %llu does not carry the pool bytes of [%llu, +%llu)", (unsigned long long)h.req,
             (unsigned long long)d.offset, (unsigned long long)d.length);
      at += d.length;
    }
    if (at != answers[a].payload + h.length) Fail("DATA for req %llu is longer than asked", (unsigned long long)h.req);
  }
  return probe;
}

void RunRaw(const uint8_t* data, size_t size, size_t chunk) {
  Conn c = Conn::Dial(Server().server->port());
  c.Send(data, size, chunk);
  c.ShutdownWrite();
  c.ReadToEof("raw input: waiting for the server to close");
  std::vector<uint8_t> replies = std::move(c.in);
  if (kChallenged && replies.size() >= sizeof(Header) + kNonceBytes)
    replies.erase(replies.begin(), replies.begin() + sizeof(Header) + kNonceBytes);
  CheckRaw(replies);
}

void RunAuthed(const uint8_t* data, size_t size, size_t chunk) {
  Conn c = Conn::Dial(Server().server->port());
  uint8_t nonce[kNonceBytes] = {};
  TakeChallenge(c, nonce);
  std::vector<uint8_t> hello = HelloPayload(kPeer, kSecret, nonce), sent;
  AppendFrame(&sent, MakeHeader(kHello, 0, hello.size()), hello.data(), hello.size());
  sent.insert(sent.end(), data, data + size);
  size_t used = 0;
  std::vector<Frame> frames = SplitFrames(sent, &used);
  bool probing = used == sent.size();
  bool all_reads = probing && std::all_of(frames.begin() + 1, frames.end(), [](const Frame& f) {
                     return WellFormedRead(f.h);
                   });
  if (probing) {
    Header h = MakeHeader(kRead, kProbeReq, sizeof(WireDesc));
    std::memcpy(h.grant, kGrant.bytes.data(), GrantId::kBytes);
    h.count = 1;
    WireDesc d{kGrantRanges[2].offset + 7, 100};
    AppendFrame(&sent, h, &d, sizeof d);
  }
  bool open = c.Send(sent, chunk);
  if (probing && open) {
    c.ReadUntil([](const std::vector<uint8_t>& in) {
      std::vector<Frame> f = SplitFrames(in);
      return !f.empty() && f.back().h.req == kProbeReq && f.back().h.type != kHelloOk;
    }, "waiting for the probe's answer");
  }
  c.ShutdownWrite();
  c.ReadToEof("authenticated input: waiting for the server to close");
  bool probe_answered = CheckAnswers(sent, c.in);
  if (all_reads && open && !probe_answered) Fail("the server closed a connection that sent only well-formed READs");
}

}  // namespace
}  // namespace kvf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvf::fuzz;
  if (size == 0) return 0;
  static const size_t kChunks[8] = {SIZE_MAX, 1, 7, 48, 49, 100, 512, 4096};
  size_t chunk = kChunks[(data[0] >> 1) & 7];
  if (data[0] & 1) RunAuthed(data + 1, size - 1, chunk);
  else RunRaw(data + 1, size - 1, chunk);
  return 0;
}
