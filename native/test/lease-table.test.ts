// The native lease table (src/lease_table.h) through its JavaScript binding: consumption per rank, expiry (lazy and
// by sweep), release, dropOwner, tombstones, refusals that change nothing, and a model check of random operations,
// with every pin counted through the index. Run under ASan/UBSan too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBlockIndex, type BlockIndex } from '../lib/block-index.js';
import { LeaseTable, nativeLeaseTable } from '../lib/lease-table.js';

const TTL = 100;

/** An index with `n` sealed blocks (slots returned) and a lease table on it. */
function setup(n = 4): { idx: BlockIndex; t: LeaseTable; slots: Int32Array } {
  const idx = createBlockIndex();
  const slots = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Buffer.from(`block-${i}`);
    const s = idx.slotForShard(0, k, 0, k.length, 1, 0, 4096);
    idx.assign(s, 0, i * 4096);
    assert.equal(idx.markShardWritten(s, 0), true);
    slots[i] = s;
  }
  return { idx, t: new LeaseTable(idx, TTL), slots };
}
const pins = (idx: BlockIndex, slots: Int32Array) => [...slots].map((s) => idx.pins(s));

test('a lease pins its blocks, is consumed once per rank, and ends when every rank loaded', () => {
  const { idx, t, slots } = setup(3);
  const lease = t.create(7, 0, slots, 2, 1000);
  assert.match(lease.id, /^[A-Za-z0-9_-]{16}$/);
  assert.equal(lease.expiresAtMs, 1000 + TTL);
  assert.deepEqual(pins(idx, slots), [1, 1, 1]);
  assert.equal(t.size, 1);

  const got = t.consume(lease.id, 7, 0, 0, 2, 1001);
  assert.deepEqual([...got], [slots[0], slots[1]]);
  assert.deepEqual(pins(idx, slots), [2, 2, 1], 'the load holds its own pin');
  assert.throws(() => t.consume(lease.id, 7, 0, 0, 2, 1002), {
    code: 'LEASE_CONSUMED',
    message: `lease ${lease.id}: already loaded by tp_rank 0`,
  });
  idx.unpinMany(got, got.length);
  assert.deepEqual(pins(idx, slots), [1, 1, 1]);

  const last = t.consume(lease.id, 7, 0, 1, 3, 1003);
  assert.deepEqual([...last], [...slots]);
  assert.equal(t.size, 0);
  assert.deepEqual(pins(idx, slots), [1, 1, 1], 'the lease is gone; only the load pins remain');
  idx.unpinMany(last, last.length);
  assert.equal(idx.stats().pinned, 0);
  assert.throws(() => t.consume(lease.id, 7, 0, 1, 1, 1004), {
    code: 'LEASE_CONSUMED',
    message: `lease ${lease.id}: already loaded by every rank`,
  });
  assert.deepEqual(t.counters(), { created: 1, consumed: 1, expired: 0, released: 0 });
});

test('createForPrefix looks up and pins the prefix hit at once; nothing hits, no lease', () => {
  const { idx, t, slots } = setup(3);
  const packed = Buffer.concat([0, 1, 2, 3].map((i) => Buffer.from(`block-${i}`)));
  const lease = t.createForPrefix(4, 0, packed, 7, 4, 2, 500);
  assert.equal(lease.hits, 3);
  assert.equal(lease.expiresAtMs, 500 + TTL);
  assert.deepEqual(pins(idx, slots), [1, 1, 1]);
  assert.deepEqual([...t.consume(lease.id, 4, 0, 1, 3, 501)], [...slots]);
  const other = t.createForPrefix(4, 1, packed, 7, 4, 1, 500);
  assert.deepEqual(other, { id: '', expiresAtMs: 0, hits: 0 }, 'another namespace hits nothing');
  const evicted = idx.victim();
  assert.equal(evicted, -1, 'every block is pinned');
  idx.unpinMany(slots, 3);
  t.release(lease.id, 4, 502);
  idx.evict(slots[1]!);
  const short = t.createForPrefix(4, 0, packed, 7, 4, 1, 503);
  assert.equal(short.hits, 1, 'the prefix stops at the evicted block');
  assert.deepEqual(pins(idx, slots.subarray(0, 1)), [1]);
  assert.equal(idx.stats().pinned, 1);
  assert.equal(t.size, 1);
  assert.equal(t.counters().created, 2);
});

test('leases expire after the ttl, lazily on use and by sweep', () => {
  const { idx, t, slots } = setup(3);
  const a = t.create(1, 0, slots.subarray(0, 1), 1, 1000);
  const b = t.create(1, 0, slots.subarray(1, 2), 1, 1000);
  const c = t.create(1, 0, slots.subarray(2, 3), 1, 1050);
  assert.throws(() => t.consume(a.id, 1, 0, 0, 1, 1100), { code: 'LEASE_EXPIRED', message: `lease ${a.id}: expired` });
  assert.deepEqual(pins(idx, slots), [0, 1, 1], 'the expired lease ended on use');
  assert.equal(t.sweep(1149), 1);
  assert.deepEqual(pins(idx, slots), [0, 0, 1]);
  assert.throws(() => t.consume(b.id, 1, 0, 0, 1, 1149), { code: 'LEASE_EXPIRED' });
  assert.throws(() => t.release(c.id, 1, 1150), { code: 'LEASE_EXPIRED', message: `lease ${c.id}: expired` });
  assert.equal(idx.stats().pinned, 0);
  assert.deepEqual(t.counters(), { created: 3, consumed: 0, expired: 3, released: 0 });
});

test('release ends a lease early; unknown and released ids are told apart', () => {
  const { idx, t, slots } = setup(2);
  const lease = t.create(3, 0, slots, 1, 0);
  assert.throws(() => t.release(lease.id, 4, 1), {
    code: 'LEASE_FOREIGN',
    message: `lease ${lease.id}: belongs to another engine`,
  });
  t.release(lease.id, 3, 1);
  assert.equal(idx.stats().pinned, 0);
  assert.throws(() => t.consume(lease.id, 3, 0, 0, 1, 2), {
    code: 'LEASE_UNKNOWN',
    message: `lease_id: no such lease "${lease.id}" (released)`,
  });
  assert.throws(() => t.release(lease.id, 3, 2), { code: 'LEASE_UNKNOWN' });
  const odd = 'no"pe\\\n\u0001é';
  assert.throws(() => t.consume(odd, 3, 0, 0, 1, 2), {
    code: 'LEASE_UNKNOWN',
    message: `lease_id: no such lease ${JSON.stringify(odd)}`,
  });
  assert.deepEqual(t.counters(), { created: 1, consumed: 0, expired: 0, released: 1 });
});

test('foreign engine, namespace, rank and too many ids are refused and change nothing', () => {
  const { idx, t, slots } = setup(2);
  const lease = t.create(1, 5, slots, 2, 0);
  const refusals: [() => unknown, string, string][] = [
    [() => t.consume(lease.id, 2, 5, 0, 1, 1), 'LEASE_FOREIGN', `lease ${lease.id}: belongs to another engine`],
    [() => t.consume(lease.id, 1, 6, 0, 1, 1), 'LEASE_FOREIGN', `lease ${lease.id}: belongs to another namespace`],
    [
      () => t.consume(lease.id, 1, 5, 2, 1, 1),
      'LEASE_FOREIGN',
      `lease ${lease.id}: tp_rank 2 is not one of its 2 ranks`,
    ],
    [
      () => t.consume(lease.id, 1, 5, 0, 3, 1),
      'INVALID_ARGUMENT',
      "block_ids: expected at most 2 ids (the lease's hit), got 3",
    ],
  ];
  for (const [call, code, message] of refusals) {
    assert.throws(call, { code, message });
    assert.deepEqual(pins(idx, slots), [1, 1]);
    assert.equal(t.size, 1);
  }
  assert.equal(t.consume(lease.id, 1, 5, 0, 2, 1).length, 2, 'rank 0 still may load');
  assert.deepEqual(pins(idx, slots), [2, 2]);
});

test('dropOwner ends only that engine’s leases; clear and close end the rest', () => {
  const { idx, t, slots } = setup(3);
  t.create(1, 0, slots.subarray(0, 1), 1, 0);
  t.create(1, 0, slots.subarray(1, 2), 1, 0);
  const kept = t.create(2, 0, slots.subarray(2, 3), 1, 0);
  assert.equal(t.dropOwner(1), 2);
  assert.equal(t.dropOwner(1), 0);
  assert.deepEqual(pins(idx, slots), [0, 0, 1]);
  assert.equal(t.size, 1);
  assert.equal(t.consume(kept.id, 2, 0, 0, 1, 1).length, 1);
  idx.unpin(slots[2]!);
  t.create(2, 0, slots, 1, 0);
  t.clear();
  assert.equal(idx.stats().pinned, 0);
  t.create(2, 0, slots, 1, 0);
  t.close();
  t.close();
  assert.equal(idx.stats().pinned, 0);
  assert.equal(t.size, 0);
  assert.throws(() => t.create(2, 0, slots, 1, 0), { code: 'INTERNAL', message: 'lease table: closed' });
  assert.deepEqual(t.counters(), { created: 5, consumed: 1, expired: 0, released: 4 });
});

test('tombstones keep the newest 16384 ended leases', () => {
  const { t } = setup(0);
  const ids: string[] = [];
  for (let i = 0; i < 16_385; i++) {
    const { id } = t.create(1, 0, new Int32Array(0), 1, 0);
    assert.equal(t.consume(id, 1, 0, 0, 0, 0).length, 0);
    ids.push(id);
  }
  assert.equal(new Set(ids).size, ids.length, 'ids are distinct');
  assert.throws(() => t.consume(ids[0]!, 1, 0, 0, 0, 0), { code: 'LEASE_UNKNOWN' });
  assert.throws(() => t.consume(ids[1]!, 1, 0, 0, 0, 0), { code: 'LEASE_CONSUMED' });
  assert.throws(() => t.consume(ids.at(-1)!, 1, 0, 0, 0, 0), { code: 'LEASE_CONSUMED' });
});

test('bad arguments are refused before the addon, naming the field', () => {
  const { idx, t, slots } = setup(1);
  const ok = t.create(1, 0, slots, 1, 0);
  const bad: [() => unknown, RegExp][] = [
    [() => t.create(-1, 0, slots, 1, 0), /^owner: /],
    [() => t.create(1, 2 ** 32, slots, 1, 0), /^ns: /],
    [() => t.create(1, 0, [1] as unknown as Int32Array, 1, 0), /^slots: expected an Int32Array/],
    [() => t.create(1, 0, slots, 0, 0), /^ranks: /],
    [() => t.create(1, 0, slots, 65_537, 0), /^ranks: /],
    [() => t.create(1, 0, slots, 1, 1.5), /^nowMs: /],
    [() => t.create(1, 0, Int32Array.of(slots[0]!, 9999), 1, 0), /^slots: expected live slots of the index/],
    [() => t.createForPrefix(1, 0, 'abc' as unknown as Uint8Array, 1, 1, 1, 0), /^packed: /],
    [() => t.createForPrefix(1, 0, Buffer.alloc(8), 0, 1, 1, 0), /^hashLen: /],
    [() => t.createForPrefix(1, 0, Buffer.alloc(130), 65, 2, 1, 0), /^hashLen: /],
    [() => t.createForPrefix(1, 0, Buffer.alloc(8), 4, 3, 1, 0), /^count: /],
    [() => t.createForPrefix(1, 0, Buffer.alloc(8), 4, 2, 0, 0), /^ranks: /],
    [() => t.consume('', 1, 0, 0, 1, 0), /^lease_id: /],
    [() => t.consume('x'.repeat(129), 1, 0, 0, 1, 0), /^lease_id: /],
    [() => t.consume(ok.id, 1, 0, -1, 1, 0), /^tp_rank: /],
    [() => t.consume(ok.id, 1, 0, 0, NaN, 0), /^count: /],
    [() => t.release(ok.id, 1.5, 0), /^owner: /],
    [() => t.sweep(-1), /^nowMs: /],
    [() => new LeaseTable(idx, 0), /^ttlMs: /],
    [() => new LeaseTable({} as BlockIndex, 10), /^index: /],
  ];
  for (const [call, message] of bad) {
    assert.throws(call, (err: Error & { code: string }) => {
      assert.equal(err.code, 'INVALID_ARGUMENT', err.message);
      assert.match(err.message, message);
      return true;
    });
  }
  assert.deepEqual(pins(idx, slots), [1], 'only the first lease pins');
  assert.equal(t.size, 1);
  assert.throws(() => nativeLeaseTable({} as LeaseTable), { code: 'INVALID_ARGUMENT' });
  assert.equal(typeof nativeLeaseTable(t), 'object');
});

test('matches a model over 20,000 random creates, consumes, releases, sweeps and drops', () => {
  interface Lease {
    owner: number;
    ns: number;
    slots: number[];
    ranks: number;
    consumed: Set<number>;
    expiresAtMs: number;
  }
  let seed = 4242;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const { idx, t, slots } = setup(32);
  const live = new Map<string, Lease>();
  const ended = new Map<string, 'expired' | 'consumed' | 'released'>();
  const expected = new Map<number, number>();
  const pin = (ss: Iterable<number>, d: number) => {
    for (const s of ss) expected.set(s, (expected.get(s) ?? 0) + d);
  };
  const end = (id: string, why: 'expired' | 'consumed' | 'released') => {
    pin(live.get(id)!.slots, -1);
    live.delete(id);
    ended.set(id, why);
  };
  let now = 0;
  const ids: string[] = [];
  for (let step = 0; step < 20_000; step++) {
    now += rand(4);
    const op = rand(10);
    if (op < 3) {
      const n = rand(6);
      const chosen = Int32Array.from({ length: n }, () => slots[rand(slots.length)]!);
      const owner = rand(3);
      const ranks = 1 + rand(3);
      const lease = t.create(owner, owner % 2, chosen, ranks, now);
      assert.equal(lease.expiresAtMs, now + TTL);
      live.set(lease.id, {
        owner,
        ns: owner % 2,
        slots: [...chosen],
        ranks,
        consumed: new Set(),
        expiresAtMs: now + TTL,
      });
      ids.push(lease.id);
      pin(chosen, 1);
    } else if (op < 7 && ids.length > 0) {
      // mostly well-formed calls on live leases, so that consumption is exercised; some of every refusal
      const liveIds = [...live.keys()];
      const id = liveIds.length > 0 && rand(5) > 0 ? liveIds[rand(liveIds.length)]! : ids[rand(ids.length)]!;
      const l = live.get(id);
      const owner = l && rand(8) > 0 ? l.owner : rand(3);
      const rank = l && rand(8) > 0 ? rand(l.ranks) : rand(3);
      const count = l && rand(8) > 0 ? rand(l.slots.length + 1) : rand(7);
      const m = live.get(id);
      let code = 'OK';
      if (!m)
        code =
          ended.get(id) === 'expired'
            ? 'LEASE_EXPIRED'
            : ended.get(id) === 'consumed'
              ? 'LEASE_CONSUMED'
              : 'LEASE_UNKNOWN';
      else if (m.owner !== owner) code = 'LEASE_FOREIGN';
      else if (m.expiresAtMs <= now) code = 'LEASE_EXPIRED';
      else if (m.ns !== owner % 2) code = 'LEASE_FOREIGN';
      else if (rank >= m.ranks) code = 'LEASE_FOREIGN';
      else if (m.consumed.has(rank)) code = 'LEASE_CONSUMED';
      else if (count > m.slots.length) code = 'INVALID_ARGUMENT';
      try {
        const got = t.consume(id, owner, owner % 2, rank, count, now);
        assert.equal(code, 'OK');
        assert.deepEqual([...got], m!.slots.slice(0, count));
        m!.consumed.add(rank);
        if (m!.consumed.size === m!.ranks) end(id, 'consumed');
        idx.unpinMany(got, got.length); // the load's pin, dropped after its "copy"
      } catch (err) {
        assert.equal((err as { code: string }).code, code, (err as Error).message);
        if (code === 'LEASE_EXPIRED' && m) end(id, 'expired');
      }
    } else if (op < 8 && ids.length > 0) {
      const liveIds = [...live.keys()];
      const id = liveIds.length > 0 && rand(2) > 0 ? liveIds[rand(liveIds.length)]! : ids[rand(ids.length)]!;
      const m = live.get(id);
      const owner = m && rand(4) === 0 ? (m.owner + 1) % 3 : (m?.owner ?? 0);
      try {
        t.release(id, owner, now);
        assert.ok(m && m.owner === owner && m.expiresAtMs > now);
        end(id, 'released');
      } catch (err) {
        const code = (err as { code: string }).code;
        if (!m) assert.notEqual(code, 'OK');
        else if (m.owner !== owner) assert.equal(code, 'LEASE_FOREIGN');
        else {
          assert.equal(code, 'LEASE_EXPIRED');
          end(id, 'expired');
        }
      }
    } else if (op < 9) {
      const due = [...live].filter(([, m]) => m.expiresAtMs <= now).map(([id]) => id);
      assert.equal(t.sweep(now), due.length);
      for (const id of due) end(id, 'expired');
    } else if (rand(20) === 0) {
      const owner = rand(3);
      const mine = [...live].filter(([, m]) => m.owner === owner).map(([id]) => id);
      assert.equal(t.dropOwner(owner), mine.length);
      for (const id of mine) end(id, 'released');
    }
    assert.equal(t.size, live.size);
    if (step % 97 === 0) for (const s of slots) assert.equal(idx.pins(s), expected.get(s) ?? 0, `pins of slot ${s}`);
  }
  const tally = (why: string) => [...ended.values()].filter((w) => w === why).length;
  const counters = t.counters();
  assert.deepEqual(counters, {
    created: ids.length,
    consumed: tally('consumed'),
    expired: tally('expired'),
    released: tally('released'),
  });
  assert.ok(counters.consumed > 100 && counters.expired > 100 && counters.released > 100, JSON.stringify(counters));
  t.close();
  assert.equal(idx.stats().pinned, 0);
});
