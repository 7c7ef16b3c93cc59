// PendingUpdates for JavaScript: an ObjectWrap over kvf::PendingUpdates (pending_updates.h). A batch of hashes is
// a packed buffer, a hash length and a range of positions in it, so a chunk's sealed hashes are noted in one call.
#include <napi.h>

#include <algorithm>
#include <climits>
#include <string>

#include "memory.h"
#include "modules.h"
#include "pending_updates.h"

namespace kvf {

namespace {

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

class PendingUpdatesJs : public Napi::ObjectWrap<PendingUpdatesJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("PendingUpdates", DefineClass(env, "PendingUpdates",
                                              {
                                                  InstanceMethod<&PendingUpdatesJs::Note>("note"),
                                                  InstanceMethod<&PendingUpdatesJs::Take>("take"),
                                                  InstanceMethod<&PendingUpdatesJs::Size>("size"),
                                              }));
  }
  // new PendingUpdates(max)
  explicit PendingUpdatesJs(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<PendingUpdatesJs>(info),
        table_(static_cast<uint32_t>(std::min<uint64_t>(ToIndex(info.Env(), info[0], "max"), UINT32_MAX))) {}

 private:
  // note(ns, packed, hashLen, at, count, update, tier) -> [added, repeated, replaced, netted, dropped]
  Napi::Value Note(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t ns = ToIndex(env, info[0], "ns");
    if (ns > UINT32_MAX) throw Invalid(env, "ns: expected 0..4294967295");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Invalid(env, "packed: expected a Buffer");
    auto packed = info[1].As<Napi::Uint8Array>();
    uint64_t hash_len = ToIndex(env, info[2], "hashLen");
    uint64_t at = ToIndex(env, info[3], "at");
    uint64_t count = ToIndex(env, info[4], "count");
    if (hash_len == 0 || hash_len > KeyTable::kMaxKeyBytes) throw Invalid(env, "hashLen: expected 1..64");
    uint64_t hashes = packed.ByteLength() / hash_len;
    if (at > hashes || count > hashes - at)
      throw Invalid(env, "count: hashes " + std::to_string(at) + ".." + std::to_string(at + count) + " of " +
                             std::to_string(hashes));
    if (!info[5].IsNumber()) throw Invalid(env, "update: expected -1 (remove), 1 (insert) or 2 (move)");
    int32_t update = info[5].As<Napi::Number>().Int32Value();
    if (update != PendingUpdates::kRemove && update != PendingUpdates::kInsert && update != PendingUpdates::kMove)
      throw Invalid(env, "update: expected -1 (remove), 1 (insert) or 2 (move), got " + std::to_string(update));
    uint64_t tier = ToIndex(env, info[6], "tier");
    if (tier > 255) throw Invalid(env, "tier: expected 0..255");
    PendingUpdates::Counts c;
    table_.Note(static_cast<uint32_t>(ns), packed.Data() + at * hash_len, static_cast<uint32_t>(hash_len),
                static_cast<uint32_t>(count), static_cast<int8_t>(update), static_cast<uint8_t>(tier), &c);
    auto out = Napi::Uint32Array::New(env, 5);
    out[0] = c.added;
    out[1] = c.repeated;
    out[2] = c.replaced;
    out[3] = c.netted;
    out[4] = c.dropped;
    return out;
  }
  // take() -> [{ ns, remove, tier, hashLen, packed }]: every pending update, grouped; none left pending
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto groups = table_.Take();
    auto out = Napi::Array::New(env, groups.size());
    for (size_t i = 0; i < groups.size(); i++) {
      auto& g = groups[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("ns", Napi::Number::New(env, g.ns));
      o.Set("remove", Napi::Boolean::New(env, g.remove));
      o.Set("tier", Napi::Number::New(env, g.tier));
      o.Set("hashLen", Napi::Number::New(env, g.hash_len));
      o.Set("packed", Napi::Buffer<uint8_t>::Copy(env, g.packed.data(), g.packed.size()));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), table_.size()); }

  PendingUpdates table_;
};

}  // namespace

void InitPendingUpdates(Napi::Env env, Napi::Object exports) { PendingUpdatesJs::Init(env, exports); }

}  // namespace kvf
