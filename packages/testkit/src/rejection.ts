// Asserting how a promise fails: with an error of one class, returned for the test to look at.
import assert from 'node:assert/strict';

/** The error `p` rejects with, which must be an instance of `type`; fails the test when `p` resolves. */
export async function rejection<E extends Error>(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name}, the promise resolved`);
}
