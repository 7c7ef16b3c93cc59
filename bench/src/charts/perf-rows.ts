// The rows of the README's performance table: for each path of DESIGN §8, which numbers of which result file go
// in which cell. Keys are the ones the scenario writers (bench/src/scenarios/*.ts) put in metrics, reference,
// ratios and capacity.
import { atLeast, atMost, cell, cpu, m, quotient, ratio, ref, span, type Cell, type PerfRow } from './perf-table.js';

// DESIGN §8 targets.
const VS_MEMCPY = atLeast(0.9);
const VS_IPERF3 = atLeast(0.9);
const VS_REDIS_GET = atLeast(1.2);
const VS_IB_READ_BW = atLeast(0.9);
const META_QUERIES = atLeast(1, '×');
const META_BYTES = atMost(80, ' B');
const SCALE_BYTES = atMost(48, ' B');
const INDEX_P99 = atMost(20, ' µs', 'p99 ');
const SDK_QUERY_P99 = atMost(300, ' µs', 'p99 ');
const CPU_PER_GIB = atMost(3, ' ms');
const CLI_NODES = atMost(150, ' ms', '`nodes` ');
const VS_FIO = atLeast(0.9);
const fio = { goal: VS_FIO };
const d1 = { digits: 1 };
const d2 = { digits: 2 };

const none: Cell = () => '';

const copyKeys = ['64KiB', '256KiB', '2MiB'].flatMap((p) => [`gather_${p}_GBps`, `scatter_${p}_GBps`]);
/** Gather and scatter of one page size as one range. */
const copyRatio = (page: string) =>
  span(ratio(`gather_${page}_GBps`, { goal: VS_MEMCPY }), ratio(`scatter_${page}_GBps`, { goal: VS_MEMCPY }));

const rdmaKeys = ['64k_q1', '64k_q4', '256k_q1', '256k_q4'];
const mbps = { digits: 1, scale: 1000 };
const sPerGiB = { digits: 0, scale: 1e-3 };

const node1 = (size: string) => `save + load, ${size} blocks, 1 engine`;

/** Two numbers as `a / b` with the same options (two sizes, two directions). */
function pair(get: typeof m, a: string, b: string, o: Parameters<typeof m>[1] = {}): Cell {
  return cell`${get(a, o)} / ${get(b, o)}`;
}

function sizes(scenario: string, path: string, a: string, b: string, refName: string, goal = VS_MEMCPY): PerfRow {
  return {
    path,
    scenario,
    kvfabric: cell`${m(a, { digits: 1 })} / ${m(b, { digits: 1 })} GB/s`,
    reference: cell`${ref(a, { digits: 1 })} / ${ref(b, { digits: 1 })} GB/s (${refName})`,
    ratio: pair(ratio, a, b, { goal }),
    target: [goal],
  };
}

export const perfRows: PerfRow[] = [
  {
    path: 'copy engine gather/scatter, 64 KiB / 256 KiB / 2 MiB pages',
    scenario: 'native-copy',
    kvfabric: cell`${span(...copyKeys.map((k) => m(k, { digits: 1 })))} GB/s`,
    reference: cell`${span(...copyKeys.map((k) => ref(k, { digits: 1 })))} GB/s (memcpy, same threads)`,
    ratio: cell`${copyRatio('64KiB')} / ${copyRatio('256KiB')} / ${copyRatio('2MiB')}`,
    target: [VS_MEMCPY],
  },
  sizes(
    'tcp-read',
    'tcp one-sided `readv`, 256 KiB / 2 MiB pages, 4 streams',
    'tcp_read_256k_s4_gb_per_s',
    'tcp_read_2048k_s4_gb_per_s',
    'iperf3 -P 4',
    VS_IPERF3,
  ),
  sizes(
    'node-local',
    'save through the SDK, 64 × 256 KiB / 64 × 2 MiB per call',
    'save_256KiB_gbps',
    'save_2MiB_gbps',
    'memcpy',
  ),
  sizes(
    'node-local',
    'load through the SDK, 64 × 256 KiB / 64 × 2 MiB per call',
    'load_256KiB_gbps',
    'load_2MiB_gbps',
    'memcpy',
  ),
  sizes(
    'node-local',
    'save / load, 8 engine processes on one node, 256 KiB',
    'save_256KiB_8_engines_gbps',
    'load_256KiB_8_engines_gbps',
    "memcpy with the node's copy threads' worth of threads",
  ),
  {
    path: 'node CPU per GiB saved and loaded, 256 KiB / 2 MiB blocks',
    scenario: 'node-local',
    kvfabric: cell`event loop ${cpu(node1('256KiB'), 'kvfabric', 'node event loop', { digits: 1, goal: CPU_PER_GIB })} / ${cpu(node1('2MiB'), 'kvfabric', 'node event loop', { digits: 1, goal: CPU_PER_GIB })} ms, engine client ${cpu(node1('256KiB'), 'kvfabric', 'engine client', { digits: 1, goal: CPU_PER_GIB })} / ${cpu(node1('2MiB'), 'kvfabric', 'engine client', { digits: 1, goal: CPU_PER_GIB })} ms`,
    reference: cell`memcpy threads ${cpu(node1('256KiB'), 'reference', 'memcpy threads')} / ${cpu(node1('2MiB'), 'reference', 'memcpy threads')} ms (the copy threads: ${cpu(node1('256KiB'), 'kvfabric', 'copy threads')} / ${cpu(node1('2MiB'), 'kvfabric', 'copy threads')} ms)`,
    ratio: none,
    target: [CPU_PER_GIB],
  },
  sizes(
    'pull',
    'remote pull node→node, 8000 × 256 KiB / 1000 × 2 MiB, pages summed and verified',
    'pull_256KiB_vs_iperf3',
    'pull_2MiB_vs_iperf3',
    'iperf3 -P 4',
    VS_IPERF3,
  ),
  sizes(
    'pull',
    'remote pull, 8 readers on one node from one holder, 1000 × 256 KiB / 125 × 2 MiB each',
    'pull_256KiB_8_readers_vs_iperf3',
    'pull_2MiB_8_readers_vs_iperf3',
    'iperf3 -P 8',
    VS_IPERF3,
  ),
  {
    path: 'remote pull vs Redis GET of the same blocks, pipelined, 256 KiB / 2 MiB',
    scenario: 'pull',
    kvfabric: cell`${m('pull_256KiB_vs_redis', { digits: 1 })} / ${m('pull_2MiB_vs_redis', { digits: 1 })} GB/s`,
    reference: cell`Redis ${ref('pull_256KiB_vs_redis', { digits: 2 })} / ${ref('pull_2MiB_vs_redis', { digits: 2 })} GB/s`,
    ratio: pair(ratio, 'pull_256KiB_vs_redis', 'pull_2MiB_vs_redis', { digits: 1, goal: VS_REDIS_GET }),
    target: [VS_REDIS_GET],
  },
  {
    path: 'time to `READY` for a 64 × 256 KiB remote prefix',
    scenario: 'pull',
    kvfabric: cell`p50 ${m('ready_64_p50_ms', { digits: 1 })} ms, p99 ${m('ready_64_p99_ms', { digits: 1 })} ms`,
    reference: none,
    ratio: none,
    target: [],
  },
  {
    path: 'SSD tier write (eviction path) / read (promotion path), 256 KiB / 2 MiB pages, queue depth 32, pages summed and verified',
    scenario: 'ssd',
    kvfabric: cell`write ${m('write_256KiB_GBps', d2)} / ${m('write_2MiB_GBps', d2)} GB/s, read ${m('read_256KiB_GBps', d2)} / ${m('read_2MiB_GBps', d2)} GB/s`,
    reference: cell`write ${ref('write_256KiB_GBps', d2)} / ${ref('write_2MiB_GBps', d2)}, read ${ref('read_256KiB_GBps', d2)} / ${ref('read_2MiB_GBps', d2)} GB/s (\`fio --direct=1 --ioengine=io_uring\`, same size and depth)`,
    ratio: cell`write ${ratio('write_256KiB_GBps', fio)} / ${ratio('write_2MiB_GBps', fio)}, read ${ratio('read_256KiB_GBps', fio)} / ${ratio('read_2MiB_GBps', fio)}`,
    target: [VS_FIO],
  },
  {
    path: 'a node saving with the SSD tier write-through, 256 KiB / 2 MiB blocks: saves until every block is on SSD; node event loop per GiB',
    scenario: 'ssd',
    kvfabric: cell`${m('write_through_256KiB_GBps', d2)} / ${m('write_through_2MiB_GBps', d2)} GB/s; ${m('write_through_256KiB_event_loop_ms_per_GiB', d1)} / ${m('write_through_2MiB_event_loop_ms_per_GiB', d1)} ms`,
    reference: cell`${ref('write_through_256KiB_GBps', d2)} / ${ref('write_through_2MiB_GBps', d2)} GB/s (fio's write job, same size, depth and syncs)`,
    ratio: pair(ratio, 'write_through_256KiB_GBps', 'write_through_2MiB_GBps'),
    target: [],
  },
  {
    path: 'SSD read latency, one page at a time, 256 KiB / 2 MiB',
    scenario: 'ssd',
    kvfabric: cell`p99 ${m('read_qd1_256KiB_p99_ms', d1)} / ${m('read_qd1_2MiB_p99_ms', d1)} ms`,
    reference: cell`fio at depth 1: p99 ${ref('read_qd1_256KiB_p99_ms', d1)} / ${ref('read_qd1_2MiB_p99_ms', d1)} ms`,
    ratio: none,
    target: [],
  },
  {
    path: 'restart: journal replay rate',
    scenario: 'ssd',
    kvfabric: cell`${m('journal_replay_blocks_per_sec', { digits: 0 })} blocks/s`,
    reference: none,
    ratio: none,
    target: [],
  },
  {
    path: 'what mutual TLS costs a pull: 8000 × 256 KiB / `READY` p50',
    scenario: 'pull',
    kvfabric: cell`${m('pull_256KiB_tls_GBps', { digits: 2 })} GB/s / ${m('ready_64_tls_p50_ms', { digits: 1 })} ms`,
    reference: cell`the same without TLS, same run: ${ref('pull_256KiB_tls_vs_plain', { digits: 2 })} GB/s / ${ref('ready_64_tls_vs_plain_p50_ms', { digits: 1 })} ms`,
    ratio: pair(ratio, 'pull_256KiB_tls_vs_plain', 'ready_64_tls_vs_plain_p50_ms'),
    target: [],
  },
  {
    path: 'metaserver 64-hash prefix queries, 1M blocks, 8 nodes, pipelined stream',
    scenario: 'metaserver',
    kvfabric: cell`${m('queries_per_sec', { digits: 0 })} q/s, p99 ${m('query_p99_us', { digits: 1, scale: 1e-3 })} ms; GC pauses p99 ${m('gc_pause_p99_ms', { digits: 1 })} ms, longest ${m('gc_pause_max_ms', { digits: 1 })} ms`,
    reference: cell`Redis pipeline: ${ref('queries_per_sec', { digits: 0 })} q/s, p99 ${ref('query_p99_us', { digits: 1, scale: 1e-3 })} ms`,
    ratio: cell`${ratio('queries_per_sec', { goal: META_QUERIES })}`,
    target: [META_QUERIES],
  },
  {
    path: 'metaserver 64-hash prefix queries, unary `QueryPrefix` calls',
    scenario: 'metaserver',
    kvfabric: cell`${m('queries_per_sec_unary', { digits: 0 })} q/s, p99 ${m('query_p99_us_unary', { digits: 1, scale: 1e-3 })} ms; GC pauses p99 ${m('gc_pause_p99_ms_unary', { digits: 1 })} ms, longest ${m('gc_pause_max_ms_unary', { digits: 1 })} ms`,
    reference: cell`Redis pipeline: ${ref('queries_per_sec_unary', { digits: 0 })} q/s, p99 ${ref('query_p99_us_unary', { digits: 1, scale: 1e-3 })} ms; grpc-js unary floor (the same RPC answered with a fixed answer): ${m('queries_per_sec_unary_floor', { digits: 0 })} q/s`,
    ratio: cell`${ratio('queries_per_sec_unary')} (${ratio('queries_per_sec_unary_vs_floor')}× the floor)`,
    target: [],
  },
  {
    path: 'metaserver inserts, the 1M-block layout in batches of ~1,000 hashes, on the update stream',
    scenario: 'metaserver',
    kvfabric: cell`${m('inserts_per_sec', { digits: 0 })} /s`,
    reference: cell`Redis SADD: ${ref('inserts_per_sec', { digits: 0 })} /s`,
    ratio: cell`${ratio('inserts_per_sec')}`,
    target: [],
  },
  {
    path: "metaserver index updates as a node's reporter sends them (64-hash insert or remove), update stream / unary calls",
    scenario: 'metaserver',
    kvfabric: cell`${m('updates_per_sec', { digits: 0 })} / ${m('updates_per_sec_unary', { digits: 0 })} /s; server CPU ${m('server_cpu_us_per_update', { digits: 0 })} / ${m('server_cpu_us_per_update_unary', { digits: 0 })} µs an update; GC pauses ${m('gc_pause_ms_per_1k_updates', d1)} / ${m('gc_pause_ms_per_1k_updates_unary', d1)} ms per 1,000, longest ${m('gc_pause_max_ms_updates', d1)} / ${m('gc_pause_max_ms_updates_unary', d1)} ms`,
    reference: cell`Redis SADD / SREM pipelines: ${ref('updates_per_sec', { digits: 0 })} /s, server CPU ${ref('server_cpu_us_per_update', { digits: 0 })} µs`,
    ratio: pair(ratio, 'updates_per_sec', 'updates_per_sec_unary'),
    target: [],
  },
  {
    path: 'metaserver memory per (block, owner) at 1M / 10M',
    scenario: 'metaserver',
    kvfabric: cell`${m('bytes_per_entry_1m', { digits: 1, goal: META_BYTES })} / ${m('bytes_per_entry_10m', { digits: 1, goal: META_BYTES })} B`,
    reference: cell`Redis sets: ${ref('bytes_per_entry_1m', { digits: 1 })} / ${ref('bytes_per_entry_10m', { digits: 1 })} B`,
    ratio: none,
    target: [META_BYTES],
  },
  {
    path: 'metaserver at 100M (block, owner) pairs vs 1.5M, pipelined / unary, both servers measured in turns',
    scenario: 'metaserver-scale',
    kvfabric: cell`${m('queries_per_sec', { digits: 0 })} / ${m('queries_per_sec_unary', { digits: 0 })} q/s; server CPU ${m('server_cpu_us_per_query_100m', { digits: 1 })} / ${m('server_cpu_us_per_query_unary_100m', { digits: 0 })} µs a query; ${m('index_bytes_per_entry_100m', { digits: 1, goal: SCALE_BYTES })} B a pair in the index, ${m('rss_bytes_per_entry_100m', { digits: 1, goal: SCALE_BYTES })} B resident`,
    reference: cell`the same at 1.5M: ${ref('queries_per_sec', { digits: 0 })} / ${ref('queries_per_sec_unary', { digits: 0 })} q/s; ${m('server_cpu_us_per_query_1.5m', { digits: 1 })} / ${m('server_cpu_us_per_query_unary_1.5m', { digits: 0 })} µs`,
    ratio: cell`q/s ${ratio('queries_per_sec')} / ${ratio('queries_per_sec_unary')}, CPU a query ${quotient(m('server_cpu_us_per_query_100m'), m('server_cpu_us_per_query_1.5m'))} / ${quotient(m('server_cpu_us_per_query_unary_100m'), m('server_cpu_us_per_query_unary_1.5m'))}, p99 ${ratio('query_p99_us')} / ${ratio('query_p99_us_unary')}`,
    target: ['no drop with size', SCALE_BYTES],
  },
  {
    path: 'node index 64-hash prefix lookup, 1M blocks, native index',
    scenario: 'node-local',
    kvfabric: cell`p50 ${m('index_lookup_64_p50_us', { digits: 1 })} µs, p99 ${m('index_lookup_64_p99_us', { digits: 1, goal: INDEX_P99 })} µs`,
    reference: none,
    ratio: none,
    target: [INDEX_P99],
  },
  {
    path: '64-hash query through the SDK, unix socket',
    scenario: 'node-local',
    kvfabric: cell`p50 ${m('query_64_p50_us', { digits: 0 })} µs, p99 ${m('query_64_p99_us', { digits: 0, goal: SDK_QUERY_P99 })} µs`,
    reference: none,
    ratio: none,
    target: [SDK_QUERY_P99],
  },
  {
    path: 'shared node vs 8 private pools of 1/8 the size, 8 engines',
    scenario: 'node-local',
    kvfabric: cell`hit rate ${m('sharing_hit_rate', { digits: 3 })}`,
    reference: cell`${ref('sharing_hit_rate', { digits: 3 })}`,
    ratio: cell`${ratio('sharing_hit_rate', { digits: 1 })}×`,
    target: [],
  },
  {
    path: 'remote pull over **verbs**, soft-RoCE in a QEMU VM, 64 / 256 KiB, 1 / 4 QPs',
    scenario: 'rdma',
    kvfabric: cell`${span(...rdmaKeys.map((k) => m(`rdma_read_${k}_gb_per_s`, mbps)))} MB/s, ${span(...rdmaKeys.map((k) => m(`rdma_read_${k}_cpu_ms_per_gib`, sPerGiB)))} s CPU/GiB`,
    reference: cell`\`ib_read_bw\`, same size, QPs and outstanding reads: ${span(...rdmaKeys.map((k) => ref(`rdma_read_${k}_gb_per_s`, mbps)))} MB/s, ${span(...rdmaKeys.map((k) => ref(`rdma_read_${k}_cpu_ms_per_gib`, sPerGiB)))} s CPU/GiB`,
    ratio: cell`${ratio('rdma_read_64k_q1_gb_per_s', { goal: VS_IB_READ_BW })} / ${ratio('rdma_read_64k_q4_gb_per_s', { goal: VS_IB_READ_BW })} / ${ratio('rdma_read_256k_q1_gb_per_s', { goal: VS_IB_READ_BW })} / ${ratio('rdma_read_256k_q4_gb_per_s', { goal: VS_IB_READ_BW })}`,
    target: [VS_IB_READ_BW],
  },
  {
    path: 'metaserver failover, leader `kill -9`',
    scenario: 'failover',
    kvfabric: cell`p50 ${m('failover_p50_seconds', { digits: 2 })} s to the first answer; ${m('recovery_p50_seconds', { digits: 2 })} s until ${m('blocks', { digits: 0 })} blocks are indexed again (lease TTL ${m('lease_ttl_seconds', { digits: 0 })} s, ${m('kills', { digits: 0 })} kills)`,
    reference: none,
    ratio: none,
    target: [],
  },
  {
    path: 'CLI cold start: `kvfabric nodes` against a live metaserver / `kvfabric --help`',
    scenario: 'cli',
    kvfabric: cell`p50 ${m('kvfabric_nodes_ms', { digits: 0, goal: CLI_NODES })} / ${m('kvfabric_help_ms', { digits: 0 })} ms, CPU ${m('kvfabric_nodes_cpu_ms', { digits: 0 })} ms`,
    reference: cell`\`etcdctl endpoint health\` ${ref('kvfabric_nodes_vs_etcdctl_ms', { digits: 1 })} ms (CPU ${ref('kvfabric_nodes_cpu_ms', { digits: 1 })}), \`redis-cli PING\` ${ref('kvfabric_nodes_ms', { digits: 1 })} ms, \`node -e 0\` ${ref('kvfabric_help_ms', { digits: 0 })} ms`,
    ratio: cell`${ratio('kvfabric_nodes_vs_etcdctl_ms', { digits: 1 })} / ${ratio('kvfabric_nodes_ms', { digits: 1 })} (help: ${ratio('kvfabric_help_ms')}× \`node -e 0\`)`,
    target: [CLI_NODES],
  },
];
