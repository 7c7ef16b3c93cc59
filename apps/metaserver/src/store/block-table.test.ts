import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockTable } from './block-table.js';

/** Deterministic xorshift32 so failures replay. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** The bytes of buf as int32 words (an aligned copy), as the store passes them to findNear. */
function words(buf: Buffer): Int32Array {
  const out = new Int32Array(Math.ceil(buf.length / 4));
  new Uint8Array(out.buffer).set(buf);
  return out;
}

function check(table: BlockTable, ref: Map<string, number>, universe: Buffer[], formerIds = new Map<string, number>()) {
  assert.equal(table.size, ref.size);
  for (const [i, key] of universe.entries()) {
    const want = ref.get(key.toString('latin1'));
    assert.equal(table.find(key, 0), want ?? -1, `find ${key.toString('hex')}`);
    if (want !== undefined) assert.deepEqual(table.key(want), key);
    // findNear agrees whatever the guess: right, wrong, out of range, or a freed id still holding these bytes
    const former = formerIds.get(key.toString('latin1'));
    for (const guess of [want ?? 0, (i % (table.idBound + 2)) - 1, former ?? -1]) {
      assert.equal(table.findNear(key, 0, guess), want ?? -1, `findNear ${key.toString('hex')} guess ${guess}`);
      if (key.length % 4 === 0)
        assert.equal(table.findNear(key, 0, guess, words(key)), want ?? -1, `findNear words, guess ${guess}`);
    }
  }
}

for (const hashLen of [1, 3, 32, 64]) {
  test(`random inserts and deletes match a reference Map (hash_len ${hashLen})`, () => {
    const rand = rng(hashLen * 7919);
    const distinct = hashLen === 1 ? 256 : 3000;
    const universe = Array.from({ length: distinct }, (_, i) => {
      const b = Buffer.alloc(hashLen);
      if (hashLen === 1) b[0] = i;
      else for (let k = 0; k < hashLen; k++) b[k] = Math.floor(rand() * 256);
      if (hashLen >= 3) b.writeUIntBE(i, hashLen - 3, 3); // distinct, mostly-equal prefixes
      return b;
    });
    const table = new BlockTable(hashLen);
    const ref = new Map<string, number>();
    const formerIds = new Map<string, number>(); // deleted keys -> the id they had
    for (let step = 0; step < 20_000; step++) {
      const key = universe[Math.floor(rand() * universe.length)]!;
      const k = key.toString('latin1');
      if (rand() < 0.6) {
        const e = table.findOrAdd(key, 0);
        if (ref.has(k)) assert.equal(e, ref.get(k));
        else {
          assert.equal(table.heads.get(e), 0, 'a new entry starts without owners');
          table.heads.set(e, 1);
          ref.set(k, e);
        }
      } else if (ref.has(k)) {
        table.heads.set(ref.get(k)!, 0);
        table.delete(ref.get(k)!);
        formerIds.set(k, ref.get(k)!);
        ref.delete(k);
      }
      if (step % 5000 === 0) check(table, ref, universe, formerIds);
    }
    check(table, ref, universe, formerIds);
    // entry ids are reused: never more ids than the peak population
    assert.ok(table.idBound <= distinct);
  });
}

test('growth keeps every key and packs slots at most 3/4 full', () => {
  const table = new BlockTable(32);
  const keys: Buffer[] = [];
  for (let i = 0; i < 50_000; i++) {
    const b = Buffer.alloc(32);
    b.writeUInt32LE(i, 0); // sequential, non-uniform keys
    keys.push(b);
    assert.equal(table.findOrAdd(b, 0), i);
    table.heads.set(i, 1);
  }
  assert.equal(table.size, 50_000);
  assert.equal(table.slotCount, 131_072);
  keys.forEach((k, i) => assert.equal(table.find(k, 0), i));
  // delete every other key, then the rest stays findable (backward shift leaves no gaps in probe runs)
  for (let i = 0; i < keys.length; i += 2) table.delete(i);
  keys.forEach((k, i) => assert.equal(table.find(k, 0), i % 2 === 0 ? -1 : i));
  assert.equal(table.size, 25_000);
});

test('keys are read from an offset inside a larger packed buffer', () => {
  const table = new BlockTable(4);
  const packed = Buffer.from('aaaabbbbccccbbbb');
  assert.equal(table.findOrAdd(packed, 0), 0);
  table.heads.set(0, 1);
  assert.equal(table.findOrAdd(packed, 4), 1);
  table.heads.set(1, 1);
  assert.equal(table.find(packed, 12), 1);
  assert.equal(table.find(packed, 8), -1);
  assert.deepEqual(table.key(1), Buffer.from('bbbb'));
});

test('findNear: the guessed entry when it holds the hash, never a freed entry that still holds its bytes', () => {
  const table = new BlockTable(32);
  const keys = Array.from({ length: 8 }, (_, i) => Buffer.alloc(32, i + 1));
  const packed = Buffer.concat([Buffer.alloc(3), ...keys]); // unaligned offsets, as inside a decoded message
  keys.forEach((k, i) => {
    assert.equal(table.findOrAdd(k, 0), i);
    table.heads.set(i, 1);
  });
  const w = words(packed.subarray(3));
  for (let i = 0; i < keys.length; i++) {
    assert.equal(table.findNear(packed, 3 + i * 32, i), i, 'right guess');
    assert.equal(table.findNear(packed, 3 + i * 32, (i + 1) % 8), i, 'wrong guess: probed');
    assert.equal(table.findNear(packed, 3 + i * 32, 99), i, 'guess out of range');
    assert.equal(table.findNear(packed, 3 + i * 32, i, w), i, 'right guess, words');
    assert.equal(table.findNear(packed, 3 + i * 32, i + 1, w), i, 'wrong guess, words');
  }
  table.heads.set(5, 0);
  table.delete(5); // id 5 is free but its arena record still holds keys[5]
  assert.equal(table.findNear(packed, 3 + 5 * 32, 5), -1);
  assert.equal(table.findNear(packed, 3 + 5 * 32, 5, w), -1);
  assert.equal(table.findOrAdd(keys[5]!, 0), 5, 'the freed id is reused');
  table.heads.set(5, 1);
  assert.equal(table.findNear(packed, 3 + 5 * 32, 5, w), 5);
});
