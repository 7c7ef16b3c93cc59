// perftest's `ib_read_bw` between two RDMA devices of this machine: the reference for one-sided READ throughput.
// Under scripts/rdma-vm.sh these are the soft-RoCE devices rxb (server) and rxa (client) on the two ends of a veth
// pair. The server starts first on a free port; the client connects once the server's socket listens (read from
// /proc/net/tcp: perftest's stdout is block-buffered into a pipe, so its "waiting" banner comes too late). Each
// side runs under `sh -c '…; times'`, so its CPU is the kernel's account of the finished process rather than a
// /proc sample taken at some point before it exits.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@kvfabric/testkit';

export interface IbReadBwOptions {
  /** Device of the passive side, whose memory is read (`-d` of the server). */
  serverDev: string;
  /** Address the client connects to for perftest's setup exchange; also picks the server's GID via `gidIndex`. */
  serverIp: string;
  clientDev: string;
  /** Source address of the client's setup connection (`--source_ip`); default: from the routing table. */
  clientIp?: string;
  /** GID table index on both devices (`-x`): the RoCE v2 IPv4 entry, $KVF_RDMA_A_GID / $KVF_RDMA_B_GID in the VM. */
  gidIndex: number;
  sizeBytes: number;
  /** Queue pairs (`-q`); `iterations` is per QP. */
  qps: number;
  /** Outstanding READs per QP (`-o`); rxe allows up to 128. */
  outstanding: number;
  iterations: number;
  /**
   * QP ACK timeout exponent (`-u`: 4.096 µs × 2^n; perftest's default 14 ≈ 67 ms). Under emulation a window of
   * outstanding READs can take longer than that to come back, and every expiry re-requests it: raise it there.
   */
  qpTimeout?: number;
  /** Wait for completions on the completion channel (`-e`) instead of busy-polling the CQ. */
  events?: boolean;
  /** TCP port of the setup exchange; default: a free one. */
  port?: number;
  /** Both sides are killed after this long; default 300 s (emulated RDMA under TCG is slow). */
  timeoutMs?: number;
}

export interface IbReadBwResult {
  /** BW average[Gb/sec] of the client's report. */
  gbps: number;
  /** Messages per second: the report's MsgRate[Mpps] × 1e6. */
  msgRate: number;
  /** User + system CPU seconds of each `ib_read_bw` process; absent when the shell's `times` could not be read. */
  clientCpuSec?: number;
  serverCpuSec?: number;
  /** Both reports (stdout and stderr of each side), for logs. */
  raw: string;
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  cpuSec?: number;
}

interface Side {
  pid: number;
  finished: Promise<Finished>;
  kill(): void;
}

/** Sum of the children's user and system times from the second line of POSIX `times` ("0m1.23s 0m0.45s"). */
function childCpuSeconds(times: string): number | undefined {
  const line = times.trim().split('\n')[1];
  if (!line) return undefined;
  const parts = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return parts.length === 2 ? Math.round((parts[0]! + parts[1]!) * 1000) / 1000 : undefined;
}

/** Starts `ib_read_bw args` in its own process group (so a kill takes the shell and perftest together). */
function startSide(args: string[]): Side {
  const script = 'ib_read_bw "$@"; rc=$?; times >&3; exit $rc';
  const child = spawn('sh', ['-c', script, 'ib_read_bw', ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  let times = '';
  let exited = false;
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  (child.stdio[3] as Readable).on('data', (c: Buffer) => (times += c.toString()));
  const finished = new Promise<Finished>((resolve) => {
    child.once('error', (err) =>
      resolve({ code: null, signal: null, output: `${output}cannot start sh: ${err.message}\n` }),
    );
    child.once('close', (code, signal) => {
      exited = true;
      resolve({ code, signal, output, cpuSec: childCpuSeconds(times) });
    });
  });
  return {
    pid: child.pid ?? -1,
    finished,
    kill() {
      try {
        if (!exited && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
}

/** Whether some socket listens on TCP `port` (IPv4 or IPv6, any address), from /proc/net/tcp{,6}. */
function listening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let table: string;
    try {
      table = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of table.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state === '0A' && local?.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

/** The data row under perftest's "#bytes #iterations BW peak BW average MsgRate" header. */
function parseReport(output: string): { gbps: number; msgRate: number } | undefined {
  const lines = output.split('\n');
  const header = lines.findIndex((l) => l.includes('#bytes') && l.includes('BW average'));
  if (header < 0) return undefined;
  for (const line of lines.slice(header + 1)) {
    const cols = line.trim().split(/\s+/).map(Number);
    if (cols.length >= 5 && cols.every((n) => Number.isFinite(n))) return { gbps: cols[3]!, msgRate: cols[4]! * 1e6 };
  }
  return undefined;
}

function describe(label: string, f: Finished): string {
  const status = f.signal ? `signal ${f.signal}` : `exit ${f.code}`;
  return `---- ${label} (${status}, cpu ${f.cpuSec ?? '?'} s)\n${f.output}`;
}

/**
 * perftest converts cycles to seconds with a CPU clock it calibrates against gettimeofday at startup; on a loaded
 * emulated CPU the fit can fail ("Correlation coefficient r^2: 0.79 < 0.9") and the report is all zeros.
 */
const CALIBRATION_FAILED = /Correlation coefficient r\^2/;
const ATTEMPTS = 3;

/**
 * One `ib_read_bw` measurement, server then client, in this environment (inside the VM: rxb ← rxa). A run whose
 * clock calibration failed is repeated, up to three runs in all.
 */
export async function runIbReadBw(opts: IbReadBwOptions): Promise<IbReadBwResult> {
  for (let attempt = 1; ; attempt++) {
    const result = await runOnce(opts);
    if (result.gbps > 0 || !CALIBRATION_FAILED.test(result.raw)) return result;
    if (attempt === ATTEMPTS)
      throw new Error(`ib_read_bw: clock calibration failed in ${ATTEMPTS} runs, no bandwidth\n${result.raw}`);
  }
}

async function runOnce(opts: IbReadBwOptions): Promise<IbReadBwResult> {
  const port = opts.port ?? (await freePort());
  const common = [
    '-F',
    '--report_gbits',
    '-x',
    opts.gidIndex,
    '-s',
    opts.sizeBytes,
    '-n',
    opts.iterations,
    '-q',
    opts.qps,
    '-o',
    opts.outstanding,
    '-p',
    port,
  ];
  if (opts.qpTimeout !== undefined) common.push('-u', opts.qpTimeout);
  if (opts.events) common.push('-e');
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  const server = startSide(['-d', opts.serverDev, ...common.map(String)]);
  let client: Side | undefined;
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    server.kill();
    client?.kill();
  }, deadline - Date.now());
  try {
    let serverExit: Finished | undefined;
    void server.finished.then((f) => (serverExit = f));
    while (!listening(port)) {
      if (serverExit)
        throw new Error(`ib_read_bw server exited before listening on port ${port}\n${describe('server', serverExit)}`);
      if (timedOut) throw new Error(`ib_read_bw server not listening on port ${port} before the deadline`);
      await sleep(50);
    }
    const clientArgs = [
      '-d',
      opts.clientDev,
      ...common.map(String),
      ...(opts.clientIp ? ['--source_ip', opts.clientIp] : []),
      opts.serverIp,
    ];
    client = startSide(clientArgs);
    const [c, s] = await Promise.all([client.finished, server.finished]);
    const raw = `${describe('server', s)}${describe('client', c)}`;
    if (timedOut) throw new Error(`ib_read_bw timed out after ${opts.timeoutMs ?? 300_000} ms\n${raw}`);
    if (c.code !== 0 || s.code !== 0) throw new Error(`ib_read_bw failed\n${raw}`);
    const report = parseReport(c.output);
    if (!report) throw new Error(`ib_read_bw: no result table in the client's report\n${raw}`);
    return { ...report, clientCpuSec: c.cpuSec, serverCpuSec: s.cpuSec, raw };
  } finally {
    clearTimeout(killer);
    server.kill();
    client?.kill();
  }
}
