// Metaserver reporter: tells the metaserver which blocks this node holds, and in which tier (DRAM, SSD or both).
// Inserts, tier moves and removes are batched and netted per namespace (an insert and a remove of the same hash
// before a flush send nothing; a block's latest tier is the one sent, as an insert with that tier); one task runs at
// a time on a bounded p-queue. Heartbeats carry node stats; an answer with a new epoch (or `registered`) makes
// the node re-advertise every resident block, in batches paced to `readvertiseBlocksPerSec` so that a large
// cluster does not stampede a freshly elected leader. While the metaserver is down, local serving goes on; an insert
// that could not be sent is counted as dropped and healed by the next re-advertise, a remove (which no re-advertise
// sends: it inserts only what is resident) goes back to pending and out again once the metaserver answers.
// HA: the client follows the leader named in etcd by itself; when it reports a leader change the reporter
// heartbeats at once (after a small random delay that spreads a cluster's nodes), so a new leader's epoch is seen
// within milliseconds rather than a heartbeat period later.
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { TIER_DRAM, type BlockTier, type PackedHashes } from '@kvfabric/common';
import type { Logger } from '@kvfabric/common/observability';
import {
  INSERT,
  MOVE,
  PendingBlockUpdates,
  REMOVE,
  type BlockUpdate,
  type PendingCounts,
} from './pending-block-updates.js';

export interface ReporterClient {
  heartbeat(input: {
    nodeId: string;
    addr: string;
    transports?: number[];
    stats?: {
      poolCapacityBytes: bigint;
      poolUsedBytes: bigint;
      blocks: bigint;
      ssdCapacityBytes: bigint;
      ssdUsedBytes: bigint;
    };
  }): Promise<{ epoch: bigint; registered: boolean }>;
  insertBlocks(
    nodeId: string,
    namespace: string,
    hashes: PackedHashes,
    opts: { tier: BlockTier },
  ): Promise<{ epoch: bigint }>;
  removeBlocks(nodeId: string, namespace: string, hashes: PackedHashes): Promise<{ epoch: bigint }>;
  unregister(nodeId: string): Promise<unknown>;
  /** HA clients (etcd://): calls `listener` when the leader changes; returns an unsubscribe function. */
  onLeaderChange?(listener: (leader: { epoch: bigint; addr: string } | undefined) => void): () => void;
}

/** Default pace of a re-advertise (blocks per second per node). */
export const DEFAULT_READVERTISE_BLOCKS_PER_SEC = 200_000;

/**
 * Least time between two timed sends of pending updates (ms). Each InsertBlocks costs the node's event loop and the
 * metaserver about a millisecond; a pull sealing a chunk every few milliseconds sent one every 20 ms before.
 */
export const FLUSH_GAP_MS = 100;

export interface ReporterOptions {
  client: ReporterClient;
  nodeId: string;
  addr: string;
  transports: number[];
  heartbeatMs: number;
  stats: () => {
    poolCapacityBytes: number;
    poolUsedBytes: number;
    blocks: number;
    ssdCapacityBytes?: number;
    ssdUsedBytes?: number;
  };
  /** Every resident block: packed hash lists, each of one namespace and tier (absent: DRAM); a namespace may have several. */
  resident: () => Iterable<{ namespace: string; hashes: PackedHashes & { tier?: BlockTier } }>;
  logger: Logger;
  /** Pending updates are sent this long after the first of them (ms; default 20)... */
  flushMs?: number;
  /**
   * ...and at least this long after the previous send started (ms; default FLUSH_GAP_MS): a pull or a save burst
   * that seals blocks all the time sends one InsertBlocks per gap, not one per flushMs.
   */
  flushGapMs?: number;
  batchSize?: number;
  /** Netted operations held at most; beyond, new ones are dropped (and counted). */
  maxPending?: number;
  /** Pace of a re-advertise (0: unpaced). Default DEFAULT_READVERTISE_BLOCKS_PER_SEC. */
  readvertiseBlocksPerSec?: number;
  /** Upper bound of the random delay before the heartbeat that follows a leader change (ms). Default heartbeatMs / 4, at most 250. */
  leaderChangeJitterMs?: number;
}

export class Reporter {
  readonly counters = {
    inserted: 0,
    removed: 0,
    netted: 0,
    dropped: 0,
    requeued: 0,
    readvertised: 0,
    readvertises: 0,
    heartbeats: 0,
    heartbeatFailures: 0,
    epochChanges: 0,
    leaderChanges: 0,
  };
  epoch = 0n;
  connected = false;
  private readonly pending: PendingBlockUpdates;
  private readonly queue = new PQueue({ concurrency: 1 });
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readvertiseQueued = false;
  private dirty = false;
  private stopped = false;
  private readonly flushMs: number;
  private readonly flushGapMs: number;
  /** When the last timed send started (performance.now()). */
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  private readonly batchSize: number;
  private readonly readvertiseRate: number;
  private readonly jitterMs: number;
  /** Pacing of re-advertise batches: the earliest time (performance.now()) the next batch may go. */
  private nextBatchAt = 0;
  private kickTimer: NodeJS.Timeout | undefined;
  private heartbeating = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: ReporterOptions) {
    this.flushMs = opts.flushMs ?? 20;
    this.flushGapMs = opts.flushGapMs ?? FLUSH_GAP_MS;
    this.batchSize = opts.batchSize ?? 4096;
    this.pending = new PendingBlockUpdates(opts.maxPending ?? 1_000_000);
    this.readvertiseRate = opts.readvertiseBlocksPerSec ?? DEFAULT_READVERTISE_BLOCKS_PER_SEC;
    this.jitterMs = opts.leaderChangeJitterMs ?? Math.min(250, opts.heartbeatMs / 4);
    if (!(this.readvertiseRate >= 0))
      throw new RangeError(`readvertise-blocks-per-sec: expected >= 0, got ${this.readvertiseRate}`);
  }

  start(): void {
    void this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs);
    this.heartbeatTimer.unref();
    this.unsubscribe = this.opts.client.onLeaderChange?.((leader) => {
      if (!leader) return; // none elected: calls wait for one; the next change brings it
      this.counters.leaderChanges++;
      this.opts.logger.info({ leader: leader.addr, epoch: leader.epoch.toString() }, 'metaserver leader changed');
      this.kick();
    });
  }

  /** Heartbeats soon (after a random delay up to the jitter), e.g. because a new leader was elected. */
  kick(): void {
    if (this.stopped || this.kickTimer) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = undefined;
      void this.heartbeat();
    }, Math.random() * this.jitterMs);
    this.kickTimer.unref();
  }

  /** A block became resident, held in `tier`; `hash` is copied. */
  inserted(ns: string, hash: Uint8Array, tier: BlockTier = TIER_DRAM): void {
    this.note(ns, hash, INSERT, tier);
  }

  /** Blocks became resident, held in `tier`: their hashes back to back in `packed`, `hashLen` bytes each (copied). */
  insertedMany(ns: string, packed: Uint8Array, hashLen: number, tier: BlockTier = TIER_DRAM): void {
    if (this.stopped || hashLen === 0 || packed.length === 0) return;
    this.noted(this.pending.noteMany(ns, packed, hashLen, INSERT, tier));
  }

  /** A resident block is held in `tier` now (it went to or left DRAM or SSD); `hash` is copied. */
  moved(ns: string, hash: Uint8Array, tier: BlockTier): void {
    this.note(ns, hash, MOVE, tier);
  }

  /** Resident blocks are held in `tier` now: their hashes back to back in `packed`, `hashLen` bytes each (copied). */
  movedMany(ns: string, packed: Uint8Array, hashLen: number, tier: BlockTier): void {
    if (this.stopped || hashLen === 0 || packed.length === 0) return;
    this.noted(this.pending.noteMany(ns, packed, hashLen, MOVE, tier));
  }

  /** Resident blocks went away: their hashes back to back in `packed`, `hashLen` bytes each (copied). */
  removedMany(ns: string, packed: Uint8Array, hashLen: number): void {
    if (this.stopped || hashLen === 0 || packed.length === 0) return;
    this.noted(this.pending.noteMany(ns, packed, hashLen, REMOVE));
  }

  /** A resident block went away; `hash` is copied. */
  removed(ns: string, hash: Uint8Array): void {
    this.note(ns, hash, REMOVE);
  }

  get pendingOps(): number {
    return this.pending.size;
  }

  /** Sends what is pending now and waits for the queue to drain. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.size > 0) void this.queue.add(() => this.sendPending());
    await this.queue.onIdle();
  }

  /** Final flush, then unregister from the metaserver (graceful shutdown). The client stays open: its owner closes it. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    clearTimeout(this.kickTimer);
    this.unsubscribe?.();
    this.stopped = true;
    this.queue.clear();
    try {
      await this.opts.client.unregister(this.opts.nodeId);
      this.opts.logger.info('unregistered from the metaserver');
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'metaserver unregister failed');
    }
  }

  private note(ns: string, hash: Uint8Array, update: BlockUpdate, tier: BlockTier = TIER_DRAM): void {
    if (this.stopped) return;
    this.noted(this.pending.noteMany(ns, hash, hash.length, update, tier));
  }

  /** Counts what a note did; anything still to send is flushed soon. */
  private noted(c: PendingCounts): void {
    // insert + remove before a flush: the metaserver's view is right as it is
    this.counters.netted += c.netted;
    if (c.dropped > 0) {
      this.counters.dropped += c.dropped;
      this.dirty = true;
    }
    if (c.added + c.repeated + c.replaced > 0) this.scheduleFlush(this.flushMs);
  }

  private scheduleFlush(ms: number): void {
    if (this.flushTimer || this.stopped) return;
    const wait = Math.max(ms, this.lastFlushAt + this.flushGapMs - performance.now());
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.lastFlushAt = performance.now();
      void this.queue.add(() => this.sendPending());
    }, wait);
  }

  private async sendPending(): Promise<void> {
    for (const { namespace, inserts, removes } of this.pending.take()) {
      await this.send(namespace, inserts, 'insert');
      await this.send(namespace, removes, 'remove');
    }
  }

  /** Sends `lists` in batches; with `readvertise` paced, and stopped at the first failure. Returns how many hashes were sent. */
  private async send(
    ns: string,
    lists: (PackedHashes & { tier?: BlockTier })[],
    kind: 'insert' | 'remove',
    readvertise?: { epoch: bigint },
  ): Promise<number> {
    let sent = 0;
    for (const list of lists) sent += await this.sendList(ns, list, kind, readvertise);
    return sent;
  }

  private async sendList(
    ns: string,
    list: PackedHashes & { tier?: BlockTier },
    kind: 'insert' | 'remove',
    readvertise?: { epoch: bigint },
  ): Promise<number> {
    const { packed, hashLen } = list;
    const count = hashLen > 0 ? packed.length / hashLen : 0;
    let sent = 0;
    for (let i = 0; i < count; i += this.batchSize) {
      const n = Math.min(this.batchSize, count - i);
      const hashes = { packed: packed.subarray(i * hashLen, (i + n) * hashLen), hashLen };
      if (this.stopped || (readvertise && this.epoch !== readvertise.epoch)) {
        // Stopping, or yet another epoch: that epoch's own re-advertise (already queued) sends everything.
        this.dirty = true;
        break;
      }
      if (!this.connected && this.counters.heartbeats > 0) {
        // Known down: do not wait for a deadline per batch; the re-advertise after reconnecting heals inserts.
        this.unsent(ns, hashes, kind, n);
        continue;
      }
      if (readvertise) await this.pace(n);
      try {
        const res =
          kind === 'insert'
            ? await this.opts.client.insertBlocks(this.opts.nodeId, ns, hashes, { tier: list.tier ?? TIER_DRAM })
            : await this.opts.client.removeBlocks(this.opts.nodeId, ns, hashes);
        if (kind === 'insert') this.counters.inserted += n;
        else this.counters.removed += n;
        sent += n;
        this.seeEpoch(res.epoch, false);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        // Not served (leader gone, no leader, timeout): later batches would wait out their deadlines too.
        const unserved = code === 'METASERVER_UNAVAILABLE' || code === 'NOT_LEADER' || code === 'TRANSPORT_TIMEOUT';
        if (unserved || code === undefined) this.unsent(ns, hashes, kind, n);
        else this.counters.dropped += n;
        // Refused by the metaserver's quota or memory budget: sending it again at the next heartbeat would only be
        // refused again (and re-send everything resident); the next new epoch re-advertises it.
        if (code !== 'QUOTA_EXCEEDED') this.dirty = true;
        if (unserved) this.connected = false;
        // A new leader that has not seen this node yet: register now rather than at the next period.
        if (code === 'SESSION_UNKNOWN') this.kick();
        this.opts.logger.warn(
          { err: (err as Error).message, namespace: ns, count: n, kind, tier: list.tier },
          'metaserver update dropped',
        );
      }
    }
    return sent;
  }

  /**
   * Updates the metaserver may not have: inserts are dropped (the re-advertise that `dirty` makes due sends every
   * resident block); removes go back to pending, sent again with the next flush once the metaserver answers. A block
   * saved again meanwhile nets its remove out, and the re-advertise inserts it whether or not the remove landed.
   */
  private unsent(ns: string, hashes: PackedHashes, kind: 'insert' | 'remove', n: number): void {
    this.dirty = true;
    if (kind === 'insert') {
      this.counters.dropped += n;
      return;
    }
    const c = this.pending.noteMany(ns, hashes.packed, hashes.hashLen, REMOVE);
    this.counters.requeued += c.added + c.repeated + c.replaced;
    this.counters.dropped += c.dropped;
  }

  /** Waits until `n` more re-advertised blocks fit the pace (the first batch of a pass goes at once). */
  private async pace(n: number): Promise<void> {
    if (this.readvertiseRate <= 0) return;
    const now = performance.now();
    // libuv timers count whole milliseconds and may fire up to 1 ms early: sleep until the pace really allows it.
    for (let wait = this.nextBatchAt - now; wait > 0; wait = this.nextBatchAt - performance.now())
      await sleep(Math.ceil(wait));
    this.nextBatchAt = Math.max(now, this.nextBatchAt) + (n / this.readvertiseRate) * 1000;
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped || this.heartbeating) return;
    this.heartbeating = true;
    const s = this.opts.stats();
    try {
      const res = await this.opts.client.heartbeat({
        nodeId: this.opts.nodeId,
        addr: this.opts.addr,
        transports: this.opts.transports,
        stats: {
          poolCapacityBytes: BigInt(s.poolCapacityBytes),
          poolUsedBytes: BigInt(s.poolUsedBytes),
          blocks: BigInt(s.blocks),
          ssdCapacityBytes: BigInt(s.ssdCapacityBytes ?? 0),
          ssdUsedBytes: BigInt(s.ssdUsedBytes ?? 0),
        },
      });
      this.counters.heartbeats++;
      if (!this.connected) this.opts.logger.info({ epoch: res.epoch.toString() }, 'metaserver connected');
      this.connected = true;
      if (this.pending.size > 0) this.scheduleFlush(this.flushMs); // removes that waited for the metaserver
      this.seeEpoch(res.epoch, res.registered);
    } catch (err) {
      this.counters.heartbeatFailures++;
      if (this.connected || this.counters.heartbeatFailures === 1)
        this.opts.logger.warn({ err: (err as Error).message }, 'metaserver heartbeat failed; serving local hits only');
      this.connected = false;
    } finally {
      this.heartbeating = false;
    }
  }

  private seeEpoch(epoch: bigint, registered: boolean): void {
    const changed = epoch !== this.epoch;
    if (changed && this.epoch !== 0n) this.counters.epochChanges++;
    this.epoch = epoch;
    if (registered || changed || this.dirty) this.readvertise();
  }

  /** Queues one pass over every resident block, batched per namespace. */
  private readvertise(): void {
    if (this.readvertiseQueued || this.stopped) return;
    this.readvertiseQueued = true;
    this.dirty = false;
    void this.queue.add(async () => {
      this.readvertiseQueued = false;
      const pass = { epoch: this.epoch };
      const started = performance.now();
      // What is pending goes out with the pass, taken in the same turn as the list of resident blocks: the pass
      // tells the metaserver of every block resident now, so an insert still pending here must not net out against
      // the block's remove later (the metaserver would keep a block the node no longer holds). What is noted from
      // here on happened after the list was taken.
      const resident = [...this.opts.resident()];
      const pending = this.pending.take();
      for (const { namespace, inserts, removes } of pending) {
        await this.send(namespace, inserts, 'insert');
        await this.send(namespace, removes, 'remove');
      }
      let n = 0;
      for (const { hashes } of resident) n += hashes.hashLen > 0 ? hashes.packed.length / hashes.hashLen : 0;
      this.nextBatchAt = 0;
      let sent = 0;
      for (const { namespace, hashes } of resident) sent += await this.send(namespace, [hashes], 'insert', pass);
      this.counters.readvertised += sent;
      this.counters.readvertises++;
      if (n > 0) {
        const fields = {
          blocks: n,
          sent,
          epoch: pass.epoch.toString(),
          ms: Math.round(performance.now() - started),
          blocksPerSec: this.readvertiseRate || null,
        };
        if (sent === n) this.opts.logger.info(fields, 're-advertised resident blocks');
        else this.opts.logger.warn(fields, 're-advertise cut short; the next heartbeat retries');
      }
    });
  }
}
