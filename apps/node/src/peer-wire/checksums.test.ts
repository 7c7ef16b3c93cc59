import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packChecksums, unpackChecksums } from './checksums.js';

test('checksums travel as little-endian uint64 and come back as (low, high) pairs', () => {
  const sums = Uint32Array.of(0x89abcdef, 0x01234567, 0xffffffff, 0xfffffffe, 0, 1);
  const packed = packChecksums(sums);
  assert.equal(packed.length, 24);
  assert.equal(packed.readBigUInt64LE(0), 0x0123456789abcdefn);
  assert.equal(packed.readBigUInt64LE(8), 0xfffffffeffffffffn);
  assert.equal(packed.readBigUInt64LE(16), 1n << 32n);
  assert.deepEqual([...unpackChecksums(packed)], [...sums]);
  // a Uint8Array view at an odd offset (as protobuf decoding may hand it over) unpacks the same
  const backing = new Uint8Array(packed.length + 1);
  backing.set(packed, 1);
  assert.deepEqual([...unpackChecksums(backing.subarray(1))], [...sums]);
});

test('a length that is not a multiple of 8 is refused naming the field', () => {
  assert.throws(() => unpackChecksums(Buffer.alloc(12)), /page_checksums: expected a multiple of 8 bytes, got 12/);
  assert.equal(unpackChecksums(Buffer.alloc(0)).length, 0);
});
