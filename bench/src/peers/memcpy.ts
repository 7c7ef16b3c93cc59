// Compiles bench/src/peers/memcpy.c with `cc -O2 -pthread` (c-peer.ts) and runs it.
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { CPeerBinary } from './c-peer.js';

export interface MemcpyParams {
  threads: number;
  pageBytes: number;
  slices: number;
  pages: number;
  reps: number;
  /** Bytes per unit of work the threads take from a shared counter; default: rep bytes / threads. */
  chunkBytes?: number;
}

export interface MemcpyResult {
  /** Bytes per rep and direction. */
  bytes: number;
  /** Seconds per rep (warm-up excluded). */
  gather: number[];
  scatter: number[];
}

export class MemcpyPeer implements Disposable {
  readonly #program = new CPeerBinary('memcpy', ['-pthread']);

  run(p: MemcpyParams): MemcpyResult {
    const args = [
      '--threads',
      p.threads,
      '--page-bytes',
      p.pageBytes,
      '--slices',
      p.slices,
      '--pages',
      p.pages,
      '--reps',
      p.reps,
      '--chunk-bytes',
      p.chunkBytes ?? 0,
    ];
    const out = execFileSync(this.#program.path, args.map(String), { encoding: 'utf8', maxBuffer: 1 << 20 });
    return JSON.parse(out) as MemcpyResult;
  }

  /** Starts a persistent reference process with memory set up, running one rep per `rep()` call. */
  async serve(p: Omit<MemcpyParams, 'reps'>): Promise<MemcpySession> {
    const args = [
      '--threads',
      p.threads,
      '--page-bytes',
      p.pageBytes,
      '--slices',
      p.slices,
      '--pages',
      p.pages,
      '--serve',
      1,
      '--reps',
      1,
      '--chunk-bytes',
      p.chunkBytes ?? 0,
    ];
    const child = spawn(this.#program.path, args.map(String), { stdio: ['pipe', 'pipe', 'inherit'] });
    const session = new MemcpySession(child);
    const ready = (await session.next()) as { ready?: boolean; bytes?: number };
    if (ready.ready !== true) throw new Error(`memcpy peer: unexpected greeting ${JSON.stringify(ready)}`);
    return session;
  }

  [Symbol.dispose](): void {
    this.#program[Symbol.dispose]();
  }
}

export class MemcpySession implements Disposable {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #lines: AsyncIterator<string>;
  readonly #rl: Interface;

  constructor(child: ChildProcessByStdio<Writable, Readable, null>) {
    this.#child = child;
    this.#rl = createInterface({ input: child.stdout });
    this.#lines = this.#rl[Symbol.asyncIterator]();
  }

  async next(): Promise<unknown> {
    const r = await this.#lines.next();
    if (r.done) throw new Error(`memcpy peer exited (code ${this.#child.exitCode})`);
    return JSON.parse(r.value) as unknown;
  }

  /** The reference process (for CPU accounting). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** One timed rep in the reference process; its seconds. */
  async rep(mode: 'gather' | 'scatter'): Promise<number> {
    this.#child.stdin.write(`${mode}\n`);
    const answer = (await this.next()) as { mode: string; seconds: number };
    if (answer.mode !== mode) throw new Error(`memcpy peer: asked ${mode}, got ${JSON.stringify(answer)}`);
    return answer.seconds;
  }

  [Symbol.dispose](): void {
    this.#child.stdin.end();
    this.#rl.close();
  }
}
