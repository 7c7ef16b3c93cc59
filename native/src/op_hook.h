// What a native executor (engine_ops_js.cc) does once the copy it planned has ended, whoever ran it (the copy
// engine's threads, a CUDA IPC region's stream): on the JS thread, before the promise settles.
#pragma once
#include <napi.h>

namespace kvf {

// Add to `result` when `copied`; otherwise undo the executor's work, and add what the caller must still learn to the
// error the operation rejects with (`result` is that error object then).
struct OpHook {
  virtual ~OpHook() = default;
  virtual void Done(Napi::Env env, bool copied, Napi::Object result) = 0;
};

}  // namespace kvf
