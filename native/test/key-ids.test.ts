// Dense ids for (tag, hash) keys in native memory (src/key_ids_js.cc): find and intern a packed run in one call,
// ids reused after remove, tags kept apart, growth past the initial table, hostile input refused naming the field.
// Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKeyIds } from '../lib/key-ids.js';

const LEN = 32;
const hashes = (...ids: number[]) =>
  Buffer.concat(ids.map((i) => Buffer.from(Array.from({ length: LEN }, (_, b) => (i * 31 + b * 7) & 0xff))));

test('intern gives each (tag, hash) one id; find returns it or -1; remove frees the id for reuse', () => {
  const ids = createKeyIds();
  const packed = hashes(0, 1, 2, 1);
  const out = new Int32Array(4);
  assert.equal(ids.intern(5, packed, LEN, 0, 4, out), 3, 'hash 1 repeats: three new keys');
  const [a, b, c, b2] = out;
  assert.equal(b2, b);
  assert.equal(new Set([a, b, c]).size, 3);
  assert.equal(ids.size(), 3);

  const found = new Int32Array(4);
  assert.equal(ids.find(5, packed, LEN, 0, 4, found), 4);
  assert.deepEqual([...found], [...out]);
  assert.equal(ids.find(6, packed, LEN, 0, 4, found), 0, 'another tag holds none of them');
  assert.deepEqual([...found], [-1, -1, -1, -1]);
  assert.equal(ids.intern(5, packed, LEN, 1, 2, found), 0, 'interning present keys adds nothing');
  assert.deepEqual([...found.subarray(0, 2)], [b, c]);

  assert.equal(ids.remove(b!), true);
  assert.equal(ids.remove(b!), false, 'not live any more');
  assert.equal(ids.find(5, packed, LEN, 1, 1, found), 0);
  assert.equal(found[0], -1);
  assert.equal(ids.intern(5, hashes(9), LEN, 0, 1, found), 1);
  assert.equal(found[0], b, 'the freed id is handed out again');
  assert.equal(ids.size(), 3);
});

test('many keys grow the table; every id stays findable; hostile input is refused and changes nothing', () => {
  const ids = createKeyIds();
  const n = 20_000;
  const packed = hashes(...Array.from({ length: n }, (_, i) => i));
  // distinct keys: vary two bytes by i so 20k hashes do not collide on the 8-bit pattern above
  for (let i = 0; i < n; i++) packed.writeUInt16LE(i, i * LEN);
  const out = new Int32Array(n);
  assert.equal(ids.intern(1, packed, LEN, 0, n, out), n);
  assert.equal(new Set(out).size, n);
  const again = new Int32Array(n);
  assert.equal(ids.find(1, packed, LEN, 0, n, again), n);
  assert.deepEqual(again, out);

  const one = new Int32Array(1);
  const bad: [string, () => unknown][] = [
    ['packed', () => ids.find(1, 'x' as unknown as Buffer, LEN, 0, 1, one)],
    ['hashLen', () => ids.find(1, packed, 0, 0, 1, one)],
    ['hashLen', () => ids.intern(1, packed, 65, 0, 1, one)],
    ['count', () => ids.intern(1, packed, LEN, n, 1, one)],
    ['count', () => ids.find(1, packed, LEN, 5, n, new Int32Array(n))],
    ['out', () => ids.intern(1, hashes(n + 1), LEN, 0, 1, new Int32Array(0))],
    ['out', () => ids.find(1, packed, LEN, 0, 1, new Uint32Array(1) as unknown as Int32Array)],
    ['tag', () => ids.intern(-1, hashes(n + 1), LEN, 0, 1, one)],
    ['id', () => ids.remove('3' as unknown as number)],
  ];
  for (const [field, call] of bad)
    assert.throws(call, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && e.message.startsWith(field));
  assert.equal(ids.size(), n, 'nothing was added by the refused calls');
  assert.equal(ids.remove(-1), false);
  assert.equal(ids.remove(2 ** 40), false);
});

test('copyKeys packs the keys of a list of ids; a dead id or a wrong length is refused before a byte is written', () => {
  const ids = createKeyIds();
  const packed = hashes(0, 1, 2);
  const out = new Int32Array(3);
  ids.intern(3, packed, LEN, 0, 3, out);
  const order = Int32Array.from([out[2]!, out[0]!, out[2]!]);
  const keys = Buffer.alloc(3 * LEN + 1, 0xee);
  assert.equal(ids.copyKeys(order, 3, LEN, keys), 3 * LEN);
  assert.deepEqual(keys.subarray(0, 3 * LEN), hashes(2, 0, 2));
  assert.equal(keys[3 * LEN], 0xee, 'nothing past the keys');
  assert.equal(ids.copyKeys(order, 0, LEN, Buffer.alloc(0)), 0);

  ids.intern(3, Buffer.alloc(16, 7), 16, 0, 1, out);
  const short = out[0]!;
  ids.remove(order[1]!);
  const clean = Buffer.alloc(2 * LEN);
  const bad: [string, () => unknown][] = [
    ['ids', () => ids.copyKeys([0] as unknown as Int32Array, 1, LEN, clean)],
    ['ids', () => ids.copyKeys(Int32Array.from([order[0]!, order[1]!]), 2, LEN, clean)],
    ['ids', () => ids.copyKeys(Int32Array.from([order[0]!, short]), 2, LEN, clean)],
    ['ids', () => ids.copyKeys(Int32Array.from([order[0]!, -1]), 2, LEN, clean)],
    ['ids', () => ids.copyKeys(Int32Array.from([order[0]!, 1 << 30]), 2, LEN, clean)],
    ['count', () => ids.copyKeys(order, 4, LEN, Buffer.alloc(4 * LEN))],
    ['hashLen', () => ids.copyKeys(order, 1, 0, clean)],
    ['hashLen', () => ids.copyKeys(order, 1, 65, Buffer.alloc(65))],
    ['out', () => ids.copyKeys(order, 2, LEN, Buffer.alloc(2 * LEN - 1))],
    ['out', () => ids.copyKeys(order, 1, LEN, new Uint16Array(LEN) as unknown as Uint8Array)],
  ];
  for (const [field, call] of bad)
    assert.throws(call, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && e.message.startsWith(field));
  assert.deepEqual(clean, Buffer.alloc(2 * LEN), 'refused calls wrote nothing');
  assert.equal(ids.copyKeys(Int32Array.from([short]), 1, 16, clean), 16);
  assert.deepEqual(clean.subarray(0, 16), Buffer.alloc(16, 7));
});
