import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNodeConfig } from './config.js';

test('flags, env fallback and defaults', () => {
  const { config } = parseNodeConfig(['--pool-size', '256mib', '--transport', 'tcp'], { KVFABRIC_LEASE_TTL_SECS: '5' });
  assert.equal(config.poolSize, 256 * 1024 * 1024);
  assert.equal(config.transport, 'tcp');
  assert.equal(config.leaseTtlSecs, 5);
  assert.equal(config.heartbeatIntervalSecs, 2);
  assert.equal(config.metaserverAddr, undefined);
});

test('every problem is reported together', () => {
  assert.throws(
    () => parseNodeConfig(['--pool-size', '16 gigs', '--transport', 'rdma', '--bogus', 'x'], {}),
    (err: Error) => {
      assert.match(err.message, /--bogus: unknown flag/);
      assert.match(err.message, /--pool-size: expected a size/);
      assert.match(err.message, /--transport: expected one of auto\|verbs\|tcp/);
      return true;
    },
  );
});

test('an etcd:// metaserver address: --etcd-* turn on TLS to etcd; plaintext off loopback needs --insecure', () => {
  const addr = 'etcd://127.0.0.1:2379,10.0.0.2:2379/kvf';
  const tls = parseNodeConfig(['--metaserver-addr', addr, '--etcd-ca', 'ca.pem'], {
    KVFABRIC_ETCD_CERT: 'c.pem',
    KVFABRIC_ETCD_KEY: 'k.pem',
  });
  assert.deepEqual(
    [tls.config.etcdCa, tls.config.etcdCert, tls.config.etcdKey, tls.insecureEtcd],
    ['ca.pem', 'c.pem', 'k.pem', []],
  );
  assert.throws(
    () => parseNodeConfig(['--metaserver-addr', addr], {}),
    /metaserver-addr: 10\.0\.0\.2:2379 is not a loopback address; give --etcd-ca/,
  );
  assert.deepEqual(parseNodeConfig(['--metaserver-addr', addr, '--insecure'], {}).insecureEtcd, ['10.0.0.2:2379']);
  assert.throws(
    () => parseNodeConfig(['--metaserver-addr', '127.0.0.1:50056', '--etcd-ca', 'ca.pem'], {}),
    /etcd-ca: only with an etcd:\/\/host:port\[\/prefix\] --metaserver-addr/,
  );
});

test('the SSD tier flags: paths, capacity per path, write mode, wipe; bad values name the flag', () => {
  const { config } = parseNodeConfig(
    ['--ssd-path', '/nvme0/kvf,/nvme1/kvf', '--ssd-capacity', '2tb', '--ssd-write-mode', 'through', '--ssd-wipe'],
    {},
  );
  assert.deepEqual(config.ssdPath, ['/nvme0/kvf', '/nvme1/kvf']);
  assert.ok(config.ssdCapacity! >= 2 * 1000 ** 4);
  assert.deepEqual([config.ssdWriteMode, config.ssdWipe], ['through', true]);
  assert.equal(
    parseNodeConfig([], { KVFABRIC_SSD_PATH: '/d', KVFABRIC_SSD_CAPACITY: '1gib' }).config.ssdWriteMode,
    'evict',
  );
  const refused = (argv: string[], pattern: RegExp) => assert.throws(() => parseNodeConfig(argv, {}), pattern);
  refused(['--ssd-path', '/d'], /ssd-capacity: required with --ssd-path/);
  refused(['--ssd-capacity', '1gib'], /ssd-capacity: needs --ssd-path/);
  refused(['--ssd-wipe'], /ssd-wipe: needs --ssd-path/);
  refused(['--ssd-path', 'rel/dir', '--ssd-capacity', '1gib'], /ssd-path: expected absolute directory paths/);
  refused(['--ssd-path', '/a,/a', '--ssd-capacity', '1gib'], /ssd-path: a directory is named twice/);
  refused(['--ssd-path', '/a', '--ssd-capacity', '1 lot'], /ssd-capacity: expected a size/);
  refused(['--ssd-path', '/a', '--ssd-capacity', '1mib'], /ssd-capacity/);
  refused(
    ['--ssd-path', '/a', '--ssd-capacity', '1gib', '--ssd-write-mode', 'back'],
    /ssd-write-mode: expected one of evict\|through/,
  );
});
