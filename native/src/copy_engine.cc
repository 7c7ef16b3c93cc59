// CopyEngine: worker threads executing batches of copy descriptors; completion reported through one
// ThreadSafeFunction that resolves the batch's Promise on the JS thread.
#include "copy_engine.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "fault_guard.h"
#include "modules.h"
#include "stream_copy.h"

namespace kvf {

namespace {
constexpr uint64_t kMinPartBytes = 256 << 10;  // below this a batch is not split further across threads
// A worker that ran out of parts polls the queue this long before it parks on the condvar: a batch submitted
// meanwhile (the next call of a pipeline usually is) starts without a futex wake-up, which the submitting
// event-loop thread pays for (a 64-descriptor submit: ~4 us with a worker polling, ~13 us waking two parked
// ones with notify_all on a 2-vCPU VM). Bounded, and yielding between polls, so an idle engine costs no CPU and
// a polling worker gives its core to the event loop when that has work.
constexpr auto kSpin = std::chrono::microseconds(50);
constexpr double kMaxSafe = 9007199254740991.0;
constexpr napi_type_tag kCopyEngineTag = {0x6b76666162726963ULL, 0x636f707900000001ULL};
}  // namespace

CopyEngine* CopyEngine::FromValue(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kCopyEngineTag)) return nullptr;
  return Napi::ObjectWrap<CopyEngine>::Unwrap(obj);
}

struct CopyEngine::Batch {
  explicit Batch(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Batch() = default;  // a native batch: `native_done` instead of a promise
  std::optional<Napi::Promise::Deferred> deferred;
  NativeDone native_done;
  // Keep the JS objects (and thus their wrappers) alive until the batch is delivered; the MemoryRefs keep the
  // mappings themselves alive even if close() is called meanwhile.
  Napi::ObjectReference engine_obj, src_obj, dst_obj;
  MemoryRef src, dst;
  std::vector<Desc> descs;
  std::unique_ptr<PageSums> sums;  // a summed batch (sum or verify): pages of `dst` read, nothing copied
  SaveSums* save_sums = nullptr;   // a summed save: pages copied and summed (owned by the submitter)
  std::unique_ptr<CopyEngine::Hook> hook;  // a native executor's batch: finishes its work when the copy ended
  uint64_t bytes = 0;
  std::atomic<uint32_t> parts_left{0};
  // Set by a part whose copy took a SIGBUS (an engine region shrank under it): the batch fails. 0: no fault.
  std::atomic<uintptr_t> fault_addr{0};
  std::atomic<bool> faulted{false};
};

CopyEngine::CopyEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CopyEngine>(info) {
  Napi::Env env = info.Env();
  double n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(n >= 1 && n <= 256) || n != std::floor(n)) {
    throw CodedError(env, code::kInvalidArgument, "threads: expected an integer in 1..256");
  }
  InstallFaultGuard();
  info.This().As<Napi::Object>().TypeTag(&kCopyEngineTag);
  tsfn_ = Tsfn::New(env, "kvfabric.CopyEngine", 0, 1, this);
  tsfn_.Unref(env);  // only pending batches keep the process alive
  cleanup_ = env.AddCleanupHook(&CopyEngine::OnEnvCleanup, this);
  threads_.reserve(static_cast<size_t>(n));
  nthreads_ = static_cast<uint32_t>(n);
  for (int i = 0; i < static_cast<int>(n); i++) threads_.emplace_back([this] { Worker(); });
}

CopyEngine::~CopyEngine() { Shutdown(); }

void CopyEngine::OnEnvCleanup(CopyEngine* engine) {
  engine->cleanup_ = {};  // the hook's data is freed by node-addon-api after this returns
  engine->Shutdown();
}

void CopyEngine::Shutdown() {
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();  // queued parts still run: their batches complete and resolve
  threads_.clear();
  tsfn_.Release();  // queued deliveries are still dispatched before the TSFN goes away
  if (!cleanup_.IsEmpty()) cleanup_.Remove(Env());
}

void CopyEngine::Worker() {
  // Copy threads are throughput work: SCHED_BATCH (same CPU share as normal threads, no privileges needed) keeps
  // a worker woken for a new batch from preempting the event-loop thread that submitted it, so on a host with
  // few cores the JS thread finishes the call (answers, takes the next request) before the copy takes the core.
  // Best effort: refused where policies are restricted, and then nothing changes.
  sched_param param{};
  param.sched_priority = 0;
  (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  (void)pthread_setname_np(pthread_self(), "kvf-copy");  // for top -H / perf
  for (;;) {
    Part part;
    if (queued_.load(std::memory_order_acquire) == 0 && !stopping_flag_.load(std::memory_order_relaxed)) {
      auto until = std::chrono::steady_clock::now() + kSpin;
      do {
        sched_yield();
      } while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < until);
    }
    bool more;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (queue_.empty() && !stopping_) {
        sleepers_++;
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        sleepers_--;
      }
      if (queue_.empty()) return;
      part = queue_.front();
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
      more = !queue_.empty() && sleepers_ > 0;
    }
    if (more) cv_.notify_one();  // chain the wake-up: the submitter woke only one worker
    Batch* b = part.batch;
    uint8_t* src = b->src->base();
    uint8_t* dst = b->dst->base();
    uintptr_t fault = 0;
    // Guarded: a region truncated by its engine mid-copy fails this batch instead of killing the node (a save's
    // copy reads the engine's region; a summed batch reads only the pool).
    if (!RunGuarded(
            [&] {
              if (b->sums) {  // pages [first, last] summed (and compared, for a verify)
                b->sums->Run(part.first, part.last, dst);
                return;
              }
              if (b->save_sums) {  // pages [first, last] copied and summed
                const std::vector<uint32_t>& starts = b->save_sums->starts;
                for (uint32_t p = part.first; p <= part.last; p++) {
                  uint32_t end = p + 1 < starts.size() ? starts[p + 1] : static_cast<uint32_t>(b->descs.size());
                  b->save_sums->sums[p] = CopyPageSummed(b->descs.data(), starts[p], end, src, dst);
                }
                StreamFence();
                return;
              }
              for (uint32_t i = part.first; i <= part.last; i++) {
                const Desc& d = b->descs[i];
                uint64_t begin = i == part.first ? part.first_skip : 0;
                uint64_t end = i == part.last ? part.last_len : d.len;
                StreamCopy(dst + d.dst + begin, src + d.src + begin, end - begin);
              }
              StreamFence();  // the part's bytes are in memory before parts_left says so
            },
            &fault)) {
      b->fault_addr.store(fault, std::memory_order_relaxed);
      b->faulted.store(true, std::memory_order_release);
    }
    if (b->parts_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (b->faulted.load(std::memory_order_acquire)) {
        faults_.fetch_add(1, std::memory_order_relaxed);
        errors_.fetch_add(1, std::memory_order_relaxed);
      } else {
        bytes_copied_.fetch_add(b->bytes, std::memory_order_relaxed);
      }
      batches_.fetch_add(1, std::memory_order_relaxed);
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      if (b->native_done) {  // a native executor's batch: finished here, no JavaScript involved
        bool ok = !b->faulted.load(std::memory_order_acquire);
        b->native_done(ok, ok ? 0 : b->fault_addr.load(std::memory_order_relaxed));
        delete b;
      } else {
        tsfn_.NonBlockingCall(b);  // unbounded queue: only fails once released, which happens after join
      }
    }
  }
}

// The error of a batch whose copy took a bus error: which memory (src or dst) and where, and why that happens.
Napi::Error CopyEngine::FaultError(Napi::Env env, const Batch& b) {
  uintptr_t addr = b.fault_addr.load(std::memory_order_relaxed);
  std::string where = "an unknown address";
  for (const auto& [name, mem] : {std::pair<const char*, const MemoryRef&>{"src", b.src}, {"dst", b.dst}}) {
    auto base = reinterpret_cast<uintptr_t>(mem->base());
    if (addr >= base && addr - base < mem->size()) {
      where = std::string(name) + " byte " + std::to_string(addr - base) + " of " + std::to_string(mem->size());
    }
  }
  return CodedError(env, code::kRegionInvalid,
                    "copy: bus error (SIGBUS) at " + where +
                        ": the memory's file shrank under the copy (an engine truncated its region); the batch failed");
}

void CopyEngine::Deliver(Napi::Env env, Napi::Function, CopyEngine* engine, Batch* b) {
  if (env == nullptr) return;  // environment torn down (process.exit mid-batch): nothing to resolve into
  Napi::HandleScope scope(env);
  if (b->faulted.load(std::memory_order_acquire)) {
    Napi::Object error = FaultError(env, *b).Value();
    if (b->hook) b->hook->Done(env, false, error);
    b->deferred->Reject(error);
  } else {
    Napi::Object result = Napi::Object::New(env);
    result.Set("bytes", Napi::Number::New(env, static_cast<double>(b->bytes)));
    if (b->sums) b->sums->SetResult(env, result);
    if (b->hook) b->hook->Done(env, true, result);
    b->deferred->Resolve(result);
  }
  if (--engine->pending_js_ == 0 && !engine->closed_) engine->tsfn_.Unref(env);
  delete b;  // drops the object references and memory references on the JS thread
}

namespace {
// Reads descriptor `i` from the three arrays, refusing anything but exact non-negative integers.
inline bool ReadDesc(const double* so, const double* dso, const double* ln, size_t i, CopyEngine::Desc* d) {
  double s = so[i], t = dso[i], l = ln[i];
  if (!(s >= 0 && s <= kMaxSafe && t >= 0 && t <= kMaxSafe && l >= 0 && l <= kMaxSafe)) return false;
  *d = {static_cast<uint64_t>(s), static_cast<uint64_t>(t), static_cast<uint64_t>(l)};
  // Exact integers only: the truncating conversion must round-trip (no libm floor on the hot path).
  return static_cast<double>(d->src) == s && static_cast<double>(d->dst) == t && static_cast<double>(d->len) == l;
}

std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Range(uint64_t off, uint64_t len) {
  return "[" + std::to_string(off) + ", +" + std::to_string(len) + ")";
}

// Cuts pages [0, pages) of a summed batch into at most `nparts` runs of whole pages.
uint32_t SplitPages(CopyEngine::Batch* b, uint32_t pages, uint64_t nparts, CopyEngine::Part* parts) {
  nparts = std::max<uint64_t>(1, std::min<uint64_t>(nparts, pages));
  uint32_t per = static_cast<uint32_t>((pages + nparts - 1) / nparts);
  uint32_t n = 0;
  for (uint32_t p = 0; p < pages; p += per) parts[n++] = {b, p, std::min(p + per, pages) - 1, 0, 0};
  return n;
}
}  // namespace

// copy(src, dst, srcOffsets: Float64Array, dstOffsets: Float64Array, lengths: Float64Array) -> Promise<{bytes}>
Napi::Value CopyEngine::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw CodedError(env, code::kInternal, "copy engine: used after close()");
  auto fail = [&](const char* c, const std::string& msg) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return CodedError(env, c, msg);
  };
  for (int i = 2; i < 5; i++) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      static const char* names[] = {"", "", "srcOffsets", "dstOffsets", "lengths"};
      throw fail(code::kInvalidArgument, std::string(names[i]) + ": expected a Float64Array");
    }
  }
  Napi::Float64Array so = info[2].As<Napi::Float64Array>(), dso = info[3].As<Napi::Float64Array>(),
                     ln = info[4].As<Napi::Float64Array>();
  size_t count = so.ElementLength();
  if (dso.ElementLength() != count || ln.ElementLength() != count) {
    throw fail(code::kInvalidArgument, "dstOffsets, lengths: expected " + std::to_string(count) +
                                           " elements like srcOffsets, got " + std::to_string(dso.ElementLength()) +
                                           " and " + std::to_string(ln.ElementLength()));
  }
  MemoryRef src, dst;
  try {
    src = AcquireMemory(info[0], "src");
    dst = AcquireMemory(info[1], "dst");
  } catch (const Napi::Error&) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
  const char* src_kind = UnwrapMemory(info[0])->kind();
  const char* dst_kind = UnwrapMemory(info[1])->kind();
  bool same = src.get() == dst.get();

  auto* b = new Batch(env);
  std::unique_ptr<Batch> guard(b);
  b->descs.reserve(count);
  const double *sp = so.Data(), *dp = dso.Data(), *lp = ln.Data();
  // One pass, no allocation per descriptor; messages are built only for the first bad one.
  for (size_t i = 0; i < count; i++) {
    Desc d;
    bool ok = ReadDesc(sp, dp, lp, i, &d);
    if (ok && src->Contains(d.src, d.len) && dst->Contains(d.dst, d.len) &&
        !(same && d.len > 0 && (d.src < d.dst ? d.dst - d.src : d.src - d.dst) < d.len)) {
      if (d.len == 0) continue;
      b->descs.push_back(d);
      b->bytes += d.len;
      continue;
    }
    std::string at = "descriptor " + std::to_string(i) + ": ";
    if (!ok) {
      throw fail(code::kInvalidArgument, at + "srcOffset, dstOffset and length must be non-negative integers below " +
                                             "2^53, got " + Num(sp[i]) + ", " + Num(dp[i]) + ", " + Num(lp[i]));
    }
    if (!src->Contains(d.src, d.len)) {
      throw fail(code::kInvalidArgument, at + "src range " + Range(d.src, d.len) + " exceeds the " + src_kind +
                                             " size " + std::to_string(src->size()));
    }
    if (!dst->Contains(d.dst, d.len)) {
      throw fail(code::kInvalidArgument, at + "dst range " + Range(d.dst, d.len) + " exceeds the " + dst_kind +
                                             " size " + std::to_string(dst->size()));
    }
    throw fail(code::kInvalidArgument,
               at + "src " + Range(d.src, d.len) + " and dst " + Range(d.dst, d.len) + " overlap in the same memory");
  }

  guard.release();
  return Launch(env, b, info.This().As<Napi::Object>(), std::move(src), info[0].As<Napi::Object>(), std::move(dst),
                info[1].As<Napi::Object>());
}

Napi::Promise CopyEngine::Submit(Napi::Env env, Napi::Object self, MemoryRef src, Napi::Object src_obj,
                                 MemoryRef dst, Napi::Object dst_obj, std::vector<Desc> descs,
                                 std::unique_ptr<Hook> hook, SaveSums* sums) {
  if (closed_) throw CodedError(env, code::kInternal, "copy engine: used after close()");
  auto* b = new Batch(env);
  b->hook = std::move(hook);
  for (const Desc& d : descs) b->bytes += d.len;
  Prepare(b, std::move(descs), sums);
  return Launch(env, b, self, std::move(src), src_obj, std::move(dst), dst_obj);
}

// Splits a checked batch into parts and queues them (or settles it at once when it has no bytes); takes `b`.
Napi::Promise CopyEngine::Launch(Napi::Env env, Batch* b, Napi::Object self, MemoryRef src, Napi::Object src_obj,
                                 MemoryRef dst, Napi::Object dst_obj) {
  std::unique_ptr<Batch> guard(b);
  Napi::Promise promise = b->deferred->Promise();
  if (b->bytes == 0) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("bytes", Napi::Number::New(env, 0));
    if (b->hook) b->hook->Done(env, true, result);
    b->deferred->Resolve(result);
    batches_.fetch_add(1, std::memory_order_relaxed);
    return promise;
  }
  b->src = std::move(src);
  b->dst = std::move(dst);
  b->engine_obj = Napi::Persistent(self);
  b->src_obj = Napi::Persistent(src_obj);
  b->dst_obj = Napi::Persistent(dst_obj);
  Part parts[256];
  uint32_t n = Split(b, parts);
  guard.release();
  Enqueue(env, b, parts, n);
  return promise;
}

bool CopyEngine::SubmitNative(MemoryRef src, MemoryRef dst, std::vector<Desc> descs, NativeDone done,
                              SaveSums* sums) {
  auto b = std::make_unique<Batch>();
  for (const Desc& d : descs) b->bytes += d.len;
  if (stopping_flag_.load(std::memory_order_acquire)) return false;
  if (b->bytes == 0) {
    batches_.fetch_add(1, std::memory_order_relaxed);
    done(true, 0);
    return true;
  }
  Prepare(b.get(), std::move(descs), sums);
  b->src = std::move(src);
  b->dst = std::move(dst);
  b->native_done = std::move(done);
  Part parts[256];
  uint32_t n = Split(b.get(), parts);
  b->parts_left.store(n, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  Batch* raw = b.release();
  if (!Queue(parts, n)) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    delete raw;
    return false;
  }
  return true;
}

// Takes a batch's descriptors: empty ones dropped, unless pages are summed (their starts index the descriptors).
void CopyEngine::Prepare(Batch* b, std::vector<Desc> descs, SaveSums* sums) {
  if (sums != nullptr && !sums->starts.empty()) {
    sums->sums.assign(sums->starts.size(), 0);
    b->save_sums = sums;
  } else {
    descs.erase(std::remove_if(descs.begin(), descs.end(), [](const Desc& d) { return d.len == 0; }), descs.end());
  }
  b->descs = std::move(descs);
}

uint32_t CopyEngine::Split(Batch* b, Part* parts) const {
  if (b->save_sums == nullptr) return SplitBytes(b, parts);
  auto pages = static_cast<uint32_t>(b->save_sums->starts.size());
  return SplitPages(b, pages, std::min<uint64_t>(nthreads_, std::max<uint64_t>(1, b->bytes / kMinPartBytes)), parts);
}

// Pre-split by bytes: one part per thread for large batches, cut anywhere (even inside a descriptor).
uint32_t CopyEngine::SplitBytes(Batch* b, Part* parts) const {
  uint64_t nparts = std::min<uint64_t>(nthreads_, std::max<uint64_t>(1, b->bytes / kMinPartBytes));
  uint32_t n = 0;
  uint64_t per = (b->bytes + nparts - 1) / nparts;
  uint32_t i = 0;
  uint64_t off = 0;  // position inside descs[i]
  const uint32_t last_desc = static_cast<uint32_t>(b->descs.size() - 1);
  while (n < nparts && i <= last_desc) {
    Part p{b, i, 0, off, 0};
    uint64_t want = n + 1 == nparts ? UINT64_MAX : per;
    for (;;) {
      uint64_t avail = b->descs[i].len - off;
      if (want < avail) {  // cut inside descriptor i
        p.last = i;
        p.last_len = off + want;
        off += want;
        break;
      }
      want -= avail;
      if (i == last_desc || want == 0) {  // part ends exactly at the end of descriptor i
        p.last = i;
        p.last_len = b->descs[i].len;
        i++;
        off = 0;
        break;
      }
      i++;
      off = 0;
    }
    parts[n++] = p;
  }
  return n;
}

void CopyEngine::Enqueue(Napi::Env env, Batch* b, const Part* parts, uint32_t n) {
  b->parts_left.store(n, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  if (pending_js_++ == 0) tsfn_.Ref(env);
  Queue(parts, n);  // JS-thread batches are refused before this point once closed (closed_)
}

bool CopyEngine::Queue(const Part* parts, uint32_t n) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    for (uint32_t k = 0; k < n; k++) queue_.push_back(parts[k]);
    queued_.fetch_add(n, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  // One wake-up at most from the submitter: that worker wakes the next if parts are left (spinning workers take
  // parts without any).
  if (wake) cv_.notify_one();
  return true;
}

// sum(memory, pageOffsets: Float64Array, pageBytes) -> Promise<{bytes, checksums}>: the checksum of every page.
Napi::Value CopyEngine::Sum(const Napi::CallbackInfo& info) { return Summed(info, false); }

// verify(memory, pageOffsets: Float64Array, pageBytes, expected: Uint32Array) -> Promise<{bytes, mismatches}>:
// the checksum of every page, compared with expected (lo, hi) pairs.
Napi::Value CopyEngine::Verify(const Napi::CallbackInfo& info) { return Summed(info, true); }

// A summed batch on the worker threads, cut between pages.
Napi::Value CopyEngine::Summed(const Napi::CallbackInfo& info, bool verify) {
  Napi::Env env = info.Env();
  if (closed_) throw CodedError(env, code::kInternal, "copy engine: used after close()");
  auto* b = new Batch(env);
  std::unique_ptr<Batch> guard(b);
  MemoryRef mem;
  try {
    b->sums = PageSums::FromArgs(info, verify, &mem);
  } catch (const Napi::Error&) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
  uint32_t pages = b->sums->pages();
  b->bytes = pages * b->sums->page_bytes();
  Napi::Promise promise = b->deferred->Promise();
  if (pages == 0) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("bytes", Napi::Number::New(env, 0));
    b->sums->SetResult(env, result);
    b->deferred->Resolve(result);
    return promise;
  }
  b->src = mem;
  b->dst = std::move(mem);
  b->engine_obj = Napi::Persistent(info.This().As<Napi::Object>());
  b->src_obj = Napi::Persistent(info[0].As<Napi::Object>());
  Part parts[256];
  uint64_t nparts = std::min<uint64_t>(threads_.size(), std::max<uint64_t>(1, b->bytes / kMinPartBytes));
  uint32_t n = SplitPages(b, pages, nparts, parts);
  guard.release();
  Enqueue(env, b, parts, n);
  return promise;
}

Napi::Value CopyEngine::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, const std::atomic<uint64_t>& v) {
    o.Set(k, Napi::Number::New(env, static_cast<double>(v.load(std::memory_order_relaxed))));
  };
  num("bytesCopied", bytes_copied_);
  num("batches", batches_);
  num("batchesInFlight", in_flight_);
  num("errors", errors_);
  num("faults", faults_);
  return o;
}

Napi::Value CopyEngine::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

void CopyEngine::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "CopyEngine",
                                    {
                                        InstanceMethod<&CopyEngine::Copy>("copy"),
                                        InstanceMethod<&CopyEngine::Sum>("sum"),
                                        InstanceMethod<&CopyEngine::Verify>("verify"),
                                        InstanceMethod<&CopyEngine::Counters>("counters"),
                                        InstanceMethod<&CopyEngine::Close>("close"),
                                    });
  exports.Set("CopyEngine", ctor);
  exports.Set("copyStoreKernel", Napi::String::New(env, StreamCopyKernel()));
}

void InitCopy(Napi::Env env, Napi::Object exports) { CopyEngine::Init(env, exports); }

}  // namespace kvf
