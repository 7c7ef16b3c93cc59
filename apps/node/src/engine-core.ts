// The node's engine-facing logic, free of gRPC: save (gather into pool pages: block-saver.ts), query (prefix hit
// + lease, and the fetch of a missing suffix), load (scatter back), release. Instances live in the InstanceRegistry
// (instances.ts), the fetches queries start in QueryFetches (query-fetches.ts). The service decodes requests and
// calls this; tests drive it directly with an in-memory data path.
import { invalid, checkId, toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import { type BlockIndex } from './block-index.js';
import { BlockSaver, type SaveResult } from './block-saver.js';
import type { DataPath, RegionSource } from './data-path.js';
import { EngineRings } from './engine-rings.js';
import type { Evictor } from './eviction.js';
import type { HandedRegions } from './handed-regions.js';
import { InstanceRegistry, type Instance, type RegisterSpec } from './instances.js';
import { LeaseTable } from './leases.js';
import type { NamespaceRegistry } from './namespaces.js';
import { QueryFetches, type Fetcher, type QueryFetch } from './query-fetches.js';

export type { Fetcher, FetchOutcome, FetchRequest } from './query-fetches.js';

export { SAVE_STORED, SAVE_PRESENT, SAVE_NO_SPACE, SAVE_FAILED, type SaveResult } from './block-saver.js';
/** The longest a Query waits for its fetch (wait_ms is capped at this). */
export const MAX_QUERY_WAIT_MS = 10_000;

export interface EngineCoreOptions {
  data: DataPath;
  /** The node's blocks, shared with the peer server and the fetcher; `evictor` makes room in `data.pool`. */
  index: BlockIndex;
  namespaces: NamespaceRegistry;
  evictor: Evictor;
  leaseTtlMs: number;
  logger: Logger;
  /** A save sealed blocks (for the metaserver): their hashes back to back, `hashLen` bytes each. */
  onSealed?: (namespace: string, hashes: Buffer, hashLen: number) => void;
  fetcher?: Fetcher;
  now?: () => number;
  /** Regions engines handed over, claimed by registrations. */
  regions: HandedRegions;
}

export interface QueryResult {
  state: 'ready' | 'loading';
  hits: number;
  leaseId: string;
  leaseExpiresAtMs: number;
  breakdown: { local: number; ssd: number; remote: number };
}

const LOADING: QueryResult = Object.freeze({
  state: 'loading',
  hits: 0,
  leaseId: '',
  leaseExpiresAtMs: 0,
  breakdown: Object.freeze({ local: 0, ssd: 0, remote: 0 }),
});

export class EngineCore {
  readonly namespaces: NamespaceRegistry;
  readonly index: BlockIndex;
  readonly evictor: Evictor;
  readonly leases: LeaseTable;
  private readonly instances: InstanceRegistry;
  /** The fetches queries started; absent without a fetcher (local hits only). */
  private readonly fetches: QueryFetches | undefined;
  private readonly saver: BlockSaver;
  /** The engines' command rings: save, query, load and release run natively, off this thread. */
  readonly rings: EngineRings;
  readonly counters = {
    saveCalls: 0,
    savedBlocks: 0,
    savedBytes: 0,
    sealedBlocks: 0,
    presentBlocks: 0,
    noSpaceBlocks: 0,
    loadCalls: 0,
    loadedBlocks: 0,
    loadedBytes: 0,
    queries: 0,
    queryHashes: 0,
    queryHits: 0,
    /** Saves and loads failed on their engine's region (it shrank under the copy). */
    regionFailures: 0,
  };
  private readonly now: () => number;

  constructor(private readonly opts: EngineCoreOptions) {
    this.now = opts.now ?? Date.now;
    this.namespaces = opts.namespaces;
    this.index = opts.index;
    this.evictor = opts.evictor;
    this.leases = new LeaseTable({ index: this.index, ttlMs: opts.leaseTtlMs, now: this.now });
    this.instances = new InstanceRegistry(this.namespaces, opts.data, opts.regions);
    this.saver = new BlockSaver({ ...opts, counters: this.counters });
    this.rings = new EngineRings({
      data: opts.data,
      index: this.index,
      leases: this.leases.native,
      evictor: this.evictor,
      regions: opts.regions,
      counters: this.counters,
      logger: opts.logger,
      fetchable: opts.fetcher !== undefined,
      ...(opts.onSealed ? { onSealed: opts.onSealed } : {}),
    });
    this.fetches =
      opts.fetcher &&
      new QueryFetches({ fetcher: opts.fetcher, ttlMs: opts.leaseTtlMs, now: this.now, logger: opts.logger });
  }

  poolStats(): { capacityBytes: number; usedBytes: number } {
    return this.opts.data.pool.stats();
  }

  get instanceCount(): number {
    return this.instances.size;
  }

  /** Registered instances whose region is GPU memory (CUDA IPC). */
  get gpuInstanceCount(): number {
    return this.instances.gpuCount;
  }

  /** Registers an instance; `key` is its credential, for the caller that registered it only. */
  register(spec: RegisterSpec): { pageBytes: number; shards: number; key: string } {
    const inst = this.instances.register(spec);
    const { ns } = inst;
    this.opts.logger.info(
      {
        instance: inst.id,
        engine: spec.engineId,
        namespace: ns.name,
        rank: inst.rank,
        pageBytes: ns.pageBytes,
        region: inst.region.label,
        peer: inst.owner,
      },
      'instance registered',
    );
    return { pageBytes: ns.pageBytes, shards: ns.shards, key: inst.key };
  }

  /** The instance if `key` is its credential; INSTANCE_UNKNOWN or INSTANCE_FOREIGN otherwise. */
  authorize(instanceId: string, key: string): Instance {
    return this.instances.authorize(instanceId, key);
  }

  /** Attaches the engine's command ring to one of its instances (engine-rings.ts); `key` must be the instance's. */
  attachRing(instanceId: string, key: string, ring: RegionSource): { entries: number; slotBytes: number } {
    const inst = this.authorize(instanceId, key);
    return this.rings.attach(inst, inst.engineNo, ring);
  }

  /** Drops an instance, its command ring, its region mapping, and (when it was its engine's last) the engine's leases and fetches. */
  unregister(instanceId: string): boolean {
    const inst = this.instances.remove(instanceId);
    if (!inst) return false;
    this.rings.detach(instanceId, inst); // its commands in flight complete first (they hold the region's mapping)
    this.fetches?.wakeInstance(instanceId); // its waiting queries find it gone and answer INSTANCE_UNKNOWN
    let leases = 0;
    if (!this.instances.hasEngine(inst.engineId)) {
      leases = this.leases.dropEngine(inst.engineNo);
      this.fetches?.dropEngine(inst.engineId);
    }
    this.opts.logger.info({ instance: instanceId, leases }, 'instance unregistered');
    return true;
  }

  /** The registered instance, or INSTANCE_UNKNOWN. */
  instance(instanceId: string): Instance {
    return this.instances.get(instanceId);
  }

  /** Gathers blocks of an instance's region into pool pages (block-saver.ts); one outcome per hash. */
  async save(instanceId: string, blockIds: Uint32Array, packed: Buffer, hashLen: number): Promise<SaveResult> {
    const inst = this.instance(instanceId);
    try {
      return await this.saver.save(inst, blockIds, packed, hashLen);
    } catch (err) {
      this.logRegionFailure(inst, 'save', err);
      throw err;
    }
  }

  /** A copy that failed on the engine's region (it shrank under the copy) is the engine's fault: say so in the log. */
  private logRegionFailure(inst: Instance, op: 'save' | 'load', err: unknown): void {
    const e = toKvError(err);
    if (e.code !== 'REGION_INVALID') return;
    this.counters.regionFailures++;
    this.opts.logger.warn({ instance: inst.id, engine: inst.engineId, op, err: e.message }, `${op} failed: region`);
  }

  /**
   * The prefix hit and its lease. When the rest may be fetched (SSD or peers) and a request id is given, the first
   * call starts the fetch and answers LOADING; a later call with the same request id answers READY once it finished.
   * With `waitMs` > 0 (capped at MAX_QUERY_WAIT_MS) a call that would answer LOADING waits that long for the fetch
   * instead, then answers READY, or LOADING if it is still running. A lease is created only for a READY answer.
   */
  async query(
    instanceId: string,
    requestId: string,
    packed: Buffer,
    hashLen: number,
    localOnly: boolean,
    waitMs = 0,
  ): Promise<QueryResult> {
    this.instance(instanceId);
    if (requestId) checkId(requestId, 'request_id');
    const count = packed.length / hashLen;
    this.counters.queries++;
    this.counters.queryHashes += count;
    const first = this.answer(instanceId, requestId, packed, hashLen, count, localOnly);
    if (first !== LOADING || !(waitMs > 0)) return first;
    const fetch = this.fetches?.get(this.instance(instanceId).engineId, requestId);
    if (fetch && !fetch.done) await this.fetches!.wait(fetch, instanceId, Math.min(waitMs, MAX_QUERY_WAIT_MS));
    return this.answer(instanceId, requestId, packed, hashLen, count, localOnly); // throws if the instance went away
  }

  /** One look at the query: READY with a lease, or LOADING (a fetch started or still running). */
  private answer(
    instanceId: string,
    requestId: string,
    packed: Buffer,
    hashLen: number,
    count: number,
    localOnly: boolean,
  ): QueryResult {
    const inst = this.instance(instanceId);
    const { ns } = inst;
    const fetches = this.fetches;
    let fetch: QueryFetch | undefined;
    if (fetches && !localOnly && requestId) {
      fetch = fetches.get(inst.engineId, requestId);
      if (!fetch) {
        const local = this.index.prefix(ns.id, packed, hashLen, count); // only to decide whether to fetch
        if (local < count)
          fetch = fetches.start(inst.engineId, requestId, {
            ns,
            packed: Buffer.from(packed),
            hashLen,
            from: local,
            count,
          });
      }
      if (fetch) {
        if (!fetch.done) return LOADING;
        fetches.forget(inst.engineId, requestId);
      }
    }
    // READY: the hit is looked up and pinned by its lease at once (a save on another thread may evict meanwhile)
    const lease = this.leases.createForPrefix(inst.engineNo, ns.id, packed, hashLen, count, ns.tpSize);
    const { hits } = lease;
    const breakdown = { local: hits, ssd: 0, remote: 0 };
    if (fetch) {
      const extra = Math.max(0, hits - fetch.local);
      breakdown.local = Math.min(hits, fetch.local);
      breakdown.ssd = Math.min(extra, fetch.outcome.ssd);
      breakdown.remote = extra - breakdown.ssd;
    }
    this.counters.queryHits += hits;
    return { state: 'ready', hits, leaseId: lease.id, leaseExpiresAtMs: lease.expiresAtMs, breakdown };
  }

  async load(instanceId: string, leaseId: string, blockIds: Uint32Array): Promise<{ loaded: number; bytes: number }> {
    const inst = this.instance(instanceId);
    if (!leaseId) throw invalid('lease_id', 'expected a lease id from Query');
    // checked before the lease is consumed, so a bad call spends nothing (the native load checks them again)
    for (let i = 0; i < blockIds.length; i++) {
      if (blockIds[i]! >= inst.numBlocks)
        throw invalid(`block_ids[${i}]`, `expected 0..${inst.numBlocks - 1}`, blockIds[i]);
    }
    const n = blockIds.length;
    // the lease's first n slots, pinned for this load (the lease may end when this rank consumes it)
    const slots = this.leases.consume(leaseId, inst.engineNo, inst.ns.id, inst.rank, n);
    this.counters.loadCalls++;
    const { ns } = inst;
    try {
      if (n > 0) await this.opts.data.load(this.index, inst.region, inst.layout, slots, blockIds);
    } catch (err) {
      this.logRegionFailure(inst, 'load', err);
      throw err;
    } finally {
      this.index.unpinMany(slots, n);
    }
    const bytes = n * ns.pageBytes;
    this.counters.loadedBlocks += n;
    this.counters.loadedBytes += bytes;
    return { loaded: n, bytes };
  }

  release(instanceId: string, leaseId: string): void {
    const inst = this.instance(instanceId);
    if (!leaseId) throw invalid('lease_id', 'expected a lease id from Query');
    this.leases.release(leaseId, inst.engineNo);
  }

  /** Expires leases and abandoned fetch answers; run every second or so. */
  sweep(): number {
    this.fetches?.sweep();
    return this.leases.sweep();
  }

  close(): void {
    for (const id of this.instances.ids()) this.unregister(id);
    this.leases.clear();
  }
}
