// The leader locator against a real etcd: reads the leader key, follows puts and deletes within a second, survives
// an etcd restart; address parsing names the bad part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { KvError } from '@kvfabric/common';
import { etcdSkipReason, startEtcd } from '@kvfabric/testkit';
import { LeaderLocator, etcdAddr, parseEtcdAddr, resolveLeaderAddr, type LeaderRecord } from './leader-locator.js';

const skip = etcdSkipReason();

const record = (addr: string, epoch: bigint, replica: string) =>
  JSON.stringify({ addr, epoch: epoch.toString(), since_ms: 1_700_000_000_000, replica_id: replica });

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

test('etcd:// addresses', () => {
  assert.deepEqual(parseEtcdAddr('etcd://10.0.0.1:2379,10.0.0.2:2379/prod/kvf'), { endpoints: ['10.0.0.1:2379', '10.0.0.2:2379'], prefix: '/prod/kvf' });
  assert.deepEqual(parseEtcdAddr('ETCD://etcd:2379'), { endpoints: ['etcd:2379'], prefix: '/kvfabric' });
  assert.deepEqual(parseEtcdAddr('etcd://[::1]:2379/'), { endpoints: ['[::1]:2379'], prefix: '/kvfabric' });
  assert.equal(parseEtcdAddr('127.0.0.1:50056'), undefined);
  assert.throws(() => parseEtcdAddr('etcd:///kvf'), (e: unknown) => e instanceof KvError && e.code === 'INVALID_ARGUMENT' && /metaserver-addr: expected etcd:\/\/host:port/.test(e.message));
  assert.throws(() => parseEtcdAddr('etcd://h:2379,nope/kvf'), /bad endpoint "nope"/);
  assert.throws(() => parseEtcdAddr('etcd://h:2379/a b'), /expected an etcd key prefix/);
  assert.equal(etcdAddr(['http://10.0.0.1:2379', '10.0.0.2:2379'], 'kvf/'), 'etcd://10.0.0.1:2379,10.0.0.2:2379/kvf');
  assert.deepEqual(parseEtcdAddr(etcdAddr(['h:1'])), { endpoints: ['h:1'], prefix: '/kvfabric' });
});

test('follows the leader key: put, replace, delete, and an etcd restart, each within a second', { skip }, async () => {
  await using etcd = await startEtcd();
  const admin = new Etcd3({ hosts: etcd.endpoint.replace('http://', '') });
  const changes: (LeaderRecord | undefined)[] = [];
  const locator = new LeaderLocator(`etcd://${etcd.endpoint.replace('http://', '')}/t`, { onChange: (l) => changes.push(l) });
  try {
    await assert.rejects(locator.waitForLeader(300), /no metaserver leader elected \(etcd .* key \/t\/leader is empty\)/);
    locator.start();
    await admin.put('/t/leader').value(record('127.0.0.1:1111', (1n << 24n) | 5n, 'm1'));
    let t0 = Date.now();
    const first = await locator.waitForLeader(1000);
    assert.deepEqual(first, { addr: '127.0.0.1:1111', epoch: (1n << 24n) | 5n, sinceMs: 1_700_000_000_000, replicaId: 'm1' });
    assert.ok(Date.now() - t0 < 1000);

    t0 = Date.now();
    await admin.put('/t/leader').value(record('127.0.0.1:2222', (2n << 24n) | 7n, 'm2'));
    await waitFor('the new leader', () => locator.leader?.addr === '127.0.0.1:2222', 1000);
    assert.ok(Date.now() - t0 < 1000, `switched after ${Date.now() - t0} ms`);

    await admin.delete().key('/t/leader');
    await waitFor('no leader', () => locator.leader === undefined, 1000);

    await etcd.stop();
    await sleep(300);
    await etcd.start();
    t0 = Date.now();
    await admin.put('/t/leader').value(record('127.0.0.1:3333', (3n << 24n) | 9n, 'm3'));
    await waitFor('the leader after the restart', () => locator.leader?.addr === '127.0.0.1:3333', 1500);
    assert.ok(Date.now() - t0 < 1500, `after an etcd restart it took ${Date.now() - t0} ms`);
    assert.deepEqual(changes.map((c) => c?.replicaId), ['m1', 'm2', undefined, 'm3']);
    assert.equal(await resolveLeaderAddr(`etcd://${etcd.endpoint.replace('http://', '')}/t`, 1000), '127.0.0.1:3333');
    assert.equal(await resolveLeaderAddr('127.0.0.1:4444'), '127.0.0.1:4444');
  } finally {
    locator.close();
    admin.close();
  }
});

test('an unreachable etcd is reported with the endpoint', async () => {
  const locator = new LeaderLocator('etcd://127.0.0.1:1/kvf', { callTimeoutMs: 200 });
  try {
    await assert.rejects(locator.waitForLeader(500), (e: unknown) => e instanceof KvError && e.code === 'METASERVER_UNAVAILABLE' && /cannot find the metaserver leader: etcd 127\.0\.0\.1:1 key \/kvf\/leader/.test(e.message));
  } finally {
    locator.close();
  }
});
