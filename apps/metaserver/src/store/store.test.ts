// MetaStore as the service sees it: sessions, index and sweep under one clock. The parts have their own tests
// (sessions, owner-index, prefix-query, sweep); store-model.test.ts checks the whole against a reference model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import { MetaStore } from './store.js';
import { hashes, range } from './test-hashes.js';

const NS = 'llama-8b/fp16/tp1/bs16';
const T0 = 1_700_000_000_000;

function setup(opts: { staleSecs?: number; ttlMinutes?: number; dropSecs?: number } = {}) {
  let now = T0;
  const store = new MetaStore({
    nodeStaleMs: (opts.staleSecs ?? 30) * 1000,
    ttlMs: (opts.ttlMinutes ?? 120) * 60_000,
    sessionDropMs: opts.dropSecs === undefined ? undefined : opts.dropSecs * 1000,
    clock: () => now,
    epoch: 42n,
  });
  const advance = (ms: number) => (now += ms);
  const join = (nodeId: string, addr: string, used = 0n) =>
    store.heartbeat({
      nodeId,
      addr,
      transports: [1],
      stats: { poolCapacityBytes: 1000n, poolUsedBytes: used, blocks: 0n },
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
  assert.deepEqual(store.queryOwners(NS, hashes([1, 3])), [[{ nodeId: 'b', addr: 'h:2' }], []]);
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
    [{ nodeId: 'a', addr: 'h:1' }],
    [{ nodeId: 'a', addr: 'h:1' }],
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

test('sweep drops ownerships not touched for the ttl, and sessions dead for long', () => {
  const { store, join, advance } = setup({ staleSecs: 30, ttlMinutes: 1, dropSecs: 300 });
  join('a', 'h:1');
  join('b', 'h:2');
  store.insert('a', NS, hashes([1, 2, 3]));
  store.insert('b', NS, hashes([1]));
  advance(30_000);
  join('a', 'h:1');
  store.insert('a', NS, hashes([2])); // touched again
  advance(30_000); // 60 s since the first insert
  join('a', 'h:1');
  join('b', 'h:2');
  assert.deepEqual(store.sweep(), { done: true, expired: 3, droppedSessions: 0, droppedOwners: 0 });
  assert.deepEqual(store.queryOwners(NS, hashes([1, 2, 3])), [[], [{ nodeId: 'a', addr: 'h:1' }], []]);
  assert.equal(store.owners, 1);
  assert.equal(store.blocks, 1);
  // b silent for 300 s: forgotten with its ownerships at the start of a pass
  store.insert('b', NS, hashes([5]));
  for (let i = 0; i < 10; i++) {
    advance(29_000);
    join('a', 'h:1');
    store.insert('a', NS, hashes([2]));
  }
  advance(10_000);
  join('a', 'h:1');
  assert.deepEqual(store.sweep(), { done: true, expired: 0, droppedSessions: 1, droppedOwners: 1 });
  assert.deepEqual(
    store.listNodes().map((n) => n.nodeId),
    ['a'],
  );
  assert.equal(store.owners, 1);
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
