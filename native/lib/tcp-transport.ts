// One-sided reads over tcp: a native epoll server thread answers READ frames straight from pool memory (writev),
// a native epoll client thread receives straight into the destination pages over several connections per peer.
// Access control: a connection proves the 32-byte secret issued to its peer id in acceptPeer; every range must
// lie inside a live grant of that peer. See native/README.md for the wire format and measured throughput.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';

import { callNative, checkKeys, checkObject, invalidArgument, toNativeError } from './errors.js';
import { binding } from './loader.js';
import { NativeTransport, type NativeTransportCore } from './native-transport.js';
import { nativeMemory, type Pool } from './pool.js';
import {
  MAX_PEER_ID_BYTES,
  checkBuffer,
  checkGrantId,
  checkPeerId,
  checkPositiveInt,
  checkRanges,
  checkUint,
  materialHeader,
  readMaterialHeader,
  type GrantId,
  type Transport,
  type TransportEvent,
} from './transport.js';

export interface TcpTransportOptions {
  pool: Pool;
  /** Address the server binds (IPv4). Default 127.0.0.1. */
  host?: string;
  /** Port the server binds; 0 picks a free one. Default 0. */
  port?: number;
  /** Address put in our material for peers to connect to; default `host`. Required when host is 0.0.0.0. */
  advertiseHost?: string;
  /** Port put in our material (a NAT or proxy in front of the server); default the bound port. */
  advertisePort?: number;
  /** Connections opened to each serving peer; a batch is striped across them. Default 4. */
  connectionsPerPeer?: number;
  /** SO_SNDBUF/SO_RCVBUF for every socket; 0 leaves kernel autotuning on. Default 0. */
  socketBufferBytes?: number;
  /** Default per-batch timeout (TRANSPORT_TIMEOUT). Default 30000. */
  timeoutMs?: number;
  /** completeConnect timeout. Default 10000. */
  connectTimeoutMs?: number;
  /** Serving-side events (refused connections and reads) for the node to log. */
  onEvent?: (event: TransportEvent) => void;
  /**
   * Serving side: a connection with answers queued that takes none of them for this long is closed, so a reader
   * that stops reading cannot keep granted pages pinned (queued answers hold them). Default 30000.
   */
  stallTimeoutMs?: number;
}

interface NativeTcp extends NativeTransportCore {
  port(): number;
  addPeer(peerId: string, secret: Buffer): void;
  connect(
    peerId: string,
    host: string,
    port: number,
    name: string,
    secret: Buffer,
    n: number,
    timeoutMs: number,
  ): Promise<unknown>;
  addGrant(grantId: Buffer, peerId: string, ranges: Float64Array, expiresAtMs: number): void;
  removeGrant(grantId: Buffer): Promise<unknown>;
}

const SECRET_BYTES = 32;
const NO_KEY = Buffer.alloc(0);
const OPTION_KEYS = [
  'pool',
  'host',
  'port',
  'advertiseHost',
  'advertisePort',
  'connectionsPerPeer',
  'socketBufferBytes',
  'timeoutMs',
  'connectTimeoutMs',
  'onEvent',
  'stallTimeoutMs',
] as const;

/** The serving side's material: where to connect, the name it knows us by, and the secret to prove. */
export interface TcpServerMaterial {
  host: string;
  port: number;
  name: string;
  secret: Buffer;
}

export function encodeTcpServerMaterial(m: TcpServerMaterial): Buffer {
  const host = Buffer.from(m.host);
  const name = Buffer.from(m.name);
  const b = Buffer.alloc(2 + 1 + host.length + 2 + name.length + SECRET_BYTES);
  let o = b.writeUInt16LE(m.port, 0);
  o = b.writeUInt8(host.length, o);
  o += host.copy(b, o);
  o = b.writeUInt16LE(name.length, o);
  o += name.copy(b, o);
  m.secret.copy(b, o);
  return Buffer.concat([materialHeader('tcp'), b]);
}

export function parseTcpServerMaterial(buf: Buffer, field = 'serverMaterial'): TcpServerMaterial {
  const r = readMaterialHeader(buf, field, 'tcp');
  const port = r.u16('port');
  if (port === 0) r.fail('port 0 is not connectable');
  const host = r.bytes(r.u8('host length'), 'host').toString();
  if (!isIPv4(host)) r.fail(`host: expected an IPv4 address, got ${JSON.stringify(host)}`);
  const nameLen = r.u16('name length');
  if (nameLen === 0 || nameLen > MAX_PEER_ID_BYTES)
    r.fail(`name length ${nameLen} out of range 1..${MAX_PEER_ID_BYTES}`);
  const name = r.bytes(nameLen, 'name').toString();
  const secret = r.bytes(SECRET_BYTES, 'secret');
  r.end();
  return { host, port, name, secret };
}

export class TcpTransport extends NativeTransport<NativeTcp> implements Transport {
  readonly kind = 'tcp' as const;
  readonly #advertiseHost: string;
  readonly #advertisePort: number | undefined;
  readonly #connections: number;
  readonly #connectTimeoutMs: number;

  private constructor(
    native: NativeTcp,
    opts: {
      advertiseHost: string;
      advertisePort: number | undefined;
      connections: number;
      timeoutMs: number;
      connectTimeoutMs: number;
      poolBytes: number;
    },
  ) {
    super(native, { timeoutMs: opts.timeoutMs, poolBytes: opts.poolBytes, label: 'tcp' });
    this.#advertiseHost = opts.advertiseHost;
    this.#advertisePort = opts.advertisePort;
    this.#connections = opts.connections;
    this.#connectTimeoutMs = opts.connectTimeoutMs;
  }

  static async create(options: TcpTransportOptions): Promise<TcpTransport> {
    const opts = checkObject('options', options);
    checkKeys('options', opts, OPTION_KEYS);
    const pool = opts.pool as Pool;
    const poolNative = nativeMemory(pool, 'options.pool');
    const host = opts.host ?? '127.0.0.1';
    if (typeof host !== 'string' || !isIPv4(host)) throw invalidArgument('options.host', 'an IPv4 address', host);
    const advertiseHost = opts.advertiseHost ?? host;
    if (typeof advertiseHost !== 'string' || !isIPv4(advertiseHost) || advertiseHost === '0.0.0.0') {
      throw invalidArgument(
        'options.advertiseHost',
        'a routable IPv4 address (required when host is 0.0.0.0)',
        advertiseHost,
      );
    }
    const port = checkUint('options.port', opts.port ?? 0, 65535);
    const advertisePort =
      opts.advertisePort === undefined
        ? undefined
        : checkPositiveInt('options.advertisePort', opts.advertisePort, 65535);
    const connections = checkPositiveInt('options.connectionsPerPeer', opts.connectionsPerPeer ?? 4, 64);
    const sockbuf = checkUint('options.socketBufferBytes', opts.socketBufferBytes ?? 0, 1 << 30);
    const timeoutMs = checkPositiveInt('options.timeoutMs', opts.timeoutMs ?? 30_000, 24 * 3600 * 1000);
    const connectTimeoutMs = checkPositiveInt('options.connectTimeoutMs', opts.connectTimeoutMs ?? 10_000, 3600 * 1000);
    const stallTimeoutMs = checkPositiveInt('options.stallTimeoutMs', opts.stallTimeoutMs ?? 30_000, 3600 * 1000);
    if (opts.onEvent !== undefined && typeof opts.onEvent !== 'function') {
      throw invalidArgument('options.onEvent', 'a function', opts.onEvent);
    }
    const Native = binding().TcpTransportNative as new (...args: unknown[]) => NativeTcp;
    const native = callNative(() => new Native(poolNative, host, port, sockbuf, opts.onEvent, stallTimeoutMs));
    return new TcpTransport(native, {
      advertiseHost,
      advertisePort,
      connections,
      timeoutMs,
      connectTimeoutMs,
      poolBytes: pool.sizeBytes,
    });
  }

  /** The port the server is bound to. */
  get port(): number {
    return this.native.port();
  }

  async acceptPeer(peerId: string, peerMaterial: Buffer): Promise<Buffer> {
    this.open();
    checkPeerId('peerId', peerId);
    const r = readMaterialHeader(checkBuffer('peerMaterial', peerMaterial), 'peerMaterial', 'tcp');
    r.end();
    const secret = randomBytes(SECRET_BYTES);
    callNative(() => this.native.addPeer(peerId, secret));
    const port = this.#advertisePort ?? this.port;
    return encodeTcpServerMaterial({ host: this.#advertiseHost, port, name: peerId, secret });
  }

  async beginConnect(peerId: string): Promise<Buffer> {
    this.open();
    checkPeerId('peerId', peerId);
    return materialHeader('tcp');
  }

  async completeConnect(peerId: string, serverMaterial: Buffer): Promise<void> {
    this.open();
    checkPeerId('peerId', peerId);
    const m = parseTcpServerMaterial(checkBuffer('serverMaterial', serverMaterial));
    const p = callNative(() =>
      this.native.connect(peerId, m.host, m.port, m.name, m.secret, this.#connections, this.#connectTimeoutMs),
    );
    await p.catch((err: unknown) => {
      throw toNativeError(err);
    });
  }

  /** Checked per range by the native server on every read request; the reader needs no key (resolves empty). */
  addGrant(grantId: GrantId, peerId: string, ranges: Float64Array, expiresAtMs: number): Promise<Buffer> {
    this.open();
    const id = checkGrantId('grantId', grantId);
    checkPeerId('peerId', peerId);
    checkRanges('ranges', ranges, this.poolBytes);
    if (typeof expiresAtMs !== 'number' || !Number.isFinite(expiresAtMs)) {
      throw invalidArgument('expiresAtMs', 'a finite number of milliseconds since the epoch', expiresAtMs);
    }
    callNative(() => this.native.addGrant(id, peerId, ranges, Math.floor(expiresAtMs)));
    return Promise.resolve(NO_KEY);
  }

  /**
   * Refuses reads under the grant from now on; resolves once every answer the native server queued under it has
   * been written (or dropped with its connection): only then may its pages be reused.
   */
  async removeGrant(grantId: GrantId): Promise<void> {
    const id = checkGrantId('grantId', grantId);
    if (this.closed) return;
    await this.native.removeGrant(id);
  }
}
