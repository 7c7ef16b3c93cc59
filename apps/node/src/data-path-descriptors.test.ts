import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DescriptorBatch } from './data-path-descriptors.js';

test('layer-major blocks give one descriptor per segment, in block then segment order', () => {
  // 2 segments of 100 bytes, segment s of block b at s*1000 + b*100; pages of 200 bytes.
  const offsets = Float64Array.from([0, 1000]);
  const d = new DescriptorBatch(4);
  d.block(offsets, 3 * 100, 100, 4096, true);
  d.block(offsets, 5 * 100, 100, 8192, true);
  const { src, dst, len } = d.arrays();
  assert.deepEqual([...src], [300, 1300, 500, 1500]);
  assert.deepEqual([...dst], [4096, 4196, 8192, 8292]);
  assert.deepEqual([...len], [100, 100, 100, 100]);
});

test('contiguous runs coalesce (block-major layout, consecutive blocks into consecutive pages); load swaps sides', () => {
  // Block-major: segments of a block back to back (offsets 0, 100), stride 200.
  const offsets = Float64Array.from([0, 100]);
  const save = new DescriptorBatch(6);
  save.block(offsets, 0, 100, 0, true);
  save.block(offsets, 200, 100, 200, true); // continues both sides: merges
  save.block(offsets, 600, 100, 400, true); // region jumps: new descriptor
  assert.deepEqual(save.arrays(), {
    src: Float64Array.from([0, 600]),
    dst: Float64Array.from([0, 400]),
    len: Float64Array.from([400, 200]),
  });
  const load = new DescriptorBatch(2);
  load.block(offsets, 600, 100, 400, false);
  assert.deepEqual(load.arrays(), {
    src: Float64Array.from([400]),
    dst: Float64Array.from([600]),
    len: Float64Array.from([200]),
  });
});
