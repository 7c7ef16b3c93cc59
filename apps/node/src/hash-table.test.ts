import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyTable, hashKey } from './hash-table.js';

/** Deterministic PRNG (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const refKey = (tag: number, key: Buffer) => `${tag}:${key.toString('hex')}`;

function checkAgainst(t: KeyTable, ref: Map<string, { tag: number; key: Buffer; id: number }>): void {
  assert.equal(t.size, ref.size);
  for (const { tag, key, id } of ref.values()) {
    assert.equal(t.find(tag, key, 0, key.length), id);
    assert.equal(t.tag(id), tag);
    assert.deepEqual(t.key(id), key);
    const copy = Buffer.alloc(key.length + 2);
    assert.equal(t.copyKey(id, copy, 1), key.length);
    assert.deepEqual(copy.subarray(1, 1 + key.length), key);
  }
  let live = 0;
  for (let id = 0; id < t.idBound; id++) if (t.isLive(id)) live++;
  assert.equal(live, ref.size, 'exactly the reference entries are live');
}

test('random inserts, deletes and growth agree with a Map', () => {
  for (const seed of [1, 2, 3]) {
    const rand = rng(seed);
    const t = new KeyTable(0, 8); // tiny: slots, ids and the key stride all grow on the way
    const ref = new Map<string, { tag: number; key: Buffer; id: number }>();
    const universe: { tag: number; key: Buffer }[] = [];
    // 3000 candidate keys over 3 tags, lengths 1..40 (some only differ in their tag or in their last byte)
    for (let i = 0; i < 3000; i++) {
      const len = 1 + Math.floor(rand() * 40);
      const key = Buffer.alloc(len);
      for (let b = 0; b < len; b++) key[b] = Math.floor(rand() * 4); // few distinct bytes: many near-collisions
      universe.push({ tag: Math.floor(rand() * 3), key });
    }
    for (let step = 0; step < 20_000; step++) {
      const { tag, key } = universe[Math.floor(rand() * universe.length)]!;
      const k = refKey(tag, key);
      const have = ref.get(k);
      const found = t.find(tag, key, 0, key.length);
      assert.equal(found, have ? have.id : -1, `step ${step}: find`);
      // insert more than delete early on (growth), then churn
      if (!have && rand() < (step < 10_000 ? 0.8 : 0.5)) {
        const id = t.add(tag, key, 0, key.length);
        assert.ok(![...ref.values()].some((e) => e.id === id), `step ${step}: id ${id} is already in use`);
        ref.set(k, { tag, key, id });
      } else if (have && rand() < 0.5) {
        t.remove(have.id);
        ref.delete(k);
        assert.equal(t.isLive(have.id), false);
      }
    }
    checkAgainst(t, ref);
    assert.ok(t.slotCount * 0.7 >= t.size);
    // drain: every deletion keeps the rest findable (backward shift leaves no holes in probe runs)
    for (const [k, e] of [...ref]) {
      t.remove(e.id);
      ref.delete(k);
      if (ref.size % 97 === 0) checkAgainst(t, ref);
    }
    checkAgainst(t, ref);
  }
});

test('lookups read the key in place from a larger buffer', () => {
  const t = new KeyTable();
  const packed = Buffer.alloc(16 * 100);
  for (let i = 0; i < 100; i++) packed.writeUInt32BE(i, i * 16 + 12); // counters in the last bytes
  for (let i = 0; i < 100; i++) assert.equal(t.add(0, packed, i * 16, 16), i);
  for (let i = 0; i < 100; i++) assert.equal(t.find(0, packed, i * 16, 16), i);
  assert.equal(t.find(1, packed, 0, 16), -1, 'another tag');
  assert.equal(t.find(0, packed, 0, 15), -1, 'a shorter key');
  assert.throws(() => t.add(0, packed, 16, 16), /already present as entry 1/);
});

test('freed ids are reused, most recent first', () => {
  const t = new KeyTable();
  const k = (i: number) => Buffer.from([i]);
  for (let i = 0; i < 5; i++) t.add(0, k(i), 0, 1);
  t.remove(1);
  t.remove(3);
  assert.equal(t.add(0, k(9), 0, 1), 3);
  assert.equal(t.add(0, k(8), 0, 1), 1);
  assert.equal(t.add(0, k(7), 0, 1), 5);
  assert.throws(() => t.remove(42), /entry 42 is not live/);
});

test('sequential keys spread over the slots', () => {
  const bits = 12;
  const counts = new Uint32Array(1 << bits);
  const key = Buffer.alloc(32);
  for (let i = 0; i < 1 << 16; i++) {
    key.writeUInt32BE(i, 28);
    counts[hashKey(0, key, 0, 32) & ((1 << bits) - 1)]!++;
  }
  // 16 keys per bucket on average; a poor mix piles them into a few buckets
  assert.ok(Math.max(...counts) < 48, `fullest bucket ${Math.max(...counts)}`);
  assert.ok(Math.min(...counts) > 0);
});
