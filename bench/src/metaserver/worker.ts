// A load process of the metaserver bench, forked by scenarios/metaserver.ts (IPC, advanced serialization).
// The same process drives either kvfabric (gRPC, packages/client: inserts on UpdateBlocksStreams; unary QueryPrefix
// calls, or QueryPrefixStream pipelines) or the Redis reference (raw RESP pipelines) with the same batches, the same
// connection count and the same number of requests in flight per connection. A `memory` process fills an in-process
// store and reports bytes per (block, owner).
import { BlockUpdateStream, MetaserverClient, PrefixQueryStream } from '@kvfabric/client';
import {
  CHAIN_BLOCKS,
  HASH_LEN,
  NAMESPACE,
  NODES,
  chainHashes,
  expectedPrefix,
  nodeId,
  nodeIndex,
  unit,
  unitCount,
  type Layout,
} from './data.js';
import { RespClient, type Reply } from '../peers/redis.js';

export type Target = 'kvfabric' | 'redis';
/** How kvfabric queries travel: one unary call each, or pipelined on one QueryPrefixStream per connection. */
export type QueryMode = 'unary' | 'pipelined';

export type ToWorker =
  | { kind: 'init'; target: Target; addr: string; connections: number; depth: number; worker: number; workers: number }
  | { kind: 'insert'; layout: Layout }
  | { kind: 'query'; layout: Layout; durationMs: number; mode: QueryMode; check: boolean }
  | { kind: 'memory'; layout: Layout; secondaries: boolean }
  | { kind: 'update'; perWorker: number; mode: QueryMode };

export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'tick'; n: number }
  | { kind: 'inserted'; pairs: number; seconds: number }
  | { kind: 'queried'; latenciesUs: Float64Array; mismatches: number; firstMismatch?: string }
  | { kind: 'updated'; updates: number; seconds: number }
  | { kind: 'memory'; entries: number; blocks: number; bytesPerEntryProcess: number; bytesPerEntryIndex: number }
  | { kind: 'error'; message: string };

/** One backend, as the load loops see it. */
interface Backend {
  /** kvfabric: on the update stream ('pipelined', the default) or as a unary call. */
  insert(node: number, hashes: Buffer, mode?: QueryMode): Promise<void>;
  remove(node: number, hashes: Buffer, mode: QueryMode): Promise<void>;
  /** Node index → prefix length for a 64-hash query. */
  prefix(hashes: Buffer, mode: QueryMode): Promise<Map<number, number>>;
  close(): void;
}

function send(msg: FromWorker): void {
  process.send!(msg);
}

async function kvfabricBackend(addr: string, connections: number): Promise<Backend> {
  // A local subchannel pool per client: each client is its own HTTP/2 connection.
  const clients = Array.from(
    { length: connections },
    () => new MetaserverClient(addr, { deadlineMs: 60_000, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
  );
  await Promise.all(clients.map((c) => c.waitForReady(10_000)));
  // Pipelined: one QueryPrefixStream per connection (its own channel, so its own HTTP/2 connection), the same
  // round robin, so each carries `depth` queries in flight like a Redis connection carries `depth` pipelines.
  const streams = Array.from(
    { length: connections },
    () => new PrefixQueryStream(addr, { deadlineMs: 60_000, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
  );
  // Inserts: one UpdateBlocksStream per connection, as a node's reporter sends its updates.
  const updates = Array.from(
    { length: connections },
    () => new BlockUpdateStream(addr, { deadlineMs: 60_000, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
  );
  let rr = 0;
  const next = () => clients[rr++ % clients.length]!;
  let rs = 0;
  const nextStream = () => streams[rs++ % streams.length]!;
  let ru = 0;
  const nextUpdates = () => updates[ru++ % updates.length]!;
  const list = (hashes: Buffer) => ({ packed: hashes, hashLen: HASH_LEN });
  return {
    async insert(node, hashes, mode = 'pipelined') {
      await (mode === 'pipelined' ? nextUpdates() : next()).insertBlocks(nodeId(node), NAMESPACE, list(hashes));
    },
    async remove(node, hashes, mode) {
      await (mode === 'pipelined' ? nextUpdates() : next()).removeBlocks(nodeId(node), NAMESPACE, list(hashes));
    },
    async prefix(hashes, mode) {
      const res =
        mode === 'pipelined'
          ? await nextStream().query(NAMESPACE, list(hashes))
          : await next().queryPrefix(NAMESPACE, list(hashes));
      return new Map(res.nodes.map((n) => [nodeIndex(n.nodeId), n.prefixLen]));
    },
    close: () => {
      clients.forEach((c) => c.close());
      streams.forEach((s) => s.close());
      updates.forEach((u) => u.close());
    },
  };
}

async function redisBackend(addr: string, connections: number): Promise<Backend> {
  const [host, port] = addr.split(':') as [string, string];
  const clients = await Promise.all(Array.from({ length: connections }, () => RespClient.connect(host, Number(port))));
  let rr = 0;
  const next = () => clients[rr++ % clients.length]!;
  /** One SADD or SREM per hash, pipelined. */
  const setCommand = async (command: 'SADD' | 'SREM', node: number, hashes: Buffer) => {
    const member = String(node);
    const cmds: [string, Buffer, string][] = [];
    for (let off = 0; off < hashes.length; off += HASH_LEN)
      cmds.push([command, hashes.subarray(off, off + HASH_LEN), member]);
    const replies = await next().pipeline(cmds);
    const bad = replies.find((r) => typeof r !== 'number');
    if (bad !== undefined) throw new Error(`${command}: ${String(bad)}`);
  };
  return {
    insert: (node, hashes) => setCommand('SADD', node, hashes),
    remove: (node, hashes) => setCommand('SREM', node, hashes),
    async prefix(hashes) {
      const cmds: [string, Buffer][] = [];
      for (let off = 0; off < hashes.length; off += HASH_LEN)
        cmds.push(['SMEMBERS', hashes.subarray(off, off + HASH_LEN)]);
      return prefixFromMembers(await next().pipeline(cmds));
    },
    close: () => clients.forEach((c) => c.close()),
  };
}

/** The metaserver's computation on Redis replies: for each owner of hash 0, how many leading hashes it holds. */
function prefixFromMembers(replies: Reply[]): Map<number, number> {
  const result = new Map<number, number>();
  const first = replies[0];
  if (!Array.isArray(first)) return result;
  let running: number[] = first.map(Number);
  for (const n of running) result.set(n, 1);
  for (let j = 1; j < replies.length && running.length > 0; j++) {
    const members = replies[j];
    const holders = Array.isArray(members) ? members.map(Number) : [];
    running = running.filter((n) => holders.includes(n));
    for (const n of running) result.set(n, j + 1);
  }
  return result;
}

/** Runs `total` jobs with `concurrency` in flight. */
async function pool(total: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < total) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
}

function sameAnswer(a: Map<number, number>, b: Map<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

let backend: Backend | undefined;
let init: Extract<ToWorker, { kind: 'init' }> | undefined;

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.kind) {
    case 'init': {
      init = msg;
      backend =
        msg.target === 'kvfabric'
          ? await kvfabricBackend(msg.addr, msg.connections)
          : await redisBackend(msg.addr, msg.connections);
      send({ kind: 'ready' });
      return;
    }
    case 'insert': {
      const { worker, workers, connections, depth } = init!;
      const mine: number[] = [];
      for (let i = worker; i < unitCount(msg.layout); i += workers) mine.push(i);
      let pairs = 0;
      const started = performance.now();
      await pool(mine.length, connections * depth, async (k) => {
        const u = unit(msg.layout, mine[k]!)!;
        await backend!.insert(u.node, u.hashes);
        pairs += u.hashes.length / HASH_LEN;
        send({ kind: 'tick', n: 1 });
      });
      send({ kind: 'inserted', pairs, seconds: (performance.now() - started) / 1000 });
      return;
    }
    case 'update': {
      // Index updates as a node's reporter sends them: a batch of 64 fresh hashes inserted, then removed, by one
      // of the nodes; connections x depth lanes, each its own node and hashes, each waiting for its answers.
      const { connections, depth, worker } = init!;
      const lanes = connections * depth;
      const perLane = Math.ceil(msg.perWorker / 2 / lanes);
      let updates = 0;
      const started = performance.now();
      await pool(lanes, lanes, async (lane) => {
        const node = (worker * lanes + lane) % NODES;
        const hashes = Buffer.alloc(CHAIN_BLOCKS * HASH_LEN);
        for (let i = 0; i < perLane; i++) {
          for (let j = 0; j < CHAIN_BLOCKS; j++) {
            // outside every layout's chains: byte 0 = 0xee, then worker, lane, batch and block
            const off = j * HASH_LEN;
            hashes[off] = 0xee;
            hashes.writeUInt16BE(worker * lanes + lane, off + 1);
            hashes.writeUInt32BE(i, off + 3);
            hashes[off + 7] = j;
          }
          await backend!.insert(node, hashes, msg.mode);
          await backend!.remove(node, hashes, msg.mode);
          updates += 2;
          if (i % 16 === 15) send({ kind: 'tick', n: 32 });
        }
      });
      send({ kind: 'updated', updates, seconds: (performance.now() - started) / 1000 });
      return;
    }
    case 'query': {
      const { connections, depth, worker } = init!;
      const chains = msg.layout.chains;
      const latencies: number[] = [];
      let mismatches = 0;
      let firstMismatch: string | undefined;
      let seed = (worker + 1) * 0x9e3779b1;
      const rand = () => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) / 2 ** 32;
      };
      // Query hashes are prepared outside the timed section: a pool of random chains reused round-robin, large
      // enough (4096 chains, 256K hashes per process) that queries do not run from a cache-resident corner of a
      // large index.
      const prepared = Array.from({ length: 4096 }, () => {
        const c = Math.floor(rand() * chains);
        return { c, hashes: chainHashes(c), expected: expectedPrefix(c, chains) };
      });
      let i = 0;
      const until = performance.now() + msg.durationMs;
      let lastTick = performance.now();
      const lane = async () => {
        while (performance.now() < until) {
          const q = prepared[i++ % prepared.length]!;
          const t0 = performance.now();
          const got = await backend!.prefix(q.hashes, msg.mode);
          latencies.push((performance.now() - t0) * 1000);
          if (msg.check && !sameAnswer(got, q.expected)) {
            mismatches++;
            firstMismatch ??= `chain ${q.c}: expected ${JSON.stringify([...q.expected])}, got ${JSON.stringify([...got])}`;
          }
          if (performance.now() - lastTick > 200) {
            lastTick = performance.now();
            send({ kind: 'tick', n: 0 });
          }
        }
      };
      await Promise.all(Array.from({ length: connections * depth }, lane));
      send({
        kind: 'queried',
        latenciesUs: Float64Array.from(latencies),
        mismatches,
        ...(firstMismatch ? { firstMismatch } : {}),
      });
      return;
    }
    case 'memory': {
      send({ kind: 'memory', ...(await measureStore(msg.layout, msg.secondaries)) });
      return;
    }
  }
}

function usedBytes(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('memory worker needs --expose-gc');
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** Fills a fresh in-process store with the layout and reports bytes per (block, owner). */
async function measureStore(layout: Layout, secondaries: boolean) {
  const { MetaStore } = await import('@kvfabric/metaserver/internal');
  const before = usedBytes();
  const store = new MetaStore({ nodeStaleMs: 3_600_000, ttlMs: 7_200_000 });
  for (let n = 0; n < 8; n++) store.heartbeat({ nodeId: nodeId(n), addr: `127.0.0.1:${20000 + n}`, transports: [1] });
  const units = unitCount(layout);
  for (let i = 0; i < units; i++) {
    const u = unit(layout, i, { secondaries });
    if (u) store.insert(nodeId(u.node), NAMESPACE, { packed: u.hashes, hashLen: HASH_LEN });
    if (i % 256 === 255) send({ kind: 'tick', n: 256 });
  }
  const after = usedBytes();
  const entries = store.owners;
  const expected = secondaries ? layout.entries : layout.blocks;
  if (entries !== expected || store.blocks !== layout.blocks) {
    throw new Error(`store holds ${entries} owners / ${store.blocks} blocks, expected ${expected} / ${layout.blocks}`);
  }
  return {
    entries,
    blocks: store.blocks,
    bytesPerEntryProcess: (after - before) / entries,
    bytesPerEntryIndex: store.memoryBytes() / entries,
  };
}

// The parent closed the channel (done, or gone): nothing more will be asked.
process.on('disconnect', () => {
  backend?.close();
  process.exit(0);
});
process.on('message', (msg: ToWorker) => {
  handle(msg).catch((err: unknown) => {
    send({ kind: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});
