// The engine wake floor: what one wake of a Node event loop costs on this host, with nothing to do per wake. The
// engine SDK's process is woken once per completed ring call (its eventfd, watched by its event loop); its CPU per
// call is that wake plus the SDK's own work. The reference is a Node process waking through the same watcher
// (wake-loop.ts) as often as the SDK's calls complete, its eventfd written by a small C process (wake.c, compiled
// with `cc -O2` into a temp dir like memcpy.c), while the memcpy reference keeps the cores as busy as the copy
// threads do. Its CPU per wake, times the SDK's calls, is what a client that did nothing but wake once per call
// would spend: the SDK's client CPU above it is the SDK's own work.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FromWakeLoop, ToWakeLoop } from './wake-loop.js';

// Compiled (dist/*.js) or, in development under tsx, the sources (*.ts), like bench/src/main.ts.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const LOOP = fileURLToPath(new URL(`./wake-loop${ext}`, import.meta.url));

export interface WakeRun {
  /** Wakes the loop saw (fewer than asked when writes coalesced). */
  wakes: number;
  /** CPU seconds the loop's process spent from the request to its last wake. */
  cpuSeconds: number;
}

export class WakePeer implements Disposable {
  readonly #dir: string;
  readonly #binary: string;

  constructor() {
    this.#dir = mkdtempSync(join(tmpdir(), 'kvfabric-wake-'));
    this.#binary = join(this.#dir, 'wake');
    // The C source stays in src/ (tsc copies no .c files): reached the same way from src/peers and dist/peers.
    const source = fileURLToPath(new URL('../../src/peers/wake.c', import.meta.url));
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', this.#binary, source], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }

  /** Starts the reference loop process (and its waker). */
  async serve(): Promise<WakeSession> {
    const child = fork(LOOP, [this.#binary], {
      execArgv: ext === '.ts' ? ['--conditions=source', '--import', 'tsx'] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const session = new WakeSession(child);
    const ready = await session.next();
    if (ready.kind !== 'ready') throw new Error(`wake peer: unexpected greeting ${JSON.stringify(ready)}`);
    return session;
  }

  [Symbol.dispose](): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

export class WakeSession implements Disposable {
  readonly #child: ChildProcess;
  #waiting: { resolve(m: FromWakeLoop): void; reject(e: Error): void } | undefined;
  #exited: Error | undefined;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m: FromWakeLoop) => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.resolve(m);
    });
    child.once('exit', (code, signal) => {
      this.#exited = new Error(`wake peer exited (${code ?? signal})`);
      this.#waiting?.reject(this.#exited);
      this.#waiting = undefined;
    });
  }

  next(): Promise<FromWakeLoop> {
    if (this.#exited) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /** `count` wakes, `gapUs` apart. */
  async run(count: number, gapUs: number): Promise<WakeRun> {
    const answer = this.next();
    this.#child.send({ kind: 'run', count, gapUs: Math.max(0, Math.round(gapUs)) } satisfies ToWakeLoop);
    const m = await answer;
    if (m.kind !== 'done') throw new Error(`wake peer: answered ${JSON.stringify(m)}`);
    return { wakes: m.wakes, cpuSeconds: m.cpuSeconds };
  }

  [Symbol.dispose](): void {
    this.#child.disconnect();
  }
}
