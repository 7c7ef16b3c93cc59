// The engine wake floor: what one wake of a Node event loop costs on this host, with nothing to do per wake. The
// engine SDK's process is woken once per completed ring call (its eventfd, watched by its event loop); its CPU per
// call is that wake plus the SDK's own work. The reference is a Node process waking through the same watcher
// (wake-loop.ts) as often as the SDK's calls complete, its eventfd written by a small C process (wake.c, compiled
// by c-peer.ts like memcpy.c), while the memcpy reference keeps the cores as busy as the copy
// threads do. Its CPU per wake, times the SDK's calls, is what a client that did nothing but wake once per call
// would spend: the SDK's client CPU above it is the SDK's own work.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CPeerBinary } from './c-peer.js';
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
  readonly #program = new CPeerBinary('wake');

  /** Starts the reference loop process (and its waker). */
  async serve(): Promise<WakeSession> {
    const child = fork(LOOP, [this.#program.path], {
      execArgv: ext === '.ts' ? ['--conditions=source', '--import', 'tsx'] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const session = new WakeSession(child);
    const ready = await session.next();
    if (ready.kind !== 'ready') throw new Error(`wake peer: unexpected greeting ${JSON.stringify(ready)}`);
    return session;
  }

  [Symbol.dispose](): void {
    this.#program[Symbol.dispose]();
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
