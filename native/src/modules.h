// Each native module registers its classes and functions on the addon's exports.
// addon.cc calls every Init* below; a module owns its own .cc/.h files.
#pragma once
#include <napi.h>

namespace kvf {
void InitPool(Napi::Env env, Napi::Object exports);       // pool.cc: arena + page allocator
void InitRegion(Napi::Env env, Napi::Object exports);     // region.cc: engine shared-memory regions
void InitRegionHandover(Napi::Env env, Napi::Object exports);  // region_handover.cc: engines pass region fds
void InitCopy(Napi::Env env, Napi::Object exports);       // copy_engine.cc: batched copies on worker threads
void InitBlockIndex(Napi::Env env, Napi::Object exports);  // block_index_js.cc: the node's block index
void InitLeaseTable(Napi::Env env, Napi::Object exports);  // lease_table_js.cc: the engines' leases
void InitEngineOps(Napi::Env env, Napi::Object exports);  // engine_ops_js.cc: native save, load, allocation
void InitPullOps(Napi::Env env, Napi::Object exports);     // pull_ops_js.cc: a pull's per-block work, per chunk
void InitFlightTable(Napi::Env env, Napi::Object exports);  // flight_table_js.cc: pulls' single-flight claims
void InitKeyIds(Napi::Env env, Napi::Object exports);  // key_ids_js.cc: (tag, hash) -> dense ids
void InitPendingUpdates(Napi::Env env, Napi::Object exports);  // pending_updates_js.cc: the reporter's netted updates
void InitEngineRing(Napi::Env env, Napi::Object exports);  // engine_ring_js.cc: engines' command rings
void InitChecksum(Napi::Env env, Napi::Object exports);   // checksum.cc: page checksums (XXH3-64)
void InitTcp(Napi::Env env, Napi::Object exports);        // tcp_transport.cc: one-sided reads over tcp
void InitVerbs(Napi::Env env, Napi::Object exports);      // verbs_transport.cc: libibverbs via dlopen
void InitCudaIpc(Napi::Env env, Napi::Object exports);    // cuda_ipc_region.cc: GPU memory via CUDA IPC (dlopen)
void InitSsd(Napi::Env env, Napi::Object exports);        // ssd_file_js.cc: the SSD tier's O_DIRECT files
}  // namespace kvf
