// metaserver: insert hashes/s, 64-hash prefix queries/s and latency against a spawned kvfabric-metaserver (1M
// blocks, 8 nodes, several client processes), and bytes per (block, owner) of the store at 1M and 10M entries.
// Reference: the same batches and queries on a private redis-server (one set of node ids per hash; inserts are
// pipelined SADD, a query is 64 pipelined SMEMBERS plus the same per-node prefix computation on the client).
import { cpus, loadavg } from 'node:os';
import { MetaserverClient } from '@kvfabric/client';
import { BIN, shebangNodeFlags, startMetaserver } from '@kvfabric/testkit';
import type { BenchContext, Scenario, ScenarioResult } from '../harness.js';
import { startRedis, RespClient, usedMemory } from '../peers/redis.js';
import {
  NAMESPACE,
  NODES,
  layoutForBlocks,
  layoutForEntries,
  nodeId,
  unitCount,
  type Layout,
} from '../metaserver/data.js';
import { FloorServer } from '../metaserver/floor.js';
import { describeKinds, fetchGcPauses, nodeFlagsOf } from '../metaserver/gc-pauses.js';
import { pin, requestedCoreSplit } from '../pin.js';
import {
  measureUpdates,
  newUpdateSubject,
  updateSummary,
  type UpdateResult,
  type UpdateSubject,
} from '../metaserver/updates.js';
import {
  closeAll,
  startLoadProcess,
  startLoadProcesses,
  insertOf,
  loadGroup,
  measure,
  newSubject,
  query,
  summary,
  type LoadGroup,
  type QueryResult,
  type Subject,
} from '../metaserver/load.js';

interface Plan {
  blocks: number;
  workers: number;
  connections: number;
  depth: number;
  /** Warm-up before the first measured segment of each subject, and before the later ones. */
  warmupMs: number;
  roundWarmupMs: number;
  /** Measured time per segment; every subject gets `rounds` segments, interleaved. */
  queryMs: number;
  rounds: number;
  /**
   * Unary queries against each unary server (the metaserver, the floor) before the first segment: the inserts go
   * over the pipelined update stream, so no unary path (server or client) is JIT-warm yet.
   */
  unaryWarmupMs: number;
  /** Index updates (64-hash insert or remove) each load process sends per round, and the rounds per subject. */
  updatesPerWorker: number;
  updateRounds: number;
  memoryEntries: number[];
}

function plan(quick: boolean, env = process.env): Plan {
  // 2 cores: one for the server under test, the client processes share the rest.
  const base: Plan = quick
    ? {
        blocks: 1_000_000,
        workers: 2,
        connections: 2,
        depth: 4,
        warmupMs: 500,
        roundWarmupMs: 300,
        queryMs: 3_000,
        rounds: 1,
        unaryWarmupMs: 2_000,
        updatesPerWorker: 2_000,
        updateRounds: 1,
        memoryEntries: [1_000_000],
      }
    : {
        blocks: 1_000_000,
        workers: 2,
        connections: 2,
        depth: 4,
        warmupMs: 2_000,
        roundWarmupMs: 500,
        queryMs: 5_000,
        rounds: 3,
        unaryWarmupMs: 5_000,
        updatesPerWorker: 16_000,
        updateRounds: 2,
        memoryEntries: [1_000_000, 10_000_000],
      };
  // Load shape overrides for exploring other machines: KVFABRIC_BENCH_WORKERS / _CONNECTIONS / _DEPTH.
  const int = (name: string, fallback: number) => {
    const v = Number(env[`KVFABRIC_BENCH_${name}`]);
    return Number.isSafeInteger(v) && v > 0 ? v : fallback;
  };
  return {
    ...base,
    workers: int('WORKERS', base.workers),
    connections: int('CONNECTIONS', base.connections),
    depth: int('DEPTH', base.depth),
  };
}

/** Bytes per (block, owner) of an in-process store filled with `layout`, in a fresh process with --expose-gc. */
async function storeMemory(ctx: BenchContext, layout: Layout, secondaries: boolean) {
  await using proc = startLoadProcess({ exposeGc: true });
  const bar = ctx.progress(
    `store memory ${(secondaries ? layout.entries : layout.blocks).toLocaleString('en-US')}`,
    unitCount(layout),
  );
  proc.onTick = (n) => bar.tick(n);
  try {
    return await proc.request({ kind: 'memory', layout, secondaries }, 'memory');
  } finally {
    bar.done();
  }
}

/** Redis used_memory delta per entry after loading `layout` into an empty server. */
async function redisMemory(
  ctx: BenchContext,
  p: Plan,
  addr: string,
  admin: RespClient,
  layout: Layout,
): Promise<number> {
  await admin.pipeline([['FLUSHALL']]);
  const before = await usedMemory(admin);
  const procs = await startLoadProcesses(p, 'redis', addr);
  const bar = ctx.progress(`redis memory ${layout.entries.toLocaleString('en-US')}`, unitCount(layout));
  try {
    for (const w of procs) w.onTick = (n) => bar.tick(n);
    await Promise.all(procs.map((w) => w.request({ kind: 'insert', layout }, 'inserted')));
  } finally {
    bar.done();
    await closeAll(procs);
  }
  const after = await usedMemory(admin);
  await admin.pipeline([['FLUSHALL']]);
  return (after - before) / layout.entries;
}

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const sizeLabel = (n: number) => (n >= 1e6 ? `${n / 1e6}m` : `${n / 1e3}k`);

const scenario: Scenario = {
  name: 'metaserver',
  description:
    'metaserver inserts/s, 64-hash prefix queries/s (unary and pipelined) and latency, bytes per (block, owner); reference Redis sets',
  async run(ctx): Promise<ScenarioResult> {
    const split = requestedCoreSplit();
    const p = { ...plan(ctx.quick), cpus: split?.clients };
    const loadStart = loadavg()[0]!.toFixed(1);
    const layout = layoutForBlocks(p.blocks);
    ctx.log(
      `${layout.blocks.toLocaleString('en-US')} blocks in ${layout.chains.toLocaleString('en-US')} chains of 64, ` +
        `${layout.entries.toLocaleString('en-US')} (block, owner) pairs on ${NODES} nodes; ` +
        `${p.workers} client processes × ${p.connections} connections × ${p.depth} in flight`,
    );

    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    const groups: LoadGroup[] = [];
    const subjects: Subject[] = [];
    const updateSubjects: UpdateSubject[] = [];
    // Both servers hold the data at once and the subjects take turns (in rotating order), so a change in the
    // machine's background load during the run hits all of them alike.
    await using metaserver = await startMetaserver({ logLevel: 'warn' });
    const serverFlags = nodeFlagsOf(metaserver.proc.pid);
    // The unary floor: the same RPC answered without a store or the kvfabric wrapper, under the node flags the
    // metaserver runs with (its bin file's shebang line, as testkit starts it).
    await using floor = await FloorServer.start(shebangNodeFlags(BIN.metaserver));
    await using redis = await startRedis();
    // KVFABRIC_BENCH_PIN=1: each server on its own core, the load processes on the others (pin.ts), all alike.
    if (split) for (const pid of [metaserver.proc.pid!, floor.pid, redis.proc.pid!]) pin(pid, split.server);
    const redisAddr = `${redis.host}:${redis.port}`;
    const admin = new MetaserverClient(metaserver.addr);
    const redisAdmin = await RespClient.connect(redis.host, redis.port);
    // kvfabric: a real metaserver process, 8 node sessions kept live by heartbeats.
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
    const redisBytes: Record<number, number> = {};
    try {
      const kvf = await loadGroup(
        ctx,
        p,
        'kvfabric',
        metaserver.addr,
        metaserver.proc.pid,
        (since, until) => fetchGcPauses(metaserver.httpAddr, since, until),
        layout,
        async () => {
          const stats = await admin.getStats();
          if (stats.owners !== BigInt(layout.entries) || stats.blocks !== BigInt(layout.blocks)) {
            throw new Error(
              `metaserver holds ${stats.owners} owners / ${stats.blocks} blocks, expected ${layout.entries} / ${layout.blocks}`,
            );
          }
          metrics.index_bytes_per_entry_served = round(Number(stats.indexBytes) / layout.entries);
        },
      );
      groups.push(kvf);
      // Redis reference: the same batches and queries.
      const ref = await loadGroup(ctx, p, 'redis', redisAddr, redis.proc.pid!, undefined, layout, async () => {
        const [size] = await redisAdmin.pipeline([['DBSIZE']]);
        if (size !== layout.blocks) throw new Error(`redis holds ${String(size)} keys, expected ${layout.blocks}`);
      });
      groups.push(ref);
      // The floor holds nothing: its answers are fixed, so they are not checked.
      const bare = await loadGroup(ctx, p, 'kvfabric', floor.addr, floor.pid, (a, b) => floor.pauses(a, b), undefined);
      groups.push(bare);
      await query(ctx, kvf.procs, layout, 'unary', p.unaryWarmupMs, 'kvfabric unary JIT warm-up', false);
      await query(ctx, bare.procs, layout, 'unary', p.unaryWarmupMs, 'grpc-js unary floor JIT warm-up', false);
      subjects.push(
        newSubject('kvfabric pipelined', kvf, 'pipelined'),
        newSubject('kvfabric unary', kvf, 'unary'),
        newSubject('redis', ref, 'pipelined'),
        newSubject('grpc-js unary floor', bare, 'unary', false),
      );
      for (let r = 0; r < p.rounds; r++) {
        for (let k = 0; k < subjects.length; k++) {
          const subject = subjects[(r + k) % subjects.length]!;
          await measure(ctx, subject, layout, subject.segments === 0 ? p.warmupMs : p.roundWarmupMs, p.queryMs);
        }
      }
      // Index updates as nodes send them, the three ways taking turns like the queries (a tenth as warm-up first).
      updateSubjects.push(
        newUpdateSubject('kvfabric update stream', kvf, 'pipelined'),
        newUpdateSubject('kvfabric unary updates', kvf, 'unary'),
        newUpdateSubject('redis', ref, 'pipelined'),
      );
      for (const u of updateSubjects) await measureUpdates(ctx, u, p.updatesPerWorker / 10, false);
      for (let r = 0; r < p.updateRounds; r++)
        for (let k = 0; k < updateSubjects.length; k++)
          await measureUpdates(ctx, updateSubjects[(r + k) % updateSubjects.length]!, p.updatesPerWorker);
      await closeAll(groups.splice(0).flatMap((g) => g.procs));
      clearInterval(timer);
      await metaserver.stop(); // frees its memory before the memory measurements
      for (const entries of p.memoryEntries)
        redisBytes[entries] = await redisMemory(ctx, p, redisAddr, redisAdmin, layoutForEntries(entries));
    } finally {
      clearInterval(timer);
      await closeAll(groups.flatMap((g) => g.procs));
      admin.close();
      redisAdmin.close();
    }
    const [kvPipelined, kvUnary, redisQueries, floorUnary] = subjects.map(summary) as [
      QueryResult,
      QueryResult,
      QueryResult,
      QueryResult,
    ];
    const [kvUpdates, kvUnaryUpdates, redisUpdates] = updateSubjects.map(updateSummary) as [
      UpdateResult,
      UpdateResult,
      UpdateResult,
    ];
    const kvInsert = insertOf(subjects[0]!.group);
    const refInsert = insertOf(subjects[2]!.group);

    // Store memory, in-process, one fresh process per size.
    const rows: (string | number)[][] = [];
    const add = (name: string, k: number, r: number | undefined, target: string) => {
      metrics[name] = k;
      if (r !== undefined) reference[name] = r;
      rows.push([name, k, r ?? '-', r === undefined ? '-' : round(k / r, 3), target]);
    };
    add('inserts_per_sec', Math.round(kvInsert.insertsPerSec), Math.round(refInsert.insertsPerSec), '');
    add(
      'queries_per_sec',
      Math.round(kvPipelined.queriesPerSec),
      Math.round(redisQueries.queriesPerSec),
      '>= 1.0x redis (pipelined stream)',
    );
    add(
      'queries_per_sec_unary',
      Math.round(kvUnary.queriesPerSec),
      Math.round(redisQueries.queriesPerSec),
      '(unary calls; no target)',
    );
    add('query_p50_us', round(kvPipelined.p50Us), round(redisQueries.p50Us), '');
    add('query_p99_us', round(kvPipelined.p99Us), round(redisQueries.p99Us), '');
    add('query_p50_us_unary', round(kvUnary.p50Us), round(redisQueries.p50Us), '');
    add('query_p99_us_unary', round(kvUnary.p99Us), round(redisQueries.p99Us), '');
    add('server_cpu_us_per_query', round(kvPipelined.serverCpuUsPerQuery), round(redisQueries.serverCpuUsPerQuery), '');
    add(
      'server_cpu_us_per_query_unary',
      round(kvUnary.serverCpuUsPerQuery),
      round(redisQueries.serverCpuUsPerQuery),
      '',
    );
    add('client_cpu_us_per_query', round(kvPipelined.clientCpuUsPerQuery), round(redisQueries.clientCpuUsPerQuery), '');
    add(
      'client_cpu_us_per_query_unary',
      round(kvUnary.clientCpuUsPerQuery),
      round(redisQueries.clientCpuUsPerQuery),
      '',
    );
    // The unary floor against Redis, like the unary rows: what any grpc-js unary QueryPrefix could reach here.
    add(
      'queries_per_sec_unary_floor',
      Math.round(floorUnary.queriesPerSec),
      Math.round(redisQueries.queriesPerSec),
      '(grpc-js unary floor)',
    );
    add('query_p99_us_unary_floor', round(floorUnary.p99Us), round(redisQueries.p99Us), '');
    add(
      'server_cpu_us_per_query_unary_floor',
      round(floorUnary.serverCpuUsPerQuery),
      round(redisQueries.serverCpuUsPerQuery),
      '',
    );
    add(
      'client_cpu_us_per_query_unary_floor',
      round(floorUnary.clientCpuUsPerQuery),
      round(redisQueries.clientCpuUsPerQuery),
      '',
    );
    add(
      'server_cpu_us_per_insert',
      round(kvInsert.serverCpuUsPerInsert, 3),
      round(refInsert.serverCpuUsPerInsert, 3),
      '',
    );
    // Index updates: 64-hash inserts and removes as nodes send them (the stream) and as unary calls, against Redis.
    add(
      'updates_per_sec',
      Math.round(kvUpdates.updatesPerSec),
      Math.round(redisUpdates.updatesPerSec),
      '(update stream, as nodes send them)',
    );
    add('updates_per_sec_unary', Math.round(kvUnaryUpdates.updatesPerSec), Math.round(redisUpdates.updatesPerSec), '');
    add(
      'server_cpu_us_per_update',
      round(kvUpdates.serverCpuUsPerUpdate),
      round(redisUpdates.serverCpuUsPerUpdate),
      '',
    );
    add(
      'server_cpu_us_per_update_unary',
      round(kvUnaryUpdates.serverCpuUsPerUpdate),
      round(redisUpdates.serverCpuUsPerUpdate),
      '',
    );
    for (const [suffix, u] of [
      ['', kvUpdates],
      ['_unary', kvUnaryUpdates],
    ] as const) {
      add(`gc_pause_ms_per_1k_updates${suffix}`, round(u.gcMsPer1kUpdates!, 2), undefined, '');
      add(`gc_pause_max_ms_updates${suffix}`, round(u.gc!.maxMs, 2), undefined, '');
    }
    // The metaserver's GC pauses while queries were measured (no Redis counterpart: it has no collector).
    for (const [suffix, r, target] of [
      ['', kvPipelined, 'no multi-ms pause'],
      ['_unary', kvUnary, 'no multi-ms pause'],
      ['_unary_floor', floorUnary, '(grpc-js unary floor)'],
    ] as const) {
      const gc = r.gc!;
      add(`gc_pauses${suffix}`, gc.pauses, undefined, '');
      add(`gc_pause_total_ms${suffix}`, round(gc.totalMs), undefined, '');
      add(`gc_pause_p99_ms${suffix}`, round(gc.p99Ms, 2), undefined, '');
      add(`gc_pause_max_ms${suffix}`, round(gc.maxMs, 2), undefined, target);
    }
    for (const entries of p.memoryEntries) {
      const l = layoutForEntries(entries);
      const m = await storeMemory(ctx, l, true);
      add(
        `bytes_per_entry_${sizeLabel(entries)}`,
        round(m.bytesPerEntryProcess),
        round(redisBytes[entries]!),
        '<= 80 B',
      );
      metrics[`index_bytes_per_entry_${sizeLabel(entries)}`] = round(m.bytesPerEntryIndex);
      rows.push([
        `  (store's own accounting, ${m.entries.toLocaleString('en-US')} entries)`,
        round(m.bytesPerEntryIndex),
        '-',
        '-',
        '',
      ]);
    }
    const single = await storeMemory(ctx, layoutForBlocks(p.memoryEntries[0]!), false);
    add(
      `bytes_per_entry_${sizeLabel(p.memoryEntries[0]!)}_single_owner`,
      round(single.bytesPerEntryProcess),
      undefined,
      '<= 80 B',
    );

    const segments = `${p.rounds} segment${p.rounds > 1 ? 's' : ''} of ${p.queryMs / 1000}s`;
    return {
      metrics,
      reference,
      ratios: {
        queries_per_sec: round(kvPipelined.queriesPerSec / redisQueries.queriesPerSec, 3),
        queries_per_sec_unary: round(kvUnary.queriesPerSec / redisQueries.queriesPerSec, 3),
        queries_per_sec_unary_vs_floor: round(kvUnary.queriesPerSec / floorUnary.queriesPerSec, 3),
        inserts_per_sec: round(kvInsert.insertsPerSec / refInsert.insertsPerSec, 3),
        updates_per_sec: round(kvUpdates.updatesPerSec / redisUpdates.updatesPerSec, 3),
        updates_per_sec_unary: round(kvUnaryUpdates.updatesPerSec / redisUpdates.updatesPerSec, 3),
        updates_per_sec_stream_vs_unary: round(kvUpdates.updatesPerSec / kvUnaryUpdates.updatesPerSec, 3),
      },
      table: { columns: ['metric', 'kvfabric', 'redis', 'kvfabric/redis', 'target'], rows },
      notes: [
        `data: ${layout.blocks.toLocaleString('en-US')} blocks (32-byte hashes, chains of 64), ${layout.entries.toLocaleString('en-US')} (block, owner) pairs, ` +
          `${NODES} nodes, namespace ${NAMESPACE}; each query is one chain's 64 hashes and answers 2 nodes (checked against the expected answer)`,
        'the DESIGN §8 target (>= 1.0x redis queries/s) applies to the pipelined rows (queries_per_sec, query_p*_us, *_cpu_us_per_query): ' +
          'kvfabric QueryPrefixStream, one stream per connection carrying several queries at once, against Redis pipelines of 64 SMEMBERS, ' +
          'several per connection; *_unary rows: kvfabric with one unary QueryPrefix call per query over the same connections, against the same Redis run',
        `load: ${p.workers} client processes x ${p.connections} connections x ${p.depth} queries in flight per connection for every subject ` +
          `(kvfabric pipelined, kvfabric unary, redis, grpc-js unary floor); each subject measured in ${segments} (${p.warmupMs / 1000}s warm-up before its first, ` +
          `${p.roundWarmupMs / 1000}s before later ones), subjects taking turns while both servers hold the data; ` +
          `${kvPipelined.queries.toLocaleString('en-US')} kvfabric pipelined, ${kvUnary.queries.toLocaleString('en-US')} kvfabric unary, ` +
          `${redisQueries.queries.toLocaleString('en-US')} redis and ${floorUnary.queries.toLocaleString('en-US')} floor queries; inserts in batches of one node's hashes of 16 chains (1024 or ~520), ` +
          `kvfabric's on one UpdateBlocksStream per connection (as a node's reporter sends them), ${p.depth} in flight each; ` +
          `${p.unaryWarmupMs / 1000}s of unary queries warm each unary server up before the first segment`,
        `${split ? `each server pinned to core ${split.server} and the load processes to cores ${split.clients} (taskset), of ${cpus().length}` : `clients and server share ${cpus().length} cores`} (load average at start ${loadStart}, at end ${loadavg()[0]!.toFixed(1)}); server_cpu_us_*: the server process's user+system CPU ` +
          'per query / per inserted pair (from /proc), a client-independent cost; 1e6 / server_cpu_us_per_query is what one core could serve; ' +
          'client_cpu_us_per_query: all load processes together',
        'redis: key = raw 32-byte hash, value = set of small-integer node ids (intset); insert = pipelined SADD per hash; ' +
          'query = 64 pipelined SMEMBERS + per-node longest-prefix on the client; memory = INFO used_memory delta per entry',
        "gc_*: the metaserver's garbage-collection pauses that started while the kvfabric subject was measured, each " +
          'one exact from its pause log (GET /debug/gc-pauses, perf_hooks gc entries, wall time, all kinds): count, ' +
          'total, 99th percentile (nearest rank) and the longest; by kind (count / total, longest): ' +
          `pipelined ${describeKinds(kvPipelined.gc!)}; unary ${describeKinds(kvUnary.gc!)}; unary floor ${describeKinds(floorUnary.gc!)}; ` +
          `the metaserver's node flags (the floor server's too): ${serverFlags}`,
        '*_unary_floor: the grpc-js unary floor, a process answering the same unary QueryPrefix (the same service definition, ' +
          'hand-written wire codec, server options and node flags) with a fixed two-node answer, without the store or the kvfabric ' +
          'RPC wrapper, queried by the same client processes as unary kvfabric (answers not checked); ' +
          "queries_per_sec_unary_vs_floor: kvfabric unary queries/s over the floor's, what the metaserver keeps of what one grpc-js unary call per query allows",
        `updates: index updates as a node's reporter sends them, a batch of 64 fresh hashes inserted by one of the ${NODES} nodes, then removed ` +
          `(each call one update); ${p.workers} client processes x ${p.connections * p.depth} lanes, each waiting for its answers; ` +
          `${p.updatesPerWorker.toLocaleString('en-US')} updates per process in each of ${p.updateRounds} round${p.updateRounds > 1 ? 's' : ''} per subject ` +
          '(the subjects taking turns, after a tenth of that as warm-up): kvfabric on one UpdateBlocksStream per connection (what nodes use), ' +
          'kvfabric as unary InsertBlocks / RemoveBlocks calls over the same connections, Redis as pipelined SADD / SREM per hash; ' +
          `gc_*_updates: the metaserver's pauses while updates were measured (stream: ${describeKinds(kvUpdates.gc!)}; unary: ${describeKinds(kvUnaryUpdates.gc!)})`,
        'kvfabric memory: heapUsed+external delta (after GC) of a fresh process holding only the store, per (block, owner); ' +
          `~1.5 owners per block (chain owner + a prefix on a second node); *_single_owner: one owner per block`,
      ],
    };
  },
};

export default scenario;
