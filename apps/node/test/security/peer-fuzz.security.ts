// Property-based fuzzing of a node's Peer service against a real node process (fast-check), what any host that
// reaches the peer port can send: unary Handshake / PrepareRead / ReleaseGrant calls and GrantStream items with
// arbitrary field values (node ids, sessions (arbitrary, or the live one of a handshake), namespaces, transport
// material, malformed hash lists and release lists, missing calls), and arbitrary bytes as whole messages. Every call
// and item must get a grant or a clean refusal (never INTERNAL/UNKNOWN, a bounded message), each stream item alone,
// the stream ending OK; the node still grants a real reader its blocks afterwards. Bounded: a fixed number of runs,
// seeded (the seed is printed on failure).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { PeerService, type GrantStreamRequest, type GrantStreamResponse } from '@kvfabric/proto';
import { CHANNEL_OPTIONS } from '@kvfabric/common/rpc';
import { fuzzRuns, holds, rawMessagesAnswered, startNode, type NodeHandle } from '@kvfabric/testkit';
import { engine, freshHashes, saveBlocks } from '../pull-helpers.js';
import { RawReader } from '../raw-reader.js';

const RUNS = fuzzRuns(150);
/** What a clean refusal of a unary call may be. */
const CLEAN = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.NOT_FOUND,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAVAILABLE, // a transport the node does not speak, or material it can not use
]);
const NS = 'fuzz/peer';

let node: NodeHandle;
let reader: RawReader;
const saved = freshHashes(8);

before(async () => {
  node = await startNode({ poolSize: '64mib' });
  await using e = await engine(node, NS);
  await saveBlocks(e, saved);
  reader = await RawReader.handshake(node, 'fuzzer');
});

after(async () => {
  reader?.close();
  await node?.[Symbol.asyncDispose]();
});

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', 'fuzzer', NS, '../x', 'y'.repeat(100_000), '\u0000'),
);
const session = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constant(undefined));
const hashList = fc.oneof(
  fc.record({ packed: fc.uint8Array({ maxLength: 4096 }), hashLen: fc.integer({ min: 0, max: 4096 }) }),
  fc.constant({ packed: Buffer.concat(saved), hashLen: 32 }),
  fc.constant(undefined),
);
const bytes = (max: number) => fc.oneof(fc.uint8Array({ maxLength: max }), fc.constant(new Uint8Array(16)));
const prepareRead = fc.record({
  nodeId: text,
  session,
  namespace: text,
  hashes: hashList,
  releaseGrantIds: bytes(16 * 70),
});
const releaseGrant = fc.record({ nodeId: text, session, grantId: bytes(40) });
const item = fc.record({
  id: fc.nat(),
  call: fc.oneof(
    fc.constant(undefined),
    prepareRead.map((value) => ({ $case: 'prepareRead', value })),
    releaseGrant.map((value) => ({ $case: 'releaseGrant', value })),
  ),
});
const calls: Record<string, fc.Arbitrary<object>> = {
  handshake: fc.record({
    nodeId: text,
    addr: text,
    transport: fc.oneof(fc.constantFrom(0, 1, 2), fc.integer()),
    material: bytes(600),
  }),
  prepareRead,
  releaseGrant,
};

/** The status of one unary call (an unset session is the reader's live one), with the error's details. */
function statusOf(method: string, req: { session?: bigint }): Promise<{ code: grpc.status; details: string }> {
  if ('session' in req && req.session === undefined) req.session = reader.session;
  return new Promise((resolve) => {
    const fn = reader.rpc[method as 'prepareRead'] as unknown as (
      r: object,
      o: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null) => void,
    ) => void;
    fn.call(reader.rpc, req, { deadline: Date.now() + 30_000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

/** A real reader (a fresh handshake: a fuzzed one may have replaced the fuzzer's) is still granted the saved blocks. */
async function stillGrants(): Promise<void> {
  const checker = await RawReader.handshake(node, 'checker');
  try {
    const g = await checker.prepareRead(NS, saved);
    assert.equal(g.blocks, saved.length, 'the node still grants a real reader');
    await checker.release(g.id);
  } finally {
    checker.close();
  }
}

test('arbitrary unary Peer calls: every answer is a success or a clean, bounded refusal', async () => {
  const unary = Object.entries(PeerService).filter(([, m]) => !m.requestStream && !m.responseStream);
  assert.deepEqual(unary.map(([name]) => name).sort(), Object.keys(calls).sort(), 'a new RPC needs a generator');
  await holds(
    fc.asyncProperty(
      fc.constantFrom(...Object.keys(calls)).chain((m) => fc.tuple(fc.constant(m), calls[m]!)),
      async ([method, req]) => {
        const { code, details } = await statusOf(method, req);
        assert.ok(CLEAN.has(code), `${method}: ${grpc.status[code]} ${details.slice(0, 300)}`);
        assert.ok(details.length <= 4096, `${method}: a ${details.length}-character error message`);
      },
    ),
    RUNS,
  );
  await stillGrants();
});

test('arbitrary bytes as a whole message: refused or answered, the node keeps serving', async () => {
  const paths = Object.values(PeerService)
    .filter((m) => !m.requestStream)
    .map((m) => m.path);
  await rawMessagesAnswered(node.addr, paths, RUNS, CHANNEL_OPTIONS);
  await stillGrants();
});

/** One stream carrying `items` (an unset session is the reader's live one): every answer, and how it ended. */
function streamOf(items: GrantStreamRequest[]): Promise<{ answers: GrantStreamResponse[]; code: grpc.status }> {
  return new Promise((resolve) => {
    const call = reader.rpc.grantStream({ deadline: Date.now() + 60_000 });
    const answers: GrantStreamResponse[] = [];
    call.on('data', (a: GrantStreamResponse) => answers.push(a));
    call.on('error', (err: grpc.ServiceError) => resolve({ answers, code: err.code }));
    call.on('status', (st: grpc.StatusObject) => st.code === grpc.status.OK && resolve({ answers, code: st.code }));
    for (const it of items) {
      const v = it.call?.value as { session?: bigint } | undefined;
      if (v && v.session === undefined) v.session = reader.session;
      call.write(it);
    }
    call.end();
  });
}

test('arbitrary GrantStream items: each is answered or refused alone, never INTERNAL, and the stream ends OK', async () => {
  await holds(
    fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 8 }), async (items) => {
      const { answers, code } = await streamOf(items as GrantStreamRequest[]);
      assert.equal(code, grpc.status.OK, `the stream ended with ${grpc.status[code]}`);
      assert.equal(answers.length, items.length, `${answers.length} answers to ${items.length} items`);
      for (const a of answers) {
        if (a.answer?.$case !== 'error') continue;
        assert.notEqual(a.answer.value.code, 'INTERNAL', a.answer.value.message.slice(0, 300));
        assert.ok(a.answer.value.message.length <= 4096, `a ${a.answer.value.message.length}-character message`);
      }
    }),
    RUNS,
  );
  await stillGrants();
});
