// The block index behind a JS BlockIndex object (block_index_js.cc), for native executors that work on it.
#pragma once
#include <napi.h>

#include "block_index.h"

namespace kvf {

// The index of a BlockIndex created by this addon, or nullptr for anything else. JS thread only; the object must
// be kept alive while the index is used.
BlockIndex* UnwrapBlockIndex(Napi::Value value);

}  // namespace kvf
