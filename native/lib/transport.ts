// The one-sided read transport contract both implementations (tcp, verbs) satisfy, and the argument validation
// they share. How the node uses it (DESIGN §2 "Remote pull"):
//
//   reading node                                   serving node
//   m = await t.beginConnect(servingId)  ──Handshake(m)──▶  r = await t.acceptPeer(readerId, m)
//   await t.completeConnect(servingId, r) ◀─────(r)──────
//                                        ──PrepareRead──▶  t.addGrant(grantId, readerId, ranges, expiresAtMs)
//                                         ◀────(key)─────  key = await t.addGrant(…)   (verbs: memory windows)
//   await t.readv(servingId, grantId, remote, local, lengths, { grantKey: key })   (NIC / native thread, no JS)
//                                        ──Release─────▶  await t.removeGrant(grantId); then unpin the pages
//
// Peer ids are each side's name for the other. Every failure rejects with an Error whose `code` is one of
// TransportErrorCode; a failed or timed-out batch never writes its local pages afterwards.
import { NativeError, describe, type NativeErrorCode } from './errors.js';

export type TransportKind = 'tcp' | 'verbs';

export type TransportErrorCode = Extract<
  NativeErrorCode,
  'INVALID_ARGUMENT' | 'GRANT_REFUSED' | 'TRANSPORT_UNAVAILABLE' | 'TRANSPORT_FAILED' | 'TRANSPORT_TIMEOUT' | 'INTERNAL'
>;

export interface TransportCounters {
  /** Reading side: bytes of batches that completed successfully. */
  bytesRead: number;
  /** Serving side: payload bytes sent to peers (tcp; verbs reads bypass the CPU and are not counted). */
  bytesServed: number;
  /** Reading side: readv batches not yet settled. */
  readsInFlight: number;
  batchesOk: number;
  batchesFailed: number;
  /** Connection, protocol and completion errors (both sides). */
  errors: number;
  /** Serving side: refused connections (unknown peer, wrong secret) and refused read requests (grants). */
  refused: number;
  /** Serving side, tcp: read requests accepted under a live grant. */
  readsAnswered: number;
  /** Serving side, tcp: accepted answers not yet fully written; each keeps its grant's pages from being reused. */
  answersQueued: number;
  /** Serving side, tcp: connections closed because the reader stopped taking its answers. */
  stalledClosed: number;
  /** Serving side, tcp: accept() failures for want of descriptors or memory (accepting then backs off). */
  acceptFailures: number;
  /** Serving side, tcp: the errno of the failure while accepting fails (EMFILE …); 0 when accepting works. */
  acceptErrno: number;
}

/**
 * Emitted for the node to log. `refused`: the serving side refused a request (`grant` absent for refused
 * connections). `broken`: a connection failed (error completion, timeout) and must be re-handshaked. `async`: a
 * device event (QP_FATAL, PORT_ERR, CQ_ERR …). `error`: anything else the native side noticed.
 */
export interface TransportEvent {
  kind: 'refused' | 'broken' | 'async' | 'error';
  /** Empty when the event concerns no single peer. */
  peer: string;
  grant?: GrantId;
  message: string;
}

export interface ReadOptions {
  /** Rejects the batch with TRANSPORT_TIMEOUT after this long; defaults to the transport's `timeoutMs`. */
  timeoutMs?: number;
  /** The key the serving side's `addGrant` returned (verbs: the grant's memory windows); tcp ignores it. */
  grantKey?: Buffer;
  /**
   * The holder's checksum of every page: each descriptor is then one page of `pageBytes`, and `checksums` holds
   * (low, high) 32-bit halves of each page's XXH3-64, in descriptor order. A transport whose own thread receives
   * the bytes (tcp) sums each page as it lands, while it is in cache, and resolves with `mismatches`; one whose
   * bytes land without the CPU (verbs) resolves without it, and the caller verifies the pages itself.
   */
  expect?: { pageBytes: number; checksums: Uint32Array };
}

/** What a readv resolved with: the bytes moved and, when the transport checked the pages, those that differ. */
export interface ReadResult {
  bytes: number;
  /** Indexes (into the batch's descriptors) of the pages whose bytes differ from `expect.checksums`, ascending. */
  mismatches?: Uint32Array;
}

/** Which half of the relation with a peer `dropPeer` forgets: our reads from it, or our serving of it. */
export type PeerDirection = 'reading' | 'serving';

export interface Transport {
  readonly kind: TransportKind;
  /** Serving side (gRPC Handshake handler): admit `peerId` given its material; returns ours. */
  acceptPeer(peerId: string, peerMaterial: Buffer): Promise<Buffer>;
  /** Reading side: the material to send in our Handshake request. */
  beginConnect(peerId: string): Promise<Buffer>;
  /** Reading side: finish connecting with the serving side's material. */
  completeConnect(peerId: string, serverMaterial: Buffer): Promise<void>;
  /**
   * Serving side: `peerId` may read `ranges` ((offset, length) pairs of our pool) until `expiresAtMs` (Date.now()
   * clock). Resolves with the key the reader passes to `readv` (tcp: empty). Argument errors throw synchronously.
   */
  addGrant(grantId: GrantId, peerId: string, ranges: Float64Array, expiresAtMs: number): Promise<Buffer>;
  /**
   * Ends a grant: reads under it are refused from now on. Resolves once no byte of its pages can leave any more
   * (tcp: every answer queued under it has been written or dropped; verbs: its windows are invalidated); only then
   * may the pages be reused.
   */
  removeGrant(grantId: GrantId): Promise<void>;
  /** Reading side: one-sided read of remote ranges covered by `grantId` into our pool at `localOffsets`. */
  readv(
    peerId: string,
    grantId: GrantId,
    remoteOffsets: Float64Array,
    localOffsets: Float64Array,
    lengths: Float64Array,
    options?: ReadOptions,
  ): Promise<ReadResult>;
  /**
   * Forget the peer (secret, connections, queue pairs) in one direction, or both when `direction` is absent; reads
   * in flight to it reject with TRANSPORT_FAILED. Dropping our reads never disturbs the peer's reads from us.
   */
  dropPeer(peerId: string, direction?: PeerDirection): void;
  counters(): TransportCounters;
  /** Idempotent: stops the native threads, rejects everything in flight with TRANSPORT_FAILED. */
  close(): Promise<void>;
}

/** A grant id: 16 bytes from a CSPRNG, as 32 lowercase hex digits (unguessable: it names pinned pages). */
export type GrantId = string;
export const GRANT_ID_BYTES = 16;
const GRANT_ID = /^[0-9a-f]{32}$/;

/** Validates a grant id; returns its 16 bytes, as the native side takes them. */
export function checkGrantId(field: string, value: unknown): Buffer {
  if (typeof value !== 'string' || !GRANT_ID.test(value)) {
    throw invalid(`${field}: expected ${GRANT_ID_BYTES * 2} lowercase hex digits, got ${describe(value)}`);
  }
  return Buffer.from(value, 'hex');
}

/** Largest single descriptor (and tcp request) in bytes. */
export const MAX_READ_LENGTH = 256 * 1024 * 1024;
/** Largest number of descriptors in one readv batch. */
export const MAX_BATCH_DESCRIPTORS = 1 << 20;
export const MAX_PEER_ID_BYTES = 256;

export function transportError(code: TransportErrorCode, message: string): NativeError {
  return new NativeError(code, message);
}

function invalid(message: string): NativeError {
  return transportError('INVALID_ARGUMENT', message);
}

export function checkPeerId(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > MAX_PEER_ID_BYTES) {
    throw invalid(
      `${field}: expected a non-empty string of at most ${MAX_PEER_ID_BYTES} bytes, got ${describe(value)}`,
    );
  }
  return value;
}

export function checkUint(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(`${field}: expected an integer in [0, ${max}], got ${describe(value)}`);
  }
  return value;
}

export function checkPositiveInt(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw invalid(`${field}: expected an integer in [1, ${max}], got ${describe(value)}`);
  }
  return value;
}

export function checkBuffer(field: string, value: unknown): Buffer {
  if (!Buffer.isBuffer(value)) throw invalid(`${field}: expected a Buffer, got ${describe(value)}`);
  return value;
}

/** (offset, length) pairs: even length, integers, lengths > 0. */
export function checkRanges(field: string, value: unknown, poolBytes?: number): Float64Array {
  if (!(value instanceof Float64Array) || value.length === 0 || value.length % 2 !== 0) {
    throw invalid(`${field}: expected a non-empty Float64Array of (offset, length) pairs, got ${describe(value)}`);
  }
  for (let i = 0; i < value.length; i += 2) {
    const off = value[i]!;
    const len = value[i + 1]!;
    if (!Number.isSafeInteger(off) || off < 0) throw invalid(`${field}[${i}]: expected an offset >= 0, got ${off}`);
    if (!Number.isSafeInteger(len) || len <= 0) throw invalid(`${field}[${i + 1}]: expected a length > 0, got ${len}`);
    if (poolBytes !== undefined && off + len > poolBytes) {
      throw invalid(`${field}[${i}]: range [${off}, ${off + len}) lies outside the pool of ${poolBytes} bytes`);
    }
  }
  return value;
}

/** Validates the three descriptor arrays of a readv batch. */
export function checkReadv(remote: unknown, local: unknown, lengths: unknown, poolBytes?: number): void {
  const arrays = { remoteOffsets: remote, localOffsets: local, lengths } as const;
  for (const [name, arr] of Object.entries(arrays)) {
    if (!(arr instanceof Float64Array)) throw invalid(`${name}: expected a Float64Array, got ${describe(arr)}`);
  }
  const r = remote as Float64Array;
  const l = local as Float64Array;
  const n = lengths as Float64Array;
  if (r.length !== l.length || r.length !== n.length) {
    throw invalid(
      `remoteOffsets, localOffsets, lengths: expected equal lengths, got ${r.length}, ${l.length}, ${n.length}`,
    );
  }
  if (r.length > MAX_BATCH_DESCRIPTORS) {
    throw invalid(`lengths: at most ${MAX_BATCH_DESCRIPTORS} descriptors per batch, got ${r.length}`);
  }
  for (let i = 0; i < r.length; i++) {
    const ro = r[i]!;
    const lo = l[i]!;
    const len = n[i]!;
    if (!Number.isSafeInteger(ro) || ro < 0) throw invalid(`remoteOffsets[${i}]: expected an offset >= 0, got ${ro}`);
    if (!Number.isSafeInteger(lo) || lo < 0) throw invalid(`localOffsets[${i}]: expected an offset >= 0, got ${lo}`);
    if (!Number.isSafeInteger(len) || len <= 0 || len > MAX_READ_LENGTH) {
      throw invalid(`lengths[${i}]: expected a length in [1, ${MAX_READ_LENGTH}], got ${len}`);
    }
    if (poolBytes !== undefined && lo + len > poolBytes) {
      throw invalid(`localOffsets[${i}]: range [${lo}, ${lo + len}) lies outside the pool of ${poolBytes} bytes`);
    }
  }
}

export function checkReadOptions(
  value: unknown,
  fallbackTimeoutMs: number,
  lengths: Float64Array,
): { timeoutMs: number; grantKey?: Buffer; expect?: ReadOptions['expect'] } {
  if (value === undefined) return { timeoutMs: fallbackTimeoutMs };
  if (typeof value !== 'object' || value === null) throw invalid(`options: expected an object, got ${describe(value)}`);
  const { timeoutMs: t, grantKey, expect } = value as ReadOptions;
  const timeoutMs = t === undefined ? fallbackTimeoutMs : checkPositiveInt('options.timeoutMs', t, 24 * 3600 * 1000);
  if (grantKey !== undefined) checkBuffer('options.grantKey', grantKey);
  if (expect !== undefined) checkExpect(expect, lengths);
  return { timeoutMs, grantKey, expect };
}

/** `options.expect`: one page per descriptor, all `pageBytes` long, and a (low, high) pair for each. */
function checkExpect(expect: unknown, lengths: Float64Array): void {
  if (typeof expect !== 'object' || expect === null)
    throw invalid(`options.expect: expected an object, got ${describe(expect)}`);
  const { pageBytes, checksums } = expect as { pageBytes: unknown; checksums: unknown };
  const bytes = checkPositiveInt('options.expect.pageBytes', pageBytes, Number.MAX_SAFE_INTEGER);
  if (!(checksums instanceof Uint32Array) || checksums.length !== 2 * lengths.length)
    throw invalid(
      `options.expect.checksums: expected a Uint32Array of ${2 * lengths.length} elements (low, high per page), got ${describe(checksums)}`,
    );
  const odd = lengths.findIndex((n) => n !== bytes);
  if (odd >= 0)
    throw invalid(`options.expect.pageBytes: descriptor ${odd} is ${lengths[odd]} bytes, not one ${bytes}-byte page`);
}

export function checkDirection(value: unknown): { reading: boolean; serving: boolean } {
  if (value === undefined) return { reading: true, serving: true };
  if (value !== 'reading' && value !== 'serving')
    throw invalid(`direction: expected "reading" or "serving", got ${describe(value)}`);
  return { reading: value === 'reading', serving: value === 'serving' };
}

/** Little-endian reader for handshake material: every read is bounds-checked into an INVALID_ARGUMENT. */
export class MaterialReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly field: string,
  ) {}
  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw invalid(`${this.field}: truncated at byte ${this.pos} reading ${what} (${this.buf.length} bytes in all)`);
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.pos++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }
  end(): void {
    if (this.pos !== this.buf.length) {
      throw invalid(`${this.field}: ${this.buf.length - this.pos} unexpected trailing bytes after byte ${this.pos}`);
    }
  }
  fail(message: string): never {
    throw invalid(`${this.field}: ${message}`);
  }
}

/** Material header shared by both transports: magic "KVTM", version (per kind), transport kind. */
export const MATERIAL_MAGIC = 0x4d54564b;
export const MATERIAL_VERSION = { tcp: 1, verbs: 2 } as const;
export const MATERIAL_KIND = { tcp: 1, verbs: 2 } as const;

export function readMaterialHeader(buf: Buffer, field: string, kind: TransportKind): MaterialReader {
  const r = new MaterialReader(checkBuffer(field, buf), field);
  if (r.u32('magic') !== MATERIAL_MAGIC) r.fail('not kvfabric transport material (bad magic)');
  const version = r.u8('version');
  const k = r.u8('kind');
  if (k === MATERIAL_KIND[kind] && version !== MATERIAL_VERSION[kind]) {
    r.fail(`unsupported ${kind} material version ${version} (this build speaks ${MATERIAL_VERSION[kind]})`);
  }
  if (k !== MATERIAL_KIND[kind]) {
    const name = Object.entries(MATERIAL_KIND).find(([, v]) => v === k)?.[0] ?? `unknown (${k})`;
    r.fail(`material is for transport ${name}, this is ${kind}`);
  }
  return r;
}

export function materialHeader(kind: TransportKind): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt32LE(MATERIAL_MAGIC, 0);
  b.writeUInt8(MATERIAL_VERSION[kind], 4);
  b.writeUInt8(MATERIAL_KIND[kind], 5);
  return b;
}
