// The reporter's pending updates in native memory (src/pending_updates.h): netting per (namespace, hash) by kind
// (insert / move / remove) and tier, grouping on take, the bound, and hostile input refused naming the field with
// nothing changed. Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PENDING_INSERT as INSERT,
  PENDING_MOVE as MOVE,
  PENDING_REMOVE as REMOVE,
  createPendingUpdates,
  pendingCounts,
  type PendingGroup,
} from '../lib/pending-updates.js';

const LEN = 8;
const hashes = (...ids: number[]) => Buffer.concat(ids.map((i) => Buffer.alloc(LEN, i + 1)));
const DRAM = 1;
const SSD = 2;

/** take()'s groups as comparable rows: [ns, kind, tier, hash length, hash ids]. */
function rows(groups: PendingGroup[]) {
  return groups.map((g) => [
    g.ns,
    g.remove ? 'remove' : 'insert',
    g.tier,
    g.hashLen,
    Array.from({ length: g.packed.length / g.hashLen }, (_, i) => g.packed[i * g.hashLen]! - 1),
  ]);
}

test('inserts and removes net per (namespace, hash); take groups per namespace, kind, tier and hash length', () => {
  const t = createPendingUpdates(1000);
  assert.deepEqual(pendingCounts(t.note(1, hashes(0, 1, 2, 3), LEN, 0, 4, INSERT, DRAM)), {
    added: 4,
    repeated: 0,
    replaced: 0,
    netted: 0,
    dropped: 0,
  });
  assert.deepEqual([...t.note(1, hashes(0, 1), LEN, 0, 2, INSERT, DRAM)], [0, 2, 0, 0, 0], 'repeated');
  assert.deepEqual([...t.note(1, hashes(2, 3), LEN, 0, 2, REMOVE, 0)], [0, 0, 0, 2, 0], 'never announced: netted');
  assert.deepEqual([...t.note(2, hashes(2), LEN, 0, 1, REMOVE, 0)], [1, 0, 0, 0, 0], 'another namespace');
  assert.deepEqual([...t.note(1, hashes(1), LEN, 0, 1, INSERT, SSD)], [0, 0, 1, 0, 0], 'the latest tier wins');
  const short = Buffer.alloc(4, 9 + 1);
  t.note(1, short, 4, 0, 1, INSERT, DRAM);
  assert.equal(t.size(), 4);
  assert.deepEqual(rows(t.take()), [
    [1, 'insert', DRAM, 4, [9]],
    [1, 'insert', DRAM, LEN, [0]],
    [1, 'insert', SSD, LEN, [1]],
    [2, 'remove', 0, LEN, [2]],
  ]);
  assert.equal(t.size(), 0);
  assert.deepEqual(t.take(), [], 'nothing left pending');
});

test('moves: a remove after a move stays a remove; an insert or move after a remove becomes a move', () => {
  const t = createPendingUpdates(1000);
  t.note(1, hashes(0, 1), LEN, 0, 2, MOVE, SSD); // the metaserver may know these blocks
  assert.deepEqual([...t.note(1, hashes(0), LEN, 0, 1, REMOVE, 0)], [0, 0, 1, 0, 0], 'replaced, not netted');
  t.note(1, hashes(2), LEN, 0, 1, REMOVE, 0);
  assert.deepEqual([...t.note(1, hashes(2), LEN, 0, 1, INSERT, DRAM)], [0, 0, 1, 0, 0], 'back: a move');
  assert.deepEqual([...t.note(1, hashes(2), LEN, 0, 1, REMOVE, 0)], [0, 0, 1, 0, 0], 'a move removed again');
  t.note(1, hashes(3), LEN, 0, 1, REMOVE, 0);
  t.note(1, hashes(3), LEN, 0, 1, MOVE, DRAM);
  assert.deepEqual(rows(t.take()), [
    [1, 'insert', DRAM, LEN, [3]],
    [1, 'insert', SSD, LEN, [1]],
    [1, 'remove', 0, LEN, [0, 2]],
  ]);
});

test('at the bound new hashes are dropped (counted); pending ones still net', () => {
  const t = createPendingUpdates(3);
  assert.deepEqual([...t.note(1, hashes(0, 1, 2, 3, 4), LEN, 0, 5, INSERT, DRAM)], [3, 0, 0, 0, 2]);
  assert.deepEqual([...t.note(1, hashes(1), LEN, 0, 1, REMOVE, 0)], [0, 0, 0, 1, 0]);
  assert.deepEqual([...t.note(1, hashes(5), LEN, 0, 1, INSERT, DRAM)], [1, 0, 0, 0, 0], 'room again');
  assert.equal(t.size(), 3);
});

test('100,000 hashes in one call, taken back exactly once', () => {
  const t = createPendingUpdates(1 << 20);
  const n = 100_000;
  const packed = Buffer.alloc(n * 32);
  for (let i = 0; i < n; i++) packed.writeUInt32LE(i, i * 32);
  assert.equal(t.note(3, packed, 32, 0, n, INSERT, DRAM)[0], n);
  const [g, ...rest] = t.take();
  assert.equal(rest.length, 0);
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(g!.packed.readUInt32LE(i * 32));
  assert.equal(seen.size, n);
});

test('hostile arguments are refused naming the field, and change nothing', () => {
  const t = createPendingUpdates(10);
  t.note(1, hashes(0), LEN, 0, 1, INSERT, DRAM);
  const bad: [unknown[], RegExp][] = [
    [[-1, hashes(1), LEN, 0, 1, INSERT, DRAM], /ns/],
    [[1, 'abc', LEN, 0, 1, INSERT, DRAM], /packed/],
    [[1, hashes(1), 0, 0, 1, INSERT, DRAM], /hashLen/],
    [[1, hashes(1), 65, 0, 1, INSERT, DRAM], /hashLen/],
    [[1, hashes(1, 2), LEN, 1, 2, INSERT, DRAM], /count/],
    [[1, hashes(1), LEN, 2, 0, INSERT, DRAM], /count/],
    [[1, hashes(1), LEN, 0, 1, 0, DRAM], /update/],
    [[1, hashes(1), LEN, 0, 1, 3, DRAM], /update/],
    [[1, hashes(1), LEN, 0, 1, INSERT, 256], /tier/],
  ];
  for (const [args, field] of bad) {
    assert.throws(
      () => (t.note as (...a: unknown[]) => unknown)(...args),
      (err: Error & { code?: string }) => err.code === 'INVALID_ARGUMENT' && field.test(err.message),
      `${String(field)} refused`,
    );
  }
  assert.throws(() => createPendingUpdates(-1), /max/);
  assert.equal(t.size(), 1);
  assert.deepEqual(rows(t.take()), [[1, 'insert', DRAM, LEN, [0]]]);
});
