// Starts and talks to the unary floor server (floor-server.ts): a forked process with IPC.
import { IpcChild, benchScript } from '../ipc-child.js';
import type { Pause } from './gc-pauses.js';
import type { FromFloor, ToFloor } from './floor-server.js';

export class FloorServer implements AsyncDisposable {
  readonly addr: string;
  readonly #child: IpcChild<ToFloor, FromFloor>;

  private constructor(child: IpcChild<ToFloor, FromFloor>, port: number) {
    this.#child = child;
    this.addr = `127.0.0.1:${port}`;
  }

  /** Forks the server with `nodeFlags` (the metaserver's own V8 flags) and waits until it listens. */
  static async start(nodeFlags: string[]): Promise<FloorServer> {
    const child = IpcChild.fork<ToFloor, FromFloor>('floor server', benchScript(import.meta.url, './floor-server'), {
      nodeFlags,
    });
    try {
      return new FloorServer(child, (await child.next('ready')).port);
    } catch (err) {
      await child.close();
      throw err;
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Its collector's pauses that started in [sinceMs, untilMs); an error when its log no longer held them all. */
  async pauses(sinceMs: number, untilMs: number): Promise<Pause[]> {
    const m = await this.#child.request({ kind: 'pauses', sinceMs, untilMs }, 'pauses');
    if (!m.complete) throw new Error('floor server: more pauses than its log holds');
    return m.pauses;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#child.close();
  }
}
