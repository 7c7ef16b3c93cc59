// CUDA IPC regions. Without a CUDA driver (CI, most hosts): the addon still loads, cudaStatus() names the reason
// and opening a region fails with REGION_INVALID saying so. With a GPU: a child Python process (the pinned vLLM's
// torch, KVFABRIC_PYTHON) exports two CUDA buffers' IPC handles (torch's _share_cuda_); the region is both back to
// back, and the node side copies pool → GPU → pool (one copy across the two parts) and compares bytes. That part is
// skipped, with the reason, where CUDA or that Python is absent; scripts/gpu-check.sh runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CUDA_IPC_HANDLE_BYTES, CudaIpcRegion, cudaStatus, type CudaIpcPart } from '../lib/cuda-ipc-region.js';
import { NativeError } from '../lib/errors.js';
import { Pool } from '../lib/pool.js';

const status = cudaStatus();
const python = process.env.KVFABRIC_PYTHON ?? `${process.cwd().replace(/\/native$/, '')}/.venv/bin/python`;

test('cudaStatus answers without throwing, and says why when there is no usable driver', () => {
  assert.equal(typeof status.available, 'boolean');
  if (status.available) {
    assert.ok(status.devices > 0);
    assert.equal(status.reason, '');
  } else {
    assert.match(status.reason, /libcuda|CUDA|device/);
  }
});

const part = (over: Partial<CudaIpcPart> = {}): CudaIpcPart => ({
  handle: new Uint8Array(CUDA_IPC_HANDLE_BYTES),
  offsetBytes: 0,
  sizeBytes: 4096,
  ...over,
});

test('arguments are checked before the driver is touched', () => {
  const refused = (parts: CudaIpcPart[], message: RegExp) =>
    assert.throws(
      () => CudaIpcRegion.open(parts),
      (e: unknown) => e instanceof NativeError && e.code === 'INVALID_ARGUMENT' && message.test(e.message),
    );
  refused([part({ handle: new Uint8Array(10) })], /^parts\[0\].handle: expected a 64-byte/);
  refused([part(), part({ sizeBytes: 0 })], /^parts\[1\].sizeBytes/);
  refused([part({ offsetBytes: 2 ** 53 - 10 })], /^parts\[0\].offsetBytes/);
  refused([], /^parts: expected 1\.\.4096/);
});

test(
  'without a driver, opening a region fails naming the reason',
  { skip: status.available && 'CUDA is present' },
  () => {
    assert.throws(
      () => CudaIpcRegion.open([part()]),
      (e: unknown) =>
        e instanceof NativeError && e.code === 'REGION_INVALID' && e.message === `CUDA IPC region: ${status.reason}`,
    );
  },
);

const EXPORTER = `
import sys, torch
bufs = [torch.zeros(int(sys.argv[1]), dtype=torch.uint8, device="cuda") for _ in range(2)]
for b in bufs:
    shared = b.untyped_storage()._share_cuda_()
    print(bytes(shared[1]).hex(), int(shared[3]), flush=True)
for line in sys.stdin:
    if line.strip() == "dump":
        print(b"".join(b.cpu().numpy().tobytes() for b in bufs).hex(), flush=True)
    elif line.startswith("fill "):
        data = bytearray.fromhex(line.split()[1])
        half = len(data) // 2
        for i, b in enumerate(bufs):
            b.copy_(torch.frombuffer(data[i * half : (i + 1) * half], dtype=torch.uint8).cuda())
        torch.cuda.synchronize()
        print("ok", flush=True)
`;

const gpuSkip = !status.available
  ? `no CUDA: ${status.reason}`
  : spawnSync(python, ['-c', 'import torch; assert torch.cuda.is_available()']).status !== 0
    ? `no Python with CUDA torch at ${python} (set KVFABRIC_PYTHON)`
    : false;

test(
  'pool → GPU → pool through CUDA IPC handles from another process, across two parts',
  { skip: gpuSkip },
  async () => {
    const half = 1 << 19;
    const size = 2 * half;
    const child = spawn(python, ['-c', EXPORTER, String(half)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async () => String((await lines.next()).value);
    try {
      const parts: CudaIpcPart[] = [];
      for (let i = 0; i < 2; i++) {
        const [hex, offset] = (await next()).split(' ');
        parts.push({ handle: Buffer.from(hex!, 'hex'), offsetBytes: Number(offset), sizeBytes: half });
      }
      using pool = Pool.create({ sizeBytes: 4 << 20 });
      const region = CudaIpcRegion.open(parts, 0);
      assert.equal(region.sizeBytes, size);
      const data = randomBytes(size);
      pool.write(0, data);
      // One copy that crosses from part 0 into part 1, and one inside part 1.
      assert.equal(
        await region.fromHost(pool, [
          { hostOffset: 0, regionOffset: 0, length: half + 4096 },
          { hostOffset: half + 4096, regionOffset: half + 4096, length: half - 4096 },
        ]),
        size,
      );
      child.stdin!.write('dump\n');
      assert.equal(await next(), data.toString('hex'));
      const back = randomBytes(size);
      child.stdin!.write(`fill ${back.toString('hex')}\n`);
      assert.equal(await next(), 'ok');
      await region.toHost(pool, [{ hostOffset: 1 << 20, regionOffset: 0, length: size }]);
      assert.deepEqual(pool.read(1 << 20, size), back);
      assert.throws(
        () => CudaIpcRegion.open([{ ...parts[0]!, offsetBytes: 1 << 30 }], 0),
        (e: unknown) =>
          e instanceof NativeError &&
          e.code === 'REGION_INVALID' &&
          /^parts\[0\].offset_bytes: offset 1073741824 \+ size_bytes \d+ is beyond the allocation/.test(e.message),
      );
      region.close();
      await assert.rejects(region.toHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 1 }]), /closed/);
    } finally {
      child.kill();
    }
  },
);
