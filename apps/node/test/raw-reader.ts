// A reader of a serving node's pages that talks to it the way an attacker (or a broken peer) on the network
// would: the Peer gRPC service through its generated client, and the tcp data transport frame by frame (tcp-wire),
// so it can do what the node's own puller never does: queue hundreds of reads and stop taking the answers, reuse or
// release grants it does not own, name made-up sessions. PrepareRead and ReleaseGrant go as unary calls or, `via`
// 'stream', as items of one GrantStream; an item's error is thrown as the unary call's would be (its gRPC status
// and message), so a test can assert the same outcome on both.
import * as grpc from '@grpc/grpc-js';
import {
  PeerClient,
  TransportKind,
  type GrantStreamRequest,
  type GrantStreamResponse,
  type HandshakeResponse,
  type PrepareReadResponse,
  type ReleaseGrantResponse,
} from '@kvfabric/proto';
import { itemError } from '@kvfabric/common';
import { grpcStatusOf } from '@kvfabric/common/rpc';
import {
  TCP_WIRE,
  WireConnection,
  encodeHello,
  materialHeader,
  parseTcpServerMaterial,
  type TcpServerMaterial,
} from '@kvfabric/native';
import type { NodeHandle } from '@kvfabric/testkit';
import { unpackOffsets } from '../src/peer-wire/offsets.js';
import { until } from './pull-helpers.js';

type Method = 'handshake' | 'prepareRead' | 'releaseGrant';
export type Via = 'unary' | 'stream';

export interface RawGrant {
  /** Hex; empty when nothing was granted. */
  id: string;
  blocks: number;
  /** blocks × shards page offsets in the serving pool. */
  offsets: number[];
}

export class RawReader {
  private grants: GrantStream | undefined;

  private constructor(
    readonly id: string,
    readonly rpc: PeerClient,
    readonly session: bigint,
    readonly material: TcpServerMaterial,
    readonly via: Via,
  ) {}

  /** Handshakes with `node` as reader `id` (anyone who reaches the peer port can). */
  static async handshake(node: NodeHandle, id: string, via: Via = 'unary'): Promise<RawReader> {
    const rpc = new PeerClient(node.addr, grpc.credentials.createInsecure());
    const hs = await unary<HandshakeResponse>(rpc, 'handshake', {
      nodeId: id,
      addr: '127.0.0.1:1',
      transport: TransportKind.TRANSPORT_KIND_TCP,
      material: materialHeader('tcp'),
    });
    return new RawReader(id, rpc, hs.session, parseTcpServerMaterial(Buffer.from(hs.material)), via);
  }

  /** PrepareRead; `release` is sent as `release_grant_ids` (hex ids, concatenated as given, or raw bytes). */
  async prepareRead(
    namespace: string,
    hashes: Buffer[],
    session = this.session,
    release: string[] | Buffer = [],
  ): Promise<RawGrant> {
    const g = await this.call<PrepareReadResponse>('prepareRead', {
      nodeId: this.id,
      session,
      namespace,
      hashes: { packed: Buffer.concat(hashes), hashLen: hashes[0]!.length },
      releaseGrantIds: Buffer.isBuffer(release) ? release : Buffer.from(release.join(''), 'hex'),
    });
    return {
      id: Buffer.from(g.grantId).toString('hex'),
      blocks: g.blocks,
      offsets: [...unpackOffsets(Buffer.from(g.pageOffsets))],
    };
  }

  /** ReleaseGrant as reader `as` (default: this one) with `session` (default: ours). */
  release(grantId: string, opts: { as?: string; session?: bigint } = {}): Promise<ReleaseGrantResponse> {
    return this.call<ReleaseGrantResponse>('releaseGrant', {
      nodeId: opts.as ?? this.id,
      session: opts.session ?? this.session,
      grantId: Buffer.from(grantId, 'hex'),
    });
  }

  /** A data connection to the node's tcp transport that has said HELLO with our secret. */
  async connect(): Promise<WireConnection> {
    const conn = await WireConnection.open(this.material.host, this.material.port);
    await conn.send(encodeHello(this.material.name, this.material.secret, await conn.challenge()));
    await until('HELLO answered', () => conn.frames.length > 0 || conn.closed);
    const hello = conn.frames.shift();
    if (hello?.type !== TCP_WIRE.type.helloOk) throw new Error(`hello refused: ${hello?.payload.toString()}`);
    return conn;
  }

  close(): void {
    this.grants?.stream.cancel();
    this.rpc.close();
  }

  private call<Res>(method: 'prepareRead' | 'releaseGrant', req: object): Promise<Res> {
    if (this.via === 'unary') return unary<Res>(this.rpc, method, req);
    this.grants ??= new GrantStream(this.rpc);
    return this.grants.call(method, req) as Promise<Res>;
  }
}

/** One GrantStream: items written as asked, answers matched by id. */
class GrantStream {
  readonly stream: grpc.ClientDuplexStream<GrantStreamRequest, GrantStreamResponse>;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private nextId = 1;

  constructor(rpc: PeerClient) {
    this.stream = rpc.grantStream();
    this.stream.on('data', (res: GrantStreamResponse) => {
      const p = this.pending.get(res.id);
      this.pending.delete(res.id);
      const a = res.answer;
      if (!p || !a) return;
      if (a.$case !== 'error') return p.resolve(a.value);
      const err = itemError(a.value);
      p.reject(Object.assign(new Error(a.value.message), { code: grpcStatusOf(err), details: a.value.message }));
    });
    this.stream.on('error', (err) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  call(method: 'prepareRead' | 'releaseGrant', req: object): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.stream.write({ id, call: { $case: method, value: req } } as GrantStreamRequest);
    });
  }
}

function unary<Res>(rpc: PeerClient, method: Method, req: object): Promise<Res> {
  return new Promise<Res>((resolve, reject) =>
    (rpc[method] as unknown as (r: object, cb: (e: grpc.ServiceError | null, r: Res) => void) => void).call(
      rpc,
      req,
      (e, r) => (e ? reject(e) : resolve(r)),
    ),
  );
}
