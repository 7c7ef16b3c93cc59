// RegionHandover (region_handover.h): the poll thread, the request it reports, and reply().
#include "region_handover.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {
constexpr size_t kMaxPayload = 256;      // a request's payload (the protocol's is a few bytes)
constexpr int kMaxFds = 8;               // descriptors read from one request; more are closed unread by the kernel
constexpr size_t kMaxWaiting = 64;       // connections that have not sent their request yet
constexpr int64_t kRequestDeadlineMs = 5000;
// Out of descriptors (EMFILE and the like): the pending connection stays in the backlog and the listening socket
// stays readable, so accepting again at once would spin; wait this long first.
constexpr int64_t kAcceptBackoffMs = 100;

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
}  // namespace

struct RegionHandover::Request {
  uint32_t id = 0;
  std::string payload;
  std::vector<int> fds;  // received descriptors; JS owns them once delivered
  bool truncated = false;  // payload or descriptors did not fit
  bool has_creds = false;
  ucred creds{};
  // What the first descriptor is (fstat, F_GET_SEALS, F_GETFL, /proc/self/fd link): JS applies the policy.
  bool regular = false;
  uint32_t mode = 0;
  uint32_t owner_uid = 0;
  uint64_t size = 0;
  int seals = -1;  // -1: the file cannot carry seals
  bool read_write = false;
  std::vector<std::string> links;  // every descriptor's /proc/self/fd link ("anon_inode:[eventfd]" for an eventfd)
  std::string link;
};

RegionHandover::RegionHandover(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RegionHandover>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction()) {
    throw CodedError(env, code::kInvalidArgument, "RegionHandover(path, onRequest)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw CodedError(env, code::kInvalidArgument,
                     "path: expected 1.." + std::to_string(sizeof(addr.sun_path) - 1) + " bytes, got " +
                         std::to_string(path.size()));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw CodedError(env, code::kInternal, "region handover: socket: " + ErrnoString(errno));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 64) != 0) {
    int err = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    throw CodedError(env, code::kInvalidArgument, "path: cannot listen on " + path + ": " + ErrnoString(err));
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "kvfabric.RegionHandover", 0, 1, nullptr);
  thread_ = std::thread([this] { Run(); });
}

RegionHandover::~RegionHandover() { Shutdown(); }

void RegionHandover::Shutdown() {
  if (closed_) return;
  closed_ = true;
  stop_.store(true);
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  for (const Waiting& w : waiting_) close(w.fd);
  waiting_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, fd] : answering_) close(fd);
    answering_.clear();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
  tsfn_.Release();  // requests already queued are still delivered (JS closes their descriptors)
}

void RegionHandover::Run() {
  (void)pthread_setname_np(pthread_self(), "kvf-handover");
  std::vector<pollfd> fds;
  int64_t accept_paused_until = 0;
  while (!stop_.load()) {
    int64_t now = NowMs();
    // Drop connections that sent nothing in time: a silent client never holds a slot for long.
    for (size_t i = 0; i < waiting_.size();) {
      if (waiting_[i].deadline_ms <= now) {
        close(waiting_[i].fd);
        waiting_[i] = waiting_.back();
        waiting_.pop_back();
      } else {
        i++;
      }
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    bool accepting = now >= accept_paused_until;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // a negative fd is skipped by poll
    int64_t next = accepting ? now + kRequestDeadlineMs : accept_paused_until;
    for (const Waiting& w : waiting_) {
      fds.push_back({w.fd, POLLIN, 0});
      if (w.deadline_ms < next) next = w.deadline_ms;
    }
    int n = poll(fds.data(), fds.size(), static_cast<int>(next - now) + 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;
    // Connections first (their indices in `fds` match `waiting_` before accepting adds to it).
    std::vector<int> ready;
    for (size_t i = 2; i < fds.size(); i++)
      if (fds[i].revents) ready.push_back(fds[i].fd);
    for (int fd : ready) {
      for (size_t i = 0; i < waiting_.size(); i++) {
        if (waiting_[i].fd == fd) {
          waiting_[i] = waiting_.back();
          waiting_.pop_back();
          break;
        }
      }
      Receive(fd);
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (conn < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            accept_paused_until = NowMs() + kAcceptBackoffMs;
          }
          break;  // EAGAIN: nothing more to accept
        }
        if (waiting_.size() >= kMaxWaiting) {
          close(conn);
          continue;
        }
        waiting_.push_back({conn, NowMs() + kRequestDeadlineMs});
      }
    }
  }
}

// Reads the connection's one request and reports it to JS, which answers through reply().
void RegionHandover::Receive(int conn) {
  auto* req = new Request();
  char payload[kMaxPayload];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{payload, sizeof payload};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (got <= 0) {  // closed, or nothing after all
    close(conn);
    delete req;
    return;
  }
  req->payload.assign(payload, static_cast<size_t>(got));
  req->truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      req->fds.push_back(fd);
    }
  }
  socklen_t len = sizeof req->creds;
  req->has_creds = getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &req->creds, &len) == 0;
  if (!req->fds.empty()) {
    int fd = req->fds[0];
    struct stat st {};
    if (fstat(fd, &st) == 0) {
      req->regular = S_ISREG(st.st_mode);
      req->mode = st.st_mode;
      req->owner_uid = st.st_uid;
      req->size = static_cast<uint64_t>(st.st_size);
    }
    req->seals = fcntl(fd, F_GET_SEALS);
    int flags = fcntl(fd, F_GETFL);
    req->read_write = flags >= 0 && (flags & O_ACCMODE) == O_RDWR;
    char link[256];
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(proc.c_str(), link, sizeof link);
    if (n > 0) req->link.assign(link, static_cast<size_t>(n));
  }
  for (int fd : req->fds) {
    char link[256];
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(proc.c_str(), link, sizeof link);
    req->links.emplace_back(link, n > 0 ? static_cast<size_t>(n) : 0);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    req->id = next_id_++;
    answering_[req->id] = conn;
  }
  if (tsfn_.NonBlockingCall(req) != napi_ok) {  // shutting down: nobody will answer
    std::lock_guard<std::mutex> lock(mu_);
    answering_.erase(req->id);
    close(conn);
    for (int fd : req->fds) close(fd);
    delete req;
  }
}

void RegionHandover::Deliver(Napi::Env env, Napi::Function fn, std::nullptr_t*, Request* req) {
  std::unique_ptr<Request> owned(req);
  if (env == nullptr) {  // environment torn down: nothing to report to
    for (int fd : req->fds) close(fd);
    return;
  }
  Napi::HandleScope scope(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, req->id));
  o.Set("payload", Napi::Buffer<char>::Copy(env, req->payload.data(), req->payload.size()));
  Napi::Array fds = Napi::Array::New(env, req->fds.size());
  for (size_t i = 0; i < req->fds.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, req->fds[i]));
  o.Set("fds", fds);
  Napi::Array links = Napi::Array::New(env, req->links.size());
  for (size_t i = 0; i < req->links.size(); i++) links.Set(static_cast<uint32_t>(i), Napi::String::New(env, req->links[i]));
  o.Set("links", links);
  o.Set("truncated", Napi::Boolean::New(env, req->truncated));
  if (req->has_creds) {
    Napi::Object peer = Napi::Object::New(env);
    peer.Set("pid", Napi::Number::New(env, req->creds.pid));
    peer.Set("uid", Napi::Number::New(env, req->creds.uid));
    peer.Set("gid", Napi::Number::New(env, req->creds.gid));
    o.Set("peer", peer);
  }
  if (!req->fds.empty()) {
    Napi::Object file = Napi::Object::New(env);
    file.Set("regular", Napi::Boolean::New(env, req->regular));
    file.Set("mode", Napi::Number::New(env, req->mode));
    file.Set("ownerUid", Napi::Number::New(env, req->owner_uid));
    file.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(req->size)));
    file.Set("seals", Napi::Number::New(env, req->seals));
    file.Set("readWrite", Napi::Boolean::New(env, req->read_write));
    file.Set("link", Napi::String::New(env, req->link));
    o.Set("file", file);
  }
  fn.Call({o});
}

// reply(id, Buffer): sends the answer to request `id` and closes its connection. False if it is unknown.
Napi::Value RegionHandover::Reply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    throw CodedError(env, code::kInvalidArgument, "reply(id, Buffer)");
  }
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  Napi::Buffer<char> text = info[1].As<Napi::Buffer<char>>();
  int conn = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = answering_.find(id);
    if (it != answering_.end()) {
      conn = it->second;
      answering_.erase(it);
    }
  }
  if (conn < 0) return Napi::Boolean::New(env, false);
  // A fresh SEQPACKET connection's send buffer is empty: one short message never blocks.
  (void)!send(conn, text.Data(), text.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
  close(conn);
  return Napi::Boolean::New(env, true);
}

Napi::Value RegionHandover::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

void RegionHandover::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "RegionHandover",
                                    {
                                        InstanceMethod<&RegionHandover::Reply>("reply"),
                                        InstanceMethod<&RegionHandover::Close>("close"),
                                    });
  exports.Set("RegionHandover", ctor);
}

void InitRegionHandover(Napi::Env env, Napi::Object exports) { RegionHandover::Init(env, exports); }

}  // namespace kvf
