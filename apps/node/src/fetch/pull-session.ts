// One pull of blocks [from, to) of a fetch from one holder (DESIGN §2 "Remote pull"): handshake (once per peer,
// shared through the link), PrepareRead in growing windows (grant-windows.ts), chunks set up in fresh local pages
// and pinned, unsealed slots (pulled-blocks.ts), read and verified against the holder's page checksums by the read
// pipeline, sealed as "pulled" blocks as they land, every grant released once read or at the end. A failed, short
// or corrupt chunk loses only its own blocks (a page that differs from its checksum ends the pull: the holder is not
// read from again); no slot is left pinned and no page allocated when it ends.
import { toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import { GrantWindows, type GrantWindow } from './grant-windows.js';
import { checksumMismatch, failedPull, type PullOutcome, type PullStage } from './pull-outcome.js';
import { PulledBlocks, type PulledBlocksDeps } from './pulled-blocks.js';
import type { ChunkOutcome, ChunkRead, ChunkSource, ReadPipeline } from './read-pipeline.js';
import { PullError, type Holder, type Link, type PullFailure, type PullRequest, type ReadGrant } from './pull-types.js';

export interface PullSessionDeps extends PulledBlocksDeps {
  pipeline: ReadPipeline;
  logger: Logger;
  /** Bytes per readv batch; a failed batch loses only its blocks. */
  chunkBytes: number;
  /** Batches in flight per pull. */
  chunksInFlight: number;
  /** The fetch timeout (for messages). */
  timeoutMs: number;
}

/** Blocks [a, a + n) of the request: their pinned slots and the local pages the readv fills (block-major). */
interface Chunk {
  a: number;
  n: number;
  slots: Int32Array;
  local: Float64Array;
  landed: boolean;
}

/** A chunk bound to the grant it is read under. */
interface GrantedChunk extends ChunkRead {
  chunk: Chunk;
  grant: ReadGrant;
  window: GrantWindow;
}

export class PullSession implements ChunkSource<GrantedChunk> {
  private inFlightBlocks = 0;
  private verifiedPages = 0;
  private mismatchedBlocks = 0;
  private readonly blocks: PulledBlocks;
  private readonly perChunk: number;
  private readonly depth: number;
  private readonly lengths: Float64Array;
  private readonly windows: GrantWindows;
  private readonly chunks: Chunk[] = []; // in block order
  private cursor: number; // the next block to set up
  private stopped = false; // nothing new starts
  private failure: { error: unknown; stage: PullStage } | undefined;
  private exhausted = false;
  private short: { at: number; asked: number; blocks: number } | undefined;

  constructor(
    private readonly deps: PullSessionDeps,
    private readonly link: Link,
    private readonly req: PullRequest,
    private readonly holder: Holder,
    private readonly from: number,
    private readonly to: number,
  ) {
    const { shards, pageBytes } = req.ns;
    this.perChunk = Math.max(1, Math.floor(deps.chunkBytes / (shards * pageBytes)));
    this.depth = this.perChunk * Math.max(1, deps.chunksInFlight);
    this.lengths = new Float64Array(this.perChunk * shards).fill(pageBytes);
    this.cursor = from;
    this.blocks = new PulledBlocks(deps, req);
    this.windows = new GrantWindows(
      { link, logger: deps.logger, holder, req, from, to, perChunk: this.perChunk, depth: this.depth },
      { stopped: () => this.stopped, cursor: () => this.cursor },
    );
  }

  /** Live counts, read by the fetcher's metrics while the pull runs. */
  get counts(): {
    grants: number;
    blocks: number;
    bytes: number;
    inFlightBlocks: number;
    verifiedPages: number;
    mismatchedBlocks: number;
  } {
    return {
      grants: this.windows.grants,
      blocks: this.blocks.sealedBlocks,
      bytes: this.blocks.sealedBytes,
      inFlightBlocks: this.inFlightBlocks,
      verifiedPages: this.verifiedPages,
      mismatchedBlocks: this.mismatchedBlocks,
    };
  }

  /** Runs the pull to its end; never rejects. Every grant asked for is released. */
  async run(): Promise<PullOutcome> {
    let session: bigint;
    try {
      session = await this.link.ready(this.req.timeLeft(3000));
    } catch (err) {
      return failedPull(0, err, 'handshake');
    }
    try {
      try {
        this.windows.start(session);
        await this.deps.pipeline.run(this, this.deps.chunksInFlight);
      } catch (err) {
        this.fail(err, 'read'); // not a transport error (those come back as chunk outcomes): end like a failed read
      }
      this.stopped = true;
      return this.end();
    } finally {
      this.windows.releaseAll();
    }
  }

  /**
   * The next chunk to read. While the current window's grant is on its way, the chunk is set up first, so that work
   * overlaps the PrepareRead; then it is trimmed to what was granted.
   */
  async next(): Promise<GrantedChunk | undefined> {
    for (let w = this.windows.current; !this.stopped && w; w = this.windows.current) {
      let chunk = !this.windows.grantOf(w) && this.cursor < w.at + w.asked ? this.take(w.at + w.asked) : undefined;
      if (!chunk && this.stopped) return undefined;
      if (chunk) {
        w.reading++; // set up under this window: its grant stays until the chunk settles
        this.windows.taking(w);
      }
      let g: ReadGrant;
      try {
        g = await w.grant;
      } catch (err) {
        if (chunk) {
          this.trim(chunk, chunk.a);
          w.reading--;
        }
        this.fail(err, 'prepare');
        return undefined;
      }
      const end = w.at + g.blocks;
      if (chunk) {
        this.trim(chunk, end);
        if (chunk.n === 0) {
          chunk = undefined;
          w.reading--;
        }
      }
      if (!chunk) {
        if (this.stopped) return undefined;
        if (this.cursor >= end) {
          if (g.blocks === w.asked && (await this.windows.advance(w))) continue;
          if (this.stopped) return undefined;
          if (g.blocks < w.asked) this.short ??= { at: w.at, asked: w.asked, blocks: g.blocks };
          this.stopped = true;
          return undefined;
        }
        chunk = this.take(end);
        if (!chunk) return undefined;
        w.reading++;
        this.windows.taking(w);
      }
      const shards = this.req.ns.shards;
      const r = (chunk.a - w.at) * shards;
      return {
        chunk,
        grant: g,
        window: w,
        peer: this.holder.nodeId,
        grantId: g.id,
        key: g.key,
        remote: g.remote.subarray(r, r + chunk.n * shards),
        local: chunk.local,
        lengths: this.lengths.subarray(0, chunk.n * shards),
        pageBytes: this.req.ns.pageBytes,
        checksums: g.checksums.subarray(2 * r, 2 * (r + chunk.n * shards)),
        untilMs: Math.min(this.req.deadlineAtMs, g.expiresAtMs),
      };
    }
    return undefined;
  }

  /** Seals the blocks of a chunk that landed intact (with the checksums they were verified against), or undoes them. */
  settle({ chunk, grant, checksums, window }: GrantedChunk, outcome: ChunkOutcome): void {
    const shards = this.req.ns.shards;
    if (outcome === 'landed') {
      chunk.landed = true;
      this.verifiedPages += chunk.n * shards;
    } else if (outcome === 'late') this.fail(this.outOfTime(grant), 'read');
    else if ('mismatches' in outcome) this.fail(this.corrupt(grant, chunk, outcome.mismatches), 'read');
    else this.fail(outcome.error, 'read');
    this.blocks.finish(chunk.slots, chunk.a, chunk.landed, checksums);
    this.inFlightBlocks -= chunk.n;
    window.reading--;
    this.windows.retire(window);
  }

  /** Sets up the next chunk, up to block `limit`; undefined when there is nothing to read (`stopped` says why). */
  private take(limit: number): Chunk | undefined {
    const a = this.cursor;
    const want = Math.min(limit, a + this.perChunk) - a;
    this.cursor = a + want;
    let c: Chunk;
    try {
      const got = this.blocks.setUp(a, want);
      c = { a, n: got.slots.length, slots: got.slots, local: got.local, landed: false };
      this.exhausted ||= got.exhausted;
    } catch (err) {
      this.fail(err, 'read');
      return undefined;
    }
    this.chunks.push(c);
    if (c.n < want) this.stopped = true; // pool full, or a block saved locally meanwhile
    this.inFlightBlocks += c.n;
    return c.n > 0 ? c : undefined;
  }

  /**
   * Gives back the blocks of `c` from block `end` on (beyond a short grant, or all of them). Their claims stay:
   * the next holder may still pull them, and the fetch settles what is left unsealed.
   */
  private trim(c: Chunk, end: number): void {
    const keep = Math.max(0, Math.min(c.n, end - c.a));
    this.blocks.undo(c.slots.subarray(keep));
    this.inFlightBlocks -= c.n - keep;
    c.n = keep;
    c.slots = c.slots.subarray(0, keep);
    c.local = c.local.subarray(0, keep * this.req.ns.shards);
  }

  private fail(error: unknown, stage: 'prepare' | 'read'): void {
    this.failure ??= { error, stage };
    this.stopped = true;
    this.windows.wake(); // windows waiting on the holder's budget give up
  }

  /** A chunk whose bytes arrived but differ from the holder's checksums: none of its blocks seals. */
  private corrupt(g: ReadGrant, chunk: Chunk, mismatches: Uint32Array): PullError {
    const shards = this.req.ns.shards;
    const { error, blocks } = checksumMismatch(this.holder.nodeId, g.id, chunk.a, chunk.n * shards, shards, mismatches);
    this.mismatchedBlocks += blocks;
    return error;
  }

  private outOfTime(g: ReadGrant): PullError {
    return g.expiresAtMs <= this.req.deadlineAtMs
      ? new PullError('grant_expired', `grant ${g.id} from ${this.holder.nodeId} expired before the pull finished`)
      : new PullError('deadline', `pull from ${this.holder.nodeId}: ${this.deps.timeoutMs} ms elapsed`);
  }

  /** The outcome once the pipeline is done: the leading blocks sealed, and why it stopped short. */
  private end(): PullOutcome {
    let sealed = 0;
    for (const c of this.chunks) {
      if (!c.landed && c.n > 0) break;
      sealed += c.n;
    }
    if (this.failure) {
      const code = toKvError(this.failure.error).code;
      // A broken, stuck or tampered-with connection is not used again: the next pull from this peer handshakes anew.
      const corrupt = this.failure.error instanceof PullError && this.failure.error.reason === 'checksum_mismatch';
      if (code === 'TRANSPORT_FAILED' || code === 'TRANSPORT_TIMEOUT' || corrupt)
        this.link.invalidate(this.windows.peerSession);
      return failedPull(sealed, this.failure.error, this.failure.stage);
    }
    const { short, from, to } = this;
    const id = this.holder.nodeId;
    if (short?.blocks === 0 && short.at === from) {
      const error = new PullError(
        'short_grant',
        `peer ${id} holds none of the ${to - from} blocks the metaserver listed`,
      );
      return failedPull(sealed, error, 'prepare');
    }
    const shortfalls: PullFailure[] = [];
    if (short) {
      shortfalls.push('short_grant');
      this.deps.logger.debug(
        { reason: 'short_grant' },
        `peer ${id} granted ${short.blocks} of blocks ${short.at - from}..${short.at - from + short.asked - 1} of the ${to - from} asked for`,
      );
    }
    if (this.exhausted) {
      shortfalls.push('pool_exhausted');
      this.deps.logger.debug({ reason: 'pool_exhausted' }, `pool full: ${sealed} of ${to - from} blocks fit`);
    }
    return { sealed, shortfalls };
  }
}
