// CUDA IPC regions: an engine's GPU memory (its KV cache) opened from a CUDA IPC handle the engine exported
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

interface NativeCudaIpcRegion {
  copy(toHost: boolean, memory: object, descriptors: Float64Array): Promise<number>;
  close(): void;
}

export function cudaStatus(): CudaStatus {
  return callNative(() => (binding().cudaStatus as () => CudaStatus)());
}

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

  /** Opens `sizeBytes` of GPU memory from the engine's IPC `handle` on `device` (an index as this process sees it). */
  static open(handle: Uint8Array, sizeBytes: number, device = 0): CudaIpcRegion {
    if (!(handle instanceof Uint8Array) || handle.length !== CUDA_IPC_HANDLE_BYTES)
      throw invalidArgument('handle', `a ${CUDA_IPC_HANDLE_BYTES}-byte CUDA IPC memory handle`, handle);
    checkInteger('sizeBytes', sizeBytes, 1);
    checkInteger('device', device, 0, 1 << 16);
    const Native = binding().CudaIpcRegion as new (...args: unknown[]) => NativeCudaIpcRegion;
    return new CudaIpcRegion(
      callNative(() => new Native(Buffer.from(handle.buffer, handle.byteOffset, handle.length), sizeBytes, device)),
      sizeBytes,
      device,
    );
  }

  get closed(): boolean {
    return this.#closed;
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
      return await callNative(() => this.#native.copy(toHost, nativeMemory(memory, 'memory'), descriptors));
    } catch (err) {
      throw toNativeError(err);
    }
  }

  /** Closes the IPC mapping and the stream (after copies in flight); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }
}
