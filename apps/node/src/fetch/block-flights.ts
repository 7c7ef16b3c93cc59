// Single-flight per (namespace, block hash): the pull that claims a block fetches it; every other query that
// needs it meanwhile waits for that pull's outcome instead of pulling the same bytes again. Pure.

export interface Flight {
  readonly promise: Promise<boolean>;
}

interface Entry extends Flight {
  resolve(sealed: boolean): void;
}

export class BlockFlights {
  private readonly map = new Map<string, Entry>();

  private static k(ns: number, key: string): string {
    return `${ns}\0${key}`;
  }

  get size(): number {
    return this.map.size;
  }

  /** The flight of a block claimed by another pull, if any. */
  get(ns: number, key: string): Flight | undefined {
    return this.map.get(BlockFlights.k(ns, key));
  }

  /** Claims a block; false when another pull holds it. */
  claim(ns: number, key: string): boolean {
    const k = BlockFlights.k(ns, key);
    if (this.map.has(k)) return false;
    let resolve!: (v: boolean) => void;
    const promise = new Promise<boolean>((r) => (resolve = r));
    this.map.set(k, { promise, resolve });
    return true;
  }

  /** Ends a claim: waiters learn whether the block is now sealed locally. Idempotent. */
  settle(ns: number, key: string, sealed: boolean): void {
    const k = BlockFlights.k(ns, key);
    const e = this.map.get(k);
    if (!e) return;
    this.map.delete(k);
    e.resolve(sealed);
  }
}
