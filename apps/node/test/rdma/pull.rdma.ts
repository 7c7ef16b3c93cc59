// Remote pulls over verbs between real node processes on two soft-RoCE devices (rxa on one end of a veth pair, rxb
// on the other) inside the project's QEMU VM: `npm run test:rdma`. A metaserver, node A on rxa, node B on rxb,
// SDK engines. Peer gRPC stays on loopback; the KV bytes cross the veth pair as RDMA READs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMetaserver, startNode, type MetaserverHandle, type NodeHandle } from '@kvfabric/testkit';
import { MetaserverClient } from '@kvfabric/client';
import { engine, freshHashes, loadBlocks, metric, saveBlocks, until, PAGE } from '../pull-helpers.js';

const DEV_A = process.env.KVF_RDMA_A_DEV;
const DEV_B = process.env.KVF_RDMA_B_DEV;
if (!DEV_A || !DEV_B) throw new Error('these tests need the RDMA VM: run `npm run test:rdma` (KVF_RDMA_A_DEV/KVF_RDMA_B_DEV unset)');

let metaserver: MetaserverHandle;
let meta: MetaserverClient;
let A: NodeHandle, B: NodeHandle;
const SLOW = 60_000; // conditions polled under emulation: generous deadlines, never a speed assumption
const common = ['--heartbeat-interval-secs', '0.5', '--pull-timeout-secs', '60', '--streams-per-peer', '2'];

before(async () => {
  metaserver = await startMetaserver();
  [A, B] = await Promise.all([
    startNode({ metaserverAddr: metaserver.addr, poolSize: '128mib', transport: 'verbs', args: [...common, '--nics', DEV_A] }),
    startNode({ metaserverAddr: metaserver.addr, poolSize: '128mib', transport: 'verbs', args: [...common, '--nics', DEV_B] }),
  ]);
  meta = new MetaserverClient(metaserver.addr);
});

after(async () => {
  meta?.close();
  for (const n of [A, B]) await n?.[Symbol.asyncDispose]();
  await metaserver?.[Symbol.asyncDispose]();
});

async function advertised(ns: string, hashes: Buffer[], node: NodeHandle, n: number): Promise<void> {
  await until(`${node.addr} advertising ${n} blocks`, async () => (await meta.queryPrefix(ns, hashes)).nodes.some((x) => x.addr === node.addr && x.prefixLen === n), SLOW);
}

test('nodes start on verbs with their device, its RoCE v2 GID and memory windows', () => {
  for (const [node, dev] of [[A, DEV_A], [B, DEV_B]] as const) {
    const logs = node.proc.logs();
    assert.match(logs, /"msg":"transport: verbs \(requested with --transport verbs\)"/);
    const ready = node.proc.logLines().find((l) => l.msg === `verbs: ${dev} ready`) as { gidType?: string; memoryWindows?: boolean } | undefined;
    assert.ok(ready, `no "verbs: ${dev} ready" line`);
    assert.equal(ready.gidType, 'RoCE v2');
    assert.equal(ready.memoryWindows, true);
  }
});

test('B pulls a prefix saved on A over RDMA READ, byte-exact, and the grant\'s windows are invalidated', async () => {
  const ns = 'rdma/full';
  const hashes = freshHashes(24);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(ns, hashes, A, 24);
  const q = await b.kv.query(hashes, { pollMs: SLOW });
  assert.equal(q.hits, 24);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: 24 });
  const got = await loadBlocks(b, q.leaseId, 24, 40);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
  assert.equal(await metric(B, 'kvfabric_pull_bytes_total'), 24 * PAGE);
  await until('A released every grant and unpinned', async () => (await metric(A, 'kvfabric_peer_grants_active')) === 0 && (await metric(A, 'kvfabric_index_pinned_blocks')) === 0, SLOW);
});

test('A and B pull from each other at the same time', async () => {
  const ns = 'rdma/both';
  const fromA = freshHashes(16);
  const fromB = freshHashes(16);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const dataA = await saveBlocks(a, fromA, 0);
  const dataB = await saveBlocks(b, fromB, 0);
  await advertised(ns, fromA, A, 16);
  await advertised(ns, fromB, B, 16);
  const [qa, qb] = await Promise.all([a.kv.query(fromB, { pollMs: SLOW }), b.kv.query(fromA, { pollMs: SLOW })]);
  assert.equal(qa.hits, 16);
  assert.equal(qb.hits, 16);
  const [gotA, gotB] = await Promise.all([loadBlocks(a, qa.leaseId, 16, 32), loadBlocks(b, qb.leaseId, 16, 32)]);
  gotA.forEach((g, i) => assert.ok(g.equals(dataB[i]!), `A's copy of block ${i} differs`));
  gotB.forEach((g, i) => assert.ok(g.equals(dataA[i]!), `B's copy of block ${i} differs`));
});

test('--transport auto picks verbs on an RDMA host and says why', async () => {
  await using n = await startNode({ poolSize: '16mib', transport: 'auto', args: ['--nics', DEV_B] });
  assert.match(n.proc.logs(), /"msg":"transport: verbs \(auto: RDMA devices with an active port: [^)]*\)"/);
});

test('the serving node killed with kill -9 mid-pull: a shorter hit, and every loaded byte is right', async () => {
  const ns = 'rdma/kill';
  await using metaserver2 = await startMetaserver();
  const meta2 = new MetaserverClient(metaserver2.addr);
  try {
    await using holder = await startNode({ metaserverAddr: metaserver2.addr, poolSize: '64mib', transport: 'verbs', args: [...common, '--nics', DEV_A] });
    // B2 reads slowly (256 KiB/s in 64 KiB batches), so the kill lands mid-pull however fast the machine is.
    await using reader = await startNode({ metaserverAddr: metaserver2.addr, poolSize: '64mib', transport: 'verbs', args: [...common, '--nics', DEV_B, '--pull-max-bytes-per-sec', '256kib', '--pull-chunk-bytes', '64kib'] });
    const hashes = freshHashes(64);
    await using a = await engine(holder, ns);
    await using b = await engine(reader, ns);
    const data = await saveBlocks(a, hashes);
    await until('holder advertised', async () => (await meta2.queryPrefix(ns, hashes)).nodes.some((x) => x.prefixLen === 64), SLOW);
    const query = b.kv.query(hashes, { pollMs: SLOW });
    await until('the pull under way', async () => (await metric(reader, 'kvfabric_pull_bytes_total')) >= 2 * PAGE, SLOW);
    holder.proc.kill('SIGKILL');
    const q = await query;
    assert.ok(q.hits >= 2 && q.hits < 64, `a shorter hit, got ${q.hits}`);
    const got = await loadBlocks(b, q.leaseId, q.hits, 64);
    got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
    assert.equal(await metric(reader, 'kvfabric_index_partial_blocks'), 0, 'nothing half-pulled stays');
  } finally {
    meta2.close();
  }
});
