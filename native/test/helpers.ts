// Small helpers the native transport tests share.
import assert from 'node:assert/strict';

/** Awaits `p` and checks it rejects with `code` (and a message matching `pattern`); shared by the transport tests. */
export async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  pattern?: RegExp,
): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as Error & { code: string };
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected a rejection with ${code}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds; generous deadline (tests never assume a machine's speed). */
export async function until(what: string, cond: () => boolean, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A fixed grant id for tests (the node draws random ones; the transport takes any 16 bytes). */
export const gid = (n: number): string => n.toString(16).padStart(32, '0');
