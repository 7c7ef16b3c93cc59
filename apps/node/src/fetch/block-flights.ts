// Single-flight per (namespace, block hash): the pull that claims a block fetches it; every other query that
// needs it meanwhile waits for that pull's outcome instead of pulling the same bytes again. Pure.

export interface Flight {
  readonly promise: Promise<boolean>;
}

/** A claim; its promise is made only when another query waits on it (most claims are never waited on). */
interface Entry {
  promise?: Promise<boolean>;
  resolve?: (sealed: boolean) => void;
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
    const e = this.byNs.get(ns)?.get(key);
    if (!e) return undefined;
    e.promise ??= new Promise<boolean>((r) => (e.resolve = r));
    return e as Flight;
  }

  /** Claims a block; false when another pull holds it. */
  claim(ns: number, key: string): boolean {
    let m = this.byNs.get(ns);
    if (!m) this.byNs.set(ns, (m = new Map()));
    if (m.has(key)) return false;
    m.set(key, {});
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
    e.resolve?.(sealed);
  }
}
