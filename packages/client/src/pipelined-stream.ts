// One pipelined bidi-stream client (the gRPC analogue of a Redis pipeline): many calls in flight on one stream,
// answers matched by a uint32 id. Used by the engine's DataPlane (engine-data-plane.ts) and by PrefixQueryStream.
// The stream is opened lazily by the owner's `open`; a stream that fails or ends rejects its in-flight calls with the
// owner's `failure(err)` and the next call opens a new one; one timer fails calls past their deadline while any are
// in flight (the stream stays: a late answer is dropped). What an answer means is the owner's business: a call
// resolves with the raw response.
import * as grpc from '@grpc/grpc-js';
import type { KvError } from '@kvfabric/common';

export type Duplex<Req, Res> = grpc.ClientDuplexStream<Req, Res>;

export interface PipelinedStreamOptions<Req, Res> {
  /** Opens a new stream (when a call finds none). May throw: the call fails with the error. */
  open(): Duplex<Req, Res>;
  /** Deadline of a call unless the call says otherwise (ms). */
  deadlineMs: number;
  /** The error the in-flight calls of a stream that failed (`err`: its error) or ended (undefined) are rejected with. */
  failure(err: unknown): unknown;
  /** The error a call past its deadline is rejected with. */
  expired(request: Req): KvError;
}

export interface PipelinedCallOptions {
  deadlineMs?: number;
  signal?: AbortSignal;
}

interface Pending<Req, Res> {
  request: Req;
  resolve(res: Res): void;
  reject(err: unknown): void;
  /** Date.now() after which the call fails with `expired`. */
  deadline: number;
  /** The stream the call was written to. */
  stream: Duplex<Req, Res>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Deadlines are checked by one timer while calls are in flight, at this period at most. */
const MAX_DEADLINE_TICK_MS = 100;

export class PipelinedStream<Req extends { id: number }, Res extends { id: number }> {
  private stream: Duplex<Req, Res> | undefined;
  /** The current stream has carried a request (the next one is not its first). */
  private started = false;
  private readonly pending = new Map<number, Pending<Req, Res>>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;

  constructor(private readonly opts: PipelinedStreamOptions<Req, Res>) {
    this.tickMs = Math.max(1, Math.min(MAX_DEADLINE_TICK_MS, Math.ceil(opts.deadlineMs / 10)));
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Writes the request `build(id, first)` on the current stream (`first`: the first request on that stream) and
   * resolves with the answer carrying its id. Registered in flight before it returns.
   */
  call(build: (id: number, first: boolean) => Req, opts: PipelinedCallOptions = {}): Promise<Res> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let request: Req;
    let stream: Duplex<Req, Res>;
    try {
      stream = this.current();
      request = build(this.allocId(), !this.started);
    } catch (err) {
      return Promise.reject(err);
    }
    this.started = true;
    return new Promise<Res>((resolve, reject) => {
      const id = request.id;
      const deadline = Date.now() + (opts.deadlineMs ?? this.opts.deadlineMs);
      const p: Pending<Req, Res> = { request, resolve, reject, deadline, stream, signal, onAbort: undefined };
      if (signal) {
        p.onAbort = () => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          reject(signal.reason);
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      this.timer ??= setInterval(() => this.expire(), this.tickMs).unref();
      stream.write(request);
    });
  }

  /** The current stream takes no new calls and is half-closed: its calls still get their answers. */
  retire(): void {
    const retired = this.stream;
    this.stream = undefined;
    retired?.end();
  }

  /** Rejects every in-flight call with `err` and cancels every stream that has one (and the current one). */
  abandon(err: unknown): void {
    const streams = new Set([...this.pending.values()].map((p) => p.stream));
    if (this.stream) streams.add(this.stream);
    this.stream = undefined;
    for (const s of streams) {
      s.removeAllListeners('data');
      s.on('error', () => {}); // a late error of a stream given up on
      s.cancel();
    }
    for (const [id, p] of this.pending) this.settle(id, p).reject(err);
    this.stopTimer();
  }

  /** The current stream, opening one when there is none. */
  private current(): Duplex<Req, Res> {
    if (this.stream) return this.stream;
    const stream = this.opts.open();
    this.stream = stream;
    this.started = false;
    stream.on('data', (res: Res) => this.answer(res));
    stream.on('error', (err: unknown) => this.broken(stream, err));
    // ended without an error status (e.g. the server shuts down): no more answers, same as a failure
    stream.on('end', () => this.broken(stream, undefined));
    return stream;
  }

  private answer(res: Res): void {
    const p = this.pending.get(res.id);
    if (!p) return; // timed out or aborted already
    this.settle(res.id, p).resolve(res);
  }

  /** A stream failed or ended: its in-flight calls fail; the next call opens a new stream. */
  private broken(stream: Duplex<Req, Res>, err: unknown): void {
    if (this.stream === stream) this.stream = undefined;
    let failure: unknown;
    for (const [id, p] of this.pending) {
      if (p.stream !== stream) continue;
      failure ??= this.opts.failure(err);
      this.settle(id, p).reject(failure);
    }
  }

  /** Fails calls past their deadline. */
  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (now >= p.deadline) this.settle(id, p).reject(this.opts.expired(p.request));
    }
  }

  /** Takes a call out of flight (its abort listener too), stopping the timer with the last one. */
  private settle(id: number, p: Pending<Req, Res>): Pending<Req, Res> {
    this.pending.delete(id);
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    if (this.pending.size === 0) this.stopTimer();
    return p;
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A uint32 id not in flight (wraps around; 0 is never used). */
  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffff_ffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }
}

/**
 * Calls `lost` each time a ready connection of `client` goes away (a draining server's GOAWAY, a lost connection),
 * until the client is closed. A pipelined stream then retires its stream, so new calls go to a new connection.
 */
export function onConnectionLoss(client: grpc.Client, lost: () => void): void {
  const channel = client.getChannel();
  const state = channel.getConnectivityState(false);
  channel.watchConnectivityState(state, Infinity, () => {
    if (channel.getConnectivityState(false) === grpc.connectivityState.SHUTDOWN) return;
    if (state === grpc.connectivityState.READY) lost();
    onConnectionLoss(client, lost);
  });
}
