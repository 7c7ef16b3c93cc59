// Starts and talks to the unary floor server (floor-server.ts): a forked process with IPC.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Pause } from './gc-pauses.js';
import type { FromFloor, ToFloor } from './floor-server.js';

// Compiled (dist/*.js) or, in development under tsx, the sources (*.ts), like bench/src/main.ts.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const SERVER = fileURLToPath(new URL(`./floor-server${ext}`, import.meta.url));

export class FloorServer implements AsyncDisposable {
  readonly addr: string;
  readonly #proc: ChildProcess;
  #waiting: ((m: FromFloor) => void) | undefined;

  private constructor(proc: ChildProcess, port: number) {
    this.#proc = proc;
    this.addr = `127.0.0.1:${port}`;
    proc.on('message', (m: FromFloor) => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.(m);
    });
  }

  /** Forks the server with `nodeFlags` (the metaserver's own V8 flags) and waits until it listens. */
  static async start(nodeFlags: string[]): Promise<FloorServer> {
    const proc = fork(SERVER, [], {
      execArgv: [...nodeFlags, ...(ext === '.ts' ? ['--conditions=source', '--import', 'tsx'] : [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<FromFloor>((resolve, reject) => {
      proc.once('message', resolve);
      proc.once('exit', (code, signal) => reject(new Error(`floor server exited (${code ?? signal})`)));
    });
    if (ready.kind !== 'ready') throw new Error(`floor server: unexpected greeting ${JSON.stringify(ready)}`);
    return new FloorServer(proc, ready.port);
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  /** Its collector's pauses that started in [sinceMs, untilMs); an error when its log no longer held them all. */
  async pauses(sinceMs: number, untilMs: number): Promise<Pause[]> {
    const answer = new Promise<FromFloor>((resolve) => (this.#waiting = resolve));
    this.#proc.send({ kind: 'pauses', sinceMs, untilMs } satisfies ToFloor);
    const m = await answer;
    if (m.kind !== 'pauses') throw new Error(`floor server: answered ${JSON.stringify(m)}`);
    if (!m.complete) throw new Error('floor server: more pauses than its log holds');
    return m.pauses;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#proc.once('exit', resolve));
    this.#proc.disconnect();
    await exited;
  }
}
