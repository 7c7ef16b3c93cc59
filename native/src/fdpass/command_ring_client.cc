// The engine side of a command ring (../command_ring.h), for the engine SDK: CommandRing makes the ring (a sealed
// memfd, mapped shared, its header written) and an eventfd, exposes the ring's bytes to JavaScript as an
// ArrayBuffer (the SDK writes commands and reads results there), wakes a sleeping node thread (wake), and watches
// the eventfd on the event loop itself (a uv_poll: no thread of its own): when the node posts completions while the
// engine said it waits for them (engine_sleeping), it writes the eventfd and `onCompletions` runs on the JS thread.
#include "command_ring_client.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "../command_ring.h"

namespace kvf {

namespace {

using namespace ring;

Napi::Error Coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

class CommandRing : public Napi::ObjectWrap<CommandRing> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("CommandRing", DefineClass(env, "CommandRing",
                                           {
                                               InstanceMethod<&CommandRing::Wake>("wake"),
                                               InstanceMethod<&CommandRing::Ref>("ref"),
                                               InstanceMethod<&CommandRing::Unref>("unref"),
                                               InstanceMethod<&CommandRing::Close>("close"),
                                           }));
  }

  // new CommandRing(name, entries, slotBytes, onCompletions): arguments checked by the TypeScript wrapper.
  explicit CommandRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommandRing>(info) {
    Napi::Env env = info.Env();
    std::string name = info[0].As<Napi::String>().Utf8Value();
    uint32_t entries = info[1].As<Napi::Number>().Uint32Value();
    uint32_t slot_bytes = info[2].As<Napi::Number>().Uint32Value();
    size_ = RingBytes(entries, slot_bytes);
    fd_ = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd_ < 0) throw Coded(env, "INTERNAL", "memfd_create: " + std::string(strerror(errno)));
    if (ftruncate(fd_, static_cast<off_t>(size_)) != 0 ||
        fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      int err = errno;
      close(fd_);
      throw Coded(env, "INTERNAL", "ring memfd: " + std::string(strerror(err)));
    }
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p == MAP_FAILED || event_fd_ < 0) {
      int err = errno;
      if (p != MAP_FAILED) munmap(p, size_);
      close(fd_);
      throw Coded(env, "INTERNAL", "ring mmap/eventfd: " + std::string(strerror(err)));
    }
    base_ = static_cast<uint8_t*>(p);
    uint32_t header[4] = {kMagic, kVersion, entries, slot_bytes};
    std::memcpy(base_, header, sizeof header);
    __atomic_store_n(reinterpret_cast<uint32_t*>(base_ + kOffEngineSleeping), 1, __ATOMIC_SEQ_CST);
    // The bytes, for JavaScript; unmapped when the ArrayBuffer is collected (this object holds it until close).
    size_t size = size_;
    Napi::ArrayBuffer buffer =
        Napi::ArrayBuffer::New(env, base_, size_, [size](Napi::Env, void* data) { munmap(data, size); });
    buffer_ = Napi::Persistent(buffer);
    callback_ = Napi::Persistent(info[3].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "kvfabric.CommandRing");
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("fd", Napi::Number::New(env, fd_));
    self.Set("eventFd", Napi::Number::New(env, event_fd_));
    self.Set("buffer", buffer);
    self.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(size_)));
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
      throw Coded(env, "INTERNAL", "ring: no event loop");
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_poll_init(loop, poll_, event_fd_);
    uv_poll_start(poll_, UV_READABLE, &CommandRing::OnReadable);
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));  // only commands in flight keep the process alive (ref)
    env_ = env;
  }

  ~CommandRing() override { Shutdown(); }

 private:
  // On the JS thread, from the event loop: the node wrote the eventfd; the SDK drains the completion queue.
  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<CommandRing*>(handle->data);
    if (self == nullptr || self->closed_) return;
    uint64_t n;
    (void)!read(self->event_fd_, &n, sizeof n);  // one read takes the whole count (not EFD_SEMAPHORE)
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    // MakeCallback: the promises the SDK settles run their continuations before the loop goes on. The receiver is
    // this ring's own object (env.Global() costs a context lookup on every wake-up); the callback, which this
    // object holds until close, keeps it reachable, so it is there.
    Napi::Object recv = self->Value();
    self->callback_.MakeCallback(recv.IsEmpty() ? env.Global() : recv, {}, *self->context_);
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    close(event_fd_);
    close(fd_);
    event_fd_ = fd_ = -1;
    buffer_.Reset();  // the mapping goes when JavaScript drops its last view of the bytes
    callback_.Reset();
    context_.reset();
  }

  // wake(): wakes the node's ring thread (the SDK calls it after advancing sq_tail when node_sleeping was set).
  Napi::Value Wake(const Napi::CallbackInfo& info) {
    if (!closed_)
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(base_ + kOffSqTail), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
    return info.Env().Undefined();
  }
  // ref() / unref(): keep the process alive while commands are in flight, and only then.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!closed_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!closed_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  int fd_ = -1, event_fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  Napi::Env env_{nullptr};
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
  uv_poll_t* poll_ = nullptr;
  bool closed_ = false;
};

}  // namespace

void InitCommandRing(Napi::Env env, Napi::Object exports) { CommandRing::Init(env, exports); }

}  // namespace kvf
