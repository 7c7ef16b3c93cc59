import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '@kvfabric/common/observability';
import { pageChecksum } from '@kvfabric/native';
import {
  EngineCore,
  MAX_QUERY_WAIT_MS,
  SAVE_STORED,
  SAVE_PRESENT,
  SAVE_NO_SPACE,
  type Fetcher,
  type QueryResult,
} from './engine-core.js';
import { handOver, testDataPath, testRegions, type TestRegion } from './testing/test-data-path.js';
import { createBlockIndex } from './block-index.js';
import { Evictor } from './eviction.js';
import { NamespaceRegistry } from './namespaces.js';
import type { RegisterSpec } from './instances.js';

// Region layout: 2 segments (K, V) of 2 KiB, laid out segment-major: seg s of block b at s*32 KiB + b*2 KiB.
const SEG = 2048;
const BLOCKS = 16;
const REGION = 2 * BLOCKS * SEG;

function setup(poolBytes = 1 << 20, fetcher?: Fetcher) {
  const data = testDataPath(poolBytes);
  const byName = new Map<string, TestRegion>();
  const sealed: Buffer[] = [];
  const evicted: Buffer[] = [];
  let now = 0;
  const index = createBlockIndex(64);
  const evictor = new Evictor(index, data, (run) => {
    if (!run.sealed) return;
    for (let at = 0; at < run.packed.length; at += run.hashLen)
      evicted.push(Buffer.from(run.packed.subarray(at, at + run.hashLen)));
  });
  const regions = testRegions();
  const core = new EngineCore({
    data,
    regions,
    index,
    namespaces: new NamespaceRegistry(),
    evictor,
    leaseTtlMs: 1000,
    logger: silentLogger(),
    now: () => now,
    fetcher,
    onSealed: (_ns, hs, len) => {
      for (let off = 0; off < hs.length; off += len) sealed.push(Buffer.from(hs.subarray(off, off + len)));
    },
  });
  const spec = (id: string, over: Partial<RegisterSpec> = {}): RegisterSpec => {
    const region = handOver(regions, `/${id}`, REGION);
    byName.set(id, region);
    return {
      instanceId: id,
      engineId: id,
      namespace: 'ns',
      tpSize: 1,
      tpRank: 0,
      worldSize: 0,
      replicated: false,
      segmentOffsets: [0, BLOCKS * SEG],
      segmentBytes: SEG,
      blockStrideBytes: SEG,
      numBlocks: BLOCKS,
      region: { token: region.token, sizeBytes: REGION },
      ...over,
    };
  };
  const regionOf = (id: string) => byName.get(id)!;
  return { data, core, index, regions, spec, regionOf, sealed, evicted, advance: (ms: number) => (now += ms) };
}
const hashes = (...ids: number[]) => Buffer.concat(ids.map((i) => Buffer.alloc(8, i + 1)));
const ids = (...v: number[]) => Uint32Array.from(v);
function blockBytes(region: TestRegion, b: number): Buffer {
  return Buffer.concat([region.read(b * SEG, SEG), region.read(BLOCKS * SEG + b * SEG, SEG)]);
}

test('a save is one copy that also sums its pages: each checksum is that of the bytes the page holds', async () => {
  const { data, core, index, spec, regionOf } = setup();
  core.register(spec('a'));
  const region = regionOf('a');
  region.write(0, randomBytes(REGION));
  const before = data.engine.counters().batches;
  await core.save('a', ids(9, 4, 5, 0), hashes(0, 1, 2, 3), 8);
  assert.equal(data.engine.counters().batches - before, 1);
  const sums = new Uint32Array(2);
  [9, 4, 5, 0].forEach((b, i) => {
    const slot = index.lookup(0, hashes(i), 0, 8);
    assert.ok(index.isSealed(slot), `block ${b} sealed`);
    assert.ok(index.hasChecksum(slot, 0), `block ${b} summed`);
    index.checksumsInto(slot, sums, 0);
    const want = pageChecksum(blockBytes(region, b));
    assert.equal(BigInt(sums[0]!) | (BigInt(sums[1]!) << 32n), want, `block ${b}: checksum of its page`);
  });
});

test('save, query, load round-trip the bytes between two instances of one namespace', async () => {
  const { data, core, spec, sealed, regionOf } = setup();
  core.register(spec('a'));
  core.register(spec('b'));
  const ra = regionOf('a');
  const rb = regionOf('b');
  ra.write(0, randomBytes(REGION));
  const saved = await core.save('a', ids(3, 5, 7), hashes(0, 1, 2), 8);
  assert.deepEqual([...saved.outcomes], [SAVE_STORED, SAVE_STORED, SAVE_STORED]);
  assert.equal(saved.sealed, 3);
  assert.equal(data.engine.counters().batches, 1, 'one copy batch per save call');
  assert.equal(sealed.length, 3);
  const copied = data.engine.counters().bytesCopied;
  const again = await core.save('a', ids(3, 5), hashes(0, 1), 8);
  assert.deepEqual([...again.outcomes], [SAVE_PRESENT, SAVE_PRESENT]);
  assert.equal(data.engine.counters().bytesCopied, copied, 'duplicates copy nothing');
  const q = await core.query('b', '', hashes(0, 1, 2, 9), 8, false);
  assert.equal(q.state, 'ready');
  assert.equal(q.hits, 3);
  const loaded = await core.load('b', q.leaseId, ids(0, 1, 2));
  assert.deepEqual(loaded, { loaded: 3, bytes: 3 * 2 * SEG });
  for (const [i, b] of [3, 5, 7].entries()) assert.deepEqual(blockBytes(rb, i), blockBytes(ra, b));
  await assert.rejects(core.load('b', q.leaseId, ids(0)), { code: 'LEASE_CONSUMED' });
});

test('a hash repeated within one save call is stored once, from its first position', async () => {
  const { core, spec, sealed, regionOf } = setup();
  core.register(spec('a'));
  core.register(spec('b'));
  const ra = regionOf('a');
  const rb = regionOf('b');
  ra.write(0, randomBytes(REGION));
  const saved = await core.save('a', ids(4, 6, 8, 9), hashes(3, 5, 3, 5), 8);
  assert.deepEqual([...saved.outcomes], [SAVE_STORED, SAVE_STORED, SAVE_PRESENT, SAVE_PRESENT]);
  assert.deepEqual({ stored: saved.stored, sealed: saved.sealed }, { stored: 2, sealed: 2 });
  assert.deepEqual(sealed, [hashes(3), hashes(5)]);
  const q = await core.query('b', '', hashes(3, 5), 8, false);
  assert.equal(q.hits, 2);
  await core.load('b', q.leaseId, ids(0, 1));
  assert.deepEqual(blockBytes(rb, 0), blockBytes(ra, 4));
  assert.deepEqual(blockBytes(rb, 1), blockBytes(ra, 6));
});

test('TP=2: no hit until both ranks saved; each rank loads its own shard', async () => {
  const { data, core, spec, regionOf } = setup();
  core.register(spec('r0', { engineId: 'e', tpSize: 2, tpRank: 0 }));
  core.register(spec('r1', { engineId: 'e', tpSize: 2, tpRank: 1 }));
  const r0 = regionOf('r0');
  const r1 = regionOf('r1');
  r0.write(0, randomBytes(REGION));
  r1.write(0, randomBytes(REGION));
  await core.save('r0', ids(1), hashes(0), 8);
  assert.equal((await core.query('r0', '', hashes(0), 8, false)).hits, 0);
  const s = await core.save('r1', ids(2), hashes(0), 8);
  assert.equal(s.sealed, 1);
  const q = await core.query('r0', '', hashes(0), 8, false);
  assert.equal(q.hits, 1);
  const want0 = blockBytes(r0, 1);
  const want1 = blockBytes(r1, 2);
  r0.write(0, Buffer.alloc(REGION));
  r1.write(0, Buffer.alloc(REGION));
  await core.load('r0', q.leaseId, ids(4));
  await core.load('r1', q.leaseId, ids(5));
  assert.deepEqual(blockBytes(r0, 4), want0);
  assert.deepEqual(blockBytes(r1, 5), want1);
  assert.equal(data.pool.stats().usedBytes, 2 * 2 * SEG);
});

test('replicated TP=4 stores one page per block', async () => {
  const { data, core, spec } = setup();
  for (let r = 0; r < 4; r++)
    core.register(spec(`m${r}`, { engineId: 'mla', tpSize: 4, tpRank: r, replicated: true, namespace: 'mla' }));
  const s0 = await core.save('m0', ids(0, 1), hashes(0, 1), 8);
  assert.equal(s0.sealed, 2, 'the first page seals');
  for (let r = 1; r < 4; r++) assert.equal((await core.save(`m${r}`, ids(0, 1), hashes(0, 1), 8)).stored, 0);
  assert.equal(data.pool.stats().usedBytes, 2 * 2 * SEG);
});

test('bad inputs are refused precisely and change nothing', async () => {
  const { data, core, regions, spec } = setup();
  core.register(spec('a'));
  await assert.rejects(core.save('a', ids(1, 2), hashes(0), 8), {
    code: 'INVALID_ARGUMENT',
    message: /block_ids: expected 1 ids/,
  });
  await assert.rejects(core.save('a', ids(1, 99), hashes(0, 1), 8), {
    code: 'INVALID_ARGUMENT',
    message: /block_ids\[1\]: expected 0..15, got 99/,
  });
  await assert.rejects(core.save('zz', ids(1), hashes(0), 8), { code: 'INSTANCE_UNKNOWN' });
  await assert.rejects(core.load('a', 'nope', ids(1)), { code: 'LEASE_UNKNOWN' });
  assert.throws(() => core.register(spec('c', { segmentBytes: 128 })), { code: 'GEOMETRY_CONFLICT' });
  assert.throws(
    () => core.register(spec('d', { region: { token: handOver(regions, '/d', REGION).token, sizeBytes: REGION - 1 } })),
    {
      code: 'REGION_INVALID',
      message: /too small/,
    },
  );
  assert.throws(() => core.register(spec('d', { region: { token: 'f'.repeat(32), sizeBytes: REGION } })), {
    code: 'REGION_INVALID',
    message: /^region.token: "f{32}" names no handed-over region/,
  });
  assert.throws(() => core.register(spec('e', { namespace: 'n'.repeat(129) })), {
    code: 'INVALID_ARGUMENT',
    message: /namespace/,
  });
  assert.throws(() => core.register(spec('a')), { code: 'INSTANCE_EXISTS' });
  assert.equal(core.index.stats().sealed + core.index.stats().partial, 0);
  assert.equal(data.pool.stats().usedBytes, 0);
  assert.equal(core.instanceCount, 1);
  assert.equal(core.namespaces.all().length, 1);
});

test('eviction: pinned blocks survive, least recent go first, never overcommits', async () => {
  const page = 2 * SEG;
  const { data, core, spec, evicted } = setup(4 * page);
  core.register(spec('a'));
  await core.save('a', ids(0, 1, 2, 3), hashes(0, 1, 2, 3), 8);
  const lease = await core.query('a', '', hashes(0), 8, false); // pins block 0
  await core.query('a', '', hashes(1), 8, false).then((q) => core.release('a', q.leaseId)); // touches block 1
  await core.save('a', ids(4, 5), hashes(4, 5), 8);
  assert.deepEqual(
    evicted.map((h) => h[0]! - 1),
    [2, 3],
    'least recent unpinned first',
  );
  assert.equal(data.pool.stats().usedBytes, 4 * page);
  // Pin everything: 0 by the lease, 1, 4, 5 by another lease.
  const q2 = await core.query('a', '', hashes(1), 8, false);
  const q3 = await core.query('a', '', hashes(4, 5), 8, false);
  await assert.rejects(core.save('a', ids(6), hashes(6), 8), { code: 'POOL_EXHAUSTED' });
  assert.equal(core.index.stats().sealed, 4);
  assert.equal(data.pool.stats().usedBytes, 4 * page);
  core.release('a', q2.leaseId);
  const s = await core.save('a', ids(6, 7), hashes(6, 7), 8);
  assert.deepEqual([...s.outcomes], [SAVE_STORED, SAVE_NO_SPACE], 'only one page could be freed');
  const l = await core.load('a', lease.leaseId, ids(9));
  assert.equal(l.loaded, 1, 'the pinned block survived');
  core.release('a', q3.leaseId);
});

test('unregistering the last instance of an engine ends its leases; expiry unpins', async () => {
  const { core, spec, advance } = setup();
  core.register(spec('a'));
  await core.save('a', ids(0), hashes(0), 8);
  await core.query('a', '', hashes(0), 8, false);
  assert.equal(core.leases.size, 1);
  assert.equal(core.index.stats().pinned, 1);
  core.unregister('a');
  assert.equal(core.leases.size, 0);
  assert.equal(core.index.stats().pinned, 0);
  core.register(spec('b'));
  const q = await core.query('b', '', hashes(0), 8, false);
  advance(1000);
  assert.equal(core.sweep(), 1);
  assert.equal(core.index.stats().pinned, 0);
  await assert.rejects(core.load('b', q.leaseId, ids(0)), { code: 'LEASE_EXPIRED' });
});

test('a fetcher makes Query answer LOADING, then READY with the breakdown', async () => {
  let resolve!: (v: { ssd: number; remote: number }) => void;
  const fetcher: Fetcher = { fetch: () => new Promise((r) => (resolve = r)) };
  const { core, spec } = setup(1 << 20, fetcher);
  core.register(spec('a'));
  await core.save('a', ids(0), hashes(0), 8);
  assert.equal((await core.query('a', 'req-1', hashes(0, 1), 8, false)).state, 'loading');
  assert.equal((await core.query('a', 'req-1', hashes(0, 1), 8, false)).state, 'loading');
  await core.save('a', ids(1), hashes(1), 8); // what the fetcher would have sealed
  resolve({ ssd: 0, remote: 1 });
  await new Promise((r) => setImmediate(r));
  const q = await core.query('a', 'req-1', hashes(0, 1), 8, false);
  assert.deepEqual([q.state, q.hits, q.breakdown], ['ready', 2, { local: 1, ssd: 0, remote: 1 }]);
  assert.equal((await core.query('a', '', hashes(0, 2), 8, false)).hits, 1, 'no request id: local answer');
});

/** A fetcher whose fetches finish when the test says so (sealing what a real pull would have sealed first). */
function manualFetcher() {
  const calls: Array<(r: { ssd: number; remote: number }) => void> = [];
  const fetcher: Fetcher = { fetch: () => new Promise((r) => calls.push(r)) };
  return { fetcher, calls };
}

const turn = () => new Promise((r) => setImmediate(r));

test('wait_ms: a query that starts a fetch answers READY in one call when the fetch finishes in time', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] }); // the wait's timer never fires: only the fetch can end it
  const { fetcher, calls } = manualFetcher();
  const { core, spec } = setup(1 << 20, fetcher);
  core.register(spec('a'));
  await core.save('a', ids(0), hashes(0), 8);
  const answer = core.query('a', 'req-w', hashes(0, 1, 2), 8, false, 5_000);
  await turn();
  assert.equal(calls.length, 1, 'one fetch started');
  assert.equal(core.leases.size, 0, 'no lease while loading');
  await core.save('a', ids(1, 2), hashes(1, 2), 8); // what the fetcher would have sealed
  calls[0]!({ ssd: 1, remote: 1 });
  const q = await answer; // answered when the fetch finished, not at the deadline
  assert.deepEqual([q.state, q.hits, q.breakdown], ['ready', 3, { local: 1, ssd: 1, remote: 1 }]);
  assert.equal(core.counters.queries, 1, 'one call');
  assert.equal(core.leases.size, 1, 'exactly one lease');
  assert.equal(calls.length, 1);
});

test('wait_ms: past the deadline the answer is LOADING (no lease); the next call answers READY', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { fetcher, calls } = manualFetcher();
  const { core, spec } = setup(1 << 20, fetcher);
  core.register(spec('a'));
  await core.save('a', ids(0), hashes(0), 8);
  const answers: QueryResult[] = [];
  void core.query('a', 'req-d', hashes(0, 1), 8, false, 30).then((q) => answers.push(q));
  await turn();
  t.mock.timers.tick(29);
  await turn();
  assert.equal(answers.length, 0, 'still waiting before the 30 ms wait_ms');
  t.mock.timers.tick(1);
  await turn();
  assert.equal(answers[0]?.state, 'loading');
  assert.equal(answers[0]?.leaseId, '');
  assert.equal(core.leases.size, 0);
  await core.save('a', ids(1), hashes(1), 8);
  calls[0]!({ ssd: 0, remote: 1 });
  await turn();
  const q2 = await core.query('a', 'req-d', hashes(0, 1), 8, false, 30);
  assert.deepEqual([q2.state, q2.hits, q2.breakdown], ['ready', 2, { local: 1, ssd: 0, remote: 1 }]);
  assert.equal(calls.length, 1, 'the second call joined the first fetch');
  assert.equal(core.counters.queries, 2);
});

test('wait_ms: the node caps the wait at MAX_QUERY_WAIT_MS', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { fetcher } = manualFetcher();
  const { core, spec } = setup(1 << 20, fetcher);
  core.register(spec('a'));
  let settled: string | undefined;
  void core.query('a', 'req-c', hashes(0), 8, false, MAX_QUERY_WAIT_MS * 3).then((q) => (settled = q.state));
  await new Promise((r) => setImmediate(r));
  t.mock.timers.tick(MAX_QUERY_WAIT_MS - 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, undefined, 'still waiting just before the cap');
  t.mock.timers.tick(1);
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, 'loading', 'answered LOADING at the cap, not after the asked 30 s');
});

test('wait_ms: unregistering the instance while it waits answers INSTANCE_UNKNOWN at once', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] }); // the wait's timer never fires: only the unregistration can end it
  const { fetcher, calls } = manualFetcher();
  const { core, spec } = setup(1 << 20, fetcher);
  core.register(spec('a'));
  core.register(spec('a2', { engineId: 'a' })); // the engine lives on: its fetch stays pending
  const answer = core.query('a', 'req-u', hashes(0, 1), 8, false, 5_000);
  await turn();
  assert.equal(core.unregister('a'), true);
  await assert.rejects(answer, { code: 'INSTANCE_UNKNOWN' });
  assert.equal(core.leases.size, 0);
  calls[0]!({ ssd: 0, remote: 0 }); // finishing later wakes nobody and throws nothing
  await turn();
  // the last instance of an engine going away ends the wait too
  core.register(spec('b'));
  const b = core.query('b', 'req-u', hashes(0, 1), 8, false, 5_000);
  await turn();
  core.close();
  await assert.rejects(b, { code: 'INSTANCE_UNKNOWN' });
});
