import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashCount, OwnerIndex } from './owner-index.js';
import { hashes, range } from './test-hashes.js';

const NS = 'ns';
const ALL_LIVE = new Uint8Array([1, 1, 1, 1]);
const slotsOf = (owners: { slot: number }[][]) => owners.map((list) => list.map((o) => o.slot));

test('insert counts new pairs per node and table; inserting an owned hash again adds nothing', () => {
  const index = new OwnerIndex();
  assert.deepEqual(index.insert(0, NS, hashes([1, 2]), ALL_LIVE), { inserted: 2, reclaimable: [] });
  assert.deepEqual(index.insert(0, NS, hashes([2, 3]), ALL_LIVE), { inserted: 1, reclaimable: [] });
  assert.deepEqual(index.insert(1, NS, hashes([3]), ALL_LIVE), { inserted: 1, reclaimable: [] });
  assert.deepEqual(index.insert(1, NS, hashes([]), ALL_LIVE), { inserted: 0, reclaimable: [] });
  assert.deepEqual([index.blocks, index.owners, index.ownedBy(0), index.ownedBy(1), index.ownedBy(2)], [3, 4, 3, 1, 0]);
  assert.deepEqual(index.listNamespaces(), [{ name: NS, blocks: 3, owners: 4 }]);
  assert.equal(index.table(NS, 32)!.size, 3);
  assert.equal(index.table(NS, 16), undefined);
});

test('reclaimable: the third or later owner among the live ones', () => {
  const index = new OwnerIndex();
  for (const slot of [0, 1, 2]) index.insert(slot, NS, hashes([1]), ALL_LIVE);
  assert.deepEqual(index.insert(3, NS, hashes([1]), ALL_LIVE).reclaimable, [0]);
  const onlyOneAhead = new Uint8Array([0, 1, 0, 1]);
  assert.deepEqual(index.insert(3, NS, hashes([1]), onlyOneAhead).reclaimable, []);
  assert.deepEqual(index.insert(2, NS, hashes([1]), ALL_LIVE).reclaimable, [0]);
});

test('liveOwners lists live slots in arrival order', () => {
  const index = new OwnerIndex();
  index.insert(2, NS, hashes([1, 2]), ALL_LIVE);
  index.insert(0, NS, hashes([1]), ALL_LIVE);
  index.insert(1, NS, hashes([1]), ALL_LIVE);
  assert.deepEqual(slotsOf(index.liveOwners(NS, hashes([1, 2, 3]), ALL_LIVE)), [[2, 0, 1], [2], []]);
  assert.deepEqual(slotsOf(index.liveOwners(NS, hashes([1]), new Uint8Array([1, 0, 0]))), [[0]]);
  assert.deepEqual(index.liveOwners('other', hashes([1]), ALL_LIVE), [[]]);
});

test('remove is per owner and drops empty entries, tables and namespaces', () => {
  const index = new OwnerIndex();
  index.insert(0, NS, hashes([1, 2]), ALL_LIVE);
  index.insert(1, NS, hashes([2]), ALL_LIVE);
  assert.equal(index.remove(1, NS, hashes([1, 2, 99])), 1);
  assert.equal(index.remove(1, 'other', hashes([1])), 0);
  assert.deepEqual([index.blocks, index.owners, index.ownedBy(1)], [2, 2, 0]);
  assert.equal(index.remove(0, NS, hashes([1, 2])), 2);
  assert.deepEqual([index.blocks, index.owners, index.namespaceCount], [0, 0, 0]);
  assert.equal(index.table(NS, 32), undefined);
});

test('dropNode removes every ownership of one slot across namespaces and nothing else', () => {
  const index = new OwnerIndex();
  index.insert(0, 'a', hashes(range(0, 100)), ALL_LIVE);
  index.insert(0, 'b', hashes(range(0, 10), 7, 16), ALL_LIVE);
  index.insert(1, 'a', hashes(range(50, 60)), ALL_LIVE);
  assert.equal(index.dropNode(0), 110);
  assert.deepEqual(index.listNamespaces(), [{ name: 'a', blocks: 10, owners: 10 }]);
  assert.deepEqual([index.ownedBy(0), index.ownedBy(1)], [0, 10]);
  assert.equal(index.dropNode(0), 0);
  // the slot is clean for its next session
  assert.deepEqual(index.insert(0, 'a', hashes([50]), ALL_LIVE), { inserted: 1, reclaimable: [] });
  assert.deepEqual(slotsOf(index.liveOwners('a', hashes([50]), ALL_LIVE)), [[1, 0]]);
});

test('an emptied table stays until dropIfEmpty, which forgets it and its namespace', () => {
  const index = new OwnerIndex();
  index.insert(0, NS, hashes([1]), ALL_LIVE);
  const table = index.table(NS, 32)!;
  table.heads.set(0, 0); // as if its last owner was unlinked
  table.delete(0);
  assert.equal(index.table(NS, 32), table);
  index.dropIfEmpty(NS, table);
  assert.equal(index.table(NS, 32), undefined);
  assert.equal(index.namespaceCount, 0);
});

test('newOwnerships counts what an insert would add, reading only', () => {
  const index = new OwnerIndex();
  assert.deepEqual(index.newOwnerships(0, NS, hashes([1, 2])), { entries: 2, pairs: 2 });
  index.insert(0, NS, hashes([1, 2]), ALL_LIVE);
  index.insert(1, NS, hashes([3]), ALL_LIVE);
  const before = [index.blocks, index.owners, index.bytes()];
  assert.deepEqual(index.newOwnerships(0, NS, hashes([1, 2, 3, 4])), { entries: 1, pairs: 2 });
  assert.deepEqual(index.newOwnerships(1, NS, hashes([1, 2, 3])), { entries: 0, pairs: 2 });
  assert.deepEqual(index.newOwnerships(0, NS, hashes([1, 2])), { entries: 0, pairs: 0 });
  assert.deepEqual([index.blocks, index.owners, index.bytes()], before);
});

test('bytesToAdd bounds what inserting really adds', () => {
  const index = new OwnerIndex();
  // from empty, across slot-array doublings and arena chunks, in steps of several sizes
  for (const [slot, from, n] of [
    [0, 0, 1],
    [0, 1, 4095],
    [0, 4096, 1],
    [1, 0, 5000],
    [0, 4097, 20_000],
    [2, 100_000, 3],
  ] as const) {
    const list = hashes(range(from, from + n));
    const add = index.newOwnerships(slot, NS, list);
    const bound = index.bytesToAdd(NS, 32, add.entries, add.pairs);
    const before = index.bytes();
    index.insert(slot, NS, list, ALL_LIVE);
    const grew = index.bytes() - before;
    assert.ok(grew <= bound, `slot ${slot} +${n}: grew ${grew} bytes, bound ${bound}`);
  }
});

test('bytes counts the typed arrays', () => {
  const index = new OwnerIndex();
  const empty = index.bytes();
  index.insert(0, NS, hashes(range(0, 1000)), ALL_LIVE);
  assert.ok(index.bytes() >= empty + 1000 * 32, `${index.bytes()} bytes`);
});

test('hashCount validates the list', () => {
  assert.equal(hashCount(hashes([1, 2, 3], 7, 8)), 3);
  assert.throws(() => hashCount({ packed: Buffer.alloc(10), hashLen: 3 }), /hashes.packed/);
  assert.throws(() => hashCount({ packed: Buffer.alloc(65), hashLen: 65 }), /hashes.hash_len/);
  assert.throws(() => hashCount({ packed: Buffer.alloc(0), hashLen: 0 }), /hashes.hash_len/);
});
