#include "cuda_lib.h"

#include <dlfcn.h>

#include <type_traits>

namespace kvf {

namespace {
std::string Describe(const CudaLib& lib, const char* call, CUresult r) {
  const char* text = nullptr;
  if (lib.get_error_string != nullptr) lib.get_error_string(r, &text);
  return std::string(call) + ": " + (text ? text : "CUDA error") + " (" + std::to_string(r) + ")";
}
}  // namespace

const CudaLib& Cuda() {
  static const CudaLib lib = [] {
    CudaLib l;
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      l.error = std::string("no CUDA driver: dlopen libcuda.so.1: ") + (e ? e : "unknown error");
      return l;
    }
    bool ok = true;
    auto need = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (fn == nullptr && ok) ok = false, l.error = std::string("libcuda.so.1 lacks ") + name;
    };
    // The _v2 entry points are what cuda.h maps these names to since CUDA 4 (64-bit sizes and pointers).
    need(l.init, "cuInit");
    need(l.device_get_count, "cuDeviceGetCount");
    need(l.device_get, "cuDeviceGet");
    need(l.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
    need(l.primary_ctx_release, "cuDevicePrimaryCtxRelease_v2");
    need(l.ctx_set_current, "cuCtxSetCurrent");
    need(l.ipc_open_mem_handle, "cuIpcOpenMemHandle_v2");
    need(l.ipc_close_mem_handle, "cuIpcCloseMemHandle");
    need(l.mem_get_address_range, "cuMemGetAddressRange_v2");
    need(l.stream_create, "cuStreamCreate");
    need(l.stream_destroy, "cuStreamDestroy_v2");
    need(l.stream_synchronize, "cuStreamSynchronize");
    need(l.memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2");
    need(l.memcpy_htod_async, "cuMemcpyHtoDAsync_v2");
    need(l.get_error_string, "cuGetErrorString");
    if (!ok) {
      dlclose(h);
      return l;
    }
    l.handle = h;
    CUresult r = l.init(0);
    if (r != 0) {
      l.error = Describe(l, "cuInit", r) + " (a driver without a usable GPU)";
      l.handle = nullptr;  // keep the library loaded: the error string function may still be called
    }
    return l;
  }();
  return lib;
}

std::string CudaError(const char* call, CUresult r) { return Describe(Cuda(), call, r); }

}  // namespace kvf
