import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TIER_BOTH, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { INSERT, MOVE, PendingBlockUpdates, REMOVE } from './pending-block-updates.js';

const h = (s: string) => Buffer.from(s);
const hashes = (list: { packed: Buffer; hashLen: number }) => {
  const out: string[] = [];
  for (let off = 0; off < list.packed.length; off += list.hashLen)
    out.push(list.packed.subarray(off, off + list.hashLen).toString());
  return out;
};

test('updates are netted per namespace and handed out packed per hash length', () => {
  const p = new PendingBlockUpdates(100);
  assert.equal(p.note('a', h('k1'), INSERT), 'added');
  assert.equal(p.note('a', h('k2'), INSERT), 'added');
  assert.equal(p.note('a', h('k1'), INSERT), 'repeated');
  assert.equal(p.note('a', h('long'), INSERT), 'added');
  assert.equal(p.note('a', h('gone'), REMOVE), 'added');
  assert.equal(p.note('b', h('k1'), REMOVE), 'added');
  assert.equal(p.note('a', h('k2'), REMOVE), 'netted', 'an insert then a remove before a flush: nothing to send');
  assert.equal(p.size, 4);
  const taken = p
    .take()
    .map((n) => ({ namespace: n.namespace, inserts: n.inserts.map(hashes), removes: n.removes.map(hashes) }));
  assert.deepEqual(taken, [
    { namespace: 'a', inserts: [['k1'], ['long']], removes: [['gone']] },
    { namespace: 'b', inserts: [], removes: [['k1']] },
  ]);
  assert.equal(p.size, 0);
  assert.deepEqual(p.take(), []);
});

test('the hash bytes are copied: the caller may reuse its buffer', () => {
  const p = new PendingBlockUpdates(100);
  const buf = Buffer.from('abcd');
  p.note('a', buf.subarray(0, 2), INSERT);
  buf.write('zz');
  assert.deepEqual(p.take()[0]!.inserts.map(hashes), [['ab']]);
});

test('beyond `max` held updates new ones are dropped; netting still works when full', () => {
  const p = new PendingBlockUpdates(2);
  p.note('a', h('k1'), INSERT);
  p.note('a', h('k2'), INSERT);
  assert.equal(p.note('a', h('k3'), INSERT), 'dropped');
  assert.equal(p.note('a', h('k1'), REMOVE), 'netted');
  assert.equal(p.note('a', h('k3'), INSERT), 'added');
  assert.equal(p.size, 2);
});

test('many updates: the per-namespace table grows and keeps every one', () => {
  const p = new PendingBlockUpdates(1_000_000);
  for (let i = 0; i < 5000; i++) p.note('a', h(`h${String(i).padStart(5, '0')}`), i % 2 === 0 ? INSERT : REMOVE);
  const [a] = p.take();
  assert.equal(a!.inserts.flatMap(hashes).length, 2500);
  assert.equal(a!.removes.flatMap(hashes).length, 2500);
  assert.ok(a!.removes.flatMap(hashes).includes('h04999'));
});

test('tiers: inserts and moves go out as inserts grouped by tier, the latest tier of a hash winning', () => {
  const p = new PendingBlockUpdates(100);
  assert.equal(p.note('a', h('k1'), INSERT, TIER_DRAM), 'added');
  assert.equal(p.note('a', h('k1'), MOVE, TIER_BOTH), 'replaced', 'written to SSD before the flush');
  assert.equal(p.note('a', h('k1'), MOVE, TIER_BOTH), 'repeated');
  assert.equal(p.note('a', h('k2'), INSERT, TIER_SSD), 'added', 'replayed from the journal');
  assert.equal(p.note('a', h('k3'), MOVE, TIER_SSD), 'added', 'evicted from DRAM, on SSD');
  assert.equal(p.note('a', h('k4'), INSERT), 'added');
  const [a] = p.take();
  const byTier = a!.inserts.map((l) => [l.tier, hashes(l)]).sort((x, y) => Number(x[0]) - Number(y[0]));
  assert.deepEqual(byTier, [
    [TIER_DRAM, ['k4']],
    [TIER_SSD, ['k2', 'k3']],
    [TIER_BOTH, ['k1']],
  ]);
  assert.deepEqual(a!.removes, []);
});

test('a remove cancels only an insert the metaserver never heard of; after a move it goes out', () => {
  const p = new PendingBlockUpdates(100);
  p.note('a', h('new'), INSERT, TIER_SSD);
  assert.equal(p.note('a', h('new'), REMOVE), 'netted', 'never sent: nothing to send');
  p.note('a', h('moved'), MOVE, TIER_DRAM); // its SSD copy went: the metaserver holds it
  assert.equal(p.note('a', h('moved'), REMOVE), 'replaced', 'then DRAM evicted it: the remove must go out');
  p.note('a', h('back'), REMOVE);
  assert.equal(p.note('a', h('back'), INSERT, TIER_DRAM), 'replaced', 'saved again: its tier must go out');
  assert.equal(p.note('a', h('back'), REMOVE), 'replaced', 'and gone again: a remove, not nothing');
  p.note('a', h('again'), REMOVE);
  p.note('a', h('again'), INSERT, TIER_BOTH);
  assert.equal(p.size, 3);
  const [a] = p.take();
  assert.deepEqual(a!.removes.flatMap(hashes).sort(), ['back', 'moved'], 'in no particular order');
  assert.deepEqual(
    a!.inserts.map((l) => [l.tier, hashes(l)]),
    [[TIER_BOTH, ['again']]],
  );
});
