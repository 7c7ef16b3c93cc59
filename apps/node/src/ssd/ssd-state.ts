// What the SSD tier's parts share (types only): the tier's options, counters and the core the writer and the
// promoter work against (SsdTier implements it).
import type { BlockTier } from '@kvfabric/common';
import type { Pool, SsdEngine } from '@kvfabric/native';
import type { Logger } from '@kvfabric/common/observability';
import type { BlockIndex } from '../block-index.js';
import type { Evictor } from '../eviction.js';
import type { NamespaceRegistry } from '../namespaces.js';
import type { SsdCatalog } from './ssd-catalog.js';
import type { SsdDrive } from './ssd-drives.js';

export type SsdWriteMode = 'evict' | 'through';

export interface SsdTierOptions {
  paths: readonly string[];
  /** Bytes per path. */
  capacityBytes: number;
  writeMode: SsdWriteMode;
  wipe: boolean;
  pool: Pool;
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  evictor: Evictor;
  logger: Logger;
  /** Test and bench override of the I/O engine (default: io_uring, else threads). */
  engine?: SsdEngine;
}

export interface SsdCounters {
  writtenBlocks: number;
  writtenBytes: number;
  promotedBlocks: number;
  readBytes: number;
  /** SSD extents evicted (least recently used) to make room. */
  evictedBlocks: number;
  /** Blocks DRAM evicted before the writer got them onto SSD (lost to the node). */
  droppedBlocks: number;
  /** Blocks whose bytes read back differed from their content sum (dropped). */
  mismatchedBlocks: number;
  /** Blocks not reused because their namespace's geometry changed. */
  geometryDroppedBlocks: number;
  recoveredBlocks: number;
  replayDroppedRecords: number;
  replaySeconds: number;
  ioErrors: number;
}

/** What the node is told about the tier's blocks (the reporter, when there is a metaserver). */
export interface SsdListener {
  /** A block left the node: neither in DRAM nor on SSD now. */
  removed(namespace: string, hash: Uint8Array): void;
  /** `removed` for a packed run of hashes (`hashLen` bytes each) of one namespace. */
  removedMany(namespace: string, packed: Uint8Array, hashLen: number): void;
  /** A block the node holds moved: written to SSD or promoted (both), or its SSD copy went (dram). */
  moved(namespace: string, hash: Uint8Array, tier: BlockTier): void;
  /** `moved` for a packed run of hashes (`hashLen` bytes each) of one namespace. */
  movedMany(namespace: string, packed: Uint8Array, hashLen: number, tier: BlockTier): void;
}

/** The tier as its writer and promoter see it. */
export interface SsdTierCore {
  readonly opts: SsdTierOptions;
  readonly drives: SsdDrive[];
  readonly catalog: SsdCatalog;
  readonly counters: SsdCounters;
  readonly listener: SsdListener | undefined;
  readonly observeIo: ((op: 'read' | 'write', seconds: number) => void) | undefined;
  has(namespace: string, hash: Uint8Array): boolean;
  forget(id: number, dramHolds: boolean, stamp?: number): Promise<void>;
  failed(drive: SsdDrive, err: unknown): void;
  maybeCompact(drive: SsdDrive): Promise<void>;
}
