import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize, formatBytes } from './sizes.js';
import { KvError } from './errors.js';

test('parseSize accepts decimal and binary units', () => {
  assert.equal(parseSize('16gb'), 16_000_000_000);
  assert.equal(parseSize('512mib'), 512 * 1024 * 1024);
  assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('2k'), 2048);
  assert.equal(parseSize(77), 77);
});

test('parseSize names the field and the bad value', () => {
  assert.throws(
    () => parseSize('16 gigs', 'pool-size'),
    (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.equal(err.message, 'pool-size: expected a size like 16gb or 512mib, got "16 gigs"');
      return true;
    },
  );
  assert.throws(() => parseSize(-1, 'x'), /x: expected a size like 16gb, got -1/);
  assert.throws(() => parseSize('', 'x'), /x:/);
});

test('formatBytes is human readable', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(256 * 1024 ** 2), '256 MiB');
  assert.equal(formatBytes(10n * 1024n ** 3n), '10.0 GiB');
});
