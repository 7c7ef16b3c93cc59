// The two-node cluster the pull bench runs on: a metaserver and two kvfabric-node processes (A holds, B pulls),
// engines on either, and seeding A with blocks the metaserver lists. Shared by scenarios/pull.ts and pull/fan-in.ts.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMetaserver, startNode, type NodeHandle } from '@kvfabric/testkit';
import { KvEngine, KvRegion, MetaserverClient, type KvLayoutSpec } from '@kvfabric/client';
import { readTls } from '@kvfabric/common/rpc';
import { CpuLedger, processProbe, selfProbe, threadProbe } from '../capacity.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** Connections per peer of a single pulling engine's run (`--streams-per-peer`). */
export const STREAMS = 4;
const REGION_BLOCKS = 64;
export const label = (b: number) => (b >= MiB ? `${b / MiB}MiB` : `${b / KiB}KiB`);
export const gbps = (bytesPerSec: number) => bytesPerSec / 1e9;

export async function metric(node: NodeHandle, name: string): Promise<number> {
  const text = await (await fetch(`http://${node.httpAddr}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{'))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function layoutFor(blockBytes: number): KvLayoutSpec {
  return { numLayers: 8, kvSplit: true, bytesPerLayerBlock: blockBytes / 16, numBlocks: REGION_BLOCKS };
}

export interface Pair {
  a: NodeHandle;
  b: NodeHandle;
  meta: MetaserverClient;
  /** The metaserver process (for CPU accounting). */
  metaPid: number;
  close(): Promise<void>;
}

/** `streams`: --streams-per-peer of both nodes; `args`: more flags for both. */
export async function startPair(
  poolBytes: number,
  opts: { tls?: boolean; streams?: number; args?: string[] } = {},
): Promise<Pair> {
  const tls = opts.tls ?? false;
  const metaserver = await startMetaserver({ logLevel: 'warn', tls });
  const args = [
    '--streams-per-peer',
    String(opts.streams ?? STREAMS),
    '--pull-timeout-secs',
    '60',
    '--heartbeat-interval-secs',
    '0.5',
    ...(opts.args ?? []),
  ];
  const pool = `${Math.ceil(poolBytes / MiB)}mib`;
  // One at a time: each pre-faults its whole pool at start-up, and two at once on 2 cores can outlast the health wait.
  let a: NodeHandle | undefined;
  let b: NodeHandle | undefined;
  try {
    a = await startNode({ metaserverAddr: metaserver.addr, poolSize: pool, logLevel: 'warn', args, tls });
    b = await startNode({ metaserverAddr: metaserver.addr, poolSize: pool, logLevel: 'warn', args, tls });
  } catch (err) {
    await a?.[Symbol.asyncDispose]();
    await metaserver[Symbol.asyncDispose]();
    throw err;
  }
  const meta = new MetaserverClient(metaserver.addr, { tls: metaserver.tls && readTls(metaserver.tls.client) });
  return {
    a: a!,
    b: b!,
    meta,
    metaPid: metaserver.proc.pid,
    async close() {
      meta.close();
      await b![Symbol.asyncDispose]();
      await a![Symbol.asyncDispose]();
      await metaserver[Symbol.asyncDispose]();
    },
  };
}

export async function engineOn(node: NodeHandle, namespace: string, blockBytes: number) {
  const region = KvRegion.create({ layout: layoutFor(blockBytes) });
  for (let i = 0; i < REGION_BLOCKS; i++) region.writeBlock(i, randomBytes(region.geometry.blockBytes));
  const kv = await KvEngine.register({ target: node.engineSocket, namespace, region });
  return {
    kv,
    region,
    async close() {
      await kv.close();
      region.close();
    },
  };
}

/** Saves `hashes` on the engine (region blocks reused round robin) and waits until the metaserver lists them all. */
export async function seed(p: Pair, kv: KvEngine, namespace: string, hashes: Buffer[]): Promise<void> {
  for (let i = 0; i < hashes.length; i += REGION_BLOCKS) {
    const chunk = hashes.slice(i, i + REGION_BLOCKS);
    const res = await kv.save(
      chunk.map((_, j) => j),
      chunk,
    );
    if (res.sealed !== chunk.length)
      throw new Error(`pull bench: saved ${res.sealed} of ${chunk.length} blocks (pool too small?)`);
  }
  const deadline = Date.now() + 30_000;
  while ((await p.meta.queryPrefix(namespace, hashes)).nodes[0]?.prefixLen !== hashes.length) {
    if (Date.now() > deadline) throw new Error('pull bench: the metaserver never listed the seeded blocks');
    await sleep(10);
  }
}

/**
 * CPU of every kvfabric party of a pull: each node's event loop, tcp transport threads, copy threads (verifying
 * and summing pages) and other threads, the metaserver, and this process (the engines' SDK).
 */
export function pullLedger(p: Pair): CpuLedger {
  const node = (pid: number, role: string) =>
    threadProbe(pid, {
      main: `${role} node event loop`,
      transport: `${role} node tcp transport threads`,
      copy: `${role} node copy threads (verify, sums)`,
      other: `${role} node other threads (V8, libuv)`,
    });
  return new CpuLedger([
    node(p.b.proc.pid, 'puller'),
    node(p.a.proc.pid, 'holder'),
    processProbe(p.metaPid, 'metaserver'),
    selfProbe('engine client (SDK)'),
  ]);
}
