// metaserver-scale: does the metaserver keep its query rate and tail as the index grows? The same 64-hash prefix
// queries (unary and pipelined, the `metaserver` scenario's load) against a metaserver holding the default bench's
// 1.5M (block, owner) pairs and against one holding KVFABRIC_BENCH_META_SCALE pairs (default 100m; --quick: 10m),
// one server at a time, queries spread over every chain of the layout (random memory access over the whole index).
// Reported per size: queries/s, p50/p99, server CPU per query, GC pauses while querying, and bytes per pair (the
// index's own accounting and the server's resident memory). No Redis here: `metaserver` compares against it.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { MetaserverClient } from '@kvfabric/client';
import { startMetaserver } from '@kvfabric/testkit';
import type { BenchContext, Scenario, ScenarioResult } from '../harness.js';
import { NODES, layoutForBlocks, layoutForEntries, nodeId, type Layout } from '../metaserver/data.js';
import { loadGroup, measure, newSubject, summary, type LoadShape, type QueryResult } from '../metaserver/load.js';

const SHAPE: LoadShape = { workers: 2, connections: 2, depth: 4 };

/** "100m", "10m", "500k" or a plain count of (block, owner) pairs. */
export function parseScale(text: string): number {
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

interface SizeResult {
  layout: Layout;
  pipelined: QueryResult;
  unary: QueryResult;
  indexBytesPerEntry: number;
  rssBytesPerEntry: number;
  insertsPerSec: number;
}

/** One metaserver holding `layout`: inserted by the load processes, then both query modes in rotating rounds. */
async function runSize(
  ctx: BenchContext,
  layout: Layout,
  rounds: number,
  queryMs: number,
  warmupMs: number,
): Promise<SizeResult> {
  ctx.log(
    `${layout.entries.toLocaleString('en-US')} (block, owner) pairs, ${layout.blocks.toLocaleString('en-US')} blocks`,
  );
  // room for the large index: the default limits (4 GiB, 16M ownerships per node) are below 100M pairs
  await using metaserver = await startMetaserver({
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
  await beat();
  const timer = setInterval(
    () => void beat().catch((err: unknown) => ctx.log(`heartbeat failed: ${String(err)}`)),
    5000,
  );
  const pid = metaserver.proc.pid;
  const rssEmpty = rssBytes(pid);
  let group: Awaited<ReturnType<typeof loadGroup>> | undefined;
  try {
    let indexBytes = 0n;
    group = await loadGroup(ctx, SHAPE, 'kvfabric', metaserver.addr, pid, metaserver.httpAddr, layout, async () => {
      const stats = await admin.getStats();
      if (stats.owners !== BigInt(layout.entries) || stats.blocks !== BigInt(layout.blocks))
        throw new Error(
          `metaserver holds ${stats.owners} / ${stats.blocks}, expected ${layout.entries} / ${layout.blocks}`,
        );
      indexBytes = stats.indexBytes;
    });
    const rss = rssBytes(pid) - rssEmpty;
    const subjects = [newSubject('pipelined', group, 'pipelined'), newSubject('unary', group, 'unary')];
    for (let r = 0; r < rounds; r++)
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(r + k) % subjects.length]!;
        await measure(ctx, s, layout, s.segments === 0 ? warmupMs : warmupMs / 4, queryMs);
      }
    return {
      layout,
      pipelined: summary(subjects[0]!),
      unary: summary(subjects[1]!),
      indexBytesPerEntry: Number(indexBytes) / layout.entries,
      rssBytesPerEntry: rss / layout.entries,
      insertsPerSec: group.insert.insertsPerSec,
    };
  } finally {
    clearInterval(timer);
    for (const w of group?.procs ?? []) w.stop();
    admin.close();
  }
}

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const label = (n: number) => (n >= 1e6 ? `${Math.round(n / 1e6)}m` : `${Math.round(n / 1e3)}k`);

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
    const small = await runSize(ctx, layoutForBlocks(1_000_000), rounds, queryMs, warmupMs);
    const large = await runSize(ctx, layoutForEntries(target), rounds, queryMs, warmupMs);
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
      add(`gc_pause_total_ms${suffix}`, round(a.gc!.totalMs), round(b.gc!.totalMs), '');
      add(`gc_pause_max_ms${suffix}`, a.gc!.maxMs, b.gc!.maxMs, 'no multi-ms pause (bucket bound)');
    }
    add('index_bytes_per_entry', round(small.indexBytesPerEntry), round(large.indexBytesPerEntry), '<= 48 B');
    add('rss_bytes_per_entry', round(small.rssBytesPerEntry), round(large.rssBytesPerEntry), '<= 48 B');
    add('inserts_per_sec', Math.round(small.insertsPerSec), Math.round(large.insertsPerSec), '');
    return {
      metrics,
      // the reference is the same server at the small size, in the same run
      reference: {},
      ratios: {
        queries_per_sec: round(large.pipelined.queriesPerSec / small.pipelined.queriesPerSec, 3),
        queries_per_sec_unary: round(large.unary.queriesPerSec / small.unary.queriesPerSec, 3),
        query_p99: round(large.pipelined.p99Us / small.pipelined.p99Us, 3),
        query_p99_unary: round(large.unary.p99Us / small.unary.p99Us, 3),
      },
      table: { columns: ['metric', s, l, `${l}/${s}`, 'target'], rows },
      notes: [
        `sizes: ${small.layout.entries.toLocaleString('en-US')} and ${large.layout.entries.toLocaleString('en-US')} (block, owner) pairs ` +
          `(${small.layout.blocks.toLocaleString('en-US')} / ${large.layout.blocks.toLocaleString('en-US')} blocks of 32-byte hashes in chains of 64, ` +
          `${NODES} nodes, ~1.5 owners per block), one metaserver process per size, one after the other; KVFABRIC_BENCH_META_SCALE sets the large one`,
        `load as in \`metaserver\`: ${SHAPE.workers} client processes x ${SHAPE.connections} connections x ${SHAPE.depth} queries in flight; ` +
          `each mode measured in ${rounds} segment(s) of ${queryMs / 1000}s, modes taking turns; each query is one random chain's 64 hashes, checked against the expected answer`,
        'index_bytes_per_entry: the index typed arrays (GetStats.index_bytes) per pair; rss_bytes_per_entry: the server process resident ' +
          'memory after the inserts minus before them, per pair (includes allocator and V8 heap growth)',
        `clients and server share ${cpus().length} cores (load average at start ${loadStart}, at end ${loadavg()[0]!.toFixed(1)})`,
      ],
    };
  },
};

export default scenario;
