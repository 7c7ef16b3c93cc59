import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@kvfabric/common';
import { Reporter, type ReporterClient } from './reporter.js';

class FakeMetaserver implements ReporterClient {
  epoch = 1n;
  down = false;
  calls: { kind: string; ns?: string; keys?: string[] }[] = [];
  owned = new Map<string, Set<string>>();
  private known = false;

  async heartbeat() {
    if (this.down) throw new Error('unavailable');
    this.calls.push({ kind: 'heartbeat' });
    const registered = !this.known;
    this.known = true;
    return { epoch: this.epoch, registered };
  }
  private keys(h: { packed: Buffer; hashLen: number }) {
    const out: string[] = [];
    for (let i = 0; i < h.packed.length; i += h.hashLen) out.push(h.packed.toString('latin1', i, i + h.hashLen));
    return out;
  }
  async insertBlocks(_n: string, ns: string, h: { packed: Buffer; hashLen: number }) {
    if (this.down) throw new Error('unavailable');
    const keys = this.keys(h);
    this.calls.push({ kind: 'insert', ns, keys });
    const set = this.owned.get(ns) ?? new Set();
    keys.forEach((k) => set.add(k));
    this.owned.set(ns, set);
    return { epoch: this.epoch };
  }
  async removeBlocks(_n: string, ns: string, h: { packed: Buffer; hashLen: number }) {
    if (this.down) throw new Error('unavailable');
    const keys = this.keys(h);
    this.calls.push({ kind: 'remove', ns, keys });
    keys.forEach((k) => this.owned.get(ns)?.delete(k));
    return { epoch: this.epoch };
  }
  async unregister() {
    this.calls.push({ kind: 'unregister' });
  }
  close() {}
  /** A restart: new epoch, empty index, forgets the node. */
  restart() {
    this.epoch++;
    this.owned.clear();
    this.known = false;
  }
}

function setup(resident: { ns: string; key: string }[] = []) {
  const ms = new FakeMetaserver();
  const r = new Reporter({
    client: ms, nodeId: 'n1', addr: '127.0.0.1:1', transports: [1], heartbeatMs: 30, flushMs: 5, batchSize: 2,
    stats: () => ({ poolCapacityBytes: 100, poolUsedBytes: 10, blocks: resident.length }),
    resident: () => resident, logger: silentLogger(),
  });
  return { ms, r, resident };
}

test('inserts and removes are batched and netted per namespace', async () => {
  const { ms, r } = setup();
  r.inserted('a', 'k1');
  r.inserted('a', 'k2');
  r.inserted('a', 'k3');
  r.inserted('b', 'k1');
  r.inserted('a', 'gone');
  r.removed('a', 'gone'); // insert + remove before the flush: nothing sent
  await r.flush();
  const sent = ms.calls.filter((c) => c.kind === 'insert');
  assert.deepEqual(sent.map((c) => [c.ns, c.keys]), [['a', ['k1', 'k2']], ['a', ['k3']], ['b', ['k1']]]);
  assert.equal(r.counters.netted, 1);
  assert.equal(r.counters.inserted, 4);
  r.removed('a', 'k1');
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['k2', 'k3']);
  await r.stop();
  assert.equal(ms.calls.at(-1)!.kind, 'unregister');
});

test('a new epoch re-advertises every resident block; a down metaserver drops and counts', async () => {
  const { ms, r, resident } = setup([{ ns: 'a', key: 'r1' }, { ns: 'a', key: 'r2' }, { ns: 'b', key: 'r3' }]);
  r.start();
  await sleep(20);
  await r.flush();
  assert.equal(ms.owned.get('a')?.size, 2, 'first registration advertises what is resident');
  ms.down = true;
  await sleep(50);
  assert.equal(r.connected, false);
  resident.push({ ns: 'a', key: 'r4' });
  r.inserted('a', 'r4');
  await r.flush();
  assert.equal(r.counters.dropped, 1);
  ms.restart();
  ms.down = false;
  await sleep(80);
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!].sort(), ['r1', 'r2', 'r4']);
  assert.deepEqual([...ms.owned.get('b')!], ['r3']);
  assert.ok(r.counters.readvertised >= 7);
  assert.equal(r.epoch, 2n);
  await r.stop();
});
