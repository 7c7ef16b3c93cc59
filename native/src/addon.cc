#include "modules.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  kvf::InitPool(env, exports);
  kvf::InitRegion(env, exports);
  kvf::InitRegionHandover(env, exports);
  kvf::InitCopy(env, exports);
  kvf::InitChecksum(env, exports);
  kvf::InitBlockIndex(env, exports);
  kvf::InitLeaseTable(env, exports);
  kvf::InitEngineOps(env, exports);
  kvf::InitPullOps(env, exports);
  kvf::InitFlightTable(env, exports);
  kvf::InitKeyIds(env, exports);
  kvf::InitPendingUpdates(env, exports);
  kvf::InitEngineRing(env, exports);
  kvf::InitTcp(env, exports);
  kvf::InitVerbs(env, exports);
  kvf::InitCudaIpc(env, exports);
  kvf::InitSsd(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(kvfabric_native, Init)
