// An engine's KV memory as a sealed memfd (or a file) that the engine SDK hands over to the node as a descriptor,
// with a layout helper that computes where each segment (a layer, or the K or V half of a layer) of each block lives.
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { invalid, toKvError } from '@kvfabric/common';
import { createSealedMemfd } from '@kvfabric/native/fd-pass';

export interface KvLayoutSpec {
  numLayers: number;
  /** K and V of a layer as separate segments (vLLM's usual layout); false: one segment per layer. */
  kvSplit: boolean;
  /** Bytes of one segment of one block (one layer's K, V, or K+V when not split). */
  bytesPerLayerBlock: number;
  numBlocks: number;
  /**
   * 'layer-major' (default): each segment is one contiguous tensor over all blocks (vLLM's per-layer KV cache);
   * 'block-major': each block's segments are contiguous.
   */
  order?: 'layer-major' | 'block-major';
}

export interface KvGeometry {
  segmentOffsets: number[];
  segmentBytes: number;
  blockStrideBytes: number;
  numBlocks: number;
  /** Bytes the layout spans: the region size. */
  sizeBytes: number;
  /** Bytes of one block of this shard (all its segments): the node's page size. */
  blockBytes: number;
}

export function kvLayout(spec: KvLayoutSpec): KvGeometry {
  const { numLayers, kvSplit, bytesPerLayerBlock: seg, numBlocks } = spec;
  if (!Number.isInteger(numLayers) || numLayers < 1)
    throw invalid('numLayers', 'expected a positive integer', numLayers);
  if (!Number.isSafeInteger(seg) || seg < 1) throw invalid('bytesPerLayerBlock', 'expected a positive integer', seg);
  if (!Number.isInteger(numBlocks) || numBlocks < 1)
    throw invalid('numBlocks', 'expected a positive integer', numBlocks);
  const segments = numLayers * (kvSplit ? 2 : 1);
  const blockBytes = segments * seg;
  const sizeBytes = blockBytes * numBlocks;
  if (spec.order === 'block-major') {
    return {
      segmentOffsets: Array.from({ length: segments }, (_, s) => s * seg),
      segmentBytes: seg,
      blockStrideBytes: blockBytes,
      numBlocks,
      sizeBytes,
      blockBytes,
    };
  }
  return {
    segmentOffsets: Array.from({ length: segments }, (_, s) => s * seg * numBlocks),
    segmentBytes: seg,
    blockStrideBytes: seg,
    numBlocks,
    sizeBytes,
    blockBytes,
  };
}

/** File-backed regions this process created and has not closed: their files are removed when the process exits. */
const open = new Set<KvRegion>();
let exitHook = false;

function unlinkOnExit(region: KvRegion): void {
  open.add(region);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const r of open) r.close();
  });
}

export class KvRegion {
  private fd: number;
  private constructor(
    readonly geometry: KvGeometry,
    fd: number,
    /** The file behind a file-backed region (`dir` given); undefined for a memfd. */
    readonly path: string | undefined,
  ) {
    this.fd = fd;
  }

  /**
   * The KV memory for `layout`: by default a memfd sealed against shrinking and growing (F_SEAL_SHRINK |
   * F_SEAL_GROW), which the node accepts from any engine; with `dir`, a file `dir`/<name> (mode 0600, owned by this
   * process's user), removed on close() or exit, which the node accepts when the engine's user owns it.
   */
  static create(opts: { layout: KvLayoutSpec | KvGeometry; name?: string; dir?: string }): KvRegion {
    const geometry = 'segmentOffsets' in opts.layout ? opts.layout : kvLayout(opts.layout);
    const name = opts.name ?? `kvfabric-${process.pid}-${randomBytes(4).toString('hex')}`;
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw invalid('name', 'expected [A-Za-z0-9._-]{1,200}', name);
    if (opts.dir === undefined) {
      try {
        return new KvRegion(geometry, createSealedMemfd(name, geometry.sizeBytes), undefined);
      } catch (err) {
        throw toKvError(err);
      }
    }
    const path = join(opts.dir, name);
    const fd = openSync(path, 'w+', 0o600);
    ftruncateSync(fd, geometry.sizeBytes);
    const region = new KvRegion(geometry, fd, path);
    unlinkOnExit(region);
    return region;
  }

  /** The descriptor the engine SDK hands over to the node (KvEngine.register); -1 once closed. */
  get descriptor(): number {
    return this.fd;
  }

  get sizeBytes(): number {
    return this.geometry.sizeBytes;
  }

  /** Byte offset of segment `segment` of block `block`. */
  offset(segment: number, block: number): number {
    return this.geometry.segmentOffsets[segment]! + block * this.geometry.blockStrideBytes;
  }

  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /** Writes one block's bytes (its segments back to back, `blockBytes` long) to where the layout puts them. */
  writeBlock(block: number, data: Uint8Array): void {
    const seg = this.geometry.segmentBytes;
    if (data.length !== this.geometry.blockBytes)
      throw invalid('data', `expected ${this.geometry.blockBytes} bytes`, data.length);
    this.geometry.segmentOffsets.forEach((_, s) =>
      this.write(this.offset(s, block), data.subarray(s * seg, (s + 1) * seg)),
    );
  }

  /** One block's bytes gathered from its segments. */
  readBlock(block: number): Buffer {
    return Buffer.concat(
      this.geometry.segmentOffsets.map((_, s) => this.read(this.offset(s, block), this.geometry.segmentBytes)),
    );
  }

  /** Closes the descriptor and (by default) removes a file-backed region's file; the node keeps its mapping until the instance goes. */
  close(unlink = true): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    open.delete(this);
    if (unlink && this.path !== undefined) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
