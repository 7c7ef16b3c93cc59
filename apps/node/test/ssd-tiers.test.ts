// Where each block lives, as the metaserver and `kvfabric locate --blocks` tell it, with real node processes: a node
// with an SSD tier and a small pool (blocks evicted from DRAM show `ssd`, those written ahead of eviction `both`, the
// rest `dram`; promoted ones `both`), a restart (every replayed block `ssd`), and write-through (pulled blocks are
// queued for SSD too; blocks the SSD evicts while DRAM holds them show `dram`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startMetaserver, startNode, type MetaserverHandle, type NodeHandle } from '@kvfabric/testkit';
import { MetaserverClient } from '@kvfabric/client';
import { tierName } from '@kvfabric/common';
import { engine, freshHashes, metric, saveBlocks, until } from './pull-helpers.js';
import { readBack, savePastPool, ssdDir, startSsdNode } from './ssd-helpers.js';

const HEARTBEAT = ['--heartbeat-interval-secs', '0.5'];

/** Per block, node address → tier name, as the metaserver answers now. */
async function tiersOf(meta: MetaserverClient, ns: string, hashes: Buffer[]): Promise<Map<string, string>[]> {
  const { owners } = await meta.queryOwners(ns, hashes);
  return owners.map((list) => new Map(list.map((o) => [o.addr, tierName(o.tier)])));
}

/** How many blocks `node` holds in each tier, per the metaserver. */
function counts(tiers: Map<string, string>[], node: NodeHandle): Record<string, number> {
  const c: Record<string, number> = { dram: 0, ssd: 0, both: 0 };
  for (const t of tiers) {
    const tier = t.get(node.addr);
    if (tier) c[tier]!++;
  }
  return c;
}

/**
 * Waits until the metaserver's tiers for `node` agree with the node's own counts: blocks on SSD (ssd + both) equal
 * kvfabric_ssd_blocks, blocks in DRAM (dram + both) equal kvfabric_index_blocks, nothing left to report. Returns the
 * tiers it agreed on.
 */
async function settled(
  meta: MetaserverClient,
  ns: string,
  hashes: Buffer[],
  node: NodeHandle,
): Promise<Map<string, string>[]> {
  let tiers: Map<string, string>[] = [];
  let last = '';
  await until(
    `${node.addr}'s tiers at the metaserver`,
    async () => {
      const pending = await metric(node, 'kvfabric_metaserver_pending_updates');
      const onSsd = await metric(node, 'kvfabric_ssd_blocks');
      const inDram = await metric(node, 'kvfabric_index_blocks');
      tiers = await tiersOf(meta, ns, hashes);
      const c = counts(tiers, node);
      last = JSON.stringify({ pending, onSsd, inDram, ...c });
      return pending === 0 && c.ssd! + c.both! === onSsd && c.dram! + c.both! === inDram;
    },
    60_000,
  ).catch((err: Error) => assert.fail(`${err.message}: last seen ${last}`));
  return tiers;
}

async function locate(ms: MetaserverHandle, ns: string, hashes: Buffer[], output: 'json' | 'table') {
  const hex = hashes.map((h) => h.toString('hex')).join(',');
  const args = ['locate', '--metaserver-addr', ms.addr, '--namespace', ns, '--hashes', hex, '--blocks'];
  const res = await runCli([...args, '--output', output]);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout;
}

test('ssd tiers: evicted blocks show ssd, the rest dram or both, promoted ones both, replayed ones ssd', async () => {
  const NS = 'tiers/evict';
  using dir = ssdDir();
  await using ms = await startMetaserver();
  const meta = new MetaserverClient(ms.addr);
  try {
    const opts = { poolSize: '4mib', paths: [dir.path], capacity: '16mib', metaserverAddr: ms.addr, args: HEARTBEAT };
    await using node = await startSsdNode(opts);
    const hashes = freshHashes(192);
    await using e = await engine(node, NS);
    const { data, poolBlocks } = await savePastPool(node, e, hashes);
    assert.equal(await metric(node, 'kvfabric_ssd_dropped_blocks_total'), 0);

    const tiers = await settled(meta, NS, hashes, node);
    const c = counts(tiers, node);
    assert.equal(c.dram! + c.ssd! + c.both!, 192, `every block advertised once: ${JSON.stringify(c)}`);
    // the first blocks saved were evicted from DRAM long ago; the last ones are the hottest, never written ahead
    assert.equal(tiers[0]!.get(node.addr), 'ssd');
    assert.equal(tiers[191]!.get(node.addr), 'dram');
    assert.ok(c.ssd! >= 192 - poolBlocks && c.both! > 0 && c.dram! > 0, JSON.stringify(c));

    // the CLI prints the same tiers: JSON (tiers[i] belongs to owners[i]) and a TIER column
    const json = JSON.parse(await locate(ms, NS, hashes, 'json')) as {
      blocks: { owners: string[]; tiers: string[] }[];
    };
    assert.deepEqual(
      json.blocks.map((b) => [b.owners, b.tiers]),
      tiers.map((t) => [[...t.keys()], [...t.values()]]),
    );
    const table = await locate(ms, NS, hashes.slice(0, 1).concat(hashes.slice(191)), 'table');
    assert.match(table, /BLOCK\s+HASH\s+OWNER\s+TIER\n/);
    assert.match(table, new RegExp(`0\\s+${hashes[0]!.toString('hex')}\\s+${node.addr}\\s+ssd\\n`));
    assert.match(table, new RegExp(`1\\s+${hashes[191]!.toString('hex')}\\s+${node.addr}\\s+dram\\n`));

    // a query promotes the first 16 blocks from SSD: held in both tiers now
    const r = await readBack(e, hashes.slice(0, 16), data.slice(0, 16), 16);
    assert.deepEqual([r.served, r.fromSsd, r.corrupt], [16, 16, 0]);
    const promoted = await settled(meta, NS, hashes, node);
    assert.deepEqual(
      promoted.slice(0, 16).map((t) => t.get(node.addr)),
      Array(16).fill('both'),
    );

    // a restart: the journal's blocks are replayed and advertised as held on SSD, nothing in DRAM
    const onSsd = await metric(node, 'kvfabric_ssd_blocks');
    await node.restart();
    const recovered = await metric(node, 'kvfabric_ssd_recovered_blocks');
    assert.ok(recovered >= onSsd, `recovered ${recovered} of ${onSsd}`);
    const replayed = await settled(meta, NS, hashes, node);
    assert.deepEqual(counts(replayed, node), { dram: 0, ssd: recovered, both: 0 });
    const prefix = (await meta.queryPrefix(NS, hashes)).nodes.find((n) => n.addr === node.addr);
    assert.ok(prefix && prefix.prefixLen > 0, 'the restarted node holds a prefix');
    assert.equal(prefix.ssdBlocks, prefix.prefixLen, 'all of it on SSD only');
  } finally {
    meta.close();
  }
});

test('ssd tiers, write-through: pulled blocks are queued for SSD; blocks the SSD evicts but DRAM holds show dram', async () => {
  const NS = 'tiers/through';
  using dir = ssdDir();
  await using ms = await startMetaserver();
  const meta = new MetaserverClient(ms.addr);
  try {
    await using holder = await startNode({ poolSize: '16mib', metaserverAddr: ms.addr, args: HEARTBEAT });
    const opts = { poolSize: '32mib', paths: [dir.path], capacity: '16mib', writeMode: 'through' as const };
    await using node = await startSsdNode({ ...opts, metaserverAddr: ms.addr, args: HEARTBEAT });
    const pulled = freshHashes(32);
    {
      await using h = await engine(holder, NS);
      await saveBlocks(h, pulled);
    }
    await until('the holder advertising', async () => {
      const best = (await meta.queryPrefix(NS, pulled)).nodes[0];
      return best?.addr === holder.addr && best.prefixLen === 32;
    });
    await using e = await engine(node, NS);
    const q = await e.kv.query(pulled, { timeoutMs: 30_000 });
    assert.deepEqual([q.hits, q.breakdown.remote], [32, 32]);
    await e.kv.release(q.leaseId);
    // write-through takes pulled blocks as they seal, as it takes saved ones
    await until('pulled blocks on SSD', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) === 32);
    const both = await settled(meta, NS, pulled, node);
    assert.deepEqual(
      both.map((t) => [t.get(holder.addr), t.get(node.addr)]),
      Array(32).fill(['dram', 'both']),
    );

    // more saves than the SSD holds: it evicts its oldest blocks (the pulled ones), which DRAM still holds
    const saved = freshHashes(288);
    for (let at = 0; at < saved.length; at += 32) {
      await saveBlocks(e, saved.slice(at, at + 32));
      await until('write-through', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) >= 64 + at);
    }
    const evicted = await metric(node, 'kvfabric_ssd_evicted_blocks_total');
    assert.ok(evicted >= 32, `SSD evictions: ${evicted}`);
    const all = pulled.concat(saved);
    const tiers = await settled(meta, NS, all, node);
    assert.deepEqual(counts(tiers, node), { dram: evicted, ssd: 0, both: all.length - evicted });
    assert.deepEqual(
      tiers.slice(0, 32).map((t) => t.get(node.addr)),
      Array(32).fill('dram'),
    );
  } finally {
    meta.close();
  }
});
