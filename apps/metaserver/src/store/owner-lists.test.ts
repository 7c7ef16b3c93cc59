import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TIER_BOTH, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { MAX_OWNER_RECORDS, OWNER_RECORD_BYTES, OwnerLists } from './owner-lists.js';

test('the tier rides in the top bits of the link word: next and tier are set apart, each keeping the other', () => {
  const lists = new OwnerLists();
  const a = lists.alloc(0xffff, TIER_BOTH);
  const b = lists.alloc(7, TIER_SSD);
  assert.deepEqual([lists.nextOf(a), lists.tierOf(a), lists.node.get(a)], [0, TIER_BOTH, 0xffff]);
  lists.setNext(a, MAX_OWNER_RECORDS); // the largest record id the link word holds
  assert.deepEqual([lists.nextOf(a), lists.tierOf(a)], [MAX_OWNER_RECORDS, TIER_BOTH]);
  assert.equal(lists.setTier(a, TIER_SSD), true);
  assert.deepEqual([lists.nextOf(a), lists.tierOf(a)], [MAX_OWNER_RECORDS, TIER_SSD]);
  assert.equal(lists.setTier(a, TIER_SSD), false, 'the same tier again: no change');
  lists.setNext(a, b);
  assert.deepEqual([lists.nextOf(a), lists.tierOf(a), lists.nextOf(b), lists.tierOf(b)], [b, TIER_SSD, 0, TIER_SSD]);
  assert.equal(lists.setTier(b, TIER_DRAM), true);
  assert.deepEqual([lists.nextOf(a), lists.tierOf(b)], [b, TIER_DRAM]);
});

test('released records come back with the tier they are given, not the one they had', () => {
  const lists = new OwnerLists();
  const a = lists.alloc(1, TIER_BOTH);
  lists.release(a);
  const again = lists.alloc(2, TIER_DRAM);
  assert.equal(again, a, 'the record is reused');
  assert.deepEqual([lists.tierOf(again), lists.nextOf(again), lists.used], [TIER_DRAM, 0, 1]);
});

test('a record is still 6 bytes: the arena holds a u16 and a u32 per record, nothing per tier', () => {
  const lists = new OwnerLists();
  for (let i = 0; i < 10_000; i++) lists.alloc(i & 0xffff, (i % 3) as 0 | 1 | 2);
  assert.equal(OWNER_RECORD_BYTES, 6);
  // chunks of 4096 records: 3 chunks for ids 1..10000
  assert.equal(lists.bytes(), 3 * 4096 * OWNER_RECORD_BYTES);
});
