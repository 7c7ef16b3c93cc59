// Shared by the remote-pull process tests: SDK engines on a node, block data, /metrics scraping.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeHandle } from '@kvfabric/testkit';
import type { MetaserverClient } from '@kvfabric/client';
import { KvEngine, KvRegion, type KvLayoutSpec } from '@kvfabric/client';

export const LAYOUT: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 8192, numBlocks: 128 }; // 64 KiB pages
export const PAGE = 4 * 2 * 8192;

let seq = 0;
/** `n` fresh 32-byte hashes, unique to this process and call. */
export function freshHashes(n: number): Buffer[] {
  const run = seq++;
  return Array.from({ length: n }, (_, i) => {
    const h = Buffer.alloc(32, 0x2e);
    h.write(`p${process.pid}-r${run}-b${i}`);
    return h;
  });
}

export interface TestEngine extends AsyncDisposable {
  kv: KvEngine;
  region: KvRegion;
}

export async function engine(node: NodeHandle, namespace: string, layout: KvLayoutSpec = LAYOUT): Promise<TestEngine> {
  const region = KvRegion.create({ layout });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace, region });
  return {
    kv,
    region,
    async [Symbol.asyncDispose]() {
      await kv.close();
      region.close();
    },
  };
}

/** Writes random bytes into region blocks [0, hashes.length) and saves them under `hashes`; returns the data. */
export async function saveBlocks(e: TestEngine, hashes: Buffer[], firstBlock = 0): Promise<Buffer[]> {
  const data = hashes.map(() => randomBytes(e.region.geometry.blockBytes));
  data.forEach((d, i) => e.region.writeBlock(firstBlock + i, d));
  const ids = hashes.map((_, i) => firstBlock + i);
  const res = await e.kv.save(ids, hashes);
  if (res.sealed !== hashes.length) throw new Error(`saved ${res.sealed} of ${hashes.length}`);
  return data;
}

/** Loads the lease's `hits` blocks into region blocks [at, at + hits) and returns their bytes. */
export async function loadBlocks(e: TestEngine, leaseId: string, hits: number, at: number): Promise<Buffer[]> {
  const ids = Array.from({ length: hits }, (_, i) => at + i);
  await e.kv.load(leaseId, ids);
  return ids.map((b) => e.region.readBlock(b));
}

/** Sum of every sample of `name` (any labels, or those matching `labels`) in the node's /metrics. */
export async function metric(node: NodeHandle | { httpAddr: string }, name: string, labels?: string): Promise<number> {
  const text = await (await fetch(`http://${node.httpAddr}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    seen = true;
  }
  if (!seen && !labels) throw new Error(`metric ${name} not exported by ${node.httpAddr}`);
  return sum;
}

/** Polls `fn` until it returns true (or throws after `timeoutMs`: generous, a loaded machine is slow, not broken). */
export async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export async function nodeId(node: NodeHandle): Promise<string> {
  const h = (await (await fetch(`http://${node.httpAddr}/health`)).json()) as { nodeId: string };
  return h.nodeId;
}

/** Waits until the metaserver reports `node` holding exactly `n` leading blocks of `hashes`. */
export async function advertised(
  meta: MetaserverClient,
  ns: string,
  hashes: Buffer[],
  node: NodeHandle,
  n: number,
  timeoutMs?: number,
): Promise<void> {
  await until(
    `${node.addr} advertising ${n} blocks`,
    async () => (await meta.queryPrefix(ns, hashes)).nodes.some((x) => x.addr === node.addr && x.prefixLen === n),
    timeoutMs,
  );
}
