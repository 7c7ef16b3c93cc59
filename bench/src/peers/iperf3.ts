// The loopback reference for remote pulls over tcp: `iperf3 -c 127.0.0.1 -P <streams>` against a one-shot
// `iperf3 -s -B 127.0.0.1 -p <free port> -1` started here, JSON output, receiver-side throughput.
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Iperf3Result {
  /** Receiver-side bytes per second summed over streams (end.sum_received.bits_per_second / 8). */
  bytesPerSecond: number;
  seconds: number;
  streams: number;
  /** Bytes the receiver got (end.sum_received.bytes). */
  bytes: number;
  /**
   * CPU seconds of each end over the test, from iperf3's own accounting (end.cpu_utilization_percent: host = this
   * client, the sender; remote = the server, the receiver; user + system over the test's wall time).
   */
  senderCpuSeconds: number;
  receiverCpuSeconds: number;
}

interface Iperf3Json {
  end?: {
    sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
  error?: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function iperf3Available(): Promise<string | null> {
  try {
    const { stdout } = await run('iperf3', ['--version']);
    return stdout.split('\n')[0] ?? 'iperf3';
  } catch {
    return null;
  }
}

/** One client run with `streams` parallel streams for `seconds` against a fresh one-shot server. */
export async function iperf3(streams: number, seconds: number): Promise<Iperf3Result> {
  const port = await freePort();
  const server = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port), '-1'], { stdio: 'ignore' });
  try {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 50; attempt++) {
      await new Promise((r) => setTimeout(r, 100)); // the server needs a moment to listen
      try {
        const { stdout } = await run(
          'iperf3',
          ['-c', '127.0.0.1', '-p', String(port), '-P', String(streams), '-t', String(seconds), '-J'],
          { maxBuffer: 64 << 20 },
        );
        const json = JSON.parse(stdout) as Iperf3Json;
        const received = json.end?.sum_received;
        const cpu = json.end?.cpu_utilization_percent;
        if (typeof received?.bits_per_second !== 'number' || typeof received.bytes !== 'number')
          throw new Error(`iperf3: no end.sum_received in output${json.error ? `: ${json.error}` : ''}`);
        if (typeof cpu?.host_total !== 'number' || typeof cpu.remote_total !== 'number')
          throw new Error('iperf3: no end.cpu_utilization_percent in output');
        const wall = received.seconds ?? seconds;
        return {
          bytesPerSecond: received.bits_per_second / 8,
          seconds,
          streams,
          bytes: received.bytes,
          senderCpuSeconds: (cpu.host_total / 100) * wall,
          receiverCpuSeconds: (cpu.remote_total / 100) * wall,
        };
      } catch (err) {
        lastErr = err;
        if (!String((err as { stdout?: string }).stdout ?? err).includes('Connection refused')) throw err;
      }
    }
    throw lastErr;
  } finally {
    server.kill('SIGKILL');
  }
}
