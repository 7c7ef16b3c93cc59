// LeaseTable for JavaScript: an ObjectWrap over kvf::LeaseTable (lease_table.h) on a BlockIndex of this addon,
// whose JS object it keeps referenced. The clock is the caller's (nowMs on every call that needs it), so tests
// drive time. A refused call throws an Error whose `code` is the lease error's (LEASE_UNKNOWN, LEASE_EXPIRED,
// LEASE_CONSUMED, LEASE_FOREIGN, INVALID_ARGUMENT). close() ends every lease; the table itself (and the index
// reference) lives until the object is finalized, so native users holding the object never see it freed.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "block_index_js.h"
#include "lease_table.h"
#include "lease_table_js.h"
#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {

constexpr uint32_t kMaxRanks = 65536;  // TP ranks of one engine (native/lib/lease-table.ts: MAX_LEASE_RANKS)
constexpr napi_type_tag kLeaseTableTag = {0x6b76666162726963ULL, 0x6c65617365000001ULL};

const char* StatusCode(LeaseTable::Status status) {
  switch (status) {
    case LeaseTable::Status::kUnknown: return "LEASE_UNKNOWN";
    case LeaseTable::Status::kExpired: return "LEASE_EXPIRED";
    case LeaseTable::Status::kConsumed: return "LEASE_CONSUMED";
    case LeaseTable::Status::kForeign: return "LEASE_FOREIGN";
    case LeaseTable::Status::kInvalid: return code::kInvalidArgument;
    case LeaseTable::Status::kOk: break;
  }
  return code::kInternal;
}

class LeaseTableJs : public Napi::ObjectWrap<LeaseTableJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit LeaseTableJs(const Napi::CallbackInfo& info);
  LeaseTable* table() { return closed_ ? nullptr : table_.get(); }

 private:
  Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value CreateForPrefix(const Napi::CallbackInfo& info);
  Napi::Value Consume(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Sweep(const Napi::CallbackInfo& info);
  Napi::Value DropOwner(const Napi::CallbackInfo& info);
  Napi::Value Clear(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  LeaseTable& Open(const Napi::Env& env);
  static uint32_t U32(const Napi::Env& env, const Napi::Value& v, const char* field);
  static std::string Id(const Napi::Env& env, const Napi::Value& v);

  Napi::ObjectReference index_obj_;  // declared before table_: the table goes first
  std::unique_ptr<LeaseTable> table_;
  bool closed_ = false;
};

uint32_t LeaseTableJs::U32(const Napi::Env& env, const Napi::Value& v, const char* field) {
  uint64_t n = ToIndex(env, v, field);
  if (n > UINT32_MAX) throw CodedError(env, code::kInvalidArgument, std::string(field) + ": expected below 2^32");
  return static_cast<uint32_t>(n);
}

std::string LeaseTableJs::Id(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsString()) throw CodedError(env, code::kInvalidArgument, "lease_id: expected a string");
  return v.As<Napi::String>().Utf8Value();
}

// new LeaseTable(index: BlockIndex, ttlMs)
LeaseTableJs::LeaseTableJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LeaseTableJs>(info) {
  Napi::Env env = info.Env();
  BlockIndex* index = UnwrapBlockIndex(info[0]);
  if (index == nullptr) throw CodedError(env, code::kInvalidArgument, "index: expected a BlockIndex of this addon");
  uint64_t ttl_ms = ToIndex(env, info[1], "ttlMs");
  index_obj_ = Napi::Persistent(info[0].As<Napi::Object>());
  table_ = std::make_unique<LeaseTable>(*index, ttl_ms);
  info.This().As<Napi::Object>().TypeTag(&kLeaseTableTag);
}

LeaseTable& LeaseTableJs::Open(const Napi::Env& env) {
  if (closed_) throw CodedError(env, code::kInternal, "lease table: closed");
  return *table_;
}

// create(owner, ns, slots: Int32Array, ranks, nowMs) -> { id, expiresAtMs }; pins every slot of `slots`
Napi::Value LeaseTableJs::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  uint32_t owner = U32(env, info[0], "owner"), ns = U32(env, info[1], "ns");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw CodedError(env, code::kInvalidArgument, "slots: expected an Int32Array");
  }
  Napi::Int32Array slots = info[2].As<Napi::Int32Array>();
  uint32_t ranks = U32(env, info[3], "ranks");
  if (ranks == 0 || ranks > kMaxRanks) throw CodedError(env, code::kInvalidArgument, "ranks: expected 1..65536");
  uint64_t now_ms = ToIndex(env, info[4], "nowMs"), expires_at_ms = 0;
  std::string id = table.Create(owner, ns, slots.Data(), static_cast<uint32_t>(slots.ElementLength()), ranks, now_ms,
                                &expires_at_ms);
  if (id.empty()) throw CodedError(env, code::kInvalidArgument, "slots: expected live slots of the index");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::String::New(env, id));
  o.Set("expiresAtMs", Napi::Number::New(env, static_cast<double>(expires_at_ms)));
  return o;
}

// createForPrefix(owner, ns, packed: Uint8Array, hashLen, count, ranks, nowMs) -> { id, expiresAtMs, hits }: the
// prefix hit of `count` hashes looked up and pinned at once; id '' (no lease) when nothing hits
Napi::Value LeaseTableJs::CreateForPrefix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  uint32_t owner = U32(env, info[0], "owner"), ns = U32(env, info[1], "ns");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw CodedError(env, code::kInvalidArgument, "packed: expected a Buffer or Uint8Array");
  }
  Napi::Uint8Array packed = info[2].As<Napi::Uint8Array>();
  uint32_t hash_len = U32(env, info[3], "hashLen"), count = U32(env, info[4], "count");
  if (hash_len == 0 || hash_len > KeyTable::kMaxKeyBytes) {
    throw CodedError(env, code::kInvalidArgument, "hashLen: expected 1.." + std::to_string(KeyTable::kMaxKeyBytes));
  }
  if (uint64_t{hash_len} * count > packed.ByteLength()) {
    throw CodedError(env, code::kInvalidArgument, "count: more hashes than packed holds");
  }
  uint32_t ranks = U32(env, info[5], "ranks");
  if (ranks == 0 || ranks > kMaxRanks) throw CodedError(env, code::kInvalidArgument, "ranks: expected 1..65536");
  uint64_t now_ms = ToIndex(env, info[6], "nowMs"), expires_at_ms = 0;
  uint32_t hits = 0;
  std::string id = table.CreateForPrefix(owner, ns, packed.Data(), hash_len, count, ranks, now_ms, &expires_at_ms,
                                         &hits);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::String::New(env, id));
  o.Set("expiresAtMs", Napi::Number::New(env, static_cast<double>(expires_at_ms)));
  o.Set("hits", Napi::Number::New(env, hits));
  return o;
}

// consume(id, owner, ns, rank, count, nowMs) -> Int32Array: the lease's first `count` slots, pinned once more for
// the load (the caller unpins them after its copy)
Napi::Value LeaseTableJs::Consume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  std::string id = Id(env, info[0]);
  uint32_t owner = U32(env, info[1], "owner"), ns = U32(env, info[2], "ns"), rank = U32(env, info[3], "rank");
  uint32_t count = U32(env, info[4], "count");
  uint64_t now_ms = ToIndex(env, info[5], "nowMs");
  std::vector<int32_t> slots;
  std::string message;
  LeaseTable::Status status = table.Consume(id.data(), static_cast<uint32_t>(id.size()), owner, ns, rank, count,
                                            now_ms, &slots, &message);
  if (status != LeaseTable::Status::kOk) throw CodedError(env, StatusCode(status), message);
  Napi::Int32Array out = Napi::Int32Array::New(env, slots.size());
  for (size_t i = 0; i < slots.size(); i++) out[i] = slots[i];
  return out;
}

// release(id, owner, nowMs)
Napi::Value LeaseTableJs::Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  std::string id = Id(env, info[0]);
  uint32_t owner = U32(env, info[1], "owner");
  uint64_t now_ms = ToIndex(env, info[2], "nowMs");
  std::string message;
  LeaseTable::Status status = table.Release(id.data(), static_cast<uint32_t>(id.size()), owner, now_ms, &message);
  if (status != LeaseTable::Status::kOk) throw CodedError(env, StatusCode(status), message);
  return env.Undefined();
}

// sweep(nowMs) -> how many expired leases ended
Napi::Value LeaseTableJs::Sweep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  return Napi::Number::New(env, table.Sweep(ToIndex(env, info[0], "nowMs")));
}

// dropOwner(owner) -> how many leases ended
Napi::Value LeaseTableJs::DropOwner(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable& table = Open(env);
  return Napi::Number::New(env, table.DropOwner(U32(env, info[0], "owner")));
}

Napi::Value LeaseTableJs::Clear(const Napi::CallbackInfo& info) {
  Open(info.Env()).Clear();
  return info.Env().Undefined();
}

Napi::Value LeaseTableJs::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), closed_ ? 0 : table_->Size());
}

// counters() -> { created, consumed, expired, released } (still readable after close)
Napi::Value LeaseTableJs::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LeaseTable::Counters c = table_->GetCounters();
  Napi::Object o = Napi::Object::New(env);
  o.Set("created", Napi::Number::New(env, static_cast<double>(c.created)));
  o.Set("consumed", Napi::Number::New(env, static_cast<double>(c.consumed)));
  o.Set("expired", Napi::Number::New(env, static_cast<double>(c.expired)));
  o.Set("released", Napi::Number::New(env, static_cast<double>(c.released)));
  return o;
}

// close(): ends every lease; idempotent
Napi::Value LeaseTableJs::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    closed_ = true;
    table_->Clear();
  }
  return info.Env().Undefined();
}

void LeaseTableJs::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "LeaseTable",
                                    {
                                        InstanceMethod<&LeaseTableJs::Create>("create"),
                                        InstanceMethod<&LeaseTableJs::CreateForPrefix>("createForPrefix"),
                                        InstanceMethod<&LeaseTableJs::Consume>("consume"),
                                        InstanceMethod<&LeaseTableJs::Release>("release"),
                                        InstanceMethod<&LeaseTableJs::Sweep>("sweep"),
                                        InstanceMethod<&LeaseTableJs::DropOwner>("dropOwner"),
                                        InstanceMethod<&LeaseTableJs::Clear>("clear"),
                                        InstanceMethod<&LeaseTableJs::Size>("size"),
                                        InstanceMethod<&LeaseTableJs::Counters>("counters"),
                                        InstanceMethod<&LeaseTableJs::Close>("close"),
                                    });
  exports.Set("LeaseTable", ctor);
}

}  // namespace

LeaseTable* UnwrapLeaseTable(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kLeaseTableTag)) return nullptr;
  return Napi::ObjectWrap<LeaseTableJs>::Unwrap(value.As<Napi::Object>())->table();
}

void InitLeaseTable(Napi::Env env, Napi::Object exports) { LeaseTableJs::Init(env, exports); }

}  // namespace kvf
