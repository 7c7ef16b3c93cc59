// Grants: the serving node's pins on blocks a peer is reading remotely (DESIGN §1 "grant"). A grant belongs to one
// reader (peer id), pins its slots while it lives, and ends when the reader releases it, when it expires
// (`sweep`), when its reader is forgotten, or at shutdown. The transport is told through `onIssued`/`onEnded`
// so it serves only ranges of live grants. An ended grant unpins its slots only once `onEnded` settles: with verbs
// that is when the NIC can no longer read the pages (its memory windows are invalidated), so a late read can never
// return a page reused by someone else. The pins themselves are the shared expiring PinTable; this adds grant ids,
// ownership checks and the per-peer limit. Pure: no gRPC, no native code.
import { KvError } from '@kvfabric/common';
import { PinTable, type PinEntry } from '../pin-table.js';

/** A live grant; `owner` is the reading peer's node id. */
export type Grant = PinEntry<number>;

export type GrantEnd = 'released' | 'expired' | 'dropped';

export interface GrantTableOptions {
  ttlMs: number;
  now?: () => number;
  pin: (slots: Int32Array) => void;
  unpin: (slots: Int32Array) => void;
  /** Called before the grant is live; throwing refuses it (nothing stays pinned). */
  onIssued?: (grant: Grant) => void;
  /** The slots stay pinned until a returned promise settles (either way). */
  onEnded?: (grant: Grant, why: GrantEnd) => void | Promise<void>;
  /** Live grants one peer may hold at once (a reader that never releases cannot pin the whole pool). */
  maxPerPeer?: number;
}

export class GrantTable {
  private readonly pins: PinTable<number, Grant, GrantEnd>;
  private nextId = 1;
  readonly counters = { issued: 0, released: 0, expired: 0, dropped: 0, refused: 0 };

  constructor(private readonly opts: GrantTableOptions) {
    this.pins = new PinTable({
      ttlMs: opts.ttlMs,
      now: opts.now,
      pin: opts.pin,
      unpin: opts.unpin,
      onEnded: (grant, why) => {
        this.counters[why]++;
        return opts.onEnded?.(grant, why);
      },
    });
  }

  get size(): number {
    return this.pins.size;
  }

  /** Blocks pinned by grants: live ones, and ended ones whose transport has not let go yet. */
  get pinnedBlocks(): number {
    return this.pins.pinnedSlots;
  }

  get ttlMs(): number {
    return this.pins.ttlMs;
  }

  /** Pins `slots` for `peer` and returns the live grant. */
  issue(peer: string, slots: Int32Array): Grant {
    const held = this.pins.heldBy(peer);
    const max = this.opts.maxPerPeer ?? 1024;
    if (held >= max) {
      this.counters.refused++;
      throw new KvError(
        'GRANT_REFUSED',
        `peer ${peer}: already holds ${held} live grants (at most ${max}); release some first`,
      );
    }
    const grant: Grant = { id: this.nextId++, owner: peer, slots, expiresAtMs: this.pins.expiry() };
    this.opts.onIssued?.(grant);
    this.pins.add(grant);
    this.counters.issued++;
    return grant;
  }

  get(id: number): Grant | undefined {
    return this.pins.get(id);
  }

  /** Ends `peer`'s grant early. GRANT_UNKNOWN when it already ended, GRANT_REFUSED when it is another peer's. */
  release(id: number, peer: string): void {
    const grant = this.pins.get(id);
    if (!grant) throw new KvError('GRANT_UNKNOWN', `grant_id: no live grant ${id} (released or expired)`);
    if (grant.owner !== peer) throw new KvError('GRANT_REFUSED', `grant ${id}: belongs to another peer`);
    this.pins.end(grant, 'released');
  }

  /** Ends every expired grant; returns how many. */
  sweep(): number {
    return this.pins.sweep();
  }

  /** Ends every grant of a peer that is gone or re-handshaked from scratch. */
  dropPeer(peer: string): number {
    return this.pins.dropOwner(peer, 'dropped');
  }

  /** Ends all grants (shutdown). */
  clear(): void {
    this.pins.clear('dropped');
  }
}
