import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { KvError } from '@kvfabric/common';
import { BIN } from '@kvfabric/testkit';
import { loadConfig } from './config.js';

test('defaults, flags, and env fallback', () => {
  assert.deepEqual(loadConfig([], {}).config, {
    addr: '127.0.0.1:50056',
    httpAddr: '127.0.0.1:9156',
    nodeStaleSecs: 30,
    ttlMinutes: 120,
    sweepIntervalSecs: 10,
    etcdEndpoints: undefined,
    logLevel: 'info',
  });
  const { config } = loadConfig(['--node-stale-secs', '5', '--addr=127.0.0.1:0'], { KVFABRIC_TTL_MINUTES: '7', KVFABRIC_NODE_STALE_SECS: '9' });
  assert.deepEqual([config.nodeStaleSecs, config.ttlMinutes, config.addr], [5, 7, '127.0.0.1:0']);
});

test('every problem is reported at once, HA mode included', () => {
  assert.throws(
    () => loadConfig(['--node-stale-secs', '0', '--addr', 'nope', '--etcd-endpoints', '127.0.0.1:2379'], {}),
    (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.equal(
        err.message,
        '--addr: expected host:port, got "nope"; --node-stale-secs: expected at least 1, got "0"; ' +
          '--etcd-endpoints: HA mode arrives with the etcd issue; run without it for a single metaserver',
      );
      return true;
    },
  );
  assert.throws(() => loadConfig(['--etcd-endpoints', '127.0.0.1:2379'], {}), /HA mode arrives with the etcd issue/);
});

test('the binary prints usage for --help and exits 2 with one line on bad flags', () => {
  const help = spawnSync(process.execPath, [BIN.metaserver, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: kvfabric-metaserver \[flags\]/);
  assert.match(help.stdout, /--node-stale-secs <int> .*\(default 30\)\s+\[env KVFABRIC_NODE_STALE_SECS\]/);
  const bad = spawnSync(process.execPath, [BIN.metaserver, '--ttl-minutes', 'soon'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'kvfabric-metaserver: --ttl-minutes: expected an integer, got "soon"\n');
  assert.equal(bad.stdout, '');
});
