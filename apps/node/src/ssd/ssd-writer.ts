// Puts DRAM blocks on SSD, one round at a time, never in a save's way. Evict mode (the default): when the pool's
// free bytes drop under a reserve (a quarter of the pool, at most 4 GiB), the blocks DRAM would evict first — the
// coldest `reserve` bytes — are written ahead of the eviction, so that when DRAM drops them they are on SSD. Write-
// through: every block sealed in DRAM is queued as it seals. A round pins its blocks, makes room on a drive
// (evicting the least recently used SSD extents, journalled as drops first), writes the pages straight from the
// pool (one native batch per drive), and only once the bytes are durable journals them and lists them in the
// catalog; then unpins. A block DRAM evicted before its round is dropped and counted (SsdTier.dramEvicted).
import { TIER_BOTH, TIER_DRAM } from '@kvfabric/common';
import type { NamespaceInfo } from '../namespaces.js';
import { extentBytes } from './ssd-catalog.js';
import type { SsdDrive } from './ssd-drives.js';
import { encodePuts, encodeRecords, type SsdRecord } from './journal-codec.js';
import type { SsdTierCore } from './ssd-state.js';

const GiB = 1024 ** 3;
const MAX_SCAN = 65_536;
const MAX_ROUND_BYTES = 256 * 1024 * 1024;
const MAX_ROUND_BLOCKS = 4096;
/** Write-through blocks waiting, at most (past it the oldest are dropped from the queue, not from DRAM). */
const MAX_QUEUED = 1 << 20;

interface Candidate {
  slot: number;
  ns: NamespaceInfo;
  /** A view of a queued run's copy, or the index's copy. */
  hash: Uint8Array;
}

/** Consecutive blocks of a round's drive of one namespace and hash length (their positions in the round). */
interface Group {
  ns: NamespaceInfo;
  hashLen: number;
  at: number[];
}

export class SsdWriter {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Write-through: runs of sealed hashes (copies), oldest first; `at` is the next hash of a run to take. */
  private readonly queue: { ns: NamespaceInfo; packed: Buffer; hashLen: number; at: number }[] = [];
  /** Hashes in `queue` not taken yet. */
  private queued = 0;
  private next = 0;
  /** Scratch of `fromQueue`: per hash of a run, its sealed slot and its catalog id (-1: none). */
  private slots = new Int32Array(256);
  private onSsd = new Int32Array(256);

  constructor(private readonly tier: SsdTierCore) {}

  /** Blocks sealed in DRAM: queued in write-through mode; a round is started either way. */
  sealed(ns: NamespaceInfo, packed: Uint8Array, hashLen: number): void {
    if (this.tier.opts.writeMode === 'through' && hashLen > 0 && packed.length >= hashLen) {
      this.queue.push({ ns, packed: Buffer.from(packed), hashLen, at: 0 });
      this.queued += packed.length / hashLen;
      while (this.queued > MAX_QUEUED) {
        const run = this.queue[0]!;
        const drop = Math.min(run.packed.length / run.hashLen - run.at, this.queued - MAX_QUEUED);
        run.at += drop;
        this.queued -= drop;
        if (run.at * run.hashLen >= run.packed.length) this.queue.shift();
      }
    }
    this.kick();
  }

  /** Starts a round unless one runs (then another follows it). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = undefined));
  }

  /** Resolves when no round runs (tests and the bench wait for the writer this way). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      while (!this.stopped && (await this.round()));
    } while (this.again && !this.stopped);
  }

  /** One round; true when it wrote blocks (another may follow). */
  private async round(): Promise<boolean> {
    const picked = this.tier.opts.writeMode === 'through' ? this.fromQueue() : this.coldest();
    if (picked.length === 0) return false;
    const { index } = this.tier.opts;
    const slots = new Int32Array(picked.length);
    for (let i = 0; i < picked.length; i++) slots[i] = picked[i]!.slot;
    index.pinMany(slots, slots.length);
    try {
      const byDrive = new Map<SsdDrive, { c: Candidate; offset: number }[]>();
      const drops = new Map<SsdDrive, SsdRecord[]>();
      for (const c of picked) {
        const drive = this.place(c, drops);
        if (!drive) continue;
        let list = byDrive.get(drive.drive);
        if (!list) byDrive.set(drive.drive, (list = []));
        list.push({ c, offset: drive.offset });
      }
      const written = await Promise.all(
        [...byDrive].map(([drive, blocks]) => this.write(drive, blocks, drops.get(drive) ?? [])),
      );
      return written.some((n) => n > 0);
    } finally {
      // Evict mode took the coldest blocks: they go back where eviction takes them first (on SSD now, they are the
      // cheapest to drop), in their order, rather than becoming the most recently used by this round's pins.
      const cold = this.tier.opts.writeMode === 'evict';
      index.unpinMany(cold ? slots.reverse() : slots, slots.length, cold);
    }
  }

  /**
   * The blocks among the coldest `reserve` bytes that the SSD lacks, when the pool is short of free room; none
   * otherwise: one native scan of the eviction order (no call per block scanned, however large the reserve).
   */
  private coldest(): Candidate[] {
    const { pool, index, namespaces } = this.tier.opts;
    const s = pool.stats();
    const reserve = Math.min(s.capacityBytes / 4, 4 * GiB);
    if (s.capacityBytes - s.usedBytes > reserve) return [];
    const { keys, tags } = this.tier.catalog.nativeKeys(namespaces.all());
    const slots = new Int32Array(MAX_ROUND_BLOCKS);
    const n = index.coldestNotIn(keys, tags, MAX_SCAN, reserve, MAX_ROUND_BYTES, slots);
    const out: Candidate[] = [];
    for (let k = 0; k < n; k++) {
      const slot = slots[k]!;
      out.push({ slot, ns: namespaces.get(index.ns(slot)), hash: index.hash(slot) });
    }
    return out;
  }

  /** Queued (write-through) blocks still sealed in DRAM and not on SSD: a native lookup of each per run. */
  private fromQueue(): Candidate[] {
    const { index } = this.tier.opts;
    const out: Candidate[] = [];
    const taken = new Set<number>();
    let bytes = 0;
    while (this.queue.length > 0 && bytes < MAX_ROUND_BYTES && out.length < MAX_ROUND_BLOCKS) {
      const run = this.queue[0]!;
      const { ns, packed, hashLen } = run;
      const blockBytes = ns.pageBytes * ns.shards;
      const n = Math.min(
        packed.length / hashLen - run.at,
        MAX_ROUND_BLOCKS - out.length,
        Math.ceil((MAX_ROUND_BYTES - bytes) / blockBytes),
      );
      const part = packed.subarray(run.at * hashLen, (run.at + n) * hashLen);
      run.at += n;
      this.queued -= n;
      if (run.at * hashLen >= packed.length) this.queue.shift();
      if (this.slots.length < n) [this.slots, this.onSsd] = [new Int32Array(2 * n), new Int32Array(2 * n)];
      if (index.sealedSlots(ns.id, part, hashLen, 0, n, this.slots) === 0) continue;
      this.tier.catalog.findMany(ns.name, part, hashLen, this.onSsd);
      for (let k = 0; k < n; k++) {
        const slot = this.slots[k]!;
        if (slot < 0 || this.onSsd[k]! >= 0 || taken.has(slot)) continue;
        taken.add(slot);
        out.push({ slot, ns, hash: part.subarray(k * hashLen, (k + 1) * hashLen) });
        bytes += blockBytes;
      }
    }
    return out;
  }

  /** An extent for the block on a drive in service (round robin), evicting SSD blocks for room; or none. */
  private place(c: Candidate, drops: Map<SsdDrive, SsdRecord[]>): { drive: SsdDrive; offset: number } | undefined {
    const { drives, catalog, counters } = this.tier;
    const bytes = extentBytes(c.ns);
    for (let tried = 0; tried < drives.length; tried++) {
      const drive = drives[this.next++ % drives.length]!;
      if (!drive.inService || bytes > drive.extents.segmentBytes) continue;
      for (;;) {
        const offset = drive.extents.alloc(bytes);
        if (offset !== undefined) return { drive, offset };
        const victim = catalog.victim(drive.index);
        if (victim < 0) break;
        this.evict(victim, drops);
        counters.evictedBlocks++;
      }
    }
    return undefined;
  }

  private evict(id: number, drops: Map<SsdDrive, SsdRecord[]>): void {
    const { catalog, drives } = this.tier;
    const drive = drives[catalog.driveOf(id)]!;
    const offset = catalog.offsetOf(id);
    const { namespace, extentBytes: bytes } = catalog.kindOfId(id);
    const hash = catalog.hashOf(id);
    catalog.remove(id);
    drive.extents.free(offset, bytes);
    let list = drops.get(drive);
    if (!list) drops.set(drive, (list = []));
    list.push({ kind: 'drop', file: drive.index, offset });
    const { namespaces, index } = this.tier.opts;
    const ns = namespaces.byNameOrUndefined(namespace);
    const slot = ns ? index.lookup(ns.id, hash, 0, hash.length) : -1;
    if (slot < 0 || !index.isSealed(slot)) this.tier.listener?.removed(namespace, hash);
    else this.tier.listener?.moved(namespace, hash, TIER_DRAM);
  }

  /** Writes the blocks to their extents of `drive`; returns how many are on SSD now. */
  private async write(
    drive: SsdDrive,
    blocks: { c: Candidate; offset: number }[],
    drops: SsdRecord[],
  ): Promise<number> {
    const { index, pool } = this.tier.opts;
    const pages = blocks.reduce((n, b) => n + b.c.ns.shards, 0);
    // the pages and the sums their saves (or verified pulls) recorded, in one call: a sealed page is immutable, so a
    // known sum is the sum of the bytes the write stores, and the I/O threads need not read the page to sum it
    const slots = new Int32Array(blocks.length);
    for (let b = 0; b < blocks.length; b++) slots[b] = blocks[b]!.c.slot;
    const poolOffsets = new Float64Array(pages);
    const given = { sums: new Uint32Array(2 * pages), known: new Uint8Array(pages) };
    index.pagesOf(slots, slots.length, poolOffsets, given.sums, given.known);
    const fileOffsets = new Float64Array(pages);
    const lengths = new Float64Array(pages);
    let p = 0;
    for (const { c, offset } of blocks) {
      const slotBytes = extentBytes(c.ns) / c.ns.shards;
      for (let s = 0; s < c.ns.shards; s++, p++) {
        fileOffsets[p] = offset + s * slotBytes;
        lengths[p] = c.ns.pageBytes;
      }
    }
    try {
      // extents taken from evicted blocks are journalled free before new bytes land in them
      await drive.journal.append(encodeRecords(drops));
      const t0 = performance.now();
      const { checksums } = await drive.file.write(pool, poolOffsets, fileOffsets, lengths, given);
      this.tier.observeIo?.('write', (performance.now() - t0) / 1000);
      // consecutive blocks of one namespace and hash length are a run: listed in one call, in the blocks' order
      const groups: Group[] = [];
      const sumAt: number[] = [];
      p = 0;
      for (const [b, { c }] of blocks.entries()) {
        for (let s = 0; s < c.ns.shards; s++)
          if (!given.known[p + s]) index.setChecksum(c.slot, s, checksums[2 * (p + s)]!, checksums[2 * (p + s) + 1]!);
        sumAt.push(p);
        p += c.ns.shards;
        const last = groups.at(-1);
        if (last?.ns.id === c.ns.id && last.hashLen === c.hash.length) last.at.push(b);
        else groups.push({ ns: c.ns, hashLen: c.hash.length, at: [b] });
      }
      const runs = groups.map((g) => runOf(g, blocks, checksums, sumAt));
      await drive.journal.append(
        Buffer.concat(
          runs.map((r) =>
            encodePuts(drive.index, r.g.ns.name, r.g.ns, r.packed, r.g.hashLen, r.count, r.offsets, r.sums),
          ),
        ),
      );
      const { catalog } = this.tier;
      const told = new Map<string, { namespace: string; hashLen: number; parts: Buffer[] }>();
      for (const r of runs) {
        const kind = catalog.kindOf(r.g.ns.name, r.g.ns);
        catalog.addMany(kind, r.packed, r.g.hashLen, r.count, drive.index, r.offsets, r.sums, (d, offset, bytes) =>
          this.tier.drives[d]!.extents.free(offset, bytes),
        );
        const key = `${r.g.hashLen}\0${r.g.ns.name}`;
        let t = told.get(key);
        if (!t) told.set(key, (t = { namespace: r.g.ns.name, hashLen: r.g.hashLen, parts: [] }));
        t.parts.push(r.packed);
      }
      // pinned in DRAM for the write: held in both; told a run per namespace and hash length
      for (const { namespace, hashLen, parts } of told.values())
        this.tier.listener?.movedMany(
          namespace,
          parts.length === 1 ? parts[0]! : Buffer.concat(parts),
          hashLen,
          TIER_BOTH,
        );
      this.tier.counters.writtenBlocks += blocks.length;
      this.tier.counters.writtenBytes += lengths.reduce((n, l) => n + l, 0);
      await this.tier.maybeCompact(drive);
      return blocks.length;
    } catch (err) {
      for (const { c, offset } of blocks) drive.extents.free(offset, extentBytes(c.ns));
      this.tier.failed(drive, err);
      return 0;
    }
  }
}

/** A group's hashes, extents and sums packed (block k of the group at offsets[k], its sums at 2 * shards * k). */
function runOf(
  g: Group,
  blocks: { c: Candidate; offset: number }[],
  checksums: Uint32Array,
  sumAt: number[],
): { g: Group; count: number; packed: Buffer; offsets: Float64Array; sums: Uint32Array } {
  const count = g.at.length;
  const per = 2 * g.ns.shards;
  const packed = Buffer.allocUnsafe(count * g.hashLen);
  const offsets = new Float64Array(count);
  const sums = new Uint32Array(count * per);
  for (let k = 0; k < count; k++) {
    const b = g.at[k]!;
    packed.set(blocks[b]!.c.hash, k * g.hashLen);
    offsets[k] = blocks[b]!.offset;
    sums.set(checksums.subarray(2 * sumAt[b]!, 2 * sumAt[b]! + per), k * per);
  }
  return { g, count, packed, offsets, sums };
}
