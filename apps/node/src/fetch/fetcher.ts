// The remote Fetcher (DESIGN §2 "Remote pull"): fills the missing suffix of a query from peers. For each run of
// blocks neither local nor claimed by another pull: ask the metaserver which nodes hold how much of it, take the
// longest (ties: least used pool; nodes that failed recently are skipped), PrepareRead there (a grant), allocate
// local pages, `readv` them in chunks straight into the pool, seal each chunk as "pulled" blocks, release the
// grant, advertise. The remainder continues from the next holder. Failures end the fetch with what is sealed:
// no error to the engine, no half block visible (unsealed slots are never hits), no pin left behind.
import { KvError, toKvError, type Logger } from '@kvfabric/common';
import type { Transport } from '@kvfabric/native';
import { BlockClass, type BlockIndex } from '../block-index.js';
import type { PagePool } from '../data-path.js';
import type { Fetcher } from '../engine-core.js';
import type { Evictor } from '../eviction.js';
import type { NamespaceInfo } from '../namespaces.js';
import { unpackOffsets } from '../peer/peer-service.js';
import { BlockFlights } from './block-flights.js';
import type { PrepareReadResponse } from '@kvfabric/proto';

export const PULL_FAILURES = [
  'metaserver_unavailable', 'peer_unreachable', 'handshake_failed', 'short_grant', 'layout_mismatch', 'grant_refused', 'grant_expired',
  'transport_failed', 'transport_timeout', 'pool_exhausted', 'deadline', 'internal',
] as const;
export type PullFailure = (typeof PULL_FAILURES)[number];

export interface Holder {
  nodeId: string;
  addr: string;
  prefixLen: number;
  poolUsedBytes: number;
}

/** Where holders are found: the metaserver's QueryPrefix, excluding this node. */
export interface HolderDirectory {
  /** False while the metaserver is known to be down (no deadline is waited out then). */
  up(): boolean;
  holders(namespace: string, packed: Buffer, hashLen: number, deadlineMs: number): Promise<Holder[]>;
}

/** A connection to one serving peer (PeerLink in production; fakes in unit tests). */
export interface Link {
  ready(deadlineMs: number): Promise<bigint>;
  invalidate(session: bigint): void;
  prepareRead(session: bigint, namespace: string, packed: Buffer, hashLen: number, deadlineMs: number): Promise<PrepareReadResponse>;
  releaseGrant(grantId: bigint, deadlineMs: number): Promise<void>;
}

export interface LinkSource {
  get(peerId: string, addr: string): Link;
}

export interface RemoteFetcherOptions {
  index: BlockIndex;
  evictor: Evictor;
  pool: PagePool;
  /** Only `readv` is used here (the links handshake and drop peers). */
  transport: Pick<Transport, 'readv'>;
  links: LinkSource;
  directory: HolderDirectory;
  onSealed: (namespace: string, key: string) => void;
  logger: Logger;
  /** A fetch ends (with what it sealed) after this long. */
  timeoutMs: number;
  /** Bytes per readv batch; a failed batch loses only its blocks. */
  chunkBytes: number;
  /** Batches in flight per pull. */
  chunksInFlight?: number;
  /** Node-wide pull bandwidth cap in bytes/s (0: none). */
  maxBytesPerSec: number;
  /** A peer that failed is skipped this long. */
  backoffMs: number;
  /** Holders tried per missing run. */
  maxAttempts?: number;
  observeDuration?: (seconds: number) => void;
}

class PullError extends Error {
  constructor(readonly reason: PullFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

function reasonOf(err: unknown, stage: 'handshake' | 'prepare' | 'read'): PullFailure {
  if (err instanceof PullError) return err.reason;
  const { code, message } = toKvError(err);
  if (code === 'GRANT_REFUSED' && /expired/.test(message)) return 'grant_expired';
  if (code === 'TRANSPORT_TIMEOUT') return stage === 'read' ? 'transport_timeout' : 'peer_unreachable';
  if (code === 'TRANSPORT_UNAVAILABLE') return stage === 'handshake' ? 'handshake_failed' : 'peer_unreachable';
  if (code === 'GRANT_REFUSED' || code === 'GRANT_UNKNOWN') return 'grant_refused';
  if (code === 'TRANSPORT_FAILED') return stage === 'handshake' ? 'handshake_failed' : 'transport_failed';
  if (code === 'POOL_EXHAUSTED') return 'pool_exhausted';
  return stage === 'handshake' ? 'handshake_failed' : 'internal';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Req {
  ns: NamespaceInfo;
  packed: Buffer;
  hashLen: number;
  deadline: number;
}

export class RemoteFetcher implements Fetcher {
  readonly flights = new BlockFlights();
  readonly counters = {
    fetches: 0, pulls: 0, blocks: 0, bytes: 0, misses: 0, waitedBlocks: 0, inFlightBlocks: 0,
    failures: Object.fromEntries(PULL_FAILURES.map((r) => [r, 0])) as Record<PullFailure, number>,
  };
  private readonly failedUntil = new Map<string, number>();
  private paceAtMs = 0;

  constructor(private readonly opts: RemoteFetcherOptions) {}

  async fetch(r: { ns: NamespaceInfo; packed: Buffer; hashLen: number; from: number; count: number }): Promise<{ ssd: number; remote: number }> {
    const t0 = performance.now();
    this.counters.fetches++;
    const req: Req = { ns: r.ns, packed: r.packed, hashLen: r.hashLen, deadline: Date.now() + this.opts.timeoutMs };
    const { index } = this.opts;
    const { flights } = this;
    const nsId = r.ns.id;
    let pos = r.from;
    let remote = 0;
    try {
      while (pos < r.count && Date.now() < req.deadline) {
        const key = this.key(req, pos);
        const slot = index.lookup(nsId, key);
        if (slot >= 0 && index.isSealed(slot)) {
          pos++;
          continue;
        }
        const flight = flights.get(nsId, key);
        if (flight) {
          this.counters.waitedBlocks++;
          const sealed = await Promise.race([flight.promise, sleep(Math.max(0, req.deadline - Date.now())).then(() => false)]);
          if (!sealed) break; // its pull failed (or our time is up): end with what we have
          remote++;
          continue;
        }
        if (slot >= 0) break; // a local save of this block is half done: not ours to pull
        let end = pos;
        while (end < r.count && index.lookup(nsId, this.key(req, end)) < 0 && flights.claim(nsId, this.key(req, end))) end++;
        try {
          const got = await this.pullRun(req, pos, end);
          remote += got;
          if (got < end - pos) break;
          pos = end;
        } finally {
          for (let i = pos; i < end; i++) flights.settle(nsId, this.key(req, i), false); // claims not sealed
        }
      }
      if (pos < r.count && Date.now() >= req.deadline) this.fail('deadline', `fetch of ${r.ns.name}: ${this.opts.timeoutMs} ms elapsed`);
    } catch (err) {
      this.opts.logger.warn({ err: toKvError(err).message, namespace: r.ns.name }, 'fetch ended early');
    } finally {
      this.opts.observeDuration?.((performance.now() - t0) / 1000);
    }
    return { ssd: 0, remote };
  }

  /** Fills [from, end) (claimed by us) from holders; returns how many leading blocks got sealed. */
  private async pullRun(req: Req, from: number, end: number): Promise<number> {
    const { directory } = this.opts;
    if (!directory.up()) {
      this.fail('metaserver_unavailable', 'metaserver down: remote discovery paused');
      return 0;
    }
    const tried = new Set<string>();
    let pos = from;
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 4) && pos < end && Date.now() < req.deadline; attempt++) {
      let holders: Holder[];
      try {
        holders = await directory.holders(req.ns.name, this.slice(req, pos, end), req.hashLen, this.left(req, 2000));
      } catch (err) {
        this.fail('metaserver_unavailable', toKvError(err).message);
        break;
      }
      const now = Date.now();
      const usable = holders
        .filter((h) => h.prefixLen > 0 && !tried.has(h.nodeId) && (this.failedUntil.get(h.nodeId) ?? 0) <= now)
        .sort((a, b) => b.prefixLen - a.prefixLen || a.poolUsedBytes - b.poolUsedBytes);
      const h = usable[0];
      if (!h) {
        if (attempt === 0) this.counters.misses++;
        break;
      }
      tried.add(h.nodeId);
      const want = Math.min(end, pos + h.prefixLen);
      let got = 0;
      try {
        got = await this.pullFrom(req, h, pos, want);
      } catch (err) {
        const e = err as Error & { partial?: number; reason?: PullFailure };
        got = e.partial ?? 0;
        // A grant that ran out under our own pacing says nothing about the peer's health.
        if (e.reason !== 'grant_expired') this.failedUntil.set(h.nodeId, Date.now() + this.opts.backoffMs);
        this.opts.logger.warn({ peer: h.nodeId, addr: h.addr, namespace: req.ns.name, reason: e.reason, err: e.message, sealed: got }, 'pull failed');
      }
      pos += got; // short or failed: the next holder may have the rest
    }
    return pos - from;
  }

  /** One grant from one holder for [from, to). Throws (with `partial`) on failure. */
  private async pullFrom(req: Req, h: Holder, from: number, to: number): Promise<number> {
    const link = this.opts.links.get(h.nodeId, h.addr);
    let session: bigint;
    try {
      session = await link.ready(this.left(req, 3000));
    } catch (err) {
      throw this.failure(reasonOf(err, 'handshake'), err, 0);
    }
    const packed = this.slice(req, from, to);
    let res;
    try {
      try {
        res = await link.prepareRead(session, req.ns.name, packed, req.hashLen, this.left(req, 3000));
      } catch (err) {
        if (toKvError(err).code !== 'SESSION_UNKNOWN') throw err;
        link.invalidate(session); // the peer restarted its side or dropped us: handshake again, once
        session = await link.ready(this.left(req, 3000));
        res = await link.prepareRead(session, req.ns.name, packed, req.hashLen, this.left(req, 3000));
      }
    } catch (err) {
      throw this.failure(reasonOf(err, 'prepare'), err, 0);
    }
    const grantId = res.grantId;
    try {
      if (res.blocks === 0) throw new PullError('short_grant', `peer ${h.nodeId} holds none of the ${to - from} blocks the metaserver listed`);
      if (res.shards !== req.ns.shards || Number(res.pageBytes) !== req.ns.pageBytes || res.blocks > to - from) {
        throw new PullError('layout_mismatch', `peer ${h.nodeId}: ${res.blocks} blocks of ${res.shards} × ${res.pageBytes} B pages, expected ≤ ${to - from} of ${req.ns.shards} × ${req.ns.pageBytes} B`);
      }
      const remote = unpackOffsets(Buffer.from(res.pageOffsets));
      if (remote.length !== res.blocks * res.shards) throw new PullError('layout_mismatch', `peer ${h.nodeId}: ${remote.length} page offsets for ${res.blocks} blocks`);
      this.counters.pulls++;
      const got = await this.readGrant(req, h, Number(grantId), from, res.blocks, remote, Number(res.expiresAtMs), session);
      if (res.blocks < to - from) this.fail('short_grant', `peer ${h.nodeId} granted ${res.blocks} of ${to - from} blocks`);
      return got;
    } catch (err) {
      throw this.failure(reasonOf(err, 'read'), err, (err as { partial?: number }).partial ?? 0);
    } finally {
      if (grantId > 0n) {
        link.releaseGrant(grantId, 2000).catch((err: unknown) => this.opts.logger.debug({ peer: h.nodeId, grant: grantId.toString(), err: (err as Error).message }, 'release-grant failed (the grant expires on its own)'));
      }
    }
  }

  /** Reads `blocks` granted blocks into fresh local pages in chunks; seals each chunk that arrives whole. */
  private async readGrant(req: Req, h: Holder, grantId: number, from: number, blocks: number, remote: Float64Array, grantUntilMs: number, session: bigint): Promise<number> {
    const untilMs = Math.min(req.deadline, grantUntilMs);
    const outOfTime = () => grantUntilMs <= req.deadline
      ? new PullError('grant_expired', `grant ${grantId} from ${h.nodeId} expired before the pull finished`)
      : new PullError('deadline', `pull from ${h.nodeId}: ${this.opts.timeoutMs} ms elapsed`);
    const { index, evictor, pool, transport } = this.opts;
    const { ns } = req;
    const { shards, pageBytes } = ns;
    const pages = evictor.allocate(pageBytes, blocks * shards);
    const slots: number[] = [];
    for (let i = 0; i < Math.floor(pages.length / shards); i++) {
      const key = this.key(req, from + i);
      if (index.lookup(ns.id, key) >= 0) break; // saved locally meanwhile
      const slot = index.slotForShard(ns.id, key, shards, 0, pageBytes, BlockClass.Pulled);
      index.pin(slot);
      for (let s = 0; s < shards; s++) index.assign(slot, s, pages[i * shards + s]!);
      slots.push(slot);
    }
    for (let p = slots.length * shards; p < pages.length; p++) pool.free(pages[p]!, pageBytes);
    const n = slots.length;
    this.counters.inFlightBlocks += n;
    const perChunk = Math.max(1, Math.floor(this.opts.chunkBytes / (shards * pageBytes)));
    const chunks = Math.ceil(n / perChunk);
    const ok = new Uint8Array(chunks);
    let failure: unknown;
    let next = 0;
    const worker = async () => {
      while (next < chunks) {
        const c = next++;
        const a = c * perChunk;
        const b = Math.min(n, a + perChunk);
        if (failure === undefined) {
          try {
            if (!(await this.pace((b - a) * shards * pageBytes, untilMs))) throw outOfTime();
            const count = (b - a) * shards;
            const local = new Float64Array(count);
            for (let i = a; i < b; i++) for (let s = 0; s < shards; s++) local[(i - a) * shards + s] = index.page(slots[i]!, s);
            const left = untilMs - Date.now();
            if (left <= 0) throw outOfTime();
            await transport.readv(h.nodeId, grantId, remote.subarray(a * shards, b * shards), local, new Float64Array(count).fill(pageBytes), { timeoutMs: Math.max(1, Math.floor(left)) });
            ok[c] = 1;
          } catch (err) {
            failure ??= err;
          }
        }
        for (let i = a; i < b; i++) this.finish(req, slots[i]!, from + i, ok[c] === 1);
        this.counters.inFlightBlocks -= b - a;
      }
    };
    await Promise.all(Array.from({ length: Math.min(chunks, this.opts.chunksInFlight ?? 2) }, worker));
    let sealed = 0;
    while (sealed < n && ok[Math.floor(sealed / perChunk)] === 1) sealed++;
    if (failure !== undefined) {
      const code = toKvError(failure).code;
      if (code === 'TRANSPORT_FAILED' || code === 'TRANSPORT_TIMEOUT') this.opts.links.get(h.nodeId, h.addr).invalidate(session);
      throw Object.assign(failure instanceof Error ? failure : new Error(String(failure)), { partial: sealed });
    }
    if (pages.length < blocks * shards) this.fail('pool_exhausted', `pool full: ${n} of ${blocks} granted blocks fit`);
    return sealed;
  }

  /** Seals a block whose pages all arrived, or undoes it; unpins; settles its flight. */
  private finish(req: Req, slot: number, i: number, arrived: boolean): void {
    const { index, pool } = this.opts;
    const { flights } = this;
    const { ns } = req;
    const key = this.key(req, i);
    if (arrived) {
      let sealed = false;
      for (let s = 0; s < ns.shards; s++) sealed = index.land(slot, s) || sealed;
      index.unpin(slot);
      if (sealed) {
        this.counters.blocks++;
        this.counters.bytes += ns.shards * ns.pageBytes;
        this.opts.onSealed(ns.name, key);
      }
      flights.settle(ns.id, key, sealed);
      return;
    }
    for (let s = 0; s < ns.shards; s++) pool.free(index.unassign(slot, s), ns.pageBytes);
    index.unpin(slot);
    flights.settle(ns.id, key, false);
  }

  /** Waits for the node-wide bandwidth cap, if any; false when the batch could not start before `untilMs`. */
  private async pace(bytes: number, untilMs: number): Promise<boolean> {
    const rate = this.opts.maxBytesPerSec;
    if (rate <= 0) return true;
    const now = Date.now();
    const start = Math.max(now, this.paceAtMs);
    if (start >= untilMs) return false;
    this.paceAtMs = start + (bytes / rate) * 1000;
    if (start > now) await sleep(start - now);
    return true;
  }

  private failure(reason: PullFailure, err: unknown, partial: number): Error {
    this.counters.failures[reason]++;
    const e = toKvError(err);
    return Object.assign(new KvError(e.code, e.message, { cause: err }), { reason, partial });
  }

  private fail(reason: PullFailure, message: string): void {
    this.counters.failures[reason]++;
    this.opts.logger.debug({ reason }, message);
  }

  private left(req: Req, capMs: number): number {
    return Math.max(1, Math.min(capMs, req.deadline - Date.now()));
  }

  private key(req: Req, i: number): string {
    return req.packed.toString('latin1', i * req.hashLen, (i + 1) * req.hashLen);
  }

  private slice(req: Req, from: number, to: number): Buffer {
    return req.packed.subarray(from * req.hashLen, to * req.hashLen);
  }
}
