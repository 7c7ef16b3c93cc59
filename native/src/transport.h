// What the one-sided read transports (tcp_transport.cc, verbs_transport.cc) share: error codes, the batch
// descriptor, and `Completer`, which settles JS Promises from native threads through one ThreadSafeFunction.
//
// Contract of every transport (see native/lib/transport.ts for the JS side):
//   readv(peer, grant, remote offsets, local offsets, lengths) -> Promise<{ bytes }>, settled exactly once;
//   after a batch is settled the transport never writes its local pages again (late bytes are discarded);
//   close() joins every native thread before rejecting what is still pending, so nothing touches the pool after.
#pragma once
#include <napi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memory.h"
#include "op_hook.h"

namespace kvf {

namespace code {
inline constexpr const char* kGrantRefused = "GRANT_REFUSED";
inline constexpr const char* kTransportUnavailable = "TRANSPORT_UNAVAILABLE";
inline constexpr const char* kTransportFailed = "TRANSPORT_FAILED";
inline constexpr const char* kTransportTimeout = "TRANSPORT_TIMEOUT";
}  // namespace code

// A grant's id: 16 bytes the node draws from a CSPRNG (never sequential: no reader can name another's grant by
// guessing). JavaScript passes it as a 16-byte Buffer and sees it as 32 lowercase hex digits.
struct GrantId {
  static constexpr size_t kBytes = 16;
  std::array<uint8_t, kBytes> bytes{};
  bool operator==(const GrantId& o) const { return bytes == o.bytes; }
  std::string Hex() const {
    static const char* digits = "0123456789abcdef";
    std::string s(2 * kBytes, '0');
    for (size_t i = 0; i < kBytes; i++) s[2 * i] = digits[bytes[i] >> 4], s[2 * i + 1] = digits[bytes[i] & 15];
    return s;
  }
};
// Ids are random, so any 8 of their bytes hash well.
struct GrantIdHash {
  size_t operator()(const GrantId& g) const noexcept {
    size_t h;
    std::memcpy(&h, g.bytes.data(), sizeof h);
    return h;
  }
};

// Reads a grant id argument (a Buffer of exactly 16 bytes); false on anything else.
inline bool ReadGrantId(Napi::Value v, GrantId* out) {
  if (!v.IsBuffer()) return false;
  auto b = v.As<Napi::Buffer<uint8_t>>();
  if (b.Length() != GrantId::kBytes) return false;
  std::memcpy(out->bytes.data(), b.Data(), GrantId::kBytes);
  return true;
}

// One contiguous read: `length` bytes at `remote` (offset in the serving pool) into `local` (pointer into our pool).
struct ReadDesc {
  uint64_t remote;
  uint8_t* local;
  uint64_t length;
  uint32_t page = 0;  // a batch whose pages are checked as they land: the index of this descriptor's first page
};

// Counters every transport keeps (native atomics, read by counters()).
struct TransportCounters {
  std::atomic<uint64_t> bytes_read{0};      // reading side: bytes of successfully completed batches
  std::atomic<uint64_t> bytes_served{0};    // serving side: payload bytes sent to peers
  std::atomic<uint64_t> reads_in_flight{0}; // reading side: batches not yet settled
  std::atomic<uint64_t> batches_ok{0};
  std::atomic<uint64_t> batches_failed{0};
  std::atomic<uint64_t> errors{0};          // connection / completion errors (both sides)
  std::atomic<uint64_t> refused{0};         // serving side: refused hellos and read requests
  // Serving side, tcp only (verbs reads never reach the CPU):
  std::atomic<uint64_t> reads_answered{0};   // read requests accepted under a live grant
  std::atomic<uint64_t> answers_queued{0};   // accepted answers not yet fully written (each pins its grant's pages)
  std::atomic<uint64_t> stalled_closed{0};   // connections closed because the reader stopped taking answers
  std::atomic<uint64_t> accept_failures{0};  // accept() failures for want of descriptors or memory (then backs off)
  std::atomic<int> accept_errno{0};          // != 0 while accepting fails: the last such errno

  Napi::Object ToObject(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytesRead", double(bytes_read.load()));
    o.Set("bytesServed", double(bytes_served.load()));
    o.Set("readsInFlight", double(reads_in_flight.load()));
    o.Set("batchesOk", double(batches_ok.load()));
    o.Set("batchesFailed", double(batches_failed.load()));
    o.Set("errors", double(errors.load()));
    o.Set("refused", double(refused.load()));
    o.Set("readsAnswered", double(reads_answered.load()));
    o.Set("answersQueued", double(answers_queued.load()));
    o.Set("stalledClosed", double(stalled_closed.load()));
    o.Set("acceptFailures", double(accept_failures.load()));
    o.Set("acceptErrno", double(accept_errno.load()));
    return o;
  }
};

// A settled operation (id != 0) or an event for the JS `onEvent` callback (id == 0).
struct Completion {
  uint64_t id = 0;
  const char* code = nullptr;  // nullptr: success
  std::string message;
  double bytes = 0;
  std::vector<uint8_t> data;  // success only: resolves with { bytes, data: Buffer } when non-empty
  bool checked = false;        // success only: resolves with { bytes, mismatches: Uint32Array } when set
  std::vector<uint32_t> mismatches;
  // events only
  std::string event;  // e.g. "refused"
  std::string peer;
  std::string grant;  // hex grant id; empty when the event concerns no grant
};

// Owns the Promise deferreds of one transport. Add/RejectAll/Release run on the JS thread; Post on any thread.
// Heap-allocated and freed by the ThreadSafeFunction's finalizer, so a queued call never sees a dead object.
class Completer {
 public:
  static Completer* Create(Napi::Env env, const char* name, Napi::Function on_event) {
    auto* c = new Completer();
    if (!on_event.IsEmpty() && on_event.IsFunction()) c->on_event_ = Napi::Persistent(on_event);
    c->tsfn_ = Tsfn::New(env, name, 0, 1, c, [](Napi::Env, void*, Completer* self) { delete self; });
    c->tsfn_.Unref(env);
    return c;
  }

  // JS thread: a new pending operation; returns its promise and id. `hook` (optional) runs before it settles,
  // whether it succeeds, fails, or is rejected by RejectAll.
  std::pair<Napi::Promise, uint64_t> Add(Napi::Env env, std::unique_ptr<OpHook> hook = nullptr) {
    auto d = Napi::Promise::Deferred::New(env);
    uint64_t id = next_id_++;
    pending_.emplace(id, Pending{d, std::move(hook)});
    if (pending_.size() == 1 && !released_) tsfn_.Ref(env);
    return {d.Promise(), id};
  }

  // Any thread. Safe until Release() (transports join their threads before releasing).
  void Post(Completion c) {
    auto* p = new Completion(std::move(c));
    if (tsfn_.NonBlockingCall(p) != napi_ok) delete p;
  }

  // JS thread: reject everything still pending (after the native threads are joined).
  void RejectAll(Napi::Env env, const char* code, const std::string& message) {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
      Napi::Object err = CodedError(env, code, message).Value();
      if (p.hook) p.hook->Done(env, false, err);
      p.deferred.Reject(err);
    }
    if (!released_) tsfn_.Unref(env);
  }

  // JS thread, once: no Post may follow. Queued calls still run (and find nothing pending).
  void Release(Napi::Env env) {
    if (released_) return;
    RejectAll(env, code::kTransportFailed, "transport closed");
    released_ = true;
    tsfn_.Release();
  }

  // Finalizer backstop (no Env to build errors with): stop delivering; pending promises stay unsettled.
  void Abandon() {
    if (released_) return;
    released_ = true;
    tsfn_.Release();
  }

  size_t pending() const { return pending_.size(); }

 private:
  static void CallJs(Napi::Env env, Napi::Function, Completer* self, Completion* raw) {
    std::unique_ptr<Completion> c(raw);
    if (env == nullptr || self == nullptr) return;
    if (c->id == 0) {
      if (self->on_event_.IsEmpty()) return;
      Napi::Object ev = Napi::Object::New(env);
      ev.Set("kind", c->event);
      ev.Set("peer", c->peer);
      if (!c->grant.empty()) ev.Set("grant", c->grant);
      ev.Set("message", c->message);
      self->on_event_.Value().Call({ev});  // a throwing listener surfaces as an uncaught exception
      return;
    }
    auto it = self->pending_.find(c->id);
    if (it == self->pending_.end()) return;  // already rejected by close()/dropPeer
    Pending p = std::move(it->second);
    self->pending_.erase(it);
    if (self->pending_.empty() && !self->released_) self->tsfn_.Unref(env);
    if (c->code == nullptr) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("bytes", c->bytes);
      if (!c->data.empty()) r.Set("data", Napi::Buffer<uint8_t>::Copy(env, c->data.data(), c->data.size()));
      if (c->checked) {
        Napi::Uint32Array m = Napi::Uint32Array::New(env, c->mismatches.size());
        std::copy(c->mismatches.begin(), c->mismatches.end(), m.Data());
        r.Set("mismatches", m);
      }
      if (p.hook) p.hook->Done(env, true, r);
      p.deferred.Resolve(r);
    } else {
      Napi::Object err = CodedError(env, c->code, c->message).Value();
      if (p.hook) p.hook->Done(env, false, err);
      p.deferred.Reject(err);
    }
  }

  struct Pending {
    Napi::Promise::Deferred deferred;
    std::unique_ptr<OpHook> hook;
  };
  using Tsfn = Napi::TypedThreadSafeFunction<Completer, Completion, &Completer::CallJs>;
  Tsfn tsfn_;
  Napi::FunctionReference on_event_;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
  bool released_ = false;
};

// Reads a Float64Array argument as exact non-negative integers (< 2^53); false on anything else.
inline bool ReadU64Array(Napi::Value v, std::vector<uint64_t>* out) {
  if (!v.IsTypedArray()) return false;
  auto ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_float64_array) return false;
  auto f = v.As<Napi::Float64Array>();
  out->resize(f.ElementLength());
  for (size_t i = 0; i < f.ElementLength(); i++) {
    double d = f[i];
    if (!(d >= 0 && d <= 9007199254740991.0) || d != double(uint64_t(d))) return false;
    (*out)[i] = uint64_t(d);
  }
  return true;
}

}  // namespace kvf
