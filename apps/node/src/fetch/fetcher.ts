// The remote Fetcher (DESIGN §2 "Remote pull"): fills the missing suffix of a query from peers. For each run of
// blocks neither local nor claimed by another pull: ask the metaserver which nodes hold how much of it, take the
// longest (ties: least used pool; nodes that failed recently are skipped), PrepareRead there in windows, read the
// pages straight into fresh local pool pages (read-pipeline.ts), seal them as "pulled" blocks as they land, release
// the grants, advertise. The remainder continues from the next holder. Failures end the fetch with what is sealed:
// no error to the engine, no half block visible (unsealed slots are never hits), no pin left behind.
import { KvError, toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { Transport } from '@kvfabric/native';
import type { BlockIndex } from '../block-index.js';
import type { PagePool } from '../data-path.js';
import type { Fetcher } from '../engine-core.js';
import type { Evictor } from '../eviction.js';
import type { NamespaceInfo } from '../namespaces.js';
import { unpackOffsets } from '../peer/peer-service.js';
import { BlockFlights } from './block-flights.js';
import { ReadPipeline } from './read-pipeline.js';
import {
  PULL_FAILURES, PullError, keyOf, reasonOf, sleep,
  type Granted, type Holder, type HolderDirectory, type Link, type LinkSource, type PullCtx, type PullFailure, type Req,
} from './pull-types.js';

export { PULL_FAILURES, type Holder, type HolderDirectory, type Link, type LinkSource, type PullFailure } from './pull-types.js';

export interface RemoteFetcherOptions {
  index: BlockIndex;
  evictor: Evictor;
  pool: PagePool;
  /** Only `readv` is used here (the links handshake and drop peers). */
  transport: Pick<Transport, 'readv'>;
  links: LinkSource;
  directory: HolderDirectory;
  onSealed: (namespace: string, hash: Uint8Array) => void;
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

export class RemoteFetcher implements Fetcher {
  readonly flights = new BlockFlights();
  readonly counters = {
    fetches: 0, pulls: 0, blocks: 0, bytes: 0, misses: 0, waitedBlocks: 0, inFlightBlocks: 0,
    failures: Object.fromEntries(PULL_FAILURES.map((r) => [r, 0])) as Record<PullFailure, number>,
  };
  private readonly failedUntil = new Map<string, number>();
  private readonly pipeline: ReadPipeline;

  constructor(private readonly opts: RemoteFetcherOptions) {
    this.pipeline = new ReadPipeline({
      ...opts,
      flights: this.flights,
      counters: this.counters,
      prepare: (req, h, ctx, at, count) => this.prepare(req, h, ctx, at, count),
      fail: (reason, message) => this.fail(reason, message),
    });
  }

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
        const slot = index.lookup(nsId, req.packed, pos * req.hashLen, req.hashLen);
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
        // Ask for holders of the whole rest while claiming the run (block `pos` is surely claimed: no flight, not local).
        const found = this.lookUp(req, pos, r.count);
        let end = pos;
        while (end < r.count && index.lookup(nsId, req.packed, end * req.hashLen, req.hashLen) < 0 && flights.claim(nsId, this.key(req, end))) end++;
        try {
          const got = await this.pullRun(req, pos, end, found);
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

  /** Holders of blocks [from, to); undefined while the metaserver is known to be down. Never rejects. */
  private lookUp(req: Req, from: number, to: number): Promise<Holder[] | Error> | undefined {
    const { directory } = this.opts;
    if (!directory.up()) return undefined;
    return directory.holders(req.ns.name, this.slice(req, from, to), req.hashLen, this.left(req, 2000)).catch((err: unknown) => toKvError(err));
  }

  /**
   * Fills [from, end) (claimed by us) from holders; returns how many leading blocks got sealed. `found`: the first
   * lookup, already asked for (it may cover blocks past `end`).
   */
  private async pullRun(req: Req, from: number, end: number, found: Promise<Holder[] | Error> | undefined): Promise<number> {
    if (!found) {
      this.fail('metaserver_unavailable', 'metaserver down: remote discovery paused');
      return 0;
    }
    const tried = new Set<string>();
    let pos = from;
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 4) && pos < end && Date.now() < req.deadline; attempt++) {
      const holders = await (attempt === 0 ? found : this.lookUp(req, pos, end));
      if (!holders) {
        this.fail('metaserver_unavailable', 'metaserver down: remote discovery paused');
        break;
      }
      if (holders instanceof Error) {
        this.fail('metaserver_unavailable', holders.message);
        break;
      }
      const now = Date.now();
      const span = (h: Holder) => Math.min(h.prefixLen, end - pos);
      const usable = holders
        .filter((h) => h.prefixLen > 0 && !tried.has(h.nodeId) && (this.failedUntil.get(h.nodeId) ?? 0) <= now)
        .sort((a, b) => span(b) - span(a) || a.poolUsedBytes - b.poolUsedBytes);
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
   * Pulls [from, to) from one holder through the read pipeline (windows of grants, chunks of reads). Throws (with
   * `partial`, the leading blocks sealed) on failure. Every grant asked for is released at the end.
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
      return await this.pipeline.run(req, h, ctx, from, to);
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
    const g: Granted = { id: res.grantId, blocks: res.blocks, remote: new Float64Array(0), untilMs: Number(res.expiresAtMs), key: Buffer.from(res.grantKey) };
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
    return keyOf(req, i);
  }

  private slice(req: Req, from: number, to: number): Buffer {
    return req.packed.subarray(from * req.hashLen, to * req.hashLen);
  }
}
