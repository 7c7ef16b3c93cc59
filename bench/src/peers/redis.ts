// A private redis-server for reference runs (loopback, a free port, no persistence) and a minimal pipelining
// RESP2 client over a raw socket: no npm dependency, no per-command promise (one promise per pipeline).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@kvfabric/testkit';

export type Reply = string | number | null | Reply[] | RedisError;

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
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8192)));
  proc.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`))));
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
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: Pending[] = [];
  private failed: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
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

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let off = 0;
    while (this.queue.length > 0) {
      const parsed = parseReply(this.buf, off);
      if (!parsed) break;
      off = parsed.end;
      const head = this.queue[0]!;
      head.replies.push(parsed.value);
      if (head.replies.length === head.count) {
        this.queue.shift();
        head.resolve(head.replies);
      }
    }
    this.buf = off >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
  }
}

/** Parses one RESP2 reply at `off`; undefined when the buffer does not hold all of it yet. */
export function parseReply(buf: Buffer, off: number): { value: Reply; end: number } | undefined {
  if (off >= buf.length) return undefined;
  const eol = buf.indexOf(13, off + 1);
  if (eol < 0 || eol + 1 >= buf.length) return undefined;
  const type = buf[off];
  const line = buf.toString('latin1', off + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 43: // +
      return { value: line, end: next };
    case 45: // -
      return { value: new RedisError(line), end: next };
    case 58: // :
      return { value: Number(line), end: next };
    case 36: { // $
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (next + len + 2 > buf.length) return undefined;
      return { value: buf.toString('latin1', next, next + len), end: next + len + 2 };
    }
    case 42: { // *
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items: Reply[] = new Array(n);
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        items[i] = item.value;
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new RedisError(`unexpected RESP type byte ${type} at ${off}`);
  }
}

/** `INFO memory` → used_memory in bytes. */
export async function usedMemory(client: RespClient): Promise<number> {
  const [info] = await client.pipeline([['INFO', 'memory']]);
  if (typeof info !== 'string') throw new RedisError(`INFO memory: unexpected reply ${String(info)}`);
  const m = /^used_memory:(\d+)/m.exec(info);
  if (!m) throw new RedisError('INFO memory: no used_memory line');
  return Number(m[1]);
}
