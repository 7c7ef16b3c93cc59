// node-local with several engines at once: ENGINES client processes (node-local/engine-worker.ts), each a KvEngine
// with its own region saving and loading its own blocks against one node, as the engines of an 8-GPU host do.
// Every rep starts the same step in all engines at once and times it until the last one finishes: aggregate GB/s.
//
// The reference is memcpy of the same aggregate bytes (same descriptors per block, same work split) with as many
// threads as the node has copy threads: the node moves every engine's bytes with its copy threads, so that is the
// copy budget it competes with. Eight memcpy processes of that many threads each would give the reference eight
// times the node's threads. CPU of every party is accounted over the timed steps, as in the single-engine rows.
import type { KvLayoutSpec } from '@kvfabric/client';
import type { NodeHandle } from '@kvfabric/testkit';
import { CpuLedger, capacityRows, processProbe, threadProbe, type CapacityRow } from '../capacity.js';
import { IpcChild, benchScript } from '../ipc-child.js';
import { inTurn, median, nowSeconds, type BenchContext } from '../harness.js';
import type { MemcpyPeer } from '../peers/memcpy.js';
import type { FromWorker, ToWorker } from './engine-worker.js';

/** Engines at once: one per GPU of an 8-GPU host. */
export const ENGINES = 8;

class EngineProcess implements AsyncDisposable {
  readonly #child = IpcChild.fork<ToWorker, FromWorker>(
    'node-local engine process',
    benchScript(import.meta.url, './engine-worker'),
  );

  init(m: Extract<ToWorker, { kind: 'init' }>): Promise<unknown> {
    return this.#child.request(m, 'ready');
  }

  /** CPU seconds this engine spent on one step (save, query or load). */
  async step(kind: 'save' | 'query' | 'load'): Promise<number> {
    return (await this.#child.request({ kind }, 'done')).cpuSeconds;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#child.close();
  }
}

export interface EnginesParams {
  engines: number;
  blockBytes: number;
  perCall: number;
  segments: number;
  callsPerEngine: number;
  copyThreads: number;
  /** memcpy threads take work in chunks this big, as in the single-engine rows. */
  chunkBytes: number;
  warmupReps: number;
  reps: number;
}

export interface EnginesResult {
  /** Aggregate bytes per second of each step, median rep. */
  save: number;
  load: number;
  memSave: number;
  memLoad: number;
  /** CPU per party over the timed reps, both directions, kvfabric and memcpy. */
  capacity: CapacityRow[];
}

export async function concurrentEngines(
  ctx: BenchContext,
  peer: MemcpyPeer,
  node: NodeHandle,
  p: EnginesParams,
): Promise<EnginesResult> {
  const blocks = p.callsPerEngine * p.perCall;
  const layout: KvLayoutSpec = {
    numLayers: p.segments / 2,
    kvSplit: true,
    bytesPerLayerBlock: p.blockBytes / p.segments,
    numBlocks: blocks,
  };
  const engines = Array.from({ length: p.engines }, () => new EngineProcess());
  try {
    const namespace = `bench/${p.engines}-engines`;
    for (const e of engines)
      await e.init({
        kind: 'init',
        socket: node.engineSocket,
        namespace,
        layout,
        calls: p.callsPerEngine,
        perCall: p.perCall,
      });
    using ref = await peer.serve({
      threads: p.copyThreads,
      pageBytes: p.blockBytes,
      slices: p.segments,
      pages: p.engines * blocks,
      chunkBytes: p.chunkBytes,
    });
    const ours = new CpuLedger([
      threadProbe(node.proc.pid, {
        copy: 'copy threads',
        main: 'node event loop',
        other: 'other node threads (GC, libuv)',
      }),
    ]);
    const theirs = new CpuLedger([processProbe(ref.pid, 'memcpy threads')]);
    /** One step in every engine at once; wall seconds until the last is done. */
    const all = async (kind: 'save' | 'query' | 'load', timed: boolean) =>
      ours.window(timed, async () => {
        const t0 = nowSeconds();
        const cpu = await Promise.all(engines.map((e) => e.step(kind)));
        if (timed)
          ours.add(
            `engine clients (${p.engines} processes)`,
            cpu.reduce((a, b) => a + b, 0),
          );
        return nowSeconds() - t0;
      });
    const t = { save: [] as number[], load: [] as number[], memSave: [] as number[], memLoad: [] as number[] };
    const bar = ctx.progress(`${p.engines} engines`, p.warmupReps + p.reps);
    for (let rep = 1 - p.warmupReps; rep <= p.reps; rep++) {
      const timed = rep > 0;
      const kvfabric = async () => {
        const save = await all('save', timed);
        await all('query', false);
        return { save, load: await all('load', timed) };
      };
      const memcpy = async () => ({
        save: await theirs.window(timed, () => ref.rep('gather')),
        load: await theirs.window(timed, () => ref.rep('scatter')),
      });
      const [o, m] = await inTurn(rep, kvfabric, memcpy);
      if (timed) {
        t.save.push(o.save);
        t.load.push(o.load);
        t.memSave.push(m.save);
        t.memLoad.push(m.load);
      }
      bar.tick();
    }
    bar.done();
    const bytes = p.engines * blocks * p.blockBytes;
    const rate = (s: number[]) => bytes / median(s);
    const path = `save + load, ${p.blockBytes / 1024}KiB blocks, ${p.engines} engines`;
    return {
      save: rate(t.save),
      load: rate(t.load),
      memSave: rate(t.memSave),
      memLoad: rate(t.memLoad),
      capacity: [
        ...capacityRows(path, 'kvfabric', ours.seconds, 2 * p.reps * bytes),
        ...capacityRows(path, 'reference', theirs.seconds, 2 * p.reps * bytes),
      ],
    };
  } finally {
    await Promise.all(engines.map((e) => e[Symbol.asyncDispose]()));
  }
}

/**
 * Metrics (`save_<key>_gbps`, `load_<key>_gbps`, `cpu_<key>_ms_per_gib`) and table rows of a concurrent-engines run.
 */
export function reportEngines(
  r: EnginesResult,
  key: string,
  out: { metrics: Record<string, number>; reference: Record<string, number>; ratios: Record<string, number> },
): (string | number)[][] {
  for (const [dir, ours, ref] of [
    ['save', r.save, r.memSave],
    ['load', r.load, r.memLoad],
  ] as const) {
    const name = `${dir}_${key}_gbps`;
    out.metrics[name] = ours / 1e9;
    out.reference[name] = ref / 1e9;
    out.ratios[name] = ours / ref;
  }
  const sum = (side: CapacityRow['side']) =>
    r.capacity.filter((c) => c.side === side).reduce((a, c) => a + c.msPerGiB, 0);
  out.metrics[`cpu_${key}_ms_per_gib`] = sum('kvfabric');
  out.reference[`cpu_${key}_ms_per_gib`] = sum('reference');
  const gbps = (n: number) => Number((n / 1e9).toFixed(2));
  return [
    [`${key.replace(/_/g, ' ')}: aggregate save`, 'GB/s', gbps(r.save)],
    ['', 'aggregate load', gbps(r.load)],
    ['', 'memcpy gather / scatter, same bytes', `${gbps(r.memSave)} / ${gbps(r.memLoad)}`],
    ...r.capacity.map((c) => ['', `CPU ms per GiB: ${c.party}`, Number(c.msPerGiB.toFixed(1))]),
  ];
}
