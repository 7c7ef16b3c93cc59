// One engine of node-local's concurrent-engines run, in its own process (forked by node-local/engines.ts, IPC):
// a KvEngine with its own region saving and loading its own blocks against the shared node, as one GPU's
// inference engine would. Each step reports this process's CPU over it, so the parent can account the engine
// clients' CPU (the parent times the steps of all engines together).
import { KvEngine, KvRegion, type KvLayoutSpec } from '@kvfabric/client';
import { freshPacked } from '../fresh-hashes.js';
import { warmSdk } from './warm-sdk.js';

export type ToWorker =
  | { kind: 'init'; socket: string; namespace: string; layout: KvLayoutSpec; calls: number; perCall: number }
  | { kind: 'save' }
  | { kind: 'query' }
  | { kind: 'load' };

export type FromWorker = { kind: 'ready' } | { kind: 'done'; cpuSeconds: number } | { kind: 'error'; message: string };

/** Calls kept outstanding per engine, as in the single-engine rows (an engine saving layer groups asynchronously). */
const IN_FLIGHT = 2;

async function inFlight(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

interface Engine {
  kv: KvEngine;
  region: KvRegion;
  ids: Uint32Array[];
  /** This rep's hashes (one packed buffer per call) and the next rep's. */
  hashes: Packed[];
  next: Packed[];
  leases: string[];
  perCall: number;
}

let engine: Engine | undefined;

type Packed = ReturnType<typeof freshPacked>;
const fresh = (calls: number, perCall: number): Packed[] => Array.from({ length: calls }, () => freshPacked(perCall));

async function init(m: Extract<ToWorker, { kind: 'init' }>): Promise<void> {
  const region = KvRegion.create({ layout: m.layout });
  // Touch the region once so no rep pays first-touch faults.
  const chunk = Buffer.alloc(Math.min(region.sizeBytes, 64 << 20), 7);
  for (let off = 0; off < region.sizeBytes; off += chunk.length)
    region.write(off, chunk.subarray(0, Math.min(chunk.length, region.sizeBytes - off)));
  const kv = await KvEngine.register({ target: m.socket, namespace: m.namespace, region });
  const ids = Array.from({ length: m.calls }, (_, c) =>
    Uint32Array.from({ length: m.perCall }, (_, i) => c * m.perCall + i),
  );
  await warmSdk(kv, inFlight);
  engine = { kv, region, ids, hashes: [], next: fresh(m.calls, m.perCall), leases: [], perCall: m.perCall };
}

async function step(kind: 'save' | 'query' | 'load'): Promise<void> {
  const e = engine;
  if (!e) throw new Error(`${kind} before init`);
  if (kind === 'save') {
    e.hashes = e.next; // made outside the timed steps (an engine has its hashes already)
    await inFlight(e.ids.length, async (c) => {
      const r = await e.kv.save(e.ids[c]!, e.hashes[c]!);
      if (r.stored !== e.perCall) throw new Error(`save stored ${r.stored} of ${e.perCall}`);
    });
  } else if (kind === 'query') {
    e.leases = [];
    for (const hashes of e.hashes) {
      const q = await e.kv.query(hashes, { localOnly: true });
      if (q.hits !== e.perCall) throw new Error(`query hit ${q.hits} of ${e.perCall}`);
      e.leases.push(q.leaseId);
    }
    e.next = fresh(e.ids.length, e.perCall); // the next save's, while this step is not timed
  } else {
    await inFlight(e.ids.length, (c) => e.kv.load(e.leases[c]!, e.ids[c]!).then(() => undefined));
  }
}

const send = (m: FromWorker) => process.send!(m);
// The parent closed the channel (done, or gone): nothing more will be asked.
process.on('disconnect', () => {
  void (async () => {
    try {
      await engine?.kv.close();
      engine?.region.close();
    } finally {
      process.exit(0);
    }
  })();
});

process.on('message', (m: ToWorker) => {
  void (async () => {
    try {
      if (m.kind === 'init') {
        await init(m);
        return send({ kind: 'ready' });
      }
      const c0 = process.cpuUsage();
      await step(m.kind);
      const c = process.cpuUsage(c0);
      send({ kind: 'done', cpuSeconds: (c.user + c.system) / 1e6 });
    } catch (err) {
      send({ kind: 'error', message: (err as Error).message });
    }
  })();
});
