// The checks of a registration's GPU region (RegionSpec.cuda_ipc) that need no driver: field by field, naming the
// proto field and the bad value. What only the driver can tell (a handle it refuses, a part beyond its allocation,
// no driver at all) comes from opening the region (DataPath.openCudaRegion), as REGION_INVALID.
import { invalid } from '@kvfabric/common';
import type { CudaIpcSource, RegionSource } from './data-path.js';

/** Bytes of a cudaIpcMemHandle_t. */
export const CUDA_IPC_HANDLE_BYTES = 64;
/** Parts of one region at most (one per layer of a KV cache allocated per layer). */
export const MAX_CUDA_IPC_PARTS = 4096;
const MAX_DEVICE = 0xffff;

export function checkCudaIpc(region: RegionSource, cuda: CudaIpcSource): void {
  if (region.token)
    throw invalid('region.token', 'empty with region.cuda_ipc (a region is host memory or GPU memory, not both)');
  if (!Number.isInteger(cuda.device) || cuda.device < 0 || cuda.device > MAX_DEVICE)
    throw invalid('region.cuda_ipc.device', `expected a device ordinal 0..${MAX_DEVICE}`, cuda.device);
  if (cuda.parts.length < 1 || cuda.parts.length > MAX_CUDA_IPC_PARTS)
    throw invalid('region.cuda_ipc.parts', `expected 1..${MAX_CUDA_IPC_PARTS} parts`, cuda.parts.length);
  let total = 0;
  cuda.parts.forEach((p, i) => {
    const at = `region.cuda_ipc.parts[${i}]`;
    if (p.handle.length !== CUDA_IPC_HANDLE_BYTES)
      throw invalid(`${at}.handle`, `expected ${CUDA_IPC_HANDLE_BYTES} bytes (a cudaIpcMemHandle_t)`, p.handle.length);
    if (!Number.isSafeInteger(p.sizeBytes) || p.sizeBytes < 1)
      throw invalid(`${at}.size_bytes`, 'expected a size in bytes, at least 1', p.sizeBytes);
    if (!Number.isSafeInteger(p.offsetBytes) || p.offsetBytes < 0 || !Number.isSafeInteger(p.offsetBytes + p.sizeBytes))
      throw invalid(
        `${at}.offset_bytes`,
        `expected an offset that with size_bytes ${p.sizeBytes} stays below 2^53`,
        p.offsetBytes,
      );
    total += p.sizeBytes;
  });
  if (total !== region.sizeBytes)
    throw invalid('region.size_bytes', `expected the sum of the parts' size_bytes, ${total}`, region.sizeBytes);
}
