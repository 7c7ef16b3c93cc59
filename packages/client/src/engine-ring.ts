// An engine's command ring to its node (protocol: native/src/command_ring.h): save, query, load and release
// written into shared memory and run by a native node thread, with no gRPC message, no protobuf and no node
// JavaScript per call. A call waits for a free command slot when all are in flight; its promise settles when the
// node posted its completion (the node writes the ring's eventfd, watched by the event loop, once per batch). A call too
// large for a slot answers undefined (the caller sends it over gRPC instead), and so does a query the node answers
// RETRY (its missing suffix may be fetched from SSD or peers: that is the gRPC path's work).
import { KvError, copyHashes, isKvErrorCode, listHashLen, type HashInput } from '@kvfabric/common';
import { RING, createCommandRing, ringLayout, type CommandRing } from '@kvfabric/native/fd-pass';

export interface RingGeometry {
  /** Commands in flight at most (a power of two). Default 64. */
  entries?: number;
  /**
   * A command the node has not completed after this long fails every call in flight with TRANSPORT_TIMEOUT and
   * closes the ring (later calls go over gRPC). Default 30 s; KvEngine passes its call deadline.
   */
  deadlineMs?: number;
  /** Payload bytes per command (a multiple of 64); calls that need more go over gRPC. Default 64 KiB. */
  slotBytes?: number;
}

export interface RingSaveResult {
  outcomes: Uint8Array;
  stored: number;
  sealed: number;
}
export interface RingLoadResult {
  loaded: number;
  bytes: number;
}
export interface RingQueryResult {
  hits: number;
  leaseId: string;
  leaseExpiresAtMs: number;
}

const decoder = new TextDecoder();

export class EngineRing {
  readonly entries: number;
  readonly slotBytes: number;
  readonly native: CommandRing;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly words: Int32Array;
  /** The whole ring as u32 words (command slots are 64-byte aligned): block ids are written through it. */
  private readonly u32: Uint32Array;
  private readonly sq: Int32Array;
  private readonly cq: Int32Array;
  private readonly slots: number;
  private readonly stride: number;
  private readonly free: number[] = [];
  private readonly waiting: ((slot: number) => void)[] = [];
  /** Per command slot in flight: what settles its call (unset while the slot is free or being filled). */
  private readonly resolves: (((result: unknown) => void) | undefined)[];
  private readonly rejects: (((err: Error) => void) | undefined)[];
  private readonly submittedAt: Float64Array;
  /** Per command slot: its op and item count as this side wrote them (results are read by these, not the slot's). */
  private readonly ops: Uint8Array;
  private readonly counts: Uint32Array;
  private readonly deadlineMs: number;
  private watchdog: NodeJS.Timeout | undefined;
  /** Called once when the ring closes itself (a node that stopped answering). */
  onFailed: ((err: KvError) => void) | undefined;
  private sqTail = 0;
  private cqHead = 0;
  private inFlight = 0;
  private closed = false;

  constructor(name: string, geometry: RingGeometry = {}) {
    this.entries = geometry.entries ?? 64;
    this.slotBytes = geometry.slotBytes ?? 64 << 10;
    this.native = createCommandRing({ name, entries: this.entries, slotBytes: this.slotBytes }, () => this.drain());
    const layout = ringLayout(this.entries, this.slotBytes);
    const buf = this.native.buffer;
    this.bytes = new Uint8Array(buf);
    this.view = new DataView(buf);
    this.words = new Int32Array(buf, 0, RING.headerBytes / 4);
    this.u32 = new Uint32Array(buf, 0, buf.byteLength >>> 2);
    this.sq = new Int32Array(buf, layout.sq, this.entries);
    this.cq = new Int32Array(buf, layout.cq, this.entries);
    this.slots = layout.slots;
    this.stride = layout.stride;
    this.resolves = new Array<((result: unknown) => void) | undefined>(this.entries).fill(undefined);
    this.rejects = new Array<((err: Error) => void) | undefined>(this.entries).fill(undefined);
    this.submittedAt = new Float64Array(this.entries);
    this.ops = new Uint8Array(this.entries);
    this.counts = new Uint32Array(this.entries);
    this.deadlineMs = geometry.deadlineMs ?? 30_000;
    for (let i = this.entries - 1; i >= 0; i--) this.free.push(i);
  }

  get fd(): number {
    return this.native.fd;
  }

  get eventFd(): number {
    return this.native.eventFd;
  }

  get sizeBytes(): number {
    return this.native.sizeBytes;
  }

  /**
   * Saves blocks `ids` of the region under `hashes` (written straight into the command slot: no packed copy, no
   * typed array per call); undefined when the call does not fit a slot or ids and hashes differ in count. A bad
   * hash list throws here (listHashLen's error), before anything is written.
   */
  save(ids: ArrayLike<number>, hashes: HashInput): Promise<RingSaveResult> | undefined {
    const n = ids.length;
    const hashLen = 'packed' in hashes ? hashes.hashLen : listHashLen(hashes);
    const hashBytes = 'packed' in hashes ? hashes.packed.length : hashes.length * hashLen;
    if (n * (4 + hashLen) > this.slotBytes || hashBytes !== n * hashLen) return undefined;
    const slot = this.free.pop();
    if (slot === undefined) return this.take().then((s) => this.startSave(s, ids, hashes, hashLen));
    return this.startSave(slot, ids, hashes, hashLen);
  }

  /**
   * The local prefix hit and its lease; undefined when the query does not fit a slot, a promise of undefined when
   * the node wants it over gRPC. A bad hash list throws here (listHashLen's error).
   */
  query(hashes: HashInput, localOnly: boolean): Promise<RingQueryResult | undefined> | undefined {
    const hashLen = 'packed' in hashes ? hashes.hashLen : listHashLen(hashes);
    const hashBytes = 'packed' in hashes ? hashes.packed.length : hashes.length * hashLen;
    if (hashBytes > this.slotBytes || hashLen === 0) return undefined;
    const slot = this.free.pop();
    if (slot === undefined) return this.take().then((s) => this.startQuery(s, hashes, hashLen, localOnly));
    return this.startQuery(slot, hashes, hashLen, localOnly);
  }

  /** Scatters the lease's first ids.length blocks into the region; undefined when the call does not fit a slot. */
  load(leaseId: string, ids: ArrayLike<number>): Promise<RingLoadResult> | undefined {
    if (ids.length * 4 > this.slotBytes || !this.fitsLease(leaseId)) return undefined;
    const slot = this.free.pop();
    if (slot === undefined) return this.take().then((s) => this.startLoad(s, leaseId, ids));
    return this.startLoad(slot, leaseId, ids);
  }

  /** Ends a lease early; undefined when the lease id cannot travel on the ring (the caller uses gRPC). */
  release(leaseId: string): Promise<void> | undefined {
    if (!this.fitsLease(leaseId)) return undefined;
    const slot = this.free.pop();
    if (slot === undefined) return this.take().then((s) => this.startRelease(s, leaseId));
    return this.startRelease(slot, leaseId);
  }

  /** Fails every waiting and in-flight call (with `why`), stops watching the eventfd. Idempotent. */
  close(why = new KvError('TRANSPORT_UNAVAILABLE', 'engine ring: closed')): void {
    if (this.closed) return;
    this.closed = true;
    this.free.length = 0; // later calls find no slot: take() rejects them
    clearInterval(this.watchdog);
    const gone = why;
    for (const reject of this.rejects) reject?.(gone);
    this.resolves.fill(undefined);
    this.rejects.fill(undefined);
    for (const w of this.waiting.splice(0)) w(-1);
    this.native.close();
  }

  private startSave(slot: number, ids: ArrayLike<number>, hashes: HashInput, hashLen: number) {
    const at = this.header(slot, RING.op.save, ids.length, hashLen, 0);
    this.u32.set(ids, at >>> 2);
    copyHashes(hashes, this.bytes, at + 4 * ids.length);
    return this.submit(slot) as Promise<RingSaveResult>;
  }

  private startQuery(slot: number, hashes: HashInput, hashLen: number, localOnly: boolean) {
    const count = ('packed' in hashes ? hashes.packed.length / hashLen : hashes.length) | 0;
    const at = this.header(slot, RING.op.query, count, hashLen, localOnly ? RING.flag.localOnly : 0);
    copyHashes(hashes, this.bytes, at);
    return this.submit(slot) as Promise<RingQueryResult | undefined>;
  }

  private startLoad(slot: number, leaseId: string, ids: ArrayLike<number>) {
    const at = this.header(slot, RING.op.load, ids.length, 0, 0, leaseId);
    this.u32.set(ids, at >>> 2);
    return this.submit(slot) as Promise<RingLoadResult>;
  }

  private startRelease(slot: number, leaseId: string) {
    this.header(slot, RING.op.release, 0, 0, 0, leaseId);
    return this.submit(slot) as Promise<void>;
  }

  private fitsLease(leaseId: string): boolean {
    return leaseId.length === RING.leaseIdBytes && /^[A-Za-z0-9_-]+$/.test(leaseId);
  }

  private base(slot: number): number {
    return this.slots + slot * this.stride;
  }

  /** Writes a command's header; returns where its payload starts. */
  private header(slot: number, op: number, count: number, hashLen: number, flags: number, leaseId = ''): number {
    const base = this.base(slot);
    const c = RING.cmd;
    const b = this.bytes;
    this.ops[slot] = op;
    this.counts[slot] = count;
    b[base + c.op] = op;
    b[base + c.hashLen] = hashLen;
    b[base + c.flags] = flags;
    b[base + c.status] = 0;
    this.view.setUint32(base + c.count, count, true);
    if (leaseId === '') b.fill(0, base + c.leaseId, base + c.leaseId + RING.leaseIdBytes);
    else for (let i = 0; i < RING.leaseIdBytes; i++) b[base + c.leaseId + i] = leaseId.charCodeAt(i);
    return base + RING.commandHeaderBytes;
  }

  /** Waits for a free command slot (callers pop one themselves when there is one). */
  private take(): Promise<number> {
    if (this.closed) return Promise.reject(new KvError('TRANSPORT_UNAVAILABLE', 'engine ring: closed'));
    return new Promise((resolve, reject) =>
      this.waiting.push((s) =>
        s < 0 ? reject(new KvError('TRANSPORT_UNAVAILABLE', 'engine ring: closed')) : resolve(s),
      ),
    );
  }

  private give(slot: number): void {
    if (this.closed) return;
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }

  /**
   * Puts the command on the SQ; its promise settles when the node completed it: with the op's result (read out of
   * the slot by complete(), which also frees the slot), or an error.
   */
  private submit(slot: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.resolves[slot] = resolve;
      this.rejects[slot] = reject;
      this.submittedAt[slot] = performance.now();
      if (this.inFlight++ === 0) {
        this.native.ref();
        this.watchdog ??= setInterval(() => this.watch(), Math.max(50, this.deadlineMs / 4)).unref();
      }
      const tail = this.sqTail;
      this.sq[tail & (this.entries - 1)] = slot;
      this.sqTail = (tail + 1) | 0;
      Atomics.store(this.words, RING.sqTail / 4, this.sqTail);
      if (Atomics.exchange(this.words, RING.nodeSleeping / 4, 0) !== 0) this.native.wake();
    });
  }

  /**
   * Called from the event loop when the node wrote the eventfd: settles every completed command, then says it
   * waits again (engine_sleeping) and looks once more, so a completion posted meanwhile is not left waiting.
   */
  private drain(): void {
    for (;;) {
      const tail = Atomics.load(this.words, RING.cqTail / 4);
      let head = this.cqHead;
      while (head !== tail) {
        const slot = this.cq[head & (this.entries - 1)]!;
        head = (head + 1) | 0;
        this.complete(slot);
      }
      this.cqHead = head;
      Atomics.store(this.words, RING.cqHead / 4, head);
      Atomics.store(this.words, RING.engineSleeping / 4, 1);
      if (Atomics.load(this.words, RING.cqTail / 4) === head) return;
    }
  }

  /** While calls are in flight: one the node left unanswered past the deadline fails them all and closes the ring. */
  private watch(): void {
    if (this.inFlight === 0) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
      return;
    }
    const late = performance.now() - this.deadlineMs;
    for (let i = 0; i < this.entries; i++) {
      if (this.resolves[i] && this.submittedAt[i]! < late) {
        const err = new KvError(
          'TRANSPORT_TIMEOUT',
          `engine ring: the node completed no command within ${this.deadlineMs} ms; the ring is closed (calls go over gRPC)`,
        );
        this.close(err);
        this.onFailed?.(err);
        return;
      }
    }
  }

  private complete(slot: number): void {
    const resolve = this.resolves[slot];
    const reject = this.rejects[slot];
    if (!resolve || !reject) return;
    this.resolves[slot] = undefined;
    this.rejects[slot] = undefined;
    if (--this.inFlight === 0) this.native.unref();
    const base = this.base(slot);
    const status = this.bytes[base + RING.cmd.status]!;
    if (status === RING.status.error) {
      const err = this.error(base);
      this.give(slot);
      reject(err);
      return;
    }
    const result = this.result(slot, base, status);
    this.give(slot);
    resolve(result);
  }

  /** What a completed command answered, read out of its slot (before the slot is given to another call). */
  private result(
    slot: number,
    base: number,
    status: number,
  ): RingSaveResult | RingQueryResult | RingLoadResult | undefined {
    const c = RING.cmd;
    const v = this.view;
    switch (this.ops[slot]) {
      case RING.op.save: {
        const at = base + RING.commandHeaderBytes;
        return {
          outcomes: this.bytes.slice(at, at + this.counts[slot]!),
          stored: v.getUint32(base + c.r0, true),
          sealed: v.getUint32(base + c.r1, true),
        };
      }
      case RING.op.query: {
        if (status !== RING.status.ok) return undefined;
        const hits = v.getUint32(base + c.r0, true);
        return {
          hits,
          leaseId:
            hits > 0 ? decoder.decode(this.bytes.subarray(base + c.leaseId, base + c.leaseId + RING.leaseIdBytes)) : '',
          leaseExpiresAtMs: Number(v.getBigUint64(base + c.r4, true)),
        };
      }
      case RING.op.load:
        return { loaded: v.getUint32(base + c.r0, true), bytes: Number(v.getBigUint64(base + c.r4, true)) };
      default:
        return undefined;
    }
  }

  /** A failed command's error (its code and message, as the node wrote them into the slot). */
  private error(base: number): KvError {
    const len = Math.min(this.view.getUint32(base + RING.cmd.messageBytes, true), this.slotBytes);
    const at = base + RING.commandHeaderBytes;
    const text = decoder.decode(this.bytes.subarray(at, at + len));
    const space = text.indexOf(' ');
    const code = space > 0 ? text.slice(0, space) : '';
    return new KvError(isKvErrorCode(code) ? code : 'INTERNAL', space > 0 ? text.slice(space + 1) : text);
  }
}
