// kvfabric_fdpass: the engine side of the region handover, a separate small addon so the engine SDK loads only
// this (no pool, transports or liburing). createSealedMemfd makes a KV region that cannot shrink or grow under
// the node; sendFd passes a descriptor over a unix SOCK_SEQPACKET socket (SCM_RIGHTS) and resolves the one-message
// reply. What the messages say is the protocol of native/lib/region-handover.ts.
#include <fcntl.h>
#include <napi.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "command_ring_client.h"

namespace {

constexpr size_t kMaxFds = 4;  // descriptors one handover message carries at most

std::string Errno(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

Napi::Error Coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// createSealedMemfd(name, sizeBytes) -> fd: a memfd of sizeBytes sealed against shrinking and growing.
Napi::Value CreateSealedMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    throw Coded(env, "INVALID_ARGUMENT", "createSealedMemfd(name, sizeBytes)");
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  double size = info[1].As<Napi::Number>().DoubleValue();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw Coded(env, "REGION_INVALID", "memfd_create: " + Errno(errno));
  if (ftruncate(fd, static_cast<off_t>(size)) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    int err = errno;
    close(fd);
    throw Coded(env, "REGION_INVALID", "memfd of " + std::to_string(static_cast<uint64_t>(size)) +
                                           " bytes: " + Errno(err));
  }
  return Napi::Number::New(env, fd);
}

class SendFd : public Napi::AsyncWorker {
 public:
  SendFd(Napi::Env env, std::string path, std::vector<int> fds, std::string payload, int timeout_ms)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        fds_(std::move(fds)),
        payload_(std::move(payload)),
        timeout_ms_(timeout_ms) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) return Fail("TRANSPORT_FAILED", "socket: " + Errno(errno));
    timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), std::min(path_.size(), sizeof(addr.sun_path) - 1));
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      close(s);
      return Fail("TRANSPORT_UNAVAILABLE", "cannot connect to " + path_ + ": " + Errno(err));
    }
    iovec iov{payload_.data(), payload_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds_.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds_.size());
    std::memcpy(CMSG_DATA(c), fds_.data(), sizeof(int) * fds_.size());
    if (sendmsg(s, &msg, MSG_NOSIGNAL) < 0) {
      int err = errno;
      close(s);
      return Fail("TRANSPORT_FAILED", "sendmsg to " + path_ + ": " + Errno(err));
    }
    char reply[512];
    ssize_t n = recv(s, reply, sizeof reply, 0);
    int err = errno;
    close(s);
    if (n < 0) return Fail(err == EAGAIN ? "TRANSPORT_TIMEOUT" : "TRANSPORT_FAILED", "no reply from " + path_ + ": " + Errno(err));
    reply_.assign(reply, static_cast<size_t>(n));
  }

  void OnOK() override { deferred_.Resolve(Napi::Buffer<char>::Copy(Env(), reply_.data(), reply_.size())); }
  void OnError(const Napi::Error&) override { deferred_.Reject(Coded(Env(), code_, message_).Value()); }

 private:
  void Fail(const char* code, const std::string& message) {
    code_ = code;
    message_ = message;
    SetError(message);
  }
  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::vector<int> fds_;
  std::string payload_;
  int timeout_ms_;
  std::string reply_;
  const char* code_ = "INTERNAL";
  std::string message_;
};

// sendFd(socketPath, fds: number[], payload, timeoutMs) -> Promise<Buffer>: the reply message.
Napi::Value SendFdCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsString() || !info[3].IsNumber()) {
    throw Coded(env, "INVALID_ARGUMENT", "sendFd(socketPath, fds, payload, timeoutMs)");
  }
  Napi::Array list = info[1].As<Napi::Array>();
  if (list.Length() < 1 || list.Length() > kMaxFds) throw Coded(env, "INVALID_ARGUMENT", "fds: expected 1..4 descriptors");
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) fds.push_back(list.Get(i).As<Napi::Number>().Int32Value());
  auto* worker = new SendFd(env, info[0].As<Napi::String>().Utf8Value(), std::move(fds),
                            info[2].As<Napi::String>().Utf8Value(), info[3].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("createSealedMemfd", Napi::Function::New(env, CreateSealedMemfd));
  exports.Set("sendFd", Napi::Function::New(env, SendFdCall));
  kvf::InitCommandRing(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kvfabric_fdpass, Init)
