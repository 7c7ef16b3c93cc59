// The read pipeline of one pull (DESIGN §2 "Remote pull"): grants come in windows of PrepareRead; `chunksInFlight`
// workers each take the next chunk (`chunkBytes`) of the current window, allocate its local pages and pinned,
// unsealed slots (while the window's grant is still on its way when it is not back yet), `readv` it straight into
// the pool, and seal it when it lands whole. A failed or short chunk loses only its own blocks; no slot is left
// pinned and no page allocated when it ends.
import { toKvError } from '@kvfabric/common';
import type { Transport } from '@kvfabric/native';
import { BlockClass, type BlockIndex } from '../block-index.js';
import type { PagePool } from '../data-path.js';
import type { Evictor } from '../eviction.js';
import type { BlockFlights } from './block-flights.js';
import { PullError, keyOf, sleep, type Granted, type Holder, type PullCtx, type PullFailure, type Req, type Window } from './pull-types.js';

/** A window's grant is at most this many times the pipeline depth (`chunksInFlight` chunks). */
const MAX_WINDOW_GROWTH = 16;

export interface ReadPipelineOptions {
  index: BlockIndex;
  evictor: Evictor;
  pool: PagePool;
  transport: Pick<Transport, 'readv'>;
  flights: BlockFlights;
  counters: { blocks: number; bytes: number; inFlightBlocks: number };
  onSealed: (namespace: string, hash: Uint8Array) => void;
  /** Bytes per readv batch. */
  chunkBytes: number;
  /** Batches in flight per pull. */
  chunksInFlight?: number;
  /** Node-wide pull bandwidth cap in bytes/s (0: none). */
  maxBytesPerSec: number;
  timeoutMs: number;
  /** PrepareRead of blocks [at, at + count): a validated grant, possibly short. */
  prepare: (req: Req, h: Holder, ctx: PullCtx, at: number, count: number) => Promise<Granted>;
  fail: (reason: PullFailure, message: string) => void;
}

/** Blocks [a, a + n) of the request: their pinned slots and the local pages the readv fills (block-major). */
interface Chunk {
  a: number;
  n: number;
  slots: Int32Array;
  local: Float64Array;
  ok: boolean;
}

export class ReadPipeline {
  private paceAtMs = 0;

  constructor(private readonly opts: ReadPipelineOptions) {}

  /**
   * Reads blocks [from, to) of `req` from `h`; returns the leading blocks sealed. Throws (with `partial`) on failure.
   *
   * Windows: the first is one chunk, so the first read waits only for the smallest PrepareRead; the second (twice
   * the pipeline depth) is asked for alongside it; each later one (twice as large as the one before, up to
   * MAX_WINDOW_GROWTH times the depth) as soon as its predecessor was granted in full, so its PrepareRead overlaps
   * the reads. The readv pipeline runs on across window and chunk boundaries. The caller releases every grant.
   */
  async run(req: Req, h: Holder, ctx: PullCtx, from: number, to: number): Promise<number> {
    const { transport, counters } = this.opts;
    const { shards, pageBytes } = req.ns;
    const perChunk = Math.max(1, Math.floor(this.opts.chunkBytes / (shards * pageBytes)));
    const inFlight = Math.max(1, this.opts.chunksInFlight ?? 4);
    const depth = perChunk * inFlight;
    const lengths = new Float64Array(perChunk * shards).fill(pageBytes);
    const chunks: Chunk[] = []; // in block order
    const granted = new Map<Window, Granted>();
    let cursor = from; // the next block to set up
    let stop = false; // nothing new starts
    let failure: unknown;
    let exhausted = false;
    let short: { at: number; asked: number; blocks: number } | undefined;
    const open = (at: number, size: number): Window => {
      const w: Window = { at, asked: Math.min(to - at, size), grant: this.opts.prepare(req, h, ctx, at, Math.min(to - at, size)) };
      ctx.windows.push(w);
      // Registered before any worker awaits this grant.
      w.grant.then((g) => void granted.set(w, g), () => {});
      return w;
    };
    const follow = (w: Window, size: number) => {
      w.grant.then((g) => {
        if (stop || g.blocks !== w.asked || w.at + w.asked >= to) return;
        w.next = open(w.at + w.asked, size);
        follow(w.next, Math.min(size * 2, depth * MAX_WINDOW_GROWTH));
      }, () => {});
    };
    let win = open(from, perChunk);
    if (win.asked < to - from) {
      win.next = open(from + win.asked, depth * 2);
      follow(win.next, depth * 4);
    }
    /** Sets up the next chunk, up to block `limit`; undefined when there is nothing to read (`stop` says why). */
    const take = (limit: number): Chunk | undefined => {
      const a = cursor;
      const want = Math.min(limit, a + perChunk) - a;
      cursor = a + want;
      let c: Chunk;
      try {
        const got = this.setUp(req, a, want);
        c = { a, n: got.slots.length, slots: got.slots, local: got.local, ok: false };
        exhausted ||= got.exhausted;
      } catch (err) {
        failure ??= err;
        stop = true;
        return undefined;
      }
      chunks.push(c);
      if (c.n < want) stop = true; // pool full, or a block saved locally meanwhile
      counters.inFlightBlocks += c.n;
      return c.n > 0 ? c : undefined;
    };
    /**
     * Gives back the blocks of `c` from block `end` on (beyond a short grant, or all of them). Their claims stay:
     * the next holder may still pull them, and the fetch settles what is left unsealed.
     */
    const trim = (c: Chunk, end: number) => {
      const keep = Math.max(0, Math.min(c.n, end - c.a));
      for (let i = keep; i < c.n; i++) this.undo(req, c.slots[i]!);
      counters.inFlightBlocks -= c.n - keep;
      c.n = keep;
      c.slots = c.slots.subarray(0, keep);
      c.local = c.local.subarray(0, keep * shards);
    };
    const worker = async () => {
      while (!stop) {
        const w = win;
        // While the grant is on its way, set the chunk up: that work overlaps the PrepareRead.
        let chunk = !granted.has(w) && cursor < w.at + w.asked ? take(w.at + w.asked) : undefined;
        if (!chunk && stop) break;
        let g: Granted;
        try {
          g = await w.grant;
        } catch (err) {
          if (chunk) trim(chunk, chunk.a);
          failure ??= err;
          stop = true;
          break;
        }
        const end = w.at + g.blocks;
        if (chunk) {
          trim(chunk, end);
          if (chunk.n === 0) chunk = undefined;
        }
        if (!chunk) {
          if (stop) break;
          if (cursor >= end) {
            if (g.blocks === w.asked && w.next) {
              if (win === w) win = w.next;
              continue;
            }
            if (g.blocks < w.asked) short ??= { at: w.at, asked: w.asked, blocks: g.blocks };
            stop = true;
            break;
          }
          chunk = take(end);
          if (!chunk) break;
        }
        const { a, n } = chunk;
        const untilMs = Math.min(req.deadline, g.untilMs);
        try {
          const outOfTime = () => g.untilMs <= req.deadline
            ? new PullError('grant_expired', `grant ${g.id} from ${h.nodeId} expired before the pull finished`)
            : new PullError('deadline', `pull from ${h.nodeId}: ${this.opts.timeoutMs} ms elapsed`);
          if (!(await this.pace(n * shards * pageBytes, untilMs))) throw outOfTime();
          const left = untilMs - Date.now();
          if (left <= 0) throw outOfTime();
          const r = (a - w.at) * shards;
          await transport.readv(h.nodeId, Number(g.id), g.remote.subarray(r, r + n * shards), chunk.local, lengths.subarray(0, n * shards), { timeoutMs: Math.max(1, Math.floor(left)), grantKey: g.key });
          chunk.ok = true;
        } catch (err) {
          failure ??= err;
          stop = true;
        }
        for (let i = 0; i < n; i++) this.finish(req, chunk.slots[i]!, a + i, chunk.ok);
        counters.inFlightBlocks -= n;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    stop = true;
    let sealed = 0;
    for (const c of chunks) {
      if (!c.ok && c.n > 0) break;
      sealed += c.n;
    }
    if (failure !== undefined) {
      const code = toKvError(failure).code;
      if (code === 'TRANSPORT_FAILED' || code === 'TRANSPORT_TIMEOUT') ctx.link.invalidate(ctx.session);
      throw Object.assign(failure instanceof Error ? failure : new Error(String(failure)), { partial: sealed });
    }
    if (short?.blocks === 0 && short.at === from) throw new PullError('short_grant', `peer ${h.nodeId} holds none of the ${to - from} blocks the metaserver listed`);
    if (short) this.opts.fail('short_grant', `peer ${h.nodeId} granted ${short.blocks} of blocks ${short.at - from}..${short.at - from + short.asked - 1} of the ${to - from} asked for`);
    if (exhausted) this.opts.fail('pool_exhausted', `pool full: ${sealed} of ${to - from} blocks fit`);
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
      const off = (at + n) * req.hashLen;
      if (index.lookup(ns.id, req.packed, off, req.hashLen) >= 0) break; // saved locally meanwhile
      const slot = index.slotForShard(ns.id, req.packed, off, req.hashLen, shards, 0, pageBytes, BlockClass.Pulled);
      index.pin(slot);
      for (let s = 0; s < shards; s++) index.assign(slot, s, pages[n * shards + s]!);
      slots[n] = slot;
    }
    for (let p = n * shards; p < pages.length; p++) pool.free(pages[p]!, pageBytes);
    return { slots: slots.subarray(0, n), local: pages.subarray(0, n * shards), exhausted: pages.length < count * shards };
  }

  /** Seals a block whose pages all arrived, or undoes it; unpins; settles its flight. */
  private finish(req: Req, slot: number, i: number, arrived: boolean): void {
    const { index, flights, counters } = this.opts;
    const { ns } = req;
    const key = keyOf(req, i);
    if (arrived) {
      let sealed = false;
      for (let s = 0; s < ns.shards; s++) sealed = index.markShardWritten(slot, s) || sealed;
      index.unpin(slot);
      if (sealed) {
        counters.blocks++;
        counters.bytes += ns.shards * ns.pageBytes;
        this.opts.onSealed(ns.name, req.packed.subarray(i * req.hashLen, (i + 1) * req.hashLen));
      }
      flights.settle(ns.id, key, sealed);
      return;
    }
    this.undo(req, slot);
    flights.settle(ns.id, key, false);
  }

  /** Frees the pages of a block that did not arrive and unpins its (unsealed, so invisible) slot. */
  private undo(req: Req, slot: number): void {
    const { index, pool } = this.opts;
    const { shards, pageBytes } = req.ns;
    for (let s = 0; s < shards; s++) pool.free(index.unassign(slot, s), pageBytes);
    index.unpin(slot);
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
}
