// A remote pull's local per-block work for JavaScript (pull_ops.h): one call per chunk sets its blocks up, one
// seals or undoes them. The calls run on the JS thread under the index lock; nothing per block is left to JavaScript.
#include <napi.h>

#include <string>
#include <vector>

#include "block_index_js.h"
#include "engine_ops_js.h"
#include "memory.h"
#include "modules.h"
#include "pool.h"
#include "pull_ops.h"

namespace kvf {

namespace {

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

BlockIndex* IndexArg(const Napi::CallbackInfo& info, size_t i) {
  BlockIndex* index = UnwrapBlockIndex(info[i]);
  if (!index) throw Invalid(info.Env(), "index: expected a BlockIndex");
  return index;
}

std::shared_ptr<PageAllocator> AllocArg(const Napi::CallbackInfo& info, size_t i) {
  Pool* pool = Pool::FromValue(info[i]);
  if (!pool) throw Invalid(info.Env(), "pool: expected a Pool");
  std::shared_ptr<PageAllocator> alloc = pool->allocator();
  if (!alloc) throw CodedError(info.Env(), code::kInternal, "pool: used after close()");
  return alloc;
}

Napi::Int32Array SlotsArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Invalid(info.Env(), "slots: expected an Int32Array");
  return info[i].As<Napi::Int32Array>();
}

// setUpPulled(index, pool, ns, shards, pageBytes, packed: Uint8Array, hashLen, at, count)
//   -> { slots: Int32Array, pages: Float64Array, exhausted, evicted }: blocks [at, at + count) of the packed hashes.
Napi::Value SetUpPulledJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BlockIndex* index = IndexArg(info, 0);
  std::shared_ptr<PageAllocator> alloc = AllocArg(info, 1);
  uint32_t ns = static_cast<uint32_t>(ToIndex(env, info[2], "ns"));
  uint64_t shards = ToIndex(env, info[3], "shards");
  uint64_t page_bytes = ToIndex(env, info[4], "pageBytes");
  if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Invalid(env, "packed: expected a Buffer");
  auto packed = info[5].As<Napi::Uint8Array>();
  uint64_t hash_len = ToIndex(env, info[6], "hashLen");
  uint64_t at = ToIndex(env, info[7], "at"), count = ToIndex(env, info[8], "count");
  if (shards == 0 || shards > BlockIndex::kMaxShards) throw Invalid(env, "shards: expected 1..64");
  if (page_bytes == 0 || page_bytes > alloc->slab_bytes())
    throw Invalid(env, "pageBytes: expected 1.." + std::to_string(alloc->slab_bytes()));
  if (hash_len == 0 || hash_len > KeyTable::kMaxKeyBytes) throw Invalid(env, "hashLen: expected 1..64");
  uint64_t hashes = packed.ByteLength() / hash_len;
  if (at > hashes || count > hashes - at) {
    throw Invalid(env, "count: blocks " + std::to_string(at) + ".." + std::to_string(at + count) + " of " +
                           std::to_string(hashes) + " hashes");
  }
  if (count * shards > UINT32_MAX) throw Invalid(env, "count: too many pages");
  PulledChunk chunk;
  SetUpPulled(*index, *alloc, ns, static_cast<uint32_t>(shards), page_bytes, packed.Data() + at * hash_len,
              static_cast<uint32_t>(hash_len), static_cast<uint32_t>(count), &chunk);
  Napi::Object o = Napi::Object::New(env);
  auto slots = Napi::Int32Array::New(env, chunk.slots.size());
  for (size_t i = 0; i < chunk.slots.size(); i++) slots[i] = chunk.slots[i];
  auto pages = Napi::Float64Array::New(env, chunk.pages.size());
  for (size_t i = 0; i < chunk.pages.size(); i++) pages[i] = static_cast<double>(chunk.pages[i]);
  o.Set("slots", slots);
  o.Set("pages", pages);
  o.Set("exhausted", Napi::Boolean::New(env, chunk.exhausted));
  o.Set("evicted", EvictedObject(env, chunk.evicted));
  return o;
}

// sealPulled(index, slots: Int32Array, checksums: Uint32Array) -> { sealed, sealedHashes: Buffer }
Napi::Value SealPulledJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BlockIndex* index = IndexArg(info, 0);
  Napi::Int32Array slots = SlotsArg(info, 1);
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Invalid(env, "checksums: expected a Uint32Array");
  auto sums = info[2].As<Napi::Uint32Array>();
  std::string hashes;
  uint32_t sealed = 0;
  std::string bad = SealPulled(*index, slots.Data(), static_cast<uint32_t>(slots.ElementLength()), sums.Data(),
                               static_cast<uint32_t>(sums.ElementLength()), &hashes, &sealed);
  if (!bad.empty()) throw Invalid(env, bad);
  Napi::Object o = Napi::Object::New(env);
  o.Set("sealed", Napi::Number::New(env, sealed));
  o.Set("sealedHashes",
        Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(hashes.data()), hashes.size()));
  return o;
}

// undoPulled(index, pool, slots: Int32Array)
Napi::Value UndoPulledJs(const Napi::CallbackInfo& info) {
  BlockIndex* index = IndexArg(info, 0);
  std::shared_ptr<PageAllocator> alloc = AllocArg(info, 1);
  Napi::Int32Array slots = SlotsArg(info, 2);
  std::string bad = UndoPulled(*index, *alloc, slots.Data(), static_cast<uint32_t>(slots.ElementLength()));
  if (!bad.empty()) throw Invalid(info.Env(), bad);
  return info.Env().Undefined();
}

}  // namespace

void InitPullOps(Napi::Env env, Napi::Object exports) {
  exports.Set("setUpPulled", Napi::Function::New(env, SetUpPulledJs, "setUpPulled"));
  exports.Set("sealPulled", Napi::Function::New(env, SealPulledJs, "sealPulled"));
  exports.Set("undoPulled", Napi::Function::New(env, UndoPulledJs, "undoPulled"));
}

}  // namespace kvf
