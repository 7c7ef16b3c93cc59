#include "tcp_server.h"

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
constexpr size_t kPauseAt = 512, kResumeAt = 128;  // queued responses per connection
constexpr int64_t kHelloTimeoutMs = 10000;

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

struct TcpServer::Conn {
  struct Resp {
    Header hdr;
    std::string msg;
    std::vector<iovec> iov;
    size_t idx = 0;
    uint64_t data_bytes = 0;
  };
  int fd = -1;
  bool authed = false;
  std::string peer;
  int64_t accepted_ms = 0;
  std::vector<uint8_t> rbuf = std::vector<uint8_t>(kRbufBytes);
  size_t rlen = 0;
  std::deque<std::unique_ptr<Resp>> wq;
  bool want_in = true, want_out = false, closing = false;
};

TcpServer::TcpServer(MemoryRef mem, TransportCounters* counters, EventFn on_event)
    : mem_(std::move(mem)), counters_(counters), on_event_(std::move(on_event)) {}

TcpServer::~TcpServer() { Stop(); }

std::string TcpServer::Start(const std::string& host, int port, int sockbuf) {
  sockbuf_ = sockbuf;
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
  conns_.clear();
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

void TcpServer::AddGrant(uint64_t id, const std::string& peer, std::vector<WireDesc> ranges, int64_t expires_ms) {
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
  std::lock_guard<std::mutex> g(mu_);
  grants_[id] = Grant{peer, std::move(ranges), expires_ms};
}

void TcpServer::RemoveGrant(uint64_t id) {
  std::lock_guard<std::mutex> g(mu_);
  grants_.erase(id);
}

void TcpServer::Run() {
  epoll_event events[64];
  int64_t last_sweep = MonoMs();
  while (!stop_) {
    int n = epoll_wait(epoll_fd_, events, 64, 1000);
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
    if (now - last_sweep >= 1000) {
      last_sweep = now;
      for (auto& [p, c] : conns_)
        if (!c->authed && now - c->accepted_ms > kHelloTimeoutMs) c->closing = true;
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second->closing) {
        close(it->second->fd);  // closing the fd removes it from the epoll set
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void TcpServer::Accept() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sockbuf_ > 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sockbuf_, sizeof sockbuf_);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sockbuf_, sizeof sockbuf_);
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->accepted_ms = MonoMs();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c.get();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    conns_.emplace(c.get(), std::move(c));
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
  if (id_len == 0 || id_len > kMaxPeerId || len != 2 + uint64_t(id_len) + kSecretBytes) return false;
  std::string peer(reinterpret_cast<const char*>(p + 2), id_len);
  bool ok;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = secrets_.find(peer);
    ok = it != secrets_.end() && ConstantTimeEqual(it->second, p + 2 + id_len, kSecretBytes);
  }
  if (!ok) {
    Refuse(peer, -1, "connection refused: unknown peer or wrong secret");
    std::string msg = "unknown peer or wrong secret";
    Header r = MakeHeader(kHelloRefused, 0, msg.size());
    iovec iov[2] = {{&r, sizeof r}, {msg.data(), msg.size()}};
    (void)!writev(c->fd, iov, 2);  // best effort: the socket buffer is empty at this point
    c->closing = true;
    return true;
  }
  c->authed = true;
  c->peer = std::move(peer);
  auto resp = std::make_unique<Conn::Resp>();
  resp->hdr = MakeHeader(kHelloOk, 0, 0);
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  c->wq.push_back(std::move(resp));
  return true;
}

void TcpServer::Refuse(const std::string& peer, uint64_t grant, const std::string& msg) {
  counters_->refused++;
  Completion ev;
  ev.event = "refused";
  ev.peer = peer;
  ev.grant = grant == uint64_t(-1) ? -1 : double(grant);
  ev.message = msg;
  on_event_(std::move(ev));
}

std::string TcpServer::CheckGrant(const std::string& peer, uint64_t grant, const WireDesc* d, uint32_t n) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = grants_.find(grant);
  if (it == grants_.end()) return "unknown grant " + std::to_string(grant);
  const Grant& gr = it->second;
  if (gr.peer != peer) return "grant " + std::to_string(grant) + " belongs to another peer";
  if (WallMs() >= gr.expires_ms) return "grant " + std::to_string(grant) + " expired";
  for (uint32_t i = 0; i < n; i++) {
    auto r = std::upper_bound(gr.ranges.begin(), gr.ranges.end(), d[i].offset,
                              [](uint64_t off, const WireDesc& w) { return off < w.offset; });
    bool inside = r != gr.ranges.begin() && d[i].length <= (r - 1)->length &&
                  d[i].offset - (r - 1)->offset <= (r - 1)->length - d[i].length;
    if (!inside || d[i].length == 0)
      return "grant " + std::to_string(grant) + " does not cover range [" + std::to_string(d[i].offset) + ", +" +
             std::to_string(d[i].length) + ")";
  }
  return "";
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
  std::string why = CheckGrant(c->peer, h.grant, d.data(), h.count);
  if (!why.empty()) {
    Refuse(c->peer, h.grant, why);
    QueueError(c, h.req, kErrGrantRefused, why);
    return;
  }
  auto resp = std::make_unique<Conn::Resp>();
  resp->hdr = MakeHeader(kData, h.req, total);
  resp->data_bytes = total;
  resp->iov.reserve(1 + d.size());
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  for (const auto& w : d) resp->iov.push_back({mem_->base() + w.offset, w.length});
  c->wq.push_back(std::move(resp));
}

void TcpServer::QueueError(Conn* c, uint64_t req, uint16_t code, const std::string& msg) {
  auto resp = std::make_unique<Conn::Resp>();
  resp->msg = msg.substr(0, kMaxMessage);
  resp->hdr = MakeHeader(kError, req, resp->msg.size());
  resp->hdr.code = code;
  resp->iov.push_back({&resp->hdr, sizeof resp->hdr});
  if (!resp->msg.empty()) resp->iov.push_back({resp->msg.data(), resp->msg.size()});
  c->wq.push_back(std::move(resp));
}

// Writes as much of the queue as the socket takes. False when the connection died.
bool TcpServer::Flush(Conn* c) {
  iovec iov[kMaxIov];
  while (!c->wq.empty()) {
    size_t n = 0;
    for (auto& r : c->wq) {
      for (size_t i = r->idx; i < r->iov.size() && n < kMaxIov; i++) iov[n++] = r->iov[i];
      if (n == kMaxIov) break;
    }
    ssize_t w = writev(c->fd, iov, int(n));
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      c->closing = true;
      counters_->errors++;
      return false;
    }
    size_t left = size_t(w);
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
