// The node's data path, native (@kvfabric/native): one Pool, one CopyEngine, the engines' Regions, and the
// executors that do a save's and a load's per-block work natively against the block index. Errors come out as
// KvErrors; nothing here runs per block in JavaScript.
import {
  CopyEngine,
  CudaIpcRegion,
  Pool,
  Region,
  allocatePages,
  createInstanceLayout,
  loadBlocks,
  saveBlocks,
  sealPulled,
  setUpPulled,
  undoPulled,
  type AllocatedPages,
  type BlockIndex,
  type InstanceLayout,
  type InstanceLayoutSpec,
  type PulledChunk,
  type PulledLayout,
  type SaveBlocksResult,
  type SealedPulled,
} from '@kvfabric/native';
import { KvError, toKvError } from '@kvfabric/common';

export type {
  AllocatedPages,
  EvictedBlocks,
  InstanceLayout,
  PulledChunk,
  PulledLayout,
  SaveBlocksResult,
  SealedPulled,
} from '@kvfabric/native';

/** What the pull side and metrics use of the pool: freeing pages and its occupancy. */
export type PagePool = Pick<Pool, 'free' | 'stats'>;

/** What a pull does with its chunks' blocks: sets them up, seals or undoes them, one native call per chunk. */
export type PulledPages = Pick<DataPath, 'setUpPulled' | 'sealPulled' | 'undoPulled'>;

export interface DataPathOptions {
  poolBytes: number;
  /** The pool's slab size (default: sized from poolBytes); tests use one page a slab. */
  slabBytes?: number;
  hugepages?: boolean;
  copyThreads: number;
}

export interface MappedRegion {
  /** Host memory handed over as a descriptor, or GPU memory opened from CUDA IPC handles. */
  readonly kind: 'host' | 'cuda_ipc';
  readonly sizeBytes: number;
  /** What was mapped, for logs (RegionFile.label, or `cuda_ipc:DEVICE (N parts)`). */
  readonly label: string;
  /** Host memory the engine handed over, or the engine's GPU memory (CUDA IPC: its own stream copies). */
  readonly memory: Region | CudaIpcRegion;
  close(): void;
}

/** A handed-over region mapped into the node: host memory. */
export type HostRegion = MappedRegion & { readonly kind: 'host'; readonly memory: Region };

/** A registration's region: the token of a region the engine handed over, and the bytes to map. */
export interface RegionSource {
  token: string;
  sizeBytes: number;
}

/** GPU memory of one device, from the engine's CUDA IPC handles: the parts back to back (proto CudaIpcRegion). */
export interface CudaIpcSource {
  device: number;
  parts: { handle: Uint8Array; offsetBytes: number; sizeBytes: number }[];
}

/** A descriptor to map (the caller keeps and closes it) and what to call it in messages. */
export interface RegionFile {
  fd: number;
  label: string;
}

/** Awaits a native call, its error as a KvError. */
async function kv<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw toKvError(err);
  }
}

export class DataPath {
  readonly pool: Pool;
  readonly engine: CopyEngine;

  constructor(opts: DataPathOptions) {
    // Pre-fault the arena at start-up (parallel), so no save pays first-touch page faults.
    this.pool = Pool.create({
      sizeBytes: opts.poolBytes,
      hugepages: opts.hugepages ?? false,
      prefaultThreads: opts.copyThreads,
      ...(opts.slabBytes !== undefined ? { slabBytes: opts.slabBytes } : {}),
    });
    this.engine = new CopyEngine({ threads: opts.copyThreads });
  }

  /** The largest page the pool can hand out. */
  get maxPageBytes(): number {
    return this.pool.slabBytes;
  }

  /** Maps the first `sizeBytes` of an engine's region; throws REGION_INVALID when it cannot. */
  openRegion(file: RegionFile, sizeBytes: number): HostRegion {
    try {
      const region = Region.fromFd(file.fd, sizeBytes, file.label);
      return {
        kind: 'host',
        sizeBytes: region.sizeBytes,
        label: file.label,
        memory: region,
        close: () => region.close(),
      };
    } catch (err) {
      const e = toKvError(err);
      // A region the node cannot map is the engine's problem to fix: say which one and why.
      throw new KvError(
        e.code === 'INTERNAL' || e.code === 'INVALID_ARGUMENT' ? 'REGION_INVALID' : e.code,
        `region: ${e.message}`,
        { cause: err },
      );
    }
  }

  /**
   * Opens an engine's GPU memory from its CUDA IPC handles; REGION_INVALID naming the field and the driver's reason
   * when it cannot (no driver here, a handle the driver refuses, a part beyond its allocation).
   */
  openCudaRegion(source: CudaIpcSource): MappedRegion {
    try {
      const region = CudaIpcRegion.open(source.parts, source.device);
      const label = `cuda_ipc:${source.device} (${source.parts.length} part${source.parts.length === 1 ? '' : 's'})`;
      return { kind: 'cuda_ipc', sizeBytes: region.sizeBytes, label, memory: region, close: () => region.close() };
    } catch (err) {
      const e = toKvError(err);
      const field = /^(parts\[\d+\]|device)/.test(e.message)
        ? `region.cuda_ipc.${e.message}`
        : `region.cuda_ipc: ${e.message}`;
      throw new KvError(e.code === 'INTERNAL' ? 'REGION_INVALID' : e.code, field, { cause: err });
    }
  }

  /** An instance's geometry, held natively for its saves and loads. */
  layout(spec: InstanceLayoutSpec): InstanceLayout {
    return createInstanceLayout(spec);
  }

  /**
   * A save's per-block work, native (engine_ops.h): see saveBlocks in @kvfabric/native. Its errors are left as they
   * come: a failed copy's error carries the blocks evicted on the way (`evicted`), which the caller still reports.
   */
  save(
    index: BlockIndex,
    region: MappedRegion,
    layout: InstanceLayout,
    blockIds: Uint32Array,
    packed: Uint8Array,
    hashLen: number,
  ): Promise<SaveBlocksResult> {
    return saveBlocks(this.engine, index, this.pool, region.memory, layout, blockIds, packed, hashLen);
  }

  /** Scatters the first blockIds.length blocks of `slots` (pinned) into those blocks of the region. */
  load(
    index: BlockIndex,
    region: MappedRegion,
    layout: InstanceLayout,
    slots: Int32Array,
    blockIds: Uint32Array,
  ): Promise<{ bytes: number }> {
    return kv(loadBlocks(this.engine, index, this.pool, region.memory, layout, slots, blockIds));
  }

  /** Up to `count` pages, evicting unpinned blocks (least recently used, pulled copies first) to make room. */
  allocate(index: BlockIndex, pageBytes: number, count: number): AllocatedPages {
    return allocatePages(index, this.pool, pageBytes, count);
  }

  /**
   * Fresh pages and pinned, unsealed pulled slots for blocks [at, at + count) of `packed` (see setUpPulled in
   * @kvfabric/native): up to the first block the index has already or that no pages are left for.
   */
  setUpPulled(
    index: BlockIndex,
    layout: PulledLayout,
    packed: Uint8Array,
    hashLen: number,
    at: number,
    count: number,
  ): PulledChunk {
    return setUpPulled(index, this.pool, layout, packed, hashLen, at, count);
  }

  /** Seals set-up pulled blocks whose pages arrived and matched `checksums` (kept with them); returns their hashes. */
  sealPulled(index: BlockIndex, slots: Int32Array, checksums: Uint32Array): SealedPulled {
    return sealPulled(index, slots, checksums);
  }

  /** Frees the pages of set-up pulled blocks that did not arrive; their slots go away. */
  undoPulled(index: BlockIndex, slots: Int32Array): void {
    undoPulled(index, this.pool, slots);
  }

  /** The checksum of each `pageBytes`-long pool page at `pages`: (low, high) 32-bit halves per page, in order. */
  async sum(pages: Float64Array, pageBytes: number): Promise<Uint32Array> {
    return (await kv(this.engine.sum(this.pool, pages, pageBytes))).checksums;
  }

  /** The indexes of the pool pages at `pages` whose checksum differs from `expected` ((low, high) each). */
  async verify(pages: Float64Array, pageBytes: number, expected: Uint32Array): Promise<Uint32Array> {
    return (await kv(this.engine.verify(this.pool, pages, pageBytes, expected))).mismatches;
  }

  close(): void {
    this.engine.close();
    this.pool.close();
  }
}
