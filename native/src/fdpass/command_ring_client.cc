// The engine side of a command ring (../command_ring.h), for the engine SDK: CommandRing makes the ring (a sealed
// memfd, mapped shared, its header written), exposes its bytes to JavaScript as an ArrayBuffer (the SDK writes
// commands and reads results there), wakes a sleeping node thread (wake), and owns a thread that sleeps on the
// completion queue's tail and calls JavaScript once per batch of completions, waiting until it has drained them.
#include "command_ring_client.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "../command_ring.h"

namespace kvf {

namespace {

using namespace ring;

constexpr int kSleepMs = 200;  // the completion thread looks at its stop flag at least this often

uint32_t LoadSeq(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void StoreSeq(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
void FutexWait(uint32_t* addr, uint32_t expected, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, addr, FUTEX_WAIT, expected, &ts, nullptr, 0);
}
void FutexWake(uint32_t* addr) { syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

Napi::Error Coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// What the completion thread and the JS-thread callback share: it outlives the CommandRing until the callback's
// last queued call ran (freed by the ThreadSafeFunction's finalizer).
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  bool draining = false;
  std::atomic<bool> stop{false};
  void Drained() {
    std::lock_guard<std::mutex> lock(mu);
    draining = false;
    cv.notify_all();
  }
};

void Deliver(Napi::Env env, Napi::Function fn, Shared* shared, void*);
using Tsfn = Napi::TypedThreadSafeFunction<Shared, void, &Deliver>;

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
    entries_ = info[1].As<Napi::Number>().Uint32Value();
    uint32_t slot_bytes = info[2].As<Napi::Number>().Uint32Value();
    size_ = RingBytes(entries_, slot_bytes);
    fd_ = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd_ < 0) throw Coded(env, "INTERNAL", "memfd_create: " + std::string(strerror(errno)));
    if (ftruncate(fd_, static_cast<off_t>(size_)) != 0 ||
        fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      int err = errno;
      close(fd_);
      throw Coded(env, "INTERNAL", "ring memfd: " + std::string(strerror(err)));
    }
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      close(fd_);
      throw Coded(env, "INTERNAL", "ring mmap: " + std::string(strerror(err)));
    }
    base_ = static_cast<uint8_t*>(p);
    uint32_t header[4] = {kMagic, kVersion, entries_, slot_bytes};
    std::memcpy(base_, header, sizeof header);
    // The bytes, for JavaScript; unmapped when the ArrayBuffer is collected (this object holds it until close).
    size_t size = size_;
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, base_, size_, [size](Napi::Env, void* data) {
      munmap(data, size);
    });
    buffer_ = Napi::Persistent(buffer);
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("fd", Napi::Number::New(env, fd_));
    self.Set("buffer", buffer);
    self.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(size_)));
    shared_ = new Shared();
    tsfn_ = Tsfn::New(env, info[3].As<Napi::Function>(), "kvfabric.CommandRing", 0, 1, shared_,
                      [](Napi::Env, void*, Shared* shared) { delete shared; });
    tsfn_.Unref(env);
    thread_ = std::thread([this] { Run(); });
  }

  ~CommandRing() override { Shutdown(); }

 private:
  uint32_t* Word(uint32_t offset) const { return reinterpret_cast<uint32_t*>(base_ + offset); }

  void Run() {
    (void)pthread_setname_np(pthread_self(), "kvf-ring-cq");
    Shared& sh = *shared_;
    while (!sh.stop.load(std::memory_order_acquire)) {
      uint32_t tail = LoadSeq(Word(kOffCqTail));
      if (tail == LoadSeq(Word(kOffCqHead))) {
        // Say we sleep, then look once more (the node reads the flag after publishing a completion).
        StoreSeq(Word(kOffEngineSleeping), 1);
        tail = LoadSeq(Word(kOffCqTail));
        if (tail == LoadSeq(Word(kOffCqHead)) && !sh.stop.load(std::memory_order_seq_cst))
          FutexWait(Word(kOffCqTail), tail, kSleepMs);
        StoreSeq(Word(kOffEngineSleeping), 0);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(sh.mu);
        sh.draining = true;
      }
      if (tsfn_.BlockingCall() != napi_ok) return;  // released: shutting down
      std::unique_lock<std::mutex> lock(sh.mu);
      sh.cv.wait(lock, [&sh] { return !sh.draining || sh.stop.load(std::memory_order_acquire); });
    }
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->stop.store(true, std::memory_order_seq_cst);
    }
    shared_->cv.notify_all();
    FutexWake(Word(kOffCqTail));
    thread_.join();
    tsfn_.Release();
    close(fd_);
    fd_ = -1;
    buffer_.Reset();  // the mapping goes when JavaScript drops its last view of the bytes
  }

  // wake(): wakes the node's ring thread when it sleeps (the SDK calls it after advancing sq_tail).
  Napi::Value Wake(const Napi::CallbackInfo& info) {
    if (!closed_) FutexWake(Word(kOffSqTail));
    return info.Env().Undefined();
  }
  // ref() / unref(): keep the process alive while commands are in flight, and only then.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t entries_ = 0;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  Shared* shared_ = nullptr;  // owned by tsfn_ (its finalizer frees it)
  Tsfn tsfn_;
  std::thread thread_;
  bool closed_ = false;
};

// On the JS thread: the SDK drains the completion queue in the callback, then the thread may sleep again.
void Deliver(Napi::Env env, Napi::Function fn, Shared* shared, void*) {
  if (env != nullptr && !shared->stop.load(std::memory_order_acquire)) {
    Napi::HandleScope scope(env);
    try {
      fn.Call({});
    } catch (const Napi::Error&) {
      shared->Drained();
      throw;
    }
  }
  shared->Drained();
}

}  // namespace

void InitCommandRing(Napi::Env env, Napi::Object exports) { CommandRing::Init(env, exports); }

}  // namespace kvf
