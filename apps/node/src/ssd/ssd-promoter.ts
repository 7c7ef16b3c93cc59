// Promotion: the SSD blocks that continue a query's local prefix come back into the pool. The leading run of
// blocks that are on SSD (and not in DRAM) gets fresh pool pages and pinned, unsealed slots (invisible to queries),
// one native read batch per drive lands the pages, and every page is checked against the content sum its journal
// record carries: a block seals only when all of its pages match. A block that differs is dropped from the SSD and
// counted; one whose namespace's geometry changed since it was written is not reused. Promoted blocks are pulled
// copies in the DRAM index (evicted first: the SSD still holds them).
import { TIER_BOTH } from '@kvfabric/common';
import { ssdSlotBytes } from '@kvfabric/native';
import { BlockClass } from '../block-index.js';
import type { NamespaceInfo } from '../namespaces.js';
import { sameLayout } from './ssd-catalog.js';
import type { SsdDrive } from './ssd-drives.js';
import type { SsdTierCore } from './ssd-state.js';

/** Blocks per promotion, at most (a longer suffix is fetched by the next query). */
const MAX_BLOCKS = 4096;

/** The blocks of a promotion, as the catalog listed them when it began (the reads never look at it again). */
interface Run {
  /** Per block: its position in the query's run, catalog id, the stamp of that listing, drive and extent offset. */
  at: number[];
  ids: number[];
  stamps: number[];
  drives: number[];
  offsets: number[];
  /** (lo, hi) per shard page, 2 * shards per block. */
  sums: Uint32Array;
}

interface Landing {
  /** The block's position in the run. */
  n: number;
  slot: number;
  ok: boolean;
  mismatch: boolean;
}

export class SsdPromoter {
  constructor(private readonly tier: SsdTierCore) {}

  /** Promotes what continues the DRAM prefix of `packed` (a peer's PrepareRead, before it is granted). */
  promoteMissing(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, count: number): Promise<number> {
    const local = this.tier.opts.index.prefix(ns.id, packed, hashLen, count);
    return local < count ? this.promote(ns, packed, hashLen, local, count) : Promise.resolve(0);
  }

  /**
   * Promotes the blocks of `packed` from `from` on that are on SSD, up to the first that is neither in DRAM nor on
   * SSD; returns how many leading ones it sealed. Never rejects: a failed read is a shorter answer.
   */
  async promote(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, from: number, count: number): Promise<number> {
    const { index, evictor, pool } = this.tier.opts;
    const { catalog } = this.tier;
    const run: Run = { at: [], ids: [], stamps: [], drives: [], offsets: [], sums: new Uint32Array(0) };
    for (let i = from; i < count && run.at.length < MAX_BLOCKS; i++) {
      const off = i * hashLen;
      const slot = index.lookup(ns.id, packed, off, hashLen);
      if (slot >= 0) {
        if (index.isSealed(slot)) continue;
        break; // being saved or fetched right now
      }
      const id = catalog.find(ns.name, packed.subarray(off, off + hashLen));
      if (id < 0 || !this.tier.drives[catalog.driveOf(id)]!.inService) break;
      if (!sameLayout(catalog.kindOfId(id).layout, ns)) {
        this.tier.counters.geometryDroppedBlocks++;
        void this.tier.forget(id, false);
        break;
      }
      run.at.push(i);
      run.ids.push(id);
      run.stamps.push(catalog.stampOf(id));
      run.drives.push(catalog.driveOf(id));
      run.offsets.push(catalog.offsetOf(id));
    }
    if (run.at.length === 0) return 0;
    const per = 2 * ns.shards;
    run.sums = new Uint32Array(run.at.length * per);
    for (const [n, id] of run.ids.entries()) {
      run.sums.set(catalog.checksumsOf(id), n * per);
      catalog.pin(id);
    }
    try {
      const { shards, pageBytes } = ns;
      const pages = evictor.allocate(pageBytes, run.at.length * shards);
      const landings: Landing[] = [];
      for (let n = 0; n < Math.floor(pages.length / shards); n++) {
        const off = run.at[n]! * hashLen;
        if (index.lookup(ns.id, packed, off, hashLen) >= 0) break;
        const slot = index.slotForShard(ns.id, packed, off, hashLen, shards, 0, pageBytes, BlockClass.Pulled);
        index.pin(slot);
        for (let s = 0; s < shards; s++) index.assign(slot, s, pages[n * shards + s]!);
        landings.push({ n, slot, ok: true, mismatch: false });
      }
      for (let p = landings.length * shards; p < pages.length; p++) pool.free(pages[p]!, pageBytes);
      const byDrive = new Map<SsdDrive, Landing[]>();
      for (const l of landings) {
        const d = this.tier.drives[run.drives[l.n]!]!;
        let list = byDrive.get(d);
        if (!list) byDrive.set(d, (list = []));
        list.push(l);
      }
      await Promise.all([...byDrive].map(([d, ls]) => this.read(d, ns, run, ls)));
      return this.finish(ns, packed, hashLen, run, landings);
    } finally {
      for (const [n, id] of run.ids.entries()) catalog.unpin(id, run.stamps[n]!);
    }
  }

  private async read(drive: SsdDrive, ns: NamespaceInfo, run: Run, ls: Landing[]): Promise<void> {
    const { index, pool } = this.tier.opts;
    const { shards, pageBytes } = ns;
    const slotBytes = ssdSlotBytes(pageBytes);
    const n = ls.length * shards;
    const poolOffsets = new Float64Array(n);
    const fileOffsets = new Float64Array(n);
    const lengths = new Float64Array(n).fill(pageBytes);
    const expected = new Uint32Array(2 * n);
    let p = 0;
    for (const l of ls) {
      for (let s = 0; s < shards; s++, p++) {
        poolOffsets[p] = index.page(l.slot, s);
        fileOffsets[p] = run.offsets[l.n]! + s * slotBytes;
      }
      expected.set(run.sums.subarray(2 * shards * l.n, 2 * shards * (l.n + 1)), 2 * (p - shards));
    }
    try {
      const t0 = performance.now();
      const r = await drive.file.read(pool, poolOffsets, fileOffsets, lengths, expected);
      this.tier.observeIo?.('read', (performance.now() - t0) / 1000);
      for (const bad of r.mismatches) {
        const l = ls[Math.floor(bad / shards)]!;
        l.ok = false;
        l.mismatch = true;
      }
    } catch (err) {
      for (const l of ls) l.ok = false;
      this.tier.failed(drive, err);
    }
  }

  /** Seals what landed whole, undoes the rest; returns the leading run sealed. */
  private finish(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, run: Run, landings: Landing[]): number {
    const { index, pool } = this.tier.opts;
    const { counters, catalog } = this.tier;
    let leading = 0;
    let broken = false;
    for (const l of landings) {
      const [id, stamp, at] = [run.ids[l.n]!, run.stamps[l.n]!, 2 * ns.shards * l.n];
      if (l.ok) {
        for (let s = 0; s < ns.shards; s++) {
          index.setChecksum(l.slot, s, run.sums[at + 2 * s]!, run.sums[at + 2 * s + 1]!);
          index.markShardWritten(l.slot, s);
        }
        index.unpin(l.slot);
        if (catalog.listed(id, stamp)) catalog.touch(id);
        const off = run.at[l.n]! * hashLen;
        this.tier.listener?.moved(ns.name, packed.subarray(off, off + hashLen), TIER_BOTH);
        counters.promotedBlocks++;
        counters.readBytes += ns.shards * ns.pageBytes;
        if (!broken) leading++;
        continue;
      }
      broken = true;
      for (let s = 0; s < ns.shards; s++) pool.free(index.unassign(l.slot, s), ns.pageBytes);
      index.unpin(l.slot);
      if (l.mismatch) {
        counters.mismatchedBlocks++;
        void this.tier.forget(id, false, stamp);
      }
    }
    if (counters.mismatchedBlocks > 0 && landings.some((l) => l.mismatch))
      this.tier.opts.logger.error(
        { namespace: ns.name, blocks: landings.filter((l) => l.mismatch).length },
        'ssd blocks read back differ from their content sums: dropped, never served',
      );
    return leading;
  }
}
