// The tcp data stream's HELLO is a challenge-response: the reader proves its secret over a nonce the server sent on
// this connection, so the secret never crosses the (plaintext) stream and a recorded HELLO opens no other connection.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Pool } from '../lib/pool.js';
import { TcpTransport, parseTcpServerMaterial } from '../lib/tcp-transport.js';
import { TCP_WIRE, WireConnection, encodeHello } from '../lib/tcp-wire.js';
import { materialHeader } from '../lib/transport.js';
import { until } from './helpers.js';

async function helloAnswer(conn: WireConnection, hello: Buffer): Promise<number> {
  await conn.send(hello);
  await until('HELLO answered', () => conn.frames.length > 0 || conn.closed);
  return conn.frames.shift()?.type ?? -1;
}

test('a HELLO proves the secret over this connection’s nonce; replayed on another connection it is refused', async () => {
  const pool = Pool.create({ sizeBytes: 1 << 20 });
  const server = await TcpTransport.create({ pool });
  try {
    const m = parseTcpServerMaterial(await server.acceptPeer('R', materialHeader('tcp')));
    const first = await WireConnection.open(m.host, m.port);
    const nonce = await first.challenge();
    assert.equal(nonce.length, 32);
    const hello = encodeHello(m.name, m.secret, nonce);
    assert.equal(hello.indexOf(m.secret), -1, 'the secret itself is not on the wire');
    assert.equal(await helloAnswer(first, hello), TCP_WIRE.type.helloOk);

    // an eavesdropper replays the recorded HELLO: the new connection has another nonce
    const replay = await WireConnection.open(m.host, m.port);
    const other = await replay.challenge();
    assert.notDeepEqual(other, nonce);
    assert.equal(await helloAnswer(replay, hello), TCP_WIRE.type.helloRefused);
    await until('the replaying connection is closed', () => replay.closed);

    // and the secret's owner still gets in on a fresh connection
    const again = await WireConnection.open(m.host, m.port);
    assert.equal(
      await helloAnswer(again, encodeHello(m.name, m.secret, await again.challenge())),
      TCP_WIRE.type.helloOk,
    );
    first.close();
    again.close();
  } finally {
    await server.close();
    pool.close();
  }
});
