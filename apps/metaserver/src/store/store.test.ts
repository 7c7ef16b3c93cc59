// MetaStore as the service sees it: sessions, index, limits and sweep under one clock. The parts have their own tests
// (sessions, owner-index, prefix-query); store-model.test.ts checks the whole against a reference model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError, TIER_BOTH, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { MetaStore } from './store.js';
import { hashes, range } from './test-hashes.js';

const NS = 'llama-8b/fp16/tp1/bs16';
const T0 = 1_700_000_000_000;

function setup(
  opts: {
    staleSecs?: number;
    ttlMinutes?: number;
    dropSecs?: number;
    maxBlocksPerNode?: number;
    maxIndexBytes?: number;
  } = {},
) {
  let now = T0;
  const store = new MetaStore({
    nodeStaleMs: (opts.staleSecs ?? 30) * 1000,
    ttlMs: (opts.ttlMinutes ?? 120) * 60_000,
    sessionDropMs: opts.dropSecs === undefined ? undefined : opts.dropSecs * 1000,
    clock: () => now,
    epoch: 42n,
    limits: { maxBlocksPerNode: opts.maxBlocksPerNode, maxIndexBytes: opts.maxIndexBytes },
  });
  const advance = (ms: number) => (now += ms);
  const join = (nodeId: string, addr: string, used = 0n) =>
    store.heartbeat({
      nodeId,
      addr,
      transports: [1],
      stats: { poolCapacityBytes: 1000n, poolUsedBytes: used, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
    });
  return { store, advance, join };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof KvError, `expected KvError, got ${String(err)}`);
    return `${err.code}: ${err.message}`;
  }
  return 'no error';
}

test('epoch is fixed per store and random when not given', () => {
  const { store } = setup();
  assert.equal(store.epoch, 42n);
  const a = new MetaStore({ nodeStaleMs: 1000, ttlMs: 1000 });
  const b = new MetaStore({ nodeStaleMs: 1000, ttlMs: 1000 });
  assert.notEqual(a.epoch, b.epoch);
  assert.ok(a.epoch > 0n && a.epoch < 1n << 64n);
  assert.equal(a.stats().epoch, a.epoch);
});

test('heartbeat registers once, then refreshes', () => {
  const { store, join } = setup();
  assert.deepEqual(join('n1', '10.0.0.1:7000'), { registered: true });
  assert.deepEqual(join('n1', '10.0.0.1:7000', 5n), { registered: false });
  const [n] = store.listNodes();
  assert.equal(n!.nodeId, 'n1');
  assert.equal(n!.state, 'live');
  assert.equal(n!.stats.poolUsedBytes, 5n);
  assert.deepEqual(n!.transports, [1]);
  assert.equal(n!.registeredAtMs, T0);
});

test('a different session takes over an address only after the holder went stale', () => {
  const { store, join, advance } = setup({ staleSecs: 30 });
  join('old', 'h:1');
  store.insert('old', NS, hashes([1, 2]));
  advance(29_999);
  assert.match(
    code(() => join('new', 'h:1')),
    /^SESSION_CONFLICT: addr: h:1 belongs to live node old/,
  );
  assert.equal(store.listNodes().length, 1);
  advance(1);
  assert.deepEqual(join('new', 'h:1'), { registered: true, replaced: 'old' });
  const nodes = store.listNodes();
  assert.deepEqual(
    nodes.map((n) => [n.nodeId, n.state, n.indexedBlocks]),
    [['new', 'live', 0]],
  );
  assert.equal(store.owners, 0);
  assert.equal(store.blocks, 0);
  assert.match(
    code(() => store.insert('old', NS, hashes([1]))),
    /^SESSION_UNKNOWN: node_id: no session for "old"/,
  );
});

test('unknown sessions are refused and change nothing', () => {
  const { store, join } = setup();
  join('n1', 'h:1');
  store.insert('n1', NS, hashes([1]));
  assert.match(
    code(() => store.insert('ghost', NS, hashes([2]))),
    /^SESSION_UNKNOWN/,
  );
  assert.match(
    code(() => store.remove('ghost', NS, hashes([1]))),
    /^SESSION_UNKNOWN/,
  );
  assert.match(
    code(() => store.unregister('ghost')),
    /^SESSION_UNKNOWN/,
  );
  assert.equal(store.blocks, 1);
  assert.equal(store.owners, 1);
});

test('stale nodes vanish from queries but stay in listNodes as stale', () => {
  const { store, join, advance } = setup({ staleSecs: 10 });
  join('a', 'h:1');
  join('b', 'h:2');
  store.insert('a', NS, hashes([1, 2, 3]));
  store.insert('b', NS, hashes([1, 2]));
  advance(5_000);
  join('b', 'h:2');
  advance(5_000); // a unseen for 10s: stale; b seen 5s ago
  assert.deepEqual(
    store.queryPrefix(NS, hashes([1, 2, 3])).map((p) => [p.nodeId, p.prefixLen]),
    [['b', 2]],
  );
  assert.deepEqual(store.queryOwners(NS, hashes([1, 3])), [[{ nodeId: 'b', addr: 'h:2', tier: TIER_DRAM }], []]);
  assert.deepEqual(
    store.listNodes().map((n) => [n.nodeId, n.state]),
    [
      ['a', 'stale'],
      ['b', 'live'],
    ],
  );
  assert.deepEqual(store.nodeCounts(), { live: 1, stale: 1 });
  join('a', 'h:1'); // back: its ownerships were kept
  assert.deepEqual(
    store.queryPrefix(NS, hashes([1, 2, 3])).map((p) => [p.nodeId, p.prefixLen]),
    [
      ['a', 3],
      ['b', 2],
    ],
  );
});

test('namespaces never mix, even with equal hashes', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  store.insert('a', 'ns1', hashes([1, 2]));
  assert.deepEqual(store.queryOwners('ns2', hashes([1])), [[]]);
  assert.deepEqual(store.listNamespaces(), [{ name: 'ns1', blocks: 2, owners: 2 }]);
});

test('insert counts new pairs, refreshes old ones, and hints reclaimable for the third owner', () => {
  const { store, join, advance } = setup({ staleSecs: 10 });
  for (const n of ['a', 'b', 'c', 'd']) join(n, `h:${n}`);
  assert.deepEqual(store.insert('a', NS, hashes([1, 2])), { inserted: 2, reclaimable: [] });
  assert.deepEqual(store.insert('a', NS, hashes([1, 2, 3])), { inserted: 1, reclaimable: [] });
  assert.deepEqual(store.insert('b', NS, hashes([1, 2])), { inserted: 2, reclaimable: [] });
  assert.deepEqual(store.insert('c', NS, hashes([3, 2, 1])), { inserted: 3, reclaimable: [1, 2] });
  assert.deepEqual(store.insert('c', NS, hashes([1])), { inserted: 0, reclaimable: [0] }, 'still third');
  assert.deepEqual(store.insert('a', NS, hashes([1])), { inserted: 0, reclaimable: [] }, 'first owner keeps its copy');
  assert.equal(store.owners, 8);
  assert.equal(store.blocks, 3);
  // stale owners ahead do not count
  advance(10_000);
  join('c', 'h:c');
  join('d', 'h:d');
  assert.deepEqual(store.insert('d', NS, hashes([1])), { inserted: 1, reclaimable: [] });
});

test('removal is owner-conditional', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  join('b', 'h:2');
  store.insert('a', NS, hashes([1, 2]));
  store.insert('b', NS, hashes([2]));
  assert.equal(store.remove('b', NS, hashes([1, 2, 99])), 1);
  assert.deepEqual(store.queryOwners(NS, hashes([1, 2])), [
    [{ nodeId: 'a', addr: 'h:1', tier: TIER_DRAM }],
    [{ nodeId: 'a', addr: 'h:1', tier: TIER_DRAM }],
  ]);
  assert.equal(store.remove('a', NS, hashes([2])), 1);
  assert.equal(store.remove('a', NS, hashes([2])), 0);
  assert.deepEqual(store.listNamespaces(), [{ name: NS, blocks: 1, owners: 1 }]);
  assert.equal(store.remove('a', NS, hashes([1])), 1);
  assert.deepEqual(store.listNamespaces(), []);
  assert.deepEqual(store.stats().blocks, 0);
  assert.equal(store.listNodes().find((n) => n.nodeId === 'a')!.indexedBlocks, 0);
});

test('unregister drops every ownership of the node and nothing else', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  join('b', 'h:2');
  store.insert('a', 'ns1', hashes(range(0, 100)));
  store.insert('a', 'ns2', hashes(range(0, 10)));
  store.insert('b', 'ns1', hashes(range(50, 60)));
  assert.equal(store.unregister('a'), 110);
  assert.deepEqual(store.listNamespaces(), [{ name: 'ns1', blocks: 10, owners: 10 }]);
  assert.deepEqual(
    store.listNodes().map((n) => [n.nodeId, n.indexedBlocks]),
    [['b', 10]],
  );
  assert.deepEqual(join('a', 'h:1'), { registered: true });
});

test("a heartbeating node's ownerships outlive the ttl; a silent node's go after it", () => {
  const { store, join, advance } = setup({ staleSecs: 30, ttlMinutes: 1, dropSecs: 300 });
  assert.equal(store.retentionMs, 60_000, 'min(ttl, session drop), at least the stale window');
  join('a', 'h:1');
  join('b', 'h:2');
  store.insert('a', NS, hashes([1, 2, 3]));
  store.insert('b', NS, hashes([1, 4]));
  // a heartbeats for ten TTLs without inserting anything again; b stops at once
  for (let i = 0; i < 30; i++) {
    advance(20_000);
    join('a', 'h:1');
    const r = store.sweep();
    if (i < 2) assert.deepEqual(r, { droppedSessions: 0, droppedOwners: 0 }, `sweep ${i}: b silent for < 60 s`);
    if (i === 2) assert.deepEqual(r, { droppedSessions: 1, droppedOwners: 2 }, 'b silent for 60 s');
    if (i > 2) assert.deepEqual(r, { droppedSessions: 0, droppedOwners: 0 });
  }
  assert.deepEqual(store.queryOwners(NS, hashes([1, 2, 3, 4])), [
    [{ nodeId: 'a', addr: 'h:1', tier: TIER_DRAM }],
    [{ nodeId: 'a', addr: 'h:1', tier: TIER_DRAM }],
    [{ nodeId: 'a', addr: 'h:1', tier: TIER_DRAM }],
    [],
  ]);
  assert.deepEqual(
    store.queryPrefix(NS, hashes([1, 2, 3])).map((p) => [p.nodeId, p.prefixLen]),
    [['a', 3]],
  );
  assert.deepEqual([store.owners, store.blocks], [3, 3]);
  assert.deepEqual(
    store.listNodes().map((n) => [n.nodeId, n.indexedBlocks]),
    [['a', 3]],
  );
  // b comes back: a new session (the node re-advertises), not the old ownerships
  assert.deepEqual(join('b', 'h:2'), { registered: true });
  assert.deepEqual(store.queryOwners(NS, hashes([4])), [[]]);
});

test('the session drop window ends a silent node sooner than a long ttl; the stale window is the floor', () => {
  const long = setup({ staleSecs: 30, ttlMinutes: 120, dropSecs: 300 });
  assert.equal(long.store.retentionMs, 300_000);
  long.join('a', 'h:1');
  long.store.insert('a', NS, hashes([1]));
  long.advance(299_999);
  assert.deepEqual(long.store.sweep(), { droppedSessions: 0, droppedOwners: 0 });
  long.advance(1);
  assert.deepEqual(long.store.sweep(), { droppedSessions: 1, droppedOwners: 1 });
  assert.deepEqual(long.store.listNodes(), []);
  const slowStale = setup({ staleSecs: 120, ttlMinutes: 1 });
  assert.equal(slowStale.store.retentionMs, 120_000, 'a node still live is never swept');
});

test('max-blocks-per-node: an insert past the quota is refused whole; re-inserting owned hashes is not', () => {
  const { store, join } = setup({ maxBlocksPerNode: 10 });
  join('a', 'h:1');
  join('b', 'h:2');
  assert.equal(store.insert('a', NS, hashes(range(0, 8))).inserted, 8);
  assert.equal(
    code(() => store.insert('a', NS, hashes(range(6, 11)))),
    'QUOTA_EXCEEDED: max-blocks-per-node: node "a" owns 8 blocks and this insert adds 3, over the limit of 10',
  );
  assert.deepEqual([store.owners, store.blocks], [8, 8], 'nothing of the refused insert went in');
  assert.equal(store.insert('a', NS, hashes(range(0, 8))).inserted, 0, 'owned hashes: nothing new, not refused');
  assert.equal(store.insert('a', 'other-ns', hashes(range(0, 2))).inserted, 2, 'the quota spans namespaces');
  assert.match(
    code(() => store.insert('a', 'other-ns', hashes([99]))),
    /^QUOTA_EXCEEDED: max-blocks-per-node/,
  );
  assert.equal(store.insert('b', NS, hashes(range(0, 10))).inserted, 10, 'per node: b has its own quota');
  store.remove('a', NS, hashes([0]));
  assert.equal(store.insert('a', NS, hashes([50])).inserted, 1, 'room again after a removal');
});

test('max-index-memory: an insert that would grow the index past the budget is refused whole', () => {
  const { store, join } = setup({ maxIndexBytes: 1 << 20 });
  join('a', 'h:1');
  join('b', 'h:2');
  let inserted = 0;
  let refusal = '';
  for (let from = 0; from < 1_000_000 && !refusal; from += 1000) {
    const r = code(() => (inserted += store.insert('a', NS, hashes(range(from, from + 1000))).inserted));
    if (r !== 'no error') refusal = r;
  }
  assert.match(
    refusal,
    /^QUOTA_EXCEEDED: max-index-memory: the index holds \d+ bytes and this insert needs up to \d+ more, over the limit of 1048576 bytes$/,
  );
  assert.ok(store.memoryBytes() <= 1 << 20, `${store.memoryBytes()} bytes held`);
  assert.ok(inserted >= 10_000, `only ${inserted} pairs fit in 1 MiB`);
  assert.equal(store.owners, inserted, 'the refused insert added nothing');
  assert.equal(store.insert('a', NS, hashes(range(0, 1000))).inserted, 0, 'owned hashes are never refused');
  store.unregister('a');
  assert.equal(store.insert('b', NS, hashes(range(0, 1000))).inserted, 1000, 'room again once a node is gone');
});

test('malformed lists are refused by the store too', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  assert.match(
    code(() => store.insert('a', NS, { packed: Buffer.alloc(10), hashLen: 3 })),
    /^INVALID_ARGUMENT: hashes.packed/,
  );
  assert.match(
    code(() => store.queryPrefix(NS, { packed: Buffer.alloc(10), hashLen: 0 })),
    /^INVALID_ARGUMENT: hashes.hash_len/,
  );
  assert.equal(store.owners, 0);
});

test('tiers: each (block, owner) keeps its own; re-inserting sets it; owners and prefixes answer it', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  join('b', 'h:2', 10n); // more pool used than a: a wins prefix ties
  join('c', 'h:3');
  store.insert('a', NS, hashes([1, 2, 3]));
  assert.equal(store.insert('b', NS, hashes([1, 2, 3, 4]), TIER_SSD).inserted, 4);
  assert.equal(store.insert('a', NS, hashes([2]), TIER_BOTH).inserted, 0, 'a tier change adds no pair');
  store.insert('c', NS, hashes([1, 2, 4]), TIER_SSD); // a hole at 3
  assert.deepEqual(store.queryOwners(NS, hashes([1, 2, 4])), [
    [
      { nodeId: 'a', addr: 'h:1', tier: TIER_DRAM },
      { nodeId: 'b', addr: 'h:2', tier: TIER_SSD },
      { nodeId: 'c', addr: 'h:3', tier: TIER_SSD },
    ],
    [
      { nodeId: 'a', addr: 'h:1', tier: TIER_BOTH },
      { nodeId: 'b', addr: 'h:2', tier: TIER_SSD },
      { nodeId: 'c', addr: 'h:3', tier: TIER_SSD },
    ],
    [
      { nodeId: 'b', addr: 'h:2', tier: TIER_SSD },
      { nodeId: 'c', addr: 'h:3', tier: TIER_SSD },
    ],
  ]);
  const prefix = () => store.queryPrefix(NS, hashes([1, 2, 3, 4, 5])).map((p) => [p.nodeId, p.prefixLen, p.ssdBlocks]);
  // c's SSD blocks past its hole are not part of its prefix
  assert.deepEqual(prefix(), [
    ['b', 4, 4],
    ['a', 3, 0],
    ['c', 2, 2],
  ]);
  store.insert('b', NS, hashes([2, 3]), TIER_BOTH); // promoted into DRAM
  store.insert('c', NS, hashes([1]), TIER_DRAM); // its SSD copy went
  assert.deepEqual(prefix(), [
    ['b', 4, 2],
    ['a', 3, 0],
    ['c', 2, 1],
  ]);
  // a removal and re-insertion starts from the new insert's tier
  store.remove('b', NS, hashes([1]));
  store.insert('b', NS, hashes([1]));
  assert.deepEqual(
    store.queryOwners(NS, hashes([1]))[0]!.map((o) => [o.nodeId, o.tier]),
    [
      ['a', TIER_DRAM],
      ['c', TIER_DRAM],
      ['b', TIER_DRAM],
    ],
  );
  assert.deepEqual([store.blocks, store.owners], [4, 10]);
});

test('the tier of a prefix candidate whose first block is on SSD counts too', () => {
  const { store, join } = setup();
  join('a', 'h:1');
  store.insert('a', NS, hashes([1]), TIER_SSD);
  store.insert('a', NS, hashes([2]), TIER_BOTH);
  assert.deepEqual(
    store.queryPrefix(NS, hashes([1, 2])).map((p) => [p.prefixLen, p.ssdBlocks]),
    [[2, 1]],
  );
  assert.deepEqual(
    store.queryPrefix(NS, hashes([1])).map((p) => [p.prefixLen, p.ssdBlocks]),
    [[1, 1]],
  );
});
