// Summed save copies; see save_sums.h.
#include "save_sums.h"

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>  // the widest kernel the CPU has (checksum.cc uses the same dispatch)
#define KVF_XXH3_UPDATE XXH3_64bits_update_dispatch
#else
#define KVF_XXH3_UPDATE XXH3_64bits_update
#endif

#include <algorithm>

#include "stream_copy.h"

namespace kvf {

namespace {

// Small enough to stay in L1 between the copy and the hash, large enough that the per-piece overhead of the
// streaming hash does not show.
constexpr uint64_t kBounceBytes = 8 << 10;

struct ThreadState {
  ThreadState() : hash(XXH3_createState()) {}
  ~ThreadState() { XXH3_freeState(hash); }
  XXH3_state_t* hash;
  alignas(64) uint8_t bounce[kBounceBytes];
};

}  // namespace

uint64_t CopyPageSummed(const CopyRange* descs, uint32_t first, uint32_t end, const uint8_t* src, uint8_t* dst) {
  thread_local ThreadState t;
  XXH3_64bits_reset(t.hash);
  for (uint32_t i = first; i < end; i++) {
    const CopyRange& d = descs[i];
    for (uint64_t off = 0; off < d.len; off += kBounceBytes) {
      uint64_t n = std::min(kBounceBytes, d.len - off);
      StreamCopyKeep(dst + d.dst + off, t.bounce, src + d.src + off, n);
      KVF_XXH3_UPDATE(t.hash, t.bounce, n);
    }
  }
  return XXH3_64bits_digest(t.hash);
}

}  // namespace kvf
