// npm run bench:charts — draws bench/results/charts/*.svg from the committed bench/results/*.json, and writes the
// README's performance table (with the sentence saying which runs its rows come from) and capacity table from the
// same files.
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResultFile } from '../harness.js';
import { barChart, type BarRow } from './svg-bars.js';
import { capacityBars, capacityMarkdown, type CapacityFile } from './capacity-table.js';
import { perfRows } from './perf-rows.js';
import { sourcesSentence } from './perf-sources.js';
import { perfTable, type PerfFile } from './perf-table.js';
import { withSection } from './readme-section.js';

const results = fileURLToPath(new URL('../../results', import.meta.url));
const out = join(results, 'charts');

function load(name: string): ResultFile | undefined {
  const path = join(results, `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ResultFile) : undefined;
}

/** Rows for the metrics that have both a kvfabric value and a reference. */
function rows(file: ResultFile, pick: [string, string, number?][]): BarRow[] {
  return pick.flatMap(([key, label, target]) => {
    const k = file.metrics[key];
    const r = file.reference[key];
    const ratio = file.ratios[key];
    return k !== undefined && r !== undefined
      ? [
          {
            label,
            kvfabric: k,
            reference: r,
            ...(target !== undefined ? { target } : {}),
            ...(ratio !== undefined ? { ratio } : {}),
          },
        ]
      : [];
  });
}

const charts: { file: string; title: string; unit: string; rows: BarRow[] }[] = [];
const copy = load('native-copy');
if (copy) {
  charts.push({
    file: 'native-copy.svg',
    title: 'Copy engine vs memcpy (2 threads)',
    unit: 'GB/s',
    rows: rows(copy, [
      ['gather_64KiB_GBps', 'gather, 64 KiB pages', 0.9],
      ['scatter_64KiB_GBps', 'scatter, 64 KiB pages', 0.9],
      ['gather_256KiB_GBps', 'gather, 256 KiB pages', 0.9],
      ['scatter_256KiB_GBps', 'scatter, 256 KiB pages', 0.9],
      ['gather_2MiB_GBps', 'gather, 2 MiB pages', 0.9],
      ['scatter_2MiB_GBps', 'scatter, 2 MiB pages', 0.9],
    ]),
  });
}
const tcp = load('tcp-read');
if (tcp) {
  charts.push({
    file: 'tcp-read.svg',
    title: 'tcp one-sided readv vs iperf3 (loopback)',
    unit: 'GB/s',
    rows: rows(tcp, [
      ['tcp_read_256k_s2_gb_per_s', '256 KiB pages, 2 streams', 0.9],
      ['tcp_read_256k_s4_gb_per_s', '256 KiB pages, 4 streams', 0.9],
      ['tcp_read_2048k_s2_gb_per_s', '2 MiB pages, 2 streams', 0.9],
      ['tcp_read_2048k_s4_gb_per_s', '2 MiB pages, 4 streams', 0.9],
    ]),
  });
}
const node = load('node-local');
if (node) {
  charts.push({
    file: 'node-local.svg',
    title: 'Save / load through the SDK vs memcpy',
    unit: 'GB/s',
    rows: rows(node, [
      ['save_256KiB_gbps', 'save, 64 x 256 KiB', 0.9],
      ['load_256KiB_gbps', 'load, 64 x 256 KiB', 0.9],
      ['save_2MiB_gbps', 'save, 64 x 2 MiB', 0.9],
      ['load_2MiB_gbps', 'load, 64 x 2 MiB', 0.9],
      ['save_256KiB_8_engines_gbps', 'save, 8 engines, 64 x 256 KiB', 0.9],
      ['load_256KiB_8_engines_gbps', 'load, 8 engines, 64 x 256 KiB', 0.9],
    ]),
  });
}
const pull = load('pull');
if (pull) {
  charts.push({
    file: 'pull.svg',
    title: 'Remote pull (2 nodes, tcp) vs iperf3 and Redis GET',
    unit: 'GB/s',
    rows: rows(pull, [
      ['pull_256KiB_vs_iperf3', '8000 x 256 KiB vs iperf3', 0.9],
      ['pull_2MiB_vs_iperf3', '1000 x 2 MiB vs iperf3', 0.9],
      ['pull_256KiB_8_readers_vs_iperf3', '8 readers, 256 KiB vs iperf3 -P 8', 0.9],
      ['pull_2MiB_8_readers_vs_iperf3', '8 readers, 2 MiB vs iperf3 -P 8', 0.9],
      ['pull_256KiB_vs_redis', '8000 x 256 KiB vs Redis GET', 1.2],
      ['pull_2MiB_vs_redis', '1000 x 2 MiB vs Redis GET', 1.2],
    ]),
  });
}
const ssd = load('ssd');
if (ssd) {
  charts.push({
    file: 'ssd.svg',
    title: 'SSD tier vs fio (--direct=1 --ioengine=io_uring, queue depth 32)',
    unit: 'GB/s',
    rows: rows(ssd, [
      ['write_256KiB_GBps', 'write (eviction), 256 KiB pages', 0.9],
      ['read_256KiB_GBps', 'read (promotion), 256 KiB pages', 0.9],
      ['write_2MiB_GBps', 'write (eviction), 2 MiB pages', 0.9],
      ['read_2MiB_GBps', 'read (promotion), 2 MiB pages', 0.9],
      ['write_through_256KiB_GBps', 'node, saves written through, 256 KiB'],
      ['write_through_2MiB_GBps', 'node, saves written through, 2 MiB'],
    ]),
  });
}
const cli = load('cli');
if (cli) {
  charts.push({
    file: 'cli.svg',
    title: 'CLI cold start, median ms (lower is better)',
    unit: 'ms',
    rows: rows(cli, [
      ['kvfabric_nodes_vs_etcdctl_ms', 'kvfabric nodes vs etcdctl endpoint health'],
      ['kvfabric_nodes_ms', 'kvfabric nodes vs redis-cli PING'],
      ['kvfabric_help_ms', 'kvfabric --help vs node -e 0'],
    ]),
  });
}
const rdma = load('rdma');
if (rdma) {
  charts.push({
    file: 'rdma.svg',
    title: 'Remote pull over verbs vs ib_read_bw (soft-RoCE in a QEMU VM)',
    unit: 'MB/s',
    rows: rows(rdma, [
      ['rdma_read_64k_q1_gb_per_s', '64 KiB, 1 QP, 4 batches in flight', 0.9],
      ['rdma_read_64k_q1_one_batch_gb_per_s', '64 KiB, 1 QP, 1 batch', 0.9],
      ['rdma_read_64k_q4_gb_per_s', '64 KiB, 4 QPs, 4 batches in flight', 0.9],
      ['rdma_read_64k_q4_one_batch_gb_per_s', '64 KiB, 4 QPs, 1 batch', 0.9],
      ['rdma_read_256k_q1_gb_per_s', '256 KiB, 1 QP, 4 batches in flight', 0.9],
      ['rdma_read_256k_q1_one_batch_gb_per_s', '256 KiB, 1 QP, 1 batch', 0.9],
      ['rdma_read_256k_q4_gb_per_s', '256 KiB, 4 QPs, 4 batches in flight', 0.9],
      ['rdma_read_256k_q4_one_batch_gb_per_s', '256 KiB, 4 QPs, 1 batch', 0.9],
    ]).map((r) => ({ ...r, kvfabric: r.kvfabric * 1000, reference: r.reference * 1000 })),
  });
}
const meta = load('metaserver');
if (meta) {
  charts.push({
    file: 'metaserver.svg',
    title: 'Metaserver vs Redis (1M blocks, 8 nodes)',
    unit: 'per second',
    rows: rows(meta, [
      ['queries_per_sec', '64-hash queries/s, pipelined', 1.0],
      ['queries_per_sec_unary', '64-hash queries/s, unary'],
      ['inserts_per_sec', 'inserts/s'],
      ['updates_per_sec', '64-hash index updates/s, update stream'],
      ['updates_per_sec_unary', '64-hash index updates/s, unary'],
    ]),
  });
}

// Capacity: every full-size result file (not *.quick.json) that carries the `capacity` field.
const capacityFiles = readdirSync(results)
  .filter((f) => f.endsWith('.json') && !f.endsWith('.quick.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(results, f), 'utf8')) as CapacityFile)
  .filter((f) => (f.capacity?.length ?? 0) > 0);
const capacityRows = capacityBars(capacityFiles);
if (capacityRows.length > 0) {
  charts.push({
    file: 'capacity.svg',
    title: 'CPU per GiB moved, all parties (lower is better)',
    unit: 'ms per GiB',
    rows: capacityRows,
  });
}
const perfFiles = new Map(
  [...new Set(perfRows.map((r) => r.scenario))].flatMap((s) => {
    const f: PerfFile | undefined = load(s);
    return f ? [[s, f] as const] : [];
  }),
);
const perfMarkdown = [
  sourcesSentence(
    perfRows.map((r) => r.scenario),
    perfFiles,
  ),
  '',
  ...perfTable(perfRows, perfFiles),
  '',
].join('\n');
const readmePath = fileURLToPath(new URL('../../../README.md', import.meta.url));
let readme = readFileSync(readmePath, 'utf8');
readme = withSection(readme, 'perf-table', perfMarkdown);
readme = withSection(readme, 'capacity-table', capacityMarkdown(capacityFiles));
writeFileSync(readmePath, readme);
console.log(`wrote the performance table in README.md (${perfRows.length} rows from ${perfFiles.size} result files)`);
console.log(`wrote the capacity table in README.md (${capacityFiles.length} result files with capacity figures)`);

mkdirSync(out, { recursive: true });
for (const c of charts) {
  writeFileSync(join(out, c.file), barChart(c.title, c.unit, c.rows));
  console.log(`wrote bench/results/charts/${c.file} (${c.rows.length} rows)`);
}
