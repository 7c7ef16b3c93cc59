// Remote pull over verbs on soft-RoCE vs perftest's ib_read_bw with the same message size, QPs and outstanding
// READs, in the same VM run; the tcp transport on the VM's loopback beside them. The RDMA devices exist only inside
// the project's QEMU VM (scripts/rdma-vm.sh): on the host this scenario boots the VM, runs itself there, and
// returns what the VM measured. Under QEMU's CPU emulation absolute figures mean little; the ratio does.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Pool, TcpTransport, VerbsTransport, type Transport } from '@kvfabric/native';

import { median, type BenchContext, type Scenario, type ScenarioResult } from '../harness.js';
import { runIbReadBw } from '../peers/ib-read-bw.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const OUTSTANDING = 16; // READs in flight per QP at the NIC (max_rd_atomic), both parties
const TX_DEPTH = 128; // READs queued per QP: perftest's default tx depth; kvfabric keeps as many queued
const BATCHES = 4; // readv batches in flight, as the node's pull pipeline keeps them (chunks in flight)
const ACK_TIMEOUT = 18; // 1 s a try: emulated rxe can take tens of ms to answer a full window
const TRIALS = 5;
const GRANT = randomBytes(16).toString('hex'); // one grant for the whole run
const repo = fileURLToPath(new URL('../../..', import.meta.url));

interface Party {
  bytesPerSec: number;
  cpuSec: number;
}

/** One reading and one serving transport in this process; the reader pulls `bytes` keeping qps × TX_DEPTH READs queued. */
async function pullTrial(
  reader: Transport,
  server: Transport,
  pool: { r: Pool; s: Pool },
  size: number,
  qps: number,
  bytes: number,
  batches = BATCHES,
): Promise<Party> {
  const perBatch = (qps * TX_DEPTH) / batches;
  const pages = Math.max(perBatch * batches, Math.ceil((32 * MiB) / size));
  const remote = [...pool.s.allocMany(size, pages)!];
  const local = [...pool.r.allocMany(size, pages)!];
  try {
    const key = await server.addGrant(
      GRANT,
      'R',
      new Float64Array(remote.flatMap((o) => [o, size])),
      Date.now() + 3600_000,
    );
    const list: [Float64Array, Float64Array, Float64Array][] = [];
    for (let s = 0; s + perBatch <= pages; s += perBatch) {
      list.push([
        new Float64Array(remote.slice(s, s + perBatch)),
        new Float64Array(local.slice(s, s + perBatch)),
        new Float64Array(perBatch).fill(size),
      ]);
    }
    let next = 0;
    let issued = 0;
    let moved = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async () => {
      while (issued < bytes) {
        const b = list[next++ % list.length]!;
        issued += b[2].length * size;
        // Not `moved += (await …)`: that reads `moved` before the await and loses the other workers' bytes.
        const r = await reader.readv('S', GRANT, b[0], b[1], b[2], { grantKey: key, timeoutMs: 120_000 });
        moved += r.bytes;
      }
    };
    await Promise.all(Array.from({ length: batches }, worker));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await server.removeGrant(GRANT);
    return { bytesPerSec: moved / secs, cpuSec: (cpu.user + cpu.system) / 1e6 };
  } finally {
    for (const o of remote) pool.s.free(o, size);
    for (const o of local) pool.r.free(o, size);
  }
}

async function connectPair(reader: Transport, server: Transport): Promise<void> {
  await reader.completeConnect('S', await server.acceptPeer('R', await reader.beginConnect('S')));
}

/** Inside the VM: every case, kvfabric verbs vs ib_read_bw vs kvfabric tcp, trials alternating. */
async function measure(ctx: BenchContext): Promise<ScenarioResult> {
  const devA = process.env.KVF_RDMA_A_DEV!; // reader
  const devB = process.env.KVF_RDMA_B_DEV!; // server (its memory is read), as ib_read_bw's server
  const ipB = process.env.KVF_RDMA_B_IP!;
  const ipA = process.env.KVF_RDMA_A_IP!;
  const cases: [number, number][] = ctx.quick
    ? [
        [64 * KiB, 1],
        [256 * KiB, 4],
      ]
    : [
        [64 * KiB, 1],
        [64 * KiB, 4],
        [256 * KiB, 1],
        [256 * KiB, 4],
      ];
  const bytesPerTrial = ctx.quick ? 32 * MiB : 128 * MiB;
  const metrics: Record<string, number> = {};
  const reference: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  const rows: (string | number)[][] = [];
  const pools = { r: Pool.create({ sizeBytes: 160 * MiB }), s: Pool.create({ sizeBytes: 160 * MiB }) };
  try {
    for (const [size, qps] of cases) {
      const label = `${size / KiB} KiB x${qps} QPs`;
      const opts = { qpsPerPeer: qps, readDepth: OUTSTANDING, ackTimeout: ACK_TIMEOUT, windowBytes: size };
      const vr = await VerbsTransport.create({ pool: pools.r, nics: [devA], ...opts });
      const vs = await VerbsTransport.create({ pool: pools.s, nics: [devB], ...opts });
      const tr = await TcpTransport.create({ pool: pools.r, connectionsPerPeer: qps });
      const ts = await TcpTransport.create({ pool: pools.s, connectionsPerPeer: qps });
      const gid = vs.nics()[0]!.gidIndex;
      const ours: Party[] = [];
      const serial: Party[] = [];
      const refs: { bytesPerSec: number; cpuSec: number }[] = [];
      const tcp: Party[] = [];
      const bar = ctx.progress(label, TRIALS);
      try {
        await connectPair(vr, vs);
        await connectPair(tr, ts);
        await pullTrial(vr, vs, pools, size, qps, bytesPerTrial / 4); // warm-up
        for (let i = 0; i < TRIALS; i++) {
          ours.push(await pullTrial(vr, vs, pools, size, qps, bytesPerTrial));
          serial.push(await pullTrial(vr, vs, pools, size, qps, bytesPerTrial, 1));
          const iterations = Math.max(100, Math.round(bytesPerTrial / size / qps));
          const r = await runIbReadBw({
            serverDev: devB,
            serverIp: ipB,
            clientDev: devA,
            clientIp: ipA,
            gidIndex: gid,
            sizeBytes: size,
            qps,
            outstanding: OUTSTANDING,
            iterations,
            qpTimeout: ACK_TIMEOUT,
          });
          refs.push({ bytesPerSec: (r.gbps * 1e9) / 8, cpuSec: (r.clientCpuSec ?? NaN) + (r.serverCpuSec ?? NaN) });
          tcp.push(await pullTrial(tr, ts, pools, size, qps, bytesPerTrial));
          bar.tick();
        }
      } finally {
        bar.done();
        for (const t of [vr, vs, tr, ts]) await t.close();
      }
      const key = `rdma_read_${size / KiB}k_q${qps}_gb_per_s`;
      metrics[key] = median(ours.map((o) => o.bytesPerSec)) / 1e9;
      reference[key] = median(refs.map((o) => o.bytesPerSec)) / 1e9;
      const pairRatios = ours.map((o, i) => o.bytesPerSec / refs[i]!.bytesPerSec);
      ratios[key] = median(pairRatios);
      const serialKey = `rdma_read_${size / KiB}k_q${qps}_one_batch_gb_per_s`;
      metrics[serialKey] = median(serial.map((o) => o.bytesPerSec)) / 1e9;
      reference[serialKey] = reference[key];
      ratios[serialKey] = median(serial.map((o, i) => o.bytesPerSec / refs[i]!.bytesPerSec));
      const tcpKey = `tcp_read_vm_${size / KiB}k_s${qps}_gb_per_s`;
      metrics[tcpKey] = median(tcp.map((o) => o.bytesPerSec)) / 1e9;
      const cpuPerGiB = (ps: { bytesPerSec: number; cpuSec: number }[], bytes: number) =>
        median(ps.map((p) => (p.cpuSec / (bytes / GiB)) * 1000));
      metrics[`rdma_read_${size / KiB}k_q${qps}_cpu_ms_per_gib`] = cpuPerGiB(ours, bytesPerTrial);
      reference[`rdma_read_${size / KiB}k_q${qps}_cpu_ms_per_gib`] = cpuPerGiB(refs, bytesPerTrial);
      ctx.log(
        `${label}: verbs ${ours.map((o) => (o.bytesPerSec / 1e6).toFixed(1)).join(', ')} MB/s (one batch at a time ${serial.map((o) => (o.bytesPerSec / 1e6).toFixed(1)).join(', ')}); ib_read_bw ${refs.map((o) => (o.bytesPerSec / 1e6).toFixed(1)).join(', ')} MB/s; tcp ${tcp.map((o) => (o.bytesPerSec / 1e6).toFixed(1)).join(', ')} MB/s`,
      );
      rows.push([
        `${size / KiB} KiB`,
        qps,
        +(metrics[key] * 1000).toFixed(1),
        +(metrics[serialKey] * 1000).toFixed(1),
        +(reference[key] * 1000).toFixed(1),
        +ratios[key].toFixed(2),
        +ratios[serialKey].toFixed(2),
        `${Math.min(...pairRatios).toFixed(2)}–${Math.max(...pairRatios).toFixed(2)}`,
        `${spread(ours)} / ${spread(refs)}`,
        +(metrics[tcpKey] * 1000).toFixed(1),
        Math.round(metrics[`rdma_read_${size / KiB}k_q${qps}_cpu_ms_per_gib`]!),
        Math.round(reference[`rdma_read_${size / KiB}k_q${qps}_cpu_ms_per_gib`]!),
      ]);
    }
  } finally {
    pools.r.close();
    pools.s.close();
  }
  return {
    metrics,
    reference,
    ratios,
    table: {
      columns: [
        'message',
        'QPs',
        'verbs MB/s',
        'verbs, 1 batch MB/s',
        'ib_read_bw MB/s',
        'ratio',
        'ratio, 1 batch',
        'per-trial ratios',
        'trial spread, verbs / ib_read_bw',
        'tcp MB/s',
        'verbs CPU ms/GiB',
        'ib_read_bw CPU ms/GiB',
      ],
      rows,
    },
    notes: [
      `measured inside the project's QEMU VM (TCG, no KVM): rxe devices ${devA} (reader) and ${devB} (server) on a veth pair; absolute numbers are the emulator's, the ratio is what compares`,
      `both parties: the same message size and QPs, ${OUTSTANDING} outstanding READs per QP, ACK timeout exponent ${ACK_TIMEOUT}; ${TRIALS} trials of ${bytesPerTrial / MiB} MiB alternating kvfabric verbs, ib_read_bw, kvfabric tcp; ratio = median of per-pair ratios; trial spread = a party's fastest trial over its slowest`,
      `kvfabric: one grant of memory windows (one per page), ${BATCHES} readv batches in flight (the node's pull pipeline) keeping ${TX_DEPTH} READs queued per QP (ib_read_bw's default tx depth); "1 batch": one readv of the same ${TX_DEPTH} READs per QP at a time; CPU = the whole process (reader and server side); ib_read_bw CPU = client + server processes (perftest busy-polls its CQ)`,
    ],
  };
}

/** A party's fastest trial over its slowest, e.g. "1.40x". */
function spread(trials: { bytesPerSec: number }[]): string {
  const rates = trials.map((t) => t.bytesPerSec);
  return `${(Math.max(...rates) / Math.min(...rates)).toFixed(2)}x`;
}

/** On the host: boot the VM, run this scenario there, and return its result. */
async function inVm(ctx: BenchContext): Promise<ScenarioResult> {
  const out = mkdtempSync(join(tmpdir(), 'kvf-bench-rdma-'));
  try {
    const args = [
      'scripts/rdma-vm.sh',
      '--timeout',
      '1800',
      '--out',
      out,
      '--',
      'env',
      `KVFABRIC_BENCH_RESULTS_DIR=${out}`,
      process.execPath,
      '--expose-gc',
      'bench/dist/main.js',
      'rdma',
      ...(ctx.quick ? ['--quick'] : []),
    ];
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('bash', args, { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', reject);
      child.once('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
    });
    if (code !== 0) throw new Error(`rdma bench in the VM failed (exit ${code}); see the output above`);
    const file = JSON.parse(
      readFileSync(join(out, `rdma${ctx.quick ? '.quick' : ''}.json`), 'utf8'),
    ) as ScenarioResult & { machine: unknown };
    return {
      metrics: file.metrics,
      reference: file.reference,
      ratios: file.ratios,
      table: file.table,
      notes: [...(file.notes ?? []), `VM machine: ${JSON.stringify(file.machine)}`],
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const scenario: Scenario = {
  name: 'rdma',
  description:
    'remote pull over verbs on soft-RoCE (in the VM) vs ib_read_bw, same size, QPs and outstanding READs; tcp beside',
  run: (ctx) => (process.env.KVF_IN_VM === '1' ? measure(ctx) : inVm(ctx)),
};

export default scenario;
