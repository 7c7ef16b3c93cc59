// native-copy: save/load throughput of the native copy engine between an engine region (POSIX shm) and pool
// pages, against plain C memcpy of the same descriptors with the same threads (bench/src/peers/memcpy.c).
//
// A page of P bytes is gathered from 16 slices laid out [slice][page] in the region (the engine's per-layer KV
// layout) and scattered back. kvfabric submits a rep as batches of 64 pages (as the node does per call), all in
// flight at once; memcpy (a separate process, memory set up the same way) splits the rep's bytes over its threads.
// Both run a warm-up rep, then `reps` timed reps, alternating kvfabric and memcpy rep by rep so that noise from
// other work on the machine hits both alike; the metric is the best rep (the median is shown too).
// Ratio = kvfabric / memcpy, target >= 0.9.
import { availableParallelism } from 'node:os';
import { closeSync, ftruncateSync, openSync, rmSync, writeSync } from 'node:fs';
import { CopyEngine, Pool, Region } from '@kvfabric/native';
import { CpuLedger, capacityRows, processProbe, threadProbe, type CapacityRow } from '../capacity.js';
import { median, nowSeconds, type BenchContext, type Scenario, type ScenarioResult } from '../harness.js';
import { MemcpyPeer } from '../peers/memcpy.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SLICES = 16;
const PAGES_PER_BATCH = 64;

function label(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB}MiB` : `${bytes / KiB}KiB`;
}

/** A /dev/shm object of `size` bytes, filled (so no rep pays for first-touch faults). */
function makeShm(size: number): { name: string; [Symbol.dispose](): void } {
  const name = `/kvf-bench-native-copy-${process.pid}`;
  const path = `/dev/shm${name}`;
  const fd = openSync(path, 'w+', 0o600);
  try {
    ftruncateSync(fd, size);
    const chunk = Buffer.alloc(Math.min(size, 64 * MiB), 1);
    for (let off = 0; off < size; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
  } finally {
    closeSync(fd);
  }
  return { name, [Symbol.dispose]: () => rmSync(path, { force: true }) };
}

interface KvfabricSide extends Disposable {
  rep(mode: 'gather' | 'scatter'): Promise<number>;
}

/** Region, pool pages and descriptors for `pages` pages; rep() runs one timed rep through the copy engine. */
function setUpKvfabric(threads: number, pageBytes: number, pages: number, engine: CopyEngine): KvfabricSide {
  const total = pages * pageBytes;
  const slice = pageBytes / SLICES;
  const shm = makeShm(total);
  const region = Region.openShm(shm.name, total);
  const pool = Pool.create({ sizeBytes: total, prefaultThreads: threads, slabBytes: Math.max(2 * MiB, pageBytes) });
  // Pages come from the allocator, 64 per call, like the node's save path.
  const offsets: number[] = [];
  for (let p = 0; p < pages; p += PAGES_PER_BATCH) {
    const got = pool.allocMany(pageBytes, Math.min(PAGES_PER_BATCH, pages - p));
    if (!got) throw new Error(`native-copy: pool of ${total} bytes could not hold ${pages} pages of ${pageBytes}`);
    offsets.push(...got);
  }
  const n = pages * SLICES;
  const regionOff = new Float64Array(n);
  const poolOff = new Float64Array(n);
  const lengths = new Float64Array(n).fill(slice);
  for (let p = 0; p < pages; p++) {
    for (let l = 0; l < SLICES; l++) {
      regionOff[p * SLICES + l] = (l * pages + p) * slice;
      poolOff[p * SLICES + l] = offsets[p]! + l * slice;
    }
  }
  const per = PAGES_PER_BATCH * SLICES;
  return {
    async rep(mode) {
      const gather = mode === 'gather';
      const t0 = nowSeconds();
      const batches: Promise<unknown>[] = [];
      for (let i = 0; i < n; i += per) {
        const r = regionOff.subarray(i, i + per);
        const q = poolOff.subarray(i, i + per);
        const len = lengths.subarray(i, i + per);
        batches.push(gather ? engine.copy(region, pool, r, q, len) : engine.copy(pool, region, q, r, len));
      }
      await Promise.all(batches);
      return nowSeconds() - t0;
    },
    [Symbol.dispose]() {
      pool.close();
      region.close();
      shm[Symbol.dispose]();
    },
  };
}

const scenario: Scenario = {
  name: 'native-copy',
  description: 'copy engine gather/scatter between an engine region and pool pages vs plain memcpy, same threads',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    // Same thread count both sides: all cores by default, or KVFABRIC_BENCH_COPY_THREADS.
    const threads = Number(process.env.KVFABRIC_BENCH_COPY_THREADS) || availableParallelism();
    const bytesPerRep = ctx.quick ? 64 * MiB : 512 * MiB;
    const reps = ctx.quick ? 3 : 20;
    const sizes = [64 * KiB, 256 * KiB, 2 * MiB];
    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const capacity: CapacityRow[] = [];
    using peer = new MemcpyPeer();
    const engine = new CopyEngine({ threads });
    try {
      for (const pageBytes of sizes) {
        const pages = bytesPerRep / pageBytes;
        ctx.log(
          `${label(pageBytes)} pages: ${pages} pages x ${SLICES} slices of ${label(pageBytes / SLICES)}, ${reps} reps, ${threads} threads`,
        );
        // Both sides set up at once; reps alternate between them so that machine noise hits both alike.
        using ours = setUpKvfabric(threads, pageBytes, pages, engine);
        // memcpy threads take work in chunks the size of the copy engine's parts (a 64-page batch split over the
        // threads, at least 256 KiB), so both balance load alike.
        const chunkBytes = Math.max(256 * KiB, (PAGES_PER_BATCH * pageBytes) / threads);
        using ref = await peer.serve({ threads, pageBytes, slices: SLICES, pages, chunkBytes });
        const times = {
          kvfabric: { gather: [] as number[], scatter: [] as number[] },
          memcpy: { gather: [] as number[], scatter: [] as number[] },
        };
        // CPU over the timed reps: the copy engine's threads and the JavaScript thread submitting its batches here,
        // every thread of the memcpy process there.
        const ourCpu = new CpuLedger([
          threadProbe(process.pid, { copy: 'copy threads', main: 'submitting thread (JavaScript)' }),
        ]);
        const refCpu = new CpuLedger([processProbe(ref.pid, 'memcpy threads')]);
        const bar = ctx.progress(`${label(pageBytes)} pages`, 2 * reps);
        for (const mode of ['gather', 'scatter'] as const) {
          await ours.rep(mode); // warm-up
          await ref.rep(mode);
          for (let r = 0; r < reps; r++) {
            const kvfabricRep = async () => times.kvfabric[mode].push(await ourCpu.window(true, () => ours.rep(mode)));
            const memcpyRep = async () => times.memcpy[mode].push(await refCpu.window(true, () => ref.rep(mode)));
            if (r % 2 === 0) {
              await kvfabricRep();
              await memcpyRep();
            } else {
              await memcpyRep();
              await kvfabricRep();
            }
            bar.tick();
          }
        }
        bar.done();
        const path = `gather + scatter, ${label(pageBytes)} pages`;
        capacity.push(
          ...capacityRows(path, 'kvfabric', ourCpu.seconds, 2 * reps * bytesPerRep),
          ...capacityRows(path, 'reference', refCpu.seconds, 2 * reps * bytesPerRep),
        );
        for (const mode of ['gather', 'scatter'] as const) {
          const key = `${mode}_${label(pageBytes)}_GBps`;
          // Best rep: the estimate least disturbed by other work on a shared machine (same policy both sides).
          const k = bytesPerRep / Math.min(...times.kvfabric[mode]) / 1e9;
          const m = bytesPerRep / Math.min(...times.memcpy[mode]) / 1e9;
          metrics[key] = Number(k.toFixed(2));
          reference[key] = Number(m.toFixed(2));
          ratios[key] = Number((k / m).toFixed(3));
          rows.push([
            label(pageBytes),
            mode === 'gather' ? 'gather region→pool' : 'scatter pool→region',
            label(pageBytes / SLICES),
            Number(k.toFixed(2)),
            Number((bytesPerRep / median(times.kvfabric[mode]) / 1e9).toFixed(2)),
            Number(m.toFixed(2)),
            Number((bytesPerRep / median(times.memcpy[mode]) / 1e9).toFixed(2)),
            Number((k / m).toFixed(3)),
          ]);
        }
      }
    } finally {
      engine.close();
    }
    const c = engine.counters();
    return {
      metrics,
      reference,
      ratios,
      capacity,
      table: {
        columns: [
          'page',
          'direction',
          'slice',
          'kvfabric GB/s (best)',
          'kvfabric median',
          'memcpy GB/s (best)',
          'memcpy median',
          'ratio (best)',
        ],
        rows,
      },
      notes: [
        `${threads} threads both sides; ${(bytesPerRep / GiB).toFixed(3)} GiB per rep and direction, ${reps} timed reps after a warm-up, ` +
          `alternating kvfabric and memcpy; GB/s of the best rep; ` +
          `kvfabric batches of ${PAGES_PER_BATCH} pages all in flight; copy engine moved ${(c.bytesCopied / GiB).toFixed(1)} GiB in ${c.batches} batches, ${c.errors} errors`,
        'capacity: CPU (schedstat) of the copy threads and the submitting JavaScript thread vs every memcpy thread, summed over the timed reps of both directions',
        `stores: the copy engine writes copies of 4 KiB and more with streaming (non-temporal) stores, ${CopyEngine.storeKernel} kernel on this CPU; the reference is glibc's memcpy (cached stores at these sizes)`,
      ],
    };
  },
};

export default scenario;
