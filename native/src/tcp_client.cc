#include "tcp_client.h"
#include "tcp_hello.h"

#include <pthread.h>
#include <arpa/inet.h>
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

constexpr size_t kMaxInflight = 256;  // requests per connection (the server pauses reading at 512)
constexpr uint64_t kMinReqBytes = 64 << 10, kMaxReqBytes = 2 << 20;
constexpr int kMaxIov = 64;
// At most this much per readv: landed bytes are summed right after the call, while they are still in the core's
// cache; one readv may otherwise drain a socket buffer of several MiB and sum it back from L3 or DRAM.
constexpr uint64_t kReadSliceBytes = 256 << 10;

int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct TcpClient::Batch {
  uint64_t op = 0;
  std::string peer;
  size_t outstanding = 0;
  bool settled = false;
  uint64_t bytes = 0;
  int64_t deadline = 0;
  int64_t timeout_ms = 0;
  std::vector<std::unique_ptr<Req>> reqs;
  LandedPages check;
};

struct TcpClient::Req {
  Batch* batch;
  uint64_t id;
  GrantId grant;
  std::vector<ReadDesc> descs;
  uint64_t total = 0;
  bool abandoned = false, done = false;
};

struct TcpClient::Conn {
  // connect, then the server's CHALLENGE arrives, then our HELLO (proof over its nonce) waits for HELLO_OK
  enum State { kConnecting, kChallenge, kHello, kReady, kDead } state = kConnecting;
  int fd = -1;
  Peer* peer = nullptr;
  std::string out;
  size_t out_off = 0;
  std::deque<Req*> pending, inflight;
  Header hdr;
  size_t hdr_got = 0;
  bool in_body = false;
  uint64_t body_left = 0;
  size_t di = 0;       // descriptor index inside inflight.front()
  uint64_t doff = 0;   // offset inside that descriptor
  std::string err;     // ERROR payload being received
  uint8_t nonce[kNonceBytes];  // the CHALLENGE payload being received
  bool want_out = false;
  std::unique_ptr<PageHasher> hasher;  // the page being summed as it lands (batches that check their pages)
};

struct TcpClient::Peer {
  std::string id;
  std::string name, secret;  // who we are to this peer, and the secret our HELLO proofs are keyed with
  std::vector<std::unique_ptr<Conn>> conns;
  size_t rr = 0;
  uint64_t connect_op = 0;  // != 0 while connecting
  int64_t connect_deadline = 0;
  size_t ready = 0;
};

TcpClient::TcpClient(TransportCounters* counters, PostFn post, int sockbuf)
    : counters_(counters), post_(std::move(post)), sockbuf_(sockbuf), scratch_(256 << 10) {}

TcpClient::~TcpClient() { Stop(); }

std::string TcpClient::Start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || event_fd_ < 0) return "epoll/eventfd: " + ErrnoString(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev);
  thread_ = std::thread([this] { Run(); });
  return "";
}

void TcpClient::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_ = true;
  if (event_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (auto& cmd : cmds_)  // queued but never started
    if (cmd.kind == Cmd::kRead) counters_->reads_in_flight--, counters_->batches_failed++;
  cmds_.clear();
  for (auto& [b, batch] : batches_)
    if (!batch->settled) counters_->reads_in_flight--, counters_->batches_failed++;
  batches_.clear();
  for (auto& [id, p] : peers_)
    for (auto& c : p->conns)
      if (c->fd >= 0) close(c->fd);
  peers_.clear();
  for (int* fd : {&epoll_fd_, &event_fd_})
    if (*fd >= 0) close(*fd), *fd = -1;
}

void TcpClient::Connect(uint64_t op, const std::string& peer, const std::string& host, int port,
                        const std::string& name, const std::string& secret, int connections, int64_t timeout_ms) {
  Cmd c;
  c.kind = Cmd::kConnect;
  c.op = op, c.peer = peer, c.host = host, c.port = port, c.name = name, c.secret = secret;
  c.connections = connections, c.timeout_ms = timeout_ms;
  std::lock_guard<std::mutex> g(mu_);
  cmds_.push_back(std::move(c));
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

void TcpClient::Read(uint64_t op, const std::string& peer, const GrantId& grant, std::vector<ReadDesc> descs,
                     int64_t timeout_ms, LandedPages check) {
  Cmd c;
  c.kind = Cmd::kRead;
  c.op = op, c.peer = peer, c.grant = grant, c.descs = std::move(descs), c.timeout_ms = timeout_ms;
  c.check = std::move(check);
  counters_->reads_in_flight++;
  std::lock_guard<std::mutex> g(mu_);
  cmds_.push_back(std::move(c));
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

void TcpClient::Drop(const std::string& peer) {
  Cmd c;
  c.kind = Cmd::kDrop;
  c.peer = peer;
  std::lock_guard<std::mutex> g(mu_);
  cmds_.push_back(std::move(c));
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

void TcpClient::Run() {
  (void)pthread_setname_np(pthread_self(), "kvf-tcp-read");  // for top -H, perf and the benches' CPU split
  epoll_event events[64];
  std::vector<Cmd> cmds;
  while (!stop_) {
    int n = epoll_wait(epoll_fd_, events, 64, NextTimeout(MonoMs()));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == nullptr) {
        uint64_t v;
        (void)!read(event_fd_, &v, sizeof v);
        {
          std::lock_guard<std::mutex> g(mu_);
          cmds.swap(cmds_);
        }
        for (auto& cmd : cmds) Execute(cmd);
        cmds.clear();
      } else {
        OnEvent(static_cast<Conn*>(events[i].data.ptr), events[i].events);
      }
    }
    Sweep(MonoMs());
    graveyard_.clear();
  }
}

int TcpClient::NextTimeout(int64_t now) {
  int64_t next = now + 1000;
  if (!deadlines_.empty()) next = std::min(next, deadlines_.begin()->first);
  for (auto& [id, p] : peers_)
    if (p->connect_op) next = std::min(next, p->connect_deadline);
  return int(std::max<int64_t>(0, next - now));
}

void TcpClient::Sweep(int64_t now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Batch* b = deadlines_.begin()->second;
    Settle(b, code::kTransportTimeout,
           "read from peer " + b->peer + " timed out after " + std::to_string(b->timeout_ms) + " ms");
  }
  std::vector<Peer*> late;
  for (auto& [id, p] : peers_)
    if (p->connect_op && p->connect_deadline <= now) late.push_back(p.get());
  for (Peer* p : late) FailConnect(p, code::kTransportTimeout, "connecting to peer " + p->id + " timed out");
}

void TcpClient::Execute(Cmd& cmd) {
  switch (cmd.kind) {
    case Cmd::kConnect: StartConnect(cmd); break;
    case Cmd::kRead: StartRead(cmd); break;
    case Cmd::kDrop: DropPeer(cmd.peer, code::kTransportFailed, "peer " + cmd.peer + " was dropped"); break;
  }
}

void TcpClient::StartConnect(Cmd& cmd) {
  DropPeer(cmd.peer, code::kTransportFailed, "peer " + cmd.peer + " reconnected");
  auto p = std::make_unique<Peer>();
  Peer* peer = p.get();
  p->id = cmd.peer;
  p->connect_op = cmd.op;
  p->connect_deadline = MonoMs() + cmd.timeout_ms;
  peers_[cmd.peer] = std::move(p);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(cmd.port));
  if (inet_pton(AF_INET, cmd.host.c_str(), &addr.sin_addr) != 1)
    return FailConnect(peer, code::kInvalidArgument, "material: host is not an IPv4 address: " + cmd.host);
  if (cmd.secret.size() != kSecretBytes)
    return FailConnect(peer, code::kInvalidArgument, "material: the secret must be " + std::to_string(kSecretBytes) + " bytes");
  peer->name = cmd.name;
  peer->secret = cmd.secret;
  for (int i = 0; i < cmd.connections; i++) {
    auto c = std::make_unique<Conn>();
    c->peer = peer;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    Conn* conn = c.get();
    peer->conns.push_back(std::move(c));
    if (conn->fd < 0) return FailConnect(peer, code::kTransportFailed, "socket: " + ErrnoString(errno));
    int one = 1;
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sockbuf_ > 0) {
      setsockopt(conn->fd, SOL_SOCKET, SO_SNDBUF, &sockbuf_, sizeof sockbuf_);
      setsockopt(conn->fd, SOL_SOCKET, SO_RCVBUF, &sockbuf_, sizeof sockbuf_);
    }
    if (connect(conn->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS)
      return FailConnect(peer, code::kTransportFailed,
                         "connect to " + cmd.host + ":" + std::to_string(cmd.port) + ": " + ErrnoString(errno));
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.ptr = conn;
    conn->want_out = true;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn->fd, &ev);
  }
}

void TcpClient::FailConnect(Peer* p, const char* code, const std::string& msg) {
  uint64_t op = p->connect_op;
  p->connect_op = 0;
  DropPeer(p->id, code::kTransportFailed, msg);
  Completion c;
  c.id = op;
  c.code = code;
  c.message = msg;
  post_(std::move(c));
}

void TcpClient::DropPeer(const std::string& id, const char* code, const std::string& msg) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer* p = it->second.get();
  if (p->connect_op) {  // a connect still waiting: reject it too
    Completion c;
    c.id = p->connect_op;
    c.code = code;
    c.message = msg;
    post_(std::move(c));
    p->connect_op = 0;
  }
  for (auto& c : p->conns) FailConn(c.get(), code, msg);
  graveyard_.push_back(std::move(it->second));  // events already fetched may still name its conns
  peers_.erase(it);
}

// Closes the connection and fails every request on it (their batches settle with `code`).
void TcpClient::FailConn(Conn* c, const char* code, const std::string& msg) {
  if (c->state == Conn::kDead) return;
  // still connecting (a malformed challenge or hello reply, a failed send): the connect settles now, not at its
  // timeout (FailConnect clears connect_op before it drops the peer's connections, so this does not recurse)
  if (c->peer->connect_op) return FailConnect(c->peer, code, msg);
  bool was_ready = c->state == Conn::kReady;
  c->state = Conn::kDead;
  if (c->fd >= 0) close(c->fd), c->fd = -1;
  if (was_ready) c->peer->ready--;
  std::deque<Req*> reqs;
  reqs.swap(c->inflight);
  for (Req* r : c->pending) reqs.push_back(r);
  c->pending.clear();
  for (Req* r : reqs) ReqDone(r, code, msg);
}

void TcpClient::StartRead(Cmd& cmd) {
  auto b = std::make_unique<Batch>();
  Batch* batch = b.get();
  b->op = cmd.op;
  b->peer = cmd.peer;
  b->timeout_ms = cmd.timeout_ms;
  b->deadline = MonoMs() + cmd.timeout_ms;
  b->check = std::move(cmd.check);
  batches_[batch] = std::move(b);
  deadlines_.insert({batch->deadline, batch});
  auto it = peers_.find(cmd.peer);
  std::vector<Conn*> live;
  if (it != peers_.end() && !it->second->connect_op)
    for (auto& c : it->second->conns)
      if (c->state == Conn::kReady) live.push_back(c.get());
  if (live.empty()) {
    batch->outstanding = 1;  // Settle frees the batch once outstanding reaches zero
    Settle(batch, code::kTransportFailed, "no live connection to peer " + cmd.peer);
    batch->outstanding = 0;
    batches_.erase(batch);
    return;
  }
  // Pages adjacent on both sides (the pools usually hand out runs of contiguous pages) travel as one descriptor:
  // fewer wire descriptors, grant checks and iovecs. The server coalesces a grant's adjacent ranges likewise. A run
  // keeps its first page's index; its pages follow in order, as the batch's descriptors did.
  size_t kept = 0;
  for (size_t i = 0; i < cmd.descs.size(); i++) {
    const ReadDesc& d = cmd.descs[i];
    ReadDesc* last = kept ? &cmd.descs[kept - 1] : nullptr;
    if (last && last->remote + last->length == d.remote && last->local + last->length == d.local &&
        last->length + d.length <= kMaxReqBytes)
      last->length += d.length;
    else
      cmd.descs[kept++] = d;
  }
  cmd.descs.resize(kept);
  uint64_t total = 0;
  for (const auto& d : cmd.descs) total += d.length;
  uint64_t target = std::clamp<uint64_t>(total / live.size(), kMinReqBytes, kMaxReqBytes);
  Peer* peer = it->second.get();
  std::vector<Req*> reqs;
  for (size_t i = 0; i < cmd.descs.size();) {
    auto r = std::make_unique<Req>();
    r->batch = batch;
    r->id = next_req_++;
    r->grant = cmd.grant;
    while (i < cmd.descs.size() && r->descs.size() < kMaxDescs &&
           (r->descs.empty() || (r->total < target && r->total + cmd.descs[i].length <= kMaxReadBytes))) {
      r->total += cmd.descs[i].length;
      r->descs.push_back(cmd.descs[i++]);
    }
    reqs.push_back(r.get());
    batch->reqs.push_back(std::move(r));
  }
  batch->outstanding = reqs.size();
  for (Req* r : reqs) {
    Conn* c = live[peer->rr++ % live.size()];
    c->pending.push_back(r);
  }
  for (Conn* c : live) Pump(c);
}

// Moves pending requests into the send buffer (bounded in flight) and writes.
void TcpClient::Pump(Conn* c) {
  if (c->state != Conn::kReady) return;
  while (!c->pending.empty() && c->inflight.size() < kMaxInflight) {
    Req* r = c->pending.front();
    c->pending.pop_front();
    if (r->abandoned) {
      ReqDone(r, nullptr, "");
      continue;
    }
    Header h = MakeHeader(kRead, r->id, r->descs.size() * sizeof(WireDesc));
    std::memcpy(h.grant, r->grant.bytes.data(), GrantId::kBytes);
    h.count = uint32_t(r->descs.size());
    size_t at = c->out.size();
    c->out.resize(at + sizeof h + h.length);
    std::memcpy(&c->out[at], &h, sizeof h);
    WireDesc* w = reinterpret_cast<WireDesc*>(&c->out[at + sizeof h]);
    for (size_t i = 0; i < r->descs.size(); i++) w[i] = WireDesc{r->descs[i].remote, r->descs[i].length};
    c->inflight.push_back(r);
  }
  FlushOut(c);
}

// The challenge arrived: answer with our id and the proof of our secret over its nonce.
bool TcpClient::SendHello(Conn* c) {
  const Peer* p = c->peer;
  Header h = MakeHeader(kHello, 0, 2 + p->name.size() + kProofBytes);
  uint16_t len = uint16_t(p->name.size());
  uint8_t proof[kProofBytes];
  HelloProof(reinterpret_cast<const uint8_t*>(p->secret.data()), c->nonce, p->name, proof);
  c->out.append(reinterpret_cast<const char*>(&h), sizeof h);
  c->out.append(reinterpret_cast<const char*>(&len), 2);
  c->out += p->name;
  c->out.append(reinterpret_cast<const char*>(proof), kProofBytes);
  c->state = Conn::kHello;
  return FlushOut(c);
}

bool TcpClient::FlushOut(Conn* c) {
  while (c->out_off < c->out.size()) {
    ssize_t n = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      counters_->errors++;
      FailConn(c, code::kTransportFailed, "send to peer " + c->peer->id + ": " + ErrnoString(errno));
      return false;
    }
    c->out_off += size_t(n);
  }
  if (c->out_off == c->out.size()) c->out.clear(), c->out_off = 0;
  SetInterest(c, !c->out.empty());
  return true;
}

void TcpClient::SetInterest(Conn* c, bool out) {
  if (c->want_out == out || c->state == Conn::kDead) return;
  c->want_out = out;
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void TcpClient::OnEvent(Conn* c, uint32_t events) {
  if (c->state == Conn::kDead) return;
  if (c->state == Conn::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return FailConnect(c->peer, code::kTransportFailed, "connect to peer " + c->peer->id + ": " + ErrnoString(err));
    c->state = Conn::kChallenge;
  }
  if ((events & EPOLLOUT) && !FlushOut(c)) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) OnReadable(c);
}

// Receives until EAGAIN. False when the connection died.
bool TcpClient::OnReadable(Conn* c) {
  for (int rounds = 0; rounds < 64; rounds++) {
    if (c->state == Conn::kDead) return false;
    ssize_t n;
    if (!c->in_body) {
      n = recv(c->fd, reinterpret_cast<uint8_t*>(&c->hdr) + c->hdr_got, sizeof(Header) - c->hdr_got, 0);
    } else if (c->state == Conn::kChallenge) {
      n = recv(c->fd, c->nonce + (kNonceBytes - c->body_left), c->body_left, 0);
    } else if (!c->err.empty() || c->hdr.type == kError) {
      size_t at = c->hdr.length - c->body_left;
      n = recv(c->fd, &c->err[at], c->body_left, 0);
    } else {
      Req* r = c->inflight.front();
      iovec iov[kMaxIov];
      int cnt = 0;
      if (r->abandoned) {
        iov[cnt++] = {scratch_.data(), std::min<size_t>(scratch_.size(), c->body_left)};
      } else {
        uint64_t off = c->doff, room = kReadSliceBytes;
        for (size_t i = c->di; i < r->descs.size() && cnt < kMaxIov && room > 0; i++, off = 0) {
          const uint64_t len = std::min<uint64_t>(r->descs[i].length - off, room);
          iov[cnt++] = {r->descs[i].local + off, len};
          room -= len;
        }
      }
      n = readv(c->fd, iov, cnt);
    }
    if (n == 0) {
      counters_->errors++;
      if (c->peer->connect_op) FailConnect(c->peer, code::kTransportFailed, "peer " + c->peer->id + " closed the connection");
      else FailConn(c, code::kTransportFailed, "peer " + c->peer->id + " closed the connection");
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      counters_->errors++;
      std::string msg = "receive from peer " + c->peer->id + ": " + ErrnoString(errno);
      if (c->peer->connect_op) FailConnect(c->peer, code::kTransportFailed, msg);
      else FailConn(c, code::kTransportFailed, msg);
      return false;
    }
    if (!c->in_body) {
      c->hdr_got += size_t(n);
      if (c->hdr_got == sizeof(Header) && !OnHeader(c)) return false;
      continue;
    }
    c->body_left -= uint64_t(n);
    if (c->hdr.type == kData) {
      Req* r = c->inflight.front();
      if (!r->abandoned) {
        uint64_t left = uint64_t(n);
        LandedPages& check = r->batch->check;
        if (check.checking() && !c->hasher) c->hasher = std::make_unique<PageHasher>();
        while (left > 0) {
          const ReadDesc& d = r->descs[c->di];
          uint64_t take = std::min(left, d.length - c->doff);
          if (check.checking()) check.Landed(*c->hasher, d.local, d.page, c->doff, take);
          c->doff += take;
          left -= take;
          if (c->doff == r->descs[c->di].length) c->di++, c->doff = 0;
        }
      }
    }
    if (c->body_left > 0) continue;
    c->in_body = false;
    c->hdr_got = 0;
    if (c->state == Conn::kChallenge) {
      if (!SendHello(c)) return false;
      continue;
    }
    Req* r = c->inflight.front();
    c->inflight.pop_front();
    if (c->hdr.type == kData) {
      ReqDone(r, nullptr, "");
    } else {
      std::string msg = std::move(c->err);
      c->err.clear();
      ReqDone(r, c->hdr.code == kErrGrantRefused ? code::kGrantRefused : code::kInvalidArgument,
              "peer " + c->peer->id + ": " + msg);
    }
    Pump(c);
  }
  return true;
}

// A complete header arrived: validate it against what we expect next. False when the connection died.
bool TcpClient::OnHeader(Conn* c) {
  const Header& h = c->hdr;
  if (h.magic != kMagic || h.version != kVersion) {
    counters_->errors++;
    FailConn(c, code::kTransportFailed, "peer " + c->peer->id + " sent a malformed frame");
    return false;
  }
  if (c->state == Conn::kChallenge) {
    if (h.type != kChallenge || h.length != kNonceBytes)
      return FailConnect(c->peer, code::kTransportFailed, "peer " + c->peer->id + " sent no valid challenge"), false;
    c->in_body = true;
    c->body_left = kNonceBytes;
    return true;
  }
  if (c->state == Conn::kHello) {
    c->hdr_got = 0;
    if (h.type == kHelloRefused)
      return FailConnect(c->peer, code::kGrantRefused,
                         "peer " + c->peer->id + " refused the connection (unknown peer or wrong secret)"), false;
    if (h.type != kHelloOk || h.length != 0)
      return FailConnect(c->peer, code::kTransportFailed, "peer " + c->peer->id + " sent a malformed hello reply"),
             false;
    c->state = Conn::kReady;
    Peer* p = c->peer;
    if (++p->ready == p->conns.size() && p->connect_op) {
      Completion done;
      done.id = p->connect_op;
      p->connect_op = 0;
      post_(std::move(done));
    }
    return true;
  }
  Req* r = c->inflight.empty() ? nullptr : c->inflight.front();
  bool ok = r && h.req == r->id &&
            ((h.type == kData && h.length == r->total) || (h.type == kError && h.length <= kMaxMessage));
  if (!ok) {
    counters_->errors++;
    FailConn(c, code::kTransportFailed, "peer " + c->peer->id + " sent an unexpected frame");
    return false;
  }
  c->in_body = true;
  c->body_left = h.length;
  c->di = 0;
  c->doff = 0;
  if (h.type == kError) c->err.assign(h.length, '\0');
  if (h.length == 0 && h.type == kError) {  // an empty error message: settle right away
    c->in_body = false;
    c->hdr_got = 0;
    c->inflight.pop_front();
    ReqDone(r, h.type == kError && h.code == kErrGrantRefused ? code::kGrantRefused : code::kInvalidArgument,
            "peer " + c->peer->id + " refused the read");
  }
  return true;
}

void TcpClient::ReqDone(Req* r, const char* code, const std::string& msg) {
  if (r->done) return;
  r->done = true;
  Batch* b = r->batch;
  if (code != nullptr && !r->abandoned) Settle(b, code, msg);
  else if (!r->abandoned) b->bytes += r->total;
  if (--b->outstanding == 0) {
    if (!b->settled) Settle(b, nullptr, "");
    batches_.erase(b);
  }
}

// Settles a batch once: posts the result, abandons its remaining requests (their bytes go to scratch).
void TcpClient::Settle(Batch* b, const char* code, const std::string& msg) {
  if (b->settled) return;
  b->settled = true;
  deadlines_.erase({b->deadline, b});
  for (auto& r : b->reqs) r->abandoned = true;
  counters_->reads_in_flight--;
  if (code) counters_->batches_failed++;
  else counters_->batches_ok++, counters_->bytes_read += b->bytes;
  Completion c;
  c.id = b->op;
  c.code = code;
  c.message = msg;
  c.bytes = double(b->bytes);
  if (code == nullptr && b->check.checking()) {
    c.checked = true;
    c.mismatches = std::move(b->check.mismatches);
    std::sort(c.mismatches.begin(), c.mismatches.end());
  }
  post_(std::move(c));
  if (b->outstanding == 0) batches_.erase(b);
}

}  // namespace kvf
