// CUDA IPC regions: an engine's GPU memory (its KV cache) opened from CUDA IPC handles the engine exported
// (cudaIpcGetMemHandle), so the node copies between its pool and the GPU directly, on a CUDA stream of its own.
// libcuda is loaded at run time: on a host without a driver cudaStatus() says why and open() fails with
// REGION_INVALID naming the reason; nothing else in the addon needs CUDA.
import { binding } from './loader.js';
import { callNative, checkInteger, invalidArgument, toNativeError } from './errors.js';
import { nativeMemory, type NativeMemory } from './pool.js';

/** Bytes of a CUDA IPC memory handle (CUipcMemHandle / cudaIpcMemHandle_t). */
export const CUDA_IPC_HANDLE_BYTES = 64;

export interface CudaStatus {
  /** Whether a driver with at least one device is there. */
  available: boolean;
  /** Why not, when unavailable (e.g. `no CUDA driver: dlopen libcuda.so.1: ...`); empty when available. */
  reason: string;
  devices: number;
}

/** One copy between host memory (a Pool or Region) and the GPU region. */
export interface CudaCopy {
  hostOffset: number;
  regionOffset: number;
  length: number;
}

/** One allocation of the region: `sizeBytes` at `offsetBytes` into the allocation the engine's IPC `handle` names. */
export interface CudaIpcPart {
  handle: Uint8Array;
  offsetBytes: number;
  sizeBytes: number;
}

interface NativeCudaIpcRegion {
  copy(toHost: boolean, memory: object, descriptors: Float64Array): Promise<{ bytes: number }>;
  close(): void;
}

/** Package-internal: the native region, for the native save and load (engine-ops.ts). */
export const kCudaNative: unique symbol = Symbol('kvfabric.cudaIpcRegion.native');

export function cudaStatus(): CudaStatus {
  return callNative(() => (binding().cudaStatus as () => CudaStatus)());
}

/** The most parts one region may have (a KV cache allocated per layer: one per layer). */
export const MAX_CUDA_IPC_PARTS = 4096;

export class CudaIpcRegion {
  readonly #native: NativeCudaIpcRegion;
  #closed = false;

  private constructor(
    native: NativeCudaIpcRegion,
    readonly sizeBytes: number,
    readonly device: number,
  ) {
    this.#native = native;
  }

  /**
   * Opens GPU memory on `device` (an index as this process sees it) from the engine's IPC handles: the region is
   * `parts` back to back. INVALID_ARGUMENT names a malformed field (`parts[i].handle`, ...); REGION_INVALID says why
   * the driver refused (no driver, a bad handle, a part beyond its allocation).
   */
  static open(parts: readonly CudaIpcPart[], device = 0): CudaIpcRegion {
    if (!Array.isArray(parts) || parts.length < 1 || parts.length > MAX_CUDA_IPC_PARTS)
      throw invalidArgument('parts', `1..${MAX_CUDA_IPC_PARTS} parts`, parts);
    checkInteger('device', device, 0, 1 << 16);
    const handles = Buffer.alloc(parts.length * CUDA_IPC_HANDLE_BYTES);
    const offsets = new Float64Array(parts.length);
    const sizes = new Float64Array(parts.length);
    let total = 0;
    parts.forEach((p, i) => {
      if (!(p.handle instanceof Uint8Array) || p.handle.length !== CUDA_IPC_HANDLE_BYTES)
        throw invalidArgument(
          `parts[${i}].handle`,
          `a ${CUDA_IPC_HANDLE_BYTES}-byte CUDA IPC memory handle`,
          p.handle instanceof Uint8Array ? `${p.handle.length} bytes` : p.handle,
        );
      handles.set(p.handle, i * CUDA_IPC_HANDLE_BYTES);
      sizes[i] = checkInteger(`parts[${i}].sizeBytes`, p.sizeBytes, 1);
      offsets[i] = checkInteger(`parts[${i}].offsetBytes`, p.offsetBytes, 0);
      if (!Number.isSafeInteger(p.offsetBytes + p.sizeBytes))
        throw invalidArgument(`parts[${i}].offsetBytes`, 'offset + size below 2^53', p.offsetBytes);
      total += p.sizeBytes;
    });
    if (!Number.isSafeInteger(total)) throw invalidArgument('parts', 'sizes adding up to less than 2^53', total);
    const Native = binding().CudaIpcRegion as new (...args: unknown[]) => NativeCudaIpcRegion;
    return new CudaIpcRegion(
      callNative(() => new Native(handles, offsets, sizes, device)),
      total,
      device,
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  get [kCudaNative](): object {
    return this.#native;
  }

  /** GPU → host memory; resolves the bytes copied once the stream has finished them. */
  toHost(memory: NativeMemory, copies: readonly CudaCopy[]): Promise<number> {
    return this.#copy(true, memory, copies);
  }

  /** Host memory → GPU. */
  fromHost(memory: NativeMemory, copies: readonly CudaCopy[]): Promise<number> {
    return this.#copy(false, memory, copies);
  }

  async #copy(toHost: boolean, memory: NativeMemory, copies: readonly CudaCopy[]): Promise<number> {
    const descriptors = new Float64Array(copies.length * 3);
    copies.forEach((c, i) => {
      descriptors[i * 3] = checkInteger(`copies[${i}].hostOffset`, c.hostOffset, 0);
      descriptors[i * 3 + 1] = checkInteger(`copies[${i}].regionOffset`, c.regionOffset, 0);
      descriptors[i * 3 + 2] = checkInteger(`copies[${i}].length`, c.length, 0);
    });
    try {
      return (await callNative(() => this.#native.copy(toHost, nativeMemory(memory, 'memory'), descriptors))).bytes;
    } catch (err) {
      throw toNativeError(err);
    }
  }

  /** Finishes the copies already submitted, then closes the stream and the IPC mappings; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }
}
