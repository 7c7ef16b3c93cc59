// failover: three kvfabric-metaserver replicas on a real etcd (lease TTL 2 s); two nodes hold 100k blocks between
// them (50k each, 32-byte hashes). Each round kills the leader with SIGKILL and measures
//   failover: kill → first successful query answered by the new leader, for a client following the leader key;
//   recovery: kill → the new leader's index holds all 100k blocks again (nodes re-advertise on the new epoch).
// The nodes are simulated in this process with the node reporter's protocol: a heartbeat every 2 s (the
// kvfabric-node default), and on a new epoch a re-advertise of every resident block in InsertBlocks batches of
// 4096. The killed replica is started again (as a follower) before the next round. No external reference exists
// for this path, so the result has metrics and a table but no ratios.
import { MetaserverClient } from '@kvfabric/client';
// TODO(lead): import from '@kvfabric/client' once packages/client/src/index.ts re-exports leader-locator.ts
import { LeaderLocator } from '../../../packages/client/src/leader-locator.js';
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

/** A MetaserverClient for whoever leads now (switches when the leader key changes). */
class LeaderClient {
  private client: MetaserverClient | undefined;
  private addr = '';
  constructor(private readonly locator: LeaderLocator) {}
  get(): MetaserverClient | undefined {
    const leader = this.locator.leader?.addr;
    if (!leader) return undefined;
    if (leader !== this.addr) {
      this.client?.close();
      this.client = new MetaserverClient(leader, { deadlineMs: 1000 });
      this.addr = leader;
    }
    return this.client;
  }
  close(): void {
    this.client?.close();
  }
}

/** The node reporter's protocol, for `count` resident blocks. */
class SimNode {
  epoch = 0n;
  readvertised = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly hashes: Buffer;

  constructor(
    readonly id: string,
    private readonly port: number,
    private readonly count: number,
    private readonly ms: LeaderClient,
  ) {
    this.hashes = Buffer.alloc(count * 32);
    for (let i = 0; i < count; i++) {
      this.hashes.writeUInt32BE(port, i * 32);
      this.hashes.writeUInt32BE(i, i * 32 + 4);
    }
  }

  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), HEARTBEAT_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async beat(): Promise<void> {
    const client = this.ms.get();
    if (!client || this.busy) return;
    this.busy = true;
    try {
      const res = await client.heartbeat({ nodeId: this.id, addr: `127.0.0.1:${this.port}`, stats: { poolCapacityBytes: 1n << 30n, poolUsedBytes: 0n, blocks: BigInt(this.count) } });
      if (res.epoch !== this.epoch || res.registered) {
        this.epoch = res.epoch;
        for (let i = 0; i < this.count; i += BATCH) {
          const n = Math.min(BATCH, this.count - i);
          await client.insertBlocks(this.id, NAMESPACE, { packed: this.hashes.subarray(i * 32, (i + n) * 32), hashLen: 32 });
        }
        this.readvertised += this.count;
      }
    } catch {
      // leader gone: the next heartbeat finds the new one
    } finally {
      this.busy = false;
    }
  }
}

async function waitUntil(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await fn()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`failover bench: ${what} not reached within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const plan: Plan = ctx.quick ? { kills: 2, blocksPerNode: 10_000 } : { kills: 5, blocksPerNode: 50_000 };
  const total = plan.blocksPerNode * 2;
  await using etcd = await startEtcd();
  const endpoint = etcd.endpoint.replace('http://', '');
  const args = (id: string) => ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', '/bench', '--etcd-lease-ttl-secs', String(TTL_SECS), '--replica-id', id];
  const replicas: { id: string; ms: MetaserverHandle }[] = [];
  const locator = new LeaderLocator(`etcd://${endpoint}/bench`).start();
  const leaderClient = new LeaderClient(locator);
  const nodes = [new SimNode('node-a', 7001, plan.blocksPerNode, new LeaderClient(locator)), new SimNode('node-b', 7002, plan.blocksPerNode, new LeaderClient(locator))];
  const failoverMs: number[] = [];
  const recoveryMs: number[] = [];
  const rows: (string | number)[][] = [];
  try {
    for (const id of ['m1', 'm2', 'm3']) replicas.push({ id, ms: await startMetaserver({ args: args(id), logLevel: 'warn' }) });
    await locator.waitForLeader(10_000);
    nodes.forEach((n) => n.start());
    const indexed = async () => {
      try {
        const s = await leaderClient.get()?.getStats({ deadlineMs: 500 });
        return s !== undefined && s.blocks === BigInt(total) && s.leader?.addr === locator.leader?.addr;
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
      await waitUntil(async () => {
        const c = leaderClient.get();
        if (!c || locator.leader?.epoch === old.epoch) return false;
        try {
          await c.queryPrefix(NAMESPACE, { packed: probe, hashLen: 32 }, { deadlineMs: 300 });
          return true;
        } catch {
          return false;
        }
      }, 20_000, 'a new leader answering');
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
    nodes.forEach((n) => n.stop());
    locator.close();
    leaderClient.close();
    for (const r of replicas) await r.ms[Symbol.asyncDispose]();
  }
  const f = [...failoverMs].sort((a, b) => a - b);
  const r = [...recoveryMs].sort((a, b) => a - b);
  return {
    metrics: {
      lease_ttl_seconds: TTL_SECS,
      node_heartbeat_seconds: HEARTBEAT_MS / 1000,
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
      `recovery adds up to one node heartbeat (${HEARTBEAT_MS / 1000} s) before the nodes see the new epoch, then ${total} re-advertised blocks in batches of ${BATCH}`,
    ],
  };
}

const scenario: Scenario = { name: 'failover', description: 'metaserver leader kill -9: failover and index recovery (3 replicas, etcd, 2 nodes)', run };
export default scenario;
