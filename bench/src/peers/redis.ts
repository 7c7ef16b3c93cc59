// A private redis-server for reference runs (loopback, a free port, no persistence) and a minimal pipelining
// RESP2 client over a raw socket: no npm dependency, no per-command promise (one promise per pipeline), replies
// parsed incrementally into Buffers (linear in the bytes received, as fast as a good client gets).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@kvfabric/testkit';

/** Bulk strings are Buffers (binary-safe, no decoding); simple strings and errors are decoded. */
export type Reply = string | number | null | Buffer | Reply[] | RedisError;

export class RedisError extends Error {
  override readonly name = 'RedisError';
}

export interface RedisServer extends AsyncDisposable {
  host: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `redis-server` on 127.0.0.1 and a free port with `--save '' --appendonly no`; resolves when it answers PING. */
export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
      ...extraArgs,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  proc.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8192)));
  proc.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) =>
    proc.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`))),
  );
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const ready = (async () => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${output}`);
      try {
        const client = await RespClient.connect('127.0.0.1', port);
        const [pong] = await client.pipeline([['PING']]);
        client.close();
        if (pong === 'PONG') return;
      } catch {
        // not listening yet
      }
      await sleep(25);
    }
    throw new Error(`redis-server not ready on 127.0.0.1:${port}:\n${output}`);
  })();
  try {
    await Promise.race([ready, spawnError]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: '127.0.0.1', port, proc, stop, [Symbol.asyncDispose]: stop };
}

export type Arg = string | Buffer | number;

const CRLF = Buffer.from('\r\n');

/** Encodes commands as RESP arrays of bulk strings into one buffer. */
export function encodeCommands(commands: readonly (readonly Arg[])[]): Buffer {
  const parts: Buffer[] = [];
  for (const cmd of commands) {
    parts.push(Buffer.from(`*${cmd.length}\r\n`));
    for (const arg of cmd) {
      const b = typeof arg === 'string' ? Buffer.from(arg) : typeof arg === 'number' ? Buffer.from(String(arg)) : arg;
      parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
    }
  }
  return Buffer.concat(parts);
}

interface Pending {
  count: number;
  replies: Reply[];
  resolve(replies: Reply[]): void;
  reject(err: Error): void;
}

/** One connection; `pipeline` writes N commands at once and resolves with their N replies in order. */
export class RespClient {
  private readonly queue: Pending[] = [];
  private readonly parser = new RespParser((reply) => this.onReply(reply));
  private failed: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.parser.feed(chunk);
      } catch (err) {
        this.fail(err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('redis connection closed')));
  }

  static connect(host: string, port: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new RespClient(socket));
      });
      socket.once('error', reject);
    });
  }

  pipeline(commands: readonly (readonly Arg[])[]): Promise<Reply[]> {
    if (this.failed) return Promise.reject(this.failed);
    if (commands.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ count: commands.length, replies: [], resolve, reject });
      this.socket.write(encodeCommands(commands));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.queue.splice(0)) p.reject(err);
  }

  private onReply(reply: Reply): void {
    const head = this.queue[0];
    if (!head) throw new RedisError('reply without a pending command');
    head.replies.push(reply);
    if (head.replies.length === head.count) {
      this.queue.shift();
      head.resolve(head.replies);
    }
  }
}

/**
 * Incremental RESP2 parser: `feed` it socket chunks in order, it calls `onReply` once per complete top-level reply.
 * Linear in the bytes received: a bulk string that lies inside one chunk is a view of it (no copy); one that
 * spans chunks is copied once into a buffer of its final size; only an incomplete header line (a few bytes) is
 * ever carried over to the next chunk. Bulk strings are Buffers; simple strings and errors are decoded.
 */
export class RespParser {
  /** An incomplete header line from the previous chunk. */
  private rest: Buffer | undefined;
  /** The bulk string being received across chunks: `filled` of `buf.length` bytes, then `crlf` bytes to skip. */
  private bulk: { buf: Buffer; filled: number; crlf: number } | undefined;
  /** Arrays being filled, innermost last. */
  private readonly stack: { items: Reply[]; got: number }[] = [];

  constructor(private readonly onReply: (reply: Reply) => void) {}

  feed(chunk: Buffer): void {
    let off = 0;
    if (this.bulk) {
      off = this.continueBulk(chunk);
      if (this.bulk) return;
    }
    let data = chunk;
    if (this.rest) {
      data = Buffer.concat([this.rest, chunk.subarray(off)]);
      this.rest = undefined;
      off = 0;
    }
    while (off < data.length) {
      const eol = data.indexOf(13, off);
      if (eol < 0 || eol + 1 >= data.length) {
        this.rest = Buffer.from(data.subarray(off)); // a partial header line: copied, it is tiny
        return;
      }
      const type = data[off]!;
      const next = eol + 2;
      switch (type) {
        case 43: // +
          this.complete(data.toString('latin1', off + 1, eol));
          off = next;
          break;
        case 45: // -
          this.complete(new RedisError(data.toString('latin1', off + 1, eol)));
          off = next;
          break;
        case 58: // :
          this.complete(parseInteger(data, off + 1, eol));
          off = next;
          break;
        case 36: {
          // $
          const len = parseInteger(data, off + 1, eol);
          if (len < 0) {
            this.complete(null);
            off = next;
          } else if (next + len + 2 <= data.length) {
            this.complete(data.subarray(next, next + len));
            off = next + len + 2;
          } else {
            this.bulk = { buf: Buffer.allocUnsafe(len), filled: 0, crlf: 2 };
            this.continueBulk(data.subarray(next));
            return;
          }
          break;
        }
        case 42: {
          // *
          const n = parseInteger(data, off + 1, eol);
          if (n < 0) this.complete(null);
          else if (n === 0) this.complete([]);
          else this.stack.push({ items: new Array<Reply>(n), got: 0 });
          off = next;
          break;
        }
        default:
          throw new RedisError(`unexpected RESP type byte ${type}`);
      }
    }
  }

  /** Copies the next bytes of the bulk string in progress; returns the offset in `chunk` after what it used. */
  private continueBulk(chunk: Buffer): number {
    const b = this.bulk!;
    let off = 0;
    const take = Math.min(b.buf.length - b.filled, chunk.length);
    if (take > 0) {
      chunk.copy(b.buf, b.filled, 0, take);
      b.filled += take;
      off = take;
    }
    const skip = Math.min(b.crlf, chunk.length - off);
    b.crlf -= skip;
    off += skip;
    if (b.filled === b.buf.length && b.crlf === 0) {
      this.bulk = undefined;
      this.complete(b.buf);
    }
    return off;
  }

  private complete(value: Reply): void {
    let v = value;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) return this.onReply(v);
      top.items[top.got++] = v;
      if (top.got < top.items.length) return;
      this.stack.pop();
      v = top.items;
    }
  }
}

/** The decimal integer in `buf[from, to)`. */
function parseInteger(buf: Buffer, from: number, to: number): number {
  let i = from;
  const negative = buf[i] === 45;
  if (negative) i++;
  if (i >= to) throw new RedisError('RESP: empty integer');
  let v = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) throw new RedisError(`RESP: bad integer ${buf.toString('latin1', from, to)}`);
    v = v * 10 + d;
  }
  return negative ? -v : v;
}

/** `INFO memory` → used_memory in bytes. */
export async function usedMemory(client: RespClient): Promise<number> {
  const [info] = await client.pipeline([['INFO', 'memory']]);
  if (!Buffer.isBuffer(info)) throw new RedisError(`INFO memory: unexpected reply ${String(info)}`);
  const m = /^used_memory:(\d+)/m.exec(info.toString('latin1'));
  if (!m) throw new RedisError('INFO memory: no used_memory line');
  return Number(m[1]);
}
