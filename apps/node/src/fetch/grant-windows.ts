// The grants of one pull session (DESIGN §2 "Remote pull"): PrepareRead in growing windows, each asked for one
// window ahead of the reads that need it (so a pull pins at most two windows of the holder's pages, however long it
// is), each released as soon as every chunk under it was read (its pins go back to the holder's --grant-pin-budget
// then, not at the end of the pull), a window refused for that budget asked again as the session's earlier windows
// are released, and every grant released when the session ends. A window's release rides on the next PrepareRead
// (`release_grant_ids`, applied by the holder before it grants) when one is asked for at once, else it is a
// ReleaseGrant of its own: one call per window instead of two. Windows grow up to a share of the holder's pin
// budget. What is read under a window (chunks, slots, seals) is the session's business: it counts a window's chunks
// in `reading`.
import { setTimeout as sleep } from 'node:timers/promises';
import { toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { GrantId } from '@kvfabric/native';
import { PEER_MAX_READ_HASHES } from '../peer/peer-limits.js';
import { PullError, type Holder, type Link, type PullRequest, type ReadGrant } from './pull-types.js';

/**
 * A window's grant is at most this many times the pipeline depth (`chunksInFlight` chunks), and MIN_WINDOW_BYTES
 * until the holder said its pin budget; then a quarter of that budget (two sessions' two windows), within
 * [MIN_WINDOW_BYTES, MAX_WINDOW_BYTES] (MAX_WINDOW_BYTES when it has none).
 */
const MAX_WINDOW_GROWTH = 16;
const MIN_WINDOW_BYTES = 64 * 1024 * 1024;
const MAX_WINDOW_BYTES = 256 * 1024 * 1024;

/** The largest window for a holder whose grants may pin `pinBudgetBytes` (0: no budget). */
export function windowBytesFor(pinBudgetBytes: number): number {
  if (pinBudgetBytes <= 0) return MAX_WINDOW_BYTES;
  return Math.min(MAX_WINDOW_BYTES, Math.max(MIN_WINDOW_BYTES, Math.floor(pinBudgetBytes / 4)));
}
/**
 * Pauses for a window the holder's grant budget refused while none of ours is held: doubling from BUDGET_PAUSE_MS
 * up to BUDGET_PAUSE_MAX_MS, at most BUDGET_PAUSES of them and never past the pull's deadline. Other readers' grants
 * go back as they read, so a busy holder is waited out briefly rather than missed.
 */
const BUDGET_PAUSES = 12;
const BUDGET_PAUSE_MS = 10;
const BUDGET_PAUSE_MAX_MS = 250;

/** One PrepareRead of the session, for blocks [at, at + asked) of the request. */
export interface GrantWindow {
  at: number;
  asked: number;
  grant: Promise<ReadGrant>;
  /** The window after this one (asked for once this one was granted in full and the session reads it). */
  next?: GrantWindow;
  /** How many blocks the window after this one asks for. */
  nextSize: number;
  /** The session took a chunk of this window. */
  started: boolean;
  /** Chunks read under this window's grant and not yet settled (counted by the session). */
  reading: number;
  /** Its grant was released: every chunk under it was read, so its pins go back to the holder's budget now. */
  released: boolean;
  /** The holder answered that release (its budget has the pins back). */
  freed: boolean;
}

export interface GrantWindowsOptions {
  link: Link;
  logger: Logger;
  holder: Holder;
  req: PullRequest;
  /** The session's blocks [from, to) of the request. */
  from: number;
  to: number;
  /** Blocks per chunk, and per pipeline depth (all chunks in flight). */
  perChunk: number;
  depth: number;
}

/** What the windows read of the session they serve. */
export interface WindowReader {
  /** Nothing new starts: no window opens, no budget refusal is waited out. */
  stopped(): boolean;
  /** The next block the session sets up: a window is released only once the session moved past its blocks. */
  cursor(): number;
}

export class GrantWindows {
  /** Grants received (not empty). */
  grants = 0;
  /** The window chunks are taken from now. */
  current: GrantWindow | undefined;
  private session = 0n;
  private readonly windows: GrantWindow[] = [];
  private readonly granted = new Map<GrantWindow, ReadGrant>();
  private readonly releaseWaiters: (() => void)[] = [];
  /** Released windows whose ReleaseGrant rides on the next PrepareRead. */
  private readonly toRelease: GrantWindow[] = [];
  private readonly openWaiters: (() => void)[] = [];

  constructor(
    private readonly opts: GrantWindowsOptions,
    private readonly reader: WindowReader,
  ) {}

  /** The peer session grants are asked under (renewed once if the holder forgot it). */
  get peerSession(): bigint {
    return this.session;
  }

  /**
   * Opens the windows under `session`: the first is one chunk, so the first read waits only for the smallest
   * PrepareRead; the second (twice the pipeline depth) is asked for alongside it; each later one (twice as large as
   * the one before, up to MAX_WINDOW_GROWTH times the depth and MAX_WINDOW_BYTES) once its predecessor was granted
   * in full and the session started reading it: its PrepareRead overlaps the reads of its predecessor, and a long
   * pull does not pin all of its pages at once (asking for every window up front filled the holder's pin budget and
   * drained the pipeline while the session waited for its own releases). The pipeline runs on across window and
   * chunk boundaries.
   */
  start(session: bigint): void {
    const { from, to, perChunk, depth } = this.opts;
    this.session = session;
    const first = this.open(from, perChunk, depth * 2, MIN_WINDOW_BYTES);
    this.current = first;
    first.started = true;
    if (first.asked < to - from) first.next = this.open(from + first.asked, depth * 2, depth * 4, MIN_WINDOW_BYTES);
  }

  /** The session takes a chunk of `w`: the window after it is asked for now if `w` was granted in full. */
  taking(w: GrantWindow): void {
    if (w.started) return;
    w.started = true;
    this.ahead(w);
  }

  /** The window's grant once it arrived (set before any awaiter of `w.grant` resumes). */
  grantOf(w: GrantWindow): ReadGrant | undefined {
    return this.granted.get(w);
  }

  /**
   * Moves on from `w`, granted in full and all of its blocks taken, to the window after it (waiting until that one
   * was asked for) and releases `w` when it can. False when there is no window after it: `w` ends the session's
   * blocks, or the session stopped.
   */
  async advance(w: GrantWindow): Promise<boolean> {
    while (!w.next && !this.reader.stopped() && w.at + w.asked < this.opts.to)
      await new Promise<void>((resolve) => this.openWaiters.push(resolve));
    if (!w.next) return false;
    if (this.current === w) this.current = w.next;
    this.retire(w);
    return true;
  }

  /**
   * Releases a window's grant as soon as every chunk under it was set up and settled: a pull larger than the
   * holder's --grant-pin-budget then moves through it window by window instead of pinning everything at once.
   * The release goes with the PrepareRead this lets start (the next window's, or one waiting on the budget), or
   * on its own when none starts in this turn of the event loop.
   */
  retire(w: GrantWindow): void {
    const g = this.granted.get(w);
    if (w.released || w.reading > 0 || !g || this.reader.cursor() < w.at + g.blocks) return;
    w.released = true;
    if (g.id === '' || this.reader.stopped()) return this.releaseAlone(w, g.id);
    this.toRelease.push(w);
    if (this.current) this.ahead(this.current);
    for (const wake of this.releaseWaiters.splice(0)) wake(); // a window refused for the budget asks again now
    setImmediate(() => {
      const at = this.toRelease.indexOf(w);
      if (at < 0) return; // a PrepareRead took it
      this.toRelease.splice(at, 1);
      this.releaseAlone(w, g.id);
    });
  }

  /** Wakes windows waiting for the holder's budget (they give up when the session stopped). */
  wake(): void {
    for (const wake of this.releaseWaiters.splice(0)) wake();
    for (const wake of this.openWaiters.splice(0)) wake();
  }

  /** The session ended: every grant asked for is released (now, or once it arrives). */
  releaseAll(): void {
    this.wake();
    for (const w of this.toRelease.splice(0)) {
      const g = this.granted.get(w);
      if (g) this.releaseAlone(w, g.id);
    }
    for (const w of this.windows)
      w.grant.then(
        (g) => {
          if (!w.released) void this.release(g.id);
          w.released = true;
        },
        () => {},
      );
  }

  /** Its ReleaseGrant, on its own; `freed` once the holder answered (or the call failed: the grant expires). */
  private releaseAlone(w: GrantWindow, grantId: GrantId | ''): void {
    void this.release(grantId).then(() => this.freed([w]));
  }

  /** The holder took these windows' releases: a window waiting on its budget or its turn may go now. */
  private freed(ws: GrantWindow[]): void {
    if (ws.length === 0) return;
    for (const w of ws) w.freed = true;
    this.wake();
    if (this.current) this.ahead(this.current);
  }

  private open(at: number, size: number, nextSize: number, maxBytes: number): GrantWindow {
    const { shards, pageBytes } = this.opts.req.ns;
    const byBytes = Math.max(1, Math.floor(maxBytes / (shards * pageBytes)));
    const asked = Math.min(this.opts.to - at, size, PEER_MAX_READ_HASHES, byBytes);
    const w: GrantWindow = {
      at,
      asked,
      nextSize,
      grant: Promise.resolve() as never,
      reading: 0,
      started: false,
      released: false,
      freed: false,
    };
    w.grant = this.prepare(w);
    this.windows.push(w);
    // Registered before any lane awaits this grant.
    w.grant.then(
      (g) => {
        this.granted.set(w, g);
        this.ahead(w);
      },
      () => {},
    );
    return w;
  }

  /**
   * Asks for the window after `w` once `w` was granted in full, the session reads it and the holder took back every
   * window before it (or their releases go with this PrepareRead): the session pins at most two windows, and a
   * budget of that much is never refused by its own.
   */
  private ahead(w: GrantWindow): void {
    const g = this.granted.get(w);
    if (w.next || !w.started || !g || g.blocks !== w.asked || this.reader.stopped()) return;
    if (w.at + w.asked >= this.opts.to || this.windows.some((x) => x.at < w.at && !this.letGo(x))) return;
    const growth = Math.min(w.nextSize * 2, this.opts.depth * MAX_WINDOW_GROWTH);
    w.next = this.open(w.at + w.asked, w.nextSize, growth, windowBytesFor(g.pinBudgetBytes));
    for (const wake of this.openWaiters.splice(0)) wake();
  }

  /**
   * PrepareRead of the window's blocks: a grant that fits the namespace (possibly short), or a throw. Refused by the
   * holder's --grant-pin-budget, it asks again once this session's earlier windows let go: a pull larger than the
   * budget moves through it window by window (a window is at most MAX_WINDOW_BYTES, so a budget of that much fits).
   */
  private async prepare(w: GrantWindow): Promise<ReadGrant> {
    const { req, link, holder } = this.opts;
    let g: ReadGrant | undefined;
    let refreshed = false;
    let pauses = 0;
    while (!g) {
      const carried = this.toRelease.splice(0);
      try {
        g = await link.prepareRead(
          this.session,
          req.ns.name,
          req.hashes(w.at, w.at + w.asked),
          req.hashLen,
          req.timeLeft(3000),
          carried.map((x) => this.granted.get(x)!.id),
        );
        this.freed(carried);
      } catch (err) {
        // The holder released them, or refused one and released none (then they expired, or are not ours: ask
        // again without them), or the call failed (they expire on their own).
        this.freed(carried);
        const { code, message } = toKvError(err);
        if (carried.length > 0 && message.includes('release_grant_ids')) continue;
        if (code === 'PEER_LIMIT_REACHED') {
          if (this.toRelease.length > 0) continue; // windows released meanwhile: ask again with their releases
          // the holder's grant budget is full, with our own earlier windows (ask again each time one of them lets
          // go, while the session reads on; the holder takes a released grant's pins back once its last answer
          // left) or with other readers' grants (then pause, bounded, while they read; past that the pull ends here,
          // shorter)
          if (this.windows.some((x) => x.at < w.at && !this.letGo(x))) {
            if (await this.anEarlierWindowFreed()) continue;
            throw err;
          }
          const pause = Math.min(BUDGET_PAUSE_MS << pauses, BUDGET_PAUSE_MAX_MS);
          if (pauses < BUDGET_PAUSES && req.timeLeft(Infinity) > 2 * pause) {
            pauses++;
            await sleep(pause);
            if (!this.reader.stopped()) continue;
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
      void this.release(g.id); // a grant we cannot use: give its pins back now
      throw new PullError(
        'layout_mismatch',
        `peer ${holder.nodeId}: ${g.blocks} blocks of ${g.shards} × ${g.pageBytes} B pages, expected ≤ ${count} of ${shards} × ${pageBytes} B`,
      );
    }
    this.grants++;
    return g;
  }

  /** The window's grant went back to the holder, or goes with the next PrepareRead. */
  private letGo(w: GrantWindow): boolean {
    return w.freed || this.toRelease.includes(w);
  }

  /** Waits until the holder took back one more of this session's grants; false when the session stopped. */
  private async anEarlierWindowFreed(): Promise<boolean> {
    if (this.reader.stopped()) return false;
    await new Promise<void>((resolve) => this.releaseWaiters.push(resolve));
    return !this.reader.stopped();
  }

  /** ReleaseGrant; settles (never rejects) once the holder answered, or the call failed. */
  private release(grantId: GrantId | ''): Promise<void> {
    if (grantId === '') return Promise.resolve();
    return this.opts.link.releaseGrant(this.session, grantId, 2000).then(
      () => {},
      (err: unknown) =>
        this.opts.logger.debug(
          { peer: this.opts.holder.nodeId, grant: grantId, err: (err as Error).message },
          'release-grant failed (the grant expires on its own)',
        ),
    );
  }
}
