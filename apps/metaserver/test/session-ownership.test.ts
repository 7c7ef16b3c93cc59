// Ownership follows the node's session (issue 12), all real processes: a metaserver with the shortest TTL (one
// minute) and two kvfabric-node processes, each with an SDK engine that saves 64 blocks once and never again. Node B
// is killed (-9); node A keeps heartbeating. Past the TTL, B's ownerships and session are gone, and A's 64 blocks
// are still answered, through further sweeps. Before, every ownership not inserted again within the TTL was dropped,
// a live node's included, and never came back (4,608 blocks indexed, 0 after a minute).
// Waits are on conditions with generous deadlines; the only time asserted is a lower bound (B's blocks are not
// dropped before the TTL), which a slow machine can only make longer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvEngine, KvRegion, MetaserverClient } from '@kvfabric/client';
import { startMetaserver, startNode, type MetaserverHandle, type NodeHandle } from '@kvfabric/testkit';

const NS = 'session-ownership/ns';
const BLOCKS = 64;
const TTL_MS = 60_000;

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Saves BLOCKS random blocks under fresh random hashes through an SDK engine on `node`; returns the hashes. */
async function saveOnce(node: NodeHandle): Promise<{ hashes: Buffer[]; close: () => Promise<void> }> {
  const region = KvRegion.create({
    layout: { numLayers: 2, kvSplit: true, bytesPerLayerBlock: 4096, numBlocks: BLOCKS },
  });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: NS, region });
  const hashes = Array.from({ length: BLOCKS }, () => randomBytes(32));
  hashes.forEach((_, i) => region.writeBlock(i, randomBytes(region.geometry.blockBytes)));
  const res = await kv.save(
    hashes.map((_, i) => i),
    hashes,
  );
  assert.equal(res.sealed, BLOCKS);
  return {
    hashes,
    close: async () => {
      await kv.close();
      region.close();
    },
  };
}

async function nodeIdOf(node: NodeHandle): Promise<string> {
  return ((await (await fetch(`http://${node.httpAddr}/health`)).json()) as { nodeId: string }).nodeId;
}

async function sweeps(ms: MetaserverHandle): Promise<number> {
  const text = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('kvfabric_metaserver_sweeps_total'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

test("a heartbeating node's blocks stay indexed past the TTL; a killed node's are dropped after it", async () => {
  await using ms = await startMetaserver({ args: ['--ttl-minutes', '1', '--sweep-interval-secs', '1'] });
  const nodeArgs = ['--heartbeat-interval-secs', '0.5'];
  await using a = await startNode({ metaserverAddr: ms.addr, poolSize: '64mib', args: nodeArgs });
  await using b = await startNode({ metaserverAddr: ms.addr, poolSize: '64mib', args: nodeArgs });
  const meta = new MetaserverClient(ms.addr);
  const [idA, idB] = [await nodeIdOf(a), await nodeIdOf(b)];
  const onA = await saveOnce(a);
  const onB = await saveOnce(b);
  try {
    const holds = async (hashes: Buffer[], addr: string) =>
      (await meta.queryPrefix(NS, hashes)).nodes.some((n) => n.addr === addr && n.prefixLen === BLOCKS);
    await until(
      'both nodes advertised',
      async () => (await holds(onA.hashes, a.addr)) && (await holds(onB.hashes, b.addr)),
      60_000,
    );
    assert.equal((await meta.getStats()).owners, BigInt(2 * BLOCKS));

    const killedAt = Date.now();
    b.proc.kill('SIGKILL');
    await until('ownerships dropped', async () => (await meta.getStats()).owners < BigInt(2 * BLOCKS), 240_000);
    const droppedAfterMs = Date.now() - killedAt;
    // B heartbeat at most 0.5 s before the kill; the metaserver keeps a silent node's blocks for the TTL
    assert.ok(droppedAfterMs >= TTL_MS - 1_000, `ownerships dropped ${droppedAfterMs} ms after the kill`);
    assert.equal((await meta.getStats()).owners, BigInt(BLOCKS), "B's blocks went, A's stayed");
    assert.ok(!(await meta.listNodes()).nodes.some((n) => n.nodeId === idB), "B's session went with its blocks");

    // two more full sweeps, well past A's last insert plus the TTL: A's blocks are all still there
    const seen = await sweeps(ms);
    await until('two more sweeps', async () => (await sweeps(ms)) >= seen + 2, 60_000);
    const stats = await meta.getStats();
    assert.deepEqual(
      [stats.owners, stats.blocks, stats.liveNodes, stats.staleNodes],
      [BigInt(BLOCKS), BigInt(BLOCKS), 1n, 0n],
    );
    const prefix = await meta.queryPrefix(NS, onA.hashes);
    assert.deepEqual(
      prefix.nodes.map((n) => [n.nodeId, n.addr, n.prefixLen]),
      [[idA, a.addr, BLOCKS]],
    );
    assert.deepEqual((await meta.queryPrefix(NS, onB.hashes)).nodes, []);
    const nodes = (await meta.listNodes()).nodes;
    assert.deepEqual(
      nodes.map((n) => [n.nodeId, n.indexedBlocks]),
      [[idA, BigInt(BLOCKS)]],
    );
  } finally {
    meta.close();
    await onA.close();
    await onB.close().catch(() => {}); // its node is gone
  }
});
