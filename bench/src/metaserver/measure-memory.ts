// Bytes per (block, owner) of the metaserver index, measured from the process's memory and from the store's own
// accounting. Run: npm run build, then node --expose-gc bench/dist/metaserver/measure-memory.js [entries...] [--owners N]
// Each block gets N owners (default 1) among 8 nodes; hashes are 32 random-looking bytes (like SHA-256 block hashes).
import { createHash } from 'node:crypto';
import { MetaStore } from '@kvfabric/metaserver/internal';

const NODES = 8;
const BATCH = 4096;

function usedBytes(): number {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers + (m.external - m.arrayBuffers);
}

export interface MemoryResult {
  entries: number;
  blocks: number;
  ownersPerBlock: number;
  bytesPerEntryProcess: number;
  bytesPerEntryIndex: number;
  insertsPerSec: number;
}

/** Fills a store with `entries` (block, owner) pairs and reports bytes per pair. */
export function measure(entries: number, ownersPerBlock = 1): MemoryResult {
  if (!globalThis.gc) throw new Error('run with node --expose-gc');
  const blocks = Math.ceil(entries / ownersPerBlock);
  const seed = createHash('sha256').update('kvfabric').digest();
  const packed = Buffer.alloc(BATCH * 32);
  const before = usedBytes();
  const store = new MetaStore({ nodeStaleMs: 3_600_000, ttlMs: 7_200_000 });
  for (let n = 0; n < NODES; n++) store.heartbeat({ nodeId: `node-${n}`, addr: `10.0.0.${n}:7000`, transports: [1] });
  const started = process.hrtime.bigint();
  for (let base = 0; base < blocks; base += BATCH) {
    const count = Math.min(BATCH, blocks - base);
    // cheap uniform 32-byte hashes: the seed xor-ed with a mixed counter in every 4-byte word
    for (let i = 0; i < count; i++) {
      let x = (base + i) >>> 0;
      for (let w = 0; w < 8; w++) {
        x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) + w;
        packed.writeUInt32LE((seed.readUInt32LE(w * 4) ^ x) >>> 0, i * 32 + w * 4);
      }
    }
    const slice = { packed: packed.subarray(0, count * 32), hashLen: 32 };
    for (let o = 0; o < ownersPerBlock; o++)
      store.insert(`node-${(base / BATCH + o) % NODES}`, 'model/fp16/tp1', slice);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = usedBytes();
  const pairs = store.owners;
  const result: MemoryResult = {
    entries: pairs,
    blocks: store.blocks,
    ownersPerBlock,
    bytesPerEntryProcess: (after - before) / pairs,
    bytesPerEntryIndex: store.memoryBytes() / pairs,
    insertsPerSec: pairs / seconds,
  };
  // keep the store alive until measured
  if (store.blocks !== blocks) throw new Error(`expected ${blocks} blocks, got ${store.blocks}`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const oi = args.indexOf('--owners');
  const owners = oi >= 0 ? Number(args.splice(oi, 2)[1]) : 1;
  const sizes = args.length > 0 ? args.map(Number) : [1_000_000, 10_000_000];
  for (const n of sizes) {
    const r = measure(n, owners);
    console.log(
      JSON.stringify({
        ...r,
        bytesPerEntryProcess: +r.bytesPerEntryProcess.toFixed(1),
        bytesPerEntryIndex: +r.bytesPerEntryIndex.toFixed(1),
        insertsPerSec: Math.round(r.insertsPerSec),
      }),
    );
  }
}
