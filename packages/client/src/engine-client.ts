// The engine SDK: connect to the local kvfabric-node (unix socket or loopback tcp), register a KV region, save,
// query (LOADING polled until READY), load, release; a Session stream keeps the instance alive. Errors are
// KvError with the server's code.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import {
  EngineClient,
  QueryState,
  type SessionEvent,
  type SessionMessage,
  type StatusResponse,
} from '@kvfabric/proto';
import { CHANNEL_OPTIONS, KvError, fromGrpcError, packHashes, packU32, type PackedHashes } from '@kvfabric/common';
import type { KvGeometry, KvRegion } from './kv-region.js';

export type HashInput = readonly Uint8Array[] | PackedHashes;

/** A connection to a node's Engine service. `target`: a unix socket path, "unix:/path", or "host:port". */
export class EngineConnection {
  readonly stub: EngineClient;

  constructor(readonly target: string, private readonly deadlineMs = 30_000) {
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
  /** Give up polling LOADING after this long (then the local answer is asked for). Default 10 s. */
  timeoutMs?: number;
  pollMs?: number;
}

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
  private closed = false;
  /** Set when the session stream ended without close() (node gone or restarted). */
  sessionError: KvError | undefined;

  private constructor(conn: EngineConnection, instanceId: string) {
    this.conn = conn;
    this.instanceId = instanceId;
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
    const res = await this.conn.call<object, { outcomes: Buffer; stored: number; sealed: number }>('save', {
      instanceId: this.instanceId,
      blockIds: packU32(blockIds),
      hashes: toHashList(hashes),
    });
    return { outcomes: new Uint8Array(res.outcomes), stored: res.stored, sealed: res.sealed };
  }

  /** The prefix hit and its lease; LOADING answers are polled (same request id) until READY. */
  async query(hashes: HashInput, opts: QueryOptions = {}): Promise<QueryAnswer> {
    const requestId = opts.requestId ?? randomBytes(8).toString('hex');
    const hashList = toHashList(hashes);
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    let pollMs = opts.pollMs ?? 2;
    for (;;) {
      const localOnly = (opts.localOnly ?? false) || Date.now() > deadline;
      const res = await this.conn.call<object, { state: QueryState; hits: number; leaseId: string; leaseExpiresAtMs: bigint; breakdown?: QueryAnswer['breakdown'] }>('query', {
        instanceId: this.instanceId,
        requestId,
        hashes: hashList,
        localOnly,
      });
      if (res.state === QueryState.QUERY_STATE_READY) {
        return { hits: res.hits, leaseId: res.leaseId, leaseExpiresAtMs: Number(res.leaseExpiresAtMs), breakdown: res.breakdown ?? { local: res.hits, ssd: 0, remote: 0 } };
      }
      await new Promise((r) => setTimeout(r, pollMs));
      pollMs = Math.min(50, pollMs * 2);
    }
  }

  /** Scatters the lease's first blockIds.length blocks into the region at blockIds. Consumes the lease for this rank. */
  async load(leaseId: string, blockIds: ArrayLike<number>): Promise<{ loaded: number; bytes: number }> {
    const res = await this.conn.call<object, { loaded: number; bytes: bigint }>('load', { instanceId: this.instanceId, leaseId, blockIds: packU32(blockIds) });
    return { loaded: res.loaded, bytes: Number(res.bytes) };
  }

  async release(leaseId: string): Promise<void> {
    await this.conn.call('release', { instanceId: this.instanceId, leaseId });
  }

  status(): Promise<StatusResponse> {
    return this.conn.status();
  }

  /** Unregisters (best effort), ends the session, closes the channel. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sessionTimer);
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
