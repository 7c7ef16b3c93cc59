// The engine side of a command ring, registered on the kvfabric_fdpass addon's exports (command_ring_client.cc).
#pragma once
#include <napi.h>

namespace kvf {
void InitCommandRing(Napi::Env env, Napi::Object exports);
}  // namespace kvf
