// The SSD tier (--ssd-path): a second, larger cache level under the DRAM pool that survives a restart. A block
// lives in DRAM (the block index), on SSD (the catalog), or both. The writer (ssd-writer.ts) puts blocks on SSD
// before DRAM evicts them (or, write-through, as they seal); a query that misses DRAM promotes what the SSD holds
// (ssd-promoter.ts); each drive's journal makes what is on SSD durable across a restart, and a restarted node
// advertises it at once. A drive whose I/O fails is taken out of service (logged, counted); the node keeps
// serving from DRAM and the other drives.
import { TIER_DRAM, TIER_SSD, toKvError } from '@kvfabric/common';
import type { NamespaceInfo } from '../namespaces.js';
import { SsdCatalog } from './ssd-catalog.js';
import { openDrive, type SsdDrive } from './ssd-drives.js';
import { encodeRecord } from './journal-codec.js';
import { SsdPromoter } from './ssd-promoter.js';
import { SsdWriter } from './ssd-writer.js';
import type { SsdCounters, SsdListener, SsdTierCore, SsdTierOptions } from './ssd-state.js';

export type { SsdWriteMode } from './ssd-state.js';

export class SsdTier implements SsdTierCore {
  readonly catalog: SsdCatalog;
  readonly counters: SsdCounters = {
    writtenBlocks: 0,
    writtenBytes: 0,
    promotedBlocks: 0,
    readBytes: 0,
    evictedBlocks: 0,
    droppedBlocks: 0,
    mismatchedBlocks: 0,
    geometryDroppedBlocks: 0,
    recoveredBlocks: 0,
    replayDroppedRecords: 0,
    replaySeconds: 0,
    ioErrors: 0,
  };
  readonly writer: SsdWriter;
  readonly promoter: SsdPromoter;
  listener: SsdListener | undefined;
  /** Called with each native batch's duration (ssd-metrics.ts sets it). */
  observeIo: ((op: 'read' | 'write', seconds: number) => void) | undefined;
  private closed = false;
  /** Scratch of `split`: the catalog id of each hash of a run. */
  private ids = new Int32Array(256);

  private constructor(
    readonly opts: SsdTierOptions,
    readonly drives: SsdDrive[],
    catalog: SsdCatalog,
  ) {
    this.catalog = catalog;
    this.writer = new SsdWriter(this);
    this.promoter = new SsdPromoter(this);
  }

  /** Opens every drive and replays its journal. Throws CONFIG_INVALID naming --ssd-path and the path. */
  static async open(opts: SsdTierOptions): Promise<SsdTier> {
    const catalog = new SsdCatalog(opts.paths.length);
    const drives: SsdDrive[] = [];
    let recovered = 0;
    let dropped = 0;
    let seconds = 0;
    try {
      for (const [index, dir] of opts.paths.entries()) {
        const { drive, replay } = await openDrive(
          {
            dir,
            index,
            capacityBytes: opts.capacityBytes,
            wipe: opts.wipe,
            ...(opts.engine ? { engine: opts.engine } : {}),
          },
          catalog,
        );
        drives.push(drive);
        recovered += replay.recovered;
        dropped += replay.dropped;
        seconds += replay.seconds;
        opts.logger.info(
          { path: dir, engine: drive.file.engine, fallbackReason: drive.file.fallbackReason, ...replay },
          drive.file.engine === 'io_uring'
            ? 'ssd drive open'
            : 'ssd drive open without io_uring (pread/pwrite threads)',
        );
      }
    } catch (err) {
      for (const d of drives) d.file.close();
      throw err;
    }
    const tier = new SsdTier(opts, drives, catalog);
    Object.assign(tier.counters, { recoveredBlocks: recovered, replayDroppedRecords: dropped, replaySeconds: seconds });
    opts.logger.info(
      { recovered, dropped, seconds },
      `ssd tier: ${recovered} blocks recovered, ${dropped} journal records dropped`,
    );
    return tier;
  }

  get capacityBytes(): number {
    return this.drives.reduce((n, d) => n + (d.inService ? d.extents.stats().capacityBytes : 0), 0);
  }

  get usedBytes(): number {
    return this.drives.reduce((n, d) => n + (d.inService ? d.extents.stats().usedBytes : 0), 0);
  }

  drivesInService(): number {
    return this.drives.filter((d) => d.inService).length;
  }

  /** Whether (namespace, hash) is on SSD. */
  has(namespace: string, hash: Uint8Array): boolean {
    return this.catalog.find(namespace, hash) >= 0;
  }

  /**
   * Splits a packed run of `namespace` (`hashLen` bytes each) into the hashes on SSD and the others, each packed, in
   * one native lookup for the run (a run none of which is on SSD comes back as it is).
   */
  split(namespace: string, packed: Uint8Array, hashLen: number): { onSsd: Uint8Array; elsewhere: Uint8Array } {
    const count = packed.length / hashLen;
    if (this.ids.length < count) this.ids = new Int32Array(Math.max(count, 2 * this.ids.length));
    const found = this.catalog.findMany(namespace, packed, hashLen, this.ids);
    if (found === 0) return { onSsd: packed.subarray(0, 0), elsewhere: packed };
    if (found === count) return { onSsd: packed, elsewhere: packed.subarray(0, 0) };
    const onSsd = Buffer.allocUnsafe(found * hashLen);
    const elsewhere = Buffer.allocUnsafe((count - found) * hashLen);
    let a = 0;
    let b = 0;
    for (let k = 0; k < count; k++) {
      const hash = packed.subarray(k * hashLen, (k + 1) * hashLen);
      if (this.ids[k]! >= 0) onSsd.set(hash, a++ * hashLen);
      else elsewhere.set(hash, b++ * hashLen);
    }
    return { onSsd, elsewhere };
  }

  /**
   * DRAM evicted a run of blocks of `namespace`: those on SSD are still held (the listener hears they are on SSD
   * only); the others are gone (counted, and the listener hears so).
   */
  dramEvicted(namespace: string, packed: Uint8Array, hashLen: number): void {
    const { onSsd, elsewhere } = this.split(namespace, packed, hashLen);
    this.counters.droppedBlocks += elsewhere.length / hashLen;
    if (onSsd.length > 0) this.listener?.movedMany(namespace, onSsd, hashLen, TIER_SSD);
    if (elsewhere.length > 0) this.listener?.removedMany(namespace, elsewhere, hashLen);
  }

  /** Blocks sealed in DRAM by saves and pulls (promotions excluded): the writer may take them (write-through). */
  sealed(ns: NamespaceInfo, packed: Uint8Array, hashLen: number): void {
    this.writer.sealed(ns, packed, hashLen);
  }

  /** Every block on SSD, packed per namespace (advertised at start and on a metaserver's new epoch). */
  resident(): { namespace: string; hashes: { packed: Buffer; hashLen: number } }[] {
    return this.catalog
      .hashesByNamespace()
      .map((g) => ({ namespace: g.namespace, hashes: { packed: g.packed, hashLen: g.hashLen } }));
  }

  /**
   * Forgets the entry `id` (its extent is free again) and journals that, unless it is gone or `stamp` names an
   * earlier listing of the id; the listener hears that the block left the node, or that it is in DRAM only now
   * (`dramHolds`: whether DRAM holds it).
   */
  forget(id: number, dramHolds: boolean, stamp?: number): Promise<void> {
    const { catalog } = this;
    if (!catalog.listed(id, stamp)) return Promise.resolve();
    const drive = this.drives[catalog.driveOf(id)]!;
    const offset = catalog.offsetOf(id);
    const { namespace, extentBytes } = catalog.kindOfId(id);
    const hash = catalog.hashOf(id);
    catalog.remove(id);
    drive.extents.free(offset, extentBytes);
    if (dramHolds) this.listener?.moved(namespace, hash, TIER_DRAM);
    else this.listener?.removed(namespace, hash);
    if (!drive.inService) return Promise.resolve();
    return drive.journal
      .append(encodeRecord({ kind: 'drop', file: drive.index, offset }))
      .catch((err: unknown) => this.failed(drive, err));
  }

  /** A drive's I/O failed: out of service, its blocks forgotten (DRAM copies stay); the node keeps serving. */
  failed(drive: SsdDrive, err: unknown): void {
    this.counters.ioErrors++;
    if (!drive.inService) return;
    drive.inService = false;
    drive.reason = toKvError(err).message;
    let lost = 0;
    const { catalog } = this;
    const { namespaces, index } = this.opts;
    for (const id of catalog.ids(drive.index)) {
      const { namespace } = catalog.kindOfId(id);
      const hash = catalog.hashOf(id);
      catalog.remove(id);
      const ns = namespaces.byNameOrUndefined(namespace);
      const slot = ns ? index.lookup(ns.id, hash, 0, hash.length) : -1;
      if (slot < 0 || !index.isSealed(slot)) {
        this.listener?.removed(namespace, hash);
        lost++;
      } else this.listener?.moved(namespace, hash, TIER_DRAM);
    }
    this.opts.logger.error(
      { path: drive.dir, err: drive.reason, blocksLost: lost },
      'ssd drive taken out of service after an I/O error; serving from DRAM and the other drives',
    );
  }

  /** Rewrites a drive's journal with its live records when appends have made it much larger than that. */
  async maybeCompact(drive: SsdDrive): Promise<void> {
    if (drive.journal.bytes < Math.max(1024 * 1024, this.catalog.count(drive.index) * 400)) return;
    await drive.journal.compact(this.catalog.encodePuts(this.catalog.ids(drive.index)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.stop();
    for (const d of this.drives) {
      await d.journal.close().catch(() => undefined);
      d.file.close();
    }
  }
}
