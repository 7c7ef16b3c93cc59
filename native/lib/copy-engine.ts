// Batched copies between pool pages and engine regions on native worker threads (never the libuv pool).
// One batch of descriptors (typed arrays) resolves one Promise.
import { availableParallelism } from 'node:os';
import { binding } from './loader.js';
import {
  NativeError,
  callNative,
  checkInteger,
  checkKeys,
  checkObject,
  invalidArgument,
  toNativeError,
} from './errors.js';
import { nativeMemory, type NativeMemory } from './pool.js';

export interface CopyEngineOptions {
  /** Worker threads. Default: os.availableParallelism(). */
  threads?: number;
}

export interface CopyResult {
  bytes: number;
}

export interface SumResult {
  bytes: number;
  /** Per page, in order: the low and high 32 bits of its checksum (XXH3-64, see pageChecksum). */
  checksums: Uint32Array;
}

export interface VerifyResult {
  bytes: number;
  /** Indexes of the pages whose checksum differs from the expected one; empty when every page matched. */
  mismatches: Uint32Array;
}

export interface CopyCounters {
  /** Bytes moved by completed batches. */
  bytesCopied: number;
  /** Completed batches. */
  batches: number;
  batchesInFlight: number;
  /** Batches refused by the native checks (bounds, closed memory) or failed by a bus error. */
  errors: number;
  /** Batches failed by a bus error: a region's file shrank under the copy (its engine truncated it). */
  faults: number;
}

interface NativeCopyEngine {
  copy(
    src: object,
    dst: object,
    srcOffsets: Float64Array,
    dstOffsets: Float64Array,
    lengths: Float64Array,
  ): Promise<CopyResult>;
  sum(memory: object, pageOffsets: Float64Array, pageBytes: number): Promise<SumResult>;
  verify(memory: object, pageOffsets: Float64Array, pageBytes: number, expected: Uint32Array): Promise<VerifyResult>;
  counters(): CopyCounters;
  close(): void;
}

/** Package-internal: how engine-ops.ts submits its native batches through a CopyEngine (closed check, in-flight count). */
export const kSubmit: unique symbol = Symbol('kvfabric.copyEngine.submit');
/** Package-internal: the native engine, for native executors that submit from their own threads (engine-ring.ts). */
export const kNativeEngine: unique symbol = Symbol('kvfabric.copyEngine.native');

export class CopyEngine implements Disposable, AsyncDisposable {
  readonly threads: number;
  readonly #native: NativeCopyEngine;
  #closed = false;
  #inFlight = 0;
  #drained: (() => void) | undefined;
  readonly #settled = (): void => {
    if (--this.#inFlight === 0 && this.#drained) this.#drained();
  };

  constructor(options: CopyEngineOptions = {}) {
    const opts = checkObject('options', options);
    checkKeys('options', opts, ['threads']);
    this.threads = opts.threads === undefined ? availableParallelism() : checkInteger('threads', opts.threads, 1, 256);
    const Native = binding().CopyEngine as new (threads: number) => NativeCopyEngine;
    this.#native = callNative(() => new Native(this.threads));
  }

  /**
   * How copies store their bytes on this CPU: "avx512" or "sse2" (streaming stores, which bypass the cache for
   * copies of 4 KiB and more), or "memcpy" (other architectures).
   */
  static get storeKernel(): string {
    return binding().copyStoreKernel as string;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Copies lengths[i] bytes from src at srcOffsets[i] to dst at dstOffsets[i], for every i, split across the
   * worker threads by bytes. Every descriptor is bounds-checked against both memories before any byte moves;
   * a bad one rejects the whole batch (INVALID_ARGUMENT naming its index) and nothing is copied.
   * Destination ranges must not overlap each other or the batch's source ranges.
   * A region whose file is truncated while the copy runs (a bus error on a worker) fails this batch only: the
   * promise rejects with an Error whose code is REGION_INVALID, some of its bytes may have moved, and the process
   * keeps serving.
   */
  copy(
    src: NativeMemory,
    dst: NativeMemory,
    srcOffsets: Float64Array,
    dstOffsets: Float64Array,
    lengths: Float64Array,
  ): Promise<CopyResult> {
    return this.#copy(src, dst, srcOffsets, dstOffsets, lengths);
  }

  /** The checksum of every `pageBytes`-long page of `memory` at `pageOffsets`, on the worker threads. */
  sum(memory: NativeMemory, pageOffsets: Float64Array, pageBytes: number): Promise<SumResult> {
    return this.#summed(memory, pageOffsets, pageBytes, undefined) as Promise<SumResult>;
  }

  /**
   * Checks `pageBytes`-long pages of `memory` at `pageOffsets` against `expected` checksums ((lo, hi) per page, as
   * sum hands them out) on the worker threads; resolves with the indexes of the pages that differ.
   */
  verify(
    memory: NativeMemory,
    pageOffsets: Float64Array,
    pageBytes: number,
    expected: Uint32Array,
  ): Promise<VerifyResult> {
    return this.#summed(memory, pageOffsets, pageBytes, expected) as Promise<VerifyResult>;
  }

  #summed(
    memory: NativeMemory,
    pageOffsets: Float64Array,
    pageBytes: number,
    expected: Uint32Array | undefined,
  ): Promise<SumResult | VerifyResult> {
    let promise: Promise<SumResult | VerifyResult>;
    try {
      if (this.#closed) throw new NativeError('INTERNAL', 'copy engine: used after close()');
      const m = nativeMemory(memory, 'memory');
      if (!(pageOffsets instanceof Float64Array)) throw invalidArgument('pageOffsets', 'a Float64Array', pageOffsets);
      checkInteger('pageBytes', pageBytes, 1);
      if (expected === undefined) {
        promise = this.#native.sum(m, pageOffsets, pageBytes);
      } else {
        if (!(expected instanceof Uint32Array) || expected.length !== 2 * pageOffsets.length)
          throw invalidArgument('expected', `a Uint32Array of ${2 * pageOffsets.length} elements`, expected);
        promise = this.#native.verify(m, pageOffsets, pageBytes, expected);
      }
    } catch (err) {
      return Promise.reject(toNativeError(err));
    }
    this.#inFlight++;
    promise.then(this.#settled, this.#settled);
    return promise;
  }

  #copy(
    src: NativeMemory,
    dst: NativeMemory,
    srcOffsets: Float64Array,
    dstOffsets: Float64Array,
    lengths: Float64Array,
  ): Promise<CopyResult> {
    let promise: Promise<CopyResult>;
    try {
      if (this.#closed) throw new NativeError('INTERNAL', 'copy engine: used after close()');
      const s = nativeMemory(src, 'src');
      const d = nativeMemory(dst, 'dst');
      if (!(srcOffsets instanceof Float64Array)) throw invalidArgument('srcOffsets', 'a Float64Array', srcOffsets);
      if (!(dstOffsets instanceof Float64Array)) throw invalidArgument('dstOffsets', 'a Float64Array', dstOffsets);
      if (!(lengths instanceof Float64Array)) throw invalidArgument('lengths', 'a Float64Array', lengths);
      if (dstOffsets.length !== srcOffsets.length) {
        throw invalidArgument('dstOffsets', `${srcOffsets.length} elements like srcOffsets`, dstOffsets);
      }
      if (lengths.length !== srcOffsets.length) {
        throw invalidArgument('lengths', `${srcOffsets.length} elements like srcOffsets`, lengths);
      }
      // Per-descriptor checks (integers, bounds against both memories) run natively, in one pass, before any
      // byte moves; a refusal throws synchronously there and becomes this promise's rejection.
      promise = this.#native.copy(s, d, srcOffsets, dstOffsets, lengths);
    } catch (err) {
      return Promise.reject(toNativeError(err));
    }
    // The native promise is returned as is (no extra promise hop on the hot path): it resolves, or rejects with a
    // coded Error (REGION_INVALID) after a bus error, which callers funnel by its code like a NativeError.
    this.#inFlight++;
    promise.then(this.#settled, this.#settled);
    return promise;
  }

  counters(): CopyCounters {
    return this.#native.counters();
  }

  get [kNativeEngine](): object {
    return this.#native;
  }

  /** Runs `submit` with the native engine (synchronous throws become rejections) and counts its batch in flight. */
  [kSubmit]<T>(submit: (native: object) => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      if (this.#closed) throw new NativeError('INTERNAL', 'copy engine: used after close()');
      promise = submit(this.#native);
    } catch (err) {
      return Promise.reject(toNativeError(err));
    }
    this.#inFlight++;
    promise.then(this.#settled, this.#settled);
    return promise;
  }

  /**
   * Stops the worker threads and joins them. Batches already submitted still complete (their promises resolve);
   * new copies throw INTERNAL. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** close(), then wait for the promises of batches submitted before it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
  }
}
