// The remote Fetcher (DESIGN §2 "Remote pull"): fills the missing suffix of a query from peers. For each run of
// blocks neither local nor claimed by another pull: ask the metaserver which nodes hold how much of it, take the
// longest (ties: least used pool; nodes that failed recently are skipped), PrepareRead there (one grant for the
// whole run), then chunk by chunk allocate local pages and `readv` them straight into the pool with several chunks
// in flight, seal each chunk as "pulled" blocks as it lands, release the grant, advertise. The remainder
// continues from the next holder. Failures end the fetch with what is sealed:
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

/** A window's grant is at most this many times the first window (the pipeline depth). */
const MAX_WINDOW_GROWTH = 16;

/** One PrepareRead of a pull, for blocks [at, at + asked) of the request. */
interface Window {
  at: number;
  asked: number;
  grant: Promise<Granted>;
  /** The window after this one, asked for as soon as this one was granted in full. */
  next?: Window;
}

interface Granted {
  id: bigint;
  /** Leading blocks granted (fewer than asked: the holder has no more). */
  blocks: number;
  remote: Float64Array;
  untilMs: number;
}

/** One pull from one holder: its link, the session (renewed on SESSION_UNKNOWN), every window asked for. */
interface PullCtx {
  link: Link;
  session: bigint;
  windows: Window[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Req {
  ns: NamespaceInfo;
  packed: Buffer;
  hashLen: number;
  deadline: number;
  /** Index keys (latin1 strings of the hashes), made once per block and fetch. */
  keys: (string | undefined)[];
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
    const req: Req = { ns: r.ns, packed: r.packed, hashLen: r.hashLen, deadline: Date.now() + this.opts.timeoutMs, keys: new Array<string | undefined>(r.count) };
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

  /**
   * Pulls [from, to) from one holder. Throws (with `partial`, the leading blocks sealed) on failure.
   *
   * Grants come in windows: the first covers what the read pipeline holds at once (`chunksInFlight` chunks), so
   * reads start after a small PrepareRead; when a window is granted in full the next one (twice as large, up to
   * MAX_WINDOW_GROWTH times the first) is asked for at once, so its PrepareRead overlaps the reads of this one
   * and the readv pipeline runs on across window and chunk boundaries. Every grant is released at the end.
   */
  private async pullFrom(req: Req, h: Holder, from: number, to: number): Promise<number> {
    const link = this.opts.links.get(h.nodeId, h.addr);
    let session: bigint;
    try {
      session = await link.ready(this.left(req, 3000));
    } catch (err) {
      throw this.failure(reasonOf(err, 'handshake'), err, 0);
    }
    const ctx: PullCtx = { link, session, windows: [] };
    try {
      return await this.readWindows(req, h, ctx, from, to);
    } catch (err) {
      const stage = (err as { stage?: 'prepare' }).stage ?? 'read';
      throw this.failure(reasonOf(err, stage), err, (err as { partial?: number }).partial ?? 0);
    } finally {
      for (const w of ctx.windows) w.grant.then((g) => this.release(h, link, g.id), () => {});
    }
  }

  private release(h: Holder, link: Link, grantId: bigint): void {
    if (grantId <= 0n) return;
    link.releaseGrant(grantId, 2000).catch((err: unknown) => this.opts.logger.debug({ peer: h.nodeId, grant: grantId.toString(), err: (err as Error).message }, 'release-grant failed (the grant expires on its own)'));
  }

  /** PrepareRead of blocks [at, at + count): a validated grant (possibly short), or a throw tagged `stage: prepare`. */
  private async prepare(req: Req, h: Holder, ctx: PullCtx, at: number, count: number): Promise<Granted> {
    const packed = this.slice(req, at, at + count);
    let res;
    try {
      try {
        res = await ctx.link.prepareRead(ctx.session, req.ns.name, packed, req.hashLen, this.left(req, 3000));
      } catch (err) {
        if (toKvError(err).code !== 'SESSION_UNKNOWN') throw err;
        ctx.link.invalidate(ctx.session); // the peer restarted its side or dropped us: handshake again, once
        ctx.session = await ctx.link.ready(this.left(req, 3000));
        res = await ctx.link.prepareRead(ctx.session, req.ns.name, packed, req.hashLen, this.left(req, 3000));
      }
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { stage: 'prepare' as const });
    }
    const g: Granted = { id: res.grantId, blocks: res.blocks, remote: new Float64Array(0), untilMs: Number(res.expiresAtMs) };
    if (res.blocks === 0) return g;
    try {
      if (res.shards !== req.ns.shards || Number(res.pageBytes) !== req.ns.pageBytes || res.blocks > count) {
        throw new PullError('layout_mismatch', `peer ${h.nodeId}: ${res.blocks} blocks of ${res.shards} × ${res.pageBytes} B pages, expected ≤ ${count} of ${req.ns.shards} × ${req.ns.pageBytes} B`);
      }
      g.remote = unpackOffsets(res.pageOffsets);
      if (g.remote.length !== res.blocks * res.shards) throw new PullError('layout_mismatch', `peer ${h.nodeId}: ${g.remote.length} page offsets for ${res.blocks} blocks`);
    } catch (err) {
      this.release(h, ctx.link, g.id); // a grant we cannot use: give its pins back now
      throw err;
    }
    this.counters.pulls++;
    return g;
  }

  /**
   * The read pipeline of one pull: `chunksInFlight` workers each take the next chunk (`chunkBytes`) of the current
   * window, set it up (pages, pinned slots) just before its readv so that work overlaps the reads in flight, and
   * seal it when it lands whole. Returns the leading blocks sealed.
   */
  private async readWindows(req: Req, h: Holder, ctx: PullCtx, from: number, to: number): Promise<number> {
    const { transport } = this.opts;
    const { shards, pageBytes } = req.ns;
    const perChunk = Math.max(1, Math.floor(this.opts.chunkBytes / (shards * pageBytes)));
    const inFlight = Math.max(1, this.opts.chunksInFlight ?? 4);
    const firstWindow = perChunk * inFlight;
    const lengths = new Float64Array(perChunk * shards).fill(pageBytes);
    const chunks: { n: number; ok: boolean }[] = []; // in block order
    let cursor = from; // the next block to read
    let stop = false; // nothing new starts
    let failure: unknown;
    let exhausted = false;
    let short: { at: number; asked: number; blocks: number } | undefined;
    const open = (at: number, size: number): Window => {
      const asked = Math.min(to - at, size);
      const w: Window = { at, asked, grant: this.prepare(req, h, ctx, at, asked) };
      ctx.windows.push(w);
      // Registered before any worker awaits this grant: the next window is asked for before the reads start.
      w.grant.then((g) => {
        if (!stop && g.blocks === asked && at + asked < to) w.next = open(at + asked, Math.min(size * 2, firstWindow * MAX_WINDOW_GROWTH));
      }, () => {});
      return w;
    };
    let win = open(from, firstWindow);
    const worker = async () => {
      while (!stop) {
        const w = win;
        let g: Granted;
        try {
          g = await w.grant;
        } catch (err) {
          failure ??= err;
          stop = true;
          break;
        }
        if (stop) break;
        const end = w.at + g.blocks;
        if (cursor >= end) {
          if (w.next) {
            if (win === w) win = w.next;
            continue;
          }
          if (g.blocks < w.asked) short ??= { at: w.at, asked: w.asked, blocks: g.blocks };
          stop = true;
          break;
        }
        const a = cursor;
        const want = Math.min(end, a + perChunk) - a;
        cursor = a + want;
        let chunk: ReturnType<RemoteFetcher['setUp']>;
        try {
          chunk = this.setUp(req, a, want);
        } catch (err) {
          failure ??= err;
          stop = true;
          break;
        }
        const n = chunk.slots.length;
        const rec = { n, ok: false };
        chunks.push(rec);
        if (n < want) {
          stop = true;
          exhausted ||= chunk.exhausted;
        }
        if (n === 0) break;
        this.counters.inFlightBlocks += n;
        const untilMs = Math.min(req.deadline, g.untilMs);
        try {
          const outOfTime = () => g.untilMs <= req.deadline
            ? new PullError('grant_expired', `grant ${g.id} from ${h.nodeId} expired before the pull finished`)
            : new PullError('deadline', `pull from ${h.nodeId}: ${this.opts.timeoutMs} ms elapsed`);
          if (!(await this.pace(n * shards * pageBytes, untilMs))) throw outOfTime();
          const left = untilMs - Date.now();
          if (left <= 0) throw outOfTime();
          const r = (a - w.at) * shards;
          await transport.readv(h.nodeId, Number(g.id), g.remote.subarray(r, r + n * shards), chunk.local, lengths.subarray(0, n * shards), { timeoutMs: Math.max(1, Math.floor(left)) });
          rec.ok = true;
        } catch (err) {
          failure ??= err;
          stop = true;
        }
        for (let i = 0; i < n; i++) this.finish(req, chunk.slots[i]!, a + i, rec.ok);
        this.counters.inFlightBlocks -= n;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    stop = true;
    let sealed = 0;
    for (const c of chunks) {
      if (!c.ok) break;
      sealed += c.n;
    }
    if (failure !== undefined) {
      const code = toKvError(failure).code;
      if (code === 'TRANSPORT_FAILED' || code === 'TRANSPORT_TIMEOUT') ctx.link.invalidate(ctx.session);
      throw Object.assign(failure instanceof Error ? failure : new Error(String(failure)), { partial: sealed });
    }
    if (short?.blocks === 0 && short.at === from) throw new PullError('short_grant', `peer ${h.nodeId} holds none of the ${to - from} blocks the metaserver listed`);
    if (short) this.fail('short_grant', `peer ${h.nodeId} granted ${short.blocks} of blocks ${short.at - from}..${short.at - from + short.asked - 1} of the ${to - from} asked for`);
    if (exhausted) this.fail('pool_exhausted', `pool full: ${sealed} of ${to - from} blocks fit`);
    return sealed;
  }

  /**
   * Fresh local pages and pinned, unsealed slots for blocks [at, at + count) of `req`, stopping at the first block
   * that exists locally meanwhile or when the pool is full. `local` holds the pages, block-major (the readv targets).
   */
  private setUp(req: Req, at: number, count: number): { slots: Int32Array; local: Float64Array; exhausted: boolean } {
    const { index, evictor, pool } = this.opts;
    const { ns } = req;
    const { shards, pageBytes } = ns;
    const pages = evictor.allocate(pageBytes, count * shards);
    const fit = Math.floor(pages.length / shards);
    const slots = new Int32Array(fit);
    let n = 0;
    for (; n < fit; n++) {
      const key = this.key(req, at + n);
      if (index.lookup(ns.id, key) >= 0) break; // saved locally meanwhile
      const slot = index.slotForShard(ns.id, key, shards, 0, pageBytes, BlockClass.Pulled);
      index.pin(slot);
      for (let s = 0; s < shards; s++) index.assign(slot, s, pages[n * shards + s]!);
      slots[n] = slot;
    }
    for (let p = n * shards; p < pages.length; p++) pool.free(pages[p]!, pageBytes);
    return { slots: slots.subarray(0, n), local: pages.subarray(0, n * shards), exhausted: pages.length < count * shards };
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
    return (req.keys[i] ??= req.packed.toString('latin1', i * req.hashLen, (i + 1) * req.hashLen));
  }

  private slice(req: Req, from: number, to: number): Buffer {
    return req.packed.subarray(from * req.hashLen, to * req.hashLen);
  }
}
