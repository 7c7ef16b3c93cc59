// Runs test/fake-cuda/cuda.fake.ts against the CUDA driver stand-in in a process of its own: the stand-in must be
// first on LD_LIBRARY_PATH when the process starts. The child's test output is shown when it fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const native = fileURLToPath(new URL('..', import.meta.url));
const fakeDir = join(native, 'build/fake-cuda');
const script = join(native, 'test/fake-cuda/cuda.fake.ts');

// The child is a test run of its own, not a subtest of this one.
const { NODE_TEST_CONTEXT: _, ...childEnv } = process.env;

test('CUDA IPC regions on the CUDA driver stand-in', () => {
  assert.ok(existsSync(join(fakeDir, 'libcuda.so.1')), `build the stand-in first: bash native/test/fake-cuda/build.sh`);
  const dir = mkdtempSync('/dev/shm/kvf-cuda-');
  try {
    const r = spawnSync(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=spec', script],
      {
        cwd: native,
        encoding: 'utf8',
        timeout: 120_000,
        env: {
          ...childEnv,
          KVF_FAKE_CUDA_DIR: dir,
          KVF_FAKE_CUDA_FAIL_FILE: join(dir, 'fail'),
          LD_LIBRARY_PATH: [fakeDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
        },
      },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `failed:\n${out}`);
    assert.match(out, /ℹ fail 0/);
    assert.doesNotMatch(out, /ℹ pass 0\b/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
