// failover: three kvfabric-metaserver replicas on a real etcd (lease TTL 2 s); two nodes hold 100k blocks between
// them (50k each, 32-byte hashes). Each round kills the leader with SIGKILL and measures
//   failover: kill → first successful query answered by the new leader, for a client following the leader key;
//   recovery: kill → the new leader's index holds all 100k blocks again (nodes re-advertise on the new epoch).
// The nodes are kvfabric-node's own Reporter (heartbeat every 2 s, the default; on a leader change seen through
// etcd it heartbeats at once, and on the new epoch re-advertises every resident block in InsertBlocks batches of
// 4096, paced to the default 200k blocks/s), each with a MetaserverClient on the etcd:// address, in this process
// without a pool. The killed replica is started again (as a follower) before the next round. No external
// reference exists for this path, so the result has metrics and a table but no ratios.
import { MetaserverClient } from '@kvfabric/client';
import { silentLogger } from '@kvfabric/common/observability';
import { DEFAULT_READVERTISE_BLOCKS_PER_SEC, Reporter } from '@kvfabric/node/internal';
import { startEtcd, startMetaserver, type MetaserverHandle } from '@kvfabric/testkit';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile, type BenchContext, type Scenario, type ScenarioResult } from '../harness.js';

const TTL_SECS = 2;
const HEARTBEAT_MS = 2000;
const BATCH = 4096;
const NAMESPACE = 'bench-failover';

interface Plan {
  kills: number;
  blocksPerNode: number;
}

/** A node's reporter over `count` resident blocks, following the leader through etcd (close its client after stop). */
function simNode(
  id: string,
  port: number,
  count: number,
  metaserverAddr: string,
): { reporter: Reporter; client: MetaserverClient } {
  const packed = Buffer.alloc(count * 32);
  for (let i = 0; i < count; i++) {
    packed.writeUInt32BE(port, i * 32);
    packed.writeUInt32BE(i, i * 32 + 4);
  }
  const client = new MetaserverClient(metaserverAddr, { deadlineMs: HEARTBEAT_MS });
  const reporter = new Reporter({
    client,
    nodeId: id,
    addr: `127.0.0.1:${port}`,
    transports: [],
    heartbeatMs: HEARTBEAT_MS,
    batchSize: BATCH,
    stats: () => ({ poolCapacityBytes: 1 << 30, poolUsedBytes: 0, blocks: count }),
    resident: () => [{ namespace: NAMESPACE, hashes: { packed, hashLen: 32 } }],
    logger: silentLogger(),
  });
  return { reporter, client };
}

async function waitUntil(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await fn()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`failover bench: ${what} not reached within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const plan: Plan = ctx.quick ? { kills: 2, blocksPerNode: 10_000 } : { kills: 5, blocksPerNode: 50_000 };
  const total = plan.blocksPerNode * 2;
  await using etcd = await startEtcd();
  const endpoint = etcd.endpoint.replace('http://', '');
  const args = (id: string) => [
    '--etcd-endpoints',
    etcd.endpoint,
    '--etcd-prefix',
    '/bench',
    '--etcd-lease-ttl-secs',
    String(TTL_SECS),
    '--replica-id',
    id,
  ];
  const replicas: { id: string; ms: MetaserverHandle }[] = [];
  const addr = `etcd://${endpoint}/bench`;
  const client = new MetaserverClient(addr, { deadlineMs: 1000 });
  const locator = (await client.leaderLocator())!.start();
  const nodes = [simNode('node-a', 7001, plan.blocksPerNode, addr), simNode('node-b', 7002, plan.blocksPerNode, addr)];
  const failoverMs: number[] = [];
  const recoveryMs: number[] = [];
  const rows: (string | number)[][] = [];
  try {
    for (const id of ['m1', 'm2', 'm3'])
      replicas.push({ id, ms: await startMetaserver({ args: args(id), logLevel: 'warn' }) });
    await locator.waitForLeader(10_000);
    nodes.forEach((n) => n.reporter.start());
    const indexed = async () => {
      try {
        const s = await client.getStats({ deadlineMs: 500 });
        return s.blocks === BigInt(total) && s.leader?.addr === locator.leader?.addr;
      } catch {
        return false;
      }
    };
    await waitUntil(indexed, 30_000, 'initial index');
    const bar = ctx.progress('leader kills', plan.kills);
    const probe = Buffer.alloc(64 * 32);
    for (let i = 0; i < 64; i++) {
      probe.writeUInt32BE(7001, i * 32);
      probe.writeUInt32BE(i, i * 32 + 4);
    }
    for (let k = 0; k < plan.kills; k++) {
      const old = locator.leader!;
      const victim = replicas.find((r) => r.ms.addr === old.addr)!;
      const killedAt = performance.now();
      victim.ms.proc.kill('SIGKILL');
      // failover: the first query answered by a new leader
      await waitUntil(
        async () => {
          try {
            const res = await client.queryPrefix(NAMESPACE, { packed: probe, hashLen: 32 }, { deadlineMs: 300 });
            return res.epoch !== old.epoch;
          } catch {
            return false;
          }
        },
        20_000,
        'a new leader answering',
      );
      const failover = performance.now() - killedAt;
      await waitUntil(indexed, 60_000, 'index recovery');
      const recovery = performance.now() - killedAt;
      failoverMs.push(failover);
      recoveryMs.push(recovery);
      rows.push([k + 1, victim.id, locator.leader!.replicaId, Math.round(failover), Math.round(recovery)]);
      await victim.ms.restart();
      bar.tick();
    }
    bar.done();
  } finally {
    await Promise.all(nodes.map((n) => n.reporter.stop()));
    nodes.forEach((n) => n.client.close());
    client.close();
    for (const r of replicas) await r.ms[Symbol.asyncDispose]();
  }
  const f = [...failoverMs].sort((a, b) => a - b);
  const r = [...recoveryMs].sort((a, b) => a - b);
  return {
    metrics: {
      lease_ttl_seconds: TTL_SECS,
      node_heartbeat_seconds: HEARTBEAT_MS / 1000,
      readvertise_blocks_per_sec: DEFAULT_READVERTISE_BLOCKS_PER_SEC,
      blocks: total,
      kills: failoverMs.length,
      failover_p50_seconds: percentile(f, 50) / 1000,
      failover_p99_seconds: percentile(f, 99) / 1000,
      failover_max_seconds: f.at(-1)! / 1000,
      recovery_p50_seconds: percentile(r, 50) / 1000,
      recovery_p99_seconds: percentile(r, 99) / 1000,
      recovery_max_seconds: r.at(-1)! / 1000,
    },
    reference: {},
    ratios: {},
    table: { columns: ['kill', 'killed', 'new leader', 'failover ms', 'index recovered ms'], rows },
    notes: [
      `lease TTL ${TTL_SECS} s: failover is bounded by the TTL (etcd expires the dead leader's lease) plus the election and one client round trip`,
      `recovery: the nodes see the new leader through etcd at once (not a heartbeat period later), then re-advertise ${total} blocks in batches of ${BATCH} paced to ${DEFAULT_READVERTISE_BLOCKS_PER_SEC} blocks/s per node`,
    ],
  };
}

const scenario: Scenario = {
  name: 'failover',
  description: 'metaserver leader kill -9: failover and index recovery (3 replicas, etcd, 2 nodes)',
  run,
};
export default scenario;
