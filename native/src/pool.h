// The node's memory pool: one anonymous mmap arena carved into pages by a slab allocator.
//
// JavaScript sees page handles (byte offsets into the arena), never pointers. Other native modules
// (transports) read and write pool memory through the MemoryTarget interface:
//   kvf::Pool* pool = kvf::Pool::FromValue(info[0]);       // nullptr if not a Pool
//   kvf::MemoryRef mem = pool ? pool->Acquire() : nullptr;  // nullptr once closed; keep it while in use
//   uint8_t* p = mem->base() + offset;                      // after checking mem->Contains(offset, len)
#pragma once
#include <napi.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "memory.h"

namespace kvf {

// O(1) page allocator over [0, capacity). The arena is split into fixed slabs; a free slab is assigned to one
// page size on demand and returns to the free-slab stack when its last page is freed. Each page size keeps a
// list of slabs with free pages; each slab keeps a stack of its free page indices and an allocation bitmap
// (double frees and foreign handles are detected exactly). Thread-safe (one mutex), although the node only
// calls it from the JS thread.
class PageAllocator {
 public:
  static constexpr uint64_t kNone = UINT64_MAX;
  enum class FreeResult { kOk, kInvalid, kDoubleFree };

  struct Stats {
    uint64_t capacity_bytes, used_bytes, free_bytes, largest_free_run_bytes, pages_allocated;
    uint64_t slab_bytes, slabs_total, slabs_free;
  };

  PageAllocator(uint64_t capacity, uint64_t slab_bytes);

  uint64_t slab_bytes() const { return slab_bytes_; }
  // Offset of a new page of `page_bytes` (0 < page_bytes <= slab_bytes), or kNone when exhausted.
  uint64_t Alloc(uint64_t page_bytes);
  // All-or-nothing: fills out[0..count) and returns true, or leaves nothing allocated and returns false.
  bool AllocMany(uint64_t page_bytes, uint64_t count, double* out);
  // `page_bytes` must be the size the page was allocated with.
  FreeResult Free(uint64_t offset, uint64_t page_bytes, std::string* why);
  Stats GetStats();

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Slab {
    uint64_t start = 0, length = 0;
    uint64_t page_bytes = 0;  // 0: free slab
    uint32_t pages_total = 0, pages_used = 0;
    uint32_t fresh = 0;                 // pages [fresh, pages_total) never handed out since assignment
    std::vector<uint32_t> free_stack;   // freed page indices below `fresh`
    std::vector<uint64_t> bitmap;       // bit set: page allocated
    uint32_t prev = kNil, next = kNil;  // links in the size class's list of slabs with free pages
    bool listed = false;
  };
  struct SizeClass {
    uint32_t head = kNil, tail = kNil;
  };

  uint64_t AllocLocked(uint64_t page_bytes);
  FreeResult FreeLocked(uint64_t offset, uint64_t page_bytes, std::string* why);
  void ListPush(SizeClass& c, uint32_t slab);
  void ListRemove(SizeClass& c, uint32_t slab);

  std::mutex mu_;
  uint64_t capacity_, slab_bytes_;
  std::vector<Slab> slabs_;
  std::vector<uint32_t> free_slabs_;  // stack of free slab indices
  std::unordered_map<uint64_t, SizeClass> classes_;
  uint64_t used_bytes_ = 0, pages_allocated_ = 0;
};

class Pool : public Napi::ObjectWrap<Pool>, public MemoryTarget {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // The Pool behind a JS object created by this addon, or nullptr for anything else. JS thread only.
  static Pool* FromValue(Napi::Value value);

  explicit Pool(const Napi::CallbackInfo& info);
  ~Pool() override;

  // MemoryTarget
  const char* kind() const override { return "pool"; }
  MemoryRef Acquire() override { return mapping_; }

  // base()/size() come from MemoryTarget (nullptr/0 once closed).
  bool closed() const { return mapping_ == nullptr; }
  // The page allocator, for native executors that allocate and free pages without a JS call (nullptr once closed;
  // a holder keeps it alive).
  std::shared_ptr<PageAllocator> allocator() const { return allocator_; }

 private:
  Napi::Value Alloc(const Napi::CallbackInfo& info);
  Napi::Value AllocMany(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  MemoryRef Open(const Napi::Env& env);  // mapping or throws INTERNAL "used after close()"

  MemoryRef mapping_;
  std::shared_ptr<PageAllocator> allocator_;
  bool hugepages_ = false, mlocked_ = false;
  std::string hugepages_reason_, mlock_reason_;
};

}  // namespace kvf
