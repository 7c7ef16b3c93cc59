// The node's engine leases, in native memory (src/lease_table.h): the pin a Query hands to the Loads that consume
// it. A lease belongs to one engine (its TP group, a number the node assigns), pins its blocks' index slots while it
// lives, is consumed once per TP rank, expires after the TTL and can be released early; recently ended leases
// leave a tombstone, so a late Load gets LEASE_EXPIRED / LEASE_CONSUMED instead of LEASE_UNKNOWN. The same table is
// used from native threads (the engines' command rings) through `nativeLeaseTable`. The clock is the caller's:
// every call that needs the time takes `nowMs`.
import type { BlockIndex } from './block-index.js';
import { callNative, checkInteger, invalidArgument } from './errors.js';
import { binding } from './loader.js';

export interface LeaseCounters {
  created: number;
  /** Leases loaded by every rank. */
  consumed: number;
  expired: number;
  /** Released early, with their engine, or at shutdown. */
  released: number;
}

export interface CreatedLease {
  id: string;
  expiresAtMs: number;
}

/** A lease on a query's prefix hit: `hits` blocks; no lease (id '', expiresAtMs 0) when `hits` is 0. */
export interface PrefixLease extends CreatedLease {
  hits: number;
}

interface NativeLeaseTable {
  create(owner: number, ns: number, slots: Int32Array, ranks: number, nowMs: number): CreatedLease;
  createForPrefix(
    owner: number,
    ns: number,
    packed: Uint8Array,
    hashLen: number,
    count: number,
    ranks: number,
    nowMs: number,
  ): PrefixLease;
  consume(id: string, owner: number, ns: number, rank: number, count: number, nowMs: number): Int32Array;
  release(id: string, owner: number, nowMs: number): void;
  sweep(nowMs: number): number;
  dropOwner(owner: number): number;
  clear(): void;
  size(): number;
  counters(): LeaseCounters;
  close(): void;
}

const U32_MAX = 0xffff_ffff;
/** The longest lease id looked up; longer ones cannot be ours (ours have 16 characters). */
export const MAX_LEASE_ID_CHARS = 128;
/** The most TP ranks one lease waits for. */
export const MAX_LEASE_RANKS = 65_536;
/** The longest block hash (the index's KeyTable::kMaxKeyBytes). */
const MAX_HASH_BYTES = 64;
const kNative = Symbol('native lease table');

function checkId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_LEASE_ID_CHARS)
    throw invalidArgument('lease_id', `a lease id of 1..${MAX_LEASE_ID_CHARS} characters`, id);
  return id;
}

const owner = (v: unknown) => checkInteger('owner', v, 0, U32_MAX);
const now = (v: unknown) => checkInteger('nowMs', v, 0);

export class LeaseTable {
  readonly [kNative]: NativeLeaseTable;
  readonly ttlMs: number;

  /** A table whose leases pin slots of `index` and live `ttlMs` milliseconds. */
  constructor(index: BlockIndex, ttlMs: number) {
    this.ttlMs = checkInteger('ttlMs', ttlMs, 1);
    const L = binding().LeaseTable as new (index: BlockIndex, ttlMs: number) => NativeLeaseTable;
    this[kNative] = callNative(() => new L(index, ttlMs));
  }

  /** Pins `slots` (live slots of the index) for `owner` in namespace `ns`; `ranks` must each load once. */
  create(ownerId: number, ns: number, slots: Int32Array, ranks: number, nowMs: number): CreatedLease {
    owner(ownerId);
    checkInteger('ns', ns, 0, U32_MAX);
    if (!(slots instanceof Int32Array)) throw invalidArgument('slots', 'an Int32Array', slots);
    checkInteger('ranks', ranks, 1, MAX_LEASE_RANKS);
    now(nowMs);
    return callNative(() => this[kNative].create(ownerId, ns, slots, ranks, nowMs));
  }

  /**
   * A lease on the prefix hit of `count` hashes of `hashLen` bytes, back to back in `packed`: the leading sealed
   * blocks of `ns` are looked up and pinned under one index lock, so none can be evicted (and its slot reused by
   * another block, from another thread) between the lookup and the pin. No lease when nothing hits.
   */
  createForPrefix(
    ownerId: number,
    ns: number,
    packed: Uint8Array,
    hashLen: number,
    count: number,
    ranks: number,
    nowMs: number,
  ): PrefixLease {
    owner(ownerId);
    checkInteger('ns', ns, 0, U32_MAX);
    if (!(packed instanceof Uint8Array)) throw invalidArgument('packed', 'a Buffer or Uint8Array', packed);
    checkInteger('hashLen', hashLen, 1, MAX_HASH_BYTES);
    checkInteger('count', count, 0, Math.floor(packed.length / hashLen));
    checkInteger('ranks', ranks, 1, MAX_LEASE_RANKS);
    now(nowMs);
    return callNative(() => this[kNative].createForPrefix(ownerId, ns, packed, hashLen, count, ranks, nowMs));
  }

  /**
   * Consumes lease `id` for `rank` of `ownerId` loading `count` blocks into namespace `ns`: returns the lease's
   * first `count` slots, pinned once more for the load (unpin them with `index.unpinMany` after the copy). When the
   * last rank consumed, the lease ends. Refusals (LEASE_UNKNOWN, LEASE_EXPIRED, LEASE_CONSUMED, LEASE_FOREIGN,
   * INVALID_ARGUMENT for more blocks than the lease's hit) change nothing, but an expired lease ends.
   */
  consume(id: string, ownerId: number, ns: number, rank: number, count: number, nowMs: number): Int32Array {
    checkId(id);
    owner(ownerId);
    checkInteger('ns', ns, 0, U32_MAX);
    checkInteger('tp_rank', rank, 0, U32_MAX);
    checkInteger('count', count, 0, U32_MAX);
    now(nowMs);
    return callNative(() => this[kNative].consume(id, ownerId, ns, rank, count, nowMs));
  }

  /** Ends a live lease of `ownerId` early (LEASE_UNKNOWN, LEASE_EXPIRED, LEASE_FOREIGN otherwise). */
  release(id: string, ownerId: number, nowMs: number): void {
    checkId(id);
    owner(ownerId);
    now(nowMs);
    callNative(() => this[kNative].release(id, ownerId, nowMs));
  }

  /** Ends every lease expired at `nowMs`; returns how many. */
  sweep(nowMs: number): number {
    now(nowMs);
    return callNative(() => this[kNative].sweep(nowMs));
  }

  /** Ends every lease of an engine that is gone; returns how many. */
  dropOwner(ownerId: number): number {
    owner(ownerId);
    return callNative(() => this[kNative].dropOwner(ownerId));
  }

  /** Ends every lease. */
  clear(): void {
    callNative(() => this[kNative].clear());
  }

  /** Live leases (0 once closed). */
  get size(): number {
    return this[kNative].size();
  }

  counters(): LeaseCounters {
    return this[kNative].counters();
  }

  /** Ends every lease and refuses further calls; idempotent. */
  close(): void {
    this[kNative].close();
  }
}

/** The addon object behind a LeaseTable, for native code that works on it (keep `table` referenced meanwhile). */
export function nativeLeaseTable(table: LeaseTable): object {
  if (!(table instanceof LeaseTable)) throw invalidArgument('leases', 'a LeaseTable', table);
  return table[kNative];
}
