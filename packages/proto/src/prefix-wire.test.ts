// The hand-written QueryPrefix codecs against the generated ones: the same bytes for every message, the same
// message from every encoding the generated code accepts (fields out of order, unknown fields, unpacked enums),
// and a clean error (never a different answer) for bytes that are not a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MetaserverService,
  type NodePrefix,
  QueryPrefixRequest,
  QueryPrefixResponse,
  QueryPrefixStreamRequest,
  QueryPrefixStreamResponse,
} from './gen/kvfabric/v1/metaserver.js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { TransportKind } from './gen/kvfabric/v1/common.js';
import { MetaserverWire, queryPrefixStreamWire, queryPrefixWire } from './prefix-wire.js';

let seed = 0x2545f491;
const rand = (n: number) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const pick = <T>(xs: T[]): T => xs[rand(xs.length)]!;
const text = () => pick(['', 'a', 'bench/llama-3-8b/fp16/tp1/bs16', 'ns-é-✓', 'x'.repeat(200 + rand(200))]);
const u64 = () =>
  pick([0n, 1n, 127n, 128n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n + 12345n, 2n ** 64n - 1n, BigInt(rand(1e9))]);
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)));
const hashes = () =>
  rand(5) === 0 ? undefined : { packed: bytes(pick([0, 1, 32, 2048, 300])), hashLen: pick([0, 1, 32, 64, 300]) };
const node = (): NodePrefix => ({
  nodeId: text(),
  addr: text(),
  prefixLen: pick([0, 1, 64, 127, 128, 2 ** 31, 2 ** 32 - 1]),
  // enum values past the declared ones (a newer peer) and negative ones travel as int32
  transports: Array.from({ length: rand(4) }, () => pick([0, 1, 2, 300, -1]) as TransportKind),
  poolUsedBytes: u64(),
  poolCapacityBytes: u64(),
  ssdBlocks: pick([0, 1, 127, 128, 2 ** 31, 2 ** 32 - 1]),
});
const nodes = () => Array.from({ length: rand(5) }, node);

test('QueryPrefix: the same bytes as the generated encoders, and back', () => {
  for (let i = 0; i < 500; i++) {
    const req: QueryPrefixRequest = { namespace: text(), hashes: hashes(), excludeNodeId: text() };
    const wire = queryPrefixWire.encodeRequest(req);
    assert.deepEqual(wire, Buffer.from(QueryPrefixRequest.encode(req).finish()));
    assert.deepEqual(queryPrefixWire.decodeRequest(wire), QueryPrefixRequest.decode(wire));
    const res: QueryPrefixResponse = { epoch: u64(), nodes: nodes() };
    const out = queryPrefixWire.encodeResponse(res);
    assert.deepEqual(out, Buffer.from(QueryPrefixResponse.encode(res).finish()));
    assert.deepEqual(queryPrefixWire.decodeResponse(out), QueryPrefixResponse.decode(out));
  }
});

test('QueryPrefixStream: the same bytes as the generated encoders, and back (errors included)', () => {
  for (let i = 0; i < 500; i++) {
    const id = pick([0, 1, 2 ** 31, 2 ** 32 - 1]);
    const req: QueryPrefixStreamRequest = { id, namespace: text(), hashes: hashes(), excludeNodeId: text() };
    const wire = queryPrefixStreamWire.encodeRequest(req);
    assert.deepEqual(wire, Buffer.from(QueryPrefixStreamRequest.encode(req).finish()));
    assert.deepEqual(queryPrefixStreamWire.decodeRequest(wire), QueryPrefixStreamRequest.decode(wire));
    const error = rand(3) === 0 ? { code: text(), message: text() } : undefined;
    const res: QueryPrefixStreamResponse = { id, epoch: u64(), nodes: error ? [] : nodes(), error };
    const out = queryPrefixStreamWire.encodeResponse(res);
    assert.deepEqual(out, Buffer.from(QueryPrefixStreamResponse.encode(res).finish()));
    assert.deepEqual(queryPrefixStreamWire.decodeResponse(out), QueryPrefixStreamResponse.decode(out));
  }
});

test('decoders read what other encoders may send: any field order, unknown fields, unpacked enums, repeats', () => {
  const w = new BinaryWriter();
  w.uint32((9 << 3) | 0).uint64(5n); // unknown varint
  w.uint32((3 << 3) | 2).string('excluded');
  w.uint32((2 << 3) | 2)
    .fork()
    .uint32(16)
    .uint32(32)
    .uint32((7 << 3) | 5)
    .fixed32(1)
    .uint32(10)
    .bytes(bytes(64))
    .join();
  w.uint32((1 << 3) | 2).string('first');
  w.uint32((8 << 3) | 1).fixed64(7n); // unknown 64-bit
  w.uint32((1 << 3) | 2).string('second'); // the last one wins
  w.uint32((1 << 3) | 0).uint32(3); // a known field with another wire type is skipped
  const req = Buffer.from(w.finish());
  assert.deepEqual(queryPrefixWire.decodeRequest(req), QueryPrefixRequest.decode(req));
  assert.equal(queryPrefixWire.decodeRequest(req).namespace, 'second');

  const n = new BinaryWriter();
  n.uint32(48)
    .uint64(2n ** 60n)
    .uint32(32)
    .int32(2)
    .uint32(32)
    .int32(1)
    .uint32(24)
    .uint32(9)
    .uint32(10)
    .string('n1');
  n.uint32((11 << 3) | 2).bytes(bytes(3));
  const nodeBytes = n.finish();
  const r = new BinaryWriter();
  r.uint32(18)
    .bytes(nodeBytes)
    .uint32(8)
    .uint64(2n ** 64n - 2n)
    .uint32(18)
    .bytes(nodeBytes);
  const res = Buffer.from(r.finish());
  assert.deepEqual(queryPrefixWire.decodeResponse(res), QueryPrefixResponse.decode(res));
  assert.deepEqual(queryPrefixWire.decodeResponse(res).nodes[0]!.transports, [2, 1]);
});

test('bytes that are not a message: a clean error or the generated answer, never another one', () => {
  const decoders = [
    [queryPrefixWire.decodeRequest, (b: Buffer) => QueryPrefixRequest.decode(b)],
    [queryPrefixWire.decodeResponse, (b: Buffer) => QueryPrefixResponse.decode(b)],
    [queryPrefixStreamWire.decodeRequest, (b: Buffer) => QueryPrefixStreamRequest.decode(b)],
    [queryPrefixStreamWire.decodeResponse, (b: Buffer) => QueryPrefixStreamResponse.decode(b)],
  ] as const;
  const valid = queryPrefixStreamWire.encodeRequest({ id: 3, namespace: 'ns', hashes: hashes(), excludeNodeId: 'x' });
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    // random bytes, and a valid message cut short or with a byte changed
    const b =
      i % 3 === 0
        ? bytes(rand(40))
        : i % 3 === 1
          ? valid.subarray(0, rand(valid.length))
          : Buffer.from(valid).fill(rand(256), rand(valid.length), undefined);
    for (const [mine, generated] of decoders) {
      let got: unknown;
      try {
        got = mine(b);
      } catch (err) {
        assert.match((err as Error).message, /^invalid protobuf message: /);
        refused++;
        continue;
      }
      assert.deepEqual(got, generated(b), `bytes ${b.toString('hex')}`);
    }
  }
  assert.ok(refused > 0, 'some inputs are refused');
});

test('MetaserverWire: the generated service with the QueryPrefix codecs in place', () => {
  assert.equal(MetaserverWire.queryPrefix.path, '/kvfabric.v1.Metaserver/QueryPrefix');
  assert.equal(MetaserverWire.queryPrefix.responseSerialize, queryPrefixWire.encodeResponse);
  assert.equal(MetaserverWire.queryPrefixStream.requestDeserialize, queryPrefixStreamWire.decodeRequest);
  assert.equal(MetaserverWire.queryPrefixStream.requestStream, true);
  // every other method is the generated one (UpdateBlocksStream among them)
  assert.equal(MetaserverWire.updateBlocksStream, MetaserverService.updateBlocksStream);
  assert.equal(Object.keys(MetaserverWire).length, 11);
});
