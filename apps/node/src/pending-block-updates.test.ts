import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INSERT, PendingBlockUpdates, REMOVE } from './pending-block-updates.js';

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
