// The node's memory pool: one arena carved into pages. JavaScript holds page handles (byte offsets into the
// arena, exact JS numbers), never memory; the page allocator lives in native code (O(1) alloc/free, no
// per-page JS object).
import { binding } from './loader.js';
import {
  NativeError,
  callNative,
  checkBoolean,
  checkInteger,
  checkKeys,
  checkObject,
  invalidArgument,
} from './errors.js';
import { readMemory, writeMemory } from './memory-io.js';

export { NativeError, type NativeErrorCode } from './errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Smallest page size the allocator accepts. */
export const MIN_PAGE_BYTES = 64;
/** At most this many pages per slab (slabBytes / pageBytes), bounding per-slab bookkeeping. */
export const MAX_PAGES_PER_SLAB = 1 << 24;

/** Where the native object behind a Pool or Region sits; used by CopyEngine and the transports. */
export const kNative: unique symbol = Symbol('kvfabric.native');

/** A Pool or a Region: memory that copies and transports move bytes between. */
export interface NativeMemory {
  readonly [kNative]: object;
  readonly closed: boolean;
}

/** The native object of a Pool/Region for an addon call, or INVALID_ARGUMENT naming `field`. */
export function nativeMemory(value: unknown, field: string): object {
  if (value === null || typeof value !== 'object' || !(kNative in value)) {
    throw invalidArgument(field, 'a Pool or a Region', value);
  }
  return (value as NativeMemory)[kNative];
}

export interface PoolOptions {
  /** Arena size in bytes (whole slabs are allocatable: capacity = floor(size / slabBytes) * slabBytes). */
  sizeBytes: number;
  /** Try MAP_HUGETLB; falls back to 4 KiB pages + transparent huge pages, reason in `hugepagesReason`. */
  hugepages?: boolean;
  /** mlock the arena; on failure the pool still works, reason in `mlockReason`. */
  mlock?: boolean;
  /** Pre-fault the arena on this many threads at creation (0: fault lazily). Default 0. */
  prefaultThreads?: number;
  /**
   * Allocator slab size: the unit handed to one page size at a time and the largest page size. Multiple of
   * 4 KiB in 4 KiB..1 GiB. Default: 64 MiB, halved (down to 64 KiB) until the pool holds at least 8 slabs.
   */
  slabBytes?: number;
}

export interface PoolStats {
  /** Allocatable bytes (whole slabs). */
  capacityBytes: number;
  /** Bytes in allocated pages. */
  usedBytes: number;
  /** capacityBytes - usedBytes (includes slack at the end of partly used slabs). */
  freeBytes: number;
  /** Longest run of contiguous wholly free slabs: the most any page size can still get. */
  largestFreeRunBytes: number;
  pagesAllocated: number;
  slabBytes: number;
  slabsTotal: number;
  slabsFree: number;
}

interface NativePool {
  alloc(pageBytes: number): number | null;
  allocMany(pageBytes: number, count: number): Float64Array | null;
  free(offset: number, pageBytes?: number): void;
  stats(): PoolStats;
  info(): {
    sizeBytes: number;
    hugepages: boolean;
    hugepagesReason: string | null;
    mlocked: boolean;
    mlockReason: string | null;
  };
  write(offset: number, data: Uint8Array): void;
  read(offset: number, length: number): Buffer;
  close(): void;
}

export function defaultSlabBytes(sizeBytes: number): number {
  let slab = 64 * MiB;
  while (slab > 64 * KiB && slab * 8 > sizeBytes) slab /= 2;
  return slab;
}

export class Pool implements NativeMemory, Disposable {
  readonly sizeBytes: number;
  readonly slabBytes: number;
  /** True when the arena is backed by explicit huge pages (MAP_HUGETLB). */
  readonly hugepages: boolean;
  /** Why explicit huge pages are not in use ("not requested", or the mmap failure and the fallback); null when they are. */
  readonly hugepagesReason: string | null;
  readonly mlocked: boolean;
  readonly mlockReason: string | null;
  readonly #native: NativePool;
  #closed = false;

  private constructor(native: NativePool, slabBytes: number) {
    this.#native = native;
    const info = native.info();
    this.sizeBytes = info.sizeBytes;
    this.slabBytes = slabBytes;
    this.hugepages = info.hugepages;
    this.hugepagesReason = info.hugepagesReason;
    this.mlocked = info.mlocked;
    this.mlockReason = info.mlockReason;
  }

  static create(options: PoolOptions): Pool {
    const opts = checkObject('options', options);
    checkKeys('options', opts, ['sizeBytes', 'hugepages', 'mlock', 'prefaultThreads', 'slabBytes']);
    const sizeBytes = checkInteger('sizeBytes', opts.sizeBytes, 4 * KiB);
    const hugepages = opts.hugepages === undefined ? false : checkBoolean('hugepages', opts.hugepages);
    const mlock = opts.mlock === undefined ? false : checkBoolean('mlock', opts.mlock);
    const prefaultThreads =
      opts.prefaultThreads === undefined ? 0 : checkInteger('prefaultThreads', opts.prefaultThreads, 0, 1024);
    const slabBytes =
      opts.slabBytes === undefined
        ? defaultSlabBytes(sizeBytes)
        : checkInteger('slabBytes', opts.slabBytes, 4 * KiB, GiB);
    if (slabBytes % (4 * KiB) !== 0) throw invalidArgument('slabBytes', 'a multiple of 4096', slabBytes);
    if (slabBytes > sizeBytes) throw invalidArgument('slabBytes', `at most sizeBytes (${sizeBytes})`, slabBytes);
    const Native = binding().Pool as new (...args: unknown[]) => NativePool;
    return new Pool(
      callNative(() => new Native(sizeBytes, slabBytes, hugepages, mlock, prefaultThreads)),
      slabBytes,
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  get [kNative](): object {
    return this.#native;
  }

  /** A page of `pageBytes`, as its offset in the arena; null when the pool is exhausted. */
  alloc(pageBytes: number): number | null {
    this.#checkPageBytes(pageBytes);
    return callNative(() => this.#native.alloc(pageBytes));
  }

  /** `count` pages of `pageBytes` (all or nothing): their offsets, or null when the pool cannot hold them all. */
  allocMany(pageBytes: number, count: number): Float64Array | null {
    this.#checkPageBytes(pageBytes);
    checkInteger('count', count, 0, MAX_PAGES_PER_SLAB);
    return callNative(() => this.#native.allocMany(pageBytes, count));
  }

  /**
   * Returns a page. Refuses (POOL_INVALID_HANDLE) offsets that are not an allocated page, double frees, and
   * when `pageBytes` is given, a page of another size.
   */
  free(offset: number, pageBytes?: number): void {
    checkInteger('offset', offset, 0);
    if (pageBytes !== undefined) this.#checkPageBytes(pageBytes);
    callNative(() => this.#native.free(offset, pageBytes));
  }

  stats(): PoolStats {
    return callNative(() => this.#native.stats());
  }

  /** Test/debug helper: copies `data` into the arena at `offset` (bounds-checked against the arena). */
  write(offset: number, data: Uint8Array): void {
    writeMemory(this.#native, offset, data);
  }

  /** Test/debug helper: a copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Buffer {
    return readMemory(this.#native, offset, length);
  }

  /**
   * Releases the arena. Idempotent. Copies already in flight keep their own reference to the memory and finish;
   * the arena is unmapped when the last of them completes. Any later use throws INTERNAL.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #checkPageBytes(pageBytes: number): void {
    if (this.#closed) throw new NativeError('INTERNAL', 'pool: used after close()');
    const min = Math.max(MIN_PAGE_BYTES, Math.ceil(this.slabBytes / MAX_PAGES_PER_SLAB));
    checkInteger('pageBytes', pageBytes, min, this.slabBytes);
  }
}
