import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, fstatSync, ftruncateSync, readlinkSync, statSync } from 'node:fs';
import { KvRegion, kvLayout } from './kv-region.js';

test('kvLayout: layer-major and block-major segment offsets', () => {
  const lm = kvLayout({ numLayers: 2, kvSplit: true, bytesPerLayerBlock: 100, numBlocks: 10 });
  assert.deepEqual(lm.segmentOffsets, [0, 1000, 2000, 3000]);
  assert.equal(lm.blockStrideBytes, 100);
  assert.equal(lm.sizeBytes, 4000);
  assert.equal(lm.blockBytes, 400);
  const bm = kvLayout({ numLayers: 2, kvSplit: false, bytesPerLayerBlock: 100, numBlocks: 10, order: 'block-major' });
  assert.deepEqual(bm.segmentOffsets, [0, 100]);
  assert.equal(bm.blockStrideBytes, 200);
  assert.throws(() => kvLayout({ numLayers: 0, kvSplit: true, bytesPerLayerBlock: 1, numBlocks: 1 }), {
    code: 'INVALID_ARGUMENT',
    message: /numLayers/,
  });
});

test('KvRegion: a sealed memfd the size of the layout; blocks round-trip through their segments', () => {
  const region = KvRegion.create({ layout: { numLayers: 3, kvSplit: true, bytesPerLayerBlock: 64, numBlocks: 5 } });
  try {
    assert.equal(region.path, undefined);
    assert.match(readlinkSync(`/proc/self/fd/${region.descriptor}`), /^\/memfd:kvfabric-/);
    assert.equal(fstatSync(region.descriptor).size, region.sizeBytes);
    assert.throws(() => ftruncateSync(region.descriptor, 0), { code: 'EPERM' }, 'sealed against shrinking');
    assert.throws(() => ftruncateSync(region.descriptor, region.sizeBytes + 1), { code: 'EPERM' }, 'and growing');
    const data = randomBytes(region.geometry.blockBytes);
    region.writeBlock(3, data);
    assert.ok(region.readBlock(3).equals(data));
    assert.ok(region.read(region.offset(1, 3), 64).equals(data.subarray(64, 128)));
    assert.ok(region.readBlock(2).equals(Buffer.alloc(region.geometry.blockBytes)));
  } finally {
    region.close();
  }
  assert.equal(region.descriptor, -1);
});

test('KvRegion with dir: a file of the layout size, mode 0600, removed on close', () => {
  const region = KvRegion.create({
    layout: { numLayers: 1, kvSplit: false, bytesPerLayerBlock: 64, numBlocks: 2 },
    dir: '/dev/shm',
  });
  const path = region.path!;
  try {
    assert.ok(path.startsWith('/dev/shm/kvfabric-'));
    assert.equal(statSync(path).size, 128);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    region.close();
  }
  assert.equal(existsSync(path), false);
});
