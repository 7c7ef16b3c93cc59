// Copy engine: batches of (src offset, dst offset, length) descriptors between two memories (pool, regions),
// split by bytes across worker threads it owns (std::thread, never the libuv pool). One batch resolves one Promise.
// A summed batch (checksum.h) is split by pages instead: each page's bytes are hashed by one thread. Native
// executors (engine_ops_js.cc) submit batches they planned themselves, with a hook that finishes their work on the
// JS thread when the copy is done. A save may ask for its pages' checksums too (save_sums.h): its batch is then
// split by pages, and each page is summed by the thread that copies it.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "checksum.h"
#include "copy_range.h"
#include "memory.h"
#include "op_hook.h"
#include "save_sums.h"

namespace kvf {

class CopyEngine : public Napi::ObjectWrap<CopyEngine> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit CopyEngine(const Napi::CallbackInfo& info);
  ~CopyEngine() override;

  using Desc = CopyRange;
  struct Batch;  // defined in copy_engine.cc
  // What a native executor does once its batch's copy ended (op_hook.h).
  using Hook = OpHook;
  // The CopyEngine behind a JS object created by this addon, or nullptr. JS thread only.
  static CopyEngine* FromValue(Napi::Value value);
  // Copies `descs` (checked by the caller against both memories) from `src` to `dst`; `hook` runs when done. The
  // objects are kept alive until then. Throws INTERNAL once closed. With `sums` (kept alive by the hook), the
  // pages it describes are summed as they are copied.
  Napi::Promise Submit(Napi::Env env, Napi::Object self, MemoryRef src, Napi::Object src_obj, MemoryRef dst,
                       Napi::Object dst_obj, std::vector<Desc> descs, std::unique_ptr<Hook> hook,
                       SaveSums* sums = nullptr);
  // Called on a copy thread when a native batch ended: `copied`, or the address of the bus error that failed it.
  using NativeDone = std::function<void(bool copied, uintptr_t fault_addr)>;
  // Any thread: copies `descs` (checked by the caller against both memories) from `src` to `dst` and calls `done`
  // on a copy thread (or at once, on this thread, when there is nothing to copy). No JavaScript is involved: for
  // native executors such as the engines' command rings. False (nothing queued, `done` not called) once closed.
  // With `sums` (kept alive by `done`), the pages it describes are summed as they are copied.
  bool SubmitNative(MemoryRef src, MemoryRef dst, std::vector<Desc> descs, NativeDone done,
                    SaveSums* sums = nullptr);
  struct Part {  // a contiguous byte range of a batch: descriptor [first, last], first/last partially
    Batch* batch;  // (a summed batch or a summed save: pages [first, last], the skips unused)
    uint32_t first, last;
    uint64_t first_skip, last_len;  // bytes skipped at the start of `first`; bytes of `last` copied
  };

 private:
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Sum(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  Napi::Value Summed(const Napi::CallbackInfo& info, bool verify);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void Worker();
  void Enqueue(Napi::Env env, Batch* b, const Part* parts, uint32_t n);  // JS thread; takes ownership of `b`
  bool Queue(const Part* parts, uint32_t n);  // any thread: false (nothing queued) once stopping
  uint32_t SplitBytes(Batch* b, Part* parts) const;  // cuts a copy batch into at most one part per thread
  uint32_t Split(Batch* b, Part* parts) const;       // SplitBytes, or whole pages for a summed save
  static void Prepare(Batch* b, std::vector<Desc> descs, SaveSums* sums);
  Napi::Promise Launch(Napi::Env env, Batch* b, Napi::Object self, MemoryRef src, Napi::Object src_obj, MemoryRef dst,
                       Napi::Object dst_obj);
  void Shutdown();  // stop (finishing queued parts), join, release the TSFN; idempotent
  static void OnEnvCleanup(CopyEngine* engine);
  static void Deliver(Napi::Env env, Napi::Function, CopyEngine* engine, Batch* batch);
  static Napi::Error FaultError(Napi::Env env, const Batch& batch);

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Part> queue_;
  std::atomic<uint32_t> queued_{0};  // parts in queue_ (read without the lock by spinning workers)
  uint32_t sleepers_ = 0;            // workers blocked on cv_ (under mu_): a submit wakes one only when > 0
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // stopping_, readable without the lock
  bool closed_ = false;

  using Tsfn = Napi::TypedThreadSafeFunction<CopyEngine, Batch, &CopyEngine::Deliver>;
  Tsfn tsfn_;
  uint32_t nthreads_ = 0;   // threads_.size(), readable from any thread
  uint64_t pending_js_ = 0;  // batches submitted and not yet delivered (JS thread only); TSFN is ref'd while > 0
  Napi::Env::CleanupHook<void (*)(CopyEngine*), CopyEngine> cleanup_;

  // faults: batches failed by a bus error (a region truncated under the copy); also counted in errors.
  std::atomic<uint64_t> bytes_copied_{0}, batches_{0}, in_flight_{0}, errors_{0}, faults_{0};
};

}  // namespace kvf
