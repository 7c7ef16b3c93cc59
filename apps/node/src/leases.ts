// Leases: the pin a Query hands to the Loads that consume it. A lease belongs to one engine (its TP group),
// is consumed once per TP rank, expires after the lease TTL, and can be released early. While it lives, its
// blocks are pinned (through the `pin`/`unpin` callbacks of the shared expiring PinTable); this adds ranks,
// ownership checks and tombstones for precise errors. Pure: no gRPC, no native code.
import { randomBytes } from 'node:crypto';
import { KvError } from '@kvfabric/common';
import { PinTable, type PinEntry } from './pin-table.js';

/** A lease; `owner` is the engine id (its TP group). */
export interface Lease extends PinEntry<string> {
  ns: number;
  /** Ranks that must load before the lease is used up. */
  ranks: number;
  consumed: Uint8Array;
  consumedCount: number;
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
  private readonly pins: PinTable<string, Lease, Ended>;
  /** Recently ended leases, so a late Load gets LEASE_EXPIRED / LEASE_CONSUMED instead of LEASE_UNKNOWN. */
  private readonly ended = new Map<string, Ended>();
  readonly counters = { created: 0, consumed: 0, expired: 0, released: 0 };

  constructor(opts: LeaseTableOptions) {
    this.pins = new PinTable({ ...opts, onEnded: (lease, why) => this.remember(lease, why) });
  }

  get size(): number {
    return this.pins.size;
  }

  get ttlMs(): number {
    return this.pins.ttlMs;
  }

  /** Pins `slots` for the engine and returns the lease. */
  create(engineId: string, ns: number, slots: Int32Array, ranks: number): Lease {
    const lease = this.pins.add({
      id: randomBytes(12).toString('base64url'),
      owner: engineId,
      ns,
      slots,
      ranks,
      consumed: new Uint8Array(ranks),
      consumedCount: 0,
      expiresAtMs: this.pins.expiry(),
    });
    this.counters.created++;
    return lease;
  }

  /**
   * Consumes the lease for `rank` of `engineId`. The caller pins what it copies for the duration of the copy:
   * when the last rank consumes, the lease (and its pin) is gone.
   */
  consume(id: string, engineId: string, rank: number): Lease {
    const lease = this.get(id, engineId);
    if (rank < 0 || rank >= lease.ranks)
      throw new KvError('LEASE_FOREIGN', `lease ${id}: tp_rank ${rank} is not one of its ${lease.ranks} ranks`);
    if (lease.consumed[rank] === 1)
      throw new KvError('LEASE_CONSUMED', `lease ${id}: already loaded by tp_rank ${rank}`);
    lease.consumed[rank] = 1;
    lease.consumedCount++;
    if (lease.consumedCount === lease.ranks) this.pins.end(lease, 'consumed');
    return lease;
  }

  /** Undoes a rank's consumption (its load failed before copying anything), when the lease still lives. */
  unconsume(lease: Lease, rank: number): void {
    if (this.pins.get(lease.id) !== lease || lease.consumed[rank] !== 1) return;
    lease.consumed[rank] = 0;
    lease.consumedCount--;
  }

  release(id: string, engineId: string): void {
    this.pins.end(this.get(id, engineId), 'released');
  }

  /** Ends every expired lease; returns how many. */
  sweep(): number {
    return this.pins.sweep();
  }

  /** Ends every lease of an engine that is gone. */
  dropEngine(engineId: string): number {
    return this.pins.dropOwner(engineId, 'released');
  }

  /** Ends all leases (shutdown). */
  clear(): void {
    this.pins.clear('released');
  }

  /** The live lease, or the precise reason it cannot be used by `engineId`. */
  get(id: string, engineId: string): Lease {
    const lease = this.pins.get(id);
    if (!lease) {
      const ended = this.ended.get(id);
      if (ended === 'expired') throw new KvError('LEASE_EXPIRED', `lease ${id}: expired`);
      if (ended === 'consumed') throw new KvError('LEASE_CONSUMED', `lease ${id}: already loaded by every rank`);
      throw new KvError(
        'LEASE_UNKNOWN',
        `lease_id: no such lease ${JSON.stringify(id)}${ended === 'released' ? ' (released)' : ''}`,
      );
    }
    if (lease.owner !== engineId) throw new KvError('LEASE_FOREIGN', `lease ${id}: belongs to another engine`);
    if (this.pins.isExpired(lease)) {
      this.pins.end(lease, 'expired');
      throw new KvError('LEASE_EXPIRED', `lease ${id}: expired`);
    }
    return lease;
  }

  /** Counts an ended lease and keeps its tombstone. */
  private remember(lease: Lease, why: Ended): void {
    this.counters[why]++;
    this.ended.set(lease.id, why);
    if (this.ended.size > TOMBSTONES) this.ended.delete(this.ended.keys().next().value!);
  }
}
