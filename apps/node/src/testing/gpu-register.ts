// What the CUDA IPC process tests share: the RegisterInstance request for GPU memory (region.cuda_ipc: one
// instance, TP 1, segments of `segmentBytes` at `segmentOffsets`, the parts back to back as the region), and the
// round trip both make on it: blocks 0-3 saved and found again, then loaded into blocks 8-11.
import assert from 'node:assert/strict';
import type { EngineConnection } from '@kvfabric/client';
import { packHashes, packU32 } from '@kvfabric/common';
import type { LoadResponse, QueryResponse, SaveResponse } from '@kvfabric/proto';

export interface GpuPart {
  handle: Buffer;
  offsetBytes: bigint;
  sizeBytes: bigint;
}

export function gpuRegisterRequest(o: {
  parts: GpuPart[];
  segmentOffsets: bigint[];
  segmentBytes: number;
  numBlocks: number;
  device?: number;
}) {
  return {
    instanceId: 'gpu-0',
    engineId: '',
    namespace: 'gpu/ns',
    tpSize: 1,
    tpRank: 0,
    worldSize: 0,
    replicated: false,
    geometry: {
      segmentOffsets: o.segmentOffsets,
      segmentBytes: BigInt(o.segmentBytes),
      blockStrideBytes: BigInt(o.segmentBytes),
      numBlocks: o.numBlocks,
    },
    region: {
      token: '',
      sizeBytes: o.parts.reduce((n, p) => n + p.sizeBytes, 0n),
      cudaIpc: { device: o.device ?? 0, parts: o.parts },
    },
  };
}

/** The hashes of the round trip's four blocks. */
const GPU_HASHES = packHashes([0, 1, 2, 3].map((i) => Buffer.alloc(32, i + 1)));

/** Saves blocks 0-3 of instance gpu-0 under GPU_HASHES (all four stored and sealed) and finds them again: the lease. */
export async function saveAndFindGpuBlocks(conn: EngineConnection): Promise<string> {
  const saved: SaveResponse = await conn.call('save', {
    instanceId: 'gpu-0',
    blockIds: packU32([0, 1, 2, 3]),
    hashes: GPU_HASHES,
  });
  assert.deepEqual([saved.stored, saved.sealed], [4, 4]);
  const q: QueryResponse = await conn.call('query', {
    instanceId: 'gpu-0',
    requestId: 'q1',
    hashes: GPU_HASHES,
    localOnly: true,
    waitMs: 0,
  });
  assert.equal(q.hits, 4);
  return q.leaseId;
}

/** Loads the lease's four blocks into blocks 8-11 of instance gpu-0: all four, `blockBytes` each. */
export async function loadGpuBlocks(conn: EngineConnection, leaseId: string, blockBytes: number): Promise<void> {
  const loaded: LoadResponse = await conn.call('load', {
    instanceId: 'gpu-0',
    leaseId,
    blockIds: packU32([8, 9, 10, 11]),
  });
  assert.deepEqual([loaded.loaded, Number(loaded.bytes)], [4, 4 * blockBytes]);
}
