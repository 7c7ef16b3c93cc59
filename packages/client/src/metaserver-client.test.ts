// MetaserverClient against in-process fake metaservers on loopback: packing, typed errors from the trailer,
// deadlines, connection failures, leader redirects and epoch tracking, and (with a real etcd) following the leader
// named by an etcd:// address. (The real server is covered by CLI tests and apps/metaserver/test/failover.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  BlockTier,
  GetStatsResponse,
  ListNodesResponse,
  MetaserverService,
  type MetaserverServer,
} from '@kvfabric/proto';
import { KvError, TIER_BOTH, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { LEADER_ADDR_KEY, bindServer, errorToStatus } from '@kvfabric/common/rpc';
import { connectEtcd, type LeaderRecord } from '@kvfabric/common/etcd';
import { etcdSkipReason, startEtcd } from '@kvfabric/testkit';
import { MetaserverClient } from './metaserver-client.js';

type Handlers = Partial<Record<keyof MetaserverServer, (req: any) => unknown>>;

async function fakeServer(handlers: Handlers): Promise<{ addr: string; calls: string[] } & AsyncDisposable> {
  const server = new grpc.Server();
  const calls: string[] = [];
  const impl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(MetaserverService)) {
    impl[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls.push(name);
      const h = handlers[name as keyof MetaserverServer];
      if (!h) return cb({ code: grpc.status.UNIMPLEMENTED, details: name });
      Promise.resolve()
        .then(() => h(call.request))
        .then(
          (res) => cb(null, res),
          (err: unknown) => cb(err instanceof KvError ? errorToStatus(err) : (err as grpc.ServiceError)),
        );
    }) as grpc.UntypedHandleCall;
  }
  server.addService(MetaserverService, impl);
  const port = await bindServer(server, '127.0.0.1:0');
  return {
    addr: `127.0.0.1:${port}`,
    calls,
    async [Symbol.asyncDispose]() {
      server.forceShutdown();
    },
  };
}

const h = (n: number, len = 8) => Buffer.alloc(len, n);
const BOTH = BlockTier.BLOCK_TIER_BOTH;
const SSD = BlockTier.BLOCK_TIER_SSD;

test('packs hashes, unpacks reclaimable, maps owners and tracks the epoch', async () => {
  let seen: { namespace: string; packed: Buffer; hashLen: number; nodeId: string; tier: number } | undefined;
  let olderServer = false; // answers without tiers, as a metaserver from before them
  await using server = await fakeServer({
    insertBlocks: (req) => {
      const { namespace, nodeId, tier } = req;
      seen = { namespace, packed: req.hashes.packed, hashLen: req.hashes.hashLen, nodeId, tier };
      return { epoch: 7n, inserted: 3n, reclaimable: { packed: Buffer.concat([h(2), h(3)]), hashLen: 8 } };
    },
    queryOwners: () => ({
      epoch: 9n,
      blocks: [
        { nodeIds: ['n1', 'n2'], addrs: ['a:1', 'a:2'], tiers: olderServer ? [] : [BOTH, SSD] },
        { nodeIds: [], addrs: [], tiers: [] },
      ],
    }),
  });
  const epochs: [bigint, bigint | undefined][] = [];
  const client = new MetaserverClient(server.addr, { onEpoch: (e, p) => epochs.push([e, p]) });
  try {
    const res = await client.insertBlocks('node-a', 'ns', [h(1), h(2), h(3)]);
    assert.equal(res.inserted, 3n);
    assert.deepEqual(res.reclaimable, [h(2), h(3)]);
    assert.deepEqual(seen, {
      namespace: 'ns',
      packed: Buffer.concat([h(1), h(2), h(3)]),
      hashLen: 8,
      nodeId: 'node-a',
      tier: BlockTier.BLOCK_TIER_DRAM,
    });
    const owners = await client.queryOwners('ns', { packed: Buffer.concat([h(1), h(4)]), hashLen: 8 });
    assert.deepEqual(owners.owners, [
      [
        { nodeId: 'n1', addr: 'a:1', tier: TIER_BOTH },
        { nodeId: 'n2', addr: 'a:2', tier: TIER_SSD },
      ],
      [],
    ]);
    olderServer = true;
    const older = await client.queryOwners('ns', { packed: Buffer.concat([h(1), h(4)]), hashLen: 8 });
    assert.deepEqual(
      older.owners[0]!.map((o) => o.tier),
      [TIER_DRAM, TIER_DRAM],
      'no tiers: DRAM',
    );
    await client.insertBlocks('node-a', 'ns', [h(1)], { tier: TIER_SSD });
    assert.equal(seen?.tier, BlockTier.BLOCK_TIER_SSD);
    assert.equal(client.lastEpoch, 7n);
    assert.deepEqual(epochs, [
      [7n, undefined],
      [9n, 7n],
      [7n, 9n],
    ]);
  } finally {
    client.close();
  }
});

test('server errors come back as KvError with the code from the trailer', async () => {
  await using server = await fakeServer({
    insertBlocks: () => {
      throw new KvError('SESSION_UNKNOWN', 'node_id: no session "ghost"');
    },
  });
  const client = new MetaserverClient(server.addr);
  const stackTraceLimit = Error.stackTraceLimit;
  try {
    await assert.rejects(client.insertBlocks('ghost', 'ns', [h(1)]), (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'SESSION_UNKNOWN');
      assert.equal(err.message, 'node_id: no session "ghost"');
      assert.match(err.stack ?? '', /SESSION_UNKNOWN|no session/);
      return true;
    });
    // a call starts with no stack captured (grpc-js's caller stack), and leaves the limit as it was
    assert.equal(Error.stackTraceLimit, stackTraceLimit);
    await assert.rejects(
      client.insertBlocks('n', 'ns', [h(1), h(2, 4)]),
      /hashes\[1\]: expected 8 bytes like hashes\[0\], got 4/,
    );
  } finally {
    client.close();
  }
});

test('per-call deadlines: a slow answer is DEADLINE_EXCEEDED (TRANSPORT_TIMEOUT), not a connect failure', async () => {
  await using server = await fakeServer({
    getStats: () =>
      new Promise((resolve) => setTimeout(() => resolve(GetStatsResponse.fromPartial({ epoch: 1n })), 400)),
  });
  const client = new MetaserverClient(server.addr, { deadlineMs: 5000 });
  try {
    assert.equal((await client.getStats()).epoch, 1n);
    await assert.rejects(client.getStats({ deadlineMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'TRANSPORT_TIMEOUT');
      return true;
    });
  } finally {
    client.close();
  }
});

test('nobody listening → METASERVER_UNAVAILABLE naming the address, one line', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const client = new MetaserverClient(`127.0.0.1:${port}`, { deadlineMs: 3000 });
  try {
    await assert.rejects(client.listNodes(), (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'METASERVER_UNAVAILABLE');
      assert.equal(
        err.message,
        `cannot connect to metaserver at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
      );
      return true;
    });
  } finally {
    client.close();
  }
});

test('a listener that never speaks gRPC → deadline on connect is METASERVER_UNAVAILABLE', async () => {
  const sockets: Socket[] = [];
  const silent: NetServer = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const addr = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  const client = new MetaserverClient(addr, { deadlineMs: 300 });
  try {
    await assert.rejects(client.getStats(), (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'METASERVER_UNAVAILABLE');
      assert.match(err.message, new RegExp(`^cannot connect to metaserver at ${addr}: `));
      return true;
    });
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('a follower answer with the leader trailer is retried once on the leader', async () => {
  await using leader = await fakeServer({ listNodes: () => ListNodesResponse.fromPartial({ epoch: 5n }) });
  await using follower = await fakeServer({
    listNodes: () => {
      const md = new grpc.Metadata();
      md.set(LEADER_ADDR_KEY, leader.addr);
      throw Object.assign(new Error('not leader'), {
        code: grpc.status.UNAVAILABLE,
        details: 'not the leader',
        metadata: md,
      });
    },
  });
  const client = new MetaserverClient(follower.addr);
  try {
    assert.equal((await client.listNodes()).epoch, 5n);
    assert.equal(client.target, leader.addr);
    assert.deepEqual(follower.calls, ['listNodes']);
    assert.deepEqual(leader.calls, ['listNodes']);
  } finally {
    client.close();
  }
  await assert.rejects(client.listNodes(), /closed/);
});

const leaderValue = (addr: string, seq: bigint, replica: string) =>
  JSON.stringify({ addr, epoch: ((seq << 24n) | 1n).toString(), since_ms: 1_700_000_000_000, replica_id: replica });

const stats = (epoch: bigint) => () => GetStatsResponse.fromPartial({ epoch });

test(
  'etcd://: follows the leader key, waits out a leaderless window, fails at the deadline',
  { skip: etcdSkipReason() },
  async () => {
    await using etcd = await startEtcd();
    const endpoint = etcd.endpoint.replace('http://', '');
    const admin = connectEtcd([endpoint]);
    await using a = await fakeServer({ getStats: stats(1n) });
    await using b = await fakeServer({ getStats: stats(2n) });
    const changes: (string | undefined)[] = [];
    const client = new MetaserverClient(`etcd://${endpoint}/c1`, { deadlineMs: 3000 });
    client.onLeaderChange((l: LeaderRecord | undefined) => changes.push(l?.replicaId));
    try {
      // the locator (loaded on first use) has read the empty key: the deadline below is all waiting, on any machine
      assert.equal(await (await client.leaderLocator())!.refresh(), undefined);
      // nobody elected: the call waits for its deadline, then says so
      let t0 = Date.now();
      await assert.rejects(client.getStats({ deadlineMs: 400 }), (err: unknown) => {
        assert.ok(err instanceof KvError);
        assert.equal(err.code, 'METASERVER_UNAVAILABLE');
        assert.match(err.message, /no metaserver leader elected \(etcd .* key \/c1\/leader is empty\)/);
        return true;
      });
      assert.ok(Date.now() - t0 >= 350, `gave up after ${Date.now() - t0} ms`);

      // a call made while none is elected is answered once one is
      const waiting = client.getStats();
      await sleep(200);
      await admin.put('/c1/leader').value(leaderValue(a.addr, 1n, 'ma'));
      assert.equal((await waiting).epoch, 1n);
      assert.equal(client.target, a.addr);
      assert.equal(client.leader?.replicaId, 'ma');

      // a new leader: the channel follows (the watch, or the re-read every second), without any failed call
      t0 = Date.now();
      await admin.put('/c1/leader').value(leaderValue(b.addr, 2n, 'mb'));
      while (client.target !== b.addr) {
        assert.ok(Date.now() - t0 < 30_000, 'did not follow the leader key within 30 s');
        await sleep(5);
      }
      assert.equal((await client.getStats()).epoch, 2n);
      assert.deepEqual(a.calls, ['getStats']);
      assert.deepEqual(b.calls, ['getStats']);
      assert.deepEqual(changes, ['ma', 'mb']);
      assert.equal(client.lastEpoch, 2n);
    } finally {
      client.close();
      admin.close();
    }
  },
);

test(
  'etcd://: a dead or refusing leader is retried until etcd names the next one',
  { skip: etcdSkipReason() },
  async () => {
    await using etcd = await startEtcd();
    const endpoint = etcd.endpoint.replace('http://', '');
    const admin = connectEtcd([endpoint]);
    await using next = await fakeServer({ listNodes: () => ListNodesResponse.fromPartial({ epoch: 9n }) });
    // a stepped-down leader: NOT_LEADER and no trailer (it knows no leader)
    await using old = await fakeServer({
      listNodes: () => Promise.reject(new KvError('NOT_LEADER', 'not the leader: knows no leader')),
    });
    // a follower that knows the leader
    await using follower = await fakeServer({
      listNodes: () => {
        const md = new grpc.Metadata();
        md.set(LEADER_ADDR_KEY, next.addr);
        throw Object.assign(new Error('not leader'), {
          code: grpc.status.UNAVAILABLE,
          details: 'not the leader',
          metadata: md,
        });
      },
    });
    const client = new MetaserverClient(`etcd://${endpoint}/c2`, { deadlineMs: 3000 });
    try {
      await admin.put('/c2/leader').value(leaderValue(old.addr, 1n, 'old'));
      assert.equal((await (await client.leaderLocator())!.waitForLeader(30_000)).replicaId, 'old');
      // refused until the deadline: METASERVER_UNAVAILABLE naming the leader etcd still names, retried meanwhile
      await assert.rejects(client.listNodes({ deadlineMs: 500 }), (err: unknown) => {
        assert.ok(err instanceof KvError);
        assert.equal(err.code, 'METASERVER_UNAVAILABLE');
        assert.match(
          err.message,
          new RegExp(
            `^no metaserver leader serving: leader old at ${old.addr} \\(epoch \\d+\\) per etcd .* key /c2/leader: not the leader: knows no leader$`,
          ),
        );
        return true;
      });
      assert.ok(old.calls.length >= 2, `retried ${old.calls.length} times`);

      // etcd names the next leader while a call is being refused: the call lands there
      const pending = client.listNodes();
      await sleep(150);
      await admin.put('/c2/leader').value(leaderValue(next.addr, 2n, 'next'));
      assert.equal((await pending).epoch, 9n);

      // a follower's trailer is followed at once
      await admin.put('/c2/leader').value(leaderValue(follower.addr, 3n, 'stale'));
      while (client.target !== follower.addr) await sleep(5);
      const before = next.calls.length;
      assert.equal((await client.listNodes()).epoch, 9n);
      assert.equal(client.target, next.addr);
      assert.equal(next.calls.length, before + 1);
      assert.deepEqual(follower.calls, ['listNodes']);

      // a leader that is gone (connection refused) until etcd names another
      const port = next.addr.split(':')[1];
      await next[Symbol.asyncDispose]();
      await admin.put('/c2/leader').value(leaderValue(`127.0.0.1:${port}`, 4n, 'gone'));
      await using last = await fakeServer({ listNodes: () => ListNodesResponse.fromPartial({ epoch: 11n }) });
      const refused = client.listNodes();
      await sleep(300);
      await admin.put('/c2/leader').value(leaderValue(last.addr, 5n, 'last'));
      assert.equal((await refused).epoch, 11n);
    } finally {
      client.close();
      admin.close();
    }
  },
);
