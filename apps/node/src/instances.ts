// Engine instances: one per TP rank of an engine, each with its mapped KV region and its geometry. Validation
// of a registration lives here (pure), so the service only decodes.
import { KvError, checkId, invalid } from '@kvfabric/common';
import type { MappedRegion, RegionSource } from './data-path.js';
import type { NamespaceInfo } from './namespaces.js';

export interface RegisterSpec {
  instanceId: string;
  /** The engine (TP group); defaults to instanceId. */
  engineId: string;
  namespace: string;
  tpSize: number;
  tpRank: number;
  worldSize: number;
  replicated: boolean;
  segmentOffsets: number[];
  segmentBytes: number;
  blockStrideBytes: number;
  numBlocks: number;
  region: RegionSource;
}

export interface Instance {
  id: string;
  engineId: string;
  ns: NamespaceInfo;
  rank: number;
  segmentOffsets: Float64Array;
  segmentBytes: number;
  strideBytes: number;
  numBlocks: number;
  region: MappedRegion;
}

export const MAX_BLOCKS = 1 << 24;

/** Checks a registration's fields; returns the region bytes its geometry spans. Throws naming the field. */
export function checkRegistration(spec: RegisterSpec): number {
  checkId(spec.instanceId, 'instance_id');
  if (spec.engineId !== spec.instanceId) checkId(spec.engineId, 'engine_id');
  if (!Number.isInteger(spec.tpRank) || spec.tpRank < 0 || spec.tpRank >= spec.tpSize) {
    throw invalid('tp_rank', `expected 0..${spec.tpSize - 1} (tp_size ${spec.tpSize})`, spec.tpRank);
  }
  if (spec.worldSize !== 0 && spec.worldSize < spec.tpSize) throw invalid('world_size', `expected 0 or at least tp_size ${spec.tpSize}`, spec.worldSize);
  if (!Number.isInteger(spec.numBlocks) || spec.numBlocks < 1 || spec.numBlocks > MAX_BLOCKS) {
    throw invalid('geometry.num_blocks', `expected 1..${MAX_BLOCKS}`, spec.numBlocks);
  }
  if (!Number.isSafeInteger(spec.blockStrideBytes) || spec.blockStrideBytes < 0) throw invalid('geometry.block_stride_bytes', 'expected a byte count', spec.blockStrideBytes);
  if (spec.numBlocks > 1 && spec.blockStrideBytes < spec.segmentBytes) {
    throw invalid('geometry.block_stride_bytes', `expected at least segment_bytes ${spec.segmentBytes}`, spec.blockStrideBytes);
  }
  let maxOffset = 0;
  spec.segmentOffsets.forEach((off, i) => {
    if (!Number.isSafeInteger(off) || off < 0) throw invalid(`geometry.segment_offsets[${i}]`, 'expected a byte offset', off);
    maxOffset = Math.max(maxOffset, off);
  });
  const span = maxOffset + spec.segmentBytes + (spec.numBlocks - 1) * spec.blockStrideBytes;
  if (!Number.isSafeInteger(span)) throw invalid('geometry', 'region span beyond 2^53 bytes', span);
  const r = spec.region;
  if (!r.shmName && !r.path) throw invalid('region', 'expected shm_name or path');
  if (!Number.isSafeInteger(r.sizeBytes) || r.sizeBytes < 1) throw invalid('region.size_bytes', 'expected a size in bytes', r.sizeBytes);
  if (r.sizeBytes < span) {
    throw new KvError(
      'REGION_INVALID',
      `region.size_bytes: ${r.sizeBytes} bytes is too small for the geometry: it spans ${span} bytes ` +
        `(largest segment offset ${maxOffset} + segment_bytes ${spec.segmentBytes} + (num_blocks ${spec.numBlocks} - 1) × block_stride_bytes ${spec.blockStrideBytes})`,
    );
  }
  return span;
}

/** Source and destination descriptors for moving blocks between a region and pool pages (coalescing runs). */
export class Descriptors {
  private src: number[] = [];
  private dst: number[] = [];
  private len: number[] = [];

  add(src: number, dst: number, len: number): void {
    const n = this.len.length - 1;
    if (n >= 0 && this.src[n]! + this.len[n]! === src && this.dst[n]! + this.len[n]! === dst) {
      this.len[n]! += len;
      return;
    }
    this.src.push(src);
    this.dst.push(dst);
    this.len.push(len);
  }

  get count(): number {
    return this.len.length;
  }

  arrays(): { src: Float64Array; dst: Float64Array; len: Float64Array } {
    return { src: Float64Array.from(this.src), dst: Float64Array.from(this.dst), len: Float64Array.from(this.len) };
  }
}

/** Adds the descriptors that gather block `blockId` of `inst` into `page` (save), or scatter it back (load). */
export function blockDescriptors(inst: Instance, blockId: number, page: number, out: Descriptors, toPool: boolean): void {
  const base = blockId * inst.strideBytes;
  const seg = inst.segmentBytes;
  for (let s = 0; s < inst.segmentOffsets.length; s++) {
    const regionOff = inst.segmentOffsets[s]! + base;
    const pageOff = page + s * seg;
    if (toPool) out.add(regionOff, pageOff, seg);
    else out.add(pageOff, regionOff, seg);
  }
}
