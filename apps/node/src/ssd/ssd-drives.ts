// The SSD tier's drives: one per --ssd-path directory, each a data file (O_DIRECT, `kvfabric-ssd.data`) cut into
// extents, and its own journal (`kvfabric-ssd.journal`), so a lost drive takes only its own blocks. Opening a
// drive replays its journal: every surviving record whose extent can be claimed back becomes a catalog entry.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SsdFile, type SsdEngine } from '@kvfabric/native';
import { KvError, toKvError } from '@kvfabric/common';
import { ExtentAllocator } from './extent-allocator.js';
import { extentBytes, sameLayout, type SsdCatalog } from './ssd-catalog.js';
import type { SsdPut } from './journal-codec.js';
import { SsdJournal, wipeJournal } from './ssd-journal.js';

const MiB = 1024 * 1024;
/** Segment size of the extent allocator: 64 MiB, or a quarter of a small drive (so tests can use a few MiB). */
export function segmentBytesFor(capacityBytes: number): number {
  return Math.min(64 * MiB, Math.max(4096, Math.floor(capacityBytes / 4 / 4096) * 4096));
}

export interface SsdDrive {
  readonly index: number;
  readonly dir: string;
  readonly file: SsdFile;
  readonly journal: SsdJournal;
  readonly extents: ExtentAllocator;
  inService: boolean;
  /** Why the drive was taken out of service. */
  reason?: string;
}

export interface DriveReplay {
  recovered: number;
  /** Journal records dropped: torn, damaged, or naming an extent that could not be claimed back. */
  dropped: number;
  seconds: number;
}

export interface OpenDriveOptions {
  dir: string;
  index: number;
  capacityBytes: number;
  wipe: boolean;
  engine?: SsdEngine;
  queueDepth?: number;
}

/** Opens (creating) one drive and replays its journal into `catalog`. Errors name the flag and the path. */
export async function openDrive(
  o: OpenDriveOptions,
  catalog: SsdCatalog,
): Promise<{ drive: SsdDrive; replay: DriveReplay }> {
  const t0 = performance.now();
  const journalPath = join(o.dir, 'kvfabric-ssd.journal');
  let file: SsdFile;
  try {
    await mkdir(o.dir, { recursive: true, mode: 0o700 });
    if (o.wipe) await wipeJournal(journalPath);
    file = SsdFile.open({
      path: join(o.dir, 'kvfabric-ssd.data'),
      sizeBytes: Math.floor(o.capacityBytes / 4096) * 4096,
      ...(o.engine ? { engine: o.engine } : {}),
      ...(o.queueDepth ? { queueDepth: o.queueDepth } : {}),
    });
  } catch (err) {
    throw new KvError('CONFIG_INVALID', `ssd-path: ${toKvError(err).message}`, { cause: err });
  }
  let opened: Awaited<ReturnType<typeof SsdJournal.open>>;
  try {
    opened = await SsdJournal.open(journalPath, o.dir, o.index);
  } catch (err) {
    file.close();
    throw new KvError('CONFIG_INVALID', `ssd-path: ${journalPath}: ${toKvError(err).message}`, { cause: err });
  }
  const { journal, replay } = opened;
  const extents = new ExtentAllocator(file.sizeBytes, segmentBytesFor(file.sizeBytes));
  const drive: SsdDrive = { index: o.index, dir: o.dir, file, journal, extents, inService: true };
  let unclaimed = 0;
  // consecutive surviving puts of one kind and hash length are listed in one call, oldest first
  const claimed = replay.live.filter((put) => {
    const ok = extents.claim(put.offset, extentBytes(put.layout));
    if (!ok) unclaimed++; // the drive shrank, or its layout changed under the record: never served
    return ok;
  });
  // a block also listed by a drive replayed earlier: this drive's record wins (the other extent stays claimed there)
  const replaced = (d: number, offset: number, bytes: number): void => {
    if (d === o.index) extents.free(offset, bytes);
  };
  for (let i = 0; i < claimed.length;) {
    const first = claimed[i]!;
    const kind = catalog.kindOf(first.namespace, first.layout);
    const hashLen = first.hash.length;
    let end = i + 1;
    while (end < claimed.length && claimed[end]!.hash.length === hashLen && sameKind(claimed[end]!, first)) end++;
    const run = claimed.slice(i, end);
    const per = first.checksums.length;
    const sums = new Uint32Array(run.length * per);
    for (const [k, put] of run.entries()) sums.set(put.checksums, k * per);
    const packed = Buffer.concat(run.map((put) => put.hash));
    const offsets = Float64Array.from(run, (put) => put.offset);
    catalog.addMany(kind, packed, hashLen, run.length, o.index, offsets, sums, replaced);
    i = end;
  }
  const recovered = claimed.length;
  extents.finishClaims();
  if (unclaimed > 0) await journal.compact(catalog.encodePuts(catalog.ids(o.index)));
  return {
    drive,
    replay: { recovered, dropped: replay.dropped + unclaimed, seconds: (performance.now() - t0) / 1000 },
  };
}

function sameKind(a: SsdPut, b: SsdPut): boolean {
  return a.namespace === b.namespace && sameLayout(a.layout, b.layout);
}
