// KeyIds for JavaScript: an ObjectWrap over kvf::KeyTable (key_table.h), a set of (tag, key) pairs each numbered by
// a small dense id that is reused once removed. JavaScript keeps its own per-id data in arrays indexed by those ids,
// so a content-addressed table of any kind (the SSD catalog) needs no string key and no map entry per block on the
// V8 heap; lookups of a packed run of hashes take one call.
#include <napi.h>

#include <string>

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

class KeyIdsJs : public Napi::ObjectWrap<KeyIdsJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("KeyIds", DefineClass(env, "KeyIds",
                                      {
                                          InstanceMethod<&KeyIdsJs::Find>("find"),
                                          InstanceMethod<&KeyIdsJs::Intern>("intern"),
                                          InstanceMethod<&KeyIdsJs::Remove>("remove"),
                                          InstanceMethod<&KeyIdsJs::Size>("size"),
                                      }));
  }
  explicit KeyIdsJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KeyIdsJs>(info) {}

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
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), table_.size()); }

  KeyTable table_;
};

}  // namespace

void InitKeyIds(Napi::Env env, Napi::Object exports) { KeyIdsJs::Init(env, exports); }

}  // namespace kvf
