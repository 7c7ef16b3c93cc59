// The engine wake floor: what one wake of a Node event loop costs on this host, with nothing to do per wake. The
// engine SDK's process is woken once per completed ring call (its eventfd, watched by its event loop); its CPU per
// call is that wake plus the SDK's own work. The reference is a Node process waking through the same watcher
// (wake-loop.ts) as often as the SDK's calls complete, its eventfd written by a small C process (wake.c, compiled
// by c-peer.ts like memcpy.c), while the memcpy reference keeps the cores as busy as the copy
// threads do. Its CPU per wake, times the SDK's calls, is what a client that did nothing but wake once per call
// would spend: the SDK's client CPU above it is the SDK's own work.
import { CPeerBinary } from './c-peer.js';
import { IpcChild, benchScript } from '../ipc-child.js';
import type { FromWakeLoop, ToWakeLoop } from './wake-loop.js';

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
    const child = IpcChild.fork<ToWakeLoop, FromWakeLoop>('wake peer', benchScript(import.meta.url, './wake-loop'), {
      args: [this.#program.path],
    });
    try {
      await child.next('ready');
    } catch (err) {
      await child.close();
      throw err;
    }
    return new WakeSession(child);
  }

  [Symbol.dispose](): void {
    this.#program[Symbol.dispose]();
  }
}

export class WakeSession implements AsyncDisposable {
  readonly #child: IpcChild<ToWakeLoop, FromWakeLoop>;

  constructor(child: IpcChild<ToWakeLoop, FromWakeLoop>) {
    this.#child = child;
  }

  /** `count` wakes, `gapUs` apart. */
  async run(count: number, gapUs: number): Promise<WakeRun> {
    const m = await this.#child.request({ kind: 'run', count, gapUs: Math.max(0, Math.round(gapUs)) }, 'done');
    return { wakes: m.wakes, cpuSeconds: m.cpuSeconds };
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#child.close();
  }
}
