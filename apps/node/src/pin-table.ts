// An expiring pin table: entries that keep index slots pinned until they end (released, used up, expired by
// `sweep`, their owner dropped, or shutdown). Behind the serving side's grants (peer/grant-table.ts), which keep only
// their own rules (ids, per-peer limits); the engine's leases have their own native table (leases.ts).
// An ending entry's slots stay pinned until what `onEnded` returns settles (the transport letting go of the pages).
// Pure: no gRPC, no native code.

/** What the table needs of an entry; users extend it with their own fields. */
export interface PinEntry<Id> {
  readonly id: Id;
  /** Whose pins these are (an engine for leases, a reading peer for grants). */
  readonly owner: string;
  readonly slots: Int32Array;
  readonly expiresAtMs: number;
}

export interface PinTableOptions<E, End extends string> {
  ttlMs: number;
  now?: () => number;
  pin: (slots: Int32Array) => void;
  /** Called once per entry when its pins go (after `onEnded` settles); `entry` says whose they were. */
  unpin: (slots: Int32Array, entry: E) => void;
  /** Told once per entry that ends (`expired` when swept); its slots stay pinned until a returned promise settles. */
  onEnded?: (entry: E, why: End | 'expired') => void | Promise<void>;
}

export class PinTable<Id, E extends PinEntry<Id>, End extends string> {
  private readonly live = new Map<Id, E>();
  private readonly perOwner = new Map<string, number>();
  private pinned = 0;
  readonly now: () => number;

  constructor(private readonly opts: PinTableOptions<E, End>) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.live.size;
  }

  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /** Slots pinned by entries: live ones, and ended ones whose `onEnded` has not settled yet. */
  get pinnedSlots(): number {
    return this.pinned;
  }

  /** The expiry of an entry made now. */
  expiry(): number {
    return this.now() + this.opts.ttlMs;
  }

  /** Live entries of `owner`. */
  heldBy(owner: string): number {
    return this.perOwner.get(owner) ?? 0;
  }

  /** Pins the entry's slots and makes it live. */
  add(entry: E): E {
    this.opts.pin(entry.slots);
    this.live.set(entry.id, entry);
    this.perOwner.set(entry.owner, this.heldBy(entry.owner) + 1);
    this.pinned += entry.slots.length;
    return entry;
  }

  /** The live entry (possibly past its expiry, until swept). */
  get(id: Id): E | undefined {
    return this.live.get(id);
  }

  isExpired(entry: E): boolean {
    return entry.expiresAtMs <= this.now();
  }

  /** Ends a live entry; false when it had already ended. */
  end(entry: E, why: End | 'expired'): boolean {
    return this.ending(entry, why) !== undefined;
  }

  /**
   * Ends a live entry like `end`; the promise settles once its slots are unpinned (when `onEnded` settled).
   * Undefined when it had already ended.
   */
  ending(entry: E, why: End | 'expired'): Promise<void> | undefined {
    if (this.live.get(entry.id) !== entry) return undefined;
    this.live.delete(entry.id);
    const held = this.heldBy(entry.owner) - 1;
    if (held <= 0) this.perOwner.delete(entry.owner);
    else this.perOwner.set(entry.owner, held);
    const unpin = () => {
      this.pinned -= entry.slots.length;
      this.opts.unpin(entry.slots, entry);
    };
    let settled: void | Promise<void>;
    try {
      settled = this.opts.onEnded?.(entry, why);
    } catch {
      settled = undefined;
    }
    if (settled instanceof Promise) return settled.then(unpin, unpin);
    unpin();
    return Promise.resolve();
  }

  /** Ends every expired entry; returns how many. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const entry of this.live.values()) {
      if (entry.expiresAtMs <= now && this.end(entry, 'expired')) n++;
    }
    return n;
  }

  /** Ends every entry of `owner`; returns how many. */
  dropOwner(owner: string, why: End): number {
    if (!this.perOwner.has(owner)) return 0;
    let n = 0;
    for (const entry of this.live.values()) {
      if (entry.owner === owner && this.end(entry, why)) n++;
    }
    return n;
  }

  /** Ends every entry (shutdown). */
  clear(why: End): void {
    for (const entry of this.live.values()) this.end(entry, why);
  }
}
