// Micro-benchmark of the node index's 64-hash prefix lookup (DESIGN §8: ≤ 20 µs p99 at millions of blocks).
//
//   npm run build && node --expose-gc --max-old-space-size=8192 bench/dist/node-index/main.js \
//     [--blocks 1000000,4000000] [--hash-len 32] [--rounds 20000] [--impl path/to/block-index.js]
//   (or from the sources: node --expose-gc --import tsx --conditions source bench/src/node-index/main.ts ...)
//
// For each size: seals that many blocks with random hashes in one namespace, warms up, collects garbage, then
// times `prefix` one call at a time. Request shapes: `run` (64 hashes saved one after another, as one request's
// blocks are), into an index filled in order (fresh node: neighbouring slots) and in shuffled order (after eviction
// churn: far-apart slots); `scattered` (64 hashes drawn from anywhere: the worst case for caches). Every lookup
// must hit all 64. The index is the node's (native, createBlockIndex); `--impl` benchmarks another module exporting a
// BlockIndex class with the same API instead (e.g. a build of the previous TypeScript one).
import { randomFillSync } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createBlockIndex } from '@kvfabric/node/internal';

interface IndexLike {
  slotForShard(
    ns: number,
    buf: Uint8Array,
    off: number,
    len: number,
    shards: number,
    shard: number,
    pageBytes: number,
  ): number;
  assign(slot: number, shard: number, page: number): void;
  markShardWritten(slot: number, shard: number): boolean;
  prefix(ns: number, packed: Buffer, hashLen: number, count: number, out?: Int32Array): number;
}
type IndexCtor = new (initialCapacity?: number) => IndexLike;
/** The node's index (native), constructed like an `--impl` module's BlockIndex class. */
const NodeBlockIndex = function (initialCapacity?: number) {
  return createBlockIndex(initialCapacity);
} as unknown as IndexCtor;

const PREFIX = 64;

const { values } = parseArgs({
  options: {
    blocks: { type: 'string', default: '1000000,4000000' },
    'hash-len': { type: 'string', default: '32' },
    rounds: { type: 'string', default: '20000' },
    impl: { type: 'string', default: '' },
  },
});
const sizes = values.blocks.split(',').map(Number);
const hashLen = Number(values['hash-len']);
const rounds = Number(values.rounds);
const BlockIndex: IndexCtor = values.impl
  ? ((await import(pathToFileURL(resolve(values.impl)).href)) as { BlockIndex: IndexCtor }).BlockIndex
  : NodeBlockIndex;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.error('note: run with --expose-gc to collect garbage before timing');

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function switches(): number {
  const u = process.resourceUsage();
  return u.voluntaryContextSwitches + u.involuntaryContextSwitches;
}

function row(n: number, label: string, us: Float64Array): string {
  us.sort();
  const mean = us.reduce((a, b) => a + b, 0) / us.length;
  const f = (x: number) => x.toFixed(1).padStart(6);
  return `${String(n).padStart(8)} blocks  ${label.padEnd(26)} p50 ${f(percentile(us, 0.5))} µs  p99 ${f(percentile(us, 0.99))} µs  max ${f(us[us.length - 1]!)} µs  mean ${f(mean)} µs  (${us.length} lookups)`;
}

/**
 * Times `prefix` one call at a time. Shared boxes preempt us mid-call, so besides every sample it reports the
 * samples during which the process was not switched out (context-switch counts read around each call).
 */
function time(idx: IndexLike, requests: Buffer[], label: string, n: number): void {
  const out = new Int32Array(PREFIX);
  const lookup = (r: Buffer) => {
    if (idx.prefix(0, r, hashLen, PREFIX, out) !== PREFIX) throw new Error(`${label}: expected ${PREFIX} hits`);
  };
  for (let r = 0; r < Math.max(requests.length, 5000); r++) lookup(requests[r % requests.length]!); // warm: JIT, caches, LRU order
  gc?.();
  const all = new Float64Array(rounds);
  const quiet = new Float64Array(rounds);
  let q = 0;
  for (let r = 0; r < rounds; r++) {
    const req = requests[r % requests.length]!;
    const s0 = switches();
    const t0 = performance.now();
    lookup(req);
    const t1 = performance.now();
    const us = (t1 - t0) * 1e3;
    all[r] = us;
    if (switches() === s0) quiet[q++] = us;
  }
  console.log(row(n, label, all));
  console.log(row(n, `${label}, not switched out`, quiet.slice(0, q)));
}

/** Seals the `n` blocks of `hashes` in `order` into a fresh index, then times the requests against it. */
function fillAndTime(
  hashes: Buffer,
  n: number,
  order: Int32Array,
  fill: 'sequential' | 'shuffled',
  runs: Buffer[],
  scattered: Buffer[],
): void {
  const idx = new BlockIndex(1 << 20);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const b = order[i]!;
    const slot = idx.slotForShard(0, hashes, b * hashLen, hashLen, 1, 0, 4096);
    idx.assign(slot, 0, i * 4096);
    idx.markShardWritten(slot, 0);
  }
  const fillS = (performance.now() - t0) / 1e3;
  gc?.();
  const mem = process.memoryUsage();
  console.log(
    `${String(n).padStart(8)} blocks  ${fill} fill in ${fillS.toFixed(1)} s, heap ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB, array buffers ${(mem.arrayBuffers / 2 ** 20).toFixed(0)} MiB`,
  );
  time(idx, runs, `${fill} run`, n);
  if (fill === 'shuffled') time(idx, scattered, 'scattered', n);
}

console.log(
  `impl ${values.impl || '@kvfabric/node/internal'}; ${PREFIX}-hash prefix, hash_len ${hashLen}, ${rounds} lookups per row, load ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cpus`,
);
let seed = 12345;
const rand = (m: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % m;
for (const n of sizes) {
  const hashes = Buffer.alloc(n * hashLen);
  randomFillSync(hashes);
  const requests = 4096;
  const runs: Buffer[] = [];
  const scattered: Buffer[] = [];
  for (let r = 0; r < requests; r++) {
    const start = rand(n - PREFIX);
    runs.push(hashes.subarray(start * hashLen, (start + PREFIX) * hashLen));
    const req = Buffer.alloc(PREFIX * hashLen);
    for (let k = 0; k < PREFIX; k++) {
      const b = rand(n);
      hashes.copy(req, k * hashLen, b * hashLen, (b + 1) * hashLen);
    }
    scattered.push(req);
  }
  // sequential: a fresh node, a request's blocks in neighbouring slots; shuffled: a node after long eviction
  // churn, where freed slots are reused in any order (the same requests, their blocks in far-apart slots)
  for (const fill of ['sequential', 'shuffled'] as const) {
    const order = Int32Array.from({ length: n }, (_, i) => i);
    if (fill === 'shuffled') {
      for (let i = n - 1; i > 0; i--) {
        const j = rand(i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    fillAndTime(hashes, n, order, fill, runs, scattered);
    gc?.(); // the filled index is garbage now
  }
}
