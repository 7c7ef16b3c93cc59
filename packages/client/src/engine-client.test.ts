// KvEngine's data plane against in-process fake nodes: calls multiplexed on one DataPlane stream (the instance named
// on the stream's first item only), unary fallback when the node has no DataPlane (in-flight calls retried, later
// calls unary), a broken stream rejecting its in-flight calls with a typed error and the next call reopening.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  EngineService,
  QueryState,
  type DataPlaneRequest,
  type DataPlaneResponse,
  type QueryRequest,
  type QueryResponse,
  type SaveRequest,
  type SaveResponse,
} from '@kvfabric/proto';
import { KvError, unpackU32 } from '@kvfabric/common';
import { bindServer } from '@kvfabric/common/rpc';
import { KvEngine, QUERY_WAIT_ROUND_MS } from './engine-client.js';
import { KvRegion, kvLayout } from './kv-region.js';
import { RegionHandoverServer } from '@kvfabric/native';

const GEOMETRY = kvLayout({ numLayers: 1, kvSplit: false, bytesPerLayerBlock: 64, numBlocks: 8 });
const hashes = (n: number, tag = 1) => Array.from({ length: n }, (_, i) => Buffer.alloc(8, tag * 16 + i));

/** What the fake saw. */
interface Seen {
  unary: string[];
  streams: DataPlaneRequest[][];
  /** The instance key each call and stream presented (metadata kvfabric-instance-key), in order. */
  keys: string[];
}

const KEY = 'k'.repeat(32);
const keyOf = (call: { metadata: grpc.Metadata }) => String(call.metadata.get('kvfabric-instance-key')[0] ?? '');

const saved = (req: SaveRequest): SaveResponse => {
  const n = unpackU32(req.blockIds).length;
  return { outcomes: Buffer.alloc(n, 0), stored: n, sealed: n };
};

/** A fake node: unary Engine methods, plus `dataPlane` when given. */
async function fakeNode(
  dataPlane?: (call: grpc.ServerDuplexStream<DataPlaneRequest, DataPlaneResponse>, seen: Seen) => void,
) {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-fake-node-'));
  const socket = join(dir, 'engine.sock');
  const seen: Seen = { unary: [], streams: [], keys: [] };
  const unary =
    <Req, Res>(name: string, answer: (req: Req) => Res): grpc.handleUnaryCall<Req, Res> =>
    (call, cb) => {
      seen.unary.push(name);
      seen.keys.push(keyOf(call));
      cb(null, answer(call.request));
    };
  const impl: grpc.UntypedServiceImplementation = {
    registerInstance: unary('registerInstance', () => ({
      nodeId: 'fake',
      pageBytes: BigInt(GEOMETRY.blockBytes),
      shards: 1,
      instanceKey: KEY,
    })),
    unregisterInstance: unary('unregisterInstance', () => ({})),
    save: unary('save', saved),
    query: unary('query', () => ({
      state: QueryState.QUERY_STATE_READY,
      hits: 2,
      leaseId: 'L',
      leaseExpiresAtMs: 5n,
      breakdown: { local: 2, ssd: 0, remote: 0 },
    })),
    load: unary('load', (req: { blockIds: Buffer }) => ({ loaded: unpackU32(req.blockIds).length, bytes: 64n })),
    release: unary('release', () => ({})),
    status: unary('status', () => ({})),
    session: ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.on('data', () => call.write({ nodeId: 'fake', serverTimeMs: 0n }));
      call.on('end', () => call.end());
      call.on('error', () => {});
    }) as grpc.UntypedHandleCall,
  };
  if (dataPlane) {
    impl.dataPlane = ((call: grpc.ServerDuplexStream<DataPlaneRequest, DataPlaneResponse>) => {
      const items: DataPlaneRequest[] = [];
      seen.streams.push(items);
      seen.keys.push(keyOf(call));
      call.on('data', (req: DataPlaneRequest) => items.push(req));
      call.on('error', () => {});
      dataPlane(call, seen);
    }) as grpc.UntypedHandleCall;
  }
  const server = new grpc.Server();
  server.addService(EngineService, impl);
  await bindServer(server, `unix:${socket}`);
  // The fake's region handover: takes any descriptor and answers a token.
  const handover = RegionHandoverServer.listen(`${socket}.regions`, (req) => {
    closeSync(req.fd);
    return { token: 'a'.repeat(32) };
  });
  const region = KvRegion.create({ layout: GEOMETRY });
  const engine = await KvEngine.register({ target: socket, namespace: 'fake/ns', instanceId: 'inst-1', region });
  return {
    engine,
    seen,
    async [Symbol.asyncDispose]() {
      await engine.close();
      region.close();
      handover.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A DataPlane that answers every item like the unary fake does. */
function answering(call: grpc.ServerDuplexStream<DataPlaneRequest, DataPlaneResponse>): void {
  call.on('data', (req: DataPlaneRequest) => {
    const op = req.op!;
    if (op.$case === 'save') call.write({ id: req.id, result: { $case: 'save', value: saved(op.value) } });
    else if (op.$case === 'load')
      call.write({
        id: req.id,
        result: { $case: 'load', value: { loaded: unpackU32(op.value.blockIds).length, bytes: 64n } },
      });
    else if (op.$case === 'release')
      call.write({
        id: req.id,
        result: { $case: 'error', value: { code: 'LEASE_UNKNOWN', message: 'lease_id: "L" unknown' } },
      });
    else
      call.write({
        id: req.id,
        result: {
          $case: 'query',
          value: {
            state: QueryState.QUERY_STATE_READY,
            hits: 2,
            leaseId: 'L',
            leaseExpiresAtMs: 5n,
            breakdown: { local: 2, ssd: 0, remote: 0 },
          },
        },
      });
  });
  call.on('end', () => call.end());
}

test('KvEngine: save, query, load, release multiplexed on one DataPlane stream; the instance named once', async () => {
  await using node = await fakeNode(answering);
  const kv = node.engine;
  const [s1, s2, q, l] = await Promise.all([
    kv.save([0, 1], hashes(2)),
    kv.save([2], hashes(1, 2)),
    kv.query(hashes(2), { localOnly: true }),
    kv.load('L', [5, 6]),
  ]);
  assert.deepEqual([s1.stored, s2.stored], [2, 1]);
  assert.ok(s1.outcomes instanceof Uint8Array);
  assert.deepEqual({ hits: q.hits, leaseId: q.leaseId }, { hits: 2, leaseId: 'L' });
  assert.deepEqual(l, { loaded: 2, bytes: 64 });
  await assert.rejects(
    kv.release('L'),
    (err: unknown) => err instanceof KvError && err.code === 'LEASE_UNKNOWN' && /lease_id/.test(err.message),
  );
  assert.equal(node.seen.streams.length, 1, 'one stream for every call');
  const items = node.seen.streams[0]!;
  assert.deepEqual(
    items.map((r) => r.op?.$case),
    ['save', 'save', 'query', 'load', 'release'],
  );
  assert.deepEqual(
    items.map((r) => r.op?.value.instanceId),
    ['inst-1', '', '', '', ''],
    'named on the first item only',
  );
  assert.equal(new Set(items.map((r) => r.id)).size, 5, 'distinct ids');
  assert.deepEqual(node.seen.keys, ['', KEY], 'registration has no key yet; the stream presents the one answered');
  assert.deepEqual(
    node.seen.unary.filter((m) => m !== 'registerInstance'),
    [],
    'no unary data calls',
  );
});

test('KvEngine: a node without DataPlane (UNIMPLEMENTED) gets in-flight and later calls as unary calls', async () => {
  await using node = await fakeNode();
  const kv = node.engine;
  const [a, b] = await Promise.all([kv.save([0, 1, 2], hashes(3)), kv.load('L', [4])]);
  assert.equal(a.stored, 3);
  assert.deepEqual(b, { loaded: 1, bytes: 64 });
  assert.equal((await kv.query(hashes(2))).hits, 2);
  await kv.release('L');
  assert.deepEqual(node.seen.unary, ['registerInstance', 'save', 'load', 'query', 'release']);
});

test('KvEngine: a broken stream rejects its in-flight calls with a typed error; the next call opens a new stream', async () => {
  let streams = 0;
  await using node = await fakeNode((call, seen) => {
    if (++streams > 1) return answering(call);
    // the first stream fails once two items arrived, answering neither
    call.on('data', () => {
      if (seen.streams[0]!.length === 2) call.emit('error', { code: grpc.status.INTERNAL, details: 'node fell over' });
    });
  });
  const kv = node.engine;
  const failed = await Promise.allSettled([kv.save([0], hashes(1)), kv.load('L', [1])]);
  for (const f of failed) {
    assert.equal(f.status, 'rejected');
    const err = (f as PromiseRejectedResult).reason as unknown;
    assert.ok(err instanceof KvError, String(err));
    assert.equal(err.code, 'TRANSPORT_UNAVAILABLE');
    assert.match(err.message, /data plane stream to .* failed: node fell over/);
  }
  assert.equal((await kv.save([3, 4], hashes(2))).stored, 2);
  assert.equal((await kv.load('L', [5])).loaded, 1);
  assert.equal(node.seen.streams.length, 2);
  assert.deepEqual(
    node.seen.streams[1]!.map((r) => r.op?.value.instanceId),
    ['inst-1', ''],
    'the new stream is named on its first item',
  );
});

/** A DataPlane whose query answers come from `query` (the other ops as `answering`). */
function queries(answer: (q: QueryRequest, n: number) => Promise<QueryResponse>) {
  return (call: grpc.ServerDuplexStream<DataPlaneRequest, DataPlaneResponse>): void => {
    let n = 0;
    call.on('data', (req: DataPlaneRequest) => {
      if (req.op?.$case !== 'query') return;
      void answer(req.op.value, n++).then((value) => call.write({ id: req.id, result: { $case: 'query', value } }));
    });
    call.on('end', () => call.end());
  };
}
const LOADING: QueryResponse = {
  state: QueryState.QUERY_STATE_LOADING,
  hits: 0,
  leaseId: '',
  leaseExpiresAtMs: 0n,
  breakdown: { local: 0, ssd: 0, remote: 0 },
};
const READY: QueryResponse = {
  state: QueryState.QUERY_STATE_READY,
  hits: 2,
  leaseId: 'L',
  leaseExpiresAtMs: 5n,
  breakdown: { local: 0, ssd: 0, remote: 2 },
};
const queryItems = (seen: Seen) => seen.streams.flat().flatMap((r) => (r.op?.$case === 'query' ? [r.op.value] : []));

test('KvEngine.query: sends wait_ms (capped per round); a node that holds the call until READY is asked once', async () => {
  await using node = await fakeNode(
    queries(async () => {
      await sleep(30); // the fetch, awaited by the node
      return READY;
    }),
  );
  const q = await node.engine.query(hashes(2));
  assert.equal(q.hits, 2);
  const items = queryItems(node.seen);
  assert.equal(items.length, 1, 'one round trip');
  assert.equal(items[0]!.waitMs, QUERY_WAIT_ROUND_MS, 'default timeout 10 s: one round of the cap');
  assert.equal(items[0]!.localOnly, false);
});

test('KvEngine.query: a node that ignores wait_ms (LOADING at once) is polled every pollMs, same request id', async () => {
  await using node = await fakeNode(queries(async (_q, n) => (n < 3 ? LOADING : READY)));
  const t0 = performance.now();
  const q = await node.engine.query(hashes(2), { pollMs: 20 });
  const took = performance.now() - t0;
  assert.equal(q.leaseId, 'L');
  const items = queryItems(node.seen);
  assert.equal(items.length, 4);
  assert.equal(new Set(items.map((i) => i.requestId)).size, 1);
  assert.ok(took >= 20 + 40 + 50 - 5, `slept pollMs between LOADING answers (took ${took} ms)`);
});

test('KvEngine.query: a node that waited the whole wait_ms is asked again at once; past timeoutMs the local answer', async () => {
  await using node = await fakeNode(
    queries(async (q) => {
      if (q.localOnly) return { ...READY, hits: 0, leaseId: '' };
      await sleep(q.waitMs); // the fetch outlives the wait
      return LOADING;
    }),
  );
  const t0 = performance.now();
  const q = await node.engine.query(hashes(2), { timeoutMs: 60, pollMs: 10 * 60_000 });
  const took = performance.now() - t0;
  assert.equal(q.hits, 0);
  assert.ok(took < 60_000, `no pollMs sleep (10 min) after a node-side wait (took ${took} ms)`);
  const items = queryItems(node.seen);
  assert.ok(items[0]!.waitMs > 0 && items[0]!.waitMs <= 60, `first wait_ms ${items[0]!.waitMs}: the remaining timeout`);
  const last = items.at(-1)!;
  assert.deepEqual([last.localOnly, last.waitMs], [true, 0]);
});
