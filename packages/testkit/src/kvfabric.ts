// kvfabric processes for tests and benches: the real binaries, on loopback ports chosen at run time.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCa, tlsArgs, type CertPaths } from './certs.js';
import { BIN, shebangNodeFlags } from './commands.js';
import { freeAddr, isAddrInUse } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export interface MetaserverHandle extends AsyncDisposable {
  addr: string;
  httpAddr: string;
  /** With `tls`: the metaserver's certificate, and a client certificate (kvfabric://client/tests) for the test. */
  tls?: { server: CertPaths; client: CertPaths };
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
  /** Mutual TLS with certificates from the process's test CA (kvfabric://metaserver/main). */
  tls?: boolean;
}

export async function startMetaserver(opts: MetaserverOptions = {}): Promise<MetaserverHandle> {
  let addr = opts.addr ?? (await freeAddr());
  let httpAddr = opts.httpAddr ?? (await freeAddr());
  const tls = opts.tls
    ? { server: await testCa().issue('metaserver', 'main'), client: await testCa().issue('client', 'tests') }
    : undefined;
  const launch = () =>
    startProcess({
      name: `metaserver ${addr}`,
      command: process.execPath,
      args: [
        ...shebangNodeFlags(BIN.metaserver),
        BIN.metaserver,
        '--addr',
        addr,
        '--http-addr',
        httpAddr,
        '--log-level',
        opts.logLevel ?? 'info',
        ...(tls ? tlsArgs(tls.server) : []),
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
    ...(tls ? { tls } : {}),
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
  /** With `tls`: the node's certificate (kvfabric://node/NAME). */
  tls?: { name: string; cert: CertPaths };
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
  /**
   * Mutual TLS with a certificate from the process's test CA: kvfabric://node/NAME (true: a fresh name), limited to
   * `namespaces` when given.
   */
  tls?: boolean | { name?: string; namespaces?: string[] };
}

let nodeNames = 0;

export async function startNode(opts: NodeOptions = {}): Promise<NodeHandle> {
  let addr = await freeAddr();
  let httpAddr = await freeAddr();
  const dir = mkdtempSync(join(tmpdir(), 'kvf-node-'));
  const engineSocket = join(dir, 'engine.sock');
  const tlsOpts = opts.tls === true ? {} : opts.tls || undefined;
  const tlsName = tlsOpts && (tlsOpts.name ?? `node-${process.pid}-${++nodeNames}`);
  const tls = tlsOpts && tlsName && { name: tlsName, cert: await testCa().issue('node', tlsName, tlsOpts.namespaces) };
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
    ...(tls ? tlsArgs(tls.cert) : []),
    ...(opts.args ?? []),
  ];
  const launch = () =>
    startProcess({
      name: `node ${addr}`,
      command: process.execPath,
      args: args(),
      env: opts.env,
      healthUrl: `http://${httpAddr}/health`,
      readyTimeoutMs: readyTimeoutFor(opts.poolSize ?? '256mib'),
    });
  const proc = await withFreshPorts(true, launch, async () => {
    addr = await freeAddr();
    httpAddr = await freeAddr();
  });
  const handle = {
    addr,
    httpAddr,
    engineSocket,
    ...(tls ? { tls } : {}),
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
/**
 * How long a node may take to become healthy: it touches its whole pool first, which on a small, busy host takes
 * seconds per GiB (the bench's multi-GiB pools). KVFABRIC_TEST_START_TIMEOUT_MS overrides.
 */
function readyTimeoutFor(poolSize: string): number | undefined {
  if (process.env.KVFABRIC_TEST_START_TIMEOUT_MS) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(poolSize.trim());
  const shift = { '': 0, k: 10, m: 20, g: 30, t: 40 }[(m?.[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const gib = m ? (Number(m[1]) * 2 ** shift) / 2 ** 30 : 0;
  return 20_000 + Math.ceil(gib * 10_000);
}

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
  /** Mutual TLS everywhere (test CA certificates for the metaserver and every node). */
  tls?: boolean;
}): Promise<Cluster> {
  const owned: AsyncDisposable[] = [];
  const disposeAll = async () => {
    for (const d of owned.reverse()) await d[Symbol.asyncDispose]();
  };
  try {
    const metaserver = await startMetaserver({ ...opts.metaserver, tls: opts.tls ?? opts.metaserver?.tls });
    owned.push(metaserver);
    const started = await Promise.allSettled(
      Array.from({ length: opts.nodes }, () =>
        startNode({ ...opts.node, tls: opts.node?.tls ?? opts.tls, metaserverAddr: metaserver.addr }),
      ),
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
