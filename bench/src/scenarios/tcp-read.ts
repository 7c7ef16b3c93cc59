// Remote pull over tcp on loopback: readv GB/s between two processes (like two nodes) vs iperf3 with the same
// number of streams. The serving transport lives in a child process (native/test/fixtures/tcp-peer.ts); this
// process reads batches of pages into its own pool with `connectionsPerPeer` = streams.
import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { Pool, TcpTransport } from '@kvfabric/native';

import { CpuLedger, capacityRows, processProbe, threadProbe, type CapacityRow } from '../capacity.js';
import { median, type Scenario, type ScenarioResult } from '../harness.js';
import { iperf3, iperf3Available } from '../peers/iperf3.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const WORKING_SET = 256 * MiB; // distinct pages on each side; read over and over
const BATCH_BYTES = 16 * MiB; // one readv
const BATCHES_IN_FLIGHT = 4;
const TRIALS = 3;
const GRANT = randomBytes(16).toString('hex'); // one grant for the whole run

class ServingPeer {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (m: Record<string, unknown>) => void>();
  #seq = 0;
  offsets: number[] = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(pageBytes: number, pages: number): Promise<ServingPeer> {
    const script = fileURLToPath(new URL('../../../native/test/fixtures/tcp-peer.ts', import.meta.url));
    const child = fork(script, [String(WORKING_SET + 64 * MiB), String(pageBytes), String(pages)], {
      execArgv: ['--conditions=source', '--import', 'tsx'], // a native test fixture, run from source (dev tooling)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const peer = new ServingPeer(child);
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m: Record<string, unknown>) => {
        if (m.op === 'ready') {
          peer.offsets = m.offsets as number[];
          resolve();
        } else if (m.op === 'reply') {
          peer.#waiting.get(m.id as number)?.(m);
        }
      });
      child.once('exit', (code) => reject(new Error(`serving peer exited with ${code}`)));
    });
    return peer;
  }

  call(m: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const id = ++this.#seq;
      this.#waiting.set(id, (r) => (r.error ? reject(new Error(String(r.error))) : resolve(r)));
      this.#child.send({ ...m, id });
    });
  }

  /** The serving process (for CPU accounting). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  async stop(): Promise<void> {
    await this.call({ op: 'close' }).catch(() => undefined);
    this.#child.kill('SIGKILL');
  }
}

/** A reading transport connected to `peer` with `streams` connections; `trial(bytes)` returns bytes/s. */
async function connectReader(peer: ServingPeer, pool: Pool, local: number[], pageBytes: number, streams: number) {
  const t = await TcpTransport.create({ pool, connectionsPerPeer: streams });
  const name = `reader-${pageBytes}-${streams}`;
  const reply = await peer.call({
    op: 'accept',
    peerId: name,
    material: (await t.beginConnect('S')).toString('base64'),
  });
  await t.completeConnect('S', Buffer.from(reply.material as string, 'base64'));
  await peer.call({
    op: 'grant',
    grantId: GRANT,
    peerId: name,
    ranges: [0, WORKING_SET + 64 * MiB],
    expiresAtMs: Date.now() + 3600_000,
  });
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / pageBytes));
  const batches: [Float64Array, Float64Array, Float64Array][] = [];
  for (let s = 0; s + perBatch <= peer.offsets.length; s += perBatch) {
    batches.push([
      new Float64Array(peer.offsets.slice(s, s + perBatch)),
      new Float64Array(local.slice(s, s + perBatch)),
      new Float64Array(perBatch).fill(pageBytes),
    ]);
  }
  /** Reads at least `total` bytes; bytes/s and the bytes moved. */
  const trial = async (total: number, bar?: { tick(n?: number): void }): Promise<{ bps: number; bytes: number }> => {
    let next = 0;
    let issued = 0;
    let moved = 0;
    const start = performance.now();
    const worker = async (): Promise<void> => {
      while (issued < total) {
        const b = batches[next++ % batches.length]!;
        issued += b[2].length * pageBytes;
        const r = await t.readv('S', GRANT, b[0], b[1], b[2]);
        moved += r.bytes;
        bar?.tick(r.bytes / MiB);
      }
    };
    await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, worker));
    return { bps: moved / ((performance.now() - start) / 1000), bytes: moved };
  };
  await trial(WORKING_SET); // warm-up: one pass over the working set
  return { trial, close: () => t.close() };
}

const scenario: Scenario = {
  name: 'tcp-read',
  description: 'remote pull over tcp (two processes, loopback) vs iperf3 with the same number of streams',
  async run(ctx): Promise<ScenarioResult> {
    const version = await iperf3Available();
    if (!version) throw new Error('tcp-read needs iperf3 on PATH (Debian: apt-get install iperf3)');
    const bytesPerTrial = ctx.quick ? 256 * MiB : 2 * GiB;
    const iperfSeconds = ctx.quick ? 1 : 2;
    const metrics: Record<string, number> = {};
    const reference: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const rows: (string | number)[][] = [];
    const capacity: CapacityRow[] = [];
    const streamsList = [2, 4];
    const pool = Pool.create({ sizeBytes: WORKING_SET + 64 * MiB, prefaultThreads: 2 });
    try {
      for (const pageBytes of [256 * KiB, 2 * MiB]) {
        const pages = WORKING_SET / pageBytes;
        const peer = await ServingPeer.start(pageBytes, pages);
        const local = Array.from({ length: pages }, () => pool.alloc(pageBytes)!);
        try {
          for (const s of streamsList) {
            // Trials alternate with iperf3 so both see the same machine load; the ratio is the median of pairs.
            const reader = await connectReader(peer, pool, local, pageBytes, s);
            const ours: number[] = [];
            const refs: number[] = [];
            // CPU over the timed trials: this process reads (transport threads, JavaScript thread issuing readv
            // batches), the serving peer sends; iperf3's two ends by its own accounting.
            const ourCpu = new CpuLedger([
              processProbe(peer.pid, 'serving peer (all threads)'),
              threadProbe(process.pid, {
                main: 'reader: JavaScript thread',
                transport: 'reader: tcp transport threads',
                other: 'reader: other threads (V8, libuv)',
              }),
            ]);
            const refCpu = new CpuLedger();
            let ourBytes = 0;
            let refBytes = 0;
            const label = `${pageBytes / KiB} KiB x${s}`;
            const bar = ctx.progress(`kvfabric ${label}`, Math.round((TRIALS * bytesPerTrial) / MiB));
            try {
              for (let i = 0; i < TRIALS; i++) {
                const t = await ourCpu.window(true, () => reader.trial(bytesPerTrial, bar));
                ours.push(t.bps);
                ourBytes += t.bytes;
                const ref = await iperf3(s, iperfSeconds);
                refs.push(ref.bytesPerSecond);
                refBytes += ref.bytes;
                refCpu.add('iperf3 receiver', ref.receiverCpuSeconds);
                refCpu.add('iperf3 sender', ref.senderCpuSeconds);
              }
            } finally {
              bar.done();
              await reader.close();
            }
            const path = `readv ${label}`;
            capacity.push(
              ...capacityRows(path, 'kvfabric', ourCpu.seconds, ourBytes),
              ...capacityRows(path, 'reference', refCpu.seconds, refBytes),
            );
            const key = `tcp_read_${pageBytes / KiB}k_s${s}_gb_per_s`;
            metrics[key] = median(ours) / 1e9;
            reference[key] = median(refs) / 1e9;
            ratios[key] = median(ours.map((o, i) => o / refs[i]!));
            ctx.log(
              `${label}: kvfabric ${ours.map((r) => (r / 1e9).toFixed(2)).join(', ')} GB/s; iperf3 -P ${s} ${refs.map((r) => (r / 1e9).toFixed(2)).join(', ')} GB/s`,
            );
            rows.push([
              `${pageBytes / KiB} KiB`,
              s,
              +metrics[key].toFixed(2),
              +reference[key].toFixed(2),
              +ratios[key].toFixed(2),
            ]);
          }
        } finally {
          for (const l of local) pool.free(l, pageBytes);
          await peer.stop();
        }
      }
    } finally {
      pool.close();
    }
    return {
      metrics,
      reference,
      ratios,
      capacity,
      table: { columns: ['page', 'streams', 'kvfabric GB/s', 'iperf3 GB/s', 'ratio'], rows },
      notes: [
        `${version}; ${TRIALS} trials of ${bytesPerTrial / MiB} MiB (kvfabric) alternating with ${iperfSeconds} s iperf3 runs; ratio = median of per-pair ratios`,
        `readv batches of ${BATCH_BYTES / MiB} MiB, ${BATCHES_IN_FLIGHT} in flight, over a ${WORKING_SET / MiB} MiB working set per side`,
        "capacity: schedstat CPU of the reader's threads and the serving peer's over the timed trials vs iperf3's own accounting of its sender and receiver (end.cpu_utilization_percent)",
      ],
    };
  },
};

export default scenario;
