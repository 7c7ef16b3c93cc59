// The bench's reading of the metaserver's GC pauses: a real metaserver's pause log over a window, and the summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient } from '@kvfabric/client';
import { BIN, shebangNodeFlags, startMetaserver } from '@kvfabric/testkit';
import { describeKinds, fetchGcPauses, nodeFlagsOf, summarizeGcPauses } from './gc-pauses.js';

test('summarizeGcPauses: count, total, nearest-rank p99, max and the kinds are exact', () => {
  const pause = (ms: number, kind = 'minor') => ({ atMs: 0, ms, kind });
  const s = summarizeGcPauses([...Array.from({ length: 98 }, () => pause(0.5)), pause(4), pause(12, 'major')]);
  assert.deepEqual(
    { pauses: s.pauses, totalMs: s.totalMs, p99Ms: s.p99Ms, maxMs: s.maxMs },
    { pauses: 100, totalMs: 98 * 0.5 + 16, p99Ms: 4, maxMs: 12 },
  );
  assert.deepEqual(s.byKind, {
    minor: { pauses: 99, totalMs: 98 * 0.5 + 4, maxMs: 4 },
    major: { pauses: 1, totalMs: 12, maxMs: 12 },
  });
  assert.equal(describeKinds(s), 'minor 99 / 53.0 ms (max 4.0), major 1 / 12.0 ms (max 12.0)');
  assert.deepEqual(summarizeGcPauses([pause(0.25)]).p99Ms, 0.25);
  const none = summarizeGcPauses([]);
  assert.deepEqual([none.pauses, none.totalMs, none.p99Ms, none.maxMs, none.byKind], [0, 0, 0, 0, {}]);
  assert.equal(describeKinds(none), 'no pauses');
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
  for (const p of all) {
    assert.ok(p.ms > 0 && p.ms < 60_000, `a plausible pause: ${p.ms} ms`);
    assert.ok(['minor', 'major', 'incremental', 'weakcb', 'other'].includes(p.kind), p.kind);
  }
  assert.deepEqual(await fetchGcPauses(meta.httpAddr, Date.now() + 60_000, Date.now() + 120_000), []);
  await assert.rejects(fetchGcPauses(meta.httpAddr, Number.NaN, 0), /400.*since: expected a Unix time/);
  // the collector settings the bench notes name are the ones the process runs with: its bin file's shebang flags
  const flags = shebangNodeFlags(BIN.metaserver).join(' ');
  assert.match(flags, /--max-semi-space-size=\d+/);
  assert.equal(nodeFlagsOf(meta.proc.pid), flags);
  assert.equal(nodeFlagsOf(-1), 'unknown');
});
