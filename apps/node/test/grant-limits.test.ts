// Grants and readers under hostile peers (issue 12), against real node processes: grant ids are 128 random bits
// and only the reader a grant was given to may release or read it; a node-wide pin budget caps what anonymous
// grants can pin; a stream of handshakes leaves a bounded number of reader sessions, and idle ones go.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { TCP_WIRE, encodeRead } from '@kvfabric/native';
import { engine, freshHashes, metric, saveBlocks, until, PAGE } from './pull-helpers.js';
import { RawReader } from './raw-reader.js';

const POOL = 1024 * PAGE; // 64 MiB

let node: NodeHandle; // default limits
let budgeted: NodeHandle; // --grant-pin-budget 25%
let few: NodeHandle; // --max-readers 8 --reader-idle-secs 1

before(async () => {
  [node, budgeted, few] = await Promise.all([
    startNode({ poolSize: `${POOL}` }),
    startNode({ poolSize: `${POOL}`, args: ['--grant-pin-budget', '25%'] }),
    startNode({ poolSize: `${POOL}`, args: ['--max-readers', '8', '--reader-idle-secs', '1'] }),
  ]);
});

after(async () => {
  for (const n of [node, budgeted, few]) await n?.[Symbol.asyncDispose]();
});

const rejectsWithStatus = (p: Promise<unknown>, code: grpc.status, message: RegExp) =>
  assert.rejects(p, (e: grpc.ServiceError) => e.code === code && message.test(e.details));

test('grant ids are 16 random bytes, and only the reader they were granted to can release or read them', async () => {
  const ns = 'limits/ids';
  await using a = await engine(node, ns);
  const hashes = freshHashes(4);
  const data = await saveBlocks(a, hashes);
  const owner = await RawReader.handshake(node, 'owner');
  const other = await RawReader.handshake(node, 'other');
  try {
    const grants = await Promise.all(Array.from({ length: 8 }, () => owner.prepareRead(ns, hashes)));
    assert.ok(grants.every((g) => /^[0-9a-f]{32}$/.test(g.id)));
    assert.equal(new Set(grants.map((g) => g.id)).size, 8);
    const g = grants[0]!;
    // the owner's node id with another (or no) session: not authenticated as the owner
    await rejectsWithStatus(other.release(g.id, { as: 'owner' }), grpc.status.NOT_FOUND, /^session: peer owner/);
    await rejectsWithStatus(other.release(g.id, { as: 'owner', session: 0n }), grpc.status.NOT_FOUND, /session/);
    // another reader, authenticated as itself
    await rejectsWithStatus(other.release(g.id), grpc.status.PERMISSION_DENIED, /granted to another reader/);
    // a malformed id
    await rejectsWithStatus(
      other.release('00'),
      grpc.status.INVALID_ARGUMENT,
      /^grant_id: expected the 16 bytes of a grant id/,
    );
    assert.equal(await metric(node, 'kvfabric_peer_grants_active'), 8, 'nothing was released');
    // reads under the owner's grant: refused on another reader's connection, served on the owner's
    const theirs = await other.connect();
    await theirs.send(encodeRead(1n, g.id, [g.offsets[0]!, PAGE]));
    await until('the refusal', () => theirs.frames.length === 1);
    assert.deepEqual(
      { type: theirs.frames[0]!.type, message: theirs.frames[0]!.payload.toString() },
      { type: TCP_WIRE.type.error, message: `grant ${g.id} belongs to another peer` },
    );
    theirs.close();
    const mine = await owner.connect();
    await mine.send(encodeRead(1n, g.id, [g.offsets[1]!, PAGE]));
    await until('the answer', () => mine.frames.length === 1);
    assert.ok(mine.frames[0]!.payload.equals(data[1]!));
    mine.close();
    for (const x of grants) await owner.release(x.id);
    assert.equal(await metric(node, 'kvfabric_peer_grants_active'), 0);
  } finally {
    owner.close();
    other.close();
  }
});

test('58 anonymous readers cannot pin more than --grant-pin-budget: the rest get RESOURCE_EXHAUSTED', async () => {
  const ns = 'limits/budget';
  await using a = await engine(budgeted, ns);
  const hashes = freshHashes(64); // 4 MiB of pages; the budget (25% of 64 MiB) holds 4 such grants
  await saveBlocks(a, hashes);
  assert.equal(await metric(budgeted, 'kvfabric_peer_grant_pin_budget_bytes'), POOL / 4);
  const readers = await Promise.all(Array.from({ length: 58 }, (_, i) => RawReader.handshake(budgeted, `anon-${i}`)));
  try {
    const outcomes = await Promise.allSettled(readers.map((r) => r.prepareRead(ns, hashes)));
    const granted = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason as grpc.ServiceError);
    assert.equal(granted.length, 4);
    assert.equal(refused.length, 54);
    for (const e of refused) {
      assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(
        e.details,
        /^grant-pin-budget: 16\.0 MiB of 16\.0 MiB already pinned by grants, 4\.00 MiB more asked/,
      );
    }
    assert.equal(await metric(budgeted, 'kvfabric_peer_grant_pinned_bytes'), POOL / 4);
    assert.equal(await metric(budgeted, 'kvfabric_peer_grants_refused_total', 'why="pin_budget"'), 54);
    // one grant released: room for exactly one more
    const first = granted[0]!.value;
    await readers[outcomes.indexOf(granted[0]!)]!.release(first.id);
    await until('its pins went', async () => (await metric(budgeted, 'kvfabric_peer_grant_pinned_bytes')) < POOL / 4);
    assert.equal((await readers[57]!.prepareRead(ns, hashes)).blocks, 64);
  } finally {
    for (const r of readers) r.close();
  }
});

test('2,000 handshakes leave at most --max-readers sessions; a reader with a live grant keeps its session; idle readers go', async () => {
  const ns = 'limits/readers';
  await using a = await engine(few, ns);
  const hashes = freshHashes(2);
  const data = await saveBlocks(a, hashes);
  const holder = await RawReader.handshake(few, 'holder');
  const g = await holder.prepareRead(ns, hashes);
  const conn = await holder.connect();
  try {
    for (let i = 0; i < 2000; i += 100) {
      // Some of a concurrent batch are displaced by the rest while being admitted (PEER_LIMIT_REACHED).
      const batch = await Promise.allSettled(
        Array.from({ length: 100 }, (_, k) => RawReader.handshake(few, `drive-by-${i + k}`)),
      );
      for (const r of batch) {
        if (r.status === 'fulfilled') r.value.close();
        else assert.equal((r.reason as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
      }
    }
    // every handshake was admitted, then displaced past --max-readers or forgotten idle: at most 8 remain
    const [readers, displaced, idle] = [
      await metric(few, 'kvfabric_peer_readers'),
      await metric(few, 'kvfabric_peer_readers_forgotten_total', 'why="displaced"'),
      await metric(few, 'kvfabric_peer_readers_forgotten_total', 'why="idle"'),
    ];
    assert.ok(readers >= 1 && readers <= 8, `${readers} readers`);
    assert.equal(readers + displaced + idle, 2001);
    assert.ok(displaced > 0);
    // the reader holding a grant was never displaced: its session and its data connection still work
    const again = await holder.prepareRead(ns, hashes);
    assert.equal(again.blocks, 2);
    await conn.send(encodeRead(1n, g.id, [g.offsets[0]!, PAGE]));
    await until('the answer', () => conn.frames.length === 1);
    assert.ok(conn.frames[0]!.payload.equals(data[0]!));
    // idle readers without grants are forgotten after --reader-idle-secs; the holder stays while it holds grants
    await until('idle readers forgotten', async () => (await metric(few, 'kvfabric_peer_readers')) === 1);
    await holder.release(g.id);
    await holder.release(again.id);
    await until('the holder forgotten too', async () => (await metric(few, 'kvfabric_peer_readers')) === 0);
    await assert.rejects(holder.prepareRead(ns, hashes), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
  } finally {
    conn.close();
    holder.close();
  }
});
