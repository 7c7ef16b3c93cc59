// CudaIpcRegion: an engine's GPU memory opened from CUDA IPC handles (cuIpcOpenMemHandle), so the node copies
// between its pool (or any mapped memory) and the engine's KV cache on the GPU directly, on a CUDA stream of its
// own. A region is one or more parts (one per allocation: vLLM allocates a KV cache per layer) laid back to back.
// libcuda is loaded with dlopen (cuda_lib.h): the addon builds and loads everywhere, and opening a region where
// there is no driver fails with REGION_INVALID naming the loader's reason. cudaStatus() says the same without
// throwing.
//
// JS: new CudaIpcRegion(handles: Buffer(64 * n), offsets: Float64Array(n), sizes: Float64Array(n), device);
// copy(toHost, memory, descriptors) -> Promise<{ bytes }> where descriptors is a Float64Array of (hostOffset,
// regionOffset, length) triples, bounds-checked here against the host memory and the region; close().
// Each region owns one thread: it queues a batch's copies on the stream (cuMemcpyDtoHAsync / HtoDAsync), waits for
// the stream once, and settles the batch through the Completer (transport.h). Native executors (engine_ops_js.cc)
// submit the batches they planned with Submit (cuda_ipc_region.h). close() finishes queued batches, joins the
// thread, then closes the stream and the IPC mappings.
#include "cuda_ipc_region.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "cuda_lib.h"
#include "modules.h"
#include "transport.h"

namespace kvf {

namespace {

constexpr napi_type_tag kCudaRegionTag = {0x6b76666162726963ULL, 0x6375646169706301ULL};

// One part of the region: `size` bytes at device address `base`, at region offset `start`.
struct Part {
  CUdeviceptr base;
  uint64_t start, size;
};

struct Job {
  uint64_t id;
  bool to_host;
  MemoryRef host;
  std::vector<CopyRange> descs;
};

// Keeps the region's JS object (so its thread and Completer) alive while a batch is pending.
class KeepAlive : public OpHook {
 public:
  KeepAlive(Napi::Object self, std::unique_ptr<OpHook> inner) : self_(Napi::Persistent(self)), inner_(std::move(inner)) {}
  void Done(Napi::Env env, bool copied, Napi::Object result) override {
    if (inner_) inner_->Done(env, copied, result);
  }

 private:
  Napi::ObjectReference self_;
  std::unique_ptr<OpHook> inner_;
};

class CudaIpcRegion : public Napi::ObjectWrap<CudaIpcRegion>, public CudaIpcRegionBase {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("CudaIpcRegion", DefineClass(env, "CudaIpcRegion",
                                             {InstanceMethod<&CudaIpcRegion::Copy>("copy"),
                                              InstanceMethod<&CudaIpcRegion::Close>("close")}));
  }

  explicit CudaIpcRegion(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaIpcRegion>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsBuffer()) {
      throw CodedError(env, code::kInvalidArgument,
                       "CudaIpcRegion(handles: Buffer(64 * n), offsets: Float64Array, sizes: Float64Array, device)");
    }
    auto handles = info[0].As<Napi::Buffer<uint8_t>>();
    std::vector<uint64_t> offsets, sizes;
    if (!ReadU64Array(info[1], &offsets)) throw CodedError(env, code::kInvalidArgument, "offsets: expected a Float64Array");
    if (!ReadU64Array(info[2], &sizes)) throw CodedError(env, code::kInvalidArgument, "sizes: expected a Float64Array");
    size_t n = offsets.size();
    if (n == 0 || sizes.size() != n || handles.Length() != n * sizeof(CUipcMemHandle)) {
      throw CodedError(env, code::kInvalidArgument,
                       "handles: expected one 64-byte CUDA IPC memory handle per part (" + std::to_string(n) +
                           " offsets, " + std::to_string(sizes.size()) + " sizes), got " +
                           std::to_string(handles.Length()) + " bytes");
    }
    uint64_t device = ToIndex(env, info[3], "device");
    const CudaLib& cu = Cuda();
    if (cu.handle == nullptr) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: " + cu.error);
    int count = 0;
    CUresult r = cu.device_get_count(&count);
    if (r != 0) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: " + CudaError("cuDeviceGetCount", r));
    if (count == 0) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: the CUDA driver sees no device");
    if (device >= static_cast<uint64_t>(count)) {
      throw CodedError(env, code::kRegionInvalid,
                       "device: expected 0.." + std::to_string(count - 1) + " (the devices this node sees), got " +
                           std::to_string(device));
    }
    auto fail = [&](const std::string& what, const char* call, CUresult res) {
      CloseCuda();
      throw CodedError(env, code::kRegionInvalid, what + "CUDA IPC region: " + CudaError(call, res));
    };
    if ((r = cu.device_get(&device_, static_cast<int>(device))) != 0) fail("", "cuDeviceGet", r);
    if ((r = cu.primary_ctx_retain(&ctx_, device_)) != 0) fail("", "cuDevicePrimaryCtxRetain", r);
    retained_ = true;
    if ((r = cu.ctx_set_current(ctx_)) != 0) fail("", "cuCtxSetCurrent", r);
    for (size_t i = 0; i < n; i++) {
      std::string at = "parts[" + std::to_string(i) + "]";
      CUipcMemHandle h;
      std::memcpy(&h, handles.Data() + i * sizeof h, sizeof h);
      CUdeviceptr ptr = 0;
      if ((r = cu.ipc_open_mem_handle(&ptr, h, kCuIpcMemLazyEnablePeerAccess)) != 0)
        fail(at + ".handle: ", "cuIpcOpenMemHandle", r);
      opened_.push_back(ptr);
      CUdeviceptr alloc_base = 0;
      size_t alloc_size = 0;
      if ((r = cu.mem_get_address_range(&alloc_base, &alloc_size, ptr)) != 0)
        fail(at + ".handle: ", "cuMemGetAddressRange", r);
      uint64_t room = alloc_size - (ptr - alloc_base);
      if (offsets[i] > room || sizes[i] > room - offsets[i]) {
        CloseCuda();
        throw CodedError(env, code::kRegionInvalid,
                         at + ".offset_bytes: offset " + std::to_string(offsets[i]) + " + size_bytes " +
                             std::to_string(sizes[i]) + " is beyond the allocation's " + std::to_string(room) +
                             " bytes");
      }
      parts_.push_back(Part{ptr + offsets[i], size_, sizes[i]});
      size_ += sizes[i];
    }
    if ((r = cu.stream_create(&stream_, kCuStreamNonBlocking)) != 0) fail("", "cuStreamCreate", r);
    completer_ = Completer::Create(env, "kvfabric-cuda", Napi::Function());
    cleanup_ = env.AddCleanupHook(&CudaIpcRegion::OnEnvCleanup, this);  // after the Completer's: runs before it
    open_ = true;
    worker_ = std::thread([this] { Work(); });
    info.This().As<Napi::Object>().TypeTag(&kCudaRegionTag);
  }

  // Collected only when nothing is pending (KeepAlive), so abandoning the Completer leaves no promise unsettled.
  ~CudaIpcRegion() override {
    Shutdown();
    if (!cleanup_.IsEmpty()) cleanup_.Remove(Env());
  }

  static void OnEnvCleanup(CudaIpcRegion* self) {
    self->cleanup_ = {};  // the hook's data is freed by node-addon-api after this returns
    self->Shutdown();
  }

  static CudaIpcRegion* FromValue(Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kCudaRegionTag)) return nullptr;
    return Unwrap(v.As<Napi::Object>());
  }

  uint64_t size() const override { return size_; }

  Napi::Promise Submit(Napi::Env env, MemoryRef host, std::vector<CopyRange> descs, bool to_host,
                       std::unique_ptr<OpHook> hook) override {
    if (!open_) {
      Napi::Error err = CodedError(env, code::kRegionInvalid, "CUDA IPC region: closed");
      if (hook) hook->Done(env, false, err.Value());  // undo what the executor planned
      throw err;
    }
    auto [promise, id] = completer_->Add(env, std::make_unique<KeepAlive>(Value(), std::move(hook)));
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(Job{id, to_host, std::move(host), std::move(descs)});
    }
    cv_.notify_one();
    return promise;
  }

 private:
  // The region's thread: runs batches in order, each one stream wait.
  void Work() {
    const CudaLib& cu = Cuda();
    CUresult set = cu.ctx_set_current(ctx_);
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      Completion c;
      c.id = job.id;
      if (set != 0) {
        c.code = code::kInternal;
        c.message = "CUDA IPC region: " + CudaError("cuCtxSetCurrent", set);
      } else {
        Run(job, &c);
      }
      completer_->Post(std::move(c));
    }
  }

  // Queues the batch's copies on the stream (a copy that crosses parts is split), then waits for them once.
  void Run(const Job& job, Completion* c) {
    const CudaLib& cu = Cuda();
    CUresult r = 0;
    uint64_t bytes = 0;
    for (const CopyRange& d : job.descs) {
      uint64_t region_at = job.to_host ? d.src : d.dst;
      uint8_t* host = job.host->base() + (job.to_host ? d.dst : d.src);
      for (uint64_t left = d.len; left > 0 && r == 0;) {
        auto part = std::upper_bound(parts_.begin(), parts_.end(), region_at,
                                     [](uint64_t at, const Part& p) { return at < p.start; }) - 1;
        uint64_t n = std::min(left, part->start + part->size - region_at);
        CUdeviceptr dev = part->base + (region_at - part->start);
        r = job.to_host ? cu.memcpy_dtoh_async(host, dev, n, stream_) : cu.memcpy_htod_async(dev, host, n, stream_);
        region_at += n, host += n, left -= n;
      }
      if (r != 0) break;
      bytes += d.len;
    }
    CUresult s = cu.stream_synchronize(stream_);
    if (r != 0 || s != 0) {
      c->code = code::kRegionInvalid;
      c->message = "CUDA IPC region: " + (r != 0 ? CudaError(job.to_host ? "cuMemcpyDtoHAsync" : "cuMemcpyHtoDAsync", r)
                                                 : CudaError("cuStreamSynchronize", s));
      return;
    }
    c->bytes = static_cast<double>(bytes);
  }

  // copy(toHost: boolean, memory: Pool | Region, descriptors: Float64Array of (hostOffset, regionOffset, length))
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> d;
    if (info.Length() < 3 || !info[0].IsBoolean() || !ReadU64Array(info[2], &d) || d.size() % 3 != 0) {
      throw CodedError(env, code::kInvalidArgument,
                       "copy(toHost, memory, descriptors: Float64Array of (hostOffset, regionOffset, length))");
    }
    if (!open_) throw CodedError(env, code::kRegionInvalid, "CUDA IPC region: closed");
    MemoryRef host = AcquireMemory(info[1], "memory");
    bool to_host = info[0].As<Napi::Boolean>();
    std::vector<CopyRange> copies;
    copies.reserve(d.size() / 3);
    for (size_t i = 0; i < d.size(); i += 3) {
      uint64_t h = d[i], g = d[i + 1], len = d[i + 2];
      std::string at = "descriptors[" + std::to_string(i / 3) + "]: ";
      if (!host->Contains(h, len))
        throw CodedError(env, code::kInvalidArgument,
                         at + "host range beyond the memory's " + std::to_string(host->size()) + " bytes");
      if (g > size_ || len > size_ - g)
        throw CodedError(env, code::kInvalidArgument,
                         at + "region range beyond its " + std::to_string(size_) + " bytes");
      copies.push_back(to_host ? CopyRange{g, h, len} : CopyRange{h, g, len});
    }
    return Submit(env, std::move(host), std::move(copies), to_host, nullptr);
  }

  // The batches already submitted still settle (their completions are queued); the Completer goes with the object.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    CloseCuda();
    return info.Env().Undefined();
  }

  void Shutdown() {
    Stop();
    if (completer_ != nullptr) completer_->Abandon();
    completer_ = nullptr;
    CloseCuda();
  }

  // Refuses new batches, lets the thread finish the queued ones, joins it.
  void Stop() {
    open_ = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // Releases what the constructor took, in reverse; idempotent. The thread is joined.
  void CloseCuda() {
    const CudaLib& cu = Cuda();
    if (!retained_) return;
    cu.ctx_set_current(ctx_);
    if (stream_ != nullptr) cu.stream_destroy(stream_);
    for (CUdeviceptr p : opened_) cu.ipc_close_mem_handle(p);
    cu.primary_ctx_release(device_);
    stream_ = nullptr;
    opened_.clear();
    retained_ = false;
  }

  CUdevice device_ = 0;
  CUcontext ctx_ = nullptr;
  bool retained_ = false;
  CUstream stream_ = nullptr;
  std::vector<CUdeviceptr> opened_;  // as cuIpcOpenMemHandle returned them, to close
  std::vector<Part> parts_;          // by start
  uint64_t size_ = 0;
  Completer* completer_ = nullptr;
  Napi::Env::CleanupHook<void (*)(CudaIpcRegion*), CudaIpcRegion> cleanup_;
  bool open_ = false;  // JS thread
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
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

CudaIpcRegionBase* UnwrapCudaIpcRegion(Napi::Value value) { return CudaIpcRegion::FromValue(value); }

void InitCudaIpc(Napi::Env env, Napi::Object exports) {
  CudaIpcRegion::Init(env, exports);
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatus, "cudaStatus"));
}

}  // namespace kvf
