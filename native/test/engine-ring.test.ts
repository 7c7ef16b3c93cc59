// The command ring (src/command_ring.h) between an engine-side CommandRing (fdpass addon) and the node-side
// EngineRing thread (src/engine_ring.h), written here at the protocol level: save, query, load and release run
// natively against a real pool, region, index, lease table and copy engine, results land in the command slots,
// sealed hashes reach JavaScript as batched events; hostile commands get an error naming the field and change
// nothing, and a protocol violation stops the ring. Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createBlockIndex } from '../lib/block-index.js';
import { pageChecksum } from '../lib/checksum.js';
import { RING, createCommandRing, createSealedMemfd, ringLayout } from '../lib/fd-pass.js';
import { CopyEngine } from '../lib/copy-engine.js';
import { createInstanceLayout } from '../lib/engine-ops.js';
import { attachEngineRing, type RingEvents } from '../lib/engine-ring.js';
import { LeaseTable } from '../lib/lease-table.js';
import { Pool } from '../lib/pool.js';
import { Region } from '../lib/region.js';
import { until } from './helpers.js';

const SEG = 4096;
const SEGMENTS = 2;
const BLOCKS = 16;
const PAGE = SEG * SEGMENTS;
const REGION = PAGE * BLOCKS; // block-major: block b at b * PAGE
const HASH = 16;
const hashOf = (i: number) => Buffer.alloc(HASH, i + 1);

/** A node side (pool, index, leases, copy engine, a region) and an engine side speaking the raw protocol. */
function rig(opts: { entries?: number; slotBytes?: number } = {}) {
  const entries = opts.entries ?? 8;
  const slotBytes = opts.slotBytes ?? 4096;
  const pool = Pool.create({ sizeBytes: 64 * PAGE, slabBytes: PAGE });
  const engine = new CopyEngine({ threads: 2 });
  const index = createBlockIndex();
  const leases = new LeaseTable(index, 60_000);
  const regionFd = createSealedMemfd('kvf-ring-test', REGION);
  const region = Region.fromFd(regionFd, REGION, 'memfd:test');
  const layout = createInstanceLayout({
    ns: 3,
    shards: 1,
    shard: 0,
    numBlocks: BLOCKS,
    pageBytes: PAGE,
    segmentBytes: SEG,
    strideBytes: PAGE,
    segmentOffsets: Float64Array.from({ length: SEGMENTS }, (_, s) => s * SEG),
  });
  let completions = 0;
  const client = createCommandRing({ name: 'kvf-ring-test', entries, slotBytes }, () => completions++);
  const ringMemory = Region.fromFd(client.fd, client.sizeBytes, 'memfd:ring');
  const events: RingEvents[] = [];
  const ring = attachEngineRing(
    {
      ring: ringMemory,
      eventFd: client.eventFd,
      engine,
      index,
      pool,
      region,
      layout,
      leases,
      owner: 7,
      rank: 0,
      ranks: 1,
      fetchable: false,
    },
    (e) => events.push(e),
  );
  const geo = ringLayout(entries, slotBytes);
  const bytes = new Uint8Array(client.buffer);
  const view = new DataView(client.buffer);
  const words = new Int32Array(client.buffer, 0, RING.headerBytes / 4);
  let sqTail = 0;
  let cqHead = 0;
  const base = (slot: number) => geo.slots + slot * geo.stride;
  const c = RING.cmd;
  return {
    pool,
    index,
    leases,
    region,
    events,
    bytes,
    view,
    base,
    /** Writes a command into `slot` and submits it (raw index, so tests can submit hostile ones). */
    submit(slot: number, op: number, count: number, hashLen: number, payload: Uint8Array, leaseId = '') {
      if (slot >= 0 && slot < entries) {
        const b = base(slot);
        bytes[b + c.op] = op;
        bytes[b + c.hashLen] = hashLen;
        bytes[b + c.flags] = 0;
        bytes[b + c.status] = 255;
        view.setUint32(b + c.count, count, true);
        bytes.set(Buffer.from(leaseId.padEnd(RING.leaseIdBytes, '\0')), b + c.leaseId);
        bytes.set(payload, b + RING.commandHeaderBytes);
      }
      new Int32Array(client.buffer, geo.sq, entries)[sqTail & (entries - 1)] = slot;
      sqTail = (sqTail + 1) | 0;
      Atomics.store(words, RING.sqTail / 4, sqTail);
      if (Atomics.exchange(words, RING.nodeSleeping / 4, 0) !== 0) client.wake();
    },
    /** Waits for the next completion; returns its slot. */
    async next(): Promise<number> {
      await until('a completion', () => Atomics.load(words, RING.cqTail / 4) !== cqHead);
      const slot = new Int32Array(client.buffer, geo.cq, entries)[cqHead & (entries - 1)]!;
      cqHead = (cqHead + 1) | 0;
      Atomics.store(words, RING.cqHead / 4, cqHead);
      return slot;
    },
    status: (slot: number) => bytes[base(slot) + c.status]!,
    r: (slot: number, field: 'r0' | 'r1' | 'r2' | 'r3') => view.getUint32(base(slot) + c[field], true),
    message(slot: number): string {
      const n = view.getUint32(base(slot) + c.messageBytes, true);
      return Buffer.from(bytes.subarray(base(slot) + 64, base(slot) + 64 + n)).toString();
    },
    leaseId: (slot: number) =>
      Buffer.from(bytes.subarray(base(slot) + c.leaseId, base(slot) + c.leaseId + 16)).toString(),
    completions: () => completions,
    close() {
      ring.close();
      ringMemory.close();
      client.close();
      leases.close();
      engine.close();
      region.close();
      closeSync(regionFd);
      pool.close();
    },
  };
}

function savePayload(ids: number[], hashIds: number[]): Buffer {
  const out = Buffer.alloc(ids.length * (4 + HASH));
  ids.forEach((id, i) => out.writeUInt32LE(id, 4 * i));
  hashIds.forEach((h, i) => hashOf(h).copy(out, 4 * ids.length + i * HASH));
  return out;
}
const idsPayload = (ids: number[]) => Buffer.from(Uint32Array.from(ids).buffer);
const hashesPayload = (ids: number[]) => Buffer.concat(ids.map(hashOf));

test('ring: save, query, load and release run natively; loaded bytes equal saved bytes; events batched', async () => {
  const r = rig();
  try {
    const data = [0, 1, 2, 3].map(() => randomBytes(PAGE));
    data.forEach((d, b) => r.region.write(b * PAGE, d));
    r.submit(0, RING.op.save, 4, HASH, savePayload([0, 1, 2, 3], [0, 1, 2, 3]));
    assert.equal(await r.next(), 0);
    assert.equal(r.status(0), RING.status.ok, r.message(0));
    assert.deepEqual([r.r(0, 'r0'), r.r(0, 'r1'), r.r(0, 'r2'), r.r(0, 'r3')], [4, 4, 0, 0]);
    assert.deepEqual([...r.bytes.subarray(r.base(0) + 64, r.base(0) + 68)], [0, 0, 0, 0]);
    await until('events', () => r.events.some((e) => e.counts.sealedBlocks > 0));
    const sealed = Buffer.concat(r.events.flatMap((e) => e.sealed.map((g) => g.hashes)));
    assert.ok(sealed.equals(hashesPayload([0, 1, 2, 3])), 'the sealed hashes, for the metaserver');
    const sum = new Uint32Array(2);
    data.forEach((d, b) => {
      r.index.checksumsInto(r.index.lookup(3, hashOf(b), 0, HASH), sum, 0);
      assert.equal(BigInt(sum[0]!) | (BigInt(sum[1]!) << 32n), pageChecksum(d), `block ${b}: summed as it was saved`);
    });

    r.submit(1, RING.op.query, 5, HASH, hashesPayload([0, 1, 2, 3, 9]));
    assert.equal(await r.next(), 1);
    assert.equal(r.status(1), RING.status.ok, r.message(1));
    assert.equal(r.r(1, 'r0'), 4, 'prefix hit');
    const lease = r.leaseId(1);
    assert.match(lease, /^[A-Za-z0-9_-]{16}$/);
    assert.equal(r.leases.size, 1);

    r.submit(2, RING.op.load, 4, 0, idsPayload([12, 13, 14, 15]), lease);
    assert.equal(await r.next(), 2);
    assert.equal(r.status(2), RING.status.ok, r.message(2));
    assert.equal(r.view.getBigUint64(r.base(2) + RING.cmd.r4, true), BigInt(4 * PAGE));
    for (let i = 0; i < 4; i++) assert.ok(r.region.read((12 + i) * PAGE, PAGE).equals(data[i]!), `block ${i}`);
    assert.equal(r.leases.size, 0, 'the single rank consumed the lease');
    assert.deepEqual(r.index.stats().pinned, 0, 'no pin left behind');

    r.submit(3, RING.op.load, 1, 0, idsPayload([5]), lease);
    assert.equal(await r.next(), 3);
    assert.equal(r.status(3), RING.status.error);
    assert.match(r.message(3), /^LEASE_CONSUMED /);
    assert.ok(r.completions() > 0, 'the engine side was woken for completions');
  } finally {
    r.close();
  }
});

test('ring: hostile commands get an error naming the field and change nothing', async () => {
  const r = rig({ slotBytes: 256 });
  try {
    const cases: [number, number, number, Uint8Array, RegExp, string?][] = [
      [9, 1, HASH, hashesPayload([0]), /^INVALID_ARGUMENT op: expected/],
      [RING.op.save, 1, 0, savePayload([0], [0]), /^INVALID_ARGUMENT hash_len: expected 1\.\.64, got 0/],
      [RING.op.save, 100, HASH, new Uint8Array(0), /^INVALID_ARGUMENT count: 100 items need 2000 payload bytes/],
      [RING.op.save, 1, HASH, savePayload([BLOCKS], [0]), /^INVALID_ARGUMENT block_ids\[0\]/],
      [RING.op.load, 1, 0, idsPayload([0]), /^LEASE_UNKNOWN lease_id: no such lease/, 'x'.repeat(16)],
      [RING.op.release, 0, 0, new Uint8Array(0), /^LEASE_UNKNOWN/, 'y'.repeat(16)],
    ];
    for (const [op, count, hashLen, payload, pattern, lease] of cases) {
      r.submit(0, op, count, hashLen, payload, lease);
      assert.equal(await r.next(), 0);
      assert.equal(r.status(0), RING.status.error);
      assert.match(r.message(0), pattern);
    }
    assert.deepEqual(r.index.stats(), { sealed: 0, partial: 0, pinned: 0, pageBytes: 0 });
    assert.equal(r.pool.stats().usedBytes, 0);
  } finally {
    r.close();
  }
});

test('ring: a command index past the ring stops the ring with a reason; nothing more is taken', async () => {
  const r = rig();
  try {
    r.submit(8, RING.op.query, 1, HASH, hashesPayload([0]));
    await until('the broken event', () => r.events.some((e) => e.broken));
    assert.match(
      r.events.flatMap((e) => e.problems.map((p) => p.message)).join('\n'),
      /command index 8 is not below entries 8/,
    );
    r.submit(0, RING.op.query, 1, HASH, hashesPayload([0]));
    const tail = new Int32Array(r.bytes.buffer, 0, 128);
    assert.equal(Atomics.load(tail, RING.cqTail / 4), 0, 'nothing more is taken off the queue');
  } finally {
    r.close();
  }
});

test('ring: a ring whose header is not a ring is refused at attach, naming the field', () => {
  const pool = Pool.create({ sizeBytes: 4 * PAGE, slabBytes: PAGE });
  const engine = new CopyEngine({ threads: 1 });
  const index = createBlockIndex();
  const leases = new LeaseTable(index, 1000);
  const fd = createSealedMemfd('kvf-not-a-ring', 4096);
  const bogus = Region.fromFd(fd, 4096, 'memfd:bogus');
  const layout = createInstanceLayout({
    ns: 0,
    shards: 1,
    shard: 0,
    numBlocks: 1,
    pageBytes: PAGE,
    segmentBytes: PAGE,
    strideBytes: PAGE,
    segmentOffsets: Float64Array.of(0),
  });
  try {
    assert.throws(
      () =>
        attachEngineRing(
          {
            ring: bogus,
            eventFd: fd,
            engine,
            index,
            pool,
            region: bogus,
            layout,
            leases,
            owner: 0,
            rank: 0,
            ranks: 1,
            fetchable: false,
          },
          () => {},
        ),
      { code: 'INVALID_ARGUMENT', message: /ring\.magic: expected "KVR1"/ },
    );
  } finally {
    bogus.close();
    closeSync(fd);
    leases.close();
    engine.close();
    pool.close();
  }
});
