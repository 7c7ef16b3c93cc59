// One SSD tier file (src/ssd_file_js.cc): pages moved between pool memory and a file opened with O_DIRECT, in
// batches, by io_uring on a native thread that owns the ring (or pread/pwrite threads where io_uring is refused:
// `engine` and `fallbackReason` say which and why). Every page carries an XXH3-64 content checksum: a write
// returns the sums of what it wrote and resolves only once the bytes are durable (fdatasync); a read checks each
// page it landed against the sum it is given. File slots are 4096-aligned; a page whose pool address or length is
// not a multiple of 4096 goes through a bounce buffer (its slot rounded up).
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

export const SSD_ALIGN = 4096;

/** Bytes a page of `pageBytes` takes in an SSD file. */
export function ssdSlotBytes(pageBytes: number): number {
  return Math.ceil(pageBytes / SSD_ALIGN) * SSD_ALIGN;
}

export type SsdEngine = 'auto' | 'io_uring' | 'threads';

export interface SsdFileOptions {
  path: string;
  /** The file's size (created or resized to it), a multiple of 4096. */
  sizeBytes: number;
  /** auto (default): io_uring, else pread/pwrite threads; io_uring: fail when refused; threads: never io_uring. */
  engine?: SsdEngine;
  /** io_uring entries: page operations in flight (default 64). */
  queueDepth?: number;
  /** pread/pwrite threads of the fallback (default 4). */
  threads?: number;
}

export interface SsdFileCounters {
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  batchesInFlight: number;
  /** Page operations the device (or the fault hook) failed. */
  errors: number;
  /** Pages read back whose checksum differed. */
  mismatches: number;
  /** Pages that needed the bounce buffer (not 4096-aligned in the pool). */
  bounced: number;
}

export interface SsdWriteResult {
  bytes: number;
  /** Per page, in order: the low and high 32 bits of its XXH3-64 sum. */
  checksums: Uint32Array;
}

/** Sums a write need not compute: the pages' own, known since their bytes were stored (a sealed page's). */
export interface KnownSums {
  /** (lo, hi) per page, in the order of the write's pages; read where `known` is set. */
  sums: Uint32Array;
  /** Per page: 1 when its sum is in `sums` (not summed again), 0 when the write sums it. */
  known: Uint8Array;
}

export interface SsdReadResult {
  bytes: number;
  /** Indexes of the pages whose bytes differ from the expected sum. */
  mismatches: Uint32Array;
}

interface NativeSsdFile {
  readonly engine: 'io_uring' | 'threads';
  readonly fallbackReason?: string;
  write(
    pool: object,
    poolOffsets: Float64Array,
    fileOffsets: Float64Array,
    lengths: Float64Array,
    knownSums?: Uint32Array,
    known?: Uint8Array,
  ): Promise<Raw>;
  read(
    pool: object,
    poolOffsets: Float64Array,
    fileOffsets: Float64Array,
    lengths: Float64Array,
    expected: Uint32Array,
  ): Promise<Raw>;
  counters(): SsdFileCounters;
  injectFaults(n: number): void;
  close(): void;
}
interface Raw {
  bytes: number;
  data?: Buffer;
}

export class SsdFile {
  readonly path: string;
  readonly sizeBytes: number;
  /** Which engine does the I/O. */
  readonly engine: 'io_uring' | 'threads';
  /** Why not io_uring, when not. */
  readonly fallbackReason: string | undefined;
  readonly #native: NativeSsdFile;
  #closed = false;

  /** Opens (creating) the file; SSD_FAILED names the path and why (tmpfs, no O_DIRECT, no space, io_uring). */
  static open(options: SsdFileOptions): SsdFile {
    return new SsdFile(options);
  }

  private constructor(options: SsdFileOptions) {
    const o = checkObject('options', options);
    checkKeys('options', o, ['path', 'sizeBytes', 'engine', 'queueDepth', 'threads']);
    if (typeof options.path !== 'string' || options.path.length === 0)
      throw invalidArgument('path', 'a file path', options.path);
    checkInteger('sizeBytes', options.sizeBytes, SSD_ALIGN);
    if (options.sizeBytes % SSD_ALIGN !== 0)
      throw invalidArgument('sizeBytes', 'a multiple of 4096', options.sizeBytes);
    const engine = options.engine ?? 'auto';
    if (!['auto', 'io_uring', 'threads'].includes(engine))
      throw invalidArgument('engine', 'auto, io_uring or threads', engine);
    const depth = checkInteger('queueDepth', options.queueDepth ?? 64, 1, 4096);
    const threads = checkInteger('threads', options.threads ?? 4, 1, 256);
    const Native = binding().SsdFileNative as new (...args: unknown[]) => NativeSsdFile;
    this.#native = callNative(() => new Native(options.path, options.sizeBytes, engine, depth, threads));
    this.path = options.path;
    this.sizeBytes = options.sizeBytes;
    this.engine = this.#native.engine;
    this.fallbackReason = this.#native.fallbackReason;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Writes each pool page to its file slot; resolves with the pages' sums once they are durable. Pages whose sum is
   * `given` are not read to be summed (their given sum comes back); the caller vouches that it is the sum of the
   * page's bytes (a sealed page: immutable, and summed as it was stored).
   */
  async write(
    pool: NativeMemory,
    poolOffsets: Float64Array,
    fileOffsets: Float64Array,
    lengths: Float64Array,
    given?: KnownSums,
  ): Promise<SsdWriteResult> {
    const raw = await this.#call((n) =>
      given
        ? n.write(nativeMemory(pool, 'pool'), poolOffsets, fileOffsets, lengths, given.sums, given.known)
        : n.write(nativeMemory(pool, 'pool'), poolOffsets, fileOffsets, lengths),
    );
    const data = raw.data ?? Buffer.alloc(0);
    const checksums = new Uint32Array(poolOffsets.length * 2);
    for (let i = 0; i < checksums.length; i++) checksums[i] = data.readUInt32LE(4 * i);
    return { bytes: raw.bytes, checksums };
  }

  /** Reads each file slot into its pool page and checks it against `expected` ((lo, hi) per page). */
  async read(
    pool: NativeMemory,
    poolOffsets: Float64Array,
    fileOffsets: Float64Array,
    lengths: Float64Array,
    expected: Uint32Array,
  ): Promise<SsdReadResult> {
    const raw = await this.#call((n) =>
      n.read(nativeMemory(pool, 'pool'), poolOffsets, fileOffsets, lengths, expected),
    );
    const bad: number[] = [];
    const data = raw.data ?? Buffer.alloc(0);
    for (let i = 0; i < data.length; i++) if (data[i] !== 0) bad.push(i);
    return { bytes: raw.bytes, mismatches: Uint32Array.from(bad) };
  }

  counters(): SsdFileCounters {
    return this.#native.counters();
  }

  /** Test hook: the next `n` page operations fail with EIO, as a failing device would. */
  injectFaults(n: number): void {
    this.#native.injectFaults(checkInteger('n', n, 0));
  }

  /** Finishes what was submitted (promises still pending then reject), closes the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  async #call(fn: (n: NativeSsdFile) => Promise<Raw>): Promise<Raw> {
    try {
      if (this.#closed) throw new NativeError('SSD_FAILED', `${this.path}: used after close()`);
      return await fn(this.#native);
    } catch (err) {
      throw toNativeError(err);
    }
  }
}
