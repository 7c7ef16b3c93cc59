// The engine API's save and load, and pool allocation with eviction, for JavaScript: one call per request, the
// per-block work native (engine_ops.h). A save or load plans on the JS thread (index lock held, no JS per block),
// copies on the copy engine's threads, and finishes (seal, unpin) when the copy engine delivers, before its promise
// settles. InstanceLayout holds an instance's geometry natively, made once at registration.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "block_index_js.h"
#include "copy_engine.h"
#include "cuda_ipc_region.h"
#include "engine_ops.h"
#include "engine_ops_js.h"
#include "memory.h"
#include "modules.h"
#include "pool.h"

namespace kvf {

namespace {

constexpr napi_type_tag kLayoutTag = {0x6b76666162726963ULL, 0x6c61796f75740001ULL};

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

// new InstanceLayout(ns, shards, shard, numBlocks, pageBytes, segmentBytes, strideBytes, segmentOffsets)
class InstanceLayoutJs : public Napi::ObjectWrap<InstanceLayoutJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("InstanceLayout", DefineClass(env, "InstanceLayout", {}));
  }
  static const InstanceLayout* FromValue(Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kLayoutTag)) return nullptr;
    return &Unwrap(v.As<Napi::Object>())->layout_;
  }
  explicit InstanceLayoutJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InstanceLayoutJs>(info) {
    Napi::Env env = info.Env();
    InstanceLayout& l = layout_;
    l.ns = static_cast<uint32_t>(ToIndex(env, info[0], "ns"));
    l.shards = static_cast<uint32_t>(ToIndex(env, info[1], "shards"));
    l.shard = static_cast<uint32_t>(ToIndex(env, info[2], "shard"));
    l.num_blocks = static_cast<uint32_t>(ToIndex(env, info[3], "numBlocks"));
    l.page_bytes = ToIndex(env, info[4], "pageBytes");
    l.segment_bytes = ToIndex(env, info[5], "segmentBytes");
    l.stride_bytes = ToIndex(env, info[6], "strideBytes");
    if (l.shards == 0 || l.shards > BlockIndex::kMaxShards) throw Invalid(env, "shards: expected 1..64");
    if (l.shard >= l.shards) throw Invalid(env, "shard: expected below shards");
    if (!info[7].IsTypedArray() || info[7].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw Invalid(env, "segmentOffsets: expected a Float64Array");
    }
    Napi::Float64Array offs = info[7].As<Napi::Float64Array>();
    for (size_t s = 0; s < offs.ElementLength(); s++) {
      double v = offs[s];
      if (!(v >= 0 && v <= 9007199254740991.0) || v != std::floor(v))
        throw Invalid(env, "segmentOffsets[" + std::to_string(s) + "]: expected a non-negative integer");
      l.segment_offsets.push_back(static_cast<uint64_t>(v));
    }
    if (l.segment_bytes * l.segment_offsets.size() > l.page_bytes) {
      throw Invalid(env, "pageBytes: smaller than the segments of a block");
    }
    info.This().As<Napi::Object>().TypeTag(&kLayoutTag);
  }

 private:
  InstanceLayout layout_;
};

// The arguments every executor takes, unwrapped: INVALID_ARGUMENT naming the one that is not what it should be.
struct Parts {
  CopyEngine* engine;
  BlockIndex* index;
  Pool* pool;
  std::shared_ptr<PageAllocator> alloc;
};

Parts Unwrap(const Napi::CallbackInfo& info, bool with_engine) {
  Napi::Env env = info.Env();
  Parts p{nullptr, nullptr, nullptr, nullptr};
  size_t at = 0;
  if (with_engine && !(p.engine = CopyEngine::FromValue(info[at++]))) throw Invalid(env, "engine: expected a CopyEngine");
  if (!(p.index = UnwrapBlockIndex(info[at++]))) throw Invalid(env, "index: expected a BlockIndex");
  if (!(p.pool = Pool::FromValue(info[at++]))) throw Invalid(env, "pool: expected a Pool");
  if (!(p.alloc = p.pool->allocator())) throw CodedError(env, code::kInternal, "pool: used after close()");
  return p;
}

template <typename T, napi_typedarray_type K>
T TypedArg(const Napi::CallbackInfo& info, size_t i, const char* name, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != K) {
    throw Invalid(info.Env(), std::string(name) + ": expected " + what);
  }
  return info[i].As<T>();
}

}  // namespace

Napi::Object EvictedObject(Napi::Env env, const EvictedBlocks& e) {
  Napi::Object o = Napi::Object::New(env);
  auto ns = Napi::Uint32Array::New(env, e.ns.size());
  auto sealed = Napi::Uint8Array::New(env, e.sealed.size());
  auto lens = Napi::Uint8Array::New(env, e.lens.size());
  for (size_t i = 0; i < e.ns.size(); i++) {
    ns[i] = e.ns[i];
    sealed[i] = e.sealed[i];
    lens[i] = e.lens[i];
  }
  o.Set("ns", ns);
  o.Set("sealed", sealed);
  o.Set("lens", lens);
  o.Set("hashes", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(e.hashes.data()), e.hashes.size()));
  o.Set("blocks", Napi::Number::New(env, static_cast<double>(e.blocks)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(e.bytes)));
  return o;
}

namespace {

// Finishes a save when its copy ended: seal and unpin, or undo.
class SaveHook : public CopyEngine::Hook {
 public:
  SaveHook(Napi::Env env, BlockIndex* index, std::shared_ptr<PageAllocator> alloc, const InstanceLayout* layout,
           std::unique_ptr<SavePlan> plan, Napi::Object layout_obj, Napi::Object index_obj, Napi::Uint8Array packed,
           uint32_t hash_len)
      : index_(index),
        alloc_(std::move(alloc)),
        layout_(layout),
        plan_(std::move(plan)),
        layout_obj_(Napi::Persistent(layout_obj)),
        index_obj_(Napi::Persistent(index_obj)),
        packed_(Napi::Persistent(packed)),
        hash_len_(hash_len) {}

  void Done(Napi::Env env, bool copied, Napi::Object result) override {
    std::string sealed_hashes;
    uint32_t sealed = FinishSave(*index_, *alloc_, *layout_, packed_.Value().Data(), hash_len_, *plan_, copied,
                                 &sealed_hashes);
    if (copied) {
      Result(env, result, *plan_, sealed, sealed_hashes, hash_len_);
    } else {
      result.Set("evicted", EvictedObject(env, plan_->evicted));  // made room before the copy failed
    }
  }

  static void Result(Napi::Env env, Napi::Object r, const SavePlan& plan, uint32_t sealed,
                     const std::string& sealed_hashes, uint32_t hash_len) {
    auto outcomes = Napi::Uint8Array::New(env, plan.outcomes.size());
    for (size_t i = 0; i < plan.outcomes.size(); i++) outcomes[i] = plan.outcomes[i];
    r.Set("outcomes", outcomes);
    r.Set("stored", Napi::Number::New(env, static_cast<double>(plan.slots.size())));
    r.Set("sealed", Napi::Number::New(env, sealed));
    r.Set("present", Napi::Number::New(env, plan.present));
    r.Set("noSpace", Napi::Number::New(env, plan.no_space));
    r.Set("sealedHashes", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(sealed_hashes.data()),
                                                      sealed_hashes.size()));
    r.Set("hashLen", Napi::Number::New(env, hash_len));
    r.Set("exhausted", Napi::Boolean::New(env, plan.exhausted));
    r.Set("evicted", EvictedObject(env, plan.evicted));
  }

 private:
  BlockIndex* index_;
  std::shared_ptr<PageAllocator> alloc_;
  const InstanceLayout* layout_;
  std::unique_ptr<SavePlan> plan_;
  Napi::ObjectReference layout_obj_, index_obj_;  // keep layout_ and index_ alive
  Napi::Reference<Napi::Uint8Array> packed_;
  uint32_t hash_len_;
};

// The engine's region of a save or load: host memory the copy engine reaches, or GPU memory (a CUDA IPC region,
// whose own thread and stream copy).
struct EngineRegion {
  CudaIpcRegionBase* cuda = nullptr;
  MemoryRef host;
  uint64_t size() const { return cuda != nullptr ? cuda->size() : host->size(); }
};

EngineRegion RegionArg(Napi::Value v) {
  EngineRegion r;
  r.cuda = UnwrapCudaIpcRegion(v);
  if (r.cuda == nullptr) r.host = AcquireMemory(v, "region");
  return r;
}

// saveBlocks(engine, index, pool, region, layout, blockIds: Uint32Array, packed: Uint8Array, hashLen)
//   -> Promise<{ bytes, outcomes, stored, sealed, present, noSpace, sealedHashes, hashLen, exhausted, evicted }>
// Throws INVALID_ARGUMENT (nothing changed). Blocks that found no page answer NO_SPACE (the caller decides whether
// that fails the call: the evictions made on the way are in the result either way). `region` is a Region or a
// CudaIpcRegion (then its stream copies, not the engine's threads).
Napi::Value SaveBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parts p = Unwrap(info, true);
  EngineRegion region = RegionArg(info[3]);
  const InstanceLayout* layout = InstanceLayoutJs::FromValue(info[4]);
  if (!layout) throw Invalid(env, "layout: expected an InstanceLayout");
  auto ids = TypedArg<Napi::Uint32Array, napi_uint32_array>(info, 5, "block_ids", "a Uint32Array");
  auto packed = TypedArg<Napi::Uint8Array, napi_uint8_array>(info, 6, "hashes", "a Buffer");
  uint32_t hash_len = static_cast<uint32_t>(ToIndex(env, info[7], "hashLen"));
  uint32_t count = hash_len > 0 ? static_cast<uint32_t>(packed.ByteLength() / hash_len) : 0;
  if (hash_len > KeyTable::kMaxKeyBytes || (hash_len > 0 && packed.ByteLength() % hash_len != 0))
    throw Invalid(env, "hashes.hash_len: expected 1..64 bytes dividing the packed hashes");
  if (ids.ElementLength() != count) {
    throw Invalid(env, "block_ids: expected " + std::to_string(count) + " ids (one per hash), got " +
                           std::to_string(ids.ElementLength()));
  }
  MemoryRef pool = p.pool->Acquire();
  if (!pool) throw CodedError(env, code::kInternal, "pool: used after close()");
  auto plan = std::make_unique<SavePlan>();
  std::string bad = PlanSave(*p.index, *p.alloc, *layout, ids.Data(), packed.Data(), hash_len, count, plan.get());
  if (!bad.empty()) throw Invalid(env, bad);
  bad = DescsOutside(plan->descs, region.size(), pool->size());
  if (!bad.empty()) {
    std::string none;
    FinishSave(*p.index, *p.alloc, *layout, packed.Data(), hash_len, *plan, false, &none);
    throw Invalid(env, bad);
  }
  std::vector<CopyRange> descs = std::move(plan->descs);
  SaveSums* sums = &plan->sums;  // the hook owns the plan (and so the sums) until the copy is delivered
  auto hook = std::make_unique<SaveHook>(env, p.index, p.alloc, layout, std::move(plan), info[4].As<Napi::Object>(),
                                         info[1].As<Napi::Object>(), packed, hash_len);
  // (CUDA copies are not summed: a peer's grant sums those pages when it first reads them)
  if (region.cuda != nullptr) return region.cuda->Submit(env, std::move(pool), std::move(descs), true, std::move(hook));
  return p.engine->Submit(env, info[0].As<Napi::Object>(), std::move(region.host), info[3].As<Napi::Object>(),
                          std::move(pool), info[2].As<Napi::Object>(), std::move(descs), std::move(hook), sums);
}

// Unpins a load's blocks when its copy ended.
class LoadHook : public CopyEngine::Hook {
 public:
  LoadHook(BlockIndex* index, Napi::Object index_obj, Napi::Int32Array slots, uint32_t count)
      : index_(index), index_obj_(Napi::Persistent(index_obj)), slots_(Napi::Persistent(slots)), count_(count) {}
  void Done(Napi::Env, bool, Napi::Object) override { FinishLoad(*index_, slots_.Value().Data(), count_); }

 private:
  BlockIndex* index_;
  Napi::ObjectReference index_obj_;
  Napi::Reference<Napi::Int32Array> slots_;
  uint32_t count_;
};

// loadBlocks(engine, index, pool, region, layout, slots: Int32Array, blockIds: Uint32Array) -> Promise<{bytes}>:
// the first blockIds.length slots (pinned by a lease) scatter into those blocks of the region.
Napi::Value LoadBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parts p = Unwrap(info, true);
  EngineRegion region = RegionArg(info[3]);
  const InstanceLayout* layout = InstanceLayoutJs::FromValue(info[4]);
  if (!layout) throw Invalid(env, "layout: expected an InstanceLayout");
  auto slots = TypedArg<Napi::Int32Array, napi_int32_array>(info, 5, "slots", "an Int32Array");
  auto ids = TypedArg<Napi::Uint32Array, napi_uint32_array>(info, 6, "block_ids", "a Uint32Array");
  uint32_t count = static_cast<uint32_t>(ids.ElementLength());
  if (count > slots.ElementLength()) throw Invalid(env, "block_ids: more ids than the lease has blocks");
  MemoryRef pool = p.pool->Acquire();
  if (!pool) throw CodedError(env, code::kInternal, "pool: used after close()");
  std::vector<CopyRange> descs;
  std::string bad = PlanLoad(*p.index, *layout, slots.Data(), ids.Data(), count, &descs);
  if (bad.empty()) bad = DescsOutside(descs, pool->size(), region.size());
  if (!bad.empty()) {
    if (!descs.empty()) FinishLoad(*p.index, slots.Data(), count);
    throw Invalid(env, bad);
  }
  auto hook = std::make_unique<LoadHook>(p.index, info[1].As<Napi::Object>(), slots, count);
  if (region.cuda != nullptr) return region.cuda->Submit(env, std::move(pool), std::move(descs), false, std::move(hook));
  return p.engine->Submit(env, info[0].As<Napi::Object>(), std::move(pool), info[2].As<Napi::Object>(),
                          std::move(region.host), info[3].As<Napi::Object>(), std::move(descs), std::move(hook));
}

// allocatePages(index, pool, pageBytes, count) -> { pages: Float64Array, exhausted, evicted }: up to `count` pages,
// evicting least recently used blocks (pulled copies first) until they fit.
Napi::Value AllocatePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parts p = Unwrap(info, false);
  uint64_t page_bytes = ToIndex(env, info[2], "pageBytes");
  uint64_t count = ToIndex(env, info[3], "count");
  if (page_bytes == 0 || page_bytes > p.alloc->slab_bytes())
    throw Invalid(env, "pageBytes: expected 1.." + std::to_string(p.alloc->slab_bytes()));
  if (count > UINT32_MAX) throw Invalid(env, "count: too many pages");
  std::vector<uint64_t> pages;
  EvictedBlocks evicted;
  bool exhausted = false;
  {
    std::lock_guard<std::mutex> lock(p.index->mu());
    AllocateEvicting(*p.index, *p.alloc, page_bytes, static_cast<uint32_t>(count), &pages, &evicted, &exhausted);
  }
  Napi::Object o = Napi::Object::New(env);
  auto out = Napi::Float64Array::New(env, pages.size());
  for (size_t i = 0; i < pages.size(); i++) out[i] = static_cast<double>(pages[i]);
  o.Set("pages", out);
  o.Set("exhausted", Napi::Boolean::New(env, exhausted));
  o.Set("evicted", EvictedObject(env, evicted));
  return o;
}

}  // namespace

const InstanceLayout* UnwrapInstanceLayout(Napi::Value value) { return InstanceLayoutJs::FromValue(value); }

void InitEngineOps(Napi::Env env, Napi::Object exports) {
  InstanceLayoutJs::Init(env, exports);
  exports.Set("saveBlocks", Napi::Function::New(env, SaveBlocks, "saveBlocks"));
  exports.Set("loadBlocks", Napi::Function::New(env, LoadBlocks, "loadBlocks"));
  exports.Set("allocatePages", Napi::Function::New(env, AllocatePages, "allocatePages"));
}

}  // namespace kvf
