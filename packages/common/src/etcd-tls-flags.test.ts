// etcd endpoints against the TLS choice and the loopback rule; the flag combinations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkEtcdEndpoints, etcdTlsRequested, parseEtcdEndpoint } from './etcd-tls-flags.js';

test('endpoints: host:port, http:// or https://, a trailing slash, IPv6; anything else names the field', () => {
  assert.deepEqual(parseEtcdEndpoint('HTTPS://etcd-0.etcd:2379/', 'etcd-endpoints'), {
    scheme: 'https',
    hostPort: 'etcd-0.etcd:2379',
  });
  assert.deepEqual(parseEtcdEndpoint('[::1]:2379', 'f'), { scheme: undefined, hostPort: '[::1]:2379' });
  assert.deepEqual(parseEtcdEndpoint('http://127.0.0.1:2379', 'f'), { scheme: 'http', hostPort: '127.0.0.1:2379' });
  for (const bad of ['nohost', 'https://h:0', 'h:99999', 'ftp://h:1', 'https://h:1/path']) {
    assert.throws(
      () => parseEtcdEndpoint(bad, 'etcd-endpoints'),
      new RegExp(
        `^KvError: etcd-endpoints: expected host:port or https://host:port, got "${bad.replace(/[/.]/g, '\\$&')}"$`,
      ),
      bad,
    );
  }
  // a hostile endpoint is echoed cut short, never whole
  const huge = `${'a'.repeat(1 << 20)}:2379`;
  assert.throws(
    () => parseEtcdEndpoint(huge, 'etcd-endpoints'),
    (err: Error) => err.message.length < 200 && err.message.includes(`(${huge.length} characters)`),
  );
});

test('the loopback rule: plaintext off loopback only with insecure, reported back for the warning', () => {
  const loopback = ['127.0.0.1:2379', 'localhost:2379', '[::1]:2379', 'http://127.0.0.2:2379'];
  assert.deepEqual(checkEtcdEndpoints(loopback, false, false, 'etcd-endpoints'), []);
  assert.throws(
    () => checkEtcdEndpoints(['127.0.0.1:2379', 'etcd-0:2379'], false, false, 'etcd-endpoints'),
    /^KvError: etcd-endpoints: etcd-0:2379 is not a loopback address; give --etcd-ca \(and --etcd-cert, --etcd-key when etcd checks client certificates\) for TLS to etcd, or --insecure to talk plaintext to etcd across the network anyway$/,
  );
  assert.deepEqual(checkEtcdEndpoints(['127.0.0.1:2379', 'http://etcd-0:2379'], false, true, 'f'), ['etcd-0:2379']);
  // with TLS every endpoint may be anywhere, written https:// or bare
  assert.deepEqual(checkEtcdEndpoints(['https://etcd-0:2379', '10.0.0.1:2379'], true, false, 'f'), []);
});

test('flags: the CA turns TLS on; a client certificate needs its key and the CA', () => {
  assert.equal(etcdTlsRequested({}), false);
  assert.equal(etcdTlsRequested({ etcdCa: 'ca.pem' }), true);
  assert.equal(etcdTlsRequested({ etcdCa: 'ca.pem', etcdCert: 'c.pem', etcdKey: 'k.pem' }), true);
  assert.throws(
    () => etcdTlsRequested({ etcdCa: 'ca.pem', etcdKey: 'k.pem' }),
    /^KvError: etcd-cert: required with etcd-key$/,
  );
  assert.throws(
    () => etcdTlsRequested({ etcdCert: 'c.pem', etcdKey: 'k.pem' }),
    /^KvError: etcd-ca: required with etcd-cert and etcd-key/,
  );
});
