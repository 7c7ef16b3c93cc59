// RegisterInstance with GPU memory (region.cuda_ipc) against a real kvfabric-node process. Everywhere: malformed
// fields are refused naming the field, and on a host without a usable CUDA driver (CI) the registration is refused
// with REGION_INVALID and the driver's reason, nothing is registered, and the node serves on. With a GPU (and the
// pinned vLLM's torch, KVFABRIC_PYTHON): another process's CUDA tensors are saved into the pool and loaded back
// into other blocks through the node, bytes compared; skipped with the reason elsewhere (scripts/gpu-check.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cudaStatus } from '@kvfabric/native';
import { packU32 } from '@kvfabric/common';
import type { RegisterInstanceResponse } from '@kvfabric/proto';
import { startNode } from '@kvfabric/testkit';
import { EngineConnection, KvEngine, KvRegion } from '@kvfabric/client';
import { gpuRegisterRequest, loadGpuBlocks, saveAndFindGpuBlocks, type GpuPart } from './testing/gpu-register.js';

const status = cudaStatus();
const SEG = 4096;
const BLOCKS = 16;

function register(parts: GpuPart[], over: object = {}) {
  const segmentOffsets = parts.map((_, i) => BigInt(i * SEG * BLOCKS));
  return { ...gpuRegisterRequest({ parts, segmentOffsets, segmentBytes: SEG, numBlocks: BLOCKS }), ...over };
}

const part = (over: object = {}) => ({
  handle: Buffer.alloc(64, 1),
  offsetBytes: 0n,
  sizeBytes: BigInt(SEG * BLOCKS),
  ...over,
});

test('cuda_ipc registration: malformed fields are refused naming the field, before the driver is asked', async () => {
  await using node = await startNode({ poolSize: '16mib' });
  const conn = new EngineConnection(node.engineSocket);
  try {
    const refused = async (req: object, message: RegExp) =>
      assert.rejects(conn.call('registerInstance', req), { code: 'INVALID_ARGUMENT', message });
    await refused(
      register([part({ handle: Buffer.alloc(10) })]),
      /^region.cuda_ipc.parts\[0\].handle: expected 64 bytes \(a cudaIpcMemHandle_t\), got 10$/,
    );
    await refused(
      register([part(), part({ handle: Buffer.alloc(65) })]),
      /^region.cuda_ipc.parts\[1\].handle: .*got 65$/,
    );
    await refused(
      register([part({ sizeBytes: 0n })]),
      /^region.cuda_ipc.parts\[0\].size_bytes: expected a size in bytes, at least 1, got 0/,
    );
    await refused(
      register([part({ offsetBytes: 2n ** 53n - 100n })]),
      /^region.cuda_ipc.parts\[0\].offset_bytes: expected an offset that with size_bytes 65536 stays below 2\^53/,
    );
    await refused(
      register([part({ offsetBytes: 2n ** 60n })]),
      /^region.cuda_ipc.parts\[0\].offset_bytes: expected at most 2\^53/,
    );
    await refused(register([]), /^region.cuda_ipc.parts: expected 1\.\.4096 parts, got 0$/);
    const one = register([part()]);
    await refused(
      { ...one, region: { ...one.region, token: 'f'.repeat(32) } },
      /^region.token: empty with region.cuda_ipc/,
    );
    await refused(
      { ...one, region: { ...one.region, sizeBytes: 4096n } },
      /^region.size_bytes: expected the sum of the parts' size_bytes, 65536, got 4096/,
    );
    await refused(
      { ...one, region: { ...one.region, cudaIpc: { device: 70_000, parts: [part()] } } },
      /^region.cuda_ipc.device: expected a device ordinal 0\.\.65535, got 70000/,
    );
    // A region smaller than its geometry: refused before the driver too.
    await assert.rejects(conn.call('registerInstance', register([part({ sizeBytes: BigInt(SEG * BLOCKS - 1) })])), {
      code: 'REGION_INVALID',
      message: /^region.size_bytes: 65535 bytes is too small for the geometry/,
    });
    assert.equal((await conn.status()).instances, 0);
  } finally {
    conn.close();
  }
});

test(
  'cuda_ipc registration without a CUDA driver: REGION_INVALID with the reason, nothing registered, node serves on',
  { skip: status.available && 'CUDA is present' },
  async () => {
    await using node = await startNode({ poolSize: '16mib' });
    const conn = new EngineConnection(node.engineSocket);
    try {
      await assert.rejects(conn.call('registerInstance', register([part(), part()])), (e: unknown) => {
        const err = e as { code: string; message: string };
        assert.equal(err.code, 'REGION_INVALID');
        assert.equal(err.message, `region.cuda_ipc: CUDA IPC region: ${status.reason}`);
        return true;
      });
      assert.equal((await conn.status()).instances, 0);
      // The same instance id registers with host memory: the refusal left nothing behind.
      const region = KvRegion.create({
        layout: { numLayers: 2, kvSplit: false, bytesPerLayerBlock: SEG, numBlocks: BLOCKS },
      });
      const kv = await KvEngine.register({
        target: node.engineSocket,
        namespace: 'gpu/ns',
        region,
        instanceId: 'gpu-0',
      });
      try {
        assert.equal((await conn.status()).instances, 1);
        const data = randomBytes(2 * SEG);
        region.writeBlock(3, data);
        const hash = Buffer.alloc(32, 7);
        assert.equal((await kv.save([3], [hash])).stored, 1);
      } finally {
        await kv.close();
        region.close();
      }
    } finally {
      conn.close();
    }
  },
);

// Two "layers" on the GPU, each its own allocation (as vLLM allocates its KV cache), exported with torch's IPC.
const EXPORTER = `
import json, sys, torch
seg, blocks = int(sys.argv[1]), int(sys.argv[2])
layers = [torch.zeros(blocks, seg, dtype=torch.uint8, device="cuda") for _ in range(2)]
parts = []
for t in layers:
    s = t.untyped_storage()
    shared = s._share_cuda_()
    parts.append({"handle": bytes(shared[1]).hex(), "offset": int(shared[3]), "size": int(shared[2]), "at": t.data_ptr() - s.data_ptr()})
print(json.dumps(parts), flush=True)
for line in sys.stdin:
    op, *args = line.split()
    b = int(args[0])
    if op == "dump":
        print(b"".join(t[b].cpu().numpy().tobytes() for t in layers).hex(), flush=True)
    elif op == "fill":
        data = torch.frombuffer(bytearray.fromhex(args[1]), dtype=torch.uint8).view(2, seg).cuda()
        for i, t in enumerate(layers):
            t[b].copy_(data[i])
        torch.cuda.synchronize()
        print("ok", flush=True)
`;

const python = process.env.KVFABRIC_PYTHON ?? `${process.cwd().replace(/\/apps\/node$/, '')}/.venv/bin/python`;
const gpuSkip = !status.available
  ? `no CUDA: ${status.reason}`
  : spawnSync(python, ['-c', 'import torch; assert torch.cuda.is_available()']).status !== 0
    ? `no Python with CUDA torch at ${python} (set KVFABRIC_PYTHON)`
    : false;

test(
  'cuda_ipc round trip: GPU blocks saved into the pool and loaded into other blocks, bytes equal',
  { skip: gpuSkip },
  async () => {
    const child = spawn(python, ['-c', EXPORTER, String(SEG), String(BLOCKS)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async () => String((await lines.next()).value);
    await using node = await startNode({ poolSize: '16mib' });
    const conn = new EngineConnection(node.engineSocket);
    try {
      const exported = JSON.parse(await next()) as { handle: string; offset: number; size: number; at: number }[];
      const parts = exported.map((p) => ({
        handle: Buffer.from(p.handle, 'hex'),
        offsetBytes: BigInt(p.offset),
        sizeBytes: BigInt(p.size),
      }));
      const req = register(parts);
      req.geometry.segmentOffsets = [BigInt(exported[0]!.at), BigInt(exported[0]!.size + exported[1]!.at)];
      // A part beyond its allocation is refused by what the driver says of it.
      await assert.rejects(conn.call('registerInstance', register([{ ...parts[0]!, offsetBytes: 1n << 30n }])), {
        code: 'REGION_INVALID',
        message:
          /^region.cuda_ipc.parts\[0\].offset_bytes: offset 1073741824 \+ size_bytes \d+ is beyond the allocation/,
      });
      await assert.rejects(conn.call('registerInstance', register([{ ...parts[0]!, handle: randomBytes(64) }])), {
        code: 'REGION_INVALID',
        message: /^region.cuda_ipc.parts\[0\].handle: CUDA IPC region: cuIpcOpenMemHandle/,
      });
      const res: RegisterInstanceResponse = await conn.call('registerInstance', req);
      conn.instanceKey = res.instanceKey;
      assert.equal(Number(res.pageBytes), 2 * SEG);
      const data = [0, 1, 2, 3].map(() => randomBytes(2 * SEG));
      for (const [b, d] of data.entries()) {
        child.stdin!.write(`fill ${b} ${d.toString('hex')}\n`);
        assert.equal(await next(), 'ok');
      }
      await loadGpuBlocks(conn, await saveAndFindGpuBlocks(conn), 2 * SEG);
      for (const [i, d] of data.entries()) {
        child.stdin!.write(`dump ${8 + i}\n`);
        assert.equal(await next(), d.toString('hex'));
      }
      // A block id past the geometry is refused like a host region's, and nothing moves.
      await assert.rejects(
        conn.call('save', {
          instanceId: 'gpu-0',
          blockIds: packU32([BLOCKS]),
          hashes: { packed: Buffer.alloc(32, 9), hashLen: 32 },
        }),
        { code: 'INVALID_ARGUMENT', message: /block_ids/ },
      );
      await conn.call('unregisterInstance', { instanceId: 'gpu-0' });
      assert.equal((await conn.status()).instances, 0);
    } finally {
      conn.close();
      child.kill();
    }
  },
);
