// metaserver-scale: does the metaserver keep its query rate and tail as the index grows? The same 64-hash prefix
// queries (unary and pipelined, the `metaserver` scenario's load) against a metaserver holding the default bench's
// 1.5M (block, owner) pairs and against one holding KVFABRIC_BENCH_META_SCALE pairs (default 100m; --quick: 10m),
// both servers up at once and measured in turns, queries drawn from random chains of the whole layout.
// Reported per size: queries/s, p50/p99, server CPU per query, GC pauses while querying, and bytes per pair (the
// index's own accounting and the server's resident memory). No Redis here: `metaserver` compares against it.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { MetaserverClient } from '@kvfabric/client';
import { startMetaserver } from '@kvfabric/testkit';
import type { BenchContext, Scenario, ScenarioResult } from '../harness.js';
import { pin, requestedCoreSplit, type CoreSplit } from '../pin.js';
import { describeKinds, fetchGcPauses, nodeFlagsOf } from '../metaserver/gc-pauses.js';
import { NODES, layoutForBlocks, layoutForEntries, nodeId, type Layout } from '../metaserver/data.js';
import {
  closeAll,
  insertOf,
  loadGroup,
  measure,
  newSubject,
  summary,
  type LoadGroup,
  type LoadShape,
  type QueryResult,
} from '../metaserver/load.js';

const SHAPE: LoadShape = { workers: 2, connections: 2, depth: 4 };
const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const label = (n: number) => (n >= 1e6 ? `${round(n / 1e6)}m` : `${round(n / 1e3)}k`);

/** "100m", "10m", "500k" or a plain count of (block, owner) pairs. */
function parseScale(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(text.trim());
  const n = m ? Number(m[1]) * (m[2]!.toLowerCase() === 'm' ? 1e6 : m[2] ? 1e3 : 1) : NaN;
  if (!Number.isFinite(n) || n < 1e5 || n > 1e9)
    throw new Error(`KVFABRIC_BENCH_META_SCALE: expected pairs like 100m (100k..1000m), got ${JSON.stringify(text)}`);
  return Math.round(n);
}

/** Resident memory of a process (bytes), from /proc. */
function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** One metaserver holding a layout, inserted by its own load processes (kept for querying). */
interface Loaded {
  layout: Layout;
  group: LoadGroup;
  indexBytesPerEntry: number;
  rssBytesPerEntry: number;
  /** The server's node flags (collector settings), as it was started. */
  serverFlags: string;
  close(): Promise<void>;
}

/** Starts a metaserver, keeps 8 node sessions alive on it and inserts `layout` through the load processes. */
async function loadSize(ctx: BenchContext, layout: Layout, split: CoreSplit | undefined): Promise<Loaded> {
  ctx.log(
    `${layout.entries.toLocaleString('en-US')} (block, owner) pairs, ${layout.blocks.toLocaleString('en-US')} blocks`,
  );
  // room for the large index: the default limits (4 GiB, 16M ownerships per node) are below 100M pairs
  const metaserver = await startMetaserver({
    logLevel: 'warn',
    args: ['--max-index-memory', '64gb', '--max-blocks-per-node', String(2 ** 31)],
  });
  const admin = new MetaserverClient(metaserver.addr);
  const beat = () =>
    Promise.all(
      Array.from({ length: NODES }, (_, n) =>
        admin.heartbeat({ nodeId: nodeId(n), addr: `127.0.0.1:${20000 + n}`, transports: [1] }),
      ),
    );
  let group: LoadGroup | undefined;
  const timer = setInterval(
    () => void beat().catch((err: unknown) => ctx.log(`heartbeat failed: ${String(err)}`)),
    5000,
  );
  const close = async () => {
    clearInterval(timer);
    await closeAll(group?.procs ?? []);
    admin.close();
    await metaserver.stop();
  };
  try {
    await beat();
    const pid = metaserver.proc.pid!;
    if (split) pin(pid, split.server);
    const rssEmpty = rssBytes(pid);
    let indexBytes = 0n;
    const pauses = (since: number, until: number) => fetchGcPauses(metaserver.httpAddr, since, until);
    group = await loadGroup(
      ctx,
      { ...SHAPE, cpus: split?.clients },
      'kvfabric',
      metaserver.addr,
      pid,
      pauses,
      layout,
      async () => {
        const stats = await admin.getStats();
        if (stats.owners !== BigInt(layout.entries) || stats.blocks !== BigInt(layout.blocks))
          throw new Error(
            `metaserver holds ${stats.owners} / ${stats.blocks}, expected ${layout.entries} / ${layout.blocks}`,
          );
        indexBytes = stats.indexBytes;
      },
    );
    return {
      layout,
      group,
      indexBytesPerEntry: Number(indexBytes) / layout.entries,
      rssBytesPerEntry: (rssBytes(pid) - rssEmpty) / layout.entries,
      serverFlags: nodeFlagsOf(pid),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

interface SizeResult {
  layout: Layout;
  pipelined: QueryResult;
  unary: QueryResult;
  indexBytesPerEntry: number;
  rssBytesPerEntry: number;
  insertsPerSec: number;
  serverFlags: string;
}

/**
 * Both sizes loaded at once, then four subjects (size x mode) taking turns in rotating order, so a change in the
 * machine's background load during the run hits every subject alike.
 */
async function runSizes(
  ctx: BenchContext,
  layouts: [Layout, Layout],
  rounds: number,
  queryMs: number,
  warmupMs: number,
  split: CoreSplit | undefined,
): Promise<[SizeResult, SizeResult]> {
  const loaded: Loaded[] = [];
  try {
    for (const l of layouts) loaded.push(await loadSize(ctx, l, split));
    const subjects = loaded.flatMap((l) => [
      newSubject(`${label(l.layout.entries)} pipelined`, l.group, 'pipelined'),
      newSubject(`${label(l.layout.entries)} unary`, l.group, 'unary'),
    ]);
    for (let r = 0; r < rounds; r++)
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(r + k) % subjects.length]!;
        const l = loaded[Math.floor(subjects.indexOf(s) / 2)]!;
        await measure(ctx, s, l.layout, s.segments === 0 ? warmupMs : warmupMs / 4, queryMs);
      }
    const result = (i: number): SizeResult => ({
      layout: loaded[i]!.layout,
      pipelined: summary(subjects[2 * i]!),
      unary: summary(subjects[2 * i + 1]!),
      indexBytesPerEntry: loaded[i]!.indexBytesPerEntry,
      rssBytesPerEntry: loaded[i]!.rssBytesPerEntry,
      insertsPerSec: insertOf(loaded[i]!.group).insertsPerSec,
      serverFlags: loaded[i]!.serverFlags,
    });
    return [result(0), result(1)];
  } finally {
    for (const l of loaded) await l.close();
  }
}

const scenario: Scenario = {
  name: 'metaserver-scale',
  description:
    'metaserver queries/s, p99, GC pauses and bytes per (block, owner) at 1.5M pairs and at KVFABRIC_BENCH_META_SCALE pairs (default 100m)',
  async run(ctx): Promise<ScenarioResult> {
    const target = parseScale(process.env.KVFABRIC_BENCH_META_SCALE ?? (ctx.quick ? '10m' : '100m'));
    const rounds = ctx.quick ? 1 : 3;
    const queryMs = ctx.quick ? 3_000 : 5_000;
    const warmupMs = ctx.quick ? 1_000 : 2_000;
    const loadStart = loadavg()[0]!.toFixed(1);
    // KVFABRIC_BENCH_PIN=1: the metaserver and the load processes on their own cores, as in `metaserver` (pin.ts).
    const split = requestedCoreSplit();
    const [small, large] = await runSizes(
      ctx,
      [layoutForBlocks(1_000_000), layoutForEntries(target)],
      rounds,
      queryMs,
      warmupMs,
      split,
    );
    const [s, l] = [label(small.layout.entries), label(large.layout.entries)];
    const metrics: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const add = (name: string, a: number, b: number, target: string) => {
      metrics[`${name}_${s}`] = a;
      metrics[`${name}_${l}`] = b;
      rows.push([name, a, b, round(b / a, 3), target]);
    };
    for (const [suffix, mode] of [
      ['', 'pipelined'],
      ['_unary', 'unary'],
    ] as const) {
      const [a, b] = [small[mode], large[mode]];
      add(`queries_per_sec${suffix}`, Math.round(a.queriesPerSec), Math.round(b.queriesPerSec), 'no drop with size');
      add(`query_p50_us${suffix}`, round(a.p50Us), round(b.p50Us), '');
      add(`query_p99_us${suffix}`, round(a.p99Us), round(b.p99Us), 'no rise with size');
      add(`server_cpu_us_per_query${suffix}`, round(a.serverCpuUsPerQuery), round(b.serverCpuUsPerQuery), '');
      add(`gc_pauses${suffix}`, a.gc!.pauses, b.gc!.pauses, '');
      add(`gc_pause_total_ms${suffix}`, round(a.gc!.totalMs), round(b.gc!.totalMs), '');
      add(`gc_pause_p99_ms${suffix}`, round(a.gc!.p99Ms, 2), round(b.gc!.p99Ms, 2), '');
      add(`gc_pause_max_ms${suffix}`, round(a.gc!.maxMs, 2), round(b.gc!.maxMs, 2), 'no multi-ms pause');
    }
    add('index_bytes_per_entry', round(small.indexBytesPerEntry), round(large.indexBytesPerEntry), '<= 48 B');
    add('rss_bytes_per_entry', round(small.rssBytesPerEntry), round(large.rssBytesPerEntry), '<= 48 B');
    add('inserts_per_sec', Math.round(small.insertsPerSec), Math.round(large.insertsPerSec), '');
    // summary rows: the large index against the small one (the reference), both from this run
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const compare = (name: string, small: number, large: number) => {
      metrics[name] = round(large);
      reference[name] = round(small);
      ratios[name] = round(large / small, 3);
    };
    compare('queries_per_sec', small.pipelined.queriesPerSec, large.pipelined.queriesPerSec);
    compare('queries_per_sec_unary', small.unary.queriesPerSec, large.unary.queriesPerSec);
    compare('query_p99_us', small.pipelined.p99Us, large.pipelined.p99Us);
    compare('query_p99_us_unary', small.unary.p99Us, large.unary.p99Us);
    return {
      metrics,
      reference,
      ratios,
      table: { columns: ['metric', s, l, `${l}/${s}`, 'target'], rows },
      notes: [
        `sizes: ${small.layout.entries.toLocaleString('en-US')} and ${large.layout.entries.toLocaleString('en-US')} (block, owner) pairs ` +
          `(${small.layout.blocks.toLocaleString('en-US')} / ${large.layout.blocks.toLocaleString('en-US')} blocks of 32-byte hashes in chains of 64, ` +
          `${NODES} nodes, ~1.5 owners per block), one metaserver process per size, both holding their data at once while the four subjects (size x mode) take turns; KVFABRIC_BENCH_META_SCALE sets the large one`,
        `load as in \`metaserver\`: ${SHAPE.workers} client processes x ${SHAPE.connections} connections x ${SHAPE.depth} queries in flight; ` +
          `each size and mode measured in ${rounds} segment(s) of ${queryMs / 1000}s, in rotating order; each query is one random chain's 64 hashes, checked against the expected answer`,
        'index_bytes_per_entry: the index typed arrays (GetStats.index_bytes) per pair; rss_bytes_per_entry: the server process resident ' +
          'memory after the inserts minus before them, per pair (includes allocator and V8 heap growth)',
        "gc_*: the server's garbage-collection pauses that started while a subject was measured, each one exact from its " +
          'pause log (GET /debug/gc-pauses): count, total, 99th percentile (nearest rank) and the longest; by kind ' +
          `(count / total, longest): ${s} pipelined ${describeKinds(small.pipelined.gc!)}, unary ${describeKinds(small.unary.gc!)}; ` +
          `${l} pipelined ${describeKinds(large.pipelined.gc!)}, unary ${describeKinds(large.unary.gc!)}; ` +
          `the servers' node flags: ${small.serverFlags === large.serverFlags ? small.serverFlags : `${s} ${small.serverFlags}, ${l} ${large.serverFlags}`}`,
        `${split ? `the metaserver pinned to core ${split.server} and the load processes to cores ${split.clients} (taskset), of ${cpus().length}` : `clients and server share ${cpus().length} cores`} (load average at start ${loadStart}, at end ${loadavg()[0]!.toFixed(1)})`,
      ],
    };
  },
};

export default scenario;
