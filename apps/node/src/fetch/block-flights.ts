// Single-flight per (namespace, block hash): the pull that claims a block fetches it; every other query that
// needs it meanwhile waits for that pull's outcome instead of pulling the same bytes again. Pure.

export interface Flight {
  readonly promise: Promise<boolean>;
}

interface Entry extends Flight {
  resolve(sealed: boolean): void;
}

export class BlockFlights {
  /** Namespace id → block key → flight (no composite key strings on the per-block path). */
  private readonly byNs = new Map<number, Map<string, Entry>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The flight of a block claimed by another pull, if any. */
  get(ns: number, key: string): Flight | undefined {
    return this.byNs.get(ns)?.get(key);
  }

  /** Claims a block; false when another pull holds it. */
  claim(ns: number, key: string): boolean {
    let m = this.byNs.get(ns);
    if (!m) this.byNs.set(ns, (m = new Map()));
    if (m.has(key)) return false;
    let resolve!: (v: boolean) => void;
    const promise = new Promise<boolean>((r) => (resolve = r));
    m.set(key, { promise, resolve });
    this.count++;
    return true;
  }

  /** Ends a claim: waiters learn whether the block is now sealed locally. Idempotent. */
  settle(ns: number, key: string, sealed: boolean): void {
    const m = this.byNs.get(ns);
    const e = m?.get(key);
    if (!e) return;
    m!.delete(key);
    if (m!.size === 0) this.byNs.delete(ns);
    this.count--;
    e.resolve(sealed);
  }
}
