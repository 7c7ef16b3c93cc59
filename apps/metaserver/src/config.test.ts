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
    maxBlocksPerNode: 16_777_216,
    maxIndexMemory: 4 * 1024 ** 3,
    maxConnectionIdleSecs: 300,
    etcdEndpoints: undefined,
    etcdPrefix: '/kvfabric',
    etcdLeaseTtlSecs: 5,
    etcdCa: undefined,
    etcdCert: undefined,
    etcdKey: undefined,
    advertiseAddr: '',
    replicaId: '',
    tlsCert: undefined,
    tlsKey: undefined,
    tlsCa: undefined,
    insecure: false,
    namespaces: undefined,
    logLevel: 'info',
  });
  const { config } = loadConfig(
    ['--node-stale-secs', '5', '--addr=127.0.0.1:0', '--max-index-memory', '512mib', '--max-blocks-per-node', '1000'],
    {
      KVFABRIC_TTL_MINUTES: '7',
      KVFABRIC_NODE_STALE_SECS: '9',
      KVFABRIC_MAX_CONNECTION_IDLE_SECS: '60',
    },
  );
  assert.deepEqual(
    [
      config.nodeStaleSecs,
      config.ttlMinutes,
      config.addr,
      config.maxIndexMemory,
      config.maxBlocksPerNode,
      config.maxConnectionIdleSecs,
    ],
    [5, 7, '127.0.0.1:0', 512 * 1024 ** 2, 1000, 60],
  );
});

test('every problem is reported at once, HA flags included', () => {
  assert.throws(
    () =>
      loadConfig(
        [
          '--node-stale-secs',
          '0',
          '--addr',
          'nope',
          '--etcd-endpoints',
          '127.0.0.1:2379,nohost',
          '--etcd-lease-ttl-secs',
          '0',
        ],
        {},
      ),
    (err: unknown) => {
      assert.ok(err instanceof KvError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.equal(
        err.message,
        '--addr: expected host:port, got "nope"; --node-stale-secs: expected at least 1, got "0"; ' +
          '--etcd-endpoints: expected host:port[,host:port...], got "127.0.0.1:2379,nohost"; --etcd-lease-ttl-secs: expected at least 1, got "0"',
      );
      return true;
    },
  );
});

test('HA mode: endpoints, prefix, TTL and advertise address', () => {
  const { config, insecureEtcd } = loadConfig(
    [
      '--etcd-endpoints',
      'http://10.0.0.1:2379,10.0.0.2:2379,127.0.0.1:2379',
      '--etcd-lease-ttl-secs',
      '3',
      '--advertise-addr',
      '10.0.0.9:50056',
      '--insecure',
    ],
    { KVFABRIC_ETCD_PREFIX: '/prod/kvfabric' },
  );
  assert.deepEqual(
    [config.etcdEndpoints, config.etcdPrefix, config.etcdLeaseTtlSecs, config.advertiseAddr],
    [['http://10.0.0.1:2379', '10.0.0.2:2379', '127.0.0.1:2379'], '/prod/kvfabric', 3, '10.0.0.9:50056'],
  );
  // the endpoints main warns about at start: plaintext and off loopback, let through by --insecure
  assert.deepEqual(insecureEtcd, ['10.0.0.1:2379', '10.0.0.2:2379']);
  assert.throws(
    () => loadConfig(['--etcd-endpoints', '127.0.0.1:2379', '--addr', '0.0.0.0:50056'], {}),
    /^KvError: advertise-addr: required in HA mode when --addr listens on a wildcard address \(0\.0\.0\.0:50056\)/,
  );
  assert.doesNotThrow(() =>
    loadConfig(
      [
        '--etcd-endpoints',
        '127.0.0.1:2379',
        '--addr',
        '0.0.0.0:50056',
        '--advertise-addr',
        'ms-0.ms:50056',
        '--insecure',
      ],
      {},
    ),
  );
  assert.throws(() => loadConfig(['--etcd-prefix', 'a b'], {}), /--etcd-prefix: expected a key prefix like \/kvfabric/);
});

test('TLS flags: all three or none; plaintext only on loopback unless --insecure; a policy needs TLS', () => {
  assert.throws(
    () => loadConfig(['--tls-cert', 'c.pem'], {}),
    /tls-key, tls-ca: required with tls-cert \(mutual TLS needs a certificate, its key and the CA\)/,
  );
  assert.throws(
    () => loadConfig(['--addr', '10.0.0.5:50056'], {}),
    /addr: 10\.0\.0\.5:50056 is not a loopback address/,
  );
  assert.equal(loadConfig(['--addr', '10.0.0.5:50056', '--insecure'], {}).config.insecure, true);
  assert.doesNotThrow(() =>
    loadConfig(['--addr', '10.0.0.5:50056'], {
      KVFABRIC_TLS_CERT: 'c.pem',
      KVFABRIC_TLS_KEY: 'k.pem',
      KVFABRIC_TLS_CA: 'ca.pem',
    }),
  );
  assert.throws(() => loadConfig(['--namespaces', 'p.json'], {}), /namespaces: needs mutual TLS/);
});

test('etcd TLS flags: the CA turns TLS on, a client certificate comes with its key, endpoints agree with the CA', () => {
  const tls = loadConfig(
    ['--etcd-endpoints', 'https://10.0.0.1:2379,10.0.0.2:2379', '--etcd-cert', 'c.pem', '--etcd-key', 'k.pem'],
    { KVFABRIC_ETCD_CA: 'etcd-ca.pem' },
  );
  assert.deepEqual(
    [tls.config.etcdCa, tls.config.etcdCert, tls.config.etcdKey, tls.insecureEtcd],
    ['etcd-ca.pem', 'c.pem', 'k.pem', []],
  );
  assert.doesNotThrow(() => loadConfig(['--etcd-endpoints', 'https://10.0.0.1:2379', '--etcd-ca', 'ca.pem'], {}));
  const refused: [string[], RegExp][] = [
    [
      ['--etcd-endpoints', '10.0.0.1:2379'],
      /^KvError: etcd-endpoints: 10\.0\.0\.1:2379 is not a loopback address; give --etcd-ca .* or --insecure to talk plaintext to etcd across the network anyway$/,
    ],
    [
      ['--etcd-endpoints', 'https://10.0.0.1:2379'],
      /etcd-endpoints: "https:\/\/10\.0\.0\.1:2379" is https:\/\/ but --etcd-ca is not given/,
    ],
    [
      ['--etcd-endpoints', 'http://127.0.0.1:2379', '--etcd-ca', 'ca.pem'],
      /etcd-endpoints: "http:\/\/127\.0\.0\.1:2379" is http:\/\/ but --etcd-ca turns on TLS to etcd; write https:\/\/127\.0\.0\.1:2379/,
    ],
    [
      ['--etcd-endpoints', '127.0.0.1:2379', '--etcd-ca', 'ca.pem', '--etcd-cert', 'c.pem'],
      /etcd-key: required with etcd-cert/,
    ],
    [
      ['--etcd-endpoints', '127.0.0.1:2379', '--etcd-cert', 'c.pem', '--etcd-key', 'k.pem'],
      /etcd-ca: required with etcd-cert and etcd-key/,
    ],
    [['--etcd-ca', 'ca.pem'], /etcd-ca: only with --etcd-endpoints \(HA mode\)/],
  ];
  for (const [argv, message] of refused) assert.throws(() => loadConfig(argv, {}), message, argv.join(' '));
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
