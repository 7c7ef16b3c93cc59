// Page sums in slices for LandedPages; see landed_pages.h.
#include "landed_pages.h"

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>  // the widest vector kernel the CPU has, as checksum.cc uses
#define KVF_XXH3_UPDATE(state, data, len) XXH3_64bits_update_dispatch(state, data, len)
#else
#define KVF_XXH3_UPDATE(state, data, len) XXH3_64bits_update(state, data, len)
#endif

#include <algorithm>
#include <new>

namespace kvf {

struct PageHasher::State {
  XXH3_state_t* s = XXH3_createState();
  ~State() { XXH3_freeState(s); }
};

PageHasher::PageHasher() : state_(std::make_unique<State>()) {
  if (state_->s == nullptr) throw std::bad_alloc();
  Reset();
}
PageHasher::~PageHasher() = default;

void PageHasher::Reset() { XXH3_64bits_reset(state_->s); }
void PageHasher::Update(const uint8_t* data, uint64_t len) { KVF_XXH3_UPDATE(state_->s, data, len); }
uint64_t PageHasher::Digest() const { return XXH3_64bits_digest(state_->s); }

void LandedPages::Landed(PageHasher& hasher, const uint8_t* run, uint32_t first_page, uint64_t at, uint64_t len) {
  const uint64_t end = at + len;
  while (at < end) {
    const uint64_t in_page = at % page_bytes;
    const uint64_t n = std::min(end - at, page_bytes - in_page);
    if (in_page == 0) hasher.Reset();
    hasher.Update(run + at, n);
    at += n;
    if (at % page_bytes == 0) {
      const uint32_t page = first_page + uint32_t(at / page_bytes) - 1;
      if (hasher.Digest() != expected[page]) mismatches.push_back(page);
    }
  }
}

}  // namespace kvf
