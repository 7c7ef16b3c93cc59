import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, envName, usage, type FlagSpecs } from './config.js';
import { KvError } from './errors.js';

const specs = {
  'pool-size': { kind: 'size', description: 'pool', default: 1024 },
  addr: { kind: 'string', description: 'addr', required: true },
  'node-stale-secs': { kind: 'int', description: 'stale', default: 30, min: 1 },
  transport: { kind: 'enum', description: 't', choices: ['auto', 'tcp', 'verbs'], default: 'auto' },
  hugepages: { kind: 'bool', description: 'h', default: false },
  nics: { kind: 'list', description: 'n' },
} as const satisfies FlagSpecs;

test('flags win over env, env over defaults', () => {
  const { config } = parseConfig(specs, ['--addr', '1.2.3.4:5', '--hugepages', '--nics=mlx5_0,mlx5_1'], {
    KVFABRIC_POOL_SIZE: '2gib',
    KVFABRIC_ADDR: 'ignored:1',
  });
  assert.deepEqual(config, {
    poolSize: 2 * 1024 ** 3,
    addr: '1.2.3.4:5',
    nodeStaleSecs: 30,
    transport: 'auto',
    hugepages: true,
    nics: ['mlx5_0', 'mlx5_1'],
  });
});

test('every problem is reported together', () => {
  assert.throws(
    () =>
      parseConfig(specs, ['--pool-size', '16 gigs', '--bogus', '--node-stale-secs', '0', '--transport', 'rdma'], {}),
    (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.equal(
        err.message,
        '--bogus: unknown flag; --pool-size: expected a size like 16gb or 512mib, got "16 gigs"; ' +
          '--addr: required (or set KVFABRIC_ADDR); --node-stale-secs: expected at least 1, got "0"; ' +
          '--transport: expected one of auto|tcp|verbs, got "rdma"',
      );
      return true;
    },
  );
});

test('env names derive from flag names; usage lists them', () => {
  assert.equal(envName('pool-size'), 'KVFABRIC_POOL_SIZE');
  assert.match(
    usage('kvfabric-node', 'x', specs),
    /--pool-size <size> {2}pool \(default 1024\) {2}\[env KVFABRIC_POOL_SIZE\]/,
  );
  const { help, positionals } = parseConfig(specs, ['locate', '--help', '--addr', 'a:1'], {});
  assert.equal(help, true);
  assert.deepEqual(positionals, ['locate']);
});

test('--no-flag sets a boolean false', () => {
  const { config } = parseConfig(specs, ['--addr', 'a:1', '--no-hugepages'], { KVFABRIC_HUGEPAGES: 'true' });
  assert.equal(config.hugepages, false);
});
