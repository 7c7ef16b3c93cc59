// Remote prefix pulls between real node processes (tcp transport on loopback): a metaserver, three nodes, SDK
// engines. Each test uses its own namespace on one shared cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, runCli, type Cluster, type NodeHandle } from '@kvfabric/testkit';
import { MetaserverClient } from '@kvfabric/client';
import {
  advertised as advertisedOn,
  engine,
  freshHashes,
  loadBlocks,
  metric,
  nodeId,
  saveBlocks,
  until,
  PAGE,
} from './pull-helpers.js';

let cluster: Cluster;
let meta: MetaserverClient;
let A: NodeHandle, B: NodeHandle, C: NodeHandle;

before(async () => {
  cluster = await startCluster({ nodes: 3, node: { poolSize: '64mib', args: ['--heartbeat-interval-secs', '0.5'] } });
  [A, B, C] = cluster.nodes as [NodeHandle, NodeHandle, NodeHandle];
  meta = new MetaserverClient(cluster.metaserver.addr);
});

after(async () => {
  meta?.close();
  await cluster?.[Symbol.asyncDispose]();
});

const advertised = (ns: string, hashes: Buffer[], node: NodeHandle, n: number) =>
  advertisedOn(meta, ns, hashes, node, n);

/** Blocks pinned on a node right now (leases, grants, copies, pulls in flight). */
const pinned = (node: NodeHandle) => metric(node, 'kvfabric_index_pinned_blocks');

test('full remote hit: a prefix saved only on A is pulled by B, bytes equal, and both own it afterwards', async () => {
  const ns = 'pull/full';
  const hashes = freshHashes(16);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(ns, hashes, A, 16);
  const pulledBefore = await metric(B, 'kvfabric_pull_bytes_total');
  const unaryQueries = () => metric(cluster.metaserver, 'kvfabric_metaserver_rpc_total', 'method="queryPrefix"');
  const unaryBefore = await unaryQueries();
  assert.ok(unaryBefore > 0, "the test's own unary lookups (advertised) are counted");

  const q = await b.kv.query(hashes);
  assert.equal(q.hits, 16);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: 16 });
  assert.equal(await unaryQueries(), unaryBefore, 'B looked the holders up on its QueryPrefixStream, not unary');
  const got = await loadBlocks(b, q.leaseId, 16, 40);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
  assert.equal((await metric(B, 'kvfabric_pull_bytes_total')) - pulledBefore, 16 * PAGE);

  // a second query is a local hit now
  const again = await b.kv.query(hashes);
  assert.deepEqual(again.breakdown, { local: 16, ssd: 0, remote: 0 });
  await b.kv.release(again.leaseId);

  // B advertised its copies: locate --blocks lists both owners of every block
  await advertised(ns, hashes, B, 16);
  const res = await runCli([
    'locate',
    '--metaserver-addr',
    cluster.metaserver.addr,
    '--namespace',
    ns,
    '--hashes',
    hashes.map((h) => h.toString('hex')).join(','),
    '--blocks',
    '--output',
    'json',
  ]);
  assert.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout) as {
    nodes: { addr: string; prefixLen: number }[];
    blocks: { hash: string; owners: string[] }[];
  };
  assert.deepEqual(
    out.nodes.map((n) => n.prefixLen),
    [16, 16],
  );
  assert.equal(out.blocks.length, 16);
  for (const blk of out.blocks)
    assert.deepEqual([...blk.owners].sort(), [A.addr, B.addr].sort(), `owners of ${blk.hash}`);

  // nothing stays pinned on either side once the lease and the grant are gone
  await until('no pins on A or B', async () => (await pinned(A)) === 0 && (await pinned(B)) === 0);
  assert.equal(await metric(A, 'kvfabric_peer_grants_active'), 0);
});

test('long-poll: the query that starts a pull answers READY in one Query call (wait_ms)', async () => {
  const ns = 'pull/long-poll';
  const hashes = freshHashes(32);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(ns, hashes, A, 32);
  const queriesBefore = await metric(B, 'kvfabric_index_query_duration_seconds_count');
  const q = await b.kv.query(hashes, { pollMs: 2_000 }); // only a node ignoring wait_ms would poll (a second call)
  assert.equal(q.hits, 32);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: 32 });
  assert.equal(
    (await metric(B, 'kvfabric_index_query_duration_seconds_count')) - queriesBefore,
    1,
    'one Query call on B',
  );
  const got = await loadBlocks(b, q.leaseId, 32, 64);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
});

test('partial remote prefix: A holds 10 of 16, B gets exactly 10', async () => {
  const ns = 'pull/partial';
  const hashes = freshHashes(16);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes.slice(0, 10));
  await advertised(ns, hashes, A, 10);
  const q = await b.kv.query(hashes);
  assert.equal(q.hits, 10);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: 10 });
  const got = await loadBlocks(b, q.leaseId, 10, 0);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
});

test('prefix spread over two holders: B pulls 0..7 from A and continues with 8..15 from C', async () => {
  const ns = 'pull/spread';
  const hashes = freshHashes(16);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  await using c = await engine(C, ns);
  const first = await saveBlocks(a, hashes.slice(0, 8));
  const second = await saveBlocks(c, hashes.slice(8));
  await advertised(ns, hashes, A, 8);
  await until('C advertising the tail', async () =>
    (await meta.queryOwners(ns, hashes.slice(8))).owners.every((o) => o.some((x) => x.addr === C.addr)),
  );
  const q = await b.kv.query(hashes);
  assert.equal(q.hits, 16);
  assert.equal(q.breakdown.remote, 16);
  const got = await loadBlocks(b, q.leaseId, 16, 20);
  [...first, ...second].forEach((d, i) => assert.ok(got[i]!.equals(d), `block ${i} differs`));
});

test('local blocks in front, remote behind: the breakdown splits local and remote', async () => {
  const ns = 'pull/mixed';
  const hashes = freshHashes(12);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  const head = await saveBlocks(b, hashes.slice(0, 4), 60);
  assert.ok(head.every((h, i) => h.length === data[i]!.length));
  await advertised(ns, hashes, A, 12);
  const q = await b.kv.query(hashes);
  assert.equal(q.hits, 12);
  assert.deepEqual(q.breakdown, { local: 4, ssd: 0, remote: 8 });
  const got = await loadBlocks(b, q.leaseId, 12, 0);
  for (let i = 4; i < 12; i++) assert.ok(got[i]!.equals(data[i]!), `block ${i} differs`);
});

test('50 concurrent queries for one prefix pull each block once', async () => {
  const ns = 'pull/many';
  const hashes = freshHashes(64);
  await using a = await engine(A, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(ns, hashes, A, 64);
  const engines = await Promise.all(Array.from({ length: 5 }, () => engine(C, ns)));
  try {
    const pulledBefore = await metric(C, 'kvfabric_pull_bytes_total');
    const readBefore = await metric(C, 'kvfabric_transport_read_bytes_total');
    const servedBefore = await metric(A, 'kvfabric_transport_served_bytes_total');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => engines[i % 5]!.kv.query(hashes)));
    for (const q of answers) assert.equal(q.hits, 64);
    assert.equal(answers.reduce((s, q) => s + q.breakdown.remote, 0) > 0, true);
    assert.equal((await metric(C, 'kvfabric_pull_bytes_total')) - pulledBefore, 64 * PAGE, 'bytes sealed from pulls');
    assert.equal(
      (await metric(C, 'kvfabric_transport_read_bytes_total')) - readBefore,
      64 * PAGE,
      'bytes read by the transport',
    );
    assert.equal(
      (await metric(A, 'kvfabric_transport_served_bytes_total')) - servedBefore,
      64 * PAGE,
      'bytes served by A',
    );
    const got = await loadBlocks(engines[0]!, answers[0]!.leaseId, 64, 0);
    got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
    for (const [i, q] of answers.entries()) if (i > 0) await engines[i % 5]!.kv.release(q.leaseId);
    await until('no pins on C', async () => (await pinned(C)) === 0);
  } finally {
    for (const e of engines) await e[Symbol.asyncDispose]();
  }
});

test('the pull failure counters are exported with their reasons', async () => {
  const text = await (await fetch(`http://${B.httpAddr}/metrics`)).text();
  for (const reason of [
    'metaserver_unavailable',
    'peer_unreachable',
    'short_grant',
    'transport_failed',
    'transport_timeout',
    'grant_refused',
    'deadline',
  ]) {
    assert.match(text, new RegExp(`kvfabric_pull_failures_total\\{reason="${reason}"[^}]*\\} \\d+`));
  }
  assert.ok((await nodeId(B)).length > 0);
});
