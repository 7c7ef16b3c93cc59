// PrefixQueryStream: exact answers from a real kvfabric-metaserver (many queries in flight on one stream, matched by
// id), per-item errors that leave the stream serving, reconnect after a restart (new epoch); against in-process
// fakes: in-flight queries rejected with METASERVER_UNAVAILABLE when the stream breaks, deadlines, abort, following a
// follower's leader trailer, and (with a real etcd) an etcd:// address: the leader etcd names, and its changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { MetaserverService, type QueryPrefixStreamRequest, type QueryPrefixStreamResponse } from '@kvfabric/proto';
import { KvError, TIER_SSD } from '@kvfabric/common';
import { LEADER_ADDR_KEY, bindServer, errorToStatus } from '@kvfabric/common/rpc';
import { connectEtcd } from '@kvfabric/common/etcd';
import { etcdSkipReason, rejection, startEtcd, startMetaserver } from '@kvfabric/testkit';
import { MetaserverClient } from './metaserver-client.js';
import { PrefixQueryStream } from './prefix-query-stream.js';

const NS = 'test/stream';

/** 32-byte hashes: byte 0 = tag, bytes 1..4 = id. */
function hashes(ids: number[], tag = 1): Buffer[] {
  return ids.map((id) => {
    const h = Buffer.alloc(32);
    h[0] = tag;
    h.writeUInt32BE(id, 1);
    return h;
  });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test('answers equal unary QueryPrefix, 300 queries in flight on one stream; bad items fail alone', async () => {
  await using ms = await startMetaserver({ logLevel: 'warn' });
  const admin = new MetaserverClient(ms.addr);
  const stream = new PrefixQueryStream(ms.addr);
  try {
    // node a holds chains 0..99 whole (64 blocks), node b the first (c % 64) + 1 blocks of each, c ahead of b's pool use
    await admin.heartbeat({
      nodeId: 'a',
      addr: '127.0.0.1:7001',
      transports: [1],
      stats: { poolCapacityBytes: 1000n, poolUsedBytes: 500n },
    });
    await admin.heartbeat({
      nodeId: 'b',
      addr: '127.0.0.1:7002',
      transports: [1, 2],
      stats: { poolCapacityBytes: 1000n, poolUsedBytes: 100n },
    });
    const chain = (c: number) => hashes(range(c * 64, c * 64 + 64));
    for (let c = 0; c < 100; c++) {
      await admin.insertBlocks('a', NS, chain(c));
      await admin.insertBlocks('b', NS, chain(c).slice(0, (c % 64) + 1), { tier: TIER_SSD }); // b: on SSD only
    }
    const epoch = (await admin.getStats()).epoch;
    const queries = range(0, 300).map((i) =>
      stream.query(NS, chain(i % 100), i % 7 === 0 ? { excludeNodeId: 'b' } : {}),
    );
    assert.equal(stream.inFlight, 300);
    const got = await Promise.all(queries);
    for (const [i, r] of got.entries()) {
      const c = i % 100;
      assert.equal(r.epoch, epoch);
      const a = {
        nodeId: 'a',
        addr: '127.0.0.1:7001',
        prefixLen: 64,
        transports: [1],
        poolUsedBytes: 500n,
        poolCapacityBytes: 1000n,
        ssdBlocks: 0,
      };
      const b = {
        nodeId: 'b',
        addr: '127.0.0.1:7002',
        prefixLen: (c % 64) + 1,
        transports: [1, 2],
        poolUsedBytes: 100n,
        poolCapacityBytes: 1000n,
        ssdBlocks: (c % 64) + 1,
      };
      // longest first; on a tie (c % 64 == 63) the less used pool (b) first
      const want = i % 7 === 0 ? [a] : b.prefixLen === 64 ? [b, a] : [a, b];
      assert.deepEqual(r.nodes, want, `query ${i}`);
      if (i < 100)
        assert.deepEqual(r, await admin.queryPrefix(NS, chain(c), i % 7 === 0 ? { excludeNodeId: 'b' } : {}));
    }
    assert.equal(stream.inFlight, 0);
    assert.deepEqual(await stream.query(NS, hashes([999_999])), { epoch, nodes: [] }, 'nobody holds hashes[0]');

    // bad items between good ones: each fails alone with the server's code and field, the stream keeps serving
    const mixed = await Promise.allSettled([
      stream.query(NS, chain(5)),
      stream.query('bad namespace!', chain(5)),
      stream.query(NS, { packed: Buffer.alloc(10), hashLen: 3 }),
      stream.query(NS, chain(6), { excludeNodeId: 'x'.repeat(1000) }),
      stream.query(NS, chain(7)),
    ]);
    assert.deepEqual(
      mixed.map((s) => s.status),
      ['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled'],
    );
    const reasons = mixed.flatMap((s) => (s.status === 'rejected' ? [s.reason as KvError] : []));
    assert.deepEqual(
      reasons.map((e) => e.code),
      ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'],
    );
    assert.match(reasons[0]!.message, /^namespace: /);
    assert.match(reasons[1]!.message, /^hashes\./);
    assert.match(reasons[2]!.message, /^exclude_node_id: /);
    assert.equal((mixed[4] as PromiseFulfilledResult<{ nodes: { prefixLen: number }[] }>).value.nodes[1]!.prefixLen, 8);
    assert.equal((await stream.query(NS, chain(9))).nodes.length, 2, 'still serving after the bad items');

    // per-message metrics, like unary calls
    const metrics = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
    const value = (prefix: string) =>
      Number(
        metrics
          .split('\n')
          .find((l) => l.startsWith(prefix))
          ?.split(' ')
          .pop(),
      );
    assert.equal(value('kvfabric_metaserver_rpc_total{method="queryPrefixStream",status="OK"'), 304); // 300 + the miss + 2 mixed + chain 9
    assert.equal(value('kvfabric_metaserver_rpc_total{method="queryPrefixStream",status="INVALID_ARGUMENT"'), 3);
    assert.equal(value('kvfabric_metaserver_rpc_errors_total{method="queryPrefixStream",code="INVALID_ARGUMENT"'), 3);
    assert.equal(value('kvfabric_metaserver_rpc_duration_seconds_count{method="queryPrefixStream"'), 307);
  } finally {
    stream.close();
    admin.close();
  }
});

test('reconnects after a metaserver restart and reports the new epoch', async () => {
  await using ms = await startMetaserver({ logLevel: 'warn' });
  const epochs: [bigint, bigint | undefined][] = [];
  const stream = new PrefixQueryStream(ms.addr, { onEpoch: (e, prev) => epochs.push([e, prev]) });
  try {
    const first = await stream.query(NS, hashes([1]));
    await ms.restart();
    let second: { epoch: bigint } | undefined;
    const failures: string[] = [];
    for (let i = 0; i < 2400 && !second; i++) {
      try {
        second = await stream.query(NS, hashes([1]));
      } catch (err) {
        failures.push((err as KvError).code); // the broken stream's queries, until the new one answers
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
    stream.close();
  }
  await assert.rejects(
    stream.query(NS, hashes([1])),
    (err: KvError) => err.code === 'METASERVER_UNAVAILABLE' && /closed/.test(err.message),
  );
});

/** An in-process server whose QueryPrefixStream hands each stream to `onStream`. */
async function fakeServer(
  onStream: (call: grpc.ServerDuplexStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse>) => void,
) {
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(MetaserverService)) {
    impl[name] = ((call: grpc.ServerDuplexStream<unknown, unknown>, cb?: grpc.sendUnaryData<unknown>) => {
      if (name === 'queryPrefixStream')
        onStream(call as grpc.ServerDuplexStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse>);
      else cb?.({ code: grpc.status.UNIMPLEMENTED, details: name });
    }) as grpc.UntypedHandleCall;
  }
  server.addService(MetaserverService, impl);
  const port = await bindServer(server, '127.0.0.1:0');
  return { addr: `127.0.0.1:${port}`, server };
}

test('a broken stream rejects every in-flight query with METASERVER_UNAVAILABLE; deadlines and abort', async () => {
  const seen: number[] = [];
  const calls: grpc.ServerDuplexStream<QueryPrefixStreamRequest, QueryPrefixStreamResponse>[] = [];
  const fake = await fakeServer((call) => {
    calls.push(call);
    call.on('data', (req: QueryPrefixStreamRequest) => seen.push(req.id)); // never answers
  });
  const stream = new PrefixQueryStream(fake.addr, { deadlineMs: 60_000 });
  try {
    // deadline: fails alone, the stream stays
    const late = await rejection(stream.query(NS, hashes([1]), { deadlineMs: 50 }), KvError);
    assert.equal(late.code, 'TRANSPORT_TIMEOUT');
    // abort
    const ctl = new AbortController();
    const aborted = stream.query(NS, hashes([2]), { signal: ctl.signal });
    ctl.abort(new Error('caller gave up'));
    await assert.rejects(aborted, /caller gave up/);
    // in flight when the server fails the stream
    const inflight = [stream.query(NS, hashes([3])), stream.query(NS, hashes([4])), stream.query(NS, hashes([5]))];
    while (seen.length < 5) await sleep(5);
    assert.equal(calls.length, 1, 'one stream for every query');
    calls[0]!.emit('error', errorToStatus(new KvError('INTERNAL', 'boom')));
    for (const p of inflight) {
      const err = await rejection(p, KvError);
      assert.equal(err.code, 'METASERVER_UNAVAILABLE');
      assert.match(err.message, /INTERNAL: boom/);
    }
    assert.equal(stream.inFlight, 0);
    // the next query opens a new stream
    const next = stream.query(NS, hashes([6]));
    while (calls.length < 2 || seen.length < 6) await sleep(5);
    calls[1]!.write({ id: seen.at(-1)!, epoch: 7n, nodes: [], error: undefined });
    assert.deepEqual(await next, { epoch: 7n, nodes: [] });
  } finally {
    stream.close();
    fake.server.forceShutdown();
  }
});

test('a follower refusing the stream sends the client to the leader it names', async () => {
  const leader = await fakeServer((call) => {
    call.on('data', (req: QueryPrefixStreamRequest) =>
      call.write({ id: req.id, epoch: 42n, nodes: [], error: undefined }),
    );
  });
  const follower = await fakeServer((call) => {
    const md = new grpc.Metadata();
    md.set(LEADER_ADDR_KEY, leader.addr);
    call.emit('error', errorToStatus(new KvError('NOT_LEADER', 'not the leader: a follower'), md));
  });
  const stream = new PrefixQueryStream(follower.addr);
  try {
    const refused = await rejection(stream.query(NS, hashes([1])), KvError);
    assert.equal(refused.code, 'METASERVER_UNAVAILABLE');
    assert.match(refused.message, /NOT_LEADER: not the leader/);
    assert.deepEqual(await stream.query(NS, hashes([1])), { epoch: 42n, nodes: [] });
  } finally {
    stream.close();
    leader.server.forceShutdown();
    follower.server.forceShutdown();
  }
});

const leaderValue = (addr: string, seq: bigint, replica: string) =>
  JSON.stringify({ addr, epoch: ((seq << 24n) | 1n).toString(), since_ms: 1_700_000_000_000, replica_id: replica });

/** A fake leader answering every query with `epoch` and no nodes. */
const answering = (epoch: bigint) =>
  fakeServer((call) =>
    call.on('data', (req: QueryPrefixStreamRequest) => call.write({ id: req.id, epoch, nodes: [], error: undefined })),
  );

test(
  'etcd://: queries wait for the leader etcd names, and follow it when it changes',
  { skip: etcdSkipReason() },
  async () => {
    await using etcd = await startEtcd();
    const endpoint = etcd.endpoint.replace('http://', '');
    const admin = connectEtcd([endpoint]);
    const a = await answering(1n);
    const b = await answering(2n);
    const stream = new PrefixQueryStream(`etcd://${endpoint}/pq`, { deadlineMs: 30_000 });
    try {
      // nobody elected: a query fails at its deadline, saying so (or, on a slow machine, that etcd has not answered yet)
      const none = await rejection(stream.query(NS, hashes([1]), { deadlineMs: 300 }), KvError);
      assert.equal(none.code, 'METASERVER_UNAVAILABLE');
      assert.match(
        none.message,
        /no metaserver leader elected \(etcd .* key \/pq\/leader is empty\)|cannot find the metaserver leader: etcd .* key \/pq\/leader: etcd did not answer within 300 ms/,
      );

      // a query made while none is elected is answered by the leader once one is
      const waiting = stream.query(NS, hashes([1]));
      await sleep(200);
      await admin.put('/pq/leader').value(leaderValue(a.addr, 1n, 'ma'));
      assert.deepEqual(await waiting, { epoch: 1n, nodes: [] });

      // a new leader: later queries go to it (the watch, or the re-read every second)
      await admin.put('/pq/leader').value(leaderValue(b.addr, 2n, 'mb'));
      const deadline = Date.now() + 30_000;
      let epoch = 1n;
      while (epoch !== 2n) {
        assert.ok(Date.now() < deadline, 'queries did not move to the new leader within 30 s');
        epoch = (await stream.query(NS, hashes([2]))).epoch;
        await sleep(5);
      }
      assert.equal(stream.lastEpoch, 2n);
      assert.deepEqual(await stream.query(NS, hashes([3])), { epoch: 2n, nodes: [] });
    } finally {
      stream.close();
      admin.close();
      a.server.forceShutdown();
      b.server.forceShutdown();
    }
  },
);
