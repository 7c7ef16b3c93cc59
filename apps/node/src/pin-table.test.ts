import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PinTable, type PinEntry } from './pin-table.js';

type End = 'released' | 'expired' | 'dropped';

function table(onEnded?: (e: PinEntry<number>, why: End) => void | Promise<void>) {
  let clock = 1000;
  const pins = new Map<number, number>();
  const ended: [number, End][] = [];
  const t = new PinTable<number, PinEntry<number>, End>({
    ttlMs: 100,
    now: () => clock,
    pin: (s) => s.forEach((x) => pins.set(x, (pins.get(x) ?? 0) + 1)),
    unpin: (s) =>
      s.forEach((x) => {
        const n = (pins.get(x) ?? 0) - 1;
        assert.ok(n >= 0, `unpin of unpinned slot ${x}`);
        if (n === 0) pins.delete(x);
        else pins.set(x, n);
      }),
    onEnded: (e, why) => {
      ended.push([e.id, why]);
      return onEnded?.(e, why);
    },
  });
  let id = 1;
  const add = (owner: string, ...slots: number[]) =>
    t.add({ id: id++, owner, slots: Int32Array.from(slots), expiresAtMs: t.expiry() });
  return { t, pins, ended, add, advance: (ms: number) => (clock += ms) };
}

test('entries pin while live and unpin once when they end', () => {
  const { t, pins, ended, add } = table();
  const a = add('x', 1, 2);
  const b = add('y', 2);
  assert.deepEqual(
    [...pins],
    [
      [1, 1],
      [2, 2],
    ],
  );
  assert.deepEqual(
    { size: t.size, pinned: t.pinnedSlots, x: t.heldBy('x'), y: t.heldBy('y') },
    { size: 2, pinned: 3, x: 1, y: 1 },
  );
  assert.equal(t.end(a, 'released'), true);
  assert.equal(t.end(a, 'released'), false, 'a second end is a no-op');
  assert.deepEqual([...pins], [[2, 1]]);
  assert.deepEqual(ended, [[a.id, 'released']]);
  assert.deepEqual(
    { size: t.size, pinned: t.pinnedSlots, x: t.heldBy('x'), live: t.get(b.id) },
    { size: 1, pinned: 1, x: 0, live: b },
  );
});

test('sweep ends what expired (expiry = now + ttl), and only that', () => {
  const { t, pins, ended, add, advance } = table();
  const a = add('x', 7);
  assert.equal(a.expiresAtMs, 1100);
  advance(60);
  const b = add('x', 8);
  advance(39);
  assert.equal(t.isExpired(a), false);
  assert.equal(t.sweep(), 0);
  advance(1);
  assert.equal(t.isExpired(a), true);
  assert.equal(t.sweep(), 1);
  assert.deepEqual(ended, [[a.id, 'expired']]);
  assert.deepEqual([...pins], [[8, 1]]);
  advance(100);
  assert.equal(t.sweep(), 1);
  assert.deepEqual(ended[1], [b.id, 'expired']);
  assert.equal(pins.size, 0);
});

test("dropOwner ends one owner's entries; clear ends the rest", () => {
  const { t, pins, ended, add } = table();
  add('x', 1);
  add('x', 2);
  const c = add('y', 3);
  assert.equal(t.dropOwner('nobody', 'dropped'), 0);
  assert.equal(t.dropOwner('x', 'dropped'), 2);
  assert.deepEqual([...pins], [[3, 1]]);
  t.clear('dropped');
  assert.deepEqual({ size: t.size, pinned: t.pinnedSlots, pins: pins.size }, { size: 0, pinned: 0, pins: 0 });
  assert.deepEqual(ended.at(-1), [c.id, 'dropped']);
});

test('an ended entry stays pinned until what onEnded returned settles, rejected or not; a throwing onEnded unpins at once', async () => {
  const waits: { resolve: () => void; reject: (e: Error) => void }[] = [];
  let throwing = false;
  const { t, pins, add } = table(() => {
    if (throwing) throw new Error('boom');
    return new Promise<void>((resolve, reject) => waits.push({ resolve, reject }));
  });
  const a = add('x', 5);
  const b = add('x', 6);
  t.end(a, 'released');
  t.end(b, 'released');
  assert.equal(t.size, 0);
  assert.deepEqual({ pins: [...pins.keys()], pinned: t.pinnedSlots }, { pins: [5, 6], pinned: 2 });
  waits[0]!.resolve();
  waits[1]!.reject(new Error('transport failed'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual({ pins: pins.size, pinned: t.pinnedSlots }, { pins: 0, pinned: 0 });
  throwing = true;
  t.end(add('x', 9), 'released');
  assert.deepEqual({ pins: pins.size, pinned: t.pinnedSlots }, { pins: 0, pinned: 0 });
});
