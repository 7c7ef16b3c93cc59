import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkHashList,
  packHashes,
  unpackHashes,
  hexToHashes,
  packU32,
  unpackU32,
  packU64,
  unpackU64,
  hashKey,
  toHashList,
  listHashLen,
  copyHashes,
} from './packed-hashes.js';

test('pack and unpack round-trip', () => {
  const hashes = [Buffer.from('aa01', 'hex'), Buffer.from('bb02', 'hex'), Buffer.from('cc03', 'hex')];
  const list = packHashes(hashes);
  assert.equal(list.hashLen, 2);
  assert.equal(list.packed.toString('hex'), 'aa01bb02cc03');
  assert.deepEqual(
    unpackHashes(list).map((h) => h.toString('hex')),
    ['aa01', 'bb02', 'cc03'],
  );
  assert.equal(checkHashList(list).count, 3);
  assert.equal(hashKey(list.packed, 1, 2), Buffer.from('bb02', 'hex').toString('latin1'));
});

test('bad lists are refused with the field named', () => {
  assert.throws(() => checkHashList({ packed: Buffer.alloc(0), hashLen: 32 }), /hashes: expected at least one hash/);
  assert.throws(
    () => checkHashList({ packed: Buffer.alloc(65), hashLen: 65 }),
    /hashes\.hash_len: expected 1\.\.64 bytes, got 65/,
  );
  assert.throws(
    () => checkHashList({ packed: Buffer.alloc(4), hashLen: 0 }),
    /hashes\.hash_len: expected 1\.\.64 bytes, got 0/,
  );
  assert.throws(
    () => checkHashList({ packed: Buffer.alloc(33), hashLen: 32 }),
    /hashes\.packed: expected a multiple of hash_len 32 bytes, got 33/,
  );
  assert.throws(
    () => packHashes([Buffer.alloc(2), Buffer.alloc(3)]),
    /hashes\[1\]: expected 2 bytes like hashes\[0\], got 3/,
  );
  assert.throws(() => hexToHashes('zz'), /hashes\[0\]: expected an even number of hex digits, got "zz"/);
});

test('little-endian packing of ids and offsets', () => {
  assert.equal(packU32([1, 0x01020304]).toString('hex'), '0100000004030201');
  assert.deepEqual([...unpackU32(packU32([7, 4294967295]))], [7, 4294967295]);
  assert.throws(() => unpackU32(Buffer.alloc(3)), /block_ids: expected packed little-endian uint32/);
  assert.deepEqual([...unpackU64(packU64([0, 2 ** 40 + 5]))], [0, 2 ** 40 + 5]);
});

test('toHashList packs a list and passes a packed list through without copying', () => {
  const list = toHashList([Buffer.from('aa01', 'hex'), Buffer.from('bb02', 'hex')]);
  assert.deepEqual([list.packed.toString('hex'), list.hashLen], ['aa01bb02', 2]);
  const packed = Buffer.from('0102030405060708', 'hex');
  assert.equal(toHashList({ packed, hashLen: 4 }).packed, packed, 'the same Buffer');
  const bytes = new Uint8Array([9, 8, 7, 6, 5, 4]).subarray(2);
  const viewed = toHashList({ packed: bytes, hashLen: 2 });
  assert.ok(Buffer.isBuffer(viewed.packed));
  assert.deepEqual([viewed.packed.toString('hex'), viewed.hashLen], ['07060504', 2]);
  bytes[0] = 0xff;
  assert.equal(viewed.packed[0], 0xff, "a view of the caller's bytes, not a copy");
  assert.throws(
    () => toHashList([Buffer.alloc(2), Buffer.alloc(3)], 'blocks'),
    /blocks\[1\]: expected 2 bytes like hashes\[0\], got 3/,
  );
});

test('listHashLen checks a list as packHashes does; copyHashes writes lists and packed lists at an offset', () => {
  assert.equal(listHashLen([]), 0);
  assert.equal(listHashLen([Buffer.alloc(3), Buffer.alloc(3)]), 3);
  assert.throws(() => listHashLen([Buffer.alloc(65)], 'h'), /h\[0\]: expected 1\.\.64 bytes, got 65/);
  assert.throws(() => listHashLen([Buffer.alloc(0)]), /hashes\[0\]: expected 1\.\.64 bytes, got 0/);
  assert.throws(
    () => listHashLen([Buffer.alloc(2), Buffer.alloc(2), Buffer.alloc(1)], 'h'),
    /h\[2\]: expected 2 bytes like hashes\[0\], got 1/,
  );
  const dst = new Uint8Array(8);
  copyHashes([Buffer.from('aa01', 'hex'), Buffer.from('bb02', 'hex')], dst, 1);
  assert.equal(Buffer.from(dst).toString('hex'), '00aa01bb02000000');
  copyHashes({ packed: Buffer.from('ccdd', 'hex'), hashLen: 1 }, dst, 6);
  assert.equal(Buffer.from(dst).toString('hex'), '00aa01bb0200ccdd');
});
