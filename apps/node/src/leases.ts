// Leases: the pin a Query hands to the Loads that consume it. They live in native memory (@kvfabric/native's
// LeaseTable: native/src/lease_table.h), so the engines' command rings create, consume and release them off the
// JavaScript thread on the same table as the gRPC path. This gives the node's code its clock (`now`, injectable for
// tests) and its errors (KvError). A lease belongs to one engine (its TP group's number, instances.ts), pins its
// blocks while it lives, is consumed once per TP rank, expires after the lease TTL and can be released early.
import { toKvError } from '@kvfabric/common';
import {
  LeaseTable as NativeLeaseTable,
  type BlockIndex,
  type LeaseCounters,
  type PrefixLease,
} from '@kvfabric/native';

export type { LeaseCounters, PrefixLease } from '@kvfabric/native';

export interface LeaseTableOptions {
  index: BlockIndex;
  ttlMs: number;
  now?: () => number;
}

/** A new lease: its id (16 characters) and when it expires. */
export interface LeaseGrant {
  id: string;
  expiresAtMs: number;
}

function kv<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toKvError(err);
  }
}

export class LeaseTable {
  /** The native table, for native users (the command rings: @kvfabric/native's nativeLeaseTable). */
  readonly native: NativeLeaseTable;
  private readonly now: () => number;

  constructor(opts: LeaseTableOptions) {
    this.native = kv(() => new NativeLeaseTable(opts.index, opts.ttlMs));
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.native.size;
  }

  get ttlMs(): number {
    return this.native.ttlMs;
  }

  counters(): LeaseCounters {
    return this.native.counters();
  }

  /** Pins `slots` for engine `owner` in namespace `ns`; each of `ranks` TP ranks loads once. */
  create(owner: number, ns: number, slots: Int32Array, ranks: number): LeaseGrant {
    return kv(() => this.native.create(owner, ns, slots, ranks, this.clock()));
  }

  /**
   * A lease on the prefix hit of `count` hashes (`hashLen` bytes each, back to back in `packed`) in namespace `ns`,
   * looked up and pinned under one index lock (no eviction from another thread in between); none when nothing hits.
   */
  createForPrefix(
    owner: number,
    ns: number,
    packed: Buffer,
    hashLen: number,
    count: number,
    ranks: number,
  ): PrefixLease {
    return kv(() => this.native.createForPrefix(owner, ns, packed, hashLen, count, ranks, this.clock()));
  }

  /**
   * Consumes the lease for `rank` of engine `owner` loading `count` blocks of namespace `ns`: the lease's first
   * `count` slots, pinned once more for the load (the caller unpins them after its copy). LEASE_* or
   * INVALID_ARGUMENT (more blocks than the lease's hit) otherwise, changing nothing.
   */
  consume(id: string, owner: number, ns: number, rank: number, count: number): Int32Array {
    return kv(() => this.native.consume(id, owner, ns, rank, count, this.clock()));
  }

  release(id: string, owner: number): void {
    kv(() => this.native.release(id, owner, this.clock()));
  }

  /** Ends every expired lease; returns how many. */
  sweep(): number {
    return kv(() => this.native.sweep(this.clock()));
  }

  /** Ends every lease of an engine that is gone; returns how many. */
  dropEngine(owner: number): number {
    return kv(() => this.native.dropOwner(owner));
  }

  /** Ends all leases (shutdown). */
  clear(): void {
    kv(() => this.native.clear());
  }

  private clock(): number {
    return Math.floor(this.now());
  }
}
