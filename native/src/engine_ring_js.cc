// EngineRing for JavaScript: attaches an engine's command ring (a mapped Region) to the node's index, leases, pool,
// copy engine and the instance's region and layout, and starts its native thread (engine_ring.h). JavaScript is
// called back only with batches of events (blocks sealed, evictions, counts, problems), through one
// ThreadSafeFunction, at most one announcement outstanding. close() stops the thread and waits for the commands in
// flight; the JS objects the ring uses are kept referenced until then.
#include <fcntl.h>
#include <napi.h>

#include <cerrno>

#include <memory>
#include <string>

#include "block_index_js.h"
#include "copy_engine.h"
#include "engine_ops_js.h"
#include "engine_ring.h"
#include "lease_table_js.h"
#include "memory.h"
#include "modules.h"
#include "pool.h"
#include "region.h"

namespace kvf {

namespace {

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

class EngineRingJs : public Napi::ObjectWrap<EngineRingJs> {
  static void Deliver(Napi::Env env, Napi::Function fn, EngineRingJs* self, void*);
  using Tsfn = Napi::TypedThreadSafeFunction<EngineRingJs, void, &EngineRingJs::Deliver>;

 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("EngineRing", DefineClass(env, "EngineRing", {InstanceMethod<&EngineRingJs::Close>("close")}));
  }

  // new EngineRing({ ring, engine, index, pool, region, layout, leases, owner, rank, ranks, fetchable }, onEvents)
  explicit EngineRingJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineRingJs>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Invalid(env, "options: expected an object");
    if (!info[1].IsFunction()) throw Invalid(env, "onEvents: expected a function");
    Napi::Object o = info[0].As<Napi::Object>();
    RingTarget t;
    MemoryRef ring = AcquireMemory(o.Get("ring"), "ring");
    if (!(t.engine = CopyEngine::FromValue(o.Get("engine")))) throw Invalid(env, "engine: expected a CopyEngine");
    if (!(t.index = UnwrapBlockIndex(o.Get("index")))) throw Invalid(env, "index: expected a BlockIndex");
    Pool* pool = Pool::FromValue(o.Get("pool"));
    if (!pool || !(t.alloc = pool->allocator()) || !(t.pool = pool->Acquire()))
      throw Invalid(env, "pool: expected an open Pool");
    t.region = AcquireMemory(o.Get("region"), "region");
    if (!(t.layout = UnwrapInstanceLayout(o.Get("layout")))) throw Invalid(env, "layout: expected an InstanceLayout");
    if (!(t.leases = UnwrapLeaseTable(o.Get("leases")))) throw Invalid(env, "leases: expected a LeaseTable");
    t.owner = static_cast<uint32_t>(ToIndex(env, o.Get("owner"), "owner"));
    t.rank = static_cast<uint32_t>(ToIndex(env, o.Get("rank"), "rank"));
    t.ranks = static_cast<uint32_t>(ToIndex(env, o.Get("ranks"), "ranks"));
    if (t.ranks == 0 || t.rank >= t.ranks) throw Invalid(env, "rank: expected below ranks");
    t.fetchable = o.Get("fetchable").ToBoolean();
    int efd = static_cast<int>(ToIndex(env, o.Get("eventFd"), "eventFd"));
    uint32_t entries = 0, slot_bytes = 0;
    std::string bad = EngineRing::Check(*ring, &entries, &slot_bytes);
    if (!bad.empty()) throw Invalid(env, bad);
    t.event_fd = fcntl(efd, F_DUPFD_CLOEXEC, 0);
    if (t.event_fd < 0) throw Invalid(env, "eventFd: " + ErrnoString(errno));
    fcntl(t.event_fd, F_SETFL, fcntl(t.event_fd, F_GETFL) | O_NONBLOCK);
    for (const char* k : {"ring", "engine", "index", "pool", "region", "layout", "leases"})
      refs_.Set(k, o.Get(k));
    tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "kvfabric.EngineRing", 0, 1, this);
    tsfn_.Unref(env);
    Tsfn tsfn = tsfn_;
    ring_ = std::make_unique<EngineRing>(std::move(t), std::move(ring), entries, slot_bytes,
                                         [tsfn]() mutable { tsfn.NonBlockingCall(); });
  }

  ~EngineRingJs() override { Shutdown(); }

 private:
  void Shutdown() {
    if (!ring_) return;
    ring_->Stop();
    RingEvents last = ring_->TakeEvents();  // what the last commands did is still reported, if it can be
    pending_ = std::make_unique<RingEvents>(std::move(last));
    ring_.reset();
    tsfn_.Release();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool was_open = ring_ != nullptr;
    Shutdown();
    if (was_open && pending_) {
      Napi::Value events = EventsObject(env, *pending_);
      pending_.reset();
      return events;
    }
    return env.Undefined();
  }

  static void DeliverEvents(Napi::Env env, Napi::Function fn, EngineRingJs* self) {
    if (env == nullptr || self == nullptr || !self->ring_) return;
    Napi::HandleScope scope(env);
    RingEvents events = self->ring_->TakeEvents();
    fn.Call({EventsObject(env, events)});
  }

  static Napi::Object EventsObject(Napi::Env env, const RingEvents& e) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array sealed = Napi::Array::New(env, e.sealed.size());
    uint32_t i = 0;
    for (const auto& [len, hashes] : e.sealed) {
      Napi::Object g = Napi::Object::New(env);
      g.Set("hashLen", Napi::Number::New(env, len));
      g.Set("hashes", Napi::Buffer<char>::Copy(env, hashes.data(), hashes.size()));
      sealed.Set(i++, g);
    }
    o.Set("sealed", sealed);
    o.Set("evicted", EvictedObject(env, e.evicted));
    o.Set("exhausted", Napi::Number::New(env, e.exhausted));
    Napi::Object c = Napi::Object::New(env);
    auto num = [&](const char* k, uint64_t v) { c.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
    num("saveCalls", e.save_calls);
    num("savedBlocks", e.saved_blocks);
    num("sealedBlocks", e.sealed_blocks);
    num("presentBlocks", e.present_blocks);
    num("noSpaceBlocks", e.no_space_blocks);
    num("loadCalls", e.load_calls);
    num("loadedBlocks", e.loaded_blocks);
    num("queries", e.queries);
    num("queryHashes", e.query_hashes);
    num("queryHits", e.query_hits);
    num("retries", e.retries);
    num("regionFailures", e.region_failures);
    num("errors", e.errors);
    o.Set("counts", c);
    Napi::Array problems = Napi::Array::New(env, e.problems.size());
    for (uint32_t k = 0; k < e.problems.size(); k++) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("op", Napi::String::New(env, e.problems[k].op));
      p.Set("message", Napi::String::New(env, e.problems[k].message));
      problems.Set(k, p);
    }
    o.Set("problems", problems);
    o.Set("broken", Napi::Boolean::New(env, e.broken));
    return o;
  }

  std::unique_ptr<EngineRing> ring_;
  std::unique_ptr<RingEvents> pending_;
  Tsfn tsfn_;
  Napi::ObjectReference refs_ = Napi::Persistent(Napi::Object::New(Env()));  // the JS objects the ring uses
};

void EngineRingJs::Deliver(Napi::Env env, Napi::Function fn, EngineRingJs* self, void*) {
  DeliverEvents(env, fn, self);
}

}  // namespace

void InitEngineRing(Napi::Env env, Napi::Object exports) { EngineRingJs::Init(env, exports); }

}  // namespace kvf
