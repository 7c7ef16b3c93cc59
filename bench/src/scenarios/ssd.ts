// ssd: the SSD tier's native data path against fio on the same filesystem, same block size, same queue depth, same
// run. Write = the eviction path (what the writer submits per round: pool pages straight to their file slots, one
// batch of 64 MiB, every page summed, fdatasync at the end of the batch; fio --rw=write --fdatasync=<pages per
// batch>). Read = the promotion path (file slots into pool pages, every page checked against its sum; fio
// --rw=read). Both with --direct=1 --ioengine=io_uring --iodepth=32. Reps alternate kvfabric and fio; GB/s of the
// best rep. Latency: one page at a time (queue depth 1), kvfabric's whole JavaScript round trip against fio's
// completion latency, p99 (ratio = fio / kvfabric: above 1 is faster). Journal replay: a restarted drive with N
// blocks recorded, blocks per second until its catalog is rebuilt.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool, SsdFile } from '@kvfabric/native';
import { SsdCatalog, encodeRecord, openDrive, type SsdPut } from '@kvfabric/node/internal';
import { median, nowSeconds, percentile, type BenchContext, type Scenario, type ScenarioResult } from '../harness.js';
import { fioVersion, runFio } from '../peers/fio.js';
import { writeThrough } from '../ssd/write-through.js';
import type { CapacityRow } from '../capacity.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DEPTH = 32;
const BATCH_BYTES = 64 * MiB;
const TMPFS_MAGIC = 0x01021994;

const label = (b: number) => (b >= MiB ? `${b / MiB}MiB` : `${b / KiB}KiB`);

function benchDir(): { path: string; [Symbol.dispose](): void } {
  const bases = [process.env.KVFABRIC_BENCH_SSD_DIR, '/var/tmp'].filter((b): b is string => !!b);
  const base = bases.find((b) => existsSync(b) && statfsSync(b).type !== TMPFS_MAGIC);
  if (!base) throw new Error(`ssd: no directory off tmpfs among ${bases.join(', ')} (set KVFABRIC_BENCH_SSD_DIR)`);
  const path = mkdtempSync(join(base, 'kvf-bench-ssd-'));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

interface Side {
  write(): Promise<number>;
  read(): Promise<number>;
  latency(samples: number): Promise<number[]>;
}

function ours(dir: string, pageBytes: number, bytes: number): Side & Disposable {
  const pages = bytes / pageBytes;
  const pool = Pool.create({ sizeBytes: bytes + 2 * MiB, slabBytes: Math.max(2 * MiB, pageBytes) });
  const offsets = new Float64Array(pages);
  for (let p = 0; p < pages; p++) {
    offsets[p] = pool.alloc(pageBytes)!;
    pool.write(offsets[p]!, randomBytes(pageBytes));
  }
  const slots = Float64Array.from({ length: pages }, (_, i) => i * pageBytes);
  const lengths = new Float64Array(pages).fill(pageBytes);
  const file = SsdFile.open({ path: join(dir, 'kvfabric.data'), sizeBytes: bytes, queueDepth: DEPTH });
  let sums = new Uint32Array(0);
  const per = BATCH_BYTES / pageBytes;
  return {
    async write() {
      const t0 = nowSeconds();
      const parts: Uint32Array[] = [];
      for (let i = 0; i < pages; i += per) {
        const r = await file.write(
          pool,
          offsets.subarray(i, i + per),
          slots.subarray(i, i + per),
          lengths.subarray(i, i + per),
        );
        parts.push(r.checksums);
      }
      const t = nowSeconds() - t0;
      sums = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (sums.set(p, at), at + p.length), 0);
      return t;
    },
    async read() {
      const t0 = nowSeconds();
      for (let i = 0; i < pages; i += per) {
        const r = await file.read(
          pool,
          offsets.subarray(i, i + per),
          slots.subarray(i, i + per),
          lengths.subarray(i, i + per),
          sums.subarray(2 * i, 2 * (i + per)),
        );
        if (r.mismatches.length) throw new Error(`ssd bench: ${r.mismatches.length} pages read back differ`);
      }
      return nowSeconds() - t0;
    },
    async latency(samples) {
      const out: number[] = [];
      for (let s = -10; s < samples; s++) {
        const i = ((s + 10) * 7919) % pages;
        const t0 = nowSeconds();
        await file.read(
          pool,
          offsets.subarray(i, i + 1),
          slots.subarray(i, i + 1),
          lengths.subarray(i, i + 1),
          sums.subarray(2 * i, 2 * i + 2),
        );
        if (s >= 0) out.push(nowSeconds() - t0); // the first 10 warm up
      }
      return out;
    },
    [Symbol.dispose]() {
      file.close();
      pool.close();
    },
  };
}

/** Replays a journal of `n` records on a fresh drive; returns blocks per second. */
async function replayRate(dir: string, n: number): Promise<{ perSecond: number; seconds: number }> {
  const layout = { tpSize: 1, replicated: false, segments: 1, segmentBytes: 4096 };
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const hash = Buffer.alloc(32);
    hash.writeUInt32LE(i);
    const put: SsdPut = {
      kind: 'put',
      file: 0,
      offset: i * 4096,
      namespace: 'bench/replay',
      layout,
      hash,
      checksums: new Uint32Array([i, i]),
    };
    parts.push(encodeRecord(put));
  }
  writeFileSync(join(dir, 'kvfabric-ssd.journal'), Buffer.concat(parts));
  const catalog = new SsdCatalog(1);
  const { drive, replay } = await openDrive(
    { dir, index: 0, capacityBytes: n * 4096 + 64 * MiB, wipe: false },
    catalog,
  );
  drive.file.close();
  await drive.journal.close();
  if (replay.recovered !== n) throw new Error(`ssd bench: replay recovered ${replay.recovered} of ${n}`);
  return { perSecond: n / replay.seconds, seconds: replay.seconds };
}

const scenario: Scenario = {
  name: 'ssd',
  description:
    'SSD tier write (eviction) and read (promotion) vs fio --direct=1 --ioengine=io_uring, same size and depth',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const fio = await fioVersion();
    if (!fio) throw new Error('ssd: fio not found (scripts/install-deps.sh installs it)');
    const bytes = ctx.quick ? 128 * MiB : 512 * MiB;
    const reps = ctx.quick ? 2 : 4;
    const samples = ctx.quick ? 100 : 400;
    const metrics: Record<string, number> = {};
    let pollNote = '';
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const capacity: CapacityRow[] = [];
    using dir = benchDir();
    for (const pageBytes of [256 * KiB, 2 * MiB]) {
      ctx.log(`${label(pageBytes)} pages: ${bytes / MiB} MiB per rep, queue depth ${DEPTH}, ${reps} reps`);
      using side = ours(dir.path, pageBytes, bytes);
      const fioFile = join(dir.path, 'fio.data');
      const job = { file: fioFile, blockBytes: pageBytes, iodepth: DEPTH, sizeBytes: bytes };
      const t = {
        ours: { write: [] as number[], read: [] as number[] },
        fio: { write: [] as number[], read: [] as number[] },
      };
      const bar = ctx.progress(`${label(pageBytes)}`, reps);
      await side.write(); // warm-up (and the sums the reads check against)
      await runFio({ ...job, rw: 'write', syncEvery: BATCH_BYTES / pageBytes });
      for (let r = 0; r < reps; r++) {
        const mine = async () => {
          t.ours.write.push(await side.write());
          t.ours.read.push(await side.read());
        };
        const theirs = async () => {
          t.fio.write.push(
            bytes / (await runFio({ ...job, rw: 'write', syncEvery: BATCH_BYTES / pageBytes })).bytesPerSecond,
          );
          t.fio.read.push(bytes / (await runFio({ ...job, rw: 'read' })).bytesPerSecond);
        };
        if (r % 2 === 0) await mine().then(theirs);
        else await theirs().then(mine);
        bar.tick();
      }
      bar.done();
      for (const op of ['write', 'read'] as const) {
        const key = `${op}_${label(pageBytes)}_GBps`;
        const k = bytes / Math.min(...t.ours[op]) / 1e9;
        const f = bytes / Math.min(...t.fio[op]) / 1e9;
        metrics[key] = Number(k.toFixed(3));
        reference[key] = Number(f.toFixed(3));
        ratios[key] = Number((k / f).toFixed(3));
        rows.push([
          label(pageBytes),
          op,
          DEPTH,
          metrics[key]!,
          Number((bytes / median(t.ours[op]) / 1e9).toFixed(3)),
          reference[key]!,
          ratios[key]!,
        ]);
      }
      const lat = (await side.latency(samples)).sort((a, b) => a - b);
      const fl = await runFio({ ...job, iodepth: 1, rw: 'randread', sizeBytes: Math.min(bytes, samples * pageBytes) });
      const key = `read_qd1_${label(pageBytes)}_p99_ms`;
      metrics[key] = Number((percentile(lat, 99) * 1000).toFixed(3));
      reference[key] = Number((fl.p99 * 1000).toFixed(3));
      ratios[key] = Number((reference[key]! / metrics[key]!).toFixed(3));
      rows.push([
        label(pageBytes),
        'read p99 ms (qd 1)',
        1,
        metrics[key]!,
        Number((percentile(lat, 50) * 1000).toFixed(3)),
        reference[key]!,
        ratios[key]!,
      ]);
    }
    // A node with the SSD tier, write-through: engine saves until the SSD lists every block, against fio's writes.
    for (const pageBytes of [256 * KiB, 2 * MiB]) {
      using wdir = benchDir();
      const fioFile = join(dir.path, 'fio.data');
      const job = {
        file: fioFile,
        blockBytes: pageBytes,
        iodepth: DEPTH,
        sizeBytes: bytes,
        syncEvery: BATCH_BYTES / pageBytes,
      };
      const w = await writeThrough(ctx, { dir: wdir.path, blockBytes: pageBytes, bytes, reps, fio: job });
      const key = `write_through_${label(pageBytes)}_GBps`;
      const k = bytes / median(w.seconds) / 1e9;
      const f = bytes / median(w.fioSeconds) / 1e9;
      metrics[key] = Number(k.toFixed(3));
      reference[key] = Number(f.toFixed(3));
      ratios[key] = Number((k / f).toFixed(3));
      rows.push([
        label(pageBytes),
        'node: save, write-through until on SSD',
        DEPTH,
        '-',
        metrics[key]!,
        reference[key]!,
        ratios[key]!,
      ]);
      capacity.push(...w.capacity);
      const loop = w.capacity.find((r) => r.party === 'node event loop');
      if (loop) metrics[`write_through_${label(pageBytes)}_event_loop_ms_per_GiB`] = Number(loop.msPerGiB.toFixed(2));
      pollNote = `write-through: ${bytes / MiB} MiB of fresh blocks per rep saved through the SDK (64 a call, 2 calls in flight) into a node with --ssd-write-mode through, timed until /health lists them all on SSD (polled every ${w.pollMs} ms; one poll's event-loop CPU, ${w.pollCpuMs.toFixed(2)} ms measured idle, is taken off the event loop's account); median of ${reps} reps alternating with fio's write job; DRAM holds two reps, so later reps evict earlier blocks (held on SSD)`;
    }
    const n = ctx.quick ? 20_000 : 200_000;
    {
      using rdir = benchDir();
      const r = await replayRate(rdir.path, n);
      metrics.journal_replay_blocks_per_sec = Math.round(r.perSecond);
      rows.push([
        '-',
        `journal replay, ${n} blocks`,
        '-',
        Math.round(r.perSecond),
        `${r.seconds.toFixed(3)} s`,
        '-',
        '-',
      ]);
    }
    return {
      metrics,
      reference,
      ratios,
      table: {
        columns: [
          'page',
          'op',
          'depth',
          'kvfabric (best GB/s | p99 ms | blocks/s)',
          'kvfabric (median | p50)',
          'fio',
          'ratio',
        ],
        rows,
      },
      notes: [
        `${fio}; files under ${dir.path.replace(/\/[^/]+$/, '')} (O_DIRECT, io_uring both); ${bytes / MiB} MiB per rep, ${reps} reps alternating kvfabric and fio, best rep`,
        `kvfabric writes sum every page (XXH3-64) and fdatasync every ${BATCH_BYTES / MiB} MiB batch (fio: --fdatasync every ${BATCH_BYTES / MiB} MiB); kvfabric reads verify every page`,
        'latency: kvfabric = one-page read batch, JavaScript call to settled promise; fio = completion latency (clat) of --iodepth=1 random reads; latency ratio = fio p99 / kvfabric p99',
        `journal replay: ${n} records of 4 KiB blocks, open + replay + claim + catalog (the restart path), one drive`,
        pollNote,
        'capacity: schedstat CPU of the node (event loop, copy threads, other threads: SSD I/O, GC, libuv) and of this process (the engine client) over each write-through rep; fio by its own accounting',
      ],
      capacity,
    };
  },
};

export default scenario;
