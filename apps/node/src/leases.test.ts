import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import { createBlockIndex, type BlockIndex } from './block-index.js';
import { LeaseTable } from './leases.js';

/** A lease table on a real index with `n` sealed blocks (slots 0..n-1 in `slots`), and a clock the test moves. */
function table(n = 8) {
  let now = 1000;
  const index: BlockIndex = createBlockIndex();
  const slots = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Buffer.from(`hash-${i}`);
    const s = index.slotForShard(0, k, 0, k.length, 1, 0, 4096);
    index.assign(s, 0, i * 4096);
    index.markShardWritten(s, 0);
    slots[i] = s;
  }
  const t = new LeaseTable({ index, ttlMs: 100, now: () => now });
  return { t, index, slots, pins: (i: number) => index.pins(slots[i]!), advance: (ms: number) => (now += ms) };
}

test('consumed once per rank; pins released when every rank loaded', () => {
  const { t, index, slots, pins } = table();
  const lease = t.create(1, 0, slots.subarray(0, 2), 2);
  assert.equal(lease.expiresAtMs, 1100);
  assert.equal(pins(0), 1);
  const first = t.consume(lease.id, 1, 0, 0, 2);
  assert.equal(pins(0), 2, 'the load pins on top of the lease');
  index.unpinMany(first, first.length);
  assert.throws(() => t.consume(lease.id, 1, 0, 0, 1), { code: 'LEASE_CONSUMED' });
  assert.equal(pins(0), 1);
  const last = t.consume(lease.id, 1, 0, 1, 1);
  index.unpinMany(last, last.length);
  assert.equal(pins(0), 0);
  assert.equal(pins(1), 0);
  assert.throws(
    () => t.consume(lease.id, 1, 0, 1, 1),
    (err) => err instanceof KvError && err.code === 'LEASE_CONSUMED',
  );
  assert.equal(t.size, 0);
  assert.equal(t.counters().consumed, 1);
});

test('foreign engine refused, unknown lease, early release', () => {
  const { t, pins, slots } = table();
  const lease = t.create(1, 0, slots.subarray(7, 8), 1);
  assert.throws(() => t.consume(lease.id, 2, 0, 0, 1), { code: 'LEASE_FOREIGN' });
  assert.throws(() => t.consume(lease.id, 1, 3, 0, 1), { code: 'LEASE_FOREIGN' });
  assert.throws(() => t.consume('nope', 1, 0, 0, 1), { code: 'LEASE_UNKNOWN' });
  assert.equal(pins(7), 1);
  t.release(lease.id, 1);
  assert.equal(pins(7), 0);
  assert.throws(() => t.consume(lease.id, 1, 0, 0, 1), { code: 'LEASE_UNKNOWN', message: /\(released\)$/ });
});

test('leases expire after the ttl, lazily and by sweep', () => {
  const { t, pins, slots, advance } = table();
  const a = t.create(1, 0, slots.subarray(1, 2), 1);
  const b = t.create(1, 0, slots.subarray(2, 3), 1);
  advance(100);
  assert.throws(() => t.consume(a.id, 1, 0, 0, 1), { code: 'LEASE_EXPIRED' });
  assert.equal(pins(1), 0);
  assert.equal(t.sweep(), 1);
  assert.equal(pins(2), 0);
  assert.throws(() => t.consume(b.id, 1, 0, 0, 1), { code: 'LEASE_EXPIRED' });
  assert.equal(t.counters().expired, 2);
});

test('dropEngine ends only that engine’s leases', () => {
  const { t, slots, pins } = table();
  t.create(1, 0, slots.subarray(1, 2), 1);
  const b = t.create(2, 0, slots.subarray(2, 3), 1);
  assert.equal(t.dropEngine(1), 1);
  assert.equal(t.size, 1);
  assert.equal(pins(1), 0);
  assert.deepEqual([...t.consume(b.id, 2, 0, 0, 1)], [slots[2]]);
  t.clear();
  assert.equal(t.size, 0);
});

test('createForPrefix leases the prefix hit with the table’s clock; nothing hits, no lease', () => {
  const { t, pins } = table(3);
  const packed = Buffer.from('hash-0hash-1hash-9');
  const lease = t.createForPrefix(1, 0, packed, 6, 3, 1);
  assert.equal(lease.hits, 2);
  assert.equal(lease.expiresAtMs, 1100);
  assert.deepEqual([pins(0), pins(1), pins(2)], [1, 1, 0]);
  assert.deepEqual(t.createForPrefix(1, 0, Buffer.from('hash-9'), 6, 1, 1), { id: '', expiresAtMs: 0, hits: 0 });
  assert.equal(t.size, 1);
});
