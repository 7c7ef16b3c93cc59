import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateHashFilter } from './duplicate-hashes.js';

const packed = (...ids: number[]) => Buffer.concat(ids.map((i) => Buffer.alloc(8, i)));

test('isFirst: true for the first of each hash value in a call, false for its repeats', () => {
  const f = new DuplicateHashFilter();
  const p = packed(1, 2, 1, 3, 2, 2);
  f.reset(p, 8, 6);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => f.isFirst(i)),
    [true, true, false, true, false, false],
  );
});

test('reset starts a new call: hashes of the previous call are forgotten, and the table grows with the call', () => {
  const f = new DuplicateHashFilter();
  f.reset(packed(7, 7), 8, 2);
  assert.deepEqual([f.isFirst(0), f.isFirst(1)], [true, false]);
  const big = packed(...Array.from({ length: 1000 }, (_, i) => i % 250));
  f.reset(big, 8, 1000);
  let firsts = 0;
  for (let i = 0; i < 1000; i++) if (f.isFirst(i)) firsts++;
  assert.equal(firsts, 250);
  f.reset(packed(7), 8, 1);
  assert.equal(f.isFirst(0), true);
});

test('hashes that differ only in their last byte are different', () => {
  const f = new DuplicateHashFilter();
  const a = Buffer.alloc(16, 9);
  a[15] = 1;
  f.reset(a, 8, 2);
  assert.deepEqual([f.isFirst(0), f.isFirst(1)], [true, true]);
});
