// The node's side of an engine's command ring (native/src/engine_ring.h): attaching one starts a native thread
// that runs the engine's save, load, query and release commands against the node's index, leases, pool and copy
// engine with no JavaScript per call. JavaScript gets `onEvents` with what it must act on, in batches.
import type { BlockIndex } from './block-index.js';
import { kNativeEngine, type CopyEngine } from './copy-engine.js';
import type { EvictedBlocks, InstanceLayout } from './engine-ops.js';
import { callNative, checkInteger, invalidArgument } from './errors.js';
import { nativeLeaseTable, type LeaseTable } from './lease-table.js';
import { binding } from './loader.js';
import { nativeMemory, type NativeMemory, type Pool } from './pool.js';

/** What a ring did since its last events: blocks sealed (per hash length), evictions, counts, problems. */
export interface RingEvents {
  sealed: { hashLen: number; hashes: Buffer }[];
  evicted: EvictedBlocks;
  /** Saves that found the pool full of pinned blocks. */
  exhausted: number;
  counts: {
    saveCalls: number;
    savedBlocks: number;
    sealedBlocks: number;
    presentBlocks: number;
    noSpaceBlocks: number;
    loadCalls: number;
    loadedBlocks: number;
    queries: number;
    queryHashes: number;
    queryHits: number;
    /** Queries answered RETRY: the engine asks them again over gRPC (their missing suffix may be fetched). */
    retries: number;
    regionFailures: number;
    errors: number;
  };
  /** For the log: a save's or load's copy that failed on the engine's region (it shrank), a protocol violation. */
  problems: { op: 'save' | 'load' | 'ring'; message: string }[];
  /** The engine broke the protocol: the ring takes no more commands. */
  broken: boolean;
}

export interface EngineRingOptions {
  /** The ring's memory, mapped (a Region of the handed-over memfd). */
  ring: NativeMemory;
  /** The engine's eventfd, written when completions wait for an engine that sleeps (the ring keeps a duplicate). */
  eventFd: number;
  engine: CopyEngine;
  index: BlockIndex;
  pool: Pool;
  /** The instance's region and layout. */
  region: NativeMemory;
  layout: InstanceLayout;
  leases: LeaseTable;
  /** The engine's number (its leases' owner), this instance's TP rank, and the engine's TP size. */
  owner: number;
  rank: number;
  ranks: number;
  /** Queries whose missing suffix may be fetched (SSD, peers) are answered RETRY, to go over gRPC. */
  fetchable: boolean;
}

export interface EngineRing {
  /** Stops the thread once the commands in flight completed; returns their last events. Idempotent. */
  close(): RingEvents | undefined;
}

export function attachEngineRing(opts: EngineRingOptions, onEvents: (events: RingEvents) => void): EngineRing {
  checkInteger('eventFd', opts.eventFd, 0);
  checkInteger('owner', opts.owner, 0, 2 ** 32 - 1);
  checkInteger('rank', opts.rank, 0, opts.ranks - 1);
  checkInteger('ranks', opts.ranks, 1, 2 ** 16);
  if (typeof onEvents !== 'function') throw invalidArgument('onEvents', 'a function', onEvents);
  const Ring = binding().EngineRing as new (o: object, cb: (e: RingEvents) => void) => EngineRing;
  return callNative(
    () =>
      new Ring(
        {
          ...opts,
          ring: nativeMemory(opts.ring, 'ring'),
          pool: nativeMemory(opts.pool, 'pool'),
          region: nativeMemory(opts.region, 'region'),
          engine: opts.engine[kNativeEngine],
          leases: nativeLeaseTable(opts.leases),
        },
        onEvents,
      ),
  );
}
