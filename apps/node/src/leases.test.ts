import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseTable } from './leases.js';

function table() {
  let now = 1000;
  const pins = new Map<number, number>();
  const t = new LeaseTable({
    ttlMs: 100,
    now: () => now,
    pin: (s) => s.forEach((x) => pins.set(x, (pins.get(x) ?? 0) + 1)),
    unpin: (s) => s.forEach((x) => pins.set(x, pins.get(x)! - 1)),
  });
  return { t, pins, advance: (ms: number) => (now += ms) };
}

test('consumed once per rank; pins released when every rank loaded', () => {
  const { t, pins } = table();
  const lease = t.create('eng', 0, Int32Array.of(1, 2), 2);
  assert.equal(pins.get(1), 1);
  t.consume(lease.id, 'eng', 0);
  assert.throws(() => t.consume(lease.id, 'eng', 0), { code: 'LEASE_CONSUMED' });
  assert.equal(pins.get(1), 1);
  t.consume(lease.id, 'eng', 1);
  assert.equal(pins.get(1), 0);
  assert.throws(() => t.consume(lease.id, 'eng', 1), { code: 'LEASE_CONSUMED' });
  assert.equal(t.size, 0);
});

test('foreign engine refused, unknown lease, early release', () => {
  const { t, pins } = table();
  const lease = t.create('eng', 0, Int32Array.of(7), 1);
  assert.throws(() => t.consume(lease.id, 'other', 0), { code: 'LEASE_FOREIGN' });
  assert.throws(() => t.consume('nope', 'eng', 0), { code: 'LEASE_UNKNOWN' });
  t.release(lease.id, 'eng');
  assert.equal(pins.get(7), 0);
  assert.throws(() => t.consume(lease.id, 'eng', 0), { code: 'LEASE_UNKNOWN' });
});

test('leases expire after the ttl, lazily and by sweep', () => {
  const { t, pins, advance } = table();
  const a = t.create('eng', 0, Int32Array.of(1), 1);
  const b = t.create('eng', 0, Int32Array.of(2), 1);
  advance(100);
  assert.throws(() => t.consume(a.id, 'eng', 0), { code: 'LEASE_EXPIRED' });
  assert.equal(pins.get(1), 0);
  assert.equal(t.sweep(), 1);
  assert.equal(pins.get(2), 0);
  assert.throws(() => t.consume(b.id, 'eng', 0), { code: 'LEASE_EXPIRED' });
  assert.equal(t.counters.expired, 2);
});

test('dropEngine ends only that engine’s leases', () => {
  const { t } = table();
  t.create('a', 0, Int32Array.of(1), 1);
  const b = t.create('b', 0, Int32Array.of(2), 1);
  assert.equal(t.dropEngine('a'), 1);
  assert.equal(t.size, 1);
  assert.equal(t.get(b.id, 'b'), b);
});
