// The leader locator against a real etcd: reads the leader key, follows puts and deletes, survives an etcd restart;
// an unreachable etcd is reported with the endpoint. (Address parsing: metaserver-address.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError } from '@kvfabric/common';
import { connectEtcd, type LeaderRecord } from '@kvfabric/common/etcd';
import { etcdSkipReason, startEtcd } from '@kvfabric/testkit';
import { resolveLeaderAddr } from './leader-channel.js';
import { LeaderLocator } from './leader-locator.js';

const skip = etcdSkipReason();

const record = (addr: string, epoch: bigint, replica: string) =>
  JSON.stringify({ addr, epoch: epoch.toString(), since_ms: 1_700_000_000_000, replica_id: replica });

/** Generous: a change arrives through the watch within milliseconds, or the re-read every second, on any machine. */
const WAIT_MS = 30_000;

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

test('follows the leader key: put, replace, delete, and an etcd restart', { skip }, async () => {
  await using etcd = await startEtcd();
  const admin = connectEtcd([etcd.endpoint]);
  const changes: (LeaderRecord | undefined)[] = [];
  const locator = new LeaderLocator(`etcd://${etcd.endpoint.replace('http://', '')}/t`, {
    onChange: (l) => changes.push(l),
  });
  try {
    await assert.rejects(
      locator.waitForLeader(300),
      /no metaserver leader elected \(etcd .* key \/t\/leader is empty\)/,
    );
    locator.start();
    await admin.put('/t/leader').value(record('127.0.0.1:1111', (1n << 24n) | 5n, 'm1'));
    const first = await locator.waitForLeader(WAIT_MS);
    assert.deepEqual(first, {
      addr: '127.0.0.1:1111',
      epoch: (1n << 24n) | 5n,
      sinceMs: 1_700_000_000_000,
      replicaId: 'm1',
    });

    await admin.put('/t/leader').value(record('127.0.0.1:2222', (2n << 24n) | 7n, 'm2'));
    await waitFor('the new leader', () => locator.leader?.addr === '127.0.0.1:2222');

    await admin.delete().key('/t/leader');
    await waitFor('no leader', () => locator.leader === undefined);

    await etcd.stop();
    await sleep(300);
    await etcd.start();
    await admin.put('/t/leader').value(record('127.0.0.1:3333', (3n << 24n) | 9n, 'm3'));
    await waitFor('the leader after the restart', () => locator.leader?.addr === '127.0.0.1:3333');
    assert.deepEqual(
      changes.map((c) => c?.replicaId),
      ['m1', 'm2', undefined, 'm3'],
    );
    assert.equal(
      await resolveLeaderAddr(`etcd://${etcd.endpoint.replace('http://', '')}/t`, WAIT_MS),
      '127.0.0.1:3333',
    );
    assert.equal(await resolveLeaderAddr('127.0.0.1:4444'), '127.0.0.1:4444');
  } finally {
    locator.close();
    admin.close();
  }
});

test('an unreachable etcd is reported with the endpoint', async () => {
  const locator = new LeaderLocator('etcd://127.0.0.1:1/kvf', { callTimeoutMs: 200 });
  try {
    await assert.rejects(
      locator.waitForLeader(500),
      (e: unknown) =>
        e instanceof KvError &&
        e.code === 'METASERVER_UNAVAILABLE' &&
        /cannot find the metaserver leader: etcd 127\.0\.0\.1:1 key \/kvf\/leader/.test(e.message),
    );
  } finally {
    locator.close();
  }
});

test('an etcd that does not answer is not taken for an empty leader key', async () => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s)); // accepts, never speaks
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  const locator = new LeaderLocator(`etcd://127.0.0.1:${port}/kvf`, { callTimeoutMs: 10 * 60_000 }).start();
  try {
    await assert.rejects(locator.waitForLeader(200), (e: unknown) => {
      assert.ok(e instanceof KvError && e.code === 'METASERVER_UNAVAILABLE');
      assert.equal(
        e.message,
        `cannot find the metaserver leader: etcd 127.0.0.1:${port} key /kvf/leader: etcd did not answer within 200 ms`,
      );
      return true;
    });
  } finally {
    locator.close();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('a malformed leader key names no leader, and says why', { skip }, async () => {
  await using etcd = await startEtcd();
  const admin = connectEtcd([etcd.endpoint]);
  const locator = new LeaderLocator(`etcd://${etcd.endpoint.replace('http://', '')}/bad`);
  try {
    await admin.put('/bad/leader').value('{"addr":"127.0.0.1:1","epoch":7,"since_ms":1,"replica_id":"x"}');
    assert.equal(await locator.refresh(), undefined);
    assert.ok(locator.lastError instanceof KvError && locator.lastError.code === 'METASERVER_UNAVAILABLE');
    await assert.rejects(
      locator.waitForLeader(300),
      /cannot find the metaserver leader: etcd .* key \/bad\/leader: leader key: epoch: expected a decimal uint64, got 7/,
    );
  } finally {
    locator.close();
    admin.close();
  }
});
