// Promotion: the SSD blocks that continue a query's local prefix come back into the pool. The leading run of
// blocks that are on SSD (and not in DRAM) gets fresh pool pages and pinned, unsealed slots (invisible to queries),
// one native read batch per drive lands the pages, and every page is checked against the content sum its journal
// record carries: a block seals only when all of its pages match. A block that differs is dropped from the SSD and
// counted; one whose namespace's geometry changed since it was written is not reused. Promoted blocks are pulled
// copies in the DRAM index (evicted first: the SSD still holds them).
import { TIER_BOTH } from '@kvfabric/common';
import { sealPulled, setUpPulled, ssdSlotBytes, undoPulled } from '@kvfabric/native';
import type { NamespaceInfo } from '../namespaces.js';
import { sameLayout } from './ssd-catalog.js';
import type { SsdDrive } from './ssd-drives.js';
import type { SsdTierCore } from './ssd-state.js';

/** Blocks per promotion, at most (a longer suffix is fetched by the next query). */
const MAX_BLOCKS = 4096;

/**
 * The blocks of a promotion, as the catalog listed them when it began (the reads never look at it again), and the
 * pulled slots and pages set up for them: block k of the run is hash at[k] of the query.
 */
interface Run {
  at: number[];
  ids: Int32Array;
  stamps: Float64Array;
  drives: Int32Array;
  offsets: Float64Array;
  /** (lo, hi) per shard page, 2 * shards per block. */
  sums: Uint32Array;
  slots: Int32Array;
  /** The blocks' pool pages, block-major. */
  pages: Float64Array;
  /** Per block: 0 landed whole, 1 a page differed from its sum, 2 its read failed. */
  outcome: Uint8Array;
}

const LANDED = 0;
const MISMATCH = 1;
const FAILED = 2;

export class SsdPromoter {
  constructor(private readonly tier: SsdTierCore) {}

  /** Promotes what continues the DRAM prefix of `packed` (a peer's PrepareRead, before it is granted). */
  promoteMissing(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, count: number): Promise<number> {
    const local = this.tier.opts.index.prefix(ns.id, packed, hashLen, count);
    return local < count ? this.promote(ns, packed, hashLen, local, count) : Promise.resolve(0);
  }

  /**
   * Promotes the blocks of `packed` from `from` on that are on SSD, up to the first that is neither in DRAM nor on
   * SSD; returns how many leading ones it sealed. Never rejects: a failed read is a shorter answer. The per-block
   * work is native and batched: one catalog lookup for the query's hashes, one call that sets up pulled slots and
   * pages for each run of blocks DRAM lacks, one read batch per drive, one call that seals what landed.
   */
  async promote(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, from: number, count: number): Promise<number> {
    const { catalog } = this.tier;
    const run = this.setUp(ns, packed, hashLen, from, Math.min(count, from + MAX_BLOCKS));
    if (!run) return 0;
    for (let k = 0; k < run.ids.length; k++) catalog.pin(run.ids[k]!);
    try {
      const byDrive = new Map<number, number[]>();
      for (let k = 0; k < run.slots.length; k++) {
        let list = byDrive.get(run.drives[k]!);
        if (!list) byDrive.set(run.drives[k]!, (list = []));
        list.push(k);
      }
      await Promise.all([...byDrive].map(([d, ks]) => this.read(this.tier.drives[d]!, ns, run, ks)));
      return this.finish(ns, hashLen, run);
    } finally {
      for (let k = 0; k < run.ids.length; k++) catalog.unpin(run.ids[k]!, run.stamps[k]!);
    }
  }

  /**
   * The run to promote: the blocks from `from` on that DRAM lacks and the SSD holds (in service, same geometry),
   * blocks sealed in DRAM skipped, up to the first that is neither or is being saved or fetched right now; their
   * pulled slots and pages set up (evicting as a pull does). Undefined when there is nothing to promote.
   */
  private setUp(ns: NamespaceInfo, packed: Uint8Array, hashLen: number, from: number, to: number): Run | undefined {
    const { index, pool, evictor } = this.tier.opts;
    const { catalog, drives } = this.tier;
    const ids = new Int32Array(to - from);
    catalog.findMany(ns.name, packed.subarray(from * hashLen, to * hashLen), hashLen, ids);
    const layout = { ns: ns.id, shards: ns.shards, pageBytes: ns.pageBytes };
    const at: number[] = [];
    const slots: Int32Array[] = [];
    const pages: Float64Array[] = [];
    let i = from;
    let limit = to;
    while (i < limit) {
      // the SSD's run from i: listed, its drive in service, written with this geometry
      let end = i;
      for (; end < limit; end++) {
        const id = ids[end - from]!;
        if (id < 0 || !drives[catalog.driveOf(id)]!.inService) break;
        if (!sameLayout(catalog.kindOfId(id).layout, ns)) {
          this.tier.counters.geometryDroppedBlocks++;
          void this.tier.forget(id, false);
          limit = end; // not looked at again
          break;
        }
      }
      const got = end > i ? setUpPulled(index, pool, layout, packed, hashLen, i, end - i) : undefined;
      if (got) {
        evictor.report(got.evicted, got.exhausted);
        for (let k = 0; k < got.slots.length; k++) at.push(i + k);
        slots.push(got.slots);
        pages.push(got.pages);
        i += got.slots.length;
        if (got.exhausted) break;
      }
      // setUpPulled stopped at a block DRAM has: skip it when sealed, else it is being saved or fetched: stop
      const slot = i < limit ? index.lookup(ns.id, packed, i * hashLen, hashLen) : -1;
      if (slot < 0 || !index.isSealed(slot)) break;
      i++;
    }
    if (at.length === 0) return undefined;
    const n = at.length;
    const run: Run = {
      at,
      ids: new Int32Array(n),
      stamps: new Float64Array(n),
      drives: new Int32Array(n),
      offsets: new Float64Array(n),
      sums: new Uint32Array(2 * ns.shards * n),
      slots: concatInt32(slots, n),
      pages: concatFloat64(pages, n * ns.shards),
      outcome: new Uint8Array(n),
    };
    for (let k = 0; k < n; k++) {
      const id = ids[at[k]! - from]!;
      run.ids[k] = id;
      run.stamps[k] = catalog.stampOf(id);
      run.drives[k] = catalog.driveOf(id);
      run.offsets[k] = catalog.offsetOf(id);
      run.sums.set(catalog.checksumsOf(id), 2 * ns.shards * k);
    }
    return run;
  }

  /** Reads blocks `ks` of the run from `drive` into their pages, each page checked against its sum. */
  private async read(drive: SsdDrive, ns: NamespaceInfo, run: Run, ks: number[]): Promise<void> {
    const { pool } = this.tier.opts;
    const { shards, pageBytes } = ns;
    const slotBytes = ssdSlotBytes(pageBytes);
    const n = ks.length * shards;
    const poolOffsets = new Float64Array(n);
    const fileOffsets = new Float64Array(n);
    const lengths = new Float64Array(n).fill(pageBytes);
    const expected = new Uint32Array(2 * n);
    let p = 0;
    for (const k of ks) {
      for (let s = 0; s < shards; s++, p++) {
        poolOffsets[p] = run.pages[k * shards + s]!;
        fileOffsets[p] = run.offsets[k]! + s * slotBytes;
      }
      expected.set(run.sums.subarray(2 * shards * k, 2 * shards * (k + 1)), 2 * (p - shards));
    }
    try {
      const t0 = performance.now();
      const r = await drive.file.read(pool, poolOffsets, fileOffsets, lengths, expected);
      this.tier.observeIo?.('read', (performance.now() - t0) / 1000);
      for (const bad of r.mismatches) run.outcome[ks[Math.floor(bad / shards)]!] = MISMATCH;
    } catch (err) {
      for (const k of ks) run.outcome[k] = FAILED;
      this.tier.failed(drive, err);
    }
  }

  /** Seals what landed whole (one native call), undoes the rest; returns the leading run sealed. */
  private finish(ns: NamespaceInfo, hashLen: number, run: Run): number {
    const { index, pool } = this.tier.opts;
    const { counters, catalog } = this.tier;
    const n = run.slots.length;
    let leading = 0;
    while (leading < n && run.outcome[leading] === LANDED) leading++;
    const landed: number[] = [];
    const lost: number[] = [];
    for (let k = 0; k < n; k++) (run.outcome[k] === LANDED ? landed : lost).push(k);
    if (landed.length > 0) {
      const per = 2 * ns.shards;
      const slots = Int32Array.from(landed, (k) => run.slots[k]!);
      const sums = new Uint32Array(per * landed.length);
      landed.forEach((k, j) => sums.set(run.sums.subarray(per * k, per * (k + 1)), per * j));
      const got = sealPulled(index, slots, sums);
      for (const k of landed) if (catalog.listed(run.ids[k]!, run.stamps[k]!)) catalog.touch(run.ids[k]!);
      this.tier.listener?.movedMany(ns.name, got.sealedHashes, hashLen, TIER_BOTH);
      counters.promotedBlocks += got.sealed;
      counters.readBytes += got.sealed * ns.shards * ns.pageBytes;
    }
    if (lost.length > 0) {
      undoPulled(
        index,
        pool,
        Int32Array.from(lost, (k) => run.slots[k]!),
      );
      const mismatched = lost.filter((k) => run.outcome[k] === MISMATCH);
      for (const k of mismatched) void this.tier.forget(run.ids[k]!, false, run.stamps[k]!);
      counters.mismatchedBlocks += mismatched.length;
      if (mismatched.length > 0)
        this.tier.opts.logger.error(
          { namespace: ns.name, blocks: mismatched.length },
          'ssd blocks read back differ from their content sums: dropped, never served',
        );
    }
    return leading;
  }
}

function concatInt32(parts: Int32Array[], n: number): Int32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Int32Array(n);
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function concatFloat64(parts: Float64Array[], n: number): Float64Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float64Array(n);
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}
