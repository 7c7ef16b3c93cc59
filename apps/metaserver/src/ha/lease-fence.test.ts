import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseFence } from './lease-fence.js';

test('valid from a renewal until sentAt + TTL - margin, never extended backwards, revoked at once', () => {
  let now = 1000;
  const f = new LeaseFence(2000, () => now);
  assert.equal(f.marginMs, 500);
  assert.equal(f.valid(), false, 'not valid before any renewal');
  f.renewed(1000);
  assert.equal(f.remainingMs(), 1500);
  now = 2499;
  assert.equal(f.valid(), true);
  now = 2500;
  assert.equal(f.valid(), false, 'expires at sentAt + TTL - margin');
  // a late answer to an older keepalive does not move the deadline back
  f.renewed(2400);
  f.renewed(1200);
  assert.equal(f.remainingMs(), 1400);
  // etcd reporting less TTL than granted shortens validity; more is capped at the TTL
  f.revoke();
  assert.equal(f.valid(), false);
  f.renewed(2500, 1000);
  assert.equal(f.remainingMs(), 500);
  f.revoke();
  f.renewed(2500, 60_000);
  assert.equal(f.remainingMs(), 1500);
});

test('margin is at least 250 ms and a quarter of the TTL', () => {
  assert.equal(new LeaseFence(1000).marginMs, 250);
  assert.equal(new LeaseFence(5000).marginMs, 1250);
  assert.throws(() => new LeaseFence(0), /lease TTL must be positive/);
});
