// Mutual TLS and certificate identity, replayed against real processes (issue findings: cache poisoning by a made-up
// node id, node hijack by another node's id, anonymous clients, namespaces outside a certificate's list).
// One TLS cluster: a metaserver and two nodes whose certificates are kvfabric://node/NAME; the test's own clients
// present certificates from the same test CA (an attacker inside the cluster), or from another CA, or none.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { BlockUpdateStream, MetaserverClient } from '@kvfabric/client';
import { KvError } from '@kvfabric/common';
import { CHANNEL_OPTIONS, clientCredentials, readTls, tlsChannelOptions } from '@kvfabric/common/rpc';
import { PeerClient, type GrantStreamRequest, type GrantStreamResponse } from '@kvfabric/proto/peer';
import { TransportKind } from '@kvfabric/proto/common';
import {
  TestCa,
  runCli,
  startCluster,
  startNode,
  testCa,
  tlsArgs,
  type Cluster,
  type NodeHandle,
} from '@kvfabric/testkit';
import {
  advertised as advertisedOn,
  engine,
  freshHashes,
  loadBlocks,
  nodeId,
  saveBlocks,
  PAGE,
} from '../pull-helpers.js';

let cluster: Cluster;
let admin: MetaserverClient;
let A: NodeHandle, B: NodeHandle;
let idA: string;

before(async () => {
  cluster = await startCluster({
    nodes: 2,
    tls: true,
    node: { poolSize: '64mib', args: ['--heartbeat-interval-secs', '0.5'] },
  });
  [A, B] = cluster.nodes as [NodeHandle, NodeHandle];
  admin = new MetaserverClient(cluster.metaserver.addr, { tls: readTls(cluster.metaserver.tls!.client) });
  idA = await nodeId(A);
});

after(async () => {
  admin?.close();
  await cluster?.[Symbol.asyncDispose]();
});

/** A metaserver client presenting ROLE/NAME's certificate from the cluster's CA. */
async function clientAs(role: 'node' | 'client', name: string, namespaces?: string[]): Promise<MetaserverClient> {
  const tls = readTls(await testCa().issue(role, name, namespaces));
  return new MetaserverClient(cluster.metaserver.addr, { tls, deadlineMs: 10_000 });
}

/** The stream a node's reporter sends its inserts and removes on, under a certificate of `role`/`name`. */
async function updatesAs(role: 'node' | 'client', name: string, namespaces?: string[]): Promise<BlockUpdateStream> {
  const tls = readTls(await testCa().issue(role, name, namespaces));
  return new BlockUpdateStream(cluster.metaserver.addr, { tls, deadlineMs: 10_000 });
}

async function refused(p: Promise<unknown>, code: string, field: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof KvError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, field);
    return true;
  });
}

test('a TLS cluster: node ids carry the certificate name, and a prefix saved on A is pulled by B over TLS', async () => {
  assert.ok(idA.startsWith(`${A.tls!.name}/`), idA);
  const ns = 'tls/pull';
  const hashes = freshHashes(8);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  await advertisedOn(admin, ns, hashes, A, 8);
  const q = await b.kv.query(hashes);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: 8 });
  const got = await loadBlocks(b, q.leaseId, 8, 40);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
  assert.equal(got.length * got[0]!.length, 8 * PAGE);

  const res = await runCli([
    'nodes',
    '--metaserver-addr',
    cluster.metaserver.addr,
    '--output',
    'json',
    ...tlsArgs(cluster.metaserver.tls!.client),
  ]);
  assert.equal(res.code, 0, res.stderr);
  const ids = (JSON.parse(res.stdout) as { nodes: { nodeId: string }[] }).nodes.map((n) => n.nodeId).sort();
  assert.deepEqual(ids, [idA, await nodeId(B)].sort());
});

test('cache poisoning: no certificate may heartbeat or insert for a node id that is not its own', async () => {
  const ns = 'tls/poison';
  const hashes = freshHashes(4);
  await using attacker = {
    c: await clientAs('node', 'attacker'),
    async [Symbol.asyncDispose]() {
      this.c.close();
    },
  };
  // a made-up node at the attacker's address, under another certificate's name
  await refused(
    attacker.c.heartbeat({ nodeId: 'made-up/1', addr: '127.0.0.1:1' }),
    'PERMISSION_DENIED',
    /node_id: "made-up\/1" does not belong to kvfabric:\/\/node\/attacker/,
  );
  await refused(attacker.c.insertBlocks(idA, ns, hashes), 'PERMISSION_DENIED', /node_id/);
  // the same on the pipelined stream nodes report on: refused item by item
  await using attackerUpdates = {
    s: await updatesAs('node', 'attacker'),
    async [Symbol.asyncDispose]() {
      this.s.close();
    },
  };
  for (let i = 0; i < 2; i++)
    await refused(attackerUpdates.s.insertBlocks(idA, ns, hashes), 'PERMISSION_DENIED', /node_id/);
  // a client certificate is no node at all
  await using ops = {
    c: await clientAs('client', 'ops'),
    async [Symbol.asyncDispose]() {
      this.c.close();
    },
  };
  await refused(
    ops.c.heartbeat({ nodeId: 'ops/1', addr: '127.0.0.1:1' }),
    'PERMISSION_DENIED',
    /kvfabric:\/\/client\/ops/,
  );
  // nothing was indexed
  assert.deepEqual((await admin.queryPrefix(ns, hashes)).nodes, []);
  assert.ok(
    !(await admin.listNodes()).nodes.some((n) => n.nodeId.startsWith('made-up') || n.nodeId.startsWith('ops/')),
  );
});

test("node hijack: B's certificate can neither move A's address, remove A's blocks, nor unregister A", async () => {
  const ns = 'tls/hijack';
  const hashes = freshHashes(6);
  await using a = await engine(A, ns);
  await saveBlocks(a, hashes);
  await advertisedOn(admin, ns, hashes, A, 6);
  const asB = await clientAs('node', B.tls!.name);
  try {
    await refused(asB.heartbeat({ nodeId: idA, addr: B.addr }), 'PERMISSION_DENIED', /node_id/);
    await refused(asB.removeBlocks(idA, ns, hashes), 'PERMISSION_DENIED', /node_id/);
    await refused(asB.unregister(idA), 'PERMISSION_DENIED', /node_id/);
  } finally {
    asB.close();
  }
  const updatesB = await updatesAs('node', B.tls!.name);
  try {
    await refused(updatesB.removeBlocks(idA, ns, hashes), 'PERMISSION_DENIED', /node_id/);
  } finally {
    updatesB.close();
  }
  const answer = await admin.queryPrefix(ns, hashes);
  assert.deepEqual(
    answer.nodes.map((n) => [n.nodeId, n.addr, n.prefixLen]),
    [[idA, A.addr, 6]],
  );
});

test('without a certificate from the cluster CA there is no connection at all', async () => {
  const none = new MetaserverClient(cluster.metaserver.addr, { deadlineMs: 3000 });
  const other = new TestCa();
  const stranger = new MetaserverClient(cluster.metaserver.addr, {
    deadlineMs: 3000,
    tls: readTls(await other.issue('node', B.tls!.name)),
  });
  try {
    await assert.rejects(none.listNodes(), (err: KvError) => err.code === 'METASERVER_UNAVAILABLE');
    await assert.rejects(stranger.listNodes(), (err: KvError) => err.code === 'METASERVER_UNAVAILABLE');
  } finally {
    none.close();
    stranger.close();
    other.dispose();
  }
  // and the metaserver still serves its real clients
  assert.equal((await admin.listNodes()).nodes.length, 2);
});

test('a certificate limited to namespaces is refused outside them, on the metaserver and on a peer', async () => {
  const tenant = await clientAs('node', 'tenant-a-node', ['tenant-a']);
  try {
    await refused(
      tenant.queryPrefix('tenant-b', freshHashes(2)),
      'PERMISSION_DENIED',
      /namespace: kvfabric:\/\/node\/tenant-a-node may not use namespace "tenant-b"/,
    );
    assert.deepEqual((await tenant.queryPrefix('tenant-a', freshHashes(2))).nodes, []);
    await refused(tenant.insertBlocks('tenant-a-node/1', 'tenant-b', freshHashes(1)), 'PERMISSION_DENIED', /namespace/);
    const tenantUpdates = await updatesAs('node', 'tenant-a-node', ['tenant-a']);
    try {
      await refused(
        tenantUpdates.insertBlocks('tenant-a-node/1', 'tenant-b', freshHashes(1)),
        'PERMISSION_DENIED',
        /namespace/,
      );
    } finally {
      tenantUpdates.close();
    }
    const listed = (await tenant.listNamespaces()).namespaces.map((n) => n.name);
    assert.ok(
      listed.every((n) => n === 'tenant-a'),
      listed.join(','),
    );
  } finally {
    tenant.close();
  }

  // the Peer API of node A: the reader's certificate must match its node id, and its namespaces the grant's
  const tls = readTls(await testCa().issue('node', 'tenant-a-node', ['tenant-a']));
  const peer = new PeerClient(A.addr, clientCredentials(tls, { role: 'node', name: A.tls!.name }), {
    ...CHANNEL_OPTIONS,
    ...tlsChannelOptions(tls),
  });
  const unary = <Res>(method: 'handshake' | 'prepareRead', req: object) =>
    new Promise<Res>((resolve, reject) =>
      (peer[method] as unknown as (r: object, cb: (e: grpc.ServiceError | null, r: Res) => void) => void).call(
        peer,
        req,
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
  try {
    await assert.rejects(
      unary('handshake', {
        nodeId: idA,
        addr: '127.0.0.1:1',
        transport: TransportKind.TRANSPORT_KIND_TCP,
        material: Buffer.alloc(0),
      }),
      (err: grpc.ServiceError) => err.code === grpc.status.PERMISSION_DENIED && /node_id/.test(err.details),
    );
    // namespaces are checked before the session: no handshake needed to be refused
    await assert.rejects(
      unary('prepareRead', {
        nodeId: 'tenant-a-node/1',
        session: 1n,
        namespace: 'tenant-b',
        hashes: { packed: Buffer.alloc(32), hashLen: 32 },
        releaseGrantIds: Buffer.alloc(0),
      }),
      (err: grpc.ServiceError) => err.code === grpc.status.PERMISSION_DENIED && /tenant-b/.test(err.details),
    );
    // the same checks on the GrantStream, item by item: another node's id, a namespace outside the certificate's,
    // another node's release; each refused alone (the stream answers every item)
    const stream = peer.grantStream();
    const answers: GrantStreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: GrantStreamResponse) => answers.push(r));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const read = { session: 1n, hashes: { packed: Buffer.alloc(32), hashLen: 32 }, releaseGrantIds: Buffer.alloc(0) };
    const items: GrantStreamRequest['call'][] = [
      { $case: 'prepareRead', value: { ...read, nodeId: idA, namespace: 'tenant-a' } },
      { $case: 'prepareRead', value: { ...read, nodeId: 'tenant-a-node/1', namespace: 'tenant-b' } },
      { $case: 'releaseGrant', value: { nodeId: idA, session: 1n, grantId: Buffer.alloc(16) } },
    ];
    items.forEach((call, i) => stream.write({ id: i + 1, call }));
    stream.end();
    await ended;
    assert.deepEqual(
      answers
        .sort((x, y) => x.id - y.id)
        .map((r) =>
          r.answer?.$case === 'error'
            ? [r.answer.value.code, /node_id|tenant-b/.exec(r.answer.value.message)?.[0]]
            : r.answer?.$case,
        ),
      [
        ['PERMISSION_DENIED', 'node_id'],
        ['PERMISSION_DENIED', 'tenant-b'],
        ['PERMISSION_DENIED', 'node_id'],
      ],
    );
  } finally {
    peer.close();
  }
});

test('without TLS a server refuses to listen beyond loopback unless --insecure', async () => {
  await assert.rejects(startNode({ args: ['--addr', '0.0.0.0:0'] }), (err: Error) =>
    /addr: 0\.0\.0\.0:0 is not a loopback address; give --tls-cert, --tls-key and --tls-ca/.test(err.message),
  );
});
