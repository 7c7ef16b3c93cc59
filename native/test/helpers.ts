// Small helpers the native transport tests share.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/**
 * A fresh directory on a filesystem that does direct I/O (the SSD tier's tests): under KVFABRIC_SSD_TEST_DIR,
 * /var/tmp or the repository, whichever comes first that is not tmpfs (CI machines may mount /tmp as tmpfs).
 */
export function ssdTestDir(prefix = 'kvf-ssd-'): { path: string; [Symbol.dispose](): void } {
  const TMPFS_MAGIC = 0x01021994;
  const here = fileURLToPath(new URL('..', import.meta.url));
  const bases = [process.env.KVFABRIC_SSD_TEST_DIR, '/var/tmp', here].filter((b): b is string => !!b);
  const base = bases.find((b) => existsSync(b) && statfsSync(b).type !== TMPFS_MAGIC);
  if (!base) assert.fail(`no directory off tmpfs among ${bases.join(', ')} for the SSD tests`);
  const path = mkdtempSync(join(base, prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}
