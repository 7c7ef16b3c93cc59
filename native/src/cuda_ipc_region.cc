// CudaIpcRegion: an engine's GPU memory opened from a CUDA IPC handle (cuIpcOpenMemHandle), so the node copies
// between its pool (or any mapped region) and the engine's KV cache on the GPU directly, on a CUDA stream of its
// own. libcuda is loaded with dlopen (cuda_lib.h): the addon builds and loads everywhere, and opening a region
// where there is no driver fails with REGION_INVALID naming the loader's reason. cudaStatus() says the same
// without throwing.
//
// JS: new CudaIpcRegion(handle: Buffer(64), sizeBytes, device); copy(toHost, memory, descriptors) -> Promise<bytes>
// where descriptors is a Float64Array of (hostOffset, regionOffset, length) triples, bounds-checked here against
// the host memory and the region; close(). A copy runs on a libuv worker thread (one synchronous stream wait per
// batch, no polling); the host mapping is referenced until it finishes, and close() waits for copies in flight.
#include <napi.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda_lib.h"
#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {

struct CudaIpcState {
  std::mutex mu;  // held by a copy for its whole batch, and by close()
  bool open = false;
  CUdevice device = 0;
  CUcontext ctx = nullptr;
  CUdeviceptr base = 0;
  uint64_t size = 0;
  CUstream stream = nullptr;

  void Close() {
    std::lock_guard<std::mutex> lock(mu);
    if (!open) return;
    open = false;
    const CudaLib& cu = Cuda();
    cu.ctx_set_current(ctx);
    cu.stream_destroy(stream);
    cu.ipc_close_mem_handle(base);
    cu.primary_ctx_release(device);
  }
};

struct Triple {
  uint64_t host, region, length;
};

class CopyWorker : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, std::shared_ptr<CudaIpcState> state, MemoryRef host, std::vector<Triple> copies,
             bool to_host)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(state)),
        host_(std::move(host)),
        copies_(std::move(copies)),
        to_host_(to_host) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const CudaLib& cu = Cuda();
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->open) return Fail(code::kRegionInvalid, "CUDA IPC region: closed");
    CUresult r = cu.ctx_set_current(state_->ctx);
    if (r != 0) return Fail(code::kInternal, CudaError("cuCtxSetCurrent", r));
    for (const Triple& t : copies_) {
      uint8_t* host = host_->base() + t.host;
      CUdeviceptr dev = state_->base + t.region;
      r = to_host_ ? cu.memcpy_dtoh_async(host, dev, t.length, state_->stream)
                   : cu.memcpy_htod_async(dev, host, t.length, state_->stream);
      if (r != 0) break;
      bytes_ += t.length;
    }
    CUresult s = cu.stream_synchronize(state_->stream);
    if (r != 0) return Fail(code::kInternal, CudaError(to_host_ ? "cuMemcpyDtoHAsync" : "cuMemcpyHtoDAsync", r));
    if (s != 0) return Fail(code::kInternal, CudaError("cuStreamSynchronize", s));
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_code_ != nullptr) {
      deferred_.Reject(CodedError(env, error_code_, error_).Value());
      return;
    }
    deferred_.Resolve(Napi::Number::New(env, static_cast<double>(bytes_)));
  }

 private:
  void Fail(const char* code, std::string message) {
    error_code_ = code;
    error_ = std::move(message);
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<CudaIpcState> state_;
  MemoryRef host_;
  std::vector<Triple> copies_;
  bool to_host_;
  uint64_t bytes_ = 0;
  const char* error_code_ = nullptr;
  std::string error_;
};

class CudaIpcRegion : public Napi::ObjectWrap<CudaIpcRegion> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("CudaIpcRegion", DefineClass(env, "CudaIpcRegion",
                                             {InstanceMethod<&CudaIpcRegion::Copy>("copy"),
                                              InstanceMethod<&CudaIpcRegion::Close>("close")}));
  }

  explicit CudaIpcRegion(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<CudaIpcRegion>(info), state_(std::make_shared<CudaIpcState>()) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsBuffer()) {
      throw CodedError(env, code::kInvalidArgument, "CudaIpcRegion(handle: Buffer(64), sizeBytes, device)");
    }
    auto handle = info[0].As<Napi::Buffer<uint8_t>>();
    if (handle.Length() != sizeof(CUipcMemHandle)) {
      throw CodedError(env, code::kInvalidArgument,
                       "handle: expected a 64-byte CUDA IPC memory handle, got " + std::to_string(handle.Length()) +
                           " bytes");
    }
    uint64_t size = ToIndex(env, info[1], "sizeBytes");
    uint64_t device = ToIndex(env, info[2], "device");
    const CudaLib& cu = Cuda();
    if (cu.handle == nullptr) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: " + cu.error);
    int count = 0;
    CUresult r = cu.device_get_count(&count);
    if (r != 0) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: " + CudaError("cuDeviceGetCount", r));
    if (device >= static_cast<uint64_t>(count)) {
      throw CodedError(env, code::kInvalidArgument,
                       "device: expected 0.." + std::to_string(count - 1) + ", got " + std::to_string(device));
    }
    CudaIpcState& s = *state_;
    auto fail = [&](const char* call, CUresult res) {
      throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: " + CudaError(call, res));
    };
    if ((r = cu.device_get(&s.device, static_cast<int>(device))) != 0) fail("cuDeviceGet", r);
    if ((r = cu.primary_ctx_retain(&s.ctx, s.device)) != 0) fail("cuDevicePrimaryCtxRetain", r);
    if ((r = cu.ctx_set_current(s.ctx)) != 0) {
      cu.primary_ctx_release(s.device);
      fail("cuCtxSetCurrent", r);
    }
    CUipcMemHandle h;
    std::memcpy(&h, handle.Data(), sizeof h);
    if ((r = cu.ipc_open_mem_handle(&s.base, h, kCuIpcMemLazyEnablePeerAccess)) != 0) {
      cu.primary_ctx_release(s.device);
      fail("cuIpcOpenMemHandle", r);
    }
    if ((r = cu.stream_create(&s.stream, kCuStreamNonBlocking)) != 0) {
      cu.ipc_close_mem_handle(s.base);
      cu.primary_ctx_release(s.device);
      fail("cuStreamCreate", r);
    }
    s.size = size;
    s.open = true;
  }

  ~CudaIpcRegion() override { state_->Close(); }

 private:
  // copy(toHost: boolean, memory: Pool | Region, descriptors: Float64Array of (hostOffset, regionOffset, length))
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsBoolean() || !info[2].IsTypedArray() ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw CodedError(env, code::kInvalidArgument, "copy(toHost, memory, descriptors: Float64Array)");
    }
    if (!state_->open) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: closed");
    MemoryRef host = AcquireMemory(info[1], "memory");
    auto d = info[2].As<Napi::Float64Array>();
    if (d.ElementLength() % 3 != 0) {
      throw CodedError(env, code::kInvalidArgument, "descriptors: expected (hostOffset, regionOffset, length) triples");
    }
    std::vector<Triple> copies;
    copies.reserve(d.ElementLength() / 3);
    for (size_t i = 0; i < d.ElementLength(); i += 3) {
      Triple t{ToIndex(env, Napi::Number::New(env, d[i]), "descriptors.hostOffset"),
               ToIndex(env, Napi::Number::New(env, d[i + 1]), "descriptors.regionOffset"),
               ToIndex(env, Napi::Number::New(env, d[i + 2]), "descriptors.length")};
      if (!host->Contains(t.host, t.length)) {
        throw CodedError(env, code::kInvalidArgument,
                         "descriptors[" + std::to_string(i / 3) + "]: host range beyond the memory's " +
                             std::to_string(host->size()) + " bytes");
      }
      if (t.region > state_->size || t.length > state_->size - t.region) {
        throw CodedError(env, code::kInvalidArgument,
                         "descriptors[" + std::to_string(i / 3) + "]: region range beyond its " +
                             std::to_string(state_->size) + " bytes");
      }
      copies.push_back(t);
    }
    auto* worker = new CopyWorker(env, state_, std::move(host), std::move(copies), info[0].As<Napi::Boolean>());
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    state_->Close();
    return info.Env().Undefined();
  }

  std::shared_ptr<CudaIpcState> state_;
};

// cudaStatus() -> { available, reason, devices }: whether CUDA IPC regions can be opened here.
Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaLib& cu = Cuda();
  Napi::Object out = Napi::Object::New(env);
  int count = 0;
  std::string reason = cu.error;
  if (cu.handle != nullptr) {
    CUresult r = cu.device_get_count(&count);
    if (r != 0) reason = CudaError("cuDeviceGetCount", r);
    else if (count == 0) reason = "the CUDA driver sees no device";
  }
  out.Set("available", Napi::Boolean::New(env, reason.empty()));
  out.Set("reason", Napi::String::New(env, reason));
  out.Set("devices", Napi::Number::New(env, count));
  return out;
}

}  // namespace

void InitCudaIpc(Napi::Env env, Napi::Object exports) {
  CudaIpcRegion::Init(env, exports);
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatus, "cudaStatus"));
}

}  // namespace kvf
