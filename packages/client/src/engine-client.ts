// The engine SDK: connect to the local kvfabric-node (unix socket or loopback tcp), hand over a KV region's
// descriptor and register it (the node answers a key that this connection then presents on every call), save,
// query (a LOADING answer is waited out on the node with wait_ms; a node without it is polled), load, release; a
// Session stream keeps the instance alive. Errors are KvError with the server's code. Save, query, load and release
// travel as items of one DataPlane stream per engine (no call setup, headers or trailers per operation), or as unary
// calls when the node has no DataPlane.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { QueryState, type SessionEvent, type SessionMessage, type StatusResponse } from '@kvfabric/proto/node';
import { KvError, invalid, packU32, toHashList, toKvError, type HashInput } from '@kvfabric/common';
import { handOverRegion, handOverRing, handoverSocketPath } from '@kvfabric/native/fd-pass';
import { fromGrpcError } from '@kvfabric/common/rpc';
import { EngineConnection } from './engine-connection.js';
import { EngineDataPlane } from './engine-data-plane.js';
import { EngineRing, type RingGeometry } from './engine-ring.js';
import type { KvGeometry, KvRegion } from './kv-region.js';

export type { HashInput };

export interface RegisterOptions {
  /** Unix socket path of the node (`--engine-socket`), or "host:port" for `--engine-addr`. */
  target: string;
  /**
   * The node's region handover socket. Default: `<target>.regions` when target is a unix socket path; required
   * with a "host:port" target.
   */
  regionSocket?: string;
  namespace: string;
  /** The KV memory, handed over to the node as a descriptor (a KvRegion, or any descriptor the node accepts). */
  region: KvRegion | { fd: number; sizeBytes: number; geometry: KvGeometry };
  instanceId?: string;
  /** The TP group; every rank of one engine passes the same id. Default: instanceId. */
  engineId?: string;
  tpSize?: number;
  tpRank?: number;
  worldSize?: number;
  replicated?: boolean;
  /** Hold a Session stream (default true): when this process dies, the node drops the instance. */
  session?: boolean;
  /**
   * Save, query, load and release on a command ring in shared memory (no RPC per call), the gRPC DataPlane
   * remaining for what does not fit a ring slot and for queries the node fetches for. Default: on when the node
   * supports it; false keeps every call on gRPC.
   */
  ring?: boolean | RingGeometry;
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

const GRPC_UNIMPLEMENTED = 12;

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

/**
 * Passes the region's descriptor (or a command ring's memfd and eventfd) to the node (SCM_RIGHTS) and resolves
 * the token that names it in the registration (or in AttachRing).
 */
async function handOver(opts: RegisterOptions, fd: number, eventFd?: number): Promise<string> {
  const socket =
    opts.regionSocket ??
    (opts.target.startsWith('/') || opts.target.startsWith('unix:')
      ? handoverSocketPath(opts.target.replace(/^unix:/, ''))
      : undefined);
  if (socket === undefined)
    throw invalid(
      'regionSocket',
      `required when target is host:port (the node's <engine-socket>.regions)`,
      opts.target,
    );
  try {
    return eventFd === undefined
      ? await handOverRegion(socket, fd, opts.deadlineMs)
      : await handOverRing(socket, fd, eventFd, opts.deadlineMs);
  } catch (err) {
    throw toKvError(err);
  }
}

export class KvEngine {
  readonly conn: EngineConnection;
  readonly instanceId: string;
  nodeId = '';
  pageBytes = 0;
  shards = 0;
  private session: grpc.ClientDuplexStream<SessionMessage, SessionEvent> | undefined;
  private sessionTimer: NodeJS.Timeout | undefined;
  private readonly plane: EngineDataPlane;
  private ring: EngineRing | undefined;
  private closed = false;
  /** Set when the session stream ended without close() (node gone or restarted). */
  sessionError: KvError | undefined;

  private constructor(conn: EngineConnection, instanceId: string) {
    this.conn = conn;
    this.instanceId = instanceId;
    this.plane = new EngineDataPlane(conn, instanceId);
  }

  static async register(opts: RegisterOptions): Promise<KvEngine> {
    const instanceId = opts.instanceId ?? `engine-${process.pid}-${randomBytes(4).toString('hex')}`;
    const conn = new EngineConnection(opts.target, opts.deadlineMs);
    const engine = new KvEngine(conn, instanceId);
    const r = opts.region;
    const g = r.geometry;
    try {
      const token = await handOver(opts, 'descriptor' in r ? r.descriptor : r.fd);
      const res = await conn.call<object, { nodeId: string; pageBytes: bigint; shards: number; instanceKey: string }>(
        'registerInstance',
        {
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
          region: { token, sizeBytes: BigInt(r.sizeBytes) },
        },
      );
      conn.instanceKey = res.instanceKey;
      engine.nodeId = res.nodeId;
      engine.pageBytes = Number(res.pageBytes);
      engine.shards = res.shards;
      if (opts.session !== false) await engine.openSession();
      if (opts.ring !== false) await engine.attachRing(opts, opts.ring === true ? {} : opts.ring);
      return engine;
    } catch (err) {
      conn.close();
      throw fromGrpcError(err);
    }
  }

  /** Makes a command ring, hands it over like a region and attaches it; a node without rings keeps gRPC. */
  private async attachRing(opts: RegisterOptions, geometry: RingGeometry | undefined): Promise<void> {
    const ring = new EngineRing(`kvfabric-ring-${this.instanceId.replace(/[^A-Za-z0-9._-]/g, '_')}`.slice(0, 200), {
      deadlineMs: this.conn.deadlineMs,
      ...geometry,
    });
    try {
      const token = await handOver(opts, ring.fd, ring.eventFd);
      await this.conn.call('attachRing', {
        instanceId: this.instanceId,
        ring: { token, sizeBytes: BigInt(ring.sizeBytes) },
      });
      this.ring = ring;
      ring.onFailed = () => this.dropRing();
    } catch (err) {
      ring.close();
      const status = ((err as KvError).cause as { code?: unknown } | undefined)?.code;
      if (status === GRPC_UNIMPLEMENTED) return; // a node that predates rings: everything stays on gRPC
      throw err;
    }
  }

  /** Closes the ring (its calls in flight fail with `why`); later calls go over gRPC. */
  private dropRing(why?: KvError): void {
    const ring = this.ring;
    this.ring = undefined;
    ring?.close(why);
  }

  /** Whether calls travel on the command ring (else on the gRPC DataPlane). */
  get usesRing(): boolean {
    return this.ring !== undefined;
  }

  private openSession(): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.conn.rpc.session(this.conn.metadata());
      this.session = stream;
      let opened = false;
      stream.on('data', () => {
        if (!opened) {
          opened = true;
          resolve();
        }
      });
      // The session's end means the node dropped the instance (or is gone): ring calls in flight fail with it.
      stream.on('error', (err) => {
        const e = fromGrpcError(err);
        if (!opened) reject(e);
        else if (!this.closed) {
          this.sessionError = e;
          this.dropRing(new KvError('TRANSPORT_UNAVAILABLE', `engine ${this.instanceId}: session lost: ${e.message}`));
        }
      });
      stream.on('end', () => {
        if (this.closed) return;
        this.sessionError ??= new KvError('SESSION_UNKNOWN', 'session ended by the node');
        this.dropRing(new KvError('TRANSPORT_UNAVAILABLE', `engine ${this.instanceId}: session ended by the node`));
      });
      stream.write({ instanceId: this.instanceId });
      this.sessionTimer = setInterval(() => stream.write({ instanceId: '' }), 10_000);
      this.sessionTimer.unref();
    });
  }

  save(
    blockIds: ArrayLike<number>,
    hashes: HashInput,
  ): Promise<{ outcomes: Uint8Array; stored: number; sealed: number }> {
    // On the ring the caller awaits the ring's own promise (no async frame of ours per call: fewer microtasks).
    try {
      const onRing = this.ring?.save(blockIds, hashes);
      if (onRing) return onRing;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.saveRpc(blockIds, hashes);
  }

  private async saveRpc(
    blockIds: ArrayLike<number>,
    hashes: HashInput,
  ): Promise<{ outcomes: Uint8Array; stored: number; sealed: number }> {
    const res = await this.plane.call('save', {
      instanceId: this.instanceId,
      blockIds: packU32(blockIds),
      hashes: toHashList(hashes),
    });
    return { outcomes: new Uint8Array(res.outcomes), stored: res.stored, sealed: res.sealed };
  }

  /**
   * The prefix hit and its lease. While the node fetches the rest (LOADING), the same request id is asked again
   * with wait_ms (the node answers when the fetch finished: usually one round trip), or polled every pollMs when
   * the node answers LOADING at once (a node without wait_ms). Past timeoutMs the local answer is asked for.
   */
  async query(hashes: HashInput, opts: QueryOptions = {}): Promise<QueryAnswer> {
    const onRing = this.ring?.query(hashes, opts.localOnly ?? false);
    const res = onRing && (await onRing);
    if (res) return { ...res, breakdown: { local: res.hits, ssd: 0, remote: 0 } };
    const hashList = toHashList(hashes);
    const requestId = opts.requestId ?? randomBytes(8).toString('hex');
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    // Keep each round well inside the call's deadline, so a long wait is never taken for a dead node.
    const roundMs = Math.max(0, Math.min(QUERY_WAIT_ROUND_MS, Math.floor(this.conn.deadlineMs / 2)));
    let pollMs = opts.pollMs ?? 2;
    for (;;) {
      const sent = Date.now();
      const localOnly = (opts.localOnly ?? false) || sent > deadline;
      const waitMs = localOnly ? 0 : Math.min(roundMs, Math.max(0, deadline - sent));
      const res = await this.plane.call('query', {
        instanceId: this.instanceId,
        requestId,
        hashes: hashList,
        localOnly,
        waitMs,
      });
      if (res.state === QueryState.QUERY_STATE_READY) {
        return {
          hits: res.hits,
          leaseId: res.leaseId,
          leaseExpiresAtMs: Number(res.leaseExpiresAtMs),
          breakdown: res.breakdown ?? { local: res.hits, ssd: 0, remote: 0 },
        };
      }
      if (waitMs > 0 && Date.now() - sent + WAIT_IGNORED_SLACK_MS >= waitMs) continue; // the node waited: ask again at once
      await new Promise((r) => setTimeout(r, pollMs));
      pollMs = Math.min(50, pollMs * 2);
    }
  }

  /** Scatters the lease's first blockIds.length blocks into the region at blockIds. Consumes the lease for this rank. */
  load(leaseId: string, blockIds: ArrayLike<number>): Promise<{ loaded: number; bytes: number }> {
    try {
      const onRing = this.ring?.load(leaseId, blockIds);
      if (onRing) return onRing;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.loadRpc(leaseId, blockIds);
  }

  private async loadRpc(leaseId: string, blockIds: ArrayLike<number>): Promise<{ loaded: number; bytes: number }> {
    const res = await this.plane.call('load', { instanceId: this.instanceId, leaseId, blockIds: packU32(blockIds) });
    return { loaded: res.loaded, bytes: Number(res.bytes) };
  }

  async release(leaseId: string): Promise<void> {
    const onRing = this.ring?.release(leaseId);
    if (onRing) return onRing;
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
    this.dropRing();
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
