// What other bindings use of engine_ops_js.cc: an InstanceLayout's native geometry, and evicted blocks as JS.
#pragma once
#include <napi.h>

#include "engine_ops.h"

namespace kvf {

// The layout of an InstanceLayout created by this addon, or nullptr. JS thread only; keep the object alive.
const InstanceLayout* UnwrapInstanceLayout(Napi::Value value);
// { ns: Uint32Array, sealed: Uint8Array, lens: Uint8Array, hashes: Buffer, blocks, bytes }
Napi::Object EvictedObject(Napi::Env env, const EvictedBlocks& evicted);

}  // namespace kvf
