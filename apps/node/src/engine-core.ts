// The node's engine-facing logic, free of gRPC: instances, save (gather into pool pages), query (prefix hit +
// lease), load (scatter back), release. The service decodes requests and calls this; tests drive it directly
// with an in-memory data path.
import { KvError, invalid, checkId } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import { BlockIndex, BlockClass } from './block-index.js';
import type { DataPath } from './data-path.js';
import { Evictor, type EvictedBlock } from './eviction.js';
import { DescriptorBatch } from './data-path-descriptors.js';
import { hashKey } from './hash-table.js';
import { checkRegistration, type Instance, type RegisterSpec } from './instances.js';
import { LeaseTable } from './leases.js';
import { NamespaceRegistry, type NamespaceInfo } from './namespaces.js';

export const SAVE_STORED = 0;
export const SAVE_PRESENT = 1;
export const SAVE_NO_SPACE = 2;
export const SAVE_FAILED = 3;
/** The longest a Query waits for its fetch (wait_ms is capped at this). */
export const MAX_QUERY_WAIT_MS = 10_000;

/** Fetches a missing suffix of a query from the SSD tier or peers into the local index (next issue). */
export interface Fetcher {
  /** Resolves when whatever could be fetched is sealed locally; never rejects for a miss. */
  fetch(req: { ns: NamespaceInfo; packed: Buffer; hashLen: number; from: number; count: number }): Promise<{ ssd: number; remote: number }>;
}

export interface BlockEvents {
  sealed(ns: string, key: string): void;
  evicted(ns: string, key: string): void;
}

export interface EngineCoreOptions {
  data: DataPath;
  leaseTtlMs: number;
  logger: Logger;
  events?: BlockEvents;
  fetcher?: Fetcher;
  now?: () => number;
}

export interface QueryResult {
  state: 'ready' | 'loading';
  hits: number;
  leaseId: string;
  leaseExpiresAtMs: number;
  breakdown: { local: number; ssd: number; remote: number };
}

interface PendingFetch {
  done: boolean;
  local: number;
  result: { ssd: number; remote: number };
  expiresAtMs: number;
  /** Queries waiting (wait_ms) for this fetch: each is woken once when it finishes. */
  waiters: Set<() => void>;
}

const LOADING: QueryResult = Object.freeze({ state: 'loading', hits: 0, leaseId: '', leaseExpiresAtMs: 0, breakdown: Object.freeze({ local: 0, ssd: 0, remote: 0 }) });

export class EngineCore {
  readonly namespaces = new NamespaceRegistry();
  readonly index = new BlockIndex(1 << 14);
  readonly leases: LeaseTable;
  readonly evictor: Evictor;
  private readonly instances = new Map<string, Instance>();
  private readonly pending = new Map<string, PendingFetch>();
  /** Per instance id, the wake-ups of its queries waiting for a fetch (woken early when the instance goes away). */
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Scratch for de-duplicating a save's hashes (used synchronously within one call). */
  private readonly callKeys = new CallKeys();
  readonly counters = { saveCalls: 0, savedBlocks: 0, savedBytes: 0, sealedBlocks: 0, presentBlocks: 0, noSpaceBlocks: 0, loadCalls: 0, loadedBlocks: 0, loadedBytes: 0, queries: 0, queryHashes: 0, queryHits: 0 };
  private readonly now: () => number;

  constructor(private readonly opts: EngineCoreOptions) {
    this.now = opts.now ?? Date.now;
    this.leases = new LeaseTable({
      ttlMs: opts.leaseTtlMs,
      now: this.now,
      pin: (slots) => this.index.pinMany(slots, slots.length),
      unpin: (slots) => this.index.unpinMany(slots, slots.length),
    });
    this.evictor = new Evictor(this.index, opts.data.pool, (b: EvictedBlock) => {
      if (b.sealed) opts.events?.evicted(this.namespaces.get(b.ns).name, b.key);
    });
  }

  poolStats(): { capacityBytes: number; usedBytes: number } {
    return this.opts.data.pool.stats();
  }

  get instanceCount(): number {
    return this.instances.size;
  }

  register(spec: RegisterSpec): { pageBytes: number; shards: number } {
    checkRegistration(spec);
    if (this.instances.has(spec.instanceId)) throw new KvError('INSTANCE_EXISTS', `instance_id: ${JSON.stringify(spec.instanceId)} is already registered on this node`);
    const layout = { tpSize: spec.tpSize, replicated: spec.replicated, segments: spec.segmentOffsets.length, segmentBytes: spec.segmentBytes };
    // Check the namespace first on a scratch registry so a refused registration changes nothing.
    const known = this.namespaces.byNameOrUndefined(spec.namespace);
    if (known) this.namespaces.ensure(spec.namespace, layout);
    else new NamespaceRegistry().ensure(spec.namespace, layout, this.opts.data.pool.maxPageBytes);
    const region = this.opts.data.openRegion(spec.region);
    const ns = this.namespaces.ensure(spec.namespace, layout, this.opts.data.pool.maxPageBytes);
    this.instances.set(spec.instanceId, {
      id: spec.instanceId,
      engineId: spec.engineId || spec.instanceId,
      ns,
      rank: spec.tpRank,
      segmentOffsets: Float64Array.from(spec.segmentOffsets),
      segmentBytes: spec.segmentBytes,
      strideBytes: spec.blockStrideBytes,
      numBlocks: spec.numBlocks,
      region,
    });
    this.opts.logger.info({ instance: spec.instanceId, engine: spec.engineId, namespace: ns.name, rank: spec.tpRank, pageBytes: ns.pageBytes }, 'instance registered');
    return { pageBytes: ns.pageBytes, shards: ns.shards };
  }

  /** Drops an instance, its region mapping, and (when it was its engine's last) the engine's leases. */
  unregister(instanceId: string): boolean {
    const inst = this.instances.get(instanceId);
    if (!inst) return false;
    this.instances.delete(instanceId);
    inst.region.close();
    const waiting = this.waiting.get(instanceId);
    if (waiting) for (const wake of [...waiting]) wake(); // they find the instance gone and answer INSTANCE_UNKNOWN
    let engineLives = false;
    for (const other of this.instances.values()) if (other.engineId === inst.engineId) engineLives = true;
    let leases = 0;
    if (!engineLives) {
      leases = this.leases.dropEngine(inst.engineId);
      for (const key of this.pending.keys()) if (key.startsWith(inst.engineId + '\0')) this.pending.delete(key);
    }
    this.opts.logger.info({ instance: instanceId, leases }, 'instance unregistered');
    return true;
  }

  instance(instanceId: string): Instance {
    const inst = this.instances.get(instanceId);
    if (!inst) throw new KvError('INSTANCE_UNKNOWN', `instance_id: ${JSON.stringify(instanceId)} is not registered on this node`);
    return inst;
  }

  async save(instanceId: string, blockIds: Uint32Array, packed: Buffer, hashLen: number): Promise<{ outcomes: Uint8Array; stored: number; sealed: number; bytes: number }> {
    const inst = this.instance(instanceId);
    const count = hashLen > 0 ? packed.length / hashLen : 0;
    if (blockIds.length !== count) throw invalid('block_ids', `expected ${count} ids (one per hash), got ${blockIds.length}`);
    for (let i = 0; i < count; i++) {
      if (blockIds[i]! >= inst.numBlocks) throw invalid(`block_ids[${i}]`, `expected 0..${inst.numBlocks - 1}`, blockIds[i]);
    }
    this.counters.saveCalls++;
    const { ns } = inst;
    const index = this.index;
    const shard = ns.replicated ? 0 : inst.rank;
    const outcomes = new Uint8Array(count).fill(SAVE_PRESENT);
    // Hot path (64 blocks a call is typical): one pass over the hashes, keyed straight from the packed request
    // bytes (no key strings), plain typed arrays, no per-block objects.
    const need = new Int32Array(count); // call positions that need a page, in order
    let needCount = 0;
    let existing: number[] | undefined; // partial blocks (another rank's page) pinned while pages are found
    const dedupe = count > 1 ? this.callKeys.reset(packed, hashLen, count) : undefined;
    for (let i = 0; i < count; i++) {
      const off = i * hashLen;
      if (dedupe && !dedupe.first(i)) continue;
      const slot = index.lookupAt(ns.id, packed, off, hashLen);
      if (slot >= 0 && (index.isSealed(slot) || !Number.isNaN(index.page(slot, shard)))) continue;
      need[needCount++] = i;
      if (slot >= 0) {
        index.pin(slot); // keep a partial block (another rank's page) from being evicted to make room
        (existing ??= []).push(slot);
      }
    }
    const pages = this.evictor.allocate(ns.pageBytes, needCount);
    const stored = pages.length;
    const slots = new Int32Array(stored);
    const desc = new DescriptorBatch(stored * inst.segmentOffsets.length);
    for (let j = 0; j < stored; j++) {
      const i = need[j]!;
      const slot = index.slotForShardAt(ns.id, packed, i * hashLen, hashLen, ns.shards, shard, ns.pageBytes, BlockClass.Local);
      index.assign(slot, shard, pages[j]!);
      index.pin(slot);
      slots[j] = slot;
      outcomes[i] = SAVE_STORED;
      desc.block(inst.segmentOffsets, blockIds[i]! * inst.strideBytes, inst.segmentBytes, pages[j]!, true);
    }
    for (let j = stored; j < needCount; j++) outcomes[need[j]!] = SAVE_NO_SPACE;
    if (existing) for (const slot of existing) index.unpin(slot);
    this.counters.presentBlocks += count - needCount;
    this.counters.noSpaceBlocks += needCount - stored;
    if (needCount > 0 && stored === 0) {
      throw new KvError('POOL_EXHAUSTED', `pool exhausted: ${needCount} pages of ${ns.pageBytes} bytes needed and every resident block is pinned`);
    }
    if (stored === 0) return { outcomes, stored: 0, sealed: 0, bytes: 0 };
    const { src, dst, len } = desc.arrays();
    try {
      await this.opts.data.copier.copy(inst.region.memory, this.opts.data.pool.memory, src, dst, len);
    } catch (err) {
      for (let j = 0; j < stored; j++) {
        const page = index.unassign(slots[j]!, shard);
        index.unpin(slots[j]!);
        this.opts.data.pool.free(page, ns.pageBytes);
      }
      throw err;
    }
    let sealed = 0;
    const events = this.opts.events;
    for (let j = 0; j < stored; j++) {
      const slot = slots[j]!;
      if (index.land(slot, shard)) {
        sealed++;
        if (events) {
          const off = need[j]! * hashLen;
          events.sealed(ns.name, packed.toString('latin1', off, off + hashLen));
        }
      }
      index.unpin(slot);
    }
    const bytes = stored * ns.pageBytes;
    this.counters.savedBlocks += stored;
    this.counters.savedBytes += bytes;
    this.counters.sealedBlocks += sealed;
    return { outcomes, stored, sealed, bytes };
  }

  /**
   * The prefix hit and its lease. When the rest may be fetched (SSD or peers) and a request id is given, the first
   * call starts the fetch and answers LOADING; a later call with the same request id answers READY once it finished.
   * With `waitMs` > 0 (capped at MAX_QUERY_WAIT_MS) a call that would answer LOADING waits that long for the fetch
   * instead, then answers READY, or LOADING if it is still running. A lease is created only for a READY answer.
   */
  async query(instanceId: string, requestId: string, packed: Buffer, hashLen: number, localOnly: boolean, waitMs = 0): Promise<QueryResult> {
    this.instance(instanceId);
    if (requestId) checkId(requestId, 'request_id');
    const count = packed.length / hashLen;
    this.counters.queries++;
    this.counters.queryHashes += count;
    const first = this.answer(instanceId, requestId, packed, hashLen, count, localOnly);
    if (first !== LOADING || !(waitMs > 0)) return first;
    const p = this.pending.get(this.fetchKey(this.instance(instanceId), requestId));
    if (p && !p.done) await this.waitFor(p, instanceId, Math.min(waitMs, MAX_QUERY_WAIT_MS));
    return this.answer(instanceId, requestId, packed, hashLen, count, localOnly); // throws if the instance went away
  }

  private fetchKey(inst: Instance, requestId: string): string {
    return `${inst.engineId}\0${requestId}`;
  }

  /** One look at the query: READY with a lease, or LOADING (a fetch started or still running). */
  private answer(instanceId: string, requestId: string, packed: Buffer, hashLen: number, count: number, localOnly: boolean): QueryResult {
    const inst = this.instance(instanceId);
    const { ns } = inst;
    const slots = new Int32Array(count);
    let hits = this.index.prefix(ns.id, packed, hashLen, count, slots);
    const breakdown = { local: hits, ssd: 0, remote: 0 };
    const fetcher = this.opts.fetcher;
    const key = fetcher && !localOnly && requestId ? this.fetchKey(inst, requestId) : '';
    let p = key ? this.pending.get(key) : undefined;
    if (fetcher && key && (p || hits < count)) {
      if (!p) {
        const started: PendingFetch = { done: false, local: hits, result: { ssd: 0, remote: 0 }, expiresAtMs: this.now() + this.leases.ttlMs, waiters: new Set() };
        this.pending.set(key, started);
        const finish = (): void => {
          started.done = true;
          for (const wake of [...started.waiters]) wake();
        };
        fetcher.fetch({ ns, packed: Buffer.from(packed), hashLen, from: hits, count }).then(
          (r) => {
            started.result = r;
            finish();
          },
          (err: unknown) => {
            this.opts.logger.warn({ err, namespace: ns.name }, 'fetch failed; answering the local hit');
            finish();
          },
        );
        p = started;
      }
      if (!p.done) return LOADING;
      this.pending.delete(key);
      const extra = Math.max(0, hits - p.local);
      breakdown.local = Math.min(hits, p.local);
      breakdown.ssd = Math.min(extra, p.result.ssd);
      breakdown.remote = extra - breakdown.ssd;
    }
    this.counters.queryHits += hits;
    if (hits === 0) return { state: 'ready', hits: 0, leaseId: '', leaseExpiresAtMs: 0, breakdown };
    const lease = this.leases.create(inst.engineId, ns.id, slots.slice(0, hits), ns.tpSize);
    hits = lease.slots.length;
    return { state: 'ready', hits, leaseId: lease.id, leaseExpiresAtMs: lease.expiresAtMs, breakdown };
  }

  /** Resolves when the fetch finishes, the instance is unregistered, or after `ms`, whichever comes first. */
  private waitFor(p: PendingFetch, instanceId: string, ms: number): Promise<void> {
    let mine = this.waiting.get(instanceId);
    if (!mine) this.waiting.set(instanceId, (mine = new Set()));
    const set = mine;
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        p.waiters.delete(wake);
        set.delete(wake);
        if (set.size === 0 && this.waiting.get(instanceId) === set) this.waiting.delete(instanceId);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      p.waiters.add(wake);
      set.add(wake);
    });
  }

  async load(instanceId: string, leaseId: string, blockIds: Uint32Array): Promise<{ loaded: number; bytes: number }> {
    const inst = this.instance(instanceId);
    if (!leaseId) throw invalid('lease_id', 'expected a lease id from Query');
    const lease = this.leases.get(leaseId, inst.engineId);
    if (lease.ns !== inst.ns.id) throw new KvError('LEASE_FOREIGN', `lease ${leaseId}: belongs to another namespace`);
    if (blockIds.length > lease.slots.length) throw invalid('block_ids', `expected at most ${lease.slots.length} ids (the lease's hit)`, blockIds.length);
    for (let i = 0; i < blockIds.length; i++) {
      if (blockIds[i]! >= inst.numBlocks) throw invalid(`block_ids[${i}]`, `expected 0..${inst.numBlocks - 1}`, blockIds[i]);
    }
    const n = blockIds.length;
    const slots = lease.slots.subarray(0, n);
    this.index.pinMany(slots, n); // the load's own pin: the lease may end when this rank consumes it
    try {
      this.leases.consume(leaseId, inst.engineId, inst.rank);
    } catch (err) {
      this.index.unpinMany(slots, n);
      throw err;
    }
    this.counters.loadCalls++;
    const { ns } = inst;
    const shard = ns.replicated ? 0 : inst.rank;
    const desc = new DescriptorBatch(n * inst.segmentOffsets.length);
    for (let i = 0; i < n; i++) desc.block(inst.segmentOffsets, blockIds[i]! * inst.strideBytes, inst.segmentBytes, this.index.page(slots[i]!, shard), false);
    try {
      if (n > 0) {
        const { src, dst, len } = desc.arrays();
        await this.opts.data.copier.copy(this.opts.data.pool.memory, inst.region.memory, src, dst, len);
      }
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
    this.leases.release(leaseId, inst.engineId);
  }

  /** Expires leases and abandoned fetch answers; run every second or so. */
  sweep(): number {
    const now = this.now();
    for (const [key, p] of this.pending) if (p.expiresAtMs <= now) this.pending.delete(key);
    return this.leases.sweep();
  }

  close(): void {
    for (const id of [...this.instances.keys()]) this.unregister(id);
    this.leases.clear();
  }
}

/**
 * Which hashes of one call repeat an earlier hash of the same call, straight from the packed bytes: a small
 * open-addressing table of call positions keyed by each hash's 32-bit digest, reused across calls.
 */
class CallKeys {
  private table = new Int32Array(256); // per slot: call position + 1 (0: empty)
  private digests = new Int32Array(128);
  private mask = 0;
  private packed: Buffer = Buffer.alloc(0);
  private hashLen = 0;

  reset(packed: Buffer, hashLen: number, count: number): this {
    let size = 16;
    while (size < count * 2) size *= 2;
    if (this.table.length < size) this.table = new Int32Array(size);
    else this.table.fill(0, 0, size);
    if (this.digests.length < count) this.digests = new Int32Array(size);
    this.mask = size - 1;
    this.packed = packed;
    this.hashLen = hashLen;
    return this;
  }

  /** True when hash `i` is the first of its value in the call (positions must be asked in increasing order). */
  first(i: number): boolean {
    const { table, mask, packed, hashLen } = this;
    const off = i * hashLen;
    const h = hashKey(0, packed, off, hashLen);
    this.digests[i] = h;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = table[s]!;
      if (v === 0) {
        table[s] = i + 1;
        return true;
      }
      const j = v - 1;
      if (this.digests[j] === h && packed.compare(packed, j * hashLen, j * hashLen + hashLen, off, off + hashLen) === 0) return false;
    }
  }
}
