// KeyIds for JavaScript: an ObjectWrap over kvf::KeyTable (key_table.h), a set of (tag, key) pairs each numbered by
// a small dense id that is reused once removed. JavaScript keeps its own per-id data in arrays indexed by those ids,
// so a content-addressed table of any kind (the SSD catalog) needs no string key and no map entry per block on the
// V8 heap; lookups of a packed run of hashes take one call.
#include <napi.h>

#include <cstring>
#include <string>

#include "key_ids_js.h"
#include "key_table.h"
#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

// (packed, hashLen, at, count) at info[i..i+3], and an Int32Array at info[i+4] with room for `count` ids.
struct Run : PackedRun {
  int32_t* out;
};

Run RunArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  PackedRun p = PackedRunArg(info, i, true, KeyTable::kMaxKeyBytes);
  if (!info[i + 4].IsTypedArray() || info[i + 4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Invalid(env, "out: expected an Int32Array");
  auto out = info[i + 4].As<Napi::Int32Array>();
  if (out.ElementLength() < p.count)
    throw Invalid(env, "out: room for " + std::to_string(out.ElementLength()) + " ids, need " + std::to_string(p.count));
  return Run{p, out.Data()};
}

constexpr napi_type_tag kKeyIdsTag = {0x6b76666162726963ULL, 0x6b65796964730001ULL};

class KeyIdsJs : public Napi::ObjectWrap<KeyIdsJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("KeyIds", DefineClass(env, "KeyIds",
                                      {
                                          InstanceMethod<&KeyIdsJs::Find>("find"),
                                          InstanceMethod<&KeyIdsJs::Intern>("intern"),
                                          InstanceMethod<&KeyIdsJs::Remove>("remove"),
                                          InstanceMethod<&KeyIdsJs::CopyKeys>("copyKeys"),
                                          InstanceMethod<&KeyIdsJs::Size>("size"),
                                      }));
  }
  explicit KeyIdsJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KeyIdsJs>(info) {
    info.This().As<Napi::Object>().TypeTag(&kKeyIdsTag);
  }
  const KeyTable& table() const { return table_; }

 private:
  // find(tag, packed, hashLen, at, count, out) -> how many were present; out[k]: the id of hash at + k, or -1
  Napi::Value Find(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t tag = static_cast<uint32_t>(ToIndex(env, info[0], "tag"));
    Run r = RunArg(info, 1);
    uint32_t found = 0;
    for (uint32_t k = 0; k < r.count; k++) {
      r.out[k] = table_.Find(tag, r.data + static_cast<size_t>(k) * r.hash_len, r.hash_len);
      found += r.out[k] >= 0;
    }
    return Napi::Number::New(env, found);
  }
  // intern(tag, packed, hashLen, at, count, out) -> how many were added; out[k]: the id of hash at + k (existing ids
  // are kept; a hash repeated in the run gets one id)
  Napi::Value Intern(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t tag = static_cast<uint32_t>(ToIndex(env, info[0], "tag"));
    Run r = RunArg(info, 1);
    uint32_t added = 0;
    for (uint32_t k = 0; k < r.count; k++) {
      const uint8_t* key = r.data + static_cast<size_t>(k) * r.hash_len;
      int32_t id = table_.Find(tag, key, r.hash_len);
      if (id < 0) {
        id = table_.Add(tag, key, r.hash_len);
        added++;
      }
      r.out[k] = id;
    }
    return Napi::Number::New(env, added);
  }
  // remove(id) -> whether the id was live (its key is gone and the id may be handed out again)
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Invalid(env, "id: expected a number");
    int64_t id = info[0].As<Napi::Number>().Int64Value();
    if (id < 0 || id > INT32_MAX || !table_.IsLive(static_cast<int32_t>(id))) return Napi::Boolean::New(env, false);
    table_.Remove(static_cast<int32_t>(id));
    return Napi::Boolean::New(env, true);
  }
  // copyKeys(ids, count, hashLen, out) -> bytes written: the keys of ids[0, count) back to back in `out` (every id
  // live with a key of hashLen bytes; all are checked before a byte is written)
  Napi::Value CopyKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Invalid(env, "ids: expected an Int32Array");
    auto ids = info[0].As<Napi::Int32Array>();
    uint64_t count = ToIndex(env, info[1], "count");
    if (count > ids.ElementLength())
      throw Invalid(env, "count: " + std::to_string(count) + " past the " + std::to_string(ids.ElementLength()) + " ids");
    uint64_t len = ToIndex(env, info[2], "hashLen");
    if (len < 1 || len > KeyTable::kMaxKeyBytes) throw Invalid(env, "hashLen: expected 1.." + std::to_string(KeyTable::kMaxKeyBytes));
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Invalid(env, "out: expected a Uint8Array");
    auto out = info[3].As<Napi::Uint8Array>();
    if (out.ElementLength() < count * len)
      throw Invalid(env, "out: room for " + std::to_string(out.ElementLength()) + " bytes, need " + std::to_string(count * len));
    const int32_t* id = ids.Data();
    for (uint64_t k = 0; k < count; k++)
      if (!table_.IsLive(id[k]) || table_.KeyLength(id[k]) != len)
        throw Invalid(env, "ids: ids[" + std::to_string(k) + "] = " + std::to_string(id[k]) + " is not a live id with a key of " +
                               std::to_string(len) + " bytes");
    uint8_t* dst = out.Data();
    for (uint64_t k = 0; k < count; k++) std::memcpy(dst + k * len, table_.Key(id[k]), len);
    return Napi::Number::New(env, static_cast<double>(count * len));
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), table_.size()); }

  KeyTable table_;
};

}  // namespace

const KeyTable* UnwrapKeyIds(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kKeyIdsTag)) return nullptr;
  return &Napi::ObjectWrap<KeyIdsJs>::Unwrap(value.As<Napi::Object>())->table();
}

void InitKeyIds(Napi::Env env, Napi::Object exports) { KeyIdsJs::Init(env, exports); }

}  // namespace kvf
