// kvfabric-node on a host whose libibverbs is the fault-injecting stand-in (native/test/fake-verbs): an mlx5-like
// device with an active port. The node must start on verbs with --transport auto (and say why), take the RoCE v2
// GID, and refuse or fall back, saying why, when the device has no memory windows. The pulls themselves over verbs
// run on rxe in `npm run test:rdma`; the stand-in lives in one process and cannot join two nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, startNode } from '@kvfabric/testkit';

const fake = fileURLToPath(new URL('../../../native/build/fake-verbs', import.meta.url));
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  LD_LIBRARY_PATH: [fake, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
  KVF_FAKE_VERBS_DEVICES: 'mlx5_0',
  ...extra,
});

test('the stand-in is built', () =>
  assert.ok(existsSync(join(fake, 'libibverbs.so.1')), 'bash native/test/fake-verbs/build.sh'));

test('--transport auto on an RDMA host: verbs, with the reason, the RoCE v2 GID at index 3 and memory windows', async () => {
  await using node = await startNode({ transport: 'auto', poolSize: '16mib', env: env() });
  await node.proc.waitForLog(/"msg":"transport: verbs \(auto: RDMA devices with an active port: mlx5_0\)"/, 30_000);
  const ready = node.proc.logLines().find((l) => l.msg === 'verbs: mlx5_0 ready') as
    Record<string, unknown> | undefined;
  assert.ok(ready, node.proc.tail());
  assert.equal(ready.gidIndex, 3);
  assert.equal(ready.gidType, 'RoCE v2');
  assert.equal(ready.gid, '00000000000000000000ffff0a580001');
  assert.equal(ready.memoryWindows, true);
  assert.equal(ready.readDepth, 16);
});

test('a device without memory windows: auto falls back to tcp and says why; verbs is refused unless the pool rkey is allowed', async () => {
  {
    await using node = await startNode({
      transport: 'auto',
      poolSize: '16mib',
      env: env({ KVF_FAKE_VERBS_NO_MW: '1' }),
    });
    await node.proc.waitForLog(
      /"msg":"transport: tcp \(auto: verbs unavailable \(RDMA devices mlx5_0 lack type-2 memory windows/,
      30_000,
    );
  }
  const refused = spawnSync(
    process.execPath,
    [BIN.node, '--transport', 'verbs', '--pool-size', '16mib', '--engine-socket', '/nonexistent/kvf.sock'],
    {
      env: { ...process.env, ...env({ KVF_FAKE_VERBS_NO_MW: '1' }) },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.notEqual(refused.status, 0);
  assert.match(
    refused.stdout + refused.stderr,
    /verbs requested but unavailable: RDMA devices mlx5_0 lack type-2 memory windows/,
  );
  {
    await using node = await startNode({
      transport: 'verbs',
      poolSize: '16mib',
      args: ['--verbs-allow-pool-rkey'],
      env: env({ KVF_FAKE_VERBS_NO_MW: '1' }),
    });
    await node.proc.waitForLog(/"msg":"verbs: no type-2 memory windows: peers read through the pool-wide rkey/, 30_000);
  }
});
