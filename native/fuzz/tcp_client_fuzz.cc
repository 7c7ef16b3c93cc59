// libFuzzer target: a real TcpClient (src/tcp_client.cc) reading from a fake holder that answers with the input.
// A reader must survive any holder: the holder is another node, and only the grant, not trust, connects them.
//
// The client is started once; per input it connects to the harness's listening socket (one connection), the
// harness checks the client's HELLO (after sending a CHALLENGE from wire version 3 on) and then, by the first byte:
//   bit 0 = 0  the rest is the whole reply to HELLO; the connect must settle (either way).
//   bit 0 = 1  HELLO_OK, then a 2-range read of 4,000 bytes is started; the rest is the holder's answers, a
//              header at a time: each header whose req is below 256 gets the read's real request id, and what
//              follows it (up to its length) is sent as is. The read must settle; a successful read must report
//              4,000 bytes and hold exactly the first DATA payload, and no byte outside its two destination
//              ranges may ever change.
//   bits 1-3   write size: all at once, 1, 7, 48, 49, 100, 512 or 4096 bytes per send.
#include <sys/socket.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "../src/tcp_client.h"
#include "fuzz_wire.h"

namespace kvf::fuzz {
namespace {
using namespace tcpwire;

constexpr size_t kLocalBytes = 16 << 10;
constexpr uint8_t kCanary = 0xC5;
constexpr int64_t kOpTimeoutMs = 5000;  // the client's own deadline; the harness waits longer
const std::string kHolder = "fuzz-holder", kName = "fuzz-reader";
const std::string kSecret(kSecretBytes, 'k');
const uint8_t kNonce[kNonceBytes] = {'n', 'o', 'n', 'c', 'e'};
const GrantId kGrant = {{'f', 'u', 'z', 'z', '-', 'c', 'l', 'i', 'e', 'n', 't', '-', 'g', 'r', 'n', 't'}};
struct Range {
  uint64_t remote, local, length;
};
const Range kRanges[2] = {{0, 1000, 1000}, {4096, 8192, 3000}};
constexpr uint64_t kReadBytes = 4000;
constexpr uint64_t kPageBytes = 1000;  // both ranges are whole pages of this size

struct Fixture {
  TransportCounters counters;
  std::unique_ptr<TcpClient> client;
  int listen_fd = -1, port = 0;
  uint8_t local[kLocalBytes];
  uint64_t next_op = 1;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Completion> settled;
};

Fixture& F() {
  static Fixture* f = [] {
    auto* fx = new Fixture();
    fx->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fx->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fx->listen_fd, 16) != 0 ||
        getsockname(fx->listen_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      Fail("listen on 127.0.0.1: %s", std::strerror(errno));
    fx->port = ntohs(a.sin_port);
    fx->client = std::make_unique<TcpClient>(&fx->counters, [fx](Completion c) {
      std::lock_guard<std::mutex> g(fx->mu);
      fx->settled[c.id] = std::move(c);
      fx->cv.notify_all();
    }, 0);
    std::string err = fx->client->Start();
    if (!err.empty()) Fail("TcpClient::Start: %s", err.c_str());
    return fx;
  }();
  return *f;
}

Completion Settled(uint64_t op, const char* what) {
  Fixture& f = F();
  std::unique_lock<std::mutex> l(f.mu);
  if (!f.cv.wait_for(l, std::chrono::milliseconds(kOpTimeoutMs + kDeadlineMs), [&] { return f.settled.count(op); }))
    Fail("%s never settled", what);
  Completion c = std::move(f.settled[op]);
  f.settled.erase(op);
  return c;
}

bool IsSettled(uint64_t op) {
  std::lock_guard<std::mutex> g(F().mu);
  return F().settled.count(op) > 0;
}

Conn Accept() {
  pollfd p{F().listen_fd, POLLIN, 0};
  if (poll(&p, 1, int(kDeadlineMs)) != 1) Fail("the client did not connect within %lld ms", (long long)kDeadlineMs);
  int fd = accept4(F().listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) Fail("accept: %s", std::strerror(errno));
  return Conn(fd);
}

// The next complete frame from the client, which must be of `type`; its payload lands in `*payload`.
Header TakeFrame(Conn& c, uint16_t type, std::vector<uint8_t>* payload, const char* what) {
  size_t used = 0;
  c.ReadUntil([&](const std::vector<uint8_t>& in) { return !SplitFrames(in, &used).empty(); }, what);
  std::vector<Frame> f = SplitFrames(c.in, &used);
  if (f.empty()) Fail("%s: the client closed first", what);
  const Header h = f[0].h;
  if (h.magic != kMagic || h.version != kVersion || h.type != type) Fail("%s: a frame of type %u", what, h.type);
  payload->assign(c.in.begin() + f[0].payload, c.in.begin() + f[0].payload + h.length);
  c.in.erase(c.in.begin(), c.in.begin() + f[0].payload + h.length);
  return h;
}

// The input as answers: headers with a small req get `req`; everything else goes out as it came.
std::vector<uint8_t> Answers(const uint8_t* data, size_t size, uint64_t req) {
  std::vector<uint8_t> out;
  size_t pos = 0;
  while (size - pos >= sizeof(Header)) {
    Header h;
    std::memcpy(&h, data + pos, sizeof h);
    if (h.req < 256) h.req = req;
    AppendFrame(&out, h, nullptr, 0);
    pos += sizeof h;
    size_t n = size_t(std::min<uint64_t>(h.length, size - pos));
    out.insert(out.end(), data + pos, data + pos + n);
    pos += n;
  }
  out.insert(out.end(), data + pos, data + size);
  return out;
}

void CheckLocal(const Completion& done, const std::vector<uint8_t>& answers) {
  const uint8_t* local = F().local;
  size_t at = 0;
  for (const Range& r : kRanges) {
    for (size_t i = at; i < r.local; i++)
      if (local[i] != kCanary) Fail("byte %zu outside the read's destination ranges changed", i);
    at = r.local + r.length;
  }
  for (size_t i = at; i < kLocalBytes; i++)
    if (local[i] != kCanary) Fail("byte %zu outside the read's destination ranges changed", i);
  if (done.code != nullptr) return;
  if (done.bytes != double(kReadBytes)) Fail("a successful read reported %.0f bytes", done.bytes);
  if (answers.size() < sizeof(Header) + kReadBytes) Fail("a read succeeded on %zu answer bytes", answers.size());
  const uint8_t* payload = answers.data() + sizeof(Header);
  for (const Range& r : kRanges) {
    if (std::memcmp(local + r.local, payload, r.length) != 0)
      Fail("a successful read's destination [%llu, +%llu) differs from the DATA payload", (unsigned long long)r.local,
           (unsigned long long)r.length);
    payload += r.length;
  }
}

void Run(bool authed, const uint8_t* data, size_t size, size_t chunk) {
  Fixture& f = F();
  uint64_t connect_op = f.next_op++;
  f.client->Connect(connect_op, kHolder, "127.0.0.1", f.port, kName, kSecret, 1, kOpTimeoutMs);
  Conn c = Accept();
  if (kChallenged) {
    std::vector<uint8_t> challenge;
    AppendFrame(&challenge, MakeHeader(kChallenge, 0, kNonceBytes), kNonce, kNonceBytes);
    c.Send(challenge);
  }
  std::vector<uint8_t> payload;
  TakeFrame(c, kHello, &payload, "client HELLO");
  if (payload != HelloPayload(kName, reinterpret_cast<const uint8_t*>(kSecret.data()), kNonce))
    Fail("the client's HELLO payload (%zu bytes) is not the expected one", payload.size());
  if (!authed) {
    c.Send(data, size, chunk);
    c.ShutdownWrite();
    // A reply whose first header has a bad magic or version makes the client close the connection without
    // settling the connect (OnHeader calls FailConn, not FailConnect, in the HELLO state), which would then wait
    // for its deadline. Dropping the peer once it closed settles the connect at once.
    while (!c.eof && !IsSettled(connect_op)) c.Poll(2);
    f.client->Drop(kHolder);
    Settled(connect_op, "connect after a fuzzed HELLO reply");
    return;
  }
  std::vector<uint8_t> ok;
  AppendFrame(&ok, MakeHeader(kHelloOk, 0, 0), nullptr, 0);
  c.Send(ok);
  Completion connected = Settled(connect_op, "connect after HELLO_OK");
  if (connected.code) Fail("connect failed after HELLO_OK: %s", connected.message.c_str());
  std::memset(f.local, kCanary, kLocalBytes);
  // The read checks its pages as they land (1000-byte pages: the second range is three of them, which the client
  // merges back into one wire range), so fuzzed DATA splits run through the page sums too. The expected sums are
  // arbitrary: which pages mismatch does not matter here, only that nothing outside the pages is touched.
  std::vector<ReadDesc> descs;
  LandedPages check;
  check.page_bytes = kPageBytes;
  for (const Range& r : kRanges)
    for (uint64_t at = 0; at < r.length; at += kPageBytes) {
      descs.push_back({r.remote + at, f.local + r.local + at, kPageBytes, uint32_t(descs.size())});
      check.expected.push_back(descs.size());
    }
  uint64_t read_op = f.next_op++;
  f.client->Read(read_op, kHolder, kGrant, descs, kOpTimeoutMs, std::move(check));
  Header req = TakeFrame(c, kRead, &payload, "client READ");
  WireDesc w[2];
  if (req.count != 2 || payload.size() != sizeof w || std::memcmp(req.grant, kGrant.bytes.data(), GrantId::kBytes))
    Fail("the client's READ is not the 2-range read of the grant");
  std::memcpy(w, payload.data(), sizeof w);
  for (int i = 0; i < 2; i++)
    if (w[i].offset != kRanges[i].remote || w[i].length != kRanges[i].length) Fail("READ range %d is wrong", i);
  std::vector<uint8_t> answers = Answers(data, size, req.req);
  c.Send(answers, chunk);
  c.ShutdownWrite();
  Completion done = Settled(read_op, "read after fuzzed answers");
  CheckLocal(done, answers);
  f.client->Drop(kHolder);
}

}  // namespace
}  // namespace kvf::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvf::fuzz;
  if (size == 0) return 0;
  static const size_t kChunks[8] = {SIZE_MAX, 1, 7, 48, 49, 100, 512, 4096};
  Run(data[0] & 1, data + 1, size - 1, kChunks[(data[0] >> 1) & 7]);
  return 0;
}
