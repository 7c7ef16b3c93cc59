// A hostile network for the tcp transport's data stream: a TCP proxy between a reading node and a holder's data
// server that passes everything through but, while `flips` > 0, flips one bit in the payload of that many DATA
// frames (after letting `skip` DATA frames pass intact) (native/src/tcp_wire.h: 48-byte little-endian header, type u16
// at byte 6, payload length u64 at byte 40).
// Frames keep their framing, so the reader's transport lands the bytes as if nothing happened: only the page
// checksums can tell.
import { createServer, connect, type Server, type Socket } from 'node:net';

const HEADER = 48;
const DATA = 5;
/** The payload byte that gets flipped (inside the first page of the frame). */
const FLIP_AT = 100;

export interface FlipProxy extends AsyncDisposable {
  /** host:port to advertise instead of the data server. */
  addr: string;
  /** DATA frames still to corrupt (one bit each). */
  flips: number;
  /** DATA frames to pass intact before the next one is corrupted. */
  skip: number;
  /** DATA frames corrupted so far, and DATA frames passed through in all. */
  readonly flipped: number;
  readonly frames: number;
}

/** Parses the server-to-client stream frame by frame, corrupting DATA payloads while the proxy has flips left. */
class ServerStream {
  private header = Buffer.alloc(0);
  private payloadLeft = 0n;
  private payloadAt = 0n;
  private corrupting = false;

  constructor(private readonly proxy: { flips: number; skip: number; flipped: number; frames: number }) {}

  /** Rewrites `chunk` in place where a flip falls into it. */
  pass(chunk: Buffer): Buffer {
    let at = 0;
    while (at < chunk.length) {
      if (this.payloadLeft === 0n) {
        const need = HEADER - this.header.length;
        const take = chunk.subarray(at, at + need);
        this.header = Buffer.concat([this.header, take]);
        at += take.length;
        if (this.header.length < HEADER) break;
        this.payloadLeft = this.header.readBigUInt64LE(40);
        this.payloadAt = 0n;
        const isData = this.header.readUInt16LE(6) === DATA;
        this.corrupting = isData && this.proxy.flips > 0 && this.payloadLeft > BigInt(FLIP_AT);
        if (this.corrupting && this.proxy.skip > 0) {
          this.proxy.skip--;
          this.corrupting = false;
        }
        if (isData) this.proxy.frames++;
        if (this.corrupting) {
          this.proxy.flips--;
          this.proxy.flipped++;
        }
        this.header = Buffer.alloc(0);
        continue;
      }
      const n = Number(this.payloadLeft < BigInt(chunk.length - at) ? this.payloadLeft : BigInt(chunk.length - at));
      const flip = BigInt(FLIP_AT) - this.payloadAt;
      if (this.corrupting && flip >= 0n && flip < BigInt(n)) chunk[at + Number(flip)]! ^= 0x10;
      at += n;
      this.payloadAt += BigInt(n);
      this.payloadLeft -= BigInt(n);
    }
    return chunk;
  }
}

export async function startFlipProxy(target: { host: string; port: number }): Promise<FlipProxy> {
  const state = { flips: 0, skip: 0, flipped: 0, frames: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const stream = new ServerStream(state);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(stream.pass(chunk))) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    addr: `127.0.0.1:${port}`,
    get flips() {
      return state.flips;
    },
    set flips(n: number) {
      state.flips = n;
    },
    get skip() {
      return state.skip;
    },
    set skip(n: number) {
      state.skip = n;
    },
    get flipped() {
      return state.flipped;
    },
    get frames() {
      return state.frames;
    },
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
