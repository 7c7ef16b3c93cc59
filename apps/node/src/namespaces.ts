// Namespaces and their fixed geometry. The first registration of a namespace fixes its shard layout
// (TP size, replicated or not, segment count and bytes, hence page bytes); a later registration that
// disagrees is refused with GEOMETRY_CONFLICT. Pure: no gRPC, no native code.
import { KvError, checkNamespace, invalid } from '@kvfabric/common';

export const MAX_TP_SIZE = 64;
export const MAX_SEGMENTS = 4096;

/** What every instance of a namespace must agree on. */
export interface NamespaceLayout {
  tpSize: number;
  replicated: boolean;
  segments: number;
  segmentBytes: number;
}

export interface NamespaceInfo extends NamespaceLayout {
  id: number;
  name: string;
  /** Bytes of one shard's page: every segment back to back. */
  pageBytes: number;
  /** Pages per block: 1 when replicated, else tpSize. */
  shards: number;
}

export function checkLayout(layout: NamespaceLayout): NamespaceLayout {
  const { tpSize, replicated, segments, segmentBytes } = layout;
  if (!Number.isInteger(tpSize) || tpSize < 1 || tpSize > MAX_TP_SIZE)
    throw invalid('tp_size', `expected 1..${MAX_TP_SIZE}`, tpSize);
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SEGMENTS) {
    throw invalid('geometry.segment_offsets', `expected 1..${MAX_SEGMENTS} segments`, segments);
  }
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1)
    throw invalid('geometry.segment_bytes', 'expected at least 1 byte', segmentBytes);
  if (!Number.isSafeInteger(segments * segmentBytes))
    throw invalid('geometry', 'page bytes (segments × segment_bytes) too large', segments * segmentBytes);
  return { tpSize, replicated: !!replicated, segments, segmentBytes };
}

export class NamespaceRegistry {
  private readonly byName = new Map<string, NamespaceInfo>();
  private readonly byId: NamespaceInfo[] = [];

  /** Returns the namespace, creating it with `layout` on first use; throws GEOMETRY_CONFLICT on disagreement. */
  ensure(name: string, layout: NamespaceLayout, maxPageBytes = Number.MAX_SAFE_INTEGER): NamespaceInfo {
    checkNamespace(name);
    const l = checkLayout(layout);
    const existing = this.byName.get(name);
    if (existing) {
      const diffs: string[] = [];
      if (existing.tpSize !== l.tpSize) diffs.push(`tp_size ${l.tpSize} (fixed: ${existing.tpSize})`);
      if (existing.replicated !== l.replicated)
        diffs.push(`replicated ${l.replicated} (fixed: ${existing.replicated})`);
      if (existing.segments !== l.segments) diffs.push(`segments ${l.segments} (fixed: ${existing.segments})`);
      if (existing.segmentBytes !== l.segmentBytes)
        diffs.push(`segment_bytes ${l.segmentBytes} (fixed: ${existing.segmentBytes})`);
      if (diffs.length > 0) {
        throw new KvError(
          'GEOMETRY_CONFLICT',
          `namespace ${JSON.stringify(name)}: geometry conflicts with its first registration: ${diffs.join(', ')}`,
        );
      }
      return existing;
    }
    const pageBytes = l.segments * l.segmentBytes;
    if (pageBytes > maxPageBytes) {
      throw invalid('geometry', `page bytes (segments × segment_bytes) at most ${maxPageBytes}`, pageBytes);
    }
    const info: NamespaceInfo = { ...l, id: this.byId.length, name, pageBytes, shards: l.replicated ? 1 : l.tpSize };
    this.byName.set(name, info);
    this.byId.push(info);
    return info;
  }

  get(id: number): NamespaceInfo {
    const info = this.byId[id];
    if (!info) throw new KvError('INTERNAL', `namespace id ${id} unknown`);
    return info;
  }

  byNameOrUndefined(name: string): NamespaceInfo | undefined {
    return this.byName.get(name);
  }

  all(): readonly NamespaceInfo[] {
    return this.byId;
  }
}
