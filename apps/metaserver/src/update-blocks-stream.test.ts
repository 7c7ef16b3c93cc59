// UpdateBlocksStream on the wire (the generated gRPC client, not the SDK): each item is answered under its id with
// what the unary InsertBlocks / RemoveBlocks answer, and changes the index exactly as they do; a bad item gets a
// per-item error naming the field, changes nothing and leaves the stream serving; OK after the client half-closes.
// The stream shares its guard and index binding with QueryPrefixStream (index-stream.ts; tested there), checked here
// once. The SDK's round trip against a spawned metaserver is in packages/client/src/block-update-stream.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { BlockTier, type UpdateBlocksStreamRequest, type UpdateBlocksStreamResponse } from '@kvfabric/proto';
import { ERROR_CODE_KEY } from '@kvfabric/common/rpc';
import { NS, collect, harness, hashList, metricValue, range } from './testing/stream-harness.js';

const insert = (
  id: number,
  nodeId: string,
  ids: number[],
  tier = BlockTier.BLOCK_TIER_DRAM,
): UpdateBlocksStreamRequest => ({
  id,
  update: { $case: 'insert', value: { nodeId, namespace: NS, hashes: hashList(ids), tier } },
});
const remove = (id: number, nodeId: string, ids: number[]): UpdateBlocksStreamRequest => ({
  id,
  update: { $case: 'remove', value: { nodeId, namespace: NS, hashes: hashList(ids) } },
});

/** Who owns each of `ids`, as the index says. */
function owners(h: Awaited<ReturnType<typeof harness>>, ids: number[]): string[][] {
  return h.store.queryOwners(NS, hashList(ids)).map((list) => list.map((o) => o.nodeId));
}

test('items answer as the unary calls do and change the index as they do; bad items are refused alone', async () => {
  await using h = await harness();
  const stream = h.client.updateBlocksStream();
  const c = collect<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse>(stream);
  stream.write(insert(1, 'a', range(20, 25)));
  stream.write(insert(2, 'b', range(0, 3))); // b holds 0..3 already
  stream.write({ id: 3, update: undefined });
  stream.write(insert(4, '', [30]));
  stream.write(insert(5, 'a', [31], 9 as BlockTier));
  stream.write(insert(6, 'nobody', [32]));
  stream.write({ id: 7, update: { $case: 'remove', value: { nodeId: 'a', namespace: NS, hashes: undefined } } });
  stream.write(remove(8, 'a', [0, 1, 40]));
  stream.write(insert(4_000_000_000, 'b', [20]));
  stream.end();
  assert.equal((await c.status).code, grpc.status.OK);
  const byId = new Map(c.answers.map((a) => [a.id, a.answer]));
  assert.equal(c.answers.length, 9);
  assert.deepEqual(byId.get(1), {
    $case: 'inserted',
    value: { epoch: 11n, inserted: 5n, reclaimable: { packed: Buffer.alloc(0), hashLen: 32 } },
  });
  assert.deepEqual(byId.get(2), {
    $case: 'inserted',
    value: { epoch: 11n, inserted: 0n, reclaimable: { packed: Buffer.alloc(0), hashLen: 32 } },
  });
  const refused = (id: number) => {
    const a = byId.get(id);
    assert.equal(a?.$case, 'error', `item ${id}: ${JSON.stringify(a)}`);
    return a.value;
  };
  assert.deepEqual(refused(3), { code: 'INVALID_ARGUMENT', message: 'update: expected insert or remove, got "unset"' });
  assert.equal(refused(4).code, 'INVALID_ARGUMENT');
  assert.match(refused(4).message, /^node_id: /);
  assert.equal(refused(5).code, 'INVALID_ARGUMENT');
  assert.match(refused(5).message, /^tier: expected BLOCK_TIER_UNSPECIFIED, _DRAM, _SSD or _BOTH/);
  assert.equal(refused(6).code, 'SESSION_UNKNOWN');
  assert.match(refused(6).message, /^node_id: no session for "nobody"/);
  assert.equal(refused(7).code, 'INVALID_ARGUMENT');
  assert.match(refused(7).message, /^hashes/);
  assert.deepEqual(byId.get(8), { $case: 'removed', value: { epoch: 11n, removed: 2n } }, 'served after the bad items');
  assert.equal(byId.get(4_000_000_000)?.$case, 'inserted');

  // the index: exactly the served items' changes (none of the refused ones')
  assert.deepEqual(owners(h, [0, 1, 2, 20, 21, 24, 30, 31, 32]), [
    ['b'],
    ['b'],
    ['a', 'b'],
    ['a', 'b'],
    ['a'],
    ['a'],
    [],
    [],
    [],
  ]);

  // the unary calls answer the same
  const unary = await new Promise<unknown>((resolve, reject) =>
    h.client.removeBlocks({ nodeId: 'a', namespace: NS, hashes: hashList([2, 41]) }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
  assert.deepEqual(unary, { epoch: 11n, removed: 1n });

  // metrics per kind of item, as for the unary calls
  const value = (prefix: string) => metricValue(h.metrics, prefix);
  assert.equal(await value('kvfabric_metaserver_rpc_total{method="updateBlocksStream.insert",status="OK"'), 3);
  assert.equal(await value('kvfabric_metaserver_rpc_total{method="updateBlocksStream.remove",status="OK"'), 1);
  assert.equal(
    await value('kvfabric_metaserver_rpc_errors_total{method="updateBlocksStream.insert",code="INVALID_ARGUMENT"'),
    2,
  );
  assert.equal(
    await value('kvfabric_metaserver_rpc_errors_total{method="updateBlocksStream",code="INVALID_ARGUMENT"'),
    1,
  );
});

test('a follower refuses the stream, and a replica that stops leading ends it (NOT_LEADER)', async () => {
  await using h = await harness();
  const stream = h.client.updateBlocksStream();
  const c = collect<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse>(stream);
  stream.write(insert(1, 'a', [50]));
  await c.waitFor(1);
  h.follower = true;
  stream.write(insert(2, 'a', [51]));
  const err = await c.errored;
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.equal(err?.metadata.get(ERROR_CODE_KEY)[0], 'NOT_LEADER');
  assert.deepEqual(
    c.answers.map((a) => a.id),
    [1],
  );
  assert.deepEqual(owners(h, [50, 51]), [['a'], []], 'nothing applied after the refusal');

  const refused = h.client.updateBlocksStream();
  const c2 = collect<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse>(refused);
  refused.write(insert(3, 'a', [52]));
  assert.equal((await c2.errored)?.metadata.get(ERROR_CODE_KEY)[0], 'NOT_LEADER');
  assert.deepEqual(owners(h, [52]), [[]]);
});
