// A pull larger than the holder's --grant-pin-budget completes: the puller releases each grant window as soon as its
// chunks are read, and a window the holder refuses for its budget is asked again once earlier windows let go.
// Real node processes, tcp transport: 160 MiB pulled through a 70 MiB budget (a window is at most 64 MiB and a
// session asks for at most two at a time, the first of 16 MiB: the second is refused until the first lets go).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient, type KvLayoutSpec } from '@kvfabric/client';
import { startCluster, type Cluster, type NodeHandle } from '@kvfabric/testkit';
import { advertised, engine, freshHashes, loadBlocks, metric, saveBlocks, until, PAGE } from './pull-helpers.js';

const BLOCKS = 2560; // × 64 KiB = 160 MiB
const LAYOUT: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 8192, numBlocks: BLOCKS };

let cluster: Cluster;
let meta: MetaserverClient;
let A: NodeHandle, B: NodeHandle;

before(async () => {
  cluster = await startCluster({
    nodes: 2,
    node: { poolSize: '256mib', args: ['--heartbeat-interval-secs', '0.5', '--grant-pin-budget', '70mib'] },
  });
  [A, B] = cluster.nodes as [NodeHandle, NodeHandle];
  meta = new MetaserverClient(cluster.metaserver.addr);
});

after(async () => {
  meta?.close();
  await cluster?.[Symbol.asyncDispose]();
});

test('a 160 MiB prefix pulls whole from a holder whose grants may pin 70 MiB, and every grant is released', async () => {
  const ns = 'pull/budget';
  const hashes = freshHashes(BLOCKS);
  await using a = await engine(A, ns, LAYOUT);
  await using b = await engine(B, ns, LAYOUT);
  const data = await saveBlocks(a, hashes);
  await advertised(meta, ns, hashes, A, BLOCKS);
  const q = await b.kv.query(hashes, { timeoutMs: 120_000 });
  assert.deepEqual(q.breakdown, { local: 0, ssd: 0, remote: BLOCKS });
  const got = await loadBlocks(b, q.leaseId, BLOCKS, 0);
  got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
  assert.equal(await metric(B, 'kvfabric_pull_bytes_total'), BLOCKS * PAGE);
  assert.ok((await metric(A, 'kvfabric_peer_grants_refused_total')) > 0, 'the budget refused a window at least once');
  await until('every grant released', async () => (await metric(A, 'kvfabric_peer_grant_pinned_bytes')) === 0);
});
