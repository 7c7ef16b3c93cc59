import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotLru } from './slot-lru.js';

/** The slots of `list` from least to most recently used, by taking tails off a copy of the order. */
function order(lru: SlotLru, list: number): number[] {
  const out: number[] = [];
  for (let s = lru.tail(list); s !== -1; s = lru.tail(list)) {
    out.push(s);
    lru.remove(s);
  }
  for (const s of out) lru.pushFront(s, list); // put them back: the most recent ends at the front
  return out;
}

test('pushFront, touch and remove keep each list in recency order; lists are apart', () => {
  const lru = new SlotLru(8, 2);
  assert.equal(lru.tail(0), -1);
  for (const s of [0, 1, 2]) lru.pushFront(s, 0);
  lru.pushFront(5, 1);
  assert.deepEqual(order(lru, 0), [0, 1, 2]);
  lru.touch(0);
  assert.deepEqual(order(lru, 0), [1, 2, 0]);
  lru.remove(2);
  lru.remove(2); // in no list: nothing
  lru.touch(2); // in no list: stays out
  assert.deepEqual(order(lru, 0), [1, 0]);
  assert.deepEqual(order(lru, 1), [5]);
});

test('the sealed flag is per slot and survives list moves and growth', () => {
  const lru = new SlotLru(2, 1);
  lru.setSealed(1, true);
  lru.pushFront(1, 0);
  lru.grow(64);
  lru.pushFront(40, 0);
  lru.touch(1);
  assert.equal(lru.isSealed(1), true);
  assert.equal(lru.isSealed(40), false);
  assert.deepEqual(order(lru, 0), [40, 1]);
});
