import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packOffsets } from '../peer-wire/offsets.js';
import { decodeReadGrant } from './peer-links.js';

const ID = Buffer.alloc(16, 9);
const answer = (blocks: number, shards: number, offsets: number[]) => ({
  grantId: ID,
  blocks,
  shards,
  pageBytes: 4096n,
  pageOffsets: packOffsets(Float64Array.from(offsets)),
  expiresAtMs: 1234n,
  grantKey: Buffer.from('key'),
});

test('a PrepareRead answer decodes into a read grant: ids and sizes as numbers, offsets unpacked', () => {
  const g = decodeReadGrant(answer(2, 2, [0, 4096, 2 ** 40, 8192]));
  assert.deepEqual(
    { ...g, remote: [...g.remote], key: g.key.toString() },
    {
      id: ID.toString('hex'),
      blocks: 2,
      shards: 2,
      pageBytes: 4096,
      remote: [0, 4096, 2 ** 40, 8192],
      expiresAtMs: 1234,
      key: 'key',
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
