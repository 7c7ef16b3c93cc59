// Randomised check of the compact index against a plain reference model: owners per hash in arrival order,
// per-node counts, block/owner totals, prefix lengths. Deterministic seed so failures replay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaStore, type Hashes } from './store.js';

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const NODES = ['n0', 'n1', 'n2', 'n3', 'n4'];
const NAMESPACES = ['a', 'b'];
const UNIVERSE = 400;

function pack(ids: number[], len = 16): Hashes {
  const packed = Buffer.alloc(ids.length * len);
  ids.forEach((id, i) => packed.writeUInt16LE(id, i * len + len - 2));
  return { packed, hashLen: len };
}

test('random operations match the reference model', () => {
  const rand = rng(12345);
  const store = new MetaStore({ nodeStaleMs: 1e9, ttlMs: 1e12, clock: () => 1_000 });
  const model = new Map<string, string[]>(); // `${ns}/${id}` -> owners in arrival order
  const registered = new Set<string>();
  const key = (ns: string, id: number) => `${ns}/${id}`;
  const batch = () => Array.from({ length: 1 + rand(40) }, () => rand(UNIVERSE));

  for (let step = 0; step < 3000; step++) {
    const node = NODES[rand(NODES.length)]!;
    const ns = NAMESPACES[rand(NAMESPACES.length)]!;
    const op = rand(100);
    if (!registered.has(node) || op < 3) {
      store.heartbeat({ nodeId: node, addr: `h:${node}`, transports: [1] });
      registered.add(node);
    } else if (op < 55) {
      const ids = batch();
      let inserted = 0;
      const reclaimable: number[] = [];
      ids.forEach((id, i) => {
        const owners = model.get(key(ns, id)) ?? [];
        if (!owners.includes(node)) {
          owners.push(node);
          inserted++;
        }
        model.set(key(ns, id), owners);
        if (owners.indexOf(node) >= 2) reclaimable.push(i);
      });
      assert.deepEqual(store.insert(node, ns, pack(ids)), { inserted, reclaimable });
    } else if (op < 95) {
      const ids = batch();
      let removed = 0;
      for (const id of ids) {
        const owners = model.get(key(ns, id));
        const at = owners?.indexOf(node) ?? -1;
        if (at < 0) continue;
        owners!.splice(at, 1);
        removed++;
        if (owners!.length === 0) model.delete(key(ns, id));
      }
      assert.equal(store.remove(node, ns, pack(ids)), removed);
    } else {
      let removed = 0;
      for (const [k, owners] of model) {
        const at = owners.indexOf(node);
        if (at < 0) continue;
        owners.splice(at, 1);
        removed++;
        if (owners.length === 0) model.delete(k);
      }
      assert.equal(store.unregister(node), removed);
      registered.delete(node);
    }

    if (step % 250 === 0 || step === 2999) {
      let owners = 0;
      for (const o of model.values()) owners += o.length;
      assert.equal(store.blocks, model.size);
      assert.equal(store.owners, owners);
      for (const n of store.listNodes()) {
        const want = [...model.values()].filter((o) => o.includes(n.nodeId)).length;
        assert.equal(n.indexedBlocks, want, `indexed of ${n.nodeId}`);
      }
      for (const ns2 of NAMESPACES) {
        const ids = Array.from({ length: UNIVERSE }, (_, i) => i);
        const got = store.queryOwners(ns2, pack(ids)).map((list) => list.map((o) => o.nodeId));
        assert.deepEqual(
          got,
          ids.map((id) => model.get(key(ns2, id)) ?? []),
          `owners in ${ns2} at step ${step}`,
        );
        // prefix from a random start: count per node until its first hole
        const start = rand(UNIVERSE - 64);
        const q = Array.from({ length: 64 }, (_, i) => start + i);
        const want = new Map<string, number>();
        for (const n of model.get(key(ns2, q[0]!)) ?? []) {
          let len = 0;
          while (len < q.length && (model.get(key(ns2, q[len]!)) ?? []).includes(n)) len++;
          want.set(n, len);
        }
        const prefix = store.queryPrefix(ns2, pack(q));
        assert.deepEqual(new Map(prefix.map((p) => [p.nodeId, p.prefixLen])), want);
      }
    }
  }
});
