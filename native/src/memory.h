// Memory that native threads read and write: the node's pool arena and engine regions.
//
// A `Mapping` owns one mmap'd range and unmaps it in its destructor. The JS wrapper (Pool, Region) holds
// one shared_ptr to it; native users (copy engine, transports) take their own with `MemoryTarget::Acquire()`
// for as long as they touch the bytes. close() on the wrapper refuses new users at once and drops the
// wrapper's reference, so the range is unmapped when the last in-flight user finishes: never under a copy.
//
// Typical use from another module (JS thread):
//   kvf::MemoryRef mem = kvf::AcquireMemory(info[0], "pool");  // throws a coded error if not usable
//   ... hand `mem` to a native thread; mem->base()/mem->size() stay valid while `mem` lives ...
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

namespace kvf {

// Error codes: the closed vocabulary of packages/common/src/errors.ts (mirrored by native/lib/errors.ts).
namespace code {
inline constexpr const char* kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr const char* kPoolExhausted = "POOL_EXHAUSTED";
inline constexpr const char* kPoolInvalidHandle = "POOL_INVALID_HANDLE";
inline constexpr const char* kRegionInvalid = "REGION_INVALID";
inline constexpr const char* kInternal = "INTERNAL";
}  // namespace code

// An Error carrying a string `code` property. Throw it (C++ exceptions are enabled) or reject a deferred with it.
Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message);

// `strerror` of errno, thread-safe.
std::string ErrnoString(int err);

// One mmap'd range; unmapped (and its fd closed, if any) when the last reference goes.
class Mapping {
 public:
  Mapping(uint8_t* base, uint64_t size, uint64_t map_length, int fd) noexcept
      : base_(base), size_(size), map_length_(map_length), fd_(fd) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* base() const noexcept { return base_; }
  uint64_t size() const noexcept { return size_; }  // usable bytes (map_length may be rounded up)
  int fd() const noexcept { return fd_; }            // -1 for anonymous memory
  bool Contains(uint64_t offset, uint64_t length) const noexcept {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  uint8_t* base_;
  uint64_t size_;
  uint64_t map_length_;
  int fd_;
};

using MemoryRef = std::shared_ptr<Mapping>;

// Implemented by the Pool and Region ObjectWraps. JS thread only.
class MemoryTarget {
 public:
  virtual ~MemoryTarget() = default;
  virtual const char* kind() const = 0;  // "pool" | "region"
  // The mapping for native use, or nullptr once closed. Keep the returned reference while touching the bytes.
  virtual MemoryRef Acquire() = 0;
  // Current base/size; nullptr/0 once closed. Only for code that also holds an Acquire()d reference.
  uint8_t* base() { MemoryRef m = Acquire(); return m ? m->base() : nullptr; }
  uint64_t size() { MemoryRef m = Acquire(); return m ? m->size() : 0; }
  // Re-checks that the backing object still covers the mapping (regions may be truncated by their owner).
  // Returns an empty string when fine, else a message. Called once per batch before bytes move.
  virtual std::string Verify() { return std::string(); }
};

// A JS Pool or Region object as a MemoryTarget; nullptr for anything else. JS thread only.
MemoryTarget* UnwrapMemory(Napi::Value value);

// UnwrapMemory + Acquire + Verify, throwing coded errors naming `field`:
// INVALID_ARGUMENT when `value` is not a Pool/Region, INTERNAL for a closed pool, REGION_INVALID for a closed
// or shrunken region.
MemoryRef AcquireMemory(Napi::Value value, const char* field);

// A non-negative integer below 2^53 from a JS number, else INVALID_ARGUMENT naming `field`.
uint64_t ToIndex(const Napi::Env& env, const Napi::Value& value, const char* field);

// Hashes [at, at + count) of a packed buffer: info[i] a Buffer, then hashLen (1..max_len), at and, when
// `with_count`, count (else 1); INVALID_ARGUMENT naming the field otherwise.
struct PackedRun {
  const uint8_t* data;
  uint32_t hash_len, count;
};
PackedRun PackedRunArg(const Napi::CallbackInfo& info, size_t i, bool with_count, uint32_t max_len);

// Bounds-checked test/debug helpers behind pool.write/read and region.write/read: write(offset, Buffer) and
// read(offset, length) -> Buffer (a copy). `what` names the memory in messages ("pool", "region").
void WriteRange(const Napi::CallbackInfo& info, Mapping& m, const char* what);
Napi::Value ReadRange(const Napi::CallbackInfo& info, Mapping& m, const char* what);

}  // namespace kvf
