// The SSD catalog: entries keyed by (namespace, hash) through native ids, runs looked up and added in one call,
// LRU per drive, pins, bytes per drive, stamps per listing, sums of layouts of any width, journal records encoded
// from the arrays, and an entry replaced or removed leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SsdCatalog, extentBytes } from './ssd-catalog.js';
import { decodeRecords, type SsdPut } from './journal-codec.js';

const layout = { tpSize: 1, replicated: false, segments: 2, segmentBytes: 8192 };
const wide = { tpSize: 4, replicated: false, segments: 1, segmentBytes: 4096 };
const h = (i: number, len = 32) => Buffer.alloc(len, i + 1);
const off = (i: number) => i * extentBytes(layout);

/** Adds blocks `is` of `namespace` (offsets off(i), sums (i, ~i)) to `drive` in one call; returns their ids. */
function add(c: SsdCatalog, is: number[], drive = 0, namespace = 'ns', replaced?: (d: number, o: number) => void) {
  const sums = new Uint32Array(is.flatMap((i) => [i, ~i >>> 0]));
  const offsets = Float64Array.from(is, off);
  const kind = c.kindOf(namespace, layout);
  return [...c.addMany(kind, Buffer.concat(is.map((i) => h(i))), 32, is.length, drive, offsets, sums, replaced)];
}

const hashByte = (c: SsdCatalog, id: number) => c.hashOf(id)[0]! - 1;

test('entries are found by (namespace, hash), one at a time or a packed run at once', () => {
  const c = new SsdCatalog(2);
  const [a] = add(c, [0]);
  const [b] = add(c, [1], 1);
  const [x] = add(c, [0], 0, 'other');
  assert.equal(c.size, 3);
  assert.equal(c.find('ns', h(0)), a);
  assert.equal(c.find('other', h(0)), x, 'namespaces are kept apart');
  assert.notEqual(a, x);
  assert.equal(c.find('ns', h(2)), -1);
  assert.equal(c.find('nowhere', h(0)), -1);
  assert.deepEqual([c.driveOf(b!), c.offsetOf(b!), [...c.checksumsOf(b!)]], [1, off(1), [1, ~1 >>> 0]]);
  assert.equal(c.kindOfId(x!).namespace, 'other');
  assert.deepEqual(c.kindOfId(a!).layout, layout);
  assert.deepEqual(c.hashOf(b!), h(1), 'the hash is read back from the key table');

  const out = new Int32Array(3);
  assert.equal(c.findMany('ns', Buffer.concat([h(1), h(2), h(0)]), 32, out), 2);
  assert.deepEqual([...out], [b, -1, a]);
  assert.equal(c.findMany('nowhere', Buffer.concat([h(0), h(1)]), 32, out), 0);
  assert.deepEqual([...out.subarray(0, 2)], [-1, -1]);
  assert.equal(c.usedBytes(0), 2 * extentBytes(layout));
  assert.equal(c.usedBytes(1), extentBytes(layout));
  assert.deepEqual([c.count(0), c.count(1)], [2, 1]);
});

test('an entry for the same block replaces the old one; removed entries leave nothing behind', () => {
  const c = new SsdCatalog(2);
  const old = add(c, [0])[0]!;
  const stamp = c.stampOf(old!);
  const heard: [number, number][] = [];
  const sums = Uint32Array.of(7, 8);
  const kind = c.kindOf('ns', layout);
  const fresh = c.addMany(kind, h(0), 32, 1, 1, Float64Array.of(12345), sums, (d, o) => heard.push([d, o]))[0]!;
  assert.equal(fresh, old, 'the same key keeps its id');
  assert.deepEqual(heard, [[0, off(0)]], 'the replaced extent is handed back');
  assert.deepEqual([c.driveOf(fresh), c.offsetOf(fresh), [...c.checksumsOf(fresh)]], [1, 12345, [7, 8]]);
  assert.equal(c.listed(fresh, stamp), false, 'the earlier listing is gone');
  assert.equal(c.remove(fresh, stamp), false, 'a stale stamp removes nothing');
  assert.deepEqual([c.size, c.usedBytes(0), c.usedBytes(1), c.count(0), c.count(1)], [1, 0, extentBytes(layout), 0, 1]);
  assert.equal(c.remove(fresh), true);
  assert.equal(c.remove(fresh), false);
  assert.deepEqual([c.size, c.usedBytes(1), c.count(1)], [0, 0, 0]);
  assert.equal(c.find('ns', h(0)), -1);
  assert.deepEqual(c.hashesByNamespace(), []);
  assert.equal(c.victim(1), -1);

  const repeated = add(c, [3, 3]); // a hash repeated in a run: the later block wins
  assert.equal(repeated[0], repeated[1]);
  assert.deepEqual([c.size, c.count(0), c.usedBytes(0)], [1, 1, extentBytes(layout)]);
});

test('the victim is the least recently used unpinned entry of its drive; touch makes one the newest', () => {
  const c = new SsdCatalog(1);
  const es = add(c, [0, 1, 2]);
  assert.equal(c.victim(0), es[0]);
  c.touch(es[0]!);
  assert.equal(c.victim(0), es[1]);
  c.pin(es[1]!);
  assert.equal(c.pinsOf(es[1]!), 1);
  assert.equal(c.victim(0), es[2], 'pinned entries are skipped');
  assert.deepEqual([...c.ids(0)], [es[1], es[2], es[0]]);
  c.unpin(es[1]!, c.stampOf(es[1]!));
  assert.equal(c.victim(0), es[1]);
  c.pin(es[1]!);
  c.remove(es[2]!);
  const [d] = add(c, [3]); // reuses the removed entry's id, listed as the newest, unpinned
  assert.equal(d, es[2]);
  assert.deepEqual(
    [...c.ids(0)].map((id) => hashByte(c, id)),
    [1, 0, 3],
  );
  const stale = c.stampOf(es[1]!);
  c.remove(es[1]!);
  const [e] = add(c, [4]);
  assert.equal(e, es[1]);
  c.unpin(e!, stale); // the pin of a listing that is gone is not taken off the new one
  assert.equal(c.pinsOf(e!), 0);
  const [group] = c.hashesByNamespace();
  assert.equal(group!.hashLen, 32);
  assert.deepEqual([...Array(3).keys()].map((k) => group!.packed[k * 32]).sort(), [1, 4, 5]);
});

test('layouts of more shards widen every entry’s sums; puts are encoded from the arrays', () => {
  const c = new SsdCatalog(1);
  const [a, b] = add(c, [0, 1]);
  const k = c.kindOf('wide', wide);
  assert.equal(c.kindOf('wide', { ...wide }), k, 'one kind per distinct (namespace, layout)');
  const sums = Uint32Array.from({ length: 8 }, (_, i) => 100 + i);
  const [w] = c.addMany(k, h(9, 16), 16, 1, 0, Float64Array.of(1 << 20), sums);
  assert.deepEqual([...c.checksumsOf(a!)], [0, ~0 >>> 0], 'sums kept across the wider stride');
  assert.deepEqual([...c.checksumsOf(w!)], [...sums]);
  assert.equal(c.usedBytes(0), 2 * extentBytes(layout) + extentBytes(wide));
  const groups = c.hashesByNamespace().map((g) => [g.namespace, g.hashLen, g.packed.length]);
  assert.deepEqual(groups.sort(), [
    ['ns', 32, 64],
    ['wide', 16, 16],
  ]);

  const puts: SsdPut[] = [];
  decodeRecords(c.encodePuts(c.ids(0)), (r) => puts.push(r as SsdPut), true);
  assert.deepEqual(
    puts.map((p) => [p.namespace, p.offset, p.hash, [...p.checksums], p.layout]),
    [
      ['ns', off(0), h(0), [0, ~0 >>> 0], layout],
      ['ns', off(1), h(1), [1, ~1 >>> 0], layout],
      ['wide', 1 << 20, h(9, 16), [...sums], wide],
    ],
  );
  assert.equal(c.driveOf(b!), 0);
});
