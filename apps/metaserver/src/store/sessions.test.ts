import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import { NodeSessions } from './sessions.js';

const stats = (used: bigint) => ({
  poolCapacityBytes: 1000n,
  poolUsedBytes: used,
  blocks: 3n,
  ssdCapacityBytes: 0n,
  ssdUsedBytes: 0n,
});

test('beat registers once, then refreshes time, transports and stats', () => {
  const sessions = new NodeSessions(10_000);
  const transports = [1];
  assert.equal(sessions.beat({ nodeId: 'a', addr: 'h:1', transports, stats: stats(5n) }, 100), true);
  transports.push(2); // the session keeps its own copy
  assert.equal(sessions.beat({ nodeId: 'a', addr: 'h:1', transports: [2] }, 200), false);
  const s = sessions.get('a')!;
  assert.deepEqual(
    [s.slot, s.registeredAtMs, s.lastHeartbeatMs, s.transports, s.stats.poolUsedBytes],
    [0, 100, 200, [2], 5n],
  );
  assert.equal(sessions.size, 1);
});

test('liveness is a strict window on the last heartbeat', () => {
  const sessions = new NodeSessions(10_000);
  sessions.beat({ nodeId: 'a', addr: 'h:1', transports: [] }, 0);
  sessions.beat({ nodeId: 'b', addr: 'h:2', transports: [] }, 5_000);
  assert.deepEqual(sessions.counts(9_999), { live: 2, stale: 0 });
  assert.deepEqual(sessions.counts(10_000), { live: 1, stale: 1 });
  assert.deepEqual([...sessions.liveSlots(10_000)], [0, 1]);
  assert.equal(sessions.liveAt(0, 10_000), undefined);
  assert.equal(sessions.liveAt(1, 10_000)?.nodeId, 'b');
  assert.equal(sessions.isLive(sessions.get('b')!, 15_000), false);
});

test('an address held by a live node is refused; a stale holder is handed to the caller to drop', () => {
  const sessions = new NodeSessions(10_000);
  sessions.beat({ nodeId: 'old', addr: 'h:1', transports: [] }, 0);
  assert.equal(sessions.staleHolderOf('old', 'h:1', 0), undefined, 'its own address');
  assert.equal(sessions.staleHolderOf('new', 'h:2', 0), undefined, 'a free address');
  assert.throws(
    () => sessions.staleHolderOf('new', 'h:1', 9_999),
    (err: unknown) =>
      err instanceof KvError &&
      err.code === 'SESSION_CONFLICT' &&
      err.message ===
        'addr: h:1 belongs to live node old; another session may take it over after 10s without heartbeats from it',
  );
  const holder = sessions.staleHolderOf('new', 'h:1', 10_000);
  assert.equal(holder?.nodeId, 'old');
  sessions.remove(holder!);
  assert.equal(sessions.beat({ nodeId: 'new', addr: 'h:1', transports: [] }, 10_000), true);
  assert.equal(sessions.get('new')!.slot, 0, 'the freed slot is reused');
  assert.equal(sessions.get('old'), undefined);
  assert.equal(sessions.atSlot(0)?.nodeId, 'new');
});

test('moving to another address frees the old one', () => {
  const sessions = new NodeSessions(10_000);
  sessions.beat({ nodeId: 'a', addr: 'h:1', transports: [] }, 0);
  sessions.beat({ nodeId: 'a', addr: 'h:2', transports: [] }, 1);
  assert.equal(sessions.staleHolderOf('b', 'h:1', 1), undefined);
  assert.throws(() => sessions.staleHolderOf('b', 'h:2', 1), /SESSION_CONFLICT|belongs to live node a/);
  assert.deepEqual(
    sessions.all().map((s) => [s.nodeId, s.addr]),
    [['a', 'h:2']],
  );
});
