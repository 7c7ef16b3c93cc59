// BlockIndex for JavaScript: an ObjectWrap over kvf::BlockIndex whose methods mirror the node's former TypeScript
// index one for one (native/lib/block-index.ts declares them). Every call takes the index lock; slots are checked
// against the live ones, so a stale or made-up slot throws INVALID_ARGUMENT instead of reading another block. The
// batch methods (prefix, pinMany, unpinMany, sealedHashes) are what hot paths use: one call per request.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "block_index.h"
#include "block_index_js.h"
#include "key_ids_js.h"
#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {

constexpr napi_type_tag kBlockIndexTag = {0x6b76666162726963ULL, 0x696e646578000001ULL};

class BlockIndexJs : public Napi::ObjectWrap<BlockIndexJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit BlockIndexJs(const Napi::CallbackInfo& info);

 private:
  using Lock = std::lock_guard<std::mutex>;
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value IsSealed(const Napi::CallbackInfo& info);
  Napi::Value Prefix(const Napi::CallbackInfo& info);
  Napi::Value SlotForShard(const Napi::CallbackInfo& info);
  Napi::Value Assign(const Napi::CallbackInfo& info);
  Napi::Value Unassign(const Napi::CallbackInfo& info);
  Napi::Value MarkShardWritten(const Napi::CallbackInfo& info);
  Napi::Value Page(const Napi::CallbackInfo& info);
  Napi::Value HasChecksum(const Napi::CallbackInfo& info);
  Napi::Value SetChecksum(const Napi::CallbackInfo& info);
  Napi::Value ChecksumsInto(const Napi::CallbackInfo& info);
  Napi::Value Shards(const Napi::CallbackInfo& info);
  Napi::Value Hash(const Napi::CallbackInfo& info);
  Napi::Value Ns(const Napi::CallbackInfo& info);
  Napi::Value Pins(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value PinMany(const Napi::CallbackInfo& info);
  Napi::Value UnpinMany(const Napi::CallbackInfo& info);
  Napi::Value PinAll(const Napi::CallbackInfo& info, bool pin);
  Napi::Value Victim(const Napi::CallbackInfo& info);
  Napi::Value Coldest(const Napi::CallbackInfo& info);
  Napi::Value Evict(const Napi::CallbackInfo& info);
  Napi::Value EvictInto(const Napi::CallbackInfo& info);
  Napi::Value PageBytes(const Napi::CallbackInfo& info);
  Napi::Value SealedHashes(const Napi::CallbackInfo& info);
  Napi::Value GrantPages(const Napi::CallbackInfo& info);
  Napi::Value SetChecksums(const Napi::CallbackInfo& info);
  Napi::Value SealedSlots(const Napi::CallbackInfo& info);
  Napi::Value PagesOf(const Napi::CallbackInfo& info);
  Napi::Value ColdestNotIn(const Napi::CallbackInfo& info);
  Napi::Int32Array Slots(const Napi::CallbackInfo& info, size_t i, uint32_t* count) const;

  // Argument readers: INVALID_ARGUMENT naming the argument when it is not what the method takes.
  int32_t Slot(const Napi::CallbackInfo& info, size_t i) const;
  uint32_t Shard(const Napi::CallbackInfo& info, size_t i, int32_t slot) const;
  static uint32_t U32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max);
  static const uint8_t* Bytes(const Napi::CallbackInfo& info, size_t i, size_t* len);
  void Unpin(Napi::Env env, int32_t slot);

 public:
  BlockIndex index_;
};

Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

uint32_t BlockIndexJs::U32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max) {
  Napi::Value v = info[i];
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max) || d != std::floor(d)) {
    throw CodedError(info.Env(), code::kInvalidArgument,
                     std::string(name) + ": expected an integer in 0.." + std::to_string(max));
  }
  return static_cast<uint32_t>(d);
}

int32_t BlockIndexJs::Slot(const Napi::CallbackInfo& info, size_t i) const {
  Napi::Value v = info[i];
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  int32_t slot = d >= 0 && d < 2147483647.0 && d == std::floor(d) ? static_cast<int32_t>(d) : -1;
  if (!index_.IsLive(slot)) {
    throw CodedError(info.Env(), code::kInvalidArgument, "slot: expected a live slot of this index");
  }
  return slot;
}

uint32_t BlockIndexJs::Shard(const Napi::CallbackInfo& info, size_t i, int32_t slot) const {
  return U32(info, i, "shard", index_.Shards(slot) - 1);
}

const uint8_t* BlockIndexJs::Bytes(const Napi::CallbackInfo& info, size_t i, size_t* len) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw CodedError(info.Env(), code::kInvalidArgument, "buf: expected a Buffer or Uint8Array");
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  *len = a.ByteLength();
  return a.Data();
}

BlockIndexJs::BlockIndexJs(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BlockIndexJs>(info),
      index_(info.Length() > 0 && info[0].IsNumber() ? U32(info, 0, "initialCapacity", 1u << 30) : 1024) {
  info.This().As<Napi::Object>().TypeTag(&kBlockIndexTag);
}

Napi::Value BlockIndexJs::Stats(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  BlockIndex::Stats s = index_.GetStats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("sealed", Num(env, s.sealed));
  o.Set("partial", Num(env, s.partial));
  o.Set("pinned", Num(env, s.pinned));
  o.Set("pageBytes", Num(env, s.page_bytes));
  return o;
}

// lookup(ns, buf, off, len) -> slot or -1
Napi::Value BlockIndexJs::Lookup(const Napi::CallbackInfo& info) {
  size_t n;
  const uint8_t* buf = Bytes(info, 1, &n);
  uint32_t off = U32(info, 2, "off", UINT32_MAX), len = U32(info, 3, "len", KeyTable::kMaxKeyBytes);
  if (uint64_t{off} + len > n) throw CodedError(info.Env(), code::kInvalidArgument, "off, len: outside buf");
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Lookup(U32(info, 0, "ns", UINT32_MAX), buf + off, len));
}

// sealedSlots(ns, packed, hashLen, at, count, out: Int32Array) -> found: out[k] is the slot of hash at + k when it is
// a sealed block of ns, else -1. Nothing moves in the LRU lists (a lookup for bookkeeping, not a use).
Napi::Value BlockIndexJs::SealedSlots(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ns = U32(info, 0, "ns", UINT32_MAX);
  PackedRun r = PackedRunArg(info, 1, true, KeyTable::kMaxKeyBytes);
  if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw CodedError(env, code::kInvalidArgument, "out: expected an Int32Array");
  auto out = info[5].As<Napi::Int32Array>();
  if (out.ElementLength() < r.count)
    throw CodedError(env, code::kInvalidArgument, "out: room for " + std::to_string(out.ElementLength()) +
                                                      " slots, need " + std::to_string(r.count));
  uint32_t found = 0;
  Lock lock(index_.mu());
  for (uint32_t k = 0; k < r.count; k++) {
    int32_t slot = index_.Lookup(ns, r.data + static_cast<size_t>(k) * r.hash_len, r.hash_len);
    out[k] = slot >= 0 && index_.IsSealed(slot) ? slot : -1;
    found += out[k] >= 0;
  }
  return Num(env, found);
}

// pagesOf(slots: Int32Array, count, pages: Float64Array, sums: Uint32Array, known: Uint8Array) -> pages written:
// every shard's page of the first `count` slots (block-major; slots of any shape), its (lo, hi) checksum where known
// (known[k] = 1) and 0 where not (known[k] = 0). Every slot is checked and the outputs' room before anything is written.
Napi::Value BlockIndexJs::PagesOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto typed = [&](size_t i, napi_typedarray_type t, const char* name) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != t)
      throw CodedError(env, code::kInvalidArgument, std::string(name) + ": expected a typed array of its kind");
    return info[i].As<Napi::TypedArray>();
  };
  Napi::Int32Array slots = typed(0, napi_int32_array, "slots").As<Napi::Int32Array>();
  uint32_t count = U32(info, 1, "count", static_cast<uint32_t>(slots.ElementLength()));
  Napi::Float64Array pages = typed(2, napi_float64_array, "pages").As<Napi::Float64Array>();
  Napi::Uint32Array sums = typed(3, napi_uint32_array, "sums").As<Napi::Uint32Array>();
  Napi::Uint8Array known = typed(4, napi_uint8_array, "known").As<Napi::Uint8Array>();
  Lock lock(index_.mu());
  uint64_t total = 0;
  for (uint32_t b = 0; b < count; b++) {
    if (!index_.IsLive(slots[b]))
      throw CodedError(env, code::kInvalidArgument, "slots[" + std::to_string(b) + "]: not a live slot");
    total += index_.Shards(slots[b]);
  }
  if (pages.ElementLength() < total || sums.ElementLength() < 2 * total || known.ElementLength() < total)
    throw CodedError(env, code::kInvalidArgument, "pages, sums, known: room for " + std::to_string(total) + " pages needed");
  uint64_t k = 0;
  for (uint32_t b = 0; b < count; b++) {
    for (uint32_t s = 0; s < index_.Shards(slots[b]); s++, k++) {
      uint64_t page = index_.Page(slots[b], s);
      pages[k] = page == BlockIndex::kNoPage ? NAN : static_cast<double>(page);
      bool have = index_.HasChecksum(slots[b], s);
      uint64_t sum = have ? index_.Checksum(slots[b], s) : 0;
      sums[2 * k] = static_cast<uint32_t>(sum);
      sums[2 * k + 1] = static_cast<uint32_t>(sum >> 32);
      known[k] = have ? 1 : 0;
    }
  }
  return Num(env, static_cast<double>(total));
}

Napi::Value BlockIndexJs::IsSealed(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Napi::Boolean::New(info.Env(), index_.IsSealed(Slot(info, 0)));
}

// prefix(ns, packed, hashLen, count, out?: Int32Array) -> hits; the hits' slots go to out (when given)
Napi::Value BlockIndexJs::Prefix(const Napi::CallbackInfo& info) {
  size_t n;
  const uint8_t* packed = Bytes(info, 1, &n);
  uint32_t ns = U32(info, 0, "ns", UINT32_MAX);
  uint32_t hash_len = U32(info, 2, "hashLen", KeyTable::kMaxKeyBytes);
  uint32_t count = U32(info, 3, "count", UINT32_MAX);
  if (hash_len == 0 || uint64_t{hash_len} * count > n) {
    throw CodedError(info.Env(), code::kInvalidArgument, "count: more hashes than packed holds");
  }
  std::vector<int32_t> scratch;
  int32_t* out = nullptr;
  if (info.Length() > 4 && info[4].IsTypedArray() &&
      info[4].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array &&
      info[4].As<Napi::Int32Array>().ElementLength() >= count) {
    out = info[4].As<Napi::Int32Array>().Data();
  } else if (info.Length() > 4 && !info[4].IsUndefined()) {
    throw CodedError(info.Env(), code::kInvalidArgument, "out: expected an Int32Array of at least count elements");
  } else {
    scratch.resize(count);
    out = scratch.data();
  }
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Prefix(ns, packed, hash_len, count, out));
}

// slotForShard(ns, buf, off, len, shards, shard, pageBytes, cls) -> slot or -1
Napi::Value BlockIndexJs::SlotForShard(const Napi::CallbackInfo& info) {
  size_t n;
  const uint8_t* buf = Bytes(info, 1, &n);
  uint32_t off = U32(info, 2, "off", UINT32_MAX), len = U32(info, 3, "len", KeyTable::kMaxKeyBytes);
  if (len == 0 || uint64_t{off} + len > n) throw CodedError(info.Env(), code::kInvalidArgument, "off, len: outside buf");
  uint32_t shards = U32(info, 4, "shards", BlockIndex::kMaxShards);
  if (shards == 0) throw CodedError(info.Env(), code::kInvalidArgument, "shards: expected 1..64");
  uint32_t shard = U32(info, 5, "shard", shards - 1);
  uint64_t page_bytes = ToIndex(info.Env(), info[6], "pageBytes");
  uint32_t cls = info.Length() > 7 && !info[7].IsUndefined() ? U32(info, 7, "cls", 1) : 0;
  Lock lock(index_.mu());
  int32_t existing = index_.Lookup(U32(info, 0, "ns", UINT32_MAX), buf + off, len);
  if (existing != BlockIndex::kNil && !index_.IsSealed(existing) && index_.Shards(existing) != shards) {
    throw CodedError(info.Env(), code::kInvalidArgument, "shards: differs from the block's");
  }
  return Num(info.Env(), index_.SlotForShard(U32(info, 0, "ns", UINT32_MAX), buf + off, len, shards, shard,
                                              page_bytes, static_cast<BlockIndex::Class>(cls)));
}

Napi::Value BlockIndexJs::Assign(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  index_.Assign(slot, Shard(info, 1, slot), ToIndex(info.Env(), info[2], "page"));
  return info.Env().Undefined();
}

Napi::Value BlockIndexJs::Unassign(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  uint32_t shard = Shard(info, 1, slot);
  if (index_.Page(slot, shard) == BlockIndex::kNoPage) {
    throw CodedError(info.Env(), code::kInvalidArgument, "shard: no page assigned");
  }
  return Num(info.Env(), static_cast<double>(index_.Unassign(slot, shard)));
}

Napi::Value BlockIndexJs::MarkShardWritten(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  return Napi::Boolean::New(info.Env(), index_.MarkShardWritten(slot, Shard(info, 1, slot)));
}

// page(slot, shard) -> pool offset, NaN when none is assigned
Napi::Value BlockIndexJs::Page(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  uint64_t page = index_.Page(slot, Shard(info, 1, slot));
  return Num(info.Env(), page == BlockIndex::kNoPage ? NAN : static_cast<double>(page));
}

Napi::Value BlockIndexJs::HasChecksum(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  return Napi::Boolean::New(info.Env(), index_.HasChecksum(slot, Shard(info, 1, slot)));
}

// setChecksum(slot, shard, lo, hi)
Napi::Value BlockIndexJs::SetChecksum(const Napi::CallbackInfo& info) {
  uint64_t lo = U32(info, 2, "lo", UINT32_MAX), hi = U32(info, 3, "hi", UINT32_MAX);
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  index_.SetChecksum(slot, Shard(info, 1, slot), lo | hi << 32);
  return info.Env().Undefined();
}

// checksumsInto(slot, out: Uint32Array, at) -> the next index; every shard's checksum must be known
Napi::Value BlockIndexJs::ChecksumsInto(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  uint32_t shards = index_.Shards(slot);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw CodedError(info.Env(), code::kInvalidArgument, "out: expected a Uint32Array");
  }
  Napi::Uint32Array out = info[1].As<Napi::Uint32Array>();
  uint32_t at = U32(info, 2, "at", UINT32_MAX);
  if (uint64_t{at} + 2 * shards > out.ElementLength()) {
    throw CodedError(info.Env(), code::kInvalidArgument, "at: no room for the slot's checksums in out");
  }
  for (uint32_t s = 0; s < shards; s++) {
    if (!index_.HasChecksum(slot, s)) {
      throw CodedError(info.Env(), code::kInvalidArgument, "slot: shard " + std::to_string(s) + " is not summed");
    }
    uint64_t sum = index_.Checksum(slot, s);
    out[at + 2 * s] = static_cast<uint32_t>(sum);
    out[at + 2 * s + 1] = static_cast<uint32_t>(sum >> 32);
  }
  return Num(info.Env(), at + 2 * shards);
}

Napi::Value BlockIndexJs::Shards(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Shards(Slot(info, 0)));
}

// hash(slot) -> a copy of the slot's hash bytes
Napi::Value BlockIndexJs::Hash(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), index_.Key(slot), index_.KeyLength(slot));
}

Napi::Value BlockIndexJs::Ns(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Ns(Slot(info, 0)));
}

Napi::Value BlockIndexJs::Pins(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Pins(Slot(info, 0)));
}

Napi::Value BlockIndexJs::Pin(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  index_.Pin(Slot(info, 0));
  return info.Env().Undefined();
}

void BlockIndexJs::Unpin(Napi::Env env, int32_t slot) {
  if (!index_.Unpin(slot)) {
    throw CodedError(env, code::kInternal, "block index: unpin of unpinned slot " + std::to_string(slot));
  }
}

Napi::Value BlockIndexJs::Unpin(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  Unpin(info.Env(), Slot(info, 0));
  return info.Env().Undefined();
}

// pinMany(slots: Int32Array, count) / unpinMany(slots, count, cold?): every slot is checked before any changes;
// `cold` unpins to the end eviction takes first, in order (the last slot is taken first)
Napi::Value BlockIndexJs::PinMany(const Napi::CallbackInfo& info) { return PinAll(info, true); }
Napi::Value BlockIndexJs::UnpinMany(const Napi::CallbackInfo& info) { return PinAll(info, false); }

Napi::Value BlockIndexJs::PinAll(const Napi::CallbackInfo& info, bool pin) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw CodedError(info.Env(), code::kInvalidArgument, "slots: expected an Int32Array");
  }
  Napi::Int32Array slots = info[0].As<Napi::Int32Array>();
  uint32_t count = U32(info, 1, "count", static_cast<uint32_t>(slots.ElementLength()));
  Lock lock(index_.mu());
  for (uint32_t i = 0; i < count; i++) {
    if (!index_.IsLive(slots[i])) {
      throw CodedError(info.Env(), code::kInvalidArgument, "slots[" + std::to_string(i) + "]: not a live slot");
    }
    if (!pin && index_.Pins(slots[i]) <= 0) {
      throw CodedError(info.Env(), code::kInternal,
                       "block index: unpin of unpinned slot " + std::to_string(slots[i]) + " (slots[" +
                           std::to_string(i) + "])");
    }
  }
  bool cold = !pin && info.Length() > 2 && info[2].ToBoolean();
  for (uint32_t i = 0; i < count; i++) {
    if (pin) {
      index_.Pin(slots[i]);
    } else {
      index_.Unpin(slots[i], cold);
    }
  }
  return info.Env().Undefined();
}

Napi::Value BlockIndexJs::Victim(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Num(info.Env(), index_.Victim());
}

// coldest(max) -> Int32Array: up to `max` unpinned slots, in the order eviction would take them.
Napi::Value BlockIndexJs::Coldest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t max = ToIndex(env, info[0], "max");
  if (max > (1u << 24)) throw CodedError(env, code::kInvalidArgument, "max: expected at most 16777216");
  std::vector<int32_t> out(max);
  uint32_t n;
  {
    Lock lock(index_.mu());
    n = index_.Coldest(static_cast<uint32_t>(max), out.data());
  }
  auto arr = Napi::Int32Array::New(env, n);
  for (uint32_t i = 0; i < n; i++) arr[i] = out[i];
  return arr;
}

// coldestNotIn(keys: KeyIds, nsTags: Int32Array, maxScan, windowBytes, maxBytes, out: Int32Array) -> candidates:
// walks the unpinned slots in the order eviction takes them, at most maxScan of them and only while the bytes walked
// are under windowBytes, and puts into out the sealed ones whose (nsTags[ns], hash) is not a key of `keys` (a
// namespace past nsTags or tagged -1 has none there), until their bytes reach maxBytes or out is full. The SSD
// writer's scan for the blocks DRAM evicts next that the SSD lacks, in one call.
Napi::Value BlockIndexJs::ColdestNotIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KeyTable* keys = UnwrapKeyIds(info[0]);
  if (!keys) throw CodedError(env, code::kInvalidArgument, "keys: expected a KeyIds");
  auto ints = [&](size_t i, const char* name) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw CodedError(env, code::kInvalidArgument, std::string(name) + ": expected an Int32Array");
    return info[i].As<Napi::Int32Array>();
  };
  Napi::Int32Array tags = ints(1, "nsTags");
  uint64_t max_scan = ToIndex(env, info[2], "maxScan");
  uint64_t window = ToIndex(env, info[3], "windowBytes");
  uint64_t max_bytes = ToIndex(env, info[4], "maxBytes");
  Napi::Int32Array out = ints(5, "out");
  Lock lock(index_.mu());
  std::vector<int32_t> cold(static_cast<size_t>(std::min<uint64_t>(max_scan, index_.IdBound())));
  uint32_t scanned = index_.Coldest(static_cast<uint32_t>(cold.size()), cold.data());
  size_t n = 0;
  uint64_t seen = 0, bytes = 0;
  for (uint32_t i = 0; i < scanned && seen < window && bytes < max_bytes && n < out.ElementLength(); i++) {
    int32_t slot = cold[i];
    uint64_t size = index_.PageBytes(slot) * index_.Shards(slot);
    seen += size;
    if (!index_.IsSealed(slot)) continue;
    uint32_t ns = index_.Ns(slot);
    int32_t tag = ns < tags.ElementLength() ? tags[ns] : -1;
    if (tag >= 0 && keys->Find(static_cast<uint32_t>(tag), index_.Key(slot), index_.KeyLength(slot)) >= 0) continue;
    out[n++] = slot;
    bytes += size;
  }
  return Num(env, static_cast<double>(n));
}

// evict(slot) -> { ns, hash, sealed, pages, pageBytes }
Napi::Value BlockIndexJs::Evict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  if (index_.Pins(slot) != 0) throw CodedError(env, code::kInternal, "block index: evict of pinned slot");
  Napi::Object o = Napi::Object::New(env);
  o.Set("ns", Num(env, index_.Ns(slot)));
  o.Set("hash", Napi::Buffer<uint8_t>::Copy(env, index_.Key(slot), index_.KeyLength(slot)));
  o.Set("sealed", Napi::Boolean::New(env, index_.IsSealed(slot)));
  o.Set("pageBytes", Num(env, static_cast<double>(index_.PageBytes(slot))));
  uint64_t pages[BlockIndex::kMaxShards];
  uint32_t n = index_.Evict(slot, pages);
  Napi::Array arr = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; i++) arr.Set(i, Num(env, static_cast<double>(pages[i])));
  o.Set("pages", arr);
  return o;
}

// evictInto(slot, pagesOut?: Float64Array) -> count of the slot's pages (written to pagesOut when given)
Napi::Value BlockIndexJs::EvictInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lock lock(index_.mu());
  int32_t slot = Slot(info, 0);
  if (index_.Pins(slot) != 0) throw CodedError(env, code::kInternal, "block index: evict of pinned slot");
  bool out = info.Length() > 1 && !info[1].IsUndefined();
  if (out && (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
              info[1].As<Napi::Float64Array>().ElementLength() < index_.Shards(slot))) {
    throw CodedError(env, code::kInvalidArgument, "pagesOut: expected a Float64Array with room for every shard");
  }
  uint64_t pages[BlockIndex::kMaxShards];
  uint32_t n = index_.Evict(slot, pages);
  if (out) {
    Napi::Float64Array a = info[1].As<Napi::Float64Array>();
    for (uint32_t i = 0; i < n; i++) a[i] = static_cast<double>(pages[i]);
  }
  return Num(env, n);
}

Napi::Value BlockIndexJs::PageBytes(const Napi::CallbackInfo& info) {
  Lock lock(index_.mu());
  return Num(info.Env(), static_cast<double>(index_.PageBytes(Slot(info, 0))));
}

// sealedHashes() -> [{ ns, hashes: { packed, hashLen } }]: every sealed block, packed per namespace and hash length
Napi::Value BlockIndexJs::SealedHashes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::map<uint64_t, std::string> groups;  // (ns << 8 | hash length) -> packed hashes
  {
    Lock lock(index_.mu());
    for (uint32_t slot = 0; slot < index_.IdBound(); slot++) {
      int32_t s = static_cast<int32_t>(slot);
      if (!index_.IsLive(s) || !index_.IsSealed(s)) continue;
      uint32_t len = index_.KeyLength(s);
      groups[uint64_t{index_.Ns(s)} << 8 | len].append(reinterpret_cast<const char*>(index_.Key(s)), len);
    }
  }
  Napi::Array out = Napi::Array::New(env, groups.size());
  uint32_t i = 0;
  for (const auto& [key, packed] : groups) {
    Napi::Object hashes = Napi::Object::New(env);
    hashes.Set("packed", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(packed.data()),
                                                     packed.size()));
    hashes.Set("hashLen", Num(env, static_cast<double>(key & 0xff)));
    Napi::Object g = Napi::Object::New(env);
    g.Set("ns", Num(env, static_cast<double>(key >> 8)));
    g.Set("hashes", hashes);
    out.Set(i++, g);
  }
  return out;
}

// The first `count` slots of an Int32Array argument, each live and of the same shard count; INVALID_ARGUMENT else.
Napi::Int32Array BlockIndexJs::Slots(const Napi::CallbackInfo& info, size_t i, uint32_t* count) const {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw CodedError(info.Env(), code::kInvalidArgument, "slots: expected an Int32Array");
  }
  Napi::Int32Array slots = info[i].As<Napi::Int32Array>();
  *count = U32(info, i + 1, "count", static_cast<uint32_t>(slots.ElementLength()));
  for (uint32_t b = 0; b < *count; b++) {
    if (!index_.IsLive(slots[b]) || index_.Shards(slots[b]) != index_.Shards(slots[0])) {
      throw CodedError(info.Env(), code::kInvalidArgument,
                       "slots[" + std::to_string(b) + "]: not a live slot with the shards of slots[0]");
    }
  }
  return slots;
}

// grantPages(slots, count) -> { pageOffsets, checksums, unsummed, ranges }: what a grant of those blocks (one
// namespace) hands out, in one call: every shard's page (block-major), the (lo, hi) checksum of each (0 where not
// known yet), the indexes of the pages with no checksum yet, and (offset, length) ranges covering every page, pages
// adjacent in the pool in one range.
Napi::Value BlockIndexJs::GrantPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lock lock(index_.mu());
  uint32_t count;
  Napi::Int32Array slots = Slots(info, 0, &count);
  uint32_t shards = count > 0 ? index_.Shards(slots[0]) : 0;
  uint32_t pages = count * shards;
  auto offsets = Napi::Float64Array::New(env, pages);
  auto sums = Napi::Uint32Array::New(env, 2 * size_t{pages});
  std::vector<int32_t> unsummed;
  std::vector<double> ranges;
  for (uint32_t b = 0; b < count; b++) {
    int32_t slot = slots[b];
    uint64_t pb = index_.PageBytes(slot);
    for (uint32_t sh = 0; sh < shards; sh++) {
      uint32_t p = b * shards + sh;
      uint64_t page = index_.Page(slot, sh);
      offsets[p] = static_cast<double>(page);
      if (index_.HasChecksum(slot, sh)) {
        uint64_t sum = index_.Checksum(slot, sh);
        sums[2 * p] = static_cast<uint32_t>(sum);
        sums[2 * p + 1] = static_cast<uint32_t>(sum >> 32);
      } else {
        sums[2 * p] = sums[2 * p + 1] = 0;
        unsummed.push_back(static_cast<int32_t>(p));
      }
      if (!ranges.empty() && ranges[ranges.size() - 2] + ranges.back() == static_cast<double>(page)) {
        ranges.back() += static_cast<double>(pb);
      } else {
        ranges.push_back(static_cast<double>(page));
        ranges.push_back(static_cast<double>(pb));
      }
    }
  }
  auto un = Napi::Int32Array::New(env, unsummed.size());
  for (size_t k = 0; k < unsummed.size(); k++) un[k] = unsummed[k];
  auto rg = Napi::Float64Array::New(env, ranges.size());
  for (size_t k = 0; k < ranges.size(); k++) rg[k] = ranges[k];
  Napi::Object o = Napi::Object::New(env);
  o.Set("pageOffsets", offsets);
  o.Set("checksums", sums);
  o.Set("unsummed", un);
  o.Set("ranges", rg);
  return o;
}

// setChecksums(slots, count, pages: Int32Array, sums: Uint32Array, out: Uint32Array): records sums[2k], sums[2k+1]
// as the checksum of page pages[k] of the blocks (block-major, as grantPages numbers them) and writes it to out too.
Napi::Value BlockIndexJs::SetChecksums(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lock lock(index_.mu());
  uint32_t count;
  Napi::Int32Array slots = Slots(info, 0, &count);
  uint32_t shards = count > 0 ? index_.Shards(slots[0]) : 0;
  auto bad = [&](const char* what) { return CodedError(env, code::kInvalidArgument, what); };
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw bad("pages: expected an Int32Array");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw bad("sums, out: expected Uint32Arrays");
  Napi::Int32Array pages = info[2].As<Napi::Int32Array>();
  Napi::Uint32Array sums = info[3].As<Napi::Uint32Array>(), out = info[4].As<Napi::Uint32Array>();
  if (sums.ElementLength() != 2 * pages.ElementLength() || out.ElementLength() != 2 * size_t{count} * shards)
    throw bad("sums, out: expected 2 elements a page");
  for (size_t k = 0; k < pages.ElementLength(); k++) {
    if (pages[k] < 0 || static_cast<uint32_t>(pages[k]) >= count * shards) throw bad("pages: outside the blocks");
  }
  for (size_t k = 0; k < pages.ElementLength(); k++) {
    uint32_t p = static_cast<uint32_t>(pages[k]);
    index_.SetChecksum(slots[p / shards], p % shards, uint64_t{sums[2 * k]} | uint64_t{sums[2 * k + 1]} << 32);
    out[2 * p] = sums[2 * k];
    out[2 * p + 1] = sums[2 * k + 1];
  }
  return env.Undefined();
}

void BlockIndexJs::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "BlockIndex",
      {
          InstanceMethod<&BlockIndexJs::Stats>("stats"),
          InstanceMethod<&BlockIndexJs::Lookup>("lookup"),
          InstanceMethod<&BlockIndexJs::IsSealed>("isSealed"),
          InstanceMethod<&BlockIndexJs::Prefix>("prefix"),
          InstanceMethod<&BlockIndexJs::SlotForShard>("slotForShard"),
          InstanceMethod<&BlockIndexJs::Assign>("assign"),
          InstanceMethod<&BlockIndexJs::Unassign>("unassign"),
          InstanceMethod<&BlockIndexJs::MarkShardWritten>("markShardWritten"),
          InstanceMethod<&BlockIndexJs::Page>("page"),
          InstanceMethod<&BlockIndexJs::HasChecksum>("hasChecksum"),
          InstanceMethod<&BlockIndexJs::SetChecksum>("setChecksum"),
          InstanceMethod<&BlockIndexJs::ChecksumsInto>("checksumsInto"),
          InstanceMethod<&BlockIndexJs::Shards>("shards"),
          InstanceMethod<&BlockIndexJs::Hash>("hash"),
          InstanceMethod<&BlockIndexJs::Ns>("ns"),
          InstanceMethod<&BlockIndexJs::Pins>("pins"),
          InstanceMethod<&BlockIndexJs::Pin>("pin"),
          InstanceMethod<static_cast<Napi::Value (BlockIndexJs::*)(const Napi::CallbackInfo&)>(&BlockIndexJs::Unpin)>(
              "unpin"),
          InstanceMethod<&BlockIndexJs::PinMany>("pinMany"),
          InstanceMethod<&BlockIndexJs::UnpinMany>("unpinMany"),
          InstanceMethod<&BlockIndexJs::Victim>("victim"),
          InstanceMethod<&BlockIndexJs::Coldest>("coldest"),
          InstanceMethod<&BlockIndexJs::Evict>("evict"),
          InstanceMethod<&BlockIndexJs::EvictInto>("evictInto"),
          InstanceMethod<&BlockIndexJs::PageBytes>("pageBytes"),
          InstanceMethod<&BlockIndexJs::SealedHashes>("sealedHashes"),
          InstanceMethod<&BlockIndexJs::GrantPages>("grantPages"),
          InstanceMethod<&BlockIndexJs::SetChecksums>("setChecksums"),
          InstanceMethod<&BlockIndexJs::SealedSlots>("sealedSlots"),
          InstanceMethod<&BlockIndexJs::PagesOf>("pagesOf"),
          InstanceMethod<&BlockIndexJs::ColdestNotIn>("coldestNotIn"),
      });
  exports.Set("BlockIndex", ctor);
}

}  // namespace

BlockIndex* UnwrapBlockIndex(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kBlockIndexTag)) return nullptr;
  return &Napi::ObjectWrap<BlockIndexJs>::Unwrap(value.As<Napi::Object>())->index_;
}

void InitBlockIndex(Napi::Env env, Napi::Object exports) { BlockIndexJs::Init(env, exports); }

}  // namespace kvf
