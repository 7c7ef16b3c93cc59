// node-local: a real kvfabric-node process driven through the engine SDK.
//  1. save / load GB/s, 64 blocks per call (256 KiB and 2 MiB blocks, 16 segments each laid out [segment][block]
//     like vLLM's per-layer KV; the SDK sends its calls on its command ring, shared memory run by a native node
//     thread, as it does by default for a local node), vs plain
//     memcpy of the same descriptors with the same threads (bench/src/peers/memcpy.c), reps alternating (and
//     which side goes first alternating) so machine noise hits both alike. Target ratio >= 0.9. The memcpy threads
//     take work in chunks the size of the copy engine's parts (a call's bytes split over the threads), so both
//     balance load alike. CPU time of every party is recorded
//     over the timed windows (copy threads, the node's event loop and other threads, the engine client, memcpy):
//     on a host with few cores the node's event loop and the client compete with the copy threads for them.
//     The same with 8 engines at once (node-local/engines.ts): 8 client processes, each a KvEngine with its own
//     region and blocks, against the one node; aggregate GB/s vs memcpy of the aggregate bytes with the node's
//     copy threads. Every party's CPU per GiB and the GB/s one core of it carries go to the `capacity` field.
//  2. Query latency for a 64-hash prefix (SDK round trip, p50/p99), and the in-process index lookup it includes.
//  3. Sharing: 8 engine instances with a shared-prefix workload against one shared node vs 8 private nodes with
//     1/8 of the pool each: hit rate and prefill tokens avoided.
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { KvEngine, KvRegion, type KvLayoutSpec } from '@kvfabric/client';
import { CopyEngine } from '@kvfabric/native';
import { createBlockIndex } from '@kvfabric/node/internal';
import { CpuLedger, capacityRows, processProbe, selfProbe, threadProbe, type CapacityRow } from '../capacity.js';
import { ENGINES, concurrentEngines, reportEngines } from '../node-local/engines.js';
import {
  inTurn,
  median,
  nowSeconds,
  percentile,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../harness.js';
import { MemcpyPeer } from '../peers/memcpy.js';
import { WakePeer, type WakeSession } from '../peers/wake.js';
import { warmSdk } from '../node-local/warm-sdk.js';
import { freshHashes, freshPacked } from '../fresh-hashes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SEGMENTS = 16;
const PER_CALL = 64;
const COPY_THREADS = Number(process.env.KVFABRIC_BENCH_COPY_THREADS) || 2;
/**
 * Untimed calls each way before the timed reps (at most WARMUP_REPS reps of them): a node serves calls for its
 * whole life, so its steady state is what is measured, after V8 has optimised the per-call code (the SDK's
 * ring calls, the node's event handling); a single warm-up rep of 16 calls left that compiling during the timed reps.
 */
const WARMUP_CALLS = 128;
const WARMUP_REPS = 8;
/** The copy engine cuts a batch into one part per thread, at least this big (native/src/copy_engine.cc). */
const MIN_PART_BYTES = 256 * KiB;

/** The engine wake floor's party (peers/wake.ts): an engine client that does nothing but wake once per call. */
const WAKE_FLOOR = 'engine wake floor (a Node loop woken once per call, no SDK work)';

const label = (b: number) => (b >= MiB ? `${b / MiB}MiB` : `${b / KiB}KiB`);

async function withEngine<T>(
  node: NodeHandle,
  layout: KvLayoutSpec,
  namespace: string,
  fn: (kv: KvEngine, region: KvRegion) => Promise<T>,
): Promise<T> {
  const region = KvRegion.create({ layout });
  // Touch the region once so no rep pays first-touch faults.
  const chunk = Buffer.alloc(Math.min(region.sizeBytes, 64 * MiB), 7);
  for (let off = 0; off < region.sizeBytes; off += chunk.length)
    region.write(off, chunk.subarray(0, Math.min(chunk.length, region.sizeBytes - off)));
  const kv = await KvEngine.register({ target: node.engineSocket, namespace, region });
  try {
    return await fn(kv, region);
  } finally {
    await kv.close();
    region.close();
  }
}

/** Runs fn(0..n-1) with IN_FLIGHT calls outstanding, as an engine saving layer groups asynchronously does. */
const IN_FLIGHT = 2;
async function inFlight(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** The engine wake floor's totals over the timed reps (peers/wake.ts). */
interface WakeTotals {
  cpuSeconds: number;
  wakes: number;
}

/**
 * Runs a memcpy reference rep with the wake floor's loop woken `calls` times alongside (as often as the SDK's calls
 * completed in its last rep of the same direction), adding the loop's CPU and wakes to `totals` when timed.
 */
async function withWakes(
  wake: WakeSession,
  calls: number,
  gapUs: number,
  totals: WakeTotals | undefined,
  rep: () => Promise<number>,
): Promise<number> {
  const [seconds, w] = await Promise.all([rep(), wake.run(calls, gapUs)]);
  if (totals) {
    totals.cpuSeconds += w.cpuSeconds;
    totals.wakes += w.wakes;
  }
  return seconds;
}

async function throughput(
  ctx: BenchContext,
  peer: MemcpyPeer,
  wakePeer: WakePeer,
  node: NodeHandle,
  blockBytes: number,
  reps: number,
  bytesPerRep: number,
) {
  const calls = Math.max(1, Math.round(bytesPerRep / (PER_CALL * blockBytes)));
  const blocks = calls * PER_CALL;
  const layout: KvLayoutSpec = {
    numLayers: SEGMENTS / 2,
    kvSplit: true,
    bytesPerLayerBlock: blockBytes / SEGMENTS,
    numBlocks: blocks,
  };
  return withEngine(node, layout, `bench/${label(blockBytes)}`, async (kv) => {
    const chunkBytes = Math.max(MIN_PART_BYTES, (PER_CALL * blockBytes) / COPY_THREADS);
    using ref = await peer.serve({
      threads: COPY_THREADS,
      pageBytes: blockBytes,
      slices: SEGMENTS,
      pages: blocks,
      chunkBytes,
    });
    // CPU of every party over the timed windows (the engine client is this process).
    const ourCpu = new CpuLedger([
      threadProbe(node.proc.pid, {
        copy: 'copy threads',
        main: 'node event loop',
        other: 'other node threads (GC, libuv)',
      }),
      selfProbe('engine client (SDK, command ring)'),
    ]);
    const refCpu = new CpuLedger([processProbe(ref.pid, 'memcpy threads')]);
    await using wake = await wakePeer.serve();
    const wakeTotals: WakeTotals = { cpuSeconds: 0, wakes: 0 };
    // Microseconds between the SDK's completions in its last rep, per direction (2 in flight: the rep over its calls).
    const gapUs = { save: 1000, load: 1000 };
    // Block ids as a Uint32Array and each call's hashes packed in one buffer: the SDK's zero-copy forms, made before
    // the timed windows (an engine has its hashes already; making them is not the SDK's cost).
    const ids = Array.from({ length: calls }, (_, c) =>
      Uint32Array.from({ length: PER_CALL }, (_, i) => c * PER_CALL + i),
    );
    const t = { save: [] as number[], load: [] as number[], memSave: [] as number[], memLoad: [] as number[] };
    await warmSdk(kv, inFlight); // the SDK's code JIT-optimised, as the node's is after the warm-up reps
    const warmup = Math.min(WARMUP_REPS, Math.max(1, Math.ceil(WARMUP_CALLS / calls)));
    const bar = ctx.progress(`${label(blockBytes)} blocks`, reps + warmup);
    for (let rep = 1 - warmup; rep <= reps; rep++) {
      const timed = rep > 0; // reps up to 0 warm up both sides (first-touch of mappings, JIT)
      const ours = async () => {
        const hashes = ids.map(() => freshPacked(PER_CALL));
        const save = await ourCpu.window(timed, async () => {
          const t0 = nowSeconds();
          await inFlight(calls, async (c) => {
            const r = await kv.save(ids[c]!, hashes[c]!);
            if (r.stored !== PER_CALL) throw new Error(`node-local: save stored ${r.stored} of ${PER_CALL}`);
          });
          return nowSeconds() - t0;
        });
        gapUs.save = (save * 1e6) / calls;
        const leases: string[] = [];
        for (let c = 0; c < calls; c++) leases.push((await kv.query(hashes[c]!, { localOnly: true })).leaseId);
        const load = await ourCpu.window(timed, async () => {
          const t0 = nowSeconds();
          await inFlight(calls, (c) => kv.load(leases[c]!, ids[c]!).then(() => undefined));
          return nowSeconds() - t0;
        });
        gapUs.load = (load * 1e6) / calls;
        return { save, load };
      };
      const wakes = timed ? wakeTotals : undefined;
      const theirs = async () => ({
        save: await refCpu.window(timed, () => withWakes(wake, calls, gapUs.save, wakes, () => ref.rep('gather'))),
        load: await refCpu.window(timed, () => withWakes(wake, calls, gapUs.load, wakes, () => ref.rep('scatter'))),
      });
      const [o, m] = await inTurn(rep, ours, theirs);
      if (timed) {
        t.save.push(o.save);
        t.load.push(o.load);
        t.memSave.push(m.save);
        t.memLoad.push(m.load);
      }
      bar.tick();
    }
    bar.done();
    const bytes = blocks * blockBytes;
    const gbs = (s: number[]) => bytes / median(s) / 1e9;
    // CPU per GiB moved: both directions, every timed rep.
    const path = `save + load, ${label(blockBytes)} blocks, 1 engine`;
    // The floor of the engine client's CPU: the loop's CPU per wake, once per call of the timed reps.
    const wakeFloorSeconds = wakeTotals.wakes > 0 ? (wakeTotals.cpuSeconds / wakeTotals.wakes) * 2 * reps * calls : 0;
    const capacity = [
      ...capacityRows(path, 'kvfabric', ourCpu.seconds, 2 * reps * bytes),
      ...capacityRows(path, 'reference', { ...refCpu.seconds, [WAKE_FLOOR]: wakeFloorSeconds }, 2 * reps * bytes),
    ];
    const per = (party: string) => capacity.find((r) => r.party === party)!.msPerGiB;
    const cpuPerGib = {
      copy: per('copy threads'),
      eventLoop: per('node event loop'),
      otherNode: per('other node threads (GC, libuv)'),
      client: per('engine client (SDK, command ring)'),
      wakeFloor: per(WAKE_FLOOR),
      memcpy: per('memcpy threads'),
    };
    return {
      save: gbs(t.save),
      load: gbs(t.load),
      memSave: gbs(t.memSave),
      memLoad: gbs(t.memLoad),
      cpuPerGib,
      capacity,
    };
  });
}

async function queryLatency(node: NodeHandle, iterations: number) {
  const layout: KvLayoutSpec = { numLayers: 1, kvSplit: true, bytesPerLayerBlock: 4 * KiB, numBlocks: 64 };
  return withEngine(node, layout, 'bench/query', async (kv) => {
    const hashes = freshHashes(64);
    await kv.save(
      Array.from({ length: 64 }, (_, i) => i),
      hashes,
    );
    const us: number[] = [];
    for (let i = 0; i < iterations + 100; i++) {
      const t0 = process.hrtime.bigint();
      const q = await kv.query(hashes, { localOnly: true });
      const dt = Number(process.hrtime.bigint() - t0) / 1e3;
      if (q.hits !== 64) throw new Error(`node-local: query hit ${q.hits} of 64`);
      await kv.release(q.leaseId);
      if (i >= 100) us.push(dt);
    }
    us.sort((a, b) => a - b);
    return { p50: percentile(us, 50), p99: percentile(us, 99) };
  });
}

/** The node's index alone: 64-hash prefix lookups at 1M resident blocks, in process. */
function indexLookup(blocks: number, iterations: number) {
  const idx = createBlockIndex(blocks);
  const hashes = randomBytes(blocks * 32);
  for (let i = 0; i < blocks; i++) {
    const slot = idx.slotForShard(0, hashes, i * 32, 32, 1, 0, 4096);
    idx.assign(slot, 0, i * 4096);
    idx.markShardWritten(slot, 0);
  }
  const out = new Int32Array(64);
  // Request views and sample slots are made before timing, so the timed loop allocates nothing (no GC inside it).
  const requests = Array.from({ length: iterations }, (_, r) => {
    const start = ((r * 7919) % (blocks - 64)) * 32;
    return hashes.subarray(start, start + 64 * 32);
  });
  const us = new Float64Array(iterations);
  (globalThis as { gc?: () => void }).gc?.();
  for (let r = 0; r < iterations; r++) {
    const request = requests[r]!;
    const t0 = performance.now();
    idx.prefix(0, request, 32, 64, out);
    us[r] = (performance.now() - t0) * 1e3;
  }
  const sorted = Array.from(us).sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

interface SharingResult {
  hitRate: number;
  tokensAvoided: number;
  tokensTotal: number;
}

/**
 * 8 engines; each request = one of FAMILIES shared prefixes (skewed popularity) of PREFIX blocks + SUFFIX unique
 * blocks. An engine queries, loads the hit, "prefills" the rest and saves it, like a vLLM connector.
 */
async function sharing(ctx: BenchContext, nodes: NodeHandle[], requestsPerEngine: number): Promise<SharingResult> {
  const ENGINES = 8;
  const FAMILIES = 48;
  const PREFIX = 12;
  const SUFFIX = 4;
  const TOKENS_PER_BLOCK = 16;
  const layout: KvLayoutSpec = {
    numLayers: 2,
    kvSplit: true,
    bytesPerLayerBlock: 16 * KiB,
    numBlocks: PREFIX + SUFFIX,
  };
  const familyHashes = Array.from({ length: FAMILIES }, () => freshHashes(PREFIX));
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const engines = await Promise.all(
    Array.from({ length: ENGINES }, async (_, e) => {
      const region = KvRegion.create({ layout });
      const kv = await KvEngine.register({
        target: nodes[e % nodes.length]!.engineSocket,
        namespace: 'bench/sharing',
        region,
      });
      return { kv, region };
    }),
  );
  let hits = 0;
  let total = 0;
  const ids = Array.from({ length: PREFIX + SUFFIX }, (_, i) => i);
  const bar = ctx.progress(`sharing (${nodes.length} node${nodes.length > 1 ? 's' : ''})`, requestsPerEngine);
  try {
    for (let r = 0; r < requestsPerEngine; r++) {
      await Promise.all(
        engines.map(async ({ kv }) => {
          const family = Math.floor(FAMILIES * rand() ** 2); // skewed: low families are popular
          const hashes = [...familyHashes[family]!, ...freshHashes(SUFFIX)];
          const q = await kv.query(hashes, { localOnly: true });
          if (q.hits > 0) await kv.load(q.leaseId, ids.slice(0, q.hits));
          hits += q.hits;
          total += hashes.length;
          if (q.hits < hashes.length) await kv.save(ids.slice(q.hits), hashes.slice(q.hits));
        }),
      );
      bar.tick();
    }
  } finally {
    bar.done();
    for (const { kv, region } of engines) {
      await kv.close();
      region.close();
    }
  }
  return { hitRate: hits / total, tokensAvoided: hits * TOKENS_PER_BLOCK, tokensTotal: total * TOKENS_PER_BLOCK };
}

const scenario: Scenario = {
  name: 'node-local',
  description: 'engine SDK save/load vs memcpy, 64-hash query latency, and one shared node vs 8 private pools',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const reps = ctx.quick ? 3 : 8;
    const bytesPerRep = ctx.quick ? 64 * MiB : 256 * MiB;
    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const notes: string[] = [];
    const capacity: CapacityRow[] = [];
    using peer = new MemcpyPeer();
    using wakePeer = new WakePeer();
    {
      await using node = await startNode({
        poolSize: `${(2 * bytesPerRep) / MiB + 64}mib`,
        logLevel: 'warn',
        args: ['--copy-threads', String(COPY_THREADS)],
      });
      for (const blockBytes of [256 * KiB, 2 * MiB]) {
        ctx.log(
          `${label(blockBytes)} blocks, ${PER_CALL} per call, ${bytesPerRep / MiB} MiB per rep, ${reps} reps, ${COPY_THREADS} copy threads`,
        );
        const r = await throughput(ctx, peer, wakePeer, node, blockBytes, reps, bytesPerRep);
        capacity.push(...r.capacity);
        for (const [dir, ours, ref] of [
          ['save', r.save, r.memSave],
          ['load', r.load, r.memLoad],
        ] as const) {
          const name = `${dir}_${label(blockBytes)}_gbps`;
          metrics[name] = ours;
          reference[name] = ref;
          ratios[name] = ours / ref;
        }
        const c = r.cpuPerGib;
        const nodeSide = c.copy + c.eventLoop + c.otherNode + c.client;
        metrics[`cpu_${label(blockBytes)}_ms_per_gib`] = nodeSide;
        metrics[`client_cpu_${label(blockBytes)}_ms_per_gib`] = c.client;
        reference[`client_cpu_${label(blockBytes)}_ms_per_gib`] = c.wakeFloor;
        reference[`cpu_${label(blockBytes)}_ms_per_gib`] = c.memcpy;
        // The best ratio the node side could reach if CPU were the only limit: memcpy's wall time is its CPU over
        // its threads; the node side needs at least its copy CPU over the copy threads, and all of its CPU over
        // the cores it can use (copy threads + event loop + client, at most the host's cores).
        const cores = availableParallelism();
        const nodeWall = Math.max(c.copy / COPY_THREADS, nodeSide / Math.min(cores, COPY_THREADS + 2));
        const cpuBound = Math.min(1, c.memcpy / COPY_THREADS / nodeWall);
        rows.push(
          [`CPU per GiB moved, ${label(blockBytes)} blocks: copy threads`, 'ms', Number(c.copy.toFixed(1))],
          ['', 'node event loop', Number(c.eventLoop.toFixed(1))],
          ['', 'other node threads (GC, libuv)', Number(c.otherNode.toFixed(1))],
          ['', 'engine client (SDK, command ring)', Number(c.client.toFixed(1))],
          ['', WAKE_FLOOR, Number(c.wakeFloor.toFixed(1))],
          ['', 'memcpy reference (all threads)', Number(c.memcpy.toFixed(1))],
          ['', `ratio bound by CPU on ${cores} cores`, Number(cpuBound.toFixed(2))],
        );
      }
      // The same save/load with 8 engines at once (256 KiB blocks, the aggregate of one rep's bytes).
      const blockBytes = 256 * KiB;
      const callsPerEngine = Math.max(1, Math.round(bytesPerRep / ENGINES / (PER_CALL * blockBytes)));
      const many = await concurrentEngines(ctx, peer, node, {
        engines: ENGINES,
        blockBytes,
        perCall: PER_CALL,
        segments: SEGMENTS,
        callsPerEngine,
        copyThreads: COPY_THREADS,
        chunkBytes: Math.max(MIN_PART_BYTES, (PER_CALL * blockBytes) / COPY_THREADS),
        warmupReps: Math.min(WARMUP_REPS, Math.max(1, Math.ceil(WARMUP_CALLS / callsPerEngine))),
        reps,
      });
      rows.push(...reportEngines(many, `${label(blockBytes)}_${ENGINES}_engines`, { metrics, reference, ratios }));
      capacity.push(...many.capacity);
      const q = await queryLatency(node, ctx.quick ? 500 : 3000);
      metrics.query_64_p50_us = q.p50;
      metrics.query_64_p99_us = q.p99;
      rows.push(['query 64-hash prefix via SDK (unix socket)', 'p50 µs', q.p50], ['', 'p99 µs', q.p99]);
    }
    const idx = indexLookup(ctx.quick ? 200_000 : 1_000_000, 20_000);
    metrics.index_lookup_64_p50_us = idx.p50;
    metrics.index_lookup_64_p99_us = idx.p99;
    rows.push(
      [`index prefix lookup, 64 hashes, ${ctx.quick ? '200k' : '1M'} blocks`, 'p50 µs', idx.p50],
      ['', 'p99 µs (target ≤ 20)', idx.p99],
    );

    const sharedPool = 48; // MiB: 768 blocks of 64 KiB
    const requests = ctx.quick ? 40 : 150;
    {
      await using shared = await startNode({ poolSize: `${sharedPool}mib`, logLevel: 'warn' });
      const s = await sharing(ctx, [shared], requests);
      const privateNodes = await Promise.all(
        Array.from({ length: 8 }, () => startNode({ poolSize: `${sharedPool / 8}mib`, logLevel: 'warn' })),
      );
      try {
        const p = await sharing(ctx, privateNodes, requests);
        metrics.sharing_hit_rate = s.hitRate;
        reference.sharing_hit_rate = p.hitRate;
        ratios.sharing_hit_rate = s.hitRate / p.hitRate;
        metrics.sharing_tokens_avoided = s.tokensAvoided;
        reference.sharing_tokens_avoided = p.tokensAvoided;
        rows.push(
          ['sharing: 1 node, 48 MiB pool', 'hit rate', Number(s.hitRate.toFixed(3))],
          ['', 'prefill tokens avoided', s.tokensAvoided],
          ['sharing: 8 private nodes, 6 MiB each', 'hit rate', Number(p.hitRate.toFixed(3))],
          ['', 'prefill tokens avoided', p.tokensAvoided],
          ['', 'prefill tokens asked (each)', s.tokensTotal],
        );
      } finally {
        for (const n of privateNodes) await n[Symbol.asyncDispose]();
      }
    }
    notes.push(
      `save/load: median rep of SDK calls, 2 in flight (64 blocks each, 16 segments per block; block ids as a Uint32Array and the call's hashes packed in one buffer, the SDK's zero-copy forms, made before the timed windows) on the engine's command ring (shared memory with the node, the SDK's default for a local node), ${COPY_THREADS} copy threads; memcpy: same descriptors, same threads, same work split, separate process; reps alternate and alternate which side goes first; untimed warm-up reps first (>= ${WARMUP_CALLS} calls each way, at most ${WARMUP_REPS} reps) so the node is measured JIT-warm`,
    );
    notes.push(
      `stores: the node's copy engine writes copies of 4 KiB and more with streaming (non-temporal) stores (${CopyEngine.storeKernel} kernel on this CPU); the memcpy reference is glibc's memcpy`,
    );
    notes.push(
      "CPU per GiB: schedstat of every node thread (copy threads, event loop, the rest) and the client process over the timed windows; the CPU bound assumes memcpy's threads each had a core and the node side could use up to copy threads + 2 cores (as many as the host has)",
    );
    notes.push(
      `engine wake floor: a Node process woken through the SDK's eventfd watcher (the same addon), doing nothing per wake, by a C process writing its eventfd as often as the SDK's calls completed in the last rep (${IN_FLIGHT} in flight: the rep's time over its calls), while the memcpy reference runs; its CPU per wake times the SDK's calls is what an engine client that did nothing but wake once per call would spend on this host`,
    );
    notes.push(
      'sharing: 8 engines x ' +
        requests +
        ' requests, 48 prefix families (skewed) x 12 blocks + 4 unique blocks, 64 KiB blocks',
    );
    notes.push(
      `${ENGINES} engines: ${ENGINES} client processes (a KvEngine and region each, own blocks) against the same node, each step started in all at once and timed until the last ends (aggregate GB/s, median rep); memcpy reference: the aggregate bytes with the node's ${COPY_THREADS} copy threads' worth of threads (the copy budget every engine shares; ${ENGINES} memcpy processes would get ${ENGINES}x the threads); 256 KiB blocks only (2 MiB would need ${ENGINES} x 128 MiB per call round)`,
    );
    return {
      metrics,
      reference,
      ratios,
      capacity,
      table: { columns: ['measure', 'unit', 'value'], rows },
      notes,
    };
  },
};

export default scenario;
