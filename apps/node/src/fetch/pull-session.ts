// One pull of blocks [from, to) of a fetch from one holder (DESIGN §2 "Remote pull"): handshake (once per peer,
// shared through the link), PrepareRead in growing windows, chunks set up in fresh local pages and pinned, unsealed
// slots (pulled-blocks.ts), read and verified against the holder's page checksums by the read pipeline, sealed as
// "pulled" blocks as they land, every grant released at the end. A failed, short or corrupt chunk loses only its
// own blocks (a page that differs from its checksum ends the pull: the holder is not read from again); no slot is
// left pinned and no page allocated when it ends.
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError, toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { GrantId } from '@kvfabric/native';
import { PEER_MAX_READ_HASHES } from '../peer/peer-limits.js';
import { PulledBlocks, type PulledBlocksDeps } from './pulled-blocks.js';
import type { ChunkOutcome, ChunkRead, ChunkSource, ReadPipeline } from './read-pipeline.js';
import {
  PullError,
  reasonOf,
  type Holder,
  type Link,
  type PullFailure,
  type PullRequest,
  type ReadGrant,
} from './pull-types.js';

/** A window's grant is at most this many times the pipeline depth (`chunksInFlight` chunks), and this many bytes. */
const MAX_WINDOW_GROWTH = 16;
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;
/** Pauses (doubling from BUDGET_PAUSE_MS) for a window the holder's grant budget refused after ours let go. */
const BUDGET_PAUSES = 3;
const BUDGET_PAUSE_MS = 10;

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

export interface PullOutcome {
  /** Leading blocks of [from, to) sealed. */
  sealed: number;
  /** Why the pull failed, when it did. */
  failure?: { reason: PullFailure; error: KvError };
  /** Why it ended short without failing (a holder with fewer blocks than listed, a full pool). */
  shortfalls: PullFailure[];
}

/** One PrepareRead of the session, for blocks [at, at + asked) of the request. */
interface GrantWindow {
  at: number;
  asked: number;
  grant: Promise<ReadGrant>;
  /** The window after this one (used only once this one was granted in full). */
  next?: GrantWindow;
  /** Chunks read under this window's grant and not yet settled. */
  reading: number;
  /** Its grant was released: every chunk under it was read, so its pins go back to the holder's budget now. */
  released: boolean;
  /** The holder answered that release (its budget has the pins back). */
  freed: boolean;
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
  private grants = 0;
  private inFlightBlocks = 0;
  private verifiedPages = 0;
  private mismatchedBlocks = 0;
  private readonly blocks: PulledBlocks;
  private session = 0n;
  private readonly perChunk: number;
  private readonly depth: number;
  private readonly lengths: Float64Array;
  private readonly windows: GrantWindow[] = [];
  private readonly granted = new Map<GrantWindow, ReadGrant>();
  private readonly retireWaiters: (() => void)[] = [];
  private readonly chunks: Chunk[] = []; // in block order
  private window: GrantWindow | undefined;
  private cursor: number; // the next block to set up
  private stopped = false; // nothing new starts
  private failure: { error: unknown; stage: 'handshake' | 'prepare' | 'read' } | undefined;
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
      grants: this.grants,
      blocks: this.blocks.sealedBlocks,
      bytes: this.blocks.sealedBytes,
      inFlightBlocks: this.inFlightBlocks,
      verifiedPages: this.verifiedPages,
      mismatchedBlocks: this.mismatchedBlocks,
    };
  }

  /** Runs the pull to its end; never rejects. Every grant asked for is released. */
  async run(): Promise<PullOutcome> {
    try {
      this.session = await this.link.ready(this.req.timeLeft(3000));
    } catch (err) {
      return this.outcome(0, { error: err, stage: 'handshake' });
    }
    try {
      try {
        this.openWindows();
        await this.deps.pipeline.run(this, this.deps.chunksInFlight);
      } catch (err) {
        this.fail(err, 'read'); // not a transport error (those come back as chunk outcomes): end like a failed read
      }
      this.stopped = true;
      return this.end();
    } finally {
      for (const wake of this.retireWaiters.splice(0)) wake();
      for (const w of this.windows)
        w.grant.then(
          (g) => {
            if (!w.released) this.release(g.id);
            w.released = true;
          },
          () => {},
        );
    }
  }

  /**
   * The next chunk to read. While the current window's grant is on its way, the chunk is set up first, so that work
   * overlaps the PrepareRead; then it is trimmed to what was granted.
   */
  async next(): Promise<GrantedChunk | undefined> {
    while (!this.stopped && this.window) {
      const w = this.window;
      let chunk = !this.granted.has(w) && this.cursor < w.at + w.asked ? this.take(w.at + w.asked) : undefined;
      if (!chunk && this.stopped) return undefined;
      if (chunk) w.reading++; // set up under this window: its grant stays until the chunk settles
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
          if (g.blocks === w.asked && w.next) {
            if (this.window === w) this.window = w.next;
            this.retire(w);
            continue;
          }
          if (g.blocks < w.asked) this.short ??= { at: w.at, asked: w.asked, blocks: g.blocks };
          this.stopped = true;
          return undefined;
        }
        chunk = this.take(end);
        if (!chunk) return undefined;
        w.reading++;
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
    for (let i = 0; i < chunk.n; i++)
      this.blocks.finish(chunk.slots[i]!, chunk.a + i, chunk.landed, checksums, 2 * i * shards);
    this.inFlightBlocks -= chunk.n;
    window.reading--;
    this.retire(window);
  }

  /**
   * Windows: the first is one chunk, so the first read waits only for the smallest PrepareRead; the second (twice
   * the pipeline depth) is asked for alongside it; each later one (twice as large as the one before, up to
   * MAX_WINDOW_GROWTH times the depth) as soon as its predecessor was granted in full, so its PrepareRead overlaps
   * the reads. The pipeline runs on across window and chunk boundaries.
   */
  private openWindows(): void {
    const first = this.open(this.from, this.perChunk);
    this.window = first;
    if (first.asked < this.to - this.from) {
      first.next = this.open(this.from + first.asked, this.depth * 2);
      this.follow(first.next, this.depth * 4);
    }
  }

  private open(at: number, size: number): GrantWindow {
    const { shards, pageBytes } = this.req.ns;
    const byBytes = Math.max(1, Math.floor(MAX_WINDOW_BYTES / (shards * pageBytes)));
    const asked = Math.min(this.to - at, size, PEER_MAX_READ_HASHES, byBytes);
    const w: GrantWindow = { at, asked, grant: Promise.resolve() as never, reading: 0, released: false, freed: false };
    w.grant = this.prepare(w);
    this.windows.push(w);
    // Registered before any lane awaits this grant.
    w.grant.then(
      (g) => void this.granted.set(w, g),
      () => {},
    );
    return w;
  }

  private follow(w: GrantWindow, size: number): void {
    w.grant.then(
      (g) => {
        if (this.stopped || g.blocks !== w.asked || w.at + w.asked >= this.to) return;
        w.next = this.open(w.at + w.asked, size);
        this.follow(w.next, Math.min(size * 2, this.depth * MAX_WINDOW_GROWTH));
      },
      () => {},
    );
  }

  /**
   * PrepareRead of the window's blocks: a grant that fits the namespace (possibly short), or a throw. Refused by the
   * holder's --grant-pin-budget, it asks again once this session's earlier windows let go: a pull larger than the
   * budget moves through it window by window (a window is at most MAX_WINDOW_BYTES, so a budget of that much fits).
   */
  private async prepare(w: GrantWindow): Promise<ReadGrant> {
    const { req, link } = this;
    let g: ReadGrant | undefined;
    let refreshed = false;
    let pauses = 0;
    while (!g) {
      try {
        g = await link.prepareRead(
          this.session,
          req.ns.name,
          req.hashes(w.at, w.at + w.asked),
          req.hashLen,
          req.timeLeft(3000),
        );
      } catch (err) {
        const code = toKvError(err).code;
        if (code === 'PEER_LIMIT_REACHED') {
          // the holder's grant budget is full, with our own earlier windows (ask again once they let go; the holder
          // takes a released grant's pins back once its last answer left, so allow it a few short pauses) or with
          // other readers' grants (then the pull ends here, shorter)
          if (this.windows.some((x) => x.at < w.at && !x.freed)) {
            if (await this.earlierWindowsReleased(w.at)) continue;
            throw err;
          }
          if (pauses < BUDGET_PAUSES) {
            await sleep(BUDGET_PAUSE_MS << pauses++);
            if (!this.stopped) continue;
          }
        }
        if (code !== 'SESSION_UNKNOWN' || refreshed) throw err;
        refreshed = true;
        link.invalidate(this.session); // the peer restarted its side or dropped us: handshake again, once
        this.session = await link.ready(req.timeLeft(3000));
      }
    }
    const count = w.asked;
    if (g.blocks === 0) return g;
    const { shards, pageBytes } = req.ns;
    if (g.shards !== shards || g.pageBytes !== pageBytes || g.blocks > count) {
      this.release(g.id); // a grant we cannot use: give its pins back now
      throw new PullError(
        'layout_mismatch',
        `peer ${this.holder.nodeId}: ${g.blocks} blocks of ${g.shards} × ${g.pageBytes} B pages, expected ≤ ${count} of ${shards} × ${pageBytes} B`,
      );
    }
    this.grants++;
    return g;
  }

  /**
   * Releases a window's grant as soon as every chunk under it was set up and settled: a pull larger than the
   * holder's --grant-pin-budget then moves through it window by window instead of pinning everything at once.
   */
  private retire(w: GrantWindow): void {
    const g = this.granted.get(w);
    if (w.released || w.reading > 0 || !g || this.cursor < w.at + g.blocks) return;
    w.released = true;
    // a window waiting on the holder's budget asks again once the holder has taken the release
    void this.release(g.id).then(() => {
      w.freed = true;
      for (const wake of this.retireWaiters.splice(0)) wake();
    });
  }

  /** Waits until every window before block `at` released its grant; false when the session stopped meanwhile. */
  private async earlierWindowsReleased(at: number): Promise<boolean> {
    while (!this.stopped && this.windows.some((w) => w.at < at && !w.freed))
      await new Promise<void>((resolve) => this.retireWaiters.push(resolve));
    return !this.stopped;
  }

  /** ReleaseGrant; settles (never rejects) once the holder answered, or the call failed. */
  private release(grantId: GrantId | ''): Promise<void> {
    if (grantId === '') return Promise.resolve();
    return this.link.releaseGrant(this.session, grantId, 2000).then(
      () => {},
      (err: unknown) =>
        this.deps.logger.debug(
          { peer: this.holder.nodeId, grant: grantId, err: (err as Error).message },
          'release-grant failed (the grant expires on its own)',
        ),
    );
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
    for (let i = keep; i < c.n; i++) this.blocks.undo(c.slots[i]!);
    this.inFlightBlocks -= c.n - keep;
    c.n = keep;
    c.slots = c.slots.subarray(0, keep);
    c.local = c.local.subarray(0, keep * this.req.ns.shards);
  }

  private fail(error: unknown, stage: 'prepare' | 'read'): void {
    this.failure ??= { error, stage };
    this.stopped = true;
    for (const wake of this.retireWaiters.splice(0)) wake(); // windows waiting on the holder's budget give up
  }

  /**
   * A chunk whose bytes arrived but differ from the holder's checksums (`mismatches`: page indexes): all of its
   * blocks are dropped (none seals), the damaged ones counted.
   */
  private corrupt(g: ReadGrant, chunk: Chunk, mismatches: Uint32Array): PullError {
    const shards = this.req.ns.shards;
    let blocks = 0;
    for (let i = 0, last = -1; i < mismatches.length; i++) {
      const b = Math.floor(mismatches[i]! / shards);
      if (b !== last) blocks++;
      last = b;
    }
    this.mismatchedBlocks += blocks;
    const first = chunk.a + Math.floor(mismatches[0]! / shards);
    return new PullError(
      'checksum_mismatch',
      `${mismatches.length} of ${chunk.n * shards} pages read from ${this.holder.nodeId} under grant ${g.id} differ from their checksums (${blocks} blocks, the first block ${first} of the query); the chunk's ${chunk.n} blocks are dropped`,
    );
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
      if (code === 'TRANSPORT_FAILED' || code === 'TRANSPORT_TIMEOUT' || corrupt) this.link.invalidate(this.session);
      return this.outcome(sealed, this.failure);
    }
    const { short, from, to } = this;
    const id = this.holder.nodeId;
    if (short?.blocks === 0 && short.at === from) {
      return this.outcome(sealed, {
        error: new PullError('short_grant', `peer ${id} holds none of the ${to - from} blocks the metaserver listed`),
        stage: 'prepare',
      });
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

  private outcome(sealed: number, failure: { error: unknown; stage: 'handshake' | 'prepare' | 'read' }): PullOutcome {
    const e = toKvError(failure.error);
    return {
      sealed,
      failure: {
        reason: reasonOf(failure.error, failure.stage),
        error: new KvError(e.code, e.message, { cause: failure.error }),
      },
      shortfalls: [],
    };
  }
}
