import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrantTable, type GrantEnd } from './grant-table.js';

function table(opts: { ttlMs?: number; maxPerPeer?: number; failIssue?: boolean; pinBudgetBytes?: number } = {}) {
  let clock = 1000;
  const pins = new Map<number, number>();
  const ended: [string, GrantEnd][] = [];
  const issued: string[] = [];
  const t = new GrantTable({
    ttlMs: opts.ttlMs ?? 100,
    maxPerPeer: opts.maxPerPeer,
    pinBudgetBytes: opts.pinBudgetBytes,
    now: () => clock,
    pin: (s) => s.forEach((x) => pins.set(x, (pins.get(x) ?? 0) + 1)),
    unpin: (s) =>
      s.forEach((x) => {
        const n = (pins.get(x) ?? 0) - 1;
        assert.ok(n >= 0, `unpin of unpinned slot ${x}`);
        if (n === 0) pins.delete(x);
        else pins.set(x, n);
      }),
    onIssued: (g) => {
      if (opts.failIssue) throw new Error('transport refused');
      issued.push(g.id);
    },
    onEnded: (g, why) => void ended.push([g.id, why]),
  });
  return { t, pins, ended, issued, advance: (ms: number) => (clock += ms) };
}

test('grants pin while live; release by the owner unpins; foreign or unknown releases are refused', () => {
  const { t, pins, ended } = table();
  const g1 = t.issue('B', Int32Array.of(1, 2, 3), 300);
  const g2 = t.issue('C', Int32Array.of(2), 100);
  assert.notEqual(g1.id, g2.id);
  assert.deepEqual(
    [...pins],
    [
      [1, 1],
      [2, 2],
      [3, 1],
    ],
  );
  assert.equal(t.pinnedBlocks, 4);
  assert.throws(() => t.release(g1.id, 'C'), { code: 'GRANT_REFUSED' });
  t.release(g1.id, 'B');
  assert.throws(() => t.release(g1.id, 'B'), { code: 'GRANT_UNKNOWN' });
  assert.deepEqual([...pins], [[2, 1]]);
  assert.deepEqual(ended, [[g1.id, 'released']]);
  assert.equal(t.size, 1);
  assert.equal(t.pinnedBlocks, 1);
});

test('expired grants are swept and unpinned; live ones stay', () => {
  const { t, pins, ended, advance } = table({ ttlMs: 100 });
  const g1 = t.issue('B', Int32Array.of(7), 100);
  advance(60);
  const g2 = t.issue('B', Int32Array.of(8), 100);
  advance(50);
  assert.equal(t.sweep(), 1);
  assert.deepEqual(ended, [[g1.id, 'expired']]);
  assert.deepEqual([...pins], [[8, 1]]);
  advance(100);
  assert.equal(t.sweep(), 1);
  assert.equal(pins.size, 0);
  assert.equal(ended[1]![0], g2.id);
  assert.deepEqual({ ...t.counters }, { issued: 2, released: 0, expired: 2, dropped: 0, refused: 0, overBudget: 0 });
});

test('a refused transport grant leaves nothing pinned; per-peer limit; dropPeer and clear', () => {
  const bad = table({ failIssue: true });
  assert.throws(() => bad.t.issue('B', Int32Array.of(1), 100), /transport refused/);
  assert.equal(bad.pins.size, 0);
  assert.equal(bad.t.size, 0);

  const { t, pins } = table({ maxPerPeer: 2 });
  t.issue('B', Int32Array.of(1), 100);
  t.issue('B', Int32Array.of(2), 100);
  assert.throws(() => t.issue('B', Int32Array.of(3), 100), { code: 'GRANT_REFUSED', message: /2 live grants/ });
  t.issue('C', Int32Array.of(3), 100);
  assert.equal(t.dropPeer('B'), 2);
  assert.deepEqual([...pins], [[3, 1]]);
  t.issue('B', Int32Array.of(4), 100); // the limit counts live grants only
  t.clear();
  assert.equal(pins.size, 0);
  assert.equal(t.size, 0);
  assert.equal(t.pinnedBlocks, 0);
});

test('an ended grant stays pinned until the transport lets go of its pages', async () => {
  let letGo!: () => void;
  const pins = new Set<number>();
  const t = new GrantTable({
    ttlMs: 100,
    pin: (s) => s.forEach((x) => pins.add(x)),
    unpin: (s) => s.forEach((x) => pins.delete(x)),
    onEnded: () => new Promise<void>((resolve) => (letGo = resolve)),
  });
  const g = t.issue('B', Int32Array.of(5, 6), 200);
  t.release(g.id, 'B');
  assert.equal(t.size, 0);
  assert.deepEqual([...pins], [5, 6]);
  assert.equal(t.pinnedBlocks, 2);
  letGo();
  await new Promise((r) => setImmediate(r));
  assert.equal(pins.size, 0);
  assert.equal(t.pinnedBlocks, 0);
});

test('grant ids are 16 random bytes: never sequential, never repeated', () => {
  const { t } = table({ maxPerPeer: 10_000 });
  const ids = Array.from({ length: 1000 }, (_, i) => t.issue('B', Int32Array.of(i), 100).id);
  assert.ok(ids.every((id) => /^[0-9a-f]{32}$/.test(id)));
  assert.equal(new Set(ids).size, 1000);
  // consecutive ids share no structure: on average half of their 128 bits differ
  const bits = (a: string, b: string) => {
    let n = 0;
    for (let i = 0; i < 32; i += 8) {
      let x = parseInt(a.slice(i, i + 8), 16) ^ parseInt(b.slice(i, i + 8), 16);
      for (; x; x &= x - 1) n++;
    }
    return n;
  };
  const mean = ids.slice(1).reduce((sum, id, i) => sum + bits(id, ids[i]!), 0) / (ids.length - 1);
  assert.ok(mean > 56 && mean < 72, `mean differing bits ${mean}`);
});

test('the pin budget refuses grants past it with PEER_LIMIT_REACHED; ended grants count until their bytes left', async () => {
  let letGo!: () => void;
  const pins = new Set<number>();
  const t = new GrantTable({
    ttlMs: 100,
    pinBudgetBytes: 1000,
    pin: (s) => s.forEach((x) => pins.add(x)),
    unpin: (s) => s.forEach((x) => pins.delete(x)),
    onEnded: () => new Promise<void>((resolve) => (letGo = resolve)),
  });
  const g = t.issue('B', Int32Array.of(1, 2, 3), 600);
  assert.throws(() => t.issue('C', Int32Array.of(4), 500), {
    code: 'PEER_LIMIT_REACHED',
    message: /^grant-pin-budget: 600 B of 1000 B already pinned by grants, 500 B more asked/,
  });
  t.issue('C', Int32Array.of(4), 400); // exactly at the budget
  assert.equal(t.pinnedBytes, 1000);
  t.release(g.id, 'B');
  // released, but its answers are still on the wire: its bytes still count
  assert.throws(() => t.issue('C', Int32Array.of(5), 100), { code: 'PEER_LIMIT_REACHED' });
  letGo();
  await new Promise((r) => setImmediate(r));
  assert.equal(t.pinnedBytes, 400);
  t.issue('C', Int32Array.of(5), 600);
  assert.deepEqual({ issued: t.counters.issued, overBudget: t.counters.overBudget }, { issued: 3, overBudget: 2 });
});

test('releaseMany ends all of a reader’s grants listed, or none: an unknown or foreign id is refused naming its place', async () => {
  const { t, pins, ended } = table();
  const a = t.issue('B', Int32Array.of(1), 100);
  const b = t.issue('B', Int32Array.of(2), 100);
  const c = t.issue('C', Int32Array.of(3), 100);
  const unknown = 'ab'.repeat(16);
  assert.throws(() => t.releaseMany([a.id, unknown], 'B', 'release_grant_ids'), {
    code: 'GRANT_UNKNOWN',
    message: `release_grant_ids[1]: no live grant ${unknown} (released or expired)`,
  });
  assert.throws(() => t.releaseMany([b.id, c.id], 'B', 'release_grant_ids'), {
    code: 'GRANT_REFUSED',
    message: `release_grant_ids[1]: grant ${c.id} is another reader's`,
  });
  // nothing changed
  assert.equal(t.size, 3);
  assert.equal(pins.size, 3);
  assert.deepEqual(ended, []);
  await t.releaseMany([a.id, b.id], 'B', 'release_grant_ids');
  assert.deepEqual([...pins], [[3, 1]]);
  assert.deepEqual(ended, [
    [a.id, 'released'],
    [b.id, 'released'],
  ]);
  assert.equal(t.counters.released, 2);
  assert.throws(() => t.releaseMany([a.id], 'B', 'release_grant_ids'), { code: 'GRANT_UNKNOWN' });
});

test('releaseMany settles once the transport let go of every page it released', async () => {
  const letGo: (() => void)[] = [];
  const pins = new Set<number>();
  const t = new GrantTable({
    ttlMs: 100,
    pinBudgetBytes: 1000,
    pin: (s) => s.forEach((x) => pins.add(x)),
    unpin: (s) => s.forEach((x) => pins.delete(x)),
    onEnded: () => new Promise<void>((resolve) => letGo.push(resolve)),
  });
  const a = t.issue('B', Int32Array.of(1), 500);
  const b = t.issue('B', Int32Array.of(2), 500);
  let settled = false;
  const done = t.releaseMany([a.id, b.id], 'B', 'release_grant_ids').then(() => (settled = true));
  assert.equal(t.size, 0);
  letGo[0]!();
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  assert.equal(t.pinnedBytes, 500);
  letGo[1]!();
  await done;
  assert.equal(t.pinnedBytes, 0);
  assert.equal(pins.size, 0);
});
