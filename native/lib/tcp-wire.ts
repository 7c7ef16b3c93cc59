// The tcp transport's wire format (src/tcp_wire.h) spoken from JavaScript, frame by frame: what security tests and
// fuzzers need to act as a reader that does what the native client never would (queue hundreds of requests and
// stop reading, reuse a released grant, send garbage). The node's data path never uses this; it is the native
// client's and server's job.
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { checkGrantId, type GrantId } from './transport.js';

export const TCP_WIRE = {
  magic: 0x5446564b,
  version: 3,
  headerBytes: 48,
  type: { hello: 1, helloOk: 2, helloRefused: 3, read: 4, data: 5, error: 6, challenge: 7 },
  helloContext: 'kvfabric-tcp-hello/3',
  errorCode: { grantRefused: 1, invalid: 2 },
} as const;

export interface WireFrame {
  type: number;
  req: bigint;
  grant: GrantId;
  count: number;
  code: number;
  payload: Buffer;
}

/** One frame: the 48-byte header and its payload. */
export function encodeFrame(f: Omit<WireFrame, 'grant'> & { grant?: GrantId }): Buffer {
  const h = Buffer.alloc(TCP_WIRE.headerBytes);
  h.writeUInt32LE(TCP_WIRE.magic, 0);
  h.writeUInt16LE(TCP_WIRE.version, 4);
  h.writeUInt16LE(f.type, 6);
  h.writeBigUInt64LE(f.req, 8);
  if (f.grant !== undefined) checkGrantId('grant', f.grant).copy(h, 16);
  h.writeUInt32LE(f.count, 32);
  h.writeUInt16LE(f.code, 36);
  h.writeBigUInt64LE(BigInt(f.payload.length), 40);
  return Buffer.concat([h, f.payload]);
}

/** HELLO: the reader's id and its proof, HMAC-SHA256(secret, context || the server's challenge nonce || id). */
export function encodeHello(peerId: string, secret: Buffer, nonce: Buffer): Buffer {
  const id = Buffer.from(peerId);
  const proof = createHmac('sha256', secret).update(TCP_WIRE.helloContext).update(nonce).update(id).digest();
  const p = Buffer.alloc(2 + id.length + proof.length);
  p.writeUInt16LE(id.length, 0);
  id.copy(p, 2);
  proof.copy(p, 2 + id.length);
  return encodeFrame({ type: TCP_WIRE.type.hello, req: 0n, count: 0, code: 0, payload: p });
}

/** A READ of `ranges` ((offset, length) pairs of the serving pool) under `grant`. */
export function encodeRead(req: bigint, grant: GrantId, ranges: readonly number[]): Buffer {
  const p = Buffer.alloc(ranges.length * 8);
  ranges.forEach((v, i) => p.writeBigUInt64LE(BigInt(v), i * 8));
  return encodeFrame({ type: TCP_WIRE.type.read, req, grant, count: ranges.length / 2, code: 0, payload: p });
}

/** Splits a byte stream into frames; `push` returns the frames completed by `chunk`. */
export class WireDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): WireFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: WireFrame[] = [];
    while (this.buf.length >= TCP_WIRE.headerBytes) {
      const len = Number(this.buf.readBigUInt64LE(40));
      if (this.buf.length < TCP_WIRE.headerBytes + len) break;
      out.push({
        type: this.buf.readUInt16LE(6),
        req: this.buf.readBigUInt64LE(8),
        grant: this.buf.subarray(16, 32).toString('hex'),
        count: this.buf.readUInt32LE(32),
        code: this.buf.readUInt16LE(36),
        payload: Buffer.from(this.buf.subarray(TCP_WIRE.headerBytes, TCP_WIRE.headerBytes + len)),
      });
      this.buf = this.buf.subarray(TCP_WIRE.headerBytes + len);
    }
    return out;
  }
}

/** A raw connection to a tcp transport server: send frames, pause and resume taking answers, collect frames. */
export class WireConnection {
  readonly frames: WireFrame[] = [];
  private readonly decoder = new WireDecoder();
  private closedFlag = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.frames.push(...this.decoder.push(chunk)));
    socket.on('close', () => (this.closedFlag = true));
    socket.on('error', () => {});
  }

  static open(host: string, port: number): Promise<WireConnection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.off('error', reject);
        resolve(new WireConnection(s));
      });
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** The server's CHALLENGE nonce, the first frame of every connection (taken out of `frames`). */
  async challenge(): Promise<Buffer> {
    while (this.frames.length === 0) {
      if (this.closedFlag) throw new Error('tcp wire: the server closed the connection before its challenge');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const first = this.frames.shift()!;
    if (first.type !== TCP_WIRE.type.challenge)
      throw new Error(`tcp wire: expected a challenge, got type ${first.type}`);
    return first.payload;
  }

  send(frame: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(frame, (err) => (err ? reject(err) : resolve())));
  }

  /** Stops taking answers: they queue in the server (and the kernel's buffers) until `resume`. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }
}
