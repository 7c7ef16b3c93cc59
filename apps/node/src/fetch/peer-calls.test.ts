// PeerCalls against an in-process Peer server: the node's own gRPC adapter (peer-service.ts) over a PeerServer core
// that answers from a table, so the client meets the real handlers, checks and error mapping. PrepareRead and
// ReleaseGrant go on the GrantStream and fail with the unary calls' errors; a peer that does not serve the stream
// (an older version) gets unary calls, the refused one included, until the link handshakes again; a call without
// an answer times out; an idle stream is half-closed. The real pulls that run on the stream are in test/pull*.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { PeerClient, PeerService, TransportKind } from '@kvfabric/proto';
import { KvError } from '@kvfabric/common';
import { Metrics, silentLogger } from '@kvfabric/common/observability';
import { bindServer, rpcInstruments } from '@kvfabric/common/rpc';
import { rejection } from '@kvfabric/testkit';
import { peerServiceImpl } from '../peer/peer-service.js';
import type { PeerServer } from '../peer/peer-server.js';
import { PeerCalls } from './peer-calls.js';

const GRANT_ID = 'ab'.repeat(16);
/** Deadline of calls the in-process peer answers: long, so that a slow or busy host never turns one into a timeout. */
const ANSWER_MS = 60_000;

/** A PeerServer core that grants every hash asked for, and counts what it was asked. */
function core() {
  const seen = { prepareRead: 0, releaseGrant: 0 };
  const server = {
    handshake: () => Promise.resolve({ material: Buffer.alloc(0), session: 1n }),
    prepareRead: (_peer: string, session: bigint, _ns: string, packed: Buffer, hashLen: number) => {
      seen.prepareRead++;
      if (session !== 1n) throw new KvError('SESSION_UNKNOWN', `session: no handshake with session ${session}`);
      const blocks = packed.length / hashLen;
      return Promise.resolve({
        grantId: GRANT_ID,
        blocks,
        shards: 1,
        pageBytes: 4096,
        pageOffsets: Float64Array.from({ length: blocks }, (_, i) => i * 4096),
        checksums: new Uint32Array(2 * blocks),
        expiresAtMs: 1,
        key: Buffer.alloc(0),
        pinBudgetBytes: 0,
      });
    },
    releaseGrant: () => {
      seen.releaseGrant++;
    },
  } as unknown as PeerServer;
  return { server, seen };
}

/**
 * A Peer server on a free port; its GrantStream is served only while `streams.served` (else UNIMPLEMENTED, as an
 * older node answers a method it does not know). `streams.opened` counts the streams it served.
 */
async function peer() {
  const { server, seen } = core();
  const ctx = { logger: silentLogger(), instruments: rpcInstruments(new Metrics('peer-calls-test'), 'peer') };
  const impl = peerServiceImpl(
    { server, nodeId: 'holder', transport: TransportKind.TRANSPORT_KIND_TCP, identify: () => undefined },
    ctx,
  );
  const streams = { served: true, opened: 0 };
  const real = impl.grantStream as grpc.handleBidiStreamingCall<unknown, unknown>;
  impl.grantStream = ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
    if (!streams.served) return call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'unknown method' });
    streams.opened++;
    real(call);
  }) as grpc.UntypedHandleCall;
  const grpcServer = new grpc.Server();
  grpcServer.addService(PeerService, impl);
  const port = await bindServer(grpcServer, '127.0.0.1:0');
  const rpc = new PeerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    seen,
    streams,
    calls: new PeerCalls(rpc, 'holder'),
    [Symbol.asyncDispose]: async () => {
      rpc.close();
      grpcServer.forceShutdown();
    },
  };
}

const prepare = (session = 1n) => ({
  nodeId: 'reader',
  session,
  namespace: 'ns',
  hashes: { packed: Buffer.alloc(4 * 32, 7), hashLen: 32 },
  releaseGrantIds: Buffer.alloc(0),
});
const release = { nodeId: 'reader', session: 1n, grantId: Buffer.from(GRANT_ID, 'hex') };

test('grant calls go on one GrantStream; a refused item fails alone, with the unary call’s code and message', async () => {
  await using p = await peer();
  const grants = await Promise.all(
    Array.from({ length: 20 }, () => p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare')),
  );
  assert.ok(grants.every((g) => g.blocks === 4 && Buffer.from(g.grantId).toString('hex') === GRANT_ID));
  await p.calls.grant('releaseGrant', release, ANSWER_MS, 'release');
  assert.deepEqual(p.seen, { prepareRead: 20, releaseGrant: 1 });
  assert.equal(p.streams.opened, 1, 'one stream carried every call');

  const onStream = await rejection(p.calls.grant('prepareRead', prepare(9n), ANSWER_MS, 'prepare'), KvError);
  const bad = await rejection(
    p.calls.grant('prepareRead', { ...prepare(), namespace: '' }, ANSWER_MS, 'prepare'),
    KvError,
  );
  assert.equal((await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare')).blocks, 4, 'the stream goes on');
  // the same refusals as unary calls (a peer without the stream): the same errors
  const fresh = await peer();
  fresh.streams.served = false;
  try {
    const onUnary = await rejection(fresh.calls.grant('prepareRead', prepare(9n), ANSWER_MS, 'prepare'), KvError);
    const badUnary = await rejection(
      fresh.calls.grant('prepareRead', { ...prepare(), namespace: '' }, ANSWER_MS, 'prepare'),
      KvError,
    );
    assert.deepEqual([onStream.code, onStream.message], [onUnary.code, onUnary.message]);
    assert.deepEqual([bad.code, bad.message], [badUnary.code, badUnary.message]);
    assert.equal(onStream.code, 'SESSION_UNKNOWN');
    assert.match(onStream.message, /^prepare: session: no handshake with session 9$/);
    assert.equal(bad.code, 'INVALID_ARGUMENT');
    assert.match(bad.message, /^prepare: namespace/);
  } finally {
    await fresh[Symbol.asyncDispose]();
  }
});

test('a peer without the GrantStream (an older node) gets unary calls, the refused one included, until a handshake', async () => {
  await using p = await peer();
  p.streams.served = false;
  assert.equal(
    (await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare')).blocks,
    4,
    'answered by the unary call',
  );
  await p.calls.grant('releaseGrant', release, ANSWER_MS, 'release');
  assert.deepEqual(p.seen, { prepareRead: 1, releaseGrant: 1 });
  p.streams.served = true; // upgraded: not tried again until the link handshakes
  await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare');
  assert.equal(p.streams.opened, 0);
  p.calls.streamAgain();
  await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare');
  assert.equal(p.streams.opened, 1);
  assert.equal(p.seen.prepareRead, 3);
});

test('an idle stream is half-closed (the peer may close an idle connection); the next call opens another', async () => {
  await using p = await peer();
  await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare');
  p.calls.retireIdle(60_000); // used just now: kept
  await p.calls.grant('releaseGrant', release, ANSWER_MS, 'release');
  assert.equal(p.streams.opened, 1);
  p.calls.retireIdle(0);
  await p.calls.grant('prepareRead', prepare(), ANSWER_MS, 'prepare');
  assert.equal(p.streams.opened, 2);
  assert.deepEqual(p.seen, { prepareRead: 2, releaseGrant: 1 });
});

test('a grant call without an answer times out; an unreachable peer is TRANSPORT_UNAVAILABLE', async () => {
  // a stream that takes the call and never answers (an overloaded or wedged peer)
  const silent = new grpc.Server();
  silent.addService(PeerService, {
    grantStream: (() => {}) as grpc.UntypedHandleCall,
  } as grpc.UntypedServiceImplementation);
  const port = await bindServer(silent, '127.0.0.1:0');
  const rpc = new PeerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const calls = new PeerCalls(rpc, 'silent');
    const late = await rejection(calls.grant('prepareRead', prepare(), 50, 'prepare'), KvError);
    assert.equal(late.code, 'TRANSPORT_TIMEOUT');
    assert.match(late.message, /^prepare: peer did not answer in time/);
    calls.close(new KvError('TRANSPORT_UNAVAILABLE', 'closed'));
  } finally {
    rpc.close();
    silent.forceShutdown();
  }
  const gone = new PeerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const err = await rejection(
      new PeerCalls(gone, 'gone').grant('prepareRead', prepare(), 60_000, 'prepare'),
      KvError,
    );
    assert.equal(err.code, 'TRANSPORT_UNAVAILABLE', err.message);
  } finally {
    gone.close();
  }
});
