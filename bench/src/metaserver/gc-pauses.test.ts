// The bench's reading of the metaserver's GC pauses: a real metaserver's pause log over a window, and the summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient } from '@kvfabric/client';
import { startMetaserver } from '@kvfabric/testkit';
import { fetchGcPauses, summarizeGcPauses } from './gc-pauses.js';

test('summarizeGcPauses: count, total, nearest-rank p99 and max are exact', () => {
  const ms = [...Array.from({ length: 98 }, () => 0.5), 4, 12];
  assert.deepEqual(summarizeGcPauses(ms), { pauses: 100, totalMs: 98 * 0.5 + 16, p99Ms: 4, maxMs: 12 });
  assert.deepEqual(summarizeGcPauses([0.25]), { pauses: 1, totalMs: 0.25, p99Ms: 0.25, maxMs: 0.25 });
  assert.deepEqual(summarizeGcPauses([]), { pauses: 0, totalMs: 0, p99Ms: 0, maxMs: 0 });
});

test('fetchGcPauses: a running metaserver lists the pauses of a window; a bad window is refused', async () => {
  await using meta = await startMetaserver({ logLevel: 'warn' });
  // 2000 unary calls leave tens of MB of gRPC garbage in the server: its young generation is collected
  using client = new MetaserverClient(meta.addr);
  const hashes = Buffer.alloc(64 * 32, 7);
  for (let lane = 0; lane < 2000; lane += 20) {
    const batch = Array.from({ length: 20 }, () => client.queryPrefix('gc/test', { packed: hashes, hashLen: 32 }));
    for (const res of await Promise.all(batch)) assert.deepEqual(res.nodes, []);
  }
  const all = await fetchGcPauses(meta.httpAddr, 0, Date.now() + 60_000);
  assert.ok(all.length > 0, 'pauses while serving');
  for (const ms of all) assert.ok(ms > 0 && ms < 60_000, `a plausible pause: ${ms} ms`);
  assert.deepEqual(await fetchGcPauses(meta.httpAddr, Date.now() + 60_000, Date.now() + 120_000), []);
  await assert.rejects(fetchGcPauses(meta.httpAddr, Number.NaN, 0), /400.*since: expected a Unix time/);
});
