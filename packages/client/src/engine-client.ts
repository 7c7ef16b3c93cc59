// The engine SDK: connect to the local kvfabric-node (unix socket or loopback tcp), register a KV region, save,
// query (a LOADING answer is waited out on the node with wait_ms; a node without it is polled), load, release; a
// Session stream keeps the instance alive. Errors are KvError with the server's code. Save, query, load and release
// travel as items of one DataPlane stream per engine (no call setup, headers or trailers per operation), or as unary
// calls when the node has no DataPlane.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import {
  EngineClient,
  QueryState,
  type DataPlaneRequest,
  type DataPlaneResponse,
  type LoadRequest,
  type LoadResponse,
  type QueryRequest,
  type QueryResponse,
  type ReleaseRequest,
  type ReleaseResponse,
  type SaveRequest,
  type SaveResponse,
  type SessionEvent,
  type SessionMessage,
  type StatusResponse,
} from '@kvfabric/proto';
import { KvError, isKvErrorCode, packHashes, packU32, type PackedHashes } from '@kvfabric/common';
import { CHANNEL_OPTIONS, ERROR_CODE_KEY, fromGrpcError } from '@kvfabric/common/rpc';
import type { KvGeometry, KvRegion } from './kv-region.js';

export type HashInput = readonly Uint8Array[] | PackedHashes;

/** A connection to a node's Engine service. `target`: a unix socket path, "unix:/path", or "host:port". */
export class EngineConnection {
  readonly stub: EngineClient;

  constructor(readonly target: string, readonly deadlineMs = 30_000) {
    const t = target.startsWith('/') ? `unix:${target}` : target;
    this.stub = new EngineClient(t, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, 'grpc.keepalive_time_ms': 5_000 });
  }

  /** One unary call with a deadline; errors come back as KvError. */
  call<Req, Res>(method: string, request: Req, deadlineMs = this.deadlineMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (this.stub as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(this.stub, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res)));
    });
  }

  status(): Promise<StatusResponse> {
    return this.call('status', {});
  }

  close(): void {
    this.stub.close();
  }
}

export interface RegisterOptions {
  /** Unix socket path of the node (`--engine-socket`), or "host:port" for `--engine-addr`. */
  target: string;
  namespace: string;
  region: KvRegion | { path?: string; shmName?: string; sizeBytes: number; geometry: KvGeometry };
  instanceId?: string;
  /** The TP group; every rank of one engine passes the same id. Default: instanceId. */
  engineId?: string;
  tpSize?: number;
  tpRank?: number;
  worldSize?: number;
  replicated?: boolean;
  /** Hold a Session stream (default true): when this process dies, the node drops the instance. */
  session?: boolean;
  deadlineMs?: number;
}

export interface QueryOptions {
  requestId?: string;
  localOnly?: boolean;
  /** Give up waiting for LOADING after this long (then the local answer is asked for). Default 10 s. */
  timeoutMs?: number;
  /**
   * The first pause before asking again (doubling up to 50 ms) when the node answers LOADING at once: a node that
   * predates wait_ms. A current node holds the call until the fetch finishes (long-poll), so no polling happens.
   * Default 2 ms.
   */
  pollMs?: number;
}

/** The most one Query call asks the node to wait for its fetch (wait_ms); longer waits take more rounds. */
export const QUERY_WAIT_ROUND_MS = 2_000;
/** An answer that came back this much earlier than the wait asked for, still LOADING, means wait_ms was ignored. */
const WAIT_IGNORED_SLACK_MS = 5;

export interface QueryAnswer {
  hits: number;
  leaseId: string;
  leaseExpiresAtMs: number;
  breakdown: { local: number; ssd: number; remote: number };
}

export class KvEngine {
  readonly conn: EngineConnection;
  readonly instanceId: string;
  nodeId = '';
  pageBytes = 0;
  shards = 0;
  private session: grpc.ClientDuplexStream<SessionMessage, SessionEvent> | undefined;
  private sessionTimer: NodeJS.Timeout | undefined;
  private readonly plane: DataPlane;
  private closed = false;
  /** Set when the session stream ended without close() (node gone or restarted). */
  sessionError: KvError | undefined;

  private constructor(conn: EngineConnection, instanceId: string) {
    this.conn = conn;
    this.instanceId = instanceId;
    this.plane = new DataPlane(conn, instanceId);
  }

  static async register(opts: RegisterOptions): Promise<KvEngine> {
    const instanceId = opts.instanceId ?? `engine-${process.pid}-${randomBytes(4).toString('hex')}`;
    const conn = new EngineConnection(opts.target, opts.deadlineMs);
    const engine = new KvEngine(conn, instanceId);
    const r = opts.region;
    const g = r.geometry;
    const source = 'path' in r && r.path ? { $case: 'path' as const, value: r.path } : { $case: 'shmName' as const, value: (r as { shmName: string }).shmName };
    try {
      const res = await conn.call<object, { nodeId: string; pageBytes: bigint; shards: number }>('registerInstance', {
        instanceId,
        engineId: opts.engineId ?? '',
        namespace: opts.namespace,
        tpSize: opts.tpSize ?? 1,
        tpRank: opts.tpRank ?? 0,
        worldSize: opts.worldSize ?? 0,
        replicated: opts.replicated ?? false,
        geometry: {
          segmentOffsets: g.segmentOffsets.map(BigInt),
          segmentBytes: BigInt(g.segmentBytes),
          blockStrideBytes: BigInt(g.blockStrideBytes),
          numBlocks: g.numBlocks,
        },
        region: { source, sizeBytes: BigInt(r.sizeBytes) },
      });
      engine.nodeId = res.nodeId;
      engine.pageBytes = Number(res.pageBytes);
      engine.shards = res.shards;
      if (opts.session !== false) await engine.openSession();
      return engine;
    } catch (err) {
      conn.close();
      throw fromGrpcError(err);
    }
  }

  private openSession(): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.conn.stub.session();
      this.session = stream;
      let opened = false;
      stream.on('data', () => {
        if (!opened) {
          opened = true;
          resolve();
        }
      });
      stream.on('error', (err) => {
        const e = fromGrpcError(err);
        if (!opened) reject(e);
        else if (!this.closed) this.sessionError = e;
      });
      stream.on('end', () => {
        if (!this.closed) this.sessionError ??= new KvError('SESSION_UNKNOWN', 'session ended by the node');
      });
      stream.write({ instanceId: this.instanceId });
      this.sessionTimer = setInterval(() => stream.write({ instanceId: '' }), 10_000);
      this.sessionTimer.unref();
    });
  }

  async save(blockIds: ArrayLike<number>, hashes: HashInput): Promise<{ outcomes: Uint8Array; stored: number; sealed: number }> {
    const res = await this.plane.call('save', { instanceId: this.instanceId, blockIds: packU32(blockIds), hashes: toHashList(hashes) });
    return { outcomes: new Uint8Array(res.outcomes), stored: res.stored, sealed: res.sealed };
  }

  /**
   * The prefix hit and its lease. While the node fetches the rest (LOADING), the same request id is asked again
   * with wait_ms (the node answers when the fetch finished: usually one round trip), or polled every pollMs when
   * the node answers LOADING at once (a node without wait_ms). Past timeoutMs the local answer is asked for.
   */
  async query(hashes: HashInput, opts: QueryOptions = {}): Promise<QueryAnswer> {
    const requestId = opts.requestId ?? randomBytes(8).toString('hex');
    const hashList = toHashList(hashes);
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    // Keep each round well inside the call's deadline, so a long wait is never taken for a dead node.
    const roundMs = Math.max(0, Math.min(QUERY_WAIT_ROUND_MS, Math.floor(this.conn.deadlineMs / 2)));
    let pollMs = opts.pollMs ?? 2;
    for (;;) {
      const sent = Date.now();
      const localOnly = (opts.localOnly ?? false) || sent > deadline;
      const waitMs = localOnly ? 0 : Math.min(roundMs, Math.max(0, deadline - sent));
      const res = await this.plane.call('query', { instanceId: this.instanceId, requestId, hashes: hashList, localOnly, waitMs });
      if (res.state === QueryState.QUERY_STATE_READY) {
        return { hits: res.hits, leaseId: res.leaseId, leaseExpiresAtMs: Number(res.leaseExpiresAtMs), breakdown: res.breakdown ?? { local: res.hits, ssd: 0, remote: 0 } };
      }
      if (waitMs > 0 && Date.now() - sent + WAIT_IGNORED_SLACK_MS >= waitMs) continue; // the node waited: ask again at once
      await new Promise((r) => setTimeout(r, pollMs));
      pollMs = Math.min(50, pollMs * 2);
    }
  }

  /** Scatters the lease's first blockIds.length blocks into the region at blockIds. Consumes the lease for this rank. */
  async load(leaseId: string, blockIds: ArrayLike<number>): Promise<{ loaded: number; bytes: number }> {
    const res = await this.plane.call('load', { instanceId: this.instanceId, leaseId, blockIds: packU32(blockIds) });
    return { loaded: res.loaded, bytes: Number(res.bytes) };
  }

  async release(leaseId: string): Promise<void> {
    await this.plane.call('release', { instanceId: this.instanceId, leaseId });
  }

  status(): Promise<StatusResponse> {
    return this.conn.status();
  }

  /** Unregisters (best effort), ends the session, closes the channel. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sessionTimer);
    this.plane.close();
    try {
      await this.conn.call('unregisterInstance', { instanceId: this.instanceId }, 2000);
    } catch {
      // the session's end drops it anyway
    }
    this.session?.end();
    this.session?.cancel();
    this.conn.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function toHashList(hashes: HashInput): { packed: Buffer; hashLen: number } {
  if ('packed' in hashes) return { packed: Buffer.from(hashes.packed.buffer, hashes.packed.byteOffset, hashes.packed.byteLength), hashLen: hashes.hashLen };
  return packHashes(hashes);
}

interface DataOps {
  save: [SaveRequest, SaveResponse];
  query: [QueryRequest, QueryResponse];
  load: [LoadRequest, LoadResponse];
  release: [ReleaseRequest, ReleaseResponse];
}
type DataOp = keyof DataOps;
type DataStream = grpc.ClientDuplexStream<DataPlaneRequest, DataPlaneResponse>;

interface InFlight {
  op: DataOp;
  request: DataPlaneRequest;
  resolve(res: unknown): void;
  reject(err: unknown): void;
  /** Date.now() after which the call fails with TRANSPORT_TIMEOUT. */
  deadline: number;
  stream: DataStream;
}

/** Deadlines are checked by one timer while calls are in flight, at this period at most. */
const MAX_DEADLINE_TICK_MS = 100;

/**
 * One engine's data-plane calls multiplexed on one DataPlane stream, opened lazily, answers matched by id. The
 * stream's first item names the instance; later items leave instance_id empty (the node binds the stream). A broken
 * stream rejects its in-flight calls with a KvError (the server's code, else TRANSPORT_UNAVAILABLE) and the next call
 * opens a new stream; a node without DataPlane (UNIMPLEMENTED) gets these and all later calls as unary calls.
 */
class DataPlane {
  private stream: DataStream | undefined;
  /** The current stream carried the instance id. */
  private named = false;
  private unary = false;
  private closed = false;
  private readonly pending = new Map<number, InFlight>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;

  constructor(private readonly conn: EngineConnection, private readonly instanceId: string) {
    this.tickMs = Math.max(1, Math.min(MAX_DEADLINE_TICK_MS, Math.ceil(conn.deadlineMs / 10)));
  }

  /** One operation; `value.instanceId` is this engine's and may be cleared (the stream's instance). */
  call<K extends DataOp>(op: K, value: DataOps[K][0]): Promise<DataOps[K][1]> {
    if (this.unary) return this.conn.call(op, value);
    if (this.closed) return Promise.reject(new KvError('TRANSPORT_UNAVAILABLE', `engine ${this.instanceId}: closed`));
    const stream = this.open();
    if (this.named) value.instanceId = '';
    else this.named = true;
    const request = { id: this.allocId(), op: { $case: op, value } } as DataPlaneRequest;
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { op, request, resolve: resolve as (res: unknown) => void, reject, deadline: Date.now() + this.conn.deadlineMs, stream });
      this.timer ??= setInterval(() => this.expire(), this.tickMs).unref();
      stream.write(request);
    });
  }

  /** Half-closes the stream (its in-flight calls still get their answers); later calls fail. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream?.end();
    this.stream = undefined;
  }

  private open(): DataStream {
    if (this.stream) return this.stream;
    const stream = this.conn.stub.dataPlane();
    this.stream = stream;
    this.named = false;
    stream.on('data', (res: DataPlaneResponse) => this.answer(res));
    stream.on('error', (err: unknown) => this.broken(stream, err));
    stream.on('end', () => this.broken(stream, undefined)); // ended without an error status: no more answers
    return stream;
  }

  private answer(res: DataPlaneResponse): void {
    const p = this.pending.get(res.id);
    if (!p) return; // timed out already
    this.pending.delete(res.id);
    const result = res.result;
    if (result?.$case === p.op) p.resolve(result.value);
    else if (result?.$case === 'error') p.reject(new KvError(isKvErrorCode(result.value.code) ? result.value.code : 'INTERNAL', result.value.message));
    else p.reject(new KvError('INTERNAL', `engine ${this.instanceId}: ${p.op} ${res.id} answered with ${result?.$case ?? 'nothing'}`));
    if (this.pending.size === 0) this.stopTimer();
  }

  /** The stream failed or ended: its in-flight calls fail (or go unary when the node has no DataPlane). */
  private broken(stream: DataStream, err: unknown): void {
    if (this.stream === stream) this.stream = undefined;
    const status = (err as Partial<grpc.ServiceError> | undefined)?.code;
    if (status === grpc.status.UNIMPLEMENTED && !this.unary) this.unary = true;
    let failure: KvError | undefined;
    for (const [id, p] of this.pending) {
      if (p.stream !== stream) continue;
      this.pending.delete(id);
      const value = p.request.op!.value;
      if (this.unary) {
        value.instanceId = this.instanceId; // it never reached a handler: the same call, unary
        this.conn.call(p.op, value).then(p.resolve, p.reject);
        continue;
      }
      failure ??= this.failure(err);
      p.reject(failure);
    }
    if (this.pending.size === 0) this.stopTimer();
  }

  private failure(err: unknown): KvError {
    const sent = (err as Partial<grpc.ServiceError> | undefined)?.metadata?.get(ERROR_CODE_KEY)?.[0];
    if (isKvErrorCode(sent)) return fromGrpcError(err);
    const why = err === undefined ? 'the node ended the stream' : (err as grpc.ServiceError).details || String(err);
    return new KvError('TRANSPORT_UNAVAILABLE', `engine ${this.instanceId}: data plane stream to ${this.conn.target} failed: ${why}`, { cause: err });
  }

  /** Fails calls past their deadline (the stream stays: a late answer is dropped). */
  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (now < p.deadline) continue;
      this.pending.delete(id);
      p.reject(new KvError('TRANSPORT_TIMEOUT', `engine ${this.instanceId}: ${p.op} got no answer from ${this.conn.target} within ${this.conn.deadlineMs} ms`));
    }
    if (this.pending.size === 0) this.stopTimer();
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
