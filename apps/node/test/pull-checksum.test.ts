// Block integrity end to end, with real processes: holder A's tcp data server sits behind a proxy that flips bits in
// DATA frames on their way (a hostile network; the frames stay well formed, so only the page checksums can tell).
// Reader B must drop what differs, count it, mark A suspect and load only correct bytes; a clean path through the
// same proxy verifies and seals; a copy pulled and verified by C carries its checksums on to the next reader.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  freePort,
  isAddrInUse,
  startMetaserver,
  startNode,
  type MetaserverHandle,
  type NodeHandle,
} from '@kvfabric/testkit';
import { MetaserverClient } from '@kvfabric/client';
import { startFlipProxy, type FlipProxy } from './flip-proxy.js';
import { advertised, engine, freshHashes, loadBlocks, metric, saveBlocks, PAGE } from './pull-helpers.js';

let metaserver: MetaserverHandle;
let meta: MetaserverClient;
let proxy: FlipProxy;
let A: NodeHandle, B: NodeHandle, C: NodeHandle;

/** Holder A with its data server on a port of our choosing, advertised as the proxy's address. */
async function startHolder(): Promise<NodeHandle> {
  for (let attempt = 1; ; attempt++) {
    const dataPort = await freePort();
    proxy = await startFlipProxy({ host: '127.0.0.1', port: dataPort });
    try {
      return await startNode({
        metaserverAddr: metaserver.addr,
        poolSize: '64mib',
        args: [
          '--heartbeat-interval-secs',
          '0.3',
          '--tcp-data-port',
          String(dataPort),
          '--tcp-advertise-addr',
          proxy.addr,
        ],
      });
    } catch (err) {
      await proxy[Symbol.asyncDispose]();
      if (attempt >= 3 || !isAddrInUse(err)) throw err;
    }
  }
}

before(async () => {
  metaserver = await startMetaserver();
  meta = new MetaserverClient(metaserver.addr);
  A = await startHolder();
  // Readers: a long suspicion (nothing in this file waits it out), failures never retried on a timer; B reads in
  // chunks of 2 blocks, so the chunks before a damaged one seal and the engine gets a shorter, correct hit.
  const reader = ['--heartbeat-interval-secs', '0.3', '--pull-suspect-secs', '600', '--pull-backoff-secs', '600'];
  [B, C] = await Promise.all([
    startNode({
      metaserverAddr: metaserver.addr,
      poolSize: '64mib',
      args: [...reader, '--pull-chunk-bytes', `${2 * PAGE}`],
    }),
    startNode({ metaserverAddr: metaserver.addr, poolSize: '64mib', args: reader }),
  ]);
});

after(async () => {
  meta?.close();
  for (const n of [A, B, C]) await n?.[Symbol.asyncDispose]();
  await proxy?.[Symbol.asyncDispose]();
  await metaserver?.[Symbol.asyncDispose]();
});

const leftovers = async (n: NodeHandle) => ({
  partial: await metric(n, 'kvfabric_index_partial_blocks'),
  pinned: await metric(n, 'kvfabric_index_pinned_blocks'),
});

test('bits flipped on the wire: the pull is dropped, counted, the holder suspect; clean pulls verify and seal', async () => {
  const ns = 'integrity/flip';
  const hashes = freshHashes(8);
  await using a = await engine(A, ns);
  const data = await saveBlocks(a, hashes);
  await advertised(meta, ns, hashes, A, 8);

  // 1. One bit of the third DATA frame (one page each here) flipped on its way to B: the chunk holding that page
  // never seals, nor does anything after it in the prefix; what B's engine loads is the correct shorter prefix.
  await using b = await engine(B, ns);
  proxy.skip = 2;
  proxy.flips = 1;
  const grantsFromA = await metric(A, 'kvfabric_peer_granted_blocks_total');
  const q = await b.kv.query(hashes);
  assert.equal(proxy.flipped, 1, 'the proxy corrupted one frame');
  assert.ok(q.hits < 8, `a shorter hit, got ${q.hits}`);
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: q.hits });
  (await loadBlocks(b, q.leaseId, q.hits, 20)).forEach((got, i) => assert.ok(got.equals(data[i]!), `B block ${i}`));
  assert.equal(await metric(B, 'kvfabric_pull_checksum_mismatch_blocks_total'), 1);
  assert.equal(await metric(B, 'kvfabric_pull_failures_total', 'reason="checksum_mismatch"'), 1);
  assert.equal(await metric(B, 'kvfabric_pull_suspect_peers'), 1);
  // sealed: the chunks that landed intact (at least the hit, never the damaged chunk), each page verified
  const sealedOnB = await metric(B, 'kvfabric_index_blocks');
  assert.ok(sealedOnB >= q.hits && sealedOnB <= 6, `sealed ${sealedOnB}`);
  assert.equal(await metric(B, 'kvfabric_pull_blocks_total'), sealedOnB);
  assert.equal(await metric(B, 'kvfabric_pull_verified_pages_total'), sealedOnB);
  assert.deepEqual(await leftovers(B), { partial: 0, pinned: 0 });
  assert.equal((await metric(A, 'kvfabric_peer_granted_blocks_total')) - grantsFromA, 8);

  // 2. A stays suspect: with the path clean again, B does not pull the rest from it (A grants nothing more).
  assert.equal(proxy.flips, 0);
  const again = await b.kv.query(hashes);
  assert.deepEqual(again.breakdown, { local: q.hits, ssd: 0, remote: 0 });
  await b.kv.release(again.leaseId);
  assert.equal((await metric(A, 'kvfabric_peer_granted_blocks_total')) - grantsFromA, 8, 'A was not asked again');
  assert.equal(await metric(B, 'kvfabric_pull_suspect_peers'), 1);

  // 3. C pulls the same blocks through the same (now clean) proxy: every page verified, sealed, bytes equal.
  await using c = await engine(C, ns);
  const framesBefore = proxy.frames;
  const qc = await c.kv.query(hashes);
  assert.equal(qc.hits, 8);
  assert.deepEqual(qc.breakdown, { local: 0, ssd: 0, remote: 8 });
  (await loadBlocks(c, qc.leaseId, 8, 20)).forEach((got, i) => assert.ok(got.equals(data[i]!), `C block ${i}`));
  assert.ok(proxy.frames > framesBefore, 'the bytes came through the proxy');
  assert.equal(await metric(C, 'kvfabric_pull_verified_pages_total'), 8);
  assert.equal(await metric(C, 'kvfabric_pull_checksum_mismatch_blocks_total'), 0);
  assert.equal(await metric(C, 'kvfabric_pull_suspect_peers'), 0);

  assert.equal((await metric(A, 'kvfabric_peer_granted_blocks_total')) - grantsFromA, 16, "C's pull came from A");

  // 4. B, still suspecting A, pulls the rest from C: C serves the checksums it verified, B verifies against them.
  await advertised(meta, ns, hashes, C, 8);
  const qb = await b.kv.query(hashes);
  assert.equal(qb.hits, 8);
  assert.deepEqual(qb.breakdown, { local: q.hits, ssd: 0, remote: 8 - q.hits }); // the local prefix, then the rest
  (await loadBlocks(b, qb.leaseId, 8, 40)).forEach((got, i) => assert.ok(got.equals(data[i]!), `B block ${i}`));
  assert.equal(await metric(B, 'kvfabric_pull_verified_pages_total'), 8);
  assert.equal(await metric(B, 'kvfabric_pull_checksum_mismatch_blocks_total'), 1);
  assert.equal(await metric(B, 'kvfabric_pull_bytes_total'), 8 * PAGE);
  assert.equal((await metric(A, 'kvfabric_peer_granted_blocks_total')) - grantsFromA, 16, 'nothing more from A');
});
