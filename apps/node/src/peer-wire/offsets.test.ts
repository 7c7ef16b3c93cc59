import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packOffsets, unpackOffsets } from './offsets.js';

test('offsets round-trip as little-endian uint64, up to 2^53 - 1', () => {
  const offsets = Float64Array.of(0, 4096, 2 ** 32, 2 ** 32 + 65536, Number.MAX_SAFE_INTEGER);
  const packed = packOffsets(offsets);
  assert.equal(packed.length, 40);
  assert.equal(packed.readBigUInt64LE(8), 4096n);
  assert.equal(packed.readBigUInt64LE(24), 2n ** 32n + 65536n);
  assert.deepEqual([...unpackOffsets(packed)], [...offsets]);
  // a Uint8Array view (as protobuf decoding hands it over) unpacks the same
  const view = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  assert.deepEqual([...unpackOffsets(view)], [...offsets]);
});

test('a length that is not a multiple of 8, or an offset of 2^53 or more, is refused naming the field', () => {
  assert.throws(() => unpackOffsets(Buffer.alloc(12)), /page_offsets: expected a multiple of 8 bytes, got 12/);
  const big = Buffer.alloc(16);
  big.writeBigUInt64LE(2n ** 53n, 8);
  assert.throws(() => unpackOffsets(big, 'offsets'), /offsets\[1\]: expected an offset below 2\^53/);
});
