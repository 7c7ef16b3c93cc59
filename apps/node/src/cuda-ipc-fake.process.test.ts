// The node's GPU data path (region.cuda_ipc) end to end on a host without a GPU: kvfabric-node runs with the CUDA
// driver stand-in (native/test/fake-cuda: "device memory" is a file, a stream's copies run at its synchronize, and a
// copy outside an opened allocation fails as on a GPU). Saves gather blocks from two parts (per-layer allocations,
// one at an offset) into the pool and loads scatter them back, bytes compared; every call is one stream wait; a
// failed copy fails its call with REGION_INVALID and seals nothing; refusals and unregistering leave nothing open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packHashes, packU32 } from '@kvfabric/common';
import type { QueryResponse, RegisterInstanceResponse, SaveResponse } from '@kvfabric/proto';
import { startNode } from '@kvfabric/testkit';
import { EngineConnection } from '@kvfabric/client';
import { gpuRegisterRequest, loadGpuBlocks, saveAndFindGpuBlocks } from './testing/gpu-register.js';

const fakeDir = fileURLToPath(new URL('../../../native/build/fake-cuda', import.meta.url));
const SEG = 4096;
const BLOCKS = 16;
const LAYER = SEG * BLOCKS;
const OFFSET = 8192; // part 0 starts this far into its allocation

interface FakeStats {
  copies: number;
  syncs: number;
  opened: number;
  closed: number;
  mapped: number;
  retained: number;
  released: number;
}

/** The value of an unlabelled metric on the node's /metrics (0 when absent). */
async function metric(httpAddr: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddr}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** A handle of the stand-in: its magic, then the path of the file that is the allocation. */
function handle(path: string): Buffer {
  const h = Buffer.alloc(64);
  h.write('kvf-fake-cuda/1', 0);
  h.write(path, 16);
  return h;
}

test('cuda_ipc through the CUDA driver stand-in: save and load across parts, one stream wait a call, failures contained', async () => {
  // Built with the addon (npm install / npm run build in native): its absence is a failure, not a skip.
  assert.ok(existsSync(join(fakeDir, 'libcuda.so.1')), `build the stand-in first: bash native/test/fake-cuda/build.sh`);
  const dir = mkdtempSync('/dev/shm/kvf-cuda-');
  const files = [join(dir, 'l0'), join(dir, 'l1')];
  writeFileSync(files[0]!, Buffer.alloc(OFFSET + LAYER));
  writeFileSync(files[1]!, Buffer.alloc(LAYER));
  const statsFile = join(dir, 'stats.json');
  const failFile = join(dir, 'fail');
  const stats = (): FakeStats => JSON.parse(readFileSync(statsFile, 'utf8')) as FakeStats;
  await using node = await startNode({
    poolSize: '16mib',
    env: {
      LD_LIBRARY_PATH: [fakeDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      KVF_FAKE_CUDA_STATS: statsFile,
      KVF_FAKE_CUDA_FAIL_FILE: failFile,
    },
  });
  const conn = new EngineConnection(node.engineSocket);
  try {
    const parts = [
      { handle: handle(files[0]!), offsetBytes: BigInt(OFFSET), sizeBytes: BigInt(LAYER) },
      { handle: handle(files[1]!), offsetBytes: 0n, sizeBytes: BigInt(LAYER) },
    ];
    const register = (p = parts, device = 0) =>
      gpuRegisterRequest({
        parts: p,
        segmentOffsets: [0n, BigInt(LAYER)],
        segmentBytes: SEG,
        numBlocks: BLOCKS,
        device,
      });

    // Refusals the driver decides: each names the field, and leaves nothing open.
    await assert.rejects(
      conn.call('registerInstance', register([{ ...parts[0]!, handle: randomBytes(64) }, parts[1]!])),
      {
        code: 'REGION_INVALID',
        message: 'region.cuda_ipc.parts[0].handle: CUDA IPC region: cuIpcOpenMemHandle: invalid argument (1)',
      },
    );
    await assert.rejects(conn.call('registerInstance', register([parts[0]!, { ...parts[1]!, offsetBytes: 1n }])), {
      code: 'REGION_INVALID',
      message: `region.cuda_ipc.parts[1].offset_bytes: offset 1 + size_bytes ${LAYER} is beyond the allocation's ${LAYER} bytes`,
    });
    await assert.rejects(conn.call('registerInstance', register(parts, 1)), {
      code: 'REGION_INVALID',
      message: 'region.cuda_ipc.device: expected 0..0 (the devices this node sees), got 1',
    });
    let s = stats();
    assert.equal(s.mapped, 0);
    assert.equal(s.retained, s.released);
    assert.equal((await conn.status()).instances, 0);

    const res: RegisterInstanceResponse = await conn.call('registerInstance', register());
    conn.instanceKey = res.instanceKey;
    assert.equal(Number(res.pageBytes), 2 * SEG);
    assert.equal(stats().mapped, 2);
    assert.equal(await metric(node.httpAddr, 'kvfabric_index_gpu_instances'), 1);

    // The engine's KV: block b of layer l at part l's start + b * SEG.
    const at = (layer: number, block: number) => (layer === 0 ? OFFSET : 0) + block * SEG;
    const writeBlock = (b: number, data: Buffer) => {
      for (const l of [0, 1]) {
        const f = readFileSync(files[l]!);
        data.copy(f, at(l, b), l * SEG, (l + 1) * SEG);
        writeFileSync(files[l]!, f);
      }
    };
    const readBlock = (b: number) =>
      Buffer.concat([0, 1].map((l) => readFileSync(files[l]!).subarray(at(l, b), at(l, b) + SEG)));
    const data = [0, 1, 2, 3].map(() => randomBytes(2 * SEG));
    data.forEach((d, b) => writeBlock(b, d));

    s = stats();
    const leaseId = await saveAndFindGpuBlocks(conn); // a query copies nothing
    let t = stats();
    assert.equal(t.syncs - s.syncs, 1, 'one stream wait for the whole save');
    assert.equal(t.copies - s.copies, 8, 'a copy per block and layer');
    s = stats();
    await loadGpuBlocks(conn, leaseId, 2 * SEG);
    t = stats();
    assert.equal(t.syncs - s.syncs, 1, 'one stream wait for the whole load');
    data.forEach((d, i) => assert.deepEqual(readBlock(8 + i), d, `block ${8 + i}`));

    // A copy the "GPU" fails: the save fails as the region's fault, seals nothing, frees its pages; the node goes on.
    const more = packHashes([5, 6].map((i) => Buffer.alloc(32, 100 + i)));
    writeFileSync(failFile, '');
    await assert.rejects(conn.call('save', { instanceId: 'gpu-0', blockIds: packU32([5, 6]), hashes: more }), {
      code: 'REGION_INVALID',
      message: /^CUDA IPC region: cuMemcpyDtoHAsync: an illegal memory access was encountered \(700\)/,
    });
    rmSync(failFile);
    assert.equal(await metric(node.httpAddr, 'kvfabric_region_copy_failures_total'), 1);
    const none: QueryResponse = await conn.call('query', {
      instanceId: 'gpu-0',
      requestId: 'q2',
      hashes: more,
      localOnly: true,
      waitMs: 0,
    });
    assert.equal(none.hits, 0);
    const again: SaveResponse = await conn.call('save', {
      instanceId: 'gpu-0',
      blockIds: packU32([5, 6]),
      hashes: more,
    });
    assert.deepEqual([again.stored, again.sealed], [2, 2]);
    assert.equal(Number((await conn.status()).blocks), 6);

    // Block ids are checked against the geometry as for host memory; nothing moves.
    s = stats();
    await assert.rejects(
      conn.call('save', {
        instanceId: 'gpu-0',
        blockIds: packU32([BLOCKS]),
        hashes: packHashes([Buffer.alloc(32, 9)]),
      }),
      { code: 'INVALID_ARGUMENT', message: `block_ids[0]: expected 0..${BLOCKS - 1}, got ${BLOCKS}` },
    );
    assert.equal(stats().syncs, s.syncs);

    // A command ring carries host memory only.
    await assert.rejects(
      conn.call('attachRing', { instanceId: 'gpu-0', ring: { token: 'f'.repeat(32), sizeBytes: 4096n } }),
      {
        code: 'REGION_INVALID',
        message: /command rings carry host regions only/,
      },
    );

    await conn.call('unregisterInstance', { instanceId: 'gpu-0' });
    t = stats();
    assert.equal(t.mapped, 0);
    assert.equal(t.retained, t.released);
    assert.equal(await metric(node.httpAddr, 'kvfabric_index_gpu_instances'), 0);
  } finally {
    conn.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
