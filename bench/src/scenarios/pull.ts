// pull: remote prefix pulls between two real kvfabric-node processes (tcp transport on loopback).
//  1. Throughput: node A holds N blocks (8,000 of 256 KiB, then 1,000 of 2 MiB: the same bytes) that an engine on node B queries; B pulls
//     them over `--streams-per-peer` connections straight into its pool. Measured by B itself (bytes sealed over
//     fetch time, from /metrics) and end to end (engine query until READY). References, same machine, same run:
//     - `iperf3 -P <streams>` on loopback (target ratio >= 0.9);
//     - Redis: the same blocks as values, pipelined GETs over the same number of connections with the bench's
//       RespClient (incremental, Buffer-based: linear in the bytes) (target ratio >= 1.2).
//     Every repetition runs iperf3, the pull and the Redis GETs back to back, so each ratio compares runs that saw
//     the same machine load; the reported ratio is the median of the per-repetition ratios.
//  2. Time to READY for a 64-block remote prefix (256 KiB blocks) as the engine sees it, p50/p99.
//  3. What mutual TLS costs: 1 and 2 again (256 KiB) on a cluster with TLS on every gRPC hop (metaserver, peer
//     handshakes and grants); the tcp data stream is the same in both (see docs/architecture.md, Security).
//  4. The same pull with 8 engines on B pulling 8 different prefixes from A at once (pull/fan-in.ts) vs iperf3 -P 8.
// Every throughput run also accounts the CPU of each party (both nodes, the metaserver, the engine client; iperf3's
// two ends; redis-server and its client): CPU per GiB and GB/s one core could carry.
import { randomBytes } from 'node:crypto';
import { CpuLedger, capacityRows, processProbe, selfProbe, type CapacityRow } from '../capacity.js';
import {
  median,
  nowSeconds,
  percentile,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
  type Table,
} from '../harness.js';
import { iperf3, iperf3Available } from '../peers/iperf3.js';
import { RespClient, startRedis } from '../peers/redis.js';
import { fanIn, READERS } from '../pull/fan-in.js';
import { KiB, MiB, STREAMS, engineOn, gbps, label, metric, pullLedger, seed, startPair } from '../pull/pair.js';
import { freshHashes } from '../fresh-hashes.js';

/** Pipelined GETs of `keys` over `conns` connections (keys dealt round robin); returns seconds. */
async function redisGetAll(port: number, keys: string[], valueBytes: number, conns: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: conns }, () => RespClient.connect('127.0.0.1', port)));
  try {
    const t0 = nowSeconds();
    const replies = await Promise.all(
      clients.map((c, i) => c.pipeline(keys.filter((_, k) => k % conns === i).map((k) => ['GET', k]))),
    );
    const seconds = nowSeconds() - t0;
    for (const r of replies.flat()) {
      if (!Buffer.isBuffer(r) || r.length !== valueBytes)
        throw new Error(`redis: unexpected GET reply ${String(r).slice(0, 40)}`);
    }
    return seconds;
  } finally {
    for (const c of clients) c.close();
  }
}

interface Rep {
  node: number;
  e2e: number;
  iperf: number;
  redis: number;
}

/**
 * `reps` repetitions of: iperf3 (when installed), one pull of `blocks` fresh blocks from A to B, pipelined Redis
 * GETs of as many values of the same size. Bytes per second of each, and the CPU every party spent on them.
 */
async function throughput(
  ctx: BenchContext,
  blockBytes: number,
  blocks: number,
  reps: number,
  iperfSeconds: number | undefined,
  tls = false,
): Promise<{ runs: Rep[]; capacity: CapacityRow[] }> {
  const bar = ctx.progress(`pull ${blocks} × ${label(blockBytes)}${tls ? ' (TLS)' : ''}`, reps + 2);
  const p = await startPair(blocks * blockBytes + 128 * MiB, { tls });
  const ns = `bench/pull/${label(blockBytes)}`;
  const out: Rep[] = [];
  const ours = pullLedger(p);
  const iperfCpu = new CpuLedger();
  let iperfBytes = 0;
  try {
    await using redis = await startRedis();
    const redisCpu = new CpuLedger([processProbe(redis.proc.pid!, 'redis-server'), selfProbe('redis client')]);
    const keys = Array.from({ length: blocks }, (_, i) => `blk:${i}`);
    const loader = await RespClient.connect('127.0.0.1', redis.port);
    const value = randomBytes(blockBytes);
    for (let i = 0; i < blocks; i += 16) await loader.pipeline(keys.slice(i, i + 16).map((k) => ['SET', k, value]));
    loader.close();
    await redisGetAll(redis.port, keys, blockBytes, STREAMS); // warm-up
    bar.tick();
    const ea = await engineOn(p.a, ns, blockBytes);
    const eb = await engineOn(p.b, ns, blockBytes);
    bar.tick();
    try {
      for (let r = 0; r < reps; r++) {
        const hashes = freshHashes(blocks);
        await seed(p, ea.kv, ns, hashes);
        const ref = iperfSeconds ? await iperf3(STREAMS, iperfSeconds) : undefined;
        if (ref) {
          iperfCpu.add('iperf3 receiver', ref.receiverCpuSeconds);
          iperfCpu.add('iperf3 sender', ref.senderCpuSeconds);
          iperfBytes += ref.bytes;
        }
        const [bytes0, secs0] = [
          await metric(p.b, 'kvfabric_pull_bytes_total'),
          await metric(p.b, 'kvfabric_pull_duration_seconds_sum'),
        ];
        const t0 = nowSeconds();
        const q = await ours.window(true, () => eb.kv.query(hashes, { timeoutMs: 120_000 }));
        const wall = nowSeconds() - t0;
        if (q.hits !== blocks) throw new Error(`pull bench: ${q.hits} of ${blocks} blocks pulled`);
        await eb.kv.release(q.leaseId);
        const bytes = (await metric(p.b, 'kvfabric_pull_bytes_total')) - bytes0;
        const secs = (await metric(p.b, 'kvfabric_pull_duration_seconds_sum')) - secs0;
        if (bytes !== blocks * blockBytes)
          throw new Error(`pull bench: ${bytes} bytes pulled, expected ${blocks * blockBytes}`);
        const redisSeconds = await redisCpu.window(true, () => redisGetAll(redis.port, keys, blockBytes, STREAMS));
        out.push({
          node: bytes / secs,
          e2e: bytes / wall,
          iperf: ref?.bytesPerSecond ?? NaN,
          redis: (blocks * blockBytes) / redisSeconds,
        });
        bar.tick();
      }
    } finally {
      await eb.close();
      await ea.close();
    }
    const path = `pull ${blocks} × ${label(blockBytes)}${tls ? ', mutual TLS' : ''}`;
    const bytes = reps * blocks * blockBytes;
    const capacity = [
      ...capacityRows(path, 'kvfabric', ours.seconds, bytes),
      ...(iperfBytes > 0 ? capacityRows(path, 'reference', iperfCpu.seconds, iperfBytes) : []),
      ...capacityRows(`Redis GET ${blocks} × ${label(blockBytes)}`, 'reference', redisCpu.seconds, bytes),
    ];
    return { runs: out, capacity };
  } finally {
    bar.done();
    await p.close();
  }
}

async function timeToReady(ctx: BenchContext, reps: number, tls = false) {
  const blockBytes = 256 * KiB;
  const bar = ctx.progress(`time to READY, 64 blocks${tls ? ' (TLS)' : ''}`, reps);
  const p = await startPair(reps * 64 * blockBytes * 1.1 + 64 * MiB, { tls });
  const ns = 'bench/pull/ready';
  const ea = await engineOn(p.a, ns, blockBytes);
  const eb = await engineOn(p.b, ns, blockBytes);
  const sdk: number[] = [];
  const inNode: number[] = [];
  try {
    for (let r = 0; r < reps; r++) {
      const hashes = freshHashes(64);
      await seed(p, ea.kv, ns, hashes);
      const s0 = await metric(p.b, 'kvfabric_pull_duration_seconds_sum');
      const t0 = nowSeconds();
      const q = await eb.kv.query(hashes);
      sdk.push(nowSeconds() - t0);
      inNode.push((await metric(p.b, 'kvfabric_pull_duration_seconds_sum')) - s0);
      if (q.hits !== 64) throw new Error(`pull bench: READY with ${q.hits} of 64`);
      await eb.kv.release(q.leaseId);
      bar.tick();
    }
  } finally {
    bar.done();
    await eb.close();
    await ea.close();
    await p.close();
  }
  sdk.sort((a, b) => a - b);
  inNode.sort((a, b) => a - b);
  return {
    p50: percentile(sdk, 50),
    p99: percentile(sdk, 99),
    fetchP50: percentile(inNode, 50),
    fetchP99: percentile(inNode, 99),
  };
}

const scenario: Scenario = {
  name: 'pull',
  description: `remote prefix pulls between two node processes (tcp, ${STREAMS} streams) vs iperf3 and pipelined Redis GET`,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    // Every pull moves the same bytes at both page sizes (2,000 MiB: 8,000 × 256 KiB, 1,000 × 2 MiB), so both
    // rows compare a steady state with iperf3's; how long a short pull takes is the READY rows' business.
    const blocksOf = (blockBytes: number) =>
      ctx.quick ? (blockBytes >= MiB ? 50 : 100) : Math.round((2000 * MiB) / blockBytes);
    const reps = ctx.quick ? 2 : 5;
    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const notes: string[] = [];
    const rows: Table['rows'] = [];
    const capacity: CapacityRow[] = [];

    const version = await iperf3Available();
    if (version) ctx.log(`iperf3 -P ${STREAMS} on loopback (${version}) before every pull`);
    else notes.push('iperf3 not installed: no iperf3 reference');
    const iperfSeconds = version ? (ctx.quick ? 1 : 2) : undefined;

    for (const blockBytes of [256 * KiB, 2 * MiB]) {
      const l = label(blockBytes);
      const n = blocksOf(blockBytes);
      const { runs, capacity: cost } = await throughput(ctx, blockBytes, n, reps, iperfSeconds);
      capacity.push(...cost);
      const fmt = (f: (x: Rep) => number) => runs.map((x) => (f(x) / 1e9).toFixed(2)).join(', ');
      ctx.log(
        `${n} × ${l}: pull ${fmt((x) => x.node)} GB/s; iperf3 ${fmt((x) => x.iperf)} GB/s; redis GET ${fmt((x) => x.redis)} GB/s`,
      );
      const node = median(runs.map((x) => x.node));
      const redis = median(runs.map((x) => x.redis));
      metrics[`pull_${l}_GBps`] = gbps(node);
      metrics[`pull_${l}_e2e_GBps`] = gbps(median(runs.map((x) => x.e2e)));
      reference[`redis_get_${l}_GBps`] = gbps(redis);
      rows.push([`kvfabric pull ${n} × ${l}`, gbps(node), metrics[`pull_${l}_e2e_GBps`]!, gbps(redis)]);
      if (version) {
        const iperf = median(runs.map((x) => x.iperf));
        reference[`iperf3_${l}_GBps`] = gbps(iperf);
        rows.push([`  iperf3 -P ${STREAMS} alongside`, '-', gbps(iperf), '-']);
        metrics[`pull_${l}_vs_iperf3`] = gbps(node);
        reference[`pull_${l}_vs_iperf3`] = gbps(iperf);
        ratios[`pull_${l}_vs_iperf3`] = median(runs.map((x) => x.node / x.iperf));
      }
      metrics[`pull_${l}_vs_redis`] = gbps(node);
      reference[`pull_${l}_vs_redis`] = gbps(redis);
      ratios[`pull_${l}_vs_redis`] = median(runs.map((x) => x.node / x.redis));

      // 4. the same bytes pulled by 8 engines at once, 8 prefixes of n / 8 blocks
      const perReader = Math.ceil(n / READERS);
      const many = await fanIn(ctx, blockBytes, perReader, reps, iperfSeconds);
      capacity.push(...many.capacity);
      const key = `pull_${l}_${READERS}_readers`;
      const e2e = median(many.runs.map((x) => x.e2e));
      metrics[`${key}_GBps`] = gbps(e2e);
      rows.push([`kvfabric pull, ${READERS} readers × ${perReader} × ${l}`, '-', gbps(e2e), '-']);
      if (version) {
        const iperf = median(many.runs.map((x) => x.iperf));
        rows.push([`  iperf3 -P ${READERS} alongside`, '-', gbps(iperf), '-']);
        metrics[`${key}_vs_iperf3`] = gbps(e2e);
        reference[`${key}_vs_iperf3`] = gbps(iperf);
        ratios[`${key}_vs_iperf3`] = median(many.runs.map((x) => x.e2e / x.iperf));
      }
    }

    const r = await timeToReady(ctx, ctx.quick ? 20 : 200);
    metrics.ready_64_p50_ms = r.p50 * 1000;
    metrics.ready_64_p99_ms = r.p99 * 1000;
    metrics.fetch_64_p50_ms = r.fetchP50 * 1000;
    metrics.fetch_64_p99_ms = r.fetchP99 * 1000;
    rows.push([
      'READY for 64 × 256KiB remote (ms) p50 / p99',
      Number((r.p50 * 1000).toFixed(2)),
      Number((r.p99 * 1000).toFixed(2)),
      '-',
    ]);
    rows.push([
      '  of which fetch inside node B (ms) p50 / p99',
      Number((r.fetchP50 * 1000).toFixed(2)),
      Number((r.fetchP99 * 1000).toFixed(2)),
      '-',
    ]);
    // 3. the same with mutual TLS on every gRPC hop
    const plain256 = metrics.pull_256KiB_GBps!;
    const blocks = blocksOf(256 * KiB);
    const { runs: tlsRuns, capacity: tlsCost } = await throughput(ctx, 256 * KiB, blocks, reps, undefined, true);
    capacity.push(...tlsCost.filter((c) => c.side === 'kvfabric'));
    const tls256 = gbps(median(tlsRuns.map((x) => x.node)));
    const rTls = await timeToReady(ctx, ctx.quick ? 20 : 200, true);
    metrics.pull_256KiB_tls_GBps = tls256;
    metrics.pull_256KiB_tls_vs_plain = tls256;
    reference.pull_256KiB_tls_vs_plain = plain256;
    ratios.pull_256KiB_tls_vs_plain = tls256 / plain256;
    metrics.ready_64_tls_p50_ms = rTls.p50 * 1000;
    metrics.ready_64_tls_vs_plain_p50_ms = rTls.p50 * 1000;
    reference.ready_64_tls_vs_plain_p50_ms = r.p50 * 1000;
    ratios.ready_64_tls_vs_plain_p50_ms = rTls.p50 / r.p50;
    rows.push([`kvfabric pull ${blocks} × 256KiB, mutual TLS`, tls256, gbps(median(tlsRuns.map((x) => x.e2e))), '-']);
    rows.push([
      'READY for 64 × 256KiB remote, mutual TLS (ms) p50 / p99',
      Number((rTls.p50 * 1000).toFixed(2)),
      Number((rTls.p99 * 1000).toFixed(2)),
      '-',
    ]);
    notes.push(
      'TLS rows: mutual TLS on the metaserver and peer gRPC hops (lookups, handshakes, grants); ratios vs the plaintext rows above',
    );
    notes.push(
      'pull GB/s = bytes sealed / fetch time inside node B (metaserver lookup + grants + reads + seal); e2e = engine query until READY',
    );
    notes.push(
      `${reps} repetitions of iperf3 (${iperfSeconds ?? 0} s), pull, Redis GETs back to back; GB/s are medians, ratios are medians of per-repetition ratios`,
    );
    notes.push(
      `${READERS} readers: ${READERS} engines on node B pull ${READERS} different prefixes from node A at once (one node serving an ${READERS}-GPU host), --streams-per-peer ${READERS}, holder --grant-pin-budget 100% (the bench pool holds little more than the blocks; at the default 50% concurrent sessions are refused windows and end short); GB/s = all bytes / time until the last reader is READY; vs iperf3 -P ${READERS} before every pull`,
    );
    notes.push(
      'capacity: schedstat CPU of both nodes (event loop; other threads, the tcp transport among them), the metaserver and the engine client over each pull; iperf3 by its own accounting; redis-server and the bench RESP client over the GETs',
    );
    return {
      metrics,
      reference,
      ratios,
      capacity,
      notes,
      table: { columns: ['what', 'GB/s (node) | p50', 'GB/s (e2e) | p99', 'redis GET GB/s'], rows },
    };
  },
};

export default scenario;
