// Runs test/fake-verbs/verbs.fake.ts against the fault-injecting stand-in for libibverbs, once per device profile,
// each in its own process: the fake must be first on LD_LIBRARY_PATH when the process starts, and its device
// profile is read once. The child's test output is shown when it fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const native = fileURLToPath(new URL('..', import.meta.url));
const fakeDir = join(native, 'build/fake-verbs');
const script = join(native, 'test/fake-verbs/verbs.fake.ts');

const PROFILES: Record<string, NodeJS.ProcessEnv> = {
  mlx5: { KVF_FAKE_VERBS_DEVICES: 'mlx5_0,mlx5_1,mlx5_2' },
  small: {
    KVF_FAKE_VERBS_DEVICES: 'mlx5_0,mlx5_1',
    KVF_FAKE_VERBS_MAX_RD_ATOM: '4',
    KVF_FAKE_VERBS_MAX_CQE: '64',
    KVF_FAKE_VERBS_MAX_QP_WR: '32',
    KVF_FAKE_VERBS_MAX_MSG: String(64 << 10),
  },
  nomw: { KVF_FAKE_VERBS_DEVICES: 'mlx5_0,mlx5_1', KVF_FAKE_VERBS_NO_MW: '1' },
  v1only: { KVF_FAKE_VERBS_DEVICES: 'mlx5_0,mlx5_1', KVF_FAKE_VERBS_GIDS: 'v1only' },
};

// The child is a test run of its own, not a subtest of this one.
const { NODE_TEST_CONTEXT: _, ...childEnv } = process.env;

for (const [profile, vars] of Object.entries(PROFILES)) {
  test(`verbs transport on the fake provider, profile ${profile}`, () => {
    assert.ok(
      existsSync(join(fakeDir, 'libibverbs.so.1')),
      `build the fake first: bash native/test/fake-verbs/build.sh`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'kvf-fake-verbs-'));
    try {
      const r = spawnSync(
        process.execPath,
        ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=spec', script],
        {
          cwd: native,
          encoding: 'utf8',
          timeout: 170_000,
          env: {
            ...childEnv,
            ...vars,
            KVF_FAKE_PROFILE: profile,
            KVF_FAKE_VERBS_CONTROL: join(dir, 'control'),
            LD_LIBRARY_PATH: [fakeDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
          },
        },
      );
      const out = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, `profile ${profile} failed:\n${out}`);
      assert.match(out, /ℹ fail 0/);
      assert.doesNotMatch(out, /ℹ pass 0\b/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
