// Pages read after release (issue 12): the tcp server checks a grant when a read request arrives but sends the
// bytes later, straight from pool memory. Replayed deterministically against a real node: a reader queues 500
// reads under a valid grant and takes no answer, the grant then ends (released, or expired), another tenant saves
// twice the pool's worth of blocks (every page that is free to reuse gets reused), and only then does the reader
// take its answers. Every answer must carry the granted tenant's bytes: the pages stay pinned until the last answer
// covering them was written, and are reused after that.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { TCP_WIRE, encodeRead, type WireConnection } from '@kvfabric/native';
import { engine, freshHashes, metric, saveBlocks, until, PAGE, type TestEngine } from './pull-helpers.js';
import { RawReader } from './raw-reader.js';

const POOL_PAGES = 1024; // 64 MiB of 64 KiB pages
const BLOCKS = 16; // tenant A's granted blocks
const READS = 500; // each of 2 blocks: 62.5 MiB of answers, far more than loopback socket buffers hold
const PER_READ = 2;

let released: NodeHandle;
let expiring: NodeHandle;

before(async () => {
  [released, expiring] = await Promise.all([
    startNode({ poolSize: `${POOL_PAGES * PAGE}`, args: ['--grant-ttl-secs', '600'] }),
    startNode({ poolSize: `${POOL_PAGES * PAGE}`, args: ['--grant-ttl-secs', '5'] }),
  ]);
});

after(async () => {
  await released?.[Symbol.asyncDispose]();
  await expiring?.[Symbol.asyncDispose]();
});

/** Tenant A's blocks on `node`, granted to a raw reader that queues READS reads and takes no answer yet. */
async function queuedReads(node: NodeHandle, ns: string) {
  const a = await engine(node, ns);
  const hashes = freshHashes(BLOCKS);
  const data = await saveBlocks(a, hashes);
  const reader = await RawReader.handshake(node, `reader-${ns}`);
  const grant = await reader.prepareRead(ns, hashes);
  assert.equal(grant.blocks, BLOCKS);
  const conn = await reader.connect();
  conn.pause();
  const answeredBefore = await metric(node, 'kvfabric_transport_reads_answered_total');
  const expected: Buffer[] = [];
  for (let k = 0; k < READS; k++) {
    const first = (k * PER_READ) % BLOCKS;
    const ranges: number[] = [];
    for (let b = first; b < first + PER_READ; b++) ranges.push(grant.offsets[b]!, PAGE);
    expected.push(Buffer.concat(data.slice(first, first + PER_READ)));
    await conn.send(encodeRead(BigInt(k + 1), grant.id, ranges));
  }
  return { a, reader, grant, conn, expected, answeredBefore };
}

/** Tenant B saves twice the pool's pages in fresh blocks: every page nobody pins is overwritten. */
async function overwriteThePool(node: NodeHandle, ns: string): Promise<void> {
  await using b = await engine(node, ns);
  const batch = b.region.geometry.numBlocks;
  for (let saved = 0; saved < 2 * POOL_PAGES; saved += batch) await saveBlocks(b, freshHashes(batch));
}

/** Takes every answer and returns how many carry bytes other than the granted ones (and which kinds came). */
async function takeAnswers(conn: WireConnection, expected: Buffer[]) {
  conn.resume();
  await until(`${READS} answers`, () => conn.frames.length >= READS);
  let foreign = 0;
  const kinds = new Map<number, number>();
  conn.frames.slice(0, READS).forEach((f, k) => {
    kinds.set(f.type, (kinds.get(f.type) ?? 0) + 1);
    if (f.type === TCP_WIRE.type.data && !f.payload.equals(expected[k]!)) foreign++;
  });
  return { foreign, kinds };
}

test('a released grant: 500 answers queued before the release never carry the next tenant’s bytes', async () => {
  const q = await queuedReads(released, 'pins/released-a');
  try {
    await until(
      'the node accepted every read',
      async () => (await metric(released, 'kvfabric_transport_reads_answered_total')) - q.answeredBefore === READS,
    );
    await q.reader.release(q.grant.id);
    assert.equal(await metric(released, 'kvfabric_peer_grants_active'), 0, 'the grant ended');
    // its pages wait for the answers on the wire
    assert.equal(await metric(released, 'kvfabric_peer_grant_pinned_blocks'), BLOCKS);
    assert.ok((await metric(released, 'kvfabric_transport_answers_queued')) > 0);
    await overwriteThePool(released, 'pins/released-b');
    const { foreign, kinds } = await takeAnswers(q.conn, q.expected);
    assert.deepEqual([...kinds], [[TCP_WIRE.type.data, READS]]);
    assert.equal(foreign, 0, `${foreign} of ${READS} answers carried bytes that were not granted`);
    // the last answer written, the pages go back to the pool
    await until('pins released', async () => (await metric(released, 'kvfabric_peer_grant_pinned_blocks')) === 0);
    assert.equal(await metric(released, 'kvfabric_transport_answers_queued'), 0);
    // and a read under the released grant is refused
    await q.conn.send(encodeRead(BigInt(READS + 1), q.grant.id, [q.grant.offsets[0]!, PAGE]));
    await until('the refusal', () => q.conn.frames.length === READS + 1);
    const last = q.conn.frames[READS]!;
    assert.deepEqual(
      { type: last.type, code: last.code, message: last.payload.toString() },
      {
        type: TCP_WIRE.type.error,
        code: TCP_WIRE.errorCode.grantRefused,
        message: `unknown grant ${q.grant.id}`,
      },
    );
  } finally {
    await done(q);
  }
});

test('an expiring grant: answers queued before expiry carry the granted bytes; expiry frees no page with reads outstanding', async () => {
  const q = await queuedReads(expiring, 'pins/expiring-a');
  try {
    // Requests that reach the node after the 5 s grant expired are refused; every one it accepted is checked.
    await until('the grant expired', async () => {
      return (await metric(expiring, 'kvfabric_peer_grants_ended_total', 'how="expired"')) >= 1;
    });
    const accepted = (await metric(expiring, 'kvfabric_transport_reads_answered_total')) - q.answeredBefore;
    assert.ok(accepted > 0, 'the node accepted reads before the grant expired');
    assert.equal(await metric(expiring, 'kvfabric_peer_grant_pinned_blocks'), BLOCKS, 'expired, still pinned');
    await overwriteThePool(expiring, 'pins/expiring-b');
    const { foreign, kinds } = await takeAnswers(q.conn, q.expected);
    assert.equal(kinds.get(TCP_WIRE.type.data), accepted);
    assert.equal((kinds.get(TCP_WIRE.type.error) ?? 0) + accepted, READS, 'the rest were refused');
    assert.equal(foreign, 0, `${foreign} of ${accepted} answers carried bytes that were not granted`);
    await until('pins released', async () => (await metric(expiring, 'kvfabric_peer_grant_pinned_blocks')) === 0);
  } finally {
    await done(q);
  }
});

async function done(q: { a: TestEngine; reader: RawReader; conn: WireConnection }): Promise<void> {
  q.conn.close();
  q.reader.close();
  await q.a[Symbol.asyncDispose]();
}
