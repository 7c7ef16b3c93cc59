// The SSD tier under a running node, end to end, write-through: an engine saves blocks through the SDK (64 a call,
// two calls in flight) and the node's writer puts each on SSD as it seals (pool pages straight to their file slots,
// every page summed, fdatasync per round, journalled, listed in the catalog). Timed from the first save until the
// node's /health lists every block on SSD; each rep saves new blocks, so DRAM evicts earlier reps' blocks (held on
// SSD) once the pool is full, as on a node that has run for a while. The reference is fio writing the same bytes,
// same block size and depth, fdatasync as often (the scenario's write job), run in turn with kvfabric.
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { KvEngine, KvRegion } from '@kvfabric/client';
import { nowSeconds, type BenchContext } from '../harness.js';
import { CpuLedger, capacityRows, selfProbe, threadProbe, type CapacityRow } from '../capacity.js';
import { freshPacked } from '../fresh-hashes.js';
import { runFio, type FioJob } from '../peers/fio.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PER_CALL = 64;
const IN_FLIGHT = 2;
const SEGMENTS = 16;
/** /health polls while the writer drains: often enough to time it, rare enough to cost the node little. */
const POLL_MS = 20;

export interface WriteThroughResult {
  /** Bytes / seconds from the first save until every block was on SSD, per timed rep. */
  seconds: number[];
  fioSeconds: number[];
  capacity: CapacityRow[];
  /** How often /health was polled while the writer drained (ms). */
  pollMs: number;
  /** Node event-loop CPU per /health poll, subtracted from the event loop's account (polls are the bench's). */
  pollCpuMs: number;
}

async function ssdBlocks(node: NodeHandle): Promise<number> {
  const health = (await (await fetch(`http://${node.httpAddr}/health`)).json()) as { ssdBlocks?: number | null };
  if (typeof health.ssdBlocks !== 'number') throw new Error('ssd bench: the node reports no ssdBlocks in /health');
  return health.ssdBlocks;
}

export async function writeThrough(
  ctx: BenchContext,
  opts: { dir: string; blockBytes: number; bytes: number; reps: number; fio: Omit<FioJob, 'rw'> },
): Promise<WriteThroughResult> {
  const { blockBytes, bytes, reps } = opts;
  const blocks = bytes / blockBytes;
  const calls = blocks / PER_CALL;
  // DRAM holds two reps; the SSD all of them (no SSD eviction inside the timed reps)
  await using node = await startNode({
    poolSize: `${Math.ceil((2 * bytes) / MiB) + 64}mib`,
    logLevel: 'warn',
    args: [
      '--ssd-path',
      opts.dir,
      '--ssd-capacity',
      `${Math.ceil(((reps + 2) * bytes) / MiB) + 256}mib`,
      '--ssd-write-mode',
      'through',
      '--ssd-wipe',
    ],
  });
  const region = KvRegion.create({
    layout: { numLayers: SEGMENTS / 2, kvSplit: true, bytesPerLayerBlock: blockBytes / SEGMENTS, numBlocks: PER_CALL },
  });
  region.write(0, Buffer.alloc(region.sizeBytes, 7));
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'bench/ssd', region });
  try {
    const ids = Uint32Array.from({ length: PER_CALL }, (_, i) => i);
    const ledger = new CpuLedger([
      threadProbe(node.proc.pid, {
        main: 'node event loop',
        copy: 'node copy threads (saves)',
        other: 'node other threads (SSD I/O, GC, libuv)',
      }),
    ]);
    // the engine client over its saves only (this process also polls /health while the writer drains)
    const client = new CpuLedger([selfProbe('engine client (SDK)')]);
    const fioCpu = new CpuLedger();
    // what one /health poll costs the node's event loop, measured while it idles
    const idle = new CpuLedger([threadProbe(node.proc.pid, { main: 'main' })]);
    const idlePolls = 40;
    await idle.window(true, async () => {
      for (let i = 0; i < idlePolls; i++) await ssdBlocks(node);
    });
    const pollCpuMs = (idle.seconds.main! * 1000) / idlePolls;
    let polls = 0;
    let listed = await ssdBlocks(node);
    const out = { seconds: [] as number[], fioSeconds: [] as number[] };
    const bar = ctx.progress(`write-through ${blockBytes / KiB} KiB`, reps + 1);
    for (let rep = 0; rep <= reps; rep++) {
      const timed = rep > 0; // rep 0 warms the SDK, the node's code and the drive
      const hashes = Array.from({ length: calls }, () => freshPacked(PER_CALL));
      const ours = () =>
        ledger.window(timed, async () => {
          const t0 = nowSeconds();
          let next = 0;
          const lane = async () => {
            while (next < calls) {
              const r = await kv.save(ids, hashes[next++]!);
              if (r.stored !== PER_CALL) throw new Error(`ssd bench: save stored ${r.stored} of ${PER_CALL}`);
            }
          };
          await client.window(timed, () => Promise.all(Array.from({ length: IN_FLIGHT }, lane)));
          const due = listed + blocks;
          const deadline = Date.now() + 120_000;
          while ((listed = await ssdBlocks(node)) < due) {
            if (timed) polls++;
            if (Date.now() > deadline) throw new Error(`ssd bench: ${listed} of ${due} blocks on SSD after 120 s`);
            await new Promise((r) => setTimeout(r, POLL_MS));
          }
          if (timed) polls++;
          return nowSeconds() - t0;
        });
      const theirs = async () => {
        const r = await runFio({ ...opts.fio, rw: 'write' });
        if (timed) fioCpu.add('fio', r.cpuSeconds);
        return bytes / r.bytesPerSecond;
      };
      let mine: number;
      let fio: number;
      if (rep % 2 === 0) {
        mine = await ours();
        fio = await theirs();
      } else {
        fio = await theirs();
        mine = await ours();
      }
      if (timed) {
        out.seconds.push(mine);
        out.fioSeconds.push(fio);
      }
      bar.tick();
    }
    bar.done();
    ledger.add('node event loop', -(polls * pollCpuMs) / 1000);
    const path = `save ${blockBytes / KiB} KiB blocks, SSD write-through`;
    const moved = reps * bytes;
    return {
      ...out,
      pollMs: POLL_MS,
      pollCpuMs,
      capacity: [
        ...capacityRows(path, 'kvfabric', { ...ledger.seconds, ...client.seconds }, moved),
        ...capacityRows(path, 'reference', fioCpu.seconds, moved),
      ],
    };
  } finally {
    await kv.close();
    region.close();
  }
}
