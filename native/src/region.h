// Engine regions: an inference engine's KV memory (POSIX shm or a file such as /dev/shm/x or /proc/<pid>/fd/<n>
// for a memfd), mapped MAP_SHARED read/write into the node. A CUDA IPC region type slots in behind MemoryTarget.
#pragma once
#include <napi.h>

#include <string>

#include "memory.h"

namespace kvf {

class Region : public Napi::ObjectWrap<Region>, public MemoryTarget {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // The Region behind a JS object created by this addon, or nullptr for anything else. JS thread only.
  static Region* FromValue(Napi::Value value);

  explicit Region(const Napi::CallbackInfo& info);
  ~Region() override;

  // MemoryTarget
  const char* kind() const override { return "region"; }
  MemoryRef Acquire() override { return mapping_; }
  std::string Verify() override;

 private:
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  MemoryRef Open(const Napi::Env& env);  // mapping or throws REGION_INVALID

  MemoryRef mapping_;
  std::string source_;  // 'shm object "/x"' or 'file "/dev/shm/x"', for messages
};

}  // namespace kvf
