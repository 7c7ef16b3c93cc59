// LeaderElection against a real etcd on loopback: one leader at a time, epochs strictly increasing, fast hand-over
// on resign, take-over after a crashed leader's lease runs out, step-down when etcd goes away and re-election when
// it comes back. A sampler checks every 10 ms that no two replicas ever serve at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { silentLogger } from '@kvfabric/common/observability';
import { connectEtcd, decodeLeaderRecord, leaderKey, seqOf, type LeaderRecord } from '@kvfabric/common/etcd';
import { etcdSkipReason, startEtcd, type EtcdHandle } from '@kvfabric/testkit';
import { LeaderElection } from './election.js';

const skip = etcdSkipReason();
const TTL = 2;
/** Waits for things that happen eventually (elections, watches): all the time a loaded machine needs. */
const LIVENESS_MS = 60_000;
const RESIGN_TEST_TTL = 60;

interface Replica {
  id: string;
  election: LeaderElection;
  elected: LeaderRecord[];
  demoted: string[];
  close(): Promise<void>;
}

function replica(etcdEndpoint: string, id: string, prefix: string, clock?: () => number, ttlSecs = TTL): Replica {
  const etcd = connectEtcd([etcdEndpoint], { callTimeoutMs: 500 });
  const r: Replica = {
    id,
    elected: [],
    demoted: [],
    election: new LeaderElection({
      etcd,
      prefix,
      ttlSecs,
      addr: `127.0.0.1:${10000 + Number(id.slice(1))}`,
      replicaId: id,
      logger: silentLogger(),
      clock,
      onElected: (rec) => r.elected.push(rec),
      onDemoted: (reason) => r.demoted.push(reason),
    }),
    async close() {
      await r.election.stop();
      etcd.close();
    },
  };
  return r;
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Samples `serving()` of every replica every 10 ms; `stop()` returns the largest number seen serving at once. */
function sampler(replicas: Replica[]) {
  let max = 0;
  const timer = setInterval(() => {
    max = Math.max(max, replicas.filter((r) => r.election.serving()).length);
  }, 10);
  return { stop: () => (clearInterval(timer), max) };
}

const leaderOf = (rs: Replica[]) => {
  const serving = rs.filter((r) => r.election.serving());
  return serving.length === 1 ? serving[0] : undefined;
};

test('one leader among three; resign hands over at once with a higher epoch', { skip }, async () => {
  await using etcd = await startEtcd();
  // a lease far longer than the wait for the next leader: a hand-over in time can only be the resignation
  const rs = ['r1', 'r2', 'r3'].map((id) => replica(etcd.endpoint, id, '/t1', undefined, RESIGN_TEST_TTL));
  const s = sampler(rs);
  try {
    rs.forEach((r) => r.election.start());
    const first = await waitFor('a leader', () => leaderOf(rs), LIVENESS_MS);
    await waitFor(
      'followers see the leader',
      () => rs.every((r) => r.election.leader?.epoch === first.elected[0]!.epoch),
      LIVENESS_MS,
    );
    assert.equal(seqOf(first.elected[0]!.epoch), 1n);
    assert.equal(first.elected[0]!.replicaId, first.id);
    // the key in etcd says the same
    const raw = await connectEtcd([etcd.endpoint]).get(leaderKey('/t1')).string();
    assert.deepEqual(decodeLeaderRecord(raw!), first.elected[0]);

    await first.close();
    const rest = rs.filter((r) => r !== first);
    const second = await waitFor('a new leader', () => leaderOf(rest), (RESIGN_TEST_TTL / 2) * 1000);
    assert.equal(seqOf(second.elected[0]!.epoch), 2n);
    assert.deepEqual(first.demoted, ['stopping']);
    await waitFor(
      'the follower sees the new leader',
      () => rest.every((r) => r.election.leader?.epoch === second.elected[0]!.epoch),
      LIVENESS_MS,
    );
    const other = rest.find((r) => r !== second)!;
    assert.equal(other.election.leaderChanges, 1);
  } finally {
    const max = s.stop();
    for (const r of rs) await r.close();
    assert.equal(max, 1, 'two replicas served at once');
  }
});

test('a leader that stops renewing is fenced before the next one is elected', { skip }, async () => {
  await using etcd = await startEtcd();
  const rs = ['r1', 'r2'].map((id) => replica(etcd.endpoint, id, '/t2'));
  const s = sampler(rs);
  try {
    rs[0]!.election.start();
    const first = await waitFor('r1 leads', () => leaderOf(rs), LIVENESS_MS);
    rs[1]!.election.start();
    await waitFor('r2 follows', () => rs[1]!.election.leader?.epoch === first.elected[0]!.epoch, LIVENESS_MS);
    // crash without resigning: keepalives stop, the lease runs out in etcd
    const crashedAt = Date.now();
    (first.election as unknown as { opts: { etcd: { close(): void } } }).opts.etcd.close();
    await waitFor('r1 fenced', () => !first.election.serving(), TTL * 1000);
    const fencedAfter = Date.now() - crashedAt;
    const second = await waitFor('r2 leads', () => (rs[1]!.election.serving() ? rs[1] : undefined), LIVENESS_MS);
    const tookOver = Date.now() - crashedAt;
    assert.ok(fencedAfter < tookOver, `fenced after ${fencedAfter} ms, taken over after ${tookOver} ms`);
    assert.ok(second.elected[0]!.epoch > first.elected[0]!.epoch);
    await waitFor('r1 steps down', () => first.demoted.length === 1, LIVENESS_MS);
  } finally {
    const max = s.stop();
    await rs[0]!.election.stop();
    await rs[1]!.close();
    assert.equal(max, 1, 'two replicas served at once');
  }
});

test('etcd down: the leader steps down within the TTL; etcd back: a leader again, new epoch', { skip }, async () => {
  await using etcd: EtcdHandle = await startEtcd();
  const rs = ['r1', 'r2'].map((id) => replica(etcd.endpoint, id, '/t3'));
  const s = sampler(rs);
  try {
    rs.forEach((r) => r.election.start());
    const first = await waitFor('a leader', () => leaderOf(rs), LIVENESS_MS);
    const epoch1 = first.elected[0]!.epoch;
    await etcd.stop();
    // serving() is decided by the lease clock, so a check that runs late on a busy machine still judges it right
    await waitFor('nobody serves', () => rs.every((r) => !r.election.serving()), TTL * 1000);
    await waitFor('the loop steps down', () => first.demoted.length === 1, LIVENESS_MS);
    await waitFor('etcd marked unreachable', () => rs.every((r) => !r.election.etcdReachable), LIVENESS_MS);
    await sleep(500);
    assert.equal(rs.filter((r) => r.election.serving()).length, 0);

    await etcd.start();
    const next = await waitFor('a leader after etcd is back', () => leaderOf(rs), LIVENESS_MS);
    const epoch2 = next.elected.at(-1)!.epoch;
    assert.ok(epoch2 > epoch1, `epoch ${epoch2} after ${epoch1}`);
    await waitFor(
      'both see it',
      () => rs.every((r) => r.election.leader?.epoch === epoch2 && r.election.etcdReachable),
      LIVENESS_MS,
    );
  } finally {
    const max = s.stop();
    for (const r of rs) await r.close();
    assert.equal(max, 1, 'two replicas served at once');
  }
});

test(
  'serving() consults the fence on every call: past the deadline it refuses before any timer runs',
  { skip },
  async () => {
    await using etcd = await startEtcd();
    let jump = 0;
    const r = replica(etcd.endpoint, 'r1', '/t4', () => performance.now() + jump);
    try {
      r.election.start();
      await waitFor('r1 leads', () => r.election.serving(), LIVENESS_MS);
      assert.ok(r.election.fence.remainingMs() > 0, 'the fence is open while it leads');
      jump = TTL * 1000; // as if the process had been paused for a whole TTL
      assert.equal(r.election.serving(), false, 'refused synchronously');
      assert.equal(r.election.role, 'leader', 'no timer has run yet');
      // The loop may step down and win again between two polls, so wait on the demotion record, not the role.
      await waitFor('the loop steps down', () => r.demoted.length >= 1, LIVENESS_MS);
      assert.equal(r.demoted.length, 1);
      await waitFor('re-elected with a new epoch', () => r.election.serving(), LIVENESS_MS);
      assert.equal(r.elected.length, 2);
      assert.ok(r.elected[1]!.epoch > r.elected[0]!.epoch);
    } finally {
      await r.close();
    }
  },
);
