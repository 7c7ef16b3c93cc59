// The grants of one pull session (DESIGN §2 "Remote pull"): PrepareRead in growing windows, each asked for ahead of
// the reads that need it, each released as soon as every chunk under it was read (its pins go back to the holder's
// --grant-pin-budget then, not at the end of the pull), a window refused for that budget asked again once the
// session's earlier windows were released, and every grant released when the session ends. What is read under a
// window (chunks, slots, seals) is the session's business: it counts a window's chunks in `reading`.
import { setTimeout as sleep } from 'node:timers/promises';
import { toKvError } from '@kvfabric/common';
import { type Logger } from '@kvfabric/common/observability';
import type { GrantId } from '@kvfabric/native';
import { PEER_MAX_READ_HASHES } from '../peer/peer-limits.js';
import { PullError, type Holder, type Link, type PullRequest, type ReadGrant } from './pull-types.js';

/** A window's grant is at most this many times the pipeline depth (`chunksInFlight` chunks), and this many bytes. */
const MAX_WINDOW_GROWTH = 16;
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;
/** Pauses (doubling from BUDGET_PAUSE_MS) for a window the holder's grant budget refused after ours let go. */
const BUDGET_PAUSES = 3;
const BUDGET_PAUSE_MS = 10;

/** One PrepareRead of the session, for blocks [at, at + asked) of the request. */
export interface GrantWindow {
  at: number;
  asked: number;
  grant: Promise<ReadGrant>;
  /** The window after this one (used only once this one was granted in full). */
  next?: GrantWindow;
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
   * the one before, up to MAX_WINDOW_GROWTH times the depth) as soon as its predecessor was granted in full, so its
   * PrepareRead overlaps the reads. The pipeline runs on across window and chunk boundaries.
   */
  start(session: bigint): void {
    const { from, to, perChunk, depth } = this.opts;
    this.session = session;
    const first = this.open(from, perChunk);
    this.current = first;
    if (first.asked < to - from) {
      first.next = this.open(from + first.asked, depth * 2);
      this.follow(first.next, depth * 4);
    }
  }

  /** The window's grant once it arrived (set before any awaiter of `w.grant` resumes). */
  grantOf(w: GrantWindow): ReadGrant | undefined {
    return this.granted.get(w);
  }

  /** Moves on from `w`, whose blocks were all taken, to the window after it, and releases `w` when it can. */
  advance(w: GrantWindow): void {
    if (this.current === w) this.current = w.next;
    this.retire(w);
  }

  /**
   * Releases a window's grant as soon as every chunk under it was set up and settled: a pull larger than the
   * holder's --grant-pin-budget then moves through it window by window instead of pinning everything at once.
   */
  retire(w: GrantWindow): void {
    const g = this.granted.get(w);
    if (w.released || w.reading > 0 || !g || this.reader.cursor() < w.at + g.blocks) return;
    w.released = true;
    // a window waiting on the holder's budget asks again once the holder has taken the release
    void this.release(g.id).then(() => {
      w.freed = true;
      this.wake();
    });
  }

  /** Wakes windows waiting for the holder's budget (they give up when the session stopped). */
  wake(): void {
    for (const wake of this.releaseWaiters.splice(0)) wake();
  }

  /** The session ended: every grant asked for is released (now, or once it arrives). */
  releaseAll(): void {
    this.wake();
    for (const w of this.windows)
      w.grant.then(
        (g) => {
          if (!w.released) void this.release(g.id);
          w.released = true;
        },
        () => {},
      );
  }

  private open(at: number, size: number): GrantWindow {
    const { shards, pageBytes } = this.opts.req.ns;
    const byBytes = Math.max(1, Math.floor(MAX_WINDOW_BYTES / (shards * pageBytes)));
    const asked = Math.min(this.opts.to - at, size, PEER_MAX_READ_HASHES, byBytes);
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
        if (this.reader.stopped() || g.blocks !== w.asked || w.at + w.asked >= this.opts.to) return;
        w.next = this.open(w.at + w.asked, size);
        this.follow(w.next, Math.min(size * 2, this.opts.depth * MAX_WINDOW_GROWTH));
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
    const { req, link, holder } = this.opts;
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

  /** Waits until every window before block `at` released its grant; false when the session stopped meanwhile. */
  private async earlierWindowsReleased(at: number): Promise<boolean> {
    while (!this.reader.stopped() && this.windows.some((w) => w.at < at && !w.freed))
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
