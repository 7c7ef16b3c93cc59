// CudaIpcRegion against the CUDA driver stand-in (libcuda.so.1 from native/build/fake-cuda, first on
// LD_LIBRARY_PATH; run by cuda-fake.test.ts in a process of its own). Device memory is a file; a stream's copies run
// at its synchronize. KVF_FAKE_CUDA_DIR: a scratch directory under /dev/shm for the "allocations".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CudaIpcRegion, cudaStatus, type CudaIpcPart } from '../../lib/cuda-ipc-region.js';
import { NativeError } from '../../lib/errors.js';
import { Pool } from '../../lib/pool.js';

const dir = process.env.KVF_FAKE_CUDA_DIR!;
const failFile = process.env.KVF_FAKE_CUDA_FAIL_FILE!;
const KIB = 1024;

/** A file of `size` bytes as an allocation, and its handle: the stand-in's magic, then the file's path. */
function allocation(name: string, size: number): { path: string; handle: Buffer } {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(size));
  const handle = Buffer.alloc(64);
  handle.write('kvf-fake-cuda/1', 0);
  handle.write(path, 16);
  return { path, handle };
}

test('the stand-in is what the addon loaded', () => {
  assert.deepEqual(cudaStatus(), { available: true, reason: '', devices: 1 });
});

test('copies cross parts (one at an offset into its allocation) both ways, bytes exact', async () => {
  const a = allocation('a', 96 * KIB);
  const b = allocation('b', 64 * KIB);
  const parts: CudaIpcPart[] = [
    { handle: a.handle, offsetBytes: 32 * KIB, sizeBytes: 64 * KIB },
    { handle: b.handle, offsetBytes: 0, sizeBytes: 64 * KIB },
  ];
  using pool = Pool.create({ sizeBytes: 1 << 20 });
  const region = CudaIpcRegion.open(parts, 0);
  try {
    assert.equal(region.sizeBytes, 128 * KIB);
    const data = randomBytes(128 * KIB);
    pool.write(0, data);
    assert.equal(await region.fromHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 128 * KIB }]), 128 * KIB);
    assert.deepEqual(readFileSync(a.path).subarray(32 * KIB), data.subarray(0, 64 * KIB));
    assert.deepEqual(readFileSync(b.path), data.subarray(64 * KIB));
    assert.deepEqual(readFileSync(a.path).subarray(0, 32 * KIB), Buffer.alloc(32 * KIB), 'nothing before the offset');
    await region.toHost(pool, [
      { hostOffset: 512 * KIB, regionOffset: 60 * KIB, length: 8 * KIB },
      { hostOffset: 520 * KIB, regionOffset: 0, length: 4 * KIB },
    ]);
    assert.deepEqual(pool.read(512 * KIB, 8 * KIB), data.subarray(60 * KIB, 68 * KIB));
    assert.deepEqual(pool.read(520 * KIB, 4 * KIB), data.subarray(0, 4 * KIB));
    await assert.rejects(region.toHost(pool, [{ hostOffset: 0, regionOffset: 128 * KIB - 1, length: 2 }]), {
      code: 'INVALID_ARGUMENT',
      message: /descriptors\[0\]: region range beyond its 131072 bytes/,
    });
  } finally {
    region.close();
  }
});

test('close() lets the batches already submitted finish and settle; later ones are refused', async () => {
  const a = allocation('c', 64 * KIB);
  using pool = Pool.create({ sizeBytes: 1 << 20 });
  const region = CudaIpcRegion.open([{ handle: a.handle, offsetBytes: 0, sizeBytes: 64 * KIB }]);
  const data = randomBytes(64 * KIB);
  pool.write(0, data);
  const pending = [0, 1, 2, 3].map((i) =>
    region.fromHost(pool, [{ hostOffset: i * 16 * KIB, regionOffset: i * 16 * KIB, length: 16 * KIB }]),
  );
  region.close();
  assert.deepEqual(await Promise.all(pending), [16 * KIB, 16 * KIB, 16 * KIB, 16 * KIB]);
  assert.deepEqual(readFileSync(a.path), data);
  await assert.rejects(region.toHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 1 }]), {
    code: 'REGION_INVALID',
    message: /closed/,
  });
});

test('two regions over one allocation: the driver counts the opens, closing one leaves the other working', async () => {
  const a = allocation('d', 64 * KIB);
  const part = { handle: a.handle, offsetBytes: 0, sizeBytes: 64 * KIB };
  using pool = Pool.create({ sizeBytes: 1 << 20 });
  const one = CudaIpcRegion.open([part]);
  const two = CudaIpcRegion.open([part, part]); // the same allocation twice, as layers sharing a storage
  one.close();
  const data = randomBytes(4 * KIB);
  pool.write(0, data);
  await two.fromHost(pool, [{ hostOffset: 0, regionOffset: 64 * KIB + 4 * KIB, length: 4 * KIB }]);
  assert.deepEqual(readFileSync(a.path).subarray(4 * KIB, 8 * KIB), data);
  two.close();
});

test('what the driver refuses is REGION_INVALID naming the part; an injected copy failure fails only its batch', async () => {
  const a = allocation('e', 64 * KIB);
  const refused = (parts: CudaIpcPart[], device: number, message: RegExp) =>
    assert.throws(
      () => CudaIpcRegion.open(parts, device),
      (e: unknown) => e instanceof NativeError && e.code === 'REGION_INVALID' && message.test(e.message),
    );
  refused(
    [{ handle: a.handle, offsetBytes: 4 * KIB, sizeBytes: 64 * KIB }],
    0,
    /^parts\[0\].offset_bytes: offset 4096 \+ size_bytes 65536 is beyond the allocation's 65536 bytes$/,
  );
  refused(
    [
      { handle: a.handle, offsetBytes: 0, sizeBytes: 1 },
      { handle: randomBytes(64), offsetBytes: 0, sizeBytes: 1 },
    ],
    0,
    /^parts\[1\].handle: CUDA IPC region: cuIpcOpenMemHandle: invalid argument \(1\)$/,
  );
  refused(
    [{ handle: a.handle, offsetBytes: 0, sizeBytes: 1 }],
    3,
    /^device: expected 0\.\.0 \(the devices this node sees\), got 3$/,
  );
  using pool = Pool.create({ sizeBytes: 1 << 20 });
  const region = CudaIpcRegion.open([{ handle: a.handle, offsetBytes: 0, sizeBytes: 64 * KIB }]);
  try {
    writeFileSync(failFile, '');
    await assert.rejects(region.fromHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 4 * KIB }]), {
      code: 'REGION_INVALID',
      message: 'CUDA IPC region: cuMemcpyHtoDAsync: an illegal memory access was encountered (700)',
    });
    rmSync(failFile);
    pool.write(0, Buffer.alloc(4 * KIB, 9));
    assert.equal(await region.fromHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 4 * KIB }]), 4 * KIB);
    assert.deepEqual(readFileSync(a.path).subarray(0, 4 * KIB), Buffer.alloc(4 * KIB, 9));
  } finally {
    region.close();
  }
});
