import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnerIndex } from './owner-index.js';
import { PrefixQuery } from './prefix-query.js';
import { NodeSessions } from './sessions.js';
import { hashes, range } from './test-hashes.js';

const NS = 'llama-8b/fp16/tp1/bs16';

function setup() {
  const sessions = new NodeSessions(10_000);
  const index = new OwnerIndex();
  const query = new PrefixQuery(index, sessions);
  const join = (nodeId: string, addr: string, used = 0n, nowMs = 0) =>
    sessions.beat(
      {
        nodeId,
        addr,
        transports: [1],
        stats: { poolCapacityBytes: 1000n, poolUsedBytes: used, blocks: 0n, ssdCapacityBytes: 0n, ssdUsedBytes: 0n },
      },
      nowMs,
    );
  const insert = (nodeId: string, ids: number[], len = 32) =>
    index.insert(sessions.get(nodeId)!.slot, NS, hashes(ids, 7, len), sessions.liveSlots(0));
  return { query, join, insert };
}

test('prefix per node counts leading hashes and stops at holes; longest first, then least used, then id', () => {
  const { query, join, insert } = setup();
  join('a', 'h:1', 300n);
  join('b', 'h:2', 100n);
  join('c', 'h:3', 200n);
  join('d', 'h:4');
  insert('a', [0, 1, 2, 4, 5]); // hole at 3
  insert('b', [0, 1, 2, 3]);
  insert('c', [0, 1, 2]);
  insert('d', [1, 2, 3, 4]); // lacks hashes[0]
  const q = hashes(range(0, 6));
  const got = query
    .run(NS, q, '', 0)
    .map((p) => [p.nodeId, p.addr, p.prefixLen, p.poolUsedBytes, p.poolCapacityBytes, p.transports]);
  assert.deepEqual(got, [
    ['b', 'h:2', 4, 100n, 1000n, [1]],
    ['c', 'h:3', 3, 200n, 1000n, [1]],
    ['a', 'h:1', 3, 300n, 1000n, [1]],
  ]);
  assert.deepEqual(
    query.run(NS, q, 'b', 0).map((p) => p.nodeId),
    ['c', 'a'],
  );
  assert.deepEqual(
    query.run(NS, q, 'unknown', 0).map((p) => p.nodeId),
    ['b', 'c', 'a'],
  );
  assert.deepEqual(query.run(NS, hashes([9, 0]), '', 0), []);
  assert.deepEqual(query.run('other', q, '', 0), []);
  assert.deepEqual(query.run(NS, hashes([]), '', 0), []);
  assert.deepEqual(query.run(NS, hashes([0], 7, 16), '', 0), [], 'another hash length is another key space');
  const all = query.run(NS, hashes([0, 1, 2]), '', 0);
  assert.deepEqual(
    all.map((p) => [p.nodeId, p.prefixLen]),
    [
      ['b', 3],
      ['c', 3],
      ['a', 3],
    ],
  );
});

test('stale nodes are left out', () => {
  const { query, join, insert } = setup();
  join('a', 'h:1', 0n, 0);
  join('b', 'h:2', 0n, 5_000);
  insert('a', [1, 2, 3]);
  insert('b', [1, 2]);
  assert.deepEqual(
    query.run(NS, hashes([1, 2, 3]), '', 9_999).map((p) => [p.nodeId, p.prefixLen]),
    [
      ['a', 3],
      ['b', 2],
    ],
  );
  assert.deepEqual(
    query.run(NS, hashes([1, 2, 3]), '', 10_000).map((p) => [p.nodeId, p.prefixLen]),
    [['b', 2]],
  );
});

test('hash lengths that are not a multiple of 4 and out-of-order chains count the same', () => {
  const { query, join, insert } = setup();
  join('a', 'h:1');
  join('b', 'h:2');
  insert('a', [5, 4, 3, 2, 1, 0], 13); // reverse order: entry i + 1 is never the next hash's
  insert('b', [0, 1, 2], 13);
  const got = query.run(NS, hashes(range(0, 6), 7, 13), '', 0).map((p) => [p.nodeId, p.prefixLen]);
  assert.deepEqual(got, [
    ['a', 6],
    ['b', 3],
  ]);
});

test('more candidates than the scratch starts with', () => {
  const { query, join, insert } = setup();
  const nodes = range(0, 20).map((i) => `n${String(i).padStart(2, '0')}`);
  nodes.forEach((n, i) => {
    join(n, `h:${i}`);
    insert(n, range(0, i + 1));
  });
  const got = query.run(NS, hashes(range(0, 30)), '', 0);
  assert.deepEqual(
    got.map((p) => p.prefixLen),
    range(1, 21).reverse(),
  );
  assert.deepEqual(
    got.map((p) => p.nodeId),
    [...nodes].reverse(),
  );
});
