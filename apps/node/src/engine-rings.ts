// The engines' command rings: shared memory on which an engine puts Save, Query, Load and Release commands that a
// native node thread runs (native/src/engine_ring.h), with no RPC and no JavaScript per call. This attaches a ring
// to an instance (AttachRing), closes it with the instance, and applies what rings report in batches: counters,
// evictions, sealed hashes for the metaserver, problems for the log. The same planning and lease functions serve
// the gRPC path, so both answer alike.
import { KvError, toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import { Region, attachEngineRing, type EngineRing, type LeaseTable, type RingEvents } from '@kvfabric/native';
import type { BlockIndex } from './block-index.js';
import type { DataPath, HostRegion, RegionSource } from './data-path.js';
import type { Evictor } from './eviction.js';
import type { HandedRegions } from './handed-regions.js';
import type { Instance } from './instances.js';

/** The counters rings move (EngineCore.counters). */
export interface RingCounters {
  saveCalls: number;
  savedBlocks: number;
  savedBytes: number;
  sealedBlocks: number;
  presentBlocks: number;
  noSpaceBlocks: number;
  loadCalls: number;
  loadedBlocks: number;
  loadedBytes: number;
  queries: number;
  queryHashes: number;
  queryHits: number;
  regionFailures: number;
}

export interface EngineRingsDeps {
  data: DataPath;
  index: BlockIndex;
  leases: LeaseTable;
  evictor: Evictor;
  regions: HandedRegions;
  counters: RingCounters;
  logger: Logger;
  /** Queries whose missing suffix may be fetched (a fetcher exists) go over gRPC: rings answer them RETRY. */
  fetchable: boolean;
  onSealed?: (namespace: string, hashes: Buffer, hashLen: number) => void;
}

interface Attached {
  ring: EngineRing;
  memory: HostRegion;
}

export class EngineRings {
  private readonly attached = new Map<string, Attached>();
  /** Ring commands the node answered RETRY (queries sent over gRPC instead). */
  retries = 0;

  constructor(private readonly deps: EngineRingsDeps) {}

  get size(): number {
    return this.attached.size;
  }

  /** Maps the handed-over ring and starts its thread for `inst` (`owner`: its engine's number); replaces any. */
  attach(inst: Instance, owner: number, source: RegionSource): { entries: number; slotBytes: number } {
    const { data } = this.deps;
    const region = inst.region.memory;
    if (!(region instanceof Region))
      throw new KvError(
        'REGION_INVALID',
        `instance_id: ${JSON.stringify(inst.id)} has GPU memory (region.cuda_ipc): command rings carry host regions only; save and load over gRPC (DataPlane)`,
      );
    const file = this.deps.regions.take(source.token); // one use: even a refused ring spends the token
    let memory: HostRegion | undefined;
    let ring: EngineRing;
    try {
      if (file.eventFd === undefined)
        throw new KvError(
          'INVALID_ARGUMENT',
          `ring.token: names a region, not a command ring (hand a ring over as "kvfabric-ring/1" with its eventfd)`,
        );
      memory = data.openRegion(file, source.sizeBytes);
      ring = attachEngineRing(
        {
          ring: memory.memory,
          eventFd: file.eventFd,
          engine: data.engine,
          index: this.deps.index,
          pool: data.pool,
          region,
          layout: inst.layout,
          leases: this.deps.leases,
          owner,
          rank: inst.rank,
          ranks: inst.ns.tpSize,
          fetchable: this.deps.fetchable,
        },
        (events) => this.apply(inst, events),
      );
    } catch (err) {
      memory?.close();
      throw toKvError(err);
    } finally {
      this.deps.regions.release(file); // the mapping and the native ring keep what they need
    }
    this.detach(inst.id);
    this.attached.set(inst.id, { ring, memory });
    this.deps.logger.info({ instance: inst.id, ring: memory.label }, 'command ring attached');
    return ringGeometry(memory);
  }

  /** Stops an instance's ring (after its commands in flight completed) and unmaps it. */
  detach(instanceId: string, inst?: Instance): void {
    const a = this.attached.get(instanceId);
    if (!a) return;
    this.attached.delete(instanceId);
    const last = a.ring.close();
    if (last && inst) this.apply(inst, last);
    a.memory.close();
  }

  close(): void {
    for (const id of [...this.attached.keys()]) this.detach(id);
  }

  private apply(inst: Instance, e: RingEvents): void {
    const { counters: c, evictor } = this.deps;
    const n = e.counts;
    const pageBytes = inst.ns.pageBytes;
    c.saveCalls += n.saveCalls;
    c.savedBlocks += n.savedBlocks;
    c.savedBytes += n.savedBlocks * pageBytes;
    c.sealedBlocks += n.sealedBlocks;
    c.presentBlocks += n.presentBlocks;
    c.noSpaceBlocks += n.noSpaceBlocks;
    c.loadCalls += n.loadCalls;
    c.loadedBlocks += n.loadedBlocks;
    c.loadedBytes += n.loadedBlocks * pageBytes;
    c.queries += n.queries;
    c.queryHashes += n.queryHashes;
    c.queryHits += n.queryHits;
    c.regionFailures += n.regionFailures;
    this.retries += n.retries;
    // Seals before evictions: the ring lumps up to 50 ms of both, so a block sealed and evicted in that window
    // (gone) cannot be told from one evicted and sealed again (held). Noted in this order the reporter nets the pair
    // to nothing, leaving the metaserver's view as it was, rather than advertising a block the node may not hold.
    for (const g of e.sealed) this.deps.onSealed?.(inst.ns.name, g.hashes, g.hashLen);
    evictor.report(e.evicted, false);
    evictor.counters.exhausted += e.exhausted;
    for (const p of e.problems) {
      const at = { instance: inst.id, engine: inst.engineId };
      if (p.op === 'ring') this.deps.logger.warn(at, p.message);
      else this.deps.logger.warn({ ...at, op: p.op, err: p.message }, `${p.op} failed: region`);
    }
    if (e.broken && this.attached.has(inst.id)) queueMicrotask(() => this.detach(inst.id, inst));
  }
}

/** The ring's entries and slot size, as its header (checked natively at attach) says. */
function ringGeometry(memory: HostRegion): { entries: number; slotBytes: number } {
  const head = memory.memory.read(0, 16);
  return { entries: head.readUInt32LE(8), slotBytes: head.readUInt32LE(12) };
}
