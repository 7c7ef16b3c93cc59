// BlockUpdateStream against a real kvfabric-metaserver: many inserts and removes in flight on one stream, answered
// as the unary calls answer and leaving the index as they would; per-item errors (KvError with the server's code)
// that leave the stream serving; reconnect after a restart (new epoch); against an in-process fake, a metaserver
// without the stream (unary calls until a new epoch). How a MetaserverStream breaks, times out, follows a
// follower's trailer and an etcd:// leader is tested through PrefixQueryStream (prefix-query-stream.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { MetaserverService, type UpdateBlocksStreamRequest, type UpdateBlocksStreamResponse } from '@kvfabric/proto';
import { KvError, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { bindServer } from '@kvfabric/common/rpc';
import { rejection, startMetaserver } from '@kvfabric/testkit';
import { BlockUpdateStream } from './block-update-stream.js';
import { MetaserverClient } from './metaserver-client.js';

const NS = 'test/updates';

/** 32-byte hashes: byte 0 = 2, bytes 1..4 = id. */
function hashes(ids: number[]): Buffer[] {
  return ids.map((id) => {
    const h = Buffer.alloc(32);
    h[0] = 2;
    h.writeUInt32BE(id, 1);
    return h;
  });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test('200 inserts and removes in flight on one stream leave the index as unary calls would; bad items fail alone', async () => {
  await using ms = await startMetaserver({ logLevel: 'warn' });
  const admin = new MetaserverClient(ms.addr);
  const updates = new BlockUpdateStream(ms.addr);
  try {
    for (const [nodeId, port] of [
      ['a', 7001],
      ['b', 7002],
    ] as const)
      await admin.heartbeat({ nodeId, addr: `127.0.0.1:${port}`, transports: [1] });
    // a: 100 batches of 10 hashes; b: the even batches, on SSD; then a removes the first half of every batch
    const batch = (i: number) => hashes(range(i * 10, i * 10 + 10));
    const inserted = await Promise.all([
      ...range(0, 100).map((i) => updates.insertBlocks('a', NS, batch(i))),
      ...range(0, 50).map((i) => updates.insertBlocks('b', NS, batch(2 * i), { tier: TIER_SSD })),
    ]);
    assert.ok(
      inserted.every((r) => r.inserted === 10n && r.reclaimable.length === 0),
      JSON.stringify(inserted.map((r) => r.inserted.toString())),
    );
    const removed = await Promise.all(range(0, 50).map((i) => updates.removeBlocks('a', NS, batch(i).slice(0, 5))));
    assert.ok(removed.every((r) => r.removed === 5n));

    const { owners } = await admin.queryOwners(NS, hashes(range(0, 1000)));
    for (let h = 0; h < 1000; h++) {
      const batchNo = Math.floor(h / 10);
      const expected = [
        ...(batchNo >= 50 || h % 10 >= 5 ? [{ nodeId: 'a', tier: TIER_DRAM }] : []),
        ...(batchNo % 2 === 0 ? [{ nodeId: 'b', tier: TIER_SSD }] : []),
      ];
      const got = owners[h]!.map((o) => ({ nodeId: o.nodeId, tier: o.tier })).sort((x, y) =>
        x.nodeId.localeCompare(y.nodeId),
      );
      assert.deepEqual(got, expected, `hash ${h}`);
    }
    assert.equal(updates.inFlight, 0);

    // bad items: refused alone, with the server's code and a message naming the field
    const [unknown, badNs, served] = await Promise.allSettled([
      updates.insertBlocks('nobody', NS, hashes([5000])),
      updates.removeBlocks('a', 'bad ns', hashes([0])),
      updates.insertBlocks('a', NS, hashes([5001])),
    ]);
    assert.equal(unknown.status, 'rejected');
    assert.equal((unknown.reason as KvError).code, 'SESSION_UNKNOWN');
    assert.match((unknown.reason as KvError).message, /^node_id: no session/);
    assert.equal(badNs.status, 'rejected');
    assert.equal((badNs.reason as KvError).code, 'INVALID_ARGUMENT');
    assert.match((badNs.reason as KvError).message, /^namespace: /);
    assert.equal(served.status, 'fulfilled');
    assert.equal(served.value.inserted, 1n);
  } finally {
    updates.close();
    admin.close();
  }
});

test('reconnects after a metaserver restart and reports the new epoch; a closed stream refuses', async () => {
  await using ms = await startMetaserver({ logLevel: 'warn' });
  const admin = new MetaserverClient(ms.addr);
  const epochs: [bigint, bigint | undefined][] = [];
  const updates = new BlockUpdateStream(ms.addr, { onEpoch: (e, prev) => epochs.push([e, prev]) });
  try {
    await admin.heartbeat({ nodeId: 'a', addr: '127.0.0.1:7001', transports: [1] });
    const first = await updates.insertBlocks('a', NS, hashes([1]));
    await ms.restart();
    let second: { epoch: bigint } | undefined;
    const failures: string[] = [];
    for (let i = 0; i < 2400 && !second; i++) {
      try {
        await admin.heartbeat({ nodeId: 'a', addr: '127.0.0.1:7001', transports: [1] });
        second = await updates.insertBlocks('a', NS, hashes([1]));
      } catch (err) {
        failures.push((err as KvError).code); // the broken stream's updates, until the new one answers
        await sleep(50);
      }
    }
    assert.ok(second, `no answer after the restart: ${failures.join(', ')}`);
    assert.ok(
      failures.every((c) => c === 'METASERVER_UNAVAILABLE'),
      failures.join(', '),
    );
    assert.notEqual(second.epoch, first.epoch);
    assert.deepEqual(epochs, [
      [first.epoch, undefined],
      [second.epoch, first.epoch],
    ]);
  } finally {
    updates.close();
    admin.close();
  }
  const closed = await rejection(updates.removeBlocks('a', NS, hashes([1])), KvError);
  assert.equal(closed.code, 'METASERVER_UNAVAILABLE');
  assert.match(closed.message, /block update stream to .* is closed/);
});

test('a metaserver without the stream (UNIMPLEMENTED) gets the updates as unary calls, until a new epoch', async () => {
  let epoch = 5n;
  let serves = false; // whether the fake serves UpdateBlocksStream
  const seen = { streams: 0, unary: [] as string[], items: 0 };
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(MetaserverService))
    impl[name] = ((_call: unknown, cb?: grpc.sendUnaryData<unknown>) =>
      cb?.({ code: grpc.status.UNIMPLEMENTED, details: name })) as grpc.UntypedHandleCall;
  impl.insertBlocks = ((_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
    seen.unary.push('insert');
    cb(null, { epoch, inserted: 1n, reclaimable: undefined });
  }) as grpc.UntypedHandleCall;
  impl.removeBlocks = ((_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
    seen.unary.push('remove');
    cb(null, { epoch, removed: 1n });
  }) as grpc.UntypedHandleCall;
  impl.updateBlocksStream = ((call: grpc.ServerDuplexStream<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse>) => {
    seen.streams++;
    if (!serves) return call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'updateBlocksStream' });
    call.on('data', (req: UpdateBlocksStreamRequest) => {
      seen.items++;
      call.write({ id: req.id, answer: { $case: 'removed', value: { epoch, removed: 1n } } });
    });
    call.on('end', () => call.end());
  }) as grpc.UntypedHandleCall;
  server.addService(MetaserverService, impl);
  const port = await bindServer(server, '127.0.0.1:0');
  const updates = new BlockUpdateStream(`127.0.0.1:${port}`);
  try {
    // the first update fails on the stream and is sent again, unary; so are the ones in flight with it, and later ones
    const first = await Promise.all([
      updates.insertBlocks('a', NS, hashes([1])),
      updates.removeBlocks('a', NS, hashes([2])),
    ]);
    assert.deepEqual(
      first.map((r) => r.epoch),
      [5n, 5n],
    );
    assert.equal(updates.unary, true);
    await updates.removeBlocks('a', NS, hashes([3]));
    assert.equal(seen.streams, 1, 'one stream tried');
    assert.deepEqual(seen.unary.sort(), ['insert', 'remove', 'remove']);
    // upgraded and restarted: the next unary answer carries a new epoch, and the update after it takes the stream
    epoch = 6n;
    serves = true;
    assert.equal((await updates.removeBlocks('a', NS, hashes([4]))).epoch, 6n);
    assert.equal(updates.unary, false);
    assert.equal((await updates.removeBlocks('a', NS, hashes([5]))).removed, 1n);
    assert.deepEqual([seen.streams, seen.items, seen.unary.length], [2, 1, 4]);
    assert.equal(updates.lastEpoch, 6n);
  } finally {
    updates.close();
    server.forceShutdown();
  }
});
