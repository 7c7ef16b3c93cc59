import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError, TIER_BOTH, TIER_DRAM, TIER_SSD } from '@kvfabric/common';
import { silentLogger } from '@kvfabric/common/observability';
import { Reporter, type ReporterClient } from './reporter.js';

class FakeMetaserver implements ReporterClient {
  epoch = 1n;
  down = false;
  /** Ownerships this node may hold (the metaserver's --max-blocks-per-node). */
  quota = Number.POSITIVE_INFINITY;
  calls: { kind: string; ns?: string; keys?: string[]; tier?: number }[] = [];
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
  async insertBlocks(_n: string, ns: string, h: { packed: Buffer; hashLen: number }, opts: { tier: number }) {
    if (this.down) throw new Error('unavailable');
    const keys = this.keys(h);
    this.calls.push({ kind: 'insert', ns, keys, tier: opts.tier });
    const set = this.owned.get(ns) ?? new Set();
    if (set.size + keys.filter((k) => !set.has(k)).length > this.quota)
      throw new KvError('QUOTA_EXCEEDED', 'max-blocks-per-node: over the limit');
    keys.forEach((k) => set.add(k));
    this.owned.set(ns, set);
    return { epoch: this.epoch };
  }
  /** Removes that time out before reaching the index (a stalled stream). */
  failRemoves = 0;
  async removeBlocks(_n: string, ns: string, h: { packed: Buffer; hashLen: number }) {
    if (this.down) throw new Error('unavailable');
    if (this.failRemoves > 0) {
      this.failRemoves--;
      throw new KvError('TRANSPORT_TIMEOUT', 'update stream: no answer in time');
    }
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

const h = (key: string) => Buffer.from(key);

type Resident = { ns: string; key: string }[];
/** Resident blocks as the node lists them: packed per namespace and hash length. */
const residentLists = (resident: Resident) => () => {
  const lists = new Map<string, { namespace: string; keys: string[] }>();
  for (const { ns, key } of resident) {
    const id = `${ns}/${key.length}`;
    if (!lists.has(id)) lists.set(id, { namespace: ns, keys: [] });
    lists.get(id)!.keys.push(key);
  }
  return [...lists.values()].map(({ namespace, keys }) => ({
    namespace,
    hashes: { packed: h(keys.join('')), hashLen: keys[0]!.length },
  }));
};

function setup(resident: Resident = [], flushGapMs?: number) {
  const ms = new FakeMetaserver();
  const r = new Reporter({
    ...(flushGapMs !== undefined ? { flushGapMs } : {}),
    client: ms,
    nodeId: 'n1',
    addr: '127.0.0.1:1',
    transports: [1],
    heartbeatMs: 30,
    flushMs: 5,
    batchSize: 2,
    stats: () => ({ poolCapacityBytes: 100, poolUsedBytes: 10, blocks: resident.length }),
    resident: residentLists(resident),
    logger: silentLogger(),
  });
  return { ms, r, resident };
}

test('inserts and removes are batched and netted per namespace', async () => {
  const { ms, r } = setup();
  r.inserted('a', h('k1'));
  r.inserted('a', h('k2'));
  r.inserted('a', h('k3'));
  r.inserted('b', h('k1'));
  r.inserted('a', h('gone'));
  r.removed('a', h('gone')); // insert + remove before the flush: nothing sent
  await r.flush();
  const sent = ms.calls.filter((c) => c.kind === 'insert');
  assert.deepEqual(
    sent.map((c) => [c.ns, c.keys]),
    [
      ['a', ['k1', 'k2']],
      ['a', ['k3']],
      ['b', ['k1']],
    ],
  );
  assert.equal(r.counters.netted, 1);
  assert.equal(r.counters.inserted, 4);
  r.removed('a', h('k1'));
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['k2', 'k3']);
  await r.stop();
  assert.equal(ms.calls.at(-1)!.kind, 'unregister');
});

test('tiers: a block that moves is re-inserted with its latest tier; a remove after a move goes out', async () => {
  const { ms, r } = setup();
  r.inserted('a', h('k1')); // sealed in DRAM
  r.moved('a', h('k1'), TIER_BOTH); // written to SSD before the flush: one insert, held in both
  r.insertedMany('a', h('r1r2'), 2, TIER_SSD); // replayed from the journal
  await r.flush();
  const inserts = () => ms.calls.filter((c) => c.kind === 'insert').map((c) => [c.keys, c.tier]);
  assert.deepEqual(
    inserts().sort((x, y) => Number(x[1]) - Number(y[1])),
    [
      [['r1', 'r2'], TIER_SSD],
      [['k1'], TIER_BOTH],
    ],
  );
  ms.calls = [];
  r.moved('a', h('k1'), TIER_SSD); // DRAM evicted it, on SSD still
  r.removed('a', h('k1')); // then its SSD extent was evicted too: the metaserver must hear the remove
  r.moved('a', h('r1'), TIER_BOTH); // promoted
  await r.flush();
  assert.deepEqual(
    ms.calls.map((c) => [c.kind, c.keys, c.tier]),
    [
      ['insert', ['r1'], TIER_BOTH],
      ['remove', ['k1'], undefined],
    ],
  );
  assert.deepEqual([...ms.owned.get('a')!].sort(), ['r1', 'r2']);
  assert.equal(r.counters.netted, 0);
  r.inserted('a', h('k9'), TIER_DRAM);
  await r.flush();
  assert.equal(ms.calls.at(-1)!.tier, TIER_DRAM);
  await r.stop();
});

test('updates noted right after a timed send wait for the flush gap, and go together', async () => {
  const { ms, r } = setup([], 60_000);
  const inserts = () => ms.calls.filter((c) => c.kind === 'insert').map((c) => c.keys);
  r.inserted('a', h('k1')); // the first after a quiet time goes after flushMs
  for (let i = 0; i < 1000 && inserts().length === 0; i++) await sleep(5);
  assert.deepEqual(inserts(), [['k1']]);
  r.inserted('a', h('k2'));
  r.inserted('a', h('k3'));
  await sleep(50); // ten times flushMs: still inside the gap, nothing sent
  assert.deepEqual(inserts(), [['k1']]);
  await r.flush(); // an explicit flush does not wait
  assert.deepEqual(inserts(), [['k1'], ['k2', 'k3']]);
  await r.stop();
});

test('a new epoch re-advertises every resident block; a down metaserver drops and counts', async () => {
  const { ms, r, resident } = setup([
    { ns: 'a', key: 'r1' },
    { ns: 'a', key: 'r2' },
    { ns: 'b', key: 'r3' },
  ]);
  r.start();
  await sleep(20);
  await r.flush();
  assert.equal(ms.owned.get('a')?.size, 2, 'first registration advertises what is resident');
  ms.down = true;
  await sleep(50);
  assert.equal(r.connected, false);
  resident.push({ ns: 'a', key: 'r4' });
  r.inserted('a', h('r4'));
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

test('a remove the metaserver did not answer goes out again once it answers (a re-advertise would not remove it)', async () => {
  const { ms, r, resident } = setup([
    { ns: 'a', key: 'k1' },
    { ns: 'a', key: 'k2' },
  ]);
  r.start();
  for (let i = 0; i < 2000 && ms.owned.get('a')?.size !== 2; i++) await sleep(10); // registered and re-advertised
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!].sort(), ['k1', 'k2']);
  // k1 is evicted; its remove times out; the metaserver answers the next heartbeat: the remove goes out again
  resident.splice(0, 1);
  ms.failRemoves = 1;
  r.removed('a', h('k1'));
  await r.flush();
  assert.equal(r.counters.requeued, 1);
  assert.equal(r.counters.dropped, 0);
  assert.ok(ms.owned.get('a')!.has('k1'), 'not removed yet');
  for (let i = 0; i < 2000 && ms.owned.get('a')!.has('k1'); i++) await sleep(10);
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['k2'], 'the remove went out again');
  // k2 is evicted, its remove times out, and it is saved again before the next flush: nothing is removed
  ms.failRemoves = 1;
  r.removed('a', h('k2'));
  await r.flush();
  r.inserted('a', h('k2'));
  for (let i = 0; i < 50; i++) await sleep(10); // heartbeats and flushes come and go
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['k2'], 'held again, listed');
  assert.equal(ms.failRemoves, 0);
  await r.stop();
});

test('a block re-advertised while its insert was pending is removed when it leaves (the pair does not net out)', async () => {
  // timed sends 100 s apart: after the first one (k1's insert) only r.flush() sends
  const { ms, r, resident } = setup([], 100_000);
  r.start();
  await sleep(20);
  resident.push({ ns: 'a', key: 'k1' });
  r.inserted('a', h('k1'));
  for (let i = 0; i < 2000 && !ms.owned.get('a')?.has('k1'); i++) await sleep(10);
  assert.deepEqual([...ms.owned.get('a')!], ['k1']);
  // k2 is saved (its insert pending), then a new epoch's re-advertise sends every resident block, k2 included
  resident.push({ ns: 'a', key: 'k2' });
  r.inserted('a', h('k2'));
  ms.restart();
  for (let i = 0; i < 2000 && !ms.owned.get('a')?.has('k2'); i++) await sleep(10);
  assert.deepEqual([...ms.owned.get('a')!].sort(), ['k1', 'k2'], 're-advertised');
  // k2 is evicted: the metaserver heard of it, so its remove must go out
  resident.pop();
  r.removed('a', h('k2'));
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['k1']);
  await r.stop();
});

test('an insert refused by the quota is not re-sent (with everything resident) at every heartbeat', async () => {
  const { ms, r } = setup([
    { ns: 'a', key: 'q1' },
    { ns: 'a', key: 'q2' },
    { ns: 'a', key: 'q3' },
    { ns: 'a', key: 'q4' },
  ]);
  ms.quota = 3; // batches of 2: q1 q2 fit, q3 q4 are refused
  r.start();
  const deadline = Date.now() + 60_000;
  while (r.counters.heartbeats < 10) {
    assert.ok(Date.now() < deadline, 'ten heartbeats');
    await sleep(10);
  }
  await r.flush();
  assert.deepEqual([...ms.owned.get('a')!], ['q1', 'q2']);
  assert.equal(r.counters.readvertises, 1, 'only the registration re-advertised');
  assert.equal(r.counters.dropped, 2);
  assert.equal(ms.calls.filter((c) => c.kind === 'insert').length, 2);
  await r.stop();
});

test('a re-advertise is batched and paced to --readvertise-blocks-per-sec', async () => {
  const ms = new FakeMetaserver();
  const resident = Array.from({ length: 1000 }, (_, i) => ({ ns: 'a', key: `k${String(i).padStart(4, '0')}` }));
  const at: number[] = [];
  const insert = ms.insertBlocks.bind(ms);
  ms.insertBlocks = async (n, ns, h, o) => (at.push(performance.now()), insert(n, ns, h, o));
  const r = new Reporter({
    client: ms,
    nodeId: 'n1',
    addr: '127.0.0.1:1',
    transports: [1],
    heartbeatMs: 60_000,
    batchSize: 100,
    readvertiseBlocksPerSec: 2000,
    stats: () => ({ poolCapacityBytes: 1, poolUsedBytes: 0, blocks: resident.length }),
    resident: residentLists(resident),
    logger: silentLogger(),
  });
  const started = performance.now();
  r.start();
  await sleep(10);
  await r.flush();
  assert.equal(ms.owned.get('a')?.size, 1000);
  assert.equal(at.length, 10, 'batches of --batch-size');
  // 100 blocks per batch at 2000 blocks/s: batch i goes no earlier than i × 50 ms after the pass released the first,
  // which was after start() (a bound that holds however slow the host: the gap between the first batch's release
  // and its arrival at the fake is not in it)
  for (let i = 1; i < at.length; i++)
    assert.ok(at[i]! - started >= i * 50, `batch ${i} ${at[i]! - started} ms after start()`);
  assert.equal(r.counters.readvertised, 1000);
  assert.equal(r.counters.readvertises, 1);
  await r.stop();
});

test('a leader change (HA client) heartbeats at once; a pass cut short by the old leader is healed on the new one', async () => {
  const ms = new FakeMetaserver();
  let listener: ((l: { epoch: bigint; addr: string } | undefined) => void) | undefined;
  const client = Object.assign(ms, {
    onLeaderChange: (l: typeof listener) => ((listener = l), () => (listener = undefined)),
  });
  const resident = Array.from({ length: 10 }, (_, i) => ({ ns: 'a', key: `k${i}` }));
  const r = new Reporter({
    client,
    nodeId: 'n1',
    addr: '127.0.0.1:1',
    transports: [1],
    heartbeatMs: 60_000,
    batchSize: 2,
    readvertiseBlocksPerSec: 0,
    leaderChangeJitterMs: 20,
    stats: () => ({ poolCapacityBytes: 1, poolUsedBytes: 0, blocks: resident.length }),
    resident: residentLists(resident),
    logger: silentLogger(),
  });
  r.start();
  await sleep(10);
  await r.flush();
  assert.equal(ms.owned.get('a')?.size, 10);
  assert.ok(listener, 'subscribed to leader changes');

  // the leader dies: updates fail as unavailable; the reporter stops trying (no deadline per batch)
  const insert = ms.insertBlocks.bind(ms);
  let failing = true;
  let refused = 0;
  ms.insertBlocks = async (n, ns, h, o) => {
    if (failing) {
      refused++;
      throw Object.assign(new Error('no metaserver leader serving'), { code: 'METASERVER_UNAVAILABLE' });
    }
    return insert(n, ns, h, o);
  };
  for (const k of ['x1', 'x2', 'x3', 'x4', 'x5']) r.inserted('a', h(k));
  await r.flush();
  assert.equal(refused, 1, 'later batches are dropped without a call');
  assert.equal(r.connected, false);
  assert.equal(r.counters.dropped, 5);

  // etcd names a new leader (fresh index, new epoch): heartbeat within the jitter, re-advertise everything
  ms.restart();
  failing = false;
  resident.push(...['x1', 'x2', 'x3', 'x4', 'x5'].map((key) => ({ ns: 'a', key })));
  const heartbeats = r.counters.heartbeats;
  listener!({ epoch: ms.epoch, addr: '127.0.0.1:2' });
  // The heartbeat period is 60 s: healing well before it proves the change itself triggered the heartbeat.
  const deadline = Date.now() + 30_000;
  while ((ms.owned.get('a')?.size ?? 0) < 15) {
    assert.ok(Date.now() < deadline, 'index not healed 30 s after the leader change (heartbeat period 60 s)');
    await sleep(5);
  }
  assert.equal(r.counters.heartbeats, heartbeats + 1, 'one heartbeat, triggered by the leader change');
  assert.equal(r.counters.leaderChanges, 1);
  assert.equal(r.epoch, 2n);
  await r.stop();
  assert.equal(listener, undefined, 'unsubscribed on stop');
});
