// Region: an engine's shared memory mapped MAP_SHARED read/write. Also UnwrapMemory/AcquireMemory (memory.h),
// which know both memory kinds.
#include "region.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "modules.h"
#include "pool.h"

namespace kvf {

namespace {
constexpr napi_type_tag kRegionTag = {0x6b76666162726963ULL, 0x726567696f6e0001ULL};
constexpr uint64_t kPrefaultChunk = 8ull << 20;

// Fills the node's page tables for a new shared-memory mapping on a background thread, so the first saves and
// loads of each block do not take a minor fault per 4 KiB page on the copy threads (measured: the first pass
// over a fresh 256 MiB mapping ran at under half the copy rate of later passes). Only for shared memory
// (tmpfs, memfd, hugetlbfs): there MADV_POPULATE_WRITE allocates nothing the engine's region did not already
// promise and dirties nothing that is written back. The thread holds the mapping only while populating one
// chunk (a weak reference between chunks), so close() still unmaps promptly and the thread then ends by
// itself; it never touches JavaScript values. Best effort: kernels before 5.14 refuse the advice (EINVAL) and
// the copy threads fault pages in as before.
void PrefaultInBackground(const MemoryRef& mapping) {
  struct statfs fs {};
  if (fstatfs(mapping->fd(), &fs) != 0) return;
  if (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC) return;
  std::weak_ptr<Mapping> weak = mapping;
  try {
    std::thread([weak] {
      for (uint64_t off = 0;;) {
        MemoryRef m = weak.lock();
        if (!m || off >= m->size()) return;
        uint64_t len = std::min(kPrefaultChunk, m->size() - off);
        if (madvise(m->base() + off, len, MADV_POPULATE_WRITE) != 0) return;
        off += len;
      }
    }).detach();
  } catch (const std::system_error&) {
    // No thread available: skip the optimisation.
  }
}
}  // namespace

Region* Region::FromValue(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kRegionTag)) return nullptr;
  return Napi::ObjectWrap<Region>::Unwrap(obj);
}

// new Region(kind: "shm" | "path", nameOrPath, sizeBytes), or new Region("fd", fd, sizeBytes, label): the last maps
// a descriptor the caller keeps (it is duplicated here). The TS wrapper validates the arguments.
Region::Region(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Region>(info) {
  Napi::Env env = info.Env();
  bool by_fd = info.Length() >= 4 && info[0].IsString() && info[0].As<Napi::String>().Utf8Value() == "fd" &&
               info[1].IsNumber() && info[3].IsString();
  if (info.Length() < 3 || !info[0].IsString() || !(info[1].IsString() || by_fd)) {
    throw CodedError(env, code::kInvalidArgument, "Region(kind, nameOrPath, sizeBytes) or Region(\"fd\", fd, sizeBytes, label)");
  }
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  uint64_t size = ToIndex(env, info[2], "sizeBytes");
  if (size == 0) throw CodedError(env, code::kInvalidArgument, "sizeBytes: expected a positive integer, got 0");
  bool shm = kind == "shm";
  const char* field = by_fd ? "fd" : shm ? "name" : "path";
  int fd;
  if (by_fd) {
    int given = info[1].As<Napi::Number>().Int32Value();
    source_ = info[3].As<Napi::String>().Utf8Value();
    fd = fcntl(given, F_DUPFD_CLOEXEC, 0);
  } else {
    std::string name = info[1].As<Napi::String>().Utf8Value();
    source_ = std::string(shm ? "shm object \"" : "file \"") + name + "\"";
    fd = shm ? shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0) : open(name.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) {
    int err = errno;
    throw CodedError(env, code::kRegionInvalid,
                     std::string(field) + ": cannot open " + source_ + " read/write: " + ErrnoString(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    throw CodedError(env, code::kRegionInvalid, std::string(field) + ": fstat of " + source_ + ": " + ErrnoString(err));
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < size) {
    close(fd);
    throw CodedError(env, code::kRegionInvalid,
                     "sizeBytes: " + std::to_string(size) + " exceeds the size of " + source_ + " (" +
                         std::to_string(S_ISREG(st.st_mode) ? st.st_size : 0) + " bytes)");
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    close(fd);
    throw CodedError(env, code::kRegionInvalid, std::string(field) + ": mmap of " + std::to_string(size) +
                                                    " bytes of " + source_ + " failed: " + ErrnoString(err));
  }
  mapping_ = std::make_shared<Mapping>(static_cast<uint8_t*>(base), size, size, fd);
  PrefaultInBackground(mapping_);
  info.This().As<Napi::Object>().TypeTag(&kRegionTag);
}

Region::~Region() = default;

std::string Region::Verify() {
  if (!mapping_) return "region: used after close()";
  struct stat st {};
  if (fstat(mapping_->fd(), &st) != 0) return "region: fstat of " + source_ + " failed: " + ErrnoString(errno);
  if (static_cast<uint64_t>(st.st_size) < mapping_->size()) {
    return "region: " + source_ + " shrank to " + std::to_string(st.st_size) + " bytes, below the mapped " +
           std::to_string(mapping_->size());
  }
  return std::string();
}

MemoryRef Region::Open(const Napi::Env& env) {
  if (!mapping_) throw CodedError(env, code::kRegionInvalid, "region: used after close()");
  return mapping_;
}

Napi::Value Region::Write(const Napi::CallbackInfo& info) {
  MemoryRef m = Open(info.Env());
  WriteRange(info, *m, "region");
  return info.Env().Undefined();
}

Napi::Value Region::Read(const Napi::CallbackInfo& info) {
  MemoryRef m = Open(info.Env());
  return ReadRange(info, *m, "region");
}

Napi::Value Region::Close(const Napi::CallbackInfo& info) {
  mapping_.reset();  // unmapped now, or when the last in-flight copy drops its reference
  return info.Env().Undefined();
}

void Region::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Region",
                                    {
                                        InstanceMethod<&Region::Write>("write"),
                                        InstanceMethod<&Region::Read>("read"),
                                        InstanceMethod<&Region::Close>("close"),
                                    });
  exports.Set("Region", ctor);
}

// ------------------------------------------------------------------------------------------- memory.h: unwrap

MemoryTarget* UnwrapMemory(Napi::Value value) {
  if (Pool* pool = Pool::FromValue(value)) return pool;
  if (Region* region = Region::FromValue(value)) return region;
  return nullptr;
}

MemoryRef AcquireMemory(Napi::Value value, const char* field) {
  Napi::Env env = value.Env();
  MemoryTarget* target = UnwrapMemory(value);
  if (target == nullptr) {
    throw CodedError(env, code::kInvalidArgument, std::string(field) + ": expected a Pool or a Region");
  }
  bool region = std::string(target->kind()) == "region";
  MemoryRef m = target->Acquire();
  if (!m) {
    throw CodedError(env, region ? code::kRegionInvalid : code::kInternal,
                     std::string(field) + ": " + target->kind() + " used after close()");
  }
  std::string problem = target->Verify();
  if (!problem.empty()) throw CodedError(env, code::kRegionInvalid, std::string(field) + ": " + problem);
  return m;
}

void InitRegion(Napi::Env env, Napi::Object exports) { Region::Init(env, exports); }

}  // namespace kvf
