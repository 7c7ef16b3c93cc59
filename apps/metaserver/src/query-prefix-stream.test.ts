// QueryPrefixStream on the wire (the generated gRPC client, not the SDK): ids echoed with exact answers, per-item
// errors that leave the stream serving, OK status after the client half-closes; the RPC guard refuses at the start
// and at any message (a follower, with the leader trailer), and a stream whose index was replaced ends.
// In-process server over loopback so the guard and the store can be switched (testing/stream-harness.ts); the
// spawned-process round trip is in packages/client/src/prefix-query-stream.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { QueryPrefixStreamRequest } from '@kvfabric/proto';
import { ERROR_CODE_KEY, LEADER_ADDR_KEY } from '@kvfabric/common/rpc';
import { MetaStore } from './store/index.js';
import { NS, collect, harness, hashList, metricValue, range } from './testing/stream-harness.js';

function req(id: number, ids: number[], extra: Partial<QueryPrefixStreamRequest> = {}): QueryPrefixStreamRequest {
  return { id, namespace: NS, hashes: hashList(ids), excludeNodeId: '', ...extra };
}

test('answers carry the request id and QueryPrefix exactly; bad items get per-item errors; OK after half-close', async () => {
  await using h = await harness();
  const stream = h.client.queryPrefixStream();
  const c = collect(stream);
  stream.write(req(7, range(0, 10)));
  stream.write(req(8, range(0, 10), { excludeNodeId: 'a' }));
  stream.write(req(9, range(0, 10), { namespace: 'no such/ns' }));
  stream.write(req(10, range(0, 10), { hashes: { packed: Buffer.alloc(33), hashLen: 32 } }));
  stream.write(req(11, [2, 3]));
  stream.write(req(4_000_000_000, range(0, 3)));
  stream.end();
  const status = await c.status;
  assert.equal(status.code, grpc.status.OK);
  const byId = new Map(c.answers.map((a) => [a.id, a]));
  assert.equal(c.answers.length, 6);
  const a = (prefixLen: number) => ({
    nodeId: 'a',
    addr: 'h:1',
    prefixLen,
    transports: [1],
    poolUsedBytes: 10n,
    poolCapacityBytes: 100n,
    ssdBlocks: 0,
  });
  const b = (prefixLen: number) => ({
    nodeId: 'b',
    addr: 'h:2',
    prefixLen,
    transports: [2],
    poolUsedBytes: 20n,
    poolCapacityBytes: 100n,
    ssdBlocks: prefixLen, // b holds its blocks on SSD
  });
  assert.deepEqual(byId.get(7), { id: 7, epoch: 11n, nodes: [a(10), b(4)], error: undefined });
  assert.deepEqual(byId.get(8), { id: 8, epoch: 11n, nodes: [b(4)], error: undefined });
  assert.deepEqual(byId.get(9), {
    id: 9,
    epoch: 0n,
    nodes: [],
    error: {
      code: 'INVALID_ARGUMENT',
      message: 'namespace: expected only characters [A-Za-z0-9._:/-], got "no such/ns"',
    },
  });
  assert.deepEqual(
    { ...byId.get(10), error: byId.get(10)!.error?.code },
    { id: 10, epoch: 0n, nodes: [], error: 'INVALID_ARGUMENT' },
  );
  assert.match(byId.get(10)!.error!.message, /^hashes\.packed: /);
  assert.deepEqual(
    byId.get(11),
    { id: 11, epoch: 11n, nodes: [a(2), b(2)], error: undefined },
    'served after the bad items',
  );
  assert.deepEqual(
    byId.get(4_000_000_000)!.nodes.map((n) => n.prefixLen),
    [3, 3],
  );
  // the unary call agrees
  const unary = await new Promise<{ nodes: unknown[] }>((resolve, reject) =>
    h.client.queryPrefix({ namespace: NS, hashes: hashList(range(0, 10)), excludeNodeId: '' }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
  assert.deepEqual(unary.nodes, byId.get(7)!.nodes);

  const value = (prefix: string) => metricValue(h.metrics, prefix);
  assert.equal(await value('kvfabric_metaserver_rpc_total{method="queryPrefixStream",status="OK"'), 4);
  assert.equal(await value('kvfabric_metaserver_rpc_total{method="queryPrefixStream",status="INVALID_ARGUMENT"'), 2);
  assert.equal(
    await value('kvfabric_metaserver_rpc_errors_total{method="queryPrefixStream",code="INVALID_ARGUMENT"'),
    2,
  );
  assert.equal(await value('kvfabric_metaserver_rpc_duration_seconds_count{method="queryPrefixStream"'), 6);
});

test('a follower refuses the stream at the start with NOT_LEADER and the leader trailer', async () => {
  await using h = await harness();
  h.follower = true;
  const stream = h.client.queryPrefixStream();
  const c = collect(stream);
  stream.write(req(1, [0]));
  const err = await c.errored;
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.equal(err?.metadata.get(ERROR_CODE_KEY)[0], 'NOT_LEADER');
  assert.equal(err?.metadata.get(LEADER_ADDR_KEY)[0], '127.0.0.1:1');
  assert.equal(c.answers.length, 0);
  const text = await h.metrics.text();
  assert.match(text, /kvfabric_metaserver_rpc_errors_total\{method="queryPrefixStream",code="NOT_LEADER"[^}]*\} 1\n/);
});

test('the guard runs at every message: a replica that stops leading ends its open streams', async () => {
  await using h = await harness();
  const stream = h.client.queryPrefixStream();
  const c = collect(stream);
  stream.write(req(1, [0, 1]));
  await c.waitFor(1);
  assert.deepEqual(
    c.answers[0]!.nodes.map((n) => n.prefixLen),
    [2, 2],
  );
  h.follower = true;
  stream.write(req(2, [0, 1]));
  const err = await c.errored;
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.equal(err?.metadata.get(ERROR_CODE_KEY)[0], 'NOT_LEADER');
  assert.equal(err?.metadata.get(LEADER_ADDR_KEY)[0], '127.0.0.1:1');
  assert.deepEqual(
    c.answers.map((a) => a.id),
    [1],
    'nothing answered after the refusal',
  );
});

test('a stream opened on an index that was replaced (re-elected under a new epoch) ends; new calls use the new index', async () => {
  await using h = await harness();
  const stream = h.client.queryPrefixStream();
  const c = collect(stream);
  stream.write(req(1, [0]));
  await c.waitFor(1);
  // re-elected: a fresh index under epoch 12 where only b holds hashes 0..1
  h.store = new MetaStore({ nodeStaleMs: 60_000, ttlMs: 3_600_000, epoch: 12n });
  h.store.heartbeat({
    nodeId: 'b',
    addr: 'h:2',
    transports: [2],
    stats: { poolCapacityBytes: 100n, poolUsedBytes: 20n, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
  });
  h.store.insert('b', NS, hashList(range(0, 2)));
  h.leaderEpoch = 12n;
  stream.write(req(2, [0]));
  const err = await c.errored;
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.equal(err?.metadata.get(ERROR_CODE_KEY)[0], 'METASERVER_UNAVAILABLE');
  assert.match(err!.details, /epoch 11 was replaced \(now 12\)/);
  assert.equal(c.answers.length, 1);

  const reopened = h.client.queryPrefixStream();
  const c2 = collect(reopened);
  reopened.write(req(3, range(0, 10)));
  reopened.end();
  assert.equal((await c2.status).code, grpc.status.OK);
  assert.deepEqual(
    c2.answers.map((a) => [a.id, a.epoch, a.nodes.map((n) => [n.nodeId, n.prefixLen])]),
    [[3, 12n, [['b', 2]]]],
  );
  const unary = await new Promise<{ epoch: bigint; nodes: { nodeId: string }[] }>((resolve, reject) =>
    h.client.queryPrefix({ namespace: NS, hashes: hashList(range(0, 10)), excludeNodeId: '' }, (e, res) =>
      e ? reject(e) : resolve(res),
    ),
  );
  assert.deepEqual([unary.epoch, unary.nodes.map((n) => n.nodeId)], [12n, ['b']]);
});
