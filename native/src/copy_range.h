// One copy descriptor: `len` bytes from `src` to `dst` (offsets in a batch's two memories).
#pragma once
#include <cstdint>

namespace kvf {

struct CopyRange {
  uint64_t src, dst, len;
};

}  // namespace kvf
