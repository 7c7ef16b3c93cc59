import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNodeConfig } from './config.js';

test('flags, env fallback and defaults', () => {
  const { config } = parseNodeConfig(['--pool-size', '256mib', '--transport', 'tcp'], { KVFABRIC_LEASE_TTL_SECS: '5' });
  assert.equal(config.poolSize, 256 * 1024 * 1024);
  assert.equal(config.transport, 'tcp');
  assert.equal(config.leaseTtlSecs, 5);
  assert.equal(config.heartbeatIntervalSecs, 2);
  assert.equal(config.metaserverAddr, undefined);
});

test('every problem is reported together', () => {
  assert.throws(
    () => parseNodeConfig(['--pool-size', '16 gigs', '--transport', 'rdma', '--bogus', 'x'], {}),
    (err: Error) => {
      assert.match(err.message, /--bogus: unknown flag/);
      assert.match(err.message, /--pool-size: expected a size/);
      assert.match(err.message, /--transport: expected one of auto\|verbs\|tcp/);
      return true;
    },
  );
});
