// The start check of TLS to etcd (checkEtcdTls) against servers that misbehave on purpose; etcd-tls.test.ts runs it
// against real etcd. A server that resets the connection on the TLS hello, as a plaintext etcd port may, is a
// configuration problem however the reset reaches the client (through TLS or through the socket's read, which
// depends on timing); one that closes on the hello is one too; a port nobody listens on is only reported back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { checkEtcdTls } from '@kvfabric/common/etcd';
import { freePort, testCa } from '@kvfabric/testkit';

/** A TCP server on 127.0.0.1 that does `onHello` to each connection once the client's first bytes arrive. */
async function helloServer(onHello: (socket: Socket) => void): Promise<{ server: Server; endpoint: string }> {
  const server = createServer((socket) => socket.once('data', () => onHello(socket)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('helloServer: no port');
  return { server, endpoint: `127.0.0.1:${addr.port}` };
}

async function credentials() {
  const paths = await testCa().issue('etcd', 'metaserver');
  return { rootCertificate: readFileSync(paths.tlsCa) };
}

test('a server that resets the connection on the TLS hello is refused, naming the flag and the endpoint', async () => {
  const { server, endpoint } = await helloServer((socket) => socket.resetAndDestroy());
  try {
    const tls = await credentials();
    const expected = new RegExp(
      `^KvError: metaserver-addr: etcd at ${endpoint} closed the connection on the TLS hello \\(an http:// endpoint\\?\\): `,
    );
    // the reset comes through TLS or through the read, as the timing falls: every try is the same refusal
    for (let i = 0; i < 20; i++)
      await assert.rejects(checkEtcdTls([endpoint], tls, { field: 'metaserver-addr' }), expected);
  } finally {
    server.close();
  }
});

test('a server that closes on the TLS hello is refused; a port nobody listens on is only reported back', async () => {
  const { server, endpoint } = await helloServer((socket) => socket.end());
  try {
    const tls = await credentials();
    await assert.rejects(
      checkEtcdTls([endpoint], tls),
      new RegExp(`^KvError: etcd-endpoints: etcd at ${endpoint} closed the connection on the TLS hello`),
    );
    const gone = `127.0.0.1:${await freePort()}`;
    assert.deepEqual(await checkEtcdTls([gone], tls), [`${gone}: connect ECONNREFUSED ${gone} (ECONNREFUSED)`]);
  } finally {
    server.close();
  }
});
