// The key table behind a JS KeyIds object (key_ids_js.cc), for native code that looks keys up in it.
#pragma once
#include <napi.h>

#include "key_table.h"

namespace kvf {

// The table of a KeyIds created by this addon, or nullptr for anything else. JS thread only; the object must be
// kept alive while the table is used.
const KeyTable* UnwrapKeyIds(Napi::Value value);

}  // namespace kvf
