import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HolderHealth } from './holder-health.js';

test('a failed holder is skipped for the back-off, a corrupt one for the suspicion time, then usable again', () => {
  const h = new HolderHealth({ backoffMs: 5_000, suspectMs: 300_000 });
  h.failed('A', 1_000);
  h.corrupt('B', 1_000);
  assert.deepEqual([h.usable('A', 5_999), h.usable('B', 5_999), h.usable('C', 5_999)], [false, false, true]);
  assert.deepEqual(h.suspects(5_999), ['B']);
  assert.deepEqual([h.usable('A', 6_000), h.usable('B', 300_999)], [true, false]);
  assert.deepEqual(h.suspects(300_999), ['B']);
  assert.equal(h.usable('B', 301_000), true);
  assert.deepEqual(h.suspects(301_000), []);
  // suspicion outlasts a back-off given at the same time
  h.failed('D', 0);
  h.corrupt('D', 0);
  assert.deepEqual([h.usable('D', 10_000), h.suspects(10_000)], [false, ['D']]);
});
