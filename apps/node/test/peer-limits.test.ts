// Limits on the node's peer gRPC server (--addr, issue 12), against a real kvfabric-node: requests are held to the
// Peer service's real maximum (a PrepareRead of PEER_MAX_READ_HASHES hashes; it used to take 256 MiB), hostile ids
// are echoed cut short and the channel goes on, and an idle HTTP/2 connection is closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { PeerClient, TransportKind, type HashList } from '@kvfabric/proto';
import { CHANNEL_OPTIONS, ERROR_CODE_KEY } from '@kvfabric/common/rpc';
import { startNode } from '@kvfabric/testkit';
import { PEER_MAX_READ_HASHES, PEER_MAX_REQUEST_BYTES } from '../src/peer/peer-limits.js';

type Call = (req: any, cb: (err: grpc.ServiceError | null, res: any) => void) => unknown;

function call<T = any>(peer: PeerClient, method: 'handshake' | 'prepareRead' | 'releaseGrant', req: unknown) {
  return new Promise<T>((resolve, reject) =>
    (peer[method] as unknown as Call).call(peer, req, (e, r) => (e ? reject(e) : resolve(r as T))),
  );
}

async function refused(peer: PeerClient, method: 'handshake' | 'prepareRead' | 'releaseGrant', req: unknown) {
  try {
    await call(peer, method, req);
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, kv: String(e.metadata?.get(ERROR_CODE_KEY)[0]), details: e.details };
  }
  assert.fail(`${method} unexpectedly succeeded`);
}

function hl(count: number, len: number): HashList {
  const packed = Buffer.alloc(count * len);
  for (let i = 0; i < count; i++) packed.writeUInt32BE(i, i * len);
  return { packed, hashLen: len };
}

test('peer server: field caps, message size, truncated echoes, idle connections closed', async () => {
  await using node = await startNode({ poolSize: '16mib', args: ['--max-connection-idle-secs', '1'] });
  const peer = new PeerClient(node.addr, grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
  try {
    const prepare = (hashes: HashList) => ({
      nodeId: 'reader',
      session: 1n,
      namespace: 'ns',
      hashes,
      releaseGrantIds: Buffer.alloc(0),
    });
    // the largest valid PrepareRead decodes and reaches the service (no handshake: SESSION_UNKNOWN)
    const largest = await refused(peer, 'prepareRead', prepare(hl(PEER_MAX_READ_HASHES, 64)));
    assert.equal(largest.kv, 'SESSION_UNKNOWN', largest.details);
    const over = await refused(peer, 'prepareRead', prepare(hl(PEER_MAX_READ_HASHES + 1, 8)));
    assert.equal(over.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(
      over.details,
      `hashes: expected at most ${PEER_MAX_READ_HASHES} hashes, got ${PEER_MAX_READ_HASHES + 1}`,
    );
    // a message past the service's maximum is refused before it is decoded
    const count = Math.ceil((PEER_MAX_REQUEST_BYTES + (1 << 20)) / 64);
    const big = await refused(peer, 'prepareRead', prepare(hl(count, 64)));
    assert.equal(big.code, grpc.status.RESOURCE_EXHAUSTED, `${grpc.status[big.code]}: ${big.details}`);
    assert.match(big.details, /larger than max/);
    // a 128 KiB reader id is named, cut short, and the channel answers the next call
    const id = await refused(peer, 'handshake', {
      nodeId: 'r'.repeat(128 * 1024),
      addr: '127.0.0.1:1',
      transport: TransportKind.TRANSPORT_KIND_TCP,
      material: Buffer.alloc(0),
    });
    assert.equal(id.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(
      id.details,
      `node_id: expected 1..128 printable characters without spaces, got "${'r'.repeat(64)}"… (131072 characters)`,
    );
    const next = await refused(peer, 'prepareRead', prepare(hl(1, 32)));
    assert.equal(next.kv, 'SESSION_UNKNOWN');
  } finally {
    peer.close();
  }

  const session = http2.connect(`http://${node.addr}`);
  try {
    const goaway = await new Promise<number | undefined>((resolve, reject) => {
      let code: number | undefined;
      const timer = setTimeout(() => reject(new Error('the idle connection was never closed')), 60_000);
      session.on('goaway', (c) => (code = c));
      session.on('error', () => {});
      session.on('close', () => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(goaway, http2.constants.NGHTTP2_NO_ERROR);
  } finally {
    session.destroy();
  }
});
