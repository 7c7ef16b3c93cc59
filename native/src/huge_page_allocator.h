// A std::allocator for the node's large lookup arrays (the block index's hash table, key arena and per-slot
// fields): an allocation of 2 MiB or more is 2 MiB-aligned and marked MADV_HUGEPAGE, so the kernel backs it with
// transparent huge pages where it is set to `madvise` (the usual default) as well as `always`. A prefix lookup
// touches dozens of random entries of arrays of tens to hundreds of MiB; with 4 KiB pages each of those is also a
// TLB miss (a nested page walk under a hypervisor). Smaller allocations are plain operator new.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace kvf {

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = size_t{2} << 20;

  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return static_cast<T*>(::operator new(bytes));
    size_t rounded = (bytes + kHugePage - 1) & ~(kHugePage - 1);
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);  // best effort: without it the memory is only slower to read
#endif
    return static_cast<T*>(p);
  }

  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kHugePage) {
      ::operator delete(p);
    } else {
      std::free(p);
    }
  }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

// A vector whose storage is huge-page backed once it reaches 2 MiB.
template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace kvf
