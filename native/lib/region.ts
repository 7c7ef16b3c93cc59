// Engine regions: an inference engine's KV memory mapped MAP_SHARED read/write into the node: from a descriptor
// the engine handed over (region-handover.ts), or, for tools and tests, by POSIX shm name or by path.
import { binding } from './loader.js';
import { callNative, checkInteger, invalidArgument } from './errors.js';
import { readMemory, writeMemory } from './memory-io.js';
import { kNative, type NativeMemory } from './pool.js';

interface NativeRegion {
  write(offset: number, data: Uint8Array): void;
  read(offset: number, length: number): Buffer;
  close(): void;
}

const SHM_NAME = /^\/[^/\0]{1,254}$/;

export class Region implements NativeMemory, Disposable {
  readonly sizeBytes: number;
  /** What was mapped, for logs: `shm:/name` or `path:/dev/shm/x`. */
  readonly source: string;
  readonly #native: NativeRegion;
  #closed = false;

  private constructor(native: NativeRegion, sizeBytes: number, source: string) {
    this.#native = native;
    this.sizeBytes = sizeBytes;
    this.source = source;
  }

  /** Maps the first `sizeBytes` of POSIX shared memory object `name` ("/kv-engine0"). REGION_INVALID if it is missing or smaller. */
  static openShm(name: string, sizeBytes: number): Region {
    if (typeof name !== 'string' || !SHM_NAME.test(name)) {
      throw invalidArgument('name', 'a POSIX shm name like "/kv-engine0" (one leading slash, 2..255 chars)', name);
    }
    return Region.#open('shm', name, sizeBytes);
  }

  /** Maps the first `sizeBytes` of the file at `path` (absolute). REGION_INVALID if it is missing or smaller. */
  static openPath(path: string, sizeBytes: number): Region {
    if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0') || path.length > 4095) {
      throw invalidArgument('path', 'an absolute file path', path);
    }
    return Region.#open('path', path, sizeBytes);
  }

  /**
   * Maps the first `sizeBytes` of the file open as `fd` (a memfd or file an engine handed over). The descriptor is
   * duplicated: the caller still owns and closes `fd`. `label` names the region in messages.
   */
  static fromFd(fd: number, sizeBytes: number, label: string): Region {
    checkInteger('fd', fd, 0, 2 ** 31 - 1);
    checkInteger('sizeBytes', sizeBytes, 1);
    if (typeof label !== 'string') throw invalidArgument('label', 'a string', label);
    const Native = binding().Region as new (...args: unknown[]) => NativeRegion;
    return new Region(
      callNative(() => new Native('fd', fd, sizeBytes, label)),
      sizeBytes,
      `fd:${label}`,
    );
  }

  static #open(kind: 'shm' | 'path', name: string, sizeBytes: number): Region {
    checkInteger('sizeBytes', sizeBytes, 1);
    const Native = binding().Region as new (...args: unknown[]) => NativeRegion;
    return new Region(
      callNative(() => new Native(kind, name, sizeBytes)),
      sizeBytes,
      `${kind}:${name}`,
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  get [kNative](): object {
    return this.#native;
  }

  /** Test/debug helper: copies `data` into the region at `offset` (bounds-checked). */
  write(offset: number, data: Uint8Array): void {
    writeMemory(this.#native, offset, data);
  }

  /** Test/debug helper: a copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Buffer {
    return readMemory(this.#native, offset, length);
  }

  /** Unmaps the region (once in-flight copies finish). Idempotent; later use throws REGION_INVALID. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
