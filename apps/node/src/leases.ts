// Leases: the pin a Query hands to the Loads that consume it. A lease belongs to one engine (its TP group),
// is consumed once per TP rank, expires after the lease TTL, and can be released early. While it lives, its
// blocks are pinned (through the `pin`/`unpin` callbacks). Pure: no gRPC, no native code.
import { randomBytes } from 'node:crypto';
import { KvError } from '@kvfabric/common';

export interface Lease {
  id: string;
  engineId: string;
  ns: number;
  slots: Int32Array;
  /** Ranks that must load before the lease is used up. */
  ranks: number;
  consumed: Uint8Array;
  consumedCount: number;
  expiresAtMs: number;
}

export interface LeaseTableOptions {
  ttlMs: number;
  now?: () => number;
  pin: (slots: Int32Array) => void;
  unpin: (slots: Int32Array) => void;
}

type Ended = 'expired' | 'consumed' | 'released';
const TOMBSTONES = 16_384;

export class LeaseTable {
  private readonly live = new Map<string, Lease>();
  /** Recently ended leases, so a late Load gets LEASE_EXPIRED / LEASE_CONSUMED instead of LEASE_UNKNOWN. */
  private readonly ended = new Map<string, Ended>();
  private readonly now: () => number;
  readonly counters = { created: 0, consumed: 0, expired: 0, released: 0 };

  constructor(private readonly opts: LeaseTableOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.live.size;
  }

  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /** Pins `slots` for the engine and returns the lease. */
  create(engineId: string, ns: number, slots: Int32Array, ranks: number): Lease {
    const lease: Lease = {
      id: randomBytes(12).toString('base64url'),
      engineId,
      ns,
      slots,
      ranks,
      consumed: new Uint8Array(ranks),
      consumedCount: 0,
      expiresAtMs: this.now() + this.opts.ttlMs,
    };
    this.opts.pin(slots);
    this.live.set(lease.id, lease);
    this.counters.created++;
    return lease;
  }

  /**
   * Consumes the lease for `rank` of `engineId`. The caller pins what it copies for the duration of the copy:
   * when the last rank consumes, the lease (and its pin) is gone.
   */
  consume(id: string, engineId: string, rank: number): Lease {
    const lease = this.get(id, engineId);
    if (rank < 0 || rank >= lease.ranks) throw new KvError('LEASE_FOREIGN', `lease ${id}: tp_rank ${rank} is not one of its ${lease.ranks} ranks`);
    if (lease.consumed[rank] === 1) throw new KvError('LEASE_CONSUMED', `lease ${id}: already loaded by tp_rank ${rank}`);
    lease.consumed[rank] = 1;
    lease.consumedCount++;
    if (lease.consumedCount === lease.ranks) this.end(lease, 'consumed');
    return lease;
  }

  /** Undoes a rank's consumption (its load failed before copying anything), when the lease still lives. */
  unconsume(lease: Lease, rank: number): void {
    if (this.live.get(lease.id) !== lease || lease.consumed[rank] !== 1) return;
    lease.consumed[rank] = 0;
    lease.consumedCount--;
  }

  release(id: string, engineId: string): void {
    const lease = this.get(id, engineId);
    this.end(lease, 'released');
  }

  /** Ends every expired lease; returns how many. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const lease of this.live.values()) {
      if (lease.expiresAtMs <= now) {
        this.end(lease, 'expired');
        n++;
      }
    }
    return n;
  }

  /** Ends every lease of an engine that is gone. */
  dropEngine(engineId: string): number {
    let n = 0;
    for (const lease of this.live.values()) {
      if (lease.engineId === engineId) {
        this.end(lease, 'released');
        n++;
      }
    }
    return n;
  }

  /** Ends all leases (shutdown). */
  clear(): void {
    for (const lease of this.live.values()) this.end(lease, 'released');
  }

  /** The live lease, or the precise reason it cannot be used by `engineId`. */
  get(id: string, engineId: string): Lease {
    const lease = this.live.get(id);
    if (!lease) {
      const ended = this.ended.get(id);
      if (ended === 'expired') throw new KvError('LEASE_EXPIRED', `lease ${id}: expired`);
      if (ended === 'consumed') throw new KvError('LEASE_CONSUMED', `lease ${id}: already loaded by every rank`);
      throw new KvError('LEASE_UNKNOWN', `lease_id: no such lease ${JSON.stringify(id)}${ended === 'released' ? ' (released)' : ''}`);
    }
    if (lease.engineId !== engineId) throw new KvError('LEASE_FOREIGN', `lease ${id}: belongs to another engine`);
    if (lease.expiresAtMs <= this.now()) {
      this.end(lease, 'expired');
      throw new KvError('LEASE_EXPIRED', `lease ${id}: expired`);
    }
    return lease;
  }

  private end(lease: Lease, why: Ended): void {
    if (!this.live.delete(lease.id)) return;
    this.opts.unpin(lease.slots);
    this.counters[why]++;
    this.ended.set(lease.id, why);
    if (this.ended.size > TOMBSTONES) this.ended.delete(this.ended.keys().next().value!);
  }
}
