// What the services' property-based security tests share (fast-check): a check that fails the test with its seed and
// a short counterexample, and the "arbitrary bytes as a whole message" property, which holds against any gRPC server.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';

/** Runs of each property: KVFABRIC_FUZZ_RUNS, else `fallback`. */
export function fuzzRuns(fallback: number): number {
  return Number(process.env.KVFABRIC_FUZZ_RUNS ?? fallback);
}

/** fc.check over `runs` runs; on failure, fails the test with the seed and a cut-short counterexample. */
export async function holds<T>(property: fc.IAsyncPropertyWithHooks<T>, runs: number): Promise<void> {
  const out = await fc.check(property, { numRuns: runs });
  if (!out.failed) return;
  const example = JSON.stringify(out.counterexample, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  assert.fail(
    `property failed after ${out.numRuns} runs (seed ${out.seed}, path ${out.counterexamplePath}): ` +
      `${String((out.errorInstance as Error | undefined)?.message ?? out.errorInstance).slice(0, 500)}; ` +
      `counterexample ${example.slice(0, 500)}${example.length > 500 ? `... (${example.length} characters)` : ''}`,
  );
}

/**
 * Arbitrary bytes (up to 2 KiB) as the whole request of each unary method (`paths`) of the server at `addr`: every
 * call is refused or answered, never left unanswered (a message that does not decode is grpc-js's INTERNAL, "failed
 * to parse"; UNAVAILABLE would be a dead server).
 */
export async function rawMessagesAnswered(
  addr: string,
  paths: string[],
  runs: number,
  options: grpc.ChannelOptions = {},
): Promise<void> {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure(), options);
  try {
    await holds(
      fc.asyncProperty(fc.constantFrom(...paths), fc.uint8Array({ maxLength: 2048 }), async (path, bytes) => {
        const code = await new Promise<grpc.status>((resolve) =>
          client.makeUnaryRequest(
            path,
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from(bytes),
            { deadline: Date.now() + 30_000 },
            (err) => resolve(err ? err.code : grpc.status.OK),
          ),
        );
        assert.notEqual(code, grpc.status.UNAVAILABLE, `${path}: the server stopped answering`);
      }),
      runs,
    );
  } finally {
    client.close();
  }
}
