// The SSD catalog: entries keyed by (namespace, hash) through native ids, runs looked up in one call, LRU per drive,
// pins, bytes per drive, and an entry replaced or removed leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SsdCatalog, extentBytes, type SsdEntry } from './ssd-catalog.js';

const layout = { tpSize: 1, replicated: false, segments: 2, segmentBytes: 8192 };
const h = (i: number, len = 32) => Buffer.alloc(len, i + 1);
const entry = (i: number, drive = 0, namespace = 'ns'): SsdEntry => ({
  id: -1,
  drive,
  offset: i * extentBytes(layout),
  namespace,
  layout,
  hash: h(i),
  checksums: new Uint32Array(2),
  pins: 0,
});

test('entries are found by (namespace, hash), one at a time or a packed run at once', () => {
  const c = new SsdCatalog(2);
  const [a, b, x] = [entry(0), entry(1, 1), entry(0, 0, 'other')];
  for (const e of [a, b, x]) assert.equal(c.add(e), undefined);
  assert.equal(c.size, 3);
  assert.equal(c.get('ns', h(0)), a);
  assert.equal(c.get('other', h(0)), x, 'namespaces are kept apart');
  assert.equal(c.get('ns', h(2)), undefined);
  assert.equal(c.get('nowhere', h(0)), undefined);

  const out = new Int32Array(3);
  assert.equal(c.findMany('ns', Buffer.concat([h(1), h(2), h(0)]), 32, out), 2);
  assert.deepEqual([c.entry(out[0]!), out[1], c.entry(out[2]!)], [b, -1, a]);
  assert.equal(c.findMany('nowhere', Buffer.concat([h(0), h(1)]), 32, out), 0);
  assert.deepEqual([...out.subarray(0, 2)], [-1, -1]);
  assert.equal(c.usedBytes(0), 2 * extentBytes(layout));
  assert.equal(c.usedBytes(1), extentBytes(layout));
});

test('an entry for the same block replaces the old one; removed entries leave nothing behind', () => {
  const c = new SsdCatalog(1);
  const old = entry(0);
  c.add(old);
  const fresh = { ...entry(0), offset: 12345 };
  assert.equal(c.add(fresh), old);
  assert.equal(c.get('ns', h(0)), fresh);
  assert.equal(c.remove(old), false, 'the replaced entry is not listed any more');
  assert.equal(c.size, 1);
  assert.equal(c.usedBytes(0), extentBytes(layout));
  assert.equal(c.remove(fresh), true);
  assert.equal(c.remove(fresh), false);
  assert.equal(c.size, 0);
  assert.equal(c.usedBytes(0), 0);
  assert.equal(c.get('ns', h(0)), undefined);
  assert.deepEqual(c.hashesByNamespace(), []);
});

test('the victim is the least recently used unpinned entry of its drive; touch makes one the newest', () => {
  const c = new SsdCatalog(1);
  const es = [0, 1, 2].map((i) => entry(i));
  for (const e of es) c.add(e);
  assert.equal(c.victim(0), es[0]);
  c.touch(es[0]!);
  assert.equal(c.victim(0), es[1]);
  es[1]!.pins = 1;
  assert.equal(c.victim(0), es[2], 'pinned entries are skipped');
  assert.deepEqual([...c.entries(0)], [es[1], es[2], es[0]]);
  c.remove(es[2]!);
  c.add(entry(3)); // reuses the removed entry's id, listed as the newest
  assert.deepEqual(
    [...c.entries(0)].map((e) => e.hash[0]),
    [2, 1, 4],
  );
  const [group] = c.hashesByNamespace();
  assert.equal(group!.hashLen, 32);
  assert.deepEqual([...Array(3).keys()].map((k) => group!.packed[k * 32]).sort(), [1, 2, 4]);
});
