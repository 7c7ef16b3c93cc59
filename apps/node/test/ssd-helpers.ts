// Shared by the SSD tier's process tests: a directory off tmpfs, a node with an SSD tier, and reading blocks back
// through Query + Load in windows that fit the pool.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, type NodeHandle, type NodeOptions } from '@kvfabric/testkit';
import { PAGE, metric, saveBlocks, until, type TestEngine } from './pull-helpers.js';

const TMPFS_MAGIC = 0x01021994;

/** A fresh directory on a filesystem that does direct I/O: KVFABRIC_SSD_TEST_DIR, /var/tmp or the repository. */
export function ssdDir(): { path: string; [Symbol.dispose](): void } {
  const repo = fileURLToPath(new URL('../../..', import.meta.url));
  const bases = [process.env.KVFABRIC_SSD_TEST_DIR, '/var/tmp', repo].filter((b): b is string => !!b);
  const base = bases.find((b) => existsSync(b) && statfsSync(b).type !== TMPFS_MAGIC);
  if (!base) assert.fail(`no directory off tmpfs among ${bases.join(', ')}`);
  const path = mkdtempSync(join(base, 'kvf-ssd-'));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

export interface SsdNodeOptions extends NodeOptions {
  paths: string[];
  capacity?: string;
  writeMode?: 'evict' | 'through';
  wipe?: boolean;
}

export function startSsdNode(o: SsdNodeOptions): Promise<NodeHandle> {
  return startNode({
    ...o,
    args: [
      '--ssd-path',
      o.paths.join(','),
      '--ssd-capacity',
      o.capacity ?? '16mib',
      '--ssd-write-mode',
      o.writeMode ?? 'evict',
      ...(o.wipe ? ['--ssd-wipe'] : []),
      ...(o.args ?? []),
    ],
  });
}

export interface Readback {
  /** Blocks the query answered (each compared byte for byte). */
  served: number;
  /** Of those, how many came from the SSD tier. */
  fromSsd: number;
  /** Blocks whose loaded bytes differed from what was saved (must stay 0). */
  corrupt: number;
}

/**
 * Queries `hashes` in windows of `window` blocks (each window its own query: what one query promotes must fit the
 * pool), loads each window's hits into region blocks [0, hits) and compares them with `expected` (undefined: the
 * block's bytes are unknown, any answer is counted but not compared).
 */
export async function readBack(
  e: TestEngine,
  hashes: Buffer[],
  expected: (Buffer | undefined)[],
  window: number,
): Promise<Readback & { hitsPerWindow: number[] }> {
  const r = { served: 0, fromSsd: 0, corrupt: 0, hitsPerWindow: [] as number[] };
  for (let at = 0; at < hashes.length; at += window) {
    const hs = hashes.slice(at, at + window);
    const q = await e.kv.query(hs, { timeoutMs: 30_000 });
    r.hitsPerWindow.push(q.hits);
    if (q.hits === 0) continue;
    r.served += q.hits;
    r.fromSsd += q.breakdown.ssd;
    await e.kv.load(
      q.leaseId,
      Array.from({ length: q.hits }, (_, i) => i),
    );
    for (let i = 0; i < q.hits; i++) {
      const want = expected[at + i];
      if (want && !e.region.readBlock(i).equals(want)) r.corrupt++;
    }
  }
  return r;
}

/**
 * Saves `hashes` a quarter of the pool at a time, waiting after each for the SSD writer (evict mode writes the
 * coldest quarter of the pool ahead of eviction), so that no block is evicted before it is on SSD. Returns the
 * blocks' bytes and the pool's size in blocks.
 */
export async function savePastPool(
  node: NodeHandle,
  e: TestEngine,
  hashes: Buffer[],
): Promise<{ data: Buffer[]; poolBlocks: number }> {
  const data: Buffer[] = [];
  const poolBlocks = (await metric(node, 'kvfabric_pool_capacity_bytes')) / PAGE;
  for (let at = 0; at < hashes.length; at += poolBlocks / 4) {
    data.push(...(await saveBlocks(e, hashes.slice(at, at + poolBlocks / 4))));
    const due = Math.max(0, data.length - Math.floor(poolBlocks * 0.75));
    await until('the writer', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) >= due);
  }
  return { data, poolBlocks };
}
