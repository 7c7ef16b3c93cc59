// FlightTable for JavaScript: an ObjectWrap over kvf::FlightTable (flight_table.h). Hashes are given as a packed
// buffer, a hash length and a range of positions in it, so a fetch claims or ends a run in one call.
#include <napi.h>

#include <string>
#include <vector>

#include "block_index_js.h"
#include "flight_table.h"
#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {

Napi::Error Invalid(Napi::Env env, const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); }

using Run = PackedRun;

Run RunArg(const Napi::CallbackInfo& info, size_t i, bool with_count) {
  return PackedRunArg(info, i, with_count, KeyTable::kMaxKeyBytes);
}

class FlightTableJs : public Napi::ObjectWrap<FlightTableJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("FlightTable", DefineClass(env, "FlightTable",
                                           {
                                               InstanceMethod<&FlightTableJs::ClaimRun>("claimRun"),
                                               InstanceMethod<&FlightTableJs::Wait>("wait"),
                                               InstanceMethod<&FlightTableJs::EndRun>("endRun"),
                                               InstanceMethod<&FlightTableJs::Size>("size"),
                                           }));
  }
  explicit FlightTableJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FlightTableJs>(info) {}

 private:
  // claimRun(index, ns, packed, hashLen, at, count) -> claimed
  Napi::Value ClaimRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    BlockIndex* index = UnwrapBlockIndex(info[0]);
    if (!index) throw Invalid(env, "index: expected a BlockIndex");
    uint32_t ns = static_cast<uint32_t>(ToIndex(env, info[1], "ns"));
    Run r = RunArg(info, 2, true);
    return Napi::Number::New(env, table_.ClaimRun(*index, ns, r.data, r.hash_len, r.count));
  }
  // wait(ns, packed, hashLen, at) -> whether hash `at` is claimed (its end will be reported)
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t ns = static_cast<uint32_t>(ToIndex(env, info[0], "ns"));
    Run r = RunArg(info, 1, false);
    return Napi::Boolean::New(env, table_.Wait(ns, r.data, r.hash_len));
  }
  // endRun(ns, packed, hashLen, at, count) -> Uint32Array: the positions (in packed) of ended claims waited on
  Napi::Value EndRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t ns = static_cast<uint32_t>(ToIndex(env, info[0], "ns"));
    Run r = RunArg(info, 1, true);
    uint32_t at = static_cast<uint32_t>(ToIndex(env, info[3], "at"));
    std::vector<uint32_t> waited;
    table_.EndRun(ns, r.data, r.hash_len, r.count, &waited);
    auto out = Napi::Uint32Array::New(env, waited.size());
    for (size_t i = 0; i < waited.size(); i++) out[i] = at + waited[i];
    return out;
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), table_.size()); }

  FlightTable table_;
};

}  // namespace

void InitFlightTable(Napi::Env env, Napi::Object exports) { FlightTableJs::Init(env, exports); }

}  // namespace kvf
