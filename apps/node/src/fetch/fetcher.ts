// The remote Fetcher (DESIGN §2 "Remote pull"): fills the missing suffix of a query from peers. For each run of
// blocks neither local nor claimed by another pull: ask the metaserver which nodes hold how much of it, take the
// longest (ties: least used pool; nodes that failed recently are skipped, and so are suspects: holders that served
// a page differing from its checksum) and hand the run to a PullSession (pull-session.ts: PrepareRead in windows,
// reads and verifies through the read pipeline, seals, releases the grants). The remainder continues from the next
// holder. Failures end the fetch with what is sealed: no error to the engine, no half block visible (unsealed slots
// are never hits), no wrong byte sealed, no pin left behind.
import { METASERVER_MAX_QUERY_HASHES, toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { Transport } from '@kvfabric/native';
import type { BlockIndex } from '../block-index.js';
import type { PulledPages } from '../data-path.js';
import type { Fetcher } from '../engine-core.js';
import type { Evictor } from '../eviction.js';
import type { NamespaceInfo } from '../namespaces.js';
import { BlockFlights } from './block-flights.js';
import { HolderHealth } from './holder-health.js';
import type { PullOutcome } from './pull-outcome.js';
import { PullSession, type PullSessionDeps } from './pull-session.js';
import { ReadPipeline, type PageVerifier } from './read-pipeline.js';
import {
  PULL_FAILURES,
  PullRequest,
  sleep,
  type Holder,
  type HolderDirectory,
  type LinkSource,
  type PullFailure,
} from './pull-types.js';

/** What the fetcher has done so far (the kvfabric_pull_* metrics). */
export interface PullCounters {
  fetches: number;
  /** Grants read from peers. */
  pulls: number;
  blocks: number;
  bytes: number;
  misses: number;
  waitedBlocks: number;
  inFlightBlocks: number;
  /** Pages that landed and matched their holder's checksum. */
  verifiedPages: number;
  /** Blocks with a page that landed but differed from its holder's checksum (dropped). */
  mismatchedBlocks: number;
  failures: Record<PullFailure, number>;
}

export interface RemoteFetcherOptions {
  index: BlockIndex;
  evictor: Evictor;
  /** Sets up, seals and undoes a pull's blocks, one native call per chunk. */
  data: PulledPages;
  /** Only `readv` is used here (the links handshake and drop peers). */
  transport: Pick<Transport, 'readv'>;
  /** Checks landed pages against their holder's checksums (natively) before they seal. */
  verify: PageVerifier;
  links: LinkSource;
  directory: HolderDirectory;
  /** Pulled blocks sealed: their hashes back to back in `packed`, `hashLen` bytes each. */
  onSealed: (namespace: string, packed: Uint8Array, hashLen: number) => void;
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
  /** A peer that served a page differing from its checksum is suspect (not pulled from) this long. */
  suspectMs: number;
  /** Holders tried per missing run. */
  maxAttempts?: number;
  observeDuration?: (seconds: number) => void;
}

export class RemoteFetcher implements Fetcher {
  readonly flights = new BlockFlights();
  /** Counts of fetches and of pull sessions that ended; `counters` adds the live sessions. */
  private readonly totals: Omit<PullCounters, 'inFlightBlocks'> = {
    fetches: 0,
    pulls: 0,
    blocks: 0,
    bytes: 0,
    misses: 0,
    waitedBlocks: 0,
    verifiedPages: 0,
    mismatchedBlocks: 0,
    failures: Object.fromEntries(PULL_FAILURES.map((r) => [r, 0])) as Record<PullFailure, number>,
  };
  private readonly live = new Set<PullSession>();
  private readonly health: HolderHealth;
  private readonly sessionDeps: PullSessionDeps;

  constructor(private readonly opts: RemoteFetcherOptions) {
    this.health = new HolderHealth(opts);
    const pipeline = new ReadPipeline({
      transport: opts.transport,
      verify: opts.verify,
      maxBytesPerSec: opts.maxBytesPerSec,
    });
    this.sessionDeps = {
      ...opts,
      flights: this.flights,
      pipeline,
      chunksInFlight: Math.max(1, opts.chunksInFlight ?? 4),
    };
  }

  /** A snapshot: what ended sessions counted plus what the live ones have so far. */
  get counters(): PullCounters {
    const c = { ...this.totals, failures: { ...this.totals.failures }, inFlightBlocks: 0 };
    for (const s of this.live) {
      c.pulls += s.counts.grants;
      c.blocks += s.counts.blocks;
      c.bytes += s.counts.bytes;
      c.inFlightBlocks += s.counts.inFlightBlocks;
      c.verifiedPages += s.counts.verifiedPages;
      c.mismatchedBlocks += s.counts.mismatchedBlocks;
    }
    return c;
  }

  /** The holders suspect now (they served a page that differed from its checksum less than suspectMs ago). */
  suspects(): string[] {
    return this.health.suspects(Date.now());
  }

  async fetch(r: {
    ns: NamespaceInfo;
    packed: Buffer;
    hashLen: number;
    from: number;
    count: number;
  }): Promise<{ ssd: number; remote: number }> {
    const t0 = performance.now();
    this.totals.fetches++;
    const req = new PullRequest(r.ns, r.packed, r.hashLen, r.count, Date.now() + this.opts.timeoutMs);
    const { index } = this.opts;
    const { flights } = this;
    const nsId = r.ns.id;
    let pos = r.from;
    let remote = 0;
    try {
      while (pos < r.count && !req.overdue) {
        const slot = index.lookup(nsId, req.packed, pos * req.hashLen, req.hashLen);
        if (slot >= 0 && index.isSealed(slot)) {
          pos++;
          continue;
        }
        const flight = flights.wait(nsId, req.packed, req.hashLen, pos);
        if (flight) {
          this.totals.waitedBlocks++;
          const sealed = await Promise.race([
            flight,
            sleep(Math.max(0, req.deadlineAtMs - Date.now())).then(() => false),
          ]);
          if (!sealed) break; // its pull failed (or our time is up): end with what we have
          remote++;
          continue;
        }
        if (slot >= 0) break; // a local save of this block is half done: not ours to pull
        // Ask for holders of the whole rest while claiming the run (block `pos` is surely claimed: no flight, not local).
        const found = this.lookUp(req, pos, r.count);
        const end = flights.claim(index, nsId, req.packed, req.hashLen, pos, r.count);
        try {
          const got = await this.pullRun(req, pos, end, found);
          remote += got;
          if (got < end - pos) break;
          pos = end;
        } finally {
          flights.settle(nsId, req.packed, req.hashLen, pos, end, false); // claims not sealed
        }
      }
      if (pos < r.count && req.overdue)
        this.count('deadline', `fetch of ${r.ns.name}: ${this.opts.timeoutMs} ms elapsed`);
    } catch (err) {
      this.opts.logger.warn({ err: toKvError(err).message, namespace: r.ns.name }, 'fetch ended early');
    } finally {
      this.opts.observeDuration?.((performance.now() - t0) / 1000);
    }
    return { ssd: 0, remote };
  }

  /** Holders of blocks [from, to); undefined while the metaserver is known to be down. Never rejects. */
  private lookUp(req: PullRequest, from: number, to: number): Promise<Holder[] | Error> | undefined {
    const { directory } = this.opts;
    if (!directory.up()) return undefined;
    // the metaserver answers at most METASERVER_MAX_QUERY_HASHES at a time: a longer run is found that far
    const until = Math.min(to, from + METASERVER_MAX_QUERY_HASHES);
    return directory
      .holders(req.ns.name, req.hashes(from, until), req.hashLen, req.timeLeft(2000))
      .catch((err: unknown) => toKvError(err));
  }

  /**
   * Fills [from, end) (claimed by us) from holders; returns how many leading blocks got sealed. `found`: the first
   * lookup, already asked for (it may cover blocks past `end`).
   */
  private async pullRun(
    req: PullRequest,
    from: number,
    end: number,
    found: Promise<Holder[] | Error> | undefined,
  ): Promise<number> {
    if (!found) {
      this.count('metaserver_unavailable', 'metaserver down: remote discovery paused');
      return 0;
    }
    const tried = new Set<string>();
    let pos = from;
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 4) && pos < end && !req.overdue; attempt++) {
      const holders = await (attempt === 0 ? found : this.lookUp(req, pos, end));
      if (!holders) {
        this.count('metaserver_unavailable', 'metaserver down: remote discovery paused');
        break;
      }
      if (holders instanceof Error) {
        this.count('metaserver_unavailable', holders.message);
        break;
      }
      const now = Date.now();
      const span = (h: Holder) => Math.min(h.prefixLen, end - pos);
      const usable = holders
        .filter((h) => h.prefixLen > 0 && !tried.has(h.nodeId) && this.health.usable(h.nodeId, now))
        .sort((a, b) => span(b) - span(a) || a.poolUsedBytes - b.poolUsedBytes);
      const h = usable[0];
      if (!h) {
        if (attempt === 0) this.totals.misses++;
        break;
      }
      tried.add(h.nodeId);
      const { sealed, failure } = await this.pull(req, h, pos, Math.min(end, pos + h.prefixLen));
      if (failure?.reason === 'checksum_mismatch') {
        // Bytes that differ from what the holder said it has: a damaged or hostile path (or holder). Nothing of
        // the chunk sealed; the holder is not pulled from again for a while, whoever else lists it.
        this.health.corrupt(h.nodeId, Date.now());
        this.opts.logger.error(
          { peer: h.nodeId, addr: h.addr, namespace: req.ns.name, err: failure.error.message, sealed },
          `pulled pages differ from their checksums: blocks dropped, ${h.nodeId} suspect for ${this.opts.suspectMs / 1000} s`,
        );
      } else if (failure) {
        // A grant that ran out under our own pacing says nothing about the peer's health.
        if (failure.reason !== 'grant_expired') this.health.failed(h.nodeId, Date.now());
        this.opts.logger.warn(
          {
            peer: h.nodeId,
            addr: h.addr,
            namespace: req.ns.name,
            reason: failure.reason,
            err: failure.error.message,
            sealed,
          },
          'pull failed',
        );
      }
      pos += sealed; // short or failed: the next holder may have the rest
    }
    return pos - from;
  }

  /** Pulls [from, to) from one holder in a PullSession, counting what it did. */
  private async pull(req: PullRequest, h: Holder, from: number, to: number): Promise<PullOutcome> {
    const session = new PullSession(this.sessionDeps, this.opts.links.get(h.nodeId, h.addr), req, h, from, to);
    this.live.add(session);
    let outcome: PullOutcome;
    try {
      outcome = await session.run();
    } finally {
      this.live.delete(session);
      this.totals.pulls += session.counts.grants;
      this.totals.blocks += session.counts.blocks;
      this.totals.bytes += session.counts.bytes;
      this.totals.verifiedPages += session.counts.verifiedPages;
      this.totals.mismatchedBlocks += session.counts.mismatchedBlocks;
    }
    for (const reason of outcome.shortfalls) this.totals.failures[reason]++;
    if (outcome.failure) this.totals.failures[outcome.failure.reason]++;
    return outcome;
  }

  private count(reason: PullFailure, message: string): void {
    this.totals.failures[reason]++;
    this.opts.logger.debug({ reason }, message);
  }
}
