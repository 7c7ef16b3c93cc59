// MetaserverClient against in-process fake metaservers on loopback: packing, typed errors from the trailer,
// deadlines, connection failures, leader redirects and epoch tracking. (The real server is covered by CLI tests.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GetStatsResponse, ListNodesResponse, MetaserverService, type MetaserverServer } from '@kvfabric/proto';
import { KvError, bindServer, errorToStatus } from '@kvfabric/common';
import { MetaserverClient, resolveMetaserverAddr, LEADER_ADDR_KEY } from './metaserver-client.js';

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

test('resolveMetaserverAddr accepts host:port and names the field otherwise', () => {
  assert.deepEqual(resolveMetaserverAddr('127.0.0.1:50056'), { kind: 'direct', target: '127.0.0.1:50056' });
  assert.deepEqual(resolveMetaserverAddr('[::1]:7'), { kind: 'direct', target: '[::1]:7' });
  assert.throws(() => resolveMetaserverAddr('nope', '--metaserver-addr'), /--metaserver-addr: expected host:port, got "nope"/);
  assert.throws(() => resolveMetaserverAddr('127.0.0.1:0'), /metaserver-addr: expected a port 1..65535/);
  assert.throws(() => resolveMetaserverAddr('etcd://127.0.0.1:2379'), /etcd:\/\/ leader discovery is not supported yet/);
});

test('packs hashes, unpacks reclaimable, maps owners and tracks the epoch', async () => {
  let seen: { namespace: string; packed: Buffer; hashLen: number; nodeId: string } | undefined;
  await using server = await fakeServer({
    insertBlocks: (req) => {
      seen = { namespace: req.namespace, packed: req.hashes.packed, hashLen: req.hashes.hashLen, nodeId: req.nodeId };
      return { epoch: 7n, inserted: 3n, reclaimable: { packed: Buffer.concat([h(2), h(3)]), hashLen: 8 } };
    },
    queryOwners: () => ({ epoch: 9n, blocks: [{ nodeIds: ['n1', 'n2'], addrs: ['a:1', 'a:2'] }, { nodeIds: [], addrs: [] }] }),
  });
  const epochs: [bigint, bigint | undefined][] = [];
  const client = new MetaserverClient(server.addr, { onEpoch: (e, p) => epochs.push([e, p]) });
  try {
    const res = await client.insertBlocks('node-a', 'ns', [h(1), h(2), h(3)]);
    assert.equal(res.inserted, 3n);
    assert.deepEqual(res.reclaimable, [h(2), h(3)]);
    assert.deepEqual(seen, { namespace: 'ns', packed: Buffer.concat([h(1), h(2), h(3)]), hashLen: 8, nodeId: 'node-a' });
    const owners = await client.queryOwners('ns', { packed: Buffer.concat([h(1), h(4)]), hashLen: 8 });
    assert.deepEqual(owners.owners, [[{ nodeId: 'n1', addr: 'a:1' }, { nodeId: 'n2', addr: 'a:2' }], []]);
    await client.insertBlocks('node-a', 'ns', [h(1)]);
    assert.equal(client.lastEpoch, 7n);
    assert.deepEqual(epochs, [[7n, undefined], [9n, 7n], [7n, 9n]]);
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
  try {
    await assert.rejects(client.insertBlocks('ghost', 'ns', [h(1)]), (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'SESSION_UNKNOWN');
      assert.equal(err.message, 'node_id: no session "ghost"');
      return true;
    });
    await assert.rejects(client.insertBlocks('n', 'ns', [h(1), h(2, 4)]), /hashes\[1\]: expected 8 bytes like hashes\[0\], got 4/);
  } finally {
    client.close();
  }
});

test('per-call deadlines: a slow answer is DEADLINE_EXCEEDED (TRANSPORT_TIMEOUT), not a connect failure', async () => {
  await using server = await fakeServer({
    getStats: () => new Promise((resolve) => setTimeout(() => resolve(GetStatsResponse.fromPartial({ epoch: 1n })), 400)),
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
      assert.equal(err.message, `cannot connect to metaserver at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`);
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
      throw Object.assign(new Error('not leader'), { code: grpc.status.UNAVAILABLE, details: 'not the leader', metadata: md });
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
