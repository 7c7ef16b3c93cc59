// kvfabric processes for tests and benches: the real binaries, on loopback ports chosen at run time.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from './commands.js';
import { freeAddr, isAddrInUse } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export interface MetaserverHandle extends AsyncDisposable {
  addr: string;
  httpAddr: string;
  proc: ManagedProcess;
  /** Restarts on the same ports (a new process: a new epoch, an empty index). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface MetaserverOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  addr?: string;
  httpAddr?: string;
  logLevel?: string;
}

export async function startMetaserver(opts: MetaserverOptions = {}): Promise<MetaserverHandle> {
  let addr = opts.addr ?? (await freeAddr());
  let httpAddr = opts.httpAddr ?? (await freeAddr());
  const launch = () =>
    startProcess({
      name: `metaserver ${addr}`,
      command: process.execPath,
      args: [
        BIN.metaserver,
        '--addr',
        addr,
        '--http-addr',
        httpAddr,
        '--log-level',
        opts.logLevel ?? 'info',
        ...(opts.args ?? []),
      ],
      env: opts.env,
      healthUrl: `http://${httpAddr}/health`,
    });
  const chosen = opts.addr === undefined && opts.httpAddr === undefined;
  const proc = await withFreshPorts(chosen, launch, async () => {
    addr = await freeAddr();
    httpAddr = await freeAddr();
  });
  const handle = {
    addr,
    httpAddr,
    proc,
    async restart() {
      await handle.proc.stop();
      handle.proc = await launch();
    },
    async stop() {
      await handle.proc.stop();
    },
    async [Symbol.asyncDispose]() {
      await handle.proc[Symbol.asyncDispose]();
    },
  };
  return handle;
}

export interface NodeHandle extends AsyncDisposable {
  addr: string;
  httpAddr: string;
  engineSocket: string;
  proc: ManagedProcess;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface NodeOptions {
  metaserverAddr?: string;
  poolSize?: string;
  transport?: 'tcp' | 'verbs' | 'auto';
  args?: string[];
  env?: NodeJS.ProcessEnv;
  logLevel?: string;
}

export async function startNode(opts: NodeOptions = {}): Promise<NodeHandle> {
  let addr = await freeAddr();
  let httpAddr = await freeAddr();
  const dir = mkdtempSync(join(tmpdir(), 'kvf-node-'));
  const engineSocket = join(dir, 'engine.sock');
  const args = () => [
    BIN.node,
    '--addr',
    addr,
    '--http-addr',
    httpAddr,
    '--engine-socket',
    engineSocket,
    '--pool-size',
    opts.poolSize ?? '256mib',
    '--transport',
    opts.transport ?? 'tcp',
    '--log-level',
    opts.logLevel ?? 'info',
    ...(opts.metaserverAddr ? ['--metaserver-addr', opts.metaserverAddr] : []),
    ...(opts.args ?? []),
  ];
  const launch = () =>
    startProcess({
      name: `node ${addr}`,
      command: process.execPath,
      args: args(),
      env: opts.env,
      healthUrl: `http://${httpAddr}/health`,
    });
  const proc = await withFreshPorts(true, launch, async () => {
    addr = await freeAddr();
    httpAddr = await freeAddr();
  });
  const handle = {
    addr,
    httpAddr,
    engineSocket,
    proc,
    async restart() {
      await handle.proc.stop();
      handle.proc = await launch();
    },
    async stop() {
      await handle.proc.stop();
    },
    async [Symbol.asyncDispose]() {
      await handle.proc[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kvfabric ARGS` as a process; never throws on a non-zero exit. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN.cli, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

export interface Cluster extends AsyncDisposable {
  metaserver: MetaserverHandle;
  nodes: NodeHandle[];
}

/** A metaserver and `nodes` nodes wired to it. Everything stops when the cluster is disposed, even on failure. */
export async function startCluster(opts: {
  nodes: number;
  node?: Omit<NodeOptions, 'metaserverAddr'>;
  metaserver?: MetaserverOptions;
}): Promise<Cluster> {
  const owned: AsyncDisposable[] = [];
  const disposeAll = async () => {
    for (const d of owned.reverse()) await d[Symbol.asyncDispose]();
  };
  try {
    const metaserver = await startMetaserver(opts.metaserver);
    owned.push(metaserver);
    const started = await Promise.allSettled(
      Array.from({ length: opts.nodes }, () => startNode({ ...opts.node, metaserverAddr: metaserver.addr })),
    );
    for (const s of started) if (s.status === 'fulfilled') owned.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const nodes = started.map((s) => (s as PromiseFulfilledResult<NodeHandle>).value);
    return { metaserver, nodes, [Symbol.asyncDispose]: disposeAll };
  } catch (err) {
    await disposeAll();
    throw err;
  }
}

/**
 * Starts a server; when its ports were chosen here and one was taken between the choice and the bind (another
 * test's server drew it too), chooses new ones and starts again, up to three times.
 */
async function withFreshPorts(
  chosen: boolean,
  launch: () => Promise<ManagedProcess>,
  rechoose: () => Promise<void>,
): Promise<ManagedProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch();
    } catch (err) {
      if (!chosen || attempt >= 3 || !isAddrInUse(err)) throw err;
      await rechoose();
    }
  }
}
