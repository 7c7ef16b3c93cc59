// Pool: the arena mapping (mmap, optional MAP_HUGETLB, mlock, parallel pre-touch) and its O(1) slab allocator.
// Also home of the N-API helpers declared in memory.h (coded errors, index arguments, range read/write); the
// plain C++ ones (ErrnoString, Mapping) are in memory.cc.
#include "pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "modules.h"

namespace kvf {

// ---------------------------------------------------------------------------------------------- memory.h helpers

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

uint64_t ToIndex(const Napi::Env& env, const Napi::Value& v, const char* field) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw CodedError(env, code::kInvalidArgument, std::string(field) + ": expected a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

PackedRun PackedRunArg(const Napi::CallbackInfo& info, size_t i, bool with_count, uint32_t max_len) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw CodedError(env, code::kInvalidArgument, "packed: expected a Buffer");
  auto packed = info[i].As<Napi::Uint8Array>();
  uint64_t hash_len = ToIndex(env, info[i + 1], "hashLen");
  uint64_t at = ToIndex(env, info[i + 2], "at");
  uint64_t count = with_count ? ToIndex(env, info[i + 3], "count") : 1;
  if (hash_len == 0 || hash_len > max_len)
    throw CodedError(env, code::kInvalidArgument, "hashLen: expected 1.." + std::to_string(max_len));
  uint64_t hashes = packed.ByteLength() / hash_len;
  if (at > hashes || count > hashes - at) {
    throw CodedError(env, code::kInvalidArgument,
                     "count: hashes " + std::to_string(at) + ".." + std::to_string(at + count) + " of " +
                         std::to_string(hashes));
  }
  return PackedRun{packed.Data() + at * hash_len, static_cast<uint32_t>(hash_len), static_cast<uint32_t>(count)};
}

namespace {
void CheckRange(const Napi::Env& env, Mapping& m, const char* what, const char* op, uint64_t off, uint64_t len) {
  if (!m.Contains(off, len)) {
    throw CodedError(env, code::kInvalidArgument, std::string(what) + "." + op + ": range [" + std::to_string(off) +
                                                      ", +" + std::to_string(len) + ") exceeds the " + what +
                                                      " size " + std::to_string(m.size()));
  }
}
}  // namespace

void WriteRange(const Napi::CallbackInfo& info, Mapping& m, const char* what) {
  Napi::Env env = info.Env();
  uint64_t off = ToIndex(env, info[0], "offset");
  if (!info[1].IsBuffer()) throw CodedError(env, code::kInvalidArgument, "data: expected a Buffer");
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  CheckRange(env, m, what, "write", off, buf.Length());
  if (buf.Length() > 0) std::memcpy(m.base() + off, buf.Data(), buf.Length());
}

Napi::Value ReadRange(const Napi::CallbackInfo& info, Mapping& m, const char* what) {
  Napi::Env env = info.Env();
  uint64_t off = ToIndex(env, info[0], "offset");
  uint64_t len = ToIndex(env, info[1], "length");
  CheckRange(env, m, what, "read", off, len);
  return Napi::Buffer<uint8_t>::Copy(env, m.base() + off, len);
}

// ------------------------------------------------------------------------------------------------ PageAllocator

PageAllocator::PageAllocator(uint64_t capacity, uint64_t slab_bytes) : slab_bytes_(slab_bytes) {
  uint64_t count = capacity / slab_bytes;
  capacity_ = count * slab_bytes;
  slabs_.resize(count);
  free_slabs_.reserve(count);
  for (uint64_t i = 0; i < count; i++) {
    slabs_[i].start = i * slab_bytes;
    slabs_[i].length = slab_bytes;
  }
  // Stack: lowest slab index on top, so a fresh pool fills from the front of the arena.
  for (uint64_t i = count; i-- > 0;) free_slabs_.push_back(static_cast<uint32_t>(i));
}

void PageAllocator::ListPush(SizeClass& c, uint32_t s) {
  Slab& slab = slabs_[s];
  slab.prev = c.tail;
  slab.next = kNil;
  if (c.tail != kNil) slabs_[c.tail].next = s; else c.head = s;
  c.tail = s;
  slab.listed = true;
}

void PageAllocator::ListRemove(SizeClass& c, uint32_t s) {
  Slab& slab = slabs_[s];
  if (slab.prev != kNil) slabs_[slab.prev].next = slab.next; else c.head = slab.next;
  if (slab.next != kNil) slabs_[slab.next].prev = slab.prev; else c.tail = slab.prev;
  slab.prev = slab.next = kNil;
  slab.listed = false;
}

uint64_t PageAllocator::AllocLocked(uint64_t page_bytes) {
  SizeClass& c = classes_[page_bytes];
  if (c.head == kNil) {
    if (free_slabs_.empty()) return kNone;
    uint32_t s = free_slabs_.back();
    free_slabs_.pop_back();
    Slab& slab = slabs_[s];
    slab.page_bytes = page_bytes;
    slab.pages_total = static_cast<uint32_t>(slab.length / page_bytes);
    slab.pages_used = 0;
    slab.fresh = 0;
    slab.free_stack.clear();
    slab.bitmap.assign((slab.pages_total + 63) / 64, 0);
    ListPush(c, s);
  }
  uint32_t s = c.head;
  Slab& slab = slabs_[s];
  uint32_t idx;
  if (!slab.free_stack.empty()) {
    idx = slab.free_stack.back();
    slab.free_stack.pop_back();
  } else {
    idx = slab.fresh++;
  }
  slab.bitmap[idx / 64] |= uint64_t{1} << (idx % 64);
  if (++slab.pages_used == slab.pages_total) ListRemove(c, s);
  used_bytes_ += page_bytes;
  pages_allocated_++;
  return slab.start + uint64_t{idx} * page_bytes;
}

uint64_t PageAllocator::Alloc(uint64_t page_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return AllocLocked(page_bytes);
}

bool PageAllocator::AllocMany(uint64_t page_bytes, uint64_t count, double* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t i = 0; i < count; i++) {
    uint64_t off = AllocLocked(page_bytes);
    if (off == kNone) {
      for (uint64_t j = i; j-- > 0;) FreeLocked(static_cast<uint64_t>(out[j]), page_bytes, nullptr);
      return false;
    }
    out[i] = static_cast<double>(off);
  }
  return true;
}

PageAllocator::FreeResult PageAllocator::FreeLocked(uint64_t offset, uint64_t page_bytes, std::string* why) {
  auto fail = [&](FreeResult r, const std::string& msg) {
    if (why != nullptr) *why = msg;
    return r;
  };
  const std::string where = "offset " + std::to_string(offset);
  if (offset >= capacity_) {
    return fail(FreeResult::kInvalid, where + " is outside the pool (capacity " + std::to_string(capacity_) + ")");
  }
  uint32_t s = static_cast<uint32_t>(offset / slab_bytes_);
  Slab& slab = slabs_[s];
  if (slab.page_bytes == 0) return fail(FreeResult::kDoubleFree, where + " is not an allocated page (double free?)");
  if (page_bytes != 0 && page_bytes != slab.page_bytes) {
    return fail(FreeResult::kInvalid, where + " is a page of " + std::to_string(slab.page_bytes) +
                                          " bytes, not " + std::to_string(page_bytes));
  }
  uint64_t rel = offset - slab.start;
  if (rel % slab.page_bytes != 0 || rel / slab.page_bytes >= slab.pages_total) {
    return fail(FreeResult::kInvalid, where + " is not the start of a page of " + std::to_string(slab.page_bytes) +
                                          " bytes");
  }
  uint32_t idx = static_cast<uint32_t>(rel / slab.page_bytes);
  uint64_t bit = uint64_t{1} << (idx % 64);
  if ((slab.bitmap[idx / 64] & bit) == 0) {
    return fail(FreeResult::kDoubleFree, where + " is not an allocated page (double free?)");
  }
  slab.bitmap[idx / 64] &= ~bit;
  SizeClass& c = classes_[slab.page_bytes];
  used_bytes_ -= slab.page_bytes;
  pages_allocated_--;
  if (slab.pages_used-- == slab.pages_total) ListPush(c, s);  // was full: has a free page again
  if (slab.pages_used == 0) {
    // Empty: back to the free-slab stack, available to any page size.
    ListRemove(c, s);
    slab.page_bytes = 0;
    slab.pages_total = 0;
    slab.fresh = 0;
    slab.free_stack.clear();
    free_slabs_.push_back(s);
  } else {
    slab.free_stack.push_back(idx);
  }
  return FreeResult::kOk;
}

PageAllocator::FreeResult PageAllocator::Free(uint64_t offset, uint64_t page_bytes, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  return FreeLocked(offset, page_bytes, why);
}

PageAllocator::Stats PageAllocator::GetStats() {
  std::lock_guard<std::mutex> lock(mu_);
  Stats st{};
  st.capacity_bytes = capacity_;
  st.used_bytes = used_bytes_;
  st.free_bytes = capacity_ - used_bytes_;
  st.pages_allocated = pages_allocated_;
  st.slab_bytes = slab_bytes_;
  st.slabs_total = slabs_.size();
  st.slabs_free = free_slabs_.size();
  uint64_t run = 0;
  for (const Slab& slab : slabs_) {  // O(slabs): a few hundred for a large pool
    run = slab.page_bytes == 0 ? run + slab.length : 0;
    if (run > st.largest_free_run_bytes) st.largest_free_run_bytes = run;
  }
  return st;
}

// --------------------------------------------------------------------------------------------------------- Pool

namespace {

// Tags JS objects made by this class so that FromValue never unwraps a foreign object.
constexpr napi_type_tag kPoolTag = {0x6b76666162726963ULL, 0x706f6f6c00000001ULL};

uint64_t HugePageSize() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "Hugepagesize:") return value * 1024;
  }
  return 2 << 20;
}

std::string MeminfoField(const char* field) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      size_t p = line.find_first_not_of(" \t", std::strlen(field));
      return p == std::string::npos ? "" : line.substr(p);
    }
  }
  return "?";
}

// Touches every 4 KiB of [base, base+len) from `threads` threads so that page faults happen now, in parallel.
void PreTouch(uint8_t* base, uint64_t len, uint32_t threads) {
  constexpr uint64_t kStep = 4096;
  uint64_t per = (len / threads + kStep - 1) / kStep * kStep;
  std::vector<std::thread> workers;
  for (uint32_t t = 0; t < threads; t++) {
    uint64_t begin = std::min<uint64_t>(len, per * t), end = std::min<uint64_t>(len, begin + per);
    if (begin >= end) break;
    workers.emplace_back([=] {
      for (uint64_t off = begin; off < end; off += kStep) reinterpret_cast<volatile uint8_t*>(base)[off] = 0;
    });
  }
  for (auto& w : workers) w.join();
}

}  // namespace

Pool* Pool::FromValue(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kPoolTag)) return nullptr;
  return Napi::ObjectWrap<Pool>::Unwrap(obj);
}

// new Pool(sizeBytes, slabBytes, hugepages, mlock, prefaultThreads). The TS wrapper validates; checks here
// only keep the process safe.
Pool::Pool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pool>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBoolean() ||
      !info[3].IsBoolean() || !info[4].IsNumber()) {
    throw CodedError(env, code::kInvalidArgument, "Pool(sizeBytes, slabBytes, hugepages, mlock, prefaultThreads)");
  }
  double size_d = info[0].As<Napi::Number>().DoubleValue();
  double slab_d = info[1].As<Napi::Number>().DoubleValue();
  bool want_huge = info[2].As<Napi::Boolean>().Value();
  bool want_mlock = info[3].As<Napi::Boolean>().Value();
  double threads_d = info[4].As<Napi::Number>().DoubleValue();
  if (!(size_d >= 1 && size_d <= 9007199254740991.0) || !(slab_d >= 4096 && slab_d <= size_d) ||
      !(threads_d >= 0 && threads_d <= 1024)) {
    throw CodedError(env, code::kInvalidArgument, "Pool: sizeBytes, slabBytes or prefaultThreads out of range");
  }
  uint64_t size = static_cast<uint64_t>(size_d), slab = static_cast<uint64_t>(slab_d);
  uint32_t threads = static_cast<uint32_t>(threads_d);

  void* base = MAP_FAILED;
  uint64_t map_len = size;
  if (want_huge) {
    uint64_t hp = HugePageSize();
    uint64_t len = (size + hp - 1) / hp * hp;
    base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (base != MAP_FAILED) {
      hugepages_ = true;
      map_len = len;
    } else {
      int err = errno;
      hugepages_reason_ = "mmap(MAP_HUGETLB) of " + std::to_string(len) + " bytes failed: " + ErrnoString(err) +
                          " (HugePages_Free " + MeminfoField("HugePages_Free:") + " of " +
                          std::to_string(hp >> 10) + " kB; raise vm.nr_hugepages); using 4 KiB pages with " +
                          "transparent huge pages (madvise)";
    }
  } else {
    hugepages_reason_ = "not requested";
  }
  if (base == MAP_FAILED) {
    // 2 MiB aligned, so transparent huge pages back whole pool pages and a NIC registration maps few, large pages.
    constexpr uint64_t kAlign = 2ull << 20;
    void* raw = mmap(nullptr, size + kAlign, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
      int err = errno;
      throw CodedError(env, code::kInternal,
                       "Pool: mmap of " + std::to_string(size) + " bytes failed: " + ErrnoString(err));
    }
    uint64_t start = reinterpret_cast<uint64_t>(raw);
    uint64_t aligned = (start + kAlign - 1) & ~(kAlign - 1);
    if (aligned > start) munmap(raw, aligned - start);
    uint64_t tail = start + size + kAlign - (aligned + size);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
    base = reinterpret_cast<void*>(aligned);
    madvise(base, size, MADV_HUGEPAGE);  // best effort: fewer TLB misses on the copy path
  }
  mapping_ = std::make_shared<Mapping>(static_cast<uint8_t*>(base), size, map_len, -1);

  if (threads > 0) PreTouch(static_cast<uint8_t*>(base), size, threads);
  if (want_mlock) {
    if (mlock(base, map_len) == 0) {
      mlocked_ = true;
    } else {
      int err = errno;
      mlock_reason_ = "mlock of " + std::to_string(map_len) + " bytes failed: " + ErrnoString(err) +
                      " (raise RLIMIT_MEMLOCK / LimitMEMLOCK=infinity); pool pages may be swapped";
    }
  } else {
    mlock_reason_ = "not requested";
  }
  allocator_ = std::make_shared<PageAllocator>(size, slab);
  info.This().As<Napi::Object>().TypeTag(&kPoolTag);
}

Pool::~Pool() = default;  // in-flight users hold their own MemoryRef; the arena goes with the last one

MemoryRef Pool::Open(const Napi::Env& env) {
  if (!mapping_) throw CodedError(env, code::kInternal, "pool: used after close()");
  return mapping_;
}

namespace {
uint64_t ToPageBytes(const Napi::Env& env, const Napi::Value& v, uint64_t slab_bytes) {
  uint64_t pb = ToIndex(env, v, "pageBytes");
  if (pb == 0 || pb > slab_bytes) {
    throw CodedError(env, code::kInvalidArgument,
                     "pageBytes: expected 1.." + std::to_string(slab_bytes) + ", got " + std::to_string(pb));
  }
  return pb;
}
}  // namespace

Napi::Value Pool::Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Open(env);
  uint64_t pb = ToPageBytes(env, info[0], allocator_->slab_bytes());
  uint64_t off = allocator_->Alloc(pb);
  if (off == PageAllocator::kNone) return env.Null();
  return Napi::Number::New(env, static_cast<double>(off));
}

Napi::Value Pool::AllocMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Open(env);
  uint64_t pb = ToPageBytes(env, info[0], allocator_->slab_bytes());
  uint64_t count = ToIndex(env, info[1], "count");
  if (count > (uint64_t{1} << 30)) throw CodedError(env, code::kInvalidArgument, "count: too large");
  Napi::Float64Array out = Napi::Float64Array::New(env, count);
  if (!allocator_->AllocMany(pb, count, out.Data())) return env.Null();
  return out;
}

Napi::Value Pool::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Open(env);
  uint64_t off = ToIndex(env, info[0], "offset");
  uint64_t pb = info.Length() > 1 && !info[1].IsUndefined() ? ToPageBytes(env, info[1], allocator_->slab_bytes()) : 0;
  std::string why;
  if (allocator_->Free(off, pb, &why) != PageAllocator::FreeResult::kOk) {
    throw CodedError(env, code::kPoolInvalidHandle, "pool: free refused: " + why);
  }
  return env.Undefined();
}

Napi::Value Pool::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Open(env);
  PageAllocator::Stats st = allocator_->GetStats();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
  num("capacityBytes", st.capacity_bytes);
  num("usedBytes", st.used_bytes);
  num("freeBytes", st.free_bytes);
  num("largestFreeRunBytes", st.largest_free_run_bytes);
  num("pagesAllocated", st.pages_allocated);
  num("slabBytes", st.slab_bytes);
  num("slabsTotal", st.slabs_total);
  num("slabsFree", st.slabs_free);
  return o;
}

Napi::Value Pool::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemoryRef m = Open(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(m->size())));
  o.Set("hugepages", Napi::Boolean::New(env, hugepages_));
  o.Set("hugepagesReason", hugepages_ ? env.Null() : Napi::String::New(env, hugepages_reason_));
  o.Set("mlocked", Napi::Boolean::New(env, mlocked_));
  o.Set("mlockReason", mlocked_ ? env.Null() : Napi::String::New(env, mlock_reason_));
  return o;
}

Napi::Value Pool::Write(const Napi::CallbackInfo& info) {
  MemoryRef m = Open(info.Env());
  WriteRange(info, *m, "pool");
  return info.Env().Undefined();
}

Napi::Value Pool::Read(const Napi::CallbackInfo& info) {
  MemoryRef m = Open(info.Env());
  return ReadRange(info, *m, "pool");
}

Napi::Value Pool::Close(const Napi::CallbackInfo& info) {
  mapping_.reset();  // unmapped now, or when the last in-flight copy/transport op drops its reference
  allocator_.reset();
  return info.Env().Undefined();
}

void Pool::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Pool",
                                    {
                                        InstanceMethod<&Pool::Alloc>("alloc"),
                                        InstanceMethod<&Pool::AllocMany>("allocMany"),
                                        InstanceMethod<&Pool::Free>("free"),
                                        InstanceMethod<&Pool::Stats>("stats"),
                                        InstanceMethod<&Pool::Info>("info"),
                                        InstanceMethod<&Pool::Write>("write"),
                                        InstanceMethod<&Pool::Read>("read"),
                                        InstanceMethod<&Pool::Close>("close"),
                                    });
  exports.Set("Pool", ctor);
}

void InitPool(Napi::Env env, Napi::Object exports) { Pool::Init(env, exports); }

}  // namespace kvf
