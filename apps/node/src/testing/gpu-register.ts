// A RegisterInstance request for GPU memory (region.cuda_ipc), shared by the CUDA IPC process tests: one instance,
// TP 1, segments of `segmentBytes` at `segmentOffsets`, the parts back to back as the region.
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
