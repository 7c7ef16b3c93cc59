import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExtentAllocator } from './extent-allocator.js';

const KiB = 1024;

test('extents of one size fill a segment, other sizes take other segments, freed segments return', () => {
  const a = new ExtentAllocator(4 * 64 * KiB, 64 * KiB);
  const small = Array.from({ length: 4 }, () => a.alloc(16 * KiB)!);
  assert.deepEqual(
    small.sort((x, y) => x - y),
    [0, 16384, 32768, 49152],
  );
  const big = a.alloc(32 * KiB)!;
  assert.equal(Math.floor(big / (64 * KiB)), 1);
  assert.equal(a.alloc(16 * KiB)! >= 128 * KiB, true); // segment 0 is full: a fresh one
  assert.deepEqual(a.stats(), {
    capacityBytes: 256 * KiB,
    usedBytes: 5 * 16 * KiB + 32 * KiB,
    extents: 6,
    freeSegments: 1,
  });
  assert.equal(a.alloc(128 * KiB), undefined); // larger than a segment
  for (const o of small) assert.equal(a.free(o, 16 * KiB), true);
  assert.equal(a.free(small[0]!, 16 * KiB), false); // twice
  assert.equal(a.free(big, 16 * KiB), false); // wrong size
  assert.equal(a.stats().freeSegments, 2);
});

test('runs out, then an extent freed is handed out again', () => {
  const a = new ExtentAllocator(2 * 64 * KiB, 64 * KiB);
  const got = Array.from({ length: 8 }, () => a.alloc(16 * KiB));
  assert.ok(got.every((o) => o !== undefined));
  assert.equal(a.alloc(16 * KiB), undefined);
  a.free(got[5]!, 16 * KiB);
  assert.equal(a.alloc(16 * KiB), got[5]);
});

test('claims take exactly the extents a journal names and refuse overlaps, other sizes and strays', () => {
  const a = new ExtentAllocator(4 * 64 * KiB, 64 * KiB);
  assert.equal(a.claim(16 * KiB, 16 * KiB), true);
  assert.equal(a.claim(16 * KiB, 16 * KiB), false); // taken
  assert.equal(a.claim(32 * KiB, 32 * KiB), false); // segment 0 holds 16 KiB extents
  assert.equal(a.claim(8 * KiB, 16 * KiB), false); // off the grid
  assert.equal(a.claim(4 * 64 * KiB, 16 * KiB), false); // past the file
  assert.equal(a.claim(64 * KiB, 32 * KiB), true);
  a.finishClaims();
  const next = new Set(Array.from({ length: 3 }, () => a.alloc(16 * KiB)));
  assert.deepEqual(
    [...next].sort((x, y) => x! - y!),
    [0, 32 * KiB, 48 * KiB],
  );
  assert.equal(a.alloc(32 * KiB), 96 * KiB);
  assert.equal(a.stats().extents, 6);
});
