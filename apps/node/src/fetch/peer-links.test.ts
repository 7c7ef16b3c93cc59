import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packChecksums } from '../peer-wire/checksums.js';
import { packOffsets } from '../peer-wire/offsets.js';
import { decodeReadGrant } from './peer-links.js';

const ID = Buffer.alloc(16, 9);
const answer = (blocks: number, shards: number, offsets: number[]) => ({
  grantId: ID,
  blocks,
  shards,
  pageBytes: 4096n,
  pageOffsets: packOffsets(Float64Array.from(offsets)),
  pageChecksums: packChecksums(Uint32Array.from(offsets.flatMap((o, i) => [o % 2 ** 32, i]))),
  expiresAtMs: 1234n,
  grantKey: Buffer.from('key'),
  grantPinBudgetBytes: 3n << 30n,
});

test('a PrepareRead answer decodes into a read grant: ids and sizes as numbers, offsets and checksums unpacked', () => {
  const g = decodeReadGrant(answer(2, 2, [0, 4096, 2 ** 40, 8192]));
  assert.deepEqual(
    { ...g, remote: [...g.remote], checksums: [...g.checksums], key: g.key.toString() },
    {
      id: ID.toString('hex'),
      blocks: 2,
      shards: 2,
      pageBytes: 4096,
      remote: [0, 4096, 2 ** 40, 8192],
      checksums: [0, 0, 4096, 1, 0, 2, 8192, 3],
      expiresAtMs: 1234,
      key: 'key',
      pinBudgetBytes: 3 * 2 ** 30,
    },
  );
  const none = decodeReadGrant({ ...answer(0, 2, []), grantId: Buffer.alloc(0) });
  assert.deepEqual({ id: none.id, remote: [...none.remote] }, { id: '', remote: [] });
});

test('offsets that do not match the blocks are a layout mismatch; bad packing is refused', () => {
  assert.throws(() => decodeReadGrant(answer(2, 2, [0, 4096, 8192])), {
    reason: 'layout_mismatch',
    message: /3 page offsets for 2 blocks of 2 shards/,
  });
  assert.throws(() => decodeReadGrant({ ...answer(1, 1, [0]), pageOffsets: Buffer.alloc(5) }), {
    code: 'INVALID_ARGUMENT',
  });
  assert.throws(() => decodeReadGrant({ ...answer(1, 1, [0]), grantId: Buffer.alloc(8) }), {
    reason: 'layout_mismatch',
    message: /grant_id of 8 bytes, expected 16/,
  });
});

test('a grant without one checksum per page is not readable: nothing of it could be verified', () => {
  assert.throws(() => decodeReadGrant({ ...answer(2, 1, [0, 4096]), pageChecksums: Buffer.alloc(8) }), {
    reason: 'layout_mismatch',
    message: /1 page checksums for 2 blocks of 1 shards/,
  });
  assert.throws(() => decodeReadGrant({ ...answer(1, 1, [0]), pageChecksums: Buffer.alloc(0) }), {
    reason: 'layout_mismatch',
  });
  assert.throws(() => decodeReadGrant({ ...answer(1, 1, [0]), pageChecksums: Buffer.alloc(7) }), {
    reason: 'layout_mismatch',
    message: /7 bytes of page checksums for 1 blocks of 1 shards/,
  });
  // a huge blob is refused by its length, before any of it is read
  assert.throws(() => decodeReadGrant({ ...answer(1, 1, [0]), pageChecksums: Buffer.alloc(8 << 20) }), {
    reason: 'layout_mismatch',
    message: /^1048576 page checksums for 1 blocks of 1 shards$/,
  });
});
