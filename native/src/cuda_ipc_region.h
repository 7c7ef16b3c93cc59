// What native executors (engine_ops_js.cc) use of a CUDA IPC region (cuda_ipc_region.cc): its size, and a batch of
// planned copies between host memory (the pool) and the region, run on the region's own thread and CUDA stream.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "copy_range.h"
#include "memory.h"
#include "op_hook.h"

namespace kvf {

class CudaIpcRegionBase {
 public:
  virtual ~CudaIpcRegionBase() = default;
  // The region's bytes: its parts back to back.
  virtual uint64_t size() const = 0;
  // JS thread. Copies `descs` (checked by the caller against the region's size and the host memory's): to_host,
  // from region offsets (src) to host offsets (dst); else from host (src) to region (dst). All of a batch's copies
  // are queued on the stream, then one wait; `hook` runs on the JS thread before the promise ({ bytes }) settles.
  // Throws REGION_INVALID once closed.
  virtual Napi::Promise Submit(Napi::Env env, MemoryRef host, std::vector<CopyRange> descs, bool to_host,
                               std::unique_ptr<OpHook> hook) = 0;
};

// The region behind a JS CudaIpcRegion object, or nullptr for anything else. JS thread only; keep the object alive.
CudaIpcRegionBase* UnwrapCudaIpcRegion(Napi::Value value);

}  // namespace kvf
