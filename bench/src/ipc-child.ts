// A bench process forked with IPC and asked one thing at a time: the metaserver bench's load processes, node-local's
// engine processes, the reference servers and loops. Every message has a `kind`. The parent sends a request and
// waits for the answer of the kind it expects: `{ kind: 'error', message }` fails the request, as does any other
// kind, or the process exiting. `{ kind: 'tick', n }` is progress, never an answer. A child exits when its parent
// disconnects (close()), and is killed if it has not a few seconds later.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Message {
  kind: string;
}

type Tick = { kind: 'tick'; n: number };
type Failure = { kind: 'error'; message: string };

export interface ForkOptions {
  args?: string[];
  /** Node flags of the child (the development-mode tsx flags are added when the bench runs from its sources). */
  nodeFlags?: string[];
  /** 'advanced' to send typed arrays and the like (structured clone). */
  serialization?: 'json' | 'advanced';
}

// Compiled (dist/*.js) or, in development under tsx, the sources (*.ts), like bench/src/main.ts.
const fromSources = import.meta.url.endsWith('.ts');

/**
 * The bench script `name` next to the module at `base` (its import.meta.url), as the bench runs it: the compiled
 * file, or the source under tsx.
 */
export function benchScript(base: string, name: string): string {
  return fileURLToPath(new URL(`${name}${fromSources ? '.ts' : '.js'}`, base));
}

export class IpcChild<To extends Message, From extends Message> implements AsyncDisposable {
  /** Progress ticks of the request in flight. */
  onTick: (n: number) => void = () => {};
  readonly #name: string;
  readonly #proc: ChildProcess;
  readonly #exited: Promise<void>;
  #waiting: { kind: string; resolve(m: From): void; reject(e: Error): void } | undefined;
  #gone: Error | undefined;

  private constructor(name: string, proc: ChildProcess) {
    this.#name = name;
    this.#proc = proc;
    proc.on('message', (m: From | Tick | Failure) => {
      if (m.kind === 'tick') return void this.onTick((m as Tick).n);
      const w = this.#waiting;
      this.#waiting = undefined;
      if (!w) return;
      if (m.kind === 'error') w.reject(new Error(`${name}: ${(m as Failure).message}`));
      else if (m.kind !== w.kind) w.reject(new Error(`${name}: expected ${w.kind}, answered ${JSON.stringify(m)}`));
      else w.resolve(m as From);
    });
    this.#exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.#gone = new Error(`${name} exited (${code ?? signal})`);
        this.#waiting?.reject(this.#gone);
        this.#waiting = undefined;
        resolve();
      }),
    );
  }

  /** Forks `script` (a path: benchScript); `name` is how errors call it. */
  static fork<To extends Message, From extends Message>(
    name: string,
    script: string,
    opts: ForkOptions = {},
  ): IpcChild<To, From> {
    const proc = fork(script, opts.args ?? [], {
      execArgv: [...(opts.nodeFlags ?? []), ...(fromSources ? ['--conditions=source', '--import', 'tsx'] : [])],
      serialization: opts.serialization ?? 'json',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new IpcChild<To, From>(name, proc);
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  /** The next answer, which must be of `kind` (a greeting the child sends unasked, or the answer to a request). */
  next<K extends From['kind']>(kind: K): Promise<Extract<From, { kind: K }>> {
    if (this.#gone) return Promise.reject(this.#gone);
    if (this.#waiting) return Promise.reject(new Error(`${this.#name}: already waiting for ${this.#waiting.kind}`));
    return new Promise((resolve, reject) => {
      this.#waiting = { kind, resolve: resolve as (m: From) => void, reject };
    });
  }

  /** Sends `msg` and waits for its answer, of `kind`. */
  request<K extends From['kind']>(msg: To, kind: K): Promise<Extract<From, { kind: K }>> {
    const answer = this.next(kind);
    if (!this.#gone) this.#proc.send(msg);
    return answer;
  }

  /** Disconnects and waits for the child to exit, killing it after `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    if (this.#gone) return;
    if (this.#proc.connected) this.#proc.disconnect();
    const kill = setTimeout(() => this.#proc.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(kill);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
