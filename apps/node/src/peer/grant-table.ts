// Grants: the serving node's pins on blocks a peer is reading remotely (DESIGN §1 "grant"). A grant belongs to one
// reader (its authenticated identity, `owner`), pins its slots while it lives, and ends when the reader releases
// it, when it expires (`sweep`), when its reader is forgotten, or at shutdown. The transport is told through
// `onIssued`/`onEnded` so it serves only ranges of live grants. An ended grant unpins its slots only once
// `onEnded` settles: that is when no byte of its pages can leave any more (tcp: every answer queued under it was
// written; verbs: its memory windows are invalidated), so a late answer can never carry a page reused by someone
// else. Ids are 16 random bytes, so a grant can not be named by guessing. Two limits keep readers from pinning
// the pool: live grants per reader, and a node-wide budget of pinned bytes (ended grants whose bytes are still on
// the wire count until they let go). The pins themselves are the shared expiring PinTable. Pure: no gRPC, no
// native code.
import { randomBytes } from 'node:crypto';
import { KvError, formatBytes } from '@kvfabric/common';
import type { GrantId } from '@kvfabric/native';
import { PinTable, type PinEntry } from '../pin-table.js';

/**
 * A live grant. `owner` is the reader's authenticated identity (today the peer id its handshake session proves;
 * with mutual TLS, the identity of its certificate); `bytes` the pool bytes its pages pin.
 */
export interface Grant extends PinEntry<GrantId> {
  readonly bytes: number;
}

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
  /** Live grants one reader may hold at once (a reader that never releases cannot pin the whole pool). */
  maxPerPeer?: number;
  /** Pool bytes all grants together may pin; a grant past it is refused with PEER_LIMIT_REACHED. */
  pinBudgetBytes?: number;
}

export class GrantTable {
  private readonly pins: PinTable<GrantId, Grant, GrantEnd>;
  private pinned = 0;
  readonly counters = { issued: 0, released: 0, expired: 0, dropped: 0, refused: 0, overBudget: 0 };

  constructor(private readonly opts: GrantTableOptions) {
    this.pins = new PinTable({
      ttlMs: opts.ttlMs,
      now: opts.now,
      pin: opts.pin,
      unpin: (slots, grant) => {
        this.pinned -= grant.bytes;
        opts.unpin(slots);
      },
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

  /** Pool bytes pinned by grants, counted like `pinnedBlocks`. */
  get pinnedBytes(): number {
    return this.pinned;
  }

  get pinBudgetBytes(): number {
    return this.opts.pinBudgetBytes ?? Number.POSITIVE_INFINITY;
  }

  get ttlMs(): number {
    return this.pins.ttlMs;
  }

  /** Pins `slots` (`bytes` of pool pages) for the reader `owner` and returns the live grant. */
  issue(owner: string, slots: Int32Array, bytes: number): Grant {
    const held = this.pins.heldBy(owner);
    const max = this.opts.maxPerPeer ?? 1024;
    if (held >= max) {
      this.counters.refused++;
      throw new KvError(
        'GRANT_REFUSED',
        `peer ${owner}: already holds ${held} live grants (at most ${max}); release some first`,
      );
    }
    if (this.pinned + bytes > this.pinBudgetBytes) {
      this.counters.overBudget++;
      throw new KvError(
        'PEER_LIMIT_REACHED',
        `grant-pin-budget: ${formatBytes(this.pinned)} of ${formatBytes(this.pinBudgetBytes)} already pinned by grants, ${formatBytes(bytes)} more asked; try again later`,
      );
    }
    const id: GrantId = randomBytes(16).toString('hex');
    const grant: Grant = { id, owner, slots, bytes, expiresAtMs: this.pins.expiry() };
    this.opts.onIssued?.(grant);
    this.pins.add(grant);
    this.pinned += bytes;
    this.counters.issued++;
    return grant;
  }

  get(id: GrantId): Grant | undefined {
    return this.pins.get(id);
  }

  /** Ends `owner`'s grant early. GRANT_UNKNOWN when it already ended, GRANT_REFUSED when it is another reader's. */
  release(id: GrantId, owner: string): void {
    const grant = this.pins.get(id);
    if (!grant) throw new KvError('GRANT_UNKNOWN', `grant_id: no live grant ${id} (released or expired)`);
    if (grant.owner !== owner) throw new KvError('GRANT_REFUSED', `grant ${id}: granted to another reader`);
    this.pins.end(grant, 'released');
  }

  /**
   * Ends several of `owner`'s grants at once (the `release_grant_ids` of a PrepareRead): every id is checked first,
   * and one that is not a live grant of `owner` (GRANT_UNKNOWN, GRANT_REFUSED; the message names `field` and the
   * position) ends none of them. The promise settles once all of their pins are gone.
   */
  releaseMany(ids: readonly GrantId[], owner: string, field: string): Promise<void> {
    const grants = ids.map((id, i) => {
      const grant = this.pins.get(id);
      if (!grant) throw new KvError('GRANT_UNKNOWN', `${field}[${i}]: no live grant ${id} (released or expired)`);
      if (grant.owner !== owner) throw new KvError('GRANT_REFUSED', `${field}[${i}]: grant ${id} is another reader's`);
      return grant;
    });
    return Promise.all(grants.map((g) => this.pins.ending(g, 'released'))).then(() => {});
  }

  /** Live grants of `owner`. */
  heldBy(owner: string): number {
    return this.pins.heldBy(owner);
  }

  /** Ends every expired grant; returns how many. */
  sweep(): number {
    return this.pins.sweep();
  }

  /** Ends every grant of a reader that is gone or re-handshaked from scratch. */
  dropPeer(owner: string): number {
    return this.pins.dropOwner(owner, 'dropped');
  }

  /** Ends all grants (shutdown). */
  clear(): void {
    this.pins.clear('dropped');
  }
}
