#include "tcp_server.h"

#include "tcp_hello.h"

#include <pthread.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>

namespace kvf {
namespace {
using namespace tcpwire;

constexpr size_t kRbufBytes = 64 << 10;
constexpr size_t kMaxIov = 512;
// At most this much per writev: one call otherwise fills a whole send buffer (several MiB) under the socket's lock.
// Chosen by measurement (builds alternated): with 1 MiB, tcp-read moved 2-19% more GB/s than with no cap over two
// rounds and a 256 KiB pull 2.85 against 2.67 GB/s; 256 KiB, 512 KiB and 2 MiB caps did less well than 1 MiB.
constexpr size_t kWriteSliceBytes = 1 << 20;
constexpr size_t kPauseAt = 512, kResumeAt = 128;  // queued responses per connection
constexpr int64_t kHelloTimeoutMs = 10000;
constexpr size_t kMaxUnauthed = 256;          // connections still to say HELLO; past it the oldest is closed
constexpr int kMaxConnsPerPeer = 128;         // twice the most streams a reader opens (--streams-per-peer <= 64)
constexpr int64_t kAcceptBackoffMinMs = 50, kAcceptBackoffMaxMs = 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
bool ConstantTimeEqual(const std::string& a, const uint8_t* b, size_t n) {
  if (a.size() != n) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < n; i++) diff |= uint8_t(a[i]) ^ b[i];
  return diff == 0;
}
}  // namespace

// One queued answer's hold on the grant it reads from: released when the answer has been written, or dropped with
// its connection; the last release of a removed grant posts its removal.
struct AnswerRef {
  TcpServer* server = nullptr;
  std::shared_ptr<TcpServer::Grant> grant;
  ~AnswerRef() {
    if (grant) server->DropAnswer(grant.get());
  }
};

struct TcpServer::Resp {
  Header hdr;
  std::string msg;
  std::vector<iovec> iov;
  size_t idx = 0;
  uint64_t data_bytes = 0;
  AnswerRef ref;  // DATA answers only
};

struct TcpServer::Conn {
  int fd = -1;
  bool authed = false;
  std::string peer;
  int64_t accepted_ms = 0;
  uint8_t nonce[kNonceBytes];  // this connection's CHALLENGE: a HELLO proves the reader's secret over it
  int64_t progress_ms = 0;  // when the queue last became non-empty or a write made progress
  std::vector<uint8_t> rbuf = std::vector<uint8_t>(kRbufBytes);
  size_t rlen = 0;
  std::deque<std::unique_ptr<Resp>> wq;
  bool want_in = true, want_out = false, closing = false;
};

TcpServer::TcpServer(MemoryRef mem, TransportCounters* counters, EventFn on_event)
    : mem_(std::move(mem)), counters_(counters), on_event_(std::move(on_event)) {}

TcpServer::~TcpServer() { Stop(); }

std::string TcpServer::Start(const std::string& host, int port, const Options& opts) {
  opts_ = opts;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return "host: expected an IPv4 address, got " + host;
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return "socket: " + ErrnoString(errno);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return "bind " + host + ":" + std::to_string(port) + ": " + ErrnoString(errno);
  if (listen(listen_fd_, 128) != 0) return "listen: " + ErrnoString(errno);
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || event_fd_ < 0) return "epoll/eventfd: " + ErrnoString(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // listen socket
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.ptr = this;  // event fd
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev);
  thread_ = std::thread([this] { Run(); });
  return "";
}

void TcpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_ = true;
  if (event_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (auto& [p, c] : conns_) close(c->fd);
  conns_.clear();  // drops every queued answer: pending removals settle
  for (int* fd : {&listen_fd_, &epoll_fd_, &event_fd_})
    if (*fd >= 0) close(*fd), *fd = -1;
  mem_.reset();
}

void TcpServer::AddPeer(const std::string& peer, const uint8_t* secret) {
  std::lock_guard<std::mutex> g(mu_);
  secrets_[peer] = std::string(reinterpret_cast<const char*>(secret), kSecretBytes);
}

void TcpServer::DropPeer(const std::string& peer) {
  {
    std::lock_guard<std::mutex> g(mu_);
    secrets_.erase(peer);
    drops_.push_back(peer);
  }
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

void TcpServer::AddGrant(const GrantId& id, const std::string& peer, std::vector<WireDesc> ranges,
                         int64_t expires_ms) {
  std::sort(ranges.begin(), ranges.end(), [](const WireDesc& a, const WireDesc& b) { return a.offset < b.offset; });
  // Adjacent (or overlapping) ranges of one grant become one: a reader may read across page boundaries of the
  // grant in one descriptor, and CheckGrant searches fewer ranges.
  size_t kept = 0;
  for (const WireDesc& r : ranges) {
    if (kept && ranges[kept - 1].offset + ranges[kept - 1].length >= r.offset)
      ranges[kept - 1].length = std::max(ranges[kept - 1].length, r.offset + r.length - ranges[kept - 1].offset);
    else
      ranges[kept++] = r;
  }
  ranges.resize(kept);
  auto g = std::make_shared<Grant>();
  g->peer = peer;
  g->ranges = std::move(ranges);
  g->expires_ms = expires_ms;
  std::lock_guard<std::mutex> l(mu_);
  grants_[id] = std::move(g);
}

void TcpServer::RemoveGrant(const GrantId& id, uint64_t op) {
  bool settled = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = grants_.find(id);
    if (it != grants_.end()) {
      if (it->second->answers > 0) it->second->remove_op = op, settled = false;
      grants_.erase(it);
    }
  }
  if (settled) {
    Completion c;
    c.id = op;
    Post(std::move(c));
  }
}

void TcpServer::DropAnswer(Grant* g) {
  uint64_t op = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (--g->answers == 0 && g->remove_op) op = std::exchange(g->remove_op, 0);
  }
  counters_->answers_queued--;
  if (op) {
    Completion c;
    c.id = op;
    Post(std::move(c));
  }
}

void TcpServer::Run() {
  (void)pthread_setname_np(pthread_self(), "kvf-tcp-serve");  // for top -H, perf and the benches' CPU split
  epoll_event events[64];
  const int64_t sweep_ms = std::clamp<int64_t>(opts_.stall_ms / 4, 10, 1000);
  int64_t last_sweep = MonoMs();
  while (!stop_) {
    int64_t wait = sweep_ms;
    if (accept_resume_ms_) wait = std::clamp<int64_t>(accept_resume_ms_ - MonoMs(), 0, wait);
    int n = epoll_wait(epoll_fd_, events, 64, int(wait));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      void* ptr = events[i].data.ptr;
      if (ptr == nullptr) {
        Accept();
      } else if (ptr == this) {
        uint64_t v;
        (void)!read(event_fd_, &v, sizeof v);
        std::vector<std::string> drops;
        {
          std::lock_guard<std::mutex> g(mu_);
          drops.swap(drops_);
        }
        for (const auto& peer : drops)
          for (auto& [p, c] : conns_)
            if (c->authed && c->peer == peer) c->closing = true;
      } else {
        Conn* c = static_cast<Conn*>(ptr);
        if (c->closing) continue;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          c->closing = true;
          continue;
        }
        if (events[i].events & EPOLLOUT && !Flush(c)) continue;
        if (events[i].events & EPOLLIN) OnReadable(c);
      }
    }
    int64_t now = MonoMs();
    if (accept_resume_ms_ && now >= accept_resume_ms_) {
      accept_resume_ms_ = 0;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
      Accept();  // also when nothing is pending: EAGAIN then proves descriptors are available again
    }
    if (now - last_sweep >= sweep_ms) {
      last_sweep = now;
      Sweep(now);
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn* c = it->second.get();
      if (c->closing) {
        close(c->fd);  // closing the fd removes it from the epoll set
        if (!c->authed) unauthed_--;
        else if (--conns_per_peer_[c->peer] == 0) conns_per_peer_.erase(c->peer);
        it = conns_.erase(it);  // drops its queued answers and their holds on grants
      } else {
        ++it;
      }
    }
  }
}

// Closes connections that never said HELLO, and readers that stopped taking their answers (their queued answers
// hold grant pages: a reader must not keep them pinned by not reading).
void TcpServer::Sweep(int64_t now) {
  for (auto& [p, c] : conns_) {
    if (c->closing) continue;
    if (!c->authed && now - c->accepted_ms > kHelloTimeoutMs) c->closing = true;
    if (opts_.stall_ms > 0 && !c->wq.empty() && now - c->progress_ms > opts_.stall_ms) {
      c->closing = true;
      counters_->stalled_closed++;
      Completion ev;
      ev.event = "error";
      ev.peer = c->peer;
      ev.message = "reader took no answer for " + std::to_string(now - c->progress_ms) + " ms with " +
                   std::to_string(c->wq.size()) + " queued: connection closed, their pages released";
      Post(std::move(ev));
    }
  }
}

void TcpServer::Accept() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Level-triggered: the pending connection keeps the socket readable, so retrying at once would spin.
        PauseAccept(err, MonoMs());
      } else if (err == EAGAIN || err == EWOULDBLOCK) {
        counters_->accept_errno = 0;  // the kernel found a free descriptor before finding the queue empty
        accept_backoff_ms_ = 0;
      } else {
        counters_->errors++;
      }
      return;
    }
    counters_->accept_errno = 0;
    accept_backoff_ms_ = 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opts_.sockbuf > 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts_.sockbuf, sizeof opts_.sockbuf);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts_.sockbuf, sizeof opts_.sockbuf);
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->accepted_ms = MonoMs();
    // the challenge goes out at once; a fresh socket's send buffer takes it whole, or the connection is not kept
    Header ch = MakeHeader(kChallenge, 0, kNonceBytes);
    iovec chv[2] = {{&ch, sizeof ch}, {c->nonce, kNonceBytes}};
    if (!RandomBytes(c->nonce, kNonceBytes) || writev(fd, chv, 2) != ssize_t(sizeof ch + kNonceBytes)) {
      close(fd);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c.get();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    if (unauthed_ >= kMaxUnauthed) {  // the oldest silent connection makes room: new ones are never starved
      Conn* oldest = nullptr;
      for (auto& [p, o] : conns_)
        if (!o->authed && !o->closing && (!oldest || o->accepted_ms < oldest->accepted_ms)) oldest = o.get();
      if (oldest) oldest->closing = true, counters_->refused++;
    }
    unauthed_++;
    conns_.emplace(c.get(), std::move(c));
  }
}

void TcpServer::PauseAccept(int err, int64_t now) {
  counters_->accept_failures++;
  bool first = counters_->accept_errno.exchange(err) == 0;
  accept_backoff_ms_ =
      accept_backoff_ms_ ? std::min(accept_backoff_ms_ * 2, kAcceptBackoffMaxMs) : kAcceptBackoffMinMs;
  accept_resume_ms_ = now + accept_backoff_ms_;
  epoll_event ev{};
  ev.events = 0;
  ev.data.ptr = nullptr;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
  if (first) {
    Completion e;
    e.event = "error";
    e.message = "accepting peer connections failed: " + ErrnoString(err) + "; retrying with back-off";
    Post(std::move(e));
  }
}

void TcpServer::OnReadable(Conn* c) {
  for (int round = 0; round < 16 && c->want_in && !c->closing; round++) {
    size_t room = c->rbuf.size() - c->rlen;
    ssize_t n = recv(c->fd, c->rbuf.data() + c->rlen, room, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      c->closing = true;  // peer went away: its queued responses are dropped with it
      return;
    }
    if (n < 0) return;
    c->rlen += size_t(n);
    size_t pos = 0;
    while (c->rlen - pos >= sizeof(Header)) {
      Header h;
      std::memcpy(&h, c->rbuf.data() + pos, sizeof h);
      if (c->rlen - pos - sizeof h < h.length && h.length <= kRbufBytes - sizeof h) break;  // wait for the rest
      if (!OnFrame(c, h, c->rbuf.data() + pos + sizeof h)) {
        counters_->errors++;
        c->closing = true;
        return;
      }
      if (c->closing) return;
      pos += sizeof h + h.length;
    }
    if (pos > 0) {
      std::memmove(c->rbuf.data(), c->rbuf.data() + pos, c->rlen - pos);
      c->rlen -= pos;
    }
    if (!Flush(c)) return;
    if (size_t(n) < room) break;
  }
}

// Validates one frame; false closes the connection (garbage, protocol violation, refused hello).
bool TcpServer::OnFrame(Conn* c, const Header& h, const uint8_t* payload) {
  if (h.magic != kMagic || h.version != kVersion) return false;
  if (!c->authed) return h.type == kHello && h.length <= kMaxHello && OnHello(c, payload, h.length);
  if (h.type != kRead || h.count == 0 || h.count > kMaxDescs || h.length != uint64_t(h.count) * sizeof(WireDesc))
    return false;
  OnRead(c, h, payload);
  return true;
}

bool TcpServer::OnHello(Conn* c, const uint8_t* p, uint64_t len) {
  if (len < 2) return false;
  uint16_t id_len;
  std::memcpy(&id_len, p, 2);
  if (id_len == 0 || id_len > kMaxPeerId || len != 2 + uint64_t(id_len) + kProofBytes) return false;
  std::string peer(reinterpret_cast<const char*>(p + 2), id_len);
  uint8_t expected[kProofBytes];
  bool known;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = secrets_.find(peer);
    known = it != secrets_.end() && it->second.size() == kSecretBytes;
    if (known) HelloProof(reinterpret_cast<const uint8_t*>(it->second.data()), c->nonce, peer, expected);
  }
  bool ok = known && ConstantTimeEqual(std::string(reinterpret_cast<const char*>(expected), kProofBytes),
                                       p + 2 + id_len, kProofBytes);
  if (!ok) {
    Refuse(peer, nullptr, "connection refused: unknown peer or wrong secret");
    std::string msg = "unknown peer or wrong secret";
    Header r = MakeHeader(kHelloRefused, 0, msg.size());
    iovec iov[2] = {{&r, sizeof r}, {msg.data(), msg.size()}};
    (void)!writev(c->fd, iov, 2);  // best effort: the socket buffer is empty at this point
    c->closing = true;
    return true;
  }
  if (conns_per_peer_[peer] >= kMaxConnsPerPeer) {
    Refuse(peer, nullptr, "connection refused: " + std::to_string(kMaxConnsPerPeer) + " connections already open");
    std::string msg = "too many connections";
    Header r = MakeHeader(kHelloRefused, 0, msg.size());
    iovec iov[2] = {{&r, sizeof r}, {msg.data(), msg.size()}};
    (void)!writev(c->fd, iov, 2);
    c->closing = true;
    return true;
  }
  c->authed = true;
  unauthed_--;
  conns_per_peer_[peer]++;
  c->peer = std::move(peer);
  auto resp = std::make_unique<Resp>();
  resp->hdr = MakeHeader(kHelloOk, 0, 0);
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  Enqueue(c, std::move(resp));
  return true;
}

void TcpServer::Refuse(const std::string& peer, const GrantId* grant, const std::string& msg) {
  counters_->refused++;
  Completion ev;
  ev.event = "refused";
  ev.peer = peer;
  if (grant) ev.grant = grant->Hex();
  ev.message = msg;
  Post(std::move(ev));
}

// The live grant covering every range, with one more answer counted against it (under the same lock as the
// lookup, so a RemoveGrant racing with this request waits for its answer); nullptr and `why` when refused.
std::shared_ptr<TcpServer::Grant> TcpServer::CheckGrant(const std::string& peer, const GrantId& id,
                                                        const WireDesc* d, uint32_t n, std::string* why) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = grants_.find(id);
  if (it == grants_.end()) return *why = "unknown grant " + id.Hex(), nullptr;
  const Grant& gr = *it->second;
  if (gr.peer != peer) return *why = "grant " + id.Hex() + " belongs to another peer", nullptr;
  if (WallMs() >= gr.expires_ms) return *why = "grant " + id.Hex() + " expired", nullptr;
  for (uint32_t i = 0; i < n; i++) {
    auto r = std::upper_bound(gr.ranges.begin(), gr.ranges.end(), d[i].offset,
                              [](uint64_t off, const WireDesc& w) { return off < w.offset; });
    bool inside = r != gr.ranges.begin() && d[i].length <= (r - 1)->length &&
                  d[i].offset - (r - 1)->offset <= (r - 1)->length - d[i].length;
    if (!inside || d[i].length == 0) {
      *why = "grant " + id.Hex() + " does not cover range [" + std::to_string(d[i].offset) + ", +" +
             std::to_string(d[i].length) + ")";
      return nullptr;
    }
  }
  it->second->answers++;
  return it->second;
}

void TcpServer::OnRead(Conn* c, const Header& h, const uint8_t* payload) {
  std::vector<WireDesc> d(h.count);
  std::memcpy(d.data(), payload, h.length);
  uint64_t total = 0;
  for (const auto& w : d) {
    if (!mem_->Contains(w.offset, w.length) || w.length > kMaxReadBytes) {
      total = kMaxReadBytes + 1;
      break;
    }
    total += w.length;
  }
  if (total > kMaxReadBytes) {
    counters_->errors++;
    QueueError(c, h.req, kErrInvalid, "read request exceeds the pool or the per-request limit");
    return;
  }
  GrantId id;
  std::memcpy(id.bytes.data(), h.grant, GrantId::kBytes);
  std::string why;
  std::shared_ptr<Grant> grant = CheckGrant(c->peer, id, d.data(), h.count, &why);
  if (!grant) {
    Refuse(c->peer, &id, why);
    QueueError(c, h.req, kErrGrantRefused, why);
    return;
  }
  counters_->reads_answered++;
  counters_->answers_queued++;
  auto resp = std::make_unique<Resp>();
  resp->ref.server = this;
  resp->ref.grant = std::move(grant);
  resp->hdr = MakeHeader(kData, h.req, total);
  resp->data_bytes = total;
  resp->iov.reserve(1 + d.size());
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  for (const auto& w : d) resp->iov.push_back({mem_->base() + w.offset, w.length});
  Enqueue(c, std::move(resp));
}

void TcpServer::Enqueue(Conn* c, std::unique_ptr<Resp> resp) {
  if (c->wq.empty()) c->progress_ms = MonoMs();
  c->wq.push_back(std::move(resp));
}

void TcpServer::QueueError(Conn* c, uint64_t req, uint16_t code, const std::string& msg) {
  auto resp = std::make_unique<Resp>();
  resp->msg = msg.substr(0, kMaxMessage);
  resp->hdr = MakeHeader(kError, req, resp->msg.size());
  resp->hdr.code = code;
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  if (!resp->msg.empty()) resp->iov.push_back({resp->msg.data(), resp->msg.size()});
  Enqueue(c, std::move(resp));
}

// Writes as much of the queue as the socket takes. False when the connection died.
bool TcpServer::Flush(Conn* c) {
  iovec iov[kMaxIov];
  while (!c->wq.empty()) {
    size_t n = 0, room = kWriteSliceBytes;
    for (auto& r : c->wq) {
      for (size_t i = r->idx; i < r->iov.size() && n < kMaxIov && room > 0; i++) {
        iov[n] = r->iov[i];
        iov[n].iov_len = std::min(iov[n].iov_len, room);
        room -= iov[n++].iov_len;
      }
      if (n == kMaxIov || room == 0) break;
    }
    ssize_t w = writev(c->fd, iov, int(n));
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      c->closing = true;
      counters_->errors++;
      return false;
    }
    size_t left = size_t(w);
    if (w > 0) c->progress_ms = MonoMs();
    while (left > 0 || (!c->wq.empty() && c->wq.front()->idx == c->wq.front()->iov.size())) {
      auto& r = *c->wq.front();
      if (r.idx == r.iov.size()) {
        counters_->bytes_served += r.data_bytes;
        c->wq.pop_front();
        continue;
      }
      iovec& v = r.iov[r.idx];
      size_t take = std::min(left, v.iov_len);
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + take;
      v.iov_len -= take;
      left -= take;
      if (v.iov_len == 0) r.idx++;
    }
  }
  UpdateInterest(c);
  return true;
}

void TcpServer::UpdateInterest(Conn* c) {
  bool want_out = !c->wq.empty();
  bool want_in = c->want_in ? c->wq.size() < kPauseAt : c->wq.size() <= kResumeAt;
  if (want_out == c->want_out && want_in == c->want_in) return;
  c->want_out = want_out;
  c->want_in = want_in;
  epoll_event ev{};
  ev.events = (want_in ? uint32_t(EPOLLIN) : 0u) | (want_out ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

}  // namespace kvf
