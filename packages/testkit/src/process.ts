// Real processes for tests: spawn, wait until healthy, capture logs, stop with `await using`.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** GET this URL until it answers 200. */
  healthUrl?: string;
  readyTimeoutMs?: number;
}

export class ManagedProcess implements AsyncDisposable {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  private output = '';
  private exit: Exit | undefined;

  constructor(opts: SpawnOptions) {
    this.name = opts.name;
    this.child = spawn(opts.command, opts.args, {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      this.output += chunk.toString();
      if (this.output.length > 4 * 1024 * 1024) this.output = this.output.slice(-2 * 1024 * 1024);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Everything the process printed so far (JSON log lines for kvfabric processes). */
  logs(): string {
    return this.output;
  }

  /** Parsed JSON log lines, skipping anything that is not JSON. */
  logLines(): Record<string, unknown>[] {
    return this.output.split('\n').flatMap((line) => {
      try {
        return line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  }

  /**
   * Waits for `url` to answer 200. The default deadline is 20 s, or KVFABRIC_TEST_START_TIMEOUT_MS where processes
   * start slowly for a known reason (the RDMA VM emulates its CPUs).
   */
  async waitHealthy(
    url: string,
    timeoutMs = Number(process.env.KVFABRIC_TEST_START_TIMEOUT_MS) || 20_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running)
        throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before healthy:\n${this.tail()}`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`${this.name} not healthy at ${url} after ${timeoutMs} ms:\n${this.tail()}`);
  }

  /** Waits until a log line matches. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = this.output.split('\n').find((l) => pattern.test(l));
      if (line) return line;
      if (!this.running) break;
      await sleep(25);
    }
    throw new Error(`${this.name}: no log line matching ${pattern} within ${timeoutMs} ms:\n${this.tail()}`);
  }

  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL. Resolves with how it exited. */
  async stop(graceMs = 10_000): Promise<Exit> {
    if (!this.running) return this.exit!;
    if (this.child.signalCode === 'SIGSTOP' || this.child.killed) this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.running) {
      this.child.kill('SIGCONT');
      await this.stop(3000);
    }
  }
}

export async function startProcess(opts: SpawnOptions): Promise<ManagedProcess> {
  const proc = new ManagedProcess(opts);
  if (opts.healthUrl) {
    try {
      await proc.waitHealthy(opts.healthUrl, opts.readyTimeoutMs);
    } catch (err) {
      proc.kill('SIGKILL');
      throw err;
    }
  }
  return proc;
}
