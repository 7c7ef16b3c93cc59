// An in-process Metaserver service over loopback for the tests of its pipelined streams (the generated gRPC client,
// not the SDK): an index with nodes a (h:1) and b (h:2, on SSD) holding hashes 0..9 and 0..3 of NS, a guard that can
// refuse as a follower would, and an index that can be replaced as an HA re-election replaces it.
import * as grpc from '@grpc/grpc-js';
import { MetaserverClient, MetaserverService, type LeaderInfo } from '@kvfabric/proto';
import { KvError, TIER_SSD } from '@kvfabric/common';
import { CHANNEL_OPTIONS, LEADER_ADDR_KEY, bindServer, rpcInstruments, type RpcContext } from '@kvfabric/common/rpc';
import { Metrics, silentLogger } from '@kvfabric/common/observability';
import { metaserverServiceImpl } from '../metaserver-service.js';
import { MetaStore } from '../store/index.js';

export const NS = 'test/ns';

export function hashList(ids: number[]) {
  const packed = Buffer.alloc(ids.length * 32);
  ids.forEach((id, i) => packed.writeUInt32BE(id + 1, i * 32));
  return { packed, hashLen: 32 };
}

export const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

export interface Harness extends AsyncDisposable {
  /** The index serving; replace it as an HA re-election does. */
  store: MetaStore;
  client: InstanceType<typeof MetaserverClient>;
  metrics: Metrics;
  /** Set to refuse every RPC as a follower would. */
  follower: boolean;
  /** The epoch the app would report as leading (HA: changes on re-election). */
  leaderEpoch: bigint;
}

export async function harness(): Promise<Harness> {
  const store = new MetaStore({ nodeStaleMs: 60_000, ttlMs: 3_600_000, epoch: 11n });
  store.heartbeat({
    nodeId: 'a',
    addr: 'h:1',
    transports: [1],
    stats: { poolCapacityBytes: 100n, poolUsedBytes: 10n, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
  });
  store.heartbeat({
    nodeId: 'b',
    addr: 'h:2',
    transports: [2],
    stats: { poolCapacityBytes: 100n, poolUsedBytes: 20n, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
  });
  store.insert('a', NS, hashList(range(0, 10)));
  store.insert('b', NS, hashList(range(0, 4)), TIER_SSD);
  const metrics = new Metrics('test');
  const h = {
    store,
    metrics,
    follower: false,
    leaderEpoch: 11n,
  } as Harness;
  const ctx: RpcContext = {
    logger: silentLogger(),
    instruments: rpcInstruments(metrics, 'metaserver'),
    guard: () => {
      if (h.follower) throw new KvError('NOT_LEADER', 'not the leader: test follower');
    },
    errorMetadata: (err) => {
      if (err.code !== 'NOT_LEADER') return undefined;
      const md = new grpc.Metadata();
      md.set(LEADER_ADDR_KEY, '127.0.0.1:1');
      return md;
    },
  };
  const leader = (): LeaderInfo => ({ addr: '', epoch: h.leaderEpoch, sinceMs: 0n, ha: false, replicaId: '' });
  const server = new grpc.Server();
  server.addService(
    MetaserverService,
    metaserverServiceImpl({ store: () => h.store, logger: silentLogger(), leader, identify: () => undefined }, ctx),
  );
  const port = await bindServer(server, '127.0.0.1:0');
  h.client = new MetaserverClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  h[Symbol.asyncDispose] = async () => {
    h.client.close();
    server.forceShutdown();
    await metrics.shutdown();
  };
  return h;
}

/** Collects a stream's answers and its final status. */
export function collect<Req, Res>(stream: grpc.ClientDuplexStream<Req, Res>) {
  const answers: Res[] = [];
  stream.on('data', (r: Res) => answers.push(r));
  const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  const errored = new Promise<grpc.ServiceError | undefined>((resolve) => {
    stream.on('error', (e: grpc.ServiceError) => resolve(e));
    stream.on('end', () => resolve(undefined));
  });
  const waitFor = async (n: number) => {
    while (answers.length < n) await new Promise((r) => setTimeout(r, 2));
  };
  return { answers, status, errored, waitFor };
}

/** A metric's value in the text exposition: the first line starting with `prefix`. */
export async function metricValue(metrics: Metrics, prefix: string): Promise<number> {
  const text = await metrics.text();
  return Number(
    text
      .split('\n')
      .find((l) => l.startsWith(prefix))
      ?.split(' ')
      .pop(),
  );
}
