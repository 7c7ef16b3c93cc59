// Remote pulls over verbs between real node processes on two soft-RoCE devices (rxa on one end of a veth pair, rxb
// on the other) inside the project's QEMU VM: `npm run test:rdma`. A metaserver, node A on rxa, node B on rxb,
// SDK engines. Peer gRPC stays on loopback; the KV bytes cross the veth pair as RDMA READs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMetaserver, startNode, type MetaserverHandle, type NodeHandle } from '@kvfabric/testkit';
import { MetaserverClient } from '@kvfabric/client';
import {
  advertised as advertisedOn,
  engine,
  freshHashes,
  loadBlocks,
  metric,
  saveBlocks,
  until,
  PAGE,
} from '../pull-helpers.js';

const DEV_A = process.env.KVF_RDMA_A_DEV;
const DEV_B = process.env.KVF_RDMA_B_DEV;
if (!DEV_A || !DEV_B)
  throw new Error('these tests need the RDMA VM: run `npm run test:rdma` (KVF_RDMA_A_DEV/KVF_RDMA_B_DEV unset)');
// Under QEMU's CPU emulation a node process needs far longer than on hardware to transpile and start.
process.env.KVFABRIC_TEST_START_TIMEOUT_MS ??= '180000';

let metaserver: MetaserverHandle;
let meta: MetaserverClient;
let A: NodeHandle, B: NodeHandle;
const SLOW = 60_000; // conditions polled under emulation: generous deadlines, never a speed assumption
// --verbs-ack-timeout 18 (1 s a try): rxe under emulation can take tens of ms to answer when queues are full.
const common = [
  '--heartbeat-interval-secs',
  '0.5',
  '--pull-timeout-secs',
  '60',
  '--streams-per-peer',
  '2',
  '--verbs-ack-timeout',
  '18',
];

// Node processes start slowly under emulation, so one cluster serves every test: A asks for verbs, B gets it from
// --transport auto, and B reads paced (2 MiB/s in 64 KiB batches) so that the last test can kill A mid-pull
// however fast the machine is.
before(async () => {
  metaserver = await startMetaserver();
  [A, B] = await Promise.all([
    startNode({
      metaserverAddr: metaserver.addr,
      poolSize: '128mib',
      transport: 'verbs',
      args: [...common, '--nics', DEV_A],
    }),
    startNode({
      metaserverAddr: metaserver.addr,
      poolSize: '128mib',
      transport: 'auto',
      args: [...common, '--nics', DEV_B, '--pull-max-bytes-per-sec', '2mib', '--pull-chunk-bytes', '64kib'],
    }),
  ]);
  meta = new MetaserverClient(metaserver.addr);
});

after(async () => {
  meta?.close();
  for (const n of [A, B]) await n?.[Symbol.asyncDispose]();
  await metaserver?.[Symbol.asyncDispose]();
});

const advertised = (ns: string, hashes: Buffer[], node: NodeHandle, n: number) =>
  advertisedOn(meta, ns, hashes, node, n, SLOW);

test('A runs verbs as asked, B picks verbs with --transport auto and says why; both on a RoCE v2 GID with memory windows', async () => {
  await A.proc.waitForLog(/"msg":"transport: verbs \(requested with --transport verbs\)"/, SLOW);
  await B.proc.waitForLog(/"msg":"transport: verbs \(auto: RDMA devices with an active port: [^)]*\)"/, SLOW);
  for (const [node, dev] of [
    [A, DEV_A],
    [B, DEV_B],
  ] as const) {
    await node.proc.waitForLog(new RegExp(`"msg":"verbs: ${dev} ready"`), SLOW);
    const ready = node.proc.logLines().find((l) => l.msg === `verbs: ${dev} ready`) as {
      gidType?: string;
      memoryWindows?: boolean;
    };
    assert.equal(ready.gidType, 'RoCE v2');
    assert.equal(ready.memoryWindows, true);
  }
});

test("B pulls a prefix saved on A over RDMA READ, byte-exact, and the grant's windows are invalidated", async () => {
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
  // every page the NIC landed was checked against A's checksum before it sealed
  assert.equal(await metric(B, 'kvfabric_pull_verified_pages_total'), 24);
  assert.equal(await metric(B, 'kvfabric_pull_checksum_mismatch_blocks_total'), 0);
  await until(
    'A released every grant and unpinned',
    async () =>
      (await metric(A, 'kvfabric_peer_grants_active')) === 0 && (await metric(A, 'kvfabric_index_pinned_blocks')) === 0,
    SLOW,
  );
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

test('the serving node killed with kill -9 mid-pull: a shorter hit, and every loaded byte is right (last: A stays dead)', async () => {
  const ns = 'rdma/kill';
  const hashes = freshHashes(64);
  await using a = await engine(A, ns);
  await using b = await engine(B, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(ns, hashes, A, 64);
  const before = await metric(B, 'kvfabric_pull_bytes_total');
  const query = b.kv.query(hashes, { pollMs: SLOW });
  await until(
    'the pull under way',
    async () => (await metric(B, 'kvfabric_pull_bytes_total')) - before >= 2 * PAGE,
    SLOW,
  );
  A.proc.kill('SIGKILL');
  const q = await query;
  assert.ok(q.hits >= 2 && q.hits < 64, `a shorter hit, got ${q.hits}`);
  const got = await loadBlocks(b, q.leaseId, q.hits, 64);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
  // Reads still posted to the dead peer settle when the transport times them out, which may be after the query
  // answered; then every slot they had set up is given back.
  await until('nothing half-pulled stays', async () => (await metric(B, 'kvfabric_index_partial_blocks')) === 0, SLOW);
});
