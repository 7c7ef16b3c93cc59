// The SSD tier's reference: fio with --direct=1 --ioengine=io_uring on a file of the same filesystem, the same
// block size and queue depth, JSON output. Writes sync like the tier does (fdatasync every `syncEvery` blocks).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface FioJob {
  file: string;
  rw: 'write' | 'read' | 'randread' | 'randwrite';
  blockBytes: number;
  iodepth: number;
  sizeBytes: number;
  /** fdatasync after this many writes (0: never). */
  syncEvery?: number;
}

export interface FioResult {
  bytesPerSecond: number;
  /** Completion latency percentiles, seconds. */
  p50: number;
  p99: number;
  /** CPU seconds fio spent (usr + sys) over the job. */
  cpuSeconds: number;
  seconds: number;
}

interface FioSide {
  bw_bytes: number;
  runtime: number;
  clat_ns?: { percentile?: Record<string, number> };
}
interface FioJson {
  jobs: { read: FioSide; write: FioSide; usr_cpu: number; sys_cpu: number; job_runtime: number }[];
}

export async function fioVersion(): Promise<string | null> {
  try {
    return (await run('fio', ['--version'])).stdout.trim();
  } catch {
    return null;
  }
}

export async function runFio(job: FioJob): Promise<FioResult> {
  const args = [
    '--name=kvf',
    `--filename=${job.file}`,
    `--rw=${job.rw}`,
    `--bs=${job.blockBytes}`,
    `--iodepth=${job.iodepth}`,
    `--size=${job.sizeBytes}`,
    '--direct=1',
    '--ioengine=io_uring',
    '--thread=1',
    '--output-format=json',
    '--percentile_list=50:99',
    ...(job.syncEvery ? [`--fdatasync=${job.syncEvery}`] : []),
  ];
  const { stdout } = await run('fio', args, { maxBuffer: 16 * 1024 * 1024 });
  const j = (JSON.parse(stdout) as FioJson).jobs[0]!;
  const side = job.rw.endsWith('read') ? j.read : j.write;
  const pct = side.clat_ns?.percentile ?? {};
  const at = (p: string) => (pct[Object.keys(pct).find((k) => k.startsWith(p)) ?? ''] ?? 0) / 1e9;
  return {
    bytesPerSecond: side.bw_bytes,
    p50: at('50.0'),
    p99: at('99.0'),
    cpuSeconds: ((j.usr_cpu + j.sys_cpu) / 100) * (j.job_runtime / 1000),
    seconds: side.runtime / 1000,
  };
}
