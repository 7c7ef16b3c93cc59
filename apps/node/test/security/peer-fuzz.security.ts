// Property-based fuzzing of a node's Peer GrantStream against a real node process (fast-check): items with arbitrary
// field values (node ids, sessions (arbitrary, or the live one of a handshake), namespaces, malformed hash lists and
// release lists, missing calls) mixed on one stream. Every item must be answered, alone, with a grant or a clean
// refusal (a KvError code that is not INTERNAL, in a bounded message); the stream ends OK, and the node still grants
// a real reader its blocks afterwards. Bounded: a fixed number of runs, seeded (the seed is printed on failure).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type { GrantStreamRequest, GrantStreamResponse } from '@kvfabric/proto';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { engine, freshHashes, saveBlocks } from '../pull-helpers.js';
import { RawReader } from '../raw-reader.js';

const RUNS = Number(process.env.KVFABRIC_FUZZ_RUNS ?? 150);
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
const item = fc.record({
  id: fc.nat(),
  call: fc.oneof(
    fc.constant(undefined),
    fc
      .record({ nodeId: text, session, namespace: text, hashes: hashList, releaseGrantIds: bytes(16 * 70) })
      .map((value) => ({ $case: 'prepareRead', value })),
    fc.record({ nodeId: text, session, grantId: bytes(40) }).map((value) => ({ $case: 'releaseGrant', value })),
  ),
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
  const out = await fc.check(
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
    { numRuns: RUNS },
  );
  if (out.failed) {
    const msg = String((out.errorInstance as Error | undefined)?.message ?? out.errorInstance).slice(0, 500);
    assert.fail(`property failed after ${out.numRuns} runs (seed ${out.seed}, path ${out.counterexamplePath}): ${msg}`);
  }
  const g = await reader.prepareRead(NS, saved);
  assert.equal(g.blocks, saved.length, 'the node still grants a real reader');
  await reader.release(g.id);
});
