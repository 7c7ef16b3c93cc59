// What the node needs from the data path (native Pool, Region, CopyEngine), as small interfaces: the engine
// core is written and unit tested against these; native-data-path.ts binds them to @kvfabric/native.
import type { Pool } from '@kvfabric/native';

/** Memory that copies move bytes between (a pool or a mapped region). Opaque to the core. */
export type Memory = object;

export interface PoolStatsLike {
  capacityBytes: number;
  usedBytes: number;
}

export interface PagePool {
  /** The largest page the pool can hand out. */
  readonly maxPageBytes: number;
  readonly memory: Memory;
  /** `count` pages (all or nothing) as offsets, or null when they do not fit. */
  allocMany(pageBytes: number, count: number): Float64Array | null;
  free(offset: number, pageBytes: number): void;
  stats(): PoolStatsLike;
}

export interface MappedRegion {
  readonly sizeBytes: number;
  /** What was mapped, for logs (RegionFile.label). */
  readonly label: string;
  readonly memory: Memory;
  close(): void;
}

/** A registration's region: the token of a region the engine handed over, and the bytes to map. */
export interface RegionSource {
  token: string;
  sizeBytes: number;
}

/** A descriptor to map (the caller keeps and closes it) and what to call it in messages. */
export interface RegionFile {
  fd: number;
  label: string;
}

export interface Copier {
  /** One batch of (src offset, dst offset, length) descriptors; resolves when every byte moved. */
  copy(
    src: Memory,
    dst: Memory,
    srcOffsets: Float64Array,
    dstOffsets: Float64Array,
    lengths: Float64Array,
  ): Promise<{ bytes: number }>;
  /** The checksum of each `pageBytes`-long page of `memory` at `pages`: (low, high) 32-bit halves per page, in order. */
  sum(memory: Memory, pages: Float64Array, pageBytes: number): Promise<Uint32Array>;
  /** The indexes of the pages of `memory` at `pages` whose checksum differs from `expected` ((low, high) each). */
  verify(memory: Memory, pages: Float64Array, pageBytes: number, expected: Uint32Array): Promise<Uint32Array>;
}

export interface DataPath {
  pool: PagePool;
  copier: Copier;
  /**
   * The native pool under `pool`, present when a one-sided transport can read from and write into it: what remote
   * pulls (serving peers and pulling from them) need. Data paths without it serve local hits only.
   */
  readonly remotePullPool?: Pool;
  /** Maps the first `sizeBytes` of an engine's region; throws REGION_INVALID (KvError) when it cannot. */
  openRegion(file: RegionFile, sizeBytes: number): MappedRegion;
  close(): void;
}
