// The native lease table used from several threads at once, as the gRPC path and the engines' command rings use
// it: builds test/threads/lease_table_threads.cc with ThreadSanitizer (g++, as the addon's build needs) and runs it.
// It fails on any data race TSan sees, on a consumer handed a slot that is not pinned, or on pins left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../src/', import.meta.url));
const driver = fileURLToPath(new URL('threads/lease_table_threads.cc', import.meta.url));
/** The sanitizer runtimes must not see the ASan run's preload (test/asan.sh). */
const env = { ...process.env, LD_PRELOAD: '' };

test('leases created, consumed, released, swept and dropped on five threads while blocks are evicted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvfabric-lease-threads-'));
  try {
    const bin = join(dir, 'lease_table_threads');
    const sources = ['lease_table.cc', 'block_index.cc', 'key_table.cc'].map((f) => join(src, f));
    const cc = spawnSync(
      'g++',
      [
        '-std=c++17',
        '-O1',
        '-g',
        '-fsanitize=thread',
        `-I${src}`,
        driver,
        ...sources,
        '-lxxhash',
        '-pthread',
        '-o',
        bin,
      ],
      { env, encoding: 'utf8', timeout: 300_000 },
    );
    assert.equal(cc.status, 0, `g++ failed:\n${cc.stderr}`);
    let run = spawnSync(bin, [], { env, encoding: 'utf8', timeout: 300_000 });
    // ThreadSanitizer cannot start under some kernels' address-space randomization; run it without.
    if (run.status !== 0 && /unexpected memory mapping/.test(run.stderr))
      run = spawnSync('setarch', [process.arch === 'arm64' ? 'aarch64' : 'x86_64', '-R', bin], {
        env,
        encoding: 'utf8',
        timeout: 300_000,
      });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.doesNotMatch(run.stderr, /ThreadSanitizer/);
    const m = /loads=(\d+) bad=0 pinned=0 created=(\d+)/.exec(run.stdout);
    assert.ok(m, run.stdout);
    assert.ok(Number(m[1]) > 1000 && Number(m[2]) > 10_000, run.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
