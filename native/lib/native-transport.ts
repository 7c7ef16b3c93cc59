// What TcpTransport and VerbsTransport share: the native object's read path, peer drop, counters and an
// idempotent close, with the same argument checks. Each subclass adds its own handshake and grant handling.
import { callNative, toNativeError } from './errors.js';
import {
  checkDirection,
  checkGrantId,
  checkPeerId,
  checkReadOptions,
  checkReadv,
  transportError,
  type GrantId,
  type PeerDirection,
  type ReadOptions,
  type ReadResult,
  type TransportCounters,
} from './transport.js';

const NO_KEY = Buffer.alloc(0);

/** The part of a native transport object every kind has. */
export interface NativeTransportCore {
  readv(
    peerId: string,
    grantId: Buffer,
    r: Float64Array,
    l: Float64Array,
    n: Float64Array,
    timeoutMs: number,
    grantKey: Buffer,
    expected?: Uint32Array,
    pageBytes?: number,
  ): Promise<ReadResult>;
  dropPeer(peerId: string, reading: boolean, serving: boolean): void;
  counters(): TransportCounters;
  close(): void;
}

export abstract class NativeTransport<N extends NativeTransportCore> implements AsyncDisposable {
  protected readonly native: N;
  protected readonly timeoutMs: number;
  protected readonly poolBytes: number;
  readonly #label: string;
  #closed = false;

  protected constructor(native: N, opts: { timeoutMs: number; poolBytes: number; label: string }) {
    this.native = native;
    this.timeoutMs = opts.timeoutMs;
    this.poolBytes = opts.poolBytes;
    this.#label = opts.label;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async readv(
    peerId: string,
    grantId: GrantId,
    remoteOffsets: Float64Array,
    localOffsets: Float64Array,
    lengths: Float64Array,
    options?: ReadOptions,
  ): Promise<ReadResult> {
    this.open();
    checkPeerId('peerId', peerId);
    const id = checkGrantId('grantId', grantId);
    checkReadv(remoteOffsets, localOffsets, lengths, this.poolBytes);
    const { timeoutMs, grantKey, expect } = checkReadOptions(options, this.timeoutMs, lengths);
    const key = this.checkGrantKey(grantKey);
    if (lengths.length === 0) return expect ? { bytes: 0, mismatches: new Uint32Array(0) } : { bytes: 0 };
    const p = callNative(() =>
      this.native.readv(
        peerId,
        id,
        remoteOffsets,
        localOffsets,
        lengths,
        timeoutMs,
        key,
        expect?.checksums,
        expect?.pageBytes,
      ),
    );
    return p.catch((err: unknown) => {
      throw toNativeError(err);
    });
  }

  dropPeer(peerId: string, direction?: PeerDirection): void {
    checkPeerId('peerId', peerId);
    const { reading, serving } = checkDirection(direction);
    if (!this.#closed) this.native.dropPeer(peerId, reading, serving);
  }

  /** The grant key `readv` hands the native side; tcp needs none, verbs requires a valid one. */
  protected checkGrantKey(key: Buffer | undefined): Buffer {
    return key ?? NO_KEY;
  }

  counters(): TransportCounters {
    return this.native.counters();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.native.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Throws TRANSPORT_FAILED once closed. */
  protected open(): void {
    if (this.#closed) throw transportError('TRANSPORT_FAILED', `${this.#label} transport: used after close()`);
  }
}
