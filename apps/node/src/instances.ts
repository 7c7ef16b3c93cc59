// Engine instances: one per TP rank of an engine, each with its mapped KV region and its geometry. Validation
// of a registration lives here (pure), so the service only decodes; the registry maps instance ids to instances.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { KvError, checkId, invalid } from '@kvfabric/common';
import type { CudaIpcSource, DataPath, InstanceLayout, MappedRegion, RegionSource } from './data-path.js';
import { checkCudaIpc } from './cuda-ipc-spec.js';
import type { HandedRegions, Peer } from './handed-regions.js';
import { NamespaceRegistry, type NamespaceInfo } from './namespaces.js';

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
  /** Host memory handed over (token), or GPU memory (cudaIpc, then token is empty). */
  region: RegionSource & { cudaIpc?: CudaIpcSource | undefined };
}

export interface Instance {
  id: string;
  engineId: string;
  /** The engine's number on this node (its leases' owner), the same for every instance of the engine. */
  engineNo: number;
  ns: NamespaceInfo;
  rank: number;
  segmentOffsets: Float64Array;
  segmentBytes: number;
  strideBytes: number;
  numBlocks: number;
  region: MappedRegion;
  /** The geometry again, held natively for the native save and load (data-path.ts). */
  layout: InstanceLayout;
  /** The credential answered to the registering caller; every call naming the instance must present it. */
  key: string;
  /** Who handed the region over (SO_PEERCRED), for logs; none for GPU memory (CUDA IPC). */
  owner: Peer | undefined;
}

const KEY_BYTES = 16;

export const MAX_BLOCKS = 1 << 24;

/** Checks a registration's fields; returns the region bytes its geometry spans. Throws naming the field. */
export function checkRegistration(spec: RegisterSpec): number {
  checkId(spec.instanceId, 'instance_id');
  if (spec.engineId !== spec.instanceId) checkId(spec.engineId, 'engine_id');
  if (!Number.isInteger(spec.tpRank) || spec.tpRank < 0 || spec.tpRank >= spec.tpSize) {
    throw invalid('tp_rank', `expected 0..${spec.tpSize - 1} (tp_size ${spec.tpSize})`, spec.tpRank);
  }
  if (spec.worldSize !== 0 && spec.worldSize < spec.tpSize)
    throw invalid('world_size', `expected 0 or at least tp_size ${spec.tpSize}`, spec.worldSize);
  if (!Number.isInteger(spec.numBlocks) || spec.numBlocks < 1 || spec.numBlocks > MAX_BLOCKS) {
    throw invalid('geometry.num_blocks', `expected 1..${MAX_BLOCKS}`, spec.numBlocks);
  }
  if (!Number.isSafeInteger(spec.blockStrideBytes) || spec.blockStrideBytes < 0)
    throw invalid('geometry.block_stride_bytes', 'expected a byte count', spec.blockStrideBytes);
  if (spec.numBlocks > 1 && spec.blockStrideBytes < spec.segmentBytes) {
    throw invalid(
      'geometry.block_stride_bytes',
      `expected at least segment_bytes ${spec.segmentBytes}`,
      spec.blockStrideBytes,
    );
  }
  let maxOffset = 0;
  spec.segmentOffsets.forEach((off, i) => {
    if (!Number.isSafeInteger(off) || off < 0)
      throw invalid(`geometry.segment_offsets[${i}]`, 'expected a byte offset', off);
    maxOffset = Math.max(maxOffset, off);
  });
  const span = maxOffset + spec.segmentBytes + (spec.numBlocks - 1) * spec.blockStrideBytes;
  if (!Number.isSafeInteger(span)) throw invalid('geometry', 'region span beyond 2^53 bytes', span);
  const r = spec.region;
  if (r.cudaIpc) checkCudaIpc(r, r.cudaIpc);
  else if (!r.token)
    throw invalid(
      'region.token',
      'required: hand the region over as a descriptor first, or give region.cuda_ipc (node README, "Regions")',
    );
  if (!Number.isSafeInteger(r.sizeBytes) || r.sizeBytes < 1)
    throw invalid('region.size_bytes', 'expected a size in bytes', r.sizeBytes);
  if (r.sizeBytes < span) {
    throw new KvError(
      'REGION_INVALID',
      `region.size_bytes: ${r.sizeBytes} bytes is too small for the geometry: it spans ${span} bytes ` +
        `(largest segment offset ${maxOffset} + segment_bytes ${spec.segmentBytes} + (num_blocks ${spec.numBlocks} - 1) × block_stride_bytes ${spec.blockStrideBytes})`,
    );
  }
  return span;
}

/** An engine's number and how many of its instances are registered. */
interface EngineEntry {
  no: number;
  instances: number;
}

const MAX_ENGINE_NO = 0xffff_ffff;

/**
 * The registered instances of one node, by instance id. Registering fixes (or checks) the namespace's layout.
 * Each engine (TP group) gets a number, kept while any of its instances is registered: the owner of its leases.
 */
export class InstanceRegistry {
  private readonly byId = new Map<string, Instance>();
  private readonly engines = new Map<string, EngineEntry>();
  private readonly engineNos = new Set<number>();
  private lastEngineNo = 0;
  private gpu = 0;

  constructor(
    private readonly namespaces: NamespaceRegistry,
    private readonly data: Pick<DataPath, 'maxPageBytes' | 'openRegion' | 'openCudaRegion' | 'layout'>,
    private readonly handed: HandedRegions,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  /** Instances whose region is GPU memory (CUDA IPC). */
  get gpuCount(): number {
    return this.gpu;
  }

  /** Validates `spec`, maps its region and adds it; a refused registration changes nothing. */
  register(spec: RegisterSpec): Instance {
    checkRegistration(spec);
    if (this.byId.has(spec.instanceId))
      throw new KvError(
        'INSTANCE_EXISTS',
        `instance_id: ${JSON.stringify(spec.instanceId)} is already registered on this node`,
      );
    const layout = {
      tpSize: spec.tpSize,
      replicated: spec.replicated,
      segments: spec.segmentOffsets.length,
      segmentBytes: spec.segmentBytes,
    };
    const maxPageBytes = this.data.maxPageBytes;
    // Check the namespace first on a scratch registry so a refused registration changes nothing.
    const known = this.namespaces.byNameOrUndefined(spec.namespace);
    if (known) this.namespaces.ensure(spec.namespace, layout);
    else new NamespaceRegistry().ensure(spec.namespace, layout, maxPageBytes);
    const { region, owner } = this.openRegion(spec.region);
    const ns = this.namespaces.ensure(spec.namespace, layout, maxPageBytes);
    const segmentOffsets = Float64Array.from(spec.segmentOffsets);
    const engineId = spec.engineId || spec.instanceId;
    const nativeLayout = this.data.layout({
      ns: ns.id,
      shards: ns.shards,
      shard: ns.replicated ? 0 : spec.tpRank,
      numBlocks: spec.numBlocks,
      pageBytes: ns.pageBytes,
      segmentBytes: spec.segmentBytes,
      strideBytes: spec.blockStrideBytes,
      segmentOffsets,
    });
    const inst: Instance = {
      id: spec.instanceId,
      engineId,
      engineNo: this.addToEngine(engineId),
      ns,
      rank: spec.tpRank,
      segmentOffsets,
      segmentBytes: spec.segmentBytes,
      strideBytes: spec.blockStrideBytes,
      numBlocks: spec.numBlocks,
      region,
      layout: nativeLayout,
      key: randomBytes(KEY_BYTES).toString('hex'),
      owner,
    };
    this.byId.set(inst.id, inst);
    if (region.kind === 'cuda_ipc') this.gpu++;
    return inst;
  }

  /** Opens the registration's region: GPU memory from its IPC handles, or the handed-over descriptor (spent). */
  private openRegion(source: RegisterSpec['region']): { region: MappedRegion; owner: Peer | undefined } {
    if (source.cudaIpc) return { region: this.data.openCudaRegion(source.cudaIpc), owner: undefined };
    const file = this.handed.take(source.token); // one use: even a refused mapping spends the token
    try {
      return { region: this.data.openRegion(file, source.sizeBytes), owner: file.peer };
    } finally {
      this.handed.release(file);
    }
  }

  /** Counts one more instance of the engine; returns its number (the next one not in use for a new engine). */
  private addToEngine(engineId: string): number {
    let entry = this.engines.get(engineId);
    if (!entry) {
      do this.lastEngineNo = this.lastEngineNo >= MAX_ENGINE_NO ? 1 : this.lastEngineNo + 1;
      while (this.engineNos.has(this.lastEngineNo));
      entry = { no: this.lastEngineNo, instances: 0 };
      this.engines.set(engineId, entry);
      this.engineNos.add(entry.no);
    }
    entry.instances++;
    return entry.no;
  }

  /** The instance, or INSTANCE_UNKNOWN. */
  get(instanceId: string): Instance {
    const inst = this.byId.get(instanceId);
    if (!inst)
      throw new KvError(
        'INSTANCE_UNKNOWN',
        `instance_id: ${JSON.stringify(instanceId)} is not registered on this node`,
      );
    return inst;
  }

  /**
   * The instance, if `key` is its credential: INSTANCE_UNKNOWN when it is not registered, INSTANCE_FOREIGN when
   * the caller is not the one that registered it.
   */
  authorize(instanceId: string, key: string): Instance {
    const inst = this.get(instanceId);
    const given = Buffer.from(key);
    if (given.length !== inst.key.length || !timingSafeEqual(given, Buffer.from(inst.key)))
      throw new KvError(
        'INSTANCE_FOREIGN',
        `instance_id: ${JSON.stringify(instanceId)} was registered by another caller (metadata kvfabric-instance-key ${key ? 'does not match' : 'is missing'})`,
      );
    return inst;
  }

  /** Removes the instance and closes its region; undefined when it was not registered. */
  remove(instanceId: string): Instance | undefined {
    const inst = this.byId.get(instanceId);
    if (!inst) return undefined;
    this.byId.delete(instanceId);
    const entry = this.engines.get(inst.engineId)!;
    if (--entry.instances === 0) {
      this.engines.delete(inst.engineId);
      this.engineNos.delete(entry.no);
    }
    if (inst.region.kind === 'cuda_ipc') this.gpu--;
    inst.region.close();
    return inst;
  }

  /** Whether any instance of the engine is still registered. */
  hasEngine(engineId: string): boolean {
    return this.engines.has(engineId);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }
}
