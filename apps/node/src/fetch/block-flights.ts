// Single-flight per (namespace, block hash): the pull that claims a block fetches it; every other query that
// needs it meanwhile waits for that pull's outcome instead of pulling the same bytes again. The claims live in a
// native table (@kvfabric/native FlightTable): a fetch claims a run of blocks in one call and a pull ends a chunk's
// claims in one call; only the few claims that another query waits on get a promise here.
import { createFlightTable } from '@kvfabric/native';
import type { BlockIndex } from '../block-index.js';

interface Waiters {
  promise: Promise<boolean>;
  resolve: (sealed: boolean) => void;
}

/** The waiters' key of block `at` of `packed`: namespace id and hash bytes (latin1). */
const keyOf = (ns: number, packed: Uint8Array, hashLen: number, at: number) =>
  `${ns}:${Buffer.from(packed.buffer, packed.byteOffset + at * hashLen, hashLen).toString('latin1')}`;

export class BlockFlights {
  private readonly table = createFlightTable();
  private readonly waiters = new Map<string, Waiters>();

  /** Claims held. */
  get size(): number {
    return this.table.size();
  }

  /**
   * When another pull holds block `at` of `packed`: the promise of its outcome (whether the block is sealed
   * locally once it ends). Undefined when no pull holds it.
   */
  wait(ns: number, packed: Uint8Array, hashLen: number, at: number): Promise<boolean> | undefined {
    if (!this.table.wait(ns, packed, hashLen, at)) return undefined;
    const key = keyOf(ns, packed, hashLen, at);
    let w = this.waiters.get(key);
    if (!w) {
      let resolve!: (sealed: boolean) => void;
      const promise = new Promise<boolean>((r) => (resolve = r));
      this.waiters.set(key, (w = { promise, resolve }));
    }
    return w.promise;
  }

  /**
   * Claims blocks [from, to) of `packed` in order, up to the first that `index` holds (sealed or not) or another
   * pull claimed; returns the end of the run claimed.
   */
  claim(index: BlockIndex, ns: number, packed: Uint8Array, hashLen: number, from: number, to: number): number {
    return from + this.table.claimRun(index, ns, packed, hashLen, from, to - from);
  }

  /** Ends the claims among blocks [from, to): their waiters learn whether the blocks are sealed locally. Idempotent. */
  settle(ns: number, packed: Uint8Array, hashLen: number, from: number, to: number, sealed: boolean): void {
    if (to <= from) return;
    for (const at of this.table.endRun(ns, packed, hashLen, from, to - from)) {
      const key = keyOf(ns, packed, hashLen, at);
      const w = this.waiters.get(key);
      if (!w) continue;
      this.waiters.delete(key);
      w.resolve(sealed);
    }
  }
}
