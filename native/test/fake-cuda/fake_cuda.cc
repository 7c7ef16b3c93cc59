// A stand-in for the CUDA driver (libcuda.so.1) with the calls the addon's CUDA IPC region uses (src/cuda_lib.h), so
// the node's GPU data path runs for real on hosts without a GPU: "device memory" is a file (under /dev/shm) that
// cuIpcOpenMemHandle maps, an IPC handle names that file, and a stream queues its copies until cuStreamSynchronize
// runs them. Every copy is checked to lie inside one opened allocation (as a GPU would fault), and failures can be
// injected. Contract and environment: README.md in this directory.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

using CUresult = int;
using CUdeviceptr = unsigned long long;
constexpr CUresult kOk = 0, kInvalidValue = 1, kNotInitialized = 3, kInvalidContext = 201, kInvalidDevice = 101,
                   kMapFailed = 205, kInvalidHandle = 400, kIllegalAddress = 700;
constexpr char kMagic[16] = "kvf-fake-cuda/1";

struct Allocation {
  uint8_t* base;
  size_t size;
  int refs;
  std::string path;
};

struct Copy {
  void* host;
  CUdeviceptr dev;
  size_t len;
  bool to_host;
};

struct Stream {
  std::vector<Copy> queued;
};

struct State {
  std::mutex mu;
  bool initialized = false;
  int devices = 1;
  std::map<CUdeviceptr, Allocation> allocations;  // by base address
  uint64_t copies = 0, syncs = 0, opened = 0, closed = 0, retained = 0, released = 0;
};

State& S() {
  static State s;
  return s;
}

// Whether [dev, dev + len) lies inside one opened allocation. Lock held.
bool Inside(State& s, CUdeviceptr dev, size_t len) {
  auto it = s.allocations.upper_bound(dev);
  if (it == s.allocations.begin()) return false;
  --it;
  CUdeviceptr base = reinterpret_cast<CUdeviceptr>(it->second.base);
  return dev >= base && len <= it->second.size && dev - base <= it->second.size - len;
}

bool Injected(const char* what) {
  const char* file = std::getenv("KVF_FAKE_CUDA_FAIL_FILE");
  if (file == nullptr || access(file, F_OK) != 0) return false;
  const char* only = std::getenv("KVF_FAKE_CUDA_FAIL_WHAT");
  return only == nullptr || std::strcmp(only, what) == 0;
}

// The counters, rewritten after each change when KVF_FAKE_CUDA_STATS names a file. Lock held.
void WriteStats(State& s) {
  const char* file = std::getenv("KVF_FAKE_CUDA_STATS");
  if (file == nullptr) return;
  std::string tmp = std::string(file) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f, "{\"copies\":%llu,\"syncs\":%llu,\"opened\":%llu,\"closed\":%llu,\"mapped\":%zu,\"retained\":%llu,\"released\":%llu}\n",
               (unsigned long long)s.copies, (unsigned long long)s.syncs, (unsigned long long)s.opened,
               (unsigned long long)s.closed, s.allocations.size(), (unsigned long long)s.retained,
               (unsigned long long)s.released);
  std::fclose(f);
  std::rename(tmp.c_str(), file);
}

}  // namespace

extern "C" {

struct CUipcMemHandle {
  char reserved[64];
};

CUresult cuInit(unsigned) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  const char* n = std::getenv("KVF_FAKE_CUDA_DEVICES");
  s.devices = n != nullptr ? std::atoi(n) : 1;
  s.initialized = true;
  return kOk;
}

CUresult cuDeviceGetCount(int* count) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized) return kNotInitialized;
  *count = s.devices;
  return kOk;
}

CUresult cuDeviceGet(int* device, int ordinal) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (ordinal < 0 || ordinal >= s.devices) return kInvalidDevice;
  *device = ordinal;
  return kOk;
}

CUresult cuDevicePrimaryCtxRetain(void** ctx, int device) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (device < 0 || device >= s.devices) return kInvalidDevice;
  *ctx = reinterpret_cast<void*>(static_cast<uintptr_t>(0x1000 + device));
  s.retained++;
  WriteStats(s);
  return kOk;
}

CUresult cuDevicePrimaryCtxRelease_v2(int) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.released++;
  WriteStats(s);
  return kOk;
}

CUresult cuCtxSetCurrent(void* ctx) { return ctx == nullptr ? kInvalidContext : kOk; }

// The handle names a file: kMagic, then its path (NUL-terminated). Opening the same file again adds a reference
// and answers the same address, as the driver does for a handle already open in the context.
CUresult cuIpcOpenMemHandle_v2(CUdeviceptr* ptr, CUipcMemHandle handle, unsigned) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (std::memcmp(handle.reserved, kMagic, sizeof kMagic) != 0) return kInvalidValue;
  std::string path(handle.reserved + sizeof kMagic, strnlen(handle.reserved + sizeof kMagic, 64 - sizeof kMagic));
  for (auto& [base, a] : s.allocations) {
    if (a.path == path) {
      a.refs++;
      *ptr = base;
      return kOk;
    }
  }
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return kInvalidValue;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return kInvalidValue;
  }
  void* m = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return kMapFailed;
  *ptr = reinterpret_cast<CUdeviceptr>(m);
  s.allocations[*ptr] = Allocation{static_cast<uint8_t*>(m), static_cast<size_t>(st.st_size), 1, path};
  s.opened++;
  WriteStats(s);
  return kOk;
}

CUresult cuIpcCloseMemHandle(CUdeviceptr ptr) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.allocations.find(ptr);
  if (it == s.allocations.end()) return kInvalidValue;
  if (--it->second.refs == 0) {
    munmap(it->second.base, it->second.size);
    s.allocations.erase(it);
    s.closed++;
    WriteStats(s);
  }
  return kOk;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr* base, size_t* size, CUdeviceptr ptr) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.allocations.upper_bound(ptr);
  if (it == s.allocations.begin()) return kInvalidValue;
  --it;
  if (ptr - it->first >= it->second.size) return kInvalidValue;
  *base = it->first;
  *size = it->second.size;
  return kOk;
}

CUresult cuStreamCreate(void** stream, unsigned) {
  *stream = new Stream();
  return kOk;
}

CUresult cuStreamDestroy_v2(void* stream) {
  delete static_cast<Stream*>(stream);
  return kOk;
}

static CUresult Enqueue(void* stream, Copy c) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (Injected("memcpy")) return kIllegalAddress;
  if (!Inside(s, c.dev, c.len)) return kInvalidValue;
  static_cast<Stream*>(stream)->queued.push_back(c);
  return kOk;
}

CUresult cuMemcpyDtoHAsync_v2(void* host, CUdeviceptr dev, size_t len, void* stream) {
  return Enqueue(stream, Copy{host, dev, len, true});
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dev, const void* host, size_t len, void* stream) {
  return Enqueue(stream, Copy{const_cast<void*>(host), dev, len, false});
}

// Runs the stream's queued copies: only now do bytes move.
CUresult cuStreamSynchronize(void* stream) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto* st = static_cast<Stream*>(stream);
  s.syncs++;
  bool failed = Injected("sync");
  for (const Copy& c : st->queued) {
    if (failed) break;
    uint8_t* dev = reinterpret_cast<uint8_t*>(c.dev);
    if (c.to_host) std::memcpy(c.host, dev, c.len);
    else std::memcpy(dev, c.host, c.len);
    s.copies++;
  }
  st->queued.clear();
  WriteStats(s);
  return failed ? kIllegalAddress : kOk;
}

CUresult cuGetErrorString(CUresult r, const char** text) {
  switch (r) {
    case kOk: *text = "no error"; break;
    case kInvalidValue: *text = "invalid argument"; break;
    case kInvalidDevice: *text = "invalid device ordinal"; break;
    case kInvalidContext: *text = "invalid device context"; break;
    case kMapFailed: *text = "mapping of buffer object failed"; break;
    case kInvalidHandle: *text = "invalid resource handle"; break;
    case kIllegalAddress: *text = "an illegal memory access was encountered"; break;
    default: *text = nullptr; return kInvalidValue;
  }
  return kOk;
}

}  // extern "C"
