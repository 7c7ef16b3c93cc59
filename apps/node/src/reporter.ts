// Metaserver reporter: tells the metaserver which blocks this node holds. Inserts and removes are batched and
// netted per namespace (an insert and a remove of the same hash before a flush send nothing); one task runs at
// a time on a bounded p-queue. Heartbeats carry node stats; an answer with a new epoch (or `registered`) makes
// the node re-advertise every resident block. While the metaserver is down, local serving goes on and what
// could not be sent is counted as dropped (and healed by the next re-advertise).
import PQueue from 'p-queue';
import type { Logger } from '@kvfabric/common';

export interface ReporterClient {
  heartbeat(input: { nodeId: string; addr: string; transports?: number[]; stats?: { poolCapacityBytes: bigint; poolUsedBytes: bigint; blocks: bigint } }): Promise<{ epoch: bigint; registered: boolean }>;
  insertBlocks(nodeId: string, namespace: string, hashes: { packed: Buffer; hashLen: number }): Promise<{ epoch: bigint }>;
  removeBlocks(nodeId: string, namespace: string, hashes: { packed: Buffer; hashLen: number }): Promise<{ epoch: bigint }>;
  unregister(nodeId: string): Promise<unknown>;
  close(): void;
}

export interface ReporterOptions {
  client: ReporterClient;
  nodeId: string;
  addr: string;
  transports: number[];
  heartbeatMs: number;
  stats: () => { poolCapacityBytes: number; poolUsedBytes: number; blocks: number };
  /** Every resident (sealed) block, grouped by nothing in particular. */
  resident: () => Iterable<{ ns: string; key: string }>;
  logger: Logger;
  flushMs?: number;
  batchSize?: number;
  /** Netted operations held at most; beyond, new ones are dropped (and counted). */
  maxPending?: number;
}

const INSERT = 1;
const REMOVE = -1;

export class Reporter {
  readonly counters = { inserted: 0, removed: 0, netted: 0, dropped: 0, readvertised: 0, heartbeats: 0, heartbeatFailures: 0, epochChanges: 0 };
  epoch = 0n;
  connected = false;
  private readonly pending = new Map<string, Map<string, number>>();
  private pendingCount = 0;
  private readonly queue = new PQueue({ concurrency: 1 });
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readvertiseQueued = false;
  private dirty = false;
  private stopped = false;
  private readonly flushMs: number;
  private readonly batchSize: number;
  private readonly maxPending: number;

  constructor(private readonly opts: ReporterOptions) {
    this.flushMs = opts.flushMs ?? 20;
    this.batchSize = opts.batchSize ?? 4096;
    this.maxPending = opts.maxPending ?? 1_000_000;
  }

  start(): void {
    void this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  inserted(ns: string, key: string): void {
    this.note(ns, key, INSERT);
  }

  removed(ns: string, key: string): void {
    this.note(ns, key, REMOVE);
  }

  get pendingOps(): number {
    return this.pendingCount;
  }

  /** Sends what is pending now and waits for the queue to drain. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pendingCount > 0) void this.queue.add(() => this.sendPending());
    await this.queue.onIdle();
  }

  /** Final flush, then unregister from the metaserver (graceful shutdown). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    this.stopped = true;
    this.queue.clear();
    try {
      await this.opts.client.unregister(this.opts.nodeId);
      this.opts.logger.info('unregistered from the metaserver');
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'metaserver unregister failed');
    }
    this.opts.client.close();
  }

  private note(ns: string, key: string, op: number): void {
    if (this.stopped) return;
    let map = this.pending.get(ns);
    if (!map) {
      map = new Map();
      this.pending.set(ns, map);
    }
    const prev = map.get(key);
    if (prev !== undefined && prev !== op) {
      map.delete(key); // insert + remove (or remove + insert) before a flush: the metaserver's view is right
      this.pendingCount--;
      this.counters.netted++;
      return;
    }
    if (prev === undefined) {
      if (this.pendingCount >= this.maxPending) {
        this.counters.dropped++;
        this.dirty = true;
        return;
      }
      this.pendingCount++;
    }
    map.set(key, op);
    this.scheduleFlush(this.flushMs);
  }

  private scheduleFlush(ms: number): void {
    if (this.flushTimer || this.stopped) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.queue.add(() => this.sendPending());
    }, ms);
  }

  private async sendPending(): Promise<void> {
    const batches = [...this.pending];
    this.pending.clear();
    this.pendingCount = 0;
    for (const [ns, ops] of batches) {
      const ins: string[] = [];
      const rem: string[] = [];
      for (const [key, op] of ops) (op === INSERT ? ins : rem).push(key);
      await this.send(ns, ins, 'insert');
      await this.send(ns, rem, 'remove');
    }
  }

  private async send(ns: string, all: string[], kind: 'insert' | 'remove'): Promise<void> {
    const byLen = new Map<number, string[]>();
    for (const k of all) {
      let list = byLen.get(k.length);
      if (!list) byLen.set(k.length, (list = []));
      list.push(k);
    }
    for (const keys of byLen.values()) await this.sendSameLength(ns, keys, kind);
  }

  private async sendSameLength(ns: string, keys: string[], kind: 'insert' | 'remove'): Promise<void> {
    for (let i = 0; i < keys.length; i += this.batchSize) {
      const chunk = keys.slice(i, i + this.batchSize);
      const hashes = packKeys(chunk);
      if (!this.connected && this.counters.heartbeats > 0) {
        // Known down: do not wait for a deadline per batch; the re-advertise after reconnecting heals inserts.
        this.counters.dropped += chunk.length;
        this.dirty = true;
        continue;
      }
      try {
        const res = kind === 'insert'
          ? await this.opts.client.insertBlocks(this.opts.nodeId, ns, hashes)
          : await this.opts.client.removeBlocks(this.opts.nodeId, ns, hashes);
        if (kind === 'insert') this.counters.inserted += chunk.length;
        else this.counters.removed += chunk.length;
        this.seeEpoch(res.epoch, false);
      } catch (err) {
        this.counters.dropped += chunk.length;
        this.dirty = true;
        this.opts.logger.warn({ err: (err as Error).message, namespace: ns, count: chunk.length, kind }, 'metaserver update dropped');
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const s = this.opts.stats();
    try {
      const res = await this.opts.client.heartbeat({
        nodeId: this.opts.nodeId,
        addr: this.opts.addr,
        transports: this.opts.transports,
        stats: { poolCapacityBytes: BigInt(s.poolCapacityBytes), poolUsedBytes: BigInt(s.poolUsedBytes), blocks: BigInt(s.blocks) },
      });
      this.counters.heartbeats++;
      if (!this.connected) this.opts.logger.info({ epoch: res.epoch.toString() }, 'metaserver connected');
      this.connected = true;
      this.seeEpoch(res.epoch, res.registered);
    } catch (err) {
      this.counters.heartbeatFailures++;
      if (this.connected || this.counters.heartbeatFailures === 1) this.opts.logger.warn({ err: (err as Error).message }, 'metaserver heartbeat failed; serving local hits only');
      this.connected = false;
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
      const byNs = new Map<string, string[]>();
      let n = 0;
      for (const { ns, key } of this.opts.resident()) {
        let list = byNs.get(ns);
        if (!list) byNs.set(ns, (list = []));
        list.push(key);
        n++;
      }
      for (const [ns, keys] of byNs) await this.send(ns, keys, 'insert');
      this.counters.readvertised += n;
      if (n > 0) this.opts.logger.info({ blocks: n, epoch: this.epoch.toString() }, 're-advertised resident blocks');
    });
  }
}

function packKeys(keys: string[]): { packed: Buffer; hashLen: number } {
  return { packed: Buffer.from(keys.join(''), 'latin1'), hashLen: keys[0]?.length ?? 0 };
}
