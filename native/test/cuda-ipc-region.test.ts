// CUDA IPC regions. Without a CUDA driver (CI, most hosts): the addon still loads, cudaStatus() names the reason
// and opening a region fails with REGION_INVALID saying so. With a GPU: a child Python process (the pinned vLLM's
// torch, KVFABRIC_PYTHON) exports a CUDA buffer's IPC handle; the node side copies pool → GPU → pool and compares
// bytes. That part is skipped, with the reason, where CUDA or that Python is absent; scripts/gpu-check.sh runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CUDA_IPC_HANDLE_BYTES, CudaIpcRegion, cudaStatus } from '../lib/cuda-ipc-region.js';
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

test('arguments are checked before the driver is touched', () => {
  assert.throws(
    () => CudaIpcRegion.open(new Uint8Array(10), 4096),
    (e: unknown) =>
      e instanceof NativeError && e.code === 'INVALID_ARGUMENT' && /handle: expected a 64-byte/.test(e.message),
  );
  assert.throws(
    () => CudaIpcRegion.open(new Uint8Array(CUDA_IPC_HANDLE_BYTES), 0),
    (e: unknown) => e instanceof NativeError && e.code === 'INVALID_ARGUMENT' && /sizeBytes/.test(e.message),
  );
});

test(
  'without a driver, opening a region fails naming the reason',
  { skip: status.available && 'CUDA is present' },
  () => {
    assert.throws(
      () => CudaIpcRegion.open(new Uint8Array(CUDA_IPC_HANDLE_BYTES), 4096),
      (e: unknown) =>
        e instanceof NativeError &&
        e.code === 'REGION_INVALID' &&
        e.message.includes(`CUDA IPC region: ${status.reason}`),
    );
  },
);

const EXPORTER = `
import ctypes, sys, torch
buf = torch.zeros(int(sys.argv[1]), dtype=torch.uint8, device="cuda")
handle = (ctypes.c_char * 64)()
assert ctypes.CDLL("libcuda.so.1").cuIpcGetMemHandle(handle, ctypes.c_uint64(buf.data_ptr())) == 0
print(bytes(handle).hex(), flush=True)
for line in sys.stdin:
    if line.strip() == "dump":
        print(buf.cpu().numpy().tobytes().hex(), flush=True)
    elif line.startswith("fill "):
        buf.copy_(torch.frombuffer(bytearray.fromhex(line.split()[1]), dtype=torch.uint8).cuda())
        torch.cuda.synchronize()
        print("ok", flush=True)
`;

const gpuSkip = !status.available
  ? `no CUDA: ${status.reason}`
  : spawnSync(python, ['-c', 'import torch; assert torch.cuda.is_available()']).status !== 0
    ? `no Python with CUDA torch at ${python} (set KVFABRIC_PYTHON)`
    : false;

test('pool → GPU → pool through a CUDA IPC handle from another process', { skip: gpuSkip }, async () => {
  const size = 1 << 20;
  const child = spawn(python, ['-c', EXPORTER, String(size)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value);
  try {
    const handle = Buffer.from(await next(), 'hex');
    using pool = Pool.create({ sizeBytes: 4 << 20 });
    const region = CudaIpcRegion.open(handle, size, 0);
    const data = randomBytes(size);
    pool.write(0, data);
    assert.equal(await region.fromHost(pool, [{ hostOffset: 0, regionOffset: 0, length: size }]), size);
    child.stdin!.write('dump\n');
    assert.equal(await next(), data.toString('hex'));
    const back = randomBytes(size);
    child.stdin!.write(`fill ${back.toString('hex')}\n`);
    assert.equal(await next(), 'ok');
    await region.toHost(pool, [
      { hostOffset: 1 << 20, regionOffset: 0, length: size / 2 },
      { hostOffset: (1 << 20) + size / 2, regionOffset: size / 2, length: size / 2 },
    ]);
    assert.deepEqual(pool.read(1 << 20, size), back);
    region.close();
    await assert.rejects(region.toHost(pool, [{ hostOffset: 0, regionOffset: 0, length: 1 }]), /closed/);
  } finally {
    child.kill();
  }
});
