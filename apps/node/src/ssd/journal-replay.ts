// Replaying an SSD journal (pure): records in the order they were appended; what survives is, per extent and per
// block, the last put that no later drop or put of the same extent or block replaced.
import { catalogKey } from './ssd-catalog.js';
import type { SsdPut, SsdRecord } from './journal-codec.js';

export class JournalReplay {
  /** By extent (file, offset). */
  private readonly byExtent = new Map<string, SsdPut>();
  /** By block: the extent key holding it. */
  private readonly byBlock = new Map<string, string>();
  records = 0;

  apply(r: SsdRecord): void {
    this.records++;
    const ek = `${r.file}:${r.offset}`;
    const old = this.byExtent.get(ek);
    if (old) {
      this.byExtent.delete(ek);
      this.byBlock.delete(catalogKey(old.namespace, old.hash));
    }
    if (r.kind === 'drop') return;
    const bk = catalogKey(r.namespace, r.hash);
    const other = this.byBlock.get(bk);
    if (other !== undefined) this.byExtent.delete(other); // the block was written again elsewhere: the newer wins
    this.byExtent.set(ek, r);
    this.byBlock.set(bk, ek);
  }

  /** The surviving puts, oldest first. */
  live(): SsdPut[] {
    return [...this.byExtent.values()];
  }
}
