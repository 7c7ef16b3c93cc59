// Page checksums: XXH3-64 against the xxHash project's own sanity vectors, sum() over pages of every size and order,
// and verify() finding exactly the pages whose bytes changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CopyEngine } from '../lib/copy-engine.js';
import { pageChecksum } from '../lib/checksum.js';
import { Pool } from '../lib/pool.js';
import { rejectsWith } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** xxhsum's sanity buffer: byte i is the top byte of PRIME32 * PRIME64^i (mod 2^64). */
function sanityBuffer(len: number): Buffer {
  const buf = Buffer.alloc(len);
  let gen = 2654435761n;
  for (let i = 0; i < len; i++) {
    buf[i] = Number(gen >> 56n);
    gen = (gen * 11400714785074694797n) & 0xffff_ffff_ffff_ffffn;
  }
  return buf;
}

/** XXH3_64bits with seed 0 of the sanity buffer's first `len` bytes, from xxHash's self-test (cli/xsum_sanity_check.c). */
const XXH3_VECTORS: [number, bigint][] = [
  [0, 0x2d06800538d394c2n],
  [1, 0xc44bdff4074eecdbn],
  [6, 0x27b56a84cd2d7325n],
  [12, 0xa713daf0dfbb77e7n],
  [24, 0xa3fe70bf9d3510ebn],
  [48, 0x397da259ecba1f11n],
  [80, 0xbcdefbbb2c47c90an],
  [195, 0xcd94217ee362ec3an],
  [403, 0xcdeb804d65c6dea4n],
  [512, 0x617e49599013cb6bn],
  [2048, 0xdd59e2c3a5f038e0n],
  [2240, 0x6e73a90539cf2948n],
  [2367, 0xcb37aeb9e5d361edn],
];

const sumOf = (sums: Uint32Array, page: number): bigint =>
  BigInt(sums[2 * page]!) | (BigInt(sums[2 * page + 1]!) << 32n);

test('pageChecksum is XXH3-64: the xxHash sanity vectors, every length class', () => {
  const buf = sanityBuffer(2367);
  for (const [len, want] of XXH3_VECTORS) {
    assert.equal(pageChecksum(buf.subarray(0, len)), want, `length ${len}`);
  }
  assert.throws(() => pageChecksum('abc' as unknown as Uint8Array), /data: expected a Buffer or Uint8Array/);
});

test('sum: each page of any size, at any offset, in the order asked, split across the threads', async () => {
  await using engine = new CopyEngine({ threads: 2 });
  using pool = Pool.create({ sizeBytes: 16 * MiB, slabBytes: MiB });
  for (const page of [4 * KiB, 256 * KiB, 2 * MiB, 12_345]) {
    const count = Math.min(6, Math.floor((16 * MiB) / page));
    // pages out of pool order (and one page twice): each sum must follow its own page
    const order = [3, 0, 5, 1, 0, 2].slice(0, count).map((p) => Math.min(p, count - 1));
    const bytes = order.map(() => randomBytes(page));
    order.forEach((p, i) => pool.write(p * page, bytes[i]!));
    const offsets = Float64Array.from(order, (p) => p * page);
    const res = await engine.sum(pool, offsets, page);
    assert.equal(res.bytes, order.length * page);
    assert.equal(res.checksums.length, 2 * order.length);
    order.forEach((p, i) => {
      const last = order.lastIndexOf(p); // a page written twice holds the later bytes
      assert.equal(sumOf(res.checksums, i), pageChecksum(bytes[last]!), `page ${p} (${page} bytes)`);
    });
  }
});

test('sum refuses pages outside the memory and bad arguments, naming the field', async () => {
  await using engine = new CopyEngine({ threads: 2 });
  using pool = Pool.create({ sizeBytes: 4 * MiB, slabBytes: MiB });
  const f = (xs: number[]) => Float64Array.from(xs);
  await rejectsWith(engine.sum(pool, f([4 * MiB - 100]), 4096), 'INVALID_ARGUMENT', /pageOffsets\[0\]/);
  await rejectsWith(engine.sum(pool, f([0, 1.5]), 4096), 'INVALID_ARGUMENT', /pageOffsets\[1\]/);
  await rejectsWith(engine.sum(pool, f([0]), 0), 'INVALID_ARGUMENT', /pageBytes/);
  await rejectsWith(engine.sum(pool, [0] as unknown as Float64Array, 4096), 'INVALID_ARGUMENT', /pageOffsets/);
  const empty = await engine.sum(pool, f([]), 4096);
  assert.deepEqual([empty.bytes, empty.checksums.length], [0, 0]);
});

test('verify names exactly the pages whose bytes differ from their checksums', async () => {
  await using engine = new CopyEngine({ threads: 2 });
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: MiB });
  const page = 256 * KiB;
  const offsets = Float64Array.from([3, 0, 7, 12, 5], (p) => p * page);
  const expected = new Uint32Array(2 * offsets.length);
  offsets.forEach((off, i) => {
    const bytes = randomBytes(page);
    pool.write(off, bytes);
    const sum = pageChecksum(bytes);
    expected[2 * i] = Number(sum & 0xffff_ffffn);
    expected[2 * i + 1] = Number(sum >> 32n);
  });
  const clean = await engine.verify(pool, offsets, page, expected);
  assert.deepEqual([clean.bytes, [...clean.mismatches]], [5 * page, []]);
  // one flipped bit in page 2 (its last byte) and one in page 4 (its first)
  const last = offsets[2]! + page - 1;
  pool.write(last, Buffer.of(pool.read(last, 1)[0]! ^ 0x01));
  pool.write(offsets[4]!, Buffer.of(pool.read(offsets[4]!, 1)[0]! ^ 0x80));
  assert.deepEqual([...(await engine.verify(pool, offsets, page, expected)).mismatches], [2, 4]);
  // hostile arguments: named, nothing runs
  await rejectsWith(
    engine.verify(pool, Float64Array.of(8 * MiB - 4096), page, new Uint32Array(2)),
    'INVALID_ARGUMENT',
    /pageOffsets\[0\]/,
  );
  await rejectsWith(
    engine.verify(pool, Float64Array.of(0.5), page, new Uint32Array(2)),
    'INVALID_ARGUMENT',
    /pageOffsets\[0\]/,
  );
  await rejectsWith(
    engine.verify(pool, offsets, page, new Uint32Array(3)),
    'INVALID_ARGUMENT',
    /expected: expected a Uint32Array of 10/,
  );
  await rejectsWith(engine.verify(pool, offsets, 0, expected), 'INVALID_ARGUMENT', /pageBytes/);
  const none = await engine.verify(pool, new Float64Array(0), page, new Uint32Array(0));
  assert.deepEqual([none.bytes, none.mismatches.length], [0, 0]);
});
