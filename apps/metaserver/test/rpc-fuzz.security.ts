// Property-based fuzzing of the metaserver's RPCs against a real process (fast-check): arbitrary field values
// (empty, huge, non-ASCII, out-of-range numbers, malformed hash lists) and arbitrary bytes as whole messages. Every
// answer must be a success or a clean refusal (a status naming what was wrong, in a bounded message), never
// INTERNAL/UNKNOWN; the process stays up and keeps serving real requests. Bounded: a fixed number of runs per
// property, seeded (the seed is printed on failure to replay it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { MetaserverClient, MetaserverService, TransportKind } from '@kvfabric/proto';
import { CHANNEL_OPTIONS } from '@kvfabric/common/rpc';
import { fuzzRuns, holds, rawMessagesAnswered, startMetaserver, type MetaserverHandle } from '@kvfabric/testkit';

const RUNS = fuzzRuns(300);
const CLEAN = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.NOT_FOUND,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.PERMISSION_DENIED,
]);

type RawClient = InstanceType<typeof MetaserverClient>;
type Call = (
  req: unknown,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => unknown;

let ms: MetaserverHandle;
let raw: RawClient;

before(async () => {
  ms = await startMetaserver({ logLevel: 'warn' });
  raw = new MetaserverClient(ms.addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
});

after(async () => {
  raw?.close();
  await ms?.stop();
});

/** The status of one call (OK or the error's), with the error's details. */
function statusOf(method: string, req: unknown): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    // a deadline turns a hung channel (an answer too large to send) into a failure of the property, not of the run
    (raw[method as keyof RawClient] as unknown as Call).call(raw, req, { deadline: Date.now() + 30_000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', ' ', 'a b', '../../etc', 'x'.repeat(129), 'y'.repeat(200_000), '\u0000', 'ns/ok'),
);
const addr = fc.oneof(
  text,
  fc
    .tuple(fc.constantFrom('127.0.0.1', '[::1]', 'host', '', '999.1.1.1'), fc.integer({ min: -5, max: 70_000 }))
    .map(([h, p]) => `${h}:${p}`),
);
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const hashList = fc.oneof(
  fc.record({ packed: fc.uint8Array({ maxLength: 4096 }), hashLen: fc.integer({ min: 0, max: 4096 }) }),
  fc
    .integer({ min: 1, max: 64 })
    .chain((len) =>
      fc.record({ packed: fc.uint8Array({ minLength: len, maxLength: len * 64 }), hashLen: fc.constant(len) }),
    ),
  fc.constant(undefined),
);
const transports = fc.array(fc.oneof(fc.constantFrom(TransportKind.TRANSPORT_KIND_TCP), fc.integer()), {
  maxLength: 20,
});
const stats = fc.option(
  fc.record({ poolCapacityBytes: u64, poolUsedBytes: u64, blocks: u64, ssdCapacityBytes: u64, ssdUsedBytes: u64 }),
  { nil: undefined },
);

const requests: Record<string, fc.Arbitrary<unknown>> = {
  heartbeat: fc.record({ nodeId: text, addr, transports, stats }),
  unregister: fc.record({ nodeId: text }),
  insertBlocks: fc.record({ nodeId: text, namespace: text, hashes: hashList, tier: fc.integer({ min: -1, max: 8 }) }),
  removeBlocks: fc.record({ nodeId: text, namespace: text, hashes: hashList }),
  queryPrefix: fc.record({ namespace: text, hashes: hashList, excludeNodeId: text }),
  queryOwners: fc.record({ namespace: text, hashes: hashList }),
  listNodes: fc.constant({}),
  listNamespaces: fc.constant({}),
  getStats: fc.constant({}),
};

test('arbitrary field values: every answer is a success or a clean, bounded refusal', async () => {
  const unary = Object.entries(MetaserverService).filter(([, m]) => !m.requestStream && !m.responseStream);
  assert.deepEqual(unary.map(([name]) => name).sort(), Object.keys(requests).sort(), 'a new RPC needs a generator');
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...Object.keys(requests)).chain((m) => fc.tuple(fc.constant(m), requests[m]!)),
      async ([method, req]) => {
        const { code, details } = await statusOf(method, req);
        assert.ok(CLEAN.has(code), `${method}: ${grpc.status[code]} ${details.slice(0, 300)}`);
        assert.ok(details.length <= 4096, `${method}: a ${details.length}-character error message`);
      },
    ),
    { numRuns: RUNS },
  );
  await assert.doesNotReject(statusOf('getStats', {}).then((s) => assert.equal(s.code, grpc.status.OK)));
});

/** The items of the pipelined streams: each stream's requests, with arbitrary fields. */
const streamItems: Record<string, fc.Arbitrary<unknown>> = {
  queryPrefixStream: fc.record({ id: fc.nat(), namespace: text, hashes: hashList, excludeNodeId: text }),
  updateBlocksStream: fc.record({
    id: fc.nat(),
    update: fc.oneof(
      fc.constant(undefined),
      requests.insertBlocks!.map((value) => ({ $case: 'insert', value })),
      requests.removeBlocks!.map((value) => ({ $case: 'remove', value })),
    ),
  }),
};

/** One stream carrying `items`: every answer, and how the stream ended. */
function streamOf(method: string, items: unknown[]): Promise<{ answers: unknown[]; code: grpc.status }> {
  return new Promise((resolve) => {
    const call = (
      raw[method as keyof RawClient] as unknown as (o: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, unknown>
    ).call(raw, { deadline: Date.now() + 60_000 });
    const answers: unknown[] = [];
    call.on('data', (a: unknown) => answers.push(a));
    call.on('error', (err: grpc.ServiceError) => resolve({ answers, code: err.code }));
    call.on('status', (st: grpc.StatusObject) => st.code === grpc.status.OK && resolve({ answers, code: st.code }));
    for (const item of items) call.write(item);
    call.end();
  });
}

test('arbitrary stream items: each is answered or refused alone, never INTERNAL, and the stream ends OK', async () => {
  const streams = Object.entries(MetaserverService).filter(([, m]) => m.requestStream && m.responseStream);
  assert.deepEqual(
    streams.map(([name]) => name).sort(),
    Object.keys(streamItems).sort(),
    'a new stream needs a generator',
  );
  await holds(
    fc.asyncProperty(
      fc
        .constantFrom(...Object.keys(streamItems))
        .chain((m) => fc.tuple(fc.constant(m), fc.array(streamItems[m]!, { minLength: 1, maxLength: 8 }))),
      async ([method, items]) => {
        const { answers, code } = await streamOf(method, items);
        assert.equal(code, grpc.status.OK, `${method}: the stream ended with ${grpc.status[code]}`);
        assert.equal(answers.length, items.length, `${method}: ${answers.length} answers to ${items.length} items`);
        for (const a of answers as {
          error?: { code: string; message: string };
          answer?: { $case: string; value: { code: string; message: string } };
        }[]) {
          const err = a.error ?? (a.answer?.$case === 'error' ? a.answer.value : undefined);
          if (!err) continue;
          assert.notEqual(err.code, 'INTERNAL', `${method}: ${err.message.slice(0, 300)}`);
          assert.ok(err.message.length <= 4096, `${method}: a ${err.message.length}-character error message`);
        }
      },
    ),
    RUNS,
  );
  await assert.doesNotReject(statusOf('getStats', {}).then((s) => assert.equal(s.code, grpc.status.OK)));
});

test('arbitrary bytes as a whole message: refused or answered, the server keeps serving', async () => {
  const paths = Object.values(MetaserverService)
    .filter((m) => !m.requestStream)
    .map((m) => m.path);
  await rawMessagesAnswered(ms.addr, paths, RUNS, CHANNEL_OPTIONS);
  const health = await fetch(`http://${ms.httpAddr}/health`);
  assert.equal(health.status, 200);
});
