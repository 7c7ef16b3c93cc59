// Grants: the serving node's pins on blocks a peer is reading remotely (DESIGN §1 "grant"). A grant belongs to one
// reader (peer id), pins its slots while it lives, and ends when the reader releases it, when it expires
// (`sweep`), when its reader is forgotten, or at shutdown. The transport is told through `onIssued`/`onEnded`
// so it serves only ranges of live grants. An ended grant unpins its slots only once `onEnded` settles: with verbs
// that is when the NIC can no longer read the pages (its memory windows are invalidated), so a late read can never
// return a page reused by someone else. Pure: no gRPC, no native code.
import { KvError } from '@kvfabric/common';

export interface Grant {
  id: number;
  peer: string;
  slots: Int32Array;
  expiresAtMs: number;
}

export type GrantEnd = 'released' | 'expired' | 'dropped';

export interface GrantTableOptions {
  ttlMs: number;
  now?: () => number;
  pin: (slots: Int32Array) => void;
  unpin: (slots: Int32Array) => void;
  /** Called before the grant is live; throwing aborts the issue (the pins are undone). */
  onIssued?: (grant: Grant) => void;
  /** The slots stay pinned until a returned promise settles (either way). */
  onEnded?: (grant: Grant, why: GrantEnd) => void | Promise<void>;
  /** Live grants one peer may hold at once (a reader that never releases cannot pin the whole pool). */
  maxPerPeer?: number;
}

export class GrantTable {
  private readonly live = new Map<number, Grant>();
  private readonly perPeer = new Map<string, number>();
  private nextId = 1;
  private pinned = 0;
  private readonly now: () => number;
  readonly counters = { issued: 0, released: 0, expired: 0, dropped: 0, refused: 0 };

  constructor(private readonly opts: GrantTableOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.live.size;
  }

  /** Blocks pinned by grants: live ones, and ended ones whose transport has not let go yet. */
  get pinnedBlocks(): number {
    return this.pinned;
  }

  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /** Pins `slots` for `peer` and returns the live grant. */
  issue(peer: string, slots: Int32Array): Grant {
    const held = this.perPeer.get(peer) ?? 0;
    const max = this.opts.maxPerPeer ?? 1024;
    if (held >= max) {
      this.counters.refused++;
      throw new KvError('GRANT_REFUSED', `peer ${peer}: already holds ${held} live grants (at most ${max}); release some first`);
    }
    const grant: Grant = { id: this.nextId++, peer, slots, expiresAtMs: this.now() + this.opts.ttlMs };
    this.opts.pin(slots);
    try {
      this.opts.onIssued?.(grant);
    } catch (err) {
      this.opts.unpin(slots);
      throw err;
    }
    this.live.set(grant.id, grant);
    this.perPeer.set(peer, held + 1);
    this.pinned += slots.length;
    this.counters.issued++;
    return grant;
  }

  get(id: number): Grant | undefined {
    return this.live.get(id);
  }

  /** Ends `peer`'s grant early. GRANT_UNKNOWN when it already ended, GRANT_REFUSED when it is another peer's. */
  release(id: number, peer: string): void {
    const grant = this.live.get(id);
    if (!grant) throw new KvError('GRANT_UNKNOWN', `grant_id: no live grant ${id} (released or expired)`);
    if (grant.peer !== peer) throw new KvError('GRANT_REFUSED', `grant ${id}: belongs to another peer`);
    this.end(grant, 'released');
  }

  /** Ends every expired grant; returns how many. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const grant of this.live.values()) {
      if (grant.expiresAtMs <= now) {
        this.end(grant, 'expired');
        n++;
      }
    }
    return n;
  }

  /** Ends every grant of a peer that is gone or re-handshaked from scratch. */
  dropPeer(peer: string): number {
    let n = 0;
    for (const grant of this.live.values()) {
      if (grant.peer === peer) {
        this.end(grant, 'dropped');
        n++;
      }
    }
    return n;
  }

  /** Ends all grants (shutdown). */
  clear(): void {
    for (const grant of this.live.values()) this.end(grant, 'dropped');
  }

  private end(grant: Grant, why: GrantEnd): void {
    if (!this.live.delete(grant.id)) return;
    const held = (this.perPeer.get(grant.peer) ?? 1) - 1;
    if (held <= 0) this.perPeer.delete(grant.peer);
    else this.perPeer.set(grant.peer, held);
    this.counters[why]++;
    const unpin = () => {
      this.pinned -= grant.slots.length;
      this.opts.unpin(grant.slots);
    };
    let ending: void | Promise<void>;
    try {
      ending = this.opts.onEnded?.(grant, why);
    } catch {
      ending = undefined;
    }
    if (ending instanceof Promise) void ending.then(unpin, unpin);
    else unpin();
  }
}
