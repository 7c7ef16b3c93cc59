// The CUDA driver API (libcuda.so.1), loaded with dlopen at run time: the addon builds and loads on hosts without
// CUDA, and a CUDA IPC region there fails with the loader's own reason. Only the few calls the CUDA IPC region
// type uses, declared here with the driver's ABI (CUdeviceptr is 64-bit on every 64-bit platform).
#pragma once
#include <cstdint>
#include <string>

namespace kvf {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUstream = struct CUstream_st*;
struct CUipcMemHandle {
  char reserved[64];
};
inline constexpr unsigned kCuIpcMemLazyEnablePeerAccess = 0x1;
inline constexpr unsigned kCuStreamNonBlocking = 0x1;

struct CudaLib {
  void* handle = nullptr;
  std::string error;  // why the driver is unusable; empty when loaded
  CUresult (*init)(unsigned) = nullptr;
  CUresult (*device_get_count)(int*) = nullptr;
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*primary_ctx_retain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*primary_ctx_release)(CUdevice) = nullptr;
  CUresult (*ctx_set_current)(CUcontext) = nullptr;
  CUresult (*ipc_open_mem_handle)(CUdeviceptr*, CUipcMemHandle, unsigned) = nullptr;
  CUresult (*ipc_close_mem_handle)(CUdeviceptr) = nullptr;
  CUresult (*mem_get_address_range)(CUdeviceptr*, size_t*, CUdeviceptr) = nullptr;
  CUresult (*stream_create)(CUstream*, unsigned) = nullptr;
  CUresult (*stream_destroy)(CUstream) = nullptr;
  CUresult (*stream_synchronize)(CUstream) = nullptr;
  CUresult (*memcpy_dtoh_async)(void*, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*memcpy_htod_async)(CUdeviceptr, const void*, size_t, CUstream) = nullptr;
  CUresult (*get_error_string)(CUresult, const char**) = nullptr;
};

// The process-wide driver, loaded and cuInit'ed once; `error` says why not when it is unusable.
const CudaLib& Cuda();

// "cuFoo: CUDA_ERROR_... (n)" for messages.
std::string CudaError(const char* call, CUresult r);

}  // namespace kvf
