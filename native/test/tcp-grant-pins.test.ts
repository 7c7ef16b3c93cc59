// Pages outlive the bytes on the wire: the tcp server checks a grant when a request arrives but writes the answer
// later, straight from pool memory, so removeGrant must settle only once no queued answer under the grant is left
// (the node unpins and reuses the pages then, never before). A raw wire reader (tcp-wire.ts) queues answers by not
// reading, as a slow or hostile reader would.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Pool } from '../lib/pool.js';
import { TcpTransport, parseTcpServerMaterial } from '../lib/tcp-transport.js';
import { TCP_WIRE, WireConnection, encodeHello, encodeRead } from '../lib/tcp-wire.js';
import { materialHeader, type TransportEvent } from '../lib/transport.js';
import { gid, sleep, until } from './helpers.js';

const PAGE = 1 << 20;
const READS = 64; // 64 MiB of answers: far more than loopback socket buffers hold, so most stay queued

/** A serving transport with one granted 1 MiB page of 0x11 bytes, and a raw reader admitted as 'R'. */
async function setup(opts: { stallTimeoutMs?: number } = {}) {
  const pool = Pool.create({ sizeBytes: 8 << 20 });
  const events: TransportEvent[] = [];
  const server = await TcpTransport.create({
    pool,
    onEvent: (e) => void events.push(e),
    ...(opts.stallTimeoutMs ? { stallTimeoutMs: opts.stallTimeoutMs } : {}),
  });
  const m = parseTcpServerMaterial(await server.acceptPeer('R', materialHeader('tcp')));
  const page = pool.alloc(PAGE)!;
  pool.write(page, Buffer.alloc(PAGE, 0x11));
  await server.addGrant(gid(1), 'R', new Float64Array([page, PAGE]), Date.now() + 600_000);
  const conn = await WireConnection.open(m.host, m.port);
  await conn.send(encodeHello(m.name, m.secret, await conn.challenge()));
  await until('HELLO_OK', () => conn.frames.length === 1);
  assert.equal(conn.frames.shift()!.type, TCP_WIRE.type.helloOk);
  return {
    pool,
    server,
    conn,
    page,
    events,
    /** Queues READS whole-page reads and waits until the server accepted them all (while we take no answer). */
    async queueReads() {
      conn.pause();
      for (let i = 0; i < READS; i++) await conn.send(encodeRead(BigInt(i + 1), gid(1), [page, PAGE]));
      await until('every read accepted', () => server.counters().readsAnswered === READS);
    },
    async close() {
      conn.close();
      await server.close();
      pool.close();
    },
  };
}

describe('tcp grant pins', () => {
  test('removeGrant settles only after the last queued answer under the grant was written; later reads are refused', async () => {
    const s = await setup();
    try {
      await s.queueReads();
      assert.ok(s.server.counters().answersQueued > 0, 'answers wait for the reader');
      let settled = false;
      const removed = s.server.removeGrant(gid(1)).then(() => (settled = true));
      // The grant is gone for new requests at once (sent now, answered in order after the queued ones) ...
      await s.conn.send(encodeRead(BigInt(READS + 1), gid(1), [s.page, PAGE]));
      await sleep(100);
      // ... but its pages stay claimed while answers covering them wait: the removal has not settled.
      assert.ok(s.server.counters().answersQueued > 0);
      assert.equal(settled, false, 'removeGrant settled with answers still queued');
      s.conn.resume();
      await until('every answer', () => s.conn.frames.length === READS + 1);
      await removed;
      assert.equal(s.server.counters().answersQueued, 0);
      const data = s.conn.frames.slice(0, READS);
      assert.deepEqual(
        data.map((f) => f.type),
        Array<number>(READS).fill(TCP_WIRE.type.data),
      );
      const expected = Buffer.alloc(PAGE, 0x11);
      data.forEach((f, i) => assert.ok(f.payload.equals(expected), `answer ${i} differs`));
      const last = s.conn.frames[READS]!;
      assert.equal(last.type, TCP_WIRE.type.error);
      assert.equal(last.code, TCP_WIRE.errorCode.grantRefused);
      assert.match(last.payload.toString(), new RegExp(`unknown grant ${gid(1)}`));
      assert.equal(s.server.counters().bytesServed, READS * PAGE);
    } finally {
      await s.close();
    }
  });

  test('a grant removed with nothing queued settles at once; an unknown grant too', async () => {
    const s = await setup();
    try {
      await s.server.removeGrant(gid(1));
      await s.server.removeGrant(gid(99));
      assert.equal(s.server.counters().answersQueued, 0);
    } finally {
      await s.close();
    }
  });

  test('a reader that stops taking answers is disconnected after the stall timeout, which releases the grant', async () => {
    const s = await setup({ stallTimeoutMs: 300 });
    try {
      await s.queueReads();
      const removed = s.server.removeGrant(gid(1));
      await removed; // settles only because the stalled connection was closed, dropping its answers
      const c = s.server.counters();
      assert.deepEqual({ stalled: c.stalledClosed, queued: c.answersQueued }, { stalled: 1, queued: 0 });
      await until('the stall event', () => s.events.some((e) => e.kind === 'error' && e.peer === 'R'));
      assert.match(s.events.find((e) => e.peer === 'R')!.message, /took no answer for \d+ ms with \d+ queued/);
    } finally {
      await s.close();
    }
  });

  test('dropping the reader drops its queued answers and settles the removal', async () => {
    const s = await setup();
    try {
      await s.queueReads();
      const removed = s.server.removeGrant(gid(1));
      s.server.dropPeer('R', 'serving');
      await removed;
      assert.equal(s.server.counters().answersQueued, 0);
    } finally {
      await s.close();
    }
  });

  test('close() with answers queued settles pending removals', async () => {
    const s = await setup();
    await s.queueReads();
    const removed = s.server.removeGrant(gid(1)).then(
      () => 'settled',
      (e: Error & { code: string }) => e.code,
    );
    await s.close();
    assert.ok(['settled', 'TRANSPORT_FAILED'].includes(await removed));
  });
});
