// metaserver: insert hashes/s, 64-hash prefix queries/s and latency against a spawned kvfabric-metaserver (1M
// blocks, 8 nodes, several client processes), and bytes per (block, owner) of the store at 1M and 10M entries.
// Reference: the same batches and queries on a private redis-server (one set of node ids per hash; inserts are
// pipelined SADD, a query is 64 pipelined SMEMBERS plus the same per-node prefix computation on the client).
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MetaserverClient } from '@kvfabric/client';
import { startMetaserver } from '@kvfabric/testkit';
import { percentile, type BenchContext, type Progress, type Scenario, type ScenarioResult } from '../harness.js';
import { startRedis, RespClient, usedMemory } from '../peers/redis.js';
import { NAMESPACE, NODES, layoutForBlocks, layoutForEntries, nodeId, unitCount, type Layout } from '../metaserver/data.js';
import type { FromWorker, Target, ToWorker } from '../metaserver/worker.js';

const WORKER = fileURLToPath(new URL('../metaserver/worker.ts', import.meta.url));

interface Plan {
  blocks: number;
  workers: number;
  connections: number;
  depth: number;
  warmupMs: number;
  queryMs: number;
  memoryEntries: number[];
}

function plan(quick: boolean, env = process.env): Plan {
  // 2 cores: one for the server under test, the client processes share the rest.
  const base: Plan = quick
    ? { blocks: 1_000_000, workers: 2, connections: 2, depth: 4, warmupMs: 500, queryMs: 3_000, memoryEntries: [1_000_000] }
    : { blocks: 1_000_000, workers: 2, connections: 2, depth: 4, warmupMs: 2_000, queryMs: 15_000, memoryEntries: [1_000_000, 10_000_000] };
  // Load shape overrides for exploring other machines: KVFABRIC_BENCH_WORKERS / _CONNECTIONS / _DEPTH.
  const int = (name: string, fallback: number) => {
    const v = Number(env[`KVFABRIC_BENCH_${name}`]);
    return Number.isSafeInteger(v) && v > 0 ? v : fallback;
  };
  return { ...base, workers: int('WORKERS', base.workers), connections: int('CONNECTIONS', base.connections), depth: int('DEPTH', base.depth) };
}

/** A forked load process with request/response over IPC. */
class LoadProcess {
  private readonly proc: ChildProcess;
  private waiting: { kind: FromWorker['kind']; resolve(m: FromWorker): void; reject(e: Error): void } | undefined;
  onTick: (n: number) => void = () => {};

  constructor(opts: { exposeGc?: boolean } = {}) {
    this.proc = fork(WORKER, [], {
      execArgv: ['--import', 'tsx', ...(opts.exposeGc ? ['--expose-gc'] : [])],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (msg: FromWorker) => {
      if (msg.kind === 'tick') return void (msg.n > 0 && this.onTick(msg.n));
      const w = this.waiting;
      this.waiting = undefined;
      if (!w) return;
      if (msg.kind === 'error') w.reject(new Error(`bench worker: ${msg.message}`));
      else if (msg.kind !== w.kind) w.reject(new Error(`bench worker: expected ${w.kind}, got ${msg.kind}`));
      else w.resolve(msg);
    });
    this.proc.once('exit', (code, signal) => {
      this.waiting?.reject(new Error(`bench worker exited (${code ?? signal})`));
      this.waiting = undefined;
    });
  }

  request<K extends FromWorker['kind']>(msg: ToWorker, kind: K): Promise<Extract<FromWorker, { kind: K }>> {
    return new Promise((resolve, reject) => {
      this.waiting = { kind, resolve: resolve as (m: FromWorker) => void, reject };
      this.proc.send(msg);
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  stop(): void {
    if (this.proc.connected) this.proc.send({ kind: 'exit' } satisfies ToWorker);
    setTimeout(() => this.proc.kill('SIGKILL'), 2000).unref();
  }
}

interface LoadResult {
  insertsPerSec: number;
  queriesPerSec: number;
  p50Us: number;
  p99Us: number;
  queries: number;
  /** Server process CPU (user + system) per inserted pair and per query, in µs. */
  serverCpuUsPerInsert: number;
  serverCpuUsPerQuery: number;
  /** CPU of all client processes per query, in µs. */
  clientCpuUsPerQuery: number;
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is no /proc. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return NaN;
  }
}

/** Inserts the layout and runs the query workload with `plan.workers` processes against one target. */
async function runLoad(ctx: BenchContext, p: Plan, target: Target, addr: string, serverPid: number, layout: Layout, afterInsert?: () => Promise<void>): Promise<LoadResult> {
  const procs = Array.from({ length: p.workers }, () => new LoadProcess());
  try {
    await Promise.all(procs.map((w, i) =>
      w.request({ kind: 'init', target, addr, connections: p.connections, depth: p.depth, worker: i, workers: p.workers }, 'ready')));

    const bar = ctx.progress(`${target} insert`, unitCount(layout));
    for (const w of procs) w.onTick = (n) => bar.tick(n);
    const cpu0 = cpuSeconds(serverPid);
    const t0 = performance.now();
    const inserted = await Promise.all(procs.map((w) => w.request({ kind: 'insert', layout }, 'inserted')));
    const insertSeconds = (performance.now() - t0) / 1000;
    const insertCpu = cpuSeconds(serverPid) - cpu0;
    bar.done();
    const pairs = inserted.reduce((s, r) => s + r.pairs, 0);
    if (pairs !== layout.entries) throw new Error(`${target}: inserted ${pairs} pairs, expected ${layout.entries}`);
    await afterInsert?.();

    await query(ctx, procs, layout, p.warmupMs, `${target} warm-up`);
    const clientCpu = () => procs.reduce((sum, w) => sum + cpuSeconds(w.pid), 0);
    const cpu1 = cpuSeconds(serverPid);
    const client1 = clientCpu();
    const t1 = performance.now();
    const results = await query(ctx, procs, layout, p.queryMs, `${target} queries`);
    const seconds = (performance.now() - t1) / 1000;
    const queryCpu = cpuSeconds(serverPid) - cpu1;
    const queryClientCpu = clientCpu() - client1;
    const mismatches = results.reduce((s, r) => s + r.mismatches, 0);
    if (mismatches > 0) throw new Error(`${target}: ${mismatches} wrong prefix answers, e.g. ${results.find((r) => r.firstMismatch)?.firstMismatch}`);
    const latencies = results.flatMap((r) => Array.from(r.latenciesUs)).sort((a, b) => a - b);
    return {
      insertsPerSec: pairs / insertSeconds,
      queriesPerSec: latencies.length / seconds,
      p50Us: percentile(latencies, 50),
      p99Us: percentile(latencies, 99),
      queries: latencies.length,
      serverCpuUsPerInsert: (insertCpu * 1e6) / pairs,
      serverCpuUsPerQuery: (queryCpu * 1e6) / latencies.length,
      clientCpuUsPerQuery: (queryClientCpu * 1e6) / latencies.length,
    };
  } finally {
    for (const w of procs) w.stop();
  }
}

async function query(ctx: BenchContext, procs: LoadProcess[], layout: Layout, durationMs: number, label: string) {
  const bar = timeProgress(ctx, label, durationMs);
  try {
    return await Promise.all(procs.map((w) => w.request({ kind: 'query', layout, durationMs }, 'queried')));
  } finally {
    bar.done();
  }
}

function timeProgress(ctx: BenchContext, label: string, ms: number): Progress {
  const steps = Math.max(1, Math.round(ms / 250));
  const bar = ctx.progress(label, steps);
  let done = 0;
  const timer = setInterval(() => {
    if (done < steps) {
      done++;
      bar.tick();
    }
  }, ms / steps);
  return {
    tick: () => {},
    done: () => {
      clearInterval(timer);
      if (done < steps) bar.tick(steps - done);
      bar.done();
    },
  };
}

/** Bytes per (block, owner) of an in-process store filled with `layout`, in a fresh process with --expose-gc. */
async function storeMemory(ctx: BenchContext, layout: Layout, secondaries: boolean) {
  const proc = new LoadProcess({ exposeGc: true });
  const bar = ctx.progress(`store memory ${(secondaries ? layout.entries : layout.blocks).toLocaleString('en-US')}`, unitCount(layout));
  proc.onTick = (n) => bar.tick(n);
  try {
    return await proc.request({ kind: 'memory', layout, secondaries }, 'memory');
  } finally {
    bar.done();
    proc.stop();
  }
}

/** Redis used_memory delta per entry after loading `layout` into an empty server. */
async function redisMemory(ctx: BenchContext, p: Plan, addr: string, admin: RespClient, layout: Layout): Promise<number> {
  await admin.pipeline([['FLUSHALL']]);
  const before = await usedMemory(admin);
  const procs = Array.from({ length: p.workers }, () => new LoadProcess());
  const bar = ctx.progress(`redis memory ${layout.entries.toLocaleString('en-US')}`, unitCount(layout));
  try {
    await Promise.all(procs.map((w, i) =>
      w.request({ kind: 'init', target: 'redis', addr, connections: p.connections, depth: p.depth, worker: i, workers: p.workers }, 'ready')));
    for (const w of procs) w.onTick = (n) => bar.tick(n);
    await Promise.all(procs.map((w) => w.request({ kind: 'insert', layout }, 'inserted')));
  } finally {
    bar.done();
    for (const w of procs) w.stop();
  }
  const after = await usedMemory(admin);
  await admin.pipeline([['FLUSHALL']]);
  return (after - before) / layout.entries;
}

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const sizeLabel = (n: number) => (n >= 1e6 ? `${n / 1e6}m` : `${n / 1e3}k`);

const scenario: Scenario = {
  name: 'metaserver',
  description: 'metaserver inserts/s, 64-hash prefix queries/s and latency, bytes per (block, owner); reference Redis sets',
  async run(ctx): Promise<ScenarioResult> {
    const p = plan(ctx.quick);
    const loadStart = loadavg()[0]!.toFixed(1);
    const layout = layoutForBlocks(p.blocks);
    ctx.log(`${layout.blocks.toLocaleString('en-US')} blocks in ${layout.chains.toLocaleString('en-US')} chains of 64, ` +
      `${layout.entries.toLocaleString('en-US')} (block, owner) pairs on ${NODES} nodes; ` +
      `${p.workers} client processes × ${p.connections} connections × ${p.depth} in flight`);

    // kvfabric: a real metaserver process, 8 node sessions kept live by heartbeats.
    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    let kvf: LoadResult;
    {
      await using metaserver = await startMetaserver({ logLevel: 'warn' });
      const admin = new MetaserverClient(metaserver.addr);
      const beat = () => Promise.all(Array.from({ length: NODES }, (_, n) =>
        admin.heartbeat({ nodeId: nodeId(n), addr: `127.0.0.1:${20000 + n}`, transports: [1] })));
      await beat();
      const timer = setInterval(() => void beat().catch((err: unknown) => ctx.log(`heartbeat failed: ${String(err)}`)), 5000);
      try {
        kvf = await runLoad(ctx, p, 'kvfabric', metaserver.addr, metaserver.proc.pid, layout, async () => {
          const stats = await admin.getStats();
          if (stats.owners !== BigInt(layout.entries) || stats.blocks !== BigInt(layout.blocks)) {
            throw new Error(`metaserver holds ${stats.owners} owners / ${stats.blocks} blocks, expected ${layout.entries} / ${layout.blocks}`);
          }
          metrics.index_bytes_per_entry_served = round(Number(stats.indexBytes) / layout.entries);
        });
      } finally {
        clearInterval(timer);
        admin.close();
      }
    }

    // Redis reference: the same batches and queries.
    let ref: LoadResult;
    const redisBytes: Record<number, number> = {};
    {
      await using redis = await startRedis();
      const addr = `${redis.host}:${redis.port}`;
      const admin = await RespClient.connect(redis.host, redis.port);
      try {
        ref = await runLoad(ctx, p, 'redis', addr, redis.proc.pid!, layout, async () => {
          const [size] = await admin.pipeline([['DBSIZE']]);
          if (size !== layout.blocks) throw new Error(`redis holds ${String(size)} keys, expected ${layout.blocks}`);
        });
        for (const entries of p.memoryEntries) redisBytes[entries] = await redisMemory(ctx, p, addr, admin, layoutForEntries(entries));
      } finally {
        admin.close();
      }
    }

    // Store memory, in-process, one fresh process per size.
    const rows: (string | number)[][] = [];
    const add = (name: string, k: number, r: number | undefined, target: string) => {
      metrics[name] = k;
      if (r !== undefined) reference[name] = r;
      rows.push([name, k, r ?? '-', r === undefined ? '-' : round(k / r, 3), target]);
    };
    add('inserts_per_sec', Math.round(kvf.insertsPerSec), Math.round(ref.insertsPerSec), '');
    add('queries_per_sec', Math.round(kvf.queriesPerSec), Math.round(ref.queriesPerSec), '>= 1.0x redis');
    add('query_p50_us', round(kvf.p50Us), round(ref.p50Us), '');
    add('query_p99_us', round(kvf.p99Us), round(ref.p99Us), '');
    add('server_cpu_us_per_query', round(kvf.serverCpuUsPerQuery), round(ref.serverCpuUsPerQuery), '');
    add('client_cpu_us_per_query', round(kvf.clientCpuUsPerQuery), round(ref.clientCpuUsPerQuery), '');
    add('server_cpu_us_per_insert', round(kvf.serverCpuUsPerInsert, 3), round(ref.serverCpuUsPerInsert, 3), '');
    for (const entries of p.memoryEntries) {
      const l = layoutForEntries(entries);
      const m = await storeMemory(ctx, l, true);
      add(`bytes_per_entry_${sizeLabel(entries)}`, round(m.bytesPerEntryProcess), round(redisBytes[entries]!), '<= 80 B');
      metrics[`index_bytes_per_entry_${sizeLabel(entries)}`] = round(m.bytesPerEntryIndex);
      rows.push([`  (store's own accounting, ${m.entries.toLocaleString('en-US')} entries)`, round(m.bytesPerEntryIndex), '-', '-', '']);
    }
    const single = await storeMemory(ctx, layoutForBlocks(p.memoryEntries[0]!), false);
    add(`bytes_per_entry_${sizeLabel(p.memoryEntries[0]!)}_single_owner`, round(single.bytesPerEntryProcess), undefined, '<= 80 B');

    return {
      metrics,
      reference,
      ratios: {
        queries_per_sec: round(kvf.queriesPerSec / ref.queriesPerSec, 3),
        inserts_per_sec: round(kvf.insertsPerSec / ref.insertsPerSec, 3),
      },
      table: { columns: ['metric', 'kvfabric', 'redis', 'kvfabric/redis', 'target'], rows },
      notes: [
        `data: ${layout.blocks.toLocaleString('en-US')} blocks (32-byte hashes, chains of 64), ${layout.entries.toLocaleString('en-US')} (block, owner) pairs, ` +
          `${NODES} nodes, namespace ${NAMESPACE}; each query is one chain's 64 hashes and answers 2 nodes (checked against the expected answer)`,
        `load: ${p.workers} client processes x ${p.connections} connections x ${p.depth} requests in flight, ${p.queryMs / 1000}s of queries after ${p.warmupMs / 1000}s warm-up; ` +
          `${kvf.queries.toLocaleString('en-US')} kvfabric and ${ref.queries.toLocaleString('en-US')} redis queries; inserts in batches of one node's hashes of 16 chains (1024 or ~520)`,
        `clients and server share ${cpus().length} cores (load average at start ${loadStart}, at end ${loadavg()[0]!.toFixed(1)}); server_cpu_us_*: the server process's user+system CPU ` +
          'per query / per inserted pair (from /proc), a client-independent cost; 1e6 / server_cpu_us_per_query is what one core could serve; ' +
          'client_cpu_us_per_query: all load processes together',
        'redis: key = raw 32-byte hash, value = set of small-integer node ids (intset); insert = pipelined SADD per hash; ' +
          'query = 64 pipelined SMEMBERS + per-node longest-prefix on the client; memory = INFO used_memory delta per entry',
        'kvfabric memory: heapUsed+external delta (after GC) of a fresh process holding only the store, per (block, owner); ' +
          `~1.5 owners per block (chain owner + a prefix on a second node); *_single_owner: one owner per block`,
      ],
    };
  },
};

export default scenario;
